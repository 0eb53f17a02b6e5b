/* Secure-memory leak check for the fuzz targets. latch keeps keys and
 * plaintext in sodium_malloc'd buffers, which live in their own mmap'd
 * pages where LeakSanitizer never looks. These definitions interpose on
 * libsodium's (the executable's symbols win), count what is outstanding
 * and forward to the real functions, so a target can assert that every
 * input leaves no secure buffer behind.
 *
 * Include in exactly one file per binary (the fuzz target). */
#ifndef LATCH_FUZZ_SECMEM_H
#define LATCH_FUZZ_SECMEM_H

#include "../../common/common.h"

#include <dlfcn.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static long secmem_outstanding;

static void *(*secmem_next_malloc(void))(size_t)
{
	static void *(*next)(size_t);
	if (!next) {
		void *sym = dlsym(RTLD_NEXT, "sodium_malloc");
		if (!sym)
			abort();
		next = (void *(*)(size_t))sym;
	}
	return next;
}

static void (*secmem_next_free(void))(void *)
{
	static void (*next)(void *);
	if (!next) {
		void *sym = dlsym(RTLD_NEXT, "sodium_free");
		if (!sym)
			abort();
		next = (void (*)(void *))sym;
	}
	return next;
}

void *sodium_malloc(const size_t size)
{
	void *p = secmem_next_malloc()(size);
	if (p)
		secmem_outstanding++;
	return p;
}

void sodium_free(void *ptr)
{
	if (ptr)
		secmem_outstanding--;
	secmem_next_free()(ptr);
}

/* Blocks in use: those secbuf_free keeps wiped for reuse are not. */
static long secmem_in_use(void)
{
	return secmem_outstanding - (long)secbuf_cached();
}

/* Abort if the count moved since `before` (a secmem_in_use() value): a
 * leaked (or doubly freed) secure buffer. */
static void secmem_check(long before, const char *where)
{
	if (secmem_in_use() != before) {
		fprintf(stderr, "fuzz: %ld secure buffer(s) outstanding after %s\n", secmem_in_use() - before, where);
		abort();
	}
}

#endif
