/* The HMAC chain: append and verify. */
#include "audit.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <dlfcn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The tables (audit_log, audit_secret, audit_state) are created by the
 * vault's schema migration 2, in vault/store.c: the vault owns the file's
 * schema versions. */

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define STATE_PLAIN (8 + AUDIT_MAC_BYTES + AUDIT_KEY_BYTES)
#define STATE_BLOB (NONCE_BYTES + STATE_PLAIN + TAG_BYTES)
#define ORIGIN_BLOB (NONCE_BYTES + AUDIT_KEY_BYTES + TAG_BYTES)

static const char STATE_LABEL[] = "latch-audit-state-v1";
static const char ORIGIN_LABEL[] = "latch-audit-origin-v1";

static int db_fail(sqlite3 *db, const char *what)
{
	int code = sqlite3_errcode(db);
	if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
		return latch_error(LATCH_OPERR, "cannot %s: the vault is locked by another process", what);
	return latch_error(LATCH_OPERR, "cannot %s: %s", what, sqlite3_errmsg(db));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* k_{i+1} = BLAKE2b keyed with k_i (crypto_kdf): one way. */
static void evolve(unsigned char k[AUDIT_KEY_BYTES])
{
	unsigned char next[AUDIT_KEY_BYTES];
	crypto_kdf_derive_from_key(next, sizeof next, 1, "latchevo", k);
	memcpy(k, next, sizeof next);
	sodium_memzero(next, sizeof next);
}

/* HMAC-SHA-256 through OpenSSL's libcrypto, loaded only to verify: it
 * uses the CPU's SHA instructions and is about 3x faster than libsodium
 * 1.0.18's portable SHA-256, which is what brings verifying a million
 * records under 4 s. It is opened with dlopen rather than linked because
 * loading it costs every latch command about a millisecond at start-up,
 * and appends (one MAC each) gain nothing from it. Same algorithm, same
 * bytes: libsodium computes it otherwise (tests/unit checks both agree). */
static struct {
	bool tried;
	EVP_MAC_CTX *ctx;
	__typeof__(EVP_MAC_init) *init;
	__typeof__(EVP_MAC_update) *update;
	__typeof__(EVP_MAC_final) *final;
} fast;
static bool use_openssl = true;

void audit_mac_use_openssl(bool use)
{
	use_openssl = use;
}

static void fast_hmac_load(void)
{
	if (fast.tried || !use_openssl)
		return;
	fast.tried = true;
	void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return;
	__typeof__(EVP_MAC_fetch) *fetch = (__typeof__(EVP_MAC_fetch) *)dlsym(h, "EVP_MAC_fetch");
	__typeof__(EVP_MAC_CTX_new) *ctx_new = (__typeof__(EVP_MAC_CTX_new) *)dlsym(h, "EVP_MAC_CTX_new");
	__typeof__(EVP_MAC_free) *mac_free = (__typeof__(EVP_MAC_free) *)dlsym(h, "EVP_MAC_free");
	__typeof__(EVP_MAC_CTX_set_params) *set_params =
		(__typeof__(EVP_MAC_CTX_set_params) *)dlsym(h, "EVP_MAC_CTX_set_params");
	fast.init = (__typeof__(EVP_MAC_init) *)dlsym(h, "EVP_MAC_init");
	fast.update = (__typeof__(EVP_MAC_update) *)dlsym(h, "EVP_MAC_update");
	fast.final = (__typeof__(EVP_MAC_final) *)dlsym(h, "EVP_MAC_final");
	if (!fetch || !ctx_new || !mac_free || !set_params || !fast.init || !fast.update || !fast.final)
		return;
	EVP_MAC *mac = fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? ctx_new(mac) : NULL;
	if (mac)
		mac_free(mac); /* the context keeps its own reference */
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {{OSSL_MAC_PARAM_DIGEST, OSSL_PARAM_UTF8_STRING, digest, sizeof digest - 1,
				OSSL_PARAM_UNMODIFIED},
			       {NULL, 0, NULL, 0, 0}};
	if (ctx && set_params(ctx, params))
		fast.ctx = ctx;
}

static void record_mac(const unsigned char k[AUDIT_KEY_BYTES], const unsigned char *log_id, int64_t seq,
		       const unsigned char prev[AUDIT_MAC_BYTES], const void *record, size_t len,
		       unsigned char out[AUDIT_MAC_BYTES])
{
	unsigned char head[AUDIT_LOG_ID_BYTES + 8 + AUDIT_MAC_BYTES + 8];
	memcpy(head, log_id, AUDIT_LOG_ID_BYTES);
	put_u64(head + AUDIT_LOG_ID_BYTES, (uint64_t)seq);
	memcpy(head + AUDIT_LOG_ID_BYTES + 8, prev, AUDIT_MAC_BYTES);
	put_u64(head + AUDIT_LOG_ID_BYTES + 8 + AUDIT_MAC_BYTES, (uint64_t)len);
	EVP_MAC_CTX *ctx = use_openssl ? fast.ctx : NULL;
	size_t outlen = 0;
	if (ctx && fast.init(ctx, k, AUDIT_KEY_BYTES, NULL) && fast.update(ctx, head, sizeof head) &&
	    fast.update(ctx, record, len) && fast.final(ctx, out, &outlen, AUDIT_MAC_BYTES) &&
	    outlen == AUDIT_MAC_BYTES)
		return;
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, k, AUDIT_KEY_BYTES);
	crypto_auth_hmacsha256_update(&st, head, sizeof head);
	crypto_auth_hmacsha256_update(&st, record, len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

static size_t label_ad(const char *label, size_t label_len, const unsigned char *log_id,
		       unsigned char *ad)
{
	memcpy(ad, label, label_len);
	memcpy(ad + label_len, log_id, AUDIT_LOG_ID_BYTES);
	return label_len + AUDIT_LOG_ID_BYTES;
}

static void seal(const char *label, size_t label_len, const unsigned char *log_id,
		 const struct secbuf *key, const unsigned char *plain, size_t n, unsigned char *blob)
{
	unsigned char ad[64];
	size_t adlen = label_ad(label, label_len, log_id, ad);
	randombytes_buf(blob, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(blob + NONCE_BYTES, NULL, plain, n, ad, adlen, NULL,
						   blob, key->data);
}

static int unseal(const char *label, size_t label_len, const unsigned char *log_id,
		  const struct secbuf *key, const unsigned char *blob, size_t blob_len,
		  unsigned char *plain, size_t n)
{
	unsigned char ad[64];
	size_t adlen = label_ad(label, label_len, log_id, ad);
	if (blob_len != NONCE_BYTES + n + TAG_BYTES)
		return -1;
	return crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, blob + NONCE_BYTES,
							  blob_len - NONCE_BYTES, ad, adlen, blob, key->data);
}

/* The chain state as the writer sees it. Keys in secure memory. */
struct chain {
	unsigned char log_id[AUDIT_LOG_ID_BYTES];
	int64_t seq;
	unsigned char last_mac[AUDIT_MAC_BYTES];
	struct secbuf *key; /* k_{seq+1} */
};

/* Loads the state row: 1 loaded, 0 no row, -1 error. `origin` (optional)
 * receives the sealed first key. */
static int state_load(sqlite3 *db, unsigned char log_id[AUDIT_LOG_ID_BYTES],
		      unsigned char state[STATE_BLOB], unsigned char origin[ORIGIN_BLOB])
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT log_id, state, origin FROM audit_state WHERE id = 1", -1, &st,
			       NULL) != SQLITE_OK)
		return db_fail(db, "read the audit log state");
	int rc = sqlite3_step(st);
	int ret;
	if (rc == SQLITE_ROW) {
		ret = 1;
		if (sqlite3_column_bytes(st, 0) != AUDIT_LOG_ID_BYTES ||
		    sqlite3_column_bytes(st, 1) != STATE_BLOB || sqlite3_column_bytes(st, 2) != ORIGIN_BLOB) {
			ret = latch_error(LATCH_OPERR, "the audit log state is damaged: run 'latch audit verify'");
		} else {
			memcpy(log_id, sqlite3_column_blob(st, 0), AUDIT_LOG_ID_BYTES);
			memcpy(state, sqlite3_column_blob(st, 1), STATE_BLOB);
			if (origin)
				memcpy(origin, sqlite3_column_blob(st, 2), ORIGIN_BLOB);
		}
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = db_fail(db, "read the audit log state");
	}
	sqlite3_finalize(st);
	return ret;
}

