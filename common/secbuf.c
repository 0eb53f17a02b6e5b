/* Secure buffers for keys, passphrases and plaintext. sodium_malloc puts
 * guard pages around the data, mlocks it where the limit allows, and
 * sodium_free wipes it, so no copy outlives its use in swap or a core. */
#include "common.h"

#include <sodium.h>
#include <stdint.h>
#include <unistd.h>

/* The header and the data share one sodium_malloc: each allocation costs
 * six system calls (mmap, three mprotect, madvise, mlock) and each free
 * four, and the broker makes several per request. sodium_malloc ends the
 * block at its guard page, so a size that is a multiple of 16 keeps the
 * header aligned. */
#define SECBUF_HEADER ((sizeof(struct secbuf) + 15u) & ~(size_t)15u)

/* Small buffers are all one size: one locked page less sodium's canary,
 * the data placed at its end so that it still ends at the guard page.
 * A freed one is wiped and kept for reuse (a few at most), so a
 * long-lived daemon stops paying those system calls per request. */
#define SMALL_CACHE 8
static size_t small_block; /* bytes sodium_malloc is asked for */
static struct secbuf *small_free[SMALL_CACHE];
static size_t n_small_free;

static size_t small_capacity(void)
{
	if (!small_block) {
		long page = sysconf(_SC_PAGESIZE);
		small_block = (page > 0 ? (size_t)page : 4096u) - 16u; /* 16: sodium's canary */
	}
	return small_block - SECBUF_HEADER;
}

struct secbuf *secbuf_new(size_t cap)
{
	/* Keep one byte so data is never a zero-length block. */
	size_t want = cap ? cap : 1;
	bool small = want <= small_capacity();
	struct secbuf *b = NULL;
	if (small && n_small_free > 0) {
		b = small_free[--n_small_free];
	} else if (small) {
		b = sodium_malloc(small_block);
	} else if (want <= SIZE_MAX - SECBUF_HEADER - 15u) {
		b = sodium_malloc((SECBUF_HEADER + want + 15u) & ~(size_t)15u);
	}
	if (!b) {
		latch_error(LATCH_OPERR, "cannot allocate %zu bytes of secure memory", cap);
		return NULL;
	}
	b->data = small ? (unsigned char *)b + small_block - want : (unsigned char *)b + SECBUF_HEADER;
	b->len = 0;
	b->cap = cap;
	return b;
}

void secbuf_free(struct secbuf *b)
{
	if (!b)
		return;
	size_t want = b->cap ? b->cap : 1;
	if (want <= small_capacity() && n_small_free < SMALL_CACHE) {
		sodium_memzero(b, small_block);
		small_free[n_small_free++] = b;
		return;
	}
	sodium_free(b);
}

size_t secbuf_cached(void)
{
	return n_small_free;
}
