/* The RFC 7523 exchange at {base_url}/v1/oauth/token (internal.h;
 * docs/design.md section 6): the identity token goes out as the
 * assertion of a JSON body, a short-lived access token comes back.
 *
 * The assertion, the body that carries it and the access token live in
 * secure memory and are wiped on every path. A message may quote what
 * the server said about an error, made plain and cut short, but never
 * text that looks like a JWT ("eyJ") or an Anthropic key ("sk-ant-"): a
 * server that echoes the assertion must not make latch print it. Nothing
 * from a successful answer is quoted but a short token_type.
 *
 * Retries (at most 3 attempts) follow only a request that never left
 * (FED_NET_UNSENT; its message is printed each time, as a warning), a 429
 * or a 5xx (silent until the last). A token endpoint that answered may
 * have consumed the identity token, and one with a jti is accepted only
 * once, so it is then never sent again: the source must yield a new one. */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define WHAT "the token endpoint"
#define GRANT_TYPE "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define ACCESS_TOKEN_MAX 8192
#define EXPIRES_IN_MAX 31536000 /* a year */
#define ATTEMPTS 3
#define RETRY_AFTER_MAX_S 5
/* Server text quoted in a message: at most this many bytes of it. */
#define QUOTE_MAX 200

static const char *const exchange_headers[] = {
	"content-type: application/json",
	"anthropic-beta: oauth-2025-04-20,oidc-federation-2026-04-01",
	"accept: application/json",
};

static bool set_string(json_t *o, const char *key, const char *value)
{
	return json_object_set_new(o, key, json_string(value)) == 0;
}

int fed_exchange_body(const struct fed_profile *p, const char *jwt, size_t jwt_len, struct secbuf **body)
{
	*body = NULL;
	if (!p->rule_id || !*p->rule_id)
		return latch_error(LATCH_USAGE, "the profile has no federation_rule_id");
	if (!p->org_id || !*p->org_id)
		return latch_error(LATCH_USAGE, "the profile has no organization_id");
	json_t *o = json_object();
	bool ok = o && set_string(o, "grant_type", GRANT_TYPE) &&
		  json_object_set_new(o, "assertion", json_stringn(jwt, jwt_len)) == 0 &&
		  set_string(o, "federation_rule_id", p->rule_id) && set_string(o, "organization_id", p->org_id);
	if (ok && p->service_account_id && *p->service_account_id)
		ok = set_string(o, "service_account_id", p->service_account_id);
	if (ok && p->workspace_id && *p->workspace_id)
		ok = set_string(o, "workspace_id", p->workspace_id);
	char *text = ok ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!text)
		return latch_error(LATCH_OPERR, "cannot build the request to %s", WHAT);
	size_t n = strlen(text);
	*body = secbuf_new(n + 1);
	if (*body) {
		memcpy((*body)->data, text, n + 1);
		(*body)->len = n;
	}
	sodium_memzero(text, n);
	json_free_text(text);
	return *body ? 0 : -1;
}

/* True if `s` may hold a credential: a JWT (its header is base64 of
 * '{"', "eyJ") or an Anthropic key or token. */
static bool looks_secret(const char *s)
{
	return strstr(s, "eyJ") || strstr(s, "sk-ant-");
}

/* Cut a string's incomplete UTF-8 sequence at its end, if any. */
static void utf8_trim(char *s)
{
	size_t n = strlen(s), i = n;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t want = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	if (n - (i - 1) < want)
		s[i - 1] = '\0';
}

/* Server-supplied text for a message, into out (n bytes): at most
 * `max` bytes of it, control characters escaped, "..." when cut; or a
 * note that it was withheld. */
static void quote_server(const char *s, size_t max, char *out, size_t n)
{
	if (looks_secret(s)) {
		snprintf(out, n, "(the message was withheld)");
		return;
	}
	char cut[QUOTE_MAX + 1];
	size_t len = strlen(s);
	bool longer = len > max;
	if (max > QUOTE_MAX)
		max = QUOTE_MAX;
	if (len > max)
		len = max;
	memcpy(cut, s, len);
	cut[len] = '\0';
	utf8_trim(cut);
	text_escape(cut, out, n > 4 ? n - 3 : n);
	utf8_trim(out);
	/* Escaping can spell one ("\x1e" then "yJ"): checked again. */
	if (looks_secret(out)) {
		snprintf(out, n, "(the message was withheld)");
		return;
	}
	if (longer && n > 4)
		strcat(out, "...");
}

