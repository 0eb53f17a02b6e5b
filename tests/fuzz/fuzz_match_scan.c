/* Fuzz target: match_set_scan and match_stream_feed with the prefilter
 * (match/ac.c), against a naive search. fuzz_match_ac covers the
 * automaton with needles of any length; here the needles are mostly long
 * enough for the prefilter (4 bytes and more), drawn from a small
 * alphabet so that they overlap and share prefixes, and the haystack is
 * long enough for the sampling to matter. The input:
 *
 *   byte 0: k = 1 + byte % 64 needles
 *   byte 1: the alphabet: 1 + byte % 8 letters ('a'...), or every byte
 *           value when byte >= 0xc0
 *   byte 2: the shortest needle length: byte % 12
 *   byte 3: how many times the haystack is repeated: 1 + byte % 16
 *   bytes 4-7: a seed for the stream's split points and its stop
 *   k times: a length byte L (the shortest length + L % 40, at least 1),
 *            then L bytes (cut short at the end of the input)
 *   the rest: the haystack; after it, needles are planted at offsets the
 *            seed picks
 *
 * Every byte of needles and haystack goes through the alphabet. The
 * block scan must report exactly what the naive search (memmem at every
 * offset) reports, in order of end offset and longest first at one end;
 * the same set built with LATCH_MATCH_PREFILTER=0 must report the same
 * sequence; streamed in random chunks (some shorter, some longer than
 * the longest needle), it must report the same sequence; a stream
 * stopped by its callback at a random hit and then fed the rest of its
 * chunk and the others must report the same sequence; nothing may leak,
 * normal or secure memory. */
#include "fuzz.h"
#include "secmem.h"

#include "../../match/match.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT (1u << 17)

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_match_scan: %s\n", what);
	abort();
}

#include "hits.h"

static uint64_t rng;
static uint32_t rnd(uint32_t below)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	z ^= z >> 31;
	return below ? (uint32_t)(z % below) : 0;
}

static struct match_set *build(uint8_t *const *pat, const size_t *len, size_t np)
{
	struct match_set *s = match_set_new();
	if (!s)
		fail("match_set_new");
	for (size_t i = 0; i < np; i++)
		if (match_set_add(s, pat[i], len[i], (uint32_t)i) != 0)
			fail("match_set_add");
	if (match_set_build(s) != 0)
		fail("match_set_build");
	return s;
}

/* Streams t[0..n) in random chunks; with stop_at, the callback stops a
 * feed there and the rest of that chunk is fed again. */
