/* Scanning bytes against the scan index (hooks.h; index.c says what the
 * index holds and why). One pass per buffer: a rolling hash over every
 * WINDOW-byte window, one bitmap bit per position; SipHash where the bit
 * is set; Argon2id of the whole form where the fingerprint matches too. */
#include "hooks.h"

#include "../match/match.h"
#include "../vault/vault.h"

#include <sodium.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	uint32_t fp;
	uint32_t len;
	int64_t secret;
	int enc; /* match_encoding * 4 + align */
	unsigned char salt[HOOKS_SALT_BYTES];
	unsigned char verify[HOOKS_VERIFY_BYTES];
};

struct name {
	int64_t id;
	char *name;
};

struct hooks_index {
	unsigned char key[crypto_shorthash_KEYBYTES];
	uint64_t mult, mult_w; /* mult^WINDOW, to roll the oldest byte out */
	uint64_t *bitmap;      /* 1 << HOOKS_PRE_BITS bits */
	struct entry *e;       /* sorted by fp */
	size_t n;
	struct name *names; /* sorted by id */
	size_t n_names;
	size_t weak;      /* values too weak to fingerprint */
	size_t unindexed; /* values not in the index at all */
};

static int by_fp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return x->fp < y->fp ? -1 : x->fp > y->fp;
}

static int by_id(const void *a, const void *b)
{
	const struct name *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int add_name(int64_t id, int64_t version, const char *name, void *ctx)
{
	(void)version;
	struct hooks_index *ix = ctx;
	struct name *grown = realloc(ix->names, (ix->n_names + 1) * sizeof *grown);
	if (!grown)
		return latch_error(LATCH_OPERR, "out of memory");
	ix->names = grown;
	if (!(ix->names[ix->n_names].name = strdup(name)))
		return latch_error(LATCH_OPERR, "out of memory");
	ix->names[ix->n_names++].id = id;
	return 0;
}

static int count_left_out(int64_t id, const char *name, int bits, void *ctx)
{
	(void)id;
	(void)name;
	struct hooks_index *ix = ctx;
	if (bits < 0)
		ix->unindexed++;
	else
		ix->weak++;
	return 0;
}

const char *hooks_index_name(const struct hooks_index *ix, int64_t id)
{
	struct name key = {id, NULL};
	const struct name *n = bsearch(&key, ix->names, ix->n_names, sizeof *ix->names, by_id);
	return n ? n->name : "?";
}

size_t hooks_index_weak(const struct hooks_index *ix)
{
	return ix->weak;
}

size_t hooks_index_unindexed(const struct hooks_index *ix)
{
	return ix->unindexed;
}

int hooks_index_load(struct vault *v, struct hooks_index **out)
{
	*out = NULL;
	sqlite3 *db = vault_db(v);
	struct hooks_index *ix = calloc(1, sizeof *ix);
	if (!ix)
		return latch_error(LATCH_OPERR, "out of memory");
	ix->bitmap = calloc((size_t)1 << (HOOKS_PRE_BITS - 6), sizeof *ix->bitmap);
	if (!ix->bitmap) {
		hooks_index_free(ix);
		return latch_error(LATCH_OPERR, "out of memory");
	}
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(db, "SELECT key, mult FROM scan_key WHERE id = 1", -1, &st, NULL) != SQLITE_OK) {
		rc = latch_error(LATCH_OPERR, "cannot read the scan index: %s", sqlite3_errmsg(db));
	} else if (sqlite3_step(st) == SQLITE_ROW) {
		const void *k = sqlite3_column_blob(st, 0);
		if (!k || sqlite3_column_bytes(st, 0) != crypto_shorthash_KEYBYTES)
			rc = latch_error(LATCH_OPERR,
					 "the scan index's key is damaged: run 'latch rekey' (it rebuilds the index)");
		else
			memcpy(ix->key, k, sizeof ix->key);
		ix->mult = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	ix->mult_w = 1;
	for (size_t i = 0; i < HOOKS_WINDOW; i++)
		ix->mult_w *= ix->mult;
	if (rc == 0 && sqlite3_prepare_v2(db, "SELECT secret, enc, pre, fp, len, salt, verify FROM scan_index", -1, &st,
					  NULL) != SQLITE_OK)
		rc = latch_error(LATCH_OPERR, "cannot read the scan index: %s", sqlite3_errmsg(db));
	int step;
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		if (ix->n % 1024 == 0) {
			struct entry *grown = realloc(ix->e, (ix->n + 1024) * sizeof *grown);
			if (!grown) {
				rc = latch_error(LATCH_OPERR, "out of memory");
				break;
			}
			ix->e = grown;
		}
		struct entry *e = &ix->e[ix->n];
		int64_t pre = sqlite3_column_int64(st, 2), len = sqlite3_column_int64(st, 4);
		const void *salt = sqlite3_column_blob(st, 5), *verify = sqlite3_column_blob(st, 6);
		if (pre < 0 || pre >= (1LL << HOOKS_PRE_BITS) || len < HOOKS_WINDOW || len > 16 * 1024 * 1024 ||
		    !salt || sqlite3_column_bytes(st, 5) != HOOKS_SALT_BYTES || !verify ||
		    sqlite3_column_bytes(st, 6) != HOOKS_VERIFY_BYTES) {
			rc = latch_error(LATCH_OPERR,
					 "the scan index is damaged: run 'latch rekey' (it rebuilds the index)");
			break;
		}
		e->secret = sqlite3_column_int64(st, 0);
		e->enc = sqlite3_column_int(st, 1);
		e->fp = (uint32_t)sqlite3_column_int64(st, 3);
		e->len = (uint32_t)len;
		memcpy(e->salt, salt, sizeof e->salt);
		memcpy(e->verify, verify, sizeof e->verify);
		ix->bitmap[pre >> 6] |= 1ULL << (pre & 63);
		ix->n++;
	}
	sqlite3_finalize(st);
	if (rc == 0)
		qsort(ix->e, ix->n, sizeof *ix->e, by_fp);
	if (rc == 0 && (vault_rows(v, add_name, ix) != 0 || hooks_left_out(v, count_left_out, ix) != 0))
		rc = -1;
	if (rc == 0)
		qsort(ix->names, ix->n_names, sizeof *ix->names, by_id);
	if (rc != 0) {
		hooks_index_free(ix);
		return -1;
	}
	*out = ix;
	return 0;
}

