/* Unit tests: the scan index (hooks/index.c) and the scan against it
 * (hooks/scan.c), on real vault files in temporary directories.
 *
 * The entropy estimate on known values; what a set, a second set, an rm
 * and a rekey leave in scan_index, scan_weak and scan_key (every stored
 * stage recomputed from the value's forms); every form of a value found
 * at the start, near the start, at a page boundary and at the very end of
 * a buffer, never past its end, and nothing found in 64 MiB of random
 * bytes; what hooks_left_out reports; a damaged index refused with a
 * message that says to run 'latch rekey', and a rekey that repairs it.
 * Every vault is VAULT_KDF_INTERACTIVE and every form costs one Argon2id
 * run (4 MiB) to index and to confirm, so the values here are few. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vault_fixture.h"

#include "../../hooks/hooks.h"
#include "../../match/match.h"

#include <math.h>
#include <sodium.h>

/* Random-looking values, written down once so that the tests are the
 * same at every run: no character repeats the one before and none
 * continues a +1/-1 step (each of those counts one bit), and they use
 * many distinct characters. */
#define ALNUM20 "zQFLCwQH6Bprgq1qtM08"
#define ALNUM32 "wSrgnMmhGdcmurO6bZhzLyxLIosAawpK"
#define ALNUM24 "TDfV9mUxOIJov3RGa29IKGys"
#define ALNUM16 "X5IU8V2ZaSDUwhMF"
#define HEX32 "bc4f429ae7d3f0d21e7186e23d05d45f"
/* ALNUM32 is the same raw, quoted and escaped, and its base64 has no '+'
 * or '/', so its forms are: raw; base64 at the three alignments, and the
 * whole value unpadded and padded (32 bytes are not a multiple of 3); hex,
 * HEX and UTF-16LE (base64url is the same as base64: looked for once). */
#define ALNUM32_FORMS (1 + 5 + 2 + 1)
/* A strong value with every character that some encoding writes
 * differently: quotes, a backslash, a dollar, a space, a newline, HTML's
 * three, a backquote and non-ASCII, so that it has every kind of form. */
static const char special[] = "Zq\"7v X2'mK9\\pL4$\xc3\xa9\n<&>r8Wc3N`T";

static int bits_of(const char *s)
{
	return hooks_entropy_bits((const unsigned char *)s, strlen(s));
}

/* A random string of `n` characters from `alphabet`, NUL-terminated. */
static void random_string(char *out, size_t n, const char *alphabet)
{
	uint32_t k = (uint32_t)strlen(alphabet);
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[randombytes_uniform(k)];
	out[n] = '\0';
}

static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/* Whether `s` has a character that repeats the one before or continues a
 * +1/-1 step; how many distinct characters it has; whether it has lower
 * case letters, upper case letters and digits. */
static bool has_run_or_step(const unsigned char *s, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (s[i] == s[i - 1])
			return true;
		if (i >= 2 && (int)s[i] - s[i - 1] == (int)s[i - 1] - s[i - 2] && abs((int)s[i] - s[i - 1]) == 1)
			return true;
	}
	return false;
}

static size_t distinct(const unsigned char *s, size_t n)
{
	bool seen[256] = {false};
	size_t d = 0;
	for (size_t i = 0; i < n; i++) {
		d += !seen[s[i]];
		seen[s[i]] = true;
	}
	return d;
}

static bool all_three(const char *s)
{
	bool lower = false, upper = false, digit = false;
	for (; *s; s++) {
		lower |= *s >= 'a' && *s <= 'z';
		upper |= *s >= 'A' && *s <= 'Z';
		digit |= *s >= '0' && *s <= '9';
	}
	return lower && upper && digit;
}

/* --- the entropy estimate ------------------------------------------------ */

