/* Fuzz target: the encodings of a value (match/encode.c). The first byte
 * of the input is min_len (0..63), the rest the value (at most 4 KiB).
 *
 * Every form must turn back into the value by a decoder written here,
 * independently of the encoder: hex of its case, percent-decoding (with
 * '+' as space, the case of the %XX digits checked, only unreserved
 * characters left bare), JSON string contents (and jansson agreeing
 * when the value is UTF-8), shell and YAML quoting, YAML escapes, UTF-16LE,
 * and base64 (padded or not) for a whole-value form. A base64 core at
 * align k must be exactly the characters of libsodium's encoding of
 * prefix + value + suffix that carry the value's bits, for a prefix of k
 * bytes, with zero and with 0xff filler, and one character more at either
 * end would differ between the two. Forms must be distinct, at least
 * min_len long, ordered by encoding and align, at most MATCH_FORMS_MAX;
 * raw, hex and the base64 cores must be there when long enough (or be
 * equal to an earlier form). Nothing may leak, normal or secure memory. */
#include "fuzz.h"
#include "secmem.h"

#include "../../match/match.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_MAX 4096

static void fail(const char *what, const struct match_form *f)
{
	fprintf(stderr, "fuzz_match_encode: %s (form %s, align %u)\n", what, f ? match_encoding_name(f->enc) : "-",
		f ? f->align : 0);
	abort();
}

/* A decoder's output. */
struct out {
	unsigned char b[8 * VALUE_MAX + 16];
	size_t n;
};

static int hexval(unsigned char c, int want_upper)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (want_upper != 0 && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (want_upper != 1 && c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Code point to UTF-8. */
static void put_cp(struct out *o, uint32_t cp)
{
	if (cp < 0x80) {
		o->b[o->n++] = (unsigned char)cp;
	} else if (cp < 0x800) {
		o->b[o->n++] = (unsigned char)(0xc0 | cp >> 6);
		o->b[o->n++] = (unsigned char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		o->b[o->n++] = (unsigned char)(0xe0 | cp >> 12);
		o->b[o->n++] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		o->b[o->n++] = (unsigned char)(0x80 | (cp & 0x3f));
	} else {
		o->b[o->n++] = (unsigned char)(0xf0 | cp >> 18);
		o->b[o->n++] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		o->b[o->n++] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		o->b[o->n++] = (unsigned char)(0x80 | (cp & 0x3f));
	}
}

/* `digits` hex digits at s (either case); -1 if not. */
static long hexnum(const unsigned char *s, size_t n, size_t digits)
{
	if (n < digits)
		return -1;
	long v = 0;
	for (size_t i = 0; i < digits; i++) {
		int h = hexval(s[i], 2);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static bool dec_hex(const unsigned char *s, size_t n, int upper, struct out *o)
{
	if (n % 2)
		return false;
	for (size_t i = 0; i < n; i += 2) {
		int a = hexval(s[i], upper), b = hexval(s[i + 1], upper);
		if (a < 0 || b < 0)
			return false;
		o->b[o->n++] = (unsigned char)(a * 16 + b);
	}
	return true;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c == '~';
}

static bool dec_percent(const unsigned char *s, size_t n, int upper, struct out *o)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			o->b[o->n++] = ' ';
		} else if (s[i] == '%') {
			if (n - i < 3)
				return false;
			int a = hexval(s[i + 1], upper), b = hexval(s[i + 2], upper);
			if (a < 0 || b < 0)
				return false;
			unsigned char c = (unsigned char)(a * 16 + b);
			if (unreserved(c))
				return false; /* an encoder leaves these bare */
			o->b[o->n++] = c;
			i += 2;
		} else if (unreserved(s[i])) {
			o->b[o->n++] = s[i];
		} else {
			return false;
		}
	}
	return true;
}

/* JSON string contents (RFC 8259): no bare '"', '\\' or control
 * character; \uXXXX with surrogate pairs. */
static bool dec_json(const unsigned char *s, size_t n, struct out *o)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '"' || c < 0x20)
			return false;
		if (c != '\\') {
			o->b[o->n++] = c;
			continue;
		}
		if (++i == n)
			return false;
		const char *simple = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
		const char *p = memchr(simple, s[i], 8);
		if (p) {
			o->b[o->n++] = (unsigned char)to[p - simple];
			continue;
		}
		if (s[i] != 'u')
			return false;
		long u = hexnum(s + i + 1, n - i - 1, 4);
		if (u < 0)
			return false;
		i += 4;
		if (u >= 0xd800 && u <= 0xdbff) {
			if (n - i < 7 || s[i + 1] != '\\' || s[i + 2] != 'u')
				return false;
			long lo = hexnum(s + i + 3, n - i - 3, 4);
			if (lo < 0xdc00 || lo > 0xdfff)
				return false;
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			i += 6;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return false;
		}
		put_cp(o, (uint32_t)u);
	}
	return true;
}

