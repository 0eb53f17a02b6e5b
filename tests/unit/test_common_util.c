/* Unit tests: common/util.c and common/text.c (names, text for a
 * terminal, times, base64 values) and latch_error's one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/common.h"

static int setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

static void names(void **state)
{
	(void)state;
	char n[131];
	memset(n, 'a', sizeof n);
	n[128] = '\0';
	assert_true(latch_name_valid(n)); /* 128: the longest */
	n[128] = 'a';
	n[129] = '\0';
	assert_false(latch_name_valid(n));

	const char *ok[] = {"a", "Z", "0", "a_b", "a.b", "a/b", "a-b", "a-", "a/", "a..", "g-0123abcd", "A9_./-"};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		assert_true(latch_name_valid(ok[i]));
	const char *bad[] = {"",      "_a",    ".a",          "/a",        "-a",  "a b",  "a=b", "a\nb", "a\tb",
			     "a\x7f", "a\x1b", "caf\xc3\xa9", "a\xc2\x9b", "a:b", "a\\b", "a*",  "a'b",  "\xff"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(latch_name_valid(bad[i]));
}

static void plain_text(void **state)
{
	(void)state;
	const char *plain[] = {
		"",
		"hello, world",
		"caf\xc3\xa9",      /* 2 bytes */
		"\xe2\x82\xac 5",   /* 3 bytes: euro sign */
		"\xf0\x9f\x98\x80", /* 4 bytes: emoji */
		"\xc2\xa0",         /* U+00A0: past the C1 range */
		"back\\slash and ~",
		"\xf4\x8f\xbf\xbf", /* U+10FFFF */
	};
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
		assert_true(text_is_plain(plain[i]));

	const char *not_plain[] = {
		"\x1b[2J",  /* ESC */
		"a\tb",     /* TAB is a control too */
		"line\n",   /* newline */
		"\r",       /* carriage return */
		"\x01",     /* SOH */
		"\x1f",     /* US: the last C0 */
		"del\x7f",  /* DEL */
		"\xc2\x80", /* U+0080: the first C1 */
		"\xc2\x9b"
		"31m",      /* U+009B: CSI */
		"\xc2\x9f", /* U+009F: the last C1 */
		"\x9b"
		"31m",      /* a bare 0x9b: CSI in 8-bit terminals */
		"\x80",     /* a stray continuation byte */
		"\xc0\xaf", /* overlong lead bytes */
		"\xc1\xbf",
		"\xc3",             /* a lead byte at the end */
		"\xc3(",            /* a lead byte without its continuation */
		"\xe2\x82",         /* three-byte sequence cut short */
		"\xf0\x9f\x98",     /* four-byte sequence cut short */
		"\xf5\x80\x80\x80", /* above U+10FFFF */
		"\xff",
		"\xfe",
		"ok\xe9"
		"t\xe9", /* Latin-1, not UTF-8 */
	};
	for (size_t i = 0; i < sizeof not_plain / sizeof not_plain[0]; i++) {
		if (text_is_plain(not_plain[i]))
			fail_msg("text_is_plain accepted case %zu", i);
	}
}

static void escaping(void **state)
{
	(void)state;
	char out[128];
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"", ""},
		{"plain", "plain"},
		{"a\x1b[2Jb", "a\\x1b[2Jb"},
		{"\t\n\r", "\\x09\\x0a\\x0d"},
		{"del\x7f", "del\\x7f"},
		{"\xc2\x9b"
		 "31m",
		 "\\u009b31m"},
		{"\xc2\x80\xc2\x9f", "\\u0080\\u009f"},
		{"caf\xc3\xa9", "caf\xc3\xa9"}, /* UTF-8 stays */
		{"\xc2\xa0", "\xc2\xa0"},       /* not a C1 */
		{"back\\x1b", "back\\x1b"},     /* a backslash stays as it is */
		{"\xff\x80", "\xff\x80"},       /* not a control: as it is */
		{"\xc2", "\xc2"},               /* a lead byte at the end */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		text_escape(cases[i].in, out, sizeof out);
		assert_string_equal(out, cases[i].want);
	}
	/* Every escaped control is plain text. */
	text_escape("\x1b]0;title\x07\xc2\x9b", out, sizeof out);
	assert_true(text_is_plain(out));
}

