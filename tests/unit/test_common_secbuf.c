/* Unit tests: common/secbuf.c, the secure buffers every key, passphrase
 * and value lives in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../common/common.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static int setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Every size a caller asks for: the capacity is what was asked, nothing is
 * used yet, and every byte up to the capacity is writable. */
static void sizes(void **state)
{
	(void)state;
	long page = sysconf(_SC_PAGESIZE);
	size_t sizes[] = {0,
			  1,
			  15,
			  16,
			  100,
			  (size_t)page / 2,
			  (size_t)page - 200,
			  (size_t)page - 16,
			  (size_t)page,
			  (size_t)page + 1,
			  1u << 20};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct secbuf *b = secbuf_new(sizes[i]);
		assert_non_null(b);
		assert_non_null(b->data);
		assert_int_equal(b->cap, sizes[i]);
		assert_int_equal(b->len, 0);
		memset(b->data, 0xa5, b->cap);
		b->len = b->cap;
		secbuf_free(b);
	}
	secbuf_free(NULL); /* NULL-safe */
}

/* Sizes no allocator can give fail cleanly, reported as an I/O error. */
static void limits(void **state)
{
	(void)state;
	latch_error_quiet(true);
	assert_null(secbuf_new(SIZE_MAX));
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	assert_null(secbuf_new(SIZE_MAX - 15));
	assert_null(secbuf_new(SIZE_MAX / 2));
	latch_error_quiet(false);
	/* Still usable afterwards. */
	struct secbuf *b = secbuf_new(32);
	assert_non_null(b);
	secbuf_free(b);
}

/* A small buffer freed is wiped and kept for reuse (at most 8), and the
 * next small buffer is that block: the value is gone from it. */
static void small_freed_wiped_and_reused(void **state)
{
	(void)state;
	struct secbuf *held[10];
	/* Use up the cache, then make more than it can keep. */
	for (size_t i = 0; i < 10; i++) {
		held[i] = secbuf_new(64);
		assert_non_null(held[i]);
	}
	assert_int_equal(secbuf_cached(), 0);
	for (size_t i = 0; i < 10; i++) {
		unsigned char *data = held[i]->data;
		memcpy(data, "correct horse battery staple", 28);
		held[i]->len = 28;
		secbuf_free(held[i]);
		if (i < 8) {
			/* Still mapped (kept in the cache): observably wiped. */
			assert_true(all_zero(data, 64));
			assert_int_equal(secbuf_cached(), i + 1);
		}
	}
	assert_int_equal(secbuf_cached(), 8);

	struct secbuf *again = secbuf_new(100);
	assert_non_null(again);
	assert_int_equal(secbuf_cached(), 7);
	assert_int_equal(again->len, 0);
	assert_int_equal(again->cap, 100);
	assert_true(all_zero(again->data, again->cap));
	secbuf_free(again);
	assert_int_equal(secbuf_cached(), 8);
}

/* A large buffer is not cached: sodium_free wipes and unmaps it. */
static void large_not_cached(void **state)
{
	(void)state;
	size_t before = secbuf_cached();
	struct secbuf *b = secbuf_new(1u << 16);
	assert_non_null(b);
	assert_int_equal(secbuf_cached(), before);
	memset(b->data, 1, b->cap);
	secbuf_free(b);
	assert_int_equal(secbuf_cached(), before);
}

/* The data ends at sodium's guard page: one byte past the capacity
 * faults, for a small (cached) and a large buffer. Run in a child. */
static void guard_page_after_data(void **state)
{
	(void)state;
#ifdef UNDER_ASAN
	skip(); /* ASan turns the fault into a report of its own */
#else
	size_t caps[] = {1, 64, 1u << 16};
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			signal(SIGSEGV, SIG_DFL);
			signal(SIGBUS, SIG_DFL);
			struct secbuf *b = secbuf_new(caps[i]);
			if (!b)
				_exit(2);
			b->data[b->cap - 1] = 1; /* fine */
			volatile unsigned char *past = b->data + b->cap;
			*past = 1; /* must fault */
			_exit(0);
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFSIGNALED(st));
		assert_true(WTERMSIG(st) == SIGSEGV || WTERMSIG(st) == SIGBUS);
	}
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sizes),
		cmocka_unit_test(limits),
		cmocka_unit_test(small_freed_wiped_and_reused),
		cmocka_unit_test(large_not_cached),
		cmocka_unit_test(guard_page_after_data),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