static void entropy_table(void **state)
{
	(void)state;
	/* Nothing, and one character however often it repeats: what the
	 * first one is worth (lower case: log2 26), and no more. */
	assert_int_equal(bits_of(""), 0);
	assert_int_equal(hooks_entropy_bits(NULL, 0), 0);
	assert_int_equal(bits_of("a"), 4);
	char run[1001];
	memset(run, 'a', 1000);
	run[32] = '\0';
	assert_int_equal(bits_of(run), 4);
	run[1000] = '\0';
	assert_int_equal(bits_of(run), 4);
	memset(run, '7', 32);
	run[32] = '\0';
	assert_int_equal(bits_of(run), 4); /* a digit is hex: log2 16 */

	/* A step: the first two characters are worth log2 26 each (log2 16
	 * while they are all hex digits), every one after adds one bit, up
	 * and down. */
	const char *abc = "abcdefghijklmnopqrstuvwxyz";
	for (int k = 3; k <= 26; k++) {
		char s[27];
		memcpy(s, abc, (size_t)k);
		s[k] = '\0';
		assert_int_equal(bits_of(s), (int)(2 * log2(k <= 6 ? 16 : 26) + (k - 2)));
	}
	assert_int_equal(bits_of("hgfedcba"), bits_of("abcdefgh"));
	assert_int_equal(bits_of("abcdefgh"), 15);

	/* Random letters and digits: log2 62 = 5.95 bits each. */
	assert_int_equal(bits_of(ALNUM20), 119);
	assert_true(bits_of(ALNUM20) >= HOOKS_WEAK_BITS);
	assert_int_equal(bits_of(ALNUM24), 142);
	assert_true(bits_of(ALNUM32) >= 150);
	assert_true(bits_of(ALNUM16) < HOOKS_WEAK_BITS);
	assert_int_equal(bits_of(ALNUM16), 95);

	/* Hex is 16 characters, not 36 or 62, in either case; mixed case
	 * is not hex. */
	assert_int_equal(bits_of(HEX32), 128);
	char upper[sizeof HEX32];
	for (size_t i = 0; i < sizeof HEX32; i++)
		upper[i] = (char)(HEX32[i] >= 'a' ? HEX32[i] - 'a' + 'A' : HEX32[i]);
	assert_int_equal(bits_of(upper), 128);
	char mixed[sizeof HEX32];
	memcpy(mixed, HEX32, sizeof HEX32);
	mixed[2] = 'F';
	assert_true(bits_of(mixed) > 128);

	/* A password repeated: well below the bound. */
	assert_true(bits_of("password123password123") <= 100);
	/* Word passphrases count as words from a 7,776-word list, whatever
	 * separates them; words among random characters do not. */
	assert_true(bits_of("correct horse battery staple") < HOOKS_WEAK_BITS);
	assert_true(bits_of("correct-horse-battery-staple-extra") < HOOKS_WEAK_BITS);
	assert_true(bits_of("Correct.Horse.Battery.Staple") < HOOKS_WEAK_BITS);
	assert_true(bits_of("Zq7vX2mK9pL4wE1rTy8uIo3pAs5dFg") >= HOOKS_WEAK_BITS);
	/* Lower-case letters and digits at random are not words. */
	assert_true(bits_of("kqpw7xyzm3nbvcr9tlhe4dsjf2gqwzr8") >= HOOKS_WEAK_BITS);
	assert_true(bits_of("hunter2hunter") < 64);

	/* A version-4 UUID holds 122 random bits: fingerprinted. The
	 * estimate takes its dashes for punctuation and overrates it. */
	for (int t = 0; t < 20; t++) {
		unsigned char u[16];
		randombytes_buf(u, sizeof u);
		u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
		u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
		char s[37];
		snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
			 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
			 u[15]);
		assert_true(bits_of(s) >= HOOKS_WEAK_BITS);
	}

	/* 32 random bytes: high; 32 random letters and digits: at least
	 * 150 (190 less a few runs). */
	for (int t = 0; t < 50; t++) {
		unsigned char b[32];
		randombytes_buf(b, sizeof b);
		assert_true(hooks_entropy_bits(b, sizeof b) >= 200);
		char s[33];
		random_string(s, 32, alnum);
		assert_true(bits_of(s) >= 150);
	}
}

/* The estimate against random strings of the sizes docs/scanning.md
 * names: 20 letters and digits pass (119 bits), 16 never do. Only strings
 * that use all three classes (97% do; one without digits draws on 52
 * characters), have no run or step (each counts one bit, by design) and
 * at least 14 distinct characters (99.5% have) are held to exactly 119:
 * the cap on few distinct characters must not bite a random string. */
static void entropy_random_strings(void **state)
{
	(void)state;
	int held = 0;
	for (int t = 0; t < 2000 && held < 200; t++) {
		char s[21];
		random_string(s, 20, alnum);
		if (!all_three(s) || has_run_or_step((const unsigned char *)s, 20) ||
		    distinct((const unsigned char *)s, 20) < 14)
			continue;
		held++;
		assert_int_equal(bits_of(s), 119);
	}
	assert_true(held >= 100);
	for (int t = 0; t < 200; t++) {
		char s[17];
		random_string(s, 16, alnum);
		assert_true(bits_of(s) < HOOKS_WEAK_BITS);
		/* A 32-digit hex token with 14 or more distinct digits and no
		 * run or step: 128. */
		unsigned char b[16];
		char h[33];
		randombytes_buf(b, sizeof b);
		sodium_bin2hex(h, sizeof h, b, sizeof b);
		if (!has_run_or_step((const unsigned char *)h, 32) && distinct((const unsigned char *)h, 32) >= 14)
			assert_int_equal(bits_of(h), 128);
	}
}

/* No byte is worth more than 8 bits, so a value shorter than
 * HOOKS_WEAK_BITS / 8 = 14 bytes is never fingerprinted: every value that
 * is has a raw form of at least HOOKS_WINDOW bytes. */
static void entropy_bounded_by_length(void **state)
{
	(void)state;
	assert_true(HOOKS_WEAK_BITS / 8 >= HOOKS_WINDOW);
	unsigned char b[64];
	for (size_t n = 1; n <= sizeof b; n++) {
		for (int t = 0; t < 50; t++) {
			randombytes_buf(b, n);
			int bits = hooks_entropy_bits(b, n);
			assert_true(bits >= 0 && bits <= (int)(8 * n));
			if (n < HOOKS_WEAK_BITS / 8)
				assert_true(bits < HOOKS_WEAK_BITS);
		}
		/* All distinct, no step, every class: the most it can be. */
		for (size_t i = 0; i < n; i++)
			b[i] = (unsigned char)(i * 37 + 11);
		assert_true(hooks_entropy_bits(b, n) <= (int)(8 * n));
		if (n < HOOKS_WEAK_BITS / 8)
			assert_true(hooks_entropy_bits(b, n) < HOOKS_WEAK_BITS);
	}
}

/* --- what the index holds -------------------------------------------------- */

/* A copy of the template vault, unlocked, with the index's hook. */
static struct vault *indexed(const struct fx *f)
{
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	vault_on_value(v, hooks_index_value, NULL);
	return v;
}

static int64_t id_of(const struct fx *f, const char *name)
{
	return sql_int(f->path, "SELECT id FROM secrets WHERE name = ?1", name);
}

static int64_t index_rows(const struct fx *f, const char *name)
{
	return sql_int(f->path,
		       "SELECT count(*) FROM scan_index WHERE secret = (SELECT id FROM secrets WHERE name = ?1)", name);
}

