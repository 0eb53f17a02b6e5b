/* Unit test: broker streams (docs/threat-model.md P5, P7). A broker appends to a
 * chain of its own that a passphrase holder opened; the key it holds can
 * never make a record that only a passphrase holder may (a forged "set" is
 * tampering), nor add to its stream once it ended (a new broker, a rekey,
 * its own stop). Also: the release check's digest of the secrets table,
 * and a log from before the digest upgraded through a full verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit_fixture.h"

#include <sys/resource.h>

#define STREAM_KEYS_BYTES (8 + 16 + 32 + 32)

static void set_str(struct afx *f, const char *name, const char *value)
{
	struct secbuf *b = afx_secstr(value);
	assert_non_null(b);
	assert_int_equal(vault_set(f->v, name, b, NULL), 0);
	secbuf_free(b);
}

/* A stream opened for a (pretend) broker with pid 4242: its keys. */
static struct secbuf *begin(struct afx *f)
{
	struct secbuf *keys = NULL;
	assert_int_equal(audit_stream_begin(f->db, f->writer, f->verifier, vault_rows, f->v, 4242, &keys), 0);
	assert_non_null(keys);
	assert_int_equal(keys->len, STREAM_KEYS_BYTES);
	return keys;
}

static struct audit_stream *open_stream(struct afx *f, const struct secbuf *keys)
{
	struct audit_stream *s = NULL;
	assert_int_equal(audit_stream_open(keys, f->dir, &s), 0);
	return s;
}

static int append(struct audit_stream *s, const char *event, const char *decision)
{
	bool loud = getenv("AFX_LOUD") != NULL;
	struct audit_secret_ref ref = {"db", 0};
	struct audit_event ev = {.event = event,
				 .decision = decision,
				 .secrets = &ref,
				 .n_secrets = 1,
				 .grant_id = "g-000000000001",
				 .pid = 777,
				 .uid = 1000,
				 .exe = "/usr/bin/psql"};
	latch_error_quiet(!loud);
	int rc = audit_stream_append(s, &ev, 1);
	latch_error_quiet(false);
	return rc;
}

/* The newest seq, once what the streams hold is folded in (as every
 * reader does first). */
static int64_t last_seq(struct afx *f)
{
	assert_int_equal(audit_fold(f->db, false), 0);
	return afx_int(f->db, "SELECT max(seq) FROM audit_log");
}

/* The secrets table and the log as a passphrase holder leaves them. */
static void with_secret(struct afx *f)
{
	set_str(f, "db", "postgres://u:pw@db/x");
}

static void stream_path(struct afx *f, int64_t n, char out[PATH_MAX])
{
	int k = snprintf(out, PATH_MAX, "%s/audit/stream-%lld", f->dir, (long long)n);
	assert_true(k > 0 && k < PATH_MAX);
}

/* A stream file as lines (each with its newline), to edit and put back. */
struct lines {
	char *l[64];
	size_t n;
	char *rest; /* bytes after the last newline */
};

static void read_lines(struct afx *f, int64_t n, struct lines *ls)
{
	char path[PATH_MAX];
	size_t len;
	stream_path(f, n, path);
	char *text = (char *)afx_read_file(path, &len), *p = text;
	memset(ls, 0, sizeof *ls);
	for (char *nl; (nl = memchr(p, '\n', len - (size_t)(p - text)));) {
		assert_true(ls->n < 64);
		ls->l[ls->n++] = strndup(p, (size_t)(nl - p + 1));
		p = nl + 1;
	}
	ls->rest = strndup(p, len - (size_t)(p - text));
	free(text);
}

static void write_lines(struct afx *f, int64_t n, struct lines *ls)
{
	char path[PATH_MAX];
	stream_path(f, n, path);
	size_t len = strlen(ls->rest);
	for (size_t i = 0; i < ls->n; i++)
		len += strlen(ls->l[i]);
	char *text = malloc(len + 1), *p = text;
	assert_non_null(text);
	for (size_t i = 0; i < ls->n; i++)
		p = stpcpy(p, ls->l[i]);
	strcpy(p, ls->rest);
	afx_write_file(path, text, len);
	free(text);
}

static void free_lines(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->l[i]);
	free(ls->rest);
	memset(ls, 0, sizeof *ls);
}

