/* The scan index (hooks.h, docs/scanning.md): what `latch scan` and the
 * git hooks look for, with no passphrase and no plaintext.
 *
 * For each value and each of its forms (match_forms: raw, base64 at its
 * three alignments, hex, percent, JSON, quoting, UTF-16LE), three things
 * are kept, in the transaction that sets the value:
 *   - `pre`: PRE_BITS bits of a polynomial rolling hash of the form's
 *     first WINDOW bytes (the multiplier is random per vault). The
 *     scanner rolls this hash over every position of a file at about a
 *     nanosecond a byte and tests one bit of a 256 KiB bitmap;
 *   - `fp`: FP_BITS bits of SipHash-2-4 (libsodium's crypto_shorthash)
 *     of the same window under a random per-vault key, checked where the
 *     bitmap says maybe;
 *   - `verify`: Argon2id of the whole form under a random salt, checked
 *     only where both agree (on a 50 MB change, a handful of times).
 * The keys sit in the vault file unencrypted: the hooks run while the
 * vault is locked. So everything here is also a guessing oracle for a
 * process of the same user, and it is built so that the oracle is slow:
 * the fast stages keep at most PRE_BITS + FP_BITS = 52 bits of a form's
 * first 12 bytes, and every guess past them costs one Argon2id run.
 * A value whose estimated entropy is below WEAK_BITS is not
 * fingerprinted at all: it is listed (scan_weak), shown by `latch status`
 * and `latch ls`, and scanned only with the passphrase (--unlock). */
#include "hooks.h"

#include "../match/match.h"
#include "../vault/vault.h"

#include <math.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* Append only: a released migration is never edited. The file's version
 * 5 is the vault's empty step 4 followed by this. */
static const char *const steps[] = {
	NULL,
	NULL,
	NULL,
	NULL,
	/* 5: the scan index. */
	"CREATE TABLE scan_key ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" key BLOB NOT NULL,"
	" mult INTEGER NOT NULL);"
	"CREATE TABLE scan_index ("
	" secret INTEGER NOT NULL,"
	" form INTEGER NOT NULL,"
	" enc INTEGER NOT NULL,"
	" pre INTEGER NOT NULL,"
	" fp INTEGER NOT NULL,"
	" len INTEGER NOT NULL,"
	" salt BLOB NOT NULL,"
	" verify BLOB NOT NULL,"
	" PRIMARY KEY (secret, form)) WITHOUT ROWID;"
	"CREATE TABLE scan_weak ("
	" secret INTEGER PRIMARY KEY,"
	" bits INTEGER NOT NULL);"
	"CREATE TABLE scan_allow ("
	" secret INTEGER NOT NULL,"
	" path TEXT NOT NULL,"
	" PRIMARY KEY (secret, path)) WITHOUT ROWID;",
};

static const char *const schema[] = {
	"table scan_allow scan_allow CREATE TABLE scan_allow ( secret INTEGER NOT NULL, path TEXT NOT NULL, PRIMARY "
	"KEY (secret, path)) WITHOUT ROWID",
	"table scan_index scan_index CREATE TABLE scan_index ( secret INTEGER NOT NULL, form INTEGER NOT NULL, enc "
	"INTEGER NOT NULL, pre INTEGER NOT NULL, fp INTEGER NOT NULL, len INTEGER NOT NULL, salt BLOB NOT NULL, verify "
	"BLOB NOT NULL, PRIMARY KEY (secret, form)) WITHOUT ROWID",
	"table scan_key scan_key CREATE TABLE scan_key ( id INTEGER PRIMARY KEY CHECK (id = 1), key BLOB NOT NULL, mult "
	"INTEGER NOT NULL)",
	"table scan_weak scan_weak CREATE TABLE scan_weak ( secret INTEGER PRIMARY KEY, bits INTEGER NOT NULL)",
};

const struct vault_tables hooks_tables = {steps, sizeof steps / sizeof steps[0], schema,
					  sizeof schema / sizeof schema[0]};

