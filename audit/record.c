/* A record's text, its MAC and its rows: what every chain appends. */
#include "internal.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool audit_token_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '.' || ch == '/' || ch == '-';
}

/* Events, grant ids and secret names are restricted to characters that
 * need no JSON escaping, so the record's leading fields can be rebuilt
 * byte for byte at verification without a JSON parser. */
static bool plain_token(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!audit_token_char(s[i]))
			return false;
	return true;
}

bool text_take(const char **p, const char *end, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

bool text_take_int(const char **p, const char *end, int64_t *out)
{
	const char *q = *p;
	uint64_t v = 0;
	while (q < end && *q >= '0' && *q <= '9' && q - *p < 18)
		v = v * 10 + (uint64_t)(*q++ - '0');
	if (q == *p || (**p == '0' && q - *p > 1))
		return false;
	*out = (int64_t)v;
	*p = q;
	return true;
}

void head_add(struct head_buf *h, const char *s)
{
	if (h->len == SIZE_MAX)
		return;
	size_t n = strlen(s);
	if (h->len + n + 1 > h->cap) {
		size_t cap = (h->len + n + 1) * 2;
		char *p = realloc(h->p, cap);
		if (!p) {
			h->len = SIZE_MAX; /* poisoned: callers check */
			return;
		}
		h->p = p;
		h->cap = cap;
	}
	memcpy(h->p + h->len, s, n + 1);
	h->len += n;
}

/* Decimal text of v, as printf's %lld writes it. */
static const char *int_text(int64_t v, char buf[24])
{
	char *p = buf + 23;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	*p = '\0';
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	return p;
}

/* The head after its chain's numbering: time, event, grant. */
static void head_rest(struct head_buf *h, int64_t time, const char *event, const char *grant)
{
	char num[24];
	head_add(h, ",\"time\":");
	head_add(h, int_text(time, num));
	head_add(h, ",\"event\":\"");
	head_add(h, event);
	head_add(h, "\"");
	if (grant) {
		head_add(h, ",\"grant\":\"");
		head_add(h, grant);
		head_add(h, "\"");
	}
}

void head_begin(struct head_buf *h, int64_t seq, int64_t time, const char *event, const char *grant)
{
	/* Digits by hand: verify rebuilds a head per record, and snprintf
	 * was a tenth of its time. */
	char num[24];
	h->len = 0;
	head_add(h, "{\"seq\":");
	head_add(h, int_text(seq, num));
	head_rest(h, time, event, grant);
}

void head_begin_stream(struct head_buf *h, int64_t stream, int64_t n, int64_t time, const char *event,
		       const char *grant)
{
	char num[24];
	h->len = 0;
	head_add(h, "{\"stream\":");
	head_add(h, int_text(stream, num));
	head_add(h, ",\"n\":");
	head_add(h, int_text(n, num));
	head_rest(h, time, event, grant);
}

void head_secret(struct head_buf *h, size_t pos, const char *name)
{
	head_add(h, pos == 0 ? ",\"secrets\":[\"" : ",\"");
	head_add(h, name);
	head_add(h, "\"");
}

void head_end(struct head_buf *h, size_t n_secrets, int64_t stream)
{
	if (n_secrets)
		head_add(h, "]");
	if (stream) {
		char num[24];
		head_add(h, ",\"stream\":");
		head_add(h, int_text(stream, num));
	}
}

static bool starts_with(const char *p, size_t avail, const char *prefix)
{
	size_t n = strlen(prefix);
	return avail >= n && memcmp(p, prefix, n) == 0;
}

bool head_matches(const struct head_buf *h, const void *record, size_t len)
{
	const char *r = record;
	if (h->len == SIZE_MAX || len <= h->len || memcmp(r, h->p, h->len) != 0)
		return false;
	const char *rest = r + h->len;
	size_t avail = len - h->len;
	if (rest[0] == '}')
		return avail == 1;
	return rest[0] == ',' && !starts_with(rest, avail, ",\"grant\":") &&
	       !starts_with(rest, avail, ",\"secrets\":") && !starts_with(rest, avail, ",\"stream\":");
}

void audit_argv_key(const struct secbuf *writer_key, unsigned char out[AUDIT_KEY_BYTES])
{
	crypto_kdf_derive_from_key(out, AUDIT_KEY_BYTES, 2, "latcharg", writer_key->data);
}

/* Hash of argv under the vault's argv key: equal argv give equal hashes
 * within a vault, and no one without the key can test a guess of what
 * argv held. */
static void argv_hash(const unsigned char key[AUDIT_KEY_BYTES], char *const *argv, int argc, char out[65])
{
	unsigned char h[32], n[8];
	crypto_generichash_state st;
	crypto_generichash_init(&st, key, AUDIT_KEY_BYTES, sizeof h);
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(argv[i]);
		put_u64(n, len);
		crypto_generichash_update(&st, n, 8);
		crypto_generichash_update(&st, (const unsigned char *)argv[i], len);
	}
	crypto_generichash_final(&st, h, sizeof h);
	sodium_bin2hex(out, 65, h, sizeof h);
}

