/* Unit tests: the Aho-Corasick pattern set (match/ac.c), against a naive
 * search (memmem at every offset) on hand-made and random cases, one-shot
 * and streamed in every split; and its prefilter (every pattern 4 bytes
 * or more), against the same and against the automaton alone
 * (LATCH_MATCH_PREFILTER=0). */
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

static uint64_t rng_state = 0x243f6a8885a308d3u;
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

struct hit {
	uint32_t id;
	uint64_t start, end;
};
struct hits {
	struct hit *h;
	size_t n, cap;
	size_t stop_after; /* return 7 from the callback at this hit (0: never) */
};

static int push(struct hits *hs, uint32_t id, uint64_t start, uint64_t end)
{
	if (hs->n == hs->cap) {
		hs->cap = hs->cap ? 2 * hs->cap : 1024;
		hs->h = realloc(hs->h, hs->cap * sizeof *hs->h);
		assert_non_null(hs->h);
	}
	hs->h[hs->n++] = (struct hit){id, start, end};
	return hs->stop_after && hs->n == hs->stop_after ? 7 : 0;
}
static int on_hit(uint32_t id, size_t start, size_t end, void *ctx)
{
	return push(ctx, id, start, end);
}
static int on_stream_hit(uint32_t id, uint64_t start, uint64_t end, void *ctx)
{
	return push(ctx, id, start, end);
}

static int by_hit(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

struct pats {
	unsigned char **p;
	size_t *len;
	size_t n;
};

static struct match_set *build(const struct pats *ps)
{
	struct match_set *s = match_set_new();
	assert_non_null(s);
	for (size_t i = 0; i < ps->n; i++)
		assert_int_equal(match_set_add(s, ps->p[i], ps->len[i], (uint32_t)i), 0);
	assert_int_equal(match_set_build(s), 0);
	return s;
}

/* Every occurrence of every pattern, overlapping ones too. */
static void naive(const struct pats *ps, const unsigned char *t, size_t n, struct hits *out)
{
	for (size_t i = 0; i < ps->n; i++) {
		const unsigned char *at = t;
		while ((size_t)(at - t) < n) {
			const unsigned char *f = memmem(at, n - (size_t)(at - t), ps->p[i], ps->len[i]);
			if (!f)
				break;
			push(out, (uint32_t)i, (uint64_t)(f - t), (uint64_t)(f - t) + ps->len[i]);
			at = f + 1;
		}
	}
}

/* The scan equals the naive search as a set, and comes in order of end
 * offset, longest first at one end. Returns the scan's hits. */
static struct hits check_scan(const struct match_set *s, const struct pats *ps, const unsigned char *t, size_t n)
{
	struct hits got = {0}, want = {0};
	assert_int_equal(match_set_scan(s, t, n, on_hit, &got), 0);
	for (size_t i = 1; i < got.n; i++) {
		assert_true(got.h[i - 1].end <= got.h[i].end);
		if (got.h[i - 1].end == got.h[i].end)
			assert_true(got.h[i - 1].start <= got.h[i].start);
	}
	naive(ps, t, n, &want);
	struct hits sorted = {0};
	for (size_t i = 0; i < got.n; i++)
		push(&sorted, got.h[i].id, got.h[i].start, got.h[i].end);
	if (sorted.n)
		qsort(sorted.h, sorted.n, sizeof *sorted.h, by_hit);
	if (want.n)
		qsort(want.h, want.n, sizeof *want.h, by_hit);
	if (sorted.n != want.n)
		fail_msg("the scan found %zu occurrences, the naive search %zu", sorted.n, want.n);
	for (size_t i = 0; i < want.n; i++)
		if (by_hit(&sorted.h[i], &want.h[i]) != 0)
			fail_msg("occurrence %zu differs: id %u [%llu, %llu) against id %u [%llu, %llu)", i,
				 sorted.h[i].id, (unsigned long long)sorted.h[i].start,
				 (unsigned long long)sorted.h[i].end, want.h[i].id, (unsigned long long)want.h[i].start,
				 (unsigned long long)want.h[i].end);
	free(sorted.h);
	free(want.h);
	return got;
}

/* Streaming in the given chunk sizes (cycled) gives the one-shot hits, in
 * the same order. */
static void check_stream(const struct match_set *s, const unsigned char *t, size_t n, const struct hits *once,
			 size_t fixed)
{
	struct match_stream st;
	struct hits got = {0};
	match_stream_init(&st, s);
	for (size_t at = 0; at < n;) {
		size_t k = fixed ? fixed : rnd_between(0, 97);
		if (k > n - at)
			k = n - at;
		assert_int_equal(match_stream_feed(&st, t + at, k, on_stream_hit, &got), 0);
		at += k;
		assert_int_equal(st.fed, at);
	}
	assert_int_equal(got.n, once->n);
	for (size_t i = 0; i < got.n; i++)
		assert_int_equal(by_hit(&got.h[i], &once->h[i]), 0);
	free(got.h);
}

static struct pats pats_of(const char *const *list, size_t n)
{
	struct pats ps = {calloc(n, sizeof *ps.p), calloc(n, sizeof *ps.len), n};
	assert_non_null(ps.p);
	for (size_t i = 0; i < n; i++) {
		ps.len[i] = strlen(list[i]);
		ps.p[i] = (unsigned char *)strdup(list[i]);
	}
	return ps;
}
static void pats_free(struct pats *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->p[i]);
	free(ps->p);
	free(ps->len);
}

