/* The secrets table: each value sealed under the value key, bound to its
 * row (vault id, secret id, version, name); reads and writes in write
 * transactions that run the change hook; a rekey seals every value again. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int check_name(const char *name)
{
	if (latch_name_valid(name))
		return 0;
	/* The name is not echoed: it may hold terminal control bytes. */
	return latch_error(LATCH_USAGE, "invalid secret name: use " LATCH_NAME_RULE);
}

/* Looks a secret up by name: 1 found, 0 not found, -1 error. */
static int secret_lookup(struct vault *v, const char *name, int64_t *id, int64_t *version)
{
	sqlite3_stmt *st;
	if (db_prepare(v, "SELECT id, version FROM secrets WHERE name = ?1", &st) != 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		*version = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_fail(v, "read the vault");
}

/* Seals `value` into row `id`, stamping it `updated` (rekey keeps the
 * old time: re-encryption is not a new value). */
static int secret_store(struct vault *v, int64_t id, const char *name, int64_t version, const unsigned char *value,
			size_t len, int64_t updated)
{
	struct value_binding b = {v->h.vault_id, id, version, name, false};
	unsigned char nonce[KEY_NONCE_BYTES];
	unsigned char *ct = malloc(len + AEAD_TAG_BYTES);
	if (!ct)
		return latch_error(LATCH_OPERR, "out of memory");
	value_seal(v->value_key, &b, value, len, nonce, ct);
	sqlite3_stmt *st;
	int rc = -1;
	if (db_prepare(v,
		       "UPDATE secrets SET version = ?1, updated = ?2, nonce = ?3, ciphertext = ?4"
		       " WHERE id = ?5",
		       &st) == 0) {
		sqlite3_bind_int64(st, 1, version);
		sqlite3_bind_int64(st, 2, updated);
		sqlite3_bind_blob(st, 3, nonce, KEY_NONCE_BYTES, SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, ct, (int)(len + AEAD_TAG_BYTES), SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, id);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(v, "write the secret");
		sqlite3_finalize(st);
	}
	free(ct);
	return rc;
}

int vault_set(struct vault *v, const char *name, const struct secbuf *value, int64_t *version_out)
{
	if (check_name(name) != 0)
		return -1;
	if (value->len == 0)
		return latch_error(LATCH_USAGE, "refusing an empty value for '%s'", name);
	if (value->len > VAULT_VALUE_MAX)
		return latch_error(LATCH_USAGE, "value for '%s' is larger than the %d-byte limit", name,
				   VAULT_VALUE_MAX);
	if (require_unlocked(v) != 0 || tx_begin(v) != 0)
		return -1;
	int64_t id = 0, version = 0, now = (int64_t)time(NULL);
	int found = -1;
	if (header_unchanged(v) != 0 || (found = secret_lookup(v, name, &id, &version)) < 0)
		return tx_abort(v);
	if (found) {
		if (version < 1 || version == INT64_MAX) {
			latch_error(LATCH_OPERR, "secret '%s' has an impossible version: the vault is damaged", name);
			return tx_abort(v);
		}
		version++;
	} else {
		/* Insert first: the row id is part of the associated data. */
		sqlite3_stmt *st;
		if (db_prepare(v,
			       "INSERT INTO secrets (name, version, created, updated, nonce, ciphertext)"
			       " VALUES (?1, 1, ?2, ?2, x'', x'')",
			       &st) != 0)
			return tx_abort(v);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			db_fail(v, "add the secret");
			return tx_abort(v);
		}
		id = sqlite3_last_insert_rowid(v->db);
		version = 1;
	}
	if (secret_store(v, id, name, version, value->data, value->len, now) != 0 ||
	    run_value_hook(v, "set", id, value) != 0 || run_hook(v, "set", &name, &id, &version, 1, version) != 0 ||
	    tx_commit(v) != 0)
		return tx_abort(v);
	if (version_out)
		*version_out = version;
	return 0;
}