/* Opens the sealed state into `c` (whose log_id is set); -1 without a
 * report when it does not authenticate. */
static int state_unseal(const struct secbuf *writer_key, const unsigned char state[STATE_BLOB],
			struct chain *c)
{
	struct secbuf *plain = secbuf_new(STATE_PLAIN);
	if (!plain)
		return -1;
	if (unseal(STATE_LABEL, sizeof STATE_LABEL, c->log_id, writer_key, state, STATE_BLOB, plain->data,
		   STATE_PLAIN) != 0) {
		secbuf_free(plain);
		return -1;
	}
	c->seq = (int64_t)get_u64(plain->data);
	memcpy(c->last_mac, plain->data + 8, AUDIT_MAC_BYTES);
	c->key = secbuf_new(AUDIT_KEY_BYTES);
	if (c->key) {
		memcpy(c->key->data, plain->data + 8 + AUDIT_MAC_BYTES, AUDIT_KEY_BYTES);
		c->key->len = AUDIT_KEY_BYTES;
	}
	secbuf_free(plain);
	return c->key ? 0 : -1;
}

static int state_open(const struct secbuf *writer_key, const unsigned char state[STATE_BLOB],
		      struct chain *c)
{
	if (state_unseal(writer_key, state, c) != 0)
		return latch_error(LATCH_OPERR,
				   "the audit log state does not open with this vault's key: run 'latch audit verify'");
	return 0;
}

