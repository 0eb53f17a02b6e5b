/* Profiles (federation.h): Anthropic's profile-file format read strictly,
 * filled from the ANTHROPIC_* variables the way the SDKs fill it, stored
 * 0600 under <config>/fed, and the two questions about a child's model
 * credential (which variables it must not get, which credential wins).
 *
 * Where this departs from the letter of the brief, and why:
 * - "version" may be absent: the SDKs read an absent version as "1.0".
 * - "scope" may hold spaces: an OAuth scope is a space-separated list
 *   (RFC 6749 section 3.3). The other ids may not.
 * - "authentication.credentials_path" (an SDK member) is refused with its
 *   own message: latch keeps its own cache and would silently ignore it.
 * - "timeout_s" inside identity_token is known only to the sources that
 *   make a request or run a command (github_actions, gcp_metadata, url,
 *   exec).
 * - ANTHROPIC_IDENTITY_TOKEN_FILE may be relative, as in the SDKs; it is
 *   made absolute against the working directory (without resolving
 *   symbolic links: a projected token is a link that changes target). */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A profile is a few hundred bytes; anything near this is not one. */
#define PROFILE_MAX (64 * 1024)
#define ID_MAX 255
#define URL_MAX 2048
#define AUDIENCE_MAX 1024
#define HEADER_VALUE_MAX 4096
#define ARG_BYTES_MAX 4096
#define TIMEOUT_MAX 300
#define DEFAULT_IDENTITY_VAR "ANTHROPIC_IDENTITY_TOKEN"

bool fed_name_valid(const char *name)
{
	if (!name || !name[0] || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	size_t n = 0;
	for (const char *c = name; *c; c++, n++) {
		if (n + 1 >= FED_NAME_MAX)
			return false;
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
		      *c == '.' || *c == '-'))
			return false;
	}
	return true;
}

static int name_refused(const char *name)
{
	char shown[80];
	text_escape(name ? name : "", shown, sizeof shown);
	return latch_error(LATCH_USAGE, "'%s' is not a profile name: letters, digits, '_', '.', '-'", shown);
}

static int no_memory(void)
{
	return latch_error(LATCH_OPERR, "out of memory");
}

/* ---- Parsing --------------------------------------------------------- */

static int refuse(const char *pn, const char *member, const char *why)
{
	return latch_error(LATCH_USAGE, "profile '%s': '%s' %s", pn, member, why);
}

static bool in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(key, *list))
			return true;
	return false;
}

/* Every member of `obj` must be in `known`; a typo must not silently drop
 * a setting. The member's name is shown escaped and cut short. */
static int only_known(const char *pn, json_t *obj, const char *prefix, const char *const *known, const char *tail)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		(void)v;
		if (in_list(key, known))
			continue;
		char shown[80];
		text_escape(key, shown, sizeof shown);
		return latch_error(LATCH_USAGE, "profile '%s': unknown member '%s%s'%s", pn, prefix, shown, tail);
	}
	return 0;
}

/* A string member: NULL when absent or "" (an empty value counts as
 * unset, as in the SDKs). */
static int get_str(const char *pn, json_t *obj, const char *key, const char *member, const char **out)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return refuse(pn, member, "must be a string");
	const char *s = json_string_value(v);
	if (strlen(s) != json_string_length(v))
		return refuse(pn, member, "must not contain a NUL character");
	*out = s[0] ? s : NULL;
	return 0;
}

static int set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = strdup(s);
	return *dst ? 0 : no_memory();
}

/* Ids are sent in the exchange's body and shown by `latch fed status`:
 * plain text, short, and without spaces (scope excepted: see the top). */
static bool id_ok(const char *s, bool spaces)
{
	size_t n = strlen(s);
	return n >= 1 && n <= ID_MAX && text_is_plain(s) && (spaces || !strchr(s, ' '));
}

static bool path_ok(const char *s)
{
	return s[0] == '/' && strlen(s) < PATH_MAX && text_is_plain(s);
}

static bool url_ok(const char *s)
{
	return strlen(s) <= URL_MAX && text_is_plain(s) && fed_url_allowed(s);
}

static bool var_name_ok(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	size_t n = 0;
	for (; *s; s++, n++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return n <= ID_MAX;
}

/* RFC 9110's token characters, the only ones a header name may hold. */
static bool header_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return false;
	}
	return true;
}

static int take_id(const char *pn, json_t *obj, const char *key, const char *member, bool spaces, char **dst,
		   enum fed_origin *from)
{
	const char *s;
	if (get_str(pn, obj, key, member, &s) != 0)
		return -1;
	if (!s)
		return 0;
	if (!id_ok(s, spaces))
		return refuse(pn, member,
			      spaces ? "must be plain text of at most 255 bytes"
				     : "must be plain text of at most 255 bytes without spaces");
	if (from)
		*from = FED_FROM_PROFILE;
	return set_str(dst, s);
}

