/* Unit tests: tampering with a real vault file fails closed (docs/threat-model.md P2).
 *
 * The attacker edits the sqlite file directly: flipped bits in every byte
 * of a value's nonce and ciphertext, blobs of the wrong length or type,
 * swapped, copied, renumbered and replayed rows, ciphertexts from another
 * vault, and every field of the header, both as plain damage (caught at
 * vault_open by the header checksum, no Argon2id run needed) and as a
 * forged header whose checksum was recomputed (caught at vault_unlock,
 * which must answer LATCH_DENIED, as for a wrong passphrase). A failed
 * attempt never changes the file and never hands out a value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vault_fixture.h"

static const char value_a[] = "value of a: 0123456789abcdef0123456";
static const char value_b[] = "value of b: fedcba9876543210fedcba";

/* A vault holding a and b, unlocked. */
static struct vault *two_secrets(const struct fx *f)
{
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	assert_int_equal(put_str(v, "a", value_a), 1);
	assert_int_equal(put_str(v, "b", value_b), 1);
	return v;
}

/* Flip every bit of column `col` of secret `name`, one at a time: each
 * flip must make vault_get fail with LATCH_OPERR and return nothing. The
 * original is written back at the end and must read again. */
static void flip_every_bit(const struct fx *f, struct vault *v, const char *col, const char *name, const char *value)
{
	sqlite3 *db = db_raw(f->path);
	size_t len;
	unsigned char *orig = row_blob(db, col, name, &len);
	unsigned char *buf = malloc(len);
	assert_non_null(buf);
	latch_error_quiet(true);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(buf, orig, len);
			buf[i] ^= (unsigned char)(1u << bit);
			row_set_blob(db, col, name, buf, len);
			struct secbuf *out = NULL;
			status_reset();
			latch_error_quiet(true);
			int rc = vault_get(v, name, &out);
			if (rc != -1 || out || latch_last_status() != LATCH_OPERR)
				fail_msg("%s of '%s' with byte %zu bit %d flipped: rc %d, status %d", col, name, i, bit,
					 rc, (int)latch_last_status());
		}
	}
	latch_error_quiet(false);
	/* One flip more, to check the message names the secret. */
	memcpy(buf, orig, len);
	buf[len / 2] ^= 0x80;
	row_set_blob(db, col, name, buf, len);
	expect_get_fails_naming(v, name);
	row_set_blob(db, col, name, orig, len);
	sqlite3_close(db);
	expect_str(v, name, value);
	free(buf);
	free(orig);
}

/* --- bit flips and bad lengths in a value ---------------------------- */

static void value_nonce_bitflips(void **state)
{
	struct fx *f = *state;
	struct vault *v = two_secrets(f);
	flip_every_bit(f, v, "nonce", "a", value_a);
	expect_str(v, "b", value_b); /* the neighbour was never affected */

	/* vault_read, the recorded read, releases nothing when one of the
	 * values it is asked for fails, not even the good ones. */
	struct row a;
	row_load(f->path, "a", &a);
	a.nonce[0] ^= 0x01;
	row_put_crypto(f->path, "a", &a);
	const char *names[] = {"b", "a"};
	struct secbuf *vals[2] = {NULL, NULL};
	struct snap s = snap_take(f->path);
	EXPECT_FAIL(LATCH_OPERR, vault_read(v, names, 2, "reveal", vals));
	assert_null(vals[0]);
	assert_null(vals[1]);
	snap_same(&s, f->path);
	a.nonce[0] ^= 0x01;
	row_put_crypto(f->path, "a", &a);
	assert_int_equal(vault_read(v, names, 2, "reveal", vals), 0);
	assert_int_equal(vals[1]->len, strlen(value_a));
	assert_memory_equal(vals[1]->data, value_a, strlen(value_a));
	secbuf_free(vals[0]);
	secbuf_free(vals[1]);
	row_free(&a);
	vault_close(v);
}

static void value_ciphertext_bitflips(void **state)
{
	struct fx *f = *state;
	struct vault *v = two_secrets(f);
	flip_every_bit(f, v, "ciphertext", "a", value_a);
	flip_every_bit(f, v, "ciphertext", "b", value_b);
	vault_close(v);
}

static void large_value_flips(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	unsigned char *big = malloc(VAULT_VALUE_MAX);
	assert_non_null(big);
	randombytes_buf(big, VAULT_VALUE_MAX);
	put(v, "big", big, VAULT_VALUE_MAX);
	sqlite3 *db = db_raw(f->path);
	size_t len;
	unsigned char *ct = row_blob(db, "ciphertext", "big", &len);
	assert_int_equal(len, VAULT_VALUE_MAX + AEAD_TAG_BYTES);
	const size_t at[] = {0, 1, VAULT_VALUE_MAX / 2, VAULT_VALUE_MAX - 1, VAULT_VALUE_MAX, len - 1};
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		ct[at[i]] ^= 0x01;
		row_set_blob(db, "ciphertext", "big", ct, len);
		expect_get_fails(v, "big", LATCH_OPERR);
		ct[at[i]] ^= 0x01;
	}
	/* One byte short, one byte long. */
	row_set_blob(db, "ciphertext", "big", ct, len - 1);
	expect_get_fails(v, "big", LATCH_OPERR);
	unsigned char *longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, ct, len);
	longer[len] = 0;
	row_set_blob(db, "ciphertext", "big", longer, len + 1);
	expect_get_fails(v, "big", LATCH_OPERR);
	row_set_blob(db, "ciphertext", "big", ct, len);
	sqlite3_close(db);
	expect_bytes(v, "big", big, VAULT_VALUE_MAX);
	vault_close(v);
	free(longer);
	free(ct);
	free(big);
}

