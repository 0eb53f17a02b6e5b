/* Unit test: the broker's proof and the grant's envelope (broker/auth.c).
 * A grant box opens only with the broker's key, for the instance and the
 * two nonces of the conversation it was sealed in: replayed in another
 * conversation, sealed for another broker, or with one byte changed, it
 * does not open. A proof binds the key, the instance, the pid and both
 * nonces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../broker/auth.h"

#include <sodium.h>
#include <string.h>

static struct secbuf *key_of(unsigned char fill)
{
	struct secbuf *k = secbuf_new(BROKER_KEY_BYTES);
	memset(k->data, fill, BROKER_KEY_BYTES);
	k->len = BROKER_KEY_BYTES;
	return k;
}

static const char PLAIN[] = "{\"grant\":\"g-0123456789ab\",\"names\":[\"db\"],\"values\":[\"c2VjcmV0\"]}";

static void box_opens_only_in_its_conversation(void **state)
{
	(void)state;
	struct secbuf *k = key_of(7), *other = key_of(8);
	unsigned char inst[BROKER_INSTANCE_BYTES], inst2[BROKER_INSTANCE_BYTES], nc[32], nb[32], nb2[32], nc2[32];
	randombytes_buf(inst, sizeof inst);
	randombytes_buf(inst2, sizeof inst2);
	randombytes_buf(nc, sizeof nc);
	randombytes_buf(nb, sizeof nb);
	randombytes_buf(nc2, sizeof nc2);
	randombytes_buf(nb2, sizeof nb2);
	json_t *box = auth_seal(k, inst, nc, nb, PLAIN, strlen(PLAIN));
	assert_non_null(box);
	struct secbuf *p = auth_open(k, inst, nc, nb, box);
	assert_non_null(p); /* control */
	assert_int_equal(p->len, strlen(PLAIN));
	assert_memory_equal(p->data, PLAIN, p->len);
	secbuf_free(p);
	assert_null(auth_open(other, inst, nc, nb, box)); /* another broker's key */
	assert_null(auth_open(k, inst2, nc, nb, box));    /* another instance */
	assert_null(auth_open(k, inst, nc, nb2, box));    /* replayed: the broker's nonce is new */
	assert_null(auth_open(k, inst, nc2, nb, box));    /* another client's nonce */
	/* A byte changed anywhere in the box. */
	const char *b64 = json_string_value(box);
	size_t n = strlen(b64), raw_len = 0;
	unsigned char *raw = malloc(n);
	assert_int_equal(sodium_base642bin(raw, n, b64, n, NULL, &raw_len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
	for (size_t i = 0; i < raw_len; i += 7) {
		raw[i] ^= 0x01;
		json_t *flipped = auth_b64_json(raw, raw_len);
		assert_null(auth_open(k, inst, nc, nb, flipped));
		json_decref(flipped);
		raw[i] ^= 0x01;
	}
	/* Not base64, empty, absent. */
	json_t *junk = json_string("not base64 !");
	assert_null(auth_open(k, inst, nc, nb, junk));
	json_decref(junk);
	junk = json_string("");
	assert_null(auth_open(k, inst, nc, nb, junk));
	json_decref(junk);
	assert_null(auth_open(k, inst, nc, nb, NULL));
	free(raw);
	json_decref(box);
	secbuf_free(k);
	secbuf_free(other);
}

static void proof_binds_everything(void **state)
{
	(void)state;
	struct secbuf *k = key_of(1), *other = key_of(2);
	unsigned char inst[BROKER_INSTANCE_BYTES] = {1}, nc[32] = {2}, nb[32] = {3};
	unsigned char base[AUTH_MAC_BYTES], v[AUTH_MAC_BYTES];
	auth_proof(k, inst, 1234, nc, nb, base);
	auth_proof(k, inst, 1234, nc, nb, v);
	assert_memory_equal(base, v, sizeof v); /* control: deterministic */
	auth_proof(other, inst, 1234, nc, nb, v);
	assert_memory_not_equal(base, v, sizeof v);
	auth_proof(k, inst, 1235, nc, nb, v); /* a relay's pid */
	assert_memory_not_equal(base, v, sizeof v);
	inst[0] ^= 1;
	auth_proof(k, inst, 1234, nc, nb, v);
	assert_memory_not_equal(base, v, sizeof v);
	inst[0] ^= 1;
	nc[5] ^= 1;
	auth_proof(k, inst, 1234, nc, nb, v);
	assert_memory_not_equal(base, v, sizeof v);
	nc[5] ^= 1;
	nb[31] ^= 1;
	auth_proof(k, inst, 1234, nc, nb, v);
	assert_memory_not_equal(base, v, sizeof v);
	/* The receipt binds the grant and its deadline. */
	unsigned char a1[AUTH_MAC_BYTES], a2[AUTH_MAC_BYTES];
	auth_ack(k, nc, nb, "g-000000000001", 100, a1);
	auth_ack(k, nc, nb, "g-000000000002", 100, a2);
	assert_memory_not_equal(a1, a2, sizeof a1);
	auth_ack(k, nc, nb, "g-000000000001", 101, a2);
	assert_memory_not_equal(a1, a2, sizeof a1);
	secbuf_free(k);
	secbuf_free(other);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(box_opens_only_in_its_conversation),
		cmocka_unit_test(proof_binds_everything),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
