/* Shared fixture for the vault unit tests (test_vault.c, test_tamper.c).
 *
 * Every test gets a fresh private directory under /tmp (removed by the
 * teardown, also after a failed assertion), a real sqlite vault made by
 * vault_create with VAULT_KDF_INTERACTIVE (fx_create copies one made at
 * start-up; fx_create_new makes another), and helpers that tamper with the
 * file through the sqlite3 C API the way an attacker with write access to
 * it would.
 *
 * main() must call sodium_init(), umask(077) (as latch's harden_process
 * does) and fx_template_init() (which also adds the audit log's tables to
 * the schema, as latch's main() does) before running the tests. The
 * helpers are `static inline` so that a test file using only some of them
 * still compiles clean with -Wunused-function. Include this after
 * cmocka.h. */
#ifndef LATCH_TEST_VAULT_FIXTURE_H
#define LATCH_TEST_VAULT_FIXTURE_H

#include "../../audit/audit.h"
#include "../../vault/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PASS "correct horse battery staple"
#define PASS2 "tr0ub4dor&3 is not a passphrase"

struct fx {
	char root[PATH_MAX]; /* mkdtemp'd, 0700 */
	char dir[PATH_MAX];  /* root/vault: the vault directory */
	char path[PATH_MAX]; /* root/vault/vault.db */
};

static inline int fx_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(p);
	return unlink(p);
}

/* out = a/b; paths in these tests are short, but say so if one is not. */
static inline void path_join(char *out, size_t n, const char *a, const char *b)
{
	int r = snprintf(out, n, "%s/%s", a, b);
	assert_true(r > 0 && (size_t)r < n);
}

