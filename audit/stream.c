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

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct audit_stream {
	int64_t n;
	struct link l;
	struct secbuf *argv_key;
	int fd;      /* the stream's file, O_APPEND */
	off_t size;  /* what whole records take of it */
	bool broken; /* a failed sync: nothing more is appended */
	char *buf;   /* one commit's lines */
	size_t cap;
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
	if (s->fd >= 0)
		close(s->fd);
	secbuf_free(s->l.key);
	secbuf_free(s->argv_key);
	free(s->buf);
	sodium_memzero(s, sizeof *s);
	free(s);
}

int audit_stream_open(const struct secbuf *blob, const char *vault_dir, struct audit_stream **out)
{
	if (!blob || blob->len != STREAM_BLOB_BYTES || get_u64(blob->data) < 1 || get_u64(blob->data) > INT64_MAX)
		return latch_error(LATCH_OPERR, "the broker's audit stream keys are malformed");
	struct audit_stream *s = calloc(1, sizeof *s);
	if (!s)
		return latch_error(LATCH_OPERR, "out of memory");
	s->fd = -1;
	s->n = (int64_t)get_u64(blob->data);
	memcpy(s->l.id, blob->data + 8, STREAM_ID_BYTES);
	if (!(s->l.key = secbuf_new(AUDIT_KEY_BYTES)) || !(s->argv_key = secbuf_new(AUDIT_KEY_BYTES))) {
		audit_stream_free(s);
		return -1;
	}
	memcpy(s->l.key->data, blob->data + 8 + STREAM_ID_BYTES, AUDIT_KEY_BYTES);
	memcpy(s->argv_key->data, blob->data + 8 + STREAM_ID_BYTES + AUDIT_KEY_BYTES, AUDIT_KEY_BYTES);
	s->l.key->len = s->argv_key->len = AUDIT_KEY_BYTES;
	/* The file the passphrase holder made for this stream when it
	 * enrolled the broker: private, ours, and still empty. */
	char path[4096];
	struct stat sb;
	if (stream_path(vault_dir, s->n, path, sizeof path) != 0) {
		audit_stream_free(s);
		return -1;
	}
	s->fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (s->fd < 0 || fstat(s->fd, &sb) != 0) {
		int e = errno;
		audit_stream_free(s);
		return latch_error(LATCH_OPERR, "cannot open the audit stream '%s': %s", path, strerror(e));
	}
	if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 077) || sb.st_size != 0) {
		audit_stream_free(s);
		return latch_error(LATCH_OPERR, "the audit stream '%s' is not the new private file its enrolment made",
				   path);
	}
	*out = s;
	return 0;
}

int64_t audit_stream_number(const struct audit_stream *s)
{
	return s->n;
}

/* The commit's lines, one after another, in s->buf. */
static int add_line(struct audit_stream *s, size_t *len, const struct head_buf *h, const unsigned char *mac)
{
	size_t need = *len + h->len + STREAM_LINE_OVERHEAD + 1;
	if (need > s->cap) {
		size_t cap = need * 2;
		char *p = realloc(s->buf, cap);
		if (!p)
			return latch_error(LATCH_OPERR, "out of memory");
		s->buf = p;
		s->cap = cap;
	}
	sodium_bin2hex(s->buf + *len, 2 * AUDIT_MAC_BYTES + 1, mac, AUDIT_MAC_BYTES);
	*len += 2 * AUDIT_MAC_BYTES;
	s->buf[(*len)++] = ' ';
	memcpy(s->buf + *len, h->p, h->len);
	*len += h->len;
	s->buf[(*len)++] = '\n';
	return 0;
}

