/* The vault file: one sqlite database, rollback journal,
 * synchronous=FULL, secure_delete, every write under BEGIN IMMEDIATE; its
 * schema versions in user_version, migrations applied in one transaction,
 * and a file whose schema is not exactly latch's refused. Creating and
 * opening a vault. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The vault's own tables. Entry i moves the schema from version i to
 * i+1; a module that keeps tables in the file (vault_add_tables: the
 * audit log) runs its own step i after it, in the same transaction. The
 * version is the file's, shared: a module's new step comes with a new
 * entry here, empty if the vault itself has nothing to change. Append
 * only: a released migration is never edited. */
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
	 * audit writer and verifier keys); the audit log's tables came with
	 * this version (audit/schema.c). */
	"CREATE TABLE keys ("
	" purpose TEXT PRIMARY KEY,"
	" nonce BLOB NOT NULL,"
	" wrapped BLOB NOT NULL);",
	/* 3, 4: the audit log's only; 5: the scan index's (hooks/index.c);
	 * 6: the audit log's (where broker stream files are folded). */
	"",
	"",
	"",
	"",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* The vault's own entries of sqlite_master once migrated, as schema_exact
 * reads them ("type name tbl_name sql"), sorted by type, then name. */
static const char *const vault_schema[] = {
	"index sqlite_autoindex_keys_1 keys ",
	"index sqlite_autoindex_secrets_1 secrets ",
	"table keys keys CREATE TABLE keys ( purpose TEXT PRIMARY KEY, nonce BLOB NOT NULL, wrapped BLOB NOT NULL)",
	"table secrets secrets CREATE TABLE secrets ( id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, version INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL)",
	"table sqlite_sequence sqlite_sequence CREATE TABLE sqlite_sequence(name,seq)",
	"table vault vault CREATE TABLE vault ( id INTEGER PRIMARY KEY CHECK (id = 1), vault_id BLOB NOT NULL, created INTEGER NOT NULL, kdf_alg INTEGER NOT NULL, kdf_opslimit INTEGER NOT NULL, kdf_memlimit INTEGER NOT NULL, kdf_salt BLOB NOT NULL, key_generation INTEGER NOT NULL, key_nonce BLOB NOT NULL, wrapped_key BLOB NOT NULL, header_check BLOB NOT NULL)",
};

/* Other modules' tables in the file (vault_add_tables), for the process. */
#define MAX_TABLE_SETS 4
static const struct vault_tables *table_sets[MAX_TABLE_SETS];
static size_t n_table_sets;

int vault_add_tables(const struct vault_tables *t)
{
	for (size_t i = 0; i < n_table_sets; i++)
		if (table_sets[i] == t)
			return 0;
	if (n_table_sets == MAX_TABLE_SETS || t->n_steps > (size_t)SCHEMA_VERSION)
		return latch_error(LATCH_OPERR, "cannot add tables to the vault schema");
	table_sets[n_table_sets++] = t;
	return 0;
}

int db_fail(struct vault *v, const char *what)
{
	int code = sqlite3_errcode(v->db);
	if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
		return latch_error(LATCH_OPERR, "cannot %s: vault '%s' is locked by another process", what, v->path);
	if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
		return latch_error(LATCH_OPERR, "cannot %s: '%s' is damaged or not a latch vault", what, v->path);
	return latch_error(LATCH_OPERR, "cannot %s in '%s': %s", what, v->path, sqlite3_errmsg(v->db));
}

