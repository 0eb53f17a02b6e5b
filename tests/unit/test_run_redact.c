/* Unit tests: the redactor (run/redact.c). Every form of a value (raw,
 * base64 at each alignment inside a larger blob, hex, percent, JSON,
 * shell and YAML quoting, UTF-16LE) becomes [latch:NAME], and the bytes
 * around it come out unchanged; whatever the split (a byte per feed,
 * 4096- and 65536-byte feeds); through escape sequences; with CRLF and
 * binary data; nested, adjacent and repeated values make one marker and
 * are counted; short values are skipped; prompts are not held back; a
 * flush writes what was held and a later occurrence is still redacted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../match/match.h"
#include "../../run/run.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define VALUE "hunter2-secret"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Random bytes without ESC, and with none of the values' first bytes
 * when `plain` (so that no occurrence appears by chance). */
static void fill(unsigned char *p, size_t n, bool plain)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)rnd();
		while (c == 0x1b || (plain && c >= 0x20 && c < 0x7f))
			c = (unsigned char)rnd();
		p[i] = c;
	}
}

struct sink {
	int fd;
	unsigned char *data;
	size_t n;
};

static struct sink sink_new(void)
{
	struct sink s = {memfd_create("test_run_redact", 0), NULL, 0};
	assert_true(s.fd >= 0);
	return s;
}

/* What was written so far (s->data, s->n; NUL-terminated). */
static void sink_read(struct sink *s)
{
	off_t end = lseek(s->fd, 0, SEEK_END);
	assert_true(end >= 0);
	free(s->data);
	s->data = malloc((size_t)end + 1);
	assert_non_null(s->data);
	assert_int_equal(pread(s->fd, s->data, (size_t)end, 0), end);
	s->data[end] = 0;
	s->n = (size_t)end;
}

static void sink_free(struct sink *s)
{
	close(s->fd);
	free(s->data);
}

static struct run_redactor *one(const char *name, const char *value)
{
	struct run_needle nd = {name, (const unsigned char *)value, strlen(value)};
	struct run_redactor *r = run_redactor_new(&nd, 1);
	assert_non_null(r);
	return r;
}

/* Feed `in` in pieces of `piece` bytes (0: all at once), flush, and
 * return what came out (the sink's buffer). */
static void redact(const struct run_redactor *r, const unsigned char *in, size_t n, size_t piece, struct sink *s,
		   uint64_t *counts, size_t n_counts)
{
	struct run_redact_out *o = run_redact_out_new(r, s->fd);
	assert_non_null(o);
	for (size_t at = 0; at < n;) {
		size_t k = piece && n - at > piece ? piece : n - at;
		assert_int_equal(run_redact_feed(o, in + at, k), 0);
		at += k;
	}
	assert_int_equal(run_redact_flush(o), 0);
	assert_int_equal(run_redact_held(o), 0);
	for (size_t i = 0; i < n_counts; i++)
		counts[i] = run_redact_count(o, i);
	run_redact_out_free(o);
	sink_read(s);
}

/* `in` redacted must be `want`, fed whole, a byte at a time and in
 * pieces of 2, 3, 7 and 4096. */
static void expect(const struct run_redactor *r, const char *in, const char *want)
{
	static const size_t pieces[] = {0, 1, 2, 3, 7, 4096};
	for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
		struct sink s = sink_new();
		redact(r, (const unsigned char *)in, strlen(in), pieces[i], &s, NULL, 0);
		if (strcmp((char *)s.data, want) != 0)
			fail_msg("piece %zu: got '%s', want '%s'", pieces[i], s.data, want);
		sink_free(&s);
	}
}

static void raw_value_and_the_text_around_it(void **state)
{
	(void)state;
	struct run_redactor *r = one("db", VALUE);
	expect(r, "password=" VALUE "\n", "password=[latch:db]\n");
	expect(r, VALUE, "[latch:db]");
	expect(r, "a " VALUE " b " VALUE " c", "a [latch:db] b [latch:db] c");
	expect(r, "hunter2-secre hunter2-secreT", "hunter2-secre hunter2-secreT");
	expect(r, "CRLF\r\n" VALUE "\r\n\r\n", "CRLF\r\n[latch:db]\r\n\r\n");
	run_redactor_free(r);
}

