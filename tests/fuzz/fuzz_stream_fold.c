/* Fuzz target: a broker stream's file, as the fold and verify read it
 * (audit/fold.c's line and head parser, audit/verify.c's walk of the file).
 *
 * Once per process: a real vault (interactive KDF) in a temporary
 * directory, with one secret and one enrolled broker stream (stream 1),
 * whose file the input then replaces. Each input: the folded rows and the
 * fold position are put back to "nothing folded", the input becomes the
 * stream's file, and
 *   - audit_fold(db, quiet) returns 0; a second fold finds nothing new;
 *     audit_fold(db, loud) then returns 0, or -1 with LATCH_OPERR (a
 *     damaged line stops the fold);
 *   - what was folded is exactly a prefix of the input's whole lines: k
 *     rows of stream 1, seqs after the ones before, each row's record and
 *     MAC the k-th line's, each record beginning {"stream":1,"n":k, and
 *     the fold position (records, bytes) at the end of line k; nothing of
 *     a line without its newline is ever folded;
 *   - audit_verify returns 0 with a consistent report (OK: first_bad 0;
 *     TAMPERED with a non-empty one-line reason). The input cannot hold a
 *     valid MAC unless it is a seed (made with the stream's real key, the
 *     broker's appends), so most inputs are TAMPERED; the empty file is OK.
 * No crash, no read out of bounds (ASan), no leak of heap (LSan) or of
 * secure buffers (secmem.h).
 *
 * The seeds in tests/fuzz/corpus/fuzz_stream_fold are written by
 * LATCH_FUZZ_STREAM_SEEDS=DIR build/fuzz-replay/fuzz_stream_fold /dev/null:
 * a file the broker's own appends made (release, exit, release, stop), and
 * that file cut short, with a flipped byte and with a line repeated. */
#include "fuzz.h"

#include "../../audit/audit.h"
#include "../../vault/vault.h"
#include "secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PASSPHRASE "fuzz stream fold: not a secret"

static char dir[PATH_MAX], stream[PATH_MAX + 32];
static struct vault *v;
static struct secbuf *writer, *verifier;
static int64_t base_seq; /* the log's last seq before any folded row */
static char *seed_file;  /* the broker's own file, for the seeds */
static size_t seed_len;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_stream_fold: %s\n", what);
	abort();
}

static void cleanup(void)
{
	static const char *const names[] = {"vault.db", "vault.db-journal", "audit/stream-1"};
	char p[PATH_MAX + 64];
	vault_close(v);
	v = NULL;
	secbuf_free(writer);
	secbuf_free(verifier);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
	snprintf(p, sizeof p, "%s/audit", dir);
	rmdir(p);
	rmdir(dir);
	free(seed_file);
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const unsigned char *c = p;
	while (fd >= 0 && n) {
		ssize_t w = write(fd, c, n);
		if (w <= 0)
			fail("cannot write a file");
		c += w;
		n -= (size_t)w;
	}
	if (fd < 0 || close(fd) != 0)
		fail("cannot write a file");
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(1 << 16);
	if (!f || !buf)
		fail("cannot read a file");
	*len = fread(buf, 1, 1 << 16, f);
	fclose(f);
	return buf;
}

static void exec_sql(const char *sql)
{
	if (sqlite3_exec(vault_db(v), sql, NULL, NULL, NULL) != SQLITE_OK)
		fail(sqlite3_errmsg(vault_db(v)));
}