static int64_t weak_rows(const struct fx *f, const char *name)
{
	return sql_int(f->path,
		       "SELECT count(*) FROM scan_weak WHERE secret = (SELECT id FROM secrets WHERE name = ?1)", name);
}

/* The number of forms of at least HOOKS_WINDOW bytes. */
static size_t forms_of(const void *value, size_t len)
{
	struct match_form *forms = NULL;
	size_t n = 0;
	assert_int_equal(match_forms(value, len, HOOKS_WINDOW, &forms, &n), 0);
	match_forms_free(forms, n);
	return n;
}

struct irow {
	int64_t form, enc, pre, fp, len;
	unsigned char salt[HOOKS_SALT_BYTES];
	unsigned char verify[HOOKS_VERIFY_BYTES];
};

/* The scan_index rows of secret `id`, by form; returns how many. */
static size_t load_rows(const struct fx *f, int64_t id, struct irow *out, size_t max)
{
	sqlite3 *db = db_raw(f->path);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT form, enc, pre, fp, len, salt, verify FROM scan_index"
					    " WHERE secret = ?1 ORDER BY form",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		assert_true(n < max);
		struct irow *r = &out[n++];
		r->form = sqlite3_column_int64(st, 0);
		r->enc = sqlite3_column_int64(st, 1);
		r->pre = sqlite3_column_int64(st, 2);
		r->fp = sqlite3_column_int64(st, 3);
		r->len = sqlite3_column_int64(st, 4);
		assert_int_equal(sqlite3_column_bytes(st, 5), HOOKS_SALT_BYTES);
		memcpy(r->salt, sqlite3_column_blob(st, 5), HOOKS_SALT_BYTES);
		assert_int_equal(sqlite3_column_bytes(st, 6), HOOKS_VERIFY_BYTES);
		memcpy(r->verify, sqlite3_column_blob(st, 6), HOOKS_VERIFY_BYTES);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* The vault's scan key and multiplier: false when there is none. */
static bool load_key(const struct fx *f, unsigned char key[16], uint64_t *mult)
{
	sqlite3 *db = db_raw(f->path);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT key, mult FROM scan_key WHERE id = 1", -1, &st, NULL),
			 SQLITE_OK);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		assert_int_equal(sqlite3_column_bytes(st, 0), 16);
		memcpy(key, sqlite3_column_blob(st, 0), 16);
		*mult = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return found;
}

/* Every row of `name` is exactly what the three stages make of its form
 * under the vault's key: rows 0..n-1 for the n forms of the value, in
 * match_forms' order. */
static void expect_fingerprinted(const struct fx *f, const char *name, const void *value, size_t len)
{
	unsigned char key[16];
	uint64_t mult = 0;
	assert_true(load_key(f, key, &mult));
	assert_true(mult & 1);
	struct match_form *forms = NULL;
	size_t n = 0;
	assert_int_equal(match_forms(value, len, HOOKS_WINDOW, &forms, &n), 0);
	assert_true(n >= 1);
	struct irow rows[MATCH_FORMS_MAX];
	assert_int_equal(load_rows(f, id_of(f, name), rows, MATCH_FORMS_MAX), n);
	for (size_t i = 0; i < n; i++) {
		const struct secbuf *b = forms[i].bytes;
		assert_int_equal(rows[i].form, (int64_t)i);
		assert_int_equal(rows[i].enc, (int64_t)forms[i].enc * 4 + forms[i].align);
		assert_int_equal(rows[i].len, (int64_t)b->len);
		assert_int_equal(rows[i].pre, hooks_pre(hooks_roll_init(b->data, mult)));
		assert_int_equal(rows[i].fp, hooks_fp(b->data, key));
		unsigned char verify[HOOKS_VERIFY_BYTES];
		assert_int_equal(hooks_verify_hash(b->data, b->len, rows[i].salt, verify), 0);
		assert_memory_equal(verify, rows[i].verify, sizeof verify);
		for (size_t j = 0; j < i; j++)
			assert_memory_not_equal(rows[i].salt, rows[j].salt, HOOKS_SALT_BYTES);
	}
	match_forms_free(forms, n);
	assert_int_equal(weak_rows(f, name), 0);
}

static void strong_value_fingerprinted(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	/* No key before the first value. */
	unsigned char key[16];
	uint64_t mult;
	assert_false(load_key(f, key, &mult));
	put_str(v, "plain", ALNUM32);
	put_str(v, "special", special);
	vault_close(v);
	assert_int_equal(forms_of(ALNUM32, 32), ALNUM32_FORMS);
	assert_int_equal(index_rows(f, "plain"), ALNUM32_FORMS);
	expect_fingerprinted(f, "plain", ALNUM32, 32);
	assert_true(forms_of(special, strlen(special)) > 20);
	expect_fingerprinted(f, "special", special, strlen(special));
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_weak", NULL), 0);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_key", NULL), 1);
	dir_only_vault(f);
}

static void weak_value_listed(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "pw", "password123password123");
	put_str(v, "short", ALNUM16);
	vault_close(v);
	assert_int_equal(index_rows(f, "pw"), 0);
	assert_int_equal(index_rows(f, "short"), 0);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_index", NULL), 0);
	assert_int_equal(sql_int(f->path,
				 "SELECT bits FROM scan_weak WHERE secret = (SELECT id FROM secrets WHERE name = ?1)",
				 "pw"),
			 bits_of("password123password123"));
	assert_int_equal(sql_int(f->path,
				 "SELECT bits FROM scan_weak WHERE secret = (SELECT id FROM secrets WHERE name = ?1)",
				 "short"),
			 95);
}

