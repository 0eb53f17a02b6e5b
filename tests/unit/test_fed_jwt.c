/* Unit tests: the checks an identity token passes before it is sent
 * (federation/jwt.c). Tokens are built here from their parts; the
 * signature is never checked by latch (the token endpoint does that). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../federation/federation.h"

#define NOW 1796000000LL
static const char rs256[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}";

/* base64url without padding of `s`, appended to `out` (room `cap`). */
static void b64url(char *out, size_t cap, const char *s, size_t n)
{
	size_t at = strlen(out);
	assert_true(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) <= cap - at);
	sodium_bin2base64(out + at, cap - at, (const unsigned char *)s, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* A token of header.payload.sig (sig as given, already base64url). */
static char *token(const char *header, const char *payload, const char *sig)
{
	size_t cap = 2 * (strlen(header) + strlen(payload)) + strlen(sig) + 16;
	char *t = calloc(1, cap);
	assert_non_null(t);
	b64url(t, cap, header, strlen(header));
	strcat(t, ".");
	b64url(t, cap, payload, strlen(payload));
	strcat(t, ".");
	strcat(t, sig);
	return t;
}

static int check(const char *t, struct fed_claims *c)
{
	latch_error_quiet(true);
	int rc = fed_jwt_check(t, strlen(t), NOW, c);
	latch_error_quiet(false);
	return rc;
}

static void refused(const char *header, const char *payload, const char *sig)
{
	char *t = token(header, payload, sig);
	struct fed_claims c;
	if (check(t, &c) != -1)
		fail_msg("accepted: header %s payload %s sig '%s'", header, payload, sig);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	assert_int_equal(c.exp, 0);
	assert_string_equal(c.jti, "");
	free(t);
}

static void accepted(void **state)
{
	(void)state;
	char payload[512];
	snprintf(payload, sizeof payload,
		 "{\"iss\":\"https://token.actions.githubusercontent.com\",\"sub\":\"repo:o/r:ref:refs/heads/main\","
		 "\"aud\":\"https://api.anthropic.com\",\"jti\":\"5f1c-77\",\"exp\":%lld,\"iat\":%lld}",
		 NOW + 600, NOW - 5);
	char *t = token(rs256, payload, "c2lnbmF0dXJl");
	struct fed_claims c;
	assert_int_equal(check(t, &c), 0);
	assert_int_equal(c.exp, NOW + 600);
	assert_string_equal(c.iss, "https://token.actions.githubusercontent.com");
	assert_string_equal(c.sub, "repo:o/r:ref:refs/heads/main");
	assert_string_equal(c.jti, "5f1c-77");
	free(t);
	/* No iss, sub or jti: empty; exp as a JSON real. */
	snprintf(payload, sizeof payload, "{\"exp\":%lld.5}", NOW + 31);
	t = token("{\"alg\":\"ES256\"}", payload, "AA");
	assert_int_equal(check(t, &c), 0);
	assert_int_equal(c.exp, NOW + 31);
	assert_string_equal(c.iss, "");
	assert_string_equal(c.jti, "");
	free(t);
}

static void expiry(void **state)
{
	(void)state;
	char payload[128];
	const long long bad_exp[] = {NOW - 1, NOW, NOW + 1, NOW + FED_EXP_SKEW};
	for (size_t i = 0; i < sizeof bad_exp / sizeof bad_exp[0]; i++) {
		snprintf(payload, sizeof payload, "{\"exp\":%lld}", bad_exp[i]);
		refused(rs256, payload, "AA");
	}
	snprintf(payload, sizeof payload, "{\"exp\":%lld}", NOW + FED_EXP_SKEW + 1);
	char *t = token(rs256, payload, "AA");
	struct fed_claims c;
	assert_int_equal(check(t, &c), 0);
	free(t);
	/* No exp, or not a number, or absurd. */
	refused(rs256, "{}", "AA");
	refused(rs256, "{\"exp\":\"1900000000\"}", "AA");
	refused(rs256, "{\"exp\":null}", "AA");
	refused(rs256, "{\"exp\":-5}", "AA");
	refused(rs256, "{\"exp\":1e300}", "AA");
	/* A fraction of a second past the skew is not past it: whole seconds. */
	snprintf(payload, sizeof payload, "{\"exp\":%lld.5}", NOW + FED_EXP_SKEW);
	refused(rs256, payload, "AA");
}

static void header_and_payload(void **state)
{
	(void)state;
	const char *ok = "{\"exp\":1900000000}";
	refused("{\"alg\":\"none\"}", ok, "AA");
	refused("{\"alg\":\"NONE\"}", ok, "AA");
	refused("{\"typ\":\"JWT\"}", ok, "AA");
	refused("{\"alg\":5}", ok, "AA");
	refused("[\"alg\",\"RS256\"]", ok, "AA");
	refused("not json", ok, "AA");
	refused(rs256, "[1900000000]", "AA");
	refused(rs256, "\"exp\"", "AA");
	refused(rs256, "{\"exp\":1900000000,\"exp\":1900000001}", "AA"); /* duplicate keys */
	refused(rs256, "{\"exp\":1900000000", "AA");
}

static void shape(void **state)
{
	(void)state;
	char payload[64];
	snprintf(payload, sizeof payload, "{\"exp\":%lld}", NOW + 600);
	char *t = token(rs256, payload, "AA");
	size_t n = strlen(t);
	struct fed_claims c;
	assert_int_equal(check(t, &c), 0);
	char buf[256];
	/* Two parts (no signature), an empty signature, four parts. */
	snprintf(buf, sizeof buf, "%.*s", (int)(strrchr(t, '.') - t), t);
	assert_int_equal(check(buf, &c), -1);
	snprintf(buf, sizeof buf, "%.*s.", (int)(strrchr(t, '.') - t), t);
	assert_int_equal(check(buf, &c), -1);
	snprintf(buf, sizeof buf, "%s.AA", t);
	assert_int_equal(check(buf, &c), -1);
	/* Padding, white space, a newline, standard base64's '+' and '/'. */
	const char *tails[] = {"=", " ", "\n", "+", "/"};
	for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
		snprintf(buf, sizeof buf, "%s%s", t, tails[i]);
		if (check(buf, &c) != -1)
			fail_msg("accepted a token ending in '%s'", tails[i]);
	}
	/* An empty header; a payload that is not whole base64 (one char). */
	snprintf(buf, sizeof buf, "%s", strchr(t, '.'));
	assert_int_equal(check(buf, &c), -1);
	snprintf(buf, sizeof buf, "%.*sA.AA", (int)(strchr(t, '.') - t + 1), t);
	assert_int_equal(check(buf, &c), -1);
	/* A NUL inside: the length counts, not the C string. */
	memcpy(buf, t, n + 1);
	buf[3] = '\0';
	latch_error_quiet(true);
	assert_int_equal(fed_jwt_check(buf, n, NOW, &c), -1);
	assert_int_equal(fed_jwt_check("", 0, NOW, &c), -1);
	latch_error_quiet(false);
	free(t);
}

