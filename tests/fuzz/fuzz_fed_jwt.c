/* Fuzz target: the identity-token checks of federation/jwt.c, which read
 * whatever a platform (or the agent, through a file or a variable) hands
 * latch as an identity token, before it is sent anywhere.
 *
 * Each input is tried twice: as a whole token, and as the payload of a
 * token whose header ({"alg":"RS256"}) and signature are fixed, so that
 * the payload's JSON decoding and claim checks are reached as often as
 * the outer shape. Whenever fed_jwt_check accepts, what it accepted must
 * hold: at most FED_JWT_MAX bytes, exactly three non-empty parts of the
 * base64url alphabet, an expiry more than FED_EXP_SKEW seconds after the
 * fixed time, and iss/sub/jti plain text that fits. On refusal the claims
 * must be zeroed. Nothing may crash, read out of bounds or leak. */
#include "fuzz.h"

#include "../../federation/federation.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1796000000LL

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_fed_jwt: %s\n", what);
	abort();
}

static bool b64url_char(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
	       ch == '_';
}

static bool claim_ok(const char *s)
{
	size_t n = strnlen(s, FED_CLAIM_MAX);
	return n < FED_CLAIM_MAX && text_is_plain(s);
}

static void check(const char *t, size_t n)
{
	struct fed_claims c;
	memset(&c, 0xa5, sizeof c);
	int rc = fed_jwt_check(t, n, NOW, &c);
	if (rc != 0) {
		static const struct fed_claims zero;
		if (rc != -1 || memcmp(&c, &zero, sizeof c) != 0)
			fail("a refusal left claims behind or returned other than -1");
		return;
	}
	if (n == 0 || n > FED_JWT_MAX)
		fail("accepted a token of a length outside 1..FED_JWT_MAX");
	size_t dots = 0, part = 0;
	for (size_t i = 0; i < n; i++) {
		if (t[i] == '.') {
			if (part == 0)
				fail("accepted an empty part");
			dots++;
			part = 0;
		} else if (!b64url_char((unsigned char)t[i])) {
			fail("accepted a character outside base64url");
		} else {
			part++;
		}
	}
	if (dots != 2 || part == 0)
		fail("accepted a token that is not three non-empty parts");
	if (c.exp <= NOW + FED_EXP_SKEW)
		fail("accepted a token that expires too soon");
	if (!claim_ok(c.iss) || !claim_ok(c.sub) || !claim_ok(c.jti))
		fail("a claim is not plain text that fits");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("sodium_init");
		latch_error_quiet(true);
		ready = true;
	}
	check((const char *)data, size);

	/* The input as the payload of a fixed header and signature. */
	static const char head[] = "eyJhbGciOiJSUzI1NiJ9."; /* {"alg":"RS256"} */
	static const char sig[] = ".c2ln";
	if (size > FED_JWT_MAX)
		return 0;
	size_t cap =
		sizeof head + sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING) + sizeof sig;
	char *t = malloc(cap);
	if (!t)
		return 0;
	memcpy(t, head, sizeof head - 1);
	sodium_bin2base64(t + sizeof head - 1, cap - (sizeof head - 1), data, size,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	strcat(t, sig);
	check(t, strlen(t));
	free(t);
	return 0;
}
