/* A broker's stream (docs/audit.md, "Broker streams"): the broker appends its records
 * (release, exit, revoke, lost, stop) to a chain of its own, under a key
 * that a passphrase holder made for it, sealed for the verifier in the
 * main-chain record that opened the stream (audit_stream_begin, below).
 * The chain's writing state lives only in the broker's memory: nothing on
 * disk lets anyone else append to it, and the next passphrase holder's
 * command that opens a stream, or a rekey, closes it. Verification
 * refuses any other kind of record in a stream, any record of a stream no
 * passphrase holder opened, and any record after a stream's end. */
#include "internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct audit_stream {
	int64_t n;
	struct link l;
	struct secbuf *argv_key;
};

bool audit_stream_event(const char *event)
{
	static const char *const allowed[] = {"release", "exit", "revoke", "lost", "stop", "fed_mint", "scan_block"};
	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
		if (!strcmp(event, allowed[i]))
			return true;
	return false;
}

void audit_stream_free(struct audit_stream *s)
{
	if (!s)
		return;
	secbuf_free(s->l.key);
	secbuf_free(s->argv_key);
	sodium_memzero(s, sizeof *s);
	free(s);
}

int audit_stream_open(const struct secbuf *blob, struct audit_stream **out)
{
	if (!blob || blob->len != STREAM_BLOB_BYTES || get_u64(blob->data) < 1 || get_u64(blob->data) > INT64_MAX)
		return latch_error(LATCH_OPERR, "the broker's audit stream keys are malformed");
	struct audit_stream *s = calloc(1, sizeof *s);
	if (!s)
		return latch_error(LATCH_OPERR, "out of memory");
	s->n = (int64_t)get_u64(blob->data);
	memcpy(s->l.id, blob->data + 8, STREAM_ID_BYTES);
	if (!(s->l.key = secbuf_new(AUDIT_KEY_BYTES)) || !(s->argv_key = secbuf_new(AUDIT_KEY_BYTES))) {
		audit_stream_free(s);
		return -1;
	}
	memcpy(s->l.key->data, blob->data + 8 + STREAM_ID_BYTES, AUDIT_KEY_BYTES);
	memcpy(s->argv_key->data, blob->data + 8 + STREAM_ID_BYTES + AUDIT_KEY_BYTES, AUDIT_KEY_BYTES);
	s->l.key->len = s->argv_key->len = AUDIT_KEY_BYTES;
	*out = s;
	return 0;
}

int64_t audit_stream_number(const struct audit_stream *s)
{
	return s->n;
}

int audit_stream_append_commit(sqlite3 *db, struct audit_stream *s, const struct audit_event *evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!evs[i].event || !audit_stream_event(evs[i].event))
			return latch_error(LATCH_OPERR, "a broker stream cannot hold a '%s' record",
					   evs[i].event ? evs[i].event : "");
	/* The chain moves on in a copy; the copy is kept only once COMMIT
	 * made the records durable. */
	struct link next = s->l;
	if (!(next.key = secbuf_new(AUDIT_KEY_BYTES)))
		return -1;
	memcpy(next.key->data, s->l.key->data, AUDIT_KEY_BYTES);
	next.key->len = AUDIT_KEY_BYTES;
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
			 ? 0
			 : audit_db_fail(db, "lock the vault");
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = link_append(db, &next, &evs[i], s->argv_key->data, NULL, s->n, NULL);
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = audit_db_fail(db, "commit to the audit log");
	if (rc != 0) {
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		secbuf_free(next.key);
		return -1;
	}
	secbuf_free(s->l.key);
	s->l = next;
	return 0;
}

/* The passphrase holder's end: opening and closing streams in the main
 * chain. */

/* Records the end of the open broker stream in the main chain: where it
 * ends (its last record's seq and MAC), so that nothing can be added to it
 * or cut from it afterwards without verify noticing. */
