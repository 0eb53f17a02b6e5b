/* The checks an identity token passes before it is sent (federation.h).
 * Decoding is libsodium's base64 (URL-safe, no padding) and jansson's
 * parser; nothing here prints a part of the token. */
#include "federation.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int bad(const char *why)
{
	return latch_error(LATCH_OPERR, "the identity token %s", why);
}

/* One part of a compact JWS: base64url without padding, decoded and
 * parsed as a JSON object. NULL if it is not one. */
static json_t *json_part(const char *p, size_t n)
{
	size_t room = n / 4 * 3 + 3, got = 0;
	unsigned char *raw = malloc(room);
	json_t *o = NULL;
	if (!raw)
		return NULL;
	if (sodium_base642bin(raw, room, p, n, NULL, &got, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0) {
		json_error_t err;
		o = json_loadb((const char *)raw, got, JSON_REJECT_DUPLICATES, &err);
		if (!json_is_object(o)) {
			json_decref(o);
			o = NULL;
		}
	}
	sodium_memzero(raw, room); /* a claim may be personal data */
	free(raw);
	return o;
}

/* Copy string claim `name` of `payload` into out (FED_CLAIM_MAX bytes):
 * absent is "", anything but plain text that fits is refused. */
static int claim(json_t *payload, const char *name, char out[FED_CLAIM_MAX])
{
	json_t *v = json_object_get(payload, name);
	out[0] = '\0';
	if (!v)
		return 0;
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0;
	if (!s || n >= FED_CLAIM_MAX || strlen(s) != n || !text_is_plain(s)) {
		latch_error(LATCH_OPERR, "the identity token's '%s' claim is not plain text of at most %d bytes", name,
			    FED_CLAIM_MAX - 1);
		return -1;
	}
	memcpy(out, s, n + 1);
	return 0;
}

int fed_jwt_check(const char *jwt, size_t len, int64_t now, struct fed_claims *c)
{
	memset(c, 0, sizeof *c);
	if (len == 0)
		return bad("is empty");
	if (len > FED_JWT_MAX)
		return bad("is larger than 16 KiB");
	/* Three parts, each non-empty and of the base64url alphabet only (no
	 * padding, no white space): a compact JWS. */
	size_t dot[2], n_dots = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)jwt[i];
		if (ch == '.') {
			if (n_dots == 2)
				return bad("is not a JWT (more than three parts)");
			dot[n_dots++] = i;
		} else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			     ch == '-' || ch == '_')) {
			return bad("is not a JWT (a character outside base64url)");
		}
	}
	if (n_dots != 2 || dot[0] == 0 || dot[1] == dot[0] + 1 || dot[1] == len - 1)
		return bad("is not a signed JWT (expected three non-empty base64url parts)");

	json_t *head = json_part(jwt, dot[0]);
	if (!head)
		return bad("is not a JWT (its header is not a JSON object)");
	const char *alg = json_string_value(json_object_get(head, "alg"));
	bool unsigned_alg = !alg || !strcasecmp(alg, "none");
	json_decref(head);
	if (unsigned_alg)
		return bad("names no signing algorithm");

	json_t *payload = json_part(jwt + dot[0] + 1, dot[1] - dot[0] - 1);
	if (!payload)
		return bad("is not a JWT (its payload is not a JSON object)");
	int rc = 0;
	json_t *exp = json_object_get(payload, "exp");
	double e = json_is_number(exp) ? json_number_value(exp) : NAN;
	/* Whole seconds, as recorded and compared later: 30.5 s is 30 s. */
	int64_t whole = isfinite(e) && e >= 0 && e <= 1e15 ? (int64_t)e : -1;
	if (whole < 0)
		rc = bad("has no expiry ('exp')");
	else if (whole <= now + FED_EXP_SKEW)
		rc = bad(whole <= now ? "has expired" : "expires within 30 s");
	else
		c->exp = whole;
	if (rc == 0 && (claim(payload, "iss", c->iss) != 0 || claim(payload, "sub", c->sub) != 0 ||
			claim(payload, "jti", c->jti) != 0))
		rc = -1;
	json_decref(payload);
	if (rc != 0)
		memset(c, 0, sizeof *c);
	return rc;
}