static int state_store(sqlite3 *db, const struct secbuf *writer_key, const struct chain *c,
		       const unsigned char *origin)
{
	struct secbuf *plain = secbuf_new(STATE_PLAIN);
	if (!plain)
		return -1;
	put_u64(plain->data, (uint64_t)c->seq);
	memcpy(plain->data + 8, c->last_mac, AUDIT_MAC_BYTES);
	memcpy(plain->data + 8 + AUDIT_MAC_BYTES, c->key->data, AUDIT_KEY_BYTES);
	unsigned char blob[STATE_BLOB];
	seal(STATE_LABEL, sizeof STATE_LABEL, c->log_id, writer_key, plain->data, STATE_PLAIN, blob);
	secbuf_free(plain);
	sqlite3_stmt *st;
	const char *sql = origin ? "INSERT INTO audit_state (id, log_id, state, origin) VALUES (1, ?1, ?2, ?3)"
				 : "UPDATE audit_state SET state = ?2 WHERE id = 1 AND log_id = ?1";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "write the audit log state");
	sqlite3_bind_blob(st, 1, c->log_id, AUDIT_LOG_ID_BYTES, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, blob, STATE_BLOB, SQLITE_STATIC);
	if (origin)
		sqlite3_bind_blob(st, 3, origin, ORIGIN_BLOB, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE || sqlite3_changes(db) != 1)
		return db_fail(db, "write the audit log state");
	return 0;
}

/* A new log: random id and k_1; k_1 sealed under the verifier key. */
static int chain_create(sqlite3 *db, const struct secbuf *writer_key,
			const struct secbuf *verifier_key, struct chain *c)
{
	if (!verifier_key)
		return latch_error(LATCH_OPERR, "the vault has no audit log and this process cannot start one");
	/* A missing state with records present is a deleted state, not a
	 * new vault: refuse rather than start a second chain over it. */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit_log", -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "read the audit log");
	int rc = sqlite3_step(st);
	int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (n != 0)
		return n < 0 ? db_fail(db, "read the audit log")
			     : latch_error(LATCH_OPERR,
					   "the audit log has records but no state: it was tampered with; run 'latch audit verify'");
	randombytes_buf(c->log_id, AUDIT_LOG_ID_BYTES);
	c->seq = 0;
	memset(c->last_mac, 0, AUDIT_MAC_BYTES);
	if (!(c->key = secbuf_new(AUDIT_KEY_BYTES)))
		return -1;
	randombytes_buf(c->key->data, AUDIT_KEY_BYTES);
	c->key->len = AUDIT_KEY_BYTES;
	unsigned char origin[ORIGIN_BLOB];
	seal(ORIGIN_LABEL, sizeof ORIGIN_LABEL, c->log_id, verifier_key, c->key->data, AUDIT_KEY_BYTES,
	     origin);
	return state_store(db, writer_key, c, origin);
}

/* Events, grant ids and secret names are restricted to characters that
 * need no JSON escaping, so the record's leading fields can be rebuilt
 * byte for byte at verification without a JSON parser. */
static bool plain_token(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '.' || ch == '/' || ch == '-'))
			return false;
	}
	return true;
}

