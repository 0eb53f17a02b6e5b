/* Fuzz target: audit_verify_export over an untrusted export file.
 *
 * The input is read as a FILE (fmemopen over exactly its bytes). The key
 * opener hands out a fixed 32-byte verifier key (FIXED_KEY below): no
 * passphrase, no KDF, so thousands of inputs a second. The seeds in
 * tests/fuzz/corpus/fuzz_export are real exports that verify under
 * FIXED_KEY (the first vault's sealed first key, "origin", sealed again
 * under it; the stream vault recorded under it), so the mutator works on
 * real records, MACs and headers. The verdict may be
 * anything, but:
 *   - nothing crashes, reads out of bounds or leaks (heap: LeakSanitizer;
 *     secure buffers: secmem.h);
 *   - the call returns 0 or -1, and a report given (0) is consistent: OK
 *     has first_bad 0 and head.seq == records; TAMPERED has first_bad ==
 *     records + 1; UNVERIFIABLE has neither; the reason is one
 *     non-empty NUL-terminated line;
 *   - the opener is called at most once, with its JSON text NUL-terminated
 *     at `len` and parseable; no verdict is given without it;
 *   - when the opener fails, the call fails (-1) and nothing leaks;
 *   - an export that verifies OK verifies OK again against a checkpoint of
 *     its own head (same records, same head), and is TAMPERED against that
 *     checkpoint with its MAC or log id changed, or with the next seq.
 *
 * Self-check, once per process (at the first input): a real vault is made
 * in a temporary directory with vault_create_recorded and a hook like
 * audit_record_change's, unlocked, given three vault_set calls, and exported with
 * audit_export and vault_export_key("audit-verifier"). That export must
 * verify AUDIT_OK with the real verifier key (vault_key), with and without
 * a checkpoint from audit_head, and be UNVERIFIABLE under FIXED_KEY. Then
 * its origin is sealed again under FIXED_KEY and it and the damaged
 * variants in `variants[]` must get exactly their expected verdicts.
 * A second vault records under FIXED_KEY from the start and has broker
 * streams (make_stream_log): enrolments, brokers' records between main
 * ones, a stop, closes by the next enrolment and by a rekey, and brokers
 * that go on writing after their end. As in latch, each broker appends
 * its stream to a file of its own, <vault dir>/audit/stream-N
 * (audit_stream_open, audit_stream_append: one "<MAC hex> <record>" line
 * per record), whose records are numbered by their stream,
 * {"stream":N,"n":I,"time":T,"event":"E"..., with no seq; readers fold
 * an open stream's new lines into audit_log with the next seq (export,
 * verify, audit_head and every main-chain append fold first). Its
 * exports, and variants made from them (build_stream_variants), are
 * checked the same way, and the vault's own audit_verify must give the
 * same verdicts, but for a record written after its stream's close:
 * that stream is never folded again, so the vault's verify finds the
 * record in the file only (first_bad 0), and its export variant gets by
 * hand the line an index would have held for it. Two variants reorder
 * records across chains or cut one from the middle of the open stream,
 * renumbering the lines: a main-chain record's text names its seq (a
 * stream record's, its place in its stream), so a main-chain record
 * moved off its seq is found.
 * With LATCH_FUZZ_EXPORT_SEEDS=DIR the variants are also written to DIR
 * (how the checked-in seeds were made):
 *
 *   make build/fuzz-replay/fuzz_export
 *   LATCH_FUZZ_EXPORT_SEEDS=tests/fuzz/corpus/fuzz_export build/fuzz-replay/fuzz_export /dev/null
 */
#include "fuzz.h"

#include "../../audit/audit.h"
#include "../../vault/vault.h"
#include "secmem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Test strings, not secrets. */
#define FIXED_KEY "fuzz-export-fixed-verifier-key!!"
#define FUZZ_PASSPHRASE "fuzz-export-passphrase"
_Static_assert(sizeof FIXED_KEY - 1 == AUDIT_KEY_BYTES, "FIXED_KEY is one audit key");

/* The sealed first key's format, as audit/log.c writes it: XChaCha20-
 * Poly1305 with associated data "latch-audit-origin-v1\0" || log id. */
static const char ORIGIN_LABEL[] = "latch-audit-origin-v1";
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define ORIGIN_BLOB (NONCE_BYTES + AUDIT_KEY_BYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES)

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_export: %s\n", what);
	abort();
}

#include "text.h"

/* ---- the key opener ---- */

struct opener {
	const unsigned char *key; /* AUDIT_KEY_BYTES */
	bool refuse;              /* fail without a key */
	int calls;
};

static int open_key(const char *json, size_t len, void *ctx, struct secbuf **out)
{
	struct opener *o = ctx;
	o->calls++;
	if (!json || strlen(json) != len)
		fail("the opener got text that is not NUL-terminated at len");
	json_error_t err;
	json_t *j = json_loadb(json, len, 0, &err);
	if (!j)
		fail("the opener got text that is not JSON");
	json_decref(j);
	if (o->refuse)
		return latch_error(LATCH_DENIED, "fuzz: the opener refuses");
	struct secbuf *k = secbuf_new(AUDIT_KEY_BYTES);
	if (!k)
		fail("cannot allocate a key");
	memcpy(k->data, o->key, AUDIT_KEY_BYTES);
	k->len = AUDIT_KEY_BYTES;
	*out = k;
	return 0;
}

/* One verification of `data` as a file. */
static int verify(const void *data, size_t size, struct opener *o, const struct audit_checkpoint *cp,
		  struct audit_report *r)
{
	static char empty[1];
	FILE *in = fmemopen(size ? (void *)data : empty, size, "r");
	if (!in)
		fail("fmemopen failed");
	memset(r, 0x5a, sizeof *r); /* the call must set every field */
	int rc = audit_verify_export(in, open_key, o, cp, r);
	fclose(in);
	return rc;
}

/* The invariants every result of verifying `data` must meet. */
static void check_report(int rc, const struct audit_report *r, const struct opener *o)
{
	if (o->calls > 1)
		fail("the opener was called more than once");
	if (rc == -1) {
		enum latch_status s = latch_last_status();
		if (s != LATCH_USAGE && s != LATCH_OPERR && s != LATCH_DENIED)
			fail("a failure without a failure status");
		return;
	}
	if (rc != 0)
		fail("audit_verify_export returned neither 0 nor -1");
	if (o->calls != 1)
		fail("a verdict without opening the verifier key");
	if (!memchr(r->reason, '\0', sizeof r->reason) || !r->reason[0] || strchr(r->reason, '\n'))
		fail("the reason is not one non-empty line");
	if (r->records < 0)
		fail("a negative record count");
	switch (r->verdict) {
	case AUDIT_OK:
		if (r->first_bad != 0 || r->head.seq != r->records)
			fail("OK with a bad record or a head that is not the last record");
		break;
	case AUDIT_TAMPERED:
		/* The record after the last good one. */
		if (r->records == INT64_MAX || r->first_bad != r->records + 1)
			fail("TAMPERED does not name the record after the last good one");
		break;
	case AUDIT_UNVERIFIABLE:
		if (r->records != 0 || r->first_bad != 0)
			fail("UNVERIFIABLE after checking records");
		break;
	default:
		fail("an unknown verdict");
	}
}

static bool same_head(const struct audit_checkpoint *a, const struct audit_checkpoint *b)
{
	return memcmp(a->log_id, b->log_id, AUDIT_LOG_ID_BYTES) == 0 && a->seq == b->seq &&
	       memcmp(a->mac, b->mac, AUDIT_MAC_BYTES) == 0;
}

/* An export that verified OK (report `ok`) against checkpoints made from
 * its own head. */