/* The verdict, and that its reason says `why`. */
static void expect_why(struct afx *f, const struct audit_checkpoint *cp, int64_t first_bad, const char *why,
		       const char *what)
{
	struct audit_report r;
	afx_verify(f, cp, &r);
	if (r.verdict != AUDIT_TAMPERED || r.first_bad != first_bad || !strstr(r.reason, why))
		fail_msg("%s: verdict %s, first bad %lld (want TAMPERED at %lld, \"%s\"): %s", what,
			 afx_verdict_name(r.verdict), (long long)r.first_bad, (long long)first_bad, why, r.reason);
}

static int count_row(const struct audit_row *r, void *ctx)
{
	(void)r;
	++*(int64_t *)ctx;
	return 0;
}

static void stream_records_verify(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(f, keys);
	assert_int_equal(audit_stream_number(s), 1);
	assert_int_equal(append(s, "release", "allow"), 0);
	assert_int_equal(append(s, "exit", NULL), 0);
	assert_int_equal(append(s, "release", "deny"), 0);
	assert_int_equal(append(s, "revoke", NULL), 0);
	assert_int_equal(append(s, "lost", NULL), 0);
	/* In the file at once, nothing in the tables until a reader folds. */
	struct lines ls;
	read_lines(f, 1, &ls);
	assert_int_equal(ls.n, 5);
	assert_string_equal(ls.rest, "");
	assert_non_null(strstr(ls.l[0], " {\"stream\":1,\"n\":1,\"time\":"));
	assert_non_null(strstr(ls.l[4], " {\"stream\":1,\"n\":5,\"time\":"));
	free_lines(&ls);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_log WHERE stream = 1"), 0);
	/* A main-chain append folds first: one sequence over both, in the
	 * order things happened. */
	int64_t before = afx_int(f->db, "SELECT max(seq) FROM audit_log");
	set_str(f, "other", "another value");
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_log WHERE stream = 1 AND seq > %lld",
				 (long long)before),
			 5);
	assert_int_equal(afx_int(f->db, "SELECT event = 'set' FROM audit_log WHERE seq = %lld", (long long)before + 6),
			 1);
	assert_int_equal(append(s, "stop", NULL), 0);
	int64_t n = last_seq(f);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_log WHERE stream = 1"), 6);
	/* A second fold finds nothing new: no row twice. */
	assert_int_equal(audit_fold(f->db, false), 0);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_log WHERE stream = 1"), 6);
	afx_expect_ok(f, NULL, n, "main chain and a stream");
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	afx_expect_ok(f, &cp, n, "with a checkpoint naming a stream record");
	/* A second broker: the first stream is closed where it ends. */
	struct secbuf *keys2 = begin(f);
	struct audit_stream *s2 = open_stream(f, keys2);
	assert_int_equal(audit_stream_number(s2), 2);
	assert_int_equal(append(s2, "release", "allow"), 0);
	afx_expect_ok(f, NULL, last_seq(f), "two streams");
	/* A query right after a release finds it: the fold runs first. */
	assert_int_equal(append(s2, "release", "allow"), 0);
	struct audit_filter q = {.secret = "db", .event = "release"};
	int64_t found = 0;
	assert_int_equal(audit_query(f->db, &q, count_row, &found), 0);
	assert_int_equal(found, 4); /* two in stream 1 (one denied), two in stream 2 */
	audit_stream_free(s);
	audit_stream_free(s2);
	secbuf_free(keys);
	secbuf_free(keys2);
}

static void stream_refuses_vault_events(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(f, keys);
	int64_t before = last_seq(f);
	static const char *const theirs[] = {"set",    "rm",   "grant", "reveal", "rekey",
					     "passwd", "init", "enrol", "close"};
	for (size_t i = 0; i < sizeof theirs / sizeof theirs[0]; i++)
		assert_int_equal(append(s, theirs[i], NULL), -1);
	struct lines ls;
	read_lines(f, 1, &ls);
	assert_int_equal(ls.n, 0);
	free_lines(&ls);
	assert_int_equal(last_seq(f), before);
	afx_expect_ok(f, NULL, before, "nothing written");
	audit_stream_free(s);
	secbuf_free(keys);
}