/* The textbook case, and the exact hits in order. */
static void overlapping(void **state)
{
	(void)state;
	static const char *const list[] = {"he", "she", "his", "hers"};
	struct pats ps = pats_of(list, 4);
	struct match_set *s = build(&ps);
	const unsigned char *t = (const unsigned char *)"ushers shishe";
	struct hits got = check_scan(s, &ps, t, strlen((const char *)t));
	static const struct hit want[] = {{1, 1, 4}, {0, 2, 4}, {3, 2, 6}, {2, 8, 11}, {1, 10, 13}, {0, 11, 13}};
	assert_int_equal(got.n, 6);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(by_hit(&got.h[i], &want[i]), 0);
	check_stream(s, t, strlen((const char *)t), &got, 1);
	free(got.h);
	match_set_free(s);
	pats_free(&ps);
}

/* Patterns that are prefixes and suffixes of one another, a duplicate
 * with another id, and a 1-byte pattern. */
static void prefixes_suffixes(void **state)
{
	(void)state;
	static const char *const list[] = {"a", "aa", "aaa", "baa", "ab", "b", "aab", "aa", "abba", "bab"};
	struct pats ps = pats_of(list, sizeof list / sizeof list[0]);
	struct match_set *s = build(&ps);
	const unsigned char *t = (const unsigned char *)"aaaababbaabbbaaaab";
	size_t n = strlen((const char *)t);
	struct hits got = check_scan(s, &ps, t, n);
	assert_true(got.n > 30);
	check_stream(s, t, n, &got, 1);
	check_stream(s, t, n, &got, 0);
	free(got.h);
	match_set_free(s);
	pats_free(&ps);
}

/* Every byte value, NUL included, in patterns and text: 256 one-byte
 * patterns, patterns of the whole alphabet and random binary ones. */
static void all_bytes(void **state)
{
	(void)state;
	struct pats ps = {calloc(400, sizeof *ps.p), calloc(400, sizeof *ps.len), 400};
	for (size_t i = 0; i < ps.n; i++) {
		size_t len = i < 256 ? 1 : i < 258 ? 256 : rnd_between(2, 6);
		ps.p[i] = malloc(len);
		ps.len[i] = len;
		for (size_t k = 0; k < len; k++)
			ps.p[i][k] = i < 256   ? (unsigned char)i
				     : i < 258 ? (unsigned char)(i == 256 ? k : 255 - k)
					       : (unsigned char)(rnd() % 8 * 37);
	}
	struct match_set *s = build(&ps);
	size_t n = 4096 + 512;
	unsigned char *t = malloc(n);
	for (size_t i = 0; i < n; i++)
		t[i] = i < 256   ? (unsigned char)i
		       : i < 512 ? (unsigned char)(511 - i)
				 : (unsigned char)(rnd() % 8 * 37);
	struct hits got = check_scan(s, &ps, t, n);
	assert_true(got.n >= n);
	check_stream(s, t, n, &got, 1);
	check_stream(s, t, n, &got, 0);
	free(got.h);
	free(t);
	match_set_free(s);
	pats_free(&ps);
}

