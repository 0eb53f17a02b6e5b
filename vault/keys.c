/* Named keys: random keys kept for other modules (the audit log's writer
 * and verifier keys), wrapped under the value key with their purpose as
 * associated data; their export, and opening one from its export with the
 * passphrase and without the vault file; keys derived from the data key. */
#include "internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Named keys: random keys for other modules, wrapped under the value key
 * with their purpose as associated data. */
static int named_key_open(struct vault *v, sqlite3_stmt *st, const char *purpose, const struct secbuf *value_key,
			  struct secbuf **out)
{
	struct value_binding b = {v->h.vault_id, 0, 0, purpose, true};
	const void *nonce = sqlite3_column_blob(st, 0);
	const void *ct = sqlite3_column_blob(st, 1);
	int ct_len = sqlite3_column_bytes(st, 1);
	if (sqlite3_column_bytes(st, 0) != (int)KEY_NONCE_BYTES || !ct || ct_len != (int)WRAPPED_KEY_BYTES ||
	    value_open(value_key, &b, nonce, ct, (size_t)ct_len, out) != 0)
		return latch_error(LATCH_OPERR, "the vault's '%s' key was altered or damaged", purpose);
	return 0;
}

static int named_key_store(struct vault *v, const char *purpose, const struct secbuf *value_key,
			   const struct secbuf *key, bool insert)
{
	struct value_binding b = {v->h.vault_id, 0, 0, purpose, true};
	unsigned char nonce[KEY_NONCE_BYTES], ct[WRAPPED_KEY_BYTES];
	value_seal(value_key, &b, key->data, DATA_KEY_BYTES, nonce, ct);
	sqlite3_stmt *st;
	if (db_prepare(v,
		       insert ? "INSERT INTO keys (purpose, nonce, wrapped) VALUES (?1, ?2, ?3)"
			      : "UPDATE keys SET nonce = ?2, wrapped = ?3 WHERE purpose = ?1",
		       &st) != 0)
		return -1;
	sqlite3_bind_text(st, 1, purpose, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, nonce, KEY_NONCE_BYTES, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, ct, WRAPPED_KEY_BYTES, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_fail(v, "store a key");
}

int vault_key(struct vault *v, const char *purpose, bool create, struct secbuf **out)
{
	if (require_unlocked(v) != 0)
		return -1;
	if (!latch_name_valid(purpose))
		return latch_error(LATCH_OPERR, "invalid key purpose");
	bool own_tx = sqlite3_get_autocommit(v->db);
	if (own_tx && tx_begin(v) != 0)
		return -1;
	sqlite3_stmt *st;
	if (db_prepare(v, "SELECT nonce, wrapped FROM keys WHERE purpose = ?1", &st) != 0)
		return own_tx ? tx_abort(v) : -1;
	sqlite3_bind_text(st, 1, purpose, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), ret = -1;
	if (rc == SQLITE_ROW) {
		ret = named_key_open(v, st, purpose, v->value_key, out);
	} else if (rc == SQLITE_DONE && !create) {
		latch_error(LATCH_OPERR, "the vault has no '%s' key", purpose);
	} else if (rc == SQLITE_DONE) {
		struct secbuf *k = secbuf_new(DATA_KEY_BYTES);
		if (k) {
			randombytes_buf(k->data, DATA_KEY_BYTES);
			k->len = DATA_KEY_BYTES;
			ret = named_key_store(v, purpose, v->value_key, k, true);
			if (ret == 0)
				*out = k;
			else
				secbuf_free(k);
		}
	} else {
		db_fail(v, "read a key");
	}
	sqlite3_finalize(st);
	if (own_tx && ret == 0 && tx_commit(v) != 0) {
		secbuf_free(*out);
		*out = NULL;
		return -1;
	}
	if (own_tx && ret != 0)
		tx_abort(v);
	return ret;
}

int vault_key_replace(struct vault *v, const char *purpose, const struct secbuf *key)
{
	if (require_unlocked(v) != 0)
		return -1;
	if (sqlite3_get_autocommit(v->db))
		return latch_error(LATCH_OPERR, "a key is replaced only inside the transaction that uses it");
	if (!latch_name_valid(purpose) || key->len != DATA_KEY_BYTES)
		return latch_error(LATCH_OPERR, "invalid key to store");
	if (named_key_store(v, purpose, v->value_key, key, false) != 0)
		return -1;
	if (sqlite3_changes(v->db) != 1)
		return latch_error(LATCH_OPERR, "the vault has no '%s' key", purpose);
	return 0;
}

int rewrap_named_keys(struct vault *v, const struct secbuf *new_value_key)
{
	sqlite3_stmt *st;
	if (db_prepare(v, "SELECT nonce, wrapped, purpose FROM keys WHERE purpose > ?1 ORDER BY purpose LIMIT 1",
		       &st) != 0)
		return -1;
	char last[LATCH_NAME_MAX + 1] = "";
	int rc, ret = 0;
	for (;;) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, last, -1, SQLITE_TRANSIENT);
		if ((rc = sqlite3_step(st)) != SQLITE_ROW)
			break;
		const char *purpose = (const char *)sqlite3_column_text(st, 2);
		struct secbuf *k = NULL;
		if (!purpose || !latch_name_valid(purpose)) {
			ret = latch_error(LATCH_OPERR, "the vault's keys table is damaged");
			break;
		}
		snprintf(last, sizeof last, "%s", purpose);
		if (named_key_open(v, st, last, v->value_key, &k) != 0 ||
		    named_key_store(v, last, new_value_key, k, false) != 0) {
			secbuf_free(k);
			ret = -1;
			break;
		}
		secbuf_free(k);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_fail(v, "read the keys");
	sqlite3_finalize(st);
	return ret;
}