/* The agent holds a stream's keys (pretend it stole them from a broker)
 * and writes, by hand, the next record of that stream with a correct MAC
 * to its file. */
static void forge(struct afx *f, const struct secbuf *keys, const char *event, int64_t stream_no)
{
	unsigned char k[32], prev[32] = {0};
	memcpy(k, keys->data + 24, 32);
	struct lines ls;
	read_lines(f, stream_no, &ls);
	int64_t cseq = (int64_t)ls.n;
	size_t got;
	if (cseq)
		assert_int_equal(sodium_hex2bin(prev, 32, ls.l[cseq - 1], 64, NULL, &got, NULL), 0);
	for (int64_t i = 0; i < cseq; i++) {
		unsigned char next[32];
		crypto_kdf_derive_from_key(next, 32, 1, "latchevo", k);
		memcpy(k, next, 32);
	}
	char rec[512];
	int len = snprintf(rec, sizeof rec,
			   "{\"stream\":%lld,\"n\":%lld,\"time\":%lld,\"event\":\"%s\",\"secrets\":[\"db\"],"
			   "\"secret_ids\":[1],\"version\":1,\"pid\":777,\"uid\":1000}",
			   (long long)stream_no, (long long)(cseq + 1), (long long)time(NULL), event);
	unsigned char head[16 + 8 + 32 + 8], mac[32];
	memcpy(head, keys->data + 8, 16);
	for (int i = 0; i < 8; i++) {
		head[16 + i] = (unsigned char)((uint64_t)(cseq + 1) >> (8 * i));
		head[16 + 8 + 32 + i] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	memcpy(head + 24, prev, 32);
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, k, 32);
	crypto_auth_hmacsha256_update(&st, head, sizeof head);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)rec, (size_t)len);
	crypto_auth_hmacsha256_final(&st, mac);
	char line[700], hex[65];
	sodium_bin2hex(hex, sizeof hex, mac, 32);
	snprintf(line, sizeof line, "%s %s\n", hex, rec);
	assert_true(ls.n < 64);
	ls.l[ls.n++] = strdup(line);
	write_lines(f, stream_no, &ls);
	free_lines(&ls);
}

static void forged_set_with_a_broker_key_fails_verify(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(f, keys);
	assert_int_equal(append(s, "release", "allow"), 0);
	/* Control: the forger's MAC is right; a forged release verifies. */
	forge(f, keys, "release", 1);
	afx_expect_ok(f, NULL, last_seq(f), "a forged release (a broker's kind of record)");
	int64_t bad = last_seq(f) + 1;
	forge(f, keys, "set", 1);
	expect_why(f, NULL, bad, "a broker cannot make", "a set record made with a broker's key");
	audit_stream_free(s);
	secbuf_free(keys);
}

static void stream_key_useless_after_its_end(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(f, keys);
	assert_int_equal(append(s, "release", "allow"), 0);
	/* A fresh broker closes the first stream. */
	struct secbuf *keys2 = begin(f);
	int64_t closed_at = last_seq(f);
	assert_int_equal(append(s, "release", "allow"), 0); /* the old key, still in hand */
	/* Never folded (the stream is closed); verify reads the file. */
	assert_int_equal(last_seq(f), closed_at);
	expect_why(f, NULL, 0, "broker stream 1, record 2 was added to broker stream 1 after it ended",
		   "the old stream written after a new broker");
	struct lines ls;
	read_lines(f, 1, &ls);
	free(ls.l[--ls.n]);
	write_lines(f, 1, &ls);
	free_lines(&ls);
	afx_expect_ok(f, NULL, closed_at, "removed again");

	/* A rekey closes the open stream too (audit_record_change calls this in the
	 * rekey's transaction). */
	struct audit_stream *s2 = open_stream(f, keys2);
	assert_int_equal(append(s2, "release", "allow"), 0);
	afx_exec(f->db, "BEGIN IMMEDIATE");
	assert_int_equal(audit_stream_close(f->db, f->writer), 0);
	afx_exec(f->db, "COMMIT");
	afx_expect_ok(f, NULL, last_seq(f), "closed by a rekey");
	assert_int_equal(append(s2, "exit", NULL), 0);
	expect_why(f, NULL, 0, "after it ended", "the stream written after a rekey");
	audit_stream_free(s);
	audit_stream_free(s2);
	secbuf_free(keys);
	secbuf_free(keys2);
}

