/* The framing shared by the daemon and its client (wire.h). */
#include "wire.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void wire_msg_clear(struct wire_msg *m)
{
	json_decref(m->head);
	m->head = NULL;
	m->n = 0;
}

int wire_parse(const unsigned char *p, size_t len, struct wire_msg *m, size_t *end)
{
	m->head = NULL;
	m->n = 0;
	const unsigned char *nl = memchr(p, '\n', len);
	if (!nl)
		return 0;
	size_t line = (size_t)(nl - p);
	*end = line + 1;
	json_error_t err;
	json_t *head = json_loadb((const char *)p, line, 0, &err);
	if (!json_is_object(head)) {
		json_decref(head);
		return -1;
	}
	json_t *jn = json_object_get(head, "frames");
	json_int_t n = jn ? (json_is_integer(jn) ? json_integer_value(jn) : -1) : 0;
	if (n < 0 || n > WIRE_MAX_FRAMES) {
		json_decref(head);
		return -1;
	}
	size_t at = line + 1;
	for (json_int_t i = 0; i < n; i++) {
		if (len - at < 4) {
			json_decref(head);
			return 0;
		}
		size_t flen = (size_t)p[at] << 24 | (size_t)p[at + 1] << 16 | (size_t)p[at + 2] << 8 | p[at + 3];
		if (flen > BROKER_MAX_MESSAGE) {
			json_decref(head);
			return -1;
		}
		at += 4;
		if (len - at < flen) {
			json_decref(head);
			return 0;
		}
		m->frame[i] = (struct secbuf){(unsigned char *)(uintptr_t)(p + at), flen, flen};
		at += flen;
	}
	m->head = head;
	m->n = (size_t)n;
	*end = at;
	return 1;
}

int wire_grow(struct secbuf **b)
{
	if ((*b)->cap >= BROKER_MAX_MESSAGE)
		return -1;
	struct secbuf *bigger = secbuf_new((*b)->cap * 2);
	if (!bigger)
		return -1;
	memcpy(bigger->data, (*b)->data, (*b)->len);
	bigger->len = (*b)->len;
	secbuf_free(*b);
	*b = bigger;
	return 0;
}

struct secbuf *wire_read(int fd, struct wire_msg *m)
{
	/* Most messages are small: start within a page, grow by doubling. */
	struct secbuf *b = secbuf_new(2048);
	size_t end = 0;
	m->head = NULL;
	m->n = 0;
	while (b) {
		if (b->len == b->cap && wire_grow(&b) != 0)
			break;
		ssize_t r = recv(fd, b->data + b->len, b->cap - b->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		b->len += (size_t)r;
		/* Parse only once the header line is whole. */
		if (!memchr(b->data, '\n', b->len))
			continue;
		int rc = wire_parse(b->data, b->len, m, &end);
		if (rc == 1)
			return b;
		if (rc < 0)
			break;
	}
	secbuf_free(b);
	return NULL;
}

struct secbuf *wire_build(json_t *head, const struct secbuf *frames, size_t n)
{
	if (n > 0 && json_object_set_new(head, "frames", json_integer((json_int_t)n)) != 0)
		head = NULL;
	char *text = head ? json_dumps(head, JSON_COMPACT) : NULL;
	if (!text) {
		latch_error(LATCH_OPERR, "out of memory");
		return NULL;
	}
	size_t tlen = strlen(text), need = tlen + 1;
	for (size_t i = 0; i < n; i++)
		need += 4 + frames[i].len;
	struct secbuf *b = need <= BROKER_MAX_MESSAGE ? secbuf_new(need) : NULL;
	if (b) {
		memcpy(b->data, text, tlen);
		b->data[tlen] = '\n';
		b->len = tlen + 1;
		for (size_t i = 0; i < n; i++) {
			size_t l = frames[i].len;
			unsigned char *q = b->data + b->len;
			q[0] = (unsigned char)(l >> 24);
			q[1] = (unsigned char)(l >> 16);
			q[2] = (unsigned char)(l >> 8);
			q[3] = (unsigned char)l;
			memcpy(q + 4, frames[i].data, l);
			b->len += 4 + l;
		}
	} else if (need > BROKER_MAX_MESSAGE) {
		latch_error(LATCH_USAGE, "a message to the broker would exceed %u bytes", BROKER_MAX_MESSAGE);
	}
	json_free_text(text);
	return b;
}

int wire_send(int fd, const struct secbuf *msg)
{
	size_t off = 0;
	while (off < msg->len) {
		ssize_t w = send(fd, msg->data + off, msg->len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return latch_error(LATCH_OPERR, "cannot talk to the broker: %s",
					   w < 0 ? strerror(errno) : "closed");
		off += (size_t)w;
	}
	return 0;
}

int wire_send_json(int fd, json_t *head, const struct secbuf *frames, size_t n)
{
	struct secbuf *msg = head ? wire_build(head, frames, n) : NULL;
	int rc = msg ? wire_send(fd, msg) : -1;
	secbuf_free(msg);
	return rc;
}
