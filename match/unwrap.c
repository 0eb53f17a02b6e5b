/* Wrapped base64 joined (match.h): the scanner's second view of a file,
 * so that a value's base64 form split across lines of 64 or 76
 * characters (PEM, MIME, `base64` without -w0, YAML block scalars) is one
 * run again. One pass over the lines; nothing is copied unless a break is
 * removed. The text is the file's, not a secret of latch's: plain memory. */
#include "match.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A line before a removed break holds at least this many characters, so
 * that short lines of prose or code are left alone. */
#define LINE_MIN 16

/* Both alphabets: A-Z a-z 0-9 + / - _ */
static const unsigned char b64char[256] = {
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
	['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
	['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
	['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
	['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1, ['+'] = 1, ['/'] = 1, ['-'] = 1, ['_'] = 1,
};

/* One line, in[start..end) without its \n: where its base64 begins
 * (after blanks), where its content ends (before a \r), and what it is. */
struct line {
	size_t cs, ce;
	bool base64; /* blanks, base64 characters, at most two '=', nothing else */
	bool opens;  /* base64, at least LINE_MIN characters, no '=': may be joined to the next */
};

static void classify(const unsigned char *in, size_t start, size_t end, struct line *l)
{
	size_t ce = end > start && in[end - 1] == '\r' ? end - 1 : end;
	size_t i = start;
	while (i < ce && (in[i] == ' ' || in[i] == '\t'))
		i++;
	l->cs = i;
	l->ce = ce;
	while (i < ce && b64char[in[i]])
		i++;
	size_t chars = i - l->cs, eq = 0;
	while (i < ce && in[i] == '=' && eq < 2)
		i++, eq++;
	l->base64 = chars > 0 && i == ce;
	l->opens = l->base64 && eq == 0 && chars >= LINE_MIN;
}

/* Append one cut, growing the arrays. */
static int add_cut(struct match_unwrapped *u, size_t *cap, size_t at, size_t len)
{
	if (u->n_cuts == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		size_t *a = realloc(u->cut_at, c * sizeof *a);
		if (!a)
			return -1;
		u->cut_at = a;
		size_t *l = realloc(u->cut_len, c * sizeof *l);
		if (!l)
			return -1;
		u->cut_len = l;
		*cap = c;
	}
	u->cut_at[u->n_cuts] = at;
	u->cut_len[u->n_cuts] = len;
	u->n_cuts++;
	return 0;
}

int match_unwrap_base64(const unsigned char *in, size_t n, struct match_unwrapped *u)
{
	memset(u, 0, sizeof *u);
	size_t cap = 0, copied = 0, pos = 0;
	struct line prev = {0}, cur;
	bool have_prev = false;
	for (;;) {
		const unsigned char *nl = n > pos ? memchr(in + pos, '\n', n - pos) : NULL;
		size_t end = nl ? (size_t)(nl - in) : n;
		classify(in, pos, end, &cur);
		if (have_prev && prev.opens && cur.base64) {
			/* Remove [prev.ce, cur.cs): the \r\n or \n and the blanks. */
			if (!u->text && !(u->text = malloc(n))) {
				match_unwrapped_free(u);
				return latch_error(LATCH_OPERR, "cannot allocate memory to join base64 lines");
			}
			memcpy(u->text + u->len, in + copied, prev.ce - copied);
			u->len += prev.ce - copied;
			if (add_cut(u, &cap, u->len, cur.cs - prev.ce) != 0) {
				match_unwrapped_free(u);
				return latch_error(LATCH_OPERR, "cannot allocate memory to join base64 lines");
			}
			copied = cur.cs;
		}
		prev = cur;
		have_prev = true;
		if (!nl)
			break;
		pos = end + 1;
	}
	if (!u->text)
		return 1;
	memcpy(u->text + u->len, in + copied, n - copied);
	u->len += n - copied;
	return 0;
}

size_t match_unwrapped_offset(const struct match_unwrapped *u, size_t off)
{
	size_t add = 0;
	for (size_t i = 0; i < u->n_cuts && u->cut_at[i] <= off; i++)
		add += u->cut_len[i];
	return off + add;
}

void match_unwrapped_free(struct match_unwrapped *u)
{
	if (!u)
		return;
	free(u->text);
	free(u->cut_at);
	free(u->cut_len);
	memset(u, 0, sizeof *u);
}