/* A random case: n bytes of text over a small alphabet with some noise,
 * and `count` patterns, the odd ones cut from the text (cut_lo..cut_hi
 * bytes: they occur), the even ones random over the same alphabet
 * (rand_lo..rand_hi bytes: they overlap and share prefixes). The text,
 * with *ps set. */
static unsigned char *random_case(size_t n, size_t count, size_t cut_lo, size_t cut_hi, size_t rand_lo, size_t rand_hi,
				  struct pats *ps)
{
	unsigned char *t = malloc(n);
	for (size_t i = 0; i < n; i++)
		t[i] = rnd() % 16 ? (unsigned char)("abcd"[rnd() % 4]) : (unsigned char)rnd();
	*ps = (struct pats){calloc(count, sizeof *ps->p), calloc(count, sizeof *ps->len), count};
	for (size_t i = 0; i < ps->n; i++) {
		size_t len = i % 2 ? rnd_between(cut_lo, cut_hi) : rnd_between(rand_lo, rand_hi);
		ps->p[i] = malloc(len);
		ps->len[i] = len;
		if (i % 2) {
			memcpy(ps->p[i], t + rnd_between(0, n - len), len);
		} else {
			for (size_t k = 0; k < len; k++)
				ps->p[i][k] = (unsigned char)("abcd"[rnd() % 4]);
		}
	}
	return t;
}

/* 10,000 random patterns: half cut from the text (so they occur), half
 * random over a small alphabet (so they overlap and share prefixes), on
 * 20,000 bytes, one-shot and streamed. */
static void random_against_naive(void **state)
{
	(void)state;
	size_t n = 20000;
	struct pats ps;
	unsigned char *t = random_case(n, 10000, 4, 40, 3, 12, &ps);
	struct match_set *s = build(&ps);
	struct hits got = check_scan(s, &ps, t, n);
	assert_true(got.n > 50000);
	check_stream(s, t, n, &got, 1);
	check_stream(s, t, n, &got, 0);
	check_stream(s, t, n, &got, 4093);
	free(got.h);
	free(t);
	match_set_free(s);
	pats_free(&ps);
}

/* A non-zero return stops the scan and the feed, and is returned; a
 * stream can then be fed the rest. */
static void stop(void **state)
{
	(void)state;
	static const char *const list[] = {"ab", "b", "abc"};
	struct pats ps = pats_of(list, 3);
	struct match_set *s = build(&ps);
	const unsigned char *t = (const unsigned char *)"xxabcxabc";
	struct hits got = {.stop_after = 2};
	assert_int_equal(match_set_scan(s, t, 9, on_hit, &got), 7);
	assert_int_equal(got.n, 2);
	struct match_stream st;
	struct hits sg = {.stop_after = 3};
	match_stream_init(&st, s);
	assert_int_equal(match_stream_feed(&st, t, 9, on_stream_hit, &sg), 7);
	assert_int_equal(sg.n, 3);
	assert_int_equal(st.fed, 5); /* through the 'c' that ended "abc" */
	sg.stop_after = 0;
	assert_int_equal(match_stream_feed(&st, t + 5, 4, on_stream_hit, &sg), 0);
	assert_int_equal(sg.n, 6);
	assert_int_equal(sg.h[5].id, 2);
	assert_int_equal(sg.h[5].start, 6);
	assert_int_equal(sg.h[5].end, 9);
	free(got.h);
	free(sg.h);
	match_set_free(s);
	pats_free(&ps);
}