static void size_limit(void **state)
{
	(void)state;
	/* A token of exactly FED_JWT_MAX bytes is taken, one more is not: the
	 * payload is padded with a claim latch does not read. */
	char *payload = malloc(FED_JWT_MAX), *t = NULL;
	assert_non_null(payload);
	struct fed_claims c;
	for (size_t pad = FED_JWT_MAX * 3 / 4 - 200; pad < FED_JWT_MAX; pad++) {
		int k = snprintf(payload, FED_JWT_MAX, "{\"exp\":%lld,\"x\":\"", NOW + 600);
		memset(payload + k, 'y', pad);
		strcpy(payload + k + pad, "\"}");
		t = token(rs256, payload, "AA");
		if (strlen(t) >= FED_JWT_MAX)
			break;
		free(t);
		t = NULL;
	}
	assert_non_null(t);
	size_t n = strlen(t);
	assert_true(n == FED_JWT_MAX || n == FED_JWT_MAX + 1 || n == FED_JWT_MAX + 2);
	latch_error_quiet(true);
	/* Cut the signature so the token is exactly the limit, then one over. */
	t[FED_JWT_MAX] = '\0';
	assert_int_equal(fed_jwt_check(t, FED_JWT_MAX, NOW, &c), 0);
	t[FED_JWT_MAX] = 'A';
	assert_int_equal(fed_jwt_check(t, FED_JWT_MAX + 1, NOW, &c), -1);
	latch_error_quiet(false);
	free(t);
	free(payload);
}

static void claims(void **state)
{
	(void)state;
	char payload[1024], v[FED_CLAIM_MAX + 1];
	memset(v, 'a', sizeof v - 1);
	v[sizeof v - 1] = '\0';
	/* 255 bytes fit, 256 do not. */
	v[FED_CLAIM_MAX - 1] = '\0';
	snprintf(payload, sizeof payload, "{\"exp\":1900000000,\"sub\":\"%s\"}", v);
	char *t = token(rs256, payload, "AA");
	struct fed_claims c;
	assert_int_equal(check(t, &c), 0);
	assert_int_equal(strlen(c.sub), FED_CLAIM_MAX - 1);
	free(t);
	v[FED_CLAIM_MAX - 1] = 'a';
	snprintf(payload, sizeof payload, "{\"exp\":1900000000,\"sub\":\"%s\"}", v);
	refused(rs256, payload, "AA");
	/* Not a string, a control character, an escaped NUL. */
	refused(rs256, "{\"exp\":1900000000,\"jti\":42}", "AA");
	refused(rs256, "{\"exp\":1900000000,\"iss\":\"a\\u001bb\"}", "AA");
	refused(rs256, "{\"exp\":1900000000,\"jti\":\"a\\u0000b\"}", "AA");
	refused(rs256, "{\"exp\":1900000000,\"sub\":[\"x\"]}", "AA");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepted), cmocka_unit_test(expiry),     cmocka_unit_test(header_and_payload),
		cmocka_unit_test(shape),    cmocka_unit_test(size_limit), cmocka_unit_test(claims),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
