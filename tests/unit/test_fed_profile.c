/* Unit tests: federation profiles (federation/profile.c) and identity
 * sources (federation/source.c). Profiles live in a temporary
 * XDG_CONFIG_HOME; identity tokens are built here from their parts
 * (never signed: latch does not check signatures); the HTTP sources talk
 * to a one-request server forked on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../federation/internal.h"
#include "capture.h"

/* ---- Helpers -------------------------------------------------------- */

static char tmpdir[64];
static char scratch[PATH_MAX];

static const char *at(const char *name)
{
	snprintf(scratch, sizeof scratch, "%s/%s", tmpdir, name);
	return scratch;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 65536);
	assert_non_null(buf);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

#define ASSERT_SAID(text)                                                               \
	do {                                                                            \
		if (!strstr(captured, (text)))                                          \
			fail_msg("expected '%s' in the message: %s", (text), captured); \
	} while (0)

static void b64url(char *out, size_t cap, const char *s)
{
	size_t at_ = strlen(out), n = strlen(s);
	assert_true(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) <= cap - at_);
	sodium_bin2base64(out + at_, cap - at_, (const unsigned char *)s, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* A JWT of {"alg":"RS256"} and a payload with exp an hour after the
 * run started (the same token for the same jti all run long) and the
 * given jti; the signature is "sig". Static: one at a time. */
static long long run_exp;

static const char *jwt_with(const char *jti)
{
	static char t[1024];
	char payload[256];
	snprintf(payload, sizeof payload,
		 "{\"iss\":\"https://issuer.test\",\"sub\":\"repo:o/r\",\"jti\":\"%s\",\"exp\":%lld}", jti, run_exp);
	t[0] = '\0';
	b64url(t, sizeof t, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	strcat(t, ".");
	b64url(t, sizeof t, payload);
	strcat(t, ".c2ln");
	return t;
}

static int parse(const char *json, struct fed_profile *p)
{
	return fed_profile_parse(json, strlen(json), "test", p);
}

static const char *const env_vars[] = {
	"ANTHROPIC_FEDERATION_RULE_ID",   "ANTHROPIC_ORGANIZATION_ID", "ANTHROPIC_SERVICE_ACCOUNT_ID",
	"ANTHROPIC_WORKSPACE_ID",         "ANTHROPIC_SCOPE",           "ANTHROPIC_BASE_URL",
	"ANTHROPIC_IDENTITY_TOKEN_FILE",  "ANTHROPIC_IDENTITY_TOKEN",  "ANTHROPIC_API_KEY",
	"ANTHROPIC_AUTH_TOKEN",           "ANTHROPIC_PROFILE",         "ACTIONS_ID_TOKEN_REQUEST_URL",
	"ACTIONS_ID_TOKEN_REQUEST_TOKEN", "LATCH_TEST_IDENTITY",
};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++)
		unsetenv(env_vars[i]);
}

static int setup(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

/* Field-by-field equality of the values (not the origins). */
static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void assert_same(const struct fed_profile *a, const struct fed_profile *b)
{
	assert_string_equal(a->name, b->name);
	assert_true(str_eq(a->rule_id, b->rule_id));
	assert_true(str_eq(a->org_id, b->org_id));
	assert_true(str_eq(a->service_account_id, b->service_account_id));
	assert_true(str_eq(a->workspace_id, b->workspace_id));
	assert_true(str_eq(a->scope, b->scope));
	assert_true(str_eq(a->base_url, b->base_url));
	assert_true(str_eq(a->ca_file, b->ca_file));
	assert_int_equal(a->timeout_s, b->timeout_s);
	const struct fed_source *x = &a->source, *y = &b->source;
	assert_int_equal(x->kind, y->kind);
	assert_true(str_eq(x->path, y->path));
	assert_true(str_eq(x->var, y->var));
	assert_true(str_eq(x->audience, y->audience));
	assert_true(str_eq(x->url, y->url));
	assert_true(str_eq(x->field, y->field));
	assert_int_equal(x->timeout_s, y->timeout_s);
	assert_int_equal(x->n_headers, y->n_headers);
	for (size_t i = 0; i < x->n_headers; i++)
		assert_string_equal(x->headers[i], y->headers[i]);
	assert_int_equal(x->argc, y->argc);
	for (size_t i = 0; i < x->argc; i++)
		assert_string_equal(x->argv[i], y->argv[i]);
	assert_null(x->argv[x->argc]);
}

/* json(p) parses back to p. */
static void round_trip(const struct fed_profile *p)
{
	char *text = fed_profile_json(p);
	assert_non_null(text);
	struct fed_profile q;
	if (fed_profile_parse(text, strlen(text), p->name, &q) != 0)
		fail_msg("fed_profile_json wrote what does not parse: %s", text);
	assert_same(p, &q);
	fed_profile_free(&q);
	json_free_text(text);
}

/* ---- Parsing --------------------------------------------------------- */

/* The example of Anthropic's profile file: its members as federation.h
 * lists them, with values shaped as the WIF reference shows them. */
static const char anthropic_example[] =
	"{\n"
	"  \"version\": \"1.0\",\n"
	"  \"base_url\": \"https://api.anthropic.com\",\n"
	"  \"organization_id\": \"00000000-0000-0000-0000-000000000000\",\n"
	"  \"workspace_id\": \"wrkspc_01AbCdEfGhIjKlMnOpQrStUv\",\n"
	"  \"authentication\": {\n"
	"    \"type\": \"oidc_federation\",\n"
	"    \"federation_rule_id\": \"fdrl_01AbCdEfGhIjKlMnOpQrStUv\",\n"
	"    \"service_account_id\": \"svac_01AbCdEfGhIjKlMnOpQrStUv\",\n"
	"    \"identity_token\": {\n"
	"      \"source\": \"file\",\n"
	"      \"path\": \"/var/run/secrets/anthropic.com/token\"\n"
	"    },\n"
	"    \"scope\": \"workspace:developer\"\n"
	"  }\n"
	"}\n";

static void parse_example(void **state)
{
	(void)state;
	struct fed_profile p;
	assert_int_equal(parse(anthropic_example, &p), 0);
	assert_string_equal(p.name, "test");
	assert_string_equal(p.rule_id, "fdrl_01AbCdEfGhIjKlMnOpQrStUv");
	assert_string_equal(p.org_id, "00000000-0000-0000-0000-000000000000");
	assert_string_equal(p.service_account_id, "svac_01AbCdEfGhIjKlMnOpQrStUv");
	assert_string_equal(p.workspace_id, "wrkspc_01AbCdEfGhIjKlMnOpQrStUv");
	assert_string_equal(p.scope, "workspace:developer");
	assert_string_equal(p.base_url, "https://api.anthropic.com");
	assert_null(p.ca_file);
	assert_int_equal(p.timeout_s, 0);
	assert_int_equal(p.source.kind, FED_SOURCE_FILE);
	assert_string_equal(p.source.path, "/var/run/secrets/anthropic.com/token");
	assert_int_equal(p.rule_from, FED_FROM_PROFILE);
	assert_int_equal(p.org_from, FED_FROM_PROFILE);
	assert_int_equal(p.source_from, FED_FROM_PROFILE);
	assert_int_equal(p.base_url_from, FED_FROM_PROFILE);
	assert_int_equal(fed_profile_complete(&p), 0);
	round_trip(&p);
	fed_profile_free(&p);
	/* Freed means empty. */
	assert_null(p.rule_id);
	assert_int_equal(p.source.kind, FED_SOURCE_NONE);
	assert_string_equal(p.name, "");
	fed_profile_free(NULL);
}

#define AUTH_HEAD "{\"version\":\"1.0\",\"organization_id\":\"org\",\"authentication\":{\"type\":\"oidc_federation\","
#define WITH_SOURCE(src) AUTH_HEAD "\"federation_rule_id\":\"fdrl_1\",\"identity_token\":" src "}}"

static void parse_sources(void **state)
{
	(void)state;
	struct fed_profile p;

	assert_int_equal(parse(WITH_SOURCE("{\"source\":\"env\"}"), &p), 0);
	assert_int_equal(p.source.kind, FED_SOURCE_ENV);
	assert_string_equal(p.source.var, "ANTHROPIC_IDENTITY_TOKEN");
	round_trip(&p);
	fed_profile_free(&p);
	assert_int_equal(parse(WITH_SOURCE("{\"source\":\"env\",\"var\":\"MY_OIDC_TOKEN_2\"}"), &p), 0);
	assert_string_equal(p.source.var, "MY_OIDC_TOKEN_2");
	fed_profile_free(&p);

	assert_int_equal(parse(WITH_SOURCE("{\"source\":\"github_actions\"}"), &p), 0);
	assert_int_equal(p.source.kind, FED_SOURCE_GITHUB);
	assert_null(p.source.audience);
	round_trip(&p);
	fed_profile_free(&p);
	assert_int_equal(
		parse(WITH_SOURCE(
			      "{\"source\":\"github_actions\",\"audience\":\"https://api.anthropic.com\",\"timeout_s\":7}"),
		      &p),
		0);
	assert_string_equal(p.source.audience, "https://api.anthropic.com");
	assert_int_equal(p.source.timeout_s, 7);
	round_trip(&p);
	fed_profile_free(&p);

	assert_int_equal(parse(WITH_SOURCE("{\"source\":\"gcp_metadata\",\"audience\":\"aud-1\"}"), &p), 0);
	assert_int_equal(p.source.kind, FED_SOURCE_GCP);
	assert_string_equal(p.source.audience, "aud-1");
	assert_null(p.source.url);
	fed_profile_free(&p);
	assert_int_equal(
		parse(WITH_SOURCE("{\"source\":\"gcp_metadata\",\"audience\":\"a\",\"url\":\"http://127.0.0.1:8080\"}"),
		      &p),
		0);
	assert_string_equal(p.source.url, "http://127.0.0.1:8080");
	round_trip(&p);
	fed_profile_free(&p);

	assert_int_equal(parse(WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://idp.example/token?x=1\","
					   "\"headers\":{\"x-req\":\" two words\",\"Authorization\":\"Bearer abc\"},"
					   "\"field\":\"id_token\",\"timeout_s\":300}"),
			       &p),
			 0);
	assert_int_equal(p.source.kind, FED_SOURCE_URL);
	assert_string_equal(p.source.url, "https://idp.example/token?x=1");
	assert_int_equal(p.source.n_headers, 2);
	/* In the profile's order (not sorted), the value as written. */
	assert_string_equal(p.source.headers[0], "x-req:  two words");
	assert_string_equal(p.source.headers[1], "Authorization: Bearer abc");
	assert_string_equal(p.source.field, "id_token");
	assert_int_equal(p.source.timeout_s, 300);
	round_trip(&p);
	fed_profile_free(&p);

	assert_int_equal(parse(WITH_SOURCE("{\"source\":\"exec\",\"command\":[\"/usr/bin/gcloud\",\"auth\",\"\","
					   "\"print-identity-token\"],\"allow_exec\":true,\"timeout_s\":1}"),
			       &p),
			 0);
	assert_int_equal(p.source.kind, FED_SOURCE_EXEC);
	assert_int_equal(p.source.argc, 4);
	assert_string_equal(p.source.argv[0], "/usr/bin/gcloud");
	assert_string_equal(p.source.argv[2], "");
	assert_null(p.source.argv[4]);
	assert_int_equal(p.source.timeout_s, 1);
	round_trip(&p);
	fed_profile_free(&p);

	/* Top-level additions, and empty ids that count as absent. */
	assert_int_equal(parse("{\"authentication\":{\"type\":\"oidc_federation\",\"federation_rule_id\":\"\"},"
			       "\"ca_file\":\"/etc/ssl/corp.pem\",\"timeout_s\":45,\"workspace_id\":\"\","
			       "\"base_url\":\"http://[::1]:8443\"}",
			       &p),
			 0);
	assert_null(p.rule_id);
	assert_null(p.workspace_id);
	assert_int_equal(p.rule_from, FED_FROM_NONE);
	assert_string_equal(p.ca_file, "/etc/ssl/corp.pem");
	assert_int_equal(p.timeout_s, 45);
	assert_int_equal(p.source.kind, FED_SOURCE_NONE);
	round_trip(&p);
	fed_profile_free(&p);
}

