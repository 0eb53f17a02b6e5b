/* vault: the encrypted store of secrets (docs/design.md).
 *
 * One sqlite file, vault.db, in a private directory. A passphrase is
 * stretched with Argon2id into a key-encryption key that wraps a random
 * data key; values are sealed with XChaCha20-Poly1305 under a subkey of the
 * data key, each bound to its row by associated data. Only this module
 * touches the vault's tables and keys. */
#ifndef LATCH_VAULT_H
#define LATCH_VAULT_H

#include "../common/common.h"

#include <limits.h>
#include <sqlite3.h>

#define VAULT_VALUE_MAX (1024 * 1024)
#define VAULT_PASSPHRASE_MIN 8
#define VAULT_PASSPHRASE_MAX 1024
#define VAULT_FILE_NAME "vault.db"

enum vault_kdf {
	VAULT_KDF_INTERACTIVE, /* the floor: 2 passes, 64 MiB */
	VAULT_KDF_MODERATE,    /* the default: 3 passes, 256 MiB */
	VAULT_KDF_SENSITIVE,   /* 4 passes, 1 GiB */
};
/* A level by its name ("interactive", "moderate", "sensitive"); anything
 * else is a usage error, reported. */
int vault_kdf_parse(const char *s, enum vault_kdf *out);
/* The name of a level. */
const char *vault_kdf_name(enum vault_kdf kdf);

struct vault;

/* The vault directory: $LATCH_HOME, else $XDG_DATA_HOME/latch, else
 * ~/.local/share/latch. */
int vault_dir(char *buf, size_t n);
/* `dir`/vault.db */
int vault_path(const char *dir, char *buf, size_t n);

/* How long a write waits for another process's lock before it fails:
 * LATCH_LOCK_TIMEOUT_MS (0 to 600000), default 5000. */
int vault_lock_timeout_ms(void);
/* A change about to be committed: the hook (the audit log) runs inside
 * the change's transaction; if it fails, the change is rolled back. */
struct vault_change {
	const char *event;        /* "init", "set", "rm", "passwd", "rekey", or vault_read's */
	const char *const *names; /* the secrets concerned */
	const int64_t *ids;       /* their ids */
	const int64_t *versions;  /* their versions (after a set: the new one) */
	size_t n;
	int64_t version; /* set: the new version; otherwise 0 */
};
typedef int (*vault_hook)(struct vault *v, const struct vault_change *c, void *ctx);
void vault_on_change(struct vault *v, vault_hook fn, void *ctx);
/* A second hook, for what must see values as they are stored: the scan
 * index (hooks/), which keeps fingerprints of every value. Called inside
 * the change's transaction (a failure rolls it back) with:
 *   "set"   id, the new value;
 *   "rm"    id, value NULL;
 *   "rekey" id 0 and value NULL first (start again: new keys), then id and
 *           value for every secret, under the new data key's transaction.
 * The value is the vault's own buffer: read it, never keep it. */
typedef int (*vault_value_hook)(struct vault *v, const char *event, int64_t id, const struct secbuf *value, void *ctx);
void vault_on_value(struct vault *v, vault_value_hook fn, void *ctx);

/* The sqlite handle, for modules that keep tables in the vault file (the
 * audit log); valid until vault_close. */
sqlite3 *vault_db(struct vault *v);

/* Tables another module keeps in the vault file (the audit log's). The
 * file has one schema version: moving it to version i+1 runs the vault's
 * own SQL, then each module's steps[i] (NULL: nothing), in the one
 * transaction of the migration. `schema` is what the module's tables and
 * indexes look like in sqlite_master once migrated, one entry per line as
 * "type name tbl_name sql", sorted: a vault file must hold exactly the
 * vault's and the modules' entries, or it is refused. */
struct vault_tables {
	const char *const *steps;
	size_t n_steps;
	const char *const *schema;
	size_t n_schema;
};
/* Add a module's tables to every vault this process creates or opens;
 * called before the first (the same `t` again is a no-op). A vault opened
 * without them is refused: its schema is not this one. 0, or -1. */
int vault_add_tables(const struct vault_tables *t);

/* Create a new vault in `dir` (created 0700 if missing). Atomic: the file
 * appears complete or not at all. Fails if a vault is already there.
 * The _recorded form runs `hook` to record the creation in the same commit
 * (and so starts the audit log). */
int vault_create(const char *dir, const struct secbuf *passphrase, enum vault_kdf kdf);
int vault_create_recorded(const char *dir, const struct secbuf *passphrase, enum vault_kdf kdf, vault_hook hook,
			  void *hook_ctx);

