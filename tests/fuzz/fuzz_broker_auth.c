/* Fuzz target: the broker's grant envelope and nonce parsing
 * (broker/auth.c), which read what a client sends before anything about it
 * is proved: the "box" of a grant request and the base64 nonces.
 *
 * The key, the broker's instance id and both nonces are fixed (FIXED_*
 * below). Each input goes in twice: as the bytes of a JSON string
 * (json_stringn_nocheck, so any bytes; the C string ends at a NUL, as
 * auth.c reads it), and, when it parses, as a JSON document
 * (json_loadb, JSON_DECODE_ANY: a string, an object, a number...).
 * Each value goes to auth_open and auth_b64_32, and their results must be
 * exactly a model's:
 *   - auth_open returns a buffer iff the value is a string of padded
 *     standard base64, at most 4 * (BROKER_MAX_MESSAGE / 3) characters,
 *     of nonce || ciphertext || tag that XChaCha20-Poly1305 opens under
 *     the fixed key with associated data "latch-grant-v1\0" || instance ||
 *     nc || nb, and the plaintext is not empty (auth.c refuses an empty
 *     one: README, Findings); the buffer then holds exactly the plaintext;
 *   - auth_b64_32 returns 0 iff the value is a string of padded standard
 *     base64 of exactly 32 bytes, and then gives those bytes.
 * Then the round trip: the input sealed with auth_seal under the fixed key
 * and nonces is padded base64 of its length plus 40 bytes, opens to
 * exactly the input (refused when the input is empty), and does not open
 * with nc, nb or the instance changed in one bit, nor under another key.
 * auth_b64_json of the input's first 32 bytes reads back with auth_b64_32.
 * Nothing may crash or read out of bounds, and nothing may leak: heap
 * (LeakSanitizer) or secure buffers (secmem.h), checked after every
 * input.
 *
 * Self-check, once per process (at the first input): the seeds below get
 * their expected results, and a genuine box whose base64 is exactly the
 * length limit opens while one a byte longer is refused (two 8 MiB
 * boxes, about 0.2 s). With LATCH_FUZZ_AUTH_SEEDS=DIR the seeds are
 * written to DIR (how the checked-in ones were made):
 *
 *   make build/fuzz-replay/fuzz_broker_auth
 *   LATCH_FUZZ_AUTH_SEEDS=tests/fuzz/corpus/fuzz_broker_auth build/fuzz-replay/fuzz_broker_auth /dev/null
 */
#include "fuzz.h"

#include "../../broker/auth.h"
#include "secmem.h"

#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Test strings, not secrets. */
#define FIXED_KEY "fuzz-broker-auth-fixed-key-32b!!"
#define OTHER_KEY "fuzz-broker-auth-other-key-32b!!"
#define FIXED_INSTANCE "fuzz-instance-16"
#define FIXED_NC "fuzz-client-nonce-32-bytes-long!"
#define FIXED_NB "fuzz-broker-nonce-32-bytes-long!"
_Static_assert(sizeof FIXED_KEY - 1 == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "one key");
_Static_assert(sizeof OTHER_KEY - 1 == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "one key");
_Static_assert(sizeof FIXED_INSTANCE - 1 == BROKER_INSTANCE_BYTES, "one instance id");
_Static_assert(sizeof FIXED_NC - 1 == AUTH_NONCE_BYTES && sizeof FIXED_NB - 1 == AUTH_NONCE_BYTES, "nonces");

/* The box's format, as broker/auth.c writes it. */
static const char GRANT_LABEL[] = "latch-grant-v1";
#define NPUB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define OVERHEAD (NPUB + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define B64_MAX (4 * (size_t)(BROKER_MAX_MESSAGE / 3))

static const unsigned char *const instance = (const unsigned char *)FIXED_INSTANCE;
static const unsigned char *const nc = (const unsigned char *)FIXED_NC;
static const unsigned char *const nb = (const unsigned char *)FIXED_NB;
static struct secbuf *key, *other_key; /* made once; outside the per-input count */

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_broker_auth: %s\n", what);
	abort();
}

