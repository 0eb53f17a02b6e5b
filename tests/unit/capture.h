/* Unit tests: capture the line latch_error prints for one call. */
#ifndef LATCH_TEST_CAPTURE_H
#define LATCH_TEST_CAPTURE_H

#include <stdio.h>
#include <unistd.h>

/* The one line latch_error printed for `call`, captured from stderr. */
static char captured[LATCH_ERROR_MAX + 64];

#define CAPTURE(rc, call)                                                \
	do {                                                             \
		FILE *f_ = tmpfile();                                    \
		assert_non_null(f_);                                     \
		fflush(stderr);                                          \
		int saved_ = dup(2);                                     \
		dup2(fileno(f_), 2);                                     \
		(rc) = (call);                                           \
		fflush(stderr);                                          \
		dup2(saved_, 2);                                         \
		close(saved_);                                           \
		rewind(f_);                                              \
		size_t n_ = fread(captured, 1, sizeof captured - 1, f_); \
		captured[n_] = '\0';                                     \
		fclose(f_);                                              \
	} while (0)

#endif