static int take_path(const char *pn, json_t *obj, const char *key, const char *member, char **dst)
{
	const char *s;
	if (get_str(pn, obj, key, member, &s) != 0)
		return -1;
	if (!s)
		return 0;
	if (!path_ok(s))
		return refuse(pn, member, "must be an absolute path");
	return set_str(dst, s);
}

static int take_url(const char *pn, json_t *obj, const char *key, const char *member, char **dst)
{
	const char *s;
	if (get_str(pn, obj, key, member, &s) != 0)
		return -1;
	if (!s)
		return 0;
	if (!url_ok(s))
		return refuse(pn, member,
			      "must be an https URL (plain http only to 127.0.0.1, ::1 or localhost) of at most 2048 "
			      "bytes");
	return set_str(dst, s);
}

static int take_timeout(const char *pn, json_t *obj, const char *member, int *dst)
{
	json_t *v = json_object_get(obj, "timeout_s");
	if (!v)
		return 0;
	json_int_t t = json_is_integer(v) ? json_integer_value(v) : 0;
	if (t < 1 || t > TIMEOUT_MAX)
		return refuse(pn, member, "must be a whole number of seconds from 1 to 300");
	*dst = (int)t;
	return 0;
}

/* An audience is sent as a query parameter and shown by status. */
static int take_audience(const char *pn, json_t *obj, const char *member, char **dst)
{
	const char *s;
	if (get_str(pn, obj, "audience", member, &s) != 0)
		return -1;
	if (s && (strlen(s) > AUDIENCE_MAX || !text_is_plain(s) || strchr(s, ' ')))
		return refuse(pn, member, "must be plain text of at most 1024 bytes without spaces");
	return s ? set_str(dst, s) : 0;
}

/* "headers": {"Name": "value", ...}, kept as "Name: value" lines. A value
 * may be a bearer token: messages name the header, never its value. */
static int take_headers(const char *pn, json_t *obj, struct fed_source *src)
{
	static const char member[] = "authentication.identity_token.headers";
	json_t *h = json_object_get(obj, "headers");
	if (!h)
		return 0;
	if (!json_is_object(h))
		return refuse(pn, member, "must be an object of strings");
	if (json_object_size(h) > FED_SOURCE_HEADERS_MAX)
		return refuse(pn, member, "may hold at most 16 headers");
	const char *key;
	json_t *v;
	json_object_foreach(h, key, v)
	{
		char shown[80];
		text_escape(key, shown, sizeof shown);
		size_t kn = strlen(key);
		if (!header_name_ok(key, kn))
			return latch_error(LATCH_USAGE,
					   "profile '%s': '%s' names a header '%s' that is not a valid name", pn,
					   member, shown);
		const char *val = json_string_value(v);
		if (!val || strlen(val) != json_string_length(v) || strlen(val) > HEADER_VALUE_MAX ||
		    !text_is_plain(val))
			return latch_error(LATCH_USAGE,
					   "profile '%s': header '%s' in '%s' must be plain text on one line of at "
					   "most 4096 bytes",
					   pn, shown, member);
		size_t n = kn + 2 + strlen(val) + 1;
		char *line = malloc(n);
		if (!line)
			return no_memory();
		snprintf(line, n, "%s: %s", key, val);
		src->headers[src->n_headers++] = line;
	}
	return 0;
}

static int take_command(const char *pn, json_t *obj, struct fed_source *src)
{
	static const char member[] = "authentication.identity_token.command";
	static const char why[] = "must be an array of 1 to 32 strings of plain text, the first an absolute path";
	json_t *a = json_object_get(obj, "command");
	if (!a)
		return refuse(pn, member, "is missing (an exec source needs it)");
	size_t n = json_is_array(a) ? json_array_size(a) : 0;
	if (n < 1 || n > FED_SOURCE_ARGS_MAX)
		return refuse(pn, member, why);
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(a, i);
		const char *s = json_string_value(v);
		if (!s || strlen(s) != json_string_length(v) || strlen(s) > ARG_BYTES_MAX || !text_is_plain(s) ||
		    (i == 0 && !path_ok(s)))
			return refuse(pn, member, why);
		if (!(src->argv[i] = strdup(s)))
			return no_memory();
		src->argc = i + 1;
	}
	src->argv[n] = NULL;
	return 0;
}

struct source_kind {
	const char *name;
	enum fed_source_kind kind;
	const char *const *members;
};

static const char *const file_members[] = {"source", "path", NULL};
static const char *const env_members[] = {"source", "var", NULL};
static const char *const github_members[] = {"source", "audience", "timeout_s", NULL};
static const char *const gcp_members[] = {"source", "audience", "url", "timeout_s", NULL};
static const char *const url_members[] = {"source", "url", "headers", "field", "timeout_s", NULL};
static const char *const exec_members[] = {"source", "command", "allow_exec", "timeout_s", NULL};

