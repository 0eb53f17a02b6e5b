/* Unit tests: the encodings of a value (match/encode.c). The vectors were
 * computed with Python's own encoders (base64, binascii hex,
 * urllib.parse.quote_plus and quote, json.dumps with and without
 * ensure_ascii, PyYAML 6.0's libyaml and pure-Python dumpers, the
 * utf-16-le codec) and pasted here; the base64 cores by encoding the value
 * between zero bytes and between 0xff bytes and keeping the characters
 * that agree and carry no prefix or suffix bits. The random checks use
 * libsodium's base64 on whole blobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../match/match.h"

struct vec {
	enum match_encoding enc;
	unsigned align;
	const char *bytes;
	size_t len;
};

static const struct vec v_abc[] = {
	{MATCH_RAW, 0, "abc", 3},    {MATCH_BASE64, 0, "YWJj", 4},      {MATCH_BASE64, 1, "FiY", 3},
	{MATCH_BASE64, 2, "hYm", 3}, {MATCH_HEX_LOWER, 0, "616263", 6}, {MATCH_UTF16LE, 0, "a\000b\000c\000", 6},
};
static const struct vec v_mixed[] = {
	{MATCH_RAW, 0, "p@ss w\"o'r\\d$`<&>\012\011\001\303\251\342\202\254\360\237\230\200/~", 31},
	{MATCH_BASE64, 0, "cEBzcyB3Im8nclxkJGA8Jj4KCQHDqeKCrPCfmIAvf", 41},
	{MATCH_BASE64, 0, "cEBzcyB3Im8nclxkJGA8Jj4KCQHDqeKCrPCfmIAvfg", 42},
	{MATCH_BASE64, 0, "cEBzcyB3Im8nclxkJGA8Jj4KCQHDqeKCrPCfmIAvfg==", 44},
	{MATCH_BASE64, 1, "BAc3MgdyJvJ3JcZCRgPCY+CgkBw6nigqzwn5iAL3", 40},
	{MATCH_BASE64, 2, "wQHNzIHcibydyXGQkYDwmPgoJAcOp4oKs8J+YgC9+", 41},
	{MATCH_BASE64URL, 1, "BAc3MgdyJvJ3JcZCRgPCY-CgkBw6nigqzwn5iAL3", 40},
	{MATCH_BASE64URL, 2, "wQHNzIHcibydyXGQkYDwmPgoJAcOp4oKs8J-YgC9-", 41},
	{MATCH_HEX_LOWER, 0, "704073732077226f27725c6424603c263e0a0901c3a9e282acf09f98802f7e", 62},
	{MATCH_HEX_UPPER, 0, "704073732077226F27725C6424603C263E0A0901C3A9E282ACF09F98802F7E", 62},
	{MATCH_PERCENT_LOWER, 0, "p%40ss+w%22o%27r%5cd%24%60%3c%26%3e%0a%09%01%c3%a9%e2%82%ac%f0%9f%98%80%2f~", 75},
	{MATCH_PERCENT_LOWER, 0, "p%40ss%20w%22o%27r%5cd%24%60%3c%26%3e%0a%09%01%c3%a9%e2%82%ac%f0%9f%98%80%2f~", 77},
	{MATCH_PERCENT_UPPER, 0, "p%40ss+w%22o%27r%5Cd%24%60%3C%26%3E%0A%09%01%C3%A9%E2%82%AC%F0%9F%98%80%2F~", 75},
	{MATCH_PERCENT_UPPER, 0, "p%40ss%20w%22o%27r%5Cd%24%60%3C%26%3E%0A%09%01%C3%A9%E2%82%AC%F0%9F%98%80%2F~", 77},
	{MATCH_JSON, 0, "p@ss w\\\"o'r\\\\d$`<&>\\n\\t\\u0001\303\251\342\202\254\360\237\230\200/~", 40},
	{MATCH_JSON, 0, "p@ss w\\\"o'r\\\\d$`<&>\\n\\t\\u0001\\u00e9\\u20ac\\ud83d\\ude00/~", 55},
	{MATCH_JSON, 0, "p@ss w\\\"o'r\\\\d$`\\u003c\\u0026\\u003e\\n\\t\\u0001\303\251\342\202\254\360\237\230\200/~",
	 55},
	{MATCH_SHELL_SINGLE, 0, "p@ss w\"o'\\''r\\d$`<&>\012\011\001\303\251\342\202\254\360\237\230\200/~", 34},
	{MATCH_SHELL_DOUBLE, 0, "p@ss w\\\"o'r\\\\d\\$\\`<&>\012\011\001\303\251\342\202\254\360\237\230\200/~", 35},
	{MATCH_YAML_SINGLE, 0, "p@ss w\"o''r\\d$`<&>\012\011\001\303\251\342\202\254\360\237\230\200/~", 32},
	{MATCH_YAML_DOUBLE, 0, "p@ss w\\\"o'r\\\\d$`<&>\\n\\t\\x01\303\251\342\202\254\\U0001F600/~", 44},
	{MATCH_YAML_DOUBLE, 0, "p@ss w\\\"o'r\\\\d$`<&>\\n\\t\\x01\\xE9\\u20AC\\U0001F600/~", 49},
	{MATCH_UTF16LE, 0,
	 "p\000@\000s\000s\000 \000w\000\"\000o\000'\000r\000\\\000d\000$\000`\000<\000&\000>\000\012\000\011\000\001\000\351\000\254 =\330\000\336/\000~\000",
	 52},
};
static const struct vec v_yaml[] = {
	{MATCH_RAW, 0, "k\033\177\302\205\302\240\342\200\250\342\200\251\357\273\277\000z", 18},
	{MATCH_BASE64, 0, "axt/woXCoOKAqOKAqe+7vwB6", 24},
	{MATCH_BASE64, 1, "sbf8KFwqDigKjigKnvu78Ae", 23},
	{MATCH_BASE64, 2, "rG3/ChcKg4oCo4oCp77u/AH", 23},
	{MATCH_BASE64URL, 0, "axt_woXCoOKAqOKAqe-7vwB6", 24},
	{MATCH_BASE64URL, 2, "rG3_ChcKg4oCo4oCp77u_AH", 23},
	{MATCH_HEX_LOWER, 0, "6b1b7fc285c2a0e280a8e280a9efbbbf007a", 36},
	{MATCH_HEX_UPPER, 0, "6B1B7FC285C2A0E280A8E280A9EFBBBF007A", 36},
	{MATCH_PERCENT_LOWER, 0, "k%1b%7f%c2%85%c2%a0%e2%80%a8%e2%80%a9%ef%bb%bf%00z", 50},
	{MATCH_PERCENT_UPPER, 0, "k%1B%7F%C2%85%C2%A0%E2%80%A8%E2%80%A9%EF%BB%BF%00z", 50},
	{MATCH_JSON, 0, "k\\u001b\177\302\205\302\240\342\200\250\342\200\251\357\273\277\\u0000z", 28},
	{MATCH_JSON, 0, "k\\u001b\\u007f\\u0085\\u00a0\\u2028\\u2029\\ufeff\\u0000z", 50},
	{MATCH_JSON, 0, "k\\u001b\177\302\205\302\240\\u2028\\u2029\357\273\277\\u0000z", 34},
	{MATCH_YAML_DOUBLE, 0, "k\\e\\x7F\\N\302\240\\L\\P\\uFEFF\\0z", 24},
	{MATCH_YAML_DOUBLE, 0, "k\\e\\x7F\\N\\_\\L\\P\\uFEFF\\0z", 24},
	{MATCH_UTF16LE, 0, "k\000\033\000\177\000\205\000\240\000( ) \377\376\000\000z\000", 20},
};
static const struct vec v_min[] = {
	{MATCH_RAW, 0, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5", 28},
	{MATCH_BASE64, 0, "Wm05dlltRnlZbUY2Y1hWNE1USXpORFUyTnpnN", 37},
	{MATCH_BASE64, 0, "Wm05dlltRnlZbUY2Y1hWNE1USXpORFUyTnpnNQ", 38},
	{MATCH_BASE64, 0, "Wm05dlltRnlZbUY2Y1hWNE1USXpORFUyTnpnNQ==", 40},
	{MATCH_BASE64, 1, "ptOXZZbUZ5WW1GNmNYVjRNVEl6TkRVMk56Zz", 36},
	{MATCH_BASE64, 2, "abTl2WW1GeVltRjZjWFY0TVRJek5EVTJOemc1", 37},
	{MATCH_HEX_LOWER, 0, "5a6d3976596d4679596d4636635856344d54497a4e4455324e7a6735", 56},
	{MATCH_HEX_UPPER, 0, "5A6D3976596D4679596D4636635856344D54497A4E4455324E7A6735", 56},
	{MATCH_UTF16LE, 0,
	 "Z\000m\0009\000v\000Y\000m\000F\000y\000Y\000m\000F\0006\000c\000X\000V\0004\000M\000T\000I\000z\000N\000D\000U\0002\000N\000z\000g\0005\000",
	 56},
};

/* A value whose bytes are not UTF-8: no \u variant, no utf16le; the
 * bytes as they are where an encoder would pass them through. */