static int db_fail(sqlite3 *db, const char *what)
{
	return latch_error(LATCH_OPERR, "cannot %s: %s", what, sqlite3_errmsg(db));
}

static int exec1(sqlite3 *db, const char *sql, int64_t a, const char *what)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, what);
	sqlite3_bind_int64(st, 1, a);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(db, what);
}

/* The per-vault keys, made on first use inside the caller's transaction. */
static int scan_keys(sqlite3 *db, unsigned char key[crypto_shorthash_KEYBYTES], uint64_t *mult)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT key, mult FROM scan_key WHERE id = 1", -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "read the scan index's key");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *k = sqlite3_column_blob(st, 0);
		int n = sqlite3_column_bytes(st, 0);
		bool ok = k && n == crypto_shorthash_KEYBYTES;
		if (ok)
			memcpy(key, k, crypto_shorthash_KEYBYTES);
		*mult = (uint64_t)sqlite3_column_int64(st, 1);
		sqlite3_finalize(st);
		return ok && (*mult & 1)
			       ? 0
			       : latch_error(
					 LATCH_OPERR,
					 "the scan index's key is damaged: run 'latch rekey' (it rebuilds the index)");
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "read the scan index's key");
	randombytes_buf(key, crypto_shorthash_KEYBYTES);
	randombytes_buf(mult, sizeof *mult);
	*mult |= 1;
	if (sqlite3_prepare_v2(db, "INSERT INTO scan_key (id, key, mult) VALUES (1, ?1, ?2)", -1, &st, NULL) !=
	    SQLITE_OK)
		return db_fail(db, "write the scan index's key");
	sqlite3_bind_blob(st, 1, key, crypto_shorthash_KEYBYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)*mult);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(db, "write the scan index's key");
}

uint64_t hooks_roll_init(const unsigned char *w, uint64_t mult)
{
	uint64_t h = 0;
	for (size_t i = 0; i < HOOKS_WINDOW; i++)
		h = h * mult + w[i];
	return h;
}

uint32_t hooks_pre(uint64_t h)
{
	/* A multiply spreads the low bytes' influence into the top bits. */
	return (uint32_t)((h * 0x9E3779B97F4A7C15ULL) >> (64 - HOOKS_PRE_BITS));
}

uint32_t hooks_fp(const unsigned char *w, const unsigned char key[crypto_shorthash_KEYBYTES])
{
	unsigned char out[crypto_shorthash_BYTES];
	crypto_shorthash(out, w, HOOKS_WINDOW, key);
	return (uint32_t)out[0] | (uint32_t)out[1] << 8 | (uint32_t)out[2] << 16 | (uint32_t)out[3] << 24;
}

