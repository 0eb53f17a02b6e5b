/* match: the encodings under which a value can appear in a text file, a
 * multi-pattern matcher (Aho-Corasick) that finds all of them in one pass,
 * and a second view of a file with its wrapped base64 lines joined. Used
 * by hooks/ (scanning what git is about to commit or push) and run/
 * (redacting a child's output). Depends on common/ only.
 *
 * Every pattern and every encoded form is secret: they live in secure
 * memory (struct secbuf, sodium_malloc) and are wiped when freed. Nothing
 * here prints or reports a value, a form or a pattern. */
#ifndef LATCH_MATCH_H
#define LATCH_MATCH_H

#include "../common/common.h"

#include <stddef.h>
#include <stdint.h>

/* ---- The encodings of a value ---------------------------------------- */

/* Each encoding has a stable short name (match_encoding_name), used in
 * findings: "raw", "base64", "base64url", "hex", "HEX", "percent",
 * "PERCENT", "json", "shell-single", "shell-double", "yaml-single",
 * "yaml-double", "utf16le". */
enum match_encoding {
	MATCH_RAW,
	MATCH_BASE64,
	MATCH_BASE64URL,
	MATCH_HEX_LOWER,
	MATCH_HEX_UPPER,
	MATCH_PERCENT_LOWER,
	MATCH_PERCENT_UPPER,
	MATCH_JSON,
	MATCH_SHELL_SINGLE,
	MATCH_SHELL_DOUBLE,
	MATCH_YAML_SINGLE,
	MATCH_YAML_DOUBLE,
	MATCH_UTF16LE,
	MATCH_N_ENCODINGS
};

/* The short name of `e` ("raw", "base64", ...); "unknown" outside the
 * enum. A static string. */
const char *match_encoding_name(enum match_encoding e);

/* match_forms never returns more forms than this. The most it can make
 * is 26: raw 1, base64 and base64url 5 each (a core at each of the three
 * alignments, and the whole value padded and unpadded), hex 2, percent 4,
 * json 3, shell 2, yaml-single 1, yaml-double 2, utf16le 1. */
#define MATCH_FORMS_MAX 40

/* One encoded form of a value: `bytes` holds exactly the bytes to look
 * for (bytes->len of them, no terminator). `align` is the byte offset of
 * the value modulo 3 inside a larger base64 blob (base64 forms; 0 for
 * every other encoding). */
struct match_form {
	enum match_encoding enc;
	unsigned align;
	struct secbuf *bytes;
};

/* Every distinct byte string under which the `n`-byte value can appear in
 * a text file, each at least `min_len` bytes long (shorter ones are
 * dropped, and so is a form equal to an earlier one: a value with no
 * special characters is "raw" only, not also "json" and "shell-double").
 * Ordered by encoding (enum order), then by align. The forms:
 *
 * - raw: the value.
 * - hex / HEX: lower- and upper-case hex of every byte.
 * - percent / PERCENT: every byte outside RFC 3986's unreserved set
 *   [A-Za-z0-9._~-] as %xx / %XX, space as '+' (form encoding) and, when
 *   the value has a space, also as %20 (the two share the name). Encoders
 *   that leave more characters alone (encodeURIComponent leaves !'()*,
 *   Python's quote leaves '/') write forms that are not here.
 * - json: the contents of a JSON or JavaScript string as an encoder writes
 *   them: \" \\ \b \f \n \r \t, other control characters as \u00xx, '/'
 *   as it is, non-ASCII as it is; also, when they differ, with non-ASCII
 *   as \uxxxx (DEL too; surrogate pairs above U+FFFF; a valid UTF-8 value
 *   only: Python's default), and with < > & U+2028 U+2029 as \u003c ... (Go's
 *   encoding/json default).
 * - shell-single: the contents of '...', each ' written '\''.
 * - shell-double: the contents of "...", each " \ $ ` after a backslash.
 * - yaml-single: the contents of '...', each ' doubled.
 * - yaml-double: the contents of "..." as libyaml and PyYAML write them
 *   with allow_unicode: \0 \a \b \t \n \v \f \r \e \" \\ \N \L \P, other
 *   non-printable characters (C0, DEL, C1, U+FEFF, anything above U+FFFD)
 *   as \xXX \uXXXX \UXXXXXXXX (upper-case hex), the rest as it is; and,
 *   when the value has non-ASCII, also with all of it escaped (U+00A0 as
 *   \_): PyYAML's default, allow_unicode=False. Bytes that are not UTF-8
 *   are left as they are.
 * - utf16le: the value as UTF-16LE, for binary files (a valid UTF-8 value
 *   only).
 * - base64 / base64url (standard; '-' '_' for '+' '/'), at align k = 0, 1,
 *   2: the value sits at a byte offset that is k modulo 3 inside a larger
 *   encoded blob, and the form is the longest run of characters that is
 *   the same whatever bytes come before and after the value (the
 *   characters made of the value's bits only). At align 0 also the whole
 *   value alone, unpadded and padded ("...=="), as a blob that is the
 *   value ends. A value too short to leave `min_len` characters at some
 *   alignment has no form there.
 *
 * Returns 0 with *out and *count set (*out NULL when *count is 0), or -1
 * reported (out of memory; a value of more than 64 MiB). The forms share
 * one secure allocation: free them only with match_forms_free, never with
 * secbuf_free. */
