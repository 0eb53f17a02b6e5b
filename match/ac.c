/* Multi-pattern search (match.h): Aho-Corasick, written here. The one
 * library in Debian 12 that does this job is Hyperscan 5.4 (amd64 only;
 * Vectorscan for other machines): it takes byte literals, allocates
 * through a hook (so sodium_malloc would do) and streams. Measured on the
 * same 50 MiB texts (a scratch program, not kept): it scans ten times as
 * fast (4,054 against 401 MB/s on random text with 1,000 patterns of
 * 20-60 bytes; 1,695 against 163 with 25,000), but compiles 25,000
 * patterns in 801 ms against 63 ms here (1,000: 18 against 3 ms), is 16 MB
 * of C++ with libstdc++, and is built for amd64 only. This automaton
 * meets what latch asks (200 MB/s with 1,000 patterns; a 50 MB change
 * with the forms of 1,000 values in well under 0.5 s), in C, on every
 * architecture; behind match.h, Hyperscan could replace it. RE2 and PCRE2
 * match regular expressions: RE2::Set reports which patterns matched, not
 * where, and neither carries a match from one chunk into the next (PCRE2's
 * partial matching keeps the text instead). bench/match_bench.c measures
 * this one.
 *
 * Layout. States are numbered breadth first, so a state's failure link
 * always has a smaller number, and a state's children get consecutive
 * numbers (child, child + 1, ...), their bytes sorted. Bytes are mapped to
 * classes: one per byte that occurs in some pattern, and class 0 for all
 * the others (which lead every state back to the root). The first states,
 * as many as fit in DENSE_BYTES (the root, all of depth 1, and most of
 * depth 2 for base64-like patterns), have a full row of next steps per
 * class, failure links already followed: the text mostly keeps the
 * automaton there, one load per byte. Every other state keeps its
 * children's bytes in edge[] (indexed by child number - 1) and a failure
 * link; a miss follows links until a state with a row. A full row of 256
 * for every state would take 1 KiB each, 1 GiB for 25,000 patterns of 40
 * bytes; this is 12 bytes and one edge byte per state, plus 16 bytes of
 * output data (about 28 MiB for those 25,000 patterns).
 *
 * Measured (bench/match_bench.c, 10 MiB texts, two runs each, while other
 * builds loaded the 2-core machine): byte classes doubled the speed of
 * rows of 256 (368-430 against 189-202 MB/s on random text with 1,000
 * patterns, 150-159 against 70-91 with 25,000); budgets for the rows of
 * 256 KiB to 4 MiB were within the noise of one another.
 *
 * A step carries OUT (the top bit) when the state ends a pattern or has
 * one on its chain of failure links, so the scan loop tests one bit per
 * byte; the outputs are then walked through `dict` (the nearest state on
 * the failure chain that ends a pattern).
 *
 * The prefilter (issue 13: redacting a child's output at 1 GB/s and
 * more). Every pattern has at least m bytes (the shortest), so every
 * occurrence [start, end) contains exactly one position p in
 * [start, start + s) that is a multiple of the stride s = m - b + 1, and
 * the b bytes at p (a gram) lie inside it, at offset p - start < s of the
 * pattern. The bitmap holds a hash of the grams at offsets 0 .. s - 1 of
 * every pattern; the scan looks up the gram at every s-th byte (four a
 * round, one branch), and on a hit runs the automaton from the root at
 * p - s + 1 (or on from where it stopped, if that is later) until no
 * pattern in progress started at or before p (its depth is less than the
 * bytes since p). The automaton reads each byte at most once and reports
 * in the order it always did, so nothing is reported twice or out of
 * order, and the state where it stops is exact for every occurrence
 * still in progress. A stream does the same over a chunk of at least
 * 2 max_len bytes (shorter ones go through the automaton alone): it
 * first runs on from the carried state until no pattern in progress
 * started before the chunk, and ends by running over the last m - 1
 * bytes, so that the state it carries is exact. Grams are 4 bytes, or 3
 * for a shortest pattern of 5-7 bytes while there are few (a longer
 * stride; with many, 3-grams hit too often); the bitmap has about 128
 * bits per gram, at most 2^21 (256 KiB, in L2). Under 4 bytes, no
 * prefilter.
 *
 * Measured (bench/match_bench -c, CPU time, 16 MiB texts, 2-core machine
 * shared with other builds; bench/README.md has the tables): the forms
 * (min_len 6) of 100 values of 16-40 base64 characters (945 patterns of
 * 16-80 bytes, stride 13) scan at 4.5-8 GB/s against 420-490 for the
 * automaton alone; with values of 6-40 printable characters (1,300
 * patterns of 6-80 bytes, stride 4) at 2-3.4 GB/s. On printable text
 * 0.3-0.6% of samples hit and the automaton reads about 1% of the
 * bytes: the time is the sampling loop (two loads, a multiply and a
 * shift per sample). Grams of 4 at stride 3 ran at 1.5-2.3 GB/s on the
 * second set, 3 at stride 4 at 2.2-3.4; 32 bits per gram at 1.6-2.8, 128
 * at 2.5-3.4, 512 no faster; a constant 2^21 bits (a constant shift)
 * and eight samples a round were no faster. SSE2 has no gather and no
 * 32-bit multiply, so it would not do the lookups, which are the cost.
 * With 2 GB/s and more in C on every architecture, Hyperscan (above) is
 * not needed for issue 13.
 *
 * Everything that spells a pattern (their copies, edge bytes, rows, the
 * class map, the prefilter's bitmap) lives in secure memory or is wiped
 * with the set; the building blocks in plain memory are indices only. */