static json_t *hex_json(const unsigned char *p, size_t n)
{
	char hex[2 * WRAPPED_KEY_BYTES + 1];
	if (2 * n + 1 > sizeof hex)
		return NULL;
	sodium_bin2hex(hex, sizeof hex, p, n);
	return json_string(hex);
}

int vault_export_key(struct vault *v, const char *purpose, char **json_out)
{
	sqlite3_stmt *st;
	if (db_prepare(v, "SELECT nonce, wrapped FROM keys WHERE purpose = ?1", &st) != 0)
		return -1;
	sqlite3_bind_text(st, 1, purpose, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW || sqlite3_column_bytes(st, 0) != (int)KEY_NONCE_BYTES ||
	    sqlite3_column_bytes(st, 1) != (int)WRAPPED_KEY_BYTES) {
		sqlite3_finalize(st);
		return rc == SQLITE_ROW || rc == SQLITE_DONE
			       ? latch_error(LATCH_OPERR, "the vault has no usable '%s' key", purpose)
			       : db_fail(v, "read a key");
	}
	const struct vault_header *h = &v->h;
	json_t *o = json_pack("{s:s, s:o, s:I, s:I, s:I, s:I, s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "purpose", purpose,
			      "vault_id", hex_json(h->vault_id, VAULT_ID_BYTES), "created", (json_int_t)h->created,
			      "kdf_alg", (json_int_t)h->kdf_alg, "kdf_opslimit", (json_int_t)h->kdf_opslimit,
			      "kdf_memlimit", (json_int_t)h->kdf_memlimit, "kdf_salt",
			      hex_json(h->kdf_salt, SALT_BYTES), "key_generation", (json_int_t)h->key_generation,
			      "key_nonce", hex_json(h->key_nonce, KEY_NONCE_BYTES), "wrapped_key",
			      hex_json(h->wrapped_key, WRAPPED_KEY_BYTES), "header_check",
			      hex_json(h->check, HEADER_CHECK_BYTES), "nonce",
			      hex_json(sqlite3_column_blob(st, 0), KEY_NONCE_BYTES), "wrapped",
			      hex_json(sqlite3_column_blob(st, 1), WRAPPED_KEY_BYTES));
	sqlite3_finalize(st);
	/* Into plain malloc'd memory, whatever allocator jansson was given:
	 * the caller frees it with free(). */
	size_t n = o ? json_dumpb(o, NULL, 0, JSON_COMPACT) : 0;
	char *text = n ? malloc(n + 1) : NULL;
	if (text && json_dumpb(o, text, n, JSON_COMPACT) == n)
		text[n] = '\0';
	else if (text) {
		free(text);
		text = NULL;
	}
	json_decref(o);
	*json_out = text;
	return text ? 0 : latch_error(LATCH_OPERR, "out of memory");
}

