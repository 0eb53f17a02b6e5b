/* The vault's header row (its id, KDF parameters and wrapped data key,
 * under an unkeyed checksum), unlocking, and a new passphrase. */
#include "internal.h"

#include <string.h>

static int blob_into(sqlite3_stmt *st, int col, unsigned char *dst, size_t n)
{
	if (sqlite3_column_type(st, col) != SQLITE_BLOB || (size_t)sqlite3_column_bytes(st, col) != n)
		return -1;
	memcpy(dst, sqlite3_column_blob(st, col), n);
	return 0;
}

int header_read(struct vault *v, struct vault_header *h)
{
	sqlite3_stmt *st;
	if (db_prepare(v,
		       "SELECT vault_id, created, kdf_alg, kdf_opslimit, kdf_memlimit, kdf_salt,"
		       " key_generation, key_nonce, wrapped_key, header_check FROM vault WHERE id = 1",
		       &st) != 0)
		return -1;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc == SQLITE_DONE)
			return latch_error(LATCH_OPERR, "vault '%s' has no header row: damaged", v->path);
		return db_fail(v, "read the vault header");
	}
	memset(h, 0, sizeof *h);
	h->created = sqlite3_column_int64(st, 1);
	h->kdf_alg = sqlite3_column_int64(st, 2);
	h->kdf_opslimit = (uint64_t)sqlite3_column_int64(st, 3);
	h->kdf_memlimit = (uint64_t)sqlite3_column_int64(st, 4);
	h->key_generation = sqlite3_column_int64(st, 6);
	int bad = blob_into(st, 0, h->vault_id, VAULT_ID_BYTES) | blob_into(st, 5, h->kdf_salt, SALT_BYTES) |
		  blob_into(st, 7, h->key_nonce, KEY_NONCE_BYTES) |
		  blob_into(st, 8, h->wrapped_key, WRAPPED_KEY_BYTES) | blob_into(st, 9, h->check, HEADER_CHECK_BYTES);
	sqlite3_finalize(st);
	unsigned char check[HEADER_CHECK_BYTES];
	header_checksum(h, check);
	if (bad || sodium_memcmp(check, h->check, HEADER_CHECK_BYTES) != 0)
		return latch_error(LATCH_OPERR,
				   "vault header in '%s' is corrupt (checksum mismatch): restore it from a backup",
				   v->path);
	return kdf_params_check(h);
}

int header_write(struct vault *v, struct vault_header *h, bool insert)
{
	header_checksum(h, h->check);
	sqlite3_stmt *st;
	const char *sql =
		insert ? "INSERT INTO vault (vault_id, created, kdf_alg, kdf_opslimit, kdf_memlimit, kdf_salt,"
			 " key_generation, key_nonce, wrapped_key, header_check, id)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)"
		       : "UPDATE vault SET vault_id = ?1, created = ?2, kdf_alg = ?3, kdf_opslimit = ?4,"
			 " kdf_memlimit = ?5, kdf_salt = ?6, key_generation = ?7, key_nonce = ?8,"
			 " wrapped_key = ?9, header_check = ?10 WHERE id = 1";
	if (db_prepare(v, sql, &st) != 0)
		return -1;
	sqlite3_bind_blob(st, 1, h->vault_id, VAULT_ID_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, h->created);
	sqlite3_bind_int64(st, 3, h->kdf_alg);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)h->kdf_opslimit);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)h->kdf_memlimit);
	sqlite3_bind_blob(st, 6, h->kdf_salt, SALT_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, h->key_generation);
	sqlite3_bind_blob(st, 8, h->key_nonce, KEY_NONCE_BYTES, SQLITE_STATIC);
	sqlite3_bind_blob(st, 9, h->wrapped_key, WRAPPED_KEY_BYTES, SQLITE_STATIC);
	sqlite3_bind_blob(st, 10, h->check, HEADER_CHECK_BYTES, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(v, "write the vault header");
	return 0;
}

/* Inside a write transaction: the header must still be the one we
 * unlocked, or another process changed the keys since (passwd, rekey). */
int header_unchanged(struct vault *v)
{
	struct vault_header now;
	if (header_read(v, &now) != 0)
		return -1;
	if (sodium_memcmp(now.check, v->h.check, HEADER_CHECK_BYTES) != 0)
		return latch_error(LATCH_OPERR, "the vault's keys changed while this command ran: run it again");
	return 0;
}

int vault_unlock(struct vault *v, const struct secbuf *passphrase)
{
	struct secbuf *kek = NULL, *dk = NULL, *vk = NULL;
	if (derive_kek(passphrase, &v->h, &kek) != 0 || unwrap_data_key(&v->h, kek, &dk) != 0 ||
	    derive_value_key(dk, &vk) != 0) {
		secbuf_free(kek);
		secbuf_free(dk);
		return -1;
	}
	secbuf_free(v->kek);
	secbuf_free(v->data_key);
	secbuf_free(v->value_key);
	v->kek = kek;
	v->data_key = dk;
	v->value_key = vk;
	return 0;
}

int require_unlocked(const struct vault *v)
{
	if (!v->value_key)
		return latch_error(LATCH_DENIED, "the vault is locked");
	return 0;
}

int vault_passwd(struct vault *v, const struct secbuf *new_passphrase, const enum vault_kdf *kdf)
{
	if (require_unlocked(v) != 0)
		return -1;
	struct vault_header h = v->h;
	struct secbuf *kek = NULL;
	randombytes_buf(h.kdf_salt, SALT_BYTES);
	if (kdf)
		kdf_params_of(*kdf, &h.kdf_opslimit, &h.kdf_memlimit);
	/* Stretch the new passphrase before taking the write lock. */
	if (derive_kek(new_passphrase, &h, &kek) != 0)
		return -1;
	wrap_data_key(&h, kek, v->data_key);
	if (tx_begin(v) != 0 || header_unchanged(v) != 0 || header_write(v, &h, false) != 0 ||
	    run_hook(v, "passwd", NULL, NULL, NULL, 0, 0) != 0 || tx_commit(v) != 0) {
		secbuf_free(kek);
		return tx_abort(v);
	}
	secbuf_free(v->kek);
	v->kek = kek;
	v->h = h;
	return 0;
}