/* Reads and opens the value of the row `id`; errors name the secret. */
static int secret_open_row(struct vault *v, sqlite3_stmt *st, const char *name, struct secbuf **out)
{
	struct value_binding b = {v->h.vault_id, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), name, false};
	const void *nonce = sqlite3_column_blob(st, 2);
	int nonce_len = sqlite3_column_bytes(st, 2);
	const void *ct = sqlite3_column_blob(st, 3);
	int ct_len = sqlite3_column_bytes(st, 3);
	if (nonce_len != (int)KEY_NONCE_BYTES || !ct || ct_len <= (int)AEAD_TAG_BYTES ||
	    value_open(v->value_key, &b, nonce, ct, (size_t)ct_len, out) != 0)
		return latch_error(LATCH_OPERR, "cannot decrypt secret '%s': its stored value was altered or damaged",
				   name);
	return 0;
}

/* Reads and opens the secret `name`, with its id and version. */
static int secret_read(struct vault *v, const char *name, int64_t *id, int64_t *version, struct secbuf **value_out)
{
	sqlite3_stmt *st;
	if (db_prepare(v, "SELECT id, version, nonce, ciphertext FROM secrets WHERE name = ?1", &st) != 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		*version = sqlite3_column_int64(st, 1);
		rc = secret_open_row(v, st, name, value_out);
	} else if (rc == SQLITE_DONE) {
		rc = latch_error(LATCH_OPERR, "no secret named '%s'", name);
	} else {
		rc = db_fail(v, "read the secret");
	}
	sqlite3_finalize(st);
	return rc;
}

int vault_get(struct vault *v, const char *name, struct secbuf **value_out)
{
	int64_t id, version;
	if (check_name(name) != 0 || require_unlocked(v) != 0)
		return -1;
	return secret_read(v, name, &id, &version, value_out);
}

int vault_remove(struct vault *v, const char *name)
{
	if (check_name(name) != 0 || require_unlocked(v) != 0 || tx_begin(v) != 0)
		return -1;
	int64_t id = 0, version = 0;
	int found = -1;
	if (header_unchanged(v) != 0 || (found = secret_lookup(v, name, &id, &version)) < 0)
		return tx_abort(v);
	if (!found) {
		latch_error(LATCH_OPERR, "no secret named '%s'", name);
		return tx_abort(v);
	}
	sqlite3_stmt *st;
	if (db_prepare(v, "DELETE FROM secrets WHERE id = ?1", &st) != 0)
		return tx_abort(v);
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_fail(v, "remove the secret");
		return tx_abort(v);
	}
	if (run_value_hook(v, "rm", id, NULL) != 0 || run_hook(v, "rm", &name, &id, &version, 1, 0) != 0)
		return tx_abort(v);
	return tx_commit(v);
}