/* A value of 11 bytes has no raw form to fingerprint, and however it is
 * made it is too weak to be (entropy_bounded_by_length): it is listed as
 * weak with its bits, and left out with them, never taken for a value
 * that is fingerprinted or one that was never indexed. */
static void eleven_bytes_listed_weak(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	static const unsigned char eleven[11] = {'Q', 0xfe, '7', '~', 'z', 0x01, 'K', '"', 0x9c, '4', 'a'};
	int bits = hooks_entropy_bits(eleven, sizeof eleven);
	assert_true(bits > 0 && bits < HOOKS_WEAK_BITS);
	/* Its hex and base64 forms are long enough, its raw one is not. */
	assert_true(forms_of(eleven, sizeof eleven) >= 1);
	put(v, "eleven", eleven, sizeof eleven);
	vault_close(v);
	assert_int_equal(index_rows(f, "eleven"), 0);
	assert_int_equal(sql_int(f->path,
				 "SELECT bits FROM scan_weak WHERE secret = (SELECT id FROM secrets WHERE name = ?1)",
				 "eleven"),
			 bits);
	v = fx_open(f);
	struct hooks_index *ix = NULL;
	assert_int_equal(hooks_index_load(v, &ix), 0);
	assert_int_equal(hooks_index_size(ix), 0);
	assert_int_equal(hooks_index_weak(ix), 1);
	assert_int_equal(hooks_index_unindexed(ix), 0);
	hooks_index_free(ix);
	vault_close(v);
}

static void set_again_replaces(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "t", special);
	size_t n_special = forms_of(special, strlen(special));
	assert_int_equal(index_rows(f, "t"), (int64_t)n_special);
	struct irow before[MATCH_FORMS_MAX];
	assert_int_equal(load_rows(f, id_of(f, "t"), before, MATCH_FORMS_MAX), n_special);

	/* Fewer forms: no row of the old value is left. */
	put_str(v, "t", ALNUM32);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_index", NULL), ALNUM32_FORMS);
	expect_fingerprinted(f, "t", ALNUM32, 32);
	assert_int_equal(sql_int(f->path, "SELECT max(form) FROM scan_index", NULL), ALNUM32_FORMS - 1);

	/* The same value again: new salts. */
	struct irow first[MATCH_FORMS_MAX], second[MATCH_FORMS_MAX];
	assert_int_equal(load_rows(f, id_of(f, "t"), first, MATCH_FORMS_MAX), ALNUM32_FORMS);
	put_str(v, "t", ALNUM32);
	assert_int_equal(load_rows(f, id_of(f, "t"), second, MATCH_FORMS_MAX), ALNUM32_FORMS);
	for (size_t i = 0; i < ALNUM32_FORMS; i++) {
		assert_memory_not_equal(first[i].salt, second[i].salt, HOOKS_SALT_BYTES);
		assert_int_equal(first[i].pre, second[i].pre);
		assert_int_equal(first[i].fp, second[i].fp);
	}
	expect_fingerprinted(f, "t", ALNUM32, 32);

	/* Strong to weak: no row in the index, one in the weak list. */
	put_str(v, "t", "hunter2hunter");
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_index", NULL), 0);
	assert_int_equal(weak_rows(f, "t"), 1);
	assert_int_equal(sql_int(f->path, "SELECT bits FROM scan_weak", NULL), bits_of("hunter2hunter"));

	/* Weak to weak: one row, the new bits. */
	put_str(v, "t", ALNUM16);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_weak", NULL), 1);
	assert_int_equal(sql_int(f->path, "SELECT bits FROM scan_weak", NULL), 95);

	/* Weak to strong: out of the weak list. */
	put_str(v, "t", special);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_weak", NULL), 0);
	expect_fingerprinted(f, "t", special, strlen(special));
	vault_close(v);
}

static void rm_removes_both(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "strong", ALNUM20);
	put_str(v, "weak", ALNUM16);
	put_str(v, "kept", HEX32);
	assert_true(index_rows(f, "strong") > 0);
	assert_int_equal(weak_rows(f, "weak"), 1);
	/* Allowances go with the secret (a new one of the same name starts
	 * with none); another secret's stay. */
	sql_exec(f->path, "INSERT INTO scan_allow (secret, path) SELECT id, 'fixture.txt' FROM secrets");
	assert_int_equal(vault_remove(v, "strong"), 0);
	assert_int_equal(vault_remove(v, "weak"), 0);
	vault_close(v);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_weak", NULL), 0);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_allow", NULL), 1);
	assert_int_equal(sql_int(f->path, "SELECT secret FROM scan_allow", NULL), id_of(f, "kept"));
	assert_int_equal(sql_int(f->path, "SELECT count(DISTINCT secret) FROM scan_index", NULL), 1);
	expect_fingerprinted(f, "kept", HEX32, 32);
}

