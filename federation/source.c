/* Identity tokens from the profile's source (internal.h): a file, a
 * variable, GitHub Actions' OIDC endpoint, a GCP metadata server, a URL,
 * or a command. Every copy of a token, of GitHub's request token and of a
 * response body lives in a secure buffer, wiped on every path; messages
 * name the source, never what it returned.
 *
 * The profile's "ca_file" applies to every HTTPS request the profile
 * makes, the identity source's too: a corporate proxy that needs it
 * intercepts both. An exec source's command runs in a process group of
 * its own, so that a timeout kills what it started as well. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_S 10
/* Room for a token of FED_JWT_MAX bytes and the white space around it;
 * fed_jwt_check says so when a token is longer than FED_JWT_MAX. */
#define TOKEN_READ_MAX (FED_JWT_MAX + 64)
/* What a command may write: Google's JSON around a token fits easily. */
#define EXEC_OUTPUT_MAX (64 * 1024)
#define GCP_METADATA "http://metadata.google.internal"
#define GCP_PATH "/computeMetadata/v1/instance/service-accounts/default/identity"
#define WHAT_GITHUB "GitHub's OIDC endpoint"
#define WHAT_GCP "the GCP metadata server"
#define WHAT_URL "the identity-token URL"

static int timeout_of(const struct fed_source *s)
{
	return s->timeout_s > 0 ? s->timeout_s : DEFAULT_TIMEOUT_S;
}

static bool ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim ASCII white space from both ends of b in place, wipe what was cut
 * and end it with a NUL (every buffer here has cap > len). */
static void trim(struct secbuf *b)
{
	size_t start = 0, end = b->len;
	while (start < end && ws(b->data[start]))
		start++;
	while (end > start && ws(b->data[end - 1]))
		end--;
	size_t n = end - start;
	if (start > 0)
		memmove(b->data, b->data + start, n);
	if (b->len > n)
		sodium_memzero(b->data + n, b->len - n);
	b->len = n;
	b->data[n] = '\0';
}

/* A copy of n bytes of s in secure memory, NUL-terminated. */
static struct secbuf *secret_copy(const char *s, size_t n)
{
	struct secbuf *b = secbuf_new(n + 1);
	if (!b)
		return NULL;
	memcpy(b->data, s, n);
	b->len = n;
	b->data[n] = '\0';
	return b;
}

/* ---- file and env ---------------------------------------------------- */