static void value_blob_lengths_and_types(void **state)
{
	struct fx *f = *state;
	struct vault *v = two_secrets(f);
	sqlite3 *db = db_raw(f->path);
	size_t nlen, clen;
	unsigned char *nonce = row_blob(db, "nonce", "a", &nlen);
	unsigned char *ct = row_blob(db, "ciphertext", "a", &clen);
	assert_int_equal(nlen, KEY_NONCE_BYTES);
	assert_int_equal(clen, sizeof value_a - 1 + AEAD_TAG_BYTES);
	size_t big_len = 2 * VAULT_VALUE_MAX + 100;
	unsigned char *big = calloc(1, big_len);
	assert_non_null(big);
	memcpy(big, ct, clen);
	memcpy(big + 4096, nonce, nlen);

	/* Nonces: empty, short, one short, one long, double, page-sized
	 * (each a prefix of or an extension of the real one). */
	const size_t nonce_lens[] = {0, 1, KEY_NONCE_BYTES - 1, KEY_NONCE_BYTES + 1, 2 * KEY_NONCE_BYTES, 4096};
	unsigned char *nbuf = calloc(1, 4096);
	assert_non_null(nbuf);
	memcpy(nbuf, nonce, nlen);
	for (size_t i = 0; i < sizeof nonce_lens / sizeof nonce_lens[0]; i++) {
		row_set_blob(db, "nonce", "a", nbuf, nonce_lens[i]);
		expect_get_fails(v, "a", LATCH_OPERR);
	}
	row_set_blob(db, "nonce", "a", nonce, nlen);
	expect_str(v, "a", value_a);

	/* Ciphertexts: empty, one byte, a tag's worth and less, truncated by
	 * one, extended by one, by a page, and past the value limit. */
	const size_t ct_lens[] = {0,        1,        AEAD_TAG_BYTES - 1, AEAD_TAG_BYTES, AEAD_TAG_BYTES + 1,
				  clen - 1, clen + 1, clen + 4096,        big_len};
	for (size_t i = 0; i < sizeof ct_lens / sizeof ct_lens[0]; i++) {
		row_set_blob(db, "ciphertext", "a", big, ct_lens[i]);
		expect_get_fails(v, "a", LATCH_OPERR);
	}
	row_set_blob(db, "ciphertext", "a", ct, clen);
	expect_str(v, "a", value_a);

	/* Wrong types: the same bytes as text, numbers, a zero blob. */
	const char *retype[] = {
		"UPDATE secrets SET nonce = 123456789012345678 WHERE name = 'a'",
		"UPDATE secrets SET nonce = 'abcdefghijklmnopqrstuvwx' WHERE name = 'a'",
		"UPDATE secrets SET nonce = zeroblob(24) WHERE name = 'a'",
		"UPDATE secrets SET ciphertext = substr(hex(ciphertext), 1, length(ciphertext)) WHERE name = 'a'",
		"UPDATE secrets SET ciphertext = 42 WHERE name = 'a'",
		"UPDATE secrets SET ciphertext = 4.2 WHERE name = 'a'",
		"UPDATE secrets SET ciphertext = zeroblob(length(ciphertext)) WHERE name = 'a'",
	};
	for (size_t i = 0; i < sizeof retype / sizeof retype[0]; i++) {
		db_exec_ok(db, retype[i]);
		expect_get_fails(v, "a", LATCH_OPERR);
		row_set_blob(db, "nonce", "a", nonce, nlen);
		row_set_blob(db, "ciphertext", "a", ct, clen);
		expect_str(v, "a", value_a);
	}
	sqlite3_close(db);
	expect_str(v, "b", value_b);
	vault_close(v);
	free(nbuf);
	free(big);
	free(nonce);
	free(ct);
}

/* --- swapped, copied, renumbered, replayed rows ------------------------ */