/* Every form match_forms makes, alone and inside text. */
static void every_encoding(void **state)
{
	(void)state;
	static const char *const values[] = {
		VALUE,
		"p@ss w\"rd/'$\\x",
		"caf\xc3\xa9-\xe2\x82\xac-<tag>&\n\t",
		"\x3f\x3f\x3f>>>~~~",
	};
	bool seen[MATCH_N_ENCODINGS] = {false};
	for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
		struct run_redactor *r = one("x", values[v]);
		struct match_form *forms;
		size_t n;
		assert_int_equal(match_forms((const unsigned char *)values[v], strlen(values[v]), RUN_REDACT_MIN,
					     &forms, &n),
				 0);
		for (size_t i = 0; i < n; i++) {
			seen[forms[i].enc] = true;
			unsigned char in[1024];
			size_t len = forms[i].bytes->len + 4;
			assert_true(len < sizeof in);
			memcpy(in, "<<", 2);
			memcpy(in + 2, forms[i].bytes->data, forms[i].bytes->len);
			memcpy(in + len - 2, ">>", 2);
			struct sink s = sink_new();
			redact(r, in, len, 0, &s, NULL, 0);
			if (strcmp((char *)s.data, "<<[latch:x]>>") != 0)
				fail_msg("value %zu, form %zu (%s): not redacted", v, i,
					 match_encoding_name(forms[i].enc));
			sink_free(&s);
			s = sink_new();
			redact(r, in, len, 1, &s, NULL, 0);
			assert_string_equal(s.data, "<<[latch:x]>>");
			sink_free(&s);
		}
		match_forms_free(forms, n);
		run_redactor_free(r);
	}
	/* Every encoding was among them. */
	for (int e = 0; e < MATCH_N_ENCODINGS; e++)
		if (!seen[e])
			fail_msg("no %s form", match_encoding_name((enum match_encoding)e));
}

/* The value at byte offset 0, 1 and 2 (mod 3) inside a larger blob, base64
 * and base64url: the characters made of its bits alone are replaced, the
 * rest of the blob comes out as it is. */
static void base64_at_each_alignment(void **state)
{
	(void)state;
	struct run_redactor *r = one("tok", VALUE);
	for (int variant = 0; variant < 2; variant++)
		for (size_t pre = 30; pre < 33; pre++) {
			unsigned char blob[128];
			fill(blob, sizeof blob, false);
			memcpy(blob + pre, VALUE, strlen(VALUE));
			char b64[256];
			sodium_bin2base64(b64, sizeof b64, blob, sizeof blob,
					  variant ? sodium_base64_VARIANT_URLSAFE : sodium_base64_VARIANT_ORIGINAL);
			struct sink s = sink_new();
			redact(r, (unsigned char *)b64, strlen(b64), 1, &s, NULL, 0);
			char *m = strstr((char *)s.data, "[latch:tok]");
			assert_non_null(m);
			assert_null(strstr(m + 1, "[latch:"));
			size_t head = (size_t)(m - (char *)s.data), tail = strlen(m + strlen("[latch:tok]"));
			/* Unchanged around it, and no more than the value's
			 * bits (plus at most 2 characters each side) gone. */
			assert_memory_equal(s.data, b64, head);
			assert_string_equal(m + strlen("[latch:tok]"), b64 + strlen(b64) - tail);
			size_t gone = strlen(b64) - head - tail;
			assert_true(gone >= strlen(VALUE) * 4 / 3 - 2 && gone <= strlen(VALUE) * 4 / 3 + 1);
			assert_true(head >= pre * 4 / 3 - 1);
			sink_free(&s);
		}
	run_redactor_free(r);
}

/* Values at and across the 4096- and 65536-byte boundaries of feeds, in
 * random binary data: the data comes out byte for byte, each value as a
 * marker, fed in pieces of 4096, 65536, 4095 and 65537 bytes. */