static const struct source_kind kinds[] = {
	{"file", FED_SOURCE_FILE, file_members},
	{"env", FED_SOURCE_ENV, env_members},
	{"github_actions", FED_SOURCE_GITHUB, github_members},
	{"gcp_metadata", FED_SOURCE_GCP, gcp_members},
	{"url", FED_SOURCE_URL, url_members},
	{"exec", FED_SOURCE_EXEC, exec_members},
};

static const struct source_kind *kind_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (!strcmp(kinds[i].name, name))
			return &kinds[i];
	return NULL;
}

static const struct source_kind *kind_by_value(enum fed_source_kind k)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (kinds[i].kind == k)
			return &kinds[i];
	return NULL;
}

/* Loopback http only: it stands in for http://metadata.google.internal,
 * which is reached without TLS. */
static bool loopback_http(const char *s)
{
	return !strncasecmp(s, "http://", 7) && url_ok(s);
}

static int parse_source(const char *pn, json_t *obj, struct fed_source *src)
{
#define M(x) "authentication.identity_token." x
	const char *name;
	if (get_str(pn, obj, "source", M("source"), &name) != 0)
		return -1;
	if (!name)
		return refuse(pn, M("source"), "is missing");
	const struct source_kind *k = kind_by_name(name);
	if (!k)
		return refuse(pn, M("source"), "must be one of file, env, github_actions, gcp_metadata, url, exec");
	char tail[64];
	snprintf(tail, sizeof tail, " for source \"%s\"", k->name);
	if (only_known(pn, obj, "authentication.identity_token.", k->members, tail) != 0)
		return -1;
	src->kind = k->kind;
	const char *s;
	switch (k->kind) {
	case FED_SOURCE_FILE:
		if (take_path(pn, obj, "path", M("path"), &src->path) != 0)
			return -1;
		if (!src->path)
			return refuse(pn, M("path"), "is missing (a file source needs it)");
		return 0;
	case FED_SOURCE_ENV:
		if (get_str(pn, obj, "var", M("var"), &s) != 0)
			return -1;
		if (s && !var_name_ok(s))
			return refuse(pn, M("var"), "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)");
		return set_str(&src->var, s ? s : DEFAULT_IDENTITY_VAR);
	case FED_SOURCE_GITHUB:
		return take_audience(pn, obj, M("audience"), &src->audience) != 0 ||
				       take_timeout(pn, obj, M("timeout_s"), &src->timeout_s) != 0
			       ? -1
			       : 0;
	case FED_SOURCE_GCP:
		if (take_audience(pn, obj, M("audience"), &src->audience) != 0 ||
		    take_timeout(pn, obj, M("timeout_s"), &src->timeout_s) != 0)
			return -1;
		if (!src->audience)
			return refuse(pn, M("audience"), "is missing (a gcp_metadata source needs it)");
		if (get_str(pn, obj, "url", M("url"), &s) != 0)
			return -1;
		if (s && !loopback_http(s))
			return refuse(pn, M("url"),
				      "must be an http URL to 127.0.0.1, ::1 or localhost (it stands in for the "
				      "metadata server in tests)");
		return s ? set_str(&src->url, s) : 0;
	case FED_SOURCE_URL:
		if (take_url(pn, obj, "url", M("url"), &src->url) != 0 || take_headers(pn, obj, src) != 0 ||
		    take_timeout(pn, obj, M("timeout_s"), &src->timeout_s) != 0)
			return -1;
		if (!src->url)
			return refuse(pn, M("url"), "is missing (a url source needs it)");
		if (get_str(pn, obj, "field", M("field"), &s) != 0)
			return -1;
		if (s && !id_ok(s, true))
			return refuse(pn, M("field"), "must be plain text of at most 255 bytes");
		return s ? set_str(&src->field, s) : 0;
	case FED_SOURCE_EXEC:
		if (!json_is_true(json_object_get(obj, "allow_exec")))
			return latch_error(LATCH_USAGE,
					   "profile '%s': an exec identity source runs a command: set \"allow_exec\": "
					   "true in the profile to allow it",
					   pn);
		return take_command(pn, obj, src) != 0 || take_timeout(pn, obj, M("timeout_s"), &src->timeout_s) != 0
			       ? -1
			       : 0;
	case FED_SOURCE_NONE:
		break;
	}
	return -1;
#undef M
}