static void rows_swapped(void **state)
{
	struct fx *f = *state;
	struct vault *v = two_secrets(f);
	struct row a, b;
	row_load(f->path, "a", &a);
	row_load(f->path, "b", &b);

	/* Both (nonce, ciphertext) pairs exchanged. */
	row_put_crypto(f->path, "a", &b);
	row_put_crypto(f->path, "b", &a);
	expect_get_fails_naming(v, "a");
	expect_get_fails_naming(v, "b");

	/* Ciphertexts exchanged, nonces left in place. */
	struct row a_ct = a, b_ct = b;
	a_ct.ct = b.ct, a_ct.ct_len = b.ct_len;
	b_ct.ct = a.ct, b_ct.ct_len = a.ct_len;
	row_put_crypto(f->path, "a", &a_ct);
	row_put_crypto(f->path, "b", &b_ct);
	expect_get_fails_naming(v, "a");
	expect_get_fails_naming(v, "b");

	/* Nonces exchanged, ciphertexts left in place. */
	struct row a_n = a, b_n = b;
	a_n.nonce = b.nonce;
	b_n.nonce = a.nonce;
	row_put_crypto(f->path, "a", &a_n);
	row_put_crypto(f->path, "b", &b_n);
	expect_get_fails_naming(v, "a");
	expect_get_fails_naming(v, "b");

	/* Whole rows exchanged by renaming (ids move with the names). */
	row_put_crypto(f->path, "a", &a);
	row_put_crypto(f->path, "b", &b);
	sql_exec(f->path,
		 "UPDATE secrets SET name = 'tmp' WHERE name = 'a';"
		 "UPDATE secrets SET name = 'a' WHERE name = 'b';"
		 "UPDATE secrets SET name = 'b' WHERE name = 'tmp'");
	expect_get_fails_naming(v, "a");
	expect_get_fails_naming(v, "b");
	sql_exec(f->path,
		 "UPDATE secrets SET name = 'tmp' WHERE name = 'a';"
		 "UPDATE secrets SET name = 'a' WHERE name = 'b';"
		 "UPDATE secrets SET name = 'b' WHERE name = 'tmp'");

	expect_str(v, "a", value_a);
	expect_str(v, "b", value_b);
	vault_close(v);
	row_free(&a);
	row_free(&b);
}

static void row_copied_to_other_name(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	/* Same value, so only the binding can tell the rows apart. */
	put_str(v, "a", value_a);
	put_str(v, "b", value_a);
	struct row a, b;
	row_load(f->path, "a", &a);
	row_load(f->path, "b", &b);
	row_put_crypto(f->path, "b", &a);
	expect_get_fails_naming(v, "b");
	expect_str(v, "a", value_a); /* the source is still fine */
	/* Renamed row: a's row now called c. */
	row_put_crypto(f->path, "b", &b);
	sql_exec(f->path, "UPDATE secrets SET name = 'c' WHERE name = 'a'");
	expect_get_fails_naming(v, "c");
	expect_get_fails(v, "a", LATCH_OPERR);
	sql_exec(f->path, "UPDATE secrets SET name = 'a' WHERE name = 'c'");
	expect_str(v, "a", value_a);
	expect_str(v, "b", value_a);
	vault_close(v);
	row_free(&a);
	row_free(&b);
}

static void row_version_or_id_changed(void **state)
{
	struct fx *f = *state;
	struct vault *v = two_secrets(f);
	struct row a, b;
	row_load(f->path, "a", &a);
	row_load(f->path, "b", &b);
	assert_int_equal(a.version, 1);

	const char *edits[] = {
		"UPDATE secrets SET version = 2 WHERE name = 'a'",
		"UPDATE secrets SET version = 0 WHERE name = 'a'",
		"UPDATE secrets SET version = -1 WHERE name = 'a'",
		"UPDATE secrets SET version = 9223372036854775807 WHERE name = 'a'",
		"UPDATE secrets SET version = 4294967297 WHERE name = 'a'", /* 1 + 2^32 */
		"UPDATE secrets SET id = 1000 WHERE name = 'a'",
		"UPDATE secrets SET id = id + 4294967296 WHERE name = 'a'",
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		sql_exec(f->path, edits[i]);
		expect_get_fails_naming(v, "a");
		char undo[128];
		snprintf(undo, sizeof undo, "UPDATE secrets SET id = %lld, version = %lld WHERE name = 'a'",
			 (long long)a.id, (long long)a.version);
		sql_exec(f->path, undo);
		expect_str(v, "a", value_a);
	}

	/* The two ids exchanged. */
	char sql[256];
	snprintf(sql, sizeof sql,
		 "UPDATE secrets SET id = -1 WHERE id = %lld;"
		 "UPDATE secrets SET id = %lld WHERE id = %lld;"
		 "UPDATE secrets SET id = %lld WHERE id = -1",
		 (long long)a.id, (long long)a.id, (long long)b.id, (long long)b.id);
	sql_exec(f->path, sql);
	expect_get_fails_naming(v, "a");
	expect_get_fails_naming(v, "b");
	sql_exec(f->path, sql);
	expect_str(v, "a", value_a);
	expect_str(v, "b", value_b);

	/* Replay: the ciphertext of version 1 put back into the row after
	 * it moved on to version 2. */
	assert_int_equal(put_str(v, "a", "the new value of a"), 2);
	row_put_crypto(f->path, "a", &a);
	expect_get_fails_naming(v, "a");
	vault_close(v);
	row_free(&a);
	row_free(&b);
}