int db_exec(struct vault *v, const char *sql, const char *what)
{
	if (sqlite3_exec(v->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(v, what);
	return 0;
}

int db_prepare(struct vault *v, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(v->db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(v, "read the vault");
	return 0;
}

int tx_begin(struct vault *v)
{
	return db_exec(v, "BEGIN IMMEDIATE", "lock the vault for writing");
}

int tx_commit(struct vault *v)
{
	if (sqlite3_exec(v->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_fail(v, "commit to the vault");
		sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* Returns -1 so failure paths can `return tx_abort(v);`. */
int tx_abort(struct vault *v)
{
	if (!sqlite3_get_autocommit(v->db))
		sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int vault_dir(char *buf, size_t n)
{
	return latch_data_dir(buf, n);
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
 * transaction: each version's SQL, the vault's and then each module's. */
static int migrate(struct vault *v, int from)
{
	for (int i = from; i < SCHEMA_VERSION; i++) {
		if (db_exec(v, migrations[i], "upgrade the vault schema") != 0)
			return -1;
		for (size_t t = 0; t < n_table_sets; t++) {
			const struct vault_tables *ts = table_sets[t];
			if ((size_t)i < ts->n_steps && ts->steps[i] &&
			    db_exec(v, ts->steps[i], "upgrade the vault schema") != 0)
				return -1;
		}
	}
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA user_version=%d", SCHEMA_VERSION);
	return db_exec(v, sql, "upgrade the vault schema");
}

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

/* The next entry schema_exact expects: the least, in sorted order, of
 * the vault's next and each module's next. NULL when none is left. */
static const char *schema_next(size_t pos[], const char **list_at[], const size_t n_list[], size_t lists, size_t *which)
{
	const char *best = NULL;
	for (size_t l = 0; l < lists; l++)
		if (pos[l] < n_list[l] && (!best || strcmp(list_at[l][pos[l]], best) < 0)) {
			best = list_at[l][pos[l]];
			*which = l;
		}
	return best;
}

/* After any migration: the schema is exactly latch's, the vault's
 * entries and the modules' (vault_add_tables), nothing more or less: a
 * vault migrated from any version ends with the same text as a new one.
 * Constants, not the migrations run on an empty database in memory at
 * each open: that tripled what `latch ls` costs (1.4 -> 2.7 ms). A
 * migration added without its entries changed fails every test that
 * opens a vault. */
static int schema_exact(struct vault *v)
{
	const char **list_at[1 + MAX_TABLE_SETS] = {(const char **)vault_schema};
	size_t n_list[1 + MAX_TABLE_SETS] = {sizeof vault_schema / sizeof vault_schema[0]};
	size_t pos[1 + MAX_TABLE_SETS] = {0}, lists = 1 + n_table_sets, which = 0;
	for (size_t t = 0; t < n_table_sets; t++) {
		list_at[1 + t] = (const char **)table_sets[t]->schema;
		n_list[1 + t] = table_sets[t]->n_schema;
	}
	sqlite3_stmt *st;
	if (db_prepare(v,
		       "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || ifnull(sql, '')"
		       " FROM sqlite_master ORDER BY type, name",
		       &st) != 0)
		return -1;
	int rc = SQLITE_DONE;
	bool same = true;
	while (same && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *got = (const char *)sqlite3_column_text(st, 0);
		const char *want = schema_next(pos, list_at, n_list, lists, &which);
		same = got && want && !strcmp(got, want);
		pos[which]++;
	}
	if (same && rc == SQLITE_DONE)
		same = !schema_next(pos, list_at, n_list, lists, &which);
	sqlite3_finalize(st);
	if (same ? rc != SQLITE_DONE : rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(v, "read the vault schema");
	if (!same)
		return latch_error(
			LATCH_OPERR,
			"vault '%s' has tables or indexes that are not latch's (edited schema): refusing it; run 'latch audit verify'",
			v->path);
	return 0;
}

/* Tells the hook (the audit log) about a change, inside the transaction
 * that makes it: if the hook fails, the change is rolled back. */
int run_hook(struct vault *v, const char *event, const char *const *names, const int64_t *ids, const int64_t *versions,
	     size_t n, int64_t version)
{
	if (!v->hook)
		return 0;
	struct vault_change c = {event, names, ids, versions, n, version};
	return v->hook(v, &c, v->hook_ctx);
}

int run_value_hook(struct vault *v, const char *event, int64_t id, const struct secbuf *value)
{
	return v->value_hook ? v->value_hook(v, event, id, value, v->value_hook_ctx) : 0;
}

void vault_on_value(struct vault *v, vault_value_hook fn, void *ctx)
{
	v->value_hook = fn;
	v->value_hook_ctx = ctx;
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

int vault_create(const char *dir, const struct secbuf *passphrase, enum vault_kdf kdf)
{
	return vault_create_recorded(dir, passphrase, kdf, NULL, NULL);
}

int vault_create_recorded(const char *dir, const struct secbuf *passphrase, enum vault_kdf kdf, vault_hook hook,
			  void *hook_ctx)
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
	if (migrate(v, 0) != 0 || header_write(v, h, true) != 0 || run_hook(v, "init", NULL, NULL, NULL, 0, 0) != 0) {
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
			    "vault '%s' has schema version %d, newer than this latch knows (%d): upgrade latch", path,
			    version, SCHEMA_VERSION);
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