/* The indexed head of a record: {"seq":S,"time":T,"event":"E"
 * [,"grant":"G"][,"secrets":["a",...]] — no closing brace. Returns the
 * length, or 0 if it does not fit. */
struct head_buf {
	char *p;
	size_t len, cap;
};

static void head_add(struct head_buf *h, const char *s)
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

static void head_begin(struct head_buf *h, int64_t seq, int64_t time, const char *event,
		       const char *grant)
{
	/* Digits by hand: verify rebuilds a head per record, and snprintf
	 * was a tenth of its time. */
	char num[24];
	h->len = 0;
	head_add(h, "{\"seq\":");
	head_add(h, int_text(seq, num));
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

static void head_secret(struct head_buf *h, size_t pos, const char *name)
{
	head_add(h, pos == 0 ? ",\"secrets\":[\"" : ",\"");
	head_add(h, name);
	head_add(h, "\"");
}

static void head_end_secrets(struct head_buf *h, size_t n)
{
	if (n)
		head_add(h, "]");
}

static bool starts_with(const char *p, size_t avail, const char *prefix)
{
	size_t n = strlen(prefix);
	return avail >= n && memcmp(p, prefix, n) == 0;
}

/* The record must begin with exactly the rebuilt head, and the head's
 * optional fields must not follow it: if they did, index rows were
 * deleted (a grant id nulled, a record's secret rows removed). */
static bool head_matches(const struct head_buf *h, const void *record, size_t len)
{
	const char *r = record;
	if (h->len == SIZE_MAX || len <= h->len || memcmp(r, h->p, h->len) != 0)
		return false;
	const char *rest = r + h->len;
	size_t avail = len - h->len;
	if (rest[0] == '}')
		return avail == 1;
	return rest[0] == ',' && !starts_with(rest, avail, ",\"grant\":") &&
	       !starts_with(rest, avail, ",\"secrets\":");
}

/* Hash of argv under a key derived from the writer key: equal argv give
 * equal hashes within a vault, and no one without the key can test a
 * guess of what argv held. */
static void argv_hash(const struct secbuf *writer_key, char *const *argv, int argc, char out[65])
{
	unsigned char hk[crypto_generichash_KEYBYTES], h[32], n[8];
	crypto_kdf_derive_from_key(hk, sizeof hk, 2, "latcharg", writer_key->data);
	crypto_generichash_state st;
	crypto_generichash_init(&st, hk, sizeof hk, sizeof h);
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(argv[i]);
		put_u64(n, len);
		crypto_generichash_update(&st, n, 8);
		crypto_generichash_update(&st, (const unsigned char *)argv[i], len);
	}
	crypto_generichash_final(&st, h, sizeof h);
	sodium_bin2hex(out, 65, h, sizeof h);
	sodium_memzero(hk, sizeof hk);
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
static char *record_tail(const struct audit_event *ev, const struct secbuf *writer_key)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	char exe[PATH_MAX], cwd[PATH_MAX], hash[65];
	pid_t pid = ev->pid;
	uid_t uid = ev->uid;
	const char *exe_p = ev->exe, *cwd_p = ev->cwd;
	if (pid == 0) {
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
	if (ev->uses >= 0 && ev->ttl > 0)
		json_object_set_new(o, "uses", json_integer(ev->uses));
	if (ev->n_cmds) {
		json_t *cmds = json_array();
		for (size_t i = 0; i < ev->n_cmds; i++)
			json_array_append_new(cmds, json_string(ev->cmds[i]));
		json_object_set_new(o, "cmds", cmds);
	}
	if (ev->version >= 0)
		json_object_set_new(o, "version", json_integer(ev->version));
	if (ev->decision)
		json_object_set_new(o, "decision", json_string(ev->decision));
	if (ev->reason)
		json_object_set_new(o, "reason", json_string(ev->reason));
	if (ev->exit_status >= 0)
		json_object_set_new(o, "exit", json_integer(ev->exit_status));
	if (ev->redactions >= 0)
		json_object_set_new(o, "redactions", json_integer(ev->redactions));
	json_object_set_new(o, "pid", json_integer(pid));
	json_object_set_new(o, "uid", json_integer(uid));
	if (exe_p)
		set_path(o, "exe", "exe_hex", exe_p);
	if (cwd_p)
		set_path(o, "cwd", "cwd_hex", cwd_p);
	if (ev->argv) {
		argv_hash(writer_key, ev->argv, ev->argc, hash);
		json_object_set_new(o, "argv_hash", json_string(hash));
	}
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static int insert_record(sqlite3 *db, int64_t seq, int64_t now, const struct audit_event *ev,
			 const char *record, size_t len, const unsigned char mac[AUDIT_MAC_BYTES])
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO audit_log (seq, time, event, grant_id, record, mac)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			       -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "append to the audit log");
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, ev->event, -1, SQLITE_STATIC);
	if (ev->grant_id)
		sqlite3_bind_text(st, 4, ev->grant_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, record, (int)len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 6, mac, AUDIT_MAC_BYTES, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "append to the audit log");
	if (!ev->n_secrets)
		return 0;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO audit_secret (seq, pos, secret, time, event) VALUES (?1, ?2, ?3, ?4, ?5)",
			       -1, &st, NULL) != SQLITE_OK)
		return db_fail(db, "append to the audit log");
	for (size_t i = 0; i < ev->n_secrets && rc == SQLITE_DONE; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, seq);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		sqlite3_bind_text(st, 3, ev->secrets[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_text(st, 5, ev->event, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "append to the audit log");
	return 0;
}

static int check_event(const struct audit_event *ev)
{
	if (!ev->event || !plain_token(ev->event, 32))
		return latch_error(LATCH_OPERR, "invalid audit event name");
	if (ev->grant_id && !plain_token(ev->grant_id, 64))
		return latch_error(LATCH_OPERR, "invalid grant id in audit event");
	if (ev->n_secrets > AUDIT_MAX_SECRETS)
		return latch_error(LATCH_OPERR, "too many secrets in one audit event");
	for (size_t i = 0; i < ev->n_secrets; i++)
		if (!plain_token(ev->secrets[i].name, 128))
			return latch_error(LATCH_OPERR, "invalid secret name in audit event");
	return 0;
}

int audit_append(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		 const struct audit_event *ev, int64_t *seq_out)
{
	if (check_event(ev) != 0)
		return -1;
	struct chain c = {0};
	unsigned char state[STATE_BLOB];
	int rc = state_load(db, c.log_id, state, NULL);
	if (rc < 0)
		return -1;
	if ((rc == 1 ? state_open(writer_key, state, &c) : chain_create(db, writer_key, verifier_key, &c)) != 0) {
		secbuf_free(c.key);
		return -1;
	}
	int64_t seq = c.seq + 1, now = ev->time > 0 ? ev->time : (int64_t)time(NULL);
	struct head_buf h = {0};
	head_begin(&h, seq, now, ev->event, ev->grant_id);
	for (size_t i = 0; i < ev->n_secrets; i++)
		head_secret(&h, i, ev->secrets[i].name);
	head_end_secrets(&h, ev->n_secrets);
	char *tail = record_tail(ev, writer_key);
	int ret = -1;
	if (h.len == SIZE_MAX || !tail || tail[0] != '{') {
		latch_error(LATCH_OPERR, "cannot build the audit record: out of memory");
		goto out;
	}
	/* head + "," + tail without its "{" (or "}" alone if the tail is "{}") */
	head_add(&h, strcmp(tail, "{}") ? "," : "");
	head_add(&h, tail + 1);
	if (h.len == SIZE_MAX) {
		latch_error(LATCH_OPERR, "cannot build the audit record: out of memory");
		goto out;
	}
	unsigned char mac[AUDIT_MAC_BYTES];
	record_mac(c.key->data, c.log_id, seq, c.last_mac, h.p, h.len, mac);
	if (insert_record(db, seq, now, ev, h.p, h.len, mac) != 0)
		goto out;
	c.seq = seq;
	memcpy(c.last_mac, mac, AUDIT_MAC_BYTES);
	evolve(c.key->data);
	if (state_store(db, writer_key, &c, NULL) != 0)
		goto out;
	if (seq_out)
		*seq_out = seq;
	ret = 0;
out:
	json_free_text(tail);
	free(h.p);
	secbuf_free(c.key);
	return ret;
}

int audit_append_commit(sqlite3 *db, const struct secbuf *writer_key, const struct audit_event *evs, size_t n)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, "lock the vault");
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = audit_append(db, writer_key, NULL, &evs[i], NULL);
	if (rc != 0 || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int audit_check_writer(sqlite3 *db, const struct secbuf *writer_key)
{
	struct chain c = {0};
	unsigned char state[STATE_BLOB];
	int rc = state_load(db, c.log_id, state, NULL);
	if (rc <= 0)
		return rc < 0 ? -1 : latch_error(LATCH_OPERR, "the vault has no audit log");
	rc = state_open(writer_key, state, &c);
	secbuf_free(c.key);
	return rc;
}

int audit_head(sqlite3 *db, struct audit_checkpoint *out)
{
	unsigned char state[STATE_BLOB];
	int rc = state_load(db, out->log_id, state, NULL);
	if (rc <= 0)
		return rc < 0 ? -1 : latch_error(LATCH_OPERR, "the vault has no audit log");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1", -1, &st, NULL) !=
	    SQLITE_OK)
		return db_fail(db, "read the audit log");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == AUDIT_MAC_BYTES) {
		out->seq = sqlite3_column_int64(st, 0);
		memcpy(out->mac, sqlite3_column_blob(st, 1), AUDIT_MAC_BYTES);
		rc = 0;
	} else {
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? latch_error(LATCH_OPERR, "the audit log is empty or damaged")
							   : db_fail(db, "read the audit log");
	}
	sqlite3_finalize(st);
	return rc;
}