#include "match.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A step's result: a dense state as the offset of its row (so the next
 * step needs no multiplication), or a sparse state's number with SPARSE;
 * OUT when the state has outputs. */
#define OUT 0x80000000u
#define SPARSE 0x40000000u
#define STATE_MASK 0x3fffffffu
#define NO_CHILD 0xffffffffu
/* The dense rows' size at most. */
#define DENSE_BYTES (1024u * 1024u)
#define DENSE_BYTES_PREFILTERED (64u * 1024u)
/* At most this many pattern bytes: a state number has 30 bits. */
#define BYTES_MAX (STATE_MASK - 1u)
/* The prefilter: only when every pattern has at least PF_MIN_LEN bytes;
 * its bitmap has about PF_BITS_PER bits per gram it holds, within
 * 2^PF_LOG_MIN .. 2^PF_LOG_MAX bits. */
#define PF_MIN_LEN 4u
#define PF_BITS_PER 128u
#define PF_LOG_MIN 12u
#define PF_LOG_MAX 21u
#define PF_GRAM3_MAX 8192u
/* A chunk fed shorter than this (a multiple of the longest pattern) goes
 * through the automaton alone. */
#define PF_FEED_MIN 2u

struct ac_node {
	uint32_t child; /* first child's number; children are consecutive */
	uint32_t fail;
	uint16_t n;   /* children: 0..256 */
	uint16_t out; /* ends a pattern or has one on its failure chain */
};

struct pat_ref {
	size_t off, len;
	uint32_t id;
};

struct match_set {
	/* While adding: the patterns back to back, and where each is. */
	struct secbuf *pat;
	struct pat_ref *refs;
	size_t n_refs, cap_refs;
	bool built;
	/* The automaton, all in `mem`. */
	struct secbuf *mem;
	uint32_t n_states, dense_end; /* states below dense_end have rows */
	uint32_t width;               /* byte classes: a dense row's length */
	const unsigned char *cls;     /* a byte's class: 0 for bytes in no pattern */
	const uint32_t *dense;        /* dense_end * width steps */
	const struct ac_node *node;
	const unsigned char *edge; /* edge[t - 1]: the byte into state t */
	const uint32_t *depth;     /* a state's depth: its patterns' length */
	const uint32_t *out_first; /* ids[out_first[s] .. + out_n[s]]: patterns ending at s */
	const uint32_t *out_n;
	const uint32_t *dict; /* next state on the failure chain with out_n > 0; 0: none */
	const uint32_t *ids;
	size_t min_len, max_len; /* the shortest and longest pattern */
	/* The prefilter (block scans and long feeds): gram 0 when off. */
	uint32_t gram, stride;    /* b and s (see the head comment) */
	uint32_t gram_mask;       /* keeps a 4-byte load's first `gram` bytes */
	uint32_t hash_shift;      /* 32 - log2 of the bitmap's bits */
	const unsigned char *pfx; /* the bitmap of gram hashes */
};