/* Cut to fit, never in the middle of an escape. */
static void escaping_cut(void **state)
{
	(void)state;
	char out[16];
	memset(out, '#', sizeof out);
	text_escape("abcdef", out, 4);
	assert_string_equal(out, "abc");
	text_escape("ab\x1b", out, 6); /* "ab\x1b" needs 7 with the NUL */
	assert_string_equal(out, "ab");
	text_escape("ab\x1b", out, 7);
	assert_string_equal(out, "ab\\x1b");
	text_escape("\xc2\x9b", out, 6); /* \u009b needs 7 */
	assert_string_equal(out, "");
	text_escape("abc", out, 1);
	assert_string_equal(out, "");
	out[0] = '#';
	text_escape("abc", out, 0); /* no room at all: untouched */
	assert_int_equal(out[0], '#');
}

static void times(void **state)
{
	(void)state;
	char buf[32];
	format_time_utc(0, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	format_time_utc(-1, buf);
	assert_string_equal(buf, "1969-12-31T23:59:59Z");
	format_time_utc(951782400, buf); /* a leap day */
	assert_string_equal(buf, "2000-02-29T00:00:00Z");
	format_time_utc(253402300799LL, buf);
	assert_string_equal(buf, "9999-12-31T23:59:59Z");
	format_time_utc(253402300800LL, buf); /* year 10000: not RFC 3339 */
	assert_string_equal(buf, "?");
	format_time_utc(-62167219200LL, buf);
	assert_string_equal(buf, "0000-01-01T00:00:00Z");
	format_time_utc(-62167219201LL, buf);
	assert_string_equal(buf, "?");
	format_time_utc(INT64_MAX, buf);
	assert_string_equal(buf, "?");
	format_time_utc(-1000000000000000LL, buf);
	assert_string_equal(buf, "?");
}

/* latch_error: one line "latch: ...\n", controls escaped, long messages
 * cut, the status kept even when quiet. */
static void error_line(void **state)
{
	(void)state;
	char *long_arg = malloc(3000);
	assert_non_null(long_arg);
	memset(long_arg, 'x', 2999);
	long_arg[2999] = '\0';

	FILE *f = tmpfile();
	assert_non_null(f);
	fflush(stderr);
	int saved = dup(2);
	dup2(fileno(f), 2);
	assert_int_equal(latch_error(LATCH_DENIED, "no grant for '%s'", "db\x1b[2J"), -1);
	enum latch_status s1 = latch_last_status();
	latch_error_quiet(true);
	assert_int_equal(latch_error(LATCH_USAGE, "quiet"), -1);
	enum latch_status s2 = latch_last_status();
	latch_error_quiet(false);
	latch_error(LATCH_OPERR, "%s", long_arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	static char got[4096];
	size_t n = fread(got, 1, sizeof got - 1, f);
	got[n] = '\0';
	fclose(f);
	free(long_arg);

	assert_int_equal(s1, LATCH_DENIED);
	assert_int_equal(s2, LATCH_USAGE);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	const char *first = "latch: no grant for 'db\\x1b[2J'\n";
	assert_memory_equal(got, first, strlen(first));
	const char *second = got + strlen(first);
	assert_memory_equal(second, "latch: xxx", 10);
	assert_int_equal(strlen(second), strlen("latch: ") + LATCH_ERROR_MAX + 1);
	assert_int_equal(second[strlen(second) - 1], '\n');
	assert_ptr_equal(strchr(second, '\n'), second + strlen(second) - 1); /* one line */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names),        cmocka_unit_test(plain_text), cmocka_unit_test(escaping),
		cmocka_unit_test(escaping_cut), cmocka_unit_test(times),      cmocka_unit_test(error_line),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
