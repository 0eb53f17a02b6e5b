/* federation: the model-API token from workload identity, never from a
 * stored key (docs/design.md section 6, docs/federation.md): an identity
 * token the platform gives the workload (a file, a variable, GitHub
 * Actions, a GCP metadata server, a URL, a command), exchanged with OAuth
 * 2.0 jwt-bearer (RFC 7523) at POST {base_url}/v1/oauth/token for a
 * short-lived access token, cached 0600 in latch's runtime directory and
 * shared by every concurrent `latch run` (one exchange per identity
 * token). The only module that uses libcurl, which it loads when it first
 * sends something (federation/http.c says why). No broker, no vault: CI
 * has neither, and the model token is the agent's own credential. */
#ifndef LATCH_FEDERATION_H
#define LATCH_FEDERATION_H

#include "../common/common.h"

/* An identity token is at most this long (platforms issue 1-2 KiB). */
#define FED_JWT_MAX (16 * 1024)
/* It must still be valid this many seconds from now: clocks differ, and
 * the exchange takes time. A cached access token is handed out only
 * while more than this many seconds remain. */
#define FED_EXP_SKEW 30
/* From this many seconds before its expiry a cached access token is
 * refreshed (while the old one, with more than FED_EXP_SKEW left, still
 * serves if the refresh fails). Anthropic's SDKs use the same two. */
#define FED_REFRESH_BEFORE 120
/* iss, sub and jti are recorded (never the token): each at most this
 * many bytes, with the terminating NUL. */
#define FED_CLAIM_MAX 256
/* A profile name: Anthropic's rule, [A-Za-z0-9_.-], not "." or "..";
 * at most this many bytes with the NUL. */
#define FED_NAME_MAX 65
/* Responses (token endpoint, identity-token URLs) are cut off here. */
#define FED_RESPONSE_MAX (1024 * 1024)

/* What latch keeps of an identity token's claims: its expiry and who
 * issued it for whom, and its id (a token with a jti can be exchanged only
 * once). Empty strings for absent claims. */
struct fed_claims {
	int64_t exp;
	char iss[FED_CLAIM_MAX];
	char sub[FED_CLAIM_MAX];
	char jti[FED_CLAIM_MAX];
};

/* Check an identity token before anything is sent: `len` bytes, at most
 * FED_JWT_MAX; three non-empty base64url parts without padding (a JWS in
 * compact form: unsigned tokens and JWE are refused); a header that is a
 * JSON object naming an algorithm other than "none"; a payload that is a
 * JSON object whose `exp` is a number more than FED_EXP_SKEW seconds after
 * `now`; `iss`, `sub` and `jti`, when present, plain text strings of less
 * than FED_CLAIM_MAX bytes. Fills *c. 0, or -1 reported (LATCH_OPERR),
 * with a message that never quotes the token. The signature is not
 * checked: the token endpoint does that against the issuer's keys. */
int fed_jwt_check(const char *jwt, size_t len, int64_t now, struct fed_claims *c);

/* ---- Profiles ---------------------------------------------------------
 *
 * A profile is a file in Anthropic's profile-file format:
 *   {"version":"1.0",
 *    "authentication":{"type":"oidc_federation",
 *                      "federation_rule_id":"fdrl_...",
 *                      "service_account_id":"svac_...",     (optional)
 *                      "identity_token":{"source":"file","path":"..."},
 *                      "scope":"..."},                       (optional)
 *    "organization_id":"...", "workspace_id":"...",        (workspace optional)
 *    "base_url":"https://api.anthropic.com"}                (optional)
 * with latch's additions: identity_token sources beyond "file" (below),
 * "ca_file" (PEM bundle for the HTTPS checks, e.g. a corporate proxy's),
 * "timeout_s" (total time an exchange may take; connect is a third of it,
 * at most 10 s). Unknown members are refused (a typo must not silently
 * drop a setting). Stored as <config>/fed/NAME.json, 0600. */