int match_forms(const unsigned char *value, size_t n, size_t min_len, struct match_form **out, size_t *count);

/* Wipe and free what match_forms returned (`count` as it returned it).
 * NULL-safe. */
void match_forms_free(struct match_form *forms, size_t count);

/* ---- Multi-pattern search -------------------------------------------- */

/* A set of byte patterns, each with a caller's id (ids need not be
 * distinct), compiled into an Aho-Corasick automaton, with a prefilter in
 * front of it when every pattern has 4 bytes or more (sampled grams: the
 * automaton runs only where one may start; the same results, 5 to 15
 * times as fast). LATCH_MATCH_PREFILTER=0 in the environment when a set
 * is built leaves the prefilter out (bench/match_bench, the tests).
 * Patterns, the automaton (whose transitions spell the patterns) and the
 * prefilter's bitmap live in secure memory. */
struct match_set;

/* A new, empty set; NULL reported if out of memory. */
struct match_set *match_set_new(void);

/* Copy the `n`-byte pattern (n >= 1) into the set, reported with `id`.
 * The same pattern may be added more than once (each add is reported).
 * Only before match_set_build. 0, or -1 reported. */
int match_set_add(struct match_set *s, const unsigned char *pat, size_t n, uint32_t id);

/* Compile the automaton, after the last add; the copies of the patterns
 * are wiped. At most 2^30 - 2 pattern bytes in all. 0, or -1 reported. */
int match_set_build(struct match_set *s);

/* Find every occurrence in `text` (overlapping ones too), in order of end
 * offset: fn(id, start, end, ctx) with text[start..end) the pattern (end
 * exclusive). Several patterns that end at the same offset are reported
 * longest first. A non-zero return from fn stops the scan and is
 * returned; otherwise 0. The set must be built. */
int match_set_scan(const struct match_set *s, const unsigned char *text, size_t n,
		   int (*fn)(uint32_t id, size_t start, size_t end, void *ctx), void *ctx);

/* Streaming, for text that arrives in chunks (redaction): the automaton's
 * state is carried from one feed to the next, so an occurrence split
 * across chunks is found, and offsets are absolute (bytes fed so far).
 * After fn stops a feed (non-zero), `fed` counts the bytes through the
 * one that ended that occurrence, and the rest of the chunk is not fed. */
struct match_stream {
	const struct match_set *s;
	uint32_t state; /* where the automaton is (opaque) */
	uint64_t fed;
};
void match_stream_init(struct match_stream *st, const struct match_set *s);
int match_stream_feed(struct match_stream *st, const unsigned char *chunk, size_t n,
		      int (*fn)(uint32_t id, uint64_t start, uint64_t end, void *ctx), void *ctx);

/* The length of the shortest and of the longest pattern in a built set
 * (0 when it has none). A redactor holds back max_len - 1 bytes. */
size_t match_set_min_len(const struct match_set *s);
size_t match_set_max_len(const struct match_set *s);

/* Wipe and free the set. NULL-safe. */
void match_set_free(struct match_set *s);

/* ---- Wrapped base64 -------------------------------------------------- */

/* A copy of a text with the line breaks inside wrapped base64 removed
 * (the scanner's second view of a file): text[0..len), and the cuts made,
 * in order: cut i removed cut_len[i] bytes of the input just before
 * text[cut_at[i]]. */
struct match_unwrapped {
	unsigned char *text;
	size_t len;
	size_t *cut_at;
	size_t *cut_len;
	size_t n_cuts;
};

/* Copy `in` with every line break (\n or \r\n) removed that sits between
 * two lines of base64 wrapped at any width (64, 76, ...): the line before
 * the break holds at least 16 base64 characters (either alphabet) and
 * nothing else, and does not end in '='; the line after holds base64
 * characters, then at most two '=', and nothing else. Blanks (space, tab)
 * at the start of both lines are allowed and are removed from the line
 * after with the break, so that base64 indented in YAML or wrapped in a
 * PEM block is joined too. Returns 0 with *u filled, 1 when nothing was
 * removed (*u empty: scan `in` itself), or -1 reported (out of memory). */
int match_unwrap_base64(const unsigned char *in, size_t n, struct match_unwrapped *u);

/* The offset in the input of the byte at `off` in u->text (off == u->len
 * maps to the input's end). For an exclusive end offset e > 0, map e - 1
 * and add 1. Linear in the number of cuts before `off`: call it per
 * finding, not per byte. */
size_t match_unwrapped_offset(const struct match_unwrapped *u, size_t off);

/* Free what match_unwrap_base64 filled (zeroes *u). NULL-safe. */
void match_unwrapped_free(struct match_unwrapped *u);

#endif