static void refused(const char *json)
{
	struct fed_profile p;
	memset(&p, 0x5a, sizeof p);
	latch_error_quiet(true);
	int rc = parse(json, &p);
	latch_error_quiet(false);
	if (rc != -1)
		fail_msg("accepted: %s", json);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	/* Refused means empty. */
	static const struct fed_profile zero;
	assert_memory_equal(&p, &zero, sizeof p);
}

static void parse_refusals(void **state)
{
	(void)state;
	char big[600], json[1200];
	memset(big, 'a', 256);
	big[256] = '\0';
	const char *const bad[] = {
		"",
		"[]",
		"\"x\"",
		"{\"version\":\"1.0\"}",
		"{\"authentication\":[]}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"authentication\":{\"type\":\"oidc_federation\"}}",
		"{\"authentication\":{\"type\":\"oidc_federation\"}} trailing",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"foo\":1}",
		"{\"authentication\":{\"type\":\"oidc_federation\",\"foo\":1}}",
		"{\"authentication\":{\"type\":\"oidc_federation\",\"credentials_path\":\"/x\"}}",
		"{\"version\":\"2.0\",\"authentication\":{\"type\":\"oidc_federation\"}}",
		"{\"version\":1,\"authentication\":{\"type\":\"oidc_federation\"}}",
		"{\"authentication\":{\"type\":\"user_oauth\"}}",
		"{\"authentication\":{\"type\":\"OIDC_federation\"}}",
		"{\"authentication\":{}}",
		WITH_SOURCE("{\"source\":\"exec\",\"command\":[\"/bin/echo\"]}"),
		WITH_SOURCE("{\"source\":\"exec\",\"command\":[\"/bin/echo\"],\"allow_exec\":false}"),
		WITH_SOURCE("{\"source\":\"exec\",\"command\":[\"/bin/echo\"],\"allow_exec\":\"true\"}"),
		WITH_SOURCE("{\"source\":\"exec\",\"command\":[\"echo\"],\"allow_exec\":true}"),
		WITH_SOURCE("{\"source\":\"exec\",\"command\":[],\"allow_exec\":true}"),
		WITH_SOURCE("{\"source\":\"exec\",\"command\":\"/bin/echo\",\"allow_exec\":true}"),
		WITH_SOURCE("{\"source\":\"exec\",\"command\":[\"/bin/echo\",1],\"allow_exec\":true}"),
		WITH_SOURCE("{\"source\":\"exec\",\"command\":[\"/bin/echo\",\"a\\nb\"],\"allow_exec\":true}"),
		WITH_SOURCE("{\"source\":\"file\",\"path\":\"relative/token\"}"),
		WITH_SOURCE("{\"source\":\"file\"}"),
		WITH_SOURCE("{\"source\":\"file\",\"path\":\"/t\",\"timeout_s\":5}"),
		WITH_SOURCE("{\"source\":\"file\",\"path\":\"/t\",\"var\":\"X\"}"),
		WITH_SOURCE("{\"path\":\"/t\"}"),
		WITH_SOURCE("{\"source\":\"magic\"}"),
		WITH_SOURCE("\"file\""),
		WITH_SOURCE("{\"source\":\"env\",\"var\":\"1BAD\"}"),
		WITH_SOURCE("{\"source\":\"env\",\"var\":\"BAD-NAME\"}"),
		WITH_SOURCE("{\"source\":\"gcp_metadata\"}"),
		WITH_SOURCE("{\"source\":\"gcp_metadata\",\"audience\":\"a\",\"url\":\"https://metadata.example\"}"),
		WITH_SOURCE("{\"source\":\"gcp_metadata\",\"audience\":\"a\",\"url\":\"http://10.0.0.1\"}"),
		WITH_SOURCE("{\"source\":\"github_actions\",\"audience\":\"two words\"}"),
		WITH_SOURCE("{\"source\":\"url\"}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"http://example.com/token\"}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"http://localhost.evil.com/token\"}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"ftp://example.com/token\"}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\",\"headers\":{\"X\":\"v\\r\\nEvil: 1\"}}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\",\"headers\":{\"X\":\"v\\nw\"}}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\",\"headers\":{\"Bad Name\":\"v\"}}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\",\"headers\":{\"Bad:Name\":\"v\"}}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\",\"headers\":{\"X\":5}}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\",\"headers\":[\"X: v\"]}"),
		WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\",\"field\":7}"),
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"base_url\":\"http://api.anthropic.com\"}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"base_url\":\"http://127.0.0.1.nip.io\"}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"ca_file\":\"corp.pem\"}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"organization_id\":\"a\\u001bb\"}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"organization_id\":\"a\\u0000b\"}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"organization_id\":\"a b\"}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"organization_id\":5}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"organization_id\":null}",
		"{\"authentication\":{\"type\":\"oidc_federation\",\"federation_rule_id\":\"fdrl\\u0085x\"}}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"timeout_s\":0}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"timeout_s\":301}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"timeout_s\":\"5\"}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"timeout_s\":5.0}",
		"{\"authentication\":{\"type\":\"oidc_federation\"},\"timeout_s\":-1}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		refused(bad[i]);
	/* Ids: 255 bytes pass, 256 do not. */
	snprintf(json, sizeof json, "{\"authentication\":{\"type\":\"oidc_federation\",\"service_account_id\":\"%s\"}}",
		 big);
	refused(json);
	big[255] = '\0';
	snprintf(json, sizeof json, "{\"authentication\":{\"type\":\"oidc_federation\",\"service_account_id\":\"%s\"}}",
		 big);
	struct fed_profile p;
	assert_int_equal(parse(json, &p), 0);
	assert_int_equal(strlen(p.service_account_id), 255);
	fed_profile_free(&p);
	/* A bad profile name; a profile over 64 KiB. */
	latch_error_quiet(true);
	assert_int_equal(fed_profile_parse(anthropic_example, strlen(anthropic_example), "../x", &p), -1);
	assert_int_equal(fed_profile_parse(anthropic_example, strlen(anthropic_example), "..", &p), -1);
	assert_int_equal(fed_profile_parse(anthropic_example, strlen(anthropic_example), "", &p), -1);
	latch_error_quiet(false);
	size_t n = 64 * 1024 + 1;
	char *huge = malloc(n + 1);
	assert_non_null(huge);
	memset(huge, ' ', n);
	memcpy(huge, anthropic_example, strlen(anthropic_example));
	huge[n] = '\0';
	assert_int_equal(fed_profile_parse(huge, n - 1, "test", &p), 0);
	fed_profile_free(&p);
	latch_error_quiet(true);
	assert_int_equal(fed_profile_parse(huge, n, "test", &p), -1);
	latch_error_quiet(false);
	free(huge);
	/* 16 headers are allowed, 17 are not. */
	char hdrs[1024] = "";
	for (int i = 0; i < 17; i++) {
		char one[32];
		snprintf(one, sizeof one, "%s\"H%d\":\"v\"", i ? "," : "", i);
		strcat(hdrs, one);
		snprintf(json, sizeof json, WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\",\"headers\":{%s}}"),
			 hdrs);
		if (i < 16) {
			assert_int_equal(parse(json, &p), 0);
			assert_int_equal(p.source.n_headers, (size_t)i + 1);
			fed_profile_free(&p);
		} else {
			refused(json);
		}
	}
}