int vault_read(struct vault *v, const char *const *names, size_t n, const char *event, struct secbuf **values)
{
	if (require_unlocked(v) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (check_name(names[i]) != 0)
			return -1;
	int64_t *ids = calloc(n ? 2 * n : 1, sizeof *ids), *versions = ids + n;
	if (!ids)
		return latch_error(LATCH_OPERR, "out of memory");
	for (size_t i = 0; i < n; i++)
		values[i] = NULL;
	/* A write transaction even for a read: the release and its record
	 * commit together, and nothing is returned if recording fails. */
	size_t got = 0;
	if (tx_begin(v) != 0)
		goto fail;
	for (; got < n; got++) {
		if (secret_read(v, names[got], &ids[got], &versions[got], &values[got]) != 0)
			goto fail;
	}
	if (run_hook(v, event, names, ids, versions, n, 0) != 0 || tx_commit(v) != 0)
		goto fail;
	free(ids);
	return 0;
fail:
	for (size_t i = 0; i < n; i++) {
		secbuf_free(values[i]);
		values[i] = NULL;
	}
	free(ids);
	return tx_abort(v);
}

int vault_rekey(struct vault *v, int64_t *count_out)
{
	if (require_unlocked(v) != 0)
		return -1;
	struct secbuf *dk = NULL, *vk = NULL;
	if (!(dk = secbuf_new(DATA_KEY_BYTES)))
		return -1;
	randombytes_buf(dk->data, DATA_KEY_BYTES);
	dk->len = DATA_KEY_BYTES;
	if (derive_value_key(dk, &vk) != 0) {
		secbuf_free(dk);
		return -1;
	}
	struct vault_header h = v->h;
	h.key_generation++;
	wrap_data_key(&h, v->kek, dk);

	int64_t count = 0;
	sqlite3_stmt *st = NULL;
	struct secbuf *value = NULL;
	if (tx_begin(v) != 0)
		goto fail;
	if (header_unchanged(v) != 0 ||
	    db_prepare(v,
		       "SELECT id, version, nonce, ciphertext, name, updated FROM secrets WHERE id > ?1"
		       " ORDER BY id LIMIT 1",
		       &st) != 0)
		goto fail;
	/* One row per query, keyed on the last id, so no cursor is open on
	 * the table while its rows are rewritten. */
	int64_t last = 0;
	int rc;
	if (run_value_hook(v, "rekey", 0, NULL) != 0)
		goto fail;
	for (;;) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, last);
		if ((rc = sqlite3_step(st)) != SQLITE_ROW)
			break;
		last = sqlite3_column_int64(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 4);
		if (!name || !latch_name_valid(name)) {
			latch_error(LATCH_OPERR, "secret id %lld has an invalid name: vault damaged", (long long)last);
			goto fail;
		}
		if (secret_open_row(v, st, name, &value) != 0)
			goto fail;
		struct secbuf *old_vk = v->value_key;
		v->value_key = vk;
		int w = secret_store(v, last, name, sqlite3_column_int64(st, 1), value->data, value->len,
				     sqlite3_column_int64(st, 5));
		v->value_key = old_vk;
		if (w == 0)
			w = run_value_hook(v, "rekey", last, value);
		secbuf_free(value);
		value = NULL;
		if (w != 0)
			goto fail;
		count++;
	}
	if (rc != SQLITE_DONE) {
		db_fail(v, "read the secrets");
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* The hook runs while the old keys still open the named keys; then
	 * those are re-wrapped under the new data key. */
	if (header_write(v, &h, false) != 0 || run_hook(v, "rekey", NULL, NULL, NULL, 0, 0) != 0 ||
	    rewrap_named_keys(v, vk) != 0 || tx_commit(v) != 0)
		goto fail;
	secbuf_free(v->data_key);
	secbuf_free(v->value_key);
	v->data_key = dk;
	v->value_key = vk;
	v->h = h;
	if (count_out)
		*count_out = count;
	return 0;
fail:
	sqlite3_finalize(st);
	secbuf_free(value);
	secbuf_free(dk);
	secbuf_free(vk);
	return tx_abort(v);
}

int vault_list(struct vault *v, int (*fn)(const struct vault_entry *e, void *ctx), void *ctx)
{
	sqlite3_stmt *st;
	if (db_prepare(v, "SELECT name, version, created, updated, id FROM secrets ORDER BY name", &st) != 0)
		return -1;
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct vault_entry e = {(const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
					sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
					sqlite3_column_int64(st, 4)};
		/* A name edited into the file could carry terminal escapes:
		 * refuse the vault rather than print it. */
		if (!e.name || !latch_name_valid(e.name)) {
			ret = latch_error(LATCH_OPERR, "the vault holds an invalid secret name: it is damaged");
			break;
		}
		if ((ret = fn(&e, ctx)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_fail(v, "list the secrets");
	sqlite3_finalize(st);
	return ret;
}

int vault_rows(struct vault *v, int (*fn)(int64_t id, int64_t version, const char *name, void *ctx), void *ctx)
{
	sqlite3_stmt *st;
	/* NOT INDEXED: the table's own rows, whatever an index says. */
	if (db_prepare(v, "SELECT id, version, name FROM secrets NOT INDEXED", &st) != 0)
		return -1;
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 2);
		if (!name || !latch_name_valid(name)) {
			ret = latch_error(LATCH_OPERR, "the vault holds an invalid secret name: it is damaged");
			break;
		}
		if ((ret = fn(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), name, ctx)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_fail(v, "read the secrets");
	sqlite3_finalize(st);
	return ret;
}