static void ciphertext_from_other_vault(void **state)
{
	struct fx *f = *state;
	/* Two vaults, same passphrase, same name, same value, same row id
	 * and version: only the vault (its id and data key) differs. */
	struct fx other = *f;
	path_join(other.dir, sizeof other.dir, f->root, "other");
	path_join(other.path, sizeof other.path, other.dir, VAULT_FILE_NAME);
	fx_create(f);
	fx_create_new(&other, PASS);
	struct vault *v = fx_unlocked(f, PASS);
	struct vault *w = fx_unlocked(&other, PASS);
	put_str(v, "shared", value_a);
	put_str(w, "shared", value_a);
	struct row mine, theirs;
	row_load(f->path, "shared", &mine);
	row_load(other.path, "shared", &theirs);
	assert_int_equal(mine.id, theirs.id);
	assert_int_equal(mine.version, theirs.version);

	row_put_crypto(f->path, "shared", &theirs);
	expect_get_fails_naming(v, "shared");
	row_put_crypto(other.path, "shared", &mine);
	expect_get_fails_naming(w, "shared");
	row_put_crypto(f->path, "shared", &mine);
	row_put_crypto(other.path, "shared", &theirs);
	expect_str(v, "shared", value_a);
	expect_str(w, "shared", value_a);

	/* The other vault's whole header pasted in: still no value. */
	struct vault_header h_other;
	hdr_load(other.path, &h_other);
	hdr_store(f->path, &h_other, false);
	struct vault *x = fx_unlocked(f, PASS); /* unwraps the other's key */
	expect_get_fails_naming(x, "shared");
	vault_close(x);
	vault_close(v);
	vault_close(w);
	row_free(&mine);
	row_free(&theirs);
}

/* The associated data of a value binds every field of its row: sealed
 * under one binding, it opens under no other, with the right key. This
 * isolates each field, including the vault id, which the tests above can
 * only reach together with a different data key. */
static void value_binding_fields(void **state)
{
	(void)state;
	struct secbuf *dk = secbuf_new(DATA_KEY_BYTES), *vk = NULL, *out = NULL;
	assert_non_null(dk);
	randombytes_buf(dk->data, DATA_KEY_BYTES);
	dk->len = DATA_KEY_BYTES;
	assert_int_equal(derive_value_key(dk, &vk), 0);
	unsigned char vid[VAULT_ID_BYTES], vid2[VAULT_ID_BYTES], nonce[KEY_NONCE_BYTES];
	unsigned char ct[sizeof value_a - 1 + AEAD_TAG_BYTES];
	randombytes_buf(vid, sizeof vid);
	const struct value_binding b = {.vault_id = vid, .secret_id = 7, .version = 3, .name = "team/db"};
	value_seal(vk, &b, (const unsigned char *)value_a, sizeof value_a - 1, nonce, ct);
	assert_int_equal(value_open(vk, &b, nonce, ct, sizeof ct, &out), 0);
	assert_int_equal(out->len, sizeof value_a - 1);
	assert_memory_equal(out->data, value_a, sizeof value_a - 1);
	secbuf_free(out);

	struct value_binding w = b;
	for (size_t i = 0; i < VAULT_ID_BYTES; i++) {
		memcpy(vid2, vid, sizeof vid);
		vid2[i] ^= (unsigned char)(1u << (i % 8));
		w.vault_id = vid2;
		out = NULL;
		assert_int_equal(value_open(vk, &w, nonce, ct, sizeof ct, &out), -1);
		assert_null(out);
	}
	const int64_t ids[] = {6, 8, 0, -7, 7 + (1LL << 32), INT64_MAX};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		w = b;
		w.secret_id = ids[i];
		assert_int_equal(value_open(vk, &w, nonce, ct, sizeof ct, &out), -1);
		w = b;
		w.version = ids[i] - 4; /* 2, 4, -4, ... */
		assert_int_equal(value_open(vk, &w, nonce, ct, sizeof ct, &out), -1);
	}
	/* id and version exchanged */
	w = b;
	w.secret_id = b.version;
	w.version = b.secret_id;
	assert_int_equal(value_open(vk, &w, nonce, ct, sizeof ct, &out), -1);
	const char *names[] = {"team/d", "team/db2", "team/dB", "team-db", "eam/db", ""};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		w = b;
		w.name = names[i];
		assert_int_equal(value_open(vk, &w, nonce, ct, sizeof ct, &out), -1);
	}
	assert_null(out);
	/* And another data key with the same binding. */
	struct secbuf *vk2 = NULL;
	dk->data[0] ^= 1;
	assert_int_equal(derive_value_key(dk, &vk2), 0);
	assert_int_equal(value_open(vk2, &b, nonce, ct, sizeof ct, &out), -1);
	assert_null(out);
	secbuf_free(vk2);
	secbuf_free(vk);
	secbuf_free(dk);
}

static void key_row_set(sqlite3 *db, const char *col, const char *purpose, const void *data, size_t len)
{
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE keys SET %s = ?1 WHERE purpose = ?2", col);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, data, (int)len, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, purpose, -1, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
}