/* " (request-id X)" for a request id that is plain and short, else "". */
static void request_id_note(const char *request_id, char *out, size_t n)
{
	out[0] = '\0';
	if (request_id && *request_id && strlen(request_id) < 128 && text_is_plain(request_id) &&
	    !looks_secret(request_id))
		snprintf(out, n, " (request-id %s)", request_id);
}

/* The one line that says why the endpoint answered `status` (not 2xx):
 * the status, the error from either shape, the request id. A body that
 * is not JSON is not quoted at all: it might echo the assertion. */
static void refusal(long status, const char *request_id, const unsigned char *body, size_t len, char *out, size_t n)
{
	char rid[160], type[80] = "", msg[QUOTE_MAX * 2] = "", detail[sizeof type + sizeof msg + 8] = "";
	request_id_note(request_id, rid, sizeof rid);
	json_error_t err;
	json_t *o = body ? json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &err) : NULL;
	const char *t = NULL, *m = NULL;
	if (json_is_object(o)) {
		json_t *e = json_object_get(o, "error");
		if (json_is_object(e)) { /* {"type":"error","error":{"type","message"}} */
			t = json_string_value(json_object_get(e, "type"));
			m = json_string_value(json_object_get(e, "message"));
		} else if (json_is_string(e)) { /* RFC 6749: {"error","error_description"} */
			t = json_string_value(e);
			m = json_string_value(json_object_get(o, "error_description"));
		}
	}
	if (t && *t)
		quote_server(t, 64, type, sizeof type);
	if (m && *m)
		quote_server(m, QUOTE_MAX, msg, sizeof msg);
	json_decref(o);
	if (*type && *msg)
		snprintf(detail, sizeof detail, " %s: %s", type, msg);
	else if (*type)
		snprintf(detail, sizeof detail, " %s", type);
	else if (*msg)
		snprintf(detail, sizeof detail, ": %s", msg);

	if (status == 401)
		snprintf(out, n,
			 "%s refused the exchange: HTTP 401%s; the reason is only in the Claude Console's "
			 "authentication history (workload identity page)",
			 WHAT, rid);
	else if (status == 429)
		snprintf(out, n, WHAT " rate limited the exchange: HTTP 429%s%s", detail, rid);
	else if (status >= 500)
		snprintf(out, n, WHAT " failed: HTTP %ld%s%s", status, detail, rid);
	else if (status >= 400)
		snprintf(out, n, WHAT " refused the exchange: HTTP %ld%s%s", status, detail, rid);
	else if (status >= 300)
		snprintf(out, n, WHAT " answered HTTP %ld, a redirect, which latch does not follow%s", status, rid);
	else
		snprintf(out, n, WHAT " answered HTTP %ld, not a token%s", status, rid);
}

static int bad_answer(const char *request_id, const char *why)
{
	char rid[160];
	request_id_note(request_id, rid, sizeof rid);
	return latch_error(LATCH_OPERR, WHAT "'s answer %s%s", why, rid);
}

/* 1 to 8 KiB of printable ASCII, nothing else: it becomes a header. */
static bool access_token_ok(const char *s, size_t n)
{
	if (n == 0 || n > ACCESS_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* A JSON integer, or a real with no fraction, in 1..EXPIRES_IN_MAX; else -1. */
static int64_t expires_in_value(json_t *v)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		return i >= 1 && i <= EXPIRES_IN_MAX ? (int64_t)i : -1;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		return isfinite(d) && d == floor(d) && d >= 1 && d <= EXPIRES_IN_MAX ? (int64_t)d : -1;
	}
	return -1;
}

