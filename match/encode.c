/* The encodings of a value (match.h). Each candidate form is written into
 * one scratch secbuf sized by the encodings' bounds, kept unless it is too
 * short or equal to an earlier one, and the kept forms are then copied
 * into one secure allocation of exactly their size. One allocation, not
 * one per form: each sodium_malloc is six system calls and three
 * mappings (a guard page, the data, a guard page), and a caller holding
 * the forms of 1,000 values would otherwise hold up to 26,000 of them,
 * 78,000 mappings, past vm.max_map_count's default of 65,530. As it is,
 * match_forms takes 3.6 us for a 24-48 byte value, its two allocations
 * and frees included (bench/match_bench.c). Hex and base64 are
 * libsodium's; a base64 core is cut from libsodium's encoding by bit
 * position (base64_core), which the fuzz target checks against blobs
 * with zero and with 0xff bytes around the value. */
#include "match.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Values are at most 1 MiB (VAULT_VALUE_MAX); the bound keeps every size
 * below far from overflow. */
#define VALUE_LIMIT ((size_t)64 * 1024 * 1024)

static const char *const names[MATCH_N_ENCODINGS] = {
	[MATCH_RAW] = "raw",
	[MATCH_BASE64] = "base64",
	[MATCH_BASE64URL] = "base64url",
	[MATCH_HEX_LOWER] = "hex",
	[MATCH_HEX_UPPER] = "HEX",
	[MATCH_PERCENT_LOWER] = "percent",
	[MATCH_PERCENT_UPPER] = "PERCENT",
	[MATCH_JSON] = "json",
	[MATCH_SHELL_SINGLE] = "shell-single",
	[MATCH_SHELL_DOUBLE] = "shell-double",
	[MATCH_YAML_SINGLE] = "yaml-single",
	[MATCH_YAML_DOUBLE] = "yaml-double",
	[MATCH_UTF16LE] = "utf16le",
};

const char *match_encoding_name(enum match_encoding e)
{
	return (unsigned)e < MATCH_N_ENCODINGS ? names[e] : "unknown";
}

/* The forms' headers and the sentinel that holds their shared allocation:
 * forms[count].bytes. Pointers and lengths only, so plain memory. */
struct forms_block {
	struct match_form f[MATCH_FORMS_MAX + 1];
	struct secbuf hdr[MATCH_FORMS_MAX];
};

/* The candidates written so far into the scratch buffer. */
struct builder {
	unsigned char *buf;
	size_t cap, used;
	size_t min_len;
	size_t n;
	struct {
		enum match_encoding enc;
		unsigned align;
		size_t off, len;
	} f[MATCH_FORMS_MAX];
};

/* Where the next candidate goes; `bound` is what its writer may use at
 * most (the callers' bounds add up to the scratch buffer's size, so this
 * never fails unless a bound below is wrong). */
static unsigned char *slot(struct builder *b, size_t bound)
{
	if (b->cap - b->used < bound)
		abort();
	return b->buf + b->used;
}

/* Keep the `len` bytes just written at slot(), unless too short or a
 * duplicate. */
static void keep(struct builder *b, enum match_encoding enc, unsigned align, size_t len)
{
	const unsigned char *p = b->buf + b->used;
	if (len == 0 || len < b->min_len)
		return;
	for (size_t i = 0; i < b->n; i++)
		if (b->f[i].len == len && memcmp(b->buf + b->f[i].off, p, len) == 0)
			return;
	if (b->n == MATCH_FORMS_MAX)
		abort(); /* more candidates than documented: a bug here */
	b->f[b->n].enc = enc;
	b->f[b->n].align = align;
	b->f[b->n].off = b->used;
	b->f[b->n].len = len;
	b->n++;
	b->used += len;
}

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* One code point of strict UTF-8 at s[*i] (no overlong forms, no
 * surrogates, at most U+10FFFF); false if there is none. */