static void rekey_rebuilds(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "a", ALNUM32);
	put_str(v, "b", special);
	put_str(v, "w", "hunter2hunter");
	unsigned char key1[16], key2[16];
	uint64_t mult1 = 0, mult2 = 0;
	assert_true(load_key(f, key1, &mult1));
	struct irow a1[MATCH_FORMS_MAX], b1[MATCH_FORMS_MAX], a2[MATCH_FORMS_MAX], b2[MATCH_FORMS_MAX];
	size_t na = load_rows(f, id_of(f, "a"), a1, MATCH_FORMS_MAX);
	size_t nb = load_rows(f, id_of(f, "b"), b1, MATCH_FORMS_MAX);
	int64_t weak_bits = sql_int(f->path, "SELECT bits FROM scan_weak", NULL);

	int64_t count = 0;
	assert_int_equal(vault_rekey(v, &count), 0);
	assert_int_equal(count, 3);
	vault_close(v);

	assert_true(load_key(f, key2, &mult2));
	assert_memory_not_equal(key1, key2, sizeof key1);
	assert_true(mult1 != mult2);
	assert_int_equal(load_rows(f, id_of(f, "a"), a2, MATCH_FORMS_MAX), na);
	assert_int_equal(load_rows(f, id_of(f, "b"), b2, MATCH_FORMS_MAX), nb);
	/* No salt of before is used again, and each row is right under the
	 * new key. */
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < na; j++)
			assert_memory_not_equal(a2[i].salt, a1[j].salt, HOOKS_SALT_BYTES);
	for (size_t i = 0; i < nb; i++)
		for (size_t j = 0; j < nb; j++)
			assert_memory_not_equal(b2[i].salt, b1[j].salt, HOOKS_SALT_BYTES);
	expect_fingerprinted(f, "a", ALNUM32, 32);
	expect_fingerprinted(f, "b", special, strlen(special));
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_weak", NULL), 1);
	assert_int_equal(sql_int(f->path,
				 "SELECT bits FROM scan_weak WHERE secret = (SELECT id FROM secrets WHERE name = ?1)",
				 "w"),
			 weak_bits);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM scan_key", NULL), 1);
}

/* --- scanning --------------------------------------------------------------- */

struct found {
	size_t n;
	bool overflow;
	struct {
		int64_t secret;
		char name[LATCH_NAME_MAX + 1];
		char enc[24];
		size_t off, len;
	} f[64];
};

static int collect_found(const struct hooks_finding *h, void *ctx)
{
	struct found *fd = ctx;
	if (fd->n > 0 && h->offset < fd->f[fd->n - 1].off)
		fail_msg("findings out of order: %zu after %zu", h->offset, fd->f[fd->n - 1].off);
	if (fd->n == sizeof fd->f / sizeof fd->f[0]) {
		fd->overflow = true;
		return 0;
	}
	fd->f[fd->n].secret = h->secret;
	snprintf(fd->f[fd->n].name, sizeof fd->f[fd->n].name, "%s", h->name);
	snprintf(fd->f[fd->n].enc, sizeof fd->f[fd->n].enc, "%s", h->encoding);
	fd->f[fd->n].off = h->offset;
	fd->f[fd->n].len = h->len;
	fd->n++;
	return 0;
}

static struct found *scan(const struct hooks_index *ix, const unsigned char *p, size_t n)
{
	struct found *fd = calloc(1, sizeof *fd);
	assert_non_null(fd);
	assert_int_equal(hooks_index_scan(ix, p, n, collect_found, fd), 0);
	assert_false(fd->overflow);
	return fd;
}

/* How many findings are exactly this form at this offset. */
static size_t count_exact(const struct found *fd, int64_t secret, const char *enc, size_t off, size_t len)
{
	size_t k = 0;
	for (size_t i = 0; i < fd->n; i++)
		k += fd->f[i].secret == secret && !strcmp(fd->f[i].enc, enc) && fd->f[i].off == off &&
		     fd->f[i].len == len;
	return k;
}

/* Whether p[0..len) is one of the forms, under the encoding named. */
static bool is_form(const struct match_form *forms, size_t n, const char *enc, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (forms[i].bytes->len == len && !strcmp(match_encoding_name(forms[i].enc), enc) &&
		    !memcmp(forms[i].bytes->data, p, len))
			return true;
	return false;
}

#define MIB ((size_t)1024 * 1024)

/* Each form of a value, planted at 0, 1, 7, 4095 and at the very end of a
 * 1 MiB random buffer, is found there once, with its encoding's name and
 * the secret's. Whatever else is found is another form of the value, byte
 * for byte, that overlaps it: a base64 core is part of the whole value's
 * base64, and the random byte after a form completes a longer one (the
 * padded base64 after the unpadded, '=') once in 256 plantings or so. */