static void vverdict(struct audit_report *r, enum audit_verdict v, int64_t first_bad, const char *fmt,
		     va_list ap) __attribute__((format(printf, 4, 0)));
static void vverdict(struct audit_report *r, enum audit_verdict v, int64_t first_bad, const char *fmt,
		     va_list ap)
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

/* Walks audit_secret in (seq, pos) order beside the records. */
struct secret_cursor {
	sqlite3_stmt *st;
	int rc;
};

static void cursor_next(struct secret_cursor *sc)
{
	sc->rc = sqlite3_step(sc->st);
}

/* Walks a chain record by record from k_1: shared by the database and
 * the export verifiers. */
struct walker {
	unsigned char log_id[AUDIT_LOG_ID_BYTES];
	struct secbuf *k; /* k_expect */
	unsigned char prev[AUDIT_MAC_BYTES];
	int64_t expect;
	const struct audit_checkpoint *cp;
	bool cp_seen;
	struct audit_report *r;
};

/* Opens the sealed first key. 0 ready, 1 verdict given, -1 error. */
static int walk_start(struct walker *w, const struct secbuf *verifier_key, const unsigned char *origin,
		      size_t origin_len, const struct audit_checkpoint *cp, struct audit_report *r)
{
	w->r = r;
	w->cp = cp;
	w->expect = 1;
	memset(w->prev, 0, sizeof w->prev);
	if (cp && memcmp(cp->log_id, w->log_id, AUDIT_LOG_ID_BYTES) != 0)
		return stop(r, AUDIT_TAMPERED, 1, "the audit log was replaced: its id differs from the checkpoint's");
	if (!(w->k = secbuf_new(AUDIT_KEY_BYTES)))
		return -1;
	if (unseal(ORIGIN_LABEL, sizeof ORIGIN_LABEL, w->log_id, verifier_key, origin, origin_len, w->k->data,
		   AUDIT_KEY_BYTES) != 0)
		return stop(r, AUDIT_UNVERIFIABLE, 0,
			       "the verifier key does not open this log's first key (wrong key or altered origin)");
	w->k->len = AUDIT_KEY_BYTES;
	return 0;
}