static int parse_auth(const char *pn, json_t *auth, struct fed_profile *p)
{
	static const char *const known[] =
		{"type", "federation_rule_id", "service_account_id", "identity_token", "scope", NULL};
	const char *type;
	/* The type first: a user_oauth profile has members of its own, and
	 * "unknown member 'client_id'" would hide the real reason. */
	if (get_str(pn, auth, "type", "authentication.type", &type) != 0)
		return -1;
	if (type && !strcmp(type, "user_oauth"))
		return latch_error(LATCH_USAGE,
				   "profile '%s': latch runs only oidc_federation profiles (this one is user_oauth)",
				   pn);
	if (!type || strcmp(type, "oidc_federation"))
		return refuse(pn, "authentication.type", "must be \"oidc_federation\"");
	if (json_object_get(auth, "credentials_path"))
		return refuse(pn, "authentication.credentials_path",
			      "is not used by latch, which caches tokens itself: remove it");
	if (only_known(pn, auth, "authentication.", known, "") != 0 ||
	    take_id(pn, auth, "federation_rule_id", "authentication.federation_rule_id", false, &p->rule_id,
		    &p->rule_from) != 0 ||
	    take_id(pn, auth, "service_account_id", "authentication.service_account_id", false, &p->service_account_id,
		    &p->service_account_from) != 0 ||
	    take_id(pn, auth, "scope", "authentication.scope", true, &p->scope, &p->scope_from) != 0)
		return -1;
	json_t *it = json_object_get(auth, "identity_token");
	if (!it)
		return 0;
	if (!json_is_object(it))
		return refuse(pn, "authentication.identity_token", "must be an object");
	if (parse_source(pn, it, &p->source) != 0)
		return -1;
	p->source_from = FED_FROM_PROFILE;
	return 0;
}

static int parse_root(const char *pn, json_t *root, struct fed_profile *p)
{
	static const char *const known[] = {"version",  "authentication", "organization_id", "workspace_id",
					    "base_url", "ca_file",        "timeout_s",       NULL};
	if (!json_is_object(root))
		return latch_error(LATCH_USAGE, "profile '%s' is not a JSON object", pn);
	if (only_known(pn, root, "", known, "") != 0)
		return -1;
	json_t *v = json_object_get(root, "version");
	if (v && (!json_is_string(v) || strcmp(json_string_value(v), "1.0") || json_string_length(v) != 3))
		return refuse(pn, "version", "must be \"1.0\"");
	json_t *auth = json_object_get(root, "authentication");
	if (!auth)
		return latch_error(LATCH_USAGE, "profile '%s' has no 'authentication' member", pn);
	if (!json_is_object(auth))
		return refuse(pn, "authentication", "must be an object");
	if (parse_auth(pn, auth, p) != 0 ||
	    take_id(pn, root, "organization_id", "organization_id", false, &p->org_id, &p->org_from) != 0 ||
	    take_id(pn, root, "workspace_id", "workspace_id", false, &p->workspace_id, &p->workspace_from) != 0 ||
	    take_url(pn, root, "base_url", "base_url", &p->base_url) != 0 ||
	    take_path(pn, root, "ca_file", "ca_file", &p->ca_file) != 0 ||
	    take_timeout(pn, root, "timeout_s", &p->timeout_s) != 0)
		return -1;
	if (p->base_url)
		p->base_url_from = FED_FROM_PROFILE;
	return 0;
}

int fed_profile_parse(const char *json, size_t len, const char *name, struct fed_profile *p)
{
	memset(p, 0, sizeof *p);
	if (!fed_name_valid(name))
		return name_refused(name);
	if (len > PROFILE_MAX)
		return latch_error(LATCH_USAGE, "profile '%s' is larger than 64 KiB", name);
	json_error_t err;
	/* jansson's own messages quote the text near the error, which may be
	 * a header's bearer token: say where, never what. */
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
	if (!root) {
		if (json_error_code(&err) == json_error_duplicate_key)
			return latch_error(LATCH_USAGE, "profile '%s' has a member twice (line %d)", name, err.line);
		return latch_error(LATCH_USAGE, "profile '%s' is not valid JSON (line %d, column %d)", name, err.line,
				   err.column);
	}
	memcpy(p->name, name, strlen(name) + 1);
	int rc = parse_root(name, root, p);
	json_decref(root);
	if (rc != 0)
		fed_profile_free(p);
	return rc;
}

void fed_profile_free(struct fed_profile *p)
{
	if (!p)
		return;
	char **strs[] = {&p->rule_id,    &p->org_id,      &p->service_account_id, &p->workspace_id, &p->scope,
			 &p->base_url,   &p->ca_file,     &p->source.path,        &p->source.var,   &p->source.audience,
			 &p->source.url, &p->source.field};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		free(*strs[i]);
	/* A header's value may be a bearer token. */
	for (size_t i = 0; i < p->source.n_headers && i < FED_SOURCE_HEADERS_MAX; i++) {
		if (p->source.headers[i])
			sodium_memzero(p->source.headers[i], strlen(p->source.headers[i]));
		free(p->source.headers[i]);
	}
	for (size_t i = 0; i < p->source.argc && i < FED_SOURCE_ARGS_MAX; i++)
		free(p->source.argv[i]);
	memset(p, 0, sizeof *p);
}

