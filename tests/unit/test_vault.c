/* Unit tests: the vault's public API against a real sqlite file.
 *
 * Round trips and limits, wrong passphrases, passwd, rekey, remove, two
 * handles racing on the keys, schema versions, permissions and creation.
 * Tampering with ciphertexts and the header lives in test_tamper.c.
 * Each vault uses VAULT_KDF_INTERACTIVE; every create or unlock costs one
 * Argon2id run (~0.1 s), so tests keep those few. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vault_fixture.h"

#include <sys/types.h>
#include <sys/wait.h>

/* --- round trips and limits ------------------------------------------- */

struct listed {
	int n;
	char names[8][LATCH_NAME_MAX + 1];
	int64_t versions[8];
	int64_t updated[8];
};

static int collect(const struct vault_entry *e, void *ctx)
{
	struct listed *l = ctx;
	if (l->n >= 8)
		return 1;
	snprintf(l->names[l->n], sizeof l->names[l->n], "%s", e->name);
	l->versions[l->n] = e->version;
	l->updated[l->n] = e->updated;
	l->n++;
	return 0;
}

static const unsigned char binary_value[] = {0x00, 'a', 0x00, 0x00, 'b', 0xff, 0x00, 0x80, 0x00};

static void round_trip(void **state)
{
	struct fx *f = *state;
	fx_create_new(f, PASS);
	struct vault *v = fx_unlocked(f, PASS);
	assert_int_equal(put_str(v, "a", "first value"), 1);
	assert_int_equal(put_str(v, "prod-db", "postgres://u:p@db/prod"), 1);
	assert_int_equal(put_str(v, "team/api.key_2", "x"), 1);
	assert_int_equal(put(v, "bin", binary_value, sizeof binary_value), 1);
	expect_str(v, "a", "first value");
	expect_str(v, "prod-db", "postgres://u:p@db/prod");
	expect_str(v, "team/api.key_2", "x");
	expect_bytes(v, "bin", binary_value, sizeof binary_value);
	expect_get_fails(v, "missing", LATCH_OPERR);
	vault_close(v);

	/* Persisted: a new handle with the passphrase sees the same bytes. */
	v = fx_unlocked(f, PASS);
	expect_bytes(v, "bin", binary_value, sizeof binary_value);
	expect_str(v, "a", "first value");
	expect_str(v, "prod-db", "postgres://u:p@db/prod");
	expect_str(v, "team/api.key_2", "x");
	struct listed l = {0};
	assert_int_equal(vault_list(v, collect, &l), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.names[0], "a");
	assert_string_equal(l.names[1], "bin");
	assert_string_equal(l.names[2], "prod-db");
	assert_string_equal(l.names[3], "team/api.key_2");
	struct vault_info info;
	assert_int_equal(vault_info(v, &info), 0);
	assert_int_equal(info.secrets, 4);
	assert_int_equal(info.key_generation, 1);
	assert_string_equal(info.kdf_name, "interactive");
	vault_close(v);
	dir_only_vault(f);
}

static void value_size_limits(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);

	/* Exactly the limit round-trips, random bytes (NULs included). */
	struct secbuf *max = secbuf_new(VAULT_VALUE_MAX);
	assert_non_null(max);
	randombytes_buf(max->data, VAULT_VALUE_MAX);
	max->len = VAULT_VALUE_MAX;
	int64_t version = 0;
	assert_int_equal(vault_set(v, "big", max, &version), 0);
	assert_int_equal(version, 1);
	expect_bytes(v, "big", max->data, max->len);
	assert_int_equal(sql_int(f->path, "SELECT length(ciphertext) FROM secrets WHERE name = ?1", "big"),
			 VAULT_VALUE_MAX + AEAD_TAG_BYTES);

	/* One byte more is refused, for a new name and for an existing one,
	 * and nothing is written. */
	struct secbuf *over = secbuf_new(VAULT_VALUE_MAX + 1);
	assert_non_null(over);
	memset(over->data, 'o', VAULT_VALUE_MAX + 1);
	over->len = VAULT_VALUE_MAX + 1;
	struct snap s = snap_take(f->path);
	EXPECT_FAIL(LATCH_USAGE, vault_set(v, "too-big", over, NULL));
	EXPECT_FAIL(LATCH_USAGE, vault_set(v, "big", over, NULL));
	snap_same(&s, f->path);
	expect_get_fails(v, "too-big", LATCH_OPERR);
	expect_bytes(v, "big", max->data, max->len);

	/* An empty value is refused, new name or existing. */
	struct secbuf *empty = secbuf_new(0);
	assert_non_null(empty);
	s = snap_take(f->path);
	EXPECT_FAIL(LATCH_USAGE, vault_set(v, "empty", empty, NULL));
	EXPECT_FAIL(LATCH_USAGE, vault_set(v, "big", empty, NULL));
	snap_same(&s, f->path);
	expect_get_fails(v, "empty", LATCH_OPERR);
	vault_close(v);

	v = fx_unlocked(f, PASS);
	expect_bytes(v, "big", max->data, max->len);
	vault_close(v);
	secbuf_free(max);
	secbuf_free(over);
	secbuf_free(empty);
}

