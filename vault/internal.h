/* vault/ private: the open vault, its header layout, and what the files
 * share: the database and its transactions (db.c), the header (header.c),
 * the secrets (secrets.c), named keys (keys.c) and the cryptography
 * (seal.c). Not a public header; nothing outside vault/ includes it. */
#ifndef LATCH_VAULT_INTERNAL_H
#define LATCH_VAULT_INTERNAL_H

#include "vault.h"

#include <sodium.h>

#define VAULT_ID_BYTES 16
#define DATA_KEY_BYTES 32
#define KEY_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AEAD_TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define WRAPPED_KEY_BYTES (DATA_KEY_BYTES + AEAD_TAG_BYTES)
#define SALT_BYTES crypto_pwhash_argon2id_SALTBYTES
#define HEADER_CHECK_BYTES 16

/* The single row of the `vault` table. */
struct vault_header {
	unsigned char vault_id[VAULT_ID_BYTES];
	int64_t created;
	int64_t kdf_alg;
	uint64_t kdf_opslimit;
	uint64_t kdf_memlimit;
	unsigned char kdf_salt[SALT_BYTES];
	int64_t key_generation;
	unsigned char key_nonce[KEY_NONCE_BYTES];
	unsigned char wrapped_key[WRAPPED_KEY_BYTES];
	unsigned char check[HEADER_CHECK_BYTES];
};

/* An open vault. */
struct vault {
	sqlite3 *db;
	char path[PATH_MAX];
	struct vault_header h;
	struct secbuf *kek;       /* set by vault_unlock */
	struct secbuf *data_key;  /* set by vault_unlock */
	struct secbuf *value_key; /* set by vault_unlock */
	vault_hook hook;          /* records each change inside its transaction */
	void *hook_ctx;
	vault_value_hook value_hook; /* the scan index */
	void *value_hook_ctx;
};

/* db.c: sqlite errors reported with the vault's path (busy, damaged or
 * else), returning -1; one statement or script; write transactions
 * (BEGIN IMMEDIATE). tx_abort rolls back if a transaction is open and
 * returns -1, so failure paths can `return tx_abort(v);`. */
int db_fail(struct vault *v, const char *what);
int db_exec(struct vault *v, const char *sql, const char *what);
int db_prepare(struct vault *v, const char *sql, sqlite3_stmt **st);
int tx_begin(struct vault *v);
int tx_commit(struct vault *v);
int tx_abort(struct vault *v);
/* Tells the hook (the audit log) about a change, inside the transaction
 * that makes it: if the hook fails, the change is rolled back. */
/* The value hook, if one is set (vault_on_value); 0 otherwise. */
int run_value_hook(struct vault *v, const char *event, int64_t id, const struct secbuf *value);
int run_hook(struct vault *v, const char *event, const char *const *names, const int64_t *ids, const int64_t *versions,
	     size_t n, int64_t version);

/* header.c: the header row, read with its checksum and KDF checked;
 * written (inserted for a new vault) with a new checksum; and, inside a
 * write transaction, still the one this process unlocked. */
int header_read(struct vault *v, struct vault_header *h);
int header_write(struct vault *v, struct vault_header *h, bool insert);
int header_unchanged(struct vault *v);
/* LATCH_DENIED unless vault_unlock succeeded. */
int require_unlocked(const struct vault *v);

/* secrets.c: 0 for a valid secret name, else -1 reported (without
 * echoing the name). */
int check_name(const char *name);

/* keys.c: a rekey's named keys, sealed again under the new value key
 * inside its transaction. */
int rewrap_named_keys(struct vault *v, const struct secbuf *new_value_key);

/* KDF parameters of a named level, and whether stored ones are acceptable
 * (Argon2id only, at or above the INTERACTIVE floor, below a ceiling that
 * keeps a tampered header from costing hours or all memory). */
void kdf_params_of(enum vault_kdf kdf, uint64_t *ops, uint64_t *mem);
int kdf_params_check(const struct vault_header *h);
const char *kdf_name_of(uint64_t ops, uint64_t mem);

/* Unkeyed checksum of every header field: tells accidental damage
 * ("corrupt") from a wrong passphrase. A deliberate edit that also fixes the
 * checksum still fails closed, at unwrap, as a wrong passphrase would. */
void header_checksum(const struct vault_header *h, unsigned char out[HEADER_CHECK_BYTES]);

/* Argon2id(passphrase, salt, ops, mem) into a new secbuf of 32 bytes. */
int derive_kek(const struct secbuf *passphrase, const struct vault_header *h, struct secbuf **kek_out);
/* Seal `data_key` under `kek` into h->key_nonce/h->wrapped_key; the
 * associated data binds the vault id, KDF parameters, salt and key
 * generation, so none of them can be swapped. */
void wrap_data_key(struct vault_header *h, const struct secbuf *kek, const struct secbuf *data_key);
int unwrap_data_key(const struct vault_header *h, const struct secbuf *kek, struct secbuf **data_key_out);
/* The value-sealing subkey of a data key (crypto_kdf, id 1, "latchval"). */
int derive_value_key(const struct secbuf *data_key, struct secbuf **value_key_out);

/* Value sealing; the associated data binds vault id, secret id, version
 * and name (length-prefixed), so a row's ciphertext fails anywhere else. */
struct value_binding {
	const unsigned char *vault_id;
	int64_t secret_id;
	int64_t version;
	const char *name;
	bool named_key; /* a row of the keys table, not a secret */
};
/* ct must hold len + AEAD_TAG_BYTES. */
void value_seal(const struct secbuf *value_key, const struct value_binding *b, const unsigned char *value, size_t len,
		unsigned char nonce[KEY_NONCE_BYTES], unsigned char *ct);
/* Returns -1 without reporting when authentication fails: the caller
 * names the secret. */
int value_open(const struct secbuf *value_key, const struct value_binding *b,
	       const unsigned char nonce[KEY_NONCE_BYTES], const unsigned char *ct, size_t ct_len,
	       struct secbuf **value_out);

#endif
