/* Reading the log: queries, checkpoints, export. None needs a key. */
#include "audit.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* The fields `latch audit` shows, read from the record's text: anyone
 * can edit the plaintext tables, so a record must be one JSON object of
 * its own seq (a broker stream's file record: of its own stream, which
 * numbers it) before anything of it is shown. */
static int row_fill(json_t *o, struct audit_row *r, int64_t stream)
{
	bool own = json_object_get(o, "seq") ? json_integer_value(json_object_get(o, "seq")) == r->seq
					     : stream && json_integer_value(json_object_get(o, "stream")) == stream &&
						       json_integer_value(json_object_get(o, "n")) > 0;
	if (!json_is_object(o) || !own)
		return latch_error(LATCH_OPERR, "audit record %lld is damaged: run 'latch audit verify'",
				   (long long)r->seq);
	r->time = json_integer_value(json_object_get(o, "time"));
	r->pid = json_integer_value(json_object_get(o, "pid"));
	r->event = json_string_value(json_object_get(o, "event"));
	r->decision = json_string_value(json_object_get(o, "decision"));
	r->exe = json_string_value(json_object_get(o, "exe"));
	json_t *secrets = json_object_get(o, "secrets"), *name;
	size_t i, used = 0;
	r->secrets[0] = '\0';
	json_array_foreach(secrets, i, name)
	{
		const char *text = json_string_value(name);
		int w = snprintf(r->secrets + used, sizeof r->secrets - used, "%s%s", i ? "," : "",
				 text ? text : "(null)");
		if (w < 0 || (size_t)w >= sizeof r->secrets - used) {
			r->secrets[used] = '\0';
			break;
		}
		used += (size_t)w;
	}
	/* A model token's mint names no secret: show its profile there. */
	const char *profile = json_string_value(json_object_get(json_object_get(o, "fed"), "profile"));
	if (!used && profile)
		snprintf(r->secrets, sizeof r->secrets, "fed:%s", profile);
	return 0;
}