static int from_file(const struct fed_source *s, struct secbuf **out)
{
	/* Symbolic links are followed: Kubernetes' projected tokens are
	 * links (token -> ..data/token) that change target on rotation.
	 * O_NONBLOCK: a FIFO in its place must not hang the open. */
	int fd = open(s->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return latch_error(LATCH_OPERR, "cannot read identity token file '%s': %s", s->path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return latch_error(LATCH_OPERR, "identity token file '%s' is not a regular file", s->path);
	}
	bool too_big = false;
	int rc = read_fd_secret(fd, TOKEN_READ_MAX, out, &too_big);
	close(fd);
	if (rc != 0)
		return too_big ? latch_error(LATCH_OPERR, "identity token file '%s' is larger than 16 KiB", s->path)
			       : -1;
	trim(*out);
	if ((*out)->len == 0) {
		secbuf_free(*out);
		*out = NULL;
		return latch_error(LATCH_OPERR, "identity token file '%s' is empty", s->path);
	}
	return 0;
}

static int from_env(const struct fed_source *s, struct secbuf **out)
{
	const char *v = getenv(s->var);
	size_t n = v ? strlen(v) : 0;
	if (n > TOKEN_READ_MAX)
		return latch_error(LATCH_OPERR, "variable %s holding the identity token is larger than 16 KiB", s->var);
	if (n > 0 && !(*out = secret_copy(v, n)))
		return -1;
	if (n > 0)
		trim(*out);
	if (n == 0 || (*out)->len == 0) {
		secbuf_free(*out);
		*out = NULL;
		return latch_error(LATCH_USAGE, "variable %s holding the identity token is not set", s->var);
	}
	return 0;
}

/* ---- HTTP sources ------------------------------------------------------ */

/* GET url; a 2xx answer's body into *body (secure, NUL-terminated). */
static int http_get(const struct fed_profile *p, const char *url, const char *const *headers, size_t n_headers,
		    bool plain_http_ok, const char *what, struct secbuf **body)
{
	int t = timeout_of(&p->source), connect = (t + 2) / 3;
	struct fed_http_req q = {
		.method = "GET",
		.url = url,
		.headers = headers,
		.n_headers = n_headers,
		.ca_file = p->ca_file,
		.connect_timeout_s = connect > 10 ? 10 : connect,
		.timeout_s = t,
		.plain_http_ok = plain_http_ok,
		.what = what,
	};
	struct fed_http_resp r;
	memset(&r, 0, sizeof r);
	if (fed_http(&q, &r) != 0) {
		fed_http_resp_free(&r);
		return -1;
	}
	long status = r.status;
	if (status < 200 || status > 299) {
		fed_http_resp_free(&r);
		/* Never the body: it may echo what was sent. */
		return latch_error(LATCH_OPERR, "%s answered HTTP %ld", what, status);
	}
	*body = r.body;
	r.body = NULL;
	fed_http_resp_free(&r);
	if (!*body && (*body = secbuf_new(1)))
		(*body)->data[0] = '\0';
	return *body ? 0 : -1;
}

/* The string member `name` of the JSON object in `body`, trimmed, into
 * *out. */
static int json_token(const struct secbuf *body, const char *name, const char *what, struct secbuf **out)
{
	json_error_t err;
	json_t *o = json_loadb((const char *)body->data, body->len, JSON_REJECT_DUPLICATES, &err);
	json_t *v = json_is_object(o) ? json_object_get(o, name) : NULL;
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0;
	int rc = -1;
	if (!json_is_object(o))
		latch_error(LATCH_OPERR, "%s's answer is not a JSON object", what);
	else if (n == 0)
		latch_error(LATCH_OPERR, "%s's answer has no string \"%s\"", what, name);
	else if (n > TOKEN_READ_MAX)
		latch_error(LATCH_OPERR, "%s's \"%s\" is larger than 16 KiB", what, name);
	else if ((*out = secret_copy(s, n)))
		rc = 0;
	json_decref(o);
	if (rc == 0)
		trim(*out);
	return rc;
}

/* Percent-encoding of a query value (RFC 3986's unreserved pass). */
static void encode(const char *s, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
		if ((*u >= 'A' && *u <= 'Z') || (*u >= 'a' && *u <= 'z') || (*u >= '0' && *u <= '9') || *u == '-' ||
		    *u == '_' || *u == '.' || *u == '~') {
			*out++ = (char)*u;
		} else {
			*out++ = '%';
			*out++ = hex[*u >> 4];
			*out++ = hex[*u & 15];
		}
	}
	*out = '\0';
}

/* base + sep + "audience=" + the encoded audience + tail, malloc'd. */
static char *with_audience(const char *base, size_t base_len, const char *sep, const char *audience, const char *tail)
{
	size_t n = base_len + strlen(sep) + 9 + 3 * strlen(audience) + strlen(tail) + 1;
	char *url = malloc(n);
	if (!url) {
		latch_error(LATCH_OPERR, "out of memory");
		return NULL;
	}
	int k = snprintf(url, n, "%.*s%saudience=", (int)base_len, base, sep);
	encode(audience, url + k);
	strcat(url, tail);
	return url;
}