static void replace_bumps_version(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	assert_int_equal(put_str(v, "tok", "one"), 1);
	int64_t id = sql_int(f->path, "SELECT id FROM secrets WHERE name = ?1", "tok");
	assert_int_equal(put_str(v, "tok", "two, longer"), 2);
	expect_str(v, "tok", "two, longer");
	assert_int_equal(put_str(v, "tok", "3"), 3);
	expect_str(v, "tok", "3");
	assert_int_equal(sql_int(f->path, "SELECT version FROM secrets WHERE name = ?1", "tok"), 3);
	assert_int_equal(sql_int(f->path, "SELECT id FROM secrets WHERE name = ?1", "tok"), id);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM secrets", NULL), 1);
	struct listed l = {0};
	assert_int_equal(vault_list(v, collect, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.versions[0], 3);
	vault_close(v);
}

static void invalid_names_refused(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	char too_long[LATCH_NAME_MAX + 2];
	memset(too_long, 'x', LATCH_NAME_MAX + 1);
	too_long[LATCH_NAME_MAX + 1] = '\0';
	const char *bad[] = {"", "-x", "/x", ".x", "_x", "a b", "a=b", "a\nb", "a\x1b[2J", "caf\xc3\xa9", too_long};
	struct secbuf *val = sb_str("value");
	struct snap s = snap_take(f->path);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct secbuf *out = NULL;
		EXPECT_FAIL(LATCH_USAGE, vault_set(v, bad[i], val, NULL));
		EXPECT_FAIL(LATCH_USAGE, vault_get(v, bad[i], &out));
		assert_null(out);
		EXPECT_FAIL(LATCH_USAGE, vault_remove(v, bad[i]));
	}
	snap_same(&s, f->path);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM secrets", NULL), 0);
	/* The longest valid name works. */
	too_long[LATCH_NAME_MAX] = '\0';
	assert_int_equal(vault_set(v, too_long, val, NULL), 0);
	expect_str(v, too_long, "value");
	secbuf_free(val);
	vault_close(v);
}

static void locked_handle_refuses(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_str(v, "a", "secret a");
	vault_close(v);

	v = fx_open(f);
	struct snap s = snap_take(f->path);
	struct secbuf *val = sb_str("new"), *np = sb_str(PASS2), *out = NULL;
	enum vault_kdf kdf = VAULT_KDF_INTERACTIVE;
	int64_t count = -1;
	EXPECT_FAIL(LATCH_DENIED, vault_get(v, "a", &out));
	assert_null(out);
	EXPECT_FAIL(LATCH_DENIED, vault_set(v, "a", val, NULL));
	EXPECT_FAIL(LATCH_DENIED, vault_set(v, "b", val, NULL));
	EXPECT_FAIL(LATCH_DENIED, vault_remove(v, "a"));
	EXPECT_FAIL(LATCH_DENIED, vault_passwd(v, np, &kdf));
	EXPECT_FAIL(LATCH_DENIED, vault_rekey(v, &count));
	assert_int_equal(count, -1);
	/* Names need no key. */
	struct listed l = {0};
	assert_int_equal(vault_list(v, collect, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.names[0], "a");
	snap_same(&s, f->path);
	secbuf_free(val);
	secbuf_free(np);
	vault_close(v);
}

/* --- wrong passphrase ------------------------------------------------- */

static void wrong_passphrase_denied(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_str(v, "a", "secret a");
	vault_close(v);

	struct snap s = snap_take(f->path);
	v = fx_open(f);
	const char *wrong[] = {"correct horse battery stapl", PASS "\n", ""};
	for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
		struct secbuf *p = sb_str(wrong[i]);
		EXPECT_FAIL(LATCH_DENIED, vault_unlock(v, p));
		secbuf_free(p);
		expect_get_fails(v, "a", LATCH_DENIED);
	}
	snap_same(&s, f->path);
	dir_only_vault(f);
	/* The same handle still takes the right passphrase afterwards. */
	struct secbuf *p = sb_str(PASS);
	assert_int_equal(vault_unlock(v, p), 0);
	secbuf_free(p);
	expect_str(v, "a", "secret a");
	vault_close(v);
}

/* --- passwd ------------------------------------------------------------ */

static void rows_identical(const struct row *a, const struct row *b)
{
	assert_int_equal(a->id, b->id);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->nonce_len, b->nonce_len);
	assert_memory_equal(a->nonce, b->nonce, a->nonce_len);
	assert_int_equal(a->ct_len, b->ct_len);
	assert_memory_equal(a->ct, b->ct, a->ct_len);
}

static const char *const three_names[] = {"a", "b", "c"};
static const char *const three_values[] = {"value of a", "the value of b", "c"};

static void put_three(struct vault *v)
{
	for (int i = 0; i < 3; i++)
		assert_int_equal(put_str(v, three_names[i], three_values[i]), 1);
}

static void expect_three(struct vault *v)
{
	for (int i = 0; i < 3; i++)
		expect_str(v, three_names[i], three_values[i]);
}

