/* Fuzz target: the Aho-Corasick pattern set (match/ac.c). The input is
 * the patterns, then the text:
 *
 *   byte 0: k = 1 + byte % 32 patterns
 *   k times: a length byte L (1 + L % 48), then L bytes (cut short at the
 *            end of the input)
 *   the rest: the text
 *
 * The scan must find exactly what a naive search (memmem at every
 * offset) finds, as a set of (id, start, end), in order of end offset;
 * feeding the text one byte at a time and in chunks whose sizes come
 * from the text must give the same hits in the same order; nothing may
 * leak, normal or secure memory. */
#include "fuzz.h"
#include "secmem.h"

#include "../../match/match.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_match_ac: %s\n", what);
	abort();
}

#include "hits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hits got, want, streamed;
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("sodium_init");
		latch_error_quiet(true);
		got.h = malloc(MAX_HITS * sizeof *got.h);
		want.h = malloc(MAX_HITS * sizeof *want.h);
		streamed.h = malloc(MAX_HITS * sizeof *streamed.h);
		if (!got.h || !want.h || !streamed.h)
			fail("out of memory");
		ready = true;
	}
	if (size < 2)
		return 0;
	long before = secmem_in_use();
	size_t k = 1 + data[0] % 32, at = 1;
	const uint8_t *pat[32];
	size_t len[32], np = 0;
	struct match_set *s = match_set_new();
	if (!s)
		fail("match_set_new");
	while (np < k && at < size) {
		size_t l = 1 + data[at++] % 48;
		if (l > size - at)
			l = size - at;
		if (l == 0)
			break;
		pat[np] = data + at;
		len[np] = l;
		if (match_set_add(s, pat[np], l, (uint32_t)np) != 0)
			fail("match_set_add");
		np++;
		at += l;
	}
	if (match_set_build(s) != 0)
		fail("match_set_build");
	const uint8_t *t = data + at;
	size_t n = size - at;

	got.n = want.n = streamed.n = 0;
	if (match_set_scan(s, t, n, on_hit, &got) != 0)
		fail("match_set_scan");
	for (size_t i = 1; i < got.n; i++)
		if (got.h[i - 1].end > got.h[i].end)
			fail("hits out of order of end offset");
	for (size_t i = 0; i < np; i++)
		for (const uint8_t *p = t; n && (size_t)(p - t) < n;) {
			const uint8_t *f = memmem(p, n - (size_t)(p - t), pat[i], len[i]);
			if (!f)
				break;
			push(&want, (uint32_t)i, (uint64_t)(f - t), (uint64_t)(f - t) + len[i]);
			p = f + 1;
		}

	/* Streamed, one byte at a time and in chunks of the text's sizes. */
	for (int mode = 0; mode < 2; mode++) {
		struct match_stream st;
		match_stream_init(&st, s);
		streamed.n = 0;
		for (size_t i = 0; i < n;) {
			size_t c = mode == 0 ? 1 : 1 + t[i] % 17;
			if (c > n - i)
				c = n - i;
			if (match_stream_feed(&st, t + i, c, on_stream_hit, &streamed) != 0)
				fail("match_stream_feed");
			i += c;
			if (st.fed != i)
				fail("the stream's count of bytes fed is wrong");
		}
		if (!equal(&streamed, &got))
			fail("the streamed hits differ from the one-shot scan's");
	}

	qsort(got.h, got.n, sizeof *got.h, by_hit);
	qsort(want.h, want.n, sizeof *want.h, by_hit);
	if (!equal(&got, &want))
		fail("the scan differs from the naive search");
	match_set_free(s);
	secmem_check(before, "match_set_free");
	return 0;
}