/* ---- the model ---- */

/* Strict padded standard base64 of `b64` (a C string): malloc'd bytes in
 * *out, or NULL. */
static unsigned char *model_b64(const char *b64, size_t *n)
{
	size_t blen = strlen(b64);
	unsigned char *raw = malloc(blen + 1);
	if (!raw)
		fail("out of memory");
	if (sodium_base642bin(raw, blen + 1, b64, blen, NULL, n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(raw);
		return NULL;
	}
	return raw;
}

/* The plaintext (malloc'd, *len bytes) if `box` is a genuine box for the
 * fixed instance and nonces under `k`, whatever its length; else NULL. */
static unsigned char *model_open(const json_t *box, const unsigned char *k, size_t *len)
{
	const char *b64 = json_string_value(box);
	size_t n = 0;
	unsigned char *raw = b64 ? model_b64(b64, &n) : NULL;
	if (!raw || n < OVERHEAD) {
		free(raw);
		return NULL;
	}
	unsigned char ad[sizeof GRANT_LABEL + BROKER_INSTANCE_BYTES + 2 * AUTH_NONCE_BYTES];
	memcpy(ad, GRANT_LABEL, sizeof GRANT_LABEL);
	memcpy(ad + sizeof GRANT_LABEL, instance, BROKER_INSTANCE_BYTES);
	memcpy(ad + sizeof GRANT_LABEL + BROKER_INSTANCE_BYTES, nc, AUTH_NONCE_BYTES);
	memcpy(ad + sizeof GRANT_LABEL + BROKER_INSTANCE_BYTES + AUTH_NONCE_BYTES, nb, AUTH_NONCE_BYTES);
	unsigned char *plain = malloc(n - OVERHEAD + 1);
	if (!plain)
		fail("out of memory");
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, raw + NPUB, n - NPUB, ad, sizeof ad, raw,
						       k)) {
		free(plain);
		plain = NULL;
	}
	*len = n - OVERHEAD;
	free(raw);
	return plain;
}

/* auth_open of `box` against the model. 1 if it opened. */
static int check_open(const json_t *box)
{
	size_t plen = 0;
	unsigned char *plain = model_open(box, (const unsigned char *)FIXED_KEY, &plen);
	bool want = plain && plen > 0 && strlen(json_string_value(box)) <= B64_MAX;
	struct secbuf *got = auth_open(key, instance, nc, nb, box);
	if (!got != !want)
		fail(want ? "auth_open refused a genuine box" : "auth_open opened what is not a genuine box");
	if (got && (got->len != plen || memcmp(got->data, plain, plen) != 0))
		fail("auth_open gave other bytes than the box holds");
	secbuf_free(got);
	free(plain);
	return want;
}

/* auth_b64_32 of `s` against the model. 1 if it read 32 bytes. */
static int check_b64_32(const json_t *s)
{
	const char *b64 = json_string_value(s);
	size_t n = 0;
	unsigned char *want = b64 ? model_b64(b64, &n) : NULL;
	bool ok = want && n == 32;
	unsigned char got[32];
	int rc = auth_b64_32(s, got);
	if (rc != (ok ? 0 : -1))
		fail(ok ? "auth_b64_32 refused 32 bytes of base64"
			: "auth_b64_32 accepted what is not 32 bytes of base64");
	if (ok && memcmp(got, want, 32) != 0)
		fail("auth_b64_32 gave other bytes");
	free(want);
	return ok;
}

/* ---- the round trip ---- */

