/* Secure buffers for keys, passphrases and plaintext. sodium_malloc puts
 * guard pages around the data, mlocks it where the limit allows, and
 * sodium_free wipes it, so no copy outlives its use in swap or a core. */
#include "common.h"

#include <sodium.h>

struct secbuf *secbuf_new(size_t cap)
{
	struct secbuf *b = sodium_malloc(sizeof *b);
	if (!b) {
		latch_error(LATCH_OPERR, "cannot allocate secure memory");
		return NULL;
	}
	/* sodium_malloc(0) is valid but keep one byte so data is never NULL. */
	b->data = sodium_malloc(cap ? cap : 1);
	if (!b->data) {
		sodium_free(b);
		latch_error(LATCH_OPERR, "cannot allocate %zu bytes of secure memory", cap);
		return NULL;
	}
	b->len = 0;
	b->cap = cap;
	return b;
}

void secbuf_free(struct secbuf *b)
{
	if (!b)
		return;
	sodium_free(b->data);
	sodium_free(b);
}