/* Checks one record; 0 good, 1 verdict given. `mac_out` gets its MAC. */
static int walk_record(struct walker *w, int64_t seq, const void *rec, size_t len, const void *mac,
		       size_t mac_len)
{
	unsigned char want[AUDIT_MAC_BYTES];
	if (seq != w->expect)
		return stop(w->r, AUDIT_TAMPERED, w->expect,
			       seq > w->expect ? "record %lld is missing" : "record %lld is out of order",
			       (long long)w->expect);
	if (!rec || !mac || mac_len != AUDIT_MAC_BYTES)
		return stop(w->r, AUDIT_TAMPERED, seq, "record %lld is damaged", (long long)seq);
	record_mac(w->k->data, w->log_id, seq, w->prev, rec, len, want);
	if (sodium_memcmp(want, mac, AUDIT_MAC_BYTES) != 0)
		return stop(w->r, AUDIT_TAMPERED, seq, "record %lld does not match its MAC", (long long)seq);
	if (w->cp && seq == w->cp->seq) {
		if (sodium_memcmp(want, w->cp->mac, AUDIT_MAC_BYTES) != 0)
			return stop(w->r, AUDIT_TAMPERED, seq, "record %lld differs from the checkpoint",
				       (long long)seq);
		w->cp_seen = true;
	}
	memcpy(w->prev, want, AUDIT_MAC_BYTES);
	evolve(w->k->data);
	w->r->records++;
	w->expect++;
	return 0;
}