static int from_github(const struct fed_profile *p, struct secbuf **out)
{
	const char *req_url = getenv("ACTIONS_ID_TOKEN_REQUEST_URL"),
		   *req_token = getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
	const char *missing = !req_url || !req_url[0]       ? "ACTIONS_ID_TOKEN_REQUEST_URL"
			      : !req_token || !req_token[0] ? "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
							    : NULL;
	if (missing)
		return latch_error(LATCH_USAGE,
				   "github_actions identity source: %s is not set (the job needs permissions: "
				   "id-token: write)",
				   missing);
	if (strlen(req_url) > 4096 || !fed_url_allowed(req_url))
		return latch_error(LATCH_USAGE,
				   "github_actions identity source: ACTIONS_ID_TOKEN_REQUEST_URL is not "
				   "https (plain http only to 127.0.0.1, ::1 or localhost)");
	size_t tn = strlen(req_token);
	if (tn > TOKEN_READ_MAX || !text_is_plain(req_token))
		return latch_error(LATCH_USAGE,
				   "github_actions identity source: ACTIONS_ID_TOKEN_REQUEST_TOKEN is not "
				   "plain text of at most 16 KiB");
	const char *aud = p->source.audience;
	char *url = aud ? with_audience(req_url, strlen(req_url), strchr(req_url, '?') ? "&" : "?", aud, "")
			: strdup(req_url);
	if (!url)
		return aud ? -1 : latch_error(LATCH_OPERR, "out of memory");
	static const char bearer[] = "Authorization: bearer ";
	struct secbuf *auth = secbuf_new(sizeof bearer + tn);
	struct secbuf *body = NULL;
	int rc = -1;
	if (auth) {
		memcpy(auth->data, bearer, sizeof bearer - 1);
		memcpy(auth->data + sizeof bearer - 1, req_token, tn + 1);
		auth->len = sizeof bearer - 1 + tn;
		const char *headers[] = {(const char *)auth->data, "Accept: application/json"};
		rc = http_get(p, url, headers, 2, false, WHAT_GITHUB, &body);
	}
	secbuf_free(auth);
	free(url);
	if (rc == 0)
		rc = json_token(body, "value", WHAT_GITHUB, out);
	secbuf_free(body);
	return rc;
}

static int nonempty(struct secbuf **body, const char *what, struct secbuf **out)
{
	trim(*body);
	if ((*body)->len == 0) {
		secbuf_free(*body);
		*body = NULL;
		return latch_error(LATCH_OPERR, "%s's answer is empty", what);
	}
	*out = *body;
	*body = NULL;
	return 0;
}

static int from_gcp(const struct fed_profile *p, struct secbuf **out)
{
	/* The override (loopback http, checked at parse) stands in for the
	 * metadata server in tests; only the real one may be plain http
	 * to a name that is not loopback. */
	const char *base = p->source.url ? p->source.url : GCP_METADATA;
	size_t n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	char *url = with_audience(base, n, GCP_PATH "?", p->source.audience, "&format=full");
	if (!url)
		return -1;
	const char *headers[] = {"Metadata-Flavor: Google"};
	struct secbuf *body = NULL;
	int rc = http_get(p, url, headers, 1, !p->source.url, WHAT_GCP, &body);
	free(url);
	if (rc == 0)
		rc = nonempty(&body, WHAT_GCP, out);
	secbuf_free(body);
	return rc;
}

static int from_url(const struct fed_profile *p, struct secbuf **out)
{
	const struct fed_source *s = &p->source;
	struct secbuf *body = NULL;
	int rc = http_get(p, s->url, (const char *const *)s->headers, s->n_headers, false, WHAT_URL, &body);
	if (rc == 0)
		rc = s->field ? json_token(body, s->field, WHAT_URL, out) : nonempty(&body, WHAT_URL, out);
	secbuf_free(body);
	return rc;
}

/* ---- exec ---------------------------------------------------------------- */

/* Text from the command's JSON for a message: escaped and short, and
 * withheld if it looks like a token (a JWT or an Anthropic key). */
static void shown_text(json_t *v, char *out, size_t n)
{
	const char *s = json_string_value(v);
	if (!s)
		snprintf(out, n, "?");
	else if (strstr(s, "eyJ") || strstr(s, "sk-ant-"))
		snprintf(out, n, "(withheld)");
	else
		text_escape(s, out, n);
}

/* Google's executable-sourced credential output:
 * {"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:id_token","id_token":"..."}
 * or {"version":1,"success":false,"code":"...","message":"..."}. */
