/* Folding broker streams into the tables (docs/audit.md, "Stream files").
 *
 * A broker appends its records to a file of its own, one line per record,
 * and syncs once per release: no sqlite transaction is on a run's path.
 * Readers (latch audit, verify, export, a checkpoint, and every append to
 * the main chain) first fold the lines they have not seen into audit_log
 * and audit_secret, so queries keep their indexes and the log keeps one
 * order. The fold is an index, never the evidence: verify reads the
 * files and compares what was folded with them.
 *
 * Where each stream's fold stands (records and bytes folded, whether the
 * stream is closed) is in the plaintext table audit_fold. Anyone can edit
 * it; a wrong entry only makes the fold copy the wrong thing, which
 * verify then finds. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int stream_path(const char *vault_dir, int64_t n, char *buf, size_t len)
{
	int w = snprintf(buf, len, "%s/audit/stream-%lld", vault_dir, (long long)n);
	if (w < 0 || (size_t)w >= len)
		return latch_error(LATCH_OPERR, "the vault's path is too long");
	return 0;
}

int stream_path_db(sqlite3 *db, int64_t n, char *buf, size_t len)
{
	const char *file = sqlite3_db_filename(db, "main");
	const char *slash = file ? strrchr(file, '/') : NULL;
	if (!slash)
		return latch_error(LATCH_OPERR, "cannot find the vault's directory");
	char dir[4096];
	size_t d = (size_t)(slash - file);
	if (d >= sizeof dir)
		return latch_error(LATCH_OPERR, "the vault's path is too long");
	memcpy(dir, file, d);
	dir[d] = '\0';
	return stream_path(d ? dir : "/", n, buf, len);
}

/* 64 lowercase hex digits, as sodium_bin2hex writes them. By hand:
 * sodium_hex2bin, built to run in constant time and skip separators, was
 * a twentieth of a fold's and of verify's time, and a MAC read from a file
 * anyone can read is no secret. */
