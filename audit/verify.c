/* Verification: every record's MAC from each chain's first key, every
 * broker stream's place in the main chain, the indexed copies, the sealed
 * state, the secrets table against its newest recorded changes, and
 * sqlite's own indexes against their tables. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void vverdict(struct audit_report *r, enum audit_verdict v, int64_t first_bad, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static void vverdict(struct audit_report *r, enum audit_verdict v, int64_t first_bad, const char *fmt, va_list ap)
{
	r->verdict = v;
	r->first_bad = first_bad;
	vsnprintf(r->reason, sizeof r->reason, fmt, ap);
}

/* Records the verdict; returns 0 (the check ran). */
static int verdict(struct audit_report *r, enum audit_verdict v, int64_t first_bad, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int verdict(struct audit_report *r, enum audit_verdict v, int64_t first_bad, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vverdict(r, v, first_bad, fmt, ap);
	va_end(ap);
	return 0;
}

/* Records the verdict; returns 1 (stop walking). */
static int stop(struct audit_report *r, enum audit_verdict v, int64_t first_bad, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int stop(struct audit_report *r, enum audit_verdict v, int64_t first_bad, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vverdict(r, v, first_bad, fmt, ap);
	va_end(ap);
	return 1;
}

/* One chain being walked: the main chain or a broker stream. */
struct chainw {
	int64_t stream; /* 0: the main chain */
	unsigned char id[16];
	struct secbuf *k; /* the key of its next record */
	unsigned char prev[AUDIT_MAC_BYTES];
	int64_t count;     /* records so far */
	int64_t last_seq;  /* the seq of its last record, 0 if none */
	int64_t opened_at; /* a stream: the seq of its enrol record */
	bool closed;       /* a stream: a close record ended it */
	bool stopped;      /* a stream: its broker wrote "stop" */
	/* A stream kept in a file (its enrol record says so): the file,
	 * read whole, and where the walk stands in it. An export carries
	 * its records in lines of its own (no file). */
	bool file;
	bool missing; /* no file where its enrolment made one */
	char *data;
	size_t size, pos;
};

struct walker {
	struct chainw main;
	struct chainw *streams; /* in the order they were opened */
	size_t n_streams, cap;
	int64_t expect; /* the next seq of the whole log */
	const struct secbuf *verifier;
	sqlite3 *db; /* the vault's: stream files are read beside it; NULL for an export */
	bool torn;   /* a stream file ends in a line cut short by a crash */
	const struct audit_checkpoint *cp;
	bool cp_seen;
	struct audit_report *r;
	/* Secret name -> [id, version] of its newest set, or null after an
	 * rm (the database verification only). */
	json_t *changes;
};

static void walker_free(struct walker *w)
{
	secbuf_free(w->main.k);
	for (size_t i = 0; i < w->n_streams; i++) {
		secbuf_free(w->streams[i].k);
		free(w->streams[i].data);
	}
	free(w->streams);
	json_decref(w->changes);
}

/* Opens the main chain's first key. 0 ready, 1 verdict given, -1 error. */
static int walk_start(struct walker *w, const struct secbuf *verifier_key, const unsigned char *origin,
		      size_t origin_len, const struct audit_checkpoint *cp, struct audit_report *r)
{
	w->r = r;
	w->cp = cp;
	w->expect = 1;
	w->verifier = verifier_key;
	if (cp && memcmp(cp->log_id, w->main.id, AUDIT_LOG_ID_BYTES) != 0)
		return stop(r, AUDIT_TAMPERED, 1, "the audit log was replaced: its id differs from the checkpoint's");
	if (!(w->main.k = secbuf_new(AUDIT_KEY_BYTES)))
		return -1;
	if (audit_unseal(ORIGIN_LABEL, sizeof ORIGIN_LABEL, w->main.id, verifier_key->data, origin, origin_len,
			 w->main.k->data, AUDIT_KEY_BYTES) != 0)
		return stop(r, AUDIT_UNVERIFIABLE, 0,
			    "the verifier key does not open this log's first key (wrong key or altered origin)");
	w->main.k->len = AUDIT_KEY_BYTES;
	return 0;
}

/* A record whose MAC verified begins {"seq":S,"time":T,"event":"E": its
 * event, or -1. */
static int record_event(const char *rec, size_t len, char out[33])
{
	static const char key[] = ",\"event\":\"";
	const char *p = memmem(rec, len < 80 ? len : 80, key, sizeof key - 1);
	if (!p)
		return -1;
	p += sizeof key - 1;
	size_t rest = len - (size_t)(p - rec);
	const char *q = memchr(p, '"', rest < 33 ? rest : 33);
	if (!q || q == p)
		return -1;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return 0;
}

/* A stream's whole file, read once (verify reads the bytes, not what
 * was folded from them). */
static int read_stream_file(struct walker *w, struct chainw *c)
{
	char path[STREAM_PATH_MAX];
	int fd;
	int64_t size;
	int rc = stream_open_read(w->db, c->stream, &fd, &size, path);
	if (rc <= 0) {
		c->missing = rc == 0;
		return rc;
	}
	rc = 0;
	if (size > 0 && !(c->data = malloc((size_t)size)))
		rc = latch_error(LATCH_OPERR, "out of memory");
	while (rc == 0 && c->size < (size_t)size) {
		ssize_t n = read(fd, c->data + c->size, (size_t)size - c->size);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				rc = latch_error(LATCH_OPERR, "cannot read '%s': %s", path, strerror(errno));
			break;
		}
		c->size += (size_t)n;
	}
	close(fd);
	return rc;
}

/* How a record is named: by its seq, and a stream file's also by its
 * place in its stream ("record 245 (broker stream 3, record 17)"); one
 * not folded yet has no seq. */
static const char *label(char buf[96], int64_t seq, const struct chainw *c, int64_t n)
{
	if (c && c->file && seq)
		snprintf(buf, 96, "record %lld (broker stream %lld, record %lld)", (long long)seq, (long long)c->stream,
			 (long long)n);
	else if (c && c->file)
		snprintf(buf, 96, "broker stream %lld, record %lld", (long long)c->stream, (long long)n);
	else
		snprintf(buf, 96, "record %lld", (long long)seq);
	return buf;
}

static struct chainw *open_stream(struct walker *w)
{
	for (size_t i = 0; i < w->n_streams; i++)
		if (!w->streams[i].closed)
			return &w->streams[i];
	return NULL;
}

static bool hex_into(json_t *o, const char *key, unsigned char *out, size_t n)
{
	const char *hex = json_string_value(json_object_get(o, key));
	size_t got = 0;
	return hex && strlen(hex) == 2 * n && sodium_hex2bin(out, n, hex, 2 * n, NULL, &got, NULL) == 0 && got == n;
}

/* A main-chain record that opens a stream. 0, 1 verdict, -1 error. */
static int on_enrol(struct walker *w, int64_t seq, json_t *rec)
{
	json_t *opens = json_object_get(rec, "opens");
	int64_t last = w->n_streams ? w->streams[w->n_streams - 1].stream : 0;
	unsigned char id[STREAM_ID_BYTES], origin[ORIGIN_BLOB];
	if (!json_is_integer(opens) || json_integer_value(opens) != last + 1 ||
	    !hex_into(rec, "stream_id", id, sizeof id) || !hex_into(rec, "origin", origin, sizeof origin))
		return stop(w->r, AUDIT_TAMPERED, seq, "record %lld (a broker's enrolment) is damaged", (long long)seq);
	if (open_stream(w))
		return stop(w->r, AUDIT_TAMPERED, seq,
			    "record %lld opens a broker stream while stream %lld is still open", (long long)seq,
			    (long long)open_stream(w)->stream);
	if (w->n_streams == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 16;
		struct chainw *p = realloc(w->streams, cap * sizeof *p);
		if (!p)
			return latch_error(LATCH_OPERR, "out of memory");
		w->streams = p;
		w->cap = cap;
	}
	struct chainw *c = &w->streams[w->n_streams];
	memset(c, 0, sizeof *c);
	c->stream = last + 1;
	c->opened_at = seq;
	memcpy(c->id, id, sizeof id);
	if (!(c->k = secbuf_new(AUDIT_KEY_BYTES)))
		return -1;
	w->n_streams++;
	if (audit_unseal(STREAM_ORIGIN_LABEL, sizeof STREAM_ORIGIN_LABEL, id, w->verifier->data, origin, sizeof origin,
			 c->k->data, AUDIT_KEY_BYTES) != 0)
		return stop(w->r, AUDIT_TAMPERED, seq,
			    "record %lld opens broker stream %lld with a key the verifier did not seal", (long long)seq,
			    (long long)c->stream);
	c->k->len = AUDIT_KEY_BYTES;
	const char *store = json_string_value(json_object_get(rec, "store"));
	c->file = store && !strcmp(store, "file");
	return c->file && w->db ? read_stream_file(w, c) : 0;
}

/* A main-chain record that closes the open stream where it ends. */
static int on_close(struct walker *w, int64_t seq, json_t *rec)
{
	struct chainw *c = open_stream(w);
	json_t *closes = json_object_get(rec, "closes"), *last = json_object_get(rec, "last_seq");
	unsigned char mac[AUDIT_MAC_BYTES];
	if (!c || !json_is_integer(closes) || json_integer_value(closes) != c->stream || !json_is_integer(last))
		return stop(w->r, AUDIT_TAMPERED, seq, "record %lld closes a broker stream that is not open",
			    (long long)seq);
	if (json_integer_value(last) != c->last_seq || (c->last_seq && (!hex_into(rec, "last_mac", mac, sizeof mac) ||
									sodium_memcmp(mac, c->prev, sizeof mac) != 0)))
		return stop(
			w->r, AUDIT_TAMPERED, seq,
			"broker stream %lld ends at record %lld, but record %lld closed it at record %lld: records were removed",
			(long long)c->stream, (long long)c->last_seq, (long long)seq,
			(long long)json_integer_value(last));
	c->closed = true;
	return 0;
}

/* set and rm records name one secret: what its row must be now. Each
 * follows the one before: a set of an existing secret is its next
 * version under the same id, a new secret (or one set again after an rm)
 * starts at version 1, and an rm removes the version last set. A version
 * number made twice means a row was rolled back before a set: the older
 * ciphertext of that version would decrypt as the newer. */
static int on_change(struct walker *w, int64_t seq, json_t *rec, bool set)
{
	const char *name = json_string_value(json_array_get(json_object_get(rec, "secrets"), 0));
	json_t *id = json_array_get(json_object_get(rec, "secret_ids"), 0), *version = json_object_get(rec, "version");
	if (!name || (set && (!json_is_integer(id) || !json_is_integer(version))))
		return stop(w->r, AUDIT_TAMPERED, seq, "record %lld is damaged", (long long)seq);
	json_t *prev = json_object_get(w->changes, name);
	bool live = json_is_array(prev);
	json_int_t prev_id = live ? json_integer_value(json_array_get(prev, 0)) : 0;
	json_int_t prev_version = live ? json_integer_value(json_array_get(prev, 1)) : 0;
	bool follows =
		set ? (live ? json_integer_value(id) == prev_id && json_integer_value(version) == prev_version + 1
			    : json_integer_value(version) == 1)
		    : live && (!json_is_integer(id) || json_integer_value(id) == prev_id) &&
				(!json_is_integer(version) || json_integer_value(version) == prev_version);
	if (!follows)
		return stop(
			w->r, AUDIT_TAMPERED, seq,
			"record %lld (%s '%s') does not follow the secret's previous change: a row was rolled back or replaced before it",
			(long long)seq, set ? "set" : "rm", name);
	json_t *v = set ? json_pack("[I, I]", json_integer_value(id), json_integer_value(version)) : json_null();
	if (!v || json_object_set_new(w->changes, name, v) != 0)
		return latch_error(LATCH_OPERR, "out of memory");
	return 0;
}

/* What a main-chain record says about the chains and the secrets. */
static int on_main(struct walker *w, int64_t seq, const char *event, const void *rec, size_t len)
{
	bool enrol = !strcmp(event, "enrol"), close = !strcmp(event, "close");
	bool set = !strcmp(event, "set"), rm = !strcmp(event, "rm");
	if (!enrol && !close && !((set || rm) && w->changes))
		return 0;
	json_error_t err;
	json_t *o = json_loadb(rec, len, 0, &err);
	int rc = !json_is_object(o) ? stop(w->r, AUDIT_TAMPERED, seq, "record %lld is damaged", (long long)seq)
		 : enrol            ? on_enrol(w, seq, o)
		 : close            ? on_close(w, seq, o)
				    : on_change(w, seq, o, set);
	json_decref(o);
	return rc;
}

/* The record's own text begins {"seq":S, with S its seq: the MAC covers
 * that text, while a line's or a row's seq is only where it stands. With
 * several chains, each counting its own records, this is what keeps
 * records from being reordered across chains or cut from the middle of
 * one with the rest renumbered. */
static bool names_seq(const char *rec, size_t len, int64_t seq)
{
	const char *p = rec, *end = rec + len;
	int64_t v;
	return text_take(&p, end, "{\"seq\":") && text_take_int(&p, end, &v) && v == seq && p < end && *p == ',';
}

/* A stream file's record begins {"stream":S,"n":I, with I its place in
 * its stream: what names_seq is for the others. */
static bool names_stream(const char *rec, size_t len, int64_t stream, int64_t n)
{
	const char *p = rec, *end = rec + len;
	int64_t s, i;
	return text_take(&p, end, "{\"stream\":") && text_take_int(&p, end, &s) && s == stream &&
	       text_take(&p, end, ",\"n\":") && text_take_int(&p, end, &i) && i == n && p < end && *p == ',';
}

static struct chainw *find_chain(struct walker *w, int64_t stream)
{
	if (stream == 0)
		return &w->main;
	for (size_t i = 0; i < w->n_streams; i++)
		if (w->streams[i].stream == stream)
			return &w->streams[i];
	return NULL;
}

/* Checks one record at `seq` of the log; 0 good, 1 verdict given, -1
 * error. walk_unfolded is the same for a stream file's record that is in
 * no row yet, and so has no seq. */
static int walk_any(struct walker *w, int64_t seq, bool folded, int64_t stream, const void *rec, size_t len,
		    const void *mac, size_t mac_len);

static int walk_record(struct walker *w, int64_t seq, int64_t stream, const void *rec, size_t len, const void *mac,
		       size_t mac_len)
{
	return walk_any(w, seq, true, stream, rec, len, mac, mac_len);
}

static int walk_unfolded(struct walker *w, int64_t stream, const void *rec, size_t len, const void *mac)
{
	return walk_any(w, 0, false, stream, rec, len, mac, AUDIT_MAC_BYTES);
}

static int walk_any(struct walker *w, int64_t seq, bool folded, int64_t stream, const void *rec, size_t len,
		    const void *mac, size_t mac_len)
{
	unsigned char want[AUDIT_MAC_BYTES];
	char event[33], at[96];
	/* Named only when something is wrong: snprintf per record was a
	 * tenth of verify's time. */
#define AT label(at, seq, c, c->count + 1)
	if (folded && seq != w->expect)
		return stop(w->r, AUDIT_TAMPERED, w->expect,
			    seq > w->expect ? "record %lld is missing" : "record %lld is out of order",
			    (long long)w->expect);
	struct chainw *c = find_chain(w, stream);
	if (!c)
		return stop(w->r, AUDIT_TAMPERED, seq,
			    "record %lld belongs to broker stream %lld, which no passphrase holder opened",
			    (long long)seq, (long long)stream);
	if (!rec || !mac || mac_len != AUDIT_MAC_BYTES)
		return stop(w->r, AUDIT_TAMPERED, seq, "%s is damaged", AT);
	if (c->closed || c->stopped)
		return stop(w->r, AUDIT_TAMPERED, seq, "%s was added to broker stream %lld after it ended", AT,
			    (long long)c->stream);
	audit_record_mac(c->k->data, c->id, c->count + 1, c->prev, rec, len, want);
	if (sodium_memcmp(want, mac, AUDIT_MAC_BYTES) != 0)
		return stop(w->r, AUDIT_TAMPERED, seq, "%s does not match its MAC", AT);
	if (record_event(rec, len, event) != 0 ||
	    !(c->file ? names_stream(rec, len, c->stream, c->count + 1) : names_seq(rec, len, seq)))
		return stop(w->r, AUDIT_TAMPERED, seq, "%s is damaged or out of place", AT);
	/* A broker's key can only ever have made a broker's kind of record. */
	if (stream && !audit_stream_event(event))
		return stop(w->r, AUDIT_TAMPERED, seq,
			    "%s is a '%s' record in broker stream %lld, which a broker cannot make", AT, event,
			    (long long)stream);
	if (w->cp && folded && seq == w->cp->seq) {
		if (sodium_memcmp(want, w->cp->mac, AUDIT_MAC_BYTES) != 0)
			return stop(w->r, AUDIT_TAMPERED, seq, "%s differs from the checkpoint", AT);
		w->cp_seen = true;
	}
	memcpy(c->prev, want, AUDIT_MAC_BYTES);
	audit_evolve(c->k->data);
	c->count++;
	if (folded)
		c->last_seq = seq;
	if (stream && !strcmp(event, "stop"))
		c->stopped = true;
	/* What a main-chain record says is checked before it counts as
	 * verified: a refused enrol or close is the first bad record. */
	int rc = stream ? 0 : on_main(w, seq, event, rec, len);
	if (rc != 0)
		return rc;
	w->r->records++;
	if (folded)
		w->expect++;
	return 0;
}
#undef AT

/* The next record of a stream's file: 1, 0 at its end (or a last line
 * cut short by a crash: w->torn), or 1 with a verdict given in *verdict. */
static int file_next(struct walker *w, struct chainw *c, int64_t seq, const char **rec, size_t *len,
		     unsigned char mac[AUDIT_MAC_BYTES], int *verdict_given)
{
	size_t used;
	char at[96];
	*verdict_given = 0;
	int got = c->pos < c->size ? stream_line(c->data + c->pos, c->size - c->pos, &used, rec, len, mac) : 0;
	if (got < 0) {
		*verdict_given = stop(w->r, AUDIT_TAMPERED, seq, "%s is damaged in its stream's file",
				      label(at, seq, c, c->count + 1));
		return 1;
	}
	if (got == 0) {
		w->torn = w->torn || c->pos < c->size;
		return 0;
	}
	c->pos += used;
	return 1;
}

/* A folded row of a stream kept in a file: the file's record is what
 * is verified, and the row must be a copy of it. */
static int walk_file_row(struct walker *w, int64_t seq, struct chainw *c, const void *row, size_t row_len,
			 const void *row_mac, size_t row_mac_len)
{
	const char *rec;
	size_t len;
	unsigned char mac[AUDIT_MAC_BYTES];
	char at[96];
	int given;
#define AT label(at, seq, c, c->count + 1)
	if (seq != w->expect)
		return walk_record(w, seq, c->stream, row, row_len, row_mac, row_mac_len);
	if (!file_next(w, c, seq, &rec, &len, mac, &given))
		return stop(
			w->r, AUDIT_TAMPERED, seq,
			c->missing
				? "%s is in the index, but its stream's file is missing"
				: "%s is in the index but not in its stream's file: the file was cut short or the record removed",
			at);
	if (given)
		return 1;
	int rc = walk_record(w, seq, c->stream, rec, len, mac, AUDIT_MAC_BYTES);
	if (rc != 0)
		return rc;
	if (row_len != len || memcmp(row, rec, len) != 0 || row_mac_len != AUDIT_MAC_BYTES ||
	    memcmp(row_mac, mac, AUDIT_MAC_BYTES) != 0) {
		w->r->records--;
		return stop(w->r, AUDIT_TAMPERED, seq, "%s: the index's copy differs from the stream's file", AT);
	}
	return 0;
}
#undef AT

/* Where each stream's fold stands must be where the table walk left
 * it: else records were taken out of the index (or the position moved
 * past them), and queries would never show them. */
static int check_folds(struct walker *w)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(w->db, "SELECT folded, offset FROM audit_fold WHERE stream = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return audit_db_fail(w->db, "read the audit log");
	int ret = 0;
	for (size_t i = 0; i < w->n_streams && ret == 0; i++) {
		struct chainw *c = &w->streams[i];
		if (!c->file)
			continue;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, c->stream);
		int rc = sqlite3_step(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			ret = audit_db_fail(w->db, "read the audit log");
		} else if (rc == SQLITE_DONE) {
			ret = stop(w->r, AUDIT_TAMPERED, 0,
				   "broker stream %lld has no fold position: its records were taken out of the index",
				   (long long)c->stream);
		} else if (sqlite3_column_int64(st, 0) != c->count ||
			   (!c->missing && sqlite3_column_int64(st, 1) != (int64_t)c->pos)) {
			ret = stop(
				w->r, AUDIT_TAMPERED, 0,
				"broker stream %lld: the index holds %lld of its records, its fold position says %lld: records were taken out of the index",
				(long long)c->stream, (long long)c->count, (long long)sqlite3_column_int64(st, 0));
		}
	}
	sqlite3_finalize(st);
	return ret;
}