static void check_checkpoints(const uint8_t *data, size_t size, const unsigned char *key, const struct audit_report *ok)
{
	struct audit_report r;
	struct audit_checkpoint cp;
	if (ok->records >= 1) {
		cp = ok->head;
		struct opener o = {key, false, 0};
		int rc = verify(data, size, &o, &cp, &r);
		check_report(rc, &r, &o);
		if (rc != 0 || r.verdict != AUDIT_OK || r.records != ok->records || !same_head(&r.head, &ok->head))
			fail("an export is not OK against a checkpoint of its own head");

		cp.mac[0] ^= 1;
		o.calls = 0;
		rc = verify(data, size, &o, &cp, &r);
		check_report(rc, &r, &o);
		if (rc != 0 || r.verdict != AUDIT_TAMPERED || r.first_bad != cp.seq)
			fail("an export passed a checkpoint whose MAC differs");

		cp = ok->head;
		cp.log_id[AUDIT_LOG_ID_BYTES - 1] ^= 0x80;
		o.calls = 0;
		rc = verify(data, size, &o, &cp, &r);
		check_report(rc, &r, &o);
		if (rc != 0 || r.verdict != AUDIT_TAMPERED || r.first_bad != 1)
			fail("an export passed a checkpoint of another log");
	}
	if (ok->head.seq < INT64_MAX) {
		cp = ok->head;
		cp.seq++;
		struct opener o = {key, false, 0};
		int rc = verify(data, size, &o, &cp, &r);
		check_report(rc, &r, &o);
		if (rc != 0 || r.verdict != AUDIT_TAMPERED || r.first_bad != cp.seq || r.records != ok->records)
			fail("an export passed a checkpoint beyond its end");
	}
}

/* ---- the self-check: a real vault, a real export ---- */

static char dir[PATH_MAX];

/* The vault's files, and the broker streams' files the enrolments made
 * in <dir>/audit (the stream vault's). */
static void remove_vault_dir(void)
{
	static const char *const names[] = {"vault.db", "vault.db-journal", "vault.db-wal", "vault.db-shm"};
	char p[PATH_MAX + 64];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			fail("cannot clean the temporary directory");
	}
	snprintf(p, sizeof p, "%s/audit", dir);
	DIR *d = opendir(p);
	if (!d && errno != ENOENT)
		fail("cannot read the temporary directory's audit/");
	for (struct dirent *e; d && (e = readdir(d));) {
		if (strncmp(e->d_name, "stream-", 7) != 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) != 0)
			fail("cannot remove a stream file");
	}
	if (d) {
		closedir(d);
		if (rmdir(p) != 0)
			fail("cannot remove the temporary directory's audit/");
	}
	if (rmdir(dir) != 0)
		fail("cannot remove the temporary directory");
	dir[0] = '\0';
}

/* A private latch-fuzz-export-XXXXXX under $TMPDIR (or /tmp), in `dir`. */
static void make_vault_dir(void)
{
	umask(077);
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	if (snprintf(dir, sizeof dir, "%s/latch-fuzz-export-XXXXXX", tmp) >= (int)sizeof dir || !mkdtemp(dir))
		fail("cannot create a temporary directory");
}

/* As audit_record_change, with a fixed process description so the
 * records hold no path of the machine that made them. `ctx`, when not
 * NULL, is the verifier key to record with in place of the vault's own
 * (the stream vault's FIXED_KEY, see make_stream_log). */
static int record_hook(struct vault *v, const struct vault_change *c, void *ctx)
{
	const struct secbuf *fixed_verifier = ctx;
	struct audit_secret_ref refs[AUDIT_MAX_SECRETS];
	if (c->n > AUDIT_MAX_SECRETS)
		return -1;
	for (size_t i = 0; i < c->n; i++) {
		refs[i].name = c->names[i];
		refs[i].id = c->ids[i];
	}
	struct audit_event ev = {
		.event = c->event,
		.secrets = refs,
		.n_secrets = c->n,
		/* set: the new version; rm: the version removed */
		.version = !strcmp(c->event, "rm") && c->n == 1 ? c->versions[0] : c->version,
		.pid = 4242,
		.uid = 1000,
		.exe = "/usr/local/bin/latch",
		.cwd = "/home/fuzz",
	};
	struct secbuf *writer = NULL, *verifier = NULL;
	int rc = -1;
	if (vault_key(v, "audit-writer", true, &writer) == 0 && vault_key(v, "audit-verifier", true, &verifier) == 0) {
		rc = 0;
		/* A new data key ends the running broker's stream. */
		if (!strcmp(c->event, "rekey"))
			rc = audit_stream_close(vault_db(v), writer);
		if (rc == 0)
			rc = audit_append(vault_db(v), writer, fixed_verifier ? fixed_verifier : verifier, &ev, NULL);
	}
	secbuf_free(writer);
	secbuf_free(verifier);
	return rc;
}

static struct secbuf *secret_of(const char *s)
{
	size_t n = strlen(s);
	struct secbuf *b = secbuf_new(n);
	if (!b)
		fail("cannot allocate a secure buffer");
	memcpy(b->data, s, n);
	b->len = n;
	return b;
}

/* A real export (malloc'd text) of a vault with one init and three set
 * records; its verifier key in `key_out`, its head in `head`. */
static char *make_real_export(size_t *len, unsigned char key_out[AUDIT_KEY_BYTES], struct audit_checkpoint *head)
{
	make_vault_dir();
	struct secbuf *pass = secret_of(FUZZ_PASSPHRASE);
	if (vault_create_recorded(dir, pass, VAULT_KDF_INTERACTIVE, record_hook, NULL) != 0)
		fail("vault_create_recorded failed");
	struct vault *v = NULL;
	if (vault_open(dir, &v) != 0)
		fail("vault_open failed");
	vault_on_change(v, record_hook, NULL);
	if (vault_unlock(v, pass) != 0)
		fail("vault_unlock failed");
	static const char *const sets[][2] = {
		{"api-key", "test-value-one"},
		{"team/db.password", "test-value-two"},
		{"api-key", "test-value-one-v2"},
	};
	for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
		struct secbuf *val = secret_of(sets[i][1]);
		if (vault_set(v, sets[i][0], val, NULL) != 0)
			fail("vault_set failed");
		secbuf_free(val);
	}
	char *vjson = NULL;
	struct secbuf *k = NULL;
	if (vault_export_key(v, "audit-verifier", &vjson) != 0)
		fail("vault_export_key failed");
	if (vault_key(v, "audit-verifier", false, &k) != 0 || k->len != AUDIT_KEY_BYTES)
		fail("vault_key(audit-verifier) failed");
	memcpy(key_out, k->data, AUDIT_KEY_BYTES);
	secbuf_free(k);
	char *text = NULL;
	FILE *out = open_memstream(&text, len);
	if (!out || audit_export(vault_db(v), vjson, out) != 0 || fclose(out) != 0)
		fail("audit_export failed");
	memset(head, 0, sizeof *head);
	if (audit_head(vault_db(v), head) != 0 || head->seq != 4)
		fail("audit_head failed or the log does not hold 4 records");
	free(vjson);
	vault_close(v);
	secbuf_free(pass);
	remove_vault_dir();
	return text;
}

/* ---- the self-check's second vault: broker streams ---- */

/* The export's "origin" is re-sealed under FIXED_KEY after the fact
 * (reseal_header), but a stream's first key is sealed inside its enrol
 * record, which the main chain's MAC covers. So this vault records under
 * FIXED_KEY from the start: the hook hands it to audit_append, and the
 * enrolments get it too, where audit_record_change and cli/enrol.c pass
 * vault_key("audit-verifier"). Its exports verify under FIXED_KEY as
 * written. */

/* The log it holds when exported whole (stream_log.full), record by
 * record. A broker's records are release, exit, revoke, lost, stop. */
enum {
	S_INIT = 1,
	S_SET1,
	S_ENROL1,
	S_REL1,
	S_EXIT1,
	S_SET2,
	S_DENY1,
	S_REVOKE1,
	S_LOST1,
	S_STOP1,
	S_CLOSE1,
	S_ENROL2,
	S_REL2,
	S_SET3,
	S_EXIT2,
	S_CLOSE2,
	S_REKEY,
	S_ENROL3,
	S_CLOSE3,
	S_ENROL4,
	S_REL4,
	S_SET4,
	S_EXIT4,
	S_RECORDS = S_EXIT4,
};
static const struct {
	int64_t stream;
	const char *event;
} stream_log_shape[] = {
	{0, NULL},    {0, "init"},    {0, "set"},    {0, "enrol"},   {1, "release"}, {1, "exit"},
	{0, "set"},   {1, "release"}, {1, "revoke"}, {1, "lost"},    {1, "stop"},    {0, "close"},
	{0, "enrol"}, {2, "release"}, {0, "set"},    {2, "exit"},    {0, "close"},   {0, "rekey"},
	{0, "enrol"}, {0, "close"},   {0, "enrol"},  {4, "release"}, {0, "set"},     {4, "exit"},
};
_Static_assert(sizeof stream_log_shape / sizeof stream_log_shape[0] == S_RECORDS + 1, "one entry per record");

#define BROKER_PID 4343

