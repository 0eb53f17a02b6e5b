/* Unit tests: federation/http.c and federation/exchange.c. Which URLs
 * may be used; the exchange's request body; the token endpoint's answers,
 * good and bad, and the one line latch prints for each (never a token or
 * an assertion); fed_http against a one-connection server forked here on
 * 127.0.0.1 (answers, a request id, Retry-After, the 1 MiB cap, a closed
 * connection, a stall, a refused connection). fed_exchange itself needs an
 * identity source and is tested end to end (tests/cli/fed_*.bats). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../federation/internal.h"
#include "capture.h"

/* What the server must never make latch print. */
#define CANARY_TOKEN "sk-ant-oat01-CANARY-9f8e7d"
#define CANARY_JWT "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlLWNhbmFyeQ"

/* Exactly one line, "latch: ..." */
static void one_line(void)
{
	assert_true(strncmp(captured, "latch: ", 7) == 0);
	char *nl = strchr(captured, '\n');
	assert_non_null(nl);
	assert_true(nl[1] == '\0');
}

static void no_secret_in(const char *s)
{
	if (strstr(s, "eyJ") || strstr(s, "sk-ant-") || strstr(s, "CANARY"))
		fail_msg("a secret reached a message: %s", s);
}

/* ---- fed_url_allowed --------------------------------------------------- */