static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool hex_mac(const char *p, unsigned char mac[AUDIT_MAC_BYTES])
{
	for (size_t i = 0; i < AUDIT_MAC_BYTES; i++) {
		int hi = hex_digit(p[2 * i]), lo = hex_digit(p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		mac[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

int stream_open_read(sqlite3 *db, int64_t n, int *fd, int64_t *size, char path[STREAM_PATH_MAX])
{
	if (stream_path_db(db, n, path, STREAM_PATH_MAX) != 0)
		return -1;
	*fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT ? 0 : latch_error(LATCH_OPERR, "cannot open '%s': %s", path, strerror(errno));
	struct stat sb;
	if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(*fd);
		return latch_error(LATCH_OPERR, "'%s' is not a regular file", path);
	}
	*size = (int64_t)sb.st_size;
	return 1;
}

int stream_line(const char *p, size_t avail, size_t *used, const char **rec, size_t *rec_len,
		unsigned char mac[AUDIT_MAC_BYTES])
{
	const char *nl = memchr(p, '\n', avail);
	if (!nl)
		return 0;
	size_t line = (size_t)(nl - p);
	*used = line + 1;
	if (line <= 2 * AUDIT_MAC_BYTES + 1 || p[2 * AUDIT_MAC_BYTES] != ' ' || !hex_mac(p, mac))
		return -1;
	*rec = p + 2 * AUDIT_MAC_BYTES + 1;
	*rec_len = line - 2 * AUDIT_MAC_BYTES - 1;
	return 1;
}

/* The head of a stream record, as head_begin_stream wrote it. Its fields
 * are digits and tokens that need no JSON escaping, so this reads it
 * without a JSON parser (a fold of 10,000 records must take milliseconds);
 * verify rebuilds the head from what the fold wrote and compares it with
 * the record byte for byte. */
struct head {
	int64_t stream, n, time;
	char event[33], grant[65];
	size_t n_secrets;
	char names[AUDIT_MAX_SECRETS][LATCH_NAME_MAX + 1];
};

/* A token up to its closing quote: what record.c's plain_token allows. */
static bool take_token(const char **p, const char *end, char *out, size_t max)
{
	size_t n = 0;
	for (const char *q = *p; q < end; q++, n++) {
		char ch = *q;
		if (ch == '"') {
			if (n == 0)
				return false;
			memcpy(out, *p, n);
			out[n] = '\0';
			*p = q + 1;
			return true;
		}
		if (n >= max || !audit_token_char(ch))
			return false;
	}
	return false;
}

static bool head_parse(const char *rec, size_t len, struct head *h)
{
	const char *p = rec, *end = rec + len;
	h->grant[0] = '\0';
	h->n_secrets = 0;
	if (!text_take(&p, end, "{\"stream\":") || !text_take_int(&p, end, &h->stream) ||
	    !text_take(&p, end, ",\"n\":") || !text_take_int(&p, end, &h->n) || !text_take(&p, end, ",\"time\":") ||
	    !text_take_int(&p, end, &h->time) || !text_take(&p, end, ",\"event\":\"") ||
	    !take_token(&p, end, h->event, sizeof h->event - 1))
		return false;
	if (text_take(&p, end, ",\"grant\":\"") && !take_token(&p, end, h->grant, sizeof h->grant - 1))
		return false;
	if (text_take(&p, end, ",\"secrets\":[\"")) {
		do {
			if (h->n_secrets == AUDIT_MAX_SECRETS ||
			    !take_token(&p, end, h->names[h->n_secrets++], LATCH_NAME_MAX))
				return false;
		} while (text_take(&p, end, ",\""));
		if (!text_take(&p, end, "]"))
			return false;
	}
	return p < end && (*p == ',' || *p == '}') && end[-1] == '}';
}

/* Folds stream `stream` from where its fold stands. */
static int fold_one(sqlite3 *db, struct rows *w, int64_t *seq, int64_t stream, int64_t folded, int64_t offset,
		    struct fold_damage *damaged)
{
	char path[STREAM_PATH_MAX];
	int fd;
	int64_t size;
	int opened = stream_open_read(db, stream, &fd, &size, path);
	if (opened <= 0)
		return opened;
	/* Read in pieces: a stream not folded for a long time is large. */
	size_t cap = 1 << 20, have = 0;
	char *buf = malloc(cap);
	struct head *h = malloc(sizeof *h);
	int rc = buf && h ? 0 : latch_error(LATCH_OPERR, "out of memory");
	int64_t start = offset;
	bool stop = false;
	while (rc == 0 && !stop && offset + (int64_t)have < size) {
		ssize_t n = pread(fd, buf + have, cap - have, (off_t)(offset + (int64_t)have));
		if (n <= 0) {
			if (n < 0)
				rc = latch_error(LATCH_OPERR, "cannot read '%s': %s", path, strerror(errno));
			break;
		}
		have += (size_t)n;
		size_t at = 0, used;
		const char *rec;
		size_t rec_len;
		unsigned char mac[AUDIT_MAC_BYTES];
		int got;
		while (rc == 0 && (got = stream_line(buf + at, have - at, &used, &rec, &rec_len, mac)) != 0) {
			if (got < 0 || !head_parse(rec, rec_len, h) || h->stream != stream || h->n != folded + 1) {
				if (damaged)
					*damaged = (struct fold_damage){stream, folded + 1};
				stop = true;
				break;
			}
			struct audit_secret_ref refs[AUDIT_MAX_SECRETS];
			for (size_t i = 0; i < h->n_secrets; i++)
				refs[i] = (struct audit_secret_ref){h->names[i], 0};
			struct audit_event ev = {.event = h->event,
						 .grant_id = h->grant[0] ? h->grant : NULL,
						 .secrets = refs,
						 .n_secrets = h->n_secrets};
			rc = rows_insert(w, (*seq)++, h->time, stream, &ev, rec, rec_len, mac);
			folded++;
			at += used;
		}
		/* What is left is the start of a line: keep it, read on. A
		 * line longer than the buffer grows it. */
		offset += (int64_t)at;
		memmove(buf, buf + at, have - at);
		have -= at;
		if (have == cap) {
			char *bigger = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
			if (!bigger) {
				if (damaged)
					*damaged = (struct fold_damage){stream, folded + 1};
				break;
			}
			buf = bigger;
			cap *= 2;
		}
	}
	free(buf);
	free(h);
	close(fd);
	if (rc != 0 || offset == start)
		return rc;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "UPDATE audit_fold SET folded = ?1, offset = ?2 WHERE stream = ?3", -1, &st, NULL) !=
	    SQLITE_OK)
		return audit_db_fail(db, "fold the audit log");
	sqlite3_bind_int64(st, 1, folded);
	sqlite3_bind_int64(st, 2, offset);
	sqlite3_bind_int64(st, 3, stream);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : audit_db_fail(db, "fold the audit log");
	sqlite3_finalize(st);
	return rc;
}

/* The open streams and where their folds stand; calls `each` for those
 * whose file has grown past it (or all, with `all`). */
struct open_stream {
	int64_t stream, folded, offset;
};

static int open_streams(sqlite3 *db, struct open_stream *out, size_t max, size_t *n)
{
	sqlite3_stmt *st;
	*n = 0;
	if (sqlite3_prepare_v2(db, "SELECT stream, folded, offset FROM audit_fold WHERE closed = 0 ORDER BY stream", -1,
			       &st, NULL) != SQLITE_OK)
		return audit_db_fail(db, "read the audit log");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
		out[(*n)++] = (struct open_stream){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
						   sqlite3_column_int64(st, 2)};
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : audit_db_fail(db, "read the audit log");
}

/* Normally one stream is open; a few more are the most a crash leaves. */
#define FOLD_MAX_OPEN 16

int fold_in(sqlite3 *db, struct fold_damage *damaged)
{
	struct open_stream open_now[FOLD_MAX_OPEN];
	size_t n;
	if (damaged)
		*damaged = (struct fold_damage){0, 0};
	if (open_streams(db, open_now, FOLD_MAX_OPEN, &n) != 0)
		return -1;
	if (n == 0)
		return 0;
	int64_t seq = audit_next_seq(db);
	if (seq < 1)
		return audit_db_fail(db, "read the audit log");
	struct rows w;
	if (rows_prepare(db, &w) != 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = fold_one(db, &w, &seq, open_now[i].stream, open_now[i].folded, open_now[i].offset,
			      damaged && !damaged->stream ? damaged : NULL);
	rows_finish(&w);
	return rc;
}

int fold_close(sqlite3 *db, int64_t stream)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "UPDATE audit_fold SET closed = 1 WHERE stream = ?1", -1, &st, NULL) != SQLITE_OK)
		return audit_db_fail(db, "close a broker stream");
	sqlite3_bind_int64(st, 1, stream);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : audit_db_fail(db, "close a broker stream");
	sqlite3_finalize(st);
	return rc;
}

