/* The redactor (run.h, docs/redaction.md): a child's output with every
 * encoded form of every granted value replaced by [latch:NAME].
 *
 * Two views of one stream. The bytes as they are (B) go through one
 * match_stream, so a value inside an escape sequence (a window title, an
 * OSC 52 clipboard payload, "\e[" written right before it) is found; the
 * text with escape sequences left out (F) goes through a second one, so a
 * value cut by a colour code is found. While the last longest-form bytes
 * of B hold no escape byte, the two automata are in the same state and
 * F's scan would repeat B's: only B is scanned (one pass over plain
 * output). Occurrences of either view, as ranges of B, that overlap or
 * touch become one marker.
 *
 * What is held back: the bytes from the start of the longest tail of B,
 * or of F, that is a proper prefix of some form, since only those can
 * still begin an occurrence. match.h does not expose the automaton's
 * depth, so the tails are looked up in a hash set of every proper prefix
 * of every form (keyed, 64 bits; a false hit only holds a few bytes until
 * the idle flush, it never lets a value through). Holding the last
 * longest-form bytes instead would hold back every prompt until the idle
 * flush; this holds nothing after a line of ordinary text. A range of
 * occurrences is written (as its marker) once nothing can extend it, that
 * is once no held tail starts at or before its end.
 *
 * Escape sequences (a byte's kind is decided when it arrives, never
 * revised): CSI, ESC [ then at most ESC_CSI_MAX bytes 0x20-0x3f, ended by
 * a final byte 0x40-0x7e; strings, ESC ] (OSC), ESC P, ESC X, ESC ^,
 * ESC _, then at most ESC_STR_MAX bytes, ended by BEL or by ESC (ESC \ is
 * itself a sequence); others, ESC, at most ESC_INTER_MAX bytes 0x20-0x2f,
 * then a final byte 0x30-0x7e (ESC c, ESC ( B). A byte that breaks these
 * rules (a control character, or one past the limit) ends the sequence
 * and is text; an ESC starts a new one. */
#include "run.h"

#include "../match/match.h"

#include <errno.h>
#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define ESC 0x1b
#define ESC_CSI_MAX 32
#define ESC_STR_MAX 4096
#define ESC_INTER_MAX 4
/* Output is gathered up to this much; pieces this large go out directly. */
#define OBUF_CAP 16384

enum esc_state { E_GROUND, E_ESC, E_INTER, E_CSI, E_STR };

struct run_redactor {
	size_t n_needles;
	char **names; /* each "[latch:NAME]" (plain: names are not secret) */
	size_t *name_len;
	bool *skipped;
	struct match_set *set; /* NULL: no forms (every needle skipped) */
	uint32_t *needle_of;   /* a form's id -> its needle */
	size_t longest;        /* the longest form, L */
	/* The proper prefixes of the forms, keyed hashes (secure memory). */
	struct secbuf *mem;
	uint64_t *prefix; /* open addressing, 0 empty */
	size_t prefix_mask;
	uint64_t *pow;        /* pow[k] = P^k, k < L */
	uint64_t key;         /* mixed into each hash */
	unsigned char *first; /* 32 bytes: a bit per byte that starts a form */
};

/* An occurrence, as a range of B. */
struct occ {
	uint64_t start, end;
	uint32_t needle;
};

/* A range of B to replace, not written yet; `best` names it. */
struct range {
	uint64_t start, end;
	struct occ best;
};