static void parse_messages(void **state)
{
	(void)state;
	struct fed_profile p;
	int rc;
	CAPTURE(rc, parse("{\"authentication\":{\"type\":\"oidc_federation\",\"foo\":1}}", &p));
	assert_int_equal(rc, -1);
	ASSERT_SAID("profile 'test': unknown member 'authentication.foo'");
	CAPTURE(rc, parse("{\"authentication\":{\"type\":\"oidc_federation\"},\"bar\":1}", &p));
	ASSERT_SAID("unknown member 'bar'");
	CAPTURE(rc, parse(WITH_SOURCE("{\"source\":\"file\",\"path\":\"/t\",\"bogus\":1}"), &p));
	ASSERT_SAID("unknown member 'authentication.identity_token.bogus'");
	CAPTURE(rc, parse("{\"authentication\":{\"type\":\"user_oauth\",\"client_id\":\"x\"}}", &p));
	ASSERT_SAID("latch runs only oidc_federation profiles");
	CAPTURE(rc, parse(WITH_SOURCE("{\"source\":\"exec\",\"command\":[\"/bin/echo\"]}"), &p));
	ASSERT_SAID("an exec identity source runs a command: set \"allow_exec\": true in the profile to allow it");
	CAPTURE(rc, parse("{\"authentication\":{\"type\":\"oidc_federation\"},\"timeout_s\":301}", &p));
	ASSERT_SAID("'timeout_s'");
	CAPTURE(rc, parse("{\"version\":\"2.0\",\"authentication\":{\"type\":\"oidc_federation\"}}", &p));
	ASSERT_SAID("'version'");
	/* A header's value may be a bearer token: never in a message, not
	 * even when it is what is wrong, nor when the JSON around it is. */
	CAPTURE(rc, parse(WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\","
				      "\"headers\":{\"Authorization\":\"Bearer SECRETVALUE\\r\\n\"}}"),
			  &p));
	assert_int_equal(rc, -1);
	ASSERT_SAID("header 'Authorization'");
	assert_null(strstr(captured, "SECRETVALUE"));
	CAPTURE(rc, parse(WITH_SOURCE("{\"source\":\"url\",\"url\":\"https://a\","
				      "\"headers\":{\"Authorization\":\"Bearer SECRETVALUE\" \"x\"}}"),
			  &p));
	assert_int_equal(rc, -1);
	ASSERT_SAID("not valid JSON");
	assert_null(strstr(captured, "SECRETVALUE"));
	CAPTURE(rc, parse("{\"authentication\":{\"type\":\"oidc_federation\",\"scope\":\"SECRETVALUE\","
			  "\"scope\":\"SECRETVALUE\"}}",
			  &p));
	ASSERT_SAID("a member twice");
	assert_null(strstr(captured, "SECRETVALUE"));
	/* The url source's URL may carry a key in its query: not quoted. */
	CAPTURE(rc, parse(WITH_SOURCE("{\"source\":\"url\",\"url\":\"http://idp.example/?key=SECRETVALUE\"}"), &p));
	assert_int_equal(rc, -1);
	assert_null(strstr(captured, "SECRETVALUE"));
}

/* ---- The environment ------------------------------------------------ */