static void stop_ends_a_stream(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(f, keys);
	assert_int_equal(append(s, "stop", NULL), 0);
	int64_t bad = last_seq(f) + 1;
	assert_int_equal(append(s, "release", "allow"), 0);
	expect_why(f, NULL, bad, "after it ended", "a record after the broker's stop");
	audit_stream_free(s);
	secbuf_free(keys);
}

static void stream_no_one_opened(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	/* Keys the agent made up for a stream number no enrol record names:
	 * its own broker, started without a passphrase holder, with a file
	 * it made itself. */
	struct secbuf *keys = secbuf_new(STREAM_KEYS_BYTES);
	randombytes_buf(keys->data, STREAM_KEYS_BYTES);
	memset(keys->data, 0, 8);
	keys->data[0] = 7;
	keys->len = STREAM_KEYS_BYTES;
	char path[PATH_MAX], dir[PATH_MAX];
	int k = snprintf(dir, sizeof dir, "%s/audit", f->dir);
	assert_true(k > 0 && k < (int)sizeof dir);
	mkdir(dir, 0700);
	stream_path(f, 7, path);
	afx_write_file(path, "", 0);
	struct audit_stream *s = open_stream(f, keys);
	int64_t before = last_seq(f);
	assert_int_equal(append(s, "release", "allow"), 0);
	/* Not in the log (nothing folds it), but verify names the file. */
	assert_int_equal(last_seq(f), before);
	expect_why(f, NULL, 0, "which no passphrase holder opened", "a stream file no passphrase holder opened");
	/* And with a fold position added for it, its rows are named. */
	afx_exec(f->db, "INSERT INTO audit_fold (stream, folded, offset, closed) VALUES (7, 0, 0, 0)");
	expect_why(f, NULL, before + 1, "which no passphrase holder opened", "its records folded in");
	audit_stream_free(s);
	secbuf_free(keys);
}