struct match_set *match_set_new(void)
{
	struct match_set *s = calloc(1, sizeof *s);
	if (!s)
		latch_error(LATCH_OPERR, "cannot allocate a pattern set");
	return s;
}

int match_set_add(struct match_set *s, const unsigned char *pat, size_t n, uint32_t id)
{
	if (s->built)
		return latch_error(LATCH_USAGE, "cannot add a pattern to a set already built");
	if (n == 0)
		return latch_error(LATCH_USAGE, "cannot add an empty pattern");
	size_t used = s->pat ? s->pat->len : 0;
	if (n > BYTES_MAX - used)
		return latch_error(LATCH_USAGE, "too many pattern bytes (at most %u)", BYTES_MAX);
	if (!s->pat || s->pat->cap - used < n) {
		size_t cap = s->pat ? s->pat->cap : 0;
		while (cap - used < n)
			cap = cap ? 2 * cap : 4096;
		struct secbuf *bigger = secbuf_new(cap);
		if (!bigger)
			return -1;
		if (s->pat)
			memcpy(bigger->data, s->pat->data, used);
		bigger->len = used;
		secbuf_free(s->pat);
		s->pat = bigger;
	}
	if (s->n_refs == s->cap_refs) {
		size_t cap = s->cap_refs ? 2 * s->cap_refs : 256;
		struct pat_ref *r = realloc(s->refs, cap * sizeof *r);
		if (!r)
			return latch_error(LATCH_OPERR, "cannot allocate a pattern set");
		s->refs = r;
		s->cap_refs = cap;
	}
	memcpy(s->pat->data + used, pat, n);
	s->pat->len = used + n;
	s->refs[s->n_refs++] = (struct pat_ref){.off = used, .len = n, .id = id};
	return 0;
}

/* Patterns in lexicographic byte order (a prefix first), then in the
 * order they were added. */
