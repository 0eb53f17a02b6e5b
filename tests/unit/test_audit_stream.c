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

static struct audit_stream *open_stream(const struct secbuf *keys)
{
	struct audit_stream *s = NULL;
	assert_int_equal(audit_stream_open(keys, &s), 0);
	return s;
}

static int append(struct afx *f, struct audit_stream *s, const char *event, const char *decision)
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
	int rc = audit_stream_append_commit(f->db, s, &ev, 1);
	latch_error_quiet(false);
	return rc;
}

static int64_t last_seq(struct afx *f)
{
	return afx_int(f->db, "SELECT max(seq) FROM audit_log");
}

/* The secrets table and the log as a passphrase holder leaves them. */
static void with_secret(struct afx *f)
{
	set_str(f, "db", "postgres://u:pw@db/x");
}

static void stream_records_verify(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(keys);
	assert_int_equal(audit_stream_number(s), 1);
	assert_int_equal(append(f, s, "release", "allow"), 0);
	assert_int_equal(append(f, s, "exit", NULL), 0);
	assert_int_equal(append(f, s, "release", "deny"), 0);
	assert_int_equal(append(f, s, "revoke", NULL), 0);
	assert_int_equal(append(f, s, "lost", NULL), 0);
	/* Interleaved with the main chain: one sequence over both. */
	set_str(f, "other", "another value");
	assert_int_equal(append(f, s, "stop", NULL), 0);
	int64_t n = last_seq(f);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_log WHERE stream = 1"), 6);
	assert_int_equal(
		afx_int(f->db,
			"SELECT count(*) FROM audit_log WHERE stream = 1 AND instr(CAST(record AS TEXT), '\"stream\":1,') > 0"),
		6);
	afx_expect_ok(f, NULL, n, "main chain and a stream");
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	afx_expect_ok(f, &cp, n, "with a checkpoint naming a stream record");
	/* A second broker: the first stream is closed where it ends. */
	struct secbuf *keys2 = begin(f);
	struct audit_stream *s2 = open_stream(keys2);
	assert_int_equal(audit_stream_number(s2), 2);
	assert_int_equal(append(f, s2, "release", "allow"), 0);
	afx_expect_ok(f, NULL, last_seq(f), "two streams");
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
	struct audit_stream *s = open_stream(keys);
	int64_t before = last_seq(f);
	static const char *const theirs[] = {"set",    "rm",   "grant", "reveal", "rekey",
					     "passwd", "init", "enrol", "close"};
	for (size_t i = 0; i < sizeof theirs / sizeof theirs[0]; i++)
		assert_int_equal(append(f, s, theirs[i], NULL), -1);
	assert_int_equal(last_seq(f), before);
	afx_expect_ok(f, NULL, before, "nothing written");
	audit_stream_free(s);
	secbuf_free(keys);
}

/* The agent holds a stream's keys (pretend it stole them from a broker)
 * and writes, by hand, the next record of that stream with a correct MAC:
 * a "set" for an old version of a secret. */