static void scan_finds_every_form(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "other", ALNUM24);
	put_str(v, "tok", special);
	vault_close(v);
	v = fx_open(f); /* the hooks scan with the vault locked */
	struct hooks_index *ix = NULL;
	assert_int_equal(hooks_index_load(v, &ix), 0);
	size_t n_forms = forms_of(special, strlen(special));
	assert_int_equal(hooks_index_size(ix), n_forms + forms_of(ALNUM24, 24));
	assert_int_equal(hooks_index_weak(ix), 0);
	assert_int_equal(hooks_index_unindexed(ix), 0);
	int64_t id = id_of(f, "tok");
	assert_string_equal(hooks_index_name(ix, id), "tok");
	assert_string_equal(hooks_index_name(ix, id_of(f, "other")), "other");
	assert_string_equal(hooks_index_name(ix, 999999), "?");

	struct match_form *forms = NULL;
	size_t n = 0;
	assert_int_equal(match_forms((const unsigned char *)special, strlen(special), HOOKS_WINDOW, &forms, &n), 0);
	assert_int_equal(n, n_forms);
	unsigned char *buf = malloc(MIB);
	assert_non_null(buf);
	randombytes_buf(buf, MIB);
	/* Random bytes hold nothing. */
	struct found *none = scan(ix, buf, MIB);
	assert_int_equal(none->n, 0);
	free(none);
	bool seen[MATCH_N_ENCODINGS] = {false};
	for (size_t i = 0; i < n; i++) {
		const struct secbuf *form = forms[i].bytes;
		const char *enc = match_encoding_name(forms[i].enc);
		seen[forms[i].enc] = true;
		size_t offs[] = {0, 1, 7, 4095, MIB - form->len};
		for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
			unsigned char saved[512];
			assert_true(form->len <= sizeof saved);
			memcpy(saved, buf + offs[k], form->len);
			memcpy(buf + offs[k], form->data, form->len);
			struct found *fd = scan(ix, buf, MIB);
			if (count_exact(fd, id, enc, offs[k], form->len) != 1)
				fail_msg("form %zu (%s, align %u, %zu bytes) at %zu: found %zu times in %zu findings",
					 i, enc, forms[i].align, form->len, offs[k],
					 count_exact(fd, id, enc, offs[k], form->len), fd->n);
			for (size_t j = 0; j < fd->n; j++) {
				assert_int_equal(fd->f[j].secret, id);
				assert_string_equal(fd->f[j].name, "tok");
				assert_true(fd->f[j].off < offs[k] + form->len &&
					    fd->f[j].off + fd->f[j].len > offs[k]);
				assert_true(fd->f[j].off + fd->f[j].len <= MIB);
				assert_true(is_form(forms, n, fd->f[j].enc, buf + fd->f[j].off, fd->f[j].len));
			}
			free(fd);
			memcpy(buf + offs[k], saved, form->len);
		}
	}
	/* Planted with what completes a longer form after it (the whole
	 * value's base64 unpadded, then its padding), both are found there. */
	size_t unpadded = n, padded = n;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			if (forms[i].enc == MATCH_BASE64 && forms[j].enc == MATCH_BASE64 &&
			    forms[j].bytes->len > forms[i].bytes->len &&
			    forms[j].bytes->data[forms[j].bytes->len - 1] == '=' &&
			    !memcmp(forms[i].bytes->data, forms[j].bytes->data, forms[i].bytes->len) &&
			    forms[i].bytes->data[forms[i].bytes->len - 1] != '=') {
				unpadded = i;
				padded = j;
			}
	assert_true(unpadded < n);
	memcpy(buf + 100, forms[padded].bytes->data, forms[padded].bytes->len);
	struct found *both = scan(ix, buf, MIB);
	assert_int_equal(count_exact(both, id, "base64", 100, forms[unpadded].bytes->len), 1);
	assert_int_equal(count_exact(both, id, "base64", 100, forms[padded].bytes->len), 1);
	free(both);

	/* The value has every kind of form. */
	for (int e = 0; e < MATCH_N_ENCODINGS; e++)
		if (!seen[e])
			fail_msg("no %s form", match_encoding_name((enum match_encoding)e));
	match_forms_free(forms, n);
	free(buf);
	hooks_index_free(ix);
	vault_close(v);
}

/* A form cut one byte short by the end of what is scanned is not found,
 * even when the byte that would complete it is in memory just past the
 * end; the whole form there is. Buffers sized exactly, so that a read past
 * the end is also an ASan report. */
static void scan_form_cut_at_end(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "tok", special);
	vault_close(v);
	v = fx_open(f);
	struct hooks_index *ix = NULL;
	assert_int_equal(hooks_index_load(v, &ix), 0);
	int64_t id = id_of(f, "tok");
	struct match_form *forms = NULL;
	size_t n = 0;
	assert_int_equal(match_forms((const unsigned char *)special, strlen(special), HOOKS_WINDOW, &forms, &n), 0);
	for (size_t i = 0; i < n; i++) {
		const struct secbuf *form = forms[i].bytes;
		const char *enc = match_encoding_name(forms[i].enc);
		size_t size = 4096;
		unsigned char *buf = malloc(size);
		assert_non_null(buf);
		randombytes_buf(buf, size);
		memcpy(buf + size - form->len, form->data, form->len);
		struct found *whole = scan(ix, buf, size);
		assert_int_equal(count_exact(whole, id, enc, size - form->len, form->len), 1);
		free(whole);
		struct found *cut = scan(ix, buf, size - 1);
		assert_int_equal(count_exact(cut, id, enc, size - form->len, form->len), 0);
		for (size_t j = 0; j < cut->n; j++)
			assert_true(cut->f[j].off + cut->f[j].len <= size - 1);
		free(cut);
		/* The form alone, exactly, and without its last byte. */
		struct found *alone = scan(ix, buf + size - form->len, form->len);
		assert_int_equal(count_exact(alone, id, enc, 0, form->len), 1);
		free(alone);
		unsigned char *shorter = malloc(form->len - 1);
		assert_non_null(shorter);
		memcpy(shorter, form->data, form->len - 1);
		struct found *none = scan(ix, shorter, form->len - 1);
		assert_int_equal(count_exact(none, id, enc, 0, form->len), 0);
		free(none);
		free(shorter);
		free(buf);
	}
	/* Less than a window: nothing to look at. */
	struct found *tiny = scan(ix, forms[0].bytes->data, HOOKS_WINDOW - 1);
	assert_int_equal(tiny->n, 0);
	free(tiny);
	match_forms_free(forms, n);
	hooks_index_free(ix);
	vault_close(v);
}

/* Nothing in 64 MiB of random bytes (the index's fast stages let through
 * about one window in 2^52 per form, and the slow one none); then a form
 * planted near the end of the same bytes is found, once. */