static void round_trip(const uint8_t *data, size_t size)
{
	json_t *box = auth_seal(key, instance, nc, nb, (const char *)data, size);
	if (!json_is_string(box) || json_string_length(box) != 4 * ((size + OVERHEAD + 2) / 3))
		fail("auth_seal did not give padded base64 of nonce, ciphertext and tag");
	struct secbuf *p = auth_open(key, instance, nc, nb, box);
	if (size == 0 ? p != NULL : !p || p->len != size || memcmp(p->data, data, size) != 0)
		fail("a sealed input did not open to exactly itself");
	secbuf_free(p);
	unsigned char c2[AUTH_NONCE_BYTES], b2[AUTH_NONCE_BYTES], i2[BROKER_INSTANCE_BYTES];
	memcpy(c2, nc, sizeof c2);
	memcpy(b2, nb, sizeof b2);
	memcpy(i2, instance, sizeof i2);
	c2[size % sizeof c2] ^= (unsigned char)(1u << (size % 8));
	b2[(size + 7) % sizeof b2] ^= 0x80;
	i2[size % sizeof i2] ^= 1;
	struct secbuf *q[4] = {auth_open(key, instance, c2, nb, box), auth_open(key, instance, nc, b2, box),
			       auth_open(key, i2, nc, nb, box), auth_open(other_key, instance, nc, nb, box)};
	for (size_t i = 0; i < 4; i++)
		if (q[i])
			fail("a box opened with a nonce, the instance or the key changed");
	json_decref(box);
}

/* ---- the seeds and the self-check ---- */

#include "text.h"

/* The base64 of a box of `plain` under `k`, for `inst`, nc and `b`. */
static char *box_b64(const char *plain, size_t len, const struct secbuf *k, const unsigned char *inst,
		     const unsigned char *b)
{
	json_t *box = auth_seal(k, inst, nc, b, plain, len);
	char *s = box ? strdup(json_string_value(box)) : NULL;
	if (!s)
		fail("auth_seal failed");
	json_decref(box);
	return s;
}

static char *b64_of(const void *p, size_t n)
{
	json_t *j = auth_b64_json(p, n);
	char *s = j ? strdup(json_string_value(j)) : NULL;
	if (!s)
		fail("auth_b64_json failed");
	json_decref(j);
	return s;
}

struct seed {
	const char *name;
	struct text t;
	/* Expected: the input as a string, then as a JSON document (-1: it
	 * does not parse): auth_open opens it, auth_b64_32 reads it. */
	int open, b64, doc_open, doc_b64;
};

static struct seed seeds[32];
static size_t n_seeds;

static struct text *seed(const char *name, int open, int b64, int doc_open, int doc_b64)
{
	if (n_seeds == sizeof seeds / sizeof seeds[0])
		fail("too many seeds");
	struct seed *s = &seeds[n_seeds++];
	*s = (struct seed){name, {NULL, 0}, open, b64, doc_open, doc_b64};
	add(&s->t, "");
	return &s->t;
}

/* What `latch grant` seals in a grant request's box (cli/cmd_grant.c);
 * the value is a test string. */
static const char GRANT[] =
	"{\"grant\":\"g-0000000000000001\",\"names\":[\"api-key\"],\"values\":[\"dGVzdC12YWx1ZQ==\"],"
	"\"cmds\":[\"psql\"],\"ttl\":600,\"uses\":3}";