static void across_4096_and_65536(void **state)
{
	(void)state;
	struct run_redactor *r = one("db", VALUE);
	size_t n = 3 * 65536 + 1000, vl = strlen(VALUE);
	unsigned char *in = malloc(n);
	char *want = malloc(2 * n);
	assert_non_null(in);
	assert_non_null(want);
	fill(in, n, true);
	static const size_t at[] = {4096 - 5,         2 * 4096 - 1,  3 * 4096,     65536 - 13,
				    65536 + 4096 - 7, 2 * 65536 - 1, 3 * 65536 - 6};
	size_t w = 0, from = 0;
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		memcpy(in + at[i], VALUE, vl);
		memcpy(want + w, in + from, at[i] - from);
		w += at[i] - from;
		memcpy(want + w, "[latch:db]", 10);
		w += 10;
		from = at[i] + vl;
	}
	memcpy(want + w, in + from, n - from);
	w += n - from;
	static const size_t pieces[] = {4096, 65536, 4095, 65537};
	for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
		struct sink s = sink_new();
		uint64_t c;
		redact(r, in, n, pieces[i], &s, &c, 1);
		assert_int_equal(s.n, w);
		assert_memory_equal(s.data, want, w);
		assert_int_equal(c, sizeof at / sizeof at[0]);
		sink_free(&s);
	}
	free(in);
	free(want);
	run_redactor_free(r);
}

/* Binary data, NULs, invalid UTF-8, CRLF, stray ESC bytes, no value: out
 * exactly as in, whatever the split. */
static void binary_passes_intact(void **state)
{
	(void)state;
	struct run_redactor *r = one("db", VALUE);
	size_t n = 200000;
	unsigned char *in = malloc(n);
	assert_non_null(in);
	for (size_t i = 0; i < n; i++)
		in[i] = (unsigned char)rnd();
	memcpy(in + 100, "\xff\xfe\xc3\x28\x00\r\n\x1b[31mhunter2-secre\x1b\n", 27);
	static const size_t pieces[] = {0, 1, 4096, 65536, 777};
	for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
		struct sink s = sink_new();
		redact(r, in, n, pieces[i], &s, NULL, 0);
		assert_int_equal(s.n, n);
		assert_memory_equal(s.data, in, n);
		sink_free(&s);
	}
	free(in);
	run_redactor_free(r);
}

/* A value cut by escape sequences is found; they go with it. Colour codes
 * outside values pass intact. A value inside an escape sequence (a title,
 * a clipboard payload, right after "ESC [") is found too. */
static void escape_sequences(void **state)
{
	(void)state;
	struct run_redactor *r = one("db", VALUE);
	expect(r, "\x1b[1mpw:\x1b[0m hun\x1b[31mter2-secret\x1b[0m\n", "\x1b[1mpw:\x1b[0m [latch:db]\x1b[0m\n");
	expect(r,
	       "h\x1b[1;31mu\x1b]0;t\x07nter\x1b(B2-sec\x1b"
	       "7ret!",
	       "[latch:db]!");
	expect(r, "\x1b]0;" VALUE "\x07 title", "\x1b]0;[latch:db]\x07 title");
	expect(r, "\x1b]52;c;aHVudGVyMi1zZWNyZXQ=\x1b\\", "\x1b]52;c;[latch:db]\x1b\\");
	expect(r, "\x1b[" VALUE, "\x1b[[latch:db]");
	expect(r, "\x1b[31mred\x1b[0m \x1b[38;2;1;2;3mtrue\x1b[0m\r\n",
	       "\x1b[31mred\x1b[0m \x1b[38;2;1;2;3mtrue\x1b[0m\r\n");
	/* A broken sequence: the newline ends it and is text. */
	expect(r, "\x1b[12\nhunter2-secret", "\x1b[12\n[latch:db]");
	run_redactor_free(r);
}

/* Nested, overlapping, adjacent and repeated values: one marker per
 * maximal range, named after the first to start, counting each needle
 * that took part once per marker. */