int audit_stream_append(struct audit_stream *s, const struct audit_event *evs, size_t n)
{
	if (s->broken)
		return latch_error(
			LATCH_OPERR,
			"the broker's audit stream failed earlier (a write it could not undo, or a sync): it "
			"records nothing more");
	bool sync = false;
	for (size_t i = 0; i < n; i++) {
		if (!evs[i].event || !audit_stream_event(evs[i].event))
			return latch_error(LATCH_OPERR, "a broker stream cannot hold a '%s' record",
					   evs[i].event ? evs[i].event : "");
		/* An exit needs no sync of its own: it rides on the next
		 * release's, or the stop's. */
		sync = sync || strcmp(evs[i].event, "exit") != 0;
	}
	/* The chain moves on in a copy, kept once the records are written
	 * (and, for a release, synced). */
	struct link next = s->l;
	if (!(next.key = secbuf_new(AUDIT_KEY_BYTES)))
		return -1;
	memcpy(next.key->data, s->l.key->data, AUDIT_KEY_BYTES);
	next.key->len = AUDIT_KEY_BYTES;
	struct head_buf h = {0};
	size_t len = 0;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char mac[AUDIT_MAC_BYTES];
		int64_t when;
		rc = link_record(&next, &evs[i], s->argv_key->data, NULL, 0, s->n, &h, &when, mac);
		if (rc == 0 && (rc = add_line(s, &len, &h, mac)) == 0)
			link_advance(&next, mac);
	}
	free(h.p);
	/* One write for the whole commit: O_APPEND puts it at the end as
	 * one piece, so no reader sees half of one record beside another. */
	ssize_t w = rc == 0 ? write(s->fd, s->buf, len) : 0;
	if (rc == 0 && w != (ssize_t)len) {
		int e = w < 0 ? errno : ENOSPC;
		/* What was written of it goes: the file ends with a whole
		 * record, or the stream is done. */
		if (w > 0 && ftruncate(s->fd, s->size) != 0)
			s->broken = true;
		rc = latch_error(LATCH_OPERR, "cannot append to the broker's audit stream: %s", strerror(e));
	} else if (rc == 0 && sync && fdatasync(s->fd) != 0) {
		/* After a failed sync the kernel may have dropped the pages:
		 * what is durable is unknown, so nothing more is recorded. */
		s->broken = true;
		rc = latch_error(LATCH_OPERR, "cannot sync the broker's audit stream: %s", strerror(errno));
	}
	if (rc != 0) {
		secbuf_free(next.key);
		return -1;
	}
	s->size += (off_t)len;
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
	/* A stream kept in a file ends where its file ends: what is there is
	 * folded first, so the last record below is the file's. */
	if (fold_in(db, NULL) != 0 || fold_close(db, s->streams) != 0)
		return -1;
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

/* The new stream's file, empty, private and durable before the enrol
 * record that names it commits (so a stream whose file is missing was
 * removed), and its place in audit_fold. `made` gets its path, for the
 * caller to remove if the enrolment does not commit. */
static int stream_create(sqlite3 *db, int64_t n, char *made, size_t len)
{
	char path[4096], dir[4096];
	if (stream_path_db(db, n, path, sizeof path) != 0)
		return -1;
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = '\0';
	if (ensure_private_dir(dir) != 0)
		return -1;
	/* Only an enrolment that did not commit leaves an empty one; one
	 * with records was written by a broker no passphrase holder
	 * enrolled, and is evidence: it stays, and verify names it. */
	struct stat sb;
	if (lstat(path, &sb) == 0 && (!S_ISREG(sb.st_mode) || sb.st_size > 0))
		return latch_error(LATCH_OPERR,
				   "cannot open broker stream %lld: '%s' already holds records no passphrase holder "
				   "opened (run 'latch audit verify', then move it away)",
				   (long long)n, path);
	if (unlink(path) != 0 && errno != ENOENT)
		return latch_error(LATCH_OPERR, "cannot remove '%s': %s", path, strerror(errno));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return latch_error(LATCH_OPERR, "cannot create '%s': %s", path, strerror(errno));
	snprintf(made, len, "%s", path); /* removed again if the enrolment fails */
	char vault[4096];
	snprintf(vault, sizeof vault, "%s", dir);
	*strrchr(vault, '/') = '\0';
	int rc = fsync(fd) == 0 && fsync_dir(dir) == 0 && fsync_dir(vault[0] ? vault : "/") == 0
			 ? 0
			 : latch_error(LATCH_OPERR, "cannot sync '%s': %s", path, strerror(errno));
	close(fd);
	sqlite3_stmt *st;
	if (rc == 0 && sqlite3_prepare_v2(db,
					  "INSERT OR REPLACE INTO audit_fold (stream, folded, offset, closed)"
					  " VALUES (?1, 0, 0, 0)",
					  -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, n);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : audit_db_fail(db, "open a broker stream");
		sqlite3_finalize(st);
	} else if (rc == 0) {
		rc = audit_db_fail(db, "open a broker stream");
	}
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
	char path[4096] = "";
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
	 * the verifier in the record that opens it, and its file. */
	int64_t n = s.streams + 1;
	if ((rc = stream_create(db, n, path, sizeof path)) != 0)
		goto out;
	put_u64(b, (uint64_t)n);
	randombytes_buf(b + 8, STREAM_ID_BYTES);
	randombytes_buf(b + 8 + STREAM_ID_BYTES, AUDIT_KEY_BYTES);
	audit_seal(STREAM_ORIGIN_LABEL, sizeof STREAM_ORIGIN_LABEL, b + 8, verifier_key->data, b + 8 + STREAM_ID_BYTES,
		   AUDIT_KEY_BYTES, origin);
	sodium_bin2hex(id_hex, sizeof id_hex, b + 8, STREAM_ID_BYTES);
	sodium_bin2hex(origin_hex, sizeof origin_hex, origin, sizeof origin);
	json_t *extra = json_pack("{s:I, s:s, s:s, s:i, s:s}", "opens", (json_int_t)n, "stream_id", id_hex, "origin",
				  origin_hex, "broker_pid", (int)broker_pid, "store", "file");
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
		if (path[0])
			unlink(path); /* no enrol record names it */
		secbuf_free(blob);
		return -1;
	}
	blob->len = STREAM_BLOB_BYTES;
	*blob_out = blob;
	return 0;
}