static void build_seeds(void)
{
	struct text *t;
	char *s;
	t = seed("box-grant", 1, 0, -1, -1);
	s = box_b64(GRANT, sizeof GRANT - 1, key, instance, nb);
	add(t, s);
	free(s);
	t = seed("box-grant-json-string", 0, 0, 1, 0); /* "..." as a document is the box */
	s = box_b64(GRANT, sizeof GRANT - 1, key, instance, nb);
	add(t, "\"");
	add(t, s);
	add(t, "\"");
	free(s);
	t = seed("box-grant-in-object", 0, 0, 0, 0);
	s = box_b64(GRANT, sizeof GRANT - 1, key, instance, nb);
	add(t, "{\"op\":\"grant\",\"box\":\"");
	add(t, s);
	add(t, "\"}");
	free(s);
	t = seed("box-1-byte", 1, 0, -1, -1);
	s = box_b64("{", 1, key, instance, nb);
	add(t, s);
	free(s);
	t = seed("box-empty-plaintext", 0, 0, -1, -1); /* genuine, but refused: see the README */
	s = box_b64("", 0, key, instance, nb);
	add(t, s);
	free(s);
	t = seed("box-8k", 1, 0, -1, -1);
	char *big = malloc(8192);
	if (!big)
		fail("out of memory");
	for (size_t i = 0; i < 8192; i++)
		big[i] = GRANT[i % (sizeof GRANT - 1)];
	s = box_b64(big, 8192, key, instance, nb);
	add(t, s);
	free(s);
	free(big);
	unsigned char other[AUTH_NONCE_BYTES];
	memcpy(other, nb, sizeof other);
	other[0] ^= 1;
	t = seed("box-other-nonce", 0, 0, -1, -1);
	s = box_b64(GRANT, sizeof GRANT - 1, key, instance, other);
	add(t, s);
	free(s);
	t = seed("box-other-key", 0, 0, -1, -1);
	s = box_b64(GRANT, sizeof GRANT - 1, other_key, instance, nb);
	add(t, s);
	free(s);
	t = seed("box-truncated", 0, 0, -1, -1);
	s = box_b64(GRANT, sizeof GRANT - 1, key, instance, nb);
	add_bytes(t, s, strlen(s) - 4);
	free(s);
	/* 40 + 4 bytes: base64 ending in one "=". */
	t = seed("box-unpadded", 0, 0, -1, -1);
	s = box_b64("true", 4, key, instance, nb);
	if (s[strlen(s) - 1] != '=')
		fail("the box is not padded");
	add_bytes(t, s, strlen(s) - 1);
	free(s);
	t = seed("box-url-safe", 0, 0, -1, -1);
	for (s = NULL; !s || !strpbrk(s, "+/");) {
		free(s);
		s = box_b64(GRANT, sizeof GRANT - 1, key, instance, nb);
	}
	for (char *c = s; *c; c++)
		*c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
	add(t, s);
	free(s);
	t = seed("box-line-break", 0, 0, -1, -1);
	s = box_b64(GRANT, sizeof GRANT - 1, key, instance, nb);
	add_bytes(t, s, 76);
	add(t, "\n");
	add(t, s + 76);
	free(s);
	t = seed("box-nul-inside", 0, 0, -1, -1); /* the C string is its first 64 characters */
	s = box_b64(GRANT, sizeof GRANT - 1, key, instance, nb);
	add_bytes(t, s, 64);
	add_bytes(t, "", 1);
	add(t, s + 64);
	free(s);
	unsigned char n32[33];
	for (size_t i = 0; i < sizeof n32; i++)
		n32[i] = (unsigned char)(0xf7 * i + 3);
	t = seed("nonce-32", 0, 1, -1, -1);
	s = b64_of(n32, 32);
	add(t, s);
	free(s);
	t = seed("nonce-32-json-string", 0, 0, 0, 1);
	s = b64_of(n32, 32);
	add(t, "\"");
	add(t, s);
	add(t, "\"");
	free(s);
	t = seed("nonce-31", 0, 0, -1, -1);
	s = b64_of(n32, 31);
	add(t, s);
	free(s);
	t = seed("nonce-33", 0, 0, -1, -1);
	s = b64_of(n32, 33);
	add(t, s);
	free(s);
	t = seed("nonce-32-unpadded", 0, 0, -1, -1);
	s = b64_of(n32, 32);
	add_bytes(t, s, strlen(s) - 1);
	free(s);
	t = seed("empty", 0, 0, -1, -1);
	t = seed("garbage", 0, 0, -1, -1);
	add(t, "not base64, not a box: }{][\"\\");
	t = seed("binary", 0, 0, -1, -1);
	add_bytes(t, "\xff\xfe\x00\x01\x80\xc0\xaf=\n\r\t", 11);
	t = seed("json-number", 0, 0, 0, 0);
	add(t, "1234");
	t = seed("json-null", 0, 0, 0, 0);
	add(t, "null");
}