/* A stream file with records that no enrol record opened was written
 * by a broker no passphrase holder started: its records are in no chain
 * of the log, and that is what verify says. */
static int check_orphans(struct walker *w)
{
	char path[4096];
	if (stream_path_db(w->db, 1, path, sizeof path) != 0)
		return -1;
	*strrchr(path, '/') = '\0';
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : latch_error(LATCH_OPERR, "cannot read '%s': %s", path, strerror(errno));
	struct dirent *e;
	int ret = 0;
	while (ret == 0 && (e = readdir(d))) {
		char *end;
		if (strncmp(e->d_name, "stream-", 7) != 0)
			continue;
		long long n = strtoll(e->d_name + 7, &end, 10);
		struct stat sb;
		if (*end || n < 1 || find_chain(w, n) || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    (S_ISREG(sb.st_mode) && sb.st_size == 0))
			continue;
		ret = stop(w->r, AUDIT_TAMPERED, 0,
			   "'%s/%s' holds records of broker stream %lld, which no passphrase holder opened", path,
			   e->d_name, n);
	}
	closedir(d);
	return ret;
}

/* After the table: what the stream files hold beyond what was folded
 * (a broker appending while verify ran) is verified too, and a stream
 * whose file its enrolment made is gone is named. */
static int walk_file_tails(struct walker *w)
{
	for (size_t i = 0; i < w->n_streams; i++) {
		struct chainw *c = &w->streams[i];
		if (!c->file || !w->db)
			continue;
		if (c->missing && !c->count)
			return stop(w->r, AUDIT_TAMPERED, 0, "the file of broker stream %lld is missing",
				    (long long)c->stream);
		const char *rec;
		size_t len;
		unsigned char mac[AUDIT_MAC_BYTES];
		int given, rc;
		while (file_next(w, c, 0, &rec, &len, mac, &given)) {
			if (given)
				return 1;
			if ((rc = walk_unfolded(w, c->stream, rec, len, mac)) != 0)
				return rc;
		}
	}
	return 0;
}