static void passwd_rewraps_only(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_three(v);
	struct row before[3], after[3];
	for (int i = 0; i < 3; i++)
		row_load(f->path, three_names[i], &before[i]);
	struct vault_header h0, h1;
	hdr_load(f->path, &h0);

	struct secbuf *np = sb_str(PASS2);
	assert_int_equal(vault_passwd(v, np, NULL), 0);
	secbuf_free(np);
	expect_three(v); /* the handle keeps working */
	vault_close(v);

	for (int i = 0; i < 3; i++) {
		row_load(f->path, three_names[i], &after[i]);
		rows_identical(&before[i], &after[i]);
		row_free(&before[i]);
		row_free(&after[i]);
	}
	hdr_load(f->path, &h1);
	assert_memory_equal(h1.vault_id, h0.vault_id, VAULT_ID_BYTES);
	assert_int_equal(h1.key_generation, h0.key_generation);
	assert_int_equal(h1.kdf_alg, h0.kdf_alg);
	assert_int_equal(h1.kdf_opslimit, h0.kdf_opslimit); /* NULL kdf keeps the cost */
	assert_int_equal(h1.kdf_memlimit, h0.kdf_memlimit);
	assert_memory_not_equal(h1.kdf_salt, h0.kdf_salt, SALT_BYTES);
	assert_memory_not_equal(h1.key_nonce, h0.key_nonce, KEY_NONCE_BYTES);
	assert_memory_not_equal(h1.wrapped_key, h0.wrapped_key, WRAPPED_KEY_BYTES);

	/* The old passphrase is now wrong; the file is untouched by trying. */
	expect_open_unlock_fails(f, PASS, LATCH_OK, LATCH_DENIED);
	v = fx_unlocked(f, PASS2);
	expect_three(v);
	vault_close(v);
	dir_only_vault(f);
}

static void passwd_changes_kdf(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_three(v);
	struct row before[3], after[3];
	for (int i = 0; i < 3; i++)
		row_load(f->path, three_names[i], &before[i]);
	uint64_t ops, mem;
	kdf_params_of(VAULT_KDF_MODERATE, &ops, &mem);
	assert_int_not_equal(sql_int(f->path, "SELECT kdf_opslimit FROM vault", NULL), (int64_t)ops);

	struct secbuf *np = sb_str(PASS2);
	enum vault_kdf kdf = VAULT_KDF_MODERATE;
	assert_int_equal(vault_passwd(v, np, &kdf), 0);
	secbuf_free(np);
	struct vault_info info;
	assert_int_equal(vault_info(v, &info), 0);
	assert_string_equal(info.kdf_name, "moderate");
	vault_close(v);

	assert_int_equal(sql_int(f->path, "SELECT kdf_opslimit FROM vault", NULL), (int64_t)ops);
	assert_int_equal(sql_int(f->path, "SELECT kdf_memlimit FROM vault", NULL), (int64_t)mem);
	assert_int_equal(sql_int(f->path, "SELECT kdf_alg FROM vault", NULL), crypto_pwhash_ALG_ARGON2ID13);
	for (int i = 0; i < 3; i++) {
		row_load(f->path, three_names[i], &after[i]);
		rows_identical(&before[i], &after[i]);
		row_free(&before[i]);
		row_free(&after[i]);
	}
	/* A fresh handle reads the new cost and unlocks with it. */
	v = fx_unlocked(f, PASS2);
	assert_int_equal(vault_info(v, &info), 0);
	assert_string_equal(info.kdf_name, "moderate");
	assert_int_equal(info.kdf_opslimit, ops);
	assert_int_equal(info.kdf_memlimit, mem);
	expect_three(v);
	vault_close(v);
}

/* --- rekey ------------------------------------------------------------- */

static void rekey_reencrypts_everything(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_three(v);
	struct row before[3], after[3];
	for (int i = 0; i < 3; i++)
		row_load(f->path, three_names[i], &before[i]);
	struct listed l0 = {0}, l1 = {0};
	assert_int_equal(vault_list(v, collect, &l0), 0);
	struct vault_header h0, h1;
	hdr_load(f->path, &h0);

	int64_t count = -1;
	assert_int_equal(vault_rekey(v, &count), 0);
	assert_int_equal(count, 3);
	expect_three(v); /* the handle moved to the new key */
	struct vault_info info;
	assert_int_equal(vault_info(v, &info), 0);
	assert_int_equal(info.key_generation, h0.key_generation + 1);
	vault_close(v);

	hdr_load(f->path, &h1);
	assert_int_equal(h1.key_generation, h0.key_generation + 1);
	assert_memory_not_equal(h1.wrapped_key, h0.wrapped_key, WRAPPED_KEY_BYTES);
	for (int i = 0; i < 3; i++) {
		row_load(f->path, three_names[i], &after[i]);
		assert_int_equal(after[i].id, before[i].id);
		assert_int_equal(after[i].version, before[i].version);
		assert_int_equal(after[i].nonce_len, KEY_NONCE_BYTES);
		assert_memory_not_equal(after[i].nonce, before[i].nonce, KEY_NONCE_BYTES);
		assert_int_equal(after[i].ct_len, before[i].ct_len);
		assert_memory_not_equal(after[i].ct, before[i].ct, before[i].ct_len);
	}

	v = fx_unlocked(f, PASS);
	expect_three(v);
	/* Re-encryption is not a new value: versions and times are kept. */
	assert_int_equal(vault_list(v, collect, &l1), 0);
	assert_int_equal(l1.n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(l1.versions[i], l0.versions[i]);
		assert_int_equal(l1.updated[i], l0.updated[i]);
	}
	/* A ciphertext from before the rekey no longer authenticates. */
	row_put_crypto(f->path, "b", &before[1]);
	expect_get_fails_naming(v, "b");
	row_put_crypto(f->path, "b", &after[1]);
	expect_str(v, "b", three_values[1]);
	vault_close(v);
	for (int i = 0; i < 3; i++) {
		row_free(&before[i]);
		row_free(&after[i]);
	}
	dir_only_vault(f);
}

