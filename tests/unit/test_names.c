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

/* One rule for durations: --ttl's parse_duration and --since's
 * audit_parse_since both read them through duration_seconds. */
static void durations(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t seconds;
	} good[] = {{"0s", 0},
		    {"90s", 90},
		    {"30m", 1800},
		    {"24h", 86400},
		    {"7d", 604800},
		    {"2w", 1209600},
		    {"007m", 420},
		    {"99999999999s", 99999999999LL},
		    {"99999999999w", 99999999999LL * 604800}};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		int64_t got = -1;
		assert_true(duration_seconds(good[i].s, &got));
		assert_int_equal(got, good[i].seconds);
	}
	static const char *const bad[] = {"",     "s",    "5",   "5x",  "5S",   "-5s",
					  "+5s",  " 5s",  "5 s", "5ss", "1.5h", "999999999999s",
					  "5s\n", "0x5s", "5m5s"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t got = -1;
		assert_false(duration_seconds(bad[i], &got));
		assert_int_equal(got, -1);
	}
	int64_t s = 0;
	assert_int_equal(parse_duration("2h", 86400, "--ttl", &s), 0);
	assert_int_equal(s, 7200);
	latch_error_quiet(true);
	assert_int_equal(parse_duration("2d", 86400, "--ttl", &s), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	assert_int_equal(parse_duration("2", 86400, "--ttl", &s), -1);
	latch_error_quiet(false);
}

/* KDF levels: one table gives names and costs. */
static void kdf_levels(void **state)
{
	(void)state;
	static const enum vault_kdf all[] = {VAULT_KDF_INTERACTIVE, VAULT_KDF_MODERATE, VAULT_KDF_SENSITIVE};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		enum vault_kdf back;
		assert_int_equal(vault_kdf_parse(vault_kdf_name(all[i]), &back), 0);
		assert_int_equal(back, all[i]);
	}
	assert_string_equal(vault_kdf_name(VAULT_KDF_MODERATE), "moderate");
	enum vault_kdf k;
	latch_error_quiet(true);
	assert_int_equal(vault_kdf_parse("Moderate", &k), -1);
	assert_int_equal(vault_kdf_parse("custom", &k), -1);
	latch_error_quiet(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(durations),   cmocka_unit_test(kdf_levels),
		cmocka_unit_test(names_valid), cmocka_unit_test(names_invalid),
		cmocka_unit_test(fd_numbers),  cmocka_unit_test(time_format_matches_gmtime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