/* A stream file and the index changed by hand: every change is named. */
static void stream_file_tampering(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(f, keys);
	for (int i = 0; i < 6; i++)
		assert_int_equal(append(s, i % 2 ? "exit" : "release", i % 2 ? NULL : "allow"), 0);
	int64_t last = last_seq(f), first = last - 5; /* stream 1's records are first..last */
	char path[PATH_MAX];
	stream_path(f, 1, path);
	size_t len;
	unsigned char *orig = afx_read_file(path, &len);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	struct lines ls;
	struct stat sb2;

	/* A byte of record 3 flipped (in its text, then in its MAC). */
	read_lines(f, 1, &ls);
	ls.l[2][100] ^= 1;
	write_lines(f, 1, &ls);
	free_lines(&ls);
	expect_why(f, NULL, first + 2, "record 3) does not match its MAC", "a flipped byte in a record");
	afx_write_file(path, orig, len);
	read_lines(f, 1, &ls);
	ls.l[2][5] = ls.l[2][5] == '0' ? '1' : '0';
	write_lines(f, 1, &ls);
	free_lines(&ls);
	expect_why(f, NULL, first + 2, "does not match its MAC", "a flipped byte in a MAC");
	afx_write_file(path, orig, len);
	afx_expect_ok(f, NULL, last, "put back");

	/* Record 3 removed from the file: folded, the index names it. */
	read_lines(f, 1, &ls);
	free(ls.l[2]);
	memmove(&ls.l[2], &ls.l[3], (ls.n - 3) * sizeof ls.l[0]);
	ls.n--;
	write_lines(f, 1, &ls);
	free_lines(&ls);
	expect_why(f, NULL, first + 2, "record 3) does not match its MAC", "a record removed from the file");
	afx_write_file(path, orig, len);

	/* The tail cut after it was folded (before any close): the index
	 * still has it. */
	read_lines(f, 1, &ls);
	free(ls.l[--ls.n]);
	free(ls.l[--ls.n]);
	write_lines(f, 1, &ls);
	free_lines(&ls);
	expect_why(f, NULL, last - 1, "is in the index but not in its stream's file", "the tail cut after a fold");
	afx_write_file(path, orig, len);
	afx_expect_ok(f, NULL, last, "put back again");

	/* The index edited: a row's record, a fold position moved past rows
	 * that were deleted, a fold position removed. */
	afx_exec(
		raw,
		"UPDATE audit_log SET record = CAST(replace(CAST(record AS TEXT), '\"uid\":1000', '\"uid\":1001') AS BLOB) WHERE seq = %lld",
		(long long)(first + 1));
	expect_why(f, NULL, first + 1, "the index's copy differs from the stream's file", "a folded row edited");
	afx_restore(raw, snap);
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = %lld; DELETE FROM audit_secret WHERE seq = %lld",
		 (long long)last, (long long)last);
	expect_why(f, NULL, 0, "records were taken out of the index", "the last folded row deleted");
	afx_restore(raw, snap);
	afx_exec(raw, "DELETE FROM audit_fold");
	expect_why(f, NULL, 0, "has no fold position", "the fold position deleted");
	afx_restore(raw, snap);
	afx_expect_ok(f, NULL, last, "put back");

	/* A record of stream 1 copied into stream 2's file. */
	struct secbuf *keys2 = begin(f); /* closes stream 1 */
	struct audit_stream *s2 = open_stream(f, keys2);
	assert_int_equal(append(s2, "release", "allow"), 0);
	int64_t two = last_seq(f);
	char path2[PATH_MAX];
	stream_path(f, 2, path2);
	assert_int_equal(stat(path2, &sb2), 0);
	read_lines(f, 1, &ls);
	struct lines ls2;
	read_lines(f, 2, &ls2);
	ls2.l[ls2.n++] = strdup(ls.l[1]);
	write_lines(f, 2, &ls2);
	free_lines(&ls2);
	free_lines(&ls);
	/* Its head names stream 1: the fold stops before it, verify reads it
	 * from the file and names it. */
	expect_why(f, NULL, 0, "broker stream 2, record 2 does not match its MAC", "a record moved to another stream");
	assert_int_equal(truncate(path2, sb2.st_size), 0);
	afx_expect_ok(f, NULL, two, "stream 2 put back");
	afx_release(f, snap);
	snap = afx_snapshot(f, raw);

	/* A closed stream's tail cut: the close record names where it ends. */
	afx_write_file(path, orig, len);
	read_lines(f, 1, &ls);
	free(ls.l[--ls.n]);
	write_lines(f, 1, &ls);
	free_lines(&ls);
	expect_why(f, NULL, last, "is in the index but not in its stream's file", "a closed stream's tail cut");
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = %lld; DELETE FROM audit_secret WHERE seq = %lld",
		 (long long)last, (long long)last);
	expect_why(f, NULL, last, "is missing", "... and its row deleted");
	afx_restore(raw, snap);
	afx_write_file(path, orig, len);

	/* The file removed. */
	assert_int_equal(unlink(path), 0);
	expect_why(f, NULL, first, "its stream's file is missing", "the stream's file removed");
	afx_write_file(path, orig, len);
	free(orig);
	afx_release(f, snap);
	afx_release(f, raw);
	audit_stream_free(s);
	audit_stream_free(s2);
	secbuf_free(keys);
	secbuf_free(keys2);
}

/* The tail of the open stream cut before any reader folded it: without a
 * checkpoint nothing can tell (it is the log's own tail); a checkpoint
 * taken after the records were written folds them first and so does. A
 * line cut short by a crash is not folded and verifies, with a note. */