enum fed_source_kind {
	FED_SOURCE_NONE = 0,
	FED_SOURCE_FILE,   /* {"source":"file","path":P}: re-read at each exchange */
	FED_SOURCE_ENV,    /* {"source":"env","var":V}: default ANTHROPIC_IDENTITY_TOKEN */
	FED_SOURCE_GITHUB, /* {"source":"github_actions","audience":A}: ACTIONS_ID_TOKEN_REQUEST_URL
			     * and _TOKEN, `audience` parameter, JSON member "value" */
	FED_SOURCE_GCP,    /* {"source":"gcp_metadata","audience":A[,"url":U]}: Metadata-Flavor:
			     * Google; U (loopback only) replaces the metadata server, for tests */
	FED_SOURCE_URL,    /* {"source":"url","url":U[,"headers":{N:V}][,"field":F]}: GET;
			     * the body, or its JSON member F */
	FED_SOURCE_EXEC,   /* {"source":"exec","command":[ARGV],"allow_exec":true
			     *  [,"timeout_s":N]}: no shell; stdout is a JWT or Google's
			     * executable-credential JSON ({"success":true,"id_token":...}) */
};

#define FED_SOURCE_ARGS_MAX 32
#define FED_SOURCE_HEADERS_MAX 16

struct fed_source {
	enum fed_source_kind kind;
	char *path;                            /* file */
	char *var;                             /* env */
	char *audience;                        /* github_actions, gcp_metadata */
	char *url;                             /* url; gcp_metadata override */
	char *headers[FED_SOURCE_HEADERS_MAX]; /* url: "Name: value" */
	size_t n_headers;
	char *field;                         /* url: JSON member holding the token */
	char *argv[FED_SOURCE_ARGS_MAX + 1]; /* exec: NULL-terminated */
	size_t argc;
	int timeout_s; /* url, exec, github, gcp: default 10 */
};

/* Where a field's value came from (for `latch fed status`). */
enum fed_origin { FED_FROM_NONE = 0, FED_FROM_PROFILE, FED_FROM_ENV };

struct fed_profile {
	char name[FED_NAME_MAX];
	/* NULL when absent. */
	char *rule_id, *org_id, *service_account_id, *workspace_id, *scope;
	char *base_url; /* NULL: https://api.anthropic.com */
	char *ca_file;
	int timeout_s; /* 0: the default, 30 */
	struct fed_source source;
	enum fed_origin rule_from, org_from, service_account_from, workspace_from, scope_from, base_url_from,
		source_from;
};

#define FED_DEFAULT_BASE_URL "https://api.anthropic.com"

/* True if `name` is a valid profile name (FED_NAME_MAX, the rule above). */
bool fed_name_valid(const char *name);

/* Parse and check a profile's JSON text (`len` bytes) into *p (name set to
 * `name`). Strict: a JSON object with "version" "1.0", authentication of
 * type "oidc_federation", known members only, strings where strings go,
 * ids plain text of at most 255 bytes, URLs that are https (or http to
 * loopback), an exec source only with "allow_exec": true. Required
 * members may be missing (the environment can fill them:
 * fed_profile_fill_env); fed_profile_complete says what is still missing.
 * 0, or -1 reported (LATCH_USAGE) naming the member; *p is then empty. */
int fed_profile_parse(const char *json, size_t len, const char *name, struct fed_profile *p);

/* Fill the fields the profile leaves empty from the ANTHROPIC_*
 * variables, as Anthropic's SDKs do (a variable set to "" or to blanks
 * counts as unset): ANTHROPIC_FEDERATION_RULE_ID, ANTHROPIC_ORGANIZATION_ID,
 * ANTHROPIC_SERVICE_ACCOUNT_ID, ANTHROPIC_WORKSPACE_ID, ANTHROPIC_SCOPE,
 * ANTHROPIC_BASE_URL, and for the identity token ANTHROPIC_IDENTITY_TOKEN_FILE
 * (a file source), else ANTHROPIC_IDENTITY_TOKEN (an env source). The
 * origin of each filled field becomes FED_FROM_ENV. A filled base URL is
 * checked like the profile's. 0 or -1 reported. */
int fed_profile_fill_env(struct fed_profile *p);

/* 0 if the profile can be exchanged (rule, organization and an identity
 * source are set), else -1 reported (LATCH_USAGE) naming what is missing
 * and the variable or member that would set it. */
int fed_profile_complete(const struct fed_profile *p);

/* The profile as JSON text in the stored format (for --from-env), for
 * json_free_text(). NULL if out of memory (reported). */
char *fed_profile_json(const struct fed_profile *p);

void fed_profile_free(struct fed_profile *p); /* NULL-safe; leaves it empty */

/* The stored profiles. fed_profile_add: parse `json` (fed_profile_parse),
 * then write it as <config>/fed/NAME.json, 0600, atomically; an existing
 * profile is replaced only with `replace` (else LATCH_USAGE). load: read
 * and parse (a missing profile is LATCH_USAGE, "no profile 'x'"), then
 * fill from the environment. remove: the file and the cached token;
 * absent is LATCH_USAGE. list: names, sorted, for fed_names_free. */