static void rekey_all_or_nothing(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_three(v);
	/* Tamper with the last row, so rekey has re-encrypted the others
	 * before it finds the damage. */
	struct row c;
	row_load(f->path, "c", &c);
	struct row bad = c;
	unsigned char *ct = malloc(c.ct_len);
	assert_non_null(ct);
	memcpy(ct, c.ct, c.ct_len);
	ct[0] ^= 0x01;
	bad.ct = ct;
	row_put_crypto(f->path, "c", &bad);

	struct snap s = snap_take(f->path);
	int64_t count = -1;
	EXPECT_FAIL(LATCH_OPERR, vault_rekey(v, &count));
	snap_same(&s, f->path);
	dir_only_vault(f);
	struct vault_info info;
	assert_int_equal(vault_info(v, &info), 0);
	assert_int_equal(info.key_generation, 1);
	/* The handle still holds the old key and the old rows. */
	expect_str(v, "a", three_values[0]);
	expect_str(v, "b", three_values[1]);
	expect_get_fails_naming(v, "c");

	/* A row whose name is not a valid name stops rekey the same way. */
	row_put_crypto(f->path, "c", &c);
	sql_exec(f->path, "UPDATE secrets SET name = '-bad' WHERE name = 'c'");
	s = snap_take(f->path);
	EXPECT_FAIL(LATCH_OPERR, vault_rekey(v, &count));
	snap_same(&s, f->path);
	sql_exec(f->path, "UPDATE secrets SET name = 'c' WHERE name = '-bad'");

	/* With the row repaired, the same rekey goes through. */
	assert_int_equal(vault_rekey(v, &count), 0);
	assert_int_equal(count, 3);
	vault_close(v);
	v = fx_unlocked(f, PASS);
	expect_three(v);
	assert_int_equal(vault_info(v, &info), 0);
	assert_int_equal(info.key_generation, 2);
	vault_close(v);
	free(ct);
	row_free(&c);
}

/* --- remove ------------------------------------------------------------ */

static void remove_secret(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_str(v, "a", "same value");
	put_str(v, "b", "other");
	struct row old;
	row_load(f->path, "a", &old);

	assert_int_equal(vault_remove(v, "a"), 0);
	expect_get_fails(v, "a", LATCH_OPERR);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM secrets WHERE name = ?1", "a"), 0);
	struct listed l = {0};
	assert_int_equal(vault_list(v, collect, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.names[0], "b");

	struct snap s = snap_take(f->path);
	EXPECT_FAIL(LATCH_OPERR, vault_remove(v, "a"));
	EXPECT_FAIL(LATCH_OPERR, vault_remove(v, "never-there"));
	snap_same(&s, f->path);
	expect_str(v, "b", "other");

	/* Re-added: a new id, and the old row's ciphertext (same name, same
	 * version, same plaintext) does not authenticate in the new row. */
	assert_int_equal(put_str(v, "a", "same value"), 1);
	struct row now;
	row_load(f->path, "a", &now);
	assert_true(now.id > old.id);
	assert_int_not_equal(now.id, sql_int(f->path, "SELECT id FROM secrets WHERE name = ?1", "b"));
	assert_int_equal(now.version, old.version);
	row_put_crypto(f->path, "a", &old);
	expect_get_fails_naming(v, "a");
	row_put_crypto(f->path, "a", &now);
	expect_str(v, "a", "same value");
	vault_close(v);
	row_free(&old);
	row_free(&now);
}

/* --- two handles ------------------------------------------------------- */

static void expect_keys_changed(struct vault *v, const char *name)
{
	struct secbuf *val = sb_str("written under a stale key");
	struct capture c;
	status_reset();
	capture_begin(&c);
	int rc = vault_set(v, name, val, NULL);
	char *msg = capture_end(&c);
	assert_int_equal(rc, -1);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	if (!strstr(msg, "keys changed"))
		fail_msg("vault_set on a stale handle said: %s", msg);
	free(msg);
	secbuf_free(val);
}

static void stale_handle_after_rekey(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *a = fx_unlocked(f, PASS);
	put_three(a);
	struct vault *b = fx_unlocked(f, PASS);
	int64_t count = 0;
	assert_int_equal(vault_rekey(b, &count), 0);
	assert_int_equal(count, 3);

	struct snap s = snap_take(f->path);
	expect_keys_changed(a, "a");     /* replace */
	expect_keys_changed(a, "fresh"); /* add */
	EXPECT_FAIL(LATCH_OPERR, vault_remove(a, "b"));
	EXPECT_FAIL(LATCH_OPERR, vault_rekey(a, &count));
	struct secbuf *np = sb_str(PASS2);
	EXPECT_FAIL(LATCH_OPERR, vault_passwd(a, np, NULL));
	secbuf_free(np);
	/* A read under the stale key fails too; it never yields bytes. */
	expect_get_fails(a, "a", LATCH_OPERR);
	snap_same(&s, f->path);
	dir_only_vault(f);
	vault_close(a);

	/* B, on the new key, reads the file as A left it: unchanged. */
	expect_three(b);
	expect_get_fails(b, "fresh", LATCH_OPERR);
	vault_close(b);
}

static void stale_handle_after_passwd(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *a = fx_unlocked(f, PASS);
	put_three(a);
	struct vault *b = fx_unlocked(f, PASS);
	struct secbuf *np = sb_str(PASS2);
	assert_int_equal(vault_passwd(b, np, NULL), 0);
	secbuf_free(np);

	struct snap s = snap_take(f->path);
	expect_keys_changed(a, "a");
	EXPECT_FAIL(LATCH_OPERR, vault_remove(a, "a"));
	snap_same(&s, f->path);
	vault_close(a);
	expect_three(b);
	vault_close(b);
}

/* --- schema and foreign files ---------------------------------------------- */

static void newer_schema_refused(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_str(v, "a", "kept");
	struct vault_info info;
	assert_int_equal(vault_info(v, &info), 0);
	vault_close(v);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version", NULL), info.schema_version);

	const int newer[] = {info.schema_version + 1, info.schema_version + 100, INT32_MAX};
	for (size_t i = 0; i < sizeof newer / sizeof newer[0]; i++) {
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", newer[i]);
		sql_exec(f->path, sql);
		expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
		assert_int_equal(sql_int(f->path, "PRAGMA user_version", NULL), newer[i]);
		dir_only_vault(f);
	}
	/* Back at the known version it opens again (no KDF needed to tell). */
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", info.schema_version);
	sql_exec(f->path, sql);
	v = fx_open(f);
	vault_close(v);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, 0600), 0);
	close(fd);
}

