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
 * Everything that spells a pattern (their copies, edge bytes, rows, the
 * class map) lives in secure memory or is wiped with the set; the
 * building blocks in plain memory are indices only. */
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
/* At most this many pattern bytes: a state number has 30 bits. */
#define BYTES_MAX (STATE_MASK - 1u)

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
	uint32_t rows = DENSE_BYTES / (width * (uint32_t)sizeof(uint32_t));
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

int match_set_scan(const struct match_set *s, const unsigned char *text, size_t n,
		   int (*fn)(uint32_t id, size_t start, size_t end, void *ctx), void *ctx)
{
	if (!s->built)
		return latch_error(LATCH_USAGE, "the pattern set is not built");
	uint32_t at = 0;
	size_t i = 0, end;
	while ((end = advance(s, &at, text, i, n)) != 0) {
		for (uint32_t o = first_out(s, state_of(s, at)); o; o = s->dict[o]) {
			for (uint32_t k = 0; k < s->out_n[o]; k++) {
				int rc = fn(s->ids[s->out_first[o] + k], end - s->depth[o], end, ctx);
				if (rc)
					return rc;
			}
		}
		i = end;
	}
	return 0;
}

void match_stream_init(struct match_stream *st, const struct match_set *s)
{
	st->s = s;
	st->state = 0;
	st->fed = 0;
}

int match_stream_feed(struct match_stream *st, const unsigned char *chunk, size_t n,
		      int (*fn)(uint32_t id, uint64_t start, uint64_t end, void *ctx), void *ctx)
{
	const struct match_set *s = st->s;
	if (!s->built)
		return latch_error(LATCH_USAGE, "the pattern set is not built");
	size_t i = 0, end;
	while ((end = advance(s, &st->state, chunk, i, n)) != 0) {
		uint64_t abs_end = st->fed + end;
		for (uint32_t o = first_out(s, state_of(s, st->state)); o; o = s->dict[o]) {
			for (uint32_t k = 0; k < s->out_n[o]; k++) {
				int rc = fn(s->ids[s->out_first[o] + k], abs_end - s->depth[o], abs_end, ctx);
				if (rc) {
					st->fed = abs_end;
					return rc;
				}
			}
		}
		i = end;
	}
	st->fed += n;
	return 0;
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