/* A path as JSON: as text when it is UTF-8, else hex under another key. */
static int set_path(json_t *o, const char *key, const char *hex_key, const char *path)
{
	json_t *s = json_string(path);
	if (s)
		return json_object_set_new(o, key, s);
	size_t n = strlen(path);
	char *hex = malloc(2 * n + 1);
	if (!hex)
		return -1;
	sodium_bin2hex(hex, 2 * n + 1, (const unsigned char *)path, n);
	int rc = json_object_set_new(o, hex_key, json_string(hex));
	free(hex);
	return rc;
}

/* Everything after the head, as a JSON object text "{...}". */
static char *record_tail(const struct audit_event *ev, const unsigned char *argv_key, json_t *extra)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	char exe[PATH_MAX], cwd[PATH_MAX], hash[65];
	/* A process not known is written -1, as it always was: a record's
	 * pid is never 0. */
	pid_t pid = ev->pid ? ev->pid : -1;
	uid_t uid = ev->uid;
	const char *exe_p = ev->exe, *cwd_p = ev->cwd;
	if (ev->self) {
		pid = getpid();
		uid = getuid();
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		exe[n > 0 ? n : 0] = '\0';
		exe_p = exe;
		cwd_p = getcwd(cwd, sizeof cwd) ? cwd : "";
	}
	bool any_id = false;
	for (size_t i = 0; ev->secrets && i < ev->n_secrets; i++)
		any_id = any_id || ev->secrets[i].id != 0;
	if (any_id) { /* the broker knows names only */
		json_t *ids = json_array();
		for (size_t i = 0; i < ev->n_secrets; i++)
			json_array_append_new(ids, json_integer(ev->secrets[i].id));
		json_object_set_new(o, "secret_ids", ids);
	}
	if (ev->ttl > 0)
		json_object_set_new(o, "ttl", json_integer(ev->ttl));
	if (ev->uses > 0 && ev->ttl > 0)
		json_object_set_new(o, "uses", json_integer(ev->uses));
	if (ev->n_cmds) {
		json_t *cmds = json_array();
		for (size_t i = 0; i < ev->n_cmds; i++)
			json_array_append_new(cmds, json_string(ev->cmds[i]));
		json_object_set_new(o, "cmds", cmds);
	}
	if (ev->version > 0)
		json_object_set_new(o, "version", json_integer(ev->version));
	if (ev->decision)
		json_object_set_new(o, "decision", json_string(ev->decision));
	if (ev->reason)
		json_object_set_new(o, "reason", json_string(ev->reason));
	if (ev->has_exit)
		json_object_set_new(o, "exit", json_integer(ev->exit_status));
	if (ev->has_redactions)
		json_object_set_new(o, "redactions", json_integer(ev->redactions));
	if (ev->has_redactions && ev->redacted) {
		json_t *per = json_object();
		for (size_t i = 0; ev->secrets && i < ev->n_secrets; i++)
			json_object_set_new(per, ev->secrets[i].name, json_integer(ev->redacted[i]));
		if (ev->redacted_token >= 0)
			json_object_set_new(per, "model-token", json_integer(ev->redacted_token));
		json_object_set_new(o, "redacted", per);
	}
	if (ev->lost_exits > 0)
		json_object_set_new(o, "lost_exits", json_integer(ev->lost_exits));
	if (ev->n_paths) {
		json_t *paths = json_array();
		for (size_t i = 0; i < ev->n_paths; i++)
			json_array_append_new(paths, json_string(ev->paths[i]));
		json_object_set_new(o, "paths", paths);
	}
	if (ev->scope)
		json_object_set_new(o, "scope", json_string(ev->scope));
	if (ev->n_allow_env) {
		json_t *vars = json_array();
		for (size_t i = 0; i < ev->n_allow_env; i++)
			json_array_append_new(vars, json_string(ev->allow_env[i]));
		json_object_set_new(o, "allow_env", vars);
	}
	if (ev->runner > 0)
		json_object_set_new(o, "runner", json_integer(ev->runner));
	if (ev->has_session)
		json_object_set_new(o, "session", json_boolean(ev->in_session));
	if (ev->no_redact)
		json_object_set_new(o, "redact", json_false());
	if (ev->mint) {
		const struct audit_mint *m = ev->mint;
		json_t *f = json_object();
		json_object_set_new(f, "profile", json_string(m->profile ? m->profile : ""));
		json_object_set_new(f, "rule", json_string(m->rule_id ? m->rule_id : ""));
		json_object_set_new(f, "expires", json_integer(m->expires_at));
		if (m->iss && *m->iss)
			json_object_set_new(f, "iss", json_string(m->iss));
		if (m->sub && *m->sub)
			json_object_set_new(f, "sub", json_string(m->sub));
		if (m->jti && *m->jti)
			json_object_set_new(f, "jti", json_string(m->jti));
		json_object_set_new(o, "fed", f);
	}
	if (extra)
		json_object_update(o, extra);
	json_object_set_new(o, "pid", json_integer(pid));
	json_object_set_new(o, "uid", json_integer(uid));
	if (exe_p)
		set_path(o, "exe", "exe_hex", exe_p);
	if (cwd_p)
		set_path(o, "cwd", "cwd_hex", cwd_p);
	if (ev->argv) {
		argv_hash(argv_key, ev->argv, ev->argc, hash);
		json_object_set_new(o, "argv_hash", json_string(hash));
	}
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

