/* The main chain: the records only a passphrase holder makes
 * (docs/audit.md, "Chains"), appended inside the caller's transaction or
 * one of their own, and the head of the whole log for a checkpoint. */
#include "internal.h"

#include <string.h>

int audit_append(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		 const struct audit_event *ev, int64_t *seq_out)
{
	struct state s = {0};
	bool created;
	unsigned char argv_key[AUDIT_KEY_BYTES];
	audit_argv_key(writer_key, argv_key);
	/* What the broker wrote before this record is folded first, so the
	 * log's order is the order things happened in. */
	int rc = audit_check_event(ev) == 0 && fold_in(db, NULL) == 0 &&
				 state_open(db, writer_key, verifier_key, &created, &s) == 0 &&
				 digest_update(writer_key, ev, &s) == 0
			 ? 0
			 : -1;
	if (rc == 0 && created)
		rc = state_store(db, writer_key, verifier_key, &s, true);
	if (rc == 0)
		rc = link_append(db, &s.l, ev, argv_key, NULL, 0, &s.last_seq);
	if (rc == 0)
		rc = state_store(db, writer_key, NULL, &s, false);
	if (rc == 0 && seq_out)
		*seq_out = s.last_seq;
	sodium_memzero(argv_key, sizeof argv_key);
	secbuf_free(s.l.key);
	return rc;
}

int audit_append_commit(sqlite3 *db, const struct secbuf *writer_key, const struct audit_event *evs, size_t n)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return audit_db_fail(db, "lock the vault");
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = audit_append(db, writer_key, NULL, &evs[i], NULL);
	if (rc != 0 || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		if (rc == 0)
			audit_db_fail(db, "commit to the audit log");
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int audit_head(sqlite3 *db, struct audit_checkpoint *out)
{
	unsigned char blob[STATE_BLOB_MAX];
	size_t len;
	if (audit_fold(db, false) != 0)
		return -1;
	int rc = state_load(db, out->log_id, blob, &len, NULL);
	if (rc <= 0)
		return rc < 0 ? -1 : latch_error(LATCH_OPERR, "the vault has no audit log");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1", -1, &st, NULL) !=
	    SQLITE_OK)
		return audit_db_fail(db, "read the audit log");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == AUDIT_MAC_BYTES) {
		out->seq = sqlite3_column_int64(st, 0);
		memcpy(out->mac, sqlite3_column_blob(st, 1), AUDIT_MAC_BYTES);
		rc = 0;
	} else {
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE
			     ? latch_error(LATCH_OPERR, "the audit log is empty or damaged")
			     : audit_db_fail(db, "read the audit log");
	}
	sqlite3_finalize(st);
	return rc;
}