static int google_output(const char *argv0, const struct secbuf *b, struct secbuf **out)
{
	json_error_t err;
	json_t *o = json_loadb((const char *)b->data, b->len, JSON_REJECT_DUPLICATES, &err);
	json_t *version = json_object_get(o, "version"), *success = json_object_get(o, "success");
	const char *type = json_string_value(json_object_get(o, "token_type"));
	int rc = -1;
	if (!json_is_object(o)) {
		latch_error(LATCH_OPERR, "identity command '%s' wrote text starting with '{' that is not a JSON object",
			    argv0);
	} else if (version && !(json_is_integer(version) && json_integer_value(version) == 1)) {
		latch_error(LATCH_OPERR,
			    "identity command '%s' wrote an executable-credential answer of a version "
			    "other than 1",
			    argv0);
	} else if (!json_is_boolean(success)) {
		latch_error(LATCH_OPERR, "identity command '%s' wrote JSON without a boolean \"success\"", argv0);
	} else if (json_is_false(success)) {
		char code[64], message[160];
		shown_text(json_object_get(o, "code"), code, sizeof code);
		shown_text(json_object_get(o, "message"), message, sizeof message);
		latch_error(LATCH_OPERR, "identity command '%s' reported failure: %s %s", argv0, code, message);
	} else if (!type || (strcmp(type, "urn:ietf:params:oauth:token-type:id_token") &&
			     strcmp(type, "urn:ietf:params:oauth:token-type:jwt"))) {
		latch_error(LATCH_OPERR, "identity command '%s' wrote a token_type that is not id_token or jwt", argv0);
	} else {
		rc = json_token(b, "id_token", "the identity command", out);
	}
	json_decref(o);
	return rc;
}

enum run_end { RUN_EOF, RUN_TIMEOUT, RUN_TOO_BIG, RUN_ERROR };

/* Read the command's stdout into b until EOF, the deadline or the limit. */
static enum run_end read_output(int fd, struct secbuf *b, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - monotonic_ms();
		if (left <= 0)
			return RUN_TIMEOUT;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int r = poll(&pf, 1, left > 1000 ? 1000 : (int)left);
		if (r < 0 && errno != EINTR)
			return RUN_ERROR;
		if (r <= 0)
			continue;
		ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return RUN_ERROR;
		if (n == 0)
			return RUN_EOF;
		b->len += (size_t)n;
		if (b->len > EXEC_OUTPUT_MAX)
			return RUN_TOO_BIG;
	}
}

/* Wait for the command to exit until the deadline (it may close stdout
 * and linger); 0 and *status when it did. */
static int wait_until(pid_t pid, int64_t deadline, int *status)
{
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -1;
		if (monotonic_ms() >= deadline)
			return -1;
		struct timespec ten_ms = {0, 10 * 1000 * 1000};
		nanosleep(&ten_ms, NULL);
	}
}