/* After the last record: the checkpoint's record must have been seen. */
static int walk_end(struct walker *w)
{
	if (w->cp && !w->cp_seen)
		return stop(w->r, AUDIT_TAMPERED, w->expect,
			       "the log ends at record %lld, before the checkpoint's record %lld: truncated or rolled back",
			       (long long)(w->expect - 1), (long long)w->cp->seq);
	memcpy(w->r->head.log_id, w->log_id, AUDIT_LOG_ID_BYTES);
	w->r->head.seq = w->expect - 1;
	memcpy(w->r->head.mac, w->prev, AUDIT_MAC_BYTES);
	return 0;
}

int audit_verify(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		 const struct audit_checkpoint *cp, struct audit_report *r)
{
	memset(r, 0, sizeof *r);
	r->verdict = AUDIT_UNVERIFIABLE; /* until a check completes */
	fast_hmac_load();
	struct walker w = {0};
	unsigned char state[STATE_BLOB], origin[ORIGIN_BLOB];
	int rc = state_load(db, w.log_id, state, origin);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		/* No state: with records (or a checkpoint) left, it was deleted. */
		sqlite3_stmt *q;
		int64_t records = 0;
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit_log", -1, &q, NULL) != SQLITE_OK)
			return db_fail(db, "read the audit log");
		if (sqlite3_step(q) == SQLITE_ROW)
			records = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		return cp || records ? verdict(r, AUDIT_TAMPERED, 1, "the audit log's state row is missing")
				     : verdict(r, AUDIT_UNVERIFIABLE, 0, "the vault has no audit log");
	}
	sqlite3_stmt *st = NULL;
	struct secret_cursor sc = {NULL, SQLITE_DONE};
	struct head_buf h = {0};
	int ret = -1;
	if ((rc = walk_start(&w, verifier_key, origin, ORIGIN_BLOB, cp, r)) != 0) {
		ret = rc > 0 ? 0 : -1;
		goto out;
	}
	/* A full scan reads the file once: map it rather than copy it. */
	sqlite3_exec(db, "PRAGMA mmap_size=1073741824", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(db, "SELECT seq, time, event, grant_id, record, mac FROM audit_log ORDER BY seq",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT seq, pos, secret, time, event FROM audit_secret ORDER BY seq, pos",
			       -1, &sc.st, NULL) != SQLITE_OK) {
		db_fail(db, "read the audit log");
		goto out;
	}
	cursor_next(&sc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		const void *rec = sqlite3_column_blob(st, 4);
		size_t len = (size_t)sqlite3_column_bytes(st, 4);
		if (walk_record(&w, seq, rec, len, sqlite3_column_blob(st, 5),
				(size_t)sqlite3_column_bytes(st, 5)) != 0) {
			ret = 0;
			goto out;
		}
		/* The copied columns must say what the authenticated record says. */
		const char *event = (const char *)sqlite3_column_text(st, 2);
		const char *grant = (const char *)sqlite3_column_text(st, 3);
		head_begin(&h, seq, sqlite3_column_int64(st, 1), event ? event : "", grant);
		size_t n = 0;
		/* Index rows naming no record are skipped: a query joins them
		 * to audit_log, so they can never show. */
		while (sc.rc == SQLITE_ROW && sqlite3_column_int64(sc.st, 0) < seq)
			cursor_next(&sc);
		for (; sc.rc == SQLITE_ROW && sqlite3_column_int64(sc.st, 0) == seq; cursor_next(&sc), n++) {
			const char *name = (const char *)sqlite3_column_text(sc.st, 2);
			/* The secret index carries the time and event too
			 * (queries filter on them): they must be the record's. */
			const char *sevent = (const char *)sqlite3_column_text(sc.st, 4);
			if (sqlite3_column_int64(sc.st, 1) != (int64_t)n || !name || !sevent || !event ||
			    strcmp(sevent, event) != 0 ||
			    sqlite3_column_int64(sc.st, 3) != sqlite3_column_int64(st, 1)) {
				n = SIZE_MAX;
				break;
			}
			head_secret(&h, n, name);
		}
		if (n != SIZE_MAX)
			head_end_secrets(&h, n);
		if (n == SIZE_MAX || !head_matches(&h, rec, len)) {
			ret = verdict(r, AUDIT_TAMPERED, seq,
				      "record %lld's index entries (time, event, grant or secrets) were altered",
				      (long long)seq);
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		db_fail(db, "read the audit log");
		goto out;
	}
	if (walk_end(&w) != 0) {
		ret = 0;
		goto out;
	}
	/* The sealed state must agree with the last record and the key. */
	struct chain sealed = {0};
	memcpy(sealed.log_id, w.log_id, AUDIT_LOG_ID_BYTES);
	if (state_unseal(writer_key, state, &sealed) != 0) {
		secbuf_free(sealed.key);
		ret = verdict(r, AUDIT_TAMPERED, w.expect, "the audit log state does not open with this vault's key");
		goto out;
	}
	bool agree = sealed.seq == w.expect - 1 &&
		     sodium_memcmp(sealed.last_mac, w.prev, AUDIT_MAC_BYTES) == 0 &&
		     sodium_memcmp(sealed.key->data, w.k->data, AUDIT_KEY_BYTES) == 0;
	secbuf_free(sealed.key);
	if (!agree) {
		ret = sealed.seq >= w.expect
			      ? verdict(r, AUDIT_TAMPERED, w.expect,
					"the log ends at record %lld but its sealed state says %lld: records were removed",
					(long long)(w.expect - 1), (long long)sealed.seq)
			      : verdict(r, AUDIT_TAMPERED, sealed.seq + 1,
					"the sealed state does not match record %lld", (long long)sealed.seq);
		goto out;
	}
	ret = verdict(r, AUDIT_OK, 0, "%lld records verified", (long long)r->records);
out:
	sqlite3_finalize(st);
	sqlite3_finalize(sc.st);
	sqlite3_exec(db, "PRAGMA mmap_size=0", NULL, NULL, NULL);
	free(h.p);
	secbuf_free(w.k);
	return ret;
}

