/* broker/ private: the framing shared by the daemon and its client.
 *
 * A message is a JSON object on one line (the header: never a value),
 * then, if the header says "frames": N, N binary frames, each a 4-byte
 * big-endian length and that many bytes. Values travel only in frames:
 * they are read straight into secure memory and never become JSON text,
 * base64 or a jansson string. The plaintext inside a sealed grant is such
 * a message too. */
#ifndef LATCH_BROKER_WIRE_H
#define LATCH_BROKER_WIRE_H

#include "broker.h"

#include <jansson.h>

/* At most this many frames in one message: the values of one grant or
 * one release. */
#define WIRE_MAX_FRAMES BROKER_MAX_NAMES

/* A parsed message: its header, and its frames as views into the bytes
 * it was parsed from (valid while they are). */
struct wire_msg {
	json_t *head;
	size_t n;
	struct secbuf frame[WIRE_MAX_FRAMES];
};

/* Whether p[0..len) starts with a whole message. 1: it does, *m is
 * filled and *end is its length; 0: not yet (no newline, or frames still
 * to come); -1: its header line is not a JSON object, or its frames are
 * malformed (*end is then the length of the header line, newline
 * included, so that a caller can skip it). */
int wire_parse(const unsigned char *p, size_t len, struct wire_msg *m, size_t *end);
/* Release a wire_parse'd header (NULL-safe, idempotent). */
void wire_msg_clear(struct wire_msg *m);

/* Double *b's room, keeping its bytes (the old buffer wiped and freed),
 * up to BROKER_MAX_MESSAGE. -1 at the limit or out of memory: *b is then
 * unchanged. */
int wire_grow(struct secbuf **b);
/* Read one whole message (at most BROKER_MAX_MESSAGE bytes) from a
 * blocking descriptor into secure memory: the buffer returned holds it
 * and m's frames point into it. NULL on EOF, error, timeout, or a
 * malformed or oversized message. */
struct secbuf *wire_read(int fd, struct wire_msg *m);
/* One message in one secure buffer: `head` (compact, a newline; with
 * "frames": n added when n > 0), then the n frames. NULL reported. */
struct secbuf *wire_build(json_t *head, const struct secbuf *frames, size_t n);
/* Send all of `msg`. 0, or -1 reported. */
int wire_send(int fd, const struct secbuf *msg);
/* Build, send, free: 0 or -1 reported. `head` is not taken. */
int wire_send_json(int fd, json_t *head, const struct secbuf *frames, size_t n);

#endif
