/* Fuzz target: the redactor (run/redact.c), against a naive redactor
 * written plainly here. The input:
 *
 *   byte 0: k = 1 + byte % 4 needles
 *   k times: a length byte L (1 + L % 24: some are shorter than
 *            RUN_REDACT_MIN and skipped), then L bytes of value
 *   the rest: a script, two bytes an operation (op, arg):
 *     op % 8 == 0: a form of a needle (arg picks needle and form)
 *              1: the same with an escape sequence inside it
 *              2: an escape sequence (ESCAPES[arg % N])
 *              3: arg % 32 bytes of noise, taken from the script
 *              4: a feed boundary
 *              5: a flush, at a feed boundary
 *              6: a proper prefix of a form (arg picks it; then a byte
 *                 for its length)
 *              7: one byte, arg
 *
 * The haystack is fed piece by piece (at the boundaries, and also cut
 * every 257 bytes), flushed where the script says and at the end;
 * then fed again one byte at a time with the same flushes. Both outputs
 * must equal the naive redactor's, and so must the counts; after every
 * feed what came out must be a prefix of the final output, and after
 * every flush nothing is held. The naive redactor: classify every byte
 * (escape sequence or text, by the rules run/redact.c states); find every
 * occurrence of every form (match_forms) with memmem, in the bytes as they
 * are and in the text (escape bytes out), each as the range of bytes from
 * its first to its last; an occurrence belongs to the flush that first
 * follows its last byte, and starts no earlier than the flush before it;
 * within one flush's span, occurrences that overlap or touch make one
 * marker, named after the one that starts first (then the longest, then
 * the lowest needle), and count once for each needle among them. */
#include "fuzz.h"
#include "secmem.h"

#include "../../match/match.h"
#include "../../run/run.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_NEEDLES 4
#define MAX_HAY (1u << 16)
#define MAX_CUTS 4096

static void show(const char *label, const unsigned char *p, size_t n)
{
	fprintf(stderr, "%s (%zu): ", label, n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' ? "%c" : "\\x%02x", p[i]);
	fputc('\n', stderr);
}
static const unsigned char *dbg_hay, *dbg_want, *dbg_got;
static size_t dbg_hay_n, dbg_want_n, dbg_got_n;

static void fail(const char *what)
{
	if (getenv("LATCH_FUZZ_VERBOSE")) {
		show("haystack", dbg_hay, dbg_hay_n);
		show("want", dbg_want, dbg_want_n);
		show("got", dbg_got, dbg_got_n);
	}
	fprintf(stderr, "fuzz_redact: %s\n", what);
	abort();
}

static const char *const ESCAPES[] = {
	"\x1b[31m",
	"\x1b[0m",
	"\x1b[38;2;10;20;30m",
	"\x1b]0;a title\x07",
	"\x1b]8;;http://x/\x1b\\",
	"\x1b(B",
	"\033c",
	"\x1b",
	"\x1b[",
	"\x1b]",
	"\x1b[12",
	"\x1b\x1b[m",
	"\x1b[?25l",
	"\x1b P",
	"\x1b_apc\x1b\\",
	"\x1b[1;2\n",
};
#define N_ESCAPES (sizeof ESCAPES / sizeof ESCAPES[0])

/* ---- The naive redactor ---- */

/* Escape bytes, by the rules in run/redact.c, written out again. */
static void classify(const unsigned char *b, size_t n, bool *is_esc)
{
	enum { GROUND, AFTER_ESC, INTER, CSI, STR } s = GROUND;
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = b[i];
		bool e = false;
		switch (s) {
		case GROUND:
			if (c == 0x1b)
				s = AFTER_ESC, e = true;
			break;
		case AFTER_ESC:
			e = true;
			if (c == '[')
				s = CSI, len = 0;
			else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_')
				s = STR, len = 0;
			else if (c >= 0x20 && c <= 0x2f)
				s = INTER, len = 1;
			else if (c >= 0x30 && c <= 0x7e)
				s = GROUND;
			else if (c == 0x1b)
				s = AFTER_ESC;
			else
				s = GROUND, e = false;
			break;
		case INTER:
			if (c >= 0x20 && c <= 0x2f && len < 4)
				len++, e = true;
			else if (c >= 0x30 && c <= 0x7e)
				s = GROUND, e = true;
			else if (c == 0x1b)
				s = AFTER_ESC, e = true;
			else
				s = GROUND;
			break;
		case CSI:
			if (c >= 0x40 && c <= 0x7e)
				s = GROUND, e = true;
			else if (c >= 0x20 && c <= 0x3f && len < 32)
				len++, e = true;
			else if (c == 0x1b)
				s = AFTER_ESC, e = true;
			else
				s = GROUND;
			break;
		case STR:
			if (c == 0x07)
				s = GROUND, e = true;
			else if (c == 0x1b)
				s = AFTER_ESC, e = true;
			else if (c >= 0x20 && len < 4096)
				len++, e = true;
			else
				s = GROUND;
			break;
		}
		is_esc[i] = e;
	}
}