void hooks_index_free(struct hooks_index *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i < ix->n_names; i++)
		free(ix->names[i].name);
	free(ix->names);
	free(ix->e);
	free(ix->bitmap);
	sodium_memzero(ix, sizeof *ix);
	free(ix);
}

size_t hooks_index_size(const struct hooks_index *ix)
{
	return ix->n;
}

/* The entries whose fingerprint is `fp`: [*lo, *hi). */
static void fp_range(const struct hooks_index *ix, uint32_t fp, size_t *lo, size_t *hi)
{
	size_t a = 0, b = ix->n;
	while (a < b) {
		size_t m = a + (b - a) / 2;
		if (ix->e[m].fp < fp)
			a = m + 1;
		else
			b = m;
	}
	*lo = a;
	while (b < ix->n && ix->e[b].fp == fp)
		b++;
	*hi = b > a ? b : a;
}

int hooks_index_scan(const struct hooks_index *ix, const unsigned char *p, size_t n, hooks_found_fn fn, void *ctx)
{
	if (ix->n == 0 || n < HOOKS_WINDOW)
		return 0;
	uint64_t h = hooks_roll_init(p, ix->mult);
	for (size_t pos = 0;; pos++) {
		uint32_t pre = hooks_pre(h);
		if (ix->bitmap[pre >> 6] & (1ULL << (pre & 63))) {
			size_t lo, hi;
			fp_range(ix, hooks_fp(p + pos, ix->key), &lo, &hi);
			for (size_t i = lo; i < hi; i++) {
				const struct entry *e = &ix->e[i];
				unsigned char got[HOOKS_VERIFY_BYTES];
				if (e->len > n - pos || hooks_verify_hash(p + pos, e->len, e->salt, got) != 0 ||
				    sodium_memcmp(got, e->verify, sizeof got) != 0)
					continue;
				struct hooks_finding f = {.secret = e->secret,
							  .name = hooks_index_name(ix, e->secret),
							  .encoding = match_encoding_name(
								  (enum match_encoding)(e->enc / 4)),
							  .offset = pos,
							  .len = e->len};
				int rc = fn(&f, ctx);
				if (rc != 0)
					return rc;
			}
		}
		if (pos + HOOKS_WINDOW >= n)
			break;
		h = h * ix->mult - (uint64_t)p[pos] * ix->mult_w + p[pos + HOOKS_WINDOW];
	}
	return 0;
}