struct run_redact_out {
	const struct run_redactor *r;
	int fd;
	enum esc_state esc;
	unsigned esc_len;
	uint64_t total, ftotal; /* bytes of B, of F, fed */
	uint64_t last_esc_end;  /* B offset after the last escape byte */
	size_t kb, kf;          /* the tails' longest proper prefixes of forms */
	bool any_esc;
	uint64_t written; /* W: B before this is written or replaced */
	struct match_stream st_b, st_f;
	/* The last L - 1 bytes of B and of F (with each one's B offset). */
	struct secbuf *btail, *ftail;
	uint64_t *ftail_pos;
	/* B[hold_b0, total), less the inside of the first range. */
	struct secbuf *hold;
	uint64_t hold_b0;
	/* The chunk being fed, at B offset chunk_b0. */
	const unsigned char *chunk;
	uint64_t chunk_b0;
	size_t chunk_n;
	/* A chunk's text with escape sequences out: fbuf, in runs that were
	 * contiguous in B (run i starts at fbuf[seg_f[i]], B offset
	 * seg_b[i]); tpos: scratch for the B offsets of F's new tail. */
	struct secbuf *fbuf;
	size_t *seg_f;
	uint64_t *seg_b, *tpos;
	size_t n_seg, seg_cap;
	/* The feed's occurrences. */
	struct occ *occ;
	size_t n_occ, cap_occ;
	/* Ranges not written yet, in order, disjoint, not touching; each
	 * with a bit per needle whose occurrence is part of it. */
	struct range *ranges;
	uint64_t *bits;
	size_t n_ranges, cap_ranges, words;
	uint64_t *count;
	unsigned char obuf[OBUF_CAP];
	size_t obuf_n;
};

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* The key of a k-byte prefix whose polynomial hash is h. */
static uint64_t prefix_key(const struct run_redactor *r, uint64_t h, size_t k)
{
	uint64_t z = mix(h ^ r->key ^ ((uint64_t)k << 48));
	return z ? z : 1;
}

static bool prefix_has(const struct run_redactor *r, uint64_t key)
{
	for (size_t i = key & r->prefix_mask;; i = (i + 1) & r->prefix_mask) {
		if (r->prefix[i] == key)
			return true;
		if (r->prefix[i] == 0)
			return false;
	}
}

static void prefix_put(struct run_redactor *r, uint64_t key)
{
	size_t i = key & r->prefix_mask;
	while (r->prefix[i] != 0 && r->prefix[i] != key)
		i = (i + 1) & r->prefix_mask;
	r->prefix[i] = key;
}

/* The longest k < L such that the last k of the n bytes t is a proper
 * prefix of some form (0 if none), given that it is at most `max`: the
 * proper prefixes are closed under taking prefixes, so after `added`
 * bytes the answer is at most the previous one plus `added` (a byte per
 * feed then costs a lookup or two, not L). */
static size_t tail_prefix(const struct run_redactor *r, const unsigned char *t, size_t n, size_t max)
{
	size_t best = 0;
	if (max > n)
		max = n;
	if (max > r->longest - 1)
		max = r->longest - 1;
	uint64_t h = 0;
	for (size_t k = 1; k <= max; k++) {
		unsigned char c = t[n - k];
		h += (uint64_t)(c + 1u) * r->pow[k - 1];
		if ((r->first[c >> 3] >> (c & 7)) & 1 && prefix_has(r, prefix_key(r, h, k)))
			best = k;
	}
	return best;
}

void run_redactor_free(struct run_redactor *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_needles; i++)
		free(r->names ? r->names[i] : NULL);
	free(r->names);
	free(r->name_len);
	free(r->skipped);
	free(r->needle_of);
	match_set_free(r->set);
	secbuf_free(r->mem);
	sodium_memzero(r, sizeof *r);
	free(r);
}

static void *zalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		latch_error(LATCH_OPERR, "cannot allocate the redactor");
	return p;
}

