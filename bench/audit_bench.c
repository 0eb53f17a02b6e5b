/* Audit log benchmark, through the real API on a real vault file:
 *
 *   audit_bench DIR append N      durable appends, one transaction each
 *                                 (BEGIN IMMEDIATE, append, COMMIT with
 *                                 synchronous=FULL): prints median and p90
 *   audit_bench DIR stream-append N
 *                                 a durable release record of 20 secrets
 *                                 in a broker stream opened for this
 *                                 process (one write, one fdatasync): what
 *                                 a broker does per release; beside it, in
 *                                 the same loop, a raw O_APPEND write of a
 *                                 line as long plus fdatasync
 *   audit_bench DIR fill N        N broker stream records (release and
 *                                 exit), spread over the last 100 days,
 *                                 naming one of 1,000 secrets each, written
 *                                 256 to a write, then folded (timed)
 *   audit_bench DIR stream-fill N N more stream records, now, not folded:
 *                                 what a query finds waiting
 *   audit_bench DIR verify        audit_verify of the whole log, with the
 *                                 secrets rows and sqlite's integrity_check
 *                                 (no KDF: the vault was unlocked
 *                                 beforehand)
 *
 * DIR is created (interactive KDF) on first use. The passphrase is a
 * fixed bench string: this is a bench tool, not product code. */
#include "../audit/audit.h"
#include "../hooks/hooks.h"
#include "../vault/vault.h"
#include "bench.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

static const char PASS[] = "bench passphrase, not a secret";

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