static int64_t int_sql(const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = -1;
	if (sqlite3_prepare_v2(vault_db(v), sql, -1, &st, NULL) != SQLITE_OK)
		fail(sqlite3_errmsg(vault_db(v)));
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void broker_append(struct audit_stream *s, const char *event)
{
	struct audit_secret_ref ref = {"api-key", 0};
	struct audit_event ev = {.event = event,
				 .decision = strcmp(event, "release") ? NULL : "allow",
				 .secrets = strcmp(event, "stop") ? &ref : NULL,
				 .n_secrets = strcmp(event, "stop") ? 1 : 0,
				 .grant_id = strcmp(event, "stop") ? "g-00000000000f" : NULL,
				 .has_exit = !strcmp(event, "exit"),
				 .pid = 4242,
				 .uid = 1000,
				 .exe = "/usr/bin/psql",
				 .cwd = "/home/fuzz"};
	if (audit_stream_append(s, &ev, 1) != 0)
		fail("audit_stream_append failed");
}

static void setup(void)
{
	if (v)
		return;
	latch_error_quiet(true);
	if (sodium_init() < 0 || vault_add_tables(&audit_tables) != 0)
		fail("init");
	umask(077);
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	if (snprintf(dir, sizeof dir, "%s/latch-fuzz-fold-XXXXXX", tmp) >= (int)sizeof dir || !mkdtemp(dir))
		fail("cannot create a temporary directory");
	atexit(cleanup);
	struct secbuf *pass = secbuf_new(sizeof PASSPHRASE), *value = secbuf_new(16);
	if (!pass || !value)
		fail("out of memory");
	memcpy(pass->data, PASSPHRASE, sizeof PASSPHRASE - 1);
	pass->len = sizeof PASSPHRASE - 1;
	memcpy(value->data, "fuzz-value-0001", 15);
	value->len = 15;
	if (vault_create_recorded(dir, pass, VAULT_KDF_INTERACTIVE, audit_record_change, NULL) != 0 ||
	    vault_open(dir, &v) != 0 || vault_unlock(v, pass) != 0)
		fail("cannot make the vault");
	vault_on_change(v, audit_record_change, NULL);
	if (vault_set(v, "api-key", value, NULL) != 0 || vault_key(v, "audit-writer", false, &writer) != 0 ||
	    vault_key(v, "audit-verifier", false, &verifier) != 0)
		fail("cannot set up the vault");
	secbuf_free(pass);
	secbuf_free(value);
	struct secbuf *keys = NULL;
	struct audit_stream *s = NULL;
	if (audit_stream_begin(vault_db(v), writer, verifier, vault_rows, v, 4242, &keys) != 0 ||
	    audit_stream_open(keys, dir, &s) != 0)
		fail("cannot open a broker stream");
	base_seq = int_sql("SELECT max(seq) FROM audit_log");
	broker_append(s, "release");
	broker_append(s, "exit");
	broker_append(s, "release");
	broker_append(s, "stop");
	audit_stream_free(s);
	secbuf_free(keys);
	snprintf(stream, sizeof stream, "%s/audit/stream-1", dir);
	seed_file = read_file(stream, &seed_len);
	/* The broker's own file folds and verifies whole. */
	struct audit_report r;
	if (audit_fold(vault_db(v), false) != 0 || int_sql("SELECT folded FROM audit_fold WHERE stream = 1") != 4 ||
	    audit_verify(vault_db(v), writer, verifier, NULL, vault_rows, v, &r) != 0 || r.verdict != AUDIT_OK)
		fail("self-check: the broker's own stream does not fold and verify");
}

/* The seeds: the broker's file, cut, flipped, with a line repeated. */
static void write_seeds(const char *out)
{
	char p[PATH_MAX + 64];
	const char *second = memchr(seed_file, '\n', seed_len);
	size_t first_len = second ? (size_t)(second - seed_file) + 1 : seed_len;
	snprintf(p, sizeof p, "%s/broker-own", out);
	write_file(p, seed_file, seed_len);
	snprintf(p, sizeof p, "%s/cut-mid-line", out);
	write_file(p, seed_file, seed_len - 7);
	char *x = malloc(seed_len + first_len);
	if (!x)
		fail("out of memory");
	memcpy(x, seed_file, seed_len);
	x[first_len + 90] ^= 1;
	snprintf(p, sizeof p, "%s/flipped-in-line-2", out);
	write_file(p, x, seed_len);
	memcpy(x, seed_file, first_len);
	memcpy(x + first_len, seed_file, seed_len);
	snprintf(p, sizeof p, "%s/line-1-twice", out);
	write_file(p, x, seed_len + first_len);
	free(x);
	snprintf(p, sizeof p, "%s/empty", out);
	write_file(p, "", 0);
}

/* The k-th whole line of data (1-based): its record and MAC hex. */
static bool line_at(const uint8_t *data, size_t size, int64_t k, const char **rec, size_t *len, const char **mac,
		    size_t *end)
{
	size_t at = 0;
	for (int64_t i = 1; i <= k; i++) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		if (!nl)
			return false;
		if (i == k) {
			size_t line = (size_t)(nl - (data + at));
			if (line < 66 || data[at + 64] != ' ')
				return false;
			*mac = (const char *)data + at;
			*rec = (const char *)data + at + 65;
			*len = line - 65;
			*end = (size_t)(nl - data) + 1;
			return true;
		}
		at = (size_t)(nl - data) + 1;
	}
	return false;
}