struct run_redactor *run_redactor_new(const struct run_needle *needles, size_t n)
{
	struct run_redactor *r = zalloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->n_needles = n;
	if (!(r->names = zalloc(n, sizeof *r->names)) || !(r->name_len = zalloc(n, sizeof *r->name_len)) ||
	    !(r->skipped = zalloc(n, sizeof *r->skipped)))
		goto fail;
	struct match_form **forms = zalloc(n, sizeof *forms);
	size_t *counts = zalloc(n, sizeof *counts);
	size_t n_forms = 0, n_prefixes = 0;
	if (!forms || !counts)
		goto fail_forms;
	for (size_t i = 0; i < n; i++) {
		const char *name = needles[i].name ? needles[i].name : "";
		size_t len = strlen(name) + sizeof "[latch:]";
		if (!(r->names[i] = malloc(len))) {
			latch_error(LATCH_OPERR, "cannot allocate the redactor");
			goto fail_forms;
		}
		snprintf(r->names[i], len, "[latch:%s]", name);
		r->name_len[i] = len - 1;
		if (needles[i].len < RUN_REDACT_MIN) {
			r->skipped[i] = true;
			continue;
		}
		if (match_forms(needles[i].value, needles[i].len, RUN_REDACT_MIN, &forms[i], &counts[i]) != 0)
			goto fail_forms;
		for (size_t j = 0; j < counts[i]; j++) {
			size_t fl = forms[i][j].bytes->len;
			n_forms++;
			n_prefixes += fl - 1;
			if (fl > r->longest)
				r->longest = fl;
		}
	}
	if (n_forms > 0) {
		size_t slots = 16;
		while (slots < 2 * n_prefixes)
			slots *= 2;
		/* prefix[slots], pow[L], first[32] */
		size_t bytes = slots * 8 + r->longest * 8 + 32;
		if (!(r->set = match_set_new()) || !(r->needle_of = zalloc(n_forms, sizeof *r->needle_of)) ||
		    !(r->mem = secbuf_new(bytes)))
			goto fail_forms;
		memset(r->mem->data, 0, bytes);
		r->prefix = (uint64_t *)(void *)r->mem->data;
		r->prefix_mask = slots - 1;
		r->pow = r->prefix + slots;
		r->first = (unsigned char *)(r->pow + r->longest);
		randombytes_buf(&r->key, sizeof r->key);
		uint64_t p;
		randombytes_buf(&p, sizeof p);
		p |= 1;
		r->pow[0] = 1;
		for (size_t k = 1; k < r->longest; k++)
			r->pow[k] = r->pow[k - 1] * p;
		uint32_t id = 0;
		for (size_t i = 0; i < n; i++) {
			for (size_t j = 0; j < counts[i]; j++) {
				const unsigned char *f = forms[i][j].bytes->data;
				size_t fl = forms[i][j].bytes->len;
				if (match_set_add(r->set, f, fl, id) != 0)
					goto fail_forms;
				r->needle_of[id++] = (uint32_t)i;
				r->first[f[0] >> 3] |= (unsigned char)(1u << (f[0] & 7));
				uint64_t h = 0;
				for (size_t k = 1; k < fl; k++) {
					h = h * p + (uint64_t)(f[k - 1] + 1u);
					prefix_put(r, prefix_key(r, h, k));
				}
			}
			match_forms_free(forms[i], counts[i]);
			forms[i] = NULL;
			counts[i] = 0;
		}
		sodium_memzero(&p, sizeof p);
		if (match_set_build(r->set) != 0)
			goto fail_forms;
	}
	free(forms);
	free(counts);
	return r;
fail_forms:
	for (size_t i = 0; forms && i < n; i++)
		match_forms_free(forms[i], counts ? counts[i] : 0);
	free(forms);
	free(counts);
fail:
	run_redactor_free(r);
	return NULL;
}

bool run_redactor_skipped(const struct run_redactor *r, size_t needle)
{
	return needle < r->n_needles && r->skipped[needle];
}

struct run_redact_out *run_redact_out_new(const struct run_redactor *r, int fd)
{
	struct run_redact_out *o = zalloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->r = r;
	o->fd = fd;
	o->words = (r->n_needles + 63) / 64;
	if (!(o->count = zalloc(r->n_needles, sizeof *o->count)))
		goto fail;
	if (r->set) {
		size_t t = r->longest - 1;
		if (!(o->btail = secbuf_new(t)) || !(o->ftail = secbuf_new(t)) ||
		    !(o->ftail_pos = zalloc(t, sizeof *o->ftail_pos)) || !(o->tpos = zalloc(t, sizeof *o->tpos)) ||
		    !(o->hold = secbuf_new(4 * r->longest)))
			goto fail;
		match_stream_init(&o->st_b, r->set);
		match_stream_init(&o->st_f, r->set);
	}
	return o;
fail:
	run_redact_out_free(o);
	return NULL;
}

void run_redact_out_free(struct run_redact_out *o)
{
	if (!o)
		return;
	secbuf_free(o->btail);
	secbuf_free(o->ftail);
	secbuf_free(o->hold);
	secbuf_free(o->fbuf);
	free(o->ftail_pos);
	free(o->seg_f);
	free(o->seg_b);
	free(o->tpos);
	free(o->occ);
	free(o->ranges);
	free(o->bits);
	free(o->count);
	sodium_memzero(o, sizeof *o);
	free(o);
}

size_t run_redact_held(const struct run_redact_out *o)
{
	return (size_t)(o->total - o->written);
}

uint64_t run_redact_count(const struct run_redact_out *o, size_t needle)
{
	return needle < o->r->n_needles ? o->count[needle] : 0;
}

/* ---- Output ---- */

