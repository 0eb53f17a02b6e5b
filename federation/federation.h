/* federation: the model-API token from workload identity, never from a
 * stored key (docs/design.md section 6): an identity token the platform
 * gives the workload, exchanged with OAuth 2.0 jwt-bearer (RFC 7523).
 *
 * Built so far: the checks an identity token must pass before anything is
 * sent. Not built yet (issue 10): profiles, identity-token sources, the
 * exchange (libcurl; this will be the only module that links it), the
 * cache and its single flight, `latch fed` and `latch run --fed`. */
#ifndef LATCH_FEDERATION_H
#define LATCH_FEDERATION_H

#include "../common/common.h"

/* An identity token is at most this long (platforms issue 1-2 KiB). */
#define FED_JWT_MAX (16 * 1024)
/* It must still be valid this many seconds from now: clocks differ, and
 * the exchange takes time. */
#define FED_EXP_SKEW 30
/* iss, sub and jti are recorded (never the token): each at most this
 * many bytes, with the terminating NUL. */
#define FED_CLAIM_MAX 256

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

#endif