struct nocc {
	size_t start, end, needle;
};

struct needles {
	size_t n;
	struct run_needle nd[MAX_NEEDLES];
	struct match_form *forms[MAX_NEEDLES];
	size_t n_forms[MAX_NEEDLES];
};

static int by_start(const void *a, const void *b)
{
	const struct nocc *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->end != y->end)
		return x->end > y->end ? -1 : 1;
	return x->needle < y->needle ? -1 : x->needle > y->needle;
}

struct buf {
	unsigned char *p;
	size_t n, cap;
};
static void put(struct buf *b, const void *p, size_t n)
{
	if (!b->p || b->n + n > b->cap) {
		b->cap = 2 * (b->n + n) + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			fail("out of memory");
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

/* The naive output and counts, for flushes at flush[0..nf) (offsets,
 * ascending, the last one n). */
static void naive(const struct needles *ns, const unsigned char *b, size_t n, const size_t *flush, size_t nf,
		  struct buf *outp, uint64_t *count)
{
	bool *is_esc = malloc(n + 1);
	unsigned char *f = malloc(n + 1);
	size_t *fpos = malloc((n + 1) * sizeof *fpos), nfb = 0;
	size_t cap = 1024, no = 0;
	struct nocc *occ = malloc(cap * sizeof *occ);
	if (!is_esc || !f || !fpos || !occ)
		fail("out of memory");
	classify(b, n, is_esc);
	for (size_t i = 0; i < n; i++)
		if (!is_esc[i])
			f[nfb] = b[i], fpos[nfb++] = i;
	for (size_t i = 0; i < ns->n; i++)
		for (size_t j = 0; j < ns->n_forms[i]; j++) {
			const unsigned char *pat = ns->forms[i][j].bytes->data;
			size_t pl = ns->forms[i][j].bytes->len;
			for (int view = 0; view < 2; view++) {
				const unsigned char *t = view ? f : b;
				size_t tn = view ? nfb : n;
				for (size_t at = 0; at + pl <= tn; at++) {
					if (memcmp(t + at, pat, pl) != 0)
						continue;
					if (no == cap) {
						cap *= 2;
						occ = realloc(occ, cap * sizeof *occ);
						if (!occ)
							fail("out of memory");
					}
					occ[no++] = view ? (struct nocc){fpos[at], fpos[at + pl - 1] + 1, i}
							 : (struct nocc){at, at + pl, i};
				}
			}
		}
	size_t w_prev = 0, written = 0;
	struct nocc *ep = malloc((no + 1) * sizeof *ep);
	if (!ep)
		fail("out of memory");
	for (size_t k = 0; k < nf; k++) {
		size_t w = flush[k], ne = 0;
		for (size_t i = 0; i < no; i++)
			if (occ[i].end > w_prev && occ[i].end <= w) {
				ep[ne] = occ[i];
				if (ep[ne].start < w_prev)
					ep[ne].start = w_prev;
				ne++;
			}
		qsort(ep, ne, sizeof *ep, by_start);
		for (size_t i = 0; i < ne;) {
			size_t end = ep[i].end, j = i + 1;
			bool seen[MAX_NEEDLES] = {false};
			seen[ep[i].needle] = true;
			while (j < ne && ep[j].start <= end) {
				if (ep[j].end > end)
					end = ep[j].end;
				seen[ep[j].needle] = true;
				j++;
			}
			put(outp, b + written, ep[i].start - written);
			char m[64];
			snprintf(m, sizeof m, "[latch:%s]", ns->nd[ep[i].needle].name);
			put(outp, m, strlen(m));
			for (size_t x = 0; x < ns->n; x++)
				count[x] += seen[x];
			written = end;
			i = j;
		}
		put(outp, b + written, w - written);
		written = w_prev = w;
	}
	free(ep);
	free(occ);
	free(fpos);
	free(f);
	free(is_esc);
}

/* ---- Feeding the redactor ---- */

static int out_fd = -1;

static void read_out(struct buf *b)
{
	off_t end = lseek(out_fd, 0, SEEK_CUR);
	if (end < 0)
		fail("lseek");
	b->n = 0;
	if (!b->p || b->cap < (size_t)end + 1) {
		b->cap = (size_t)end + 1;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			fail("out of memory");
	}
	if (pread(out_fd, b->p, (size_t)end, 0) != end)
		fail("pread");
	b->n = (size_t)end;
	dbg_got = b->p, dbg_got_n = b->n;
}

static void run(const struct run_redactor *r, const unsigned char *hay, size_t n, const size_t *cuts, size_t ncuts,
		const bool *cut_flush, bool bytewise, const struct buf *want, const uint64_t *want_count,
		size_t n_needles, struct buf *got)
{
	if (ftruncate(out_fd, 0) != 0 || lseek(out_fd, 0, SEEK_SET) != 0)
		fail("ftruncate");
	struct run_redact_out *o = run_redact_out_new(r, out_fd);
	if (!o)
		fail("run_redact_out_new");
	size_t at = 0;
	for (size_t c = 0; c <= ncuts; c++) {
		size_t to = c < ncuts ? cuts[c] : n;
		while (at < to) {
			size_t step = bytewise ? 1 : to - at > 257 ? 257 : to - at;
			if (run_redact_feed(o, hay + at, step) != 0)
				fail("run_redact_feed");
			at += step;
			read_out(got);
			if (got->n > want->n || memcmp(got->p, want->p, got->n) != 0)
				fail("a feed wrote what the final output does not begin with");
		}
		if (c < ncuts && cut_flush[c]) {
			if (run_redact_flush(o) != 0)
				fail("run_redact_flush");
			if (run_redact_held(o) != 0)
				fail("bytes held after a flush");
		}
	}
	if (run_redact_flush(o) != 0)
		fail("run_redact_flush");
	if (run_redact_held(o) != 0)
		fail("bytes held after the last flush");
	read_out(got);
	if (got->n != want->n || memcmp(got->p, want->p, got->n) != 0)
		fail("the output differs from the naive redactor's");
	for (size_t i = 0; i < n_needles; i++)
		if (run_redact_count(o, i) != want_count[i])
			fail("a count differs from the naive redactor's");
	run_redact_out_free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static struct buf hay, want, got;
	static size_t cuts[MAX_CUTS + 1], flush_at[MAX_CUTS + 2];
	static bool cut_flush[MAX_CUTS + 1];
	if (!ready) {
		if (sodium_init() < 0)
			fail("sodium_init");
		latch_error_quiet(true);
		out_fd = memfd_create("fuzz_redact", 0);
		if (out_fd < 0)
			fail("memfd_create");
		ready = true;
	}
	if (size < 2)
		return 0;
	long before = secmem_in_use();
	static const char *const names[MAX_NEEDLES] = {"a", "bb", "c.c", "d-4"};
	struct needles ns = {0};
	size_t k = 1 + data[0] % MAX_NEEDLES, at = 1;
	while (ns.n < k && at < size) {
		size_t l = 1 + data[at++] % 24;
		if (l > size - at)
			l = size - at;
		ns.nd[ns.n] = (struct run_needle){names[ns.n], data + at, l};
		ns.n_forms[ns.n] = 0;
		if (l >= RUN_REDACT_MIN &&
		    match_forms(data + at, l, RUN_REDACT_MIN, &ns.forms[ns.n], &ns.n_forms[ns.n]) != 0)
			fail("match_forms");
		ns.n++;
		at += l;
	}
	struct run_redactor *r = run_redactor_new(ns.nd, ns.n);
	if (!r)
		fail("run_redactor_new");
	for (size_t i = 0; i < ns.n; i++)
		if (run_redactor_skipped(r, i) != (ns.nd[i].len < RUN_REDACT_MIN))
			fail("run_redactor_skipped is wrong");

	/* The script. */
	hay.n = 0;
	size_t ncuts = 0;
	while (at + 1 < size && hay.n < MAX_HAY && ncuts < MAX_CUTS) {
		unsigned op = data[at] % 8, arg = data[at + 1];
		at += 2;
		size_t ni = arg % ns.n;
		const struct match_form *fm = ns.n_forms[ni] ? &ns.forms[ni][(arg / MAX_NEEDLES) % ns.n_forms[ni]]
							     : NULL;
		switch (op) {
		case 0:
			if (fm)
				put(&hay, fm->bytes->data, fm->bytes->len);
			break;
		case 1:
			if (fm) {
				size_t cut = 1 + (arg >> 4) % (fm->bytes->len - 1);
				const char *e = ESCAPES[(arg >> 2) % N_ESCAPES];
				put(&hay, fm->bytes->data, cut);
				put(&hay, e, strlen(e));
				put(&hay, fm->bytes->data + cut, fm->bytes->len - cut);
			}
			break;
		case 2:
			put(&hay, ESCAPES[arg % N_ESCAPES], strlen(ESCAPES[arg % N_ESCAPES]));
			break;
		case 3: {
			size_t l = arg % 32;
			if (l > size - at)
				l = size - at;
			put(&hay, data + at, l);
			at += l;
			break;
		}
		case 4:
		case 5:
			if (ncuts == 0 || cuts[ncuts - 1] != hay.n) {
				cuts[ncuts] = hay.n;
				cut_flush[ncuts++] = false;
			}
			cut_flush[ncuts - 1] |= op == 5;
			break;
		case 6:
			if (fm && at < size) {
				size_t l = 1 + data[at++] % (fm->bytes->len - 1);
				put(&hay, fm->bytes->data, l);
			}
			break;
		default: {
			unsigned char c = (unsigned char)arg;
			put(&hay, &c, 1);
		}
		}
	}
	size_t nf = 0;
	for (size_t i = 0; i < ncuts; i++)
		if (cut_flush[i])
			flush_at[nf++] = cuts[i];
	flush_at[nf++] = hay.n;

	uint64_t want_count[MAX_NEEDLES] = {0};
	want.n = 0;
	naive(&ns, hay.p, hay.n, flush_at, nf, &want, want_count);
	dbg_hay = hay.p, dbg_hay_n = hay.n, dbg_want = want.p, dbg_want_n = want.n;
	run(r, hay.p, hay.n, cuts, ncuts, cut_flush, false, &want, want_count, ns.n, &got);
	if (getenv("LATCH_FUZZ_VERBOSE") && strcmp(getenv("LATCH_FUZZ_VERBOSE"), "2") == 0) {
		show("haystack", hay.p, hay.n);
		show("output", want.p, want.n);
	}
	if (hay.n <= 4096)
		run(r, hay.p, hay.n, cuts, ncuts, cut_flush, true, &want, want_count, ns.n, &got);

	run_redactor_free(r);
	for (size_t i = 0; i < ns.n; i++)
		match_forms_free(ns.forms[i], ns.n_forms[i]);
	secmem_check(before, "run_redactor_free");
	return 0;
}