static unsigned char *key_row_get(sqlite3 *db, const char *col, const char *purpose, size_t *len)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT %s FROM keys WHERE purpose = ?1", col);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, purpose, -1, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	*len = (size_t)sqlite3_column_bytes(st, 0);
	unsigned char *p = malloc(*len ? *len : 1);
	assert_non_null(p);
	memcpy(p, sqlite3_column_blob(st, 0), *len);
	sqlite3_finalize(st);
	return p;
}

/* Named keys (vault_key: random keys for other modules, such as the audit
 * log's, wrapped under the data key): bound to their purpose, distinct
 * from secret values, re-wrapped by rekey, which stops on a damaged one. */
static void named_keys(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault *v = fx_unlocked(f, PASS);
	struct secbuf *k1 = NULL, *k2 = NULL, *out = NULL;
	assert_int_equal(vault_key(v, "audit-writer", true, &k1), 0);
	assert_int_equal(k1->len, DATA_KEY_BYTES);
	assert_int_equal(vault_key(v, "audit-writer", false, &k2), 0);
	assert_memory_equal(k1->data, k2->data, DATA_KEY_BYTES);
	secbuf_free(k2);
	EXPECT_FAIL(LATCH_OPERR, vault_key(v, "audit-verifier", false, &out));
	assert_null(out);
	assert_int_equal(vault_key(v, "audit-verifier", true, &k2), 0);
	assert_memory_not_equal(k1->data, k2->data, DATA_KEY_BYTES);

	sqlite3 *db = db_raw(f->path);
	size_t nlen, wlen;
	unsigned char *nonce = key_row_get(db, "nonce", "audit-writer", &nlen);
	unsigned char *wrapped = key_row_get(db, "wrapped", "audit-writer", &wlen);
	assert_int_equal(nlen, KEY_NONCE_BYTES);
	assert_int_equal(wlen, WRAPPED_KEY_BYTES);
	/* Every byte of the nonce and the wrapped key. */
	for (int col = 0; col < 2; col++) {
		unsigned char *orig = col ? wrapped : nonce;
		size_t len = col ? wlen : nlen;
		for (size_t i = 0; i < len; i++) {
			orig[i] ^= (unsigned char)(1u << (i % 8));
			key_row_set(db, col ? "wrapped" : "nonce", "audit-writer", orig, len);
			orig[i] ^= (unsigned char)(1u << (i % 8));
			out = NULL;
			EXPECT_FAIL(LATCH_OPERR, vault_key(v, "audit-writer", false, &out));
			assert_null(out);
		}
		key_row_set(db, col ? "wrapped" : "nonce", "audit-writer", orig, len);
	}
	/* One purpose's key under another purpose. */
	size_t n2, w2;
	unsigned char *nonce2 = key_row_get(db, "nonce", "audit-verifier", &n2);
	unsigned char *wrapped2 = key_row_get(db, "wrapped", "audit-verifier", &w2);
	key_row_set(db, "nonce", "audit-verifier", nonce, nlen);
	key_row_set(db, "wrapped", "audit-verifier", wrapped, wlen);
	EXPECT_FAIL(LATCH_OPERR, vault_key(v, "audit-verifier", false, &out));
	assert_null(out);
	/* A secret value of the same size and name is no named key. */
	unsigned char fake[DATA_KEY_BYTES];
	randombytes_buf(fake, sizeof fake);
	put(v, "audit-verifier", fake, sizeof fake);
	size_t sn, sc;
	unsigned char *snonce = row_blob(db, "nonce", "audit-verifier", &sn);
	unsigned char *sct = row_blob(db, "ciphertext", "audit-verifier", &sc);
	assert_int_equal(sc, WRAPPED_KEY_BYTES);
	key_row_set(db, "nonce", "audit-verifier", snonce, sn);
	key_row_set(db, "wrapped", "audit-verifier", sct, sc);
	EXPECT_FAIL(LATCH_OPERR, vault_key(v, "audit-verifier", false, &out));
	assert_null(out);
	key_row_set(db, "nonce", "audit-verifier", nonce2, n2);
	key_row_set(db, "wrapped", "audit-verifier", wrapped2, w2);

	/* A damaged named key stops rekey, which changes nothing. */
	wrapped[0] ^= 0x01;
	key_row_set(db, "wrapped", "audit-writer", wrapped, wlen);
	wrapped[0] ^= 0x01;
	sqlite3_close(db);
	struct snap s = snap_take(f->path);
	int64_t count = -1;
	EXPECT_FAIL(LATCH_OPERR, vault_rekey(v, &count));
	snap_same(&s, f->path);
	db = db_raw(f->path);
	key_row_set(db, "wrapped", "audit-writer", wrapped, wlen);

	/* Rekey re-wraps named keys: new bytes, same keys. */
	assert_int_equal(vault_rekey(v, &count), 0);
	size_t wlen_after;
	unsigned char *after = key_row_get(db, "wrapped", "audit-writer", &wlen_after);
	assert_int_equal(wlen_after, wlen);
	assert_memory_not_equal(after, wrapped, wlen);
	/* The pre-rekey wrapping no longer opens. */
	key_row_set(db, "nonce", "audit-writer", nonce, nlen);
	key_row_set(db, "wrapped", "audit-writer", wrapped, wlen);
	EXPECT_FAIL(LATCH_OPERR, vault_key(v, "audit-writer", false, &out));
	assert_null(out);
	sqlite3_close(db);
	vault_close(v);
	v = fx_open(f);
	EXPECT_FAIL(LATCH_DENIED, vault_key(v, "audit-verifier", false, &out)); /* locked */
	vault_close(v);
	v = fx_unlocked(f, PASS);
	struct secbuf *k3 = NULL;
	assert_int_equal(vault_key(v, "audit-verifier", false, &k3), 0);
	assert_memory_equal(k3->data, k2->data, DATA_KEY_BYTES);
	vault_close(v);
	secbuf_free(k1);
	secbuf_free(k2);
	secbuf_free(k3);
	free(nonce);
	free(wrapped);
	free(nonce2);
	free(wrapped2);
	free(snonce);
	free(sct);
	free(after);
}