int audit_verify_export(FILE *in, audit_key_opener open_verifier, void *ctx,
			const struct audit_checkpoint *cp, struct audit_report *r)
{
	memset(r, 0, sizeof *r);
	r->verdict = AUDIT_UNVERIFIABLE; /* until a check completes */
	fast_hmac_load();
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
	const char *id_hex = json_string_value(json_object_get(line, "log_id"));
	const char *origin_hex = json_string_value(json_object_get(line, "origin"));
	size_t got = 0, got2 = 0;
	json_t *vk = json_object_get(line, "verifier");
	char *vk_text = vk ? json_dumps(vk, JSON_COMPACT) : NULL;
	if (!id_hex || !origin_hex || !vk_text ||
	    sodium_hex2bin(w.log_id, AUDIT_LOG_ID_BYTES, id_hex, strlen(id_hex), NULL, &got, NULL) != 0 ||
	    got != AUDIT_LOG_ID_BYTES ||
	    sodium_hex2bin(origin, ORIGIN_BLOB, origin_hex, strlen(origin_hex), NULL, &got2, NULL) != 0 ||
	    got2 != ORIGIN_BLOB) {
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
		json_t *seq = json_object_get(line, "seq");
		json_t *rec = json_object_get(line, "record");
		const char *mac_hex = json_string_value(json_object_get(line, "mac"));
		got = 0;
		if (!json_is_integer(seq) || !json_is_string(rec) || !mac_hex ||
		    sodium_hex2bin(mac, sizeof mac, mac_hex, strlen(mac_hex), NULL, &got, NULL) != 0 ||
		    got != AUDIT_MAC_BYTES) {
			ret = verdict(r, AUDIT_TAMPERED, w.expect, "line for record %lld is damaged", (long long)w.expect);
			goto out;
		}
		if (walk_record(&w, (int64_t)json_integer_value(seq), json_string_value(rec),
				json_string_length(rec), mac, AUDIT_MAC_BYTES) != 0) {
			ret = 0;
			goto out;
		}
	}
	if (ferror(in)) {
		latch_error(LATCH_OPERR, "cannot read the export: %s", strerror(errno));
		goto out;
	}
	if (walk_end(&w) != 0) {
		ret = 0;
		goto out;
	}
	ret = verdict(r, AUDIT_OK, 0, "%lld records verified", (long long)r->records);
out:
	json_decref(line);
	free(buf);
	secbuf_free(verifier);
	secbuf_free(w.k);
	return ret;
}
