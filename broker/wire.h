/* broker/ private: one JSON line each way on the socket. */
#ifndef LATCH_AGENT_WIRE_H
#define LATCH_AGENT_WIRE_H

#include "broker.h"

/* Reads one line (up to BROKER_MAX_MESSAGE) into secure memory, since it
 * may carry values. NULL on EOF, error, timeout or an oversized line. */
struct secbuf *wire_read_line(int fd);
/* Writes `msg` as one compact line; the text is wiped after sending. */
int wire_write_json(int fd, json_t *msg);

#endif