static void check_folded(const uint8_t *data, size_t size)
{
	int64_t k = int_sql("SELECT folded FROM audit_fold WHERE stream = 1");
	int64_t offset = int_sql("SELECT offset FROM audit_fold WHERE stream = 1");
	if (k < 0 || int_sql("SELECT count(*) FROM audit_log WHERE seq > 0") - base_seq != k ||
	    int_sql("SELECT count(*) FROM audit_log WHERE stream = 1") != k)
		fail("the fold position and the rows disagree");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(vault_db(v), "SELECT seq, record, mac FROM audit_log WHERE stream = 1 ORDER BY seq", -1,
			       &st, NULL) != SQLITE_OK)
		fail("cannot read the rows");
	size_t end = 0;
	for (int64_t i = 1; i <= k; i++) {
		const char *rec = NULL, *mac = NULL;
		size_t len = 0;
		char head[64], hex[65];
		if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int64(st, 0) != base_seq + i ||
		    !line_at(data, size, i, &rec, &len, &mac, &end))
			fail("a folded row is not one of the input's whole lines, in order");
		int h = snprintf(head, sizeof head, "{\"stream\":1,\"n\":%lld,", (long long)i);
		if ((size_t)sqlite3_column_bytes(st, 1) != len || memcmp(sqlite3_column_blob(st, 1), rec, len) != 0 ||
		    len < (size_t)h || memcmp(rec, head, (size_t)h) != 0 || sqlite3_column_bytes(st, 2) != 32)
			fail("a folded row's record is not its line's");
		sodium_bin2hex(hex, sizeof hex, sqlite3_column_blob(st, 2), 32);
		if (memcmp(hex, mac, 64) != 0)
			fail("a folded row's MAC is not its line's");
	}
	if (sqlite3_step(st) != SQLITE_DONE || offset != (int64_t)end)
		fail("the fold position is not the end of the last folded line");
	sqlite3_finalize(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool seeded;
	setup();
	if (!seeded) {
		seeded = true;
		const char *out = getenv("LATCH_FUZZ_STREAM_SEEDS");
		if (out && *out)
			write_seeds(out);
	}
	long before = secmem_in_use();
	char sql[256];
	snprintf(sql, sizeof sql,
		 "BEGIN IMMEDIATE; DELETE FROM audit_secret WHERE seq > %lld; DELETE FROM audit_log WHERE seq > %lld;"
		 "UPDATE audit_fold SET folded = 0, offset = 0 WHERE stream = 1; COMMIT",
		 (long long)base_seq, (long long)base_seq);
	exec_sql(sql);
	write_file(stream, data, size);
	if (audit_fold(vault_db(v), true) != 0 || audit_fold(vault_db(v), true) != 0)
		fail("a quiet fold failed");
	check_folded(data, size);
	int loud = audit_fold(vault_db(v), false);
	if (loud != 0 && (loud != -1 || latch_last_status() != LATCH_OPERR))
		fail("a loud fold failed other than with an operational error");
	struct audit_report r;
	if (audit_verify(vault_db(v), writer, verifier, NULL, vault_rows, v, &r) != 0)
		fail("audit_verify failed to run");
	size_t reason = strnlen(r.reason, sizeof r.reason);
	if (reason == sizeof r.reason || memchr(r.reason, '\n', reason) ||
	    (r.verdict == AUDIT_OK && r.first_bad != 0) || (r.verdict == AUDIT_TAMPERED && reason == 0) ||
	    (size == 0 && r.verdict != AUDIT_OK))
		fail("an inconsistent verify report");
	secmem_check(before, "one input");
	return 0;
}