static int obuf_flush(struct run_redact_out *o)
{
	if (o->obuf_n == 0)
		return 0;
	int rc = write_all(o->fd, o->obuf, o->obuf_n);
	o->obuf_n = 0;
	return rc;
}

static int out(struct run_redact_out *o, const unsigned char *p, size_t n)
{
	if (n >= OBUF_CAP / 2) {
		if (obuf_flush(o) != 0)
			return -1;
		return write_all(o->fd, p, n);
	}
	if (n > OBUF_CAP - o->obuf_n && obuf_flush(o) != 0)
		return -1;
	memcpy(o->obuf + o->obuf_n, p, n);
	o->obuf_n += n;
	return 0;
}

/* Write B[x, y) as it is, from the held bytes and the chunk. */
static int out_raw(struct run_redact_out *o, uint64_t x, uint64_t y)
{
	if (x >= y)
		return 0;
	uint64_t hold_end = o->hold_b0 + o->hold->len;
	if (x < hold_end) {
		uint64_t e = y < hold_end ? y : hold_end;
		if (out(o, o->hold->data + (x - o->hold_b0), (size_t)(e - x)) != 0)
			return -1;
		x = e;
	}
	if (x < y && out(o, o->chunk + (x - o->chunk_b0), (size_t)(y - x)) != 0)
		return -1;
	return 0;
}

/* Write the first range (B before it as it is, then its marker), count
 * it and drop it. */
static int out_range(struct run_redact_out *o)
{
	struct range *g = &o->ranges[0];
	const struct run_redactor *r = o->r;
	if (out_raw(o, o->written, g->start) != 0)
		return -1;
	uint32_t nd = g->best.needle;
	if (out(o, (const unsigned char *)r->names[nd], r->name_len[nd]) != 0)
		return -1;
	o->written = g->end;
	for (size_t w = 0; w < o->words; w++)
		for (uint64_t b = o->bits[w]; b; b &= b - 1)
			o->count[w * 64 + (size_t)__builtin_ctzll(b)]++;
	o->n_ranges--;
	memmove(o->ranges, o->ranges + 1, o->n_ranges * sizeof *o->ranges);
	memmove(o->bits, o->bits + o->words, o->n_ranges * o->words * sizeof *o->bits);
	return 0;
}

/* ---- Occurrences ---- */

static int push_occ(struct run_redact_out *o, uint64_t start, uint64_t end, uint32_t id)
{
	if (o->n_occ == o->cap_occ) {
		size_t cap = o->cap_occ ? 2 * o->cap_occ : 256;
		struct occ *bigger = realloc(o->occ, cap * sizeof *bigger);
		if (!bigger) {
			errno = ENOMEM;
			return -1;
		}
		o->occ = bigger;
		o->cap_occ = cap;
	}
	o->occ[o->n_occ++] = (struct occ){start, end, o->r->needle_of[id]};
	return 0;
}

static int on_b(uint32_t id, uint64_t start, uint64_t end, void *ctx)
{
	return push_occ(ctx, start, end, id);
}

/* The B offset of F byte f: in the chunk's F bytes, or in the tail. */
static uint64_t f_to_b(const struct run_redact_out *o, uint64_t f, uint64_t chunk_f0, bool linear)
{
	if (f >= chunk_f0 && linear)
		return o->chunk_b0 + (f - chunk_f0);
	if (f >= chunk_f0) {
		size_t x = (size_t)(f - chunk_f0), lo = 0, hi = o->n_seg;
		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;
			if (o->seg_f[mid] <= x)
				lo = mid;
			else
				hi = mid;
		}
		return o->seg_b[lo] + (x - o->seg_f[lo]);
	}
	return o->ftail_pos[o->ftail->len - (size_t)(chunk_f0 - f)];
}

struct f_ctx {
	struct run_redact_out *o;
	uint64_t chunk_f0;
	bool linear;
};

static int on_f(uint32_t id, uint64_t start, uint64_t end, void *ctx)
{
	struct f_ctx *c = ctx;
	return push_occ(c->o, f_to_b(c->o, start, c->chunk_f0, c->linear),
			f_to_b(c->o, end - 1, c->chunk_f0, c->linear) + 1, id);
}

static bool before(const struct occ *a, const struct occ *b)
{
	if (a->start != b->start)
		return a->start < b->start;
	if (a->end != b->end)
		return a->end > b->end;
	return a->needle < b->needle;
}