int hooks_verify_hash(const unsigned char *form, size_t n, const unsigned char salt[HOOKS_SALT_BYTES],
		      unsigned char out[HOOKS_VERIFY_BYTES])
{
	if (crypto_pwhash(out, HOOKS_VERIFY_BYTES, (const char *)form, n, salt, HOOKS_VERIFY_OPS, HOOKS_VERIFY_MEM,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return latch_error(LATCH_OPERR, "out of memory for the scan index's hash");
	return 0;
}

/* Word passphrases ("correct horse battery staple"): the character count
 * overrates them most. At least three words (runs of three or more
 * letters, lower case or capitalised) that together are at least three
 * quarters of the value are counted as words from a 7,776-word list
 * (12.9 bits each), every other character at 4 bits. Random tokens are
 * not read as words: their letter runs are short, mixed in case, or a
 * small share of the value. *cap is set when the value reads as words. */
static bool words_cap(const unsigned char *v, size_t n, double *cap)
{
	size_t words = 0, in_words = 0, i = 0;
	while (i < n) {
		size_t start = i;
		while (i < n && ((v[i] | 0x20) >= 'a' && (v[i] | 0x20) <= 'z'))
			i++;
		size_t len = i - start;
		bool word = len >= 3;
		for (size_t k = start + 1; word && k < i; k++)
			word = v[k] >= 'a' && v[k] <= 'z';
		if (word) {
			words++;
			in_words += len;
		}
		if (i == start)
			i++;
	}
	if (words < 3 || 4 * in_words < 3 * n)
		return false;
	/* Words are set apart by separators, not by digits or symbols in
	 * between (a random token of lower-case letters and digits is not a
	 * passphrase); digits may only close the value ("...staple2024"). */
	size_t end = n;
	while (end > 0 && v[end - 1] >= '0' && v[end - 1] <= '9' && n - end < 4)
		end--;
	for (size_t k = 0; k < end; k++)
		if (!((v[k] | 0x20) >= 'a' && (v[k] | 0x20) <= 'z') && !strchr(" -_.,+:/", v[k]))
			return false;
	*cap = (double)words * 12.92 + (double)(n - in_words) * 4;
	return true;
}

int hooks_entropy_bits(const unsigned char *v, size_t n)
{
	/* A deliberately plain estimate: the size of the alphabets the value
	 * draws on (lower, upper, digits, other printable, other bytes),
	 * per character, with runs and repeats counted once, and word
	 * passphrases as words (words_cap). It still overrates known
	 * prefixes and words mixed with other characters; docs/scanning.md
	 * says what it means. */
	bool lower = false, upper = false, digit = false, punct = false, high = false;
	unsigned char seen[256] = {0};
	size_t distinct = 0;
	double bits = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = v[i];
		lower |= c >= 'a' && c <= 'z';
		upper |= c >= 'A' && c <= 'Z';
		digit |= c >= '0' && c <= '9';
		punct |= c >= 0x20 && c < 0x7f && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9');
		high |= c < 0x20 || c >= 0x7f;
		distinct += !seen[c]++;
	}
	int alphabet = (lower ? 26 : 0) + (upper ? 26 : 0) + (digit ? 10 : 0) + (punct ? 33 : 0) + (high ? 161 : 0);
	/* Hex draws on 16 characters, not on all letters and digits. */
	bool hex = n > 0;
	for (size_t i = 0; hex && i < n; i++)
		hex = (v[i] >= '0' && v[i] <= '9') || ((v[i] | 0x20) >= 'a' && (v[i] | 0x20) <= 'f');
	if (hex && !(lower && upper))
		alphabet = 16;
	if (alphabet < 2)
		return 0;
	double per = log2((double)alphabet);
	for (size_t i = 0; i < n; i++) {
		/* A character that repeats the one before, or continues a
		 * step of +-1 from the two before, adds one bit, not `per`. */
		bool run = i >= 1 && v[i] == v[i - 1];
		bool step = i >= 2 && (int)v[i] - v[i - 1] == (int)v[i - 1] - v[i - 2] &&
			    abs((int)v[i] - v[i - 1]) == 1;
		bits += run || step ? 1 : per;
	}
	/* Few distinct characters cannot carry more than this: the value is
	 * one of the C(alphabet, distinct) * distinct^n strings of its length
	 * that use only `distinct` characters of its alphabets. (A flat
	 * allowance for which characters those are, instead of the binomial,
	 * held every random string of 20 letters and digits, and a third of
	 * all base64 of 16 random bytes, below the bound.) */
	double cap = (double)n * log2((double)(distinct ? distinct : 1));
	for (size_t i = 0; i < distinct && i < (size_t)alphabet; i++)
		cap += log2((double)((size_t)alphabet - i) / (double)(i + 1));
	double words;
	if (words_cap(v, n, &words) && words < cap)
		cap = words;
	/* Whole bits, without a last-digit rounding error taking one away
	 * (32 hex digits are 128 bits, not 127). */
	return (int)((bits < cap ? bits : cap) + 1e-9);
}

/* Fingerprint one value: every form of at least HOOKS_WINDOW bytes; 1
 * when it has none (not reachable while the estimate gives at most 8 bits
 * a byte: a value strong enough has a raw form of 14 bytes or more). */
static int index_value(sqlite3 *db, int64_t id, const struct secbuf *value)
{
	unsigned char key[crypto_shorthash_KEYBYTES];
	uint64_t mult;
	if (scan_keys(db, key, &mult) != 0)
		return -1;
	struct match_form *forms = NULL;
	size_t n = 0;
	if (match_forms(value->data, value->len, HOOKS_WINDOW, &forms, &n) != 0) {
		sodium_memzero(key, sizeof key);
		return -1;
	}
	if (n == 0) {
		sodium_memzero(key, sizeof key);
		return 1;
	}
	sqlite3_stmt *st;
	int rc = 0;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO scan_index (secret, form, enc, pre, fp, len, salt, verify)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
			       -1, &st, NULL) != SQLITE_OK)
		rc = db_fail(db, "write the scan index");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct secbuf *f = forms[i].bytes;
		unsigned char salt[HOOKS_SALT_BYTES], verify[HOOKS_VERIFY_BYTES];
		randombytes_buf(salt, sizeof salt);
		if (hooks_verify_hash(f->data, f->len, salt, verify) != 0) {
			rc = -1;
			break;
		}
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		sqlite3_bind_int64(st, 3, (int64_t)forms[i].enc * 4 + forms[i].align);
		sqlite3_bind_int64(st, 4, hooks_pre(hooks_roll_init(f->data, mult)));
		sqlite3_bind_int64(st, 5, hooks_fp(f->data, key));
		sqlite3_bind_int64(st, 6, (int64_t)f->len);
		sqlite3_bind_blob(st, 7, salt, sizeof salt, SQLITE_TRANSIENT);
		sqlite3_bind_blob(st, 8, verify, sizeof verify, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_fail(db, "write the scan index");
	}
	sqlite3_finalize(st);
	match_forms_free(forms, n);
	sodium_memzero(key, sizeof key);
	return rc;
}

