/* Shared fixture for the audit log unit tests (test_audit*.c).
 *
 * Every test gets a fresh private directory under /tmp (removed by the
 * teardown, also after a failed assertion) holding a real vault made with
 * VAULT_KDF_INTERACTIVE by vault_create_recorded, whose hook records every
 * change in the audit log through audit_record_change, as latch does. The vault is opened
 * and unlocked once per test (Argon2id is the slow part) and the audit
 * writer and verifier keys are fetched once.
 *
 * Tampering goes through the sqlite3 C API on a second connection (the
 * attacker's: synchronous=OFF, so thousands of edits stay fast; locking is
 * unchanged), and the verdict is read from audit_verify.
 *
 * Helpers are `static inline` so that a test file using only some of them
 * compiles clean with -Wunused-function. Include this after cmocka.h. */
#ifndef LATCH_TEST_AUDIT_FIXTURE_H
#define LATCH_TEST_AUDIT_FIXTURE_H

#include "../../audit/audit.h"
#include "../../vault/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AFX_PASS "audit fixture: correct horse battery"
#define AFX_MAX_KIDS 16

/* What the recording hook does. */
enum afx_hook_mode {
	AFX_HOOK_RECORD,      /* append the record (audit_record_change) */
	AFX_HOOK_FAIL,        /* return -1 without recording */
	AFX_HOOK_RECORD_FAIL, /* append the record, then return -1 */
};

struct afx_hook {
	enum afx_hook_mode mode;
	int calls;
	char *const *argv; /* recorded as a keyed hash only */
	int argc;
};

struct afx {
	char root[PATH_MAX]; /* mkdtemp'd, 0700 */
	char dir[PATH_MAX];  /* root/vault */
	char path[PATH_MAX]; /* root/vault/vault.db */
	struct secbuf *pass;
	struct vault *v; /* open and unlocked */
	sqlite3 *db;     /* vault_db(v) */
	struct secbuf *writer, *verifier;
	struct afx_hook hook;
	int64_t made;      /* records made by afx_append, for variety */
	struct afx *other; /* a second vault, freed by the teardown */
	pid_t kids[AFX_MAX_KIDS];
	int nkids;
	sqlite3 *dbs[8]; /* extra connections, closed by the teardown */
	int ndbs;
};

static inline struct secbuf *afx_secbuf(const void *p, size_t n)
{
	struct secbuf *b = secbuf_new(n ? n : 1);
	if (b) {
		memcpy(b->data, p, n);
		b->len = n;
	}
	return b;
}

static inline struct secbuf *afx_secstr(const char *s)
{
	return afx_secbuf(s, strlen(s));
}

/* The recording hook: the library's (audit_record_change, as latch's
 * commands use it), plus failure modes. */
static inline int afx_record(struct vault *v, const struct vault_change *c, void *ctx)
{
	struct afx_hook *h = ctx;
	h->calls++;
	if (h->mode == AFX_HOOK_FAIL)
		return latch_error(LATCH_OPERR, "test hook: refusing to record");
	struct audit_recorder r = {h->argc, h->argv, NULL};
	int rc = audit_record_change(v, c, &r);
	if (rc == 0 && h->mode == AFX_HOOK_RECORD_FAIL)
		return latch_error(LATCH_OPERR, "test hook: recorded, then failing");
	return rc;
}

/* out = a/b */
static inline int afx_join(char *out, size_t n, const char *a, const char *b)
{
	int r = snprintf(out, n, "%s/%s", a, b);
	return r > 0 && (size_t)r < n ? 0 : -1;
}

/* Open and unlock f->dir, install the hook, fetch both audit keys. */
static inline int afx_open(struct afx *f)
{
	if (vault_open(f->dir, &f->v) != 0)
		return -1;
	if (vault_unlock(f->v, f->pass) != 0)
		return -1;
	vault_on_change(f->v, afx_record, &f->hook);
	if (vault_key(f->v, "audit-writer", false, &f->writer) != 0 ||
	    vault_key(f->v, "audit-verifier", false, &f->verifier) != 0)
		return -1;
	f->db = vault_db(f->v);
	return 0;
}

static inline void afx_close(struct afx *f)
{
	secbuf_free(f->writer);
	secbuf_free(f->verifier);
	f->writer = f->verifier = NULL;
	vault_close(f->v);
	f->v = NULL;
	f->db = NULL;
}

static inline int afx_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