/* --- the header ---------------------------------------------------------- */

/* A header field as bytes, for the loops below. */
struct field {
	const char *name;
	size_t off;
	size_t len;
};

#define HF(member)                                                                                         \
	{                                                                                                  \
#member, offsetof(struct vault_header, member), sizeof(((struct vault_header *)0)->member) \
	}

/* Every stored field; check last. */
static const struct field all_fields[] = {
	HF(vault_id), HF(created),        HF(kdf_alg),   HF(kdf_opslimit), HF(kdf_memlimit),
	HF(kdf_salt), HF(key_generation), HF(key_nonce), HF(wrapped_key),  HF(check),
};

/* The fields the wrapped key's associated data binds, and the wrapped key
 * and its nonce: a change to any must make unwrapping fail. */
static const struct field bound_fields[] = {
	HF(vault_id), HF(kdf_alg),        HF(kdf_opslimit), HF(kdf_memlimit),
	HF(kdf_salt), HF(key_generation), HF(key_nonce),    HF(wrapped_key),
};

static void header_damage_caught_at_open(void **state)
{
	struct fx *f = *state;
	struct vault *v = two_secrets(f);
	vault_close(v);
	struct vault_header h0;
	hdr_load(f->path, &h0);
	/* Every byte of every field flipped (bit i % 8 of byte i, so every
	 * bit position is used), checksum left as it was: vault_open refuses
	 * (no Argon2id needed) and the file is untouched. */
	int n = 0;
	for (size_t fi = 0; fi < sizeof all_fields / sizeof all_fields[0]; fi++) {
		const struct field *fd = &all_fields[fi];
		for (size_t i = 0; i < fd->len; i++) {
			int bit = (int)(i % 8);
			struct vault_header h = h0;
			((unsigned char *)&h)[fd->off + i] ^= (unsigned char)(1u << bit);
			hdr_store(f->path, &h, false);
			struct snap s = snap_take(f->path);
			struct vault *bad = NULL;
			status_reset();
			latch_error_quiet(true);
			int rc = vault_open(f->dir, &bad);
			latch_error_quiet(false);
			if (rc != -1 || bad || latch_last_status() != LATCH_OPERR)
				fail_msg("header %s byte %zu bit %d flipped: vault_open rc %d status %d", fd->name, i,
					 bit, rc, (int)latch_last_status());
			snap_same(&s, f->path);
			n++;
		}
	}
	assert_int_equal(n, (int)(sizeof h0.vault_id + 8 * 5 + SALT_BYTES + KEY_NONCE_BYTES + WRAPPED_KEY_BYTES +
				  HEADER_CHECK_BYTES));
	hdr_store(f->path, &h0, false);
	v = fx_unlocked(f, PASS);
	expect_str(v, "a", value_a);
	vault_close(v);
	dir_only_vault(f);
}

static void header_bad_blobs_caught_at_open(void **state)
{
	struct fx *f = *state;
	struct vault *v = two_secrets(f);
	vault_close(v);
	struct vault_header h0;
	hdr_load(f->path, &h0);
	const char *cols[] = {"vault_id", "kdf_salt", "key_nonce", "wrapped_key", "header_check"};
	for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
		const char *col = cols[c];
		for (int k = 0; k < 5; k++) {
			char sql[256];
			switch (k) {
			case 0: /* one byte short */
				snprintf(sql, sizeof sql, "UPDATE vault SET %s = substr(%s, 1, length(%s) - 1)", col,
					 col, col);
				break;
			case 1: /* one byte long */
				snprintf(sql, sizeof sql, "UPDATE vault SET %s = %s || x'00'", col, col);
				break;
			case 2:
				snprintf(sql, sizeof sql, "UPDATE vault SET %s = x''", col);
				break;
			case 3: /* text of the right length, other bytes */
				snprintf(sql, sizeof sql, "UPDATE vault SET %s = substr(hex(%s), 1, length(%s))", col,
					 col, col);
				break;
			default:
				snprintf(sql, sizeof sql, "UPDATE vault SET %s = 7", col);
				break;
			}
			sql_exec(f->path, sql);
			expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
			hdr_store(f->path, &h0, false);
		}
	}
	/* Integers replaced by text or by a value of another size. */
	const char *ints[] = {
		"UPDATE vault SET kdf_opslimit = 'two'",
		"UPDATE vault SET kdf_memlimit = x'00000004'",
		"UPDATE vault SET kdf_alg = NULL", /* refused by NOT NULL or read as 0 */
		"UPDATE vault SET key_generation = key_generation + 4294967296",
		"UPDATE vault SET created = created + 1",
	};
	for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
		sqlite3 *db = db_raw(f->path);
		int rc = sqlite3_exec(db, ints[k], NULL, NULL, NULL);
		sqlite3_close(db);
		if (rc != SQLITE_OK)
			continue; /* the schema itself refused the edit */
		expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
		hdr_store(f->path, &h0, false);
	}
	v = fx_unlocked(f, PASS);
	expect_str(v, "b", value_b);
	vault_close(v);
}