static int by_end(const void *a, const void *b)
{
	const struct occ *x = a, *y = b;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Fold the feed's occurrences (sorted by end; each ends after every
 * range) into the ranges. */
static int merge_occs(struct run_redact_out *o)
{
	for (size_t i = 0; i < o->n_occ; i++) {
		struct occ c = o->occ[i];
		if (c.start < o->written)
			c.start = o->written;
		/* The ranges it overlaps or touches are a suffix. */
		size_t k = o->n_ranges;
		while (k > 0 && o->ranges[k - 1].end >= c.start)
			k--;
		if (k == o->n_ranges) {
			if (o->n_ranges == o->cap_ranges) {
				size_t cap = o->cap_ranges ? 2 * o->cap_ranges : 16;
				struct range *rg = realloc(o->ranges, cap * sizeof *rg);
				if (!rg)
					goto nomem;
				o->ranges = rg;
				uint64_t *bits = realloc(o->bits, cap * (o->words ? o->words : 1) * sizeof *bits);
				if (!bits)
					goto nomem;
				o->bits = bits;
				o->cap_ranges = cap;
			}
			o->ranges[k] = (struct range){c.start, c.end, c};
			memset(o->bits + k * o->words, 0, o->words * sizeof *o->bits);
			o->n_ranges++;
		} else {
			struct range *g = &o->ranges[k];
			uint64_t *bits = o->bits + k * o->words;
			for (size_t j = k + 1; j < o->n_ranges; j++) {
				if (before(&o->ranges[j].best, &g->best))
					g->best = o->ranges[j].best;
				for (size_t w = 0; w < o->words; w++)
					bits[w] |= o->bits[j * o->words + w];
			}
			o->n_ranges = k + 1;
			if (c.start < g->start)
				g->start = c.start;
			if (c.end > g->end)
				g->end = c.end;
			if (before(&c, &g->best))
				g->best = c;
		}
		o->bits[k * o->words + c.needle / 64] |= (uint64_t)1 << (c.needle % 64);
	}
	o->n_occ = 0;
	return 0;
nomem:
	errno = ENOMEM;
	return -1;
}

/* ---- Escape sequences ---- */

/* Whether byte c (in state *s) is part of an escape sequence; moves *s. */
static bool esc_step(struct run_redact_out *o, unsigned char c)
{
	switch (o->esc) {
	case E_GROUND:
		if (c != ESC)
			return false;
		o->esc = E_ESC;
		return true;
	case E_ESC:
		if (c == '[') {
			o->esc = E_CSI, o->esc_len = 0;
		} else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
			o->esc = E_STR, o->esc_len = 0;
		} else if (c >= 0x20 && c <= 0x2f) {
			o->esc = E_INTER, o->esc_len = 1;
		} else if (c >= 0x30 && c <= 0x7e) {
			o->esc = E_GROUND;
		} else if (c != ESC) {
			o->esc = E_GROUND;
			return false;
		}
		return true;
	case E_INTER:
		if (c >= 0x20 && c <= 0x2f && o->esc_len < ESC_INTER_MAX) {
			o->esc_len++;
			return true;
		}
		break;
	case E_CSI:
		if (c >= 0x40 && c <= 0x7e) {
			o->esc = E_GROUND;
			return true;
		}
		if (c >= 0x20 && c <= 0x3f && o->esc_len < ESC_CSI_MAX) {
			o->esc_len++;
			return true;
		}
		break;
	case E_STR:
		if (c == 0x07) {
			o->esc = E_GROUND;
			return true;
		}
		if (c != ESC && c >= 0x20 && o->esc_len < ESC_STR_MAX) {
			o->esc_len++;
			return true;
		}
		break;
	}
	if (c == ESC) {
		o->esc = E_ESC;
		return true;
	}
	if (o->esc == E_INTER && c >= 0x30 && c <= 0x7e) {
		o->esc = E_GROUND;
		return true;
	}
	o->esc = E_GROUND;
	return false;
}

/* Keep the last L - 1 bytes of `buf` after appending p[0..n) (and, for F,
 * their B offsets: pos, or b0 + i when pos is NULL). */