static inline int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	snprintf(f->root, sizeof f->root, "/tmp/latch-unit-XXXXXX");
	if (!mkdtemp(f->root)) {
		free(f);
		return -1;
	}
	if (snprintf(f->dir, sizeof f->dir, "%s/vault", f->root) >= (int)sizeof f->dir ||
	    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, VAULT_FILE_NAME) >= (int)sizeof f->path) {
		rmdir(f->root);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static inline int fx_teardown(void **state)
{
	struct fx *f = *state;
	if (!f)
		return 0;
	/* Some tests make directories 0755 or hand them to another uid;
	 * nftw runs as root in CI, and as the owner elsewhere. */
	int rc = nftw(f->root, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	*state = NULL;
	latch_error_quiet(false);
	return rc == 0 ? 0 : -1;
}

/* A secbuf holding a copy of `len` bytes. */
static inline struct secbuf *sb_new(const void *data, size_t len)
{
	struct secbuf *b = secbuf_new(len);
	assert_non_null(b);
	if (len)
		memcpy(b->data, data, len);
	b->len = len;
	return b;
}

static inline struct secbuf *sb_str(const char *s)
{
	return sb_new(s, strlen(s));
}

/* Reset the remembered status, so that the status checked after a call
 * was set by that call and not left over from an earlier one. */
static inline void status_reset(void)
{
	latch_error_quiet(true);
	latch_error(LATCH_OK, "reset");
	latch_error_quiet(false);
}

/* Run `call`, which must fail (-1) with `status`; its error message is kept
 * off the output. */
#define EXPECT_FAIL(status, call)                                \
	do {                                                     \
		status_reset();                                  \
		latch_error_quiet(true);                         \
		int rc_ = (call);                                \
		latch_error_quiet(false);                        \
		assert_int_equal(rc_, -1);                       \
		assert_int_equal(latch_last_status(), (status)); \
	} while (0)

/* A new vault made by vault_create (one Argon2id run). */
static inline void fx_create_new(const struct fx *f, const char *pass)
{
	struct secbuf *p = sb_str(pass);
	assert_int_equal(vault_create(f->dir, p, VAULT_KDF_INTERACTIVE), 0);
	secbuf_free(p);
}

/* Most tests start from a copy of one empty vault that vault_create made
 * with PASS when the binary started (fx_template_init), which saves an
 * Argon2id run per test. The copies share a vault id and data key; tests
 * that need two distinct vaults, or test creation, use fx_create_new. */
static unsigned char *fx_template;
static size_t fx_template_len;

static inline int fx_template_init(void)
{
	if (vault_add_tables(&audit_tables) != 0)
		return -1;
	char root[] = "/tmp/latch-unit-XXXXXX", dir[64], path[80];
	if (!mkdtemp(root))
		return -1;
	snprintf(dir, sizeof dir, "%s/vault", root);
	snprintf(path, sizeof path, "%s/%s", dir, VAULT_FILE_NAME);
	struct secbuf *p = secbuf_new(strlen(PASS));
	int rc = -1;
	if (p) {
		memcpy(p->data, PASS, strlen(PASS));
		p->len = strlen(PASS);
		rc = vault_create(dir, p, VAULT_KDF_INTERACTIVE);
		secbuf_free(p);
	}
	FILE *fp = rc == 0 ? fopen(path, "rb") : NULL;
	if (fp) {
		fx_template = malloc(1 << 20);
		fx_template_len = fx_template ? fread(fx_template, 1, 1 << 20, fp) : 0;
		fclose(fp);
	}
	unlink(path);
	rmdir(dir);
	rmdir(root);
	return fx_template_len > 0 && fx_template_len < (1 << 20) ? 0 : -1;
}

static inline void fx_create(const struct fx *f)
{
	assert_non_null(fx_template);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, fx_template, fx_template_len), (ssize_t)fx_template_len);
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

static inline struct vault *fx_open(const struct fx *f)
{
	struct vault *v = NULL;
	assert_int_equal(vault_open(f->dir, &v), 0);
	assert_non_null(v);
	return v;
}

static inline struct vault *fx_unlocked(const struct fx *f, const char *pass)
{
	struct vault *v = fx_open(f);
	struct secbuf *p = sb_str(pass);
	assert_int_equal(vault_unlock(v, p), 0);
	secbuf_free(p);
	return v;
}

static inline int64_t put(struct vault *v, const char *name, const void *data, size_t len)
{
	struct secbuf *b = sb_new(data, len);
	int64_t version = -1;
	assert_int_equal(vault_set(v, name, b, &version), 0);
	secbuf_free(b);
	return version;
}

static inline int64_t put_str(struct vault *v, const char *name, const char *s)
{
	return put(v, name, s, strlen(s));
}

/* vault_get must succeed and return exactly these bytes. */
static inline void expect_bytes(struct vault *v, const char *name, const void *data, size_t len)
{
	struct secbuf *out = NULL;
	assert_int_equal(vault_get(v, name, &out), 0);
	assert_non_null(out);
	assert_int_equal(out->len, len);
	assert_memory_equal(out->data, data, len);
	secbuf_free(out);
}

static inline void expect_str(struct vault *v, const char *name, const char *s)
{
	expect_bytes(v, name, s, strlen(s));
}

/* vault_get must fail with `status` and hand back nothing. */
static inline void expect_get_fails(struct vault *v, const char *name, enum latch_status status)
{
	struct secbuf *out = NULL;
	EXPECT_FAIL(status, vault_get(v, name, &out));
	assert_null(out);
}

/* --- stderr capture, to check what an error message names ------------- */

struct capture {
	int saved;
	FILE *f;
};

static inline void capture_begin(struct capture *c)
{
	fflush(stderr);
	c->f = tmpfile();
	assert_non_null(c->f);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->f), STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written (malloc'd, NUL-terminated). */
static inline char *capture_end(struct capture *c)
{
	fflush(stderr);
	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	long n = ftell(c->f);
	assert_true(n >= 0);
	char *buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	rewind(c->f);
	assert_int_equal(fread(buf, 1, (size_t)n, c->f), (size_t)n);
	fclose(c->f);
	return buf;
}

/* vault_get must fail with LATCH_OPERR, return nothing, and say which
 * secret it could not decrypt. */
static inline void expect_get_fails_naming(struct vault *v, const char *name)
{
	struct capture c;
	struct secbuf *out = NULL;
	status_reset();
	capture_begin(&c);
	int rc = vault_get(v, name, &out);
	char *msg = capture_end(&c);
	assert_int_equal(rc, -1);
	assert_null(out);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	char want[LATCH_NAME_MAX + 16];
	snprintf(want, sizeof want, "secret '%s'", name);
	if (!strstr(msg, want))
		fail_msg("error message does not name %s: %s", want, msg);
	free(msg);
}

/* --- file snapshots ---------------------------------------------------- */

struct snap {
	unsigned char *buf;
	size_t len;
	mode_t mode;
};

static inline struct snap snap_take(const char *path)
{
	struct snap s = {NULL, 0, 0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	s.len = (size_t)st.st_size;
	s.mode = st.st_mode;
	s.buf = malloc(s.len ? s.len : 1);
	assert_non_null(s.buf);
	size_t got = 0;
	while (got < s.len) {
		ssize_t r = read(fd, s.buf + got, s.len - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	close(fd);
	return s;
}

/* Whether the file holds exactly the snapshot's bytes and mode; frees the
 * snapshot first, so a failing assertion on the result leaks nothing. */
static inline bool snap_equal(struct snap *s, const char *path)
{
	struct snap now = snap_take(path);
	bool same = now.len == s->len && now.mode == s->mode && !memcmp(now.buf, s->buf, s->len);
	free(now.buf);
	free(s->buf);
	s->buf = NULL;
	return same;
}

/* The file must hold exactly the snapshot's bytes and mode; frees it. */
static inline void snap_same(struct snap *s, const char *path)
{
	if (!snap_equal(s, path))
		fail_msg("'%s' changed", path);
}

/* The vault directory holds vault.db and nothing else: no journal, no
 * temporary file left behind by a failed or refused operation. */
static inline void dir_only_vault(const struct fx *f)
{
	DIR *d = opendir(f->dir);
	assert_non_null(d);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (strcmp(e->d_name, VAULT_FILE_NAME) != 0)
			fail_msg("unexpected file '%s' in the vault directory", e->d_name);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 1);
}

/* --- direct sqlite access: the attacker's tools -------------------------- */

static inline sqlite3 *db_raw(const char *path)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 2000);
	/* Fast tampering: the attacker does not care about durability (this
	 * connection's journal lives in memory; the file's mode is unchanged). */
	assert_int_equal(sqlite3_exec(db, "PRAGMA synchronous=OFF; PRAGMA journal_mode=MEMORY", NULL, NULL, NULL),
			 SQLITE_OK);
	return db;
}

static inline void db_exec_ok(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("sql '%s': %s", sql, err ? err : "?");
}

static inline void sql_exec(const char *path, const char *sql)
{
	sqlite3 *db = db_raw(path);
	db_exec_ok(db, sql);
	sqlite3_close(db);
}

/* One integer from a query with an optional text parameter. */
static inline int64_t sql_int(const char *path, const char *sql, const char *param)
{
	sqlite3 *db = db_raw(path);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (param)
		sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t r = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return r;
}

/* A blob column of the secret `name`: `col` is nonce or ciphertext. */
static inline unsigned char *row_blob(sqlite3 *db, const char *col, const char *name, size_t *len)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT %s FROM secrets WHERE name = ?1", col);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_type(st, 0), SQLITE_BLOB);
	const void *p = sqlite3_column_blob(st, 0);
	*len = (size_t)sqlite3_column_bytes(st, 0);
	unsigned char *copy = malloc(*len ? *len : 1);
	assert_non_null(copy);
	memcpy(copy, p, *len);
	sqlite3_finalize(st);
	return copy;
}

/* Write `len` bytes into column `col` of the secret `name`. */
static inline void row_set_blob(sqlite3 *db, const char *col, const char *name, const void *data, size_t len)
{
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE secrets SET %s = ?1 WHERE name = ?2", col);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, data ? data : "", (int)len, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
}

/* A whole row's stored crypto: (id, version, nonce, ciphertext). */
struct row {
	int64_t id;
	int64_t version;
	unsigned char *nonce;
	size_t nonce_len;
	unsigned char *ct;
	size_t ct_len;
};

static inline void row_load(const char *path, const char *name, struct row *r)
{
	sqlite3 *db = db_raw(path);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, version FROM secrets WHERE name = ?1", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	r->id = sqlite3_column_int64(st, 0);
	r->version = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	r->nonce = row_blob(db, "nonce", name, &r->nonce_len);
	r->ct = row_blob(db, "ciphertext", name, &r->ct_len);
	sqlite3_close(db);
}

static inline void row_free(struct row *r)
{
	free(r->nonce);
	free(r->ct);
	r->nonce = r->ct = NULL;
}

/* Write (nonce, ciphertext) into the row of `name`. */
static inline void row_put_crypto(const char *path, const char *name, const struct row *r)
{
	sqlite3 *db = db_raw(path);
	row_set_blob(db, "nonce", name, r->nonce, r->nonce_len);
	row_set_blob(db, "ciphertext", name, r->ct, r->ct_len);
	sqlite3_close(db);
}

/* --- the header row ------------------------------------------------------ */

static inline void hdr_blob(sqlite3_stmt *st, int col, unsigned char *dst, size_t n)
{
	assert_int_equal(sqlite3_column_type(st, col), SQLITE_BLOB);
	assert_int_equal(sqlite3_column_bytes(st, col), (int)n);
	memcpy(dst, sqlite3_column_blob(st, col), n);
}

/* Read the header row as the product lays it out, and check that the
 * stored checksum is what header_checksum() computes: this proves the
 * forging below produces headers the product accepts as consistent. */
static inline void hdr_load(const char *path, struct vault_header *h)
{
	sqlite3 *db = db_raw(path);
	sqlite3_stmt *st;
	assert_int_equal(
		sqlite3_prepare_v2(db,
				   "SELECT vault_id, created, kdf_alg, kdf_opslimit, kdf_memlimit, kdf_salt,"
				   " key_generation, key_nonce, wrapped_key, header_check FROM vault WHERE id = 1",
				   -1, &st, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	memset(h, 0, sizeof *h);
	hdr_blob(st, 0, h->vault_id, VAULT_ID_BYTES);
	h->created = sqlite3_column_int64(st, 1);
	h->kdf_alg = sqlite3_column_int64(st, 2);
	h->kdf_opslimit = (uint64_t)sqlite3_column_int64(st, 3);
	h->kdf_memlimit = (uint64_t)sqlite3_column_int64(st, 4);
	hdr_blob(st, 5, h->kdf_salt, SALT_BYTES);
	h->key_generation = sqlite3_column_int64(st, 6);
	hdr_blob(st, 7, h->key_nonce, KEY_NONCE_BYTES);
	hdr_blob(st, 8, h->wrapped_key, WRAPPED_KEY_BYTES);
	hdr_blob(st, 9, h->check, HEADER_CHECK_BYTES);
	sqlite3_finalize(st);
	sqlite3_close(db);
	unsigned char check[HEADER_CHECK_BYTES];
	header_checksum(h, check);
	assert_memory_equal(check, h->check, HEADER_CHECK_BYTES);
}

/* Write every header field; with `forge` the checksum is recomputed first,
 * as a deliberate attacker would, else h->check is written as it is. */
static inline void hdr_store(const char *path, struct vault_header *h, bool forge)
{
	if (forge)
		header_checksum(h, h->check);
	sqlite3 *db = db_raw(path);
	sqlite3_stmt *st;
	assert_int_equal(
		sqlite3_prepare_v2(db,
				   "UPDATE vault SET vault_id = ?1, created = ?2, kdf_alg = ?3, kdf_opslimit = ?4,"
				   " kdf_memlimit = ?5, kdf_salt = ?6, key_generation = ?7, key_nonce = ?8,"
				   " wrapped_key = ?9, header_check = ?10 WHERE id = 1",
				   -1, &st, NULL),
		SQLITE_OK);
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
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Open and unlock must fail: at vault_open with `open_status`, or, when
 * open_status is LATCH_OK, at vault_unlock with `unlock_status`. The file
 * is byte-for-byte the same afterwards, and a handle whose unlock failed
 * hands out no value. */
static inline void expect_open_unlock_fails(const struct fx *f, const char *pass, enum latch_status open_status,
					    enum latch_status unlock_status)
{
	struct snap s = snap_take(f->path);
	struct vault *v = NULL;
	if (open_status != LATCH_OK) {
		EXPECT_FAIL(open_status, vault_open(f->dir, &v));
		assert_null(v);
	} else {
		status_reset();
		assert_int_equal(vault_open(f->dir, &v), 0);
		struct secbuf *p = sb_str(pass);
		EXPECT_FAIL(unlock_status, vault_unlock(v, p));
		secbuf_free(p);
		struct secbuf *out = NULL;
		EXPECT_FAIL(LATCH_DENIED, vault_get(v, "a", &out));
		assert_null(out);
		vault_close(v);
	}
	snap_same(&s, f->path);
}

#endif
