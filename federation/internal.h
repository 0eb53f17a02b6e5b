/* federation/ internals: shared by its files, not by other modules. */
#ifndef LATCH_FEDERATION_INTERNAL_H
#define LATCH_FEDERATION_INTERNAL_H

#include "federation.h"

/* ---- http.c: libcurl, loaded on first use --------------------------- */

/* How a request went, when it did not produce an HTTP response. The
 * retry policy depends on whether the server may have seen the request. */
enum fed_net {
	FED_NET_OK = 0,  /* a response (any status) */
	FED_NET_UNSENT,  /* nothing reached the server: DNS, connect refused or timed out */
	FED_NET_TLS,     /* the TLS handshake failed (unknown CA, wrong name, ...) */
	FED_NET_SENT,    /* the request may have been seen: reset, stall, timeout after send */
	FED_NET_TOO_BIG, /* the response passed `max_body` */
	FED_NET_REFUSED, /* latch refused to send (URL scheme, libcurl missing) */
};

struct fed_http_req {
	const char *method;         /* "GET" or "POST" */
	const char *url;            /* checked with fed_url_check first */
	const char *const *headers; /* "Name: value" lines */
	size_t n_headers;
	const unsigned char *body; /* POST body, or NULL */
	size_t body_len;
	const char *ca_file; /* NULL: the system's */
	int connect_timeout_s, timeout_s;
	bool plain_http_ok; /* gcp_metadata's fixed server only */
	const char *what;   /* for messages: "the token endpoint", ... */
};

struct fed_http_resp {
	long status; /* HTTP status; 0 if none */
	enum fed_net net;
	struct secbuf *body;  /* the body, NUL-terminated (len excludes it); may hold a token */
	char request_id[128]; /* the request-id header, plain text, else "" */
	int retry_after_s;    /* a Retry-After in seconds, else -1 */
};

/* True if `url` may be used: https://, or http:// to 127.0.0.1, ::1 or
 * localhost (any port), nothing else (no userinfo). Does not report. */
bool fed_url_allowed(const char *url);
/* fed_url_allowed, reported (LATCH_USAGE) as "<what> 'URL' is not https
 * (plain http only to 127.0.0.1, ::1 or localhost)". */
int fed_url_check(const char *url, const char *what);

/* One request. 0 when a response came (r->status set, r->body filled,
 * whatever the status); -1 reported (LATCH_OPERR) otherwise, with r->net
 * saying how it failed. The body is capped at FED_RESPONSE_MAX.
 * User-Agent: latch/VERSION. Redirects are not followed. Nothing of the
 * request body or the response body is ever printed. fed_http_resp_free
 * wipes the body. */
int fed_http(const struct fed_http_req *q, struct fed_http_resp *r);
void fed_http_resp_free(struct fed_http_resp *r);

/* ---- source.c: identity tokens ------------------------------------- */

/* Fetch an identity token from the profile's source: trimmed of white
 * space, NUL-terminated in secure memory, checked (fed_jwt_check against
 * `now`), its claims in *c. 0 or -1 reported (LATCH_OPERR; LATCH_USAGE
 * for a source that cannot work as configured, such as github_actions
 * outside GitHub Actions). */
int fed_source_fetch(const struct fed_profile *p, int64_t now, struct secbuf **jwt, struct fed_claims *c);
/* A stable description of the source, for the single-flight lock's
 * name and for `latch fed status`: "file:/path", "env:VAR",
 * "github_actions:AUDIENCE", "gcp_metadata:AUDIENCE", "url:URL",
 * "exec:ARGV0". Never a header value. Into `out` (`n` bytes). */
void fed_source_describe(const struct fed_source *s, char *out, size_t n);

/* ---- exchange.c: RFC 7523 at {base}/v1/oauth/token ------------------ */

/* The request body, JSON: grant_type jwt-bearer, the assertion, the
 * federation_rule_id and organization_id, and service_account_id and
 * workspace_id when set. In secure memory (it holds the assertion). */
int fed_exchange_body(const struct fed_profile *p, const char *jwt, size_t jwt_len, struct secbuf **body);

/* Parse the token endpoint's answer (`status`, the body). For 2xx: a JSON
 * object with a string access_token (plain, at most 8 KiB), token_type
 * "Bearer" (any case), a number expires_in > 0 and at most a year; the
 * token into *token (secure, NUL-terminated), expires_in into *expires_in.
 * Otherwise, or for a 2xx that fails those checks: -1 reported
 * (LATCH_OPERR) as one line with the status, the request id, and the
 * error from either shape ({"type":"error","error":{"type","message"}}
 * or RFC 6749 {"error","error_description"}), made plain and cut short;
 * for 401, that the reason is only in the Console's authentication
 * history. Never quotes the token or anything else from a 2xx body. */
int fed_token_parse(long status, const char *request_id, const unsigned char *body, size_t len, struct secbuf **token,
		    int64_t *expires_in);

/* The whole exchange for a profile, with the retry policy: up to 3
 * attempts, backoff 0.5 s then 1 s (or the server's Retry-After, at most
 * 5 s), only after FED_NET_UNSENT, 429 or 5xx; after 429/5xx or
 * FED_NET_SENT, an identity token with a jti is never sent again: a new
 * one is fetched from the source and must have a different jti (and be a
 * different token), else the exchange fails saying so. `used_jwt_hash`
 * (32 bytes, or NULL): the hash of an identity token already exchanged
 * before (from the cache); a source that still yields it, when it carries
 * a jti, fails the same way (without a jti it may be sent again). On success t->token, expires_at (now + expires_in), minted, id,
 * request_id are set, and *jwt_hash (32 bytes) is the hash of the
 * identity token that was exchanged. */
int fed_exchange(const struct fed_profile *p, const unsigned char *used_jwt_hash, struct fed_token *t,
		 unsigned char jwt_hash[32]);

/* The hash latch keeps of an identity token (BLAKE2b-256, keyless):
 * enough to tell "the same token again", never enough to use it. */
void fed_jwt_hash(const char *jwt, size_t len, unsigned char out[32]);

/* ---- profile.c: where things live ---------------------------------- */

/* <config>/fed (made 0700 when `create`), and the file of profile NAME. */
int fed_profile_dir(char out[PATH_MAX], bool create);
int fed_profile_path(const char *name, char out[PATH_MAX]);

#endif