static const struct vec v_binary[] = {
	{MATCH_RAW, 0, "\377\376AB\000C", 6},
	{MATCH_BASE64, 0, "//5BQgBD", 8},
	{MATCH_BASE64, 1, "/+QUIAQ", 7},
	{MATCH_BASE64, 2, "//kFCAE", 7},
	{MATCH_BASE64URL, 0, "__5BQgBD", 8},
	{MATCH_BASE64URL, 1, "_-QUIAQ", 7},
	{MATCH_BASE64URL, 2, "__kFCAE", 7},
	{MATCH_HEX_LOWER, 0, "fffe41420043", 12},
	{MATCH_HEX_UPPER, 0, "FFFE41420043", 12},
	{MATCH_PERCENT_LOWER, 0, "%ff%feAB%00C", 12},
	{MATCH_PERCENT_UPPER, 0, "%FF%FEAB%00C", 12},
	{MATCH_JSON, 0, "\377\376AB\\u0000C", 11},
	{MATCH_YAML_DOUBLE, 0, "\377\376AB\\0C", 7},
};

/* A deterministic generator, so that a failure can be replayed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}
static size_t rnd_between(size_t lo, size_t hi)
{
	return lo + (size_t)(rnd() % (hi - lo + 1));
}
static void rnd_bytes(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)rnd();
}

static void forms_of(const unsigned char *v, size_t n, size_t min_len, struct match_form **f, size_t *count)
{
	assert_int_equal(match_forms(v, n, min_len, f, count), 0);
	assert_true(*count <= MATCH_FORMS_MAX);
	assert_true((*count == 0) == (*f == NULL));
}

static void expect(const char *what, const unsigned char *v, size_t n, size_t min_len, const struct vec *want,
		   size_t n_want)
{
	struct match_form *f;
	size_t count;
	forms_of(v, n, min_len, &f, &count);
	for (size_t i = 0; i < n_want || i < count; i++) {
		if (i >= count)
			fail_msg("%s: form %zu (%s, align %u) is missing", what, i, match_encoding_name(want[i].enc),
				 want[i].align);
		if (i >= n_want)
			fail_msg("%s: an extra form %zu (%s, align %u)", what, i, match_encoding_name(f[i].enc),
				 f[i].align);
		if (f[i].enc != want[i].enc || f[i].align != want[i].align || f[i].bytes->len != want[i].len ||
		    memcmp(f[i].bytes->data, want[i].bytes, want[i].len) != 0)
			fail_msg("%s: form %zu is %s align %u (%zu bytes), expected %s align %u (%zu bytes)", what, i,
				 match_encoding_name(f[i].enc), f[i].align, f[i].bytes->len,
				 match_encoding_name(want[i].enc), want[i].align, want[i].len);
	}
	match_forms_free(f, count);
}

#define EXPECT(v, n, min, vec) expect(#vec, (const unsigned char *)(v), (n), (min), vec, sizeof vec / sizeof vec[0])

static void vectors(void **state)
{
	(void)state;
	EXPECT("abc", 3, 0, v_abc);
	static const char mixed[] = "p@ss w\"o'r\\d$`<&>\n\t\001\303\251\342\202\254\360\237\230\200/~";
	EXPECT(mixed, sizeof mixed - 1, 0, v_mixed);
	static const char yaml[] = "k\033\177\302\205\302\240\342\200\250\342\200\251\357\273\277\000z";
	EXPECT(yaml, sizeof yaml - 1, 0, v_yaml);
	EXPECT("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5", 28, 20, v_min);
	EXPECT("\377\376AB\000C", 6, 0, v_binary);
}

static void names(void **state)
{
	(void)state;
	static const char *const want[MATCH_N_ENCODINGS] = {
		"raw",  "base64",       "base64url",    "hex",         "HEX",         "percent", "PERCENT",
		"json", "shell-single", "shell-double", "yaml-single", "yaml-double", "utf16le",
	};
	for (int e = 0; e < MATCH_N_ENCODINGS; e++)
		assert_string_equal(match_encoding_name((enum match_encoding)e), want[e]);
	assert_string_equal(match_encoding_name(MATCH_N_ENCODINGS), "unknown");
	assert_string_equal(match_encoding_name((enum match_encoding) - 1), "unknown");
}

static bool contains(const char *hay, size_t n, const struct secbuf *needle)
{
	return memmem(hay, n, needle->data, needle->len) != NULL;
}

/* Only characters of one alphabet (no padding). */
static bool of_alphabet(const struct secbuf *b, bool url)
{
	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = b->data[i];
		if (c == '=' || c == (url ? '+' : '-') || c == (url ? '/' : '_'))
			return false;
	}
	return true;
}

