/* Unit tests: secret names and small parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "../../vault/vault.h"

static void names_valid(void **state)
{
	(void)state;
	assert_true(latch_name_valid("a"));
	assert_true(latch_name_valid("prod-db"));
	assert_true(latch_name_valid("team/api.key_2"));
	assert_true(latch_name_valid("9"));
	char longest[LATCH_NAME_MAX + 1];
	memset(longest, 'x', LATCH_NAME_MAX);
	longest[LATCH_NAME_MAX] = '\0';
	assert_true(latch_name_valid(longest));
}

static void names_invalid(void **state)
{
	(void)state;
	assert_false(latch_name_valid(""));
	assert_false(latch_name_valid("-x"));
	assert_false(latch_name_valid("/x"));
	assert_false(latch_name_valid(".x"));
	assert_false(latch_name_valid("_x"));
	assert_false(latch_name_valid("a b"));
	assert_false(latch_name_valid("a=b"));
	assert_false(latch_name_valid("a\nb"));
	assert_false(latch_name_valid("a\x1b[2J"));
	assert_false(latch_name_valid("caf\xc3\xa9"));
	char too_long[LATCH_NAME_MAX + 2];
	memset(too_long, 'x', LATCH_NAME_MAX + 1);
	too_long[LATCH_NAME_MAX + 1] = '\0';
	assert_false(latch_name_valid(too_long));
}

static void fd_numbers(void **state)
{
	(void)state;
	int fd = -1;
	latch_error_quiet(true);
	assert_int_equal(parse_fd("3", &fd), 0);
	assert_int_equal(fd, 3);
	assert_int_equal(parse_fd("-1", &fd), -1);
	assert_int_equal(parse_fd("", &fd), -1);
	assert_int_equal(parse_fd("3x", &fd), -1);
	assert_int_equal(parse_fd("99999999999", &fd), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	latch_error_quiet(false);
}

/* The arithmetic formatter must agree with gmtime/strftime everywhere:
 * a sweep over 400 years in steps that hit every day and many seconds. */
static void time_format_matches_gmtime(void **state)
{
	(void)state;
	for (int64_t t = -86400LL * 366; t < 86400LL * 365 * 400; t += 86400 + 3607) {
		char got[32], want[32];
		time_t tt = (time_t)t;
		struct tm tm;
		format_time_utc(t, got);
		assert_non_null(gmtime_r(&tt, &tm));
		strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
		assert_string_equal(got, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_valid),
		cmocka_unit_test(names_invalid),
		cmocka_unit_test(fd_numbers),
		cmocka_unit_test(time_format_matches_gmtime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