/* 'contents': each ' as '\'' and no other '. */
static bool dec_shell_single(const unsigned char *s, size_t n, struct out *o)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\'') {
			o->b[o->n++] = s[i];
		} else if (n - i >= 4 && !memcmp(s + i, "'\\''", 4)) {
			o->b[o->n++] = '\'';
			i += 3;
		} else {
			return false;
		}
	}
	return true;
}

/* "contents": " \ $ ` only after a backslash, and a backslash only
 * before one of them. */
static bool dec_shell_double(const unsigned char *s, size_t n, struct out *o)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\') {
			if (i + 1 == n || !memchr("\"\\$`", s[i + 1], 4))
				return false;
			o->b[o->n++] = s[++i];
		} else if (memchr("\"$`", s[i], 3)) {
			return false;
		} else {
			o->b[o->n++] = s[i];
		}
	}
	return true;
}

static bool dec_yaml_single(const unsigned char *s, size_t n, struct out *o)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\'') {
			if (i + 1 == n || s[i + 1] != '\'')
				return false;
			i++;
		}
		o->b[o->n++] = s[i];
	}
	return true;
}

/* YAML 1.2 double-quoted escapes (section 5.7); the emitters leave no
 * C0 control or DEL bare. */
static bool dec_yaml_double(const unsigned char *s, size_t n, struct out *o)
{
	static const char esc[] = "0abtnvfre\"\\N_LP";
	static const uint32_t cps[] = {0, 7, 8, 9, 10, 11, 12, 13, 0x1b, '"', '\\', 0x85, 0xa0, 0x2028, 0x2029};
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] < 0x20 || s[i] == 0x7f)
			return false;
		if (s[i] != '\\') {
			o->b[o->n++] = s[i];
			continue;
		}
		if (++i == n)
			return false;
		const char *p = memchr(esc, s[i], sizeof esc - 1);
		if (p) {
			put_cp(o, cps[p - esc]);
			continue;
		}
		size_t digits = s[i] == 'x' ? 2 : s[i] == 'u' ? 4 : s[i] == 'U' ? 8 : 0;
		long v = digits ? hexnum(s + i + 1, n - i - 1, digits) : -1;
		if (v < 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			return false;
		/* The emitters write upper-case hex. */
		for (size_t k = 1; k <= digits; k++)
			if (s[i + k] >= 'a' && s[i + k] <= 'f')
				return false;
		put_cp(o, (uint32_t)v);
		i += digits;
	}
	return true;
}

static bool dec_utf16le(const unsigned char *s, size_t n, struct out *o)
{
	if (n % 2)
		return false;
	for (size_t i = 0; i < n; i += 2) {
		uint32_t u = s[i] | (uint32_t)s[i + 1] << 8;
		if (u >= 0xd800 && u <= 0xdbff) {
			if (n - i < 4)
				return false;
			uint32_t lo = s[i + 2] | (uint32_t)s[i + 3] << 8;
			if (lo < 0xdc00 || lo > 0xdfff)
				return false;
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return false;
		}
		put_cp(o, u);
	}
	return true;
}

/* Base64 of one alphabet, padded to a multiple of 4 or not padded at all,
 * with zero bits where the last character has spare ones. */