/* For 200 random values inside random blobs: the form for the value's
 * alignment (the shortest base64 form of that alignment written in the
 * blob's alphabet: where the two alphabets agree, the base64url one was
 * dropped as a duplicate) occurs in the blob's encoding, in both
 * alphabets, and is as long as the value's bits allow. The value alone,
 * padded, is a form too. */
static void base64_alignment(void **state)
{
	(void)state;
	for (int round = 0; round < 200; round++) {
		unsigned char blob[10 + 64 + 10];
		size_t n = rnd_between(12, 64), pre = rnd_between(0, 10), post = rnd_between(0, 10);
		rnd_bytes(blob, pre + n + post);
		const unsigned char *v = blob + pre;
		struct match_form *f;
		size_t count;
		forms_of(v, n, 0, &f, &count);
		unsigned align = (unsigned)(pre % 3);
		size_t want_len = (8 * align + 8 * n) / 6 - (8 * align + 5) / 6;
		for (int url = 0; url < 2; url++) {
			int var = url ? sodium_base64_VARIANT_URLSAFE : sodium_base64_VARIANT_ORIGINAL;
			char enc[sodium_base64_ENCODED_LEN(sizeof blob, sodium_base64_VARIANT_ORIGINAL)];
			sodium_bin2base64(enc, sizeof enc, blob, pre + n + post, var);
			const struct secbuf *core = NULL;
			for (size_t i = 0; i < count; i++)
				if ((f[i].enc == MATCH_BASE64 || f[i].enc == MATCH_BASE64URL) && f[i].align == align &&
				    of_alphabet(f[i].bytes, url) && (!core || f[i].bytes->len < core->len))
					core = f[i].bytes;
			if (!core)
				fail_msg("round %d: no %s form at align %u", round, url ? "base64url" : "base64",
					 align);
			assert_int_equal(core->len, want_len);
			if (!contains(enc, strlen(enc), core))
				fail_msg("round %d: the %s form at align %u is not in the blob's encoding", round,
					 url ? "base64url" : "base64", align);
			/* The value alone, padded. */
			sodium_bin2base64(enc, sizeof enc, v, n, var);
			bool found = false;
			for (size_t i = 0; i < count; i++)
				found |= f[i].bytes->len == strlen(enc) && !memcmp(f[i].bytes->data, enc, strlen(enc));
			if (!found)
				fail_msg("round %d: the value's whole encoding is not a form", round);
		}
		match_forms_free(f, count);
	}
}