int fed_profile_add(const char *name, const char *json, size_t len, bool replace);
/* --from-env: a profile made of the ANTHROPIC_* variables alone
 * (fed_profile_fill_env on an empty one), which must be complete, stored
 * as fed_profile_add stores one. */
int fed_profile_add_env(const char *name, bool replace);
int fed_profile_load(const char *name, struct fed_profile *p);
int fed_profile_remove(const char *name);
int fed_profile_list(char ***names, size_t *n);
void fed_names_free(char **names, size_t n);

/* ---- Tokens ----------------------------------------------------------- */

struct fed_token {
	struct secbuf *token; /* the access token, NUL-terminated; len excludes the NUL */
	int64_t expires_at;   /* UNIX time */
	bool minted;          /* exchanged by this call (not from the cache) */
	struct fed_claims id; /* when minted: the identity token's expiry, iss, sub, jti */
	char request_id[128]; /* when minted: the server's request-id, if it sent one */
};

/* An access token for the profile: from the cache while more than
 * FED_REFRESH_BEFORE seconds remain; else, holding the profile's identity
 * source's lock (so one exchange per identity token reaches the server
 * across every process), from the cache again if another process just
 * refreshed it, else exchanged and cached (0600, written atomically). In
 * the refresh window a failed exchange falls back to the cached token
 * while more than FED_EXP_SKEW seconds remain (with a warning line); an
 * expired or nearly expired token is never returned. An identity token
 * with a jti that was already exchanged (or possibly seen) is not sent
 * again. 0, or -1 reported: LATCH_USAGE for an incomplete profile,
 * LATCH_OPERR for everything else (the network, the server, the identity
 * source). Messages never hold a token or an assertion. */
int fed_token_get(const struct fed_profile *p, struct fed_token *t);
void fed_token_clear(struct fed_token *t); /* wipes; NULL-safe */

/* The cached token's expiry, without reading the token into memory: 0
 * and *expires_at set, 1 if there is none, -1 reported. */
int fed_cache_expiry(const struct fed_profile *p, int64_t *expires_at);
/* Remove the cached token (1 if there was none). */
int fed_cache_remove(const struct fed_profile *p);

/* ---- What the child gets ---------------------------------------------- */

/* True if a child run with federation must not get the variable `name`
 * (`len` bytes): ANTHROPIC_API_KEY (even empty, it outranks federation),
 * ANTHROPIC_AUTH_TOKEN (replaced), the federation variables
 * (ANTHROPIC_FEDERATION_RULE_ID, _ORGANIZATION_ID, _SERVICE_ACCOUNT_ID,
 * _WORKSPACE_ID, _SCOPE, ANTHROPIC_IDENTITY_TOKEN*), ANTHROPIC_PROFILE,
 * ANTHROPIC_CONFIG_DIR, ANTHROPIC_BASE_URL (replaced by the profile's,
 * if it has one), and ACTIONS_ID_TOKEN_REQUEST_*: the child must not be
 * able to mint tokens of its own. */
bool fed_child_drops(const char *name, size_t len);

/* --fed-file: an Anthropic configuration directory private to the child,
 * <runtime>/fed/child-XXXXXX, 0700, holding configs/NAME.json (type
 * "user_oauth", no client_id: rotated by someone else) and
 * credentials/NAME.json (0600: version, type "oauth_token",
 * access_token, expires_at). create writes both and puts the directory's
 * path in `dir`; update rewrites the credentials atomically; remove
 * deletes the directory (NULL-safe on an empty `dir`). */
int fed_file_create(const struct fed_profile *p, const struct fed_token *t, char dir[PATH_MAX]);
int fed_file_update(const char *dir, const struct fed_profile *p, const struct fed_token *t);
void fed_file_remove(const char *dir);

/* ---- Which model credential a child would use ------------------------- */

/* In the SDKs' order: ANTHROPIC_API_KEY (set, even to ""), then
 * ANTHROPIC_AUTH_TOKEN, then a profile (ANTHROPIC_PROFILE, else the
 * federation variables), else none. `fed_profile` is latch's (from --fed
 * or LATCH_FED_PROFILE), or NULL. Fills a short name of the winner
 * ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "federation", "none") and
 * one line saying why, for people. */
struct fed_choice {
	const char *winner;
	char why[512];
};
void fed_model_credential(const char *fed_profile, struct fed_choice *c);

#endif