static void foreign_files_refused(void **state)
{
	struct fx *f = *state;
	assert_int_equal(mkdir(f->dir, 0700), 0);

	/* Random bytes, a text file, an empty file. */
	unsigned char junk[8192];
	randombytes_buf(junk, sizeof junk);
	write_file(f->path, junk, sizeof junk);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	write_file(f->path, junk, 10);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	write_file(f->path, "hello, I am a text file\n", 24);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	write_file(f->path, "", 0);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	/* A file that starts like sqlite but is garbage after the magic. */
	memcpy(junk, "SQLite format 3", 16);
	write_file(f->path, junk, 4096);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);

	/* A valid but empty sqlite database, and one with other tables. */
	unlink(f->path);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	db_exec_ok(db, "CREATE TABLE t (x); DROP TABLE t;");
	sqlite3_close(db);
	assert_int_equal(chmod(f->path, 0600), 0);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema", NULL), 0);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	sql_exec(f->path, "CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('x')");
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	dir_only_vault(f);
}

/* Turn the vault into what schema 1 wrote: migrations are append-only,
 * so that is the vault and secrets tables alone, at user_version 1.
 * Skips the test while the current schema is still 1. */
static void downgrade_to_schema1(const struct fx *f)
{
	if (sql_int(f->path, "PRAGMA user_version", NULL) < 2)
		skip();
	sqlite3 *db = db_raw(f->path);
	for (;;) {
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db,
						    "SELECT name FROM sqlite_schema WHERE type = 'table' AND"
						    " name NOT IN ('vault', 'secrets') AND name NOT LIKE 'sqlite_%'"
						    " LIMIT 1",
						    -1, &st, NULL),
				 SQLITE_OK);
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_finalize(st);
			break;
		}
		char sql[256];
		snprintf(sql, sizeof sql, "DROP TABLE \"%s\"", (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		db_exec_ok(db, sql);
	}
	db_exec_ok(db, "PRAGMA user_version = 1; VACUUM");
	sqlite3_close(db);
}

static void schema1_vault_migrates(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_str(v, "a", "from schema 1");
	struct vault_info info;
	assert_int_equal(vault_info(v, &info), 0);
	vault_close(v);
	downgrade_to_schema1(f);

	v = fx_unlocked(f, PASS);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version", NULL), info.schema_version);
	expect_str(v, "a", "from schema 1");
	assert_int_equal(put_str(v, "b", "after the upgrade"), 1);
	struct secbuf *k = NULL;
	assert_int_equal(vault_key(v, "audit-writer", true, &k), 0); /* a table of schema 2 */
	secbuf_free(k);
	vault_close(v);
	dir_only_vault(f);
}

/* Schema 3 only narrows an index (releases no longer enter the set/rm
 * index): a schema-2 vault with records migrates, and the newest set or
 * rm of each secret is still found through it (a release needs it). */