struct stream_log {
	char *full;                   /* the log above */
	char *after_stop;             /* + stream 4's stop, then a release by the same broker */
	char *after_close;            /* + close 4, enrol 5, a release in 5, close 5, enrol 6, and the line of
					 * the exit that stream 5's broker then wrote to its file */
	char *foreign;                /* + close 6 and enrol 7, whose first key is sealed under another key */
	struct secbuf *keys4;         /* stream 4's keys (number, id, k_1, argv key), for forging */
	struct audit_checkpoint head; /* audit_head of `full` */
};

static void set_value(struct vault *v, const char *name, const char *value)
{
	struct secbuf *val = secret_of(value);
	if (vault_set(v, name, val, NULL) != 0)
		fail("vault_set failed");
	secbuf_free(val);
}

/* A passphrase holder enrols a broker (cli/enrol.c): its stream's keys. */
static struct secbuf *stream_begin(struct vault *v, const struct secbuf *writer, const struct secbuf *verifier)
{
	struct secbuf *keys = NULL;
	if (audit_stream_begin(vault_db(v), writer, verifier, vault_rows, v, BROKER_PID, &keys) != 0 || !keys)
		fail("audit_stream_begin failed");
	return keys;
}

/* The broker's end (cli/cmd_broker.c): the stream file its enrolment
 * made in the vault's directory. */
static struct audit_stream *stream_open(const struct secbuf *keys)
{
	struct audit_stream *s = NULL;
	if (audit_stream_open(keys, dir, &s) != 0)
		fail("audit_stream_open failed");
	return s;
}

/* One record in the broker's stream, shaped as cli/cmd_broker.c's
 * recorder makes them ("deny" is a refused release), with a fixed
 * process: appended to the stream's file, which the next reader (or
 * main-chain append) folds into the tables. */
static void broker(struct audit_stream *s, const char *what)
{
	bool allow = !strcmp(what, "release"), deny = !strcmp(what, "deny"), exit_ = !strcmp(what, "exit");
	bool named = allow || deny || exit_ || !strcmp(what, "revoke");
	bool broker_own = !strcmp(what, "lost") || !strcmp(what, "stop");
	struct audit_secret_ref ref = {"api-key", 0};
	struct audit_event ev = {
		.event = deny ? "release" : what,
		.decision = allow  ? "allow"
			    : deny ? "deny"
				   : NULL,
		.reason = deny ? "command not allowed" : NULL,
		.secrets = named ? &ref : NULL,
		.n_secrets = named ? 1 : 0,
		.grant_id = named ? "g-0000000000000001" : NULL,
		.has_exit = exit_,
		.exit_status = 0,
		.lost_exits = !strcmp(what, "lost") ? 2 : 0,
		.pid = broker_own ? BROKER_PID : 5151,
		.uid = 1000,
		.exe = broker_own ? "/usr/local/bin/latch" : "/usr/bin/psql",
		.cwd = broker_own ? "/" : "/home/fuzz/project",
	};
	if (audit_stream_append(s, &ev, 1) != 0)
		fail("audit_stream_append failed");
}

static char *export_text(struct vault *v)
{
	char *vjson = NULL, *text = NULL;
	size_t len = 0;
	if (vault_export_key(v, "audit-verifier", &vjson) != 0)
		fail("vault_export_key failed");
	FILE *out = open_memstream(&text, &len);
	if (!out || audit_export(vault_db(v), vjson, out) != 0 || fclose(out) != 0)
		fail("audit_export failed");
	free(vjson);
	return text;
}

/* The whole vault's verification must say what the export's will. */
static void db_expect(struct vault *v, const struct secbuf *writer, const struct secbuf *verifier,
		      enum audit_verdict verdict, int64_t first_bad, int64_t records, const char *what)
{
	struct audit_report r;
	if (audit_verify(vault_db(v), writer, verifier, NULL, vault_rows, v, &r) != 0 || r.verdict != verdict ||
	    r.first_bad != first_bad || r.records != records) {
		fprintf(stderr, "fuzz_export: self-check: %s: verdict %d first_bad %lld records %lld (%s)\n", what,
			(int)r.verdict, (long long)r.first_bad, (long long)r.records, r.reason);
		fail("self-check: the stream vault does not verify as expected");
	}
}

/* Stream n's file, <dir>/audit/stream-N (audit/fold.c's stream_path). */
static void stream_file(int64_t n, char *path, size_t len)
{
	if (snprintf(path, len, "%s/audit/stream-%lld", dir, (long long)n) >= (int)len)
		fail("the temporary directory's path is too long");
}

/* Where a broker's stream stands before it goes on writing: its file's
 * size, and its audit_fold row (how many of its records, and how many of
 * the file's bytes, were folded into audit_log). */
struct stream_mark {
	int64_t stream;
	off_t size;
	int64_t folded, offset;
};

static void mark_stream(struct vault *v, int64_t n, struct stream_mark *m)
{
	char path[PATH_MAX + 64];
	struct stat sb;
	stream_file(n, path, sizeof path);
	if (stat(path, &sb) != 0)
		fail("cannot stat a stream file");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(vault_db(v), "SELECT folded, offset FROM audit_fold WHERE stream = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		fail("cannot read audit_fold");
	sqlite3_bind_int64(st, 1, n);
	if (sqlite3_step(st) != SQLITE_ROW)
		fail("a stream without its audit_fold row");
	*m = (struct stream_mark){n, sb.st_size, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1)};
	sqlite3_finalize(st);
}

/* The last line of stream n's file: its record (malloc'd) and its MAC's
 * hex, as the broker wrote them ("<64 hex> <record>\n"). */