static void scan_no_false_positives(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "a", ALNUM32);
	put_str(v, "b", special);
	put_str(v, "c", HEX32);
	put_str(v, "d", ALNUM20);
	vault_close(v);
	v = fx_open(f);
	struct hooks_index *ix = NULL;
	assert_int_equal(hooks_index_load(v, &ix), 0);
	assert_int_equal(hooks_index_size(ix), ALNUM32_FORMS + forms_of(special, strlen(special)) +
						       forms_of(HEX32, 32) + forms_of(ALNUM20, 20));
	size_t size = 64 * MIB;
	unsigned char *buf = malloc(size);
	assert_non_null(buf);
	randombytes_buf(buf, size);
	struct found *fd = scan(ix, buf, size);
	assert_int_equal(fd->n, 0);
	free(fd);
	size_t at = size - 1000;
	memcpy(buf + at, ALNUM20, 20);
	fd = scan(ix, buf, size);
	assert_int_equal(fd->n, 1);
	assert_string_equal(fd->f[0].name, "d");
	assert_string_equal(fd->f[0].enc, "raw");
	assert_int_equal(fd->f[0].off, at);
	assert_int_equal(fd->f[0].len, 20);
	free(fd);
	free(buf);
	hooks_index_free(ix);
	vault_close(v);
}

static int stop_at_first(const struct hooks_finding *h, void *ctx)
{
	(void)h;
	(*(int *)ctx)++;
	return 7;
}

/* A callback's non-zero return stops the scan and is returned. */
static void scan_stops(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "a", ALNUM32);
	vault_close(v);
	v = fx_open(f);
	struct hooks_index *ix = NULL;
	assert_int_equal(hooks_index_load(v, &ix), 0);
	char text[] = "x " ALNUM32 " y " ALNUM32 " z";
	int calls = 0;
	assert_int_equal(hooks_index_scan(ix, (const unsigned char *)text, strlen(text), stop_at_first, &calls), 7);
	assert_int_equal(calls, 1);
	struct found *fd = scan(ix, (const unsigned char *)text, strlen(text));
	assert_int_equal(fd->n, 2);
	assert_int_equal(fd->f[0].off, 2);
	assert_int_equal(fd->f[1].off, 2 + 32 + 3);
	free(fd);
	hooks_index_free(ix);
	vault_close(v);
}

/* An empty vault: an empty index, which finds nothing and loads with no
 * key at all. */
static void empty_index(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_open(f);
	struct hooks_index *ix = NULL;
	assert_int_equal(hooks_index_load(v, &ix), 0);
	assert_int_equal(hooks_index_size(ix), 0);
	assert_int_equal(hooks_index_weak(ix), 0);
	assert_int_equal(hooks_index_unindexed(ix), 0);
	assert_string_equal(hooks_index_name(ix, 1), "?");
	struct found *fd = scan(ix, (const unsigned char *)ALNUM32, 32);
	assert_int_equal(fd->n, 0);
	free(fd);
	hooks_index_free(ix);
	hooks_index_free(NULL);
	vault_close(v);
}

/* --- what is left out ------------------------------------------------------ */

struct left {
	size_t n;
	struct {
		int64_t id;
		char name[LATCH_NAME_MAX + 1];
		int bits;
	} e[8];
	int stop; /* return this from the first call */
};

static int collect_left(int64_t id, const char *name, int bits, void *ctx)
{
	struct left *l = ctx;
	assert_true(l->n < 8);
	l->e[l->n].id = id;
	snprintf(l->e[l->n].name, sizeof l->e[l->n].name, "%s", name);
	l->e[l->n].bits = bits;
	l->n++;
	return l->stop;
}

/* The bits reported for `name`, failing if it is not reported once. */
static int left_bits(const struct left *l, const char *name)
{
	int found = -2, times = 0;
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->e[i].name, name))
			found = l->e[i].bits, times++;
	if (times != 1)
		fail_msg("'%s' left out %d times", name, times);
	return found;
}

static void left_out_reports(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "strong", ALNUM32);
	put_str(v, "strong2", HEX32);
	put_str(v, "legacy", ALNUM20);
	put_str(v, "weak1", "hunter2hunter");
	put_str(v, "weak2", ALNUM16);
	vault_close(v);
	/* A value stored before the index existed has no row at all. */
	sql_exec(f->path, "DELETE FROM scan_index WHERE secret = (SELECT id FROM secrets WHERE name = 'legacy')");

	v = fx_open(f);
	struct left l = {0};
	assert_int_equal(hooks_left_out(v, collect_left, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(left_bits(&l, "weak1"), bits_of("hunter2hunter"));
	assert_int_equal(left_bits(&l, "weak2"), 95);
	assert_int_equal(left_bits(&l, "legacy"), -1);
	for (size_t i = 0; i < l.n; i++)
		assert_int_equal(l.e[i].id, id_of(f, l.e[i].name));

	/* A non-zero return stops the walk and is returned. */
	struct left one = {.stop = 5};
	assert_int_equal(hooks_left_out(v, collect_left, &one), 5);
	assert_int_equal(one.n, 1);

	struct hooks_index *ix = NULL;
	assert_int_equal(hooks_index_load(v, &ix), 0);
	assert_int_equal(hooks_index_weak(ix), 2);
	assert_int_equal(hooks_index_unindexed(ix), 1);
	assert_int_equal(hooks_index_size(ix), forms_of(ALNUM32, 32) + forms_of(HEX32, 32));
	hooks_index_free(ix);
	vault_close(v);

	/* A rekey indexes it; the weak ones stay weak. */
	v = fx_unlocked(f, PASS);
	vault_on_value(v, hooks_index_value, NULL);
	assert_int_equal(vault_rekey(v, NULL), 0);
	struct left after = {0};
	assert_int_equal(hooks_left_out(v, collect_left, &after), 0);
	assert_int_equal(after.n, 2);
	assert_int_equal(left_bits(&after, "weak1"), bits_of("hunter2hunter"));
	assert_int_equal(left_bits(&after, "weak2"), 95);
	vault_close(v);
	expect_fingerprinted(f, "legacy", ALNUM20, 20);
}

/* --- a damaged index --------------------------------------------------------- */

static void copy_file(const char *from, const char *to)
{
	struct snap s = snap_take(from);
	int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s.buf, s.len), (ssize_t)s.len);
	close(fd);
	free(s.buf);
}