static void schema3_vault_migrates(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_str(v, "a", "from schema 3");
	put_str(v, "a", "again");
	struct vault_info info;
	assert_int_equal(vault_info(v, &info), 0);
	vault_close(v);
	if (info.schema_version < 4)
		skip();
	/* Back to schema 3: no stream column, the set/rm index, no fold
	 * positions (schema 6). */
	sqlite3 *db = db_raw(f->path);
	db_exec_ok(db,
		   "DROP TABLE audit_fold;"
		   "ALTER TABLE audit_log DROP COLUMN stream;"
		   "CREATE INDEX audit_secret_change ON audit_secret (secret, event, seq) WHERE event IN ('set', 'rm');"
		   "PRAGMA user_version = 3");
	sqlite3_close(db);

	v = fx_unlocked(f, PASS);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version", NULL), info.schema_version);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE name = 'audit_secret_change'",
				 NULL),
			 0);
	assert_int_equal(sql_int(f->path, "SELECT count(*) FROM audit_log WHERE stream = 0", NULL),
			 sql_int(f->path, "SELECT count(*) FROM audit_log", NULL));
	const char *names[] = {"a"};
	struct secbuf *out[1] = {NULL};
	assert_int_equal(vault_read(v, names, 1, "release", out), 0); /* checks the newest set */
	assert_int_equal(out[0]->len, strlen("again"));
	assert_memory_equal(out[0]->data, "again", out[0]->len);
	secbuf_free(out[0]);
	vault_close(v);
}

/* A schema edited by someone else (an index redefined to miss rows, a
 * table with a column more) is refused at open, before anything is read
 * through it. */
static void edited_schema_refused(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	static const char *const edits[] = {
		"DROP INDEX audit_secret_name; CREATE INDEX audit_secret_name ON audit_secret (secret, time) WHERE event <> 'release'",
		"DROP INDEX audit_log_event",
		"CREATE INDEX extra ON secrets (version)",
		"ALTER TABLE secrets ADD COLUMN note TEXT",
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		if (i > 0) { /* a fresh copy of the template each time */
			assert_int_equal(unlink(f->path), 0);
			assert_int_equal(rmdir(f->dir), 0);
			fx_create(f);
		}
		sqlite3 *db = db_raw(f->path);
		db_exec_ok(db, edits[i]);
		sqlite3_close(db);
		struct vault *v = NULL;
		latch_error_quiet(true);
		int rc = vault_open(f->dir, &v);
		latch_error_quiet(false);
		if (rc == 0)
			fail_msg("an edited schema was accepted: %s", edits[i]);
		assert_int_equal(latch_last_status(), LATCH_OPERR);
	}
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(rmdir(f->dir), 0);
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS); /* the original opens */
	vault_close(v);
}

/* A failed open leaves an older vault as it was: the header is checked
 * before (or in the same transaction as) the schema migration, so a
 * damaged schema-1 vault, or a foreign file claiming schema 1, is not
 * rewritten by a newer latch that then refuses it. */
static void schema1_damaged_left_unchanged(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	downgrade_to_schema1(f);
	struct vault_header h;
	hdr_load(f->path, &h);
	h.wrapped_key[0] ^= 0x01;
	hdr_store(f->path, &h, false); /* plain damage: checksum mismatch */
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	assert_int_equal(sql_int(f->path, "PRAGMA user_version", NULL), 1);

	/* A foreign sqlite file that claims schema 1 but has no vault table. */
	assert_int_equal(unlink(f->path), 0);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	db_exec_ok(db, "CREATE TABLE notes (t TEXT); PRAGMA user_version = 1");
	sqlite3_close(db);
	assert_int_equal(chmod(f->path, 0600), 0);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
}

static void header_row_missing_refused(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	sql_exec(f->path, "DELETE FROM vault");
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	sql_exec(f->path, "DROP TABLE vault");
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	dir_only_vault(f);
}

/* --- permissions and creation -------------------------------------------- */

static void file_mode_refused(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	/* Every group or other bit on its own, and the usual 0644. */
	const mode_t modes[] = {0644, 0640, 0604, 0620, 0602, 0610, 0601, 0666};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		assert_int_equal(chmod(f->path, modes[i]), 0);
		expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	}
	/* A leftover journal others can read is refused as well. */
	assert_int_equal(chmod(f->path, 0600), 0);
	char journal[PATH_MAX + 16];
	assert_true(snprintf(journal, sizeof journal, "%s-journal", f->path) < (int)sizeof journal);
	write_file(journal, "", 0);
	assert_int_equal(chmod(journal, 0644), 0);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	unlink(journal);
	struct vault *v = fx_open(f);
	vault_close(v);
}

static void dir_mode_refused(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	const mode_t modes[] = {0755, 0750, 0705, 0720, 0702, 0710, 0701, 0777};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		assert_int_equal(chmod(f->dir, modes[i]), 0);
		expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	}
	assert_int_equal(chmod(f->dir, 0700), 0);
	struct vault *v = fx_open(f);
	vault_close(v);

	/* vault_create refuses an existing directory others can enter. */
	char open_dir[PATH_MAX];
	path_join(open_dir, sizeof open_dir, f->root, "open");
	assert_int_equal(mkdir(open_dir, 0700), 0);
	assert_int_equal(chmod(open_dir, 0755), 0);
	struct secbuf *p = sb_str(PASS);
	EXPECT_FAIL(LATCH_OPERR, vault_create(open_dir, p, VAULT_KDF_INTERACTIVE));
	secbuf_free(p);
	char probe[PATH_MAX + 16];
	path_join(probe, sizeof probe, open_dir, VAULT_FILE_NAME);
	assert_int_equal(access(probe, F_OK), -1);
}