int rows_prepare(sqlite3 *db, struct rows *w)
{
	w->db = db;
	w->log = w->secret = NULL;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO audit_log (seq, time, event, grant_id, record, mac, stream)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
			       -1, &w->log, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO audit_secret (seq, pos, secret, time, event) VALUES (?1, ?2, ?3, ?4, ?5)",
			       -1, &w->secret, NULL) != SQLITE_OK) {
		int rc = audit_db_fail(db, "append to the audit log");
		rows_finish(w);
		return rc;
	}
	return 0;
}

void rows_finish(struct rows *w)
{
	sqlite3_finalize(w->log);
	sqlite3_finalize(w->secret);
	w->log = w->secret = NULL;
}

int rows_insert(struct rows *w, int64_t seq, int64_t time, int64_t stream, const struct audit_event *ev,
		const char *record, size_t len, const unsigned char mac[AUDIT_MAC_BYTES])
{
	sqlite3_stmt *st = w->log;
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int64(st, 2, time);
	sqlite3_bind_text(st, 3, ev->event, -1, SQLITE_STATIC);
	if (ev->grant_id)
		sqlite3_bind_text(st, 4, ev->grant_id, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_blob(st, 5, record, (int)len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, mac, AUDIT_MAC_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, stream);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	st = w->secret;
	for (size_t i = 0; i < ev->n_secrets && rc == SQLITE_DONE; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, seq);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		sqlite3_bind_text(st, 3, ev->secrets[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, time);
		sqlite3_bind_text(st, 5, ev->event, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : audit_db_fail(w->db, "append to the audit log");
}

int audit_check_event(const struct audit_event *ev)
{
	if (!ev->event || !plain_token(ev->event, 32))
		return latch_error(LATCH_OPERR, "invalid audit event name");
	if (ev->grant_id && !plain_token(ev->grant_id, 64))
		return latch_error(LATCH_OPERR, "invalid grant id in audit event");
	if (ev->n_secrets > AUDIT_MAX_SECRETS)
		return latch_error(LATCH_OPERR, "too many secrets in one audit event");
	for (size_t i = 0; i < ev->n_secrets; i++)
		if (!plain_token(ev->secrets[i].name, LATCH_NAME_MAX))
			return latch_error(LATCH_OPERR, "invalid secret name in audit event");
	return 0;
}

/* The next seq of the whole log (every chain): the rowid b-tree's last
 * entry, so no index is read. */
int64_t audit_next_seq(sqlite3 *db)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT max(seq) FROM audit_log", -1, &st, NULL) != SQLITE_OK)
		return -1;
	int64_t seq = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) + 1 : -1;
	sqlite3_finalize(st);
	return seq;
}

int link_record(const struct link *l, const struct audit_event *ev, const unsigned char *argv_key, json_t *extra,
		int64_t seq, int64_t stream, struct head_buf *h, int64_t *time_out, unsigned char mac[AUDIT_MAC_BYTES])
{
	if (audit_check_event(ev) != 0)
		return -1;
	int64_t now = ev->time > 0 ? ev->time : (int64_t)time(NULL);
	/* A stream kept in a file of its own numbers its records itself
	 * (seq 0): the log's sequence is given to them only when they are
	 * folded into the tables. */
	if (seq)
		head_begin(h, seq, now, ev->event, ev->grant_id);
	else
		head_begin_stream(h, stream, l->cseq + 1, now, ev->event, ev->grant_id);
	for (size_t i = 0; i < ev->n_secrets; i++)
		head_secret(h, i, ev->secrets[i].name);
	head_end(h, ev->n_secrets, seq ? stream : 0);
	char *tail = record_tail(ev, argv_key, extra);
	int ret = -1;
	if (h->len == SIZE_MAX || !tail || tail[0] != '{')
		goto out;
	/* head + "," + tail without its "{" (or "}" alone if the tail is "{}") */
	head_add(h, strcmp(tail, "{}") ? "," : "");
	head_add(h, tail + 1);
	if (h->len == SIZE_MAX)
		goto out;
	audit_record_mac(l->key->data, l->id, l->cseq + 1, l->last_mac, h->p, h->len, mac);
	*time_out = now;
	ret = 0;
out:
	json_free_text(tail);
	return ret == 0 ? 0 : latch_error(LATCH_OPERR, "cannot build the audit record: out of memory");
}

void link_advance(struct link *l, const unsigned char mac[AUDIT_MAC_BYTES])
{
	l->cseq++;
	memcpy(l->last_mac, mac, AUDIT_MAC_BYTES);
	audit_evolve(l->key->data);
}

int link_append(sqlite3 *db, struct link *l, const struct audit_event *ev, const unsigned char *argv_key, json_t *extra,
		int64_t stream, int64_t *seq_out)
{
	int64_t seq = audit_next_seq(db), now;
	if (seq < 1)
		return audit_db_fail(db, "read the audit log");
	struct head_buf h = {0};
	struct rows w;
	unsigned char mac[AUDIT_MAC_BYTES];
	int rc = link_record(l, ev, argv_key, extra, seq, stream, &h, &now, mac);
	if (rc == 0 && (rc = rows_prepare(db, &w)) == 0) {
		rc = rows_insert(&w, seq, now, stream, ev, h.p, h.len, mac);
		rows_finish(&w);
	}
	free(h.p);
	if (rc != 0)
		return -1;
	link_advance(l, mac);
	if (seq_out)
		*seq_out = seq;
	return 0;
}