static char *stream_last_line(int64_t n, char hex[2 * AUDIT_MAC_BYTES + 1])
{
	char path[PATH_MAX + 64], buf[4096];
	stream_file(n, path, sizeof path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	if (got < 2 || (size_t)got == sizeof buf - 1 || buf[got - 1] != '\n')
		fail("cannot read a stream file");
	buf[got - 1] = '\0';
	char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	if (strlen(line) <= 2 * AUDIT_MAC_BYTES + 1 || line[2 * AUDIT_MAC_BYTES] != ' ')
		fail("a stream file's line is not '<MAC hex> <record>'");
	memcpy(hex, line, 2 * AUDIT_MAC_BYTES);
	hex[2 * AUDIT_MAC_BYTES] = '\0';
	char *rec = strdup(line + 2 * AUDIT_MAC_BYTES + 1);
	if (!rec)
		fail("out of memory");
	return rec;
}

/* What a broker that went on writing leaves is taken out again, so the
 * next step starts from a log that verifies (test_audit_stream.c does the
 * same): the rows after `seq` (what a fold copied of it), and the lines
 * it appended to its file since `m`, whose audit_fold row is put back.
 * Only stream records: the main chain's sealed state is left. */
static void drop_after(struct vault *v, int64_t seq, const struct stream_mark *m)
{
	char sql[256], path[PATH_MAX + 64];
	snprintf(sql, sizeof sql,
		 "DELETE FROM audit_secret WHERE seq > %lld; DELETE FROM audit_log WHERE seq > %lld;"
		 " UPDATE audit_fold SET folded = %lld, offset = %lld WHERE stream = %lld",
		 (long long)seq, (long long)seq, (long long)m->folded, (long long)m->offset, (long long)m->stream);
	if (sqlite3_exec(vault_db(v), sql, NULL, NULL, NULL) != SQLITE_OK || sqlite3_changes(vault_db(v)) != 1)
		fail("cannot delete the records after a step");
	stream_file(m->stream, path, sizeof path);
	if (truncate(path, m->size) != 0)
		fail("cannot cut a stream file back");
}

static void make_stream_log(struct stream_log *out)
{
	make_vault_dir();
	struct secbuf *pass = secret_of(FUZZ_PASSPHRASE), *fixed = secret_of(FIXED_KEY);
	if (vault_create_recorded(dir, pass, VAULT_KDF_INTERACTIVE, record_hook, fixed) != 0)
		fail("vault_create_recorded failed");
	struct vault *v = NULL;
	if (vault_open(dir, &v) != 0)
		fail("vault_open failed");
	vault_on_change(v, record_hook, fixed);
	if (vault_unlock(v, pass) != 0)
		fail("vault_unlock failed");
	struct secbuf *writer = NULL, *own = NULL;
	if (vault_key(v, "audit-writer", false, &writer) != 0 || vault_key(v, "audit-verifier", false, &own) != 0)
		fail("vault_key failed");

	set_value(v, "api-key", "test-value-one");
	struct secbuf *keys1 = stream_begin(v, writer, fixed);
	struct audit_stream *s1 = stream_open(keys1);
	broker(s1, "release");
	broker(s1, "exit");
	set_value(v, "team/db.password", "test-value-two"); /* the main chain between two stream records */
	broker(s1, "deny");
	broker(s1, "revoke");
	broker(s1, "lost");
	broker(s1, "stop");
	struct secbuf *keys2 = stream_begin(v, writer, fixed); /* closes stream 1 */
	struct audit_stream *s2 = stream_open(keys2);
	broker(s2, "release");
	set_value(v, "api-key", "test-value-one-v2");
	broker(s2, "exit");
	if (vault_rekey(v, NULL) != 0) /* closes stream 2 in the rekey's transaction */
		fail("vault_rekey failed");
	struct secbuf *keys3 = stream_begin(v, writer, fixed);
	out->keys4 = stream_begin(v, writer, fixed); /* closes stream 3, which has no records */
	struct audit_stream *s4 = stream_open(out->keys4);
	broker(s4, "release");
	set_value(v, "team/db.password", "test-value-two-v2");
	broker(s4, "exit"); /* the head is a stream record */
	db_expect(v, writer, fixed, AUDIT_OK, 0, S_RECORDS, "the stream vault");
	memset(&out->head, 0, sizeof out->head);
	if (audit_head(vault_db(v), &out->head) != 0 || out->head.seq != S_RECORDS)
		fail("audit_head failed on the stream vault");
	out->full = export_text(v);

	/* The broker goes on after its own stop. Its stream is open: both
	 * records are folded (verify and export fold first), as seq
	 * S_RECORDS + 1 and + 2. */
	struct stream_mark m;
	mark_stream(v, 4, &m);
	broker(s4, "stop");
	broker(s4, "release");
	db_expect(v, writer, fixed, AUDIT_TAMPERED, S_RECORDS + 2, S_RECORDS + 1, "a record after the stop");
	out->after_stop = export_text(v);
	drop_after(v, S_RECORDS, &m);
	db_expect(v, writer, fixed, AUDIT_OK, 0, S_RECORDS, "the stream vault after the cut");

	/* A broker goes on after the next one's enrolment closed its stream. */
	struct secbuf *keys5 = stream_begin(v, writer, fixed);
	struct audit_stream *s5 = stream_open(keys5);
	broker(s5, "release");
	struct secbuf *keys6 = stream_begin(v, writer, fixed);
	mark_stream(v, 5, &m);
	broker(s5, "exit");
	/* A closed stream is never folded again: the exit is in stream 5's
	 * file only. verify finds it there, past the table's last record
	 * (walk_file_tails: no seq, first_bad 0); the export, made of the
	 * table's rows, does not hold it. The line an index would have held
	 * for it is added to the export by hand: verifying the export must
	 * find it at its seq, as the vault's verify finds it in the file. */
	db_expect(v, writer, fixed, AUDIT_TAMPERED, 0, S_RECORDS + 5, "a record after the close");
	char *text = export_text(v), mac5[2 * AUDIT_MAC_BYTES + 1];
	char *rec5 = stream_last_line(5, mac5);
	json_t *line = json_pack("{s:I, s:s, s:s, s:I}", "seq", (json_int_t)(S_RECORDS + 6), "record", rec5, "mac",
				 mac5, "stream", (json_int_t)5);
	char *dumped = line ? json_dumps(line, JSON_COMPACT) : NULL;
	if (!dumped)
		fail("cannot make the line of the exit after the close");
	struct text t = {NULL, 0};
	add(&t, text);
	add(&t, dumped);
	add(&t, "\n");
	out->after_close = t.p;
	free(dumped);
	json_decref(line);
	free(rec5);
	free(text);
	drop_after(v, S_RECORDS + 5, &m);
	db_expect(v, writer, fixed, AUDIT_OK, 0, S_RECORDS + 5, "the stream vault after the second cut");

	/* An enrolment whose stream key is sealed under the vault's own
	 * verifier key, which is not the one this log answers to: its MAC
	 * verifies, what it says does not. */
	struct secbuf *keys7 = stream_begin(v, writer, own);
	db_expect(v, writer, fixed, AUDIT_TAMPERED, S_RECORDS + 7, S_RECORDS + 6, "an enrolment under another key");
	out->foreign = export_text(v);

	audit_stream_free(s1);
	audit_stream_free(s2);
	audit_stream_free(s4);
	audit_stream_free(s5);
	secbuf_free(keys1);
	secbuf_free(keys2);
	secbuf_free(keys3);
	secbuf_free(keys5);
	secbuf_free(keys6);
	secbuf_free(keys7);
	secbuf_free(writer);
	secbuf_free(own);
	vault_close(v);
	secbuf_free(fixed);
	secbuf_free(pass);
	remove_vault_dir();
}

/* ---- building the variants ---- */

/* An export as lines, each with its '\n' (the last may lack one). */
struct lines {
	char *l[64];
	size_t n;
};

static void split(const char *text, struct lines *out)
{
	out->n = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
		if (out->n == sizeof out->l / sizeof out->l[0])
			fail("the export has too many lines");
		if (!(out->l[out->n++] = strndup(p, n)))
			fail("out of memory");
		p += n;
	}
}

static void free_lines(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->l[i]);
	ls->n = 0;
}

/* A record line rebuilt with one field replaced by `value` (raw JSON). */
static char *with_field(const char *line, const char *key, const char *value)
{
	json_error_t err;
	json_t *o = json_loads(line, 0, &err), *v = json_loads(value, JSON_DECODE_ANY, &err);
	if (!o || !v || json_object_set_new(o, key, v) != 0)
		fail("cannot rebuild a record line");
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		fail("cannot rebuild a record line");
	struct text t = {NULL, 0};
	add(&t, s);
	add(&t, "\n");
	free(s);
	return t.p;
}

/* A record line whose record text has one byte changed at `pos`. */
static char *record_flipped(const char *line, size_t pos)
{
	json_error_t err;
	json_t *o = json_loads(line, 0, &err);
	json_t *rec = json_object_get(o, "record");
	if (!json_is_string(rec) || json_string_length(rec) <= pos)
		fail("a record line without a record");
	char *r = strndup(json_string_value(rec), json_string_length(rec));
	if (!r)
		fail("out of memory");
	r[pos] = r[pos] == 'e' ? 'E' : 'e';
	json_object_set_new(o, "record", json_string(r));
	free(r);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	struct text t = {NULL, 0};
	add(&t, s);
	add(&t, "\n");
	free(s);
	return t.p;
}

/* The header with its "origin" (or "log_id") hex replaced. */
static char *header_with_hex(const char *header, const char *key, const char *hex)
{
	char pat[32];
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = strstr(header, pat);
	if (!p)
		fail("the header has no such field");
	p += strlen(pat);
	const char *end = strchr(p, '"');
	if (!end || (size_t)(end - p) != strlen(hex))
		fail("the header's field has another length");
	char *s = strdup(header);
	if (!s)
		fail("out of memory");
	memcpy(s + (p - header), hex, strlen(hex));
	return s;
}

static void hex_of(const char *header, const char *key, unsigned char *bin, size_t n)
{
	char pat[32];
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = strstr(header, pat);
	size_t got = 0;
	if (!p || sodium_hex2bin(bin, n, p + strlen(pat), 2 * n, NULL, &got, NULL) != 0 || got != n)
		fail("cannot read a hex field of the header");
}

/* The header with the first key sealed again under `to` (it was under
 * `from`). */