static void urls(void **state)
{
	(void)state;
	static const char *const yes[] = {
		"https://api.anthropic.com",
		"https://api.anthropic.com/",
		"https://api.anthropic.com:8443/v1/oauth/token?x=1#f",
		"HTTPS://API.ANTHROPIC.COM",
		"HtTpS://x",
		"https://[2001:db8::1]:443/",
		"https://10.0.0.1",
		"https://my_host.internal",
		"https://127.0.0.1.nip.io",
		"http://127.0.0.1",
		"http://127.0.0.1:8080/v1/oauth/token",
		"http://127.0.0.1?x",
		"HTTP://127.0.0.1:1",
		"http://[::1]",
		"http://[::1]:9/",
		"http://localhost",
		"http://LOCALHOST:5000/x",
		"http://localhost:65535",
	};
	static const char *const no[] = {
		"",
		"http://example.com",
		"http://localhost.evil.com",
		"http://127.0.0.1.nip.io",
		"http://127.0.0.1@evil",
		"http://evil@127.0.0.1",
		"https://user:pw@api.anthropic.com",
		"https://@api.anthropic.com",
		"http://127.0.0.2",
		"http://127.0.0",
		"http://localhos:80",
		"http://127.0.0.10",
		"http://127.0.0.2:8080/",
		"http://[::2]",
		"http://[::1]evil",
		"http://[::1].evil.com",
		"http://0x7f000001",
		"http://127.1",
		"http://localhost.",
		"http://127.0.0.1\\@evil.com",
		"http://127.0.0.1:80:80",
		"https://",
		"https:///path",
		"https://:443",
		"https://?x",
		"https://[]",
		"https://[::1",
		"https://[::1]x",
		"https://[g::1]",
		"https://exa\\mple.com",
		"https://ex%41mple.com",
		"https://b\303\274cher.de",
		"https://api.anthropic.com:0",
		"https://api.anthropic.com:65536",
		"https://api.anthropic.com:123456",
		"https://api.anthropic.com:",
		"https://api.anthropic.com:443x",
		"https://api.anthropic.com:-1",
		"https://api.anthropic.com /x",
		"https://api.anthropic.com/a b",
		"https://api.anthropic.com\n",
		"https://api.anth\tropic.com",
		"https://api.anthropic.com/\x7f",
		" https://api.anthropic.com",
		"file:///etc/passwd",
		"ftp://example.com",
		"gopher://127.0.0.1",
		"ws://127.0.0.1",
		"//api.anthropic.com",
		"api.anthropic.com",
		"http:/127.0.0.1",
		"https:api.anthropic.com",
		"httpss://api.anthropic.com",
	};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		if (!fed_url_allowed(yes[i]))
			fail_msg("refused: '%s'", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		if (fed_url_allowed(no[i]))
			fail_msg("allowed: '%s'", no[i]);
	assert_false(fed_url_allowed(NULL));

	int rc;
	CAPTURE(rc, fed_url_check("http://example.com/v1", "the token endpoint"));
	assert_int_equal(rc, -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	assert_string_equal(captured,
			    "latch: the token endpoint 'http://example.com/v1' is not https (plain http "
			    "only to 127.0.0.1, ::1 or localhost)\n");
	CAPTURE(rc, fed_url_check("https://example.com/v1", "the token endpoint"));
	assert_int_equal(rc, 0);
	assert_string_equal(captured, "");
}

/* ---- fed_exchange_body -------------------------------------------------- */

static void body(void **state)
{
	(void)state;
	struct fed_profile p = {.rule_id = "fdrl_01", .org_id = "org-1", .scope = "user:inference"};
	const char jwt[] = "aGVhZA.cGF5bG9hZA.c2ln";
	struct secbuf *b = NULL;
	assert_int_equal(fed_exchange_body(&p, jwt, strlen(jwt), &b), 0);
	assert_string_equal((const char *)b->data,
			    "{\"grant_type\":\"urn:ietf:params:oauth:grant-type:jwt-bearer\",\"assertion\":\"aGVhZA."
			    "cGF5bG9hZA.c2ln\",\"federation_rule_id\":\"fdrl_01\",\"organization_id\":\"org-1\"}");
	assert_int_equal(b->len, strlen((const char *)b->data));
	secbuf_free(b);

	/* The optional two when set; an empty one counts as unset. */
	p.service_account_id = "svac_01";
	p.workspace_id = "wrkspc_01";
	assert_int_equal(fed_exchange_body(&p, jwt, strlen(jwt), &b), 0);
	assert_string_equal((const char *)b->data,
			    "{\"grant_type\":\"urn:ietf:params:oauth:grant-type:jwt-bearer\",\"assertion\":\"aGVhZA."
			    "cGF5bG9hZA.c2ln\",\"federation_rule_id\":\"fdrl_01\",\"organization_id\":\"org-1\","
			    "\"service_account_id\":\"svac_01\",\"workspace_id\":\"wrkspc_01\"}");
	secbuf_free(b);
	p.service_account_id = "";
	assert_int_equal(fed_exchange_body(&p, jwt, strlen(jwt), &b), 0);
	assert_null(strstr((const char *)b->data, "service_account_id"));
	assert_non_null(strstr((const char *)b->data, "\"workspace_id\":\"wrkspc_01\"}"));
	assert_null(strstr((const char *)b->data, "scope"));
	secbuf_free(b);

	/* Only `jwt_len` bytes of the assertion. */
	assert_int_equal(fed_exchange_body(&p, jwt, 6, &b), 0);
	assert_non_null(strstr((const char *)b->data, "\"assertion\":\"aGVhZA\","));
	secbuf_free(b);

	/* Without a rule or an organization there is nothing to send. */
	int rc;
	p.rule_id = NULL;
	b = (struct secbuf *)&p; /* must be reset */
	CAPTURE(rc, fed_exchange_body(&p, jwt, strlen(jwt), &b));
	assert_int_equal(rc, -1);
	assert_null(b);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	assert_string_equal(captured, "latch: the profile has no federation_rule_id\n");
	p.rule_id = "fdrl_01";
	p.org_id = "";
	CAPTURE(rc, fed_exchange_body(&p, jwt, strlen(jwt), &b));
	assert_int_equal(rc, -1);
	assert_string_equal(captured, "latch: the profile has no organization_id\n");
}

/* ---- fed_token_parse: answers that carry a token ----------------------- */

static int parse(long status, const char *rid, const char *json, struct secbuf **tok, int64_t *exp)
{
	int rc;
	CAPTURE(rc, fed_token_parse(status, rid, (const unsigned char *)json, strlen(json), tok, exp));
	if (rc == 0) {
		assert_string_equal(captured, "");
	} else {
		assert_int_equal(rc, -1);
		assert_null(*tok);
		assert_int_equal(*exp, 0);
		assert_int_equal(latch_last_status(), LATCH_OPERR);
		one_line();
		no_secret_in(captured);
	}
	return rc;
}

static void good(const char *json, const char *want, int64_t want_exp)
{
	struct secbuf *tok = NULL;
	int64_t exp = 0;
	if (parse(200, "", json, &tok, &exp) != 0)
		fail_msg("refused: %s (%s)", json, captured);
	assert_string_equal((const char *)tok->data, want);
	assert_int_equal(tok->len, strlen(want));
	assert_int_equal(exp, want_exp);
	secbuf_free(tok);
}

/* Refused; the message must contain `says`. */
static void bad(long status, const char *rid, const char *json, const char *says)
{
	struct secbuf *tok = (struct secbuf *)&tok;
	int64_t exp = 77;
	if (parse(status, rid, json, &tok, &exp) != -1)
		fail_msg("accepted: %s", json);
	if (!strstr(captured, says))
		fail_msg("for %s: '%s' does not say '%s'", json, captured, says);
}

static void answers(void **state)
{
	(void)state;
	good("{\"access_token\":\"" CANARY_TOKEN
	     "\",\"token_type\":\"Bearer\",\"expires_in\":3600,"
	     "\"scope\":\"user:inference\"}",
	     CANARY_TOKEN, 3600);
	good("{\"expires_in\":1,\"token_type\":\"bearer\",\"access_token\":\"a\"}", "a", 1);
	good("{\"access_token\":\"a\",\"token_type\":\"BEARER\",\"expires_in\":31536000}", "a", 31536000);
	good("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":3600.0}", "a", 3600);
	good("{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":36e2}", "a", 3600);
	good("{\"access_token\":\"!~\",\"token_type\":\"Bearer\",\"expires_in\":60,\"x\":{\"y\":[1]}}", "!~", 60);
	/* 201 is a 2xx too. */
	struct secbuf *tok = NULL;
	int64_t exp;
	assert_int_equal(parse(201, NULL, "{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":5}", &tok,
			       &exp),
			 0);
	secbuf_free(tok);

	/* The longest token, and one byte more. */
	static char json[8300];
	char *t = malloc(8194);
	assert_non_null(t);
	memset(t, 'A', 8193);
	t[8192] = '\0';
	snprintf(json, sizeof json, "{\"access_token\":\"%s\",\"token_type\":\"Bearer\",\"expires_in\":60}", t);
	good(json, t, 60);
	t[8192] = 'A';
	t[8193] = '\0';
	snprintf(json, sizeof json, "{\"access_token\":\"%s\",\"token_type\":\"Bearer\",\"expires_in\":60}", t);
	bad(200, "", json, "access_token that is not 1 to 8192 printable ASCII characters");
	free(t);
}

static void bad_answers(void **state)
{
	(void)state;
	const char *not_token = "access_token that is not 1 to 8192 printable ASCII characters";
	bad(200, "", "{\"token_type\":\"Bearer\",\"expires_in\":60}",
	    "the token endpoint's answer has no access_token");
	bad(200, "", "{\"access_token\":\"\",\"token_type\":\"Bearer\",\"expires_in\":60}", not_token);
	bad(200, "", "{\"access_token\":null,\"token_type\":\"Bearer\",\"expires_in\":60}", not_token);
	bad(200, "", "{\"access_token\":42,\"token_type\":\"Bearer\",\"expires_in\":60}", not_token);
	bad(200, "", "{\"access_token\":\"a b\",\"token_type\":\"Bearer\",\"expires_in\":60}", not_token);
	/* jansson refuses an escaped NUL anywhere. */
	bad(200, "", "{\"access_token\":\"a\\u0000b\",\"token_type\":\"Bearer\",\"expires_in\":60}", "is not JSON");
	bad(200, "", "{\"access_token\":\"a\\nb\",\"token_type\":\"Bearer\",\"expires_in\":60}", not_token);
	bad(200, "", "{\"access_token\":\"caf\\u00e9\",\"token_type\":\"Bearer\",\"expires_in\":60}", not_token);
	bad(200, "", "{\"access_token\":\"a\",\"expires_in\":60}", "has no token_type");
	bad(200, "", "{\"access_token\":\"" CANARY_TOKEN "\",\"token_type\":\"mac\",\"expires_in\":60}",
	    "the token endpoint's answer has token_type 'mac', not Bearer");
	bad(200, "", "{\"access_token\":\"a\",\"token_type\":\"Bearer \",\"expires_in\":60}",
	    "token_type 'Bearer ', not");
	bad(200, "", "{\"access_token\":\"a\",\"token_type\":\"" CANARY_TOKEN "\",\"expires_in\":60}",
	    "has a token_type that is not Bearer");
	bad(200, "", "{\"access_token\":\"a\",\"token_type\":\"" CANARY_JWT "\",\"expires_in\":60}",
	    "has a token_type that is not Bearer");
	bad(200, "", "{\"access_token\":\"a\",\"token_type\":\"Bearer\\u0000x\",\"expires_in\":60}", "is not JSON");
	bad(200, "", "{\"access_token\":\"a\",\"token_type\":\"a\\u001b[2Jb\",\"expires_in\":60}",
	    "has a token_type that is not Bearer");
	bad(200, "", "{\"access_token\":\"a\",\"token_type\":7,\"expires_in\":60}", "has a token_type that is not");

	const char *not_exp = "has an expires_in that is not a whole number of seconds from 1 to 31536000";
	bad(200, "", "{\"access_token\":\"a\",\"token_type\":\"Bearer\"}",
	    "the token endpoint's answer has no expires_in");
	static const char *const exps[] = {"\"3600\"", "0",    "-5",  "31536001", "1e300",  "3600.5",
					   "null",     "true", "0.5", "-0.0",     "[3600]", "9223372036854775807",
					   "1e-300",   "{}"};
	for (size_t i = 0; i < sizeof exps / sizeof exps[0]; i++) {
		char json[128];
		snprintf(json, sizeof json, "{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":%s}",
			 exps[i]);
		bad(200, "", json, not_exp);
	}

	bad(200, "", "<html>" CANARY_TOKEN "</html>", "the token endpoint's answer is not JSON");
	bad(200, "", "", "the token endpoint's answer is not JSON");
	bad(200, "", "{\"access_token\":\"" CANARY_TOKEN "\",\"token_type\":\"Bearer\",\"expires_in\":60",
	    "is not JSON");
	bad(200, "", "[\"" CANARY_TOKEN "\"]", "the token endpoint's answer is not a JSON object");
	bad(200, "", "\"" CANARY_TOKEN "\"", "is not JSON"); /* jansson wants an array or object */
	/* A second access_token must not pick a winner silently. */
	bad(200, "",
	    "{\"access_token\":\"a\",\"access_token\":\"" CANARY_TOKEN
	    "\",\"token_type\":\"Bearer\",\"expires_in\":60}",
	    "is not JSON");
	/* The request id is named when there is one. */
	bad(200, "req_77", "{}", "has no access_token (request-id req_77)");

	/* Bytes after the JSON, and a NULL body. */
	bad(200, "", "{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":60} x", "is not JSON");
	struct secbuf *tok = (struct secbuf *)&tok;
	int64_t exp = 9;
	int rc;
	CAPTURE(rc, fed_token_parse(200, NULL, NULL, 0, &tok, &exp));
	assert_int_equal(rc, -1);
	assert_null(tok);
	assert_string_equal(captured, "latch: the token endpoint's answer is not JSON\n");
}