int fed_token_parse(long status, const char *request_id, const unsigned char *body, size_t len, struct secbuf **token,
		    int64_t *expires_in)
{
	*token = NULL;
	*expires_in = 0;
	if (status < 200 || status > 299) {
		char line[LATCH_ERROR_MAX + 1];
		refusal(status, request_id, body, len, line, sizeof line);
		return latch_error(LATCH_OPERR, "%s", line);
	}
	json_error_t err;
	json_t *o = body ? json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &err) : NULL;
	int rc = -1;
	if (!o) {
		bad_answer(request_id, "is not JSON");
		return -1;
	}
	if (!json_is_object(o)) {
		bad_answer(request_id, "is not a JSON object");
		goto out;
	}
	json_t *at = json_object_get(o, "access_token");
	const char *tok = json_string_value(at);
	if (!at) {
		bad_answer(request_id, "has no access_token");
		goto out;
	}
	if (!tok || !access_token_ok(tok, json_string_length(at))) {
		bad_answer(request_id, "has an access_token that is not 1 to 8192 printable ASCII characters");
		goto out;
	}
	json_t *tt = json_object_get(o, "token_type");
	const char *type = json_string_value(tt);
	if (!tt) {
		bad_answer(request_id, "has no token_type");
		goto out;
	}
	if (!type || strlen(type) != json_string_length(tt) || strcasecmp(type, "Bearer") != 0) {
		/* Quoted only when it is short, plain and not a credential. */
		char why[96];
		if (type && strlen(type) == json_string_length(tt) && strlen(type) <= 32 && text_is_plain(type) &&
		    !looks_secret(type))
			snprintf(why, sizeof why, "has token_type '%s', not Bearer", type);
		else
			snprintf(why, sizeof why, "has a token_type that is not Bearer");
		bad_answer(request_id, why);
		goto out;
	}
	json_t *ex = json_object_get(o, "expires_in");
	int64_t e = expires_in_value(ex);
	if (!ex) {
		bad_answer(request_id, "has no expires_in");
		goto out;
	}
	if (e < 0) {
		bad_answer(request_id, "has an expires_in that is not a whole number of seconds from 1 to 31536000");
		goto out;
	}
	size_t n = json_string_length(at);
	*token = secbuf_new(n + 1);
	if (!*token)
		goto out;
	memcpy((*token)->data, tok, n);
	(*token)->data[n] = '\0';
	(*token)->len = n;
	*expires_in = e;
	rc = 0;
out:
	json_decref(o); /* wiped by the allocator main() installs */
	return rc;
}

void fed_jwt_hash(const char *jwt, size_t len, unsigned char out[32])
{
	crypto_generichash(out, 32, (const unsigned char *)jwt, len, NULL, 0);
}

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The identity tokens that may have been seen by the endpoint: their
 * jti and hash. */
struct seen {
	char jti[ATTEMPTS][FED_CLAIM_MAX];
	unsigned char hash[ATTEMPTS][32];
	size_t n;
	char why[LATCH_ERROR_MAX + 1]; /* what the endpoint last said */
};

static bool was_seen(const struct seen *s, const struct fed_claims *c, const unsigned char hash[32], size_t *which)
{
	for (size_t i = 0; i < s->n; i++) {
		if ((c->jti[0] && !strcmp(c->jti, s->jti[i])) || sodium_memcmp(hash, s->hash[i], 32) == 0) {
			*which = i;
			return true;
		}
	}
	return false;
}

/* A fresh identity token from the source, refused if it was exchanged
 * before (`used`) or may have been seen by the endpoint. */
static int fetch(const struct fed_profile *p, const unsigned char *used, const struct seen *seen, struct secbuf **jwt,
		 struct fed_claims *c, unsigned char hash[32])
{
	if (fed_source_fetch(p, (int64_t)time(NULL), jwt, c) != 0)
		return -1;
	fed_jwt_hash((const char *)(*jwt)->data, (*jwt)->len, hash);
	size_t i;
	int rc = 0;
	if (was_seen(seen, c, hash, &i)) {
		const char *jti = seen->jti[i];
		if (jti[0] && text_is_plain(jti))
			rc = latch_error(LATCH_OPERR,
					 "%s; the identity token (jti '%s') may already have been seen by the token "
					 "endpoint and cannot be sent again; the platform must issue a new one",
					 seen->why, jti);
		else
			rc = latch_error(LATCH_OPERR,
					 "%s; the identity token may already have been seen by the token endpoint and "
					 "cannot be sent again; the platform must issue a new one",
					 seen->why);
	} else if (used && c->jti[0] && sodium_memcmp(hash, used, 32) == 0) {
		/* Single use (a jti): the server would refuse it, and count it
		 * against the workload. Without a jti it may go again. */
		rc = latch_error(LATCH_OPERR,
				 "the identity token was already exchanged; the platform has not issued a new one yet");
	}
	if (rc != 0) {
		secbuf_free(*jwt);
		*jwt = NULL;
	}
	return rc;
}