/* Distinct, ordered, bounded; min_len drops exactly the shorter ones. */
static void dedupe_order_min_len(void **state)
{
	(void)state;
	static const char alphabet[] = "ab Z9'\"\\$`<>&/+=%\n\t\001\177\303\251\342\202\254";
	for (int round = 0; round < 300; round++) {
		unsigned char v[80];
		size_t n = rnd_between(1, sizeof v);
		for (size_t i = 0; i < n; i++)
			v[i] = round % 2 ? (unsigned char)rnd()
					 : (unsigned char)alphabet[rnd() % (sizeof alphabet - 1)];
		struct match_form *all, *some;
		size_t n_all, n_some, min_len = rnd_between(0, 3 * n);
		forms_of(v, n, 0, &all, &n_all);
		forms_of(v, n, min_len, &some, &n_some);
		assert_true(n_all >= 1 && n_all <= 26);
		assert_int_equal(all[0].enc, MATCH_RAW);
		size_t k = 0;
		for (size_t i = 0; i < n_all; i++) {
			assert_true(all[i].bytes->len >= 1 && all[i].bytes->len <= 6 * n + 4);
			if (i > 0)
				assert_true(all[i - 1].enc < all[i].enc ||
					    (all[i - 1].enc == all[i].enc && all[i - 1].align <= all[i].align));
			assert_true(all[i].align == 0 || all[i].enc == MATCH_BASE64 || all[i].enc == MATCH_BASE64URL);
			assert_true(all[i].align <= 2);
			for (size_t j = 0; j < i; j++)
				assert_false(all[i].bytes->len == all[j].bytes->len &&
					     !memcmp(all[i].bytes->data, all[j].bytes->data, all[i].bytes->len));
			if (all[i].bytes->len < min_len)
				continue;
			assert_true(k < n_some);
			assert_int_equal(some[k].enc, all[i].enc);
			assert_int_equal(some[k].align, all[i].align);
			assert_memory_equal(some[k].bytes->data, all[i].bytes->data, all[i].bytes->len);
			k++;
		}
		assert_int_equal(k, n_some);
		match_forms_free(all, n_all);
		match_forms_free(some, n_some);
	}
}