/* Misuse is refused and reported; an empty set finds nothing. */
static void misuse(void **state)
{
	(void)state;
	struct match_set *s = match_set_new();
	struct hits got = {0};
	latch_error_quiet(true);
	assert_int_equal(match_set_add(s, (const unsigned char *)"x", 0, 1), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	assert_int_equal(match_set_scan(s, (const unsigned char *)"x", 1, on_hit, &got), -1);
	assert_int_equal(match_set_build(s), 0);
	assert_int_equal(match_set_add(s, (const unsigned char *)"x", 1, 1), -1);
	assert_int_equal(match_set_build(s), -1);
	latch_error_quiet(false);
	assert_int_equal(match_set_scan(s, (const unsigned char *)"xyz", 3, on_hit, &got), 0);
	assert_int_equal(got.n, 0);
	match_set_free(s);
	match_set_free(NULL);
}

/* More states than the dense rows hold, so that the sparse layout, the
 * binary search among many children and deep failure links are used. */
static void deep_and_wide(void **state)
{
	(void)state;
	struct pats ps = {calloc(3000, sizeof *ps.p), calloc(3000, sizeof *ps.len), 3000};
	for (size_t i = 0; i < ps.n; i++) {
		size_t len = rnd_between(1, 60);
		ps.p[i] = malloc(len);
		ps.len[i] = len;
		/* Common prefixes "q", "qq": states with up to 256 children. */
		for (size_t k = 0; k < len; k++)
			ps.p[i][k] = k < i % 3 ? 'q' : (unsigned char)(i % 2 ? rnd() : rnd() % 3 + 'p');
	}
	struct match_set *s = build(&ps);
	size_t n = 50000;
	unsigned char *t = malloc(n);
	for (size_t i = 0; i < n; i++)
		t[i] = rnd() % 4 ? (unsigned char)(rnd() % 3 + 'p') : (unsigned char)rnd();
	/* Plant whole patterns, so the deep ones occur. */
	for (size_t i = 0; i < 400; i++) {
		size_t k = rnd_between(0, ps.n - 1), at = rnd_between(0, n - ps.len[k]);
		memcpy(t + at, ps.p[k], ps.len[k]);
	}
	struct hits got = check_scan(s, &ps, t, n);
	check_stream(s, t, n, &got, 0);
	free(got.h);
	free(t);
	match_set_free(s);
	pats_free(&ps);
}

/* Byte classes: 255 bytes used (the most that leaves a class for the
 * rest), and a set of NUL alone over a text of NULs and other bytes. */
static void byte_classes(void **state)
{
	(void)state;
	for (int round = 0; round < 2; round++) {
		size_t np = round ? 1 : 300;
		struct pats ps = {calloc(np, sizeof *ps.p), calloc(np, sizeof *ps.len), np};
		for (size_t i = 0; i < np; i++) {
			size_t len = round ? 1 : i < 255 ? 1 : rnd_between(2, 5);
			ps.p[i] = malloc(len);
			ps.len[i] = len;
			for (size_t k = 0; k < len; k++) {
				unsigned char c = (unsigned char)(i < 255 ? i : rnd());
				ps.p[i][k] = round ? 0 : c >= 'A' ? (unsigned char)(c + 1) : c; /* no 'A' */
			}
		}
		struct match_set *s = build(&ps);
		size_t n = 3000;
		unsigned char *t = malloc(n);
		for (size_t i = 0; i < n; i++)
			t[i] = rnd() % 3 == 0 ? (round ? 0 : 'A') : (unsigned char)rnd();
		struct hits got = check_scan(s, &ps, t, n);
		check_stream(s, t, n, &got, 0);
		free(got.h);
		free(t);
		match_set_free(s);
		pats_free(&ps);
	}
}

static struct match_set *build_plain(const struct pats *ps)
{
	setenv("LATCH_MATCH_PREFILTER", "0", 1);
	struct match_set *s = build(ps);
	unsetenv("LATCH_MATCH_PREFILTER");
	return s;
}

/* check_scan, and the automaton alone reports the same sequence. */
static struct hits check_both(const struct match_set *s, const struct match_set *plain, const struct pats *ps,
			      const unsigned char *t, size_t n)
{
	struct hits got = check_scan(s, ps, t, n), alone = {0};
	assert_int_equal(match_set_scan(plain, t, n, on_hit, &alone), 0);
	assert_int_equal(alone.n, got.n);
	for (size_t i = 0; i < got.n; i++)
		assert_int_equal(by_hit(&got.h[i], &alone.h[i]), 0);
	free(alone.h);
	return got;
}

/* The prefilter's edges, for a shortest pattern of m = 4, 5, 6, 7 and 16
 * bytes (every gram and stride it picks): a pattern of exactly m bytes,
 * one that it is a prefix of, a suffix of that one, a self-overlapping
 * run of one byte and a longest one; each alone at every offset of texts
 * of every length from 0 to max_len + 8 (so at offset 0, at the very end
 * and across every sampling stride), over a filler of the same letters;
 * one-shot, against the automaton alone, and streamed; and streamed in
 * chunks of 2 max_len bytes and a little more, each pattern at every
 * offset across the first boundary. */
static void prefilter_edges(void **state)
{
	(void)state;
	static const size_t ms[] = {4, 5, 6, 7, 16};
	for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
		size_t m = ms[mi];
		struct pats ps = {calloc(5, sizeof *ps.p), calloc(5, sizeof *ps.len), 5};
		size_t lens[5] = {m, m + 2, m, m + 1, 3 * m};
		for (size_t i = 0; i < 5; i++) {
			ps.len[i] = lens[i];
			ps.p[i] = calloc(1, 3 * 16);
			assert_non_null(ps.p[i]);
		}
		/* p[0] is a prefix of p[1], p[2] a suffix of it, p[3] overlaps
		 * itself. */
		for (size_t k = 0; k < m + 2; k++) {
			ps.p[1][k] = (unsigned char)("bcdab"[k % 5]);
			if (k < m)
				ps.p[0][k] = ps.p[1][k];
			if (k >= 2)
				ps.p[2][k - 2] = ps.p[1][k];
			if (k < m + 1)
				ps.p[3][k] = 'a';
		}
		for (size_t k = 0; k < 3 * m; k++) { /* the longest */
			ps.p[4][k] = (unsigned char)("abcd"[rnd() % 4]);
		}
		struct match_set *s = build(&ps), *plain = build_plain(&ps);
		assert_int_equal(match_set_min_len(s), m);
		assert_int_equal(match_set_max_len(s), 3 * m);
		size_t max_len = 3 * m;
		unsigned char t[3 * 16 + 8];
		for (size_t n = 0; n <= max_len + 8; n++) {
			for (size_t i = 0; i < ps.n; i++) {
				for (size_t at = 0; at + ps.len[i] <= n; at++) {
					for (size_t k = 0; k < n; k++)
						t[k] = (unsigned char)("abcz"[rnd() % 4]);
					memcpy(t + at, ps.p[i], ps.len[i]);
					struct hits got = check_both(s, plain, &ps, t, n);
					assert_true(got.n >= 1);
					check_stream(s, t, n, &got, 1);
					check_stream(s, t, n, &got, 0);
					free(got.h);
				}
			}
			/* And the text alone, no pattern planted. */
			for (size_t k = 0; k < n; k++)
				t[k] = (unsigned char)("abcz"[rnd() % 4]);
			struct hits got = check_both(s, plain, &ps, t, n);
			check_stream(s, t, n, &got, 0);
			free(got.h);
		}
		/* Across the boundary of chunks long enough for the prefilter
		 * (2 max_len and a few bytes more): each pattern at every offset
		 * that puts it across the first boundary, or just before it. */
		for (size_t c = 2 * max_len; c < 2 * max_len + 4; c++) {
			unsigned char u[4 * 3 * 16 + 16];
			size_t n = 2 * c + 5;
			for (size_t i = 0; i < ps.n; i++) {
				for (size_t at = c - ps.len[i]; at <= c; at++) {
					for (size_t k = 0; k < n; k++)
						u[k] = (unsigned char)("abcz"[rnd() % 4]);
					memcpy(u + at, ps.p[i], ps.len[i]);
					struct hits got = check_both(s, plain, &ps, u, n);
					check_stream(s, u, n, &got, c);
					free(got.h);
				}
			}
		}
		match_set_free(s);
		match_set_free(plain);
		pats_free(&ps);
	}
}

