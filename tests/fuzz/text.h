/* A growing, NUL-terminated text buffer for the fuzz targets that build
 * their seeds and self-check inputs in memory (fuzz_export,
 * fuzz_broker_auth). Include it after the target's own
 * `static void fail(const char *what)`, which it calls when out of memory. */
#ifndef LATCH_FUZZ_TEXT_H
#define LATCH_FUZZ_TEXT_H

#include <stdlib.h>
#include <string.h>

struct text {
	char *p;
	size_t len;
};

static inline void add_bytes(struct text *t, const void *s, size_t n)
{
	char *p = realloc(t->p, t->len + n + 1);
	if (!p)
		fail("out of memory");
	memcpy(p + t->len, s, n);
	t->p = p;
	t->len += n;
	t->p[t->len] = '\0';
}

static inline void add(struct text *t, const char *s)
{
	add_bytes(t, s, strlen(s));
}

#endif