static bool utf8_next(const unsigned char *s, size_t n, size_t *i, uint32_t *cp)
{
	size_t at = *i;
	unsigned char c = s[at];
	uint32_t v, min;
	size_t extra;
	if (c < 0x80) {
		*cp = c;
		*i = at + 1;
		return true;
	} else if (c >= 0xc2 && c <= 0xdf) {
		v = c & 0x1f, extra = 1, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		v = c & 0x0f, extra = 2, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		v = c & 0x07, extra = 3, min = 0x10000;
	} else {
		return false;
	}
	if (n - at <= extra)
		return false;
	for (size_t k = 1; k <= extra; k++) {
		if ((s[at + k] & 0xc0) != 0x80)
			return false;
		v = v << 6 | (s[at + k] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return false;
	*cp = v;
	*i = at + 1 + extra;
	return true;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
	uint32_t cp;
	for (size_t i = 0; i < n;)
		if (!utf8_next(s, n, &i, &cp))
			return false;
	return true;
}

/* "\" then `letter` then `digits` hex digits of v from `digits`. */
static size_t put_esc(unsigned char *d, char letter, uint32_t v, int digits, const char *hx)
{
	size_t k = 0;
	d[k++] = '\\';
	d[k++] = (unsigned char)letter;
	for (int sh = 4 * (digits - 1); sh >= 0; sh -= 4)
		d[k++] = (unsigned char)hx[(v >> sh) & 0xf];
	return k;
}

/* ---- The writers: each returns the length it wrote at d. ---- */

static size_t hex(unsigned char *d, const unsigned char *v, size_t n, bool upper)
{
	sodium_bin2hex((char *)d, 2 * n + 1, v, n);
	if (upper)
		for (size_t i = 0; i < 2 * n; i++)
			if (d[i] >= 'a')
				d[i] = (unsigned char)(d[i] - 'a' + 'A');
	return 2 * n;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c == '~';
}

static size_t percent(unsigned char *d, const unsigned char *v, size_t n, bool upper, bool plus)
{
	const char *hx = upper ? hex_upper : hex_lower;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = v[i];
		if (unreserved(c)) {
			d[k++] = c;
		} else if (c == ' ' && plus) {
			d[k++] = '+';
		} else {
			d[k++] = '%';
			d[k++] = (unsigned char)hx[c >> 4];
			d[k++] = (unsigned char)hx[c & 0xf];
		}
	}
	return k;
}

enum json_mode { JSON_PLAIN, JSON_ASCII, JSON_HTML };

/* At most 6 bytes out per byte in: \u00xx for a control character, and
 * 12 for a 4-byte sequence (a surrogate pair). */
static size_t json(unsigned char *d, const unsigned char *v, size_t n, enum json_mode mode)
{
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = v[i];
		uint32_t cp;
		size_t next = i;
		if (c == '"' || c == '\\') {
			d[k++] = '\\';
			d[k++] = c;
		} else if (c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') {
			d[k++] = '\\';
			d[k++] = c == '\b' ? 'b' : c == '\f' ? 'f' : c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (c < 0x20 || (mode == JSON_ASCII && c == 0x7f) ||
			   (mode == JSON_HTML && (c == '<' || c == '>' || c == '&'))) {
			k += put_esc(d + k, 'u', c, 4, hex_lower);
		} else if (c >= 0x80 && mode != JSON_PLAIN && utf8_next(v, n, &next, &cp) &&
			   (mode == JSON_ASCII || cp == 0x2028 || cp == 0x2029)) {
			if (cp >= 0x10000) {
				cp -= 0x10000;
				k += put_esc(d + k, 'u', 0xd800 | cp >> 10, 4, hex_lower);
				k += put_esc(d + k, 'u', 0xdc00 | (cp & 0x3ff), 4, hex_lower);
			} else {
				k += put_esc(d + k, 'u', cp, 4, hex_lower);
			}
			i = next;
			continue;
		} else {
			d[k++] = c;
		}
		i++;
	}
	return k;
}

static size_t shell_single(unsigned char *d, const unsigned char *v, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '\'') {
			memcpy(d + k, "'\\''", 4);
			k += 4;
		} else {
			d[k++] = v[i];
		}
	}
	return k;
}

static size_t shell_double(unsigned char *d, const unsigned char *v, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '"' || v[i] == '\\' || v[i] == '$' || v[i] == '`')
			d[k++] = '\\';
		d[k++] = v[i];
	}
	return k;
}

static size_t yaml_single(unsigned char *d, const unsigned char *v, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '\'')
			d[k++] = '\'';
		d[k++] = v[i];
	}
	return k;
}

/* libyaml's printable set above ASCII (PyYAML's is the same): no C1
 * control, no BOM, nothing above U+FFFD (both escape U+1F600). */
static bool yaml_printable(uint32_t cp)
{
	return (cp >= 0xa0 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd && cp != 0xfeff);
}

/* At most 4 bytes out per byte in: \xXX for a control character; a
 * 4-byte sequence is 10 (\UXXXXXXXX). */