/* hooks_index_load must fail, hand back nothing, and say what to run. */
static void expect_load_refused(const struct fx *f)
{
	struct vault *v = fx_open(f);
	struct hooks_index *ix = (struct hooks_index *)(uintptr_t)1; /* cleared on failure */
	EXPECT_FAIL(LATCH_OPERR, hooks_index_load(v, &ix));
	assert_null(ix);
	if (!strstr(latch_last_message(), "'latch rekey'"))
		fail_msg("the message does not name 'latch rekey': %s", latch_last_message());
	vault_close(v);
}

static void damaged_index_refused(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "tok", ALNUM32);
	put_str(v, "weak", "hunter2hunter");
	vault_close(v);
	char pristine[PATH_MAX];
	path_join(pristine, sizeof pristine, f->root, "pristine.db");
	copy_file(f->path, pristine);

	static const char *const damage[] = {
		"UPDATE scan_index SET salt = zeroblob(15) WHERE form = 3",
		"UPDATE scan_index SET salt = zeroblob(17) WHERE form = 0",
		"UPDATE scan_index SET len = 16 * 1024 * 1024 + 1 WHERE form = 1",
		"UPDATE scan_index SET verify = zeroblob(8) WHERE form = 2",
		"UPDATE scan_index SET pre = 1048576 WHERE form = 4",
		"UPDATE scan_index SET pre = -1 WHERE form = 4",
		"UPDATE scan_index SET len = 11 WHERE form = 0",
		"UPDATE scan_key SET key = zeroblob(15)",
		"UPDATE scan_key SET key = zeroblob(17)",
		/* Found nothing, silently: a key that cannot be the writer's. */
		"UPDATE scan_key SET mult = mult - 1",
		"DELETE FROM scan_key",
	};
	for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
		copy_file(pristine, f->path);
		sql_exec(f->path, damage[i]);
		expect_load_refused(f);
	}
	/* The undamaged copy loads. */
	copy_file(pristine, f->path);
	v = fx_open(f);
	struct hooks_index *ix = NULL;
	assert_int_equal(hooks_index_load(v, &ix), 0);
	hooks_index_free(ix);
	vault_close(v);
}

/* With the key damaged, a set fails whole (the value is not changed), and
 * the message says how to repair; a rekey repairs the index and the value
 * is found again. */
static void damaged_key_set_rolls_back(void **state)
{
	struct fx *f = *state;
	struct vault *v = indexed(f);
	put_str(v, "tok", ALNUM32);
	sql_exec(f->path, "UPDATE scan_key SET key = zeroblob(15)");
	struct secbuf *b = sb_str(special);
	EXPECT_FAIL(LATCH_OPERR, vault_set(v, "tok", b, NULL));
	assert_non_null(strstr(latch_last_message(), "'latch rekey'"));
	EXPECT_FAIL(LATCH_OPERR, vault_set(v, "new", b, NULL));
	secbuf_free(b);
	expect_str(v, "tok", ALNUM32);
	expect_get_fails(v, "new", LATCH_OPERR);
	assert_int_equal(sql_int(f->path, "SELECT version FROM secrets WHERE name = ?1", "tok"), 1);
	assert_int_equal(index_rows(f, "tok"), ALNUM32_FORMS);
	/* A weak value needs no key: it is listed. */
	put_str(v, "weak", "hunter2hunter");
	assert_int_equal(weak_rows(f, "weak"), 1);

	assert_int_equal(vault_rekey(v, NULL), 0);
	vault_close(v);
	expect_fingerprinted(f, "tok", ALNUM32, 32);
	assert_int_equal(weak_rows(f, "weak"), 1);
	v = fx_open(f);
	struct hooks_index *ix = NULL;
	assert_int_equal(hooks_index_load(v, &ix), 0);
	struct found *fd = scan(ix, (const unsigned char *)ALNUM32, 32);
	assert_int_equal(fd->n, 1);
	free(fd);
	hooks_index_free(ix);
	vault_close(v);
	dir_only_vault(f);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	umask(077); /* as harden_process() does in latch's main */
	/* The index's tables, as latch's main() adds them, before the
	 * template vault is made. */
	if (vault_add_tables(&audit_tables) != 0 || vault_add_tables(&hooks_tables) != 0 || fx_template_init() != 0) {
		fprintf(stderr, "cannot create the template vault\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(entropy_table),
		cmocka_unit_test(entropy_random_strings),
		cmocka_unit_test(entropy_bounded_by_length),
		T(strong_value_fingerprinted),
		T(weak_value_listed),
		T(eleven_bytes_listed_weak),
		T(set_again_replaces),
		T(rm_removes_both),
		T(rekey_rebuilds),
		T(scan_finds_every_form),
		T(scan_form_cut_at_end),
		T(scan_no_false_positives),
		T(scan_stops),
		T(empty_index),
		T(left_out_reports),
		T(damaged_index_refused),
		T(damaged_key_set_rolls_back),
	};
	/* HOOKS_INDEX_ONLY=name runs one test (a glob), for debugging. */
	if (getenv("HOOKS_INDEX_ONLY"))
		cmocka_set_test_filter(getenv("HOOKS_INDEX_ONLY"));
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	free(fx_template);
	return failed;
}