static void stream_open_tail(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(f, keys);
	assert_int_equal(append(s, "release", "allow"), 0);
	char path[PATH_MAX];
	stream_path(f, 1, path);
	size_t len;
	unsigned char *one = afx_read_file(path, &len);
	assert_int_equal(append(s, "exit", NULL), 0);
	int64_t last = last_seq(f);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	assert_int_equal(cp.seq, last);
	assert_int_equal(append(s, "release", "allow"), 0);
	/* The newest record cut, unfolded: invisible without a checkpoint. */
	afx_write_file(path, one, len);
	sqlite3 *raw = afx_raw(f);
	afx_exec(raw,
		 "DELETE FROM audit_log WHERE seq = %lld; DELETE FROM audit_secret WHERE seq = %lld;"
		 "UPDATE audit_fold SET folded = 1, offset = %lld",
		 (long long)last, (long long)last, (long long)len);
	afx_expect_ok(f, NULL, last - 1, "the open stream's tail cut before a fold, no checkpoint");
	afx_expect(f, &cp, AUDIT_TAMPERED, last, "the open stream's tail cut before a fold, with a checkpoint");
	/* Half a line at the end: a write cut short. */
	afx_write_file(path, one, len);
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123abcd", 8), 8);
	close(fd);
	struct audit_report r;
	afx_verify(f, NULL, &r);
	assert_int_equal(r.verdict, AUDIT_OK);
	assert_non_null(strstr(r.reason, "cut short by a crash"));
	assert_int_equal(last_seq(f), last - 1);
	free(one);
	afx_release(f, raw);
	audit_stream_free(s);
	secbuf_free(keys);
}

/* An append that cannot be written (a file size limit: EFBIG, as a full
 * disk) fails whole: the file keeps only whole records, the chain does
 * not move, and the next append that can be written links on. */
static void stream_append_fails_whole(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(f, keys);
	assert_int_equal(append(s, "release", "allow"), 0);
	char path[PATH_MAX];
	stream_path(f, 1, path);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = (rlim_t)sb.st_size + 100; /* part of the next record fits */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(append(s, "exit", NULL), -1);
	assert_int_equal(append(s, "release", "allow"), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, was);
	struct stat now;
	assert_int_equal(stat(path, &now), 0);
	assert_int_equal(now.st_size, sb.st_size);
	assert_int_equal(append(s, "exit", NULL), 0);
	afx_expect_ok(f, NULL, last_seq(f), "after failed appends");
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_log WHERE stream = 1"), 2);
	audit_stream_free(s);
	secbuf_free(keys);
}

/* kill -9 of a reader in the middle of folding 3,000 records, 8 times:
 * the next fold takes up where the last commit left, and every record is
 * in the index exactly once. */
static void fold_killed(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(f, keys);
	int64_t before = afx_int(f->db, "SELECT max(seq) FROM audit_log");
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 375; i++)
			assert_int_equal(append(s, i % 2 ? "exit" : "release", i % 2 ? NULL : "allow"), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct vault *v = NULL;
			if (vault_open(f->dir, &v) != 0)
				_exit(3);
			_exit(audit_fold(vault_db(v), false) == 0 ? 0 : 3);
		}
		f->kids[f->nkids++] = pid;
		struct timespec nap = {0, (long)(randombytes_uniform(8000) * 1000)};
		nanosleep(&nap, NULL);
		kill(pid, SIGKILL);
		afx_reap_all(f);
	}
	assert_int_equal(audit_fold(f->db, false), 0);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_log WHERE stream = 1"), 3000);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_log WHERE seq > %lld", (long long)before), 3000);
	afx_expect_ok(f, NULL, before + 3000, "folds killed at random points");
	audit_stream_free(s);
	secbuf_free(keys);
}

/* Puts the row of `name` in `from` (a snapshot) back into `to`. */
static void copy_row(sqlite3 *from, sqlite3 *to, const char *name)
{
	sqlite3_stmt *st, *up;
	assert_int_equal(sqlite3_prepare_v2(from, "SELECT version, nonce, ciphertext FROM secrets WHERE name = ?1", -1,
					    &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(
		sqlite3_prepare_v2(to, "UPDATE secrets SET version = ?1, nonce = ?2, ciphertext = ?3 WHERE name = ?4",
				   -1, &up, NULL),
		SQLITE_OK);
	sqlite3_bind_int64(up, 1, sqlite3_column_int64(st, 0));
	sqlite3_bind_blob(up, 2, sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1), SQLITE_TRANSIENT);
	sqlite3_bind_blob(up, 3, sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2), SQLITE_TRANSIENT);
	sqlite3_bind_text(up, 4, name, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(up), SQLITE_DONE);
	sqlite3_finalize(up);
	sqlite3_finalize(st);
}

/* The release check: a rolled-back row, a row brought back, an edited
 * row all change the keyed digest of the secrets table. */