static char *reseal_header(const char *header, const unsigned char *from, const unsigned char *to)
{
	unsigned char log_id[AUDIT_LOG_ID_BYTES], blob[ORIGIN_BLOB], ad[sizeof ORIGIN_LABEL + AUDIT_LOG_ID_BYTES];
	hex_of(header, "log_id", log_id, sizeof log_id);
	hex_of(header, "origin", blob, sizeof blob);
	memcpy(ad, ORIGIN_LABEL, sizeof ORIGIN_LABEL);
	memcpy(ad + sizeof ORIGIN_LABEL, log_id, AUDIT_LOG_ID_BYTES);
	struct secbuf *k1 = secbuf_new(AUDIT_KEY_BYTES);
	if (!k1 ||
	    crypto_aead_xchacha20poly1305_ietf_decrypt(k1->data, NULL, NULL, blob + NONCE_BYTES,
						       ORIGIN_BLOB - NONCE_BYTES, ad, sizeof ad, blob, from) != 0)
		fail("the real verifier key does not open the export's origin");
	randombytes_buf(blob, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(blob + NONCE_BYTES, NULL, k1->data, AUDIT_KEY_BYTES, ad, sizeof ad,
						   NULL, blob, to);
	secbuf_free(k1);
	char hex[2 * ORIGIN_BLOB + 1];
	sodium_bin2hex(hex, sizeof hex, blob, sizeof blob);
	return header_with_hex(header, "origin", hex);
}

/* ---- lines as JSON, and the chains' MACs ---- */

static json_t *parse_line(const char *line)
{
	json_error_t err;
	json_t *o = json_loads(line, 0, &err);
	if (!json_is_object(o))
		fail("cannot parse a line of an export");
	return o;
}

/* `o` as a line with its '\n' (malloc'd); takes `o`. */
static char *dump_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		fail("out of memory");
	struct text t = {NULL, 0};
	add(&t, s);
	add(&t, "\n");
	free(s);
	return t.p;
}

static void replace_line(struct lines *ls, size_t i, char *line)
{
	free(ls->l[i]);
	ls->l[i] = line;
}

static void copy_lines(const struct lines *from, struct lines *to)
{
	to->n = 0;
	for (size_t i = 0; i < from->n; i++)
		if (!(to->l[to->n++] = strdup(from->l[i])))
			fail("out of memory");
}

static void delete_line(struct lines *ls, size_t i)
{
	free(ls->l[i]);
	memmove(&ls->l[i], &ls->l[i + 1], (ls->n - i - 1) * sizeof ls->l[0]);
	ls->n--;
}

static void add_lines(struct text *t, const struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		add(t, ls->l[i]);
}

/* Line i's "stream" (0: none, the main chain) and its record's event. */
static int64_t line_stream(const struct lines *ls, size_t i)
{
	json_t *o = parse_line(ls->l[i]);
	int64_t n = json_integer_value(json_object_get(o, "stream"));
	json_decref(o);
	return n;
}

static json_t *line_record(const struct lines *ls, size_t i)
{
	json_t *o = parse_line(ls->l[i]), *rec = json_object_get(o, "record");
	json_error_t err;
	json_t *r = json_is_string(rec) ? json_loadb(json_string_value(rec), json_string_length(rec), 0, &err) : NULL;
	json_decref(o);
	if (!json_is_object(r))
		fail("a line's record is not a JSON object");
	return r;
}

static bool line_is(const struct lines *ls, size_t i, int64_t stream, const char *event)
{
	json_t *r = line_record(ls, i);
	const char *e = json_string_value(json_object_get(r, "event"));
	bool yes = e && !strcmp(e, event) && line_stream(ls, i) == stream;
	json_decref(r);
	return yes;
}

/* Line i with one top-level field set to `value` (taken). */
static void set_line_field(struct lines *ls, size_t i, const char *key, json_t *value)
{
	json_t *o = parse_line(ls->l[i]);
	if (!value || json_object_set_new(o, key, value) != 0)
		fail("cannot rebuild a record line");
	replace_line(ls, i, dump_line(o));
}

static void renumber(struct lines *ls, size_t from)
{
	for (size_t i = from; i < ls->n; i++)
		set_line_field(ls, i, "seq", json_integer((json_int_t)i));
}

/* Line i's record text with one field set to `value` (taken), written
 * back in the same field order and form as audit/record.c writes it. */
static void set_record_field(struct lines *ls, size_t i, const char *key, json_t *value)
{
	json_t *r = line_record(ls, i);
	if (!value || json_object_set_new(r, key, value) != 0)
		fail("cannot rebuild a record");
	char *text = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	if (!text)
		fail("out of memory");
	set_line_field(ls, i, "record", json_string(text));
	free(text);
}

/* One chain's MACs as audit/mac.c makes them: for its record i,
 * HMAC-SHA-256(k_i, chain id || i || mac_{i-1} || len || record), all
 * integers 8 bytes little-endian, then k_{i+1} = crypto_kdf(k_i, 1,
 * "latchevo"). The keys here are the test logs' own, opened with the
 * public FIXED_KEY, so they live on the stack. */
struct chain {
	unsigned char id[16], k[AUDIT_KEY_BYTES], prev[AUDIT_MAC_BYTES];
	int64_t cseq;
};

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void chain_next(struct chain *c, const char *rec, size_t len, char hex[2 * AUDIT_MAC_BYTES + 1])
{
	unsigned char head[16 + 8 + AUDIT_MAC_BYTES + 8], mac[AUDIT_MAC_BYTES], next[AUDIT_KEY_BYTES];
	memcpy(head, c->id, 16);
	put_le64(head + 16, (uint64_t)(c->cseq + 1));
	memcpy(head + 24, c->prev, AUDIT_MAC_BYTES);
	put_le64(head + 24 + AUDIT_MAC_BYTES, (uint64_t)len);
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, c->k, AUDIT_KEY_BYTES);
	crypto_auth_hmacsha256_update(&st, head, sizeof head);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)rec, len);
	crypto_auth_hmacsha256_final(&st, mac);
	crypto_kdf_derive_from_key(next, sizeof next, 1, "latchevo", c->k);
	memcpy(c->k, next, sizeof next);
	memcpy(c->prev, mac, sizeof mac);
	c->cseq++;
	sodium_bin2hex(hex, 2 * AUDIT_MAC_BYTES + 1, mac, sizeof mac);
}

/* Walks chain `stream` of `ls` (0: the main chain, whose first key the
 * header's origin holds under FIXED_KEY; else `keys`, a stream's keys as
 * audit_stream_begin made them). With `remac`, writes each record's MAC;
 * without, checks it, which checks this copy of the MAC against
 * audit/mac.c. `c` is left ready for the chain's next record. */
static void walk_chain(struct lines *ls, int64_t stream, const struct secbuf *keys, bool remac, struct chain *c)
{
	memset(c, 0, sizeof *c);
	if (stream == 0) {
		unsigned char blob[ORIGIN_BLOB], ad[sizeof ORIGIN_LABEL + AUDIT_LOG_ID_BYTES];
		hex_of(ls->l[0], "log_id", c->id, AUDIT_LOG_ID_BYTES);
		hex_of(ls->l[0], "origin", blob, sizeof blob);
		memcpy(ad, ORIGIN_LABEL, sizeof ORIGIN_LABEL);
		memcpy(ad + sizeof ORIGIN_LABEL, c->id, AUDIT_LOG_ID_BYTES);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(c->k, NULL, NULL, blob + NONCE_BYTES,
							       ORIGIN_BLOB - NONCE_BYTES, ad, sizeof ad, blob,
							       (const unsigned char *)FIXED_KEY) != 0)
			fail("FIXED_KEY does not open the export's origin");
	} else {
		memcpy(c->id, keys->data + 8, 16);
		memcpy(c->k, keys->data + 8 + 16, AUDIT_KEY_BYTES);
	}
	for (size_t i = 1; i < ls->n; i++) {
		if (line_stream(ls, i) != stream)
			continue;
		json_t *o = parse_line(ls->l[i]);
		json_t *rec = json_object_get(o, "record");
		char hex[2 * AUDIT_MAC_BYTES + 1];
		chain_next(c, json_string_value(rec), json_string_length(rec), hex);
		if (!remac && strcmp(hex, json_string_value(json_object_get(o, "mac"))) != 0)
			fail("this copy of the record MAC differs from audit/mac.c's");
		bool same = !strcmp(hex, json_string_value(json_object_get(o, "mac")));
		if (remac && !same && json_object_set_new(o, "mac", json_string(hex)) == 0)
			replace_line(ls, i, dump_line(o));
		else
			json_decref(o);
	}
}

static void remac_main(struct lines *ls)
{
	struct chain c;
	walk_chain(ls, 0, NULL, true, &c);
	sodium_memzero(&c, sizeof c);
}

/* audit_stream_begin and audit_stream_close record the process that
 * made the enrol and close records from /proc/self: this binary's path
 * and the directory it ran in. They are replaced with the fixed ones
 * the other records carry, and the main chain MACed again. Each record
 * is first checked to be what jansson writes back unchanged, so that
 * nothing but those fields moves. */