static void overlaps_make_one_marker(void **state)
{
	(void)state;
	struct run_needle nd[] = {
		{"outer", (const unsigned char *)"abcdefghij", 10},
		{"inner", (const unsigned char *)"cdefgh", 6},
		{"other", (const unsigned char *)"zyxwvu", 6},
	};
	struct run_redactor *r = run_redactor_new(nd, 3);
	assert_non_null(r);
	struct {
		const char *in, *out;
		uint64_t counts[3];
	} cases[] = {
		{"<abcdefghij>", "<[latch:outer]>", {1, 1, 0}},
		{"<cdefgh>", "<[latch:inner]>", {0, 1, 0}},
		{"<cdefghzyxwvu>", "<[latch:inner]>", {0, 1, 1}},
		{"<zyxwvucdefgh>", "<[latch:other]>", {0, 1, 1}},
		{"<cdefghcdefgh> <cdefgh>", "<[latch:inner]> <[latch:inner]>", {0, 2, 0}},
		{"<abcdefghijabcdefghij>", "<[latch:outer]>", {1, 1, 0}},
		{"<zyxwvu\x1b[0mcdefgh>", "<[latch:other]\x1b[0m[latch:inner]>", {0, 1, 1}},
		{"<zyxwvu cdefgh>", "<[latch:other] [latch:inner]>", {0, 1, 1}},
		{"<abcdefgh>", "<ab[latch:inner]>", {0, 1, 0}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		for (size_t piece = 0; piece < 3; piece++) {
			struct sink s = sink_new();
			uint64_t c[3];
			redact(r, (const unsigned char *)cases[i].in, strlen(cases[i].in), piece, &s, c, 3);
			if (strcmp((char *)s.data, cases[i].out) != 0)
				fail_msg("case %zu: got '%s'", i, s.data);
			for (size_t k = 0; k < 3; k++)
				if (c[k] != cases[i].counts[k])
					fail_msg("case %zu, needle %zu: count %llu", i, k, (unsigned long long)c[k]);
			sink_free(&s);
		}
	run_redactor_free(r);
}

/* Values shorter than RUN_REDACT_MIN are skipped, and say so. */
static void short_needles_skipped(void **state)
{
	(void)state;
	struct run_needle nd[] = {
		{"short", (const unsigned char *)"abcde", 5},
		{"ok", (const unsigned char *)"abcdef", 6},
		{"empty", (const unsigned char *)"", 0},
	};
	struct run_redactor *r = run_redactor_new(nd, 3);
	assert_non_null(r);
	assert_true(run_redactor_skipped(r, 0));
	assert_false(run_redactor_skipped(r, 1));
	assert_true(run_redactor_skipped(r, 2));
	assert_false(run_redactor_skipped(r, 3)); /* no such needle */
	expect(r, "abcde abcdef", "abcde [latch:ok]");
	run_redactor_free(r);

	/* Only short ones: everything passes through. */
	r = run_redactor_new(nd, 1);
	assert_non_null(r);
	expect(r, "abcde \x1b[0m abcdef", "abcde \x1b[0m abcdef");
	run_redactor_free(r);
	r = run_redactor_new(NULL, 0);
	assert_non_null(r);
	expect(r, "anything", "anything");
	run_redactor_free(r);
}

/* What is held back: nothing after text that begins no form (a prompt
 * comes out at once); the start of a value until it is decided; a flush
 * writes it as it is, and the rest of that value, when it comes, is
 * still replaced. */
static void hold_back_and_flush(void **state)
{
	(void)state;
	struct run_redactor *r = one("db", VALUE);
	struct sink s = sink_new();
	struct run_redact_out *o = run_redact_out_new(r, s.fd);
	assert_non_null(o);
	assert_int_equal(run_redact_feed(o, (const unsigned char *)"Password: ", 10), 0);
	assert_int_equal(run_redact_held(o), 0);
	sink_read(&s);
	assert_string_equal(s.data, "Password: ");
	/* "hun" may begin the value: held. */
	assert_int_equal(run_redact_feed(o, (const unsigned char *)"hun", 3), 0);
	assert_int_equal(run_redact_held(o), 3);
	assert_int_equal(run_redact_feed(o, (const unsigned char *)"x", 1), 0);
	assert_int_equal(run_redact_held(o), 0);
	sink_read(&s);
	assert_string_equal(s.data, "Password: hunx");
	/* A value, then nothing: held (something may touch it) until the
	 * flush writes its marker. */
	assert_int_equal(run_redact_feed(o, (const unsigned char *)VALUE, strlen(VALUE)), 0);
	assert_int_equal(run_redact_held(o), strlen(VALUE));
	assert_int_equal(run_redact_flush(o), 0);
	assert_int_equal(run_redact_held(o), 0);
	sink_read(&s);
	assert_string_equal(s.data, "Password: hunx[latch:db]");
	/* Printed slower than the idle flush: the prefix goes out, the
	 * rest of the value is replaced when it completes. */
	assert_int_equal(run_redact_feed(o, (const unsigned char *)" hunter2", 8), 0);
	assert_int_equal(run_redact_held(o), 7);
	assert_int_equal(run_redact_flush(o), 0);
	assert_int_equal(run_redact_feed(o, (const unsigned char *)"-secret\n", 8), 0);
	assert_int_equal(run_redact_flush(o), 0);
	sink_read(&s);
	assert_string_equal(s.data, "Password: hunx[latch:db] hunter2[latch:db]\n");
	assert_int_equal(run_redact_count(o, 0), 2);
	/* The hold never exceeds the longest form less one byte of text. */
	struct match_form *forms;
	size_t n, longest = 0;
	assert_int_equal(match_forms((const unsigned char *)VALUE, strlen(VALUE), RUN_REDACT_MIN, &forms, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (forms[i].bytes->len > longest)
			longest = forms[i].bytes->len;
	match_forms_free(forms, n);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(run_redact_feed(o, (const unsigned char *)"hunter2-secre", 13), 0);
		assert_true(run_redact_held(o) >= 13 && run_redact_held(o) <= longest - 1);
	}
	run_redact_out_free(o);
	sink_free(&s);
	run_redactor_free(r);
}

/* The same value twice, several values, a byte at a time: counts. */
static void counts_per_needle(void **state)
{
	(void)state;
	struct run_needle nd[] = {
		{"a", (const unsigned char *)"alpha-value", 11},
		{"b", (const unsigned char *)"beta-value!", 11},
	};
	struct run_redactor *r = run_redactor_new(nd, 2);
	assert_non_null(r);
	static const char in[] =
		"alpha-value x YWxwaGEtdmFsdWU= x 626574612d76616c756521 x beta-value! x "
		"a\0l\0p\0h\0a\0-\0v\0a\0l\0u\0e\0 x";
	size_t n = sizeof in - 1;
	uint64_t c[2];
	struct sink s = sink_new();
	redact(r, (const unsigned char *)in, n, 1, &s, c, 2);
	assert_string_equal(s.data, "[latch:a] x [latch:a] x [latch:b] x [latch:b] x [latch:a] x");
	assert_int_equal(c[0], 3);
	assert_int_equal(c[1], 2);
	sink_free(&s);
	run_redactor_free(r);
}

/* A failed write is -1 with errno. */
static void write_failure(void **state)
{
	(void)state;
	struct run_redactor *r = one("db", VALUE);
	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[1]);
	struct run_redact_out *o = run_redact_out_new(r, p[1]);
	assert_non_null(o);
	errno = 0;
	assert_int_equal(run_redact_feed(o, (const unsigned char *)"hello\n", 6), -1);
	assert_int_equal(errno, EBADF);
	run_redact_out_free(o);
	close(p[0]);
	run_redactor_free(r);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	latch_error_quiet(true);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(raw_value_and_the_text_around_it),
		cmocka_unit_test(every_encoding),
		cmocka_unit_test(base64_at_each_alignment),
		cmocka_unit_test(across_4096_and_65536),
		cmocka_unit_test(binary_passes_intact),
		cmocka_unit_test(escape_sequences),
		cmocka_unit_test(overlaps_make_one_marker),
		cmocka_unit_test(short_needles_skipped),
		cmocka_unit_test(hold_back_and_flush),
		cmocka_unit_test(counts_per_needle),
		cmocka_unit_test(write_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