/* ---- The environment --------------------------------------------------- */

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The variable's value trimmed of blanks, in *out (malloc'd), or NULL
 * when it is unset, empty or blank: the SDKs' readEnv. */
static int env_take(const char *var, char **out)
{
	const char *v = getenv(var);
	*out = NULL;
	if (!v)
		return 0;
	while (blank(*v))
		v++;
	size_t n = strlen(v);
	while (n > 0 && blank(v[n - 1]))
		n--;
	if (n == 0)
		return 0;
	if (!(*out = strndup(v, n)))
		return no_memory();
	return 0;
}

static bool env_present(const char *var)
{
	const char *v = getenv(var);
	if (!v)
		return false;
	while (blank(*v))
		v++;
	return *v != '\0';
}

static int fill_id(const char *var, bool spaces, char **dst, enum fed_origin *from)
{
	if (*dst)
		return 0;
	char *v;
	if (env_take(var, &v) != 0)
		return -1;
	if (!v)
		return 0;
	if (!id_ok(v, spaces)) {
		free(v);
		return latch_error(LATCH_USAGE, "%s must be plain text of at most 255 bytes%s", var,
				   spaces ? "" : " without spaces");
	}
	*dst = v;
	*from = FED_FROM_ENV;
	return 0;
}

/* ANTHROPIC_IDENTITY_TOKEN_FILE as an absolute path; a relative one is
 * taken against the working directory, as the SDKs would open it. */
static int identity_file_from_env(struct fed_source *src)
{
	char *v;
	if (env_take("ANTHROPIC_IDENTITY_TOKEN_FILE", &v) != 0)
		return -1;
	if (!v)
		return 0;
	if (v[0] != '/') {
		char cwd[PATH_MAX], *abs = NULL;
		if (!getcwd(cwd, sizeof cwd) || asprintf(&abs, "%s/%s", cwd, v) < 0)
			abs = NULL;
		free(v);
		if (!abs)
			return latch_error(LATCH_USAGE,
					   "ANTHROPIC_IDENTITY_TOKEN_FILE is relative and the working "
					   "directory cannot be read");
		v = abs;
	}
	if (!path_ok(v)) {
		free(v);
		return latch_error(LATCH_USAGE, "ANTHROPIC_IDENTITY_TOKEN_FILE must be a path of plain text");
	}
	src->kind = FED_SOURCE_FILE;
	src->path = v;
	return 1;
}

int fed_profile_fill_env(struct fed_profile *p)
{
	if (fill_id("ANTHROPIC_FEDERATION_RULE_ID", false, &p->rule_id, &p->rule_from) != 0 ||
	    fill_id("ANTHROPIC_ORGANIZATION_ID", false, &p->org_id, &p->org_from) != 0 ||
	    fill_id("ANTHROPIC_SERVICE_ACCOUNT_ID", false, &p->service_account_id, &p->service_account_from) != 0 ||
	    fill_id("ANTHROPIC_WORKSPACE_ID", false, &p->workspace_id, &p->workspace_from) != 0 ||
	    fill_id("ANTHROPIC_SCOPE", true, &p->scope, &p->scope_from) != 0)
		return -1;
	if (!p->base_url) {
		char *v;
		if (env_take("ANTHROPIC_BASE_URL", &v) != 0)
			return -1;
		if (v && !url_ok(v)) {
			free(v);
			return latch_error(LATCH_USAGE,
					   "ANTHROPIC_BASE_URL is not https (plain http only to "
					   "127.0.0.1, ::1 or localhost)");
		}
		if (v) {
			p->base_url = v;
			p->base_url_from = FED_FROM_ENV;
		}
	}
	if (p->source.kind != FED_SOURCE_NONE)
		return 0;
	/* The token itself stays in the environment: the profile names the
	 * variable, and the source reads it when it is needed. */
	int got = identity_file_from_env(&p->source);
	if (got < 0)
		return -1;
	if (got == 0 && env_present(DEFAULT_IDENTITY_VAR)) {
		if (set_str(&p->source.var, DEFAULT_IDENTITY_VAR) != 0)
			return -1;
		p->source.kind = FED_SOURCE_ENV;
		got = 1;
	}
	if (got)
		p->source_from = FED_FROM_ENV;
	return 0;
}

int fed_profile_complete(const struct fed_profile *p)
{
	if (!p->rule_id)
		return latch_error(LATCH_USAGE,
				   "profile '%s' has no federation_rule_id (set it in the profile or "
				   "ANTHROPIC_FEDERATION_RULE_ID)",
				   p->name);
	if (!p->org_id)
		return latch_error(LATCH_USAGE,
				   "profile '%s' has no organization_id (set it in the profile or "
				   "ANTHROPIC_ORGANIZATION_ID)",
				   p->name);
	if (p->source.kind == FED_SOURCE_NONE)
		return latch_error(LATCH_USAGE,
				   "profile '%s' has no identity_token (set it in the profile, or "
				   "ANTHROPIC_IDENTITY_TOKEN_FILE or ANTHROPIC_IDENTITY_TOKEN)",
				   p->name);
	return 0;
}