static bool dec_base64(const unsigned char *s, size_t n, bool url, struct out *o)
{
	static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t pad = 0;
	while (pad < n && s[n - 1 - pad] == '=')
		pad++;
	size_t chars = n - pad;
	if (pad && (n % 4 || pad > 2))
		return false;
	if (chars % 4 == 1)
		return false;
	if (pad && pad != (4 - chars % 4) % 4)
		return false;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < chars; i++) {
		unsigned char c = s[i];
		if (url && (c == '+' || c == '/'))
			return false;
		if (url && (c == '-' || c == '_'))
			c = c == '-' ? '+' : '/';
		else if (!url && (c == '-' || c == '_'))
			return false;
		const char *p = c ? memchr(std, c, 64) : NULL;
		if (!p)
			return false;
		acc = acc << 6 | (uint32_t)(p - std);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o->b[o->n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return acc == 0;
}

/* The characters of libsodium's encoding of k filler bytes, the value and
 * 3 filler bytes that hold only the value's bits; *before and *after: the
 * character on either side (0 if none). */
static size_t core_ref(const unsigned char *v, size_t n, unsigned k, unsigned char fill, bool url, char *out,
		       char *before, char *after)
{
	static unsigned char blob[VALUE_MAX + 8];
	static char enc[sodium_base64_ENCODED_LEN(VALUE_MAX + 8, sodium_base64_VARIANT_ORIGINAL)];
	memset(blob, fill, k);
	memcpy(blob + k, v, n);
	memset(blob + k + n, fill, 3);
	int var = url ? sodium_base64_VARIANT_URLSAFE_NO_PADDING : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
	sodium_bin2base64(enc, sizeof enc, blob, k + n + 3, var);
	size_t first = (8 * k + 5) / 6, end = (8 * k + 8 * n) / 6;
	if (end <= first)
		return 0;
	memcpy(out, enc + first, end - first);
	*before = first > 0 ? enc[first - 1] : 0;
	*after = enc[end];
	return end - first;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t len = c < 0x80             ? 1
			     : (c & 0xe0) == 0xc0 ? 2
			     : (c & 0xf0) == 0xe0 ? 3
			     : (c & 0xf8) == 0xf0 ? 4
						  : 0;
		if (!len || n - i < len)
			return false;
		uint32_t cp = len == 1 ? c : c & (0xff >> (len + 1));
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static bool same(const struct out *o, const unsigned char *v, size_t n)
{
	return o->n == n && !memcmp(o->b, v, n);
}

static bool is_form(const struct match_form *f, size_t count, const void *bytes, size_t len)
{
	for (size_t i = 0; i < count; i++)
		if (f[i].bytes->len == len && !memcmp(f[i].bytes->data, bytes, len))
			return true;
	return false;
}

static void check_form(const struct match_form *f, const unsigned char *v, size_t n)
{
	static struct out o;
	const unsigned char *s = f->bytes->data;
	size_t len = f->bytes->len;
	bool ok = false;
	o.n = 0;
	if (f->align != 0 && f->enc != MATCH_BASE64 && f->enc != MATCH_BASE64URL)
		fail("an align on a form that is not base64", f);
	switch (f->enc) {
	case MATCH_RAW:
		ok = len == n && !memcmp(s, v, n);
		break;
	case MATCH_HEX_LOWER:
	case MATCH_HEX_UPPER:
		ok = dec_hex(s, len, f->enc == MATCH_HEX_UPPER, &o) && same(&o, v, n);
		break;
	case MATCH_PERCENT_LOWER:
	case MATCH_PERCENT_UPPER:
		ok = dec_percent(s, len, f->enc == MATCH_PERCENT_UPPER, &o) && same(&o, v, n);
		/* '+' for a space, or %20: the %20 variant has no '+' */
		break;
	case MATCH_JSON:
		ok = dec_json(s, len, &o) && same(&o, v, n);
		if (ok && utf8_valid(v, n)) {
			/* jansson must read the same string. */
			static char doc[6 * VALUE_MAX + 8];
			doc[0] = '"';
			memcpy(doc + 1, s, len);
			doc[len + 1] = '"';
			json_error_t err;
			json_t *j = json_loadb(doc, len + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
			ok = j && json_is_string(j) && json_string_length(j) == n &&
			     !memcmp(json_string_value(j), v, n);
			json_decref(j);
		}
		break;
	case MATCH_SHELL_SINGLE:
		ok = dec_shell_single(s, len, &o) && same(&o, v, n);
		break;
	case MATCH_SHELL_DOUBLE:
		ok = dec_shell_double(s, len, &o) && same(&o, v, n);
		break;
	case MATCH_YAML_SINGLE:
		ok = dec_yaml_single(s, len, &o) && same(&o, v, n);
		break;
	case MATCH_YAML_DOUBLE:
		ok = dec_yaml_double(s, len, &o) && same(&o, v, n);
		break;
	case MATCH_UTF16LE:
		ok = utf8_valid(v, n) && dec_utf16le(s, len, &o) && same(&o, v, n);
		break;
	case MATCH_BASE64:
	case MATCH_BASE64URL: {
		bool url = f->enc == MATCH_BASE64URL;
		static char c0[2 * VALUE_MAX], c1[2 * VALUE_MAX];
		char b0 = 0, a0 = 0, b1 = 0, a1 = 0;
		size_t l0 = core_ref(v, n, f->align, 0x00, url, c0, &b0, &a0);
		size_t l1 = core_ref(v, n, f->align, 0xff, url, c1, &b1, &a1);
		if (l0 != l1 || memcmp(c0, c1, l0) != 0)
			fail("the reference core depends on the filler", f);
		if (len == l0 && !memcmp(s, c0, len)) {
			/* Maximal: one more character on either side varies. */
			if ((f->align != 0 && b0 == b1) || a0 == a1)
				fail("a base64 core is not the longest run", f);
			ok = true;
		} else if (f->align == 0) {
			ok = dec_base64(s, len, url, &o) && same(&o, v, n);
		}
		break;
	}
	default:
		fail("an unknown encoding", f);
	}
	if (!ok)
		fail("a form does not decode to the value", f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("sodium_init", NULL);
		latch_error_quiet(true);
		ready = true;
	}
	if (size < 1)
		return 0;
	size_t min_len = data[0] % 64, n = size - 1;
	if (n > VALUE_MAX)
		n = VALUE_MAX;
	const unsigned char *v = data + 1;
	long before = secmem_in_use();
	struct match_form *f;
	size_t count;
	if (match_forms(v, n, min_len, &f, &count) != 0)
		fail("match_forms failed", NULL);
	if (count > MATCH_FORMS_MAX || (count == 0) != (f == NULL))
		fail("a count out of bounds", NULL);
	for (size_t i = 0; i < count; i++) {
		if (f[i].bytes->len == 0 || f[i].bytes->len < min_len)
			fail("a form shorter than min_len", &f[i]);
		if ((unsigned)f[i].enc >= MATCH_N_ENCODINGS || f[i].align > 2)
			fail("an encoding or align out of range", &f[i]);
		if (i > 0 && (f[i - 1].enc > f[i].enc || (f[i - 1].enc == f[i].enc && f[i - 1].align > f[i].align)))
			fail("forms out of order", &f[i]);
		for (size_t j = 0; j < i; j++)
			if (f[j].bytes->len == f[i].bytes->len &&
			    !memcmp(f[j].bytes->data, f[i].bytes->data, f[i].bytes->len))
				fail("a duplicate form", &f[i]);
		check_form(&f[i], v, n);
	}
	/* What must be there when long enough (raw and hex cannot equal an
	 * earlier form; a core may equal one). */
	if (n > 0 && n >= min_len && (count == 0 || f[0].enc != MATCH_RAW))
		fail("no raw form", NULL);
	static unsigned char hex[2 * VALUE_MAX + 1];
	sodium_bin2hex((char *)hex, sizeof hex, v, n);
	if (n > 0 && 2 * n >= min_len && !is_form(f, count, hex, 2 * n))
		fail("no hex form", NULL);
	for (int url = 0; url < 2 && n > 0; url++) {
		for (unsigned k = 0; k < 3; k++) {
			static char core[2 * VALUE_MAX];
			char b = 0, a = 0;
			size_t l = core_ref(v, n, k, 0, url, core, &b, &a);
			if (l > 0 && l >= min_len && !is_form(f, count, core, l))
				fail("a base64 core is missing", NULL);
		}
	}
	match_forms_free(f, count);
	secmem_check(before, "match_forms_free");
	return 0;
}