static int stream_close(sqlite3 *db, const unsigned char *argv_key, struct state *s)
{
	if (!s->stream_open)
		return 0;
	sqlite3_stmt *st;
	/* Scans back from the end of the table (no index), no further than
	 * the stream's start. */
	if (sqlite3_prepare_v2(
		    db, "SELECT seq, mac FROM audit_log WHERE stream = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT 1", -1,
		    &st, NULL) != SQLITE_OK)
		return audit_db_fail(db, "read the audit log");
	sqlite3_bind_int64(st, 1, s->streams);
	sqlite3_bind_int64(st, 2, s->stream_open);
	int rc = sqlite3_step(st);
	json_t *extra = json_pack("{s:I, s:I}", "closes", (json_int_t)s->streams, "last_seq",
				  (json_int_t)(rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0));
	if (rc == SQLITE_ROW) {
		char hex[2 * AUDIT_MAC_BYTES + 1];
		if (sqlite3_column_bytes(st, 1) != AUDIT_MAC_BYTES) {
			sqlite3_finalize(st);
			json_decref(extra);
			return latch_error(LATCH_OPERR, "the audit log is damaged: run 'latch audit verify'");
		}
		sodium_bin2hex(hex, sizeof hex, sqlite3_column_blob(st, 1), AUDIT_MAC_BYTES);
		json_object_set_new(extra, "last_mac", json_string(hex));
	} else if (rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		json_decref(extra);
		return audit_db_fail(db, "read the audit log");
	}
	sqlite3_finalize(st);
	struct audit_event ev = {.event = "close", .self = true};
	rc = extra ? link_append(db, &s->l, &ev, argv_key, extra, 0, &s->last_seq)
		   : latch_error(LATCH_OPERR, "out of memory");
	json_decref(extra);
	s->stream_open = 0;
	return rc;
}

int audit_stream_close(sqlite3 *db, const struct secbuf *writer_key)
{
	struct state s = {0};
	bool created;
	unsigned char argv_key[AUDIT_KEY_BYTES];
	audit_argv_key(writer_key, argv_key);
	int rc = state_open(db, writer_key, NULL, &created, &s);
	if (rc == 0 && s.stream_open) {
		rc = stream_close(db, argv_key, &s);
		if (rc == 0)
			rc = state_store(db, writer_key, NULL, &s, false);
	}
	sodium_memzero(argv_key, sizeof argv_key);
	secbuf_free(s.l.key);
	return rc;
}

int audit_stream_begin(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		       audit_rows_fn rows, struct vault *rows_ctx, pid_t broker_pid, struct secbuf **blob_out)
{
	struct state s = {0};
	bool created;
	struct secbuf *blob = secbuf_new(STREAM_BLOB_BYTES);
	if (!blob)
		return -1;
	unsigned char *b = blob->data, origin[ORIGIN_BLOB];
	char id_hex[2 * STREAM_ID_BYTES + 1], origin_hex[2 * ORIGIN_BLOB + 1];
	audit_argv_key(writer_key, b + 8 + STREAM_ID_BYTES + AUDIT_KEY_BYTES);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		secbuf_free(blob);
		return audit_db_fail(db, "lock the vault");
	}
	/* No broker is enrolled on a vault whose secrets table was edited;
	 * this also gives a log from before the digest its digest. */
	int rc = audit_check_secrets(db, writer_key, verifier_key, rows, rows_ctx);
	if (rc == 0)
		rc = state_open(db, writer_key, NULL, &created, &s);
	if (rc == 0)
		rc = stream_close(db, b + 8 + STREAM_ID_BYTES + AUDIT_KEY_BYTES, &s);
	if (rc != 0)
		goto out;
	/* A new stream: its number, a random id and k_1, k_1 sealed for
	 * the verifier in the record that opens it. */
	int64_t n = s.streams + 1;
	put_u64(b, (uint64_t)n);
	randombytes_buf(b + 8, STREAM_ID_BYTES);
	randombytes_buf(b + 8 + STREAM_ID_BYTES, AUDIT_KEY_BYTES);
	audit_seal(STREAM_ORIGIN_LABEL, sizeof STREAM_ORIGIN_LABEL, b + 8, verifier_key->data, b + 8 + STREAM_ID_BYTES,
		   AUDIT_KEY_BYTES, origin);
	sodium_bin2hex(id_hex, sizeof id_hex, b + 8, STREAM_ID_BYTES);
	sodium_bin2hex(origin_hex, sizeof origin_hex, origin, sizeof origin);
	json_t *extra = json_pack("{s:I, s:s, s:s, s:i}", "opens", (json_int_t)n, "stream_id", id_hex, "origin",
				  origin_hex, "broker_pid", (int)broker_pid);
	struct audit_event ev = {.event = "enrol", .self = true};
	int64_t seq = 0;
	rc = extra ? link_append(db, &s.l, &ev, b + 8 + STREAM_ID_BYTES + AUDIT_KEY_BYTES, extra, 0, &seq)
		   : latch_error(LATCH_OPERR, "out of memory");
	json_decref(extra);
	if (rc == 0) {
		s.streams = n;
		s.stream_open = s.last_seq = seq;
		rc = state_store(db, writer_key, NULL, &s, false);
	}
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = audit_db_fail(db, "commit to the audit log");
out:
	secbuf_free(s.l.key);
	if (rc != 0) {
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		secbuf_free(blob);
		return -1;
	}
	blob->len = STREAM_BLOB_BYTES;
	*blob_out = blob;
	return 0;
}