/* The forms (min_len 6) of 50 values of 6-24 bytes, planted 3,000 times
 * in 1 MiB of random printable text at random offsets; one-shot, against
 * the automaton alone, and streamed in chunks of 4093 and 65536 bytes and
 * at random (the long feeds go through the prefilter). */
static void prefilter_forms(void **state)
{
	(void)state;
	struct pats ps = {calloc(50 * MATCH_FORMS_MAX, sizeof *ps.p), calloc(50 * MATCH_FORMS_MAX, sizeof *ps.len), 0};
	for (size_t v = 0; v < 50; v++) {
		unsigned char val[24];
		size_t len = v == 0 ? 6 : rnd_between(6, 24);
		for (size_t k = 0; k < len; k++)
			val[k] = (unsigned char)(0x20 + rnd() % 95);
		struct match_form *f;
		size_t count;
		assert_int_equal(match_forms(val, len, 6, &f, &count), 0);
		for (size_t k = 0; k < count; k++) {
			ps.len[ps.n] = f[k].bytes->len;
			ps.p[ps.n] = malloc(f[k].bytes->len);
			memcpy(ps.p[ps.n++], f[k].bytes->data, f[k].bytes->len);
		}
		match_forms_free(f, count);
	}
	struct match_set *s = build(&ps), *plain = build_plain(&ps);
	assert_int_equal(match_set_min_len(s), 6);
	size_t n = 1u << 20;
	unsigned char *t = malloc(n);
	for (size_t i = 0; i < n; i++)
		t[i] = (unsigned char)(0x20 + rnd() % 95);
	for (size_t i = 0; i < 3000; i++) {
		size_t k = rnd_between(0, ps.n - 1);
		memcpy(t + rnd_between(0, n - ps.len[k]), ps.p[k], ps.len[k]);
	}
	struct hits got = check_both(s, plain, &ps, t, n);
	assert_true(got.n >= 2900);
	check_stream(s, t, n, &got, 4093);
	check_stream(s, t, n, &got, 65536);
	check_stream(s, t, n, &got, 0);
	free(got.h);
	free(t);
	match_set_free(s);
	match_set_free(plain);
	pats_free(&ps);
}