static void tail_push(struct secbuf *buf, uint64_t *tpos, const unsigned char *p, const uint64_t *pos, uint64_t b0,
		      size_t n)
{
	size_t cap = buf->cap;
	if (n >= cap) {
		p += n - cap, b0 += n - cap;
		if (pos)
			pos += n - cap;
		n = cap;
		buf->len = 0;
	} else if (buf->len + n > cap) {
		size_t drop = buf->len + n - cap;
		memmove(buf->data, buf->data + drop, buf->len - drop);
		if (tpos)
			memmove(tpos, tpos + drop, (buf->len - drop) * sizeof *tpos);
		buf->len -= drop;
	}
	memcpy(buf->data + buf->len, p, n);
	if (tpos)
		for (size_t i = 0; i < n; i++)
			tpos[buf->len + i] = pos ? pos[i] : b0 + i;
	buf->len += n;
}

static int grow_fbuf(struct run_redact_out *o, size_t n)
{
	/* Runs are separated by escape bytes: at most n / 2 + 1. */
	size_t segs = n / 2 + 2;
	if (o->fbuf && o->fbuf->cap >= n && o->seg_cap >= segs)
		return 0;
	size_t cap = 4096;
	while (cap < n)
		cap *= 2;
	struct secbuf *b = secbuf_new(cap);
	size_t *sf = b ? realloc(o->seg_f, (cap / 2 + 2) * sizeof *sf) : NULL;
	if (sf)
		o->seg_f = sf;
	uint64_t *sb = sf ? realloc(o->seg_b, (cap / 2 + 2) * sizeof *sb) : NULL;
	if (!sb) {
		secbuf_free(b);
		errno = ENOMEM;
		return -1;
	}
	secbuf_free(o->fbuf);
	o->fbuf = b;
	o->seg_b = sb;
	o->seg_cap = cap / 2 + 2;
	return 0;
}

/* Add p[i..j) (B offsets b0 + i ...) to the chunk's text. */
static void add_text(struct run_redact_out *o, const unsigned char *p, size_t i, size_t j, uint64_t b0, size_t *nf)
{
	memcpy(o->fbuf->data + *nf, p + i, j - i);
	size_t s = o->n_seg;
	if (s == 0 || o->seg_b[s - 1] + (*nf - o->seg_f[s - 1]) != b0 + i) {
		o->seg_f[s] = *nf;
		o->seg_b[s] = b0 + i;
		o->n_seg++;
	}
	*nf += j - i;
}

/* Keep B[from, total) in the hold buffer (the chunk's part copied in). */
static int keep_held(struct run_redact_out *o, uint64_t from)
{
	uint64_t hold_end = o->hold_b0 + o->hold->len;
	size_t keep_old = from < hold_end ? (size_t)(hold_end - from) : 0;
	uint64_t cfrom = from > o->chunk_b0 ? from : o->chunk_b0;
	size_t keep_new = o->chunk ? (size_t)(o->chunk_b0 + o->chunk_n - cfrom) : 0;
	if (keep_old + keep_new > o->hold->cap) {
		size_t cap = o->hold->cap;
		while (cap < keep_old + keep_new)
			cap *= 2;
		struct secbuf *b = secbuf_new(cap);
		if (!b) {
			errno = ENOMEM;
			return -1;
		}
		memcpy(b->data, o->hold->data + (o->hold->len - keep_old), keep_old);
		secbuf_free(o->hold);
		o->hold = b;
	} else {
		memmove(o->hold->data, o->hold->data + (o->hold->len - keep_old), keep_old);
	}
	if (keep_new)
		memcpy(o->hold->data + keep_old, o->chunk + (cfrom - o->chunk_b0), keep_new);
	o->hold->len = keep_old + keep_new;
	o->hold_b0 = o->total - o->hold->len;
	return 0;
}

/* Write what can no longer change: ranges that nothing can extend, and
 * the bytes before `limit` (all of them, and every range, when `all`). */
static int settle(struct run_redact_out *o, uint64_t limit, bool all)
{
	while (o->n_ranges > 0 && (all || o->ranges[0].end < limit))
		if (out_range(o) != 0)
			return -1;
	if (o->n_ranges > 0 && o->ranges[0].start < limit)
		limit = o->ranges[0].start;
	if (limit > o->written) {
		if (out_raw(o, o->written, limit) != 0)
			return -1;
		o->written = limit;
	}
	if (obuf_flush(o) != 0)
		return -1;
	uint64_t from = o->written;
	if (o->n_ranges > 0 && o->ranges[0].start == from)
		from = o->ranges[0].end;
	return keep_held(o, from);
}