static void secrets_digest(void **state)
{
	struct afx *f = *state;
	set_str(f, "a", "first");
	sqlite3 *raw = afx_raw(f);
	sqlite3 *old = afx_snapshot(f, raw);
	set_str(f, "a", "second");
	set_str(f, "b", "bee");
	afx_exec(f->db, "BEGIN IMMEDIATE");
	assert_int_equal(audit_check_secrets(f->db, f->writer, f->verifier, vault_rows, f->v), 0);
	afx_exec(f->db, "COMMIT");
	sqlite3 *now = afx_snapshot(f, raw);
	static const char *const edits[] = {
		"UPDATE secrets SET version = version + 1 WHERE name = 'a'",
		"UPDATE secrets SET id = id + 100 WHERE name = 'b'",
		"DELETE FROM secrets WHERE name = 'b'",
		"INSERT INTO secrets (name, version, created, updated, nonce, ciphertext) VALUES ('c', 1, 0, 0, x'00', x'00')",
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		afx_exec(raw, "%s", edits[i]);
		afx_exec(f->db, "BEGIN IMMEDIATE");
		latch_error_quiet(true);
		if (audit_check_secrets(f->db, f->writer, f->verifier, vault_rows, f->v) == 0)
			fail_msg("the release check passed after: %s", edits[i]);
		latch_error_quiet(false);
		afx_exec(f->db, "ROLLBACK");
		afx_expect(f, NULL, AUDIT_TAMPERED, 0, edits[i]);
		afx_restore(raw, now);
	}
	/* The old row of 'a' put back from the copy. */
	copy_row(old, raw, "a");
	const char *names[] = {"a"};
	struct secbuf *out[1] = {NULL};
	latch_error_quiet(true);
	assert_int_equal(vault_read(f->v, names, 1, "release", out), -1);
	latch_error_quiet(false);
	assert_null(out[0]);
	afx_restore(raw, now);
	assert_int_equal(vault_read(f->v, names, 1, "release", out), 0);
	assert_int_equal(out[0]->len, strlen("second"));
	secbuf_free(out[0]);
	afx_release(f, now);
	afx_release(f, old);
	afx_release(f, raw);
}

/* A set over a row rolled back makes a version number twice: verify says
 * so (the record does not follow the one before it), and the digest no
 * longer matches the table, so nothing is released. */
static void version_made_twice(void **state)
{
	struct afx *f = *state;
	set_str(f, "db", "one");
	sqlite3 *raw = afx_raw(f);
	sqlite3 *old = afx_snapshot(f, raw);
	set_str(f, "db", "two");
	afx_expect_ok(f, NULL, last_seq(f), "two sets");
	copy_row(old, raw, "db");  /* version 1 back */
	set_str(f, "db", "three"); /* version 2, a second time */
	assert_int_equal(afx_int(f->db, "SELECT version FROM secrets WHERE name = 'db'"), 2);
	int64_t third = last_seq(f);
	struct audit_report r;
	afx_verify(f, NULL, &r);
	assert_int_equal(r.verdict, AUDIT_TAMPERED);
	assert_int_equal(r.first_bad, third);
	assert_non_null(strstr(r.reason, "does not follow"));
	const char *names[] = {"db"};
	struct secbuf *out[1] = {NULL};
	latch_error_quiet(true);
	assert_int_equal(vault_read(f->v, names, 1, "release", out), -1);
	latch_error_quiet(false);
	afx_release(f, old);
	afx_release(f, raw);
}

/* A rekey gives the log a new writer key: the one before (which an older
 * latch handed to its broker) opens nothing any more. */
