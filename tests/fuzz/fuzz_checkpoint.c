/* Fuzz target: audit/query.c's two small text parsers.
 *
 * 1. audit_checkpoint_parse on the raw input (exactly `size` bytes, not
 *    NUL-terminated, so ASan sees any read past the end). When it parses,
 *    audit_checkpoint_format must give a text that parses to the identical
 *    struct, and formatting that struct again must give the same text. A
 *    refusal must be -1 with LATCH_USAGE.
 * 2. The other way round: a struct made from the input's bytes is formatted
 *    and parsed back. It must come back identical when its seq is >= 1 and
 *    be refused otherwise. The formatter must fail on a buffer one byte too
 *    small and succeed on one of exactly the right size.
 * 3. audit_parse_since on a NUL-terminated copy of the input, with a fixed
 *    `now`, against an independent model of what it must accept:
 *      - a duration, [0-9]+ and one unit of s m h d w, at most 12 bytes in
 *        all: if accepted, the result is exactly now - value * unit, so it
 *        is <= now and at most about 100 years back; values up to a year
 *        must be accepted;
 *      - YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC), year >= 1970, a real day
 *        of that month in that year (Gregorian leap years), hour <= 23,
 *        minute <= 59, second <= 60 (RFC 3339 allows a leap second): must
 *        be accepted, with the value timegm() gives (TZ unset);
 *      - everything else, including dates before 1970, Feb 30, Feb 29 of a
 *        common year and hour 24, must be refused with LATCH_USAGE.
 *    Any disagreement aborts.
 * No secure buffer may be left outstanding (secmem.h); heap leaks are
 * LeakSanitizer's. */
#include "fuzz.h"

#include "../../audit/audit.h"
#include "secmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A fixed "now" for audit_parse_since: 2026-11-23T15:00:00Z. */
#define FUZZ_NOW INT64_C(1795446000)
#define YEAR_SECONDS (INT64_C(365) * 86400)

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_checkpoint: %s\n", what);
	abort();
}

static bool same_checkpoint(const struct audit_checkpoint *a, const struct audit_checkpoint *b)
{
	return memcmp(a->vault_id, b->vault_id, sizeof a->vault_id) == 0 &&
	       memcmp(a->log_id, b->log_id, sizeof a->log_id) == 0 && a->seq == b->seq &&
	       memcmp(a->mac, b->mac, sizeof a->mac) == 0;
}

/* Parse `text` (exactly `len` bytes, in a heap copy of that size). */
static int parse_exact(const char *text, size_t len, struct audit_checkpoint *out)
{
	char *copy = malloc(len ? len : 1);
	if (!copy)
		fail("out of memory");
	memcpy(copy, text, len);
	int rc = audit_checkpoint_parse(copy, len, out);
	free(copy);
	return rc;
}

/* format(cp) must parse back to cp, and format the same again. */
static void round_trip(const struct audit_checkpoint *cp, bool must_parse)
{
	char text[512], again[512];
	if (audit_checkpoint_format(cp, text, sizeof text) != 0)
		fail("audit_checkpoint_format failed with a large buffer");
	size_t len = strlen(text);
	/* Exactly len + 1 bytes is enough; len bytes is not. */
	char *tight = malloc(len + 1);
	if (!tight)
		fail("out of memory");
	if (audit_checkpoint_format(cp, tight, len + 1) != 0 || strcmp(tight, text) != 0)
		fail("audit_checkpoint_format failed with a buffer of exactly the right size");
	if (audit_checkpoint_format(cp, tight, len) == 0)
		fail("audit_checkpoint_format claimed success with a buffer one byte short");
	free(tight);

	struct audit_checkpoint back;
	memset(&back, 0xa5, sizeof back);
	int rc = parse_exact(text, len, &back);
	if (!must_parse) {
		if (rc != -1 || latch_last_status() != LATCH_USAGE)
			fail("a formatted checkpoint with seq < 1 was accepted");
		return;
	}
	if (rc != 0)
		fail("a formatted checkpoint does not parse");
	if (!same_checkpoint(cp, &back))
		fail("a checkpoint changed in a format/parse round trip");
	if (audit_checkpoint_format(&back, again, sizeof again) != 0 || strcmp(text, again) != 0)
		fail("formatting a parsed checkpoint gave another text");
}

