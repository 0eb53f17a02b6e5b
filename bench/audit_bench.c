/* Audit log benchmark, through the real API on a real vault file:
 *
 *   audit_bench DIR append N      durable appends, one transaction each
 *                                 (BEGIN IMMEDIATE, append, COMMIT with
 *                                 synchronous=FULL): prints median and p90
 *   audit_bench DIR stream-append N
 *                                 the same to a broker stream opened for
 *                                 this process: what a broker does per
 *                                 release
 *   audit_bench DIR fill N        N records in transactions of 10,000,
 *                                 spread over the last 100 days, naming one
 *                                 of 1,000 secrets each
 *   audit_bench DIR verify        audit_verify of the whole log, with the
 *                                 secrets rows and sqlite's integrity_check
 *                                 (no KDF: the vault was unlocked
 *                                 beforehand)
 *
 * DIR is created (interactive KDF) on first use. The passphrase is a
 * fixed bench string: this is a bench tool, not product code. */
#include "../audit/audit.h"
#include "../vault/vault.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

static const char PASS[] = "bench passphrase, not a secret";

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static struct vault *open_vault(const char *dir, struct secbuf **w, struct secbuf **ver)
{
	struct secbuf *pass = secbuf_new(sizeof PASS);
	if (!pass)
		return NULL;
	memcpy(pass->data, PASS, sizeof PASS - 1);
	pass->len = sizeof PASS - 1;
	char path[4096];
	struct vault *v = NULL;
	if (vault_path(dir, path, sizeof path) == 0 && check_private_file(path) == 1 &&
	    vault_create_recorded(dir, pass, VAULT_KDF_INTERACTIVE, audit_record_change, NULL) != 0)
		goto out;
	if (vault_open(dir, &v) != 0 || vault_unlock(v, pass) != 0 || vault_key(v, "audit-writer", false, w) != 0 ||
	    vault_key(v, "audit-verifier", false, ver) != 0) {
		vault_close(v);
		v = NULL;
	}
out:
	secbuf_free(pass);
	return v;
}

static int append_one(sqlite3 *db, const struct secbuf *w, const struct audit_event *ev)
{
	return audit_append(db, w, NULL, ev, NULL);
}

int main(int argc, char **argv)
{
	if (argc < 3 || sodium_init() < 0 || vault_add_tables(&audit_tables) != 0) {
		fprintf(stderr, "usage: audit_bench DIR append N | stream-append N | fill N | verify\n");
		return 2;
	}
	struct secbuf *w = NULL, *ver = NULL;
	struct vault *v = open_vault(argv[1], &w, &ver);
	if (!v)
		return 3;
	sqlite3 *db = vault_db(v);
	/* For comparing sqlite journal modes: latch itself always uses the
	 * one vault/db.c sets. */
	const char *mode = getenv("BENCH_JOURNAL_MODE");
	if (mode) {
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
		sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	char *args[] = {"latch", "run", "--", "psql"};
	struct audit_secret_ref ref = {NULL, 0};
	char name[32], grant[32];
	struct audit_event ev = {.event = "release",
				 .decision = "allow",
				 .secrets = &ref,
				 .n_secrets = 1,
				 .grant_id = grant,
				 .self = true,
				 .argv = args,
				 .argc = 4};
	int rc = 0;
	if (!strcmp(argv[2], "append") && argc == 4) {
		int n = atoi(argv[3]);
		double *t = calloc((size_t)n, sizeof *t);
		for (int i = 0; i < n && rc == 0; i++) {
			snprintf(name, sizeof name, "secret-%d", i % 1000);
			snprintf(grant, sizeof grant, "g-%d", i % 97);
			ref.name = name;
			double t0 = now_ms();
			rc = audit_append_commit(db, w, &ev, 1) != 0; /* what the broker does per release */
			t[i] = now_ms() - t0;
		}
		qsort(t, (size_t)n, sizeof *t, cmp_double);
		printf("durable append: n=%d median=%.3f ms p90=%.3f ms max=%.3f ms\n", n, t[n / 2], t[n * 9 / 10],
		       t[n - 1]);
		free(t);
	} else if (!strcmp(argv[2], "stream-append") && argc == 4) {
		/* What a broker does per release: an append to its own stream. */
		int n = atoi(argv[3]);
		double *t = calloc((size_t)n, sizeof *t);
		struct secbuf *keys = NULL;
		struct audit_stream *st = NULL;
		rc = audit_stream_begin(db, w, ver, vault_rows, v, getpid(), &keys) != 0 ||
		     audit_stream_open(keys, &st) != 0;
		for (int i = 0; i < n && rc == 0; i++) {
			snprintf(name, sizeof name, "secret-%d", i % 1000);
			snprintf(grant, sizeof grant, "g-%d", i % 97);
			ref.name = name;
			double t0 = now_ms();
			rc = audit_stream_append_commit(db, st, &ev, 1) != 0;
			t[i] = now_ms() - t0;
		}
		if (rc == 0) {
			qsort(t, (size_t)n, sizeof *t, cmp_double);
			printf("durable stream append: n=%d median=%.3f ms p90=%.3f ms max=%.3f ms\n", n, t[n / 2],
			       t[n * 9 / 10], t[n - 1]);
		}
		audit_stream_free(st);
		secbuf_free(keys);
		free(t);
	} else if (!strcmp(argv[2], "fill") && argc == 4) {
		long n = atol(argv[3]);
		/* Big transactions: a page cache that holds one, so sqlite need
		 * not spill (and sync) mid-transaction. */
		sqlite3_exec(db, "PRAGMA cache_size=-262144", NULL, NULL, NULL);
		int64_t t_now = (int64_t)time(NULL), span = 100LL * 86400;
		double t0 = now_ms();
		for (long i = 0; i < n && rc == 0; i++) {
			if (i % 10000 == 0)
				rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK;
			snprintf(name, sizeof name, "secret-%ld", i % 1000);
			snprintf(grant, sizeof grant, "g-%ld", i / 50);
			ref.name = name;
			/* oldest first, evenly over the last 100 days */
			ev.time = t_now - span + (int64_t)((double)span * (double)i / (double)n);
			ev.event = i % 2 ? "exit" : "release";
			rc = rc || append_one(db, w, &ev) != 0;
			if (rc == 0 && (i % 10000 == 9999 || i == n - 1))
				rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK;
		}
		printf("fill: %ld records in %.1f s\n", n, (now_ms() - t0) / 1e3);
	} else if (!strcmp(argv[2], "verify")) {
		struct audit_report r;
		double t0 = now_ms();
		rc = audit_verify(db, w, ver, NULL, vault_rows, v, &r) != 0 || r.verdict != AUDIT_OK;
		printf("verify: %lld records in %.3f s (%s)\n", (long long)r.records, (now_ms() - t0) / 1e3, r.reason);
	} else {
		fprintf(stderr, "usage: audit_bench DIR append N | stream-append N | fill N | verify\n");
		rc = 2;
	}
	secbuf_free(w);
	secbuf_free(ver);
	vault_close(v);
	return rc;
}
