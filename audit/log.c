/* The main chain: the records only a passphrase holder makes (docs/design.md
 * section 5), its sealed state, the secrets digest that release checks
 * read, and the opening and closing of broker streams (stream.c). */
#include "internal.h"

#include <jansson.h>
#include <stdlib.h>
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
	if (sqlite3_prepare_v2(db, "SELECT seq, mac FROM audit_log NOT INDEXED WHERE stream = 0 ORDER BY seq DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return audit_db_fail(db, "read the audit log");
	int rc = sqlite3_step(st);
	bool fresh = rc == SQLITE_ROW ? s->l.cseq > 0 && sqlite3_column_int64(st, 0) == s->last_seq &&
						sqlite3_column_bytes(st, 1) == AUDIT_MAC_BYTES &&
						sodium_memcmp(sqlite3_column_blob(st, 1), s->l.last_mac, AUDIT_MAC_BYTES) == 0
				      : rc == SQLITE_DONE && s->l.cseq == 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return audit_db_fail(db, "read the audit log");
	if (!fresh)
		return latch_error(LATCH_OPERR,
				   "the audit log's state is not the one its last record left (an old copy put back?): run 'latch audit verify'");
	return 0;
}

/* Loads and opens the state into `s`: 0, or -1 reported. With no state
 * row and `verifier_key`, a new log is made (a new vault). */
static int state_open(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key, bool *created,
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
			return latch_error(LATCH_OPERR,
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
			     : latch_error(LATCH_OPERR,
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

static int state_store(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		       const struct state *s, bool insert)
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

/* The secrets digest: the XOR, over every row of the secrets table, of
 * BLAKE2b-256(K, id || version || name), K derived from the writer key.
 * XOR of a keyed PRF is a multiset hash (MSet-XOR-Hash, Clarke et al.):
 * without K no one can tell which other table gives the same digest, and
 * a set or rm updates it from the one row it changes, so only a release
 * pays for reading the whole table. */
struct digest_ctx {
	unsigned char key[crypto_generichash_KEYBYTES];
	unsigned char d[AUDIT_MAC_BYTES];
	int64_t rows;
};

static void digest_key(const struct secbuf *writer_key, struct digest_ctx *c)
{
	crypto_kdf_derive_from_key(c->key, sizeof c->key, 3, "latchdig", writer_key->data);
	memset(c->d, 0, sizeof c->d);
	c->rows = 0;
}

static void digest_toggle(struct digest_ctx *c, int64_t id, int64_t version, const char *name)
{
	unsigned char in[16], h[AUDIT_MAC_BYTES];
	put_u64(in, (uint64_t)id);
	put_u64(in + 8, (uint64_t)version);
	crypto_generichash_state st;
	crypto_generichash_init(&st, c->key, sizeof c->key, sizeof h);
	crypto_generichash_update(&st, in, sizeof in);
	crypto_generichash_update(&st, (const unsigned char *)name, strlen(name));
	crypto_generichash_final(&st, h, sizeof h);
	for (size_t i = 0; i < sizeof h; i++)
		c->d[i] ^= h[i];
	c->rows++;
}

static int digest_each(int64_t id, int64_t version, const char *name, void *ctx)
{
	digest_toggle(ctx, id, version, name);
	return 0;
}

int audit_digest_rows(const struct secbuf *writer_key, audit_rows_fn rows, struct vault *ctx,
		      unsigned char out[AUDIT_MAC_BYTES])
{
	struct digest_ctx *c = sodium_malloc(sizeof *c);
	if (!c)
		return latch_error(LATCH_OPERR, "out of secure memory");
	digest_key(writer_key, c);
	int rc = rows(ctx, digest_each, c);
	memcpy(out, c->d, AUDIT_MAC_BYTES);
	sodium_free(c);
	return rc == 0 ? 0 : -1;
}

/* A set or rm changes one row: the digest follows it. */
static int digest_update(const struct secbuf *writer_key, const struct audit_event *ev, struct state *s)
{
	bool set = !strcmp(ev->event, "set"), rm = !strcmp(ev->event, "rm");
	if (s->version != 2 || (!set && !rm))
		return 0;
	if (ev->n_secrets != 1 || ev->secrets[0].id < 1 || ev->version < 1)
		return latch_error(LATCH_OPERR, "a %s record must name one secret with its id and version", ev->event);
	struct digest_ctx *c = sodium_malloc(sizeof *c);
	if (!c)
		return latch_error(LATCH_OPERR, "out of secure memory");
	digest_key(writer_key, c);
	memcpy(c->d, s->digest, sizeof c->d);
	const struct audit_secret_ref *r = &ev->secrets[0];
	if (rm || ev->version > 1) /* the row as it was */
		digest_toggle(c, r->id, rm ? ev->version : ev->version - 1, r->name);
	if (set)
		digest_toggle(c, r->id, ev->version, r->name);
	memcpy(s->digest, c->d, sizeof s->digest);
	sodium_free(c);
	return 0;
}

int audit_append(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		 const struct audit_event *ev, int64_t *seq_out)
{
	struct state s = {0};
	bool created;
	unsigned char argv_key[AUDIT_KEY_BYTES];
	audit_argv_key(writer_key, argv_key);
	int rc = audit_check_event(ev) == 0 && state_open(db, writer_key, verifier_key, &created, &s) == 0 &&
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

/* The digest of the table now, under `writer_key`, into `digest`; with
 * a version 2 state it must be the sealed one. 0, or -1 reported. */
static int digest_check(const struct secbuf *writer_key, audit_rows_fn rows, struct vault *ctx, const struct state *s,
			unsigned char digest[AUDIT_MAC_BYTES])
{
	if (audit_digest_rows(writer_key, rows, ctx, digest) != 0)
		return -1;
	if (s->version == 2 && sodium_memcmp(digest, s->digest, AUDIT_MAC_BYTES) != 0)
		return latch_error(LATCH_OPERR,
				   "the vault's secrets are not what their recorded changes left (rolled back or edited): run 'latch audit verify'");
	return 0;
}

int audit_check_secrets(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
			audit_rows_fn rows, struct vault *ctx)
{
	struct state s = {0};
	bool created;
	unsigned char digest[AUDIT_MAC_BYTES];
	int rc = state_open(db, writer_key, NULL, &created, &s);
	if (rc == 0)
		rc = digest_check(writer_key, rows, ctx, &s, digest);
	if (rc == 0 && s.version == 1) {
		/* A log from before the digest: every row is checked against
		 * its newest set/rm record by a full verification, once, and
		 * the digest of the rows that pass is sealed from now on. */
		struct audit_report r;
		rc = audit_verify(db, writer_key, verifier_key, NULL, rows, ctx, &r);
		if (rc == 0 && r.verdict != AUDIT_OK)
			rc = latch_error(LATCH_OPERR, "the audit log does not verify (%s): run 'latch audit verify'",
					 r.reason);
		if (rc == 0) {
			s.version = 2;
			memcpy(s.digest, digest, sizeof digest);
			rc = state_store(db, writer_key, NULL, &s, false);
		}
	}
	secbuf_free(s.l.key);
	return rc;
}

int audit_rotate_writer(sqlite3 *db, const struct secbuf *old_writer, const struct secbuf *new_writer,
			audit_rows_fn rows, struct vault *ctx)
{
	struct state s = {0};
	bool created;
	unsigned char digest[AUDIT_MAC_BYTES];
	int rc = state_open(db, old_writer, NULL, &created, &s);
	/* The table is checked under the old key before its digest is made
	 * under the new one: a rotation must not bless an edited table. */
	if (rc == 0 && s.version == 2) {
		rc = digest_check(old_writer, rows, ctx, &s, digest);
		if (rc == 0)
			rc = audit_digest_rows(new_writer, rows, ctx, s.digest);
	}
	if (rc == 0)
		rc = state_store(db, new_writer, NULL, &s, false);
	secbuf_free(s.l.key);
	return rc;
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
	if (sqlite3_prepare_v2(db, "SELECT seq, mac FROM audit_log WHERE stream = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
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
	rc = extra ? link_append(db, &s->l, &ev, argv_key, extra, 0, &s->last_seq) : latch_error(LATCH_OPERR, "out of memory");
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

int audit_head(sqlite3 *db, struct audit_checkpoint *out)
{
	unsigned char blob[STATE_BLOB_MAX];
	size_t len;
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
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? latch_error(LATCH_OPERR, "the audit log is empty or damaged")
							   : audit_db_fail(db, "read the audit log");
	}
	sqlite3_finalize(st);
	return rc;
}