int main(int argc, char **argv)
{
	if (argc < 3 || sodium_init() < 0 || vault_add_tables(&audit_tables) != 0 ||
	    vault_add_tables(&hooks_tables) != 0) {
		fprintf(stderr,
			"usage: audit_bench DIR append N | stream-append N | fill N | stream-fill N | verify\n");
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
		/* What a broker does per release: a record of 20 names appended
		 * to its own stream and synced. */
		int n = atoi(argv[3]);
		double *t = calloc((size_t)n, sizeof *t), *raw = calloc((size_t)n, sizeof *raw);
		struct secbuf *keys = NULL;
		struct audit_stream *st = NULL;
		struct audit_secret_ref refs[20];
		char names[20][32];
		for (int k = 0; k < 20; k++) {
			snprintf(names[k], sizeof names[k], "secret-%d", k);
			refs[k] = (struct audit_secret_ref){names[k], 0};
		}
		struct audit_event rel = ev;
		rel.secrets = refs;
		rel.n_secrets = 20;
		rel.runner = getpid();
		rel.has_session = true;
		snprintf(grant, sizeof grant, "g-0123456789ab");
		char raw_path[4200];
		snprintf(raw_path, sizeof raw_path, "%s/raw-fdatasync", argv[1]);
		int fd = open(raw_path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		rc = fd < 0 || audit_stream_begin(db, w, ver, vault_rows, v, getpid(), &keys) != 0 ||
		     audit_stream_open(keys, argv[1], &st) != 0;
		char line[1024];
		memset(line, 'x', sizeof line);
		size_t line_len = 0;
		for (int i = 0; i < n && rc == 0; i++) {
			double t0 = now_ms();
			rc = audit_stream_append(st, &rel, 1) != 0;
			t[i] = now_ms() - t0;
			if (!line_len) { /* as long as the stream's line */
				char path[4200];
				snprintf(path, sizeof path, "%s/audit/stream-%lld", argv[1],
					 (long long)audit_stream_number(st));
				FILE *f = fopen(path, "r");
				line_len = f && fgets(line, sizeof line, f) ? strlen(line) : 320;
				if (f)
					fclose(f);
			}
			t0 = now_ms();
			rc = rc || write(fd, line, line_len) != (ssize_t)line_len || fdatasync(fd) != 0;
			raw[i] = now_ms() - t0;
		}
		if (rc == 0) {
			qsort(t, (size_t)n, sizeof *t, cmp_double);
			qsort(raw, (size_t)n, sizeof *raw, cmp_double);
			printf("durable release record (20 names, %zu bytes): n=%d median=%.3f ms (min %.3f, p90 %.3f, max %.3f)\n",
			       line_len, n, t[n / 2], t[0], t[n * 9 / 10], t[n - 1]);
			printf("raw O_APPEND write of %zu bytes + fdatasync:      n=%d median=%.3f ms (min %.3f, p90 %.3f, max %.3f)\n",
			       line_len, n, raw[n / 2], raw[0], raw[n * 9 / 10], raw[n - 1]);
		}
		if (fd >= 0)
			close(fd);
		unlink(raw_path);
		audit_stream_free(st);
		secbuf_free(keys);
		free(t);
		free(raw);
	} else if ((!strcmp(argv[2], "fill") || !strcmp(argv[2], "stream-fill")) && argc == 4) {
		/* A broker's records, 256 to a write (each write synced), in a
		 * stream of its own. */
		long n = atol(argv[3]);
		bool fill = !strcmp(argv[2], "fill");
		struct secbuf *keys = NULL;
		struct audit_stream *st = NULL;
		rc = audit_stream_begin(db, w, ver, vault_rows, v, getpid(), &keys) != 0 ||
		     audit_stream_open(keys, argv[1], &st) != 0;
		static struct audit_event evs[256];
		static struct audit_secret_ref refs[256];
		static char names[256][32], grants[256][32];
		int64_t t_now = (int64_t)time(NULL), span = 100LL * 86400;
		/* how many secrets the records name (LATCH_BENCH_SECRETS, default
		 * 1,000: the worst case for the secret index, a page each) */
		const char *sp = getenv("LATCH_BENCH_SECRETS");
		long spread = sp && atol(sp) > 0 ? atol(sp) : 1000;
		double t0 = now_ms();
		for (long i = 0; i < n && rc == 0;) {
			size_t k = 0;
			for (; k < 256 && i < n; k++, i++) {
				/* a release and its exit name the same secret */
				snprintf(names[k], sizeof names[k], "secret-%ld", (i / 2) % spread);
				snprintf(grants[k], sizeof grants[k], "g-%ld", i / 50);
				refs[k] = (struct audit_secret_ref){names[k], 0};
				evs[k] = ev;
				evs[k].secrets = &refs[k];
				evs[k].grant_id = grants[k];
				evs[k].event = i % 2 ? "exit" : "release";
				evs[k].decision = i % 2 ? NULL : "allow";
				/* oldest first, evenly over the last 100 days; or now */
				evs[k].time = fill ? t_now - span + (int64_t)((double)span * (double)i / (double)n)
						   : t_now;
			}
			rc = audit_stream_append(st, evs, k) != 0;
		}
		printf("%s: %ld stream records in %.1f s\n", argv[2], n, (now_ms() - t0) / 1e3);
		if (rc == 0 && fill) {
			t0 = now_ms();
			rc = audit_fold(db, false) != 0;
			printf("fold of %ld records into the index: %.2f s\n", n, (now_ms() - t0) / 1e3);
		}
		audit_stream_free(st);
		secbuf_free(keys);
	} else if (!strcmp(argv[2], "verify")) {
		/* verify N: N times, for a profile of verify alone */
		int times = argc == 4 ? atoi(argv[3]) : 1;
		for (int i = 0; i < times && rc == 0; i++) {
			struct audit_report r;
			double t0 = now_ms();
			rc = audit_verify(db, w, ver, NULL, vault_rows, v, &r) != 0 || r.verdict != AUDIT_OK;
			printf("verify: %lld records in %.3f s (%s)\n", (long long)r.records, (now_ms() - t0) / 1e3,
			       r.reason);
		}
	} else {
		fprintf(stderr,
			"usage: audit_bench DIR append N | stream-append N | fill N | stream-fill N | verify\n");
		rc = 2;
	}
	secbuf_free(w);
	secbuf_free(ver);
	vault_close(v);
	return rc;
}