int run_redact_feed(struct run_redact_out *o, const unsigned char *p, size_t n)
{
	const struct run_redactor *r = o->r;
	if (!r->set) {
		o->total += n;
		o->written = o->total;
		return write_all(o->fd, p, n);
	}
	if (n == 0)
		return 0;
	size_t L = r->longest;
	uint64_t b0 = o->total, f0 = o->ftotal;
	o->chunk = p, o->chunk_b0 = b0, o->chunk_n = n;
	o->n_occ = 0;
	bool esc = o->esc != E_GROUND || memchr(p, ESC, n) != NULL;
	/* While B's last L bytes have no escape byte, F's are the same. */
	bool synced = !o->any_esc || b0 - o->last_esc_end >= L;
	int rc = 0;
	if (!esc) {
		struct f_ctx fc = {o, f0, true};
		if (match_stream_feed(&o->st_b, p, n, on_b, o) != 0)
			goto fail;
		if (!synced) {
			size_t k = (size_t)(L - (b0 - o->last_esc_end));
			if (k > n)
				k = n;
			if (match_stream_feed(&o->st_f, p, k, on_f, &fc) != 0)
				goto fail;
			synced = k < n;
		}
		if (synced) {
			o->st_f.state = o->st_b.state;
			o->st_f.fed = f0 + n;
		}
		o->ftotal += n;
		o->total += n;
		tail_push(o->btail, NULL, p, NULL, 0, n);
		tail_push(o->ftail, o->ftail_pos, p, NULL, b0, n);
	} else {
		if (grow_fbuf(o, n) != 0)
			goto fail;
		size_t nf = 0;
		o->n_seg = 0;
		for (size_t i = 0; i < n; i++) {
			if (o->esc == E_GROUND) {
				const unsigned char *e = memchr(p + i, ESC, n - i);
				size_t j = e ? (size_t)(e - p) : n;
				if (j > i)
					add_text(o, p, i, j, b0, &nf);
				if ((i = j) == n)
					break;
			}
			if (esc_step(o, p[i])) {
				o->last_esc_end = b0 + i + 1;
				o->any_esc = true;
			} else {
				add_text(o, p, i, i + 1, b0, &nf);
			}
		}
		struct f_ctx fc = {o, f0, false};
		if (match_stream_feed(&o->st_b, p, n, on_b, o) != 0 ||
		    match_stream_feed(&o->st_f, o->fbuf->data, nf, on_f, &fc) != 0)
			goto fail;
		o->ftotal += nf;
		o->total += n;
		tail_push(o->btail, NULL, p, NULL, 0, n);
		size_t k = nf < r->longest - 1 ? nf : r->longest - 1;
		for (size_t i = 0; i < k; i++)
			o->tpos[i] = f_to_b(o, f0 + nf - k + i, f0, false);
		tail_push(o->ftail, o->ftail_pos, o->fbuf->data + nf - k, o->tpos, 0, k);
		sodium_memzero(o->fbuf->data, nf);
	}
	/* The two views' occurrences, in order of end. */
	for (size_t i = 1; i < o->n_occ; i++)
		if (by_end(&o->occ[i - 1], &o->occ[i]) > 0) {
			qsort(o->occ, o->n_occ, sizeof *o->occ, by_end);
			break;
		}
	if (merge_occs(o) != 0)
		goto fail;
	/* Where the longest partial occurrence, of either view, starts. */
	o->kb = tail_prefix(r, o->btail->data, o->btail->len, o->kb + n);
	o->kf = tail_prefix(r, o->ftail->data, o->ftail->len, o->kf + (size_t)(o->ftotal - f0));
	uint64_t hs = o->total - o->kb;
	size_t kf = o->kf;
	if (kf && o->ftail_pos[o->ftail->len - kf] < hs)
		hs = o->ftail_pos[o->ftail->len - kf];
	if (hs < o->written)
		hs = o->written;
	rc = settle(o, hs, false);
	o->chunk = NULL;
	return rc;
fail:
	/* Out of memory in a callback or here: nothing sensible is left. */
	o->chunk = NULL;
	if (!errno)
		errno = ENOMEM;
	return -1;
}

int run_redact_flush(struct run_redact_out *o)
{
	if (!o->r->set)
		return 0;
	o->chunk = NULL;
	o->chunk_b0 = o->total, o->chunk_n = 0;
	return settle(o, o->total, true);
}
