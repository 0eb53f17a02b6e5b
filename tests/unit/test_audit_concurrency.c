/* Unit tests: eight processes append to one audit log at once.
 *
 * Each child opens the vault on its own connection, unlocks it once and
 * appends its records one BEGIN IMMEDIATE transaction at a time, the way
 * concurrent latch commands (and later the broker) do. Afterwards the log
 * must hold every record exactly once, seqs 1..N without a gap or a
 * duplicate, each writer's records in its own order, and verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit_fixture.h"

#define WRITERS 8
#define EACH 250
#define DEADLINE_S 120

/* The child: no cmocka here, only an exit status. Odd writers hold only
 * the writer key: once the log exists, an append needs no other. */
static int child_append(const char *dir, int id)
{
	struct vault *v = NULL;
	struct secbuf *pass = afx_secstr(AFX_PASS), *writer = NULL, *verifier = NULL;
	int rc = 10;
	if (!pass || vault_open(dir, &v) != 0)
		goto out;
	rc = 11;
	if (vault_unlock(v, pass) != 0 || vault_key(v, "audit-writer", false, &writer) != 0)
		goto out;
	rc = 12;
	if (id % 2 == 0 && vault_key(v, "audit-verifier", false, &verifier) != 0)
		goto out;
	sqlite3 *db = vault_db(v);
	/* No fsync per commit (2,000 commits at ~4 fsyncs each would take half
	 * a minute on this disk); locking, which is what is under test, is the
	 * same at every synchronous level. */
	rc = 13;
	if (sqlite3_exec(db, "PRAGMA synchronous=OFF", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	char name[32];
	snprintf(name, sizeof name, "writer-%d", id);
	for (int i = 0; i < EACH; i++) {
		struct audit_secret_ref ref = {name, id + 1};
		struct audit_event ev = {
			.event = "release",
			.decision = "allow",
			.secrets = &ref,
			.n_secrets = 1,
			.version = i + 1,
			.self = true,
		};
		rc = 20;
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			goto out;
		rc = 21;
		if (audit_append(db, writer, verifier, &ev, NULL) != 0) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
		rc = 22;
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
	}
	rc = 0;
out:
	secbuf_free(writer);
	secbuf_free(verifier);
	secbuf_free(pass);
	vault_close(v);
	return rc;
}

/* Each writer's records, read back with audit_query, must carry versions
 * 1, 2, 3, ... in seq order: none lost, none doubled, none reordered
 * (versions start at 1: 0 is "no version" and is not recorded). */
struct order {
	int64_t next;
	int64_t last_seq;
	bool bad;
};

static int order_fn(const struct audit_row *r, void *ctx)
{
	int64_t seq = r->seq;
	const char *record = r->record;
	size_t len = r->len;
	struct order *o = ctx;
	char want[48];
	snprintf(want, sizeof want, "\"version\":%lld,", (long long)o->next + 1);
	if (seq <= o->last_seq || !memmem(record, len, want, strlen(want)))
		o->bad = true;
	o->last_seq = seq;
	o->next++;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void eight_concurrent_writers(void **state)
{
	struct afx *f = *state;
	/* A few records first, through the vault and directly. */
	struct secbuf *b = afx_secstr("a value");
	assert_int_equal(vault_set(f->v, "before", b, NULL), 0);
	secbuf_free(b);
	afx_append(f, 3);
	const int64_t initial = afx_count(f->db);
	assert_int_equal(initial, 5);
	assert_int_equal(setenv("LATCH_LOCK_TIMEOUT_MS", "60000", 1), 0);
	/* No sqlite connection crosses the fork. */
	afx_close(f);
	fflush(stdout);
	fflush(stderr);

	int forked = 0, failed = 0, timed_out = 0, first_failed = -1;
	int status_of[WRITERS] = {0};
	for (int i = 0; i < WRITERS; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(child_append(f->dir, i));
		if (pid < 0)
			break;
		f->kids[f->nkids++] = pid;
		forked++;
	}
	/* Wait for all; on the first failure (or the deadline) kill the rest. */
	double deadline = now_s() + DEADLINE_S;
	int running = forked;
	while (running > 0) {
		bool progress = false;
		for (int i = 0; i < f->nkids; i++) {
			if (f->kids[i] <= 0)
				continue;
			int st;
			pid_t r = waitpid(f->kids[i], &st, WNOHANG);
			if (r == 0 || (r < 0 && errno == EINTR))
				continue;
			f->kids[i] = 0;
			running--;
			progress = true;
			status_of[i] = r < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			if (status_of[i] != 0 && failed++ == 0)
				first_failed = i;
		}
		if (failed || (!progress && now_s() > deadline)) {
			timed_out = !failed;
			afx_reap_all(f);
			break;
		}
		if (!progress) {
			struct timespec ts = {0, 20 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	f->nkids = 0;
	unsetenv("LATCH_LOCK_TIMEOUT_MS");
	assert_int_equal(forked, WRITERS);
	if (timed_out)
		fail_msg("writers still running after %d s", DEADLINE_S);
	if (failed)
		fail_msg("writer %d failed with status %d (the others were stopped)", first_failed,
			 status_of[first_failed]);

	assert_int_equal(afx_open(f), 0);
	const int64_t n = initial + WRITERS * EACH;
	afx_expect_seqs(f->db, n);
	assert_int_equal(afx_int(f->db, "SELECT count(DISTINCT seq) FROM audit_log"), n);
	for (int i = 0; i < WRITERS; i++) {
		char name[32];
		snprintf(name, sizeof name, "writer-%d", i);
		assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_secret WHERE secret = 'writer-%d'", i),
				 EACH);
		struct order o = {0, 0, false};
		struct audit_filter q = {.secret = name};
		assert_int_equal(audit_query(f->db, &q, order_fn, &o), 0);
		assert_int_equal(o.next, EACH);
		assert_false(o.bad);
	}
	afx_expect_ok(f, NULL, n, "after eight concurrent writers");
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	assert_int_equal(cp.seq, n);
	afx_expect_ok(f, &cp, n, "against its head");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(eight_concurrent_writers, afx_setup, afx_teardown),
	};
	if (sodium_init() < 0)
		return 1;
	umask(077); /* as harden_process() does in latch's main */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