static void stream(const struct match_set *s, const uint8_t *t, size_t n, size_t max_len, struct hits *out)
{
	struct match_stream st;
	match_stream_init(&st, s);
	out->n = 0;
	for (size_t i = 0; i < n;) {
		size_t c = rnd(2) ? rnd((uint32_t)max_len + 1) : rnd((uint32_t)(8 * max_len + 2048));
		if (c > n - i)
			c = n - i;
		int rc = match_stream_feed(&st, t + i, c, on_stream_hit, out);
		if (rc == 5) {
			if (st.fed <= i || st.fed > i + c)
				fail("a stopped feed's count of bytes is outside its chunk");
			i = (size_t)st.fed;
			out->stop_at = 0;
			continue;
		}
		if (rc != 0)
			fail("match_stream_feed");
		i += c;
		if (st.fed != i)
			fail("the stream's count of bytes fed is wrong");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hits got, want, other;
	static uint8_t *text;
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("sodium_init");
		latch_error_quiet(true);
		got.h = malloc(MAX_HITS * sizeof *got.h);
		want.h = malloc(MAX_HITS * sizeof *want.h);
		other.h = malloc(MAX_HITS * sizeof *other.h);
		text = malloc(MAX_TEXT);
		if (!got.h || !want.h || !other.h || !text)
			fail("out of memory");
		ready = true;
	}
	if (size < 9)
		return 0;
	long before = secmem_in_use();
	size_t k = 1 + data[0] % 64, letters = data[1] >= 0xc0 ? 0 : 1 + data[1] % 8, shortest = data[2] % 12;
	size_t repeat = 1 + data[3] % 16, at = 8;
	memcpy(&rng, data + 4, 4);
#define LETTER(c) ((uint8_t)(letters ? 'a' + (c) % letters : (c)))
	uint8_t *pat[64];
	size_t len[64], np = 0, max_len = 0;
	while (np < k && at < size) {
		size_t l = shortest + data[at++] % 40;
		if (l == 0)
			l = 1;
		if (l > size - at)
			l = size - at;
		if (l == 0)
			break;
		pat[np] = malloc(l);
		if (!pat[np])
			fail("out of memory");
		for (size_t i = 0; i < l; i++)
			pat[np][i] = LETTER(data[at + i]);
		len[np] = l;
		if (l > max_len)
			max_len = l;
		np++;
		at += l;
	}
	if (np == 0)
		return 0;
	size_t one = size - at, n = 0;
	for (size_t r = 0; r < repeat && n + one <= MAX_TEXT; r++)
		for (size_t i = 0; i < one; i++)
			text[n++] = LETTER(data[at + i]);
	for (size_t plants = n ? rnd(1 + (uint32_t)(n / 64)) : 0; plants > 0; plants--) {
		size_t w = rnd((uint32_t)np);
		if (len[w] <= n)
			memcpy(text + rnd((uint32_t)(n - len[w] + 1)), pat[w], len[w]);
	}
#undef LETTER

	struct match_set *s = build(pat, len, np);
	if (match_set_max_len(s) != max_len)
		fail("match_set_max_len is not the longest needle");

	got.n = want.n = other.n = 0;
	got.stop_at = want.stop_at = other.stop_at = 0;
	if (match_set_scan(s, text, n, on_hit, &got) != 0)
		fail("match_set_scan");
	for (size_t i = 1; i < got.n; i++) {
		if (got.h[i - 1].end > got.h[i].end)
			fail("hits out of order of end offset");
		if (got.h[i - 1].end == got.h[i].end && got.h[i - 1].start > got.h[i].start)
			fail("hits at one end not longest first");
	}

	/* The automaton alone: the same sequence. */
	setenv("LATCH_MATCH_PREFILTER", "0", 1);
	struct match_set *plain = build(pat, len, np);
	unsetenv("LATCH_MATCH_PREFILTER");
	if (match_set_scan(plain, text, n, on_hit, &other) != 0)
		fail("match_set_scan without the prefilter");
	if (!equal(&other, &got))
		fail("the prefiltered scan differs from the automaton's");
	match_set_free(plain);

	/* Streamed, then streamed and stopped at a random hit. */
	stream(s, text, n, max_len, &other);
	if (!equal(&other, &got))
		fail("the streamed hits differ from the one-shot scan's");
	if (got.n) {
		/* The feed stops after the byte that ended hit j: the other hits
		 * that end there are not reported. */
		size_t j = 1 + rnd((uint32_t)got.n), skip = j;
		while (skip < got.n && got.h[skip].end == got.h[j - 1].end)
			skip++;
		want.n = 0;
		for (size_t i = 0; i < got.n; i++)
			if (i < j || i >= skip)
				push(&want, got.h[i].id, got.h[i].start, got.h[i].end);
		other.stop_at = j;
		stream(s, text, n, max_len, &other);
		if (!equal(&other, &want))
			fail("a stream stopped and resumed differs from the one-shot scan");
		want.n = 0;
	}

	for (size_t i = 0; i < np; i++)
		for (const uint8_t *p = text; n && (size_t)(p - text) < n;) {
			const uint8_t *f = memmem(p, n - (size_t)(p - text), pat[i], len[i]);
			if (!f)
				break;
			push(&want, (uint32_t)i, (uint64_t)(f - text), (uint64_t)(f - text) + len[i]);
			p = f + 1;
		}
	qsort(got.h, got.n, sizeof *got.h, by_hit);
	qsort(want.h, want.n, sizeof *want.h, by_hit);
	if (!equal(&got, &want))
		fail("the scan differs from the naive search");
	match_set_free(s);
	for (size_t i = 0; i < np; i++)
		free(pat[i]);
	secmem_check(before, "match_set_free");
	return 0;
}