int audit_query(sqlite3 *db, const struct audit_filter *f, int (*fn)(const struct audit_row *r, void *ctx), void *ctx)
{
	/* The broker's newest records first join the tables. */
	if (audit_fold(db, false) != 0)
		return -1;
	/* Each filter adds a clause only when set, so sqlite can pick the
	 * index that fits: by secret, by grant, by event, or by time. */
	char sql[512];
	if (f->secret)
		snprintf(sql, sizeof sql,
			 "SELECT l.seq, l.record, l.stream FROM audit_secret s JOIN audit_log l ON l.seq = s.seq"
			 " WHERE s.secret = ?1 AND s.time >= ?2%s%s ORDER BY l.seq",
			 f->grant_id ? " AND l.grant_id = ?3" : "", f->event ? " AND l.event = ?4" : "");
	else
		snprintf(sql, sizeof sql,
			 "SELECT seq, record, stream FROM audit_log l WHERE l.time >= ?2%s%s ORDER BY seq",
			 f->grant_id ? " AND l.grant_id = ?3" : "", f->event ? " AND l.event = ?4" : "");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return latch_error(LATCH_OPERR, "cannot query the audit log: %s", sqlite3_errmsg(db));
	if (f->secret)
		sqlite3_bind_text(st, 1, f->secret, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, f->since);
	if (f->grant_id)
		sqlite3_bind_text(st, 3, f->grant_id, -1, SQLITE_STATIC);
	if (f->event)
		sqlite3_bind_text(st, 4, f->event, -1, SQLITE_STATIC);
	int rc, ret = 0;
	struct audit_row r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *rec = sqlite3_column_blob(st, 1);
		int len = sqlite3_column_bytes(st, 1);
		if (!rec)
			continue;
		memset(&r, 0, sizeof r);
		r.seq = sqlite3_column_int64(st, 0);
		r.record = rec;
		r.len = (size_t)len;
		json_error_t err;
		json_t *o = json_loadb(rec, (size_t)len, 0, &err);
		ret = row_fill(o, &r, sqlite3_column_int64(st, 2));
		if (ret == 0)
			ret = fn(&r, ctx);
		json_decref(o);
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = latch_error(LATCH_OPERR, "cannot query the audit log: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return ret;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), without timegm's
 * dependence on TZ. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static int num(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

int audit_parse_since(const char *s, int64_t now, int64_t *out)
{
	size_t n = strlen(s);
	/* A duration (as --ttl takes one), up to a hundred years ago. */
	int64_t ago;
	if (duration_seconds(s, &ago) && ago <= 100LL * 365 * 86400) {
		*out = now - ago;
		return 0;
	}
	/* YYYY-MM-DD, optionally followed by THH:MM:SSZ. */
	if ((n == 10 || n == 20) && digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' &&
	    digits(s + 8, 2)) {
		int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2), hh = 0, mm = 0, ss = 0;
		if (n == 20) {
			if (s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' ||
			    !digits(s + 17, 2) || s[19] != 'Z')
				goto bad;
			hh = num(s + 11, 2);
			mm = num(s + 14, 2);
			ss = num(s + 17, 2);
		}
		static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
		if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || hh > 23 || mm > 59 || ss > 60)
			goto bad;
		bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		if (mo == 2 && d == 29 && !leap)
			goto bad;
		*out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + hh * 3600 + mm * 60 + ss;
		return 0;
	}
bad:
	return latch_error(
		LATCH_USAGE,
		"invalid --since '%s': use a duration (90s, 30m, 24h, 7d, 2w) or a UTC time (2026-11-23 or 2026-11-23T15:00:00Z)",
		s);
}

int audit_checkpoint_format(const struct audit_checkpoint *cp, char *buf, size_t n)
{
	char vid[2 * sizeof cp->vault_id + 1], id[2 * AUDIT_LOG_ID_BYTES + 1], mac[2 * AUDIT_MAC_BYTES + 1];
	sodium_bin2hex(vid, sizeof vid, cp->vault_id, sizeof cp->vault_id);
	sodium_bin2hex(id, sizeof id, cp->log_id, AUDIT_LOG_ID_BYTES);
	sodium_bin2hex(mac, sizeof mac, cp->mac, AUDIT_MAC_BYTES);
	int len = snprintf(
		buf, n,
		"{\"latch_audit_checkpoint\":1,\"vault_id\":\"%s\",\"log_id\":\"%s\",\"seq\":%lld,\"mac\":\"%s\"}", vid,
		id, (long long)cp->seq, mac);
	return len > 0 && (size_t)len < n ? 0 : latch_error(LATCH_OPERR, "checkpoint buffer too small");
}

static int hex_field(json_t *o, const char *key, unsigned char *dst, size_t n)
{
	const char *hex = json_string_value(json_object_get(o, key));
	size_t got = 0;
	if (!hex || strlen(hex) != 2 * n || sodium_hex2bin(dst, n, hex, 2 * n, NULL, &got, NULL) != 0 || got != n)
		return -1;
	return 0;
}

int audit_checkpoint_parse(const char *text, size_t len, struct audit_checkpoint *out)
{
	json_error_t err;
	json_t *o = json_loadb(text, len, 0, &err);
	int rc = -1;
	if (!o || !json_is_object(o))
		goto done;
	json_t *version = json_object_get(o, "latch_audit_checkpoint");
	json_t *seq = json_object_get(o, "seq");
	if (!json_is_integer(version) || json_integer_value(version) != 1 || !json_is_integer(seq) ||
	    json_integer_value(seq) < 1 || hex_field(o, "vault_id", out->vault_id, sizeof out->vault_id) != 0 ||
	    hex_field(o, "log_id", out->log_id, AUDIT_LOG_ID_BYTES) != 0 ||
	    hex_field(o, "mac", out->mac, AUDIT_MAC_BYTES) != 0)
		goto done;
	out->seq = (int64_t)json_integer_value(seq);
	rc = 0;
done:
	json_decref(o);
	return rc == 0 ? 0 : latch_error(LATCH_USAGE, "not a latch audit checkpoint");
}

int audit_export(sqlite3 *db, const char *verifier_json, FILE *out)
{
	sqlite3_stmt *st;
	if (audit_fold(db, false) != 0)
		return -1;
	if (sqlite3_prepare_v2(db, "SELECT log_id, origin FROM audit_state WHERE id = 1", -1, &st, NULL) != SQLITE_OK)
		return latch_error(LATCH_OPERR, "cannot read the audit log: %s", sqlite3_errmsg(db));
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return latch_error(LATCH_OPERR, "the vault has no audit log");
	}
	int idn = sqlite3_column_bytes(st, 0), orn = sqlite3_column_bytes(st, 1);
	char *id = malloc(2 * (size_t)idn + 1), *origin = malloc(2 * (size_t)orn + 1);
	if (id && origin) {
		sodium_bin2hex(id, 2 * (size_t)idn + 1, sqlite3_column_blob(st, 0), (size_t)idn);
		sodium_bin2hex(origin, 2 * (size_t)orn + 1, sqlite3_column_blob(st, 1), (size_t)orn);
		fprintf(out, "{\"latch_audit_export\":1,\"log_id\":\"%s\",\"origin\":\"%s\",\"verifier\":%s}\n", id,
			origin, verifier_json);
	}
	free(id);
	free(origin);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT seq, record, mac, stream FROM audit_log ORDER BY seq", -1, &st, NULL) !=
	    SQLITE_OK)
		return latch_error(LATCH_OPERR, "cannot read the audit log: %s", sqlite3_errmsg(db));
	char mac[2 * AUDIT_MAC_BYTES + 1];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *rec = sqlite3_column_blob(st, 1);
		int len = sqlite3_column_bytes(st, 1);
		if (sqlite3_column_bytes(st, 2) != AUDIT_MAC_BYTES || !rec)
			memset(mac, '0', 2 * AUDIT_MAC_BYTES), mac[2 * AUDIT_MAC_BYTES] = '\0';
		else
			sodium_bin2hex(mac, sizeof mac, sqlite3_column_blob(st, 2), AUDIT_MAC_BYTES);
		/* The record is embedded as a JSON string so its exact bytes,
		 * which the MAC covers, survive the trip. */
		json_t *line = json_pack("{s:I, s:s%, s:s}", "seq", (json_int_t)sqlite3_column_int64(st, 0), "record",
					 rec ? rec : "", (size_t)(rec ? len : 0), "mac", mac);
		/* A broker stream's record says which: its MAC is under that
		 * stream's key. */
		if (line && sqlite3_column_int64(st, 3) != 0)
			json_object_set_new(line, "stream", json_integer(sqlite3_column_int64(st, 3)));
		if (!line || json_dumpf(line, out, JSON_COMPACT) != 0 || fputc('\n', out) == EOF) {
			json_decref(line);
			sqlite3_finalize(st);
			return latch_error(LATCH_OPERR, "cannot write the export");
		}
		json_decref(line);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return latch_error(LATCH_OPERR, "cannot read the audit log: %s", sqlite3_errmsg(db));
	return 0;
}