/* Kill and reap every child still listed. */
static inline void afx_reap_all(struct afx *f)
{
	for (int i = 0; i < f->nkids; i++) {
		if (f->kids[i] <= 0)
			continue;
		kill(f->kids[i], SIGKILL);
		while (waitpid(f->kids[i], NULL, 0) < 0 && errno == EINTR)
			;
		f->kids[i] = 0;
	}
	f->nkids = 0;
}

static inline void afx_fini(struct afx *f)
{
	afx_reap_all(f);
	for (int i = 0; i < f->ndbs; i++)
		sqlite3_close(f->dbs[i]);
	f->ndbs = 0;
	if (f->other) {
		afx_fini(f->other);
		free(f->other);
		f->other = NULL;
	}
	afx_close(f);
	secbuf_free(f->pass);
	f->pass = NULL;
	if (f->root[0])
		nftw(f->root, afx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	f->root[0] = '\0';
}

/* A new recorded vault, opened and unlocked: its log holds the "init"
 * record, seq 1. */
static inline int afx_init(struct afx *f)
{
	if (vault_add_tables(&audit_tables) != 0)
		return -1;
	snprintf(f->root, sizeof f->root, "/tmp/latch-audit-XXXXXX");
	if (!mkdtemp(f->root)) {
		f->root[0] = '\0';
		return -1;
	}
	if (afx_join(f->dir, sizeof f->dir, f->root, "vault") != 0 ||
	    afx_join(f->path, sizeof f->path, f->dir, VAULT_FILE_NAME) != 0 || !(f->pass = afx_secstr(AFX_PASS)))
		return -1;
	if (vault_create_recorded(f->dir, f->pass, VAULT_KDF_INTERACTIVE, afx_record, &f->hook) != 0)
		return -1;
	return afx_open(f);
}

static inline int afx_setup(void **state)
{
	struct afx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	if (afx_init(f) != 0) {
		afx_fini(f);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static inline int afx_teardown(void **state)
{
	struct afx *f = *state;
	latch_error_quiet(false);
	if (f) {
		afx_fini(f);
		free(f);
	}
	return 0;
}

/* A second vault, owned (and cleaned up) by f. */
static inline struct afx *afx_other(struct afx *f)
{
	assert_null(f->other);
	f->other = calloc(1, sizeof *f->other);
	assert_non_null(f->other);
	assert_int_equal(afx_init(f->other), 0);
	return f->other;
}

/* --- sqlite helpers ------------------------------------------------------ */

static inline void afx_exec(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void afx_exec(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	assert_non_null(sql);
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		fail_msg("sql failed (%d: %s): %s", rc, err ? err : "?", sql);
	sqlite3_free(sql);
}

/* One integer from a query (the first column of the first row). */
static inline int64_t afx_int(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int64_t afx_int(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	assert_non_null(sql);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("prepare failed (%s): %s", sqlite3_errmsg(db), sql);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		fail_msg("no row (%d): %s", rc, sql);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_free(sql);
	return v;
}

/* Connections the teardown closes if a test fails before it does. */
static inline sqlite3 *afx_track(struct afx *f, sqlite3 *db)
{
	assert_true(f->ndbs < (int)(sizeof f->dbs / sizeof f->dbs[0]));
	f->dbs[f->ndbs++] = db;
	return db;
}

static inline void afx_release(struct afx *f, sqlite3 *db)
{
	for (int i = 0; i < f->ndbs; i++) {
		if (f->dbs[i] == db) {
			f->dbs[i] = f->dbs[--f->ndbs];
			break;
		}
	}
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* The attacker's connection to the vault file. */
static inline sqlite3 *afx_raw(struct afx *f)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL);
	afx_track(f, db);
	if (rc != SQLITE_OK)
		fail_msg("cannot open %s: %s", f->path, db ? sqlite3_errmsg(db) : "?");
	sqlite3_busy_timeout(db, 10000);
	afx_exec(db, "PRAGMA synchronous=OFF");
	return db;
}

/* audit_log.<col> of record `seq`, malloc'd (never NULL). */
static inline unsigned char *afx_blob(sqlite3 *db, const char *col, int64_t seq, size_t *len)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT %s FROM audit_log WHERE seq = ?1", col);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, seq);
	if (sqlite3_step(st) != SQLITE_ROW)
		fail_msg("no audit_log row %lld", (long long)seq);
	const void *p = sqlite3_column_blob(st, 0);
	*len = (size_t)sqlite3_column_bytes(st, 0);
	unsigned char *out = malloc(*len + 1);
	assert_non_null(out);
	if (*len)
		memcpy(out, p, *len);
	out[*len] = '\0';
	sqlite3_finalize(st);
	return out;
}

static inline void afx_set_blob(sqlite3 *db, const char *col, int64_t seq, const void *p, size_t len)
{
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE audit_log SET %s = ?1 WHERE seq = ?2", col);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	/* A zero-length blob: bind_zeroblob, since a NULL pointer binds NULL. */
	if (len)
		sqlite3_bind_blob(st, 1, p, (int)len, SQLITE_TRANSIENT);
	else
		sqlite3_bind_zeroblob(st, 1, 0);
	sqlite3_bind_int64(st, 2, seq);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
}

/* The audit_state blob `col` ("state", "origin", "log_id"), malloc'd. */
static inline unsigned char *afx_state_blob(sqlite3 *db, const char *col, size_t *len)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT %s FROM audit_state WHERE id = 1", col);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) != SQLITE_ROW)
		fail_msg("no audit_state row");
	*len = (size_t)sqlite3_column_bytes(st, 0);
	unsigned char *out = malloc(*len + 1);
	assert_non_null(out);
	if (*len)
		memcpy(out, sqlite3_column_blob(st, 0), *len);
	sqlite3_finalize(st);
	return out;
}

static inline void afx_set_state_blob(sqlite3 *db, const char *col, const void *p, size_t len)
{
	char sql[128];
	snprintf(sql, sizeof sql, "UPDATE audit_state SET %s = ?1 WHERE id = 1", col);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, p, (int)len, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
}

/* A copy of the whole database in memory (sqlite3_backup), and back. */
static inline sqlite3 *afx_snapshot(struct afx *f, sqlite3 *from)
{
	sqlite3 *mem = NULL;
	int rc = sqlite3_open(":memory:", &mem);
	afx_track(f, mem);
	assert_int_equal(rc, SQLITE_OK);
	sqlite3_backup *b = sqlite3_backup_init(mem, "main", from, "main");
	assert_non_null(b);
	assert_int_equal(sqlite3_backup_step(b, -1), SQLITE_DONE);
	assert_int_equal(sqlite3_backup_finish(b), SQLITE_OK);
	return mem;
}

static inline void afx_restore(sqlite3 *to, sqlite3 *mem)
{
	sqlite3_backup *b = sqlite3_backup_init(to, "main", mem, "main");
	assert_non_null(b);
	assert_int_equal(sqlite3_backup_step(b, -1), SQLITE_DONE);
	assert_int_equal(sqlite3_backup_finish(b), SQLITE_OK);
}

static inline int64_t afx_count(sqlite3 *db)
{
	return afx_int(db, "SELECT count(*) FROM audit_log");
}

/* Rows are exactly seqs 1..n. */
static inline void afx_expect_seqs(sqlite3 *db, int64_t n)
{
	assert_int_equal(afx_int(db, "SELECT count(*) FROM audit_log"), n);
	assert_int_equal(afx_int(db, "SELECT coalesce(min(seq), 0) FROM audit_log"), n ? 1 : 0);
	assert_int_equal(afx_int(db, "SELECT coalesce(max(seq), 0) FROM audit_log"), n);
}

/* --- making records -------------------------------------------------------- */

/* Append `n` varied records directly with audit_append in one BEGIN
 * IMMEDIATE transaction on the vault's connection. Record k (counting from
 * 0 over the fixture's life) has a grant id when k is odd and k % 3
 * secrets. Returns the last seq. */
static inline int64_t afx_append(struct afx *f, int n)
{
	static char *const argv_x[] = {"latch", "run", "--", "deploy", "--token-file", "/tmp/x"};
	int64_t seq = 0;
	afx_exec(f->db, "BEGIN IMMEDIATE");
	for (int i = 0; i < n; i++, f->made++) {
		int64_t k = f->made;
		char grant[32], n0[32], n1[32];
		snprintf(grant, sizeof grant, "g-%lld", (long long)k);
		snprintf(n0, sizeof n0, "team/s%lld", (long long)k);
		snprintf(n1, sizeof n1, "t%lld.key", (long long)k);
		struct audit_secret_ref refs[2] = {{n0, k + 1}, {n1, k + 2}};
		static const char *const events[] = {"release", "grant", "deny", "exec"};
		struct audit_event ev = {
			.event = events[k % 4],
			.decision = k % 4 == 2 ? "deny" : "allow",
			.reason = k % 4 == 2 ? "command not allowed" : NULL,
			.secrets = refs,
			.n_secrets = (size_t)(k % 3),
			.grant_id = k % 2 ? grant : NULL,
			.version = k % 5 == 0 ? k : 0,
			.has_exit = k % 4 == 3,
			.exit_status = (int)(k % 7),
			.has_redactions = k % 4 == 3,
			.redactions = k % 3,
			.self = k % 2 == 0,
			.pid = k % 2 ? 4242 + (pid_t)k : 0,
			.uid = 1000,
			.exe = k % 2 ? "/usr/bin/env" : NULL,
			.cwd = k % 2 ? "/home/dev/project" : NULL,
			.argv = k % 3 == 1 ? argv_x : NULL,
			.argc = k % 3 == 1 ? 6 : 0,
		};
		int rc = audit_append(f->db, f->writer, f->verifier, &ev, &seq);
		if (rc != 0) {
			sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
			fail_msg("audit_append of record %d failed", i);
		}
	}
	afx_exec(f->db, "COMMIT");
	return seq;
}

/* Fill the log up to exactly `n` records. */
static inline void afx_fill(struct afx *f, int64_t n)
{
	int64_t have = afx_count(f->db);
	assert_true(have <= n);
	if (have < n)
		assert_int_equal(afx_append(f, (int)(n - have)), n);
	afx_expect_seqs(f->db, n);
}

/* --- verification -------------------------------------------------------- */

static inline const char *afx_verdict_name(enum audit_verdict v)
{
	return v == AUDIT_OK ? "OK" : v == AUDIT_TAMPERED ? "TAMPERED" : v == AUDIT_UNVERIFIABLE ? "UNVERIFIABLE" : "?";
}

static inline int afx_verify(struct afx *f, const struct audit_checkpoint *cp, struct audit_report *r)
{
	latch_error_quiet(true);
	int rc = audit_verify(f->db, f->writer, f->verifier, cp, vault_rows, f->v, r);
	latch_error_quiet(false);
	return rc;
}

static inline void afx_expect(struct afx *f, const struct audit_checkpoint *cp, enum audit_verdict want,
			      int64_t first_bad, const char *what)
{
	struct audit_report r;
	int rc = afx_verify(f, cp, &r);
	if (rc != 0 || r.verdict != want || r.first_bad != first_bad)
		fail_msg("%s: audit_verify rc %d, verdict %s (want %s), first_bad %lld (want %lld): %s", what, rc,
			 afx_verdict_name(r.verdict), afx_verdict_name(want), (long long)r.first_bad,
			 (long long)first_bad, r.reason);
}

static inline void afx_expect_ok(struct afx *f, const struct audit_checkpoint *cp, int64_t records, const char *what)
{
	struct audit_report r;
	int rc = afx_verify(f, cp, &r);
	if (rc != 0 || r.verdict != AUDIT_OK || r.records != records || r.first_bad != 0)
		fail_msg("%s: audit_verify rc %d, verdict %s, %lld records (want OK, %lld): %s", what, rc,
			 afx_verdict_name(r.verdict), (long long)r.records, (long long)records, r.reason);
}

static inline void afx_head(struct afx *f, struct audit_checkpoint *cp)
{
	memset(cp, 0, sizeof *cp);
	assert_int_equal(audit_head(f->db, cp), 0);
}

static inline bool afx_cp_equal(const struct audit_checkpoint *a, const struct audit_checkpoint *b)
{
	return a->seq == b->seq && memcmp(a->log_id, b->log_id, AUDIT_LOG_ID_BYTES) == 0 &&
	       memcmp(a->mac, b->mac, AUDIT_MAC_BYTES) == 0;
}

/* --- files --------------------------------------------------------------- */

static inline unsigned char *afx_read_file(const char *path, size_t *len)
{
	FILE *in = fopen(path, "rb");
	if (!in)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? 2 * cap : 65536;
			unsigned char *p = realloc(buf, cap + 1);
			assert_non_null(p);
			buf = p;
		}
		size_t got = fread(buf + n, 1, cap - n, in);
		n += got;
		if (got == 0)
			break;
	}
	assert_false(ferror(in));
	fclose(in);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static inline void afx_write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	const unsigned char *c = p;
	while (len) {
		ssize_t w = write(fd, c, len);
		if (w < 0 && errno == EINTR)
			continue;
		assert_true(w > 0);
		c += w;
		len -= (size_t)w;
	}
	assert_int_equal(close(fd), 0);
}

/* How many times `needle` occurs in `hay`. */
static inline size_t afx_occurrences(const void *hay, size_t hay_len, const void *needle, size_t n)
{
	size_t count = 0;
	const unsigned char *h = hay, *end = h + hay_len;
	while (n && (size_t)(end - h) >= n) {
		const unsigned char *p = memmem(h, (size_t)(end - h), needle, n);
		if (!p)
			break;
		count++;
		h = p + 1;
	}
	return count;
}

#endif