/* With a forged checksum, a change to any bit the wrapped key's associated
 * data covers, or to the wrapped key or its nonce, makes unwrapping fail.
 * This runs the unwrap directly with the right key-encryption key, so all
 * of them are tried without an Argon2id run each. */
static void header_forged_every_bit_unwrap(void **state)
{
	struct fx *f = *state;
	fx_create(f);
	struct vault_header h0;
	hdr_load(f->path, &h0);
	struct secbuf *p = sb_str(PASS), *kek = NULL, *dk = NULL;
	assert_int_equal(derive_kek(p, &h0, &kek), 0);
	assert_int_equal(unwrap_data_key(&h0, kek, &dk), 0); /* sanity: the right key works */
	assert_int_equal(dk->len, DATA_KEY_BYTES);
	secbuf_free(dk);
	int n = 0;
	for (size_t fi = 0; fi < sizeof bound_fields / sizeof bound_fields[0]; fi++) {
		const struct field *fd = &bound_fields[fi];
		for (size_t i = 0; i < fd->len; i++) {
			for (int bit = 0; bit < 8; bit++) {
				struct vault_header h = h0;
				((unsigned char *)&h)[fd->off + i] ^= (unsigned char)(1u << bit);
				header_checksum(&h, h.check);
				dk = NULL;
				status_reset();
				latch_error_quiet(true);
				int rc = unwrap_data_key(&h, kek, &dk);
				latch_error_quiet(false);
				if (rc != -1 || dk || latch_last_status() != LATCH_DENIED)
					fail_msg("forged header, %s byte %zu bit %d: unwrap rc %d status %d", fd->name,
						 i, bit, rc, (int)latch_last_status());
				n++;
			}
		}
	}
	assert_int_equal(n, 8 * (VAULT_ID_BYTES + 4 * 8 + SALT_BYTES + KEY_NONCE_BYTES + WRAPPED_KEY_BYTES));
	secbuf_free(kek);
	secbuf_free(p);
}

/* Forge a header with one change and a recomputed checksum, then expect
 * vault_open to refuse it (open_status) or, when it opens, vault_unlock
 * to deny the right passphrase. The file is unchanged either way. */
static void forge_and_expect(const struct fx *f, const struct vault_header *h0,
			     void (*edit)(struct vault_header *h, int arg), int arg, enum latch_status open_status)
{
	struct vault_header h = *h0;
	edit(&h, arg);
	hdr_store(f->path, &h, true);
	expect_open_unlock_fails(f, PASS, open_status, LATCH_DENIED);
	struct vault_header restored = *h0;
	hdr_store(f->path, &restored, false);
}

static void flip_byte(struct vault_header *h, int off)
{
	((unsigned char *)h)[off] ^= 0x01;
}

static void set_alg(struct vault_header *h, int alg)
{
	h->kdf_alg = alg;
}

enum {
	OPS_ZERO,
	OPS_ONE,
	OPS_THREE,
	OPS_CEIL,
	OPS_HUGE,
	OPS_NEG,
	MEM_ZERO,
	MEM_FLOOR_M1,
	MEM_PLUS_1,
	MEM_PLUS_1K,
	MEM_DOUBLE,
	MEM_CEIL,
	MEM_HUGE,
	MEM_NEG,
	GEN_PLUS,
	GEN_ZERO
};
/* (MEM_PLUS_1K, MEM_DOUBLE and GEN_ZERO are only used unforged.) */

static void set_kdf(struct vault_header *h, int which)
{
	switch (which) {
	case OPS_ZERO:
		h->kdf_opslimit = 0;
		break;
	case OPS_ONE:
		h->kdf_opslimit = 1;
		break;
	case OPS_THREE:
		h->kdf_opslimit = 3;
		break;
	case OPS_CEIL:
		h->kdf_opslimit = 33;
		break; /* just past the 32-pass ceiling */
	case OPS_HUGE:
		h->kdf_opslimit = (uint64_t)INT64_MAX;
		break;
	case OPS_NEG:
		h->kdf_opslimit = (uint64_t)-1;
		break;
	case MEM_ZERO:
		h->kdf_memlimit = 0;
		break;
	case MEM_FLOOR_M1:
		h->kdf_memlimit = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE - 1;
		break;
	case MEM_PLUS_1:
		h->kdf_memlimit += 1;
		break; /* same Argon2 cost; only the binding differs */
	case MEM_PLUS_1K:
		h->kdf_memlimit += 1024;
		break;
	case MEM_DOUBLE:
		h->kdf_memlimit *= 2;
		break;
	case MEM_CEIL:
		h->kdf_memlimit = (4ULL << 30) + 1;
		break; /* past the 4 GiB ceiling */
	case MEM_HUGE:
		h->kdf_memlimit = (uint64_t)INT64_MAX;
		break;
	case MEM_NEG:
		h->kdf_memlimit = (uint64_t)-1;
		break;
	case GEN_PLUS:
		h->key_generation += 1;
		break;
	case GEN_ZERO:
		h->key_generation = 0;
		break;
	default:
		break;
	}
}