/* Is there anything to fold? Without the write lock: a query with
 * nothing new costs one SELECT and a stat per open stream. */
static bool fold_pending(sqlite3 *db)
{
	struct open_stream open_now[FOLD_MAX_OPEN];
	size_t n;
	if (open_streams(db, open_now, FOLD_MAX_OPEN, &n) != 0)
		return true; /* let the fold say what is wrong */
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat sb;
		if (stream_path_db(db, open_now[i].stream, path, sizeof path) != 0 ||
		    (lstat(path, &sb) == 0 && sb.st_size > open_now[i].offset))
			return true;
	}
	return false;
}

int audit_fold(sqlite3 *db, bool quiet_damage)
{
	if (!fold_pending(db))
		return 0;
	struct fold_damage d;
	/* A fold of thousands of records dirties pages all over the indexes:
	 * room for them all, so nothing is spilled (and synced) before the
	 * commit. */
	sqlite3_exec(db, "PRAGMA cache_size=-65536", NULL, NULL, NULL);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return audit_db_fail(db, "fold the broker's records into the audit log");
	int rc = fold_in(db, &d);
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = audit_db_fail(db, "fold the broker's records into the audit log");
	if (rc != 0) {
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (d.stream && !quiet_damage)
		return latch_error(LATCH_OPERR,
				   "record %lld of broker stream %lld is damaged: run 'latch audit verify'",
				   (long long)d.n, (long long)d.stream);
	return 0;
}