static int from_exec(const struct fed_source *s, struct secbuf **out)
{
	const char *argv0 = s->argv[0];
	int timeout = timeout_of(s), fds[2];
	/* Said plainly before the spawn: where the spawn cannot report an
	 * exec failure (valgrind, some libcs) it would be "status 127". */
	if (access(argv0, X_OK) != 0)
		return latch_error(LATCH_OPERR, "cannot run identity command '%s': %s", argv0, strerror(errno));
	struct secbuf *b = secbuf_new(EXEC_OUTPUT_MAX + 1);
	if (!b)
		return -1;
	if (pipe2(fds, O_CLOEXEC) != 0) {
		secbuf_free(b);
		return latch_error(LATCH_OPERR, "cannot run identity command '%s': %s", argv0, strerror(errno));
	}
	pid_t pid;
	/* No shell; stdin /dev/null, stdout the pipe, stderr the user's (the
	 * command is theirs and its complaints help them); nothing else; a
	 * process group of its own, so that a timeout ends all it started. */
	int e = spawn_plain(s->argv, false, -1, fds[1], true, &pid);
	close(fds[1]);
	if (e != 0) {
		close(fds[0]);
		secbuf_free(b);
		return latch_error(LATCH_OPERR, "cannot run identity command '%s': %s", argv0, strerror(e));
	}
	int64_t deadline = monotonic_ms() + (int64_t)timeout * 1000;
	enum run_end end = read_output(fds[0], b, deadline);
	close(fds[0]);
	int status = 0;
	if (end != RUN_EOF || wait_until(pid, deadline, &status) != 0) {
		if (end == RUN_EOF)
			end = RUN_TIMEOUT;
		/* The whole group: a shell script's children go too. */
		kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	int rc = -1;
	if (end == RUN_TIMEOUT)
		latch_error(LATCH_OPERR, "identity command '%s' did not finish within %d s", argv0, timeout);
	else if (end == RUN_TOO_BIG)
		latch_error(LATCH_OPERR, "identity command '%s' wrote more than 64 KiB", argv0);
	else if (end == RUN_ERROR)
		latch_error(LATCH_OPERR, "cannot read the output of identity command '%s'", argv0);
	else if (WIFSIGNALED(status))
		latch_error(LATCH_OPERR, "identity command '%s' was killed by signal %d", argv0, WTERMSIG(status));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		latch_error(LATCH_OPERR, "identity command '%s' exited with status %d", argv0, WEXITSTATUS(status));
	else
		rc = 0;
	if (rc == 0) {
		trim(b);
		if (b->len == 0)
			rc = latch_error(LATCH_OPERR, "identity command '%s' wrote no token", argv0);
		else if (b->data[0] == '{')
			rc = google_output(argv0, b, out);
		else {
			*out = b;
			b = NULL;
		}
	}
	secbuf_free(b);
	return rc;
}

/* ---- The two entry points -------------------------------------------- */

int fed_source_fetch(const struct fed_profile *p, int64_t now, struct secbuf **jwt, struct fed_claims *c)
{
	*jwt = NULL;
	memset(c, 0, sizeof *c);
	struct secbuf *b = NULL;
	int rc;
	switch (p->source.kind) {
	case FED_SOURCE_FILE:
		rc = from_file(&p->source, &b);
		break;
	case FED_SOURCE_ENV:
		rc = from_env(&p->source, &b);
		break;
	case FED_SOURCE_GITHUB:
		rc = from_github(p, &b);
		break;
	case FED_SOURCE_GCP:
		rc = from_gcp(p, &b);
		break;
	case FED_SOURCE_URL:
		rc = from_url(p, &b);
		break;
	case FED_SOURCE_EXEC:
		rc = from_exec(&p->source, &b);
		break;
	default:
		return latch_error(LATCH_USAGE,
				   "profile '%s' has no identity_token (set it in the profile, or "
				   "ANTHROPIC_IDENTITY_TOKEN_FILE or ANTHROPIC_IDENTITY_TOKEN)",
				   p->name);
	}
	if (rc != 0) {
		secbuf_free(b);
		return -1;
	}
	if (fed_jwt_check((const char *)b->data, b->len, now, c) != 0) {
		secbuf_free(b);
		return -1;
	}
	*jwt = b;
	return 0;
}

void fed_source_describe(const struct fed_source *s, char *out, size_t n)
{
	if (n == 0)
		return;
	const char *v = NULL, *kind = "none";
	switch (s->kind) {
	case FED_SOURCE_FILE:
		kind = "file", v = s->path;
		break;
	case FED_SOURCE_ENV:
		kind = "env", v = s->var;
		break;
	case FED_SOURCE_GITHUB:
		kind = "github_actions", v = s->audience;
		break;
	case FED_SOURCE_GCP:
		kind = "gcp_metadata", v = s->audience;
		break;
	case FED_SOURCE_URL:
		kind = "url", v = s->url;
		break;
	case FED_SOURCE_EXEC:
		kind = "exec", v = s->argc ? s->argv[0] : NULL;
		break;
	case FED_SOURCE_NONE:
		snprintf(out, n, "none");
		return;
	}
	snprintf(out, n, "%s:%s", kind, v ? v : "");
}