static void symlinks_refused(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	char link[PATH_MAX];
	path_join(link, sizeof link, f->root, "link");
	assert_int_equal(symlink(f->dir, link), 0);
	struct snap s = snap_take(f->path);
	struct vault *v = NULL;
	EXPECT_FAIL(LATCH_OPERR, vault_open(link, &v));
	assert_null(v);
	snap_same(&s, f->path);

	/* vault_create through a symlinked directory is refused too. */
	char real[PATH_MAX], link2[PATH_MAX];
	path_join(real, sizeof real, f->root, "real");
	path_join(link2, sizeof link2, f->root, "link2");
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, link2), 0);
	struct secbuf *p = sb_str(PASS);
	EXPECT_FAIL(LATCH_OPERR, vault_create(link2, p, VAULT_KDF_INTERACTIVE));
	secbuf_free(p);
	DIR *d = opendir(real);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			fail_msg("vault_create wrote '%s' through a symlink", e->d_name);
	closedir(d);

	/* vault.db itself a symlink to a real vault file. */
	char moved[PATH_MAX];
	path_join(moved, sizeof moved, f->dir, "moved.db");
	assert_int_equal(rename(f->path, moved), 0);
	assert_int_equal(symlink(moved, f->path), 0);
	s = snap_take(moved);
	EXPECT_FAIL(LATCH_OPERR, vault_open(f->dir, &v));
	assert_null(v);
	snap_same(&s, moved);
}

static void foreign_owner_refused(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0)
		skip(); /* chown to another uid needs root (CI runs as root) */
	fx_create(f);
	assert_int_equal(chown(f->dir, 65534, 65534), 0);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	assert_int_equal(chown(f->dir, 0, 0), 0);
	assert_int_equal(chown(f->path, 65534, 65534), 0);
	expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	assert_int_equal(chown(f->path, 0, 0), 0);
	struct vault *v = fx_open(f);
	vault_close(v);

	/* vault_create refuses an existing directory of another user. */
	char theirs[PATH_MAX];
	path_join(theirs, sizeof theirs, f->root, "theirs");
	assert_int_equal(mkdir(theirs, 0700), 0);
	assert_int_equal(chown(theirs, 65534, 65534), 0);
	struct secbuf *p = sb_str(PASS);
	EXPECT_FAIL(LATCH_OPERR, vault_create(theirs, p, VAULT_KDF_INTERACTIVE));
	secbuf_free(p);
}

static void missing_vault_refused(void **state)
{
	struct fx *f = *state;
	struct vault *v = NULL;
	EXPECT_FAIL(LATCH_OPERR, vault_open(f->dir, &v)); /* no directory */
	assert_null(v);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	EXPECT_FAIL(LATCH_OPERR, vault_open(f->dir, &v)); /* no file */
	assert_null(v);
	/* vault_open never creates one. */
	assert_int_equal(access(f->path, F_OK), -1);
}

static void create_refuses_existing(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_str(v, "a", "precious");
	vault_close(v);

	struct snap s = snap_take(f->path);
	struct secbuf *p = sb_str(PASS2);
	EXPECT_FAIL(LATCH_OPERR, vault_create(f->dir, p, VAULT_KDF_INTERACTIVE));
	EXPECT_FAIL(LATCH_OPERR, vault_create(f->dir, p, VAULT_KDF_MODERATE));
	snap_same(&s, f->path);
	dir_only_vault(f);
	v = fx_unlocked(f, PASS);
	expect_str(v, "a", "precious");
	vault_close(v);

	/* Anything at the vault's path, even a dangling symlink, blocks it. */
	char other[PATH_MAX], dangling[PATH_MAX + 16];
	path_join(other, sizeof other, f->root, "other");
	path_join(dangling, sizeof dangling, other, VAULT_FILE_NAME);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(symlink("/nonexistent/latch-target", dangling), 0);
	EXPECT_FAIL(LATCH_OPERR, vault_create(other, p, VAULT_KDF_INTERACTIVE));
	assert_int_equal(access("/nonexistent/latch-target", F_OK), -1);
	secbuf_free(p);
}