static void forge(struct afx *f, const struct secbuf *keys, const char *event, int64_t stream_no)
{
	unsigned char k[32], prev[32] = {0};
	memcpy(k, keys->data + 24, 32);
	int64_t cseq = afx_int(f->db, "SELECT count(*) FROM audit_log WHERE stream = %lld", (long long)stream_no);
	if (cseq) {
		size_t len;
		unsigned char *mac = afx_blob(f->db, "mac",
					      afx_int(f->db, "SELECT max(seq) FROM audit_log WHERE stream = %lld",
						      (long long)stream_no),
					      &len);
		assert_int_equal(len, 32);
		memcpy(prev, mac, 32);
		free(mac);
	}
	for (int64_t i = 0; i < cseq; i++) {
		unsigned char next[32];
		crypto_kdf_derive_from_key(next, 32, 1, "latchevo", k);
		memcpy(k, next, 32);
	}
	int64_t seq = last_seq(f) + 1, now = (int64_t)time(NULL);
	char rec[512];
	int len = snprintf(rec, sizeof rec,
			   "{\"seq\":%lld,\"time\":%lld,\"event\":\"%s\",\"secrets\":[\"db\"],\"stream\":%lld,"
			   "\"secret_ids\":[1],\"version\":1,\"pid\":777,\"uid\":1000}",
			   (long long)seq, (long long)now, event, (long long)stream_no);
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
	sqlite3 *raw = afx_raw(f);
	sqlite3_stmt *ins;
	assert_int_equal(
		sqlite3_prepare_v2(
			raw,
			"INSERT INTO audit_log (seq, time, event, record, mac, stream) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			-1, &ins, NULL),
		SQLITE_OK);
	sqlite3_bind_int64(ins, 1, seq);
	sqlite3_bind_int64(ins, 2, now);
	sqlite3_bind_text(ins, 3, event, -1, SQLITE_STATIC);
	sqlite3_bind_blob(ins, 4, rec, len, SQLITE_STATIC);
	sqlite3_bind_blob(ins, 5, mac, 32, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 6, stream_no);
	assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
	sqlite3_finalize(ins);
	afx_exec(raw, "INSERT INTO audit_secret (seq, pos, secret, time, event) VALUES (%lld, 0, 'db', %lld, '%s')",
		 (long long)seq, (long long)now, event);
	afx_release(f, raw);
}

static void forged_set_with_a_broker_key_fails_verify(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(keys);
	assert_int_equal(append(f, s, "release", "allow"), 0);
	/* Control: the forger's MAC is right; a forged release verifies. */
	forge(f, keys, "release", 1);
	afx_expect_ok(f, NULL, last_seq(f), "a forged release (a broker's kind of record)");
	int64_t bad = last_seq(f) + 1;
	forge(f, keys, "set", 1);
	afx_expect(f, NULL, AUDIT_TAMPERED, bad, "a set record made with a broker's key");
	struct audit_report r;
	afx_verify(f, NULL, &r);
	assert_non_null(strstr(r.reason, "a broker cannot make"));
	audit_stream_free(s);
	secbuf_free(keys);
}

static void stream_key_useless_after_its_end(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(keys);
	assert_int_equal(append(f, s, "release", "allow"), 0);
	/* A fresh broker closes the first stream. */
	struct secbuf *keys2 = begin(f);
	int64_t bad = last_seq(f) + 1;
	assert_int_equal(append(f, s, "release", "allow"), 0); /* the old key, still in hand */
	afx_expect(f, NULL, AUDIT_TAMPERED, bad, "the old stream written after a new broker");
	afx_exec(f->db, "DELETE FROM audit_log WHERE seq = %lld; DELETE FROM audit_secret WHERE seq = %lld",
		 (long long)bad, (long long)bad);
	afx_expect_ok(f, NULL, bad - 1, "removed again");

	/* A rekey closes the open stream too (audit_record_change calls this in the
	 * rekey's transaction). */
	struct audit_stream *s2 = open_stream(keys2);
	assert_int_equal(append(f, s2, "release", "allow"), 0);
	afx_exec(f->db, "BEGIN IMMEDIATE");
	assert_int_equal(audit_stream_close(f->db, f->writer), 0);
	afx_exec(f->db, "COMMIT");
	afx_expect_ok(f, NULL, last_seq(f), "closed by a rekey");
	bad = last_seq(f) + 1;
	assert_int_equal(append(f, s2, "exit", NULL), 0);
	afx_expect(f, NULL, AUDIT_TAMPERED, bad, "the stream written after a rekey");
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
	struct audit_stream *s = open_stream(keys);
	assert_int_equal(append(f, s, "stop", NULL), 0);
	int64_t bad = last_seq(f) + 1;
	assert_int_equal(append(f, s, "release", "allow"), 0);
	afx_expect(f, NULL, AUDIT_TAMPERED, bad, "a record after the broker's stop");
	audit_stream_free(s);
	secbuf_free(keys);
}

static void stream_no_one_opened(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	/* Keys the agent made up for a stream number no enrol record names:
	 * its own broker, started without a passphrase holder. */
	struct secbuf *keys = secbuf_new(STREAM_KEYS_BYTES);
	randombytes_buf(keys->data, STREAM_KEYS_BYTES);
	memset(keys->data, 0, 8);
	keys->data[0] = 7;
	keys->len = STREAM_KEYS_BYTES;
	struct audit_stream *s = open_stream(keys);
	int64_t bad = last_seq(f) + 1;
	assert_int_equal(append(f, s, "release", "allow"), 0);
	afx_expect(f, NULL, AUDIT_TAMPERED, bad, "a stream no passphrase holder opened");
	audit_stream_free(s);
	secbuf_free(keys);
}

static void stream_cuts(void **state)
{
	struct afx *f = *state;
	with_secret(f);
	struct secbuf *keys = begin(f);
	struct audit_stream *s = open_stream(keys);
	for (int i = 0; i < 4; i++)
		assert_int_equal(append(f, s, i % 2 ? "exit" : "release", i % 2 ? NULL : "allow"), 0);
	int64_t last = last_seq(f);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	/* A record from the middle: the next one no longer links. */
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = %lld; DELETE FROM audit_secret WHERE seq = %lld",
		 (long long)(last - 2), (long long)(last - 2));
	afx_expect(f, NULL, AUDIT_TAMPERED, last - 2, "a stream record from the middle");
	afx_restore(raw, snap);
	/* The open stream's tail: only a checkpoint can tell (it is also the
	 * log's tail). */
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = %lld; DELETE FROM audit_secret WHERE seq = %lld",
		 (long long)last, (long long)last);
	afx_expect_ok(f, NULL, last - 1, "the open stream's tail cut, no checkpoint");
	afx_expect(f, &cp, AUDIT_TAMPERED, last, "the open stream's tail cut, with a checkpoint");
	afx_restore(raw, snap);
	/* Once a passphrase holder closed it, a cut tail is tampering. */
	struct secbuf *keys2 = begin(f);
	afx_expect_ok(f, NULL, last_seq(f), "closed");
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = %lld; DELETE FROM audit_secret WHERE seq = %lld",
		 (long long)last, (long long)last);
	afx_expect(f, NULL, AUDIT_TAMPERED, last, "a closed stream's tail cut");
	/* ... even when the cut leaves no hole in the log's numbering: the
	 * close record names where the stream ended. */
	afx_restore(raw, snap);
	struct secbuf *keys3 = begin(f); /* closes stream 2, whose only record is... none */
	afx_expect_ok(f, NULL, last_seq(f), "an empty stream closed");
	afx_release(f, snap);
	snap = afx_snapshot(f, raw);
	struct audit_stream *s3 = open_stream(keys3);
	assert_int_equal(append(f, s3, "release", "allow"), 0);
	int64_t only = last_seq(f);
	struct secbuf *keys4 = begin(f); /* closes stream 3 at its one record */
	/* Renumber the log so the removed record leaves no gap. */
	afx_exec(raw,
		 "DELETE FROM audit_log WHERE seq = %lld; DELETE FROM audit_secret WHERE seq = %lld;"
		 "UPDATE audit_log SET seq = seq - 1 WHERE seq > %lld",
		 (long long)only, (long long)only, (long long)only);
	struct audit_report r;
	afx_verify(f, NULL, &r);
	assert_int_equal(r.verdict, AUDIT_TAMPERED);
	audit_stream_free(s3);
	secbuf_free(keys3);
	secbuf_free(keys4);
	afx_release(f, snap);
	afx_release(f, raw);
	audit_stream_free(s);
	secbuf_free(keys);
	secbuf_free(keys2);
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
		cmocka_unit_test_setup_teardown(stream_cuts, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(secrets_digest, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(version_made_twice, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(rekey_rotates_the_writer_key, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(legacy_state_upgraded_once, afx_setup, afx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