/* random_against_naive with every pattern 6 bytes or more (the
 * prefilter), and the stream in chunks long enough for it. */
static void random_prefiltered(void **state)
{
	(void)state;
	size_t n = 100000;
	struct pats ps;
	unsigned char *t = random_case(n, 2000, 6, 40, 6, 9, &ps);
	struct match_set *s = build(&ps), *plain = build_plain(&ps);
	struct hits got = check_both(s, plain, &ps, t, n);
	assert_true(got.n > 5000);
	check_stream(s, t, n, &got, 4093);
	check_stream(s, t, n, &got, 200);
	check_stream(s, t, n, &got, 0);
	free(got.h);
	free(t);
	match_set_free(s);
	match_set_free(plain);
	pats_free(&ps);
}

/* A stream stopped by its callback in a long feed (through the
 * prefilter), then fed the rest: the hits after the stop are those of
 * the one-shot scan, less the others that end at the stopping byte. */
static void prefilter_stop(void **state)
{
	(void)state;
	static const char *const list[] = {"secret", "cret12", "secret12", "zzzzzz"};
	struct pats ps = pats_of(list, 4);
	struct match_set *s = build(&ps);
	size_t n = 10000;
	unsigned char *t = malloc(n);
	memset(t, '.', n);
	memcpy(t + 3001, "secret12", 8);
	memcpy(t + 7000, "zzzzzzz", 7);
	struct hits once = check_scan(s, &ps, t, n);
	assert_int_equal(once.n, 5); /* secret, secret12, cret12, zzzzzz twice */
	struct match_stream st;
	struct hits got = {.stop_after = 2};
	match_stream_init(&st, s);
	assert_int_equal(match_stream_feed(&st, t, n, on_stream_hit, &got), 7);
	assert_int_equal(st.fed, 3009); /* through the '2' that ended "secret12" */
	got.stop_after = 0;
	assert_int_equal(match_stream_feed(&st, t + 3009, n - 3009, on_stream_hit, &got), 0);
	assert_int_equal(st.fed, n);
	assert_int_equal(got.n, 4); /* cret12, also ending at 3009, is not reported */
	assert_int_equal(by_hit(&got.h[2], &once.h[3]), 0);
	assert_int_equal(by_hit(&got.h[3], &once.h[4]), 0);
	free(got.h);
	free(once.h);
	free(t);
	match_set_free(s);
	pats_free(&ps);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(overlapping),
		cmocka_unit_test(prefixes_suffixes),
		cmocka_unit_test(all_bytes),
		cmocka_unit_test(random_against_naive),
		cmocka_unit_test(stop),
		cmocka_unit_test(misuse),
		cmocka_unit_test(deep_and_wide),
		cmocka_unit_test(byte_classes),
		cmocka_unit_test(prefilter_edges),
		cmocka_unit_test(prefilter_forms),
		cmocka_unit_test(random_prefiltered),
		cmocka_unit_test(prefilter_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