static size_t yaml_double(unsigned char *d, const unsigned char *v, size_t n, bool ascii)
{
	static const char short_esc[][2] = {
		{0x00, '0'}, {0x07, 'a'}, {0x08, 'b'}, {0x09, 't'}, {0x0a, 'n'},  {0x0b, 'v'},
		{0x0c, 'f'}, {0x0d, 'r'}, {0x1b, 'e'}, {'"', '"'},  {'\\', '\\'},
	};
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = v[i];
		uint32_t cp;
		size_t next = i;
		if (c < 0x80) {
			char e = 0;
			for (size_t j = 0; j < sizeof short_esc / sizeof short_esc[0]; j++)
				if ((unsigned char)short_esc[j][0] == c)
					e = short_esc[j][1];
			if (e) {
				d[k++] = '\\';
				d[k++] = (unsigned char)e;
			} else if (c < 0x20 || c == 0x7f) {
				k += put_esc(d + k, 'x', c, 2, hex_upper);
			} else {
				d[k++] = c;
			}
			i++;
		} else if (!utf8_next(v, n, &next, &cp)) {
			d[k++] = c; /* not UTF-8: no emitter writes it; the bytes as they are */
			i++;
		} else {
			if (cp == 0x85 || (cp == 0xa0 && ascii) || cp == 0x2028 || cp == 0x2029) {
				d[k++] = '\\';
				d[k++] = cp == 0x85 ? 'N' : cp == 0xa0 ? '_' : cp == 0x2028 ? 'L' : 'P';
			} else if (!ascii && yaml_printable(cp)) {
				memcpy(d + k, v + i, next - i);
				k += next - i;
			} else if (cp <= 0xff) {
				k += put_esc(d + k, 'x', cp, 2, hex_upper);
			} else if (cp <= 0xffff) {
				k += put_esc(d + k, 'u', cp, 4, hex_upper);
			} else {
				k += put_esc(d + k, 'U', cp, 8, hex_upper);
			}
			i = next;
		}
	}
	return k;
}

/* The caller has checked that v is valid UTF-8. */
static size_t utf16le(unsigned char *d, const unsigned char *v, size_t n)
{
	size_t k = 0;
	uint32_t cp;
	for (size_t i = 0; i < n && utf8_next(v, n, &i, &cp);) {
		uint32_t unit[2] = {cp, 0};
		int units = 1;
		if (cp >= 0x10000) {
			unit[0] = 0xd800 | (cp - 0x10000) >> 10;
			unit[1] = 0xdc00 | ((cp - 0x10000) & 0x3ff);
			units = 2;
		}
		for (int u = 0; u < units; u++) {
			d[k++] = (unsigned char)(unit[u] & 0xff);
			d[k++] = (unsigned char)(unit[u] >> 8);
		}
	}
	return k;
}

/* The characters of base64 (no padding) that carry only the value's bits
 * when it starts `align` bytes into a 3-byte group: character j holds
 * bits [6j, 6j+6) of the blob and the value bits [8a, 8a+8n), so the
 * first such character is ceil(8a/6) and the last one ends by
 * floor((8a+8n)/6). `padded` is `align` zero bytes, the value and two
 * zero bytes; d has room for its encoding. */
static size_t base64_core(unsigned char *d, const unsigned char *padded, size_t n, unsigned align, int variant)
{
	size_t len = align + n + 2;
	sodium_bin2base64((char *)d, sodium_base64_ENCODED_LEN(len, variant), padded, len, variant);
	size_t first = (8 * (size_t)align + 5) / 6, end = (8 * (size_t)align + 8 * n) / 6;
	if (end <= first)
		return 0;
	memmove(d, d + first, end - first);
	return end - first;
}

static size_t base64_whole(unsigned char *d, const unsigned char *v, size_t n, int variant)
{
	sodium_bin2base64((char *)d, sodium_base64_ENCODED_LEN(n, variant), v, n, variant);
	return strlen((const char *)d);
}