static void header_kdf_fields_refused(void **state)
{
	struct fx *f = *state;
	struct vault *v = two_secrets(f);
	vault_close(v);
	struct vault_header h0;
	hdr_load(f->path, &h0);
	assert_int_equal(h0.kdf_alg, crypto_pwhash_ALG_ARGON2ID13);

	/* Changed without fixing the checksum: refused at open. */
	const int all[] = {OPS_ZERO,   OPS_ONE,     OPS_THREE,  OPS_CEIL, OPS_HUGE, OPS_NEG, MEM_ZERO, MEM_FLOOR_M1,
			   MEM_PLUS_1, MEM_PLUS_1K, MEM_DOUBLE, MEM_CEIL, MEM_HUGE, MEM_NEG, GEN_PLUS, GEN_ZERO};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		struct vault_header h = h0;
		set_kdf(&h, all[i]);
		hdr_store(f->path, &h, false);
		expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	}
	const int algs[] = {crypto_pwhash_ALG_ARGON2I13, 0, 3, -1, INT32_MAX};
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
		struct vault_header h = h0;
		h.kdf_alg = algs[i];
		hdr_store(f->path, &h, false);
		expect_open_unlock_fails(f, PASS, LATCH_OPERR, LATCH_OK);
	}

	/* Forged consistent, but another algorithm, or parameters below the
	 * floor or absurdly high: refused at open before any Argon2id run. */
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
		forge_and_expect(f, &h0, set_alg, algs[i], LATCH_OPERR);
	const int refused[] = {OPS_ZERO, OPS_ONE,      OPS_CEIL, OPS_HUGE, OPS_NEG,
			       MEM_ZERO, MEM_FLOOR_M1, MEM_CEIL, MEM_HUGE, MEM_NEG};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		forge_and_expect(f, &h0, set_kdf, refused[i], LATCH_OPERR);

	/* Forged consistent and plausible: opens, and the passphrase then
	 * does not work (one Argon2id run each; MEM_PLUS_1 derives the very
	 * same key-encryption key, so only the binding stops it). Every bit
	 * of these fields is covered by header_forged_every_bit_unwrap. */
	const int plausible[] = {OPS_THREE, MEM_PLUS_1, GEN_PLUS};
	for (size_t i = 0; i < sizeof plausible / sizeof plausible[0]; i++)
		forge_and_expect(f, &h0, set_kdf, plausible[i], LATCH_OK);

	v = fx_unlocked(f, PASS);
	expect_str(v, "a", value_a);
	vault_close(v);
	dir_only_vault(f);
}

static void header_forged_bytes_denied(void **state)
{
	struct fx *f = *state;
	struct vault *v = two_secrets(f);
	vault_close(v);
	struct vault_header h0;
	hdr_load(f->path, &h0);
	/* A byte of each keyed field, of the wrapped key's ciphertext and of
	 * its tag: forged consistent, denied at unlock, one Argon2id run each
	 * (header_forged_every_bit_unwrap covers every bit without them). */
	const int offs[] = {
		(int)offsetof(struct vault_header, vault_id),
		(int)(offsetof(struct vault_header, kdf_salt) + SALT_BYTES - 1),
		(int)offsetof(struct vault_header, key_nonce),
		(int)offsetof(struct vault_header, wrapped_key),
		(int)(offsetof(struct vault_header, wrapped_key) + WRAPPED_KEY_BYTES - 1),
	};
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++)
		forge_and_expect(f, &h0, flip_byte, offs[i], LATCH_OK);
	v = fx_unlocked(f, PASS);
	expect_str(v, "a", value_a);
	expect_str(v, "b", value_b);
	vault_close(v);
	dir_only_vault(f);
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
		T(value_nonce_bitflips),
		T(value_ciphertext_bitflips),
		T(large_value_flips),
		T(value_blob_lengths_and_types),
		T(rows_swapped),
		T(row_copied_to_other_name),
		T(row_version_or_id_changed),
		T(ciphertext_from_other_vault),
		T(value_binding_fields),
		T(named_keys),
		T(header_damage_caught_at_open),
		T(header_bad_blobs_caught_at_open),
		T(header_forged_every_bit_unwrap),
		T(header_kdf_fields_refused),
		T(header_forged_bytes_denied),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	free(fx_template);
	return failed;
}