static void check_checkpoint(const uint8_t *data, size_t size)
{
	/* 1: the input as checkpoint text. */
	struct audit_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	int rc = audit_checkpoint_parse((const char *)data, size, &cp);
	if (rc == 0) {
		if (cp.seq < 1)
			fail("a checkpoint with seq < 1 was accepted");
		round_trip(&cp, true);
	} else if (rc != -1 || latch_last_status() != LATCH_USAGE) {
		fail("audit_checkpoint_parse refused without LATCH_USAGE");
	}

	/* 2: a struct from the input's bytes (the first 72 bytes, padded with
	 * zeros): vault id, log id, seq (little-endian), MAC. */
	uint8_t raw[16 + AUDIT_LOG_ID_BYTES + 8 + AUDIT_MAC_BYTES] = {0};
	memcpy(raw, data, size < sizeof raw ? size : sizeof raw);
	struct audit_checkpoint made;
	memcpy(made.vault_id, raw, 16);
	memcpy(made.log_id, raw + 16, AUDIT_LOG_ID_BYTES);
	uint64_t seq = 0;
	for (int i = 7; i >= 0; i--)
		seq = (seq << 8) | raw[32 + i];
	made.seq = (int64_t)seq;
	memcpy(made.mac, raw + 40, AUDIT_MAC_BYTES);
	round_trip(&made, made.seq >= 1);
}

/* ---- audit_parse_since, against a model ---- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

static int64_t number(const char *s, size_t n)
{
	int64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

static int64_t unit_seconds(char u)
{
	switch (u) {
	case 's':
		return 1;
	case 'm':
		return 60;
	case 'h':
		return 3600;
	case 'd':
		return 86400;
	case 'w':
		return 604800;
	default:
		return 0;
	}
}

static int days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* The model of a date: 1 valid (value in *t), 0 not a date or invalid. */
static int model_date(const char *s, size_t n, int64_t *t)
{
	if (n != 10 && n != 20)
		return 0;
	if (!all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) || s[7] != '-' || !all_digits(s + 8, 2))
		return 0;
	int y = (int)number(s, 4), mo = (int)number(s + 5, 2), d = (int)number(s + 8, 2);
	int hh = 0, mi = 0, ss = 0;
	if (n == 20) {
		if (s[10] != 'T' || !all_digits(s + 11, 2) || s[13] != ':' || !all_digits(s + 14, 2) || s[16] != ':' ||
		    !all_digits(s + 17, 2) || s[19] != 'Z')
			return 0;
		hh = (int)number(s + 11, 2);
		mi = (int)number(s + 14, 2);
		ss = (int)number(s + 17, 2);
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || hh > 23 || mi > 59 || ss > 60)
		return 0;
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = hh;
	tm.tm_min = mi;
	tm.tm_sec = ss; /* 60 normalises to the next minute, as a leap second reads */
	errno = 0;
	time_t v = timegm(&tm);
	if (v == (time_t)-1 && errno)
		fail("timegm failed on a valid date");
	*t = (int64_t)v;
	return 1;
}

static void check_since(const uint8_t *data, size_t size)
{
	/* Exactly size + 1 bytes; the C string ends at the first NUL. */
	char *s = malloc(size + 1);
	if (!s)
		fail("out of memory");
	memcpy(s, data, size);
	s[size] = '\0';
	size_t n = strlen(s);

	int64_t got = INT64_MIN;
	int rc = audit_parse_since(s, FUZZ_NOW, &got);
	if (rc != 0 && (rc != -1 || latch_last_status() != LATCH_USAGE))
		fail("audit_parse_since refused without LATCH_USAGE");

	bool duration = n >= 2 && n <= 12 && all_digits(s, n - 1) && unit_seconds(s[n - 1]) != 0;
	int64_t want;
	if (duration) {
		int64_t v = number(s, n - 1), unit = unit_seconds(s[n - 1]);
		/* v < 10^11, so v * unit < 6.1e16: no overflow. */
		if (rc == 0) {
			if (got != FUZZ_NOW - v * unit)
				fail("a duration gave another time than now - value * unit");
			if (got > FUZZ_NOW)
				fail("a duration gave a time after now");
			if (v * unit > 101 * YEAR_SECONDS)
				fail("a duration of more than 100 years was accepted");
		} else if (v * unit <= YEAR_SECONDS) {
			fail("a duration of at most a year was refused");
		}
	} else if (model_date(s, n, &want)) {
		if (rc != 0)
			fail("a valid date was refused");
		if (got != want)
			fail("a date gave another time than timegm");
	} else if (rc == 0) {
		fail("audit_parse_since accepted something neither a duration nor a valid date");
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("cannot initialise libsodium");
		latch_error_quiet(true);
		/* timegm must not depend on the environment. */
		unsetenv("TZ");
		tzset();
		ready = true;
	}
	long before = secmem_in_use();
	check_checkpoint(data, size);
	check_since(data, size);
	secmem_check(before, "the checkpoint and --since parsers");
	return 0;
}