int hooks_index_value(struct vault *v, const char *event, int64_t id, const struct secbuf *value, void *ctx)
{
	(void)ctx;
	sqlite3 *db = vault_db(v);
	if (!strcmp(event, "rekey") && id == 0) {
		/* A new data key: new index keys and salts for every value
		 * (which follow, one call each), so an index copied before
		 * says nothing about the values after. */
		return exec1(db, "DELETE FROM scan_index WHERE ?1 = ?1", 0, "rebuild the scan index") != 0 ||
				       exec1(db, "DELETE FROM scan_weak WHERE ?1 = ?1", 0, "rebuild the scan index") !=
					       0 ||
				       exec1(db, "DELETE FROM scan_key WHERE ?1 = ?1", 0, "rebuild the scan index") != 0
			       ? -1
			       : 0;
	}
	if (exec1(db, "DELETE FROM scan_index WHERE secret = ?1", id, "update the scan index") != 0 ||
	    exec1(db, "DELETE FROM scan_weak WHERE secret = ?1", id, "update the scan index") != 0)
		return -1;
	if (!value) /* rm: its allowances go too (a new secret of that name starts with none) */
		return exec1(db, "DELETE FROM scan_allow WHERE secret = ?1", id, "update the scan index");
	int bits = hooks_entropy_bits(value->data, value->len);
	if (bits >= HOOKS_WEAK_BITS) {
		int indexed = index_value(db, id, value);
		if (indexed <= 0)
			return indexed;
		/* No form long enough to fingerprint: listed as weak with its
		 * bits, never taken for a value that is looked for. */
	}
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "INSERT INTO scan_weak (secret, bits) VALUES (?1, ?2)", -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "update the scan index");
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, bits);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(db, "update the scan index");
}

struct ids {
	int64_t *id;
	int *bits;
	size_t n;
};

static int load_ids(sqlite3 *db, const char *sql, struct ids *out)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "read the scan index");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t *id = realloc(out->id, (out->n + 1) * sizeof *id);
		if (id)
			out->id = id;
		int *bits = id ? realloc(out->bits, (out->n + 1) * sizeof *bits) : NULL;
		if (!bits) {
			sqlite3_finalize(st);
			return latch_error(LATCH_OPERR, "out of memory");
		}
		out->bits = bits;
		out->id[out->n] = sqlite3_column_int64(st, 0);
		out->bits[out->n++] = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(db, "read the scan index");
}