/* ---- fed_token_parse: error answers ------------------------------------ */

static void refused(long status, const char *rid, const char *json, const char *line)
{
	struct secbuf *tok = (struct secbuf *)&tok;
	int64_t exp = 77;
	assert_int_equal(parse(status, rid, json, &tok, &exp), -1);
	char want[LATCH_ERROR_MAX + 16];
	snprintf(want, sizeof want, "latch: %s\n", line);
	assert_string_equal(captured, want);
}

static void errors(void **state)
{
	(void)state;
	refused(400, "req_1", "{\"error\":\"invalid_grant\",\"error_description\":\"the assertion has expired\"}",
		"the token endpoint refused the exchange: HTTP 400 invalid_grant: the assertion has expired "
		"(request-id req_1)");
	refused(400, "",
		"{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"federation rule not "
		"found\"}}",
		"the token endpoint refused the exchange: HTTP 400 invalid_request_error: federation rule not found");
	refused(400, "", "{\"error\":\"invalid_grant\"}",
		"the token endpoint refused the exchange: HTTP 400 invalid_grant");
	refused(400, NULL, "{\"error\":{\"message\":\"no type\"}}",
		"the token endpoint refused the exchange: HTTP 400: no type");
	/* 401 is opaque on purpose: whatever the body says, latch points to the Console. */
	refused(401, "req_scripted401",
		"{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"" CANARY_JWT "\"}}",
		"the token endpoint refused the exchange: HTTP 401 (request-id req_scripted401); the reason is only "
		"in the Claude Console's authentication history (workload identity page)");
	refused(401, "", "",
		"the token endpoint refused the exchange: HTTP 401; the reason is only in the Claude "
		"Console's authentication history (workload identity page)");
	refused(403, "req_3",
		"{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"the rule does not match "
		"this subject\"}}",
		"the token endpoint refused the exchange: HTTP 403 permission_error: the rule does not match this "
		"subject (request-id req_3)");
	refused(429, "req_4",
		"{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}",
		"the token endpoint rate limited the exchange: HTTP 429 rate_limit_error: slow down (request-id req_4)");
	refused(429, "", "Too Many Requests", "the token endpoint rate limited the exchange: HTTP 429");
	refused(500, "req_5", "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"internal\"}}",
		"the token endpoint failed: HTTP 500 api_error: internal (request-id req_5)");
	refused(503, "req_6", "<html>upstream " CANARY_JWT "</html>",
		"the token endpoint failed: HTTP 503 (request-id req_6)");
	refused(302, "", "", "the token endpoint answered HTTP 302, a redirect, which latch does not follow");
	refused(100, "", "", "the token endpoint answered HTTP 100, not a token");

	/* A server that echoes the assertion (or a key) is not quoted. */
	refused(400, "", "{\"error\":\"invalid_grant\",\"error_description\":\"bad assertion " CANARY_JWT "\"}",
		"the token endpoint refused the exchange: HTTP 400 invalid_grant: (the message was withheld)");
	refused(400, "", "{\"error\":\"" CANARY_JWT "\",\"error_description\":\"x\"}",
		"the token endpoint refused the exchange: HTTP 400 (the message was withheld): x");
	refused(403, "",
		"{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"key " CANARY_TOKEN
		" is revoked\"}}",
		"the token endpoint refused the exchange: HTTP 403 permission_error: (the message was withheld)");
	/* Escaping must not spell one either: 0x1e then "yJ" becomes "\x1eyJ". */
	refused(400, "", "{\"error\":\"invalid_grant\",\"error_description\":\"a\\u001eyJhbGciOi\"}",
		"the token endpoint refused the exchange: HTTP 400 invalid_grant: (the message was withheld)");
	/* An escaped NUL makes it not JSON (jansson): status only. */
	refused(400, "", "{\"error\":\"invalid_grant\",\"error_description\":\"ok\\u0000" CANARY_JWT "\"}",
		"the token endpoint refused the exchange: HTTP 400");
	/* A request id that is not plain text, or looks like a token, is left out. */
	refused(400, "req\x1b[2J", "{\"error\":\"invalid_grant\"}",
		"the token endpoint refused the exchange: HTTP 400 invalid_grant");
	refused(400, CANARY_TOKEN, "{\"error\":\"invalid_grant\"}",
		"the token endpoint refused the exchange: HTTP 400 invalid_grant");
	/* Duplicate keys: not JSON, so not quoted. */
	refused(400, "", "{\"error\":\"a\",\"error\":\"b\"}", "the token endpoint refused the exchange: HTTP 400");

	/* Control characters are shown, never obeyed. */
	refused(400, "", "{\"error\":\"invalid_grant\",\"error_description\":\"a\\u001b[2Jb\\u0085c\"}",
		"the token endpoint refused the exchange: HTTP 400 invalid_grant: a\\x1b[2Jb\\u0085c");

	/* A long message is cut short, at a character boundary, with "...". */
	char json[4096], msg[2048];
	memset(msg, 'x', 1000);
	memcpy(msg + 199, "\xc3\xa9", 2); /* é across the cut */
	msg[1000] = '\0';
	snprintf(json, sizeof json, "{\"error\":\"invalid_grant\",\"error_description\":\"%s\"}", msg);
	struct secbuf *tok = NULL;
	int64_t exp;
	assert_int_equal(parse(400, "r", json, &tok, &exp), -1);
	char want[512];
	snprintf(want, sizeof want,
		 "latch: the token endpoint refused the exchange: HTTP 400 invalid_grant: %.199s... (request-id r)\n",
		 msg);
	assert_string_equal(captured, want);
	/* A long error type too. */
	memset(msg, 'T', 300);
	msg[300] = '\0';
	snprintf(json, sizeof json, "{\"error\":\"%s\"}", msg);
	assert_int_equal(parse(400, "", json, &tok, &exp), -1);
	snprintf(want, sizeof want, "latch: the token endpoint refused the exchange: HTTP 400 %.64s...\n", msg);
	assert_string_equal(captured, want);
}