static void create_makes_private_files(void **state)
{
	struct fx *f = *state;
	/* Missing parents are created too. */
	path_join(f->dir, sizeof f->dir, f->root, "deep/er/vault");
	path_join(f->path, sizeof f->path, f->dir, VAULT_FILE_NAME);
	fx_create_new(f, PASS);
	struct stat st;
	assert_int_equal(lstat(f->dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	dir_only_vault(f); /* the temporary name is gone */
	/* Rollback journal, not WAL: bytes 18 and 19 of a sqlite file are
	 * its read and write format versions, 1 for rollback and 2 for WAL. */
	struct snap s = snap_take(f->path);
	assert_true(s.len >= 100);
	assert_memory_equal(s.buf, "SQLite format 3", 16);
	assert_int_equal(s.buf[18], 1);
	assert_int_equal(s.buf[19], 1);
	free(s.buf);
	struct vault *v = fx_open(f);
	vault_close(v);
}

/* vault_create is a library call: the file it makes must be 0600 whatever
 * the caller's umask (the CLI sets 077 in harden_process, but the vault
 * module must not depend on that: under umask 022 sqlite would make the
 * file 0644, which vault_open then refuses). */
static void create_ignores_umask(void **state)
{
	struct fx *f = *state;
	mode_t old = umask(022);
	struct secbuf *p = sb_str(PASS);
	int rc = vault_create(f->dir, p, VAULT_KDF_INTERACTIVE);
	umask(old);
	secbuf_free(p);
	assert_int_equal(rc, 0);
	struct stat st;
	assert_int_equal(lstat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(lstat(f->path, &st), 0);
	if ((st.st_mode & 07777) != 0600)
		fail_msg("vault_create under umask 022 made vault.db mode %04o, not 0600",
			 (unsigned)(st.st_mode & 07777));
	struct vault *v = fx_open(f);
	vault_close(v);
}

/* A tampered version of INT64_MAX must not make vault_set overflow (UB):
 * it fails closed. Run in a child so that a sanitizer abort is reported
 * as this test's failure instead of ending the whole binary. */
static void set_on_max_version_fails_closed(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	put_str(v, "a", "v1");
	vault_close(v);
	sql_exec(f->path, "UPDATE secrets SET version = 9223372036854775807 WHERE name = 'a'");
	struct snap s = snap_take(f->path);

	int fds[2];
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		/* No cmocka assertions in the child: it must only report. */
		int res[2] = {99, -1};
		struct vault *cv = NULL;
		struct secbuf *p = secbuf_new(sizeof PASS), *val = secbuf_new(2);
		if (p && val) {
			memcpy(p->data, PASS, strlen(PASS));
			p->len = strlen(PASS);
			memcpy(val->data, "v2", 2);
			val->len = 2;
			if (vault_open(f->dir, &cv) == 0 && vault_unlock(cv, p) == 0) {
				latch_error_quiet(true);
				latch_error(LATCH_OK, "reset");
				res[0] = vault_set(cv, "a", val, NULL);
				res[1] = (int)latch_last_status();
			}
		}
		vault_close(cv);
		secbuf_free(p);
		secbuf_free(val);
		if (write(fds[1], res, sizeof res) != (ssize_t)sizeof res)
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	int res[2] = {0, 0};
	ssize_t n = read(fds[0], res, sizeof res);
	close(fds[0]);
	int ws = 0;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	bool unchanged = snap_equal(&s, f->path);
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		fail_msg("vault_set on a row at version INT64_MAX crashed (wait status 0x%x)", (unsigned)ws);
	assert_int_equal(n, (ssize_t)sizeof res);
	assert_int_not_equal(res[0], 99);
	if (res[0] != -1)
		fail_msg("vault_set on a row at version INT64_MAX succeeded (version wrapped)");
	assert_int_equal(res[1], LATCH_OPERR);
	assert_true(unchanged);
}

/* Another module's tables (vault_add_tables): its steps run at the
 * file's schema versions, and its schema is part of the exact one. Last
 * of all tests: the registration lasts as long as the process. */
static void module_tables(void **state)
{
	struct fx *f = *state;
	/* The same set again is a no-op; more steps than versions, refused. */
	assert_int_equal(vault_add_tables(&audit_tables), 0);
	static const char *const too_many[8] = {NULL};
	static const struct vault_tables bad = {too_many, 8, NULL, 0};
	latch_error_quiet(true);
	assert_int_equal(vault_add_tables(&bad), -1);
	latch_error_quiet(false);
	/* A vault made before a module's tables were added lacks them: it is
	 * refused, not quietly opened. One made after has them. */
	fx_create(f);
	static const char *const steps[] = {NULL, NULL, NULL, "CREATE TABLE zz_module (a INTEGER);"};
	static const char *const schema[] = {"table zz_module zz_module CREATE TABLE zz_module (a INTEGER)"};
	static const struct vault_tables extra = {steps, 4, schema, 1};
	assert_int_equal(vault_add_tables(&extra), 0);
	struct vault *v = NULL;
	latch_error_quiet(true);
	assert_int_equal(vault_open(f->dir, &v), -1);
	latch_error_quiet(false);
	assert_null(v);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(rmdir(f->dir), 0);
	fx_create_new(f, PASS);
	v = fx_unlocked(f, PASS);
	vault_close(v);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	umask(077); /* as harden_process() does in latch's main */
	if (fx_template_init() != 0) {
		fprintf(stderr, "cannot create the template vault\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		T(round_trip),
		T(value_size_limits),
		T(replace_bumps_version),
		T(invalid_names_refused),
		T(locked_handle_refuses),
		T(wrong_passphrase_denied),
		T(passwd_rewraps_only),
		T(passwd_changes_kdf),
		T(rekey_reencrypts_everything),
		T(rekey_all_or_nothing),
		T(remove_secret),
		T(stale_handle_after_rekey),
		T(stale_handle_after_passwd),
		T(newer_schema_refused),
		T(foreign_files_refused),
		T(schema1_vault_migrates),
		T(schema3_vault_migrates),
		T(edited_schema_refused),
		T(schema1_damaged_left_unchanged),
		T(header_row_missing_refused),
		T(file_mode_refused),
		T(dir_mode_refused),
		T(symlinks_refused),
		T(foreign_owner_refused),
		T(missing_vault_refused),
		T(create_refuses_existing),
		T(create_makes_private_files),
		T(create_ignores_umask),
		T(set_on_max_version_fails_closed),
		T(module_tables), /* last: it adds tables for the rest of the process */
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	free(fx_template);
	return failed;
}
