/* The vault's sqlite store: one file, rollback journal, synchronous=FULL,
 * secure_delete, every write under BEGIN IMMEDIATE, schema versions in
 * user_version with migrations applied in one transaction. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each entry moves the schema from version i to i+1. Append only: a
 * released migration is never edited. (The scanner's keyed fingerprints
 * will be the next one.) */
static const char *const migrations[] = {
	/* 1: the header row and the secrets */
	"CREATE TABLE vault ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" vault_id BLOB NOT NULL,"
	" created INTEGER NOT NULL,"
	" kdf_alg INTEGER NOT NULL,"
	" kdf_opslimit INTEGER NOT NULL,"
	" kdf_memlimit INTEGER NOT NULL,"
	" kdf_salt BLOB NOT NULL,"
	" key_generation INTEGER NOT NULL,"
	" key_nonce BLOB NOT NULL,"
	" wrapped_key BLOB NOT NULL,"
	" header_check BLOB NOT NULL);"
	/* AUTOINCREMENT: a secret id is never reused, so the ciphertext of a
	 * removed secret can never authenticate as a new one. */
	"CREATE TABLE secrets ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE,"
	" version INTEGER NOT NULL,"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" nonce BLOB NOT NULL,"
	" ciphertext BLOB NOT NULL);",
	/* 2: named keys (random keys wrapped under the data key, e.g. the
	 * audit writer and verifier keys) and the audit log, whose format
	 * and rules live in audit/log.c. */
	"CREATE TABLE keys ("
	" purpose TEXT PRIMARY KEY,"
	" nonce BLOB NOT NULL,"
	" wrapped BLOB NOT NULL);"
	"CREATE TABLE audit_log ("
	" seq INTEGER PRIMARY KEY,"
	" time INTEGER NOT NULL,"
	" event TEXT NOT NULL,"
	" grant_id TEXT,"
	" record BLOB NOT NULL,"
	" mac BLOB NOT NULL);"
	"CREATE INDEX audit_log_time ON audit_log (time);"
	"CREATE INDEX audit_log_grant ON audit_log (grant_id, time) WHERE grant_id IS NOT NULL;"
	"CREATE INDEX audit_log_event ON audit_log (event, time);"
	"CREATE TABLE audit_secret ("
	" seq INTEGER NOT NULL,"
	" pos INTEGER NOT NULL,"
	" secret TEXT NOT NULL,"
	" time INTEGER NOT NULL,"
	" event TEXT NOT NULL,"
	" PRIMARY KEY (seq, pos)) WITHOUT ROWID;"
	"CREATE INDEX audit_secret_name ON audit_secret (secret, time);"
	"CREATE INDEX audit_secret_change ON audit_secret (secret, event, seq);"
	"CREATE TABLE audit_state ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" log_id BLOB NOT NULL,"
	" origin BLOB NOT NULL,"
	" state BLOB NOT NULL);",
	/* 3: the index that finds a secret's newest set or rm holds only
	 * those: every release added a row for each of its secrets there,
	 * a scattered page per secret in each commit the broker makes
	 * before a child may start. */
	("DROP INDEX audit_secret_change;"
	 "CREATE INDEX audit_secret_change ON audit_secret (secret, event, seq) WHERE event IN ('set', 'rm');"),
	/* 4: broker streams: which chain a record belongs to (0, the main
	 * chain, for every record before). Release checks no longer read a
	 * secondary index (an agent can rebuild one to say anything): the
	 * index of set/rm records goes. */
	("ALTER TABLE audit_log ADD COLUMN stream INTEGER NOT NULL DEFAULT 0;"
	 "DROP INDEX audit_secret_change;"),
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

struct vault {
	sqlite3 *db;
	char path[PATH_MAX];
	struct vault_header h;
	struct secbuf *kek;       /* set by vault_unlock */
	struct secbuf *data_key;  /* set by vault_unlock */
	struct secbuf *value_key; /* set by vault_unlock */
	vault_hook hook;          /* records each change inside its transaction */
	void *hook_ctx;
};

static int db_fail(struct vault *v, const char *what)
{
	int code = sqlite3_errcode(v->db);
	if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
		return latch_error(LATCH_OPERR, "cannot %s: vault '%s' is locked by another process",
				   what, v->path);
	if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
		return latch_error(LATCH_OPERR, "cannot %s: '%s' is damaged or not a latch vault", what,
				   v->path);
	return latch_error(LATCH_OPERR, "cannot %s in '%s': %s", what, v->path,
			   sqlite3_errmsg(v->db));
}

static int db_exec(struct vault *v, const char *sql, const char *what)
{
	if (sqlite3_exec(v->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(v, what);
	return 0;
}

static int db_prepare(struct vault *v, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(v->db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(v, "read the vault");
	return 0;
}

static int tx_begin(struct vault *v)
{
	return db_exec(v, "BEGIN IMMEDIATE", "lock the vault for writing");
}

static int tx_commit(struct vault *v)
{
	if (sqlite3_exec(v->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_fail(v, "commit to the vault");
		sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* Returns -1 so failure paths can `return tx_abort(v);`. */
static int tx_abort(struct vault *v)
{
	if (!sqlite3_get_autocommit(v->db))
		sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

bool vault_name_valid(const char *name)
{
	return latch_name_valid(name);
}

static int check_name(const char *name)
{
	if (vault_name_valid(name))
		return 0;
	/* The name is not echoed: it may hold terminal control bytes. */
	return latch_error(LATCH_USAGE,
			   "invalid secret name: use 1-%d of [A-Za-z0-9_./-], starting with a letter or digit",
			   VAULT_NAME_MAX);
}

int vault_kdf_parse(const char *s, enum vault_kdf *out)
{
	if (!strcmp(s, "interactive"))
		*out = VAULT_KDF_INTERACTIVE;
	else if (!strcmp(s, "moderate"))
		*out = VAULT_KDF_MODERATE;
	else if (!strcmp(s, "sensitive"))
		*out = VAULT_KDF_SENSITIVE;
	else
		return latch_error(LATCH_USAGE, "unknown KDF level '%s' (interactive, moderate, sensitive)", s);
	return 0;
}

int vault_dir(char *buf, size_t n)
{
	const char *home = getenv("LATCH_HOME");
	int len;
	if (home && *home) {
		len = snprintf(buf, n, "%s", home);
	} else {
		const char *xdg = getenv("XDG_DATA_HOME");
		if (xdg && xdg[0] == '/') {
			len = snprintf(buf, n, "%s/latch", xdg);
		} else {
			const char *h = getenv("HOME");
			if (!h || h[0] != '/') {
				struct passwd *pw = getpwuid(geteuid());
				h = pw ? pw->pw_dir : NULL;
			}
			if (!h || h[0] != '/')
				return latch_error(LATCH_OPERR, "cannot find the home directory: set LATCH_HOME");
			len = snprintf(buf, n, "%s/.local/share/latch", h);
		}
	}
	if (len < 0 || (size_t)len >= n)
		return latch_error(LATCH_USAGE, "vault directory path is too long");
	/* "dir/" and "dir" are the same vault; keep messages tidy. */
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	return 0;
}

int vault_path(const char *dir, char *buf, size_t n)
{
	int len = snprintf(buf, n, "%s/%s", dir, VAULT_FILE_NAME);
	if (len < 0 || (size_t)len >= n)
		return latch_error(LATCH_USAGE, "vault path is too long");
	return 0;
}

/* How long a command waits for another one's write lock before it gives
 * up: LATCH_LOCK_TIMEOUT_MS (0 to 600000), default 5 s. */
int vault_lock_timeout_ms(void)
{
	const char *s = getenv("LATCH_LOCK_TIMEOUT_MS");
	char *end;
	long ms = s && *s ? strtol(s, &end, 10) : 5000;
	if (!s || !*s || *end || ms < 0 || ms > 600000)
		ms = 5000;
	return (int)ms;
}

static int db_configure(struct vault *v)
{
	sqlite3_busy_timeout(v->db, vault_lock_timeout_ms());
	sqlite3_db_config(v->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(v->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	/* Rollback journal, not WAL: deleted bytes would linger in -wal.
	 * secure_delete overwrites freed pages; temp data stays in memory. */
	return db_exec(v,
		       "PRAGMA journal_mode=DELETE;"
		       "PRAGMA synchronous=FULL;"
		       "PRAGMA secure_delete=ON;"
		       "PRAGMA temp_store=MEMORY;"
		       "PRAGMA cell_size_check=ON;",
		       "configure the vault");
}

static int db_open(struct vault *v, const char *path, int flags)
{
	if (snprintf(v->path, sizeof v->path, "%s", path) >= (int)sizeof v->path)
		return latch_error(LATCH_USAGE, "vault path is too long");
	/* NOMUTEX: one thread per connection, so no lock per call. */
	if (sqlite3_open_v2(path, &v->db, flags | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		int rc = latch_error(LATCH_OPERR, "cannot open vault '%s': %s", path,
				     v->db ? sqlite3_errmsg(v->db) : "out of memory");
		sqlite3_close(v->db);
		v->db = NULL;
		return rc;
	}
	return 0;
}

static int schema_version(struct vault *v, int *out)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(v->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return db_fail(v, "read the vault");
	int rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_fail(v, "read the vault");
	return 0;
}

/* Bring the schema from `from` to SCHEMA_VERSION inside the caller's
 * transaction. */
static int migrate(struct vault *v, int from)
{
	for (int i = from; i < SCHEMA_VERSION; i++)
		if (db_exec(v, migrations[i], "upgrade the vault schema") != 0)
			return -1;
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA user_version=%d", SCHEMA_VERSION);
	return db_exec(v, sql, "upgrade the vault schema");
}

/* The schema the migrations make, as the query below prints
 * sqlite_master: a vault migrated from any version ends with the same
 * text as a new one. A constant, not the migrations run on an empty
 * database in memory at each open: that tripled what `latch ls` costs
 * (1.4 -> 2.7 ms). A migration added without this text changed fails
 * every test that opens a vault. */
#define SCHEMA_QUERY                                                                                                 \
	"SELECT group_concat(type || ' ' || name || ' ' || tbl_name || ' ' || ifnull(sql, ''), char(10))"           \
	" FROM (SELECT * FROM sqlite_master ORDER BY type, name)"
static const char EXPECTED_SCHEMA[] =
	"index audit_log_event audit_log CREATE INDEX audit_log_event ON audit_log (event, time)\n"
	"index audit_log_grant audit_log CREATE INDEX audit_log_grant ON audit_log (grant_id, time) WHERE grant_id IS NOT NULL\n"
	"index audit_log_time audit_log CREATE INDEX audit_log_time ON audit_log (time)\n"
	"index audit_secret_name audit_secret CREATE INDEX audit_secret_name ON audit_secret (secret, time)\n"
	"index sqlite_autoindex_keys_1 keys \n"
	"index sqlite_autoindex_secrets_1 secrets \n"
	"table audit_log audit_log CREATE TABLE audit_log ( seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, event TEXT NOT NULL, grant_id TEXT, record BLOB NOT NULL, mac BLOB NOT NULL, stream INTEGER NOT NULL DEFAULT 0)\n"
	"table audit_secret audit_secret CREATE TABLE audit_secret ( seq INTEGER NOT NULL, pos INTEGER NOT NULL, secret TEXT NOT NULL, time INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (seq, pos)) WITHOUT ROWID\n"
	"table audit_state audit_state CREATE TABLE audit_state ( id INTEGER PRIMARY KEY CHECK (id = 1), log_id BLOB NOT NULL, origin BLOB NOT NULL, state BLOB NOT NULL)\n"
	"table keys keys CREATE TABLE keys ( purpose TEXT PRIMARY KEY, nonce BLOB NOT NULL, wrapped BLOB NOT NULL)\n"
	"table secrets secrets CREATE TABLE secrets ( id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, version INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL)\n"
	"table sqlite_sequence sqlite_sequence CREATE TABLE sqlite_sequence(name,seq)\n"
	"table vault vault CREATE TABLE vault ( id INTEGER PRIMARY KEY CHECK (id = 1), vault_id BLOB NOT NULL, created INTEGER NOT NULL, kdf_alg INTEGER NOT NULL, kdf_opslimit INTEGER NOT NULL, kdf_memlimit INTEGER NOT NULL, kdf_salt BLOB NOT NULL, key_generation INTEGER NOT NULL, key_nonce BLOB NOT NULL, wrapped_key BLOB NOT NULL, header_check BLOB NOT NULL)";

/* latch creates its own tables and indexes only, exactly as the
 * migrations write them. A view or trigger in the file was put there by
 * someone else, and could make a query never end (a recursive view) or
 * act on a write; an index redefined (a partial index made to miss rows,
 * its text restored with writable_schema) would make queries lie: refuse
 * the file. That an index's contents match its table is sqlite's
 * integrity_check, which `latch audit verify` runs. */
static int schema_check(struct vault *v)
{
	sqlite3_stmt *st;
	if (db_prepare(v, "SELECT count(*) FROM sqlite_master WHERE type NOT IN ('table', 'index')", &st) != 0)
		return -1;
	int rc = sqlite3_step(st);
	int64_t odd = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (odd != 0)
		return odd < 0 ? db_fail(v, "read the vault schema")
			       : latch_error(LATCH_OPERR,
					     "vault '%s' contains views or triggers latch never creates: refusing it",
					     v->path);
	return 0;
}

/* After any migration: the schema is exactly latch's. */
static int schema_exact(struct vault *v)
{
	sqlite3_stmt *st;
	if (db_prepare(v, SCHEMA_QUERY, &st) != 0)
		return -1;
	int rc = sqlite3_step(st);
	bool same = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
		    !strcmp((const char *)sqlite3_column_text(st, 0), EXPECTED_SCHEMA);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return db_fail(v, "read the vault schema");
	if (!same)
		return latch_error(LATCH_OPERR,
				   "vault '%s' has tables or indexes that are not latch's (edited schema): refusing it; run 'latch audit verify'",
				   v->path);
	return 0;
}

static int blob_into(sqlite3_stmt *st, int col, unsigned char *dst, size_t n)
{
	if (sqlite3_column_type(st, col) != SQLITE_BLOB || (size_t)sqlite3_column_bytes(st, col) != n)
		return -1;
	memcpy(dst, sqlite3_column_blob(st, col), n);
	return 0;
}

static int header_read(struct vault *v, struct vault_header *h)
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
		  blob_into(st, 8, h->wrapped_key, WRAPPED_KEY_BYTES) |
		  blob_into(st, 9, h->check, HEADER_CHECK_BYTES);
	sqlite3_finalize(st);
	unsigned char check[HEADER_CHECK_BYTES];
	header_checksum(h, check);
	if (bad || sodium_memcmp(check, h->check, HEADER_CHECK_BYTES) != 0)
		return latch_error(LATCH_OPERR,
				   "vault header in '%s' is corrupt (checksum mismatch): restore it from a backup",
				   v->path);
	return kdf_params_check(h);
}

static int header_write(struct vault *v, struct vault_header *h, bool insert)
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
static int header_unchanged(struct vault *v)
{
	struct vault_header now;
	if (header_read(v, &now) != 0)
		return -1;
	if (sodium_memcmp(now.check, v->h.check, HEADER_CHECK_BYTES) != 0)
		return latch_error(LATCH_OPERR, "the vault's keys changed while this command ran: run it again");
	return 0;
}

/* Tells the hook (the audit log) about a change, inside the transaction
 * that makes it: if the hook fails, the change is rolled back. */
static int run_hook(struct vault *v, const char *event, const char *const *names, const int64_t *ids,
		    const int64_t *versions, size_t n, int64_t version)
{
	if (!v->hook)
		return 0;
	struct vault_change c = {event, names, ids, versions, n, version};
	return v->hook(v, &c, v->hook_ctx);
}

void vault_on_change(struct vault *v, vault_hook fn, void *ctx)
{
	v->hook = fn;
	v->hook_ctx = ctx;
}

sqlite3 *vault_db(struct vault *v)
{
	return v->db;
}

static void vault_free(struct vault *v)
{
	if (!v)
		return;
	if (v->db)
		sqlite3_close(v->db);
	secbuf_free(v->kek);
	secbuf_free(v->data_key);
	secbuf_free(v->value_key);
	sodium_memzero(&v->h, sizeof v->h);
	free(v);
}

void vault_close(struct vault *v)
{
	vault_free(v);
}

static struct vault *vault_alloc(void)
{
	if (sodium_init() < 0) {
		latch_error(LATCH_OPERR, "cannot initialise libsodium");
		return NULL;
	}
	struct vault *v = calloc(1, sizeof *v);
	if (!v)
		latch_error(LATCH_OPERR, "out of memory");
	return v;
}

static void unlink_db_files(const char *path)
{
	char j[PATH_MAX + 16];
	unlink(path);
	snprintf(j, sizeof j, "%s-journal", path);
	unlink(j);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return latch_error(LATCH_OPERR, "cannot sync directory '%s': %s", dir, strerror(e));
	}
	close(fd);
	return 0;
}

int vault_create(const char *dir, const struct secbuf *passphrase, enum vault_kdf kdf)
{
	return vault_create_recorded(dir, passphrase, kdf, NULL, NULL);
}

int vault_create_recorded(const char *dir, const struct secbuf *passphrase, enum vault_kdf kdf,
			  vault_hook hook, void *hook_ctx)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	if (vault_path(dir, path, sizeof path) != 0 || ensure_private_dir(dir) != 0)
		return -1;
	struct stat st;
	if (lstat(path, &st) == 0)
		return latch_error(LATCH_OPERR, "a vault already exists at '%s'", path);
	struct vault *v = vault_alloc();
	if (!v)
		return -1;
	uint32_t r = randombytes_random();
	if (snprintf(tmp, sizeof tmp, "%s/.%s.new-%ld-%08x", dir, VAULT_FILE_NAME, (long)getpid(), r) >=
	    (int)sizeof tmp) {
		vault_free(v);
		return latch_error(LATCH_USAGE, "vault path is too long");
	}
	/* Build the whole vault under a temporary name, then link it into
	 * place: a crash leaves either no vault or a complete one, and link()
	 * refuses to replace a vault created meanwhile. */
	struct secbuf *kek = NULL, *dk = NULL;
	struct vault_header *h = &v->h;
	randombytes_buf(h->vault_id, VAULT_ID_BYTES);
	randombytes_buf(h->kdf_salt, SALT_BYTES);
	h->created = (int64_t)time(NULL);
	h->kdf_alg = crypto_pwhash_ALG_ARGON2ID13;
	kdf_params_of(kdf, &h->kdf_opslimit, &h->kdf_memlimit);
	h->key_generation = 1;
	int rc = -1;
	if (derive_kek(passphrase, h, &kek) != 0 || !(dk = secbuf_new(DATA_KEY_BYTES)))
		goto out;
	randombytes_buf(dk->data, DATA_KEY_BYTES);
	dk->len = DATA_KEY_BYTES;
	wrap_data_key(h, kek, dk);
	/* The new vault is unlocked while it is built, so the hook can
	 * record its creation (and start the audit log) in the same commit. */
	if (derive_value_key(dk, &v->value_key) != 0)
		goto out;
	v->data_key = dk;
	v->kek = kek;
	dk = kek = NULL;
	vault_on_change(v, hook, hook_ctx);
	/* Create the file 0600 ourselves: sqlite would honour whatever umask
	 * the caller has (its journal copies the file's mode). */
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		latch_error(LATCH_OPERR, "cannot create '%s': %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	if (db_open(v, tmp, SQLITE_OPEN_READWRITE) != 0)
		goto out_unlink;
	if (db_configure(v) != 0 || tx_begin(v) != 0)
		goto out_unlink;
	if (migrate(v, 0) != 0 || header_write(v, h, true) != 0 ||
	    run_hook(v, "init", NULL, NULL, NULL, 0, -1) != 0) {
		tx_abort(v);
		goto out_unlink;
	}
	if (tx_commit(v) != 0)
		goto out_unlink;
	sqlite3_close(v->db);
	v->db = NULL;
	if (link(tmp, path) != 0) {
		int e = errno;
		if (e == EEXIST)
			latch_error(LATCH_OPERR, "a vault already exists at '%s'", path);
		else
			latch_error(LATCH_OPERR, "cannot create vault '%s': %s", path, strerror(e));
		goto out_unlink;
	}
	unlink(tmp);
	rc = fsync_dir(dir);
	goto out;
out_unlink:
	if (v->db) {
		sqlite3_close(v->db);
		v->db = NULL;
	}
	unlink_db_files(tmp);
out:
	secbuf_free(kek);
	secbuf_free(dk);
	vault_free(v);
	return rc;
}

int vault_open(const char *dir, struct vault **out)
{
	char path[PATH_MAX], journal[PATH_MAX + 16];
	struct stat st;
	if (vault_path(dir, path, sizeof path) != 0)
		return -1;
	if (lstat(dir, &st) != 0 && errno == ENOENT)
		return latch_error(LATCH_OPERR, "no vault at '%s': run 'latch init' first", dir);
	if (check_private_dir(dir) != 0)
		return -1;
	int rc = check_private_file(path);
	if (rc == 1)
		return latch_error(LATCH_OPERR, "no vault at '%s': run 'latch init' first", path);
	if (rc != 0)
		return -1;
	snprintf(journal, sizeof journal, "%s-journal", path);
	if (check_private_file(journal) < 0)
		return -1;

	struct vault *v = vault_alloc();
	if (!v)
		return -1;
	int version;
	if (db_open(v, path, SQLITE_OPEN_READWRITE) != 0)
		goto fail;
	sqlite3_busy_timeout(v->db, vault_lock_timeout_ms());
	/* Read the version before touching anything: a newer vault is left
	 * exactly as it is. */
	if (schema_version(v, &version) != 0)
		goto fail;
	if (version > SCHEMA_VERSION) {
		latch_error(LATCH_OPERR,
			    "vault '%s' has schema version %d, newer than this latch knows (%d): upgrade latch",
			    path, version, SCHEMA_VERSION);
		goto fail;
	}
	if (version < 1) {
		latch_error(LATCH_OPERR, "'%s' is not a latch vault", path);
		goto fail;
	}
	if (db_configure(v) != 0)
		goto fail;
	/* The header has the same layout in every schema version: check it
	 * before a migration writes anything, so a damaged old vault is
	 * refused exactly as it is. */
	if (schema_check(v) != 0 || header_read(v, &v->h) != 0)
		goto fail;
	if (version < SCHEMA_VERSION) {
		if (tx_begin(v) != 0)
			goto fail;
		/* Re-read under the lock: another process may have migrated. */
		if (schema_version(v, &version) != 0 || migrate(v, version) != 0 || tx_commit(v) != 0) {
			tx_abort(v);
			goto fail;
		}
	}
	if (schema_exact(v) != 0)
		goto fail;
	*out = v;
	return 0;
fail:
	vault_free(v);
	return -1;
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

static int require_unlocked(const struct vault *v)
{
	if (!v->value_key)
		return latch_error(LATCH_DENIED, "the vault is locked");
	return 0;
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
static int secret_store(struct vault *v, int64_t id, const char *name, int64_t version,
			const unsigned char *value, size_t len, int64_t updated)
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
	    run_hook(v, "set", &name, &id, &version, 1, version) != 0 || tx_commit(v) != 0)
		return tx_abort(v);
	if (version_out)
		*version_out = version;
	return 0;
}

/* Reads and opens the value of the row `id`; errors name the secret. */
static int secret_open_row(struct vault *v, sqlite3_stmt *st, const char *name,
			   struct secbuf **out)
{
	struct value_binding b = {v->h.vault_id, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
				  name, false};
	const void *nonce = sqlite3_column_blob(st, 2);
	int nonce_len = sqlite3_column_bytes(st, 2);
	const void *ct = sqlite3_column_blob(st, 3);
	int ct_len = sqlite3_column_bytes(st, 3);
	if (nonce_len != (int)KEY_NONCE_BYTES || !ct || ct_len <= (int)AEAD_TAG_BYTES ||
	    value_open(v->value_key, &b, nonce, ct, (size_t)ct_len, out) != 0)
		return latch_error(LATCH_OPERR,
				   "cannot decrypt secret '%s': its stored value was altered or damaged", name);
	return 0;
}

/* Reads and opens the secret `name`, with its id and version. */
static int secret_read(struct vault *v, const char *name, int64_t *id, int64_t *version,
		       struct secbuf **value_out)
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
	if (run_hook(v, "rm", &name, &id, &version, 1, -1) != 0)
		return tx_abort(v);
	return tx_commit(v);
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
	    run_hook(v, "passwd", NULL, NULL, NULL, 0, -1) != 0 || tx_commit(v) != 0) {
		secbuf_free(kek);
		return tx_abort(v);
	}
	secbuf_free(v->kek);
	v->kek = kek;
	v->h = h;
	return 0;
}

/* Named keys: random keys for other modules, wrapped under the value key
 * with their purpose as associated data. */
static int named_key_open(struct vault *v, sqlite3_stmt *st, const char *purpose,
			  const struct secbuf *value_key, struct secbuf **out)
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
	if (!vault_name_valid(purpose))
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
	if (!vault_name_valid(purpose) || key->len != DATA_KEY_BYTES)
		return latch_error(LATCH_OPERR, "invalid key to store");
	if (named_key_store(v, purpose, v->value_key, key, false) != 0)
		return -1;
	if (sqlite3_changes(v->db) != 1)
		return latch_error(LATCH_OPERR, "the vault has no '%s' key", purpose);
	return 0;
}

static int rewrap_named_keys(struct vault *v, const struct secbuf *new_value_key)
{
	sqlite3_stmt *st;
	if (db_prepare(v, "SELECT nonce, wrapped, purpose FROM keys WHERE purpose > ?1 ORDER BY purpose LIMIT 1",
		       &st) != 0)
		return -1;
	char last[VAULT_NAME_MAX + 1] = "";
	int rc, ret = 0;
	for (;;) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, last, -1, SQLITE_TRANSIENT);
		if ((rc = sqlite3_step(st)) != SQLITE_ROW)
			break;
		const char *purpose = (const char *)sqlite3_column_text(st, 2);
		struct secbuf *k = NULL;
		if (!purpose || !vault_name_valid(purpose)) {
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
	json_t *o = json_pack("{s:s, s:o, s:I, s:I, s:I, s:I, s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "purpose",
			      purpose, "vault_id", hex_json(h->vault_id, VAULT_ID_BYTES), "created",
			      (json_int_t)h->created, "kdf_alg", (json_int_t)h->kdf_alg, "kdf_opslimit",
			      (json_int_t)h->kdf_opslimit, "kdf_memlimit", (json_int_t)h->kdf_memlimit,
			      "kdf_salt", hex_json(h->kdf_salt, SALT_BYTES), "key_generation",
			      (json_int_t)h->key_generation, "key_nonce", hex_json(h->key_nonce, KEY_NONCE_BYTES),
			      "wrapped_key", hex_json(h->wrapped_key, WRAPPED_KEY_BYTES), "header_check",
			      hex_json(h->check, HEADER_CHECK_BYTES), "nonce",
			      hex_json(sqlite3_column_blob(st, 0), KEY_NONCE_BYTES), "wrapped",
			      hex_json(sqlite3_column_blob(st, 1), WRAPPED_KEY_BYTES));
	sqlite3_finalize(st);
	*json_out = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return *json_out ? 0 : latch_error(LATCH_OPERR, "out of memory");
}

int vault_read(struct vault *v, const char *const *names, size_t n, const char *event,
	       struct secbuf **values)
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
	if (run_hook(v, event, names, ids, versions, n, -1) != 0 || tx_commit(v) != 0)
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
	for (;;) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, last);
		if ((rc = sqlite3_step(st)) != SQLITE_ROW)
			break;
		last = sqlite3_column_int64(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 4);
		if (!name || !vault_name_valid(name)) {
			latch_error(LATCH_OPERR, "secret id %lld has an invalid name: vault damaged",
				    (long long)last);
			goto fail;
		}
		if (secret_open_row(v, st, name, &value) != 0)
			goto fail;
		struct secbuf *old_vk = v->value_key;
		v->value_key = vk;
		int w = secret_store(v, last, name, sqlite3_column_int64(st, 1), value->data, value->len,
				     sqlite3_column_int64(st, 5));
		v->value_key = old_vk;
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
	if (header_write(v, &h, false) != 0 || run_hook(v, "rekey", NULL, NULL, NULL, 0, -1) != 0 ||
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
	if (db_prepare(v, "SELECT name, version, created, updated FROM secrets ORDER BY name", &st) != 0)
		return -1;
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct vault_entry e = {(const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
					sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3)};
		/* A name edited into the file could carry terminal escapes:
		 * refuse the vault rather than print it. */
		if (!e.name || !vault_name_valid(e.name)) {
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
		if (!name || !vault_name_valid(name)) {
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

int vault_derive_key(struct vault *v, const char context[8], const unsigned char *salt, size_t n,
		     struct secbuf **out)
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

int vault_info(struct vault *v, struct vault_info *out)
{
	memset(out, 0, sizeof *out);
	snprintf(out->path, sizeof out->path, "%s", v->path);
	sodium_bin2hex(out->vault_id, sizeof out->vault_id, v->h.vault_id, VAULT_ID_BYTES);
	out->schema_version = SCHEMA_VERSION;
	out->created = v->h.created;
	out->key_generation = v->h.key_generation;
	out->kdf_opslimit = v->h.kdf_opslimit;
	out->kdf_memlimit = v->h.kdf_memlimit;
	out->kdf_name = kdf_name_of(v->h.kdf_opslimit, v->h.kdf_memlimit);
	sqlite3_stmt *st;
	if (db_prepare(v, "SELECT count(*) FROM secrets", &st) != 0)
		return -1;
	int rc = sqlite3_step(st);
	out->secrets = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : db_fail(v, "count the secrets");
}