/* UTF-16LE: code points, surrogate pairs; none for a value that is not
 * strict UTF-8 (overlong, surrogate, cut short, above U+10FFFF). */
static void utf16(void **state)
{
	(void)state;
	static const struct {
		const char *v, *want;
		size_t want_len;
	} ok[] = {
		{"A\303\251\342\202\254\360\220\200\200", "A\000\351\000\254\040\000\330\000\334", 10},
		{"\364\217\277\277x", "\377\333\377\337x\000", 6},
		{"\000", "\000\000", 2},
	};
	for (size_t t = 0; t < sizeof ok / sizeof ok[0]; t++) {
		size_t n = t == 2 ? 1 : strlen(ok[t].v);
		struct match_form *f;
		size_t count;
		forms_of((const unsigned char *)ok[t].v, n, 0, &f, &count);
		assert_int_equal(f[count - 1].enc, MATCH_UTF16LE);
		assert_int_equal(f[count - 1].bytes->len, ok[t].want_len);
		assert_memory_equal(f[count - 1].bytes->data, ok[t].want, ok[t].want_len);
		match_forms_free(f, count);
	}
	static const char *const bad[] = {"\300\201",         "\355\240\200", "abc\342\202",
					  "\364\220\200\200", "\200",         "\370\210\200\200\200"};
	for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
		struct match_form *f;
		size_t count;
		forms_of((const unsigned char *)bad[t], strlen(bad[t]), 0, &f, &count);
		for (size_t i = 0; i < count; i++)
			assert_int_not_equal(f[i].enc, MATCH_UTF16LE);
		match_forms_free(f, count);
	}
}