static int by_bytes(const void *a, const void *b, void *ctx)
{
	const struct match_set *s = ctx;
	const struct pat_ref *x = &s->refs[*(const uint32_t *)a], *y = &s->refs[*(const uint32_t *)b];
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(s->pat->data + x->off, s->pat->data + y->off, n);
	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

/* The child of `st` by byte c, or NO_CHILD. */
static inline uint32_t child_of(const struct ac_node *nd, const unsigned char *edge, unsigned char c)
{
	uint32_t n = nd->n;
	if (n == 0)
		return NO_CHILD;
	const unsigned char *e = edge + nd->child - 1;
	if (n <= 16) {
		for (uint32_t k = 0; k < n; k++)
			if (e[k] == c)
				return nd->child + k;
		return NO_CHILD;
	}
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (e[mid] < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && e[lo] == c ? nd->child + lo : NO_CHILD;
}

/* The step into state t (see OUT, SPARSE). */
static inline uint32_t step_to(const struct match_set *m, uint32_t t)
{
	return (t < m->dense_end ? t * m->width : t | SPARSE) | (m->node[t].out ? OUT : 0);
}

/* Offsets of the automaton's arrays inside one allocation, each aligned
 * to 16 bytes. */
static size_t carve(size_t *at, size_t bytes)
{
	size_t off = *at;
	*at += (bytes + 15u) & ~(size_t)15u;
	return off;
}

/* The gram at p: its `b` bytes in a 4-byte word (the others zero), in
 * the machine's byte order, so that the same bytes make the same word in
 * a pattern and in the text. `have` bytes are readable at p (>= b). */
static inline uint32_t gram_at(const unsigned char *p, size_t have, uint32_t mask)
{
	uint32_t w = 0;
	if (have >= 4) {
		memcpy(&w, p, 4);
	} else {
		unsigned char b[4] = {0};
		memcpy(b, p, have);
		memcpy(&w, b, 4);
	}
	return w & mask;
}

static inline uint32_t gram_hash(uint32_t w, uint32_t shift)
{
	return (w * 0x9e3779b1u) >> shift;
}

/* The prefilter's shape for n_pat patterns of at least m bytes: the gram
 * b, the stride s = m - b + 1, the bitmap's log2 bits; false when there
 * is none (too short a pattern, or LATCH_MATCH_PREFILTER=0: the automaton
 * alone, for bench/match_bench and the tests). A shortest pattern of 5-7
 * bytes takes grams of 3 (a longer stride) while they are few (at most
 * PF_GRAM3_MAX; past that 3-grams make too many hits, and 4 is faster),
 * 8 and more takes 4. */
static bool prefilter_shape(size_t m, size_t n_pat, uint32_t *b, uint32_t *stride, uint32_t *log2_bits)
{
	const char *env = getenv("LATCH_MATCH_PREFILTER");
	if (m < PF_MIN_LEN || n_pat == 0 || (env && strcmp(env, "0") == 0))
		return false;
	if (m == 4)
		*b = 2;
	else if (m < 8 && n_pat * (m - 2) <= PF_GRAM3_MAX)
		*b = 3;
	else
		*b = 4;
	*stride = (uint32_t)(m - *b + 1);
	size_t want = n_pat * *stride * PF_BITS_PER;
	uint32_t lg = PF_LOG_MIN;
	while (lg < PF_LOG_MAX && ((size_t)1 << lg) < want)
		lg++;
	*log2_bits = lg;
	return true;
}

int match_set_build(struct match_set *s)
{
	if (s->built)
		return latch_error(LATCH_USAGE, "the pattern set is already built");
	size_t np = s->n_refs;
	uint32_t *order = malloc((np ? np : 1) * sizeof *order);
	if (!order)
		return latch_error(LATCH_OPERR, "cannot allocate memory to build a pattern set");
	for (size_t i = 0; i < np; i++)
		order[i] = (uint32_t)i;
	if (np > 1)
		qsort_r(order, np, sizeof *order, by_bytes, s);

	/* States: the root and one per distinct prefix (the bytes beyond the
	 * common prefix with the previous pattern in order). */
	const unsigned char *P = s->pat ? s->pat->data : NULL;
	size_t n_states = 1;
	for (size_t i = 0; i < np; i++) {
		const struct pat_ref *r = &s->refs[order[i]];
		size_t lcp = 0;
		if (i > 0) {
			const struct pat_ref *q = &s->refs[order[i - 1]];
			size_t m = r->len < q->len ? r->len : q->len;
			while (lcp < m && P[r->off + lcp] == P[q->off + lcp])
				lcp++;
		}
		n_states += r->len - lcp;
	}
	/* add() kept the bytes below BYTES_MAX, so n_states fits. */
	uint32_t ns = (uint32_t)n_states;
	/* Byte classes: each byte that occurs in a pattern is one, all the
	 * others share class 0 (from any state they lead to the root). Base64
	 * patterns make rows of 65 steps instead of 256, so four times as
	 * many states fit in the same cache. */
	unsigned char used[256] = {0};
	for (size_t i = 0; i < np; i++)
		for (size_t k = 0; k < s->refs[i].len; k++)
			used[P[s->refs[i].off + k]] = 1;
	uint32_t width = 1;
	for (unsigned c = 0; c < 256; c++)
		width += used[c];
	if (width == 257) { /* every byte is used: no class 0 */
		for (unsigned c = 0; c < 256; c++)
			used[c] = (unsigned char)c;
		width = 256;
	} else {
		for (unsigned c = 0, k = 1; c < 256; c++)
			used[c] = used[c] ? (unsigned char)k++ : 0;
	}
	size_t min_len = np ? SIZE_MAX : 0, max_len = 0;
	for (size_t i = 0; i < np; i++) {
		if (s->refs[i].len < min_len)
			min_len = s->refs[i].len;
		if (s->refs[i].len > max_len)
			max_len = s->refs[i].len;
	}
	uint32_t gram = 0, stride = 0, log2_bits = 0;
	if (!prefilter_shape(min_len, np, &gram, &stride, &log2_bits))
		gram = 0;
	/* Behind the prefilter the automaton reads about 1% of the text, so
	 * a smaller block of rows costs the scan little, and a build (one per
	 * `latch run` that redacts) much less: locked, zeroed and filled. */
	uint32_t rows = (gram ? DENSE_BYTES_PREFILTERED : DENSE_BYTES) / (width * (uint32_t)sizeof(uint32_t));
	uint32_t dense_end = ns < rows ? ns : rows;

	size_t at = 0;
	size_t o_dense = carve(&at, (size_t)dense_end * width * sizeof(uint32_t));
	size_t o_node = carve(&at, n_states * sizeof(struct ac_node));
	size_t o_edge = carve(&at, n_states);
	size_t o_depth = carve(&at, n_states * sizeof(uint32_t));
	size_t o_first = carve(&at, n_states * sizeof(uint32_t));
	size_t o_outn = carve(&at, n_states * sizeof(uint32_t));
	size_t o_dict = carve(&at, n_states * sizeof(uint32_t));
	size_t o_ids = carve(&at, (np ? np : 1) * sizeof(uint32_t));
	size_t o_cls = carve(&at, 256);
	size_t o_pfx = carve(&at, gram ? ((size_t)1 << log2_bits) / 8 : 0);
	struct secbuf *mem = secbuf_new(at);
	/* lo/hi: each state's range of patterns (in `order`) sharing its prefix. */
	uint32_t *lo = malloc(n_states * sizeof *lo), *hi = malloc(n_states * sizeof *hi);
	if (!mem || !lo || !hi) {
		sodium_memzero(used, sizeof used);
		free(order);
		free(lo);
		free(hi);
		secbuf_free(mem);
		return mem ? latch_error(LATCH_OPERR, "cannot allocate memory to build a pattern set") : -1;
	}
	memset(mem->data, 0, at);
	mem->len = at;
	unsigned char *base = mem->data;
	uint32_t *dense = (uint32_t *)(void *)(base + o_dense);
	struct ac_node *node = (struct ac_node *)(void *)(base + o_node);
	unsigned char *edge = base + o_edge;
	uint32_t *depth = (uint32_t *)(void *)(base + o_depth);
	uint32_t *out_first = (uint32_t *)(void *)(base + o_first);
	uint32_t *out_n = (uint32_t *)(void *)(base + o_outn);
	uint32_t *dict = (uint32_t *)(void *)(base + o_dict);
	uint32_t *ids = (uint32_t *)(void *)(base + o_ids);
	memcpy(base + o_cls, used, sizeof used);
	sodium_memzero(used, sizeof used);
	s->cls = base + o_cls;
	for (size_t i = 0; i < np; i++)
		ids[i] = s->refs[order[i]].id;

	/* The prefilter's bitmap: the grams at offsets 0 .. stride - 1 of
	 * every pattern (each occurrence has its first sampled position
	 * there). */
	s->min_len = min_len;
	s->max_len = max_len;
	s->gram = gram;
	if (gram) {
		unsigned char mb[4] = {0};
		memset(mb, 0xff, gram);
		memcpy(&s->gram_mask, mb, 4);
		s->stride = stride;
		s->hash_shift = 32 - log2_bits;
		unsigned char *pfx = base + o_pfx;
		for (size_t i = 0; i < np; i++) {
			const unsigned char *q = P + s->refs[i].off;
			for (size_t k = 0; k < stride; k++) {
				uint32_t h = gram_hash(gram_at(q + k, s->refs[i].len - k, s->gram_mask), s->hash_shift);
				pfx[h >> 3] |= (unsigned char)(1u << (h & 7));
			}
		}
		s->pfx = pfx;
	}

	/* The trie, breadth first: a state's patterns that end at its depth
	 * come first in its range (a prefix sorts first); the rest are grouped
	 * by their next byte, one child per group, numbered in order. */
	uint32_t next = 1;
	lo[0] = 0, hi[0] = (uint32_t)np, depth[0] = 0;
	for (uint32_t st = 0; st < next; st++) {
		uint32_t d = depth[st], j = lo[st];
		while (j < hi[st] && s->refs[order[j]].len == d)
			j++;
		out_first[st] = lo[st];
		out_n[st] = j - lo[st];
		node[st].child = next;
		while (j < hi[st]) {
			unsigned char c = P[s->refs[order[j]].off + d];
			uint32_t k = j + 1;
			while (k < hi[st] && P[s->refs[order[k]].off + d] == c)
				k++;
			edge[next - 1] = c;
			depth[next] = d + 1;
			lo[next] = j, hi[next] = k;
			next++;
			node[st].n++;
			j = k;
		}
		if (node[st].n == 0)
			node[st].child = 0;
	}

	/* Failure links and output links, breadth first. */
	node[0].fail = 0;
	dict[0] = 0;
	for (uint32_t st = 0; st < ns; st++) {
		for (uint32_t t = node[st].child; t < node[st].child + node[st].n; t++) {
			unsigned char c = edge[t - 1];
			uint32_t f = 0;
			if (st != 0) {
				uint32_t g = node[st].fail;
				for (;;) {
					uint32_t x = child_of(&node[g], edge, c);
					if (x != NO_CHILD) {
						f = x;
						break;
					}
					if (g == 0)
						break;
					g = node[g].fail;
				}
			}
			node[t].fail = f;
			dict[t] = out_n[f] ? f : dict[f];
			node[t].out = out_n[t] || dict[t];
		}
	}

	/* Dense rows: a state's row is its children over the row of its
	 * failure link (a smaller number, so already filled); the root's is
	 * its children over "stay at the root" (0, already zeroed). */
	s->dense_end = dense_end;
	s->width = width;
	s->node = node;
	for (uint32_t st = 0; st < dense_end; st++) {
		uint32_t *row = dense + (size_t)st * width;
		if (st != 0)
			memcpy(row, dense + (size_t)node[st].fail * width, width * sizeof *row);
		for (uint32_t t = node[st].child; t < node[st].child + node[st].n; t++)
			row[s->cls[edge[t - 1]]] = step_to(s, t);
	}

	free(order);
	free(lo);
	free(hi);
	secbuf_free(s->pat);
	s->pat = NULL;
	sodium_memzero(s->refs, s->cap_refs * sizeof *s->refs);
	free(s->refs);
	s->refs = NULL;
	s->n_refs = s->cap_refs = 0;
	s->mem = mem;
	s->n_states = ns;
	s->dense = dense;
	s->edge = edge;
	s->depth = depth;
	s->out_first = out_first;
	s->out_n = out_n;
	s->dict = dict;
	s->ids = ids;
	s->built = true;
	return 0;
}

/* The step from sparse state st by byte c: its child, else the step from
 * the first state on its failure chain that has the child or a row. */
static uint32_t sparse_step(const struct match_set *m, uint32_t st, unsigned char c)
{
	for (;;) {
		const struct ac_node *nd = &m->node[st];
		uint32_t to = child_of(nd, m->edge, c);
		if (to != NO_CHILD)
			return step_to(m, to);
		st = nd->fail;
		if (st < m->dense_end)
			return m->dense[(size_t)st * m->width + m->cls[c]];
	}
}

/* Run from step *at over t[i..n) and stop after the first byte that
 * reaches a state with outputs: its index + 1 (the occurrence's end),
 * with *at there; 0 when the text ends first (*at at the end). The loop
 * is one load per byte while the automaton stays in dense states. */
static size_t advance(const struct match_set *m, uint32_t *at, const unsigned char *t, size_t i, size_t n)
{
	const uint32_t *dense = m->dense;
	const unsigned char *cls = m->cls;
	uint32_t cur = *at;
	for (; i < n; i++) {
		uint32_t x = cur & SPARSE ? sparse_step(m, cur & STATE_MASK, t[i]) : dense[cur + cls[t[i]]];
		cur = x & ~OUT;
		if (x & OUT) {
			*at = cur;
			return i + 1;
		}
	}
	*at = cur;
	return 0;
}

/* The state a step (without OUT) is in. */
static uint32_t state_of(const struct match_set *m, uint32_t step)
{
	return step & SPARSE ? step & STATE_MASK : step / m->width;
}

/* The first state on st's output chain (st itself or its dict link). */
static uint32_t first_out(const struct match_set *m, uint32_t st)
{
	return m->out_n[st] ? st : m->dict[st];
}

/* Where occurrences go: the block scan's callback or the stream's, with
 * the offset of the text's first byte; `stop` is the end of the
 * occurrence whose callback returned non-zero. */
struct sink {
	int (*fn)(uint32_t id, size_t start, size_t end, void *ctx);
	int (*stream_fn)(uint32_t id, uint64_t start, uint64_t end, void *ctx);
	void *ctx;
	uint64_t base, stop;
};

/* The depth of the state a step (without OUT) is in: how many of the
 * bytes before it a pattern in progress may have started at. */
static uint32_t depth_of(const struct match_set *m, uint32_t step)
{
	return m->depth[state_of(m, step)];
}

/* Run the automaton from step *at over t[i..lim) and report every
 * occurrence that ends there. 0, or the callback's non-zero return. */
static int run(const struct match_set *s, uint32_t *at, const unsigned char *t, size_t i, size_t lim, struct sink *k)
{
	size_t end;
	while ((end = advance(s, at, t, i, lim)) != 0) {
		for (uint32_t o = first_out(s, state_of(s, *at)); o; o = s->dict[o]) {
			for (uint32_t j = 0; j < s->out_n[o]; j++) {
				uint32_t id = s->ids[s->out_first[o] + j];
				uint64_t e = k->base + end, b = e - s->depth[o];
				int rc = k->fn ? k->fn(id, (size_t)b, (size_t)e, k->ctx)
					       : k->stream_fn(id, b, e, k->ctx);
				if (rc) {
					k->stop = e;
					return rc;
				}
			}
		}
		i = end;
	}
	return 0;
}

/* A sampled gram at p is in the bitmap: an occurrence may start in
 * (p - stride, p]. The automaton, at *cur with step *at (exact for every
 * occurrence still in progress), goes on from there, or starts at the
 * root at p - stride + 1 when it stopped before; it runs until no
 * pattern in progress started at or before p (its depth is less than the
 * bytes since p) or the text ends. */
static int on_sample(const struct match_set *s, const unsigned char *t, size_t n, size_t p, size_t *cur, uint32_t *at,
		     struct sink *k)
{
	size_t from = p + 1 >= s->stride ? p + 1 - s->stride : 0;
	if (*cur < from) {
		*at = 0;
		*cur = from;
	}
	while (*cur < n) {
		if (*cur > p && depth_of(s, *at) < *cur - p)
			break;
		size_t lim = *cur + 8;
		if (lim < p + s->gram)
			lim = p + s->gram;
		if (lim > n)
			lim = n;
		int rc = run(s, at, t, *cur, lim, k);
		*cur = lim;
		if (rc)
			return rc;
	}
	return 0;
}

/* The gram at p (4 bytes readable there) is in the bitmap. */
static inline unsigned in_bitmap(const unsigned char *pfx, const unsigned char *p, uint32_t mask, uint32_t shift)
{
	uint32_t h = gram_hash(gram_at(p, 4, mask), shift);
	return pfx[h >> 3] & (1u << (h & 7));
}

/* The prefiltered pass over t[0..n): every stride-th position's gram is
 * looked up in the bitmap, and the automaton runs only around a hit
 * (on_sample). *cur and *at: where the automaton is, as on_sample keeps
 * them. */
static int prefiltered(const struct match_set *s, const unsigned char *t, size_t n, size_t *cur, uint32_t *at,
		       struct sink *k)
{
	const unsigned char *pfx = s->pfx;
	const uint32_t mask = s->gram_mask, shift = s->hash_shift;
	const size_t st = s->stride;
	size_t p = 0;
	int rc;
	/* Four samples a round, one branch when none hits. */
	while (n >= 3 * st + 4 && p <= n - 3 * st - 4) {
		const unsigned char *q = t + p;
		unsigned a = in_bitmap(pfx, q, mask, shift), b = in_bitmap(pfx, q + st, mask, shift),
			 c = in_bitmap(pfx, q + 2 * st, mask, shift), d = in_bitmap(pfx, q + 3 * st, mask, shift);
		if (a | b | c | d) {
			for (size_t j = 0; j < 4; j++)
				if (in_bitmap(pfx, q + j * st, mask, shift) &&
				    (rc = on_sample(s, t, n, p + j * st, cur, at, k)) != 0)
					return rc;
		}
		p += 4 * st;
	}
	for (; p + s->gram <= n; p += st) {
		uint32_t h = gram_hash(gram_at(t + p, n - p, mask), shift);
		if ((pfx[h >> 3] & (1u << (h & 7))) && (rc = on_sample(s, t, n, p, cur, at, k)) != 0)
			return rc;
	}
	return 0;
}

int match_set_scan(const struct match_set *s, const unsigned char *text, size_t n,
		   int (*fn)(uint32_t id, size_t start, size_t end, void *ctx), void *ctx)
{
	if (!s->built)
		return latch_error(LATCH_USAGE, "the pattern set is not built");
	struct sink k = {.fn = fn, .ctx = ctx};
	uint32_t at = 0;
	if (!s->gram)
		return run(s, &at, text, 0, n, &k);
	size_t cur = 0;
	return prefiltered(s, text, n, &cur, &at, &k);
}

void match_stream_init(struct match_stream *st, const struct match_set *s)
{
	st->s = s;
	st->state = 0;
	st->fed = 0;
}

/* A long chunk: the automaton goes on from the carried state until no
 * pattern in progress started before the chunk; then the prefiltered
 * pass; then the automaton runs over the last min_len - 1 bytes (from the
 * root if it stopped before them), so that the state carried to the next
 * chunk is exact for every pattern that may go on there: one that starts
 * before those bytes has its first sampled gram inside the chunk, and the
 * prefiltered pass ran the automaton from there to the chunk's end. */
int match_stream_feed(struct match_stream *st, const unsigned char *chunk, size_t n,
		      int (*fn)(uint32_t id, uint64_t start, uint64_t end, void *ctx), void *ctx)
{
	const struct match_set *s = st->s;
	if (!s->built)
		return latch_error(LATCH_USAGE, "the pattern set is not built");
	struct sink k = {.stream_fn = fn, .ctx = ctx, .base = st->fed};
	int rc = 0;
	if (!s->gram || n < PF_FEED_MIN * s->max_len) {
		rc = run(s, &st->state, chunk, 0, n, &k);
	} else {
		size_t cur = 0;
		while (cur < n && depth_of(s, st->state) > cur) {
			size_t lim = cur + 8 < n ? cur + 8 : n;
			if ((rc = run(s, &st->state, chunk, cur, lim, &k)) != 0)
				break;
			cur = lim;
		}
		if (rc == 0)
			rc = prefiltered(s, chunk, n, &cur, &st->state, &k);
		if (rc == 0) {
			size_t tail = n - (s->min_len - 1);
			if (cur < tail) {
				st->state = 0;
				cur = tail;
			}
			rc = run(s, &st->state, chunk, cur, n, &k);
		}
	}
	if (rc) {
		st->fed = k.stop;
		return rc;
	}
	st->fed += n;
	return 0;
}

size_t match_set_min_len(const struct match_set *s)
{
	return s->min_len;
}

size_t match_set_max_len(const struct match_set *s)
{
	return s->max_len;
}

void match_set_free(struct match_set *s)
{
	if (!s)
		return;
	secbuf_free(s->pat);
	secbuf_free(s->mem);
	if (s->refs) {
		sodium_memzero(s->refs, s->cap_refs * sizeof *s->refs);
		free(s->refs);
	}
	sodium_memzero(s, sizeof *s);
	free(s);
}
