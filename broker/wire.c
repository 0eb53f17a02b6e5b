/* The framing shared by the daemon and its client. */
#include "wire.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct secbuf *wire_read_line(int fd)
{
	/* Most messages are small: start within a page, grow by doubling. */
	struct secbuf *b = secbuf_new(2048);
	while (b) {
		if (b->len == b->cap) {
			if (b->cap >= BROKER_MAX_MESSAGE) {
				secbuf_free(b);
				return NULL;
			}
			struct secbuf *bigger = secbuf_new(b->cap * 2);
			if (bigger) {
				memcpy(bigger->data, b->data, b->len);
				bigger->len = b->len;
			}
			secbuf_free(b);
			b = bigger;
			continue;
		}
		ssize_t r = recv(fd, b->data + b->len, b->cap - b->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		b->len += (size_t)r;
		if (memchr(b->data + b->len - (size_t)r, '\n', (size_t)r))
			return b;
	}
	secbuf_free(b);
	return NULL;
}

int wire_write_json(int fd, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		return latch_error(LATCH_OPERR, "out of memory");
	size_t n = strlen(text), off = 0;
	int rc = 0;
	while (off < n && rc == 0) {
		ssize_t w = send(fd, text + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = latch_error(LATCH_OPERR, "cannot talk to the broker: %s", strerror(errno));
		else
			off += (size_t)w;
	}
	if (rc == 0 && send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		rc = latch_error(LATCH_OPERR, "cannot talk to the broker: %s", strerror(errno));
	sodium_memzero(text, n);
	json_free_text(text);
	return rc;
}