/* Empty, too short for everything, a 1 MiB value, and past the limit. */
static void edges(void **state)
{
	(void)state;
	struct match_form *f = (struct match_form *)1;
	size_t count = 7;
	assert_int_equal(match_forms((const unsigned char *)"", 0, 0, &f, &count), 0);
	assert_null(f);
	assert_int_equal(count, 0);
	forms_of((const unsigned char *)"abc", 3, 100, &f, &count);
	assert_int_equal(count, 0);
	match_forms_free(NULL, 0);

	size_t n = 1024 * 1024;
	unsigned char *big = malloc(n);
	assert_non_null(big);
	rnd_bytes(big, n);
	forms_of(big, n, 16, &f, &count);
	assert_true(count >= 13);
	for (size_t i = 0; i < count; i++)
		assert_true(f[i].bytes->len <= 6 * n);
	match_forms_free(f, count);
	free(big);

	latch_error_quiet(true);
	unsigned char one = 'x';
	assert_int_equal(match_forms(&one, (size_t)64 * 1024 * 1024 + 1, 0, &f, &count), -1);
	latch_error_quiet(false);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	assert_null(f);
}

/* Base64 of a value inside a blob, wrapped at 64 and 76 columns with \n
 * and \r\n (and indented, as in a YAML block scalar): the joined view
 * holds the value's form for its alignment, and its offsets map back to
 * the bytes of the input it came from. */
static void unwrap_wrapped(void **state)
{
	(void)state;
	static const size_t widths[] = {64, 76};
	static const char *const breaks[] = {"\n", "\r\n"};
	static const char *const indents[] = {"", "    "};
	for (int round = 0; round < 48; round++) {
		size_t width = widths[round % 2];
		const char *br = breaks[round / 2 % 2], *indent = indents[round / 4 % 2];
		unsigned char blob[200];
		size_t pre = rnd_between(0, 60), n = 60;
		rnd_bytes(blob, sizeof blob);
		char enc[sodium_base64_ENCODED_LEN(sizeof blob, sodium_base64_VARIANT_ORIGINAL)];
		sodium_bin2base64(enc, sizeof enc, blob, sizeof blob, sodium_base64_VARIANT_ORIGINAL);
		/* The file: a key line, the wrapped blob, a trailing line. */
		char file[1024] = "key: |";
		strcat(file, br);
		for (size_t at = 0; at < strlen(enc); at += width) {
			strcat(file, indent);
			strncat(file, enc + at, width);
			strcat(file, br);
		}
		strcat(file, "end");
		strcat(file, br);
		size_t fn = strlen(file);

		struct match_form *f;
		size_t count;
		forms_of(blob + pre, n, 0, &f, &count);
		const struct secbuf *core = NULL;
		for (size_t i = 0; i < count; i++)
			if (f[i].enc == MATCH_BASE64 && f[i].align == pre % 3 && (!core || f[i].bytes->len < core->len))
				core = f[i].bytes;
		assert_non_null(core);
		/* 60 bytes are 80 characters: longer than a line, so split. */
		assert_false(contains(file, fn, core));

		struct match_unwrapped u;
		assert_int_equal(match_unwrap_base64((const unsigned char *)file, fn, &u), 0);
		assert_true(u.n_cuts >= 2);
		const unsigned char *hit = memmem(u.text, u.len, core->data, core->len);
		if (!hit)
			fail_msg("round %d: the form is not in the joined text", round);
		size_t start = (size_t)(hit - u.text), end = start + core->len;
		size_t in_start = match_unwrapped_offset(&u, start), in_end = match_unwrapped_offset(&u, end - 1) + 1;
		assert_true(in_end <= fn);
		assert_int_equal(file[in_start], core->data[0]);
		assert_int_equal(file[in_end - 1], core->data[core->len - 1]);
		/* The input's span, its breaks and blanks taken out, is the form. */
		char joined[256];
		size_t k = 0;
		for (size_t i = in_start; i < in_end; i++)
			if (file[i] != '\n' && file[i] != '\r' && file[i] != ' ')
				joined[k++] = file[i];
		assert_int_equal(k, core->len);
		assert_memory_equal(joined, core->data, k);
		/* The lines around the blob are untouched. */
		assert_memory_equal(u.text, "key: |", 6);
		assert_true(u.len >= 3 + strlen(br) && !memcmp(u.text + u.len - 3 - strlen(br), "end", 3));
		assert_int_equal(match_unwrapped_offset(&u, u.len), fn);
		assert_int_equal(match_unwrapped_offset(&u, 0), 0);
		match_unwrapped_free(&u);
		assert_null(u.text);
		match_forms_free(f, count);
	}
}