static void scrub_process(struct lines *ls)
{
	struct chain c;
	walk_chain(ls, 0, NULL, false, &c);
	sodium_memzero(&c, sizeof c);
	for (size_t i = 1; i < ls->n; i++) {
		if (!line_is(ls, i, 0, "enrol") && !line_is(ls, i, 0, "close"))
			continue;
		json_t *o = parse_line(ls->l[i]), *r = line_record(ls, i);
		char *again = json_dumps(r, JSON_COMPACT);
		if (!again || strcmp(again, json_string_value(json_object_get(o, "record"))) != 0 ||
		    json_object_get(r, "exe_hex") || json_object_get(r, "cwd_hex"))
			fail("an enrol or close record is not what jansson writes back");
		free(again);
		json_decref(o);
		json_decref(r);
		set_record_field(ls, i, "pid", json_integer(4242));
		set_record_field(ls, i, "uid", json_integer(1000));
		set_record_field(ls, i, "exe", json_string("/usr/local/bin/latch"));
		set_record_field(ls, i, "cwd", json_string("/home/fuzz"));
	}
	remac_main(ls);
}

/* A record of stream 4 made by hand with its key, appended to `ls` as
 * the log's next record: what someone holding a live broker's keys could
 * write to its file, as a fold would have indexed it. Stream 4 is kept in
 * a file, so its head is audit/record.c's head_begin_stream: the stream
 * and the record's place in it, {"stream":4,"n":I,"time":T,"event":"E"
 * (what verify.c's names_stream and record_event read), and no seq and no
 * trailing "stream". With `event` NULL, a record without one. */
static void forge_stream_record(struct lines *ls, const struct secbuf *keys4, const char *event)
{
	struct chain c;
	walk_chain(ls, 4, keys4, false, &c);
	json_t *last = line_record(ls, ls->n - 1);
	int64_t seq = (int64_t)ls->n, n = c.cseq + 1, t = json_integer_value(json_object_get(last, "time"));
	json_decref(last);
	char rec[256];
	if (event)
		snprintf(rec, sizeof rec,
			 "{\"stream\":4,\"n\":%lld,\"time\":%lld,\"event\":\"%s\",\"secrets\":[\"api-key\"],"
			 "\"secret_ids\":[1],\"version\":1,\"pid\":5151,\"uid\":1000}",
			 (long long)n, (long long)t, event);
	else
		snprintf(rec, sizeof rec,
			 "{\"stream\":4,\"n\":%lld,\"time\":%lld,\"secrets\":[\"api-key\"],\"pid\":5151}", (long long)n,
			 (long long)t);
	char hex[2 * AUDIT_MAC_BYTES + 1];
	chain_next(&c, rec, strlen(rec), hex);
	sodium_memzero(&c, sizeof c);
	json_t *o = json_pack("{s:I, s:s, s:s, s:I}", "seq", (json_int_t)seq, "record", rec, "mac", hex, "stream",
			      (json_int_t)4);
	if (!o || ls->n == sizeof ls->l / sizeof ls->l[0])
		fail("cannot forge a record");
	ls->l[ls->n++] = dump_line(o);
}

/* A lowercase hex digit of a field's value changed (at its `at`th digit). */
static void flip_hex_field(struct lines *ls, size_t i, const char *key, size_t at)
{
	json_t *r = line_record(ls, i);
	const char *hex = json_string_value(json_object_get(r, key));
	if (!hex || strlen(hex) <= at)
		fail("a record without that hex field");
	char *h = strdup(hex);
	if (!h)
		fail("out of memory");
	h[at] = h[at] == '0' ? '1' : '0';
	json_decref(r);
	set_record_field(ls, i, key, json_string(h));
	free(h);
}

struct variant {
	const char *name;
	struct text t;
	int rc;                     /* expected return */
	enum audit_verdict verdict; /* when rc == 0 */
	int64_t first_bad, records;
};

static struct variant variants[80];
static size_t n_variants;

static struct text *variant(const char *name, int rc, enum audit_verdict verdict, int64_t first_bad, int64_t records)
{
	if (n_variants == sizeof variants / sizeof variants[0])
		fail("too many variants");
	struct variant *v = &variants[n_variants++];
	v->name = name;
	v->t.p = NULL;
	v->t.len = 0;
	add(&v->t, ""); /* an empty text is still a buffer */
	v->rc = rc;
	v->verdict = verdict;
	v->first_bad = first_bad;
	v->records = records;
	return &v->t;
}

/* Header h, then the lines of `ls` named by `order` (1-based record
 * indexes into ls->l, 0 ends). */
static void add_records(struct text *t, const struct lines *ls, const int *order)
{
	for (; *order; order++)
		add(t, ls->l[*order]);
}