static void fill_env(void **state)
{
	(void)state;
	struct fed_profile p;
	/* The profile's values win; the environment fills only what is empty. */
	assert_int_equal(parse(WITH_SOURCE("{\"source\":\"file\",\"path\":\"/prof/token\"}"), &p), 0);
	setenv("ANTHROPIC_FEDERATION_RULE_ID", "fdrl_env", 1);
	setenv("ANTHROPIC_ORGANIZATION_ID", "org_env", 1);
	setenv("ANTHROPIC_SERVICE_ACCOUNT_ID", "  svac_env\t", 1);
	setenv("ANTHROPIC_WORKSPACE_ID", "", 1);
	setenv("ANTHROPIC_SCOPE", "   ", 1);
	setenv("ANTHROPIC_BASE_URL", "https://gateway.example", 1);
	setenv("ANTHROPIC_IDENTITY_TOKEN_FILE", "/env/token", 1);
	assert_int_equal(fed_profile_fill_env(&p), 0);
	assert_string_equal(p.rule_id, "fdrl_1");
	assert_int_equal(p.rule_from, FED_FROM_PROFILE);
	assert_string_equal(p.org_id, "org");
	assert_int_equal(p.org_from, FED_FROM_PROFILE);
	assert_string_equal(p.service_account_id, "svac_env");
	assert_int_equal(p.service_account_from, FED_FROM_ENV);
	assert_null(p.workspace_id); /* "" is unset */
	assert_int_equal(p.workspace_from, FED_FROM_NONE);
	assert_null(p.scope); /* blanks are unset */
	assert_string_equal(p.base_url, "https://gateway.example");
	assert_int_equal(p.base_url_from, FED_FROM_ENV);
	assert_string_equal(p.source.path, "/prof/token");
	assert_int_equal(p.source_from, FED_FROM_PROFILE);
	fed_profile_free(&p);
	clear_env();

	/* An empty profile, everything from the environment; the file
	 * variable is preferred over the token variable. */
	memset(&p, 0, sizeof p);
	strcpy(p.name, "fromenv");
	latch_error_quiet(true);
	assert_int_equal(fed_profile_complete(&p), -1);
	latch_error_quiet(false);
	setenv("ANTHROPIC_FEDERATION_RULE_ID", "fdrl_env", 1);
	setenv("ANTHROPIC_ORGANIZATION_ID", "org_env", 1);
	setenv("ANTHROPIC_SCOPE", "user:inference user:profile", 1);
	setenv("ANTHROPIC_IDENTITY_TOKEN_FILE", "/env/token", 1);
	setenv("ANTHROPIC_IDENTITY_TOKEN", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", 1);
	assert_int_equal(fed_profile_fill_env(&p), 0);
	assert_int_equal(fed_profile_complete(&p), 0);
	assert_string_equal(p.rule_id, "fdrl_env");
	assert_int_equal(p.rule_from, FED_FROM_ENV);
	assert_string_equal(p.scope, "user:inference user:profile");
	assert_int_equal(p.source.kind, FED_SOURCE_FILE);
	assert_string_equal(p.source.path, "/env/token");
	assert_int_equal(p.source_from, FED_FROM_ENV);
	assert_null(p.base_url);
	/* --from-env: the profile as JSON holds the filled values. */
	char *text = fed_profile_json(&p);
	assert_non_null(text);
	assert_non_null(strstr(text, "fdrl_env"));
	assert_null(strstr(text, "eyJ"));
	round_trip(&p);
	json_free_text(text);
	fed_profile_free(&p);

	/* Without the file variable, the token variable, by name only. */
	unsetenv("ANTHROPIC_IDENTITY_TOKEN_FILE");
	strcpy(p.name, "fromenv");
	assert_int_equal(fed_profile_fill_env(&p), 0);
	assert_int_equal(p.source.kind, FED_SOURCE_ENV);
	assert_string_equal(p.source.var, "ANTHROPIC_IDENTITY_TOKEN");
	text = fed_profile_json(&p);
	assert_null(strstr(text, "eyJ"));
	json_free_text(text);
	fed_profile_free(&p);

	/* Blank token variable: no source; a relative file is made absolute. */
	setenv("ANTHROPIC_IDENTITY_TOKEN", " \n", 1);
	strcpy(p.name, "fromenv");
	assert_int_equal(fed_profile_fill_env(&p), 0);
	assert_int_equal(p.source.kind, FED_SOURCE_NONE);
	int rc;
	CAPTURE(rc, fed_profile_complete(&p));
	assert_int_equal(rc, -1);
	ASSERT_SAID("profile 'fromenv' has no identity_token");
	ASSERT_SAID("ANTHROPIC_IDENTITY_TOKEN_FILE");
	fed_profile_free(&p);
	setenv("ANTHROPIC_IDENTITY_TOKEN_FILE", "tok.jwt", 1);
	strcpy(p.name, "fromenv");
	assert_int_equal(fed_profile_fill_env(&p), 0);
	char cwd[PATH_MAX], want[PATH_MAX + 16];
	assert_non_null(getcwd(cwd, sizeof cwd));
	snprintf(want, sizeof want, "%s/tok.jwt", cwd);
	assert_string_equal(p.source.path, want);
	fed_profile_free(&p);

	/* What is missing, named with the variable that would set it. */
	clear_env();
	strcpy(p.name, "fromenv");
	CAPTURE(rc, fed_profile_complete(&p));
	ASSERT_SAID(
		"profile 'fromenv' has no federation_rule_id (set it in the profile or "
		"ANTHROPIC_FEDERATION_RULE_ID)");
	setenv("ANTHROPIC_FEDERATION_RULE_ID", "fdrl_env", 1);
	assert_int_equal(fed_profile_fill_env(&p), 0);
	CAPTURE(rc, fed_profile_complete(&p));
	ASSERT_SAID("has no organization_id (set it in the profile or ANTHROPIC_ORGANIZATION_ID)");
	fed_profile_free(&p);

	/* Bad values from the environment are refused like the profile's. */
	const char *const bad[][2] = {
		{"ANTHROPIC_BASE_URL", "http://api.anthropic.com"},
		{"ANTHROPIC_BASE_URL", "http://127.0.0.1.evil.example"},
		{"ANTHROPIC_ORGANIZATION_ID", "org with spaces"},
		{"ANTHROPIC_FEDERATION_RULE_ID", "fdrl\x1b[2J"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		clear_env();
		setenv(bad[i][0], bad[i][1], 1);
		memset(&p, 0, sizeof p);
		strcpy(p.name, "fromenv");
		CAPTURE(rc, fed_profile_fill_env(&p));
		if (rc != -1)
			fail_msg("accepted %s=%s", bad[i][0], bad[i][1]);
		assert_int_equal(latch_last_status(), LATCH_USAGE);
		ASSERT_SAID(bad[i][0]);
		fed_profile_free(&p);
	}
	/* A loopback http base URL is fine. */
	clear_env();
	setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9999", 1);
	memset(&p, 0, sizeof p);
	assert_int_equal(fed_profile_fill_env(&p), 0);
	assert_string_equal(p.base_url, "http://127.0.0.1:9999");
	fed_profile_free(&p);
	clear_env();
}

/* ---- Storage -------------------------------------------------------- */

static char profile_file[PATH_MAX];

static const char *profile_at(const char *name)
{
	snprintf(profile_file, sizeof profile_file, "%s/cfg/latch/fed/%s.json", tmpdir, name);
	return profile_file;
}

static void storage(void **state)
{
	(void)state;
	char cfg[128];
	snprintf(cfg, sizeof cfg, "%s/cfg", tmpdir);
	setenv("XDG_CONFIG_HOME", cfg, 1);
	/* fed_profile_remove removes the cached token (cache.c, once linked):
	 * the runtime and data directories stay in the temporary one too. */
	char run[128], data[128];
	snprintf(run, sizeof run, "%s/run", tmpdir);
	snprintf(data, sizeof data, "%s/data", tmpdir);
	setenv("XDG_RUNTIME_DIR", run, 1);
	setenv("LATCH_HOME", data, 1);
	char **names;
	size_t n;
	/* Nothing yet: an empty list, and no directory made by looking. */
	assert_int_equal(fed_profile_list(&names, &n), 0);
	assert_int_equal(n, 0);
	fed_names_free(names, n);
	struct stat st;
	assert_int_equal(stat(cfg, &st), -1);

	int rc;
	struct fed_profile p;
	CAPTURE(rc, fed_profile_load("nope", &p));
	assert_int_equal(rc, -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	ASSERT_SAID("no profile 'nope' (see 'latch fed ls')");

	/* An invalid profile writes nothing. */
	latch_error_quiet(true);
	assert_int_equal(fed_profile_add("bad", "{\"x\":1}", 7, false), -1);
	latch_error_quiet(false);
	assert_int_equal(stat(profile_at("bad"), &st), -1);

	assert_int_equal(fed_profile_add("zeta", anthropic_example, strlen(anthropic_example), false), 0);
	assert_int_equal(fed_profile_add("alpha.1", anthropic_example, strlen(anthropic_example), false), 0);
	const char *other = WITH_SOURCE("{\"source\":\"env\"}");
	assert_int_equal(fed_profile_add("mid_2-x", other, strlen(other), false), 0);
	assert_int_equal(stat(profile_at("zeta"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(scratch, sizeof scratch, "%s/latch/fed", cfg);
	assert_int_equal(stat(scratch, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* Not replaced without `replace`: refused, left as it was. */
	CAPTURE(rc, fed_profile_add("zeta", other, strlen(other), false));
	assert_int_equal(rc, -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	ASSERT_SAID("profile 'zeta' exists: 'latch fed rm zeta' first, or use --force");
	char *text = read_text(profile_at("zeta"));
	assert_string_equal(text, anthropic_example);
	free(text);
	assert_int_equal(fed_profile_add("zeta", other, strlen(other), true), 0);
	text = read_text(profile_at("zeta"));
	assert_string_equal(text, other);
	free(text);
	assert_int_equal(stat(profile_at("zeta"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* Listed sorted; files that are not profiles are left out. */
	snprintf(scratch, sizeof scratch, "%s/latch/fed/notes.txt", cfg);
	write_file(scratch, "x", 0600);
	snprintf(scratch, sizeof scratch, "%s/latch/fed/bad name.json", cfg);
	write_file(scratch, "x", 0600);
	assert_int_equal(fed_profile_list(&names, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "alpha.1");
	assert_string_equal(names[1], "mid_2-x");
	assert_string_equal(names[2], "zeta");
	fed_names_free(names, n);

	/* Loaded, and filled from the environment. */
	setenv("ANTHROPIC_SERVICE_ACCOUNT_ID", "svac_env", 1);
	assert_int_equal(fed_profile_load("zeta", &p), 0);
	assert_string_equal(p.name, "zeta");
	assert_int_equal(p.source.kind, FED_SOURCE_ENV);
	assert_string_equal(p.service_account_id, "svac_env");
	assert_int_equal(p.service_account_from, FED_FROM_ENV);
	fed_profile_free(&p);
	unsetenv("ANTHROPIC_SERVICE_ACCOUNT_ID");

	/* A profile others can read, or a symbolic link, is refused. */
	assert_int_equal(chmod(profile_at("alpha.1"), 0644), 0);
	CAPTURE(rc, fed_profile_load("alpha.1", &p));
	assert_int_equal(rc, -1);
	ASSERT_SAID("accessible by group or others");
	assert_int_equal(chmod(profile_at("alpha.1"), 0600), 0);
	assert_int_equal(fed_profile_load("alpha.1", &p), 0);
	fed_profile_free(&p);
	write_file(at("elsewhere.json"), anthropic_example, 0600);
	assert_int_equal(symlink(at("elsewhere.json"), profile_at("linked")), 0);
	CAPTURE(rc, fed_profile_load("linked", &p));
	assert_int_equal(rc, -1);
	ASSERT_SAID("symbolic link");
	/* A directory others can write is refused too. */
	snprintf(scratch, sizeof scratch, "%s/latch/fed", cfg);
	assert_int_equal(chmod(scratch, 0777), 0);
	CAPTURE(rc, fed_profile_load("zeta", &p));
	assert_int_equal(rc, -1);
	ASSERT_SAID("accessible by group or others");
	assert_int_equal(chmod(scratch, 0700), 0);

	/* Removed with its cached token; then gone. */
	assert_int_equal(fed_profile_remove("zeta"), 0);
	assert_int_equal(stat(profile_at("zeta"), &st), -1);
	CAPTURE(rc, fed_profile_remove("zeta"));
	assert_int_equal(rc, -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	ASSERT_SAID("no profile 'zeta'");
	/* A profile broken by hand can still be removed. */
	write_file(profile_at("broken"), "{not json", 0600);
	assert_int_equal(fed_profile_remove("broken"), 0);
	assert_int_equal(stat(profile_at("broken"), &st), -1);
	unlink(profile_at("linked"));

	/* Names that could leave the directory are refused everywhere. */
	const char *const bad_names[] = {"..", ".", "a/b", "", "x y", "../../etc/passwd"};
	for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
		CAPTURE(rc, fed_profile_add(bad_names[i], other, strlen(other), true));
		assert_int_equal(rc, -1);
		assert_int_equal(latch_last_status(), LATCH_USAGE);
		ASSERT_SAID("is not a profile name");
		latch_error_quiet(true);
		assert_int_equal(fed_profile_load(bad_names[i], &p), -1);
		assert_int_equal(fed_profile_remove(bad_names[i]), -1);
		latch_error_quiet(false);
	}
	char path[PATH_MAX], dir[PATH_MAX];
	assert_int_equal(fed_profile_path("mid_2-x", path), 0);
	assert_string_equal(path, profile_at("mid_2-x"));
	assert_int_equal(fed_profile_dir(dir, false), 0);
	snprintf(scratch, sizeof scratch, "%s/latch/fed", cfg);
	assert_string_equal(dir, scratch);
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("LATCH_HOME");
}

static void names(void **state)
{
	(void)state;
	char longest[FED_NAME_MAX + 1];
	memset(longest, 'a', sizeof longest);
	longest[FED_NAME_MAX - 1] = '\0';
	assert_true(fed_name_valid(longest));
	longest[FED_NAME_MAX - 1] = 'a';
	longest[FED_NAME_MAX] = '\0';
	assert_false(fed_name_valid(longest));
	const char *const ok[] = {"a", "default", "A-b_c.d", "...", ".hidden", "9"};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		assert_true(fed_name_valid(ok[i]));
	const char *const bad[] = {"", ".", "..", "a/b", "a b", "a\\b", "é", "a\n", "a:b"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (fed_name_valid(bad[i]))
			fail_msg("accepted name '%s'", bad[i]);
	assert_false(fed_name_valid(NULL));
}

/* ---- What the child gets -------------------------------------------- */

static void child_drops(void **state)
{
	(void)state;
	const char *const dropped[] = {
		"ANTHROPIC_API_KEY",
		"ANTHROPIC_AUTH_TOKEN",
		"ANTHROPIC_FEDERATION_RULE_ID",
		"ANTHROPIC_ORGANIZATION_ID",
		"ANTHROPIC_SERVICE_ACCOUNT_ID",
		"ANTHROPIC_WORKSPACE_ID",
		"ANTHROPIC_SCOPE",
		"ANTHROPIC_IDENTITY_TOKEN",
		"ANTHROPIC_IDENTITY_TOKEN_FILE",
		"ANTHROPIC_PROFILE",
		"ANTHROPIC_CONFIG_DIR",
		"ANTHROPIC_BASE_URL",
		"ACTIONS_ID_TOKEN_REQUEST_URL",
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN",
	};
	const char *const kept[] = {
		"ANTHROPIC_MODEL",     "ANTHROPIC_API_KEY_2",
		"ANTHROPIC_API_KE",    "ANTHROPIC_BASE_URL_X",
		"anthropic_api_key",   "ANTHROPIC_IDENTITY",
		"ACTIONS_ID_TOKEN",    "ACTIONS_RUNTIME_TOKEN",
		"GITHUB_TOKEN",        "PATH",
		"XANTHROPIC_API_KEY",  "ANTHROPIC_SCOPES",
		"CLAUDE_CODE_USE_FOO", "",
	};
	for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
		if (!fed_child_drops(dropped[i], strlen(dropped[i])))
			fail_msg("kept %s", dropped[i]);
	for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
		if (fed_child_drops(kept[i], strlen(kept[i])))
			fail_msg("dropped %s", kept[i]);
	/* `len` bytes of an environment entry, not the C string. */
	const char *entry = "ANTHROPIC_API_KEY=sk-ant-x";
	assert_true(fed_child_drops(entry, 17));
	assert_false(fed_child_drops(entry, 16));
	assert_false(fed_child_drops("ANTHROPIC_SCOPE=x", 17));
	assert_true(fed_child_drops("ANTHROPIC_SCOPE=x", 15));
}

static void model_credential(void **state)
{
	(void)state;
	struct fed_choice c;
	fed_model_credential(NULL, &c);
	assert_string_equal(c.winner, "none");

	setenv("ANTHROPIC_FEDERATION_RULE_ID", "fdrl_1", 1);
	fed_model_credential(NULL, &c);
	assert_string_equal(c.winner, "none"); /* the organization is missing */
	setenv("ANTHROPIC_ORGANIZATION_ID", "org", 1);
	fed_model_credential(NULL, &c);
	assert_string_equal(c.winner, "federation");
	clear_env();
	setenv("ANTHROPIC_PROFILE", "staging", 1);
	fed_model_credential(NULL, &c);
	assert_string_equal(c.winner, "federation");
	assert_non_null(strstr(c.why, "ANTHROPIC_PROFILE"));
	setenv("ANTHROPIC_PROFILE", "  ", 1);
	fed_model_credential(NULL, &c);
	assert_string_equal(c.winner, "none");

	fed_model_credential("ci", &c);
	assert_string_equal(c.winner, "federation");
	assert_non_null(strstr(c.why, "latch run --fed ci"));

	setenv("ANTHROPIC_AUTH_TOKEN", "", 1);
	fed_model_credential("ci", &c);
	assert_string_equal(c.winner, "federation"); /* empty: not set */
	setenv("ANTHROPIC_AUTH_TOKEN", "sk-ant-oat01-x", 1);
	fed_model_credential(NULL, &c);
	assert_string_equal(c.winner, "ANTHROPIC_AUTH_TOKEN");
	assert_null(strstr(c.why, "sk-ant"));
	fed_model_credential("ci", &c);
	assert_string_equal(c.winner, "ANTHROPIC_AUTH_TOKEN");
	assert_non_null(strstr(c.why, "under 'latch run --fed ci' the child uses federation"));

	/* ANTHROPIC_API_KEY outranks everything, even empty. */
	setenv("ANTHROPIC_API_KEY", "", 1);
	fed_model_credential(NULL, &c);
	assert_string_equal(c.winner, "ANTHROPIC_API_KEY");
	assert_non_null(strstr(c.why, "ANTHROPIC_API_KEY is set (to an empty value)"));
	assert_non_null(strstr(c.why, "outranks federation"));
	fed_model_credential("ci", &c);
	assert_string_equal(c.winner, "ANTHROPIC_API_KEY");
	assert_non_null(strstr(c.why, "under 'latch run --fed ci' the child uses federation"));
	setenv("ANTHROPIC_API_KEY", "sk-ant-api03-SECRET", 1);
	fed_model_credential("ci", &c);
	assert_string_equal(c.winner, "ANTHROPIC_API_KEY");
	assert_null(strstr(c.why, "SECRET"));
	assert_null(strstr(c.why, "empty"));
	/* A name with control characters is shown escaped. */
	unsetenv("ANTHROPIC_API_KEY");
	unsetenv("ANTHROPIC_AUTH_TOKEN");
	fed_model_credential("x\x1b[2Jy", &c);
	assert_null(strchr(c.why, '\x1b'));
	clear_env();
}

/* ---- Sources: file, env, exec ---------------------------------------- */

static void fetch_ok(const struct fed_profile *p, const char *want_jti)
{
	struct secbuf *jwt = (struct secbuf *)1;
	struct fed_claims c;
	int rc;
	CAPTURE(rc, fed_source_fetch(p, time(NULL), &jwt, &c));
	if (rc != 0)
		fail_msg("fetch failed: %s", captured);
	assert_non_null(jwt);
	assert_string_equal(c.jti, want_jti);
	assert_string_equal(c.iss, "https://issuer.test");
	assert_int_equal(c.exp, run_exp);
	assert_int_equal(strlen((char *)jwt->data), jwt->len);
	assert_string_equal((char *)jwt->data, jwt_with(want_jti));
	secbuf_free(jwt);
}

static void fetch_fails(const struct fed_profile *p, enum latch_status status, const char *said)
{
	struct secbuf *jwt = (struct secbuf *)1;
	struct fed_claims c;
	int rc;
	CAPTURE(rc, fed_source_fetch(p, time(NULL), &jwt, &c));
	if (rc != -1)
		fail_msg("fetch succeeded; expected: %s", said);
	assert_null(jwt);
	assert_int_equal(c.exp, 0);
	assert_int_equal(latch_last_status(), status);
	ASSERT_SAID(said);
}

static void source_profile(struct fed_profile *p, const char *source_json)
{
	char json[2048];
	snprintf(json, sizeof json, WITH_SOURCE("%s"), source_json);
	if (parse(json, p) != 0)
		fail_msg("does not parse: %s", json);
}

static void source_file(void **state)
{
	(void)state;
	struct fed_profile p;
	char src[PATH_MAX + 64], text[1200];
	snprintf(src, sizeof src, "{\"source\":\"file\",\"path\":\"%s\"}", at("token"));
	source_profile(&p, src);
	snprintf(text, sizeof text, "\n  %s\r\n\n", jwt_with("file-1"));
	write_file(at("token"), text, 0644);
	fetch_ok(&p, "file-1");
	/* Kubernetes' projected token: a link to a link, followed. */
	mkdir(at("..data"), 0700);
	write_file(at("..data/real"), jwt_with("file-2"), 0600);
	unlink(at("token"));
	assert_int_equal(symlink("..data/real", at("token")), 0);
	fetch_ok(&p, "file-2");
	write_file(at("..data/real"), " \n\t", 0600);
	fetch_fails(&p, LATCH_OPERR, "is empty");
	write_file(at("..data/real"), "", 0600);
	fetch_fails(&p, LATCH_OPERR, "is empty");
	/* Not a JWT: refused by the checks, without quoting it. */
	write_file(at("..data/real"), "not-a-jwt-SECRETVALUE", 0600);
	fetch_fails(&p, LATCH_OPERR, "the identity token");
	assert_null(strstr(captured, "SECRETVALUE"));
	unlink(at("..data/real"));
	fetch_fails(&p, LATCH_OPERR, "cannot read identity token file");
	/* Too big, and a directory. */
	char *big = malloc(FED_JWT_MAX + 200);
	assert_non_null(big);
	memset(big, 'A', FED_JWT_MAX + 199);
	big[FED_JWT_MAX + 199] = '\0';
	write_file(at("..data/real"), big, 0600);
	free(big);
	fetch_fails(&p, LATCH_OPERR, "larger than 16 KiB");
	unlink(at("token"));
	mkdir(at("token"), 0700);
	fetch_fails(&p, LATCH_OPERR, "not a regular file");
	rmdir(at("token"));
	unlink(at("..data/real"));
	rmdir(at("..data"));
	fed_profile_free(&p);
	/* No source at all. */
	memset(&p, 0, sizeof p);
	strcpy(p.name, "empty");
	fetch_fails(&p, LATCH_USAGE, "has no identity_token");
}

static void source_env(void **state)
{
	(void)state;
	struct fed_profile p;
	source_profile(&p, "{\"source\":\"env\",\"var\":\"LATCH_TEST_IDENTITY\"}");
	fetch_fails(&p, LATCH_USAGE, "variable LATCH_TEST_IDENTITY holding the identity token is not set");
	setenv("LATCH_TEST_IDENTITY", "", 1);
	fetch_fails(&p, LATCH_USAGE, "is not set");
	setenv("LATCH_TEST_IDENTITY", " \n ", 1);
	fetch_fails(&p, LATCH_USAGE, "is not set");
	char text[1200];
	snprintf(text, sizeof text, " %s\n", jwt_with("env-1"));
	setenv("LATCH_TEST_IDENTITY", text, 1);
	fetch_ok(&p, "env-1");
	unsetenv("LATCH_TEST_IDENTITY");
	fed_profile_free(&p);
}

/* An executable script in the temporary directory. */
static const char *script(const char *name, const char *body)
{
	char text[4096];
	snprintf(text, sizeof text, "#!/bin/sh\n%s\n", body);
	write_file(at(name), text, 0700);
	return at(name);
}

static void exec_profile(struct fed_profile *p, const char *path, int timeout_s)
{
	char src[PATH_MAX + 128], tail[32] = "";
	if (timeout_s)
		snprintf(tail, sizeof tail, ",\"timeout_s\":%d", timeout_s);
	snprintf(src, sizeof src, "{\"source\":\"exec\",\"command\":[\"%s\",\"arg one\"],\"allow_exec\":true%s}", path,
		 tail);
	source_profile(p, src);
}

static bool no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

static void source_exec(void **state)
{
	(void)state;
	struct fed_profile p;
	char body[2048];

	/* A JWT on stdout, the argument passed without a shell, stdin
	 * /dev/null, no descriptor of ours beyond 0-2. */
	int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: closefrom must close it */
	assert_true(leak > 2);
	snprintf(body, sizeof body,
		 "[ \"$1\" = 'arg one' ] || exit 7\n"
		 "[ -e /proc/$$/fd/%d ] && exit 8\n"
		 "read x && exit 9\n"
		 "printf '%%s\\n' '%s'",
		 leak, jwt_with("exec-1"));
	exec_profile(&p, script("jwt.sh", body), 0);
	fetch_ok(&p, "exec-1");
	close(leak);
	fed_profile_free(&p);
	assert_true(no_children());

	/* Google's executable-credential JSON. */
	snprintf(
		body, sizeof body,
		"cat <<EOF\n{\"version\": 1, \"success\": true, \"token_type\": "
		"\"urn:ietf:params:oauth:token-type:id_token\", \"id_token\": \"%s\", \"expiration_time\": 1900000000}\nEOF",
		jwt_with("exec-2"));
	exec_profile(&p, script("google.sh", body), 5);
	fetch_ok(&p, "exec-2");
	fed_profile_free(&p);
	exec_profile(&p,
		     script("google-fail.sh",
			    "echo '{\"version\":1,\"success\":false,\"code\":\"401\",\"message\":"
			    "\"Caller not authorized.\"}'"),
		     5);
	fetch_fails(&p, LATCH_OPERR, "reported failure: 401 Caller not authorized.");
	fed_profile_free(&p);
	/* A failure message echoing a token is withheld. */
	exec_profile(&p,
		     script("google-echo.sh",
			    "echo '{\"version\":1,\"success\":false,\"code\":\"x\",\"message\":"
			    "\"bad token eyJhbGciOiJSUzI1NiJ9.SECRET\"}'"),
		     5);
	fetch_fails(&p, LATCH_OPERR, "reported failure");
	assert_null(strstr(captured, "SECRET"));
	fed_profile_free(&p);
	exec_profile(&p,
		     script("google-saml.sh",
			    "echo '{\"version\":1,\"success\":true,\"token_type\":"
			    "\"urn:ietf:params:oauth:token-type:saml2\",\"saml_response\":\"x\"}'"),
		     5);
	fetch_fails(&p, LATCH_OPERR, "token_type");
	fed_profile_free(&p);
	exec_profile(&p, script("google-bad.sh", "echo '{\"success\":true,'"), 5);
	fetch_fails(&p, LATCH_OPERR, "not a JSON object");
	fed_profile_free(&p);

	/* Failures: an exit status, a signal, no output, too much output,
	 * a command that cannot start. */
	exec_profile(&p, script("exit1.sh", "echo oops >&2; exit 1"), 5);
	fetch_fails(&p, LATCH_OPERR, "exited with status 1");
	ASSERT_SAID(at("exit1.sh"));
	fed_profile_free(&p);
	exec_profile(&p, script("killed.sh", "kill -TERM $$"), 5);
	fetch_fails(&p, LATCH_OPERR, "killed by signal 15");
	fed_profile_free(&p);
	exec_profile(&p, script("silent.sh", "exit 0"), 5);
	fetch_fails(&p, LATCH_OPERR, "wrote no token");
	fed_profile_free(&p);
	exec_profile(&p, script("flood.sh", "head -c 70000 /dev/zero | tr '\\0' A"), 5);
	fetch_fails(&p, LATCH_OPERR, "wrote more than 64 KiB");
	fed_profile_free(&p);
	exec_profile(&p, at("does-not-exist"), 5);
	fetch_fails(&p, LATCH_OPERR, "cannot run identity command");
	fed_profile_free(&p);
	assert_true(no_children());
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True once `pid` is gone or a zombie (its parent, init, reaps it). */
static bool dead(pid_t pid)
{
	char path[64], stat_line[256];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return true;
	size_t n = fread(stat_line, 1, sizeof stat_line - 1, f);
	fclose(f);
	stat_line[n] = '\0';
	const char *paren = strrchr(stat_line, ')');
	return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static void source_exec_timeout(void **state)
{
	(void)state;
	struct fed_profile p;
	char body[PATH_MAX + 64];
	/* The script's own child holds stdout open too: the whole group goes. */
	snprintf(body, sizeof body, "sleep 30 &\necho $! > '%s'\nwait", at("sleep.pid"));
	exec_profile(&p, script("slow.sh", body), 1);
	int64_t t0 = mono_ms();
	fetch_fails(&p, LATCH_OPERR, "did not finish within 1 s");
	int64_t took = mono_ms() - t0;
	if (took < 900 || took > 2000)
		fail_msg("the 1 s timeout took %lld ms", (long long)took);
	assert_true(no_children());
	char *pid_text = read_text(at("sleep.pid"));
	assert_non_null(pid_text);
	pid_t sleeper = (pid_t)atoi(pid_text);
	free(pid_text);
	assert_true(sleeper > 1);
	bool gone = false;
	for (int i = 0; i < 100 && !(gone = dead(sleeper)); i++)
		usleep(10 * 1000);
	if (!gone) {
		kill(sleeper, SIGKILL);
		fail_msg("the command's child %d outlived the timeout", (int)sleeper);
	}
	fed_profile_free(&p);

	/* Closing stdout early and lingering is a timeout too. */
	exec_profile(&p, script("linger.sh", "exec >&-\nsleep 30"), 1);
	t0 = mono_ms();
	fetch_fails(&p, LATCH_OPERR, "did not finish within 1 s");
	took = mono_ms() - t0;
	if (took > 2000)
		fail_msg("the 1 s timeout took %lld ms", (long long)took);
	assert_true(no_children());
	fed_profile_free(&p);
}

/* ---- Sources over HTTP ------------------------------------------------ */

/* A one-request server on 127.0.0.1 in a child process: it writes the
 * request's head to `head_file` and answers `status` with `body`. */
struct server {
	pid_t pid;
	int port;
};

static void serve(int lfd, const char *head_file, int status, const char *body)
{
	alarm(10);
	int c = accept(lfd, NULL, NULL);
	if (c < 0)
		_exit(2);
	char head[8192];
	size_t n = 0;
	while (n < sizeof head - 1) {
		ssize_t r = read(c, head + n, sizeof head - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		head[n] = '\0';
		if (strstr(head, "\r\n\r\n"))
			break;
	}
	FILE *f = fopen(head_file, "w");
	if (f) {
		fwrite(head, 1, n, f);
		fclose(f);
	}
	char out[8192];
	int k = snprintf(
		out, sizeof out,
		"HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
		status, strlen(body), body);
	if (write(c, out, (size_t)k) != k)
		_exit(3);
	shutdown(c, SHUT_WR);
	close(c);
	_exit(0);
}

/* One listening socket for the whole run: every server answers on the
 * same port, so a profile's URL stays valid from one request to the next. */
static int listen_fd = -1, listen_port;

static struct server server_start(int status, const char *body)
{
	if (listen_fd < 0) {
		listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(listen_fd >= 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(listen_fd, (struct sockaddr *)&a, sizeof a), 0);
		assert_int_equal(listen(listen_fd, 4), 0);
		socklen_t len = sizeof a;
		assert_int_equal(getsockname(listen_fd, (struct sockaddr *)&a, &len), 0);
		listen_port = ntohs(a.sin_port);
	}
	struct server s = {.port = listen_port};
	char head_file[PATH_MAX];
	snprintf(head_file, sizeof head_file, "%s/request.txt", tmpdir);
	unlink(head_file);
	s.pid = fork();
	assert_true(s.pid >= 0);
	if (s.pid == 0)
		serve(listen_fd, head_file, status, body);
	return s;
}

/* The request's head, after the server is done (or stopped). */
static char *server_finish(struct server s)
{
	kill(s.pid, SIGTERM); /* harmless once it has exited */
	waitpid(s.pid, NULL, 0);
	return read_text(at("request.txt"));
}

static bool has_line(const char *head, const char *line)
{
	char want[512];
	snprintf(want, sizeof want, "\r\n%s\r\n", line);
	return strcasestr(head, want) != NULL;
}

static void source_github(void **state)
{
	(void)state;
	struct fed_profile p;
	source_profile(&p, "{\"source\":\"github_actions\",\"audience\":\"https://api.anthropic.com/x?y=1&z\"}");
	fetch_fails(&p, LATCH_USAGE,
		    "github_actions identity source: ACTIONS_ID_TOKEN_REQUEST_URL is not set (the job needs "
		    "permissions: id-token: write)");
	setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "http://pipelines.example/idtoken", 1);
	fetch_fails(&p, LATCH_USAGE, "ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set");
	setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-SECRET", 1);
	fetch_fails(&p, LATCH_USAGE, "ACTIONS_ID_TOKEN_REQUEST_URL is not https");
	assert_null(strstr(captured, "SECRET"));
	char body[1400], url[128];
	snprintf(body, sizeof body, "{\"count\":1,\"value\":\"%s\"}", jwt_with("gha-1"));
	struct server s = server_start(200, body);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/gha?api-version=2.0", s.port);
	setenv("ACTIONS_ID_TOKEN_REQUEST_URL", url, 1);
	fetch_ok(&p, "gha-1");
	char *head = server_finish(s);
	assert_non_null(head);
	assert_non_null(strstr(
		head,
		"GET /gha?api-version=2.0&audience=https%3A%2F%2Fapi.anthropic.com%2Fx%3Fy%3D1%26z HTTP/1.1\r\n"));
	assert_true(has_line(head, "Authorization: bearer request-SECRET"));
	assert_true(has_line(head, "Accept: application/json"));
	free(head);
	/* Refused: the answer's status is said, never its body. */
	s = server_start(403, "{\"message\":\"BODYSECRET\"}");
	snprintf(url, sizeof url, "http://127.0.0.1:%d/gha", s.port);
	setenv("ACTIONS_ID_TOKEN_REQUEST_URL", url, 1);
	fetch_fails(&p, LATCH_OPERR, "GitHub's OIDC endpoint answered HTTP 403");
	assert_null(strstr(captured, "BODYSECRET"));
	free(server_finish(s));
	s = server_start(200, "{\"count\":1}");
	fetch_fails(&p, LATCH_OPERR, "has no string \"value\"");
	head = server_finish(s);
	assert_non_null(strstr(head, "GET /gha?audience="));
	free(head);
	fed_profile_free(&p);
	clear_env();
}

static void source_gcp_and_url(void **state)
{
	(void)state;
	struct fed_profile p;
	char src[512], body[1400];
	snprintf(body, sizeof body, "%s\n", jwt_with("gcp-1"));
	struct server s = server_start(200, body);
	snprintf(
		src, sizeof src,
		"{\"source\":\"gcp_metadata\",\"audience\":\"//iam.googleapis.com/x\",\"url\":\"http://127.0.0.1:%d/\"}",
		s.port);
	source_profile(&p, src);
	fetch_ok(&p, "gcp-1");
	char *head = server_finish(s);
	assert_non_null(strstr(head,
			       "GET /computeMetadata/v1/instance/service-accounts/default/identity"
			       "?audience=%2F%2Fiam.googleapis.com%2Fx&format=full HTTP/1.1\r\n"));
	assert_true(has_line(head, "Metadata-Flavor: Google"));
	free(head);
	s = server_start(404, "");
	fetch_fails(&p, LATCH_OPERR, "the GCP metadata server answered HTTP 404");
	free(server_finish(s));
	fed_profile_free(&p);

	/* url: the body, or a JSON member of it; the headers as given. */
	s = server_start(200, body);
	snprintf(src, sizeof src,
		 "{\"source\":\"url\",\"url\":\"http://localhost:%d/tok?k=v\",\"headers\":{\"X-Api-Key\":\"k1\"}}",
		 s.port);
	source_profile(&p, src);
	fetch_ok(&p, "gcp-1");
	head = server_finish(s);
	assert_non_null(strstr(head, "GET /tok?k=v HTTP/1.1\r\n"));
	assert_true(has_line(head, "X-Api-Key: k1"));
	free(head);
	fed_profile_free(&p);
	snprintf(body, sizeof body, "{\"id_token\":\"%s\",\"other\":1}", jwt_with("url-2"));
	s = server_start(200, body);
	snprintf(src, sizeof src, "{\"source\":\"url\",\"url\":\"http://127.0.0.1:%d/t\",\"field\":\"id_token\"}",
		 s.port);
	source_profile(&p, src);
	fetch_ok(&p, "url-2");
	free(server_finish(s));
	s = server_start(200, "not json SECRETBODY");
	fetch_fails(&p, LATCH_OPERR, "the identity-token URL's answer is not a JSON object");
	assert_null(strstr(captured, "SECRETBODY"));
	free(server_finish(s));
	s = server_start(500, "SECRETBODY");
	fetch_fails(&p, LATCH_OPERR, "the identity-token URL answered HTTP 500");
	assert_null(strstr(captured, "SECRETBODY"));
	free(server_finish(s));
	fed_profile_free(&p);
}

static void describe(void **state)
{
	(void)state;
	struct fed_profile p;
	char out[256];
	source_profile(&p, "{\"source\":\"file\",\"path\":\"/var/run/token\"}");
	fed_source_describe(&p.source, out, sizeof out);
	assert_string_equal(out, "file:/var/run/token");
	fed_profile_free(&p);
	source_profile(&p, "{\"source\":\"env\"}");
	fed_source_describe(&p.source, out, sizeof out);
	assert_string_equal(out, "env:ANTHROPIC_IDENTITY_TOKEN");
	fed_profile_free(&p);
	source_profile(&p, "{\"source\":\"github_actions\",\"audience\":\"aud\"}");
	fed_source_describe(&p.source, out, sizeof out);
	assert_string_equal(out, "github_actions:aud");
	fed_profile_free(&p);
	source_profile(&p, "{\"source\":\"github_actions\"}");
	fed_source_describe(&p.source, out, sizeof out);
	assert_string_equal(out, "github_actions:");
	fed_profile_free(&p);
	source_profile(&p, "{\"source\":\"gcp_metadata\",\"audience\":\"g\"}");
	fed_source_describe(&p.source, out, sizeof out);
	assert_string_equal(out, "gcp_metadata:g");
	fed_profile_free(&p);
	source_profile(
		&p, "{\"source\":\"url\",\"url\":\"https://idp/t\",\"headers\":{\"Authorization\":\"Bearer SECRET\"}}");
	fed_source_describe(&p.source, out, sizeof out);
	assert_string_equal(out, "url:https://idp/t");
	fed_profile_free(&p);
	source_profile(&p, "{\"source\":\"exec\",\"command\":[\"/bin/idtool\",\"--x\"],\"allow_exec\":true}");
	fed_source_describe(&p.source, out, sizeof out);
	assert_string_equal(out, "exec:/bin/idtool");
	fed_source_describe(&p.source, out, 6);
	assert_string_equal(out, "exec:");
	fed_profile_free(&p);
	fed_source_describe(&p.source, out, sizeof out);
	assert_string_equal(out, "none");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	run_exp = (long long)time(NULL) + 3600;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/latch-test-fed-profile.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(parse_example, setup),
		cmocka_unit_test_setup(parse_sources, setup),
		cmocka_unit_test_setup(parse_refusals, setup),
		cmocka_unit_test_setup(parse_messages, setup),
		cmocka_unit_test_setup(fill_env, setup),
		cmocka_unit_test_setup(storage, setup),
		cmocka_unit_test_setup(names, setup),
		cmocka_unit_test_setup(child_drops, setup),
		cmocka_unit_test_setup(model_credential, setup),
		cmocka_unit_test_setup(source_file, setup),
		cmocka_unit_test_setup(source_env, setup),
		cmocka_unit_test_setup(source_exec, setup),
		cmocka_unit_test_setup(source_exec_timeout, setup),
		cmocka_unit_test_setup(source_github, setup),
		cmocka_unit_test_setup(source_gcp_and_url, setup),
		cmocka_unit_test_setup(describe, setup),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return 1;
	return failed;
}
