/* A broker's stream (docs/design.md P7): the broker appends its records
 * (release, exit, revoke, lost, stop) to a chain of its own, under a key
 * that a passphrase holder made for it, sealed for the verifier in the
 * main-chain record that opened the stream (log.c, audit_stream_begin).
 * The chain's writing state lives only in the broker's memory: nothing on
 * disk lets anyone else append to it, and the next passphrase holder's
 * command that opens a stream, or a rekey, closes it. Verification
 * refuses any other kind of record in a stream, any record of a stream no
 * passphrase holder opened, and any record after a stream's end. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct audit_stream {
	int64_t n;
	struct link l;
	struct secbuf *argv_key;
};

bool audit_stream_event(const char *event)
{
	static const char *const allowed[] = {"release", "exit", "revoke", "lost", "stop"};
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
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : audit_db_fail(db, "lock the vault");
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