/* ---- Back to JSON ------------------------------------------------------ */

/* Set obj[key] = v unless s is NULL; a failed allocation sets *bad. */
static void put(json_t *obj, const char *key, json_t *v, bool *bad)
{
	if (!v || json_object_set_new(obj, key, v) != 0)
		*bad = true;
}

static void put_str(json_t *obj, const char *key, const char *s, bool *bad)
{
	if (s)
		put(obj, key, json_string(s), bad);
}

static json_t *source_json(const struct fed_source *s, bool *bad)
{
	const struct source_kind *k = kind_by_value(s->kind);
	json_t *o = json_object();
	if (!o || !k) {
		*bad = true;
		return o;
	}
	put_str(o, "source", k->name, bad);
	put_str(o, "path", s->path, bad);
	put_str(o, "var", s->var, bad);
	put_str(o, "audience", s->audience, bad);
	put_str(o, "url", s->url, bad);
	put_str(o, "field", s->field, bad);
	if (s->n_headers > 0) {
		json_t *h = json_object();
		for (size_t i = 0; h && i < s->n_headers; i++) {
			const char *line = s->headers[i], *colon = strchr(line, ':');
			char name[80];
			size_t n = colon ? (size_t)(colon - line) : 0;
			if (!colon || n >= sizeof name) {
				*bad = true;
				break;
			}
			memcpy(name, line, n);
			name[n] = '\0';
			put(h, name, json_string(colon[1] == ' ' ? colon + 2 : colon + 1), bad);
		}
		put(o, "headers", h, bad);
	}
	if (s->kind == FED_SOURCE_EXEC) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < s->argc; i++)
			if (json_array_append_new(a, json_string(s->argv[i])) != 0)
				*bad = true;
		put(o, "command", a, bad);
		put(o, "allow_exec", json_true(), bad);
	}
	if (s->timeout_s > 0)
		put(o, "timeout_s", json_integer(s->timeout_s), bad);
	return o;
}

char *fed_profile_json(const struct fed_profile *p)
{
	bool bad = false;
	json_t *root = json_object(), *auth = json_object();
	if (!root || !auth) {
		json_decref(root);
		json_decref(auth);
		no_memory();
		return NULL;
	}
	put_str(root, "version", "1.0", &bad);
	put_str(auth, "type", "oidc_federation", &bad);
	put_str(auth, "federation_rule_id", p->rule_id, &bad);
	put_str(auth, "service_account_id", p->service_account_id, &bad);
	put_str(auth, "scope", p->scope, &bad);
	if (p->source.kind != FED_SOURCE_NONE)
		put(auth, "identity_token", source_json(&p->source, &bad), &bad);
	put(root, "authentication", auth, &bad);
	put_str(root, "organization_id", p->org_id, &bad);
	put_str(root, "workspace_id", p->workspace_id, &bad);
	put_str(root, "base_url", p->base_url, &bad);
	put_str(root, "ca_file", p->ca_file, &bad);
	if (p->timeout_s > 0)
		put(root, "timeout_s", json_integer(p->timeout_s), &bad);
	/* jansson keeps members in the order they were set: the headers
	 * stay in the profile's order (sorting them would reorder them). */
	char *text = bad ? NULL : json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (!text)
		no_memory();
	return text;
}

/* ---- Storage ----------------------------------------------------------- */