int fed_exchange(const struct fed_profile *p, const unsigned char *used_jwt_hash, struct fed_token *t,
		 unsigned char jwt_hash[32])
{
	memset(t, 0, sizeof *t);
	const char *base = p->base_url && *p->base_url ? p->base_url : FED_DEFAULT_BASE_URL;
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	static const char path[] = "/v1/oauth/token";
	char *url = malloc(blen + sizeof path);
	if (!url)
		return latch_error(LATCH_OPERR, "cannot allocate the token endpoint's URL");
	memcpy(url, base, blen);
	memcpy(url + blen, path, sizeof path);
	if (fed_url_check(url, WHAT) != 0) {
		free(url);
		return -1;
	}
	int timeout_s = p->timeout_s > 0 ? p->timeout_s : 30;
	int connect_s = (timeout_s + 2) / 3;
	connect_s = connect_s > 10 ? 10 : connect_s < 1 ? 1 : connect_s;

	struct secbuf *jwt = NULL, *body = NULL;
	struct fed_claims claims;
	unsigned char hash[32];
	struct seen seen = {.n = 0};
	int rc = -1;
	for (int attempt = 1;; attempt++) {
		if (!jwt && fetch(p, used_jwt_hash, &seen, &jwt, &claims, hash) != 0)
			break;
		if (fed_exchange_body(p, (const char *)jwt->data, jwt->len, &body) != 0)
			break;
		struct fed_http_req q = {
			.method = "POST",
			.url = url,
			.headers = exchange_headers,
			.n_headers = sizeof exchange_headers / sizeof exchange_headers[0],
			.body = body->data,
			.body_len = body->len,
			.ca_file = p->ca_file,
			.connect_timeout_s = connect_s,
			.timeout_s = timeout_s,
			.what = WHAT,
		};
		struct fed_http_resp r;
		/* A failure is said once, when there is no retry left. */
		bool was_quiet = latch_error_quiet(true);
		int sent = fed_http(&q, &r);
		latch_error_quiet(was_quiet);
		secbuf_free(body);
		body = NULL;
		if (sent == 0 && r.status >= 200 && r.status <= 299) {
			int64_t expires_in;
			if (fed_token_parse(r.status, r.request_id, r.body->data, r.body->len, &t->token,
					    &expires_in) == 0) {
				t->expires_at = (int64_t)time(NULL) + expires_in;
				t->minted = true;
				t->id = claims;
				memcpy(t->request_id, r.request_id, sizeof t->request_id);
				t->request_id[sizeof t->request_id - 1] = '\0';
				memcpy(jwt_hash, hash, 32);
				rc = 0;
			}
			fed_http_resp_free(&r);
			break;
		}
		bool busy = sent == 0 && (r.status == 429 || r.status >= 500);
		bool retry = attempt < ATTEMPTS && (busy || (sent != 0 && r.net == FED_NET_UNSENT));
		if (!retry) {
			if (sent != 0)
				latch_error_print_last();
			if (sent == 0) { /* an error answer: say what the endpoint said */
				struct secbuf *none;
				int64_t e;
				fed_token_parse(r.status, r.request_id, r.body->data, r.body->len, &none, &e);
			}
			fed_http_resp_free(&r);
			break;
		}
		long wait_ms = attempt == 1 ? 500 : 1000;
		if (busy && r.retry_after_s >= 0)
			wait_ms = 1000L * (r.retry_after_s < RETRY_AFTER_MAX_S ? r.retry_after_s : RETRY_AFTER_MAX_S);
		if (busy) {
			/* Possibly consumed: a token with a jti never goes out again. */
			refusal(r.status, r.request_id, r.body->data, r.body->len, seen.why, sizeof seen.why);
			if (claims.jti[0]) {
				memcpy(seen.jti[seen.n], claims.jti, sizeof claims.jti);
				memcpy(seen.hash[seen.n], hash, 32);
				seen.n++;
				secbuf_free(jwt);
				jwt = NULL;
			}
		}
		fed_http_resp_free(&r);
		pause_ms(wait_ms);
	}
	secbuf_free(jwt);
	secbuf_free(body);
	free(url);
	return rc;
}