/* After the last record: the checkpoint's record must have been seen. */
static int walk_end(struct walker *w)
{
	if (w->cp && !w->cp_seen)
		return stop(
			w->r, AUDIT_TAMPERED, w->expect,
			"the log ends at record %lld, before the checkpoint's record %lld: truncated or rolled back",
			(long long)(w->expect - 1), (long long)w->cp->seq);
	memcpy(w->r->head.log_id, w->main.id, AUDIT_LOG_ID_BYTES);
	w->r->head.seq = w->expect - 1;
	/* The checkpoint names the last record of the whole log, whatever
	 * its chain. */
	memset(w->r->head.mac, 0, AUDIT_MAC_BYTES);
	const struct chainw *last = w->main.last_seq == w->expect - 1 ? &w->main : NULL;
	for (size_t i = 0; !last && i < w->n_streams; i++)
		if (w->streams[i].last_seq == w->expect - 1)
			last = &w->streams[i];
	if (last)
		memcpy(w->r->head.mac, last->prev, AUDIT_MAC_BYTES);
	return 0;
}

/* The sealed state must agree with the walk: the main chain's length,
 * last MAC and next key, the streams, and the digest of the rows. */
/* The seq of the main chain's record after the state's last one: where
 * a state that lags behind the log stops agreeing with it. */