int fed_profile_dir(char out[PATH_MAX], bool create)
{
	char base[PATH_MAX];
	if (latch_config_dir(base, sizeof base) != 0)
		return -1;
	if (snprintf(out, PATH_MAX, "%s/fed", base) >= PATH_MAX)
		return latch_error(LATCH_USAGE, "configuration directory path is too long");
	if (create)
		return ensure_private_dir(out);
	struct stat st;
	if (lstat(out, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		return latch_error(LATCH_OPERR, "cannot use directory '%s': %s", out, strerror(errno));
	}
	return check_private_dir(out);
}

int fed_profile_path(const char *name, char out[PATH_MAX])
{
	if (!fed_name_valid(name))
		return name_refused(name);
	char dir[PATH_MAX];
	if (fed_profile_dir(dir, false) != 0)
		return -1;
	if (snprintf(out, PATH_MAX, "%s/%s.json", dir, name) >= PATH_MAX)
		return latch_error(LATCH_USAGE, "configuration directory path is too long");
	return 0;
}

int fed_profile_add(const char *name, const char *json, size_t len, bool replace)
{
	struct fed_profile p;
	if (fed_profile_parse(json, len, name, &p) != 0)
		return -1;
	fed_profile_free(&p);
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
	if (fed_profile_dir(dir, true) != 0 || fed_profile_path(name, path) != 0)
		return -1;
	/* The temporary name never ends in ".json", so `fed ls` never lists
	 * one left behind by a crash. */
	if (snprintf(tmp, sizeof tmp, "%s/.%s.new-XXXXXX", dir, name) >= (int)sizeof tmp)
		return latch_error(LATCH_USAGE, "configuration directory path is too long");
	if (file_write_temp(tmp, 0600, json, len) != 0)
		return -1;
	int rc = -1;
	/* link() refuses to replace: a profile is never clobbered unless the
	 * caller asked for it. */
	if (replace ? rename(tmp, path) != 0 : link(tmp, path) != 0) {
		if (!replace && errno == EEXIST)
			latch_error(LATCH_USAGE, "profile '%s' exists: 'latch fed rm %s' first, or use --force", name,
				    name);
		else
			latch_error(LATCH_OPERR, "cannot write profile '%s': %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	unlink(tmp);
	if (rc == 0)
		rc = fsync_dir(dir);
	return rc;
}

static int private_refused(const char *path, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return latch_error(LATCH_OPERR, "refusing '%s': not a regular file", path);
	if (st->st_uid != geteuid())
		return latch_error(LATCH_OPERR, "refusing file '%s': owned by uid %u, not by you (uid %u)", path,
				   (unsigned)st->st_uid, (unsigned)geteuid());
	return latch_error(LATCH_OPERR,
			   "refusing file '%s': accessible by group or others (mode %04o); fix with: chmod 600 '%s'",
			   path, (unsigned)(st->st_mode & 07777), path);
}

/* Read and parse the stored profile, without the environment. The file
 * must be ours and private (it may name a command latch runs). */
static int load_file(const char *name, struct fed_profile *p)
{
	memset(p, 0, sizeof *p);
	char path[PATH_MAX];
	if (fed_profile_path(name, path) != 0)
		return -1;
	int c = check_private_file(path);
	if (c == 1)
		return latch_error(LATCH_USAGE, "no profile '%s' (see 'latch fed ls')", name);
	if (c != 0)
		return -1;
	/* Checked again on what was opened: the path may have changed. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return latch_error(LATCH_USAGE, "no profile '%s' (see 'latch fed ls')", name);
		return latch_error(LATCH_OPERR, "cannot open profile '%s': %s", path, strerror(errno));
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return latch_error(LATCH_OPERR, "cannot open profile '%s': %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		return private_refused(path, &st);
	}
	struct secbuf *b = NULL;
	bool too_big = false;
	int rc = read_fd_secret(fd, PROFILE_MAX, &b, &too_big);
	close(fd);
	if (rc != 0)
		return too_big ? latch_error(LATCH_USAGE, "profile '%s' is larger than 64 KiB", name) : -1;
	rc = fed_profile_parse((const char *)b->data, b->len, name, p);
	secbuf_free(b);
	return rc;
}

int fed_profile_load(const char *name, struct fed_profile *p)
{
	if (load_file(name, p) != 0)
		return -1;
	if (fed_profile_fill_env(p) != 0) {
		fed_profile_free(p);
		return -1;
	}
	return 0;
}

int fed_profile_remove(const char *name)
{
	char path[PATH_MAX];
	if (fed_profile_path(name, path) != 0)
		return -1;
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return latch_error(LATCH_USAGE, "no profile '%s' (see 'latch fed ls')", name);
		return latch_error(LATCH_OPERR, "cannot use profile '%s': %s", path, strerror(errno));
	}
	/* A profile that no longer parses (edited by hand) can still be
	 * removed: its cached token, if any, is found by name alone. */
	struct fed_profile p;
	latch_error_quiet(true);
	int parsed = load_file(name, &p);
	latch_error_quiet(false);
	if (parsed != 0) {
		memset(&p, 0, sizeof p);
		memcpy(p.name, name, strlen(name) + 1);
	}
	int rc = fed_cache_remove(&p);
	fed_profile_free(&p);
	if (rc < 0)
		return -1;
	if (unlink(path) != 0)
		return latch_error(LATCH_OPERR, "cannot remove profile '%s': %s", path, strerror(errno));
	char dir[PATH_MAX];
	return fed_profile_dir(dir, false) == 0 ? fsync_dir(dir) : -1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int fed_profile_list(char ***names, size_t *n)
{
	*names = NULL;
	*n = 0;
	char dir[PATH_MAX];
	if (fed_profile_dir(dir, false) != 0)
		return -1;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return latch_error(LATCH_OPERR, "cannot read directory '%s': %s", dir, strerror(errno));
	}
	char **v = NULL;
	size_t count = 0, cap = 0;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len <= 5 || strcmp(e->d_name + len - 5, ".json"))
			continue;
		char base[FED_NAME_MAX];
		if (len - 5 >= sizeof base)
			continue;
		memcpy(base, e->d_name, len - 5);
		base[len - 5] = '\0';
		if (!fed_name_valid(base))
			continue;
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			char **nv = realloc(v, ncap * sizeof *nv);
			if (!nv) {
				rc = no_memory();
				break;
			}
			v = nv;
			cap = ncap;
		}
		if (!(v[count] = strdup(base))) {
			rc = no_memory();
			break;
		}
		count++;
	}
	closedir(d);
	if (rc != 0) {
		fed_names_free(v, count);
		return -1;
	}
	if (count > 1)
		qsort(v, count, sizeof *v, by_name);
	*names = v;
	*n = count;
	return 0;
}