static void rekey_rotates_the_writer_key(void **state)
{
	struct afx *f = *state;
	set_str(f, "db", "value");
	struct secbuf *old = afx_secbuf(f->writer->data, f->writer->len);
	int64_t count = 0;
	assert_int_equal(vault_rekey(f->v, &count), 0);
	struct secbuf *now = NULL;
	assert_int_equal(vault_key(f->v, "audit-writer", false, &now), 0);
	assert_memory_not_equal(now->data, old->data, 32);
	/* The old key cannot append, nor open the state. */
	struct audit_event ev = {.event = "release", .self = true};
	afx_exec(f->db, "BEGIN IMMEDIATE");
	latch_error_quiet(true);
	assert_int_equal(audit_append(f->db, old, NULL, &ev, NULL), -1);
	latch_error_quiet(false);
	afx_exec(f->db, "ROLLBACK");
	struct audit_report r;
	latch_error_quiet(true);
	assert_int_equal(audit_verify(f->db, old, f->verifier, NULL, vault_rows, f->v, &r), 0);
	latch_error_quiet(false);
	assert_int_not_equal(r.verdict, AUDIT_OK);
	/* The new one does; the log and the table verify. */
	secbuf_free(f->writer);
	f->writer = now;
	afx_expect_ok(f, NULL, last_seq(f), "after a rekey");
	const char *names[] = {"db"};
	struct secbuf *out[1] = {NULL};
	assert_int_equal(vault_read(f->v, names, 1, "release", out), 0);
	secbuf_free(out[0]);
	secbuf_free(old);
}

/* The state as latch before the digest sealed it: 72 bytes of seq, last
 * MAC and next key, under "latch-audit-state-v1". */
static void make_state_v1(struct afx *f)
{
	size_t len, idlen;
	unsigned char *blob = afx_state_blob(f->db, "state", &len);
	unsigned char *id = afx_state_blob(f->db, "log_id", &idlen);
	static const char v2[] = "latch-audit-state-v2", v1[] = "latch-audit-state-v1";
	unsigned char ad[64], plain[256];
	unsigned long long plen = 0;
	size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	memcpy(ad, v2, sizeof v2);
	memcpy(ad + sizeof v2, id, 16);
	assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, blob + nb, len - nb, ad,
								    sizeof v2 + 16, blob, f->writer->data),
			 0);
	assert_int_equal(plen, 128);
	unsigned char out[24 + 72 + 16];
	memcpy(ad, v1, sizeof v1);
	randombytes_buf(out, nb);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + nb, NULL, plain, 72, ad, sizeof v1 + 16, NULL, out,
						   f->writer->data);
	sqlite3 *raw = afx_raw(f);
	afx_set_state_blob(raw, "state", out, sizeof out);
	afx_release(f, raw);
	free(blob);
	free(id);
}

static void legacy_state_upgraded_once(void **state)
{
	struct afx *f = *state;
	set_str(f, "a", "one");
	set_str(f, "a", "two");
	make_state_v1(f);
	size_t len;
	free(afx_state_blob(f->db, "state", &len));
	assert_int_equal(len, 24 + 72 + 16);
	afx_expect_ok(f, NULL, last_seq(f), "a version 1 state verifies");
	/* A set on it keeps it as it is (no digest to follow yet). */
	set_str(f, "b", "bee");
	free(afx_state_blob(f->db, "state", &len));
	assert_int_equal(len, 24 + 72 + 16);
	/* The first release check verifies the whole log and seals the digest. */
	const char *names[] = {"a"};
	struct secbuf *out[1] = {NULL};
	assert_int_equal(vault_read(f->v, names, 1, "release", out), 0);
	secbuf_free(out[0]);
	free(afx_state_blob(f->db, "state", &len));
	assert_int_equal(len, 24 + 128 + 16);
	afx_expect_ok(f, NULL, last_seq(f), "upgraded");
	/* A vault rolled back before its upgrade is refused by it. */
	make_state_v1(f);
	sqlite3 *raw = afx_raw(f);
	afx_exec(raw, "UPDATE secrets SET version = 1 WHERE name = 'a'");
	afx_release(f, raw);
	latch_error_quiet(true);
	assert_int_equal(vault_read(f->v, names, 1, "release", out), -1);
	latch_error_quiet(false);
	free(afx_state_blob(f->db, "state", &len));
	assert_int_equal(len, 24 + 72 + 16);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(stream_records_verify, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(stream_refuses_vault_events, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(forged_set_with_a_broker_key_fails_verify, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(stream_key_useless_after_its_end, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(stop_ends_a_stream, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(stream_no_one_opened, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(stream_file_tampering, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(stream_open_tail, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(stream_append_fails_whole, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(fold_killed, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(secrets_digest, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(version_made_twice, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(rekey_rotates_the_writer_key, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(legacy_state_upgraded_once, afx_setup, afx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