/* A genuine box whose base64 is `extra` characters past the limit (0:
 * exactly at it): opens iff extra == 0. */
static void check_limit(size_t extra)
{
	size_t len = 3 * ((B64_MAX + extra) / 4) - OVERHEAD;
	char *plain = malloc(len);
	if (!plain)
		fail("out of memory");
	memset(plain, 'x', len);
	json_t *box = auth_seal(key, instance, nc, nb, plain, len);
	if (!box || json_string_length(box) != B64_MAX + extra)
		fail("self-check: a box of the wrong length");
	struct secbuf *p = auth_open(key, instance, nc, nb, box);
	if (extra ? p != NULL : !p || p->len != len || memcmp(p->data, plain, len) != 0)
		fail(extra ? "self-check: a box past the length limit opened"
			   : "self-check: a box at the length limit was refused");
	secbuf_free(p);
	json_decref(box);
	free(plain);
}

static void self_check(void)
{
	long before = secmem_in_use();
	check_limit(0);
	check_limit(4);
	build_seeds();
	const char *dir = getenv("LATCH_FUZZ_AUTH_SEEDS");
	for (size_t i = 0; i < n_seeds; i++) {
		struct seed *sd = &seeds[i];
		json_t *s = json_stringn_nocheck(sd->t.p, sd->t.len);
		json_error_t err;
		json_t *doc = json_loadb(sd->t.p, sd->t.len, JSON_DECODE_ANY, &err);
		int doc_open = doc ? check_open(doc) : -1, doc_b64 = doc ? check_b64_32(doc) : -1;
		if (!s || check_open(s) != sd->open || check_b64_32(s) != sd->b64 || doc_open != sd->doc_open ||
		    doc_b64 != sd->doc_b64) {
			fprintf(stderr, "fuzz_broker_auth: self-check: seed %s\n", sd->name);
			fail("self-check: a seed did not get its expected result");
		}
		json_decref(s);
		json_decref(doc);
		if (dir) {
			char path[PATH_MAX];
			snprintf(path, sizeof path, "%s/%s", dir, sd->name);
			FILE *out = fopen(path, "we");
			if (!out || fwrite(sd->t.p, 1, sd->t.len, out) != sd->t.len || fclose(out) != 0)
				fail("cannot write a seed");
		}
		free(sd->t.p);
	}
	secmem_check(before, "the self-check");
}

static struct secbuf *key_of(const char *s)
{
	struct secbuf *k = secbuf_new(32);
	if (!k)
		fail("cannot allocate a key");
	memcpy(k->data, s, 32);
	k->len = 32;
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("cannot initialise libsodium");
		latch_error_quiet(true);
		key = key_of(FIXED_KEY);
		other_key = key_of(OTHER_KEY);
		self_check();
		ready = true;
	}
	long before = secmem_in_use();
	json_t *s = json_stringn_nocheck((const char *)data, size);
	if (!s)
		fail("out of memory");
	check_open(s);
	check_b64_32(s);
	json_decref(s);
	json_error_t err;
	json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &err);
	if (doc) {
		check_open(doc);
		check_b64_32(doc);
		json_decref(doc);
	}
	round_trip(data, size);
	unsigned char n32[32] = {0}, back[32];
	memcpy(n32, data, size < 32 ? size : 32);
	json_t *j = auth_b64_json(n32, 32);
	if (!j || auth_b64_32(j, back) != 0 || memcmp(back, n32, 32) != 0)
		fail("auth_b64_json did not read back with auth_b64_32");
	json_decref(j);
	secmem_check(before, "an input");
	return 0;
}