static void build_variants(const char *real, const unsigned char *real_key)
{
	struct lines ls;
	split(real, &ls);
	if (ls.n != 5)
		fail("the real export does not have a header and 4 record lines");
	const unsigned char *fixed = (const unsigned char *)FIXED_KEY;
	char *h = reseal_header(ls.l[0], real_key, fixed);
	static const int all[] = {1, 2, 3, 4, 0};
	struct text *t;

	/* Intact. */
	t = variant("export-4-records", 0, AUDIT_OK, 0, 4);
	add(t, h);
	add_records(t, &ls, all);
	t = variant("export-real-key", 0, AUDIT_UNVERIFIABLE, 0, 0); /* as exported: not under FIXED_KEY */
	add(t, real);
	t = variant("export-truncated-to-2", 0, AUDIT_OK, 0, 2); /* not detectable without a checkpoint */
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 0});
	t = variant("export-header-only", 0, AUDIT_OK, 0, 0);
	add(t, h);
	t = variant("export-header-no-newline", 0, AUDIT_OK, 0, 0);
	add_bytes(t, h, strlen(h) - 1);
	t = variant("export-no-final-newline", 0, AUDIT_OK, 0, 4);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 3, 0});
	add_bytes(t, ls.l[4], strlen(ls.l[4]) - 1);
	t = variant("export-crlf", 0, AUDIT_OK, 0, 4);
	for (size_t i = 0; i < ls.n; i++) {
		const char *line = i ? ls.l[i] : h;
		add_bytes(t, line, strlen(line) - 1);
		add(t, "\r\n");
	}
	t = variant("export-extra-fields", 0, AUDIT_OK, 0, 4);
	add(t, h);
	for (int i = 1; i <= 4; i++) {
		char *l = with_field(ls.l[i], "note", "{\"x\":[1,2.5,null,\"\\u00e9\"]}");
		add(t, l);
		free(l);
	}

	/* Damaged records. */
	t = variant("export-record-2-flipped", 0, AUDIT_TAMPERED, 2, 1);
	add(t, h);
	add(t, ls.l[1]);
	char *l = record_flipped(ls.l[2], 30);
	add(t, l);
	free(l);
	add_records(t, &ls, (const int[]){3, 4, 0});
	t = variant("export-record-3-missing", 0, AUDIT_TAMPERED, 3, 2);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 4, 0});
	t = variant("export-records-2-3-swapped", 0, AUDIT_TAMPERED, 2, 1);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 3, 2, 4, 0});
	t = variant("export-record-2-twice", 0, AUDIT_TAMPERED, 3, 2);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 2, 3, 4, 0});
	t = variant("export-mac-4-flipped", 0, AUDIT_TAMPERED, 4, 3);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 3, 0});
	l = with_field(ls.l[4], "mac", "\"00000000000000000000000000000000000000000000000000000000000000ff\"");
	add(t, l);
	free(l);
	t = variant("export-mac-short", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	l = with_field(ls.l[1], "mac", "\"abcd\"");
	add(t, l);
	free(l);
	t = variant("export-seq-huge", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	l = with_field(ls.l[1], "seq", "9223372036854775807");
	add(t, l);
	free(l);
	t = variant("export-seq-negative", 0, AUDIT_TAMPERED, 2, 1);
	add(t, h);
	add(t, ls.l[1]);
	l = with_field(ls.l[2], "seq", "-9223372036854775808");
	add(t, l);
	free(l);
	t = variant("export-seq-string", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	l = with_field(ls.l[1], "seq", "\"1\"");
	add(t, l);
	free(l);
	t = variant("export-record-not-string", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	l = with_field(ls.l[1], "record", "{\"seq\":1}");
	add(t, l);
	free(l);
	t = variant("export-record-escaped-nul", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	add(t,
	    "{\"seq\":1,\"record\":\"{\\u0000}\",\"mac\":\"00000000000000000000000000000000000000000000000000000000000000ff\"}\n");
	t = variant("export-nul-in-line", 0, AUDIT_TAMPERED, 2, 1);
	add(t, h);
	add(t, ls.l[1]);
	add_bytes(t, ls.l[2], 10);
	add_bytes(t, "\0", 1);
	add(t, ls.l[2] + 11);
	t = variant("export-blank-line-at-end", 0, AUDIT_TAMPERED, 5, 4);
	add(t, h);
	add_records(t, &ls, all);
	add(t, "\n");
	t = variant("export-garbage-line", 0, AUDIT_TAMPERED, 3, 2);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 0});
	add(t, "not json at all\n");
	add_records(t, &ls, (const int[]){3, 4, 0});

	/* Damaged headers. */
	char hex[2 * ORIGIN_BLOB + 1];
	unsigned char blob[ORIGIN_BLOB];
	hex_of(h, "origin", blob, sizeof blob);
	blob[NONCE_BYTES] ^= 1;
	sodium_bin2hex(hex, sizeof hex, blob, sizeof blob);
	char *h2 = header_with_hex(h, "origin", hex);
	t = variant("export-origin-flipped", 0, AUDIT_UNVERIFIABLE, 0, 0);
	add(t, h2);
	add_records(t, &ls, all);
	free(h2);
	h2 = header_with_hex(h, "log_id", "00000000000000000000000000000000");
	t = variant("export-log-id-changed", 0, AUDIT_UNVERIFIABLE, 0, 0);
	add(t, h2);
	add_records(t, &ls, all);
	free(h2);
	hex[2 * (ORIGIN_BLOB - 1)] = '\0';
	h2 = strstr(h, "\"origin\":\"");
	struct text s = {NULL, 0};
	add_bytes(&s, h, (size_t)(h2 - h) + 10);
	add(&s, hex);
	add(&s, strchr(h2 + 10, '"'));
	t = variant("export-origin-short", -1, AUDIT_OK, 0, 0);
	add(t, s.p);
	add_records(t, &ls, all);
	free(s.p);
	t = variant("export-version-2", -1, AUDIT_OK, 0, 0);
	add(t, "{\"latch_audit_export\":2");
	add(t, h + strlen("{\"latch_audit_export\":1"));
	add_records(t, &ls, all);
	t = variant("export-verifier-string", -1, AUDIT_OK, 0, 0);
	s.p = NULL;
	s.len = 0;
	add_bytes(&s, h, (size_t)(strstr(h, "\"verifier\":") - h));
	add(&s, "\"verifier\":\"passphrase\"}\n");
	add(t, s.p);
	free(s.p);
	add_records(t, &ls, all);
	t = variant("export-records-only", -1, AUDIT_OK, 0, 0);
	add_records(t, &ls, all);
	t = variant("export-empty", -1, AUDIT_OK, 0, 0);
	t = variant("export-newline", -1, AUDIT_OK, 0, 0);
	add(t, "\n");
	t = variant("export-not-json", -1, AUDIT_OK, 0, 0);
	add(t, "latch audit export\nseq 1\n");
	t = variant("export-json-array", -1, AUDIT_OK, 0, 0);
	add(t, "[{\"latch_audit_export\":1}]\n");
	free(h);
	free_lines(&ls);
}

/* The broker-stream seeds, from the stream vault's exports (line i is
 * record i). */
static void build_stream_variants(const struct stream_log *x)
{
	struct lines full, ls;
	split(x->full, &full);
	if (full.n != S_RECORDS + 1)
		fail("the stream vault's export does not have a header and its records");
	scrub_process(&full);
	for (size_t i = 1; i <= S_RECORDS; i++)
		if (!line_is(&full, i, stream_log_shape[i].stream, stream_log_shape[i].event))
			fail("the stream vault's log is not the one stream_log_shape describes");
	struct text *t;

	/* Intact. */
	t = variant("export-streams", 0, AUDIT_OK, 0, S_RECORDS);
	add_lines(t, &full);
	t = variant("export-streams-cut-in-stream-1", 0, AUDIT_OK, 0, S_LOST1); /* the log's own tail: see audit.h */
	for (size_t i = 0; i <= S_LOST1; i++)
		add(t, full.l[i]);
	/* The control for the kind rule below: a release made by hand with
	 * stream 4's key verifies. */
	copy_lines(&full, &ls);
	forge_stream_record(&ls, x->keys4, "release");
	t = variant("export-streams-forged-release", 0, AUDIT_OK, 0, S_RECORDS + 1);
	add_lines(t, &ls);
	free_lines(&ls);

	/* A stream record changed, removed or put in another chain: no key
	 * needed. */
	copy_lines(&full, &ls);
	replace_line(&ls, S_DENY1, record_flipped(ls.l[S_DENY1], 30));
	t = variant("export-streams-record-flipped", 0, AUDIT_TAMPERED, S_DENY1, S_DENY1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	delete_line(&ls, S_EXIT1);
	t = variant("export-streams-record-deleted", 0, AUDIT_TAMPERED, S_EXIT1, S_EXIT1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	set_line_field(&ls, S_REL1, "stream", json_integer(2)); /* before stream 2's enrol */
	t = variant("export-streams-stream-1-as-2", 0, AUDIT_TAMPERED, S_REL1, S_REL1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	set_line_field(&ls, S_REL2, "stream", json_integer(1)); /* stream 1 is closed */
	t = variant("export-streams-stream-2-as-1", 0, AUDIT_TAMPERED, S_REL2, S_REL2 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	set_line_field(&ls, S_EXIT4, "stream", json_integer(9)); /* no enrol opened a stream 9 */
	t = variant("export-streams-stream-9", 0, AUDIT_TAMPERED, S_EXIT4, S_EXIT4 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	json_t *o = parse_line(ls.l[S_DENY1]);
	json_object_del(o, "stream"); /* a main-chain record now: its MAC is wrong there */
	replace_line(&ls, S_DENY1, dump_line(o));
	t = variant("export-streams-stream-dropped", 0, AUDIT_TAMPERED, S_DENY1, S_DENY1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	set_line_field(&ls, S_REL1, "stream", json_string("1"));
	t = variant("export-streams-stream-string", 0, AUDIT_TAMPERED, S_REL1, S_REL1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);

	/* Made with stream 4's key, but of a kind only a passphrase holder
	 * may make. */
	copy_lines(&full, &ls);
	forge_stream_record(&ls, x->keys4, "set");
	t = variant("export-streams-broker-set", 0, AUDIT_TAMPERED, S_RECORDS + 1, S_RECORDS);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	forge_stream_record(&ls, x->keys4, "enrol");
	t = variant("export-streams-broker-enrol", 0, AUDIT_TAMPERED, S_RECORDS + 1, S_RECORDS);
	add_lines(t, &ls);
	free_lines(&ls);
	/* Records whose MAC verifies but which name no event. */
	copy_lines(&full, &ls);
	forge_stream_record(&ls, x->keys4, NULL);
	t = variant("export-streams-broker-no-event", 0, AUDIT_TAMPERED, S_RECORDS + 1, S_RECORDS);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	forge_stream_record(&ls, x->keys4, "");
	t = variant("export-streams-broker-empty-event", 0, AUDIT_TAMPERED, S_RECORDS + 1, S_RECORDS);
	add_lines(t, &ls);
	free_lines(&ls);

	/* Written by the brokers themselves (make_stream_log); after-close's
	 * last line, the exit stream 5's broker wrote after its close, taken
	 * from its file (no fold copies it into the export). */
	split(x->after_stop, &ls);
	scrub_process(&ls);
	t = variant("export-streams-after-stop", 0, AUDIT_TAMPERED, S_RECORDS + 2, S_RECORDS + 1);
	add_lines(t, &ls);
	free_lines(&ls);
	split(x->after_close, &ls);
	scrub_process(&ls);
	t = variant("export-streams-after-close", 0, AUDIT_TAMPERED, S_RECORDS + 6, S_RECORDS + 5);
	add_lines(t, &ls);
	free_lines(&ls);
	split(x->foreign, &ls);
	scrub_process(&ls);
	t = variant("export-streams-enrol-foreign-key", 0, AUDIT_TAMPERED, S_RECORDS + 7, S_RECORDS + 7 - 1);
	add_lines(t, &ls);
	free_lines(&ls);

	/* enrol and close records changed. As edited, the main chain's MAC
	 * catches them; MACed again with the main chain's first key (which
	 * FIXED_KEY opens: a forger holding the verifier key), only the
	 * walker's stream rules do. */
	copy_lines(&full, &ls);
	flip_hex_field(&ls, S_ENROL1, "origin", 60);
	t = variant("export-streams-enrol-origin-flipped", 0, AUDIT_TAMPERED, S_ENROL1, S_ENROL1 - 1);
	add_lines(t, &ls);
	remac_main(&ls);
	t = variant("export-streams-enrol-origin-remac", 0, AUDIT_TAMPERED, S_ENROL1, S_ENROL1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	set_record_field(&ls, S_ENROL2, "opens", json_integer(3));
	remac_main(&ls);
	t = variant("export-streams-enrol-opens-3", 0, AUDIT_TAMPERED, S_ENROL2, S_ENROL2 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	set_record_field(&ls, S_CLOSE1, "event", json_string("note")); /* stream 1 is never closed */
	remac_main(&ls);
	t = variant("export-streams-enrol-while-open", 0, AUDIT_TAMPERED, S_ENROL2, S_ENROL2 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	set_record_field(&ls, S_CLOSE1, "closes", json_integer(2));
	remac_main(&ls);
	t = variant("export-streams-close-not-open", 0, AUDIT_TAMPERED, S_CLOSE1, S_CLOSE1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	set_record_field(&ls, S_CLOSE1, "last_seq", json_integer(S_LOST1));
	remac_main(&ls);
	t = variant("export-streams-close-last-seq", 0, AUDIT_TAMPERED, S_CLOSE1, S_CLOSE1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	flip_hex_field(&ls, S_CLOSE1, "last_mac", 0);
	remac_main(&ls);
	t = variant("export-streams-close-last-mac", 0, AUDIT_TAMPERED, S_CLOSE1, S_CLOSE1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	o = parse_line(ls.l[S_CLOSE1]);
	json_t *rec = json_object_get(o, "record"); /* without its final "}": not JSON */
	set_line_field(&ls, S_CLOSE1, "record", json_stringn(json_string_value(rec), json_string_length(rec) - 1));
	json_decref(o);
	remac_main(&ls);
	t = variant("export-streams-close-not-json", 0, AUDIT_TAMPERED, S_CLOSE1, S_CLOSE1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	set_record_field(&ls, S_CLOSE3, "last_seq", json_integer(S_ENROL3)); /* stream 3 has no records */
	remac_main(&ls);
	t = variant("export-streams-close-empty-last-seq", 0, AUDIT_TAMPERED, S_CLOSE3, S_CLOSE3 - 1);
	add_lines(t, &ls);
	free_lines(&ls);

	/* No key: a closed stream's last record cut, the lines after it
	 * renumbered so that no seq is missing. Its close names the record
	 * that is gone. */
	copy_lines(&full, &ls);
	delete_line(&ls, S_STOP1);
	renumber(&ls, S_STOP1);
	t = variant("export-streams-close-after-cut", 0, AUDIT_TAMPERED, S_STOP1, S_STOP1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);

	/* A line's seq must be its record's (the MAC covers the record's).
	 * A stream record's text names no seq, only its place in its
	 * stream ({"stream":N,"n":I,...), but the main-chain records around
	 * it name theirs: moving a stream record across one (keeping its
	 * stream's order) moves that one off its seq, and a record cut from
	 * the middle of the open stream moves the next main-chain one. Both
	 * are found at the first main-chain record that moved. */
	copy_lines(&full, &ls);
	char *swap = ls.l[S_EXIT1];
	ls.l[S_EXIT1] = ls.l[S_SET2];
	ls.l[S_SET2] = swap;
	set_line_field(&ls, S_EXIT1, "seq", json_integer(S_EXIT1));
	set_line_field(&ls, S_SET2, "seq", json_integer(S_SET2));
	t = variant("export-streams-reordered", 0, AUDIT_TAMPERED, S_EXIT1, S_EXIT1 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	copy_lines(&full, &ls);
	while (ls.n > S_SET4 + 1)
		delete_line(&ls, ls.n - 1);
	delete_line(&ls, S_REL4);
	renumber(&ls, S_REL4);
	t = variant("export-streams-open-stream-cut", 0, AUDIT_TAMPERED, S_REL4, S_REL4 - 1);
	add_lines(t, &ls);
	free_lines(&ls);
	free_lines(&full);
}

static void self_check(void)
{
	long before = secmem_in_use();
	unsigned char real_key[AUDIT_KEY_BYTES];
	struct audit_checkpoint head;
	size_t len = 0;
	char *real = make_real_export(&len, real_key, &head);

	/* The real export with the real verifier key. */
	struct audit_report r;
	struct opener o = {real_key, false, 0};
	int rc = verify(real, len, &o, NULL, &r);
	check_report(rc, &r, &o);
	if (rc != 0 || r.verdict != AUDIT_OK || r.records != 4 || !same_head(&r.head, &head))
		fail("self-check: a real export does not verify OK with its verifier key");
	o.calls = 0;
	rc = verify(real, len, &o, &head, &r);
	check_report(rc, &r, &o);
	if (rc != 0 || r.verdict != AUDIT_OK || r.records != 4)
		fail("self-check: a real export does not verify OK against audit_head's checkpoint");
	check_checkpoints((const uint8_t *)real, len, real_key, &r);
	build_variants(real, real_key);

	/* The stream vault's export as written: OK under FIXED_KEY, with the
	 * head audit_head gives, a stream record. */
	struct stream_log sl = {0};
	make_stream_log(&sl);
	const unsigned char *fixed = (const unsigned char *)FIXED_KEY;
	o = (struct opener){fixed, false, 0};
	rc = verify(sl.full, strlen(sl.full), &o, NULL, &r);
	check_report(rc, &r, &o);
	if (rc != 0 || r.verdict != AUDIT_OK || r.records != S_RECORDS || !same_head(&r.head, &sl.head))
		fail("self-check: the stream vault's export does not verify OK");
	check_checkpoints((const uint8_t *)sl.full, strlen(sl.full), fixed, &r);
	build_stream_variants(&sl);

	const char *seeds = getenv("LATCH_FUZZ_EXPORT_SEEDS");
	for (size_t i = 0; i < n_variants; i++) {
		struct variant *v = &variants[i];
		struct opener f = {fixed, false, 0};
		rc = verify(v->t.p, v->t.len, &f, NULL, &r);
		check_report(rc, &r, &f);
		bool want = rc == v->rc && (rc != 0 || (r.verdict == v->verdict && r.first_bad == v->first_bad &&
							r.records == v->records));
		if (!want) {
			fprintf(stderr,
				"fuzz_export: self-check: %s: rc %d verdict %d first_bad %lld records %lld (%s)\n",
				v->name, rc, (int)r.verdict, (long long)r.first_bad, (long long)r.records,
				rc == 0 ? r.reason : "failed");
			fail("self-check: a variant got another verdict than expected");
		}
		if (seeds) {
			char path[PATH_MAX];
			snprintf(path, sizeof path, "%s/%s", seeds, v->name);
			FILE *out = fopen(path, "we");
			if (!out || fwrite(v->t.p, 1, v->t.len, out) != v->t.len || fclose(out) != 0)
				fail("cannot write a seed");
		}
		free(v->t.p);
	}
	free(real);
	free(sl.full);
	free(sl.after_stop);
	free(sl.after_close);
	free(sl.foreign);
	secbuf_free(sl.keys4);
	sodium_memzero(real_key, sizeof real_key);
	secmem_check(before, "the self-check");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0 || vault_add_tables(&audit_tables) != 0)
			fail("cannot initialise libsodium");
		latch_error_quiet(true);
		self_check();
		ready = true;
	}
	long before = secmem_in_use();
	const unsigned char *key = (const unsigned char *)FIXED_KEY;
	struct audit_report r;
	struct opener o = {key, false, 0};
	int rc = verify(data, size, &o, NULL, &r);
	check_report(rc, &r, &o);
	if (rc == 0 && r.verdict == AUDIT_OK)
		check_checkpoints(data, size, key, &r);
	if (o.calls) {
		/* The same input with an opener that fails: the call fails. */
		struct audit_report r2;
		struct opener refuse = {key, true, 0};
		if (verify(data, size, &refuse, NULL, &r2) != -1 || refuse.calls != 1 ||
		    latch_last_status() != LATCH_DENIED)
			fail("a failed opener did not fail the verification");
	}
	secmem_check(before, "verifying an export");
	return 0;
}