/* Open an existing vault: permission checks, schema migrations, header
 * checksum. No key is derived; names and metadata are readable. */
int vault_open(const char *dir, struct vault **out);
/* Derive the key-encryption key and unwrap the data key. A wrong
 * passphrase fails with LATCH_DENIED and changes nothing. */
int vault_unlock(struct vault *v, const struct secbuf *passphrase);
/* Close and wipe every key. NULL-safe. */
void vault_close(struct vault *v);

/* Operations below that read or write values need vault_unlock() first. */
int vault_set(struct vault *v, const char *name, const struct secbuf *value, int64_t *version_out);
/* Read one value without recording it: for tests and vault-internal use.
 * Commands release values only through vault_read. */
int vault_get(struct vault *v, const char *name, struct secbuf **value_out);
/* Read `n` values in one write transaction that also runs the hook with
 * `event` (e.g. "reveal"): nothing is returned unless the record commits. */
int vault_read(struct vault *v, const char *const *names, size_t n, const char *event, struct secbuf **values);
/* A random 32-byte key for `purpose` (e.g. "audit-writer"), stored
 * wrapped under the data key (rekey re-wraps it); made on first use when
 * `create`, else a missing key is an error. */
int vault_key(struct vault *v, const char *purpose, bool create, struct secbuf **out);
/* Replace the key `purpose` with `key` (32 bytes), inside the caller's
 * write transaction (a rekey's hook: it is then re-wrapped with the
 * others). */
int vault_key_replace(struct vault *v, const char *purpose, const struct secbuf *key);
int vault_remove(struct vault *v, const char *name);
/* New passphrase (and optionally new KDF cost): re-wraps the data key;
 * no value's ciphertext changes. `kdf` NULL keeps the current cost. */
int vault_passwd(struct vault *v, const struct secbuf *new_passphrase, const enum vault_kdf *kdf);
/* New data key: every value is decrypted and sealed again, in one
 * transaction. `count_out` gets the number of values re-encrypted. */
int vault_rekey(struct vault *v, int64_t *count_out);

/* The wrapped key `purpose` with the header fields that open it, as JSON
 * text (free it with free()): what a passphrase holder needs to recover
 * that one key away from the vault file (e.g. to verify an audit export).
 * It reveals nothing without the passphrase. Needs no unlock. */
int vault_export_key(struct vault *v, const char *purpose, char **json_out);
/* The reverse: recover the key from vault_export_key's JSON with the
 * passphrase. A wrong passphrase fails with LATCH_DENIED. */
int vault_import_key(const char *json, size_t len, const struct secbuf *passphrase, const char *purpose,
		     struct secbuf **key_out);

struct vault_entry {
	const char *name;
	int64_t version;
	int64_t created;
	int64_t updated;
	int64_t id;
};
/* Calls `fn` for every secret in name order; a non-zero return stops the
 * walk and is returned. Needs no unlock. */
int vault_list(struct vault *v, int (*fn)(const struct vault_entry *e, void *ctx), void *ctx);

/* Calls `fn` with every row's id, version and name, read from the table
 * itself (not an index), in no particular order: what release checks
 * compare with the audit log. Needs no unlock. */
int vault_rows(struct vault *v, int (*fn)(int64_t id, int64_t version, const char *name, void *ctx), void *ctx);

/* A 32-byte key derived from the data key for `context` (8 characters)
 * and `salt`: only a passphrase holder can make it, and a rekey changes
 * it (e.g. the key a broker is enrolled with). */
int vault_derive_key(struct vault *v, const char context[8], const unsigned char *salt, size_t n, struct secbuf **out);

struct vault_info {
	char path[PATH_MAX];
	char vault_id[33]; /* hex */
	int schema_version;
	int64_t created;
	int64_t secrets;
	int64_t key_generation;
	const char *kdf_name; /* "interactive", "moderate", "sensitive" or "custom" */
	uint64_t kdf_opslimit;
	uint64_t kdf_memlimit;
};
int vault_info(struct vault *v, struct vault_info *out);

/* Passphrases: from one line of `fd` when fd >= 0, else a no-echo prompt on
 * /dev/tty (asked twice when `is_new`). New passphrases must be at least
 * VAULT_PASSPHRASE_MIN bytes. No terminal and no fd: LATCH_DENIED. */
int vault_read_passphrase(int fd, const char *prompt, bool is_new, struct secbuf **out);

#endif