static int64_t main_after(sqlite3 *db, int64_t seq)
{
	sqlite3_stmt *st;
	int64_t next = 0;
	if (sqlite3_prepare_v2(db, "SELECT min(seq) FROM audit_log WHERE stream = 0 AND seq > ?1", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_int64(st, 1, seq);
		if (sqlite3_step(st) == SQLITE_ROW)
			next = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return next;
}

static int check_state(struct walker *w, sqlite3 *db, const struct secbuf *writer_key, const unsigned char *blob,
		       size_t blob_len, audit_rows_fn rows, struct vault *ctx)
{
	struct state s = {0};
	memcpy(s.l.id, w->main.id, sizeof s.l.id);
	if (state_unseal(writer_key, blob, blob_len, &s) != 0) {
		secbuf_free(s.l.key);
		return stop(w->r, AUDIT_TAMPERED, w->expect, "the audit log state does not open with this vault's key");
	}
	bool agree = s.l.cseq == w->main.count && s.last_seq == w->main.last_seq &&
		     sodium_memcmp(s.l.last_mac, w->main.prev, AUDIT_MAC_BYTES) == 0 &&
		     sodium_memcmp(s.l.key->data, w->main.k->data, AUDIT_KEY_BYTES) == 0;
	secbuf_free(s.l.key);
	if (!agree) {
		if (s.l.cseq >= w->main.count)
			return stop(
				w->r, AUDIT_TAMPERED, w->expect,
				"the log's main chain ends after %lld records but its sealed state says %lld: records were removed",
				(long long)w->main.count, (long long)s.l.cseq);
		int64_t bad = main_after(db, s.last_seq);
		return stop(w->r, AUDIT_TAMPERED, bad ? bad : w->expect,
			    "the sealed state does not match record %lld: it is older than the log",
			    (long long)(bad ? bad : w->expect));
	}
	const struct chainw *open = open_stream(w);
	int64_t streams = w->n_streams ? w->streams[w->n_streams - 1].stream : 0;
	if (s.version == 1 ? streams != 0 : s.streams != streams || s.stream_open != (open ? open->opened_at : 0))
		return stop(w->r, AUDIT_TAMPERED, w->expect,
			    "the sealed state does not match the log's broker streams");
	unsigned char digest[AUDIT_MAC_BYTES];
	if (s.version == 2 && rows) {
		if (audit_digest_rows(writer_key, rows, ctx, digest) != 0)
			return -1;
		if (sodium_memcmp(digest, s.digest, sizeof digest) != 0)
			return stop(
				w->r, AUDIT_TAMPERED, 0,
				"the secrets table is not what the recorded changes left (a row was rolled back, added or edited)");
	}
	return 0;
}

/* Each secrets row must be what its newest set record made, and every
 * secret whose newest record is a set must have its row. */
struct rows_check {
	struct walker *w;
	int verdict; /* 1 once a verdict is given */
};

static int row_each(int64_t id, int64_t version, const char *name, void *ctx)
{
	struct rows_check *rc = ctx;
	json_t *v = json_object_get(rc->w->changes, name);
	if (!json_is_array(v) || json_integer_value(json_array_get(v, 0)) != id ||
	    json_integer_value(json_array_get(v, 1)) != version) {
		rc->verdict = stop(rc->w->r, AUDIT_TAMPERED, 0,
				   "secret '%s' (id %lld, version %lld) is not what its newest recorded change left",
				   name, (long long)id, (long long)version);
		return 1;
	}
	json_object_set_new(rc->w->changes, name, json_true()); /* seen once */
	return 0;
}

static int check_rows(struct walker *w, audit_rows_fn rows, struct vault *ctx)
{
	struct rows_check rc = {w, 0};
	if (rows(ctx, row_each, &rc) != 0)
		return rc.verdict ? 1 : -1;
	const char *name;
	json_t *v;
	json_object_foreach(w->changes, name, v)
	{
		if (json_is_array(v))
			return stop(w->r, AUDIT_TAMPERED, 0,
				    "secret '%s' has a recorded set but no row: it was removed unrecorded", name);
	}
	return 0;
}

/* sqlite's own check: an index that disagrees with its table (one an
 * agent rebuilt to hide rows from a query) fails here, since queries read
 * through indexes that the MACs do not cover. */
/* What integrity_check answered: 0 for "ok", else the verdict (1). */
static int integrity_said(struct audit_report *r, const char *res)
{
	return strcmp(res, "ok") == 0
		       ? 0
		       : stop(r, AUDIT_TAMPERED, 0, "the database's indexes disagree with its tables (%.120s)", res);
}

static int check_integrity(sqlite3 *db, struct audit_report *r)
{
	sqlite3_stmt *st;
	/* cell_size_check (vault/db.c turns it on for every read) checks
	 * again what integrity_check checks anyway, and made it take 5.6 s
	 * instead of 2.2 s over a million records: off for this one pass. */
	sqlite3_exec(db, "PRAGMA cell_size_check=OFF", NULL, NULL, NULL);
	int prep = sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL);
	if (prep != SQLITE_OK) {
		sqlite3_exec(db, "PRAGMA cell_size_check=ON", NULL, NULL, NULL);
		return audit_db_fail(db, "check the database");
	}
	int rc = sqlite3_step(st);
	const char *res = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	int ret = res ? integrity_said(r, res) : audit_db_fail(db, "check the database");
	sqlite3_finalize(st);
	sqlite3_exec(db, "PRAGMA cell_size_check=ON", NULL, NULL, NULL);
	return ret;
}

/* The same check, on a read-only connection of its own in a thread of its
 * own while the walk runs: over a million records it is 1.6 s, nearly
 * half of verify's time, and a machine has more than one core. The
 * connection opens the vault by its path again: a file swapped in
 * between is one an agent could as well swap in after verify, which
 * vouches for what was at the path while it ran. */
struct integrity {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	sqlite3 *db;    /* the thread's connection while it runs (under lock) */
	bool cancelled; /* under lock */
	char path[4096];
	bool ran; /* and answered `result` */
	char result[128];
};

static void *integrity_run(void *arg)
{
	struct integrity *j = arg;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	j->ran = false;
	if (sqlite3_open_v2(j->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	pthread_mutex_lock(&j->lock);
	bool go = !j->cancelled;
	if (go)
		j->db = db;
	pthread_mutex_unlock(&j->lock);
	sqlite3_busy_timeout(db, 5000);
	sqlite3_exec(db, "PRAGMA mmap_size=1073741824", NULL, NULL, NULL);
	if (go && sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		snprintf(j->result, sizeof j->result, "%s", (const char *)sqlite3_column_text(st, 0));
		j->ran = true;
	}
	sqlite3_finalize(st);
	pthread_mutex_lock(&j->lock);
	j->db = NULL;
	pthread_mutex_unlock(&j->lock);
	sqlite3_close(db);
	return NULL;
}

static void integrity_start(struct integrity *j, sqlite3 *db)
{
	const char *path = sqlite3_db_filename(db, "main");
	j->started = false;
	if (!path || !*path || strlen(path) >= sizeof j->path || pthread_mutex_init(&j->lock, NULL) != 0)
		return;
	snprintf(j->path, sizeof j->path, "%s", path);
	j->db = NULL;
	j->cancelled = false;
	j->started = pthread_create(&j->thread, NULL, integrity_run, j) == 0;
	if (!j->started)
		pthread_mutex_destroy(&j->lock);
}

/* Waits for the thread (stopping it first when its answer is not
 * needed). 1 when it ran and answered, 0 when it did not start or could
 * not run (check_integrity then runs here). */
static int integrity_finish(struct integrity *j, bool cancel)
{
	if (!j->started)
		return 0;
	if (cancel) {
		pthread_mutex_lock(&j->lock);
		j->cancelled = true;
		if (j->db)
			sqlite3_interrupt(j->db);
		pthread_mutex_unlock(&j->lock);
	}
	pthread_join(j->thread, NULL);
	pthread_mutex_destroy(&j->lock);
	j->started = false;
	return j->ran;
}

int audit_verify(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		 const struct audit_checkpoint *cp, audit_rows_fn rows, struct vault *rows_ctx, struct audit_report *r)
{
	memset(r, 0, sizeof *r);
	r->verdict = AUDIT_UNVERIFIABLE; /* until a check completes */
	audit_fast_hmac_load();
	/* What the broker appended is folded first, so the walk below sees
	 * every record in the tables; a damaged one is named by the walk. */
	if (audit_fold(db, true) != 0)
		return -1;
	struct walker w = {.db = db};
	unsigned char blob[STATE_BLOB_MAX], origin[ORIGIN_BLOB];
	size_t blob_len = 0;
	int rc = state_load(db, w.main.id, blob, &blob_len, origin);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		/* No state: with records (or a checkpoint) left, it was deleted. */
		sqlite3_stmt *q;
		int64_t records = 0;
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit_log", -1, &q, NULL) != SQLITE_OK)
			return audit_db_fail(db, "read the audit log");
		if (sqlite3_step(q) == SQLITE_ROW)
			records = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		return cp || records ? verdict(r, AUDIT_TAMPERED, 1, "the audit log's state row is missing")
				     : verdict(r, AUDIT_UNVERIFIABLE, 0, "the vault has no audit log");
	}
	sqlite3_stmt *st = NULL, *sc = NULL;
	struct head_buf h = {0};
	struct integrity ij = {0};
	int ret = -1;
	if (rows && !(w.changes = json_object())) {
		latch_error(LATCH_OPERR, "out of memory");
		goto out;
	}
	if ((rc = walk_start(&w, verifier_key, origin, ORIGIN_BLOB, cp, r)) != 0) {
		ret = rc > 0 ? 0 : -1;
		goto out;
	}
	/* A full scan reads the file once: map it rather than copy it. */
	sqlite3_exec(db, "PRAGMA mmap_size=1073741824", NULL, NULL, NULL);
	integrity_start(&ij, db);
	if (sqlite3_prepare_v2(db, "SELECT seq, time, event, grant_id, record, mac, stream FROM audit_log ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT seq, pos, secret, time, event FROM audit_secret ORDER BY seq, pos", -1, &sc,
			       NULL) != SQLITE_OK) {
		audit_db_fail(db, "read the audit log");
		goto out;
	}
	int src = sqlite3_step(sc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0), stream = sqlite3_column_int64(st, 6);
		const void *rec = sqlite3_column_blob(st, 4);
		size_t len = (size_t)sqlite3_column_bytes(st, 4);
		struct chainw *c = find_chain(&w, stream);
		int wr = c && c->file ? walk_file_row(&w, seq, c, rec, len, sqlite3_column_blob(st, 5),
						      (size_t)sqlite3_column_bytes(st, 5))
				      : walk_record(&w, seq, stream, rec, len, sqlite3_column_blob(st, 5),
						    (size_t)sqlite3_column_bytes(st, 5));
		if (wr != 0) {
			ret = wr > 0 ? 0 : -1;
			goto out;
		}
		/* The copied columns must say what the authenticated record says. */
		const char *event = (const char *)sqlite3_column_text(st, 2);
		const char *grant = (const char *)sqlite3_column_text(st, 3);
		if (c && c->file)
			head_begin_stream(&h, stream, c->count, sqlite3_column_int64(st, 1), event ? event : "", grant);
		else
			head_begin(&h, seq, sqlite3_column_int64(st, 1), event ? event : "", grant);
		size_t n = 0;
		/* Index rows naming no record are skipped: a query joins them
		 * to audit_log, so they can never show. */
		while (src == SQLITE_ROW && sqlite3_column_int64(sc, 0) < seq)
			src = sqlite3_step(sc);
		for (; src == SQLITE_ROW && sqlite3_column_int64(sc, 0) == seq; src = sqlite3_step(sc), n++) {
			const char *name = (const char *)sqlite3_column_text(sc, 2);
			/* The secret index carries the time and event too
			 * (queries filter on them): they must be the record's. */
			const char *sevent = (const char *)sqlite3_column_text(sc, 4);
			if (sqlite3_column_int64(sc, 1) != (int64_t)n || !name || !sevent || !event ||
			    strcmp(sevent, event) != 0 || sqlite3_column_int64(sc, 3) != sqlite3_column_int64(st, 1)) {
				n = SIZE_MAX;
				break;
			}
			head_secret(&h, n, name);
		}
		if (n != SIZE_MAX)
			head_end(&h, n, c && c->file ? 0 : stream);
		if (n == SIZE_MAX || !head_matches(&h, rec, len)) {
			r->records--; /* counted as verified a moment ago */
			ret = verdict(
				r, AUDIT_TAMPERED, seq,
				"record %lld's index entries (time, event, grant, secrets or stream) were altered",
				(long long)seq);
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		audit_db_fail(db, "read the audit log");
		goto out;
	}
	if ((rc = check_folds(&w)) != 0 || (rc = walk_file_tails(&w)) != 0 || (rc = check_orphans(&w)) != 0 ||
	    (rc = walk_end(&w)) != 0 || (rc = check_state(&w, db, writer_key, blob, blob_len, rows, rows_ctx)) != 0 ||
	    (rows && (rc = check_rows(&w, rows, rows_ctx)) != 0)) {
		ret = rc > 0 ? 0 : -1;
		goto out;
	}
	rc = integrity_finish(&ij, false) ? integrity_said(r, ij.result) : check_integrity(db, r);
	if (rc != 0) {
		ret = rc > 0 ? 0 : -1;
		goto out;
	}
	ret = verdict(
		r, AUDIT_OK, 0, "%lld records verified%s", (long long)r->records,
		w.torn ? " (a broker stream ends in a record cut short by a crash: never synced, nothing was released under it)"
		       : "");
out:
	integrity_finish(&ij, true);
	sqlite3_finalize(st);
	sqlite3_finalize(sc);
	sqlite3_exec(db, "PRAGMA mmap_size=0", NULL, NULL, NULL);
	free(h.p);
	walker_free(&w);
	return ret;
}

int audit_verify_export(FILE *in, audit_key_opener open_verifier, void *ctx, const struct audit_checkpoint *cp,
			struct audit_report *r)
{
	memset(r, 0, sizeof *r);
	r->verdict = AUDIT_UNVERIFIABLE; /* until a check completes */
	audit_fast_hmac_load();
	struct walker w = {0};
	json_error_t err;
	json_t *line = NULL;
	unsigned char origin[ORIGIN_BLOB], mac[AUDIT_MAC_BYTES];
	struct secbuf *verifier = NULL;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret = -1;
	/* Header: log id, sealed first key, and what opens the verifier key. */
	if ((n = getline(&buf, &cap, in)) <= 0 || !(line = json_loadb(buf, (size_t)n, 0, &err)) ||
	    json_integer_value(json_object_get(line, "latch_audit_export")) != 1) {
		latch_error(LATCH_USAGE, "not a latch audit export");
		goto out;
	}
	json_t *vk = json_object_get(line, "verifier");
	char *vk_text = vk ? json_dumps(vk, JSON_COMPACT) : NULL;
	if (!vk_text || !hex_into(line, "log_id", w.main.id, AUDIT_LOG_ID_BYTES) ||
	    !hex_into(line, "origin", origin, ORIGIN_BLOB)) {
		json_free_text(vk_text);
		latch_error(LATCH_USAGE, "the export's header is damaged");
		goto out;
	}
	int rc = open_verifier(vk_text, strlen(vk_text), ctx, &verifier);
	json_free_text(vk_text);
	if (rc != 0)
		goto out;
	json_decref(line);
	line = NULL;
	if ((rc = walk_start(&w, verifier, origin, ORIGIN_BLOB, cp, r)) != 0) {
		ret = rc > 0 ? 0 : -1;
		goto out;
	}
	while ((n = getline(&buf, &cap, in)) > 0) {
		json_decref(line);
		line = json_loadb(buf, (size_t)n, 0, &err);
		json_t *seq = json_object_get(line, "seq"), *rec = json_object_get(line, "record");
		json_t *stream = json_object_get(line, "stream");
		size_t got = 0;
		const char *mac_hex = json_string_value(json_object_get(line, "mac"));
		if (!json_is_integer(seq) || !json_is_string(rec) || !mac_hex || (stream && !json_is_integer(stream)) ||
		    sodium_hex2bin(mac, sizeof mac, mac_hex, strlen(mac_hex), NULL, &got, NULL) != 0 ||
		    got != AUDIT_MAC_BYTES) {
			ret = verdict(r, AUDIT_TAMPERED, w.expect, "line for record %lld is damaged",
				      (long long)w.expect);
			goto out;
		}
		int wr = walk_record(&w, (int64_t)json_integer_value(seq),
				     stream ? (int64_t)json_integer_value(stream) : 0, json_string_value(rec),
				     json_string_length(rec), mac, AUDIT_MAC_BYTES);
		if (wr != 0) {
			ret = wr > 0 ? 0 : -1;
			goto out;
		}
	}
	if (ferror(in)) {
		latch_error(LATCH_OPERR, "cannot read the export: %s", strerror(errno));
		goto out;
	}
	if ((rc = walk_end(&w)) != 0) {
		ret = rc > 0 ? 0 : -1;
		goto out;
	}
	ret = verdict(r, AUDIT_OK, 0, "%lld records verified", (long long)r->records);
out:
	json_decref(line);
	free(buf);
	secbuf_free(verifier);
	walker_free(&w);
	return ret;
}