static void jwt_hash(void **state)
{
	(void)state;
	unsigned char a[32], b[32], want[32];
	fed_jwt_hash(CANARY_JWT, strlen(CANARY_JWT), a);
	crypto_generichash(want, 32, (const unsigned char *)CANARY_JWT, strlen(CANARY_JWT), NULL, 0);
	assert_memory_equal(a, want, 32);
	fed_jwt_hash(CANARY_JWT, strlen(CANARY_JWT) - 1, b);
	assert_memory_not_equal(a, b, 32);
}

/* ---- fed_http against a server forked here ----------------------------- */

enum serve { SERVE_REPLY, SERVE_CLOSE, SERVE_STALL, SERVE_BIG };

struct server {
	pid_t pid;
	int port;
	char request[PATH_MAX]; /* what the client sent, written by the server */
};

static int write_full(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One connection: read the request (its headers and a Content-Length
 * body) into s->request, then answer as `how` says. */
static void serve_one(int ls, const struct server *s, enum serve how, const char *reply, size_t big)
{
	alarm(20);
	signal(SIGPIPE, SIG_IGN);
	int c = accept(ls, NULL, NULL);
	if (c < 0)
		_exit(1);
	static char req[65536];
	size_t n = 0;
	char *end = NULL;
	while (!end && n < sizeof req - 1) {
		ssize_t r = read(c, req + n, sizeof req - 1 - n);
		if (r <= 0)
			_exit(1);
		n += (size_t)r;
		req[n] = '\0';
		end = strstr(req, "\r\n\r\n");
	}
	const char *cl = strcasestr(req, "\r\ncontent-length:");
	size_t want = (size_t)(end - req) + 4 + (cl ? strtoul(cl + 17, NULL, 10) : 0);
	while (n < want && n < sizeof req - 1) {
		ssize_t r = read(c, req + n, sizeof req - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	FILE *f = fopen(s->request, "w");
	if (f) {
		fwrite(req, 1, n, f);
		fclose(f);
	}
	if (how == SERVE_REPLY) {
		write_full(c, reply, strlen(reply));
	} else if (how == SERVE_STALL) {
		sleep(4);
	} else if (how == SERVE_BIG) {
		write_full(c, reply, strlen(reply));
		static char chunk[65536];
		memset(chunk, 'b', sizeof chunk);
		while (big > 0) {
			size_t k = big < sizeof chunk ? big : sizeof chunk;
			if (write_full(c, chunk, k) != 0)
				break;
			big -= k;
		}
	}
	close(c);
	_exit(0);
}

static void server_start(struct server *s, enum serve how, const char *reply, size_t big)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(ls >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(ls, 4), 0);
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	snprintf(s->request, sizeof s->request, "/tmp/latch-test-fedx-%d-%d", (int)getpid(), s->port);
	fflush(NULL);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0)
		serve_one(ls, s, how, reply, big);
	close(ls);
}

/* What the client sent to the last server stopped. */
static char last_request[65536];

static void server_stop(struct server *s)
{
	kill(s->pid, SIGTERM);
	waitpid(s->pid, NULL, 0);
	last_request[0] = '\0';
	FILE *f = fopen(s->request, "r");
	if (f) {
		size_t n = fread(last_request, 1, sizeof last_request - 1, f);
		last_request[n] = '\0';
		fclose(f);
	}
	unlink(s->request);
}

static const char *const test_headers[] = {"content-type: application/json", "accept: application/json"};

static const char *scheme = "http";

static int request(const struct server *s, const char *method, const char *body, int timeout_s, struct fed_http_resp *r)
{
	char url[128];
	snprintf(url, sizeof url, "%s://127.0.0.1:%d/v1/oauth/token?q=1", scheme, s->port);
	struct fed_http_req q = {
		.method = method,
		.url = url,
		.headers = test_headers,
		.n_headers = 2,
		.body = (const unsigned char *)body,
		.body_len = body ? strlen(body) : 0,
		.connect_timeout_s = 1,
		.timeout_s = timeout_s,
		.what = "the token endpoint",
	};
	int rc;
	CAPTURE(rc, fed_http(&q, r));
	return rc;
}

static void http_answers(void **state)
{
	(void)state;
	struct server s;
	struct fed_http_resp r;
	const char *reply =
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nRequest-Id: req_abc\r\n"
		"Connection: close\r\nContent-Length: 13\r\n\r\n{\"ok\":\"yes\"}\n";
	server_start(&s, SERVE_REPLY, reply, 0);
	assert_int_equal(request(&s, "POST", "{\"assertion\":\"" CANARY_JWT "\"}", 5, &r), 0);
	assert_string_equal(captured, "");
	assert_int_equal(r.status, 200);
	assert_int_equal(r.net, FED_NET_OK);
	assert_string_equal(r.request_id, "req_abc");
	assert_int_equal(r.retry_after_s, -1);
	assert_int_equal(r.body->len, 13);
	assert_string_equal((const char *)r.body->data, "{\"ok\":\"yes\"}\n");
	fed_http_resp_free(&r);
	assert_null(r.body);
	server_stop(&s);
	/* What went out: the method, the path, our headers, the User-Agent, the body. */
	const char *req = last_request;
	assert_true(strncmp(req, "POST /v1/oauth/token?q=1 HTTP/1.1\r\n", 35) == 0);
	assert_non_null(strstr(req, "\r\ncontent-type: application/json\r\n"));
	assert_non_null(strstr(req, "\r\naccept: application/json\r\n"));
	assert_non_null(strstr(req, "\r\nUser-Agent: latch/" LATCH_VERSION "\r\n"));
	assert_non_null(strstr(req, "\r\n\r\n{\"assertion\":\"" CANARY_JWT "\"}"));

	/* An error status is a response like any other; x-request-id and
	 * Retry-After are read; a GET has no body. */
	reply = "HTTP/1.1 429 Too Many Requests\r\nx-request-id:   req_xyz  \r\nRetry-After: 3\r\n"
		"Content-Length: 0\r\nConnection: close\r\n\r\n";
	server_start(&s, SERVE_REPLY, reply, 0);
	assert_int_equal(request(&s, "GET", NULL, 5, &r), 0);
	assert_int_equal(r.status, 429);
	assert_string_equal(r.request_id, "req_xyz");
	assert_int_equal(r.retry_after_s, 3);
	assert_int_equal(r.body->len, 0);
	assert_string_equal((const char *)r.body->data, "");
	fed_http_resp_free(&r);
	server_stop(&s);
	assert_true(strncmp(last_request, "GET /v1/oauth/token?q=1 HTTP/1.1\r\n", 34) == 0);

	/* A request id with a control character is dropped; a long one is cut;
	 * an HTTP-date Retry-After is not seconds; a redirect is not followed. */
	char longid[400];
	memset(longid, 'r', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	char buf[1024];
	snprintf(buf, sizeof buf,
		 "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nrequest-id: %s\r\nRetry-After: Wed, "
		 "21 Oct 2015 07:28:00 GMT\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		 longid);
	server_start(&s, SERVE_REPLY, buf, 0);
	assert_int_equal(request(&s, "POST", "{}", 5, &r), 0);
	assert_int_equal(r.status, 302);
	assert_int_equal(strlen(r.request_id), sizeof r.request_id - 1);
	assert_int_equal(r.retry_after_s, -1);
	fed_http_resp_free(&r);
	server_stop(&s);
	reply = "HTTP/1.1 500 Oops\r\nRequest-Id: a\x1b[2Jb\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	server_start(&s, SERVE_REPLY, reply, 0);
	assert_int_equal(request(&s, "POST", "{}", 5, &r), 0);
	assert_int_equal(r.status, 500);
	assert_string_equal(r.request_id, "");
	fed_http_resp_free(&r);
	server_stop(&s);
}

static void http_size_cap(void **state)
{
	(void)state;
	struct server s;
	struct fed_http_resp r;
	char head[256];
	/* Exactly 1 MiB is taken. */
	snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		 FED_RESPONSE_MAX);
	server_start(&s, SERVE_BIG, head, FED_RESPONSE_MAX);
	assert_int_equal(request(&s, "POST", "{}", 10, &r), 0);
	assert_int_equal(r.body->len, FED_RESPONSE_MAX);
	assert_int_equal(r.body->data[FED_RESPONSE_MAX], '\0');
	fed_http_resp_free(&r);
	server_stop(&s);
	/* One byte more: refused, announced by Content-Length or not. */
	snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		 FED_RESPONSE_MAX + 1);
	server_start(&s, SERVE_BIG, head, FED_RESPONSE_MAX + 1);
	assert_int_equal(request(&s, "POST", "{}", 10, &r), -1);
	assert_int_equal(r.net, FED_NET_TOO_BIG);
	assert_null(r.body);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	assert_string_equal(captured, "latch: the token endpoint sent more than 1 MiB\n");
	server_stop(&s);
	server_start(&s, SERVE_BIG, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", FED_RESPONSE_MAX + 1);
	assert_int_equal(request(&s, "POST", "{}", 10, &r), -1);
	assert_int_equal(r.net, FED_NET_TOO_BIG);
	assert_null(r.body);
	assert_string_equal(captured, "latch: the token endpoint sent more than 1 MiB\n");
	server_stop(&s);
}

static void http_failures(void **state)
{
	(void)state;
	struct server s;
	struct fed_http_resp r;
	char want[256];
	/* The server reads the request and closes: it may have seen it. */
	server_start(&s, SERVE_CLOSE, NULL, 0);
	assert_int_equal(request(&s, "POST", "{\"assertion\":\"" CANARY_JWT "\"}", 5, &r), -1);
	assert_int_equal(r.net, FED_NET_SENT);
	assert_int_equal(r.status, 0);
	assert_null(r.body);
	snprintf(want, sizeof want,
		 "latch: the request to the token endpoint at 'http://127.0.0.1:%d' failed: ", s.port);
	assert_true(strncmp(captured, want, strlen(want)) == 0);
	one_line();
	no_secret_in(captured);
	server_stop(&s);

	/* It reads the request and says nothing: a timeout after sending. */
	server_start(&s, SERVE_STALL, NULL, 0);
	assert_int_equal(request(&s, "POST", "{}", 1, &r), -1);
	assert_int_equal(r.net, FED_NET_SENT);
	snprintf(want, sizeof want, "latch: the token endpoint at 'http://127.0.0.1:%d' did not answer within 1 s\n",
		 s.port);
	assert_string_equal(captured, want);
	server_stop(&s);

	/* A server that takes the connection but never does TLS: the
	 * connection timed out (connect_timeout_s, 1 s), nothing was sent. */
	server_start(&s, SERVE_STALL, NULL, 0);
	scheme = "https";
	assert_int_equal(request(&s, "POST", "{}", 3, &r), -1);
	scheme = "http";
	assert_int_equal(r.net, FED_NET_UNSENT);
	snprintf(want, sizeof want,
		 "latch: cannot reach the token endpoint at 'https://127.0.0.1:%d': no connection within 1 s\n",
		 s.port);
	assert_string_equal(captured, want);
	server_stop(&s);

	/* Nobody listens: nothing was sent. */
	server_start(&s, SERVE_CLOSE, NULL, 0);
	server_stop(&s); /* the port is free again */
	assert_int_equal(request(&s, "POST", "{}", 5, &r), -1);
	assert_int_equal(r.net, FED_NET_UNSENT);
	snprintf(want, sizeof want, "latch: cannot reach the token endpoint at 'http://127.0.0.1:%d': ", s.port);
	assert_true(strncmp(captured, want, strlen(want)) == 0);
	one_line();
}

static void http_refusals(void **state)
{
	(void)state;
	struct fed_http_resp r;
	struct fed_http_req q = {.method = "GET", .url = "http://127.0.0.2:9/x", .what = "the GCP metadata server"};
	int rc;
	CAPTURE(rc, fed_http(&q, &r));
	assert_int_equal(rc, -1);
	assert_int_equal(r.net, FED_NET_REFUSED);
	assert_null(r.body);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	assert_string_equal(captured,
			    "latch: the GCP metadata server 'http://127.0.0.2:9/x' is not https (plain "
			    "http only to 127.0.0.1, ::1 or localhost)\n");
	/* plain_http_ok lets http to another host through (here nobody
	 * listens on 127.0.0.2:9, so it gets as far as connecting)... */
	q.plain_http_ok = true;
	q.connect_timeout_s = 2;
	q.timeout_s = 2;
	CAPTURE(rc, fed_http(&q, &r));
	assert_int_equal(rc, -1);
	assert_true(r.net == FED_NET_UNSENT);
	/* ...but not another scheme, nor a user name. */
	q.url = "ftp://127.0.0.1/x";
	CAPTURE(rc, fed_http(&q, &r));
	assert_int_equal(r.net, FED_NET_REFUSED);
	q.url = "http://user@metadata.google.internal/x";
	CAPTURE(rc, fed_http(&q, &r));
	assert_int_equal(r.net, FED_NET_REFUSED);
	q.url = "http://127.0.0.1:9/x";
	q.method = "DELETE";
	CAPTURE(rc, fed_http(&q, &r));
	assert_int_equal(rc, -1);
	assert_int_equal(r.net, FED_NET_REFUSED);
	assert_string_equal(captured, "latch: cannot send a DELETE request to the GCP metadata server\n");
	fed_http_resp_free(&r);
	fed_http_resp_free(NULL);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	/* The forked server is on 127.0.0.1: no proxy in between. */
	static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
					      "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
	for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++)
		unsetenv(proxies[i]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(urls),          cmocka_unit_test(body),          cmocka_unit_test(answers),
		cmocka_unit_test(bad_answers),   cmocka_unit_test(errors),        cmocka_unit_test(jwt_hash),
		cmocka_unit_test(http_answers),  cmocka_unit_test(http_size_cap), cmocka_unit_test(http_failures),
		cmocka_unit_test(http_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