/* Index of `id` in the sorted list, or -1. */
static long find_id(const struct ids *l, int64_t id)
{
	size_t a = 0, b = l->n;
	while (a < b) {
		size_t m = a + (b - a) / 2;
		if (l->id[m] == id)
			return (long)m;
		if (l->id[m] < id)
			a = m + 1;
		else
			b = m;
	}
	return -1;
}

struct left_out {
	struct ids known; /* fingerprinted (bits -1) and weak (bits) */
	int (*fn)(int64_t id, const char *name, int bits, void *ctx);
	void *ctx;
};

static int check_row(int64_t id, int64_t version, const char *name, void *ctx)
{
	(void)version;
	struct left_out *lo = ctx;
	long i = find_id(&lo->known, id);
	if (i >= 0 && lo->known.bits[i] < 0)
		return 0; /* fingerprinted */
	return lo->fn(id, name, i >= 0 ? lo->known.bits[i] : -1, lo->ctx);
}

int hooks_left_out(struct vault *v, int (*fn)(int64_t id, const char *name, int bits, void *ctx), void *ctx)
{
	struct left_out lo = {{NULL, NULL, 0}, fn, ctx};
	int rc = load_ids(vault_db(v),
			  "SELECT secret, -1 FROM scan_index GROUP BY secret"
			  " UNION ALL SELECT secret, bits FROM scan_weak ORDER BY 1",
			  &lo.known);
	if (rc == 0)
		rc = vault_rows(v, check_row, &lo);
	free(lo.known.id);
	free(lo.known.bits);
	return rc;
}

/* The allow-list ------------------------------------------------------- */

struct lookup {
	const char *name;
	int64_t id;
};

static int find_name(int64_t id, int64_t version, const char *name, void *ctx)
{
	(void)version;
	struct lookup *l = ctx;
	if (!strcmp(name, l->name))
		l->id = id;
	return 0;
}

int hooks_allow_change(struct vault *v, const char *name, const char *path, bool add,
		       int (*record)(struct vault *v, void *ctx), void *ctx)
{
	sqlite3 *db = vault_db(v);
	if (!text_is_plain(path) || !*path || strlen(path) > 4096)
		return latch_error(LATCH_USAGE, "an allowed path must be plain text of 1 to 4096 bytes");
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, "change the scan allow-list");
	struct lookup l = {name, 0};
	int rc = vault_rows(v, find_name, &l);
	if (rc == 0 && !l.id)
		rc = latch_error(LATCH_USAGE, "no secret '%s'", name);
	sqlite3_stmt *st = NULL;
	if (rc == 0 && sqlite3_prepare_v2(db,
					  add ? "INSERT OR IGNORE INTO scan_allow (secret, path) VALUES (?1, ?2)"
					      : "DELETE FROM scan_allow WHERE secret = ?1 AND path = ?2",
					  -1, &st, NULL) != SQLITE_OK)
		rc = db_fail(db, "change the scan allow-list");
	if (rc == 0) {
		sqlite3_bind_int64(st, 1, l.id);
		sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_fail(db, "change the scan allow-list");
		else if (sqlite3_changes(db) == 0)
			rc = 1;
	}
	sqlite3_finalize(st);
	/* The change and its audit record commit together, or neither. */
	if (rc == 0 && record(v, ctx) != 0)
		rc = -1;
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(db, "change the scan allow-list");
	if (rc != 0 && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int hooks_allow_list(struct vault *v, int (*fn)(int64_t secret, const char *path, void *ctx), void *ctx)
{
	sqlite3 *db = vault_db(v);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT secret, path FROM scan_allow ORDER BY secret, path", -1, &st, NULL) !=
	    SQLITE_OK)
		return db_fail(db, "read the scan allow-list");
	int rc, ret = 0;
	while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 1);
		ret = fn(sqlite3_column_int64(st, 0), path ? path : "", ctx);
	}
	sqlite3_finalize(st);
	if (ret != 0)
		return ret;
	return rc == SQLITE_DONE ? 0 : db_fail(db, "read the scan allow-list");
}