int match_forms(const unsigned char *value, size_t n, size_t min_len, struct match_form **out, size_t *count)
{
	*out = NULL;
	*count = 0;
	if (n == 0)
		return 0;
	if (n > VALUE_LIMIT)
		return latch_error(LATCH_USAGE, "a value of more than 64 MiB has no encoded forms");

	/* Bounds per candidate, in bytes (+1: the writers' terminators). */
	size_t b64 = sodium_base64_ENCODED_LEN(n + 4, sodium_base64_VARIANT_ORIGINAL) + 1;
	size_t need = (n + 4) /* the padded copy for base64_core */ + n /* raw */ + 10 * b64 + 2 * (2 * n + 1) +
		      4 * 3 * n + 3 * 6 * n + 4 * n + 2 * n + 2 * n + 2 * 4 * n + 2 * n;
	struct secbuf *scratch = secbuf_new(need);
	if (!scratch)
		return -1;
	unsigned char *padded = scratch->data;
	struct builder b = {.buf = scratch->data + n + 4, .cap = need - (n + 4), .min_len = min_len};
	bool utf8 = utf8_valid(value, n), space = memchr(value, ' ', n) != NULL;

	memcpy(slot(&b, n), value, n);
	keep(&b, MATCH_RAW, 0, n);
	static const int variants[2][2] = {
		{sodium_base64_VARIANT_ORIGINAL_NO_PADDING, sodium_base64_VARIANT_ORIGINAL},
		{sodium_base64_VARIANT_URLSAFE_NO_PADDING, sodium_base64_VARIANT_URLSAFE},
	};
	for (int alpha = 0; alpha < 2; alpha++) {
		enum match_encoding enc = alpha ? MATCH_BASE64URL : MATCH_BASE64;
		for (unsigned align = 0; align < 3; align++) {
			memset(padded, 0, n + 4);
			memcpy(padded + align, value, n);
			keep(&b, enc, align, base64_core(slot(&b, b64), padded, n, align, variants[alpha][0]));
			if (align == 0) {
				keep(&b, enc, 0, base64_whole(slot(&b, b64), value, n, variants[alpha][0]));
				keep(&b, enc, 0, base64_whole(slot(&b, b64), value, n, variants[alpha][1]));
			}
		}
	}
	keep(&b, MATCH_HEX_LOWER, 0, hex(slot(&b, 2 * n + 1), value, n, false));
	keep(&b, MATCH_HEX_UPPER, 0, hex(slot(&b, 2 * n + 1), value, n, true));
	for (int upper = 0; upper < 2; upper++) {
		enum match_encoding enc = upper ? MATCH_PERCENT_UPPER : MATCH_PERCENT_LOWER;
		keep(&b, enc, 0, percent(slot(&b, 3 * n), value, n, upper, true));
		if (space)
			keep(&b, enc, 0, percent(slot(&b, 3 * n), value, n, upper, false));
	}
	keep(&b, MATCH_JSON, 0, json(slot(&b, 6 * n), value, n, JSON_PLAIN));
	if (utf8)
		keep(&b, MATCH_JSON, 0, json(slot(&b, 6 * n), value, n, JSON_ASCII));
	keep(&b, MATCH_JSON, 0, json(slot(&b, 6 * n), value, n, JSON_HTML));
	keep(&b, MATCH_SHELL_SINGLE, 0, shell_single(slot(&b, 4 * n), value, n));
	keep(&b, MATCH_SHELL_DOUBLE, 0, shell_double(slot(&b, 2 * n), value, n));
	keep(&b, MATCH_YAML_SINGLE, 0, yaml_single(slot(&b, 2 * n), value, n));
	keep(&b, MATCH_YAML_DOUBLE, 0, yaml_double(slot(&b, 4 * n), value, n, false));
	if (utf8)
		keep(&b, MATCH_YAML_DOUBLE, 0, yaml_double(slot(&b, 4 * n), value, n, true));
	if (utf8)
		keep(&b, MATCH_UTF16LE, 0, utf16le(slot(&b, 2 * n), value, n));

	int rc = 0;
	if (b.n > 0) {
		struct forms_block *blk = calloc(1, sizeof *blk);
		struct secbuf *arena = blk ? secbuf_new(b.used) : NULL;
		if (!arena) {
			free(blk);
			rc = blk ? -1 : latch_error(LATCH_OPERR, "cannot allocate memory for a value's forms");
		} else {
			memcpy(arena->data, b.buf, b.used);
			arena->len = b.used;
			for (size_t i = 0; i < b.n; i++) {
				blk->hdr[i].data = arena->data + b.f[i].off;
				blk->hdr[i].len = blk->hdr[i].cap = b.f[i].len;
				blk->f[i].enc = b.f[i].enc;
				blk->f[i].align = b.f[i].align;
				blk->f[i].bytes = &blk->hdr[i];
			}
			blk->f[b.n].enc = MATCH_N_ENCODINGS;
			blk->f[b.n].bytes = arena;
			*out = blk->f;
			*count = b.n;
		}
	}
	secbuf_free(scratch);
	return rc;
}

void match_forms_free(struct match_form *forms, size_t count)
{
	if (!forms)
		return;
	secbuf_free(forms[count].bytes);
	/* forms is the first member of its forms_block. */
	sodium_memzero(forms, sizeof(struct forms_block));
	free(forms);
}