void fed_names_free(char **names, size_t n)
{
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ---- The child's model credential -------------------------------------- */

bool fed_child_drops(const char *name, size_t len)
{
	static const char *const exact[] = {
		"ANTHROPIC_API_KEY",
		"ANTHROPIC_AUTH_TOKEN",
		"ANTHROPIC_FEDERATION_RULE_ID",
		"ANTHROPIC_ORGANIZATION_ID",
		"ANTHROPIC_SERVICE_ACCOUNT_ID",
		"ANTHROPIC_WORKSPACE_ID",
		"ANTHROPIC_SCOPE",
		"ANTHROPIC_PROFILE",
		"ANTHROPIC_CONFIG_DIR",
		"ANTHROPIC_BASE_URL",
	};
	/* Prefixes: ANTHROPIC_IDENTITY_TOKEN and _FILE, and GitHub's pair. */
	static const char *const prefix[] = {"ANTHROPIC_IDENTITY_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_"};
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
		if (len == strlen(exact[i]) && !memcmp(name, exact[i], len))
			return true;
	for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++)
		if (len >= strlen(prefix[i]) && !memcmp(name, prefix[i], strlen(prefix[i])))
			return true;
	return false;
}

void fed_model_credential(const char *fed_profile, struct fed_choice *c)
{
	char shown[FED_NAME_MAX + 16], under[FED_NAME_MAX + 80] = "";
	if (fed_profile) {
		text_escape(fed_profile, shown, sizeof shown);
		snprintf(under, sizeof under, "; under 'latch run --fed %s' the child uses federation", shown);
	}
	const char *key = getenv("ANTHROPIC_API_KEY"), *auth = getenv("ANTHROPIC_AUTH_TOKEN");
	if (key) {
		c->winner = "ANTHROPIC_API_KEY";
		snprintf(c->why, sizeof c->why, "%s%s",
			 key[0] ? "ANTHROPIC_API_KEY is set; it outranks every other credential"
				: "ANTHROPIC_API_KEY is set (to an empty value); an empty key still outranks "
				  "federation in the SDKs ('latch run --fed' removes it)",
			 under);
	} else if (auth && auth[0]) {
		c->winner = "ANTHROPIC_AUTH_TOKEN";
		snprintf(c->why, sizeof c->why, "ANTHROPIC_AUTH_TOKEN is set; it outranks a profile%s", under);
	} else if (fed_profile) {
		c->winner = "federation";
		snprintf(c->why, sizeof c->why, "latch run --fed %s exchanges the profile's identity token", shown);
	} else if (env_present("ANTHROPIC_PROFILE")) {
		c->winner = "federation";
		snprintf(c->why, sizeof c->why,
			 "ANTHROPIC_PROFILE is set: the SDK loads its own profile (not latch's)");
	} else if (env_present("ANTHROPIC_FEDERATION_RULE_ID") && env_present("ANTHROPIC_ORGANIZATION_ID")) {
		c->winner = "federation";
		snprintf(c->why, sizeof c->why,
			 "ANTHROPIC_FEDERATION_RULE_ID and ANTHROPIC_ORGANIZATION_ID are set: the SDK exchanges an "
			 "identity token itself");
	} else {
		c->winner = "none";
		snprintf(c->why, sizeof c->why,
			 "no ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_PROFILE or federation variables are "
			 "set");
	}
}

int fed_profile_add_env(const char *name, bool replace)
{
	struct fed_profile p = {0};
	if (!fed_name_valid(name))
		return name_refused(name);
	snprintf(p.name, sizeof p.name, "%s", name);
	char *json = NULL;
	int rc = fed_profile_fill_env(&p) == 0 && fed_profile_complete(&p) == 0 && (json = fed_profile_json(&p)) &&
				 fed_profile_add(name, json, strlen(json), replace) == 0
			 ? 0
			 : -1;
	json_free_text(json);
	fed_profile_free(&p);
	return rc;
}