int vault_derive_key(struct vault *v, const char context[8], const unsigned char *salt, size_t n, struct secbuf **out)
{
	if (require_unlocked(v) != 0)
		return -1;
	unsigned char sub[crypto_generichash_KEYBYTES];
	struct secbuf *k = secbuf_new(32);
	if (!k)
		return -1;
	/* id 4: 1 is the value key (seal.c); the others are this function's
	 * contexts. */
	crypto_kdf_derive_from_key(sub, sizeof sub, 4, context, v->data_key->data);
	crypto_generichash(k->data, 32, salt, n, sub, sizeof sub);
	sodium_memzero(sub, sizeof sub);
	k->len = 32;
	*out = k;
	return 0;
}

/* Opening one named key from its exported form (vault_export_key), with
 * the passphrase and without the vault file. The same checks apply as to
 * the vault itself: header checksum, KDF floor and ceiling, authenticated
 * unwrapping bound to the vault id and the key's purpose. */
static int hex_into(json_t *o, const char *key, unsigned char *dst, size_t n)
{
	const char *hex = json_string_value(json_object_get(o, key));
	size_t got = 0;
	if (!hex || strlen(hex) != 2 * n || sodium_hex2bin(dst, n, hex, 2 * n, NULL, &got, NULL) != 0 || got != n)
		return -1;
	return 0;
}

static int int_into(json_t *o, const char *key, int64_t *dst)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		return -1;
	*dst = (int64_t)json_integer_value(v);
	return 0;
}

int vault_import_key(const char *json, size_t len, const struct secbuf *passphrase, const char *purpose,
		     struct secbuf **key_out)
{
	json_error_t err;
	json_t *o = json_loadb(json, len, 0, &err);
	struct vault_header h;
	unsigned char nonce[KEY_NONCE_BYTES], wrapped[WRAPPED_KEY_BYTES], check[HEADER_CHECK_BYTES];
	int64_t ops = 0, mem = 0;
	memset(&h, 0, sizeof h);
	const char *p = json_string_value(json_object_get(o, "purpose"));
	if (!o || !p || strcmp(p, purpose) != 0 || hex_into(o, "vault_id", h.vault_id, VAULT_ID_BYTES) ||
	    int_into(o, "created", &h.created) || int_into(o, "kdf_alg", &h.kdf_alg) ||
	    int_into(o, "kdf_opslimit", &ops) || int_into(o, "kdf_memlimit", &mem) || ops < 0 || mem < 0 ||
	    hex_into(o, "kdf_salt", h.kdf_salt, SALT_BYTES) || int_into(o, "key_generation", &h.key_generation) ||
	    hex_into(o, "key_nonce", h.key_nonce, KEY_NONCE_BYTES) ||
	    hex_into(o, "wrapped_key", h.wrapped_key, WRAPPED_KEY_BYTES) ||
	    hex_into(o, "header_check", h.check, HEADER_CHECK_BYTES) || hex_into(o, "nonce", nonce, KEY_NONCE_BYTES) ||
	    hex_into(o, "wrapped", wrapped, WRAPPED_KEY_BYTES)) {
		json_decref(o);
		return latch_error(LATCH_USAGE, "the exported '%s' key is damaged or missing", purpose);
	}
	json_decref(o);
	h.kdf_opslimit = (uint64_t)ops;
	h.kdf_memlimit = (uint64_t)mem;
	header_checksum(&h, check);
	if (sodium_memcmp(check, h.check, HEADER_CHECK_BYTES) != 0)
		return latch_error(LATCH_OPERR, "the exported vault header is corrupt (checksum mismatch)");
	struct secbuf *kek = NULL, *dk = NULL, *vk = NULL;
	int rc = -1;
	if (derive_kek(passphrase, &h, &kek) == 0 && unwrap_data_key(&h, kek, &dk) == 0 &&
	    derive_value_key(dk, &vk) == 0) {
		struct value_binding b = {h.vault_id, 0, 0, purpose, true};
		rc = value_open(vk, &b, nonce, wrapped, WRAPPED_KEY_BYTES, key_out);
		if (rc != 0)
			latch_error(LATCH_OPERR, "the exported '%s' key was altered", purpose);
	}
	secbuf_free(kek);
	secbuf_free(dk);
	secbuf_free(vk);
	return rc;
}