/* What is not joined: short lines, prose and code, a line that ends in
 * '=', trailing blanks, a break followed by anything but base64. Joined:
 * the last short line of a blob, with its padding. */
static void unwrap_cases(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out; /* out NULL: nothing removed */
	} cases[] = {
		{"abcdefghijklmno\nabcdefghijklmnop\n", NULL}, /* 15 characters before the break */
		{"abcdefghijklmnop\nqr\n", "abcdefghijklmnopqr\n"},
		{"abcdefghijklmnop\r\nqr==\r\nst\r\n", "abcdefghijklmnopqr==\r\nst\r\n"},
		{"abcdefghijklmno=\nabcdefghijklmnop\n", NULL},
		{"abcdefghijklmnop \nabcdefghijklmnop\n", NULL},
		{"abcdefghijklmnop\nab cd\n", NULL},
		{"abcdefghijklmnop\n\nabcdefghijklmnop\n", NULL},
		{"the quick brown fox jumps\nover the lazy dog\n", NULL},
		{"int main(void) { return 0; }\nint x;\n", NULL},
		{"  aGVsbG8gd29ybGQgaGVsbG8g\n  d29y-_bGQ=\n", "  aGVsbG8gd29ybGQgaGVsbG8gd29y-_bGQ=\n"},
		{"\taGVsbG8gd29ybGQgaGVsbG8g\n\t\taGVsbG8gd29ybGQgaGVsbG8g\nx",
		 "\taGVsbG8gd29ybGQgaGVsbG8gaGVsbG8gd29ybGQgaGVsbG8gx"},
		{"abcdefghijklmnop\nabc===\n", NULL},
		{"abcdefghijklmnop\n", NULL},
		{"", NULL},
		{"abcdefghijklmnop\nq", "abcdefghijklmnopq"},
	};
	for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
		struct match_unwrapped u;
		int rc = match_unwrap_base64((const unsigned char *)cases[t].in, strlen(cases[t].in), &u);
		if (!cases[t].out) {
			if (rc != 1)
				fail_msg("case %zu: something was removed", t);
			assert_null(u.text);
			assert_int_equal(u.n_cuts, 0);
			continue;
		}
		if (rc != 0)
			fail_msg("case %zu: nothing was removed", t);
		assert_int_equal(u.len, strlen(cases[t].out));
		assert_memory_equal(u.text, cases[t].out, u.len);
		match_unwrapped_free(&u);
	}
	/* Offsets: a cut of 1 ("\n") and one of 3 ("\n\t\t"). */
	const char *in = "\taGVsbG8gd29ybGQgaGVsbG8g\n\taGVsbG8gd29ybGQgaGVsbG8g\n\t\tQUJD\n";
	struct match_unwrapped u;
	assert_int_equal(match_unwrap_base64((const unsigned char *)in, strlen(in), &u), 0);
	assert_int_equal(u.n_cuts, 2);
	assert_int_equal(u.cut_at[0], 25);
	assert_int_equal(u.cut_len[0], 2);
	assert_int_equal(u.cut_at[1], 49);
	assert_int_equal(u.cut_len[1], 3);
	assert_int_equal(match_unwrapped_offset(&u, 24), 24);
	assert_int_equal(match_unwrapped_offset(&u, 25), 27);
	assert_int_equal(match_unwrapped_offset(&u, 49), 54);
	assert_int_equal(match_unwrapped_offset(&u, 52), 57);
	for (size_t i = 0; i < u.len; i++)
		assert_int_equal(in[match_unwrapped_offset(&u, i)], u.text[i]);
	match_unwrapped_free(&u);
	match_unwrapped_free(NULL);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vectors),
		cmocka_unit_test(names),
		cmocka_unit_test(base64_alignment),
		cmocka_unit_test(dedupe_order_min_len),
		cmocka_unit_test(utf16),
		cmocka_unit_test(edges),
		cmocka_unit_test(unwrap_wrapped),
		cmocka_unit_test(unwrap_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
