/* The main chain's state: its length, last MAC and next key, and (version
 * 2) the secrets digest and the broker streams, sealed under the writer
 * key in the one row of audit_state, next to the chain's first key sealed
 * for the verifier. */
#include "internal.h"

#include <string.h>

/* The state row holds (seq, last MAC, next key) sealed under the writer
 * key; version 2 adds the secrets digest and the broker stream. */
#define STATE_PLAIN_V1 (8 + AUDIT_MAC_BYTES + AUDIT_KEY_BYTES)
#define STATE_PLAIN_V2 (STATE_PLAIN_V1 + AUDIT_MAC_BYTES + 24)
static const char STATE_LABEL_V1[] = "latch-audit-state-v1";
static const char STATE_LABEL_V2[] = "latch-audit-state-v2";

int state_load(sqlite3 *db, unsigned char log_id[AUDIT_LOG_ID_BYTES], unsigned char *blob, size_t *blob_len,
	       unsigned char origin[ORIGIN_BLOB])
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT log_id, state, origin FROM audit_state WHERE id = 1", -1, &st, NULL) !=
	    SQLITE_OK)
		return audit_db_fail(db, "read the audit log state");
	int rc = sqlite3_step(st), ret;
	if (rc == SQLITE_ROW) {
		int n = sqlite3_column_bytes(st, 1);
		ret = 1;
		if (sqlite3_column_bytes(st, 0) != AUDIT_LOG_ID_BYTES ||
		    (n != NONCE_BYTES + STATE_PLAIN_V1 + TAG_BYTES && n != NONCE_BYTES + STATE_PLAIN_V2 + TAG_BYTES) ||
		    sqlite3_column_bytes(st, 2) != ORIGIN_BLOB) {
			ret = latch_error(LATCH_OPERR, "the audit log state is damaged: run 'latch audit verify'");
		} else {
			memcpy(log_id, sqlite3_column_blob(st, 0), AUDIT_LOG_ID_BYTES);
			memcpy(blob, sqlite3_column_blob(st, 1), (size_t)n);
			*blob_len = (size_t)n;
			if (origin)
				memcpy(origin, sqlite3_column_blob(st, 2), ORIGIN_BLOB);
		}
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = audit_db_fail(db, "read the audit log state");
	}
	sqlite3_finalize(st);
	return ret;
}

int state_unseal(const struct secbuf *writer_key, const unsigned char *blob, size_t blob_len, struct state *s)
{
	size_t n = blob_len - NONCE_BYTES - TAG_BYTES;
	bool v2 = n == STATE_PLAIN_V2;
	struct secbuf *plain = secbuf_new(STATE_PLAIN_V2);
	if (!plain)
		return -1;
	if ((n != STATE_PLAIN_V1 && !v2) ||
	    audit_unseal(v2 ? STATE_LABEL_V2 : STATE_LABEL_V1, v2 ? sizeof STATE_LABEL_V2 : sizeof STATE_LABEL_V1,
			 s->l.id, writer_key->data, blob, blob_len, plain->data, n) != 0 ||
	    !(s->l.key = secbuf_new(AUDIT_KEY_BYTES))) {
		secbuf_free(plain);
		return -1;
	}
	const unsigned char *p = plain->data;
	s->version = v2 ? 2 : 1;
	s->l.cseq = (int64_t)get_u64(p);
	memcpy(s->l.last_mac, p + 8, AUDIT_MAC_BYTES);
	memcpy(s->l.key->data, p + 8 + AUDIT_MAC_BYTES, AUDIT_KEY_BYTES);
	s->l.key->len = AUDIT_KEY_BYTES;
	memset(s->digest, 0, sizeof s->digest);
	s->streams = s->stream_open = 0;
	s->last_seq = s->l.cseq; /* version 1: one chain, numbered as the log */
	if (v2) {
		memcpy(s->digest, p + STATE_PLAIN_V1, AUDIT_MAC_BYTES);
		s->streams = (int64_t)get_u64(p + STATE_PLAIN_V1 + AUDIT_MAC_BYTES);
		s->stream_open = (int64_t)get_u64(p + STATE_PLAIN_V1 + AUDIT_MAC_BYTES + 8);
		s->last_seq = (int64_t)get_u64(p + STATE_PLAIN_V1 + AUDIT_MAC_BYTES + 16);
	}
	secbuf_free(plain);
	return 0;
}

/* The state must be the newest: the main chain's last record in the
 * table is the one it names. An old copy of the state put back (with the
 * secrets rows of its time, it would pass the digest check) is refused
 * here, unless the log was cut back to match it too: that only a
 * checkpoint shows. Reads the table backwards from its end, no index. */
static int state_fresh(sqlite3 *db, const struct state *s)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT seq, mac FROM audit_log NOT INDEXED WHERE stream = 0 ORDER BY seq DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return audit_db_fail(db, "read the audit log");
	int rc = sqlite3_step(st);
	bool fresh = rc == SQLITE_ROW
			     ? s->l.cseq > 0 && sqlite3_column_int64(st, 0) == s->last_seq &&
				       sqlite3_column_bytes(st, 1) == AUDIT_MAC_BYTES &&
				       sodium_memcmp(sqlite3_column_blob(st, 1), s->l.last_mac, AUDIT_MAC_BYTES) == 0
			     : rc == SQLITE_DONE && s->l.cseq == 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return audit_db_fail(db, "read the audit log");
	if (!fresh)
		return latch_error(
			LATCH_OPERR,
			"the audit log's state is not the one its last record left (an old copy put back?): run 'latch audit verify'");
	return 0;
}

/* Loads and opens the state into `s`: 0, or -1 reported. With no state
 * row and `verifier_key`, a new log is made (a new vault). */
int state_open(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key, bool *created,
	       struct state *s)
{
	unsigned char blob[STATE_BLOB_MAX];
	size_t len = 0;
	*created = false;
	int rc = state_load(db, s->l.id, blob, &len, NULL);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		if (state_unseal(writer_key, blob, len, s) != 0)
			return latch_error(
				LATCH_OPERR,
				"the audit log state does not open with this vault's key: run 'latch audit verify'");
		return state_fresh(db, s);
	}
	if (!verifier_key)
		return latch_error(LATCH_OPERR, "the vault has no audit log and this process cannot start one");
	/* A missing state with records present is a deleted state, not a
	 * new vault: refuse rather than start a second chain over it. */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit_log", -1, &st, NULL) != SQLITE_OK)
		return audit_db_fail(db, "read the audit log");
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (n != 0)
		return n < 0 ? audit_db_fail(db, "read the audit log")
			     : latch_error(
				       LATCH_OPERR,
				       "the audit log has records but no state: it was tampered with; run 'latch audit verify'");
	/* A new log: random id and k_1, k_1 sealed under the verifier key
	 * into the row that state_store inserts. */
	randombytes_buf(s->l.id, AUDIT_LOG_ID_BYTES);
	if (!(s->l.key = secbuf_new(AUDIT_KEY_BYTES)))
		return -1;
	randombytes_buf(s->l.key->data, AUDIT_KEY_BYTES);
	s->l.key->len = AUDIT_KEY_BYTES;
	s->version = 2; /* the digest of no secrets is all zeroes */
	*created = true;
	return 0;
}

int state_store(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key, const struct state *s,
		bool insert)
{
	struct secbuf *plain = secbuf_new(STATE_PLAIN_V2);
	if (!plain)
		return -1;
	unsigned char *p = plain->data;
	size_t n = s->version == 2 ? STATE_PLAIN_V2 : STATE_PLAIN_V1;
	put_u64(p, (uint64_t)s->l.cseq);
	memcpy(p + 8, s->l.last_mac, AUDIT_MAC_BYTES);
	memcpy(p + 8 + AUDIT_MAC_BYTES, s->l.key->data, AUDIT_KEY_BYTES);
	if (s->version == 2) {
		memcpy(p + STATE_PLAIN_V1, s->digest, AUDIT_MAC_BYTES);
		put_u64(p + STATE_PLAIN_V1 + AUDIT_MAC_BYTES, (uint64_t)s->streams);
		put_u64(p + STATE_PLAIN_V1 + AUDIT_MAC_BYTES + 8, (uint64_t)s->stream_open);
		put_u64(p + STATE_PLAIN_V1 + AUDIT_MAC_BYTES + 16, (uint64_t)s->last_seq);
	}
	unsigned char blob[STATE_BLOB_MAX], origin[ORIGIN_BLOB];
	size_t blob_len = NONCE_BYTES + n + TAG_BYTES;
	if (s->version == 2)
		audit_seal(STATE_LABEL_V2, sizeof STATE_LABEL_V2, s->l.id, writer_key->data, p, n, blob);
	else
		audit_seal(STATE_LABEL_V1, sizeof STATE_LABEL_V1, s->l.id, writer_key->data, p, n, blob);
	secbuf_free(plain);
	if (insert) {
		/* A new log's k_1 is the key the state holds before its first
		 * record: sealed for the verifier. */
		if (s->l.cseq != 0)
			return latch_error(LATCH_OPERR, "a new audit log must start empty");
		audit_seal(ORIGIN_LABEL, sizeof ORIGIN_LABEL, s->l.id, verifier_key->data, s->l.key->data,
			   AUDIT_KEY_BYTES, origin);
	}
	sqlite3_stmt *st;
	const char *sql = insert ? "INSERT INTO audit_state (id, log_id, state, origin) VALUES (1, ?1, ?2, ?3)"
				 : "UPDATE audit_state SET state = ?2 WHERE id = 1 AND log_id = ?1";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return audit_db_fail(db, "write the audit log state");
	sqlite3_bind_blob(st, 1, s->l.id, AUDIT_LOG_ID_BYTES, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, blob, (int)blob_len, SQLITE_STATIC);
	if (insert)
		sqlite3_bind_blob(st, 3, origin, ORIGIN_BLOB, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || sqlite3_changes(db) != 1)
		return audit_db_fail(db, "write the audit log state");
	return 0;
}

int audit_state_version(sqlite3 *db)
{
	unsigned char id[AUDIT_LOG_ID_BYTES], blob[STATE_BLOB_MAX];
	size_t len = 0;
	int rc = state_load(db, id, blob, &len, NULL);
	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	return len == NONCE_BYTES + STATE_PLAIN_V2 + TAG_BYTES ? 2 : 1;
}
