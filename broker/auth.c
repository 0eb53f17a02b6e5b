/* The broker's proof and the grant's envelope. BLAKE2b keyed MACs and
 * XChaCha20-Poly1305 from libsodium; the labels keep each use apart. */
#include "auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char PROOF_LABEL[] = "latch-broker-proof-v1";
static const char ACK_LABEL[] = "latch-grant-ack-v1";
static const char GRANT_LABEL[] = "latch-grant-v1";

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

void auth_proof(const struct secbuf *key, const unsigned char instance[BROKER_INSTANCE_BYTES], pid_t pid,
		const unsigned char nc[AUTH_NONCE_BYTES], const unsigned char nb[AUTH_NONCE_BYTES],
		unsigned char out[AUTH_MAC_BYTES])
{
	unsigned char p[8];
	put_u64(p, (uint64_t)pid);
	crypto_generichash_state st;
	crypto_generichash_init(&st, key->data, key->len, AUTH_MAC_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)PROOF_LABEL, sizeof PROOF_LABEL);
	crypto_generichash_update(&st, instance, BROKER_INSTANCE_BYTES);
	crypto_generichash_update(&st, p, sizeof p);
	crypto_generichash_update(&st, nc, AUTH_NONCE_BYTES);
	crypto_generichash_update(&st, nb, AUTH_NONCE_BYTES);
	crypto_generichash_final(&st, out, AUTH_MAC_BYTES);
}

void auth_ack(const struct secbuf *key, const unsigned char nc[AUTH_NONCE_BYTES],
	      const unsigned char nb[AUTH_NONCE_BYTES], const char *grant_id, int64_t deadline,
	      unsigned char out[AUTH_MAC_BYTES])
{
	unsigned char d[8];
	put_u64(d, (uint64_t)deadline);
	crypto_generichash_state st;
	crypto_generichash_init(&st, key->data, key->len, AUTH_MAC_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)ACK_LABEL, sizeof ACK_LABEL);
	crypto_generichash_update(&st, nc, AUTH_NONCE_BYTES);
	crypto_generichash_update(&st, nb, AUTH_NONCE_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)grant_id, strlen(grant_id) + 1);
	crypto_generichash_update(&st, d, sizeof d);
	crypto_generichash_final(&st, out, AUTH_MAC_BYTES);
}

#define AD_BYTES (sizeof GRANT_LABEL + BROKER_INSTANCE_BYTES + 2 * AUTH_NONCE_BYTES)

static void grant_ad(const unsigned char instance[BROKER_INSTANCE_BYTES], const unsigned char nc[AUTH_NONCE_BYTES],
		     const unsigned char nb[AUTH_NONCE_BYTES], unsigned char ad[AD_BYTES])
{
	memcpy(ad, GRANT_LABEL, sizeof GRANT_LABEL);
	memcpy(ad + sizeof GRANT_LABEL, instance, BROKER_INSTANCE_BYTES);
	memcpy(ad + sizeof GRANT_LABEL + BROKER_INSTANCE_BYTES, nc, AUTH_NONCE_BYTES);
	memcpy(ad + sizeof GRANT_LABEL + BROKER_INSTANCE_BYTES + AUTH_NONCE_BYTES, nb, AUTH_NONCE_BYTES);
}

json_t *auth_b64_json(const unsigned char *p, size_t n)
{
	size_t len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *b = malloc(len);
	if (!b)
		return NULL;
	sodium_bin2base64(b, len, p, n, sodium_base64_VARIANT_ORIGINAL);
	json_t *s = json_string(b);
	sodium_memzero(b, len);
	free(b);
	return s;
}

json_t *auth_seal(const struct secbuf *key, const unsigned char instance[BROKER_INSTANCE_BYTES],
		  const unsigned char nc[AUTH_NONCE_BYTES], const unsigned char nb[AUTH_NONCE_BYTES], const char *plain,
		  size_t len)
{
	unsigned char ad[AD_BYTES];
	grant_ad(instance, nc, nb, ad);
	size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + len + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	unsigned char *box = malloc(n);
	if (!box)
		return NULL;
	randombytes_buf(box, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(box + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, NULL,
						   (const unsigned char *)plain, len, ad, sizeof ad, NULL, box,
						   key->data);
	json_t *s = auth_b64_json(box, n);
	free(box);
	return s;
}

struct secbuf *auth_open(const struct secbuf *key, const unsigned char instance[BROKER_INSTANCE_BYTES],
			 const unsigned char nc[AUTH_NONCE_BYTES], const unsigned char nb[AUTH_NONCE_BYTES],
			 const json_t *box)
{
	const char *b64 = json_string_value(box);
	size_t blen = b64 ? strlen(b64) : 0, n = 0;
	if (!b64 || blen > 4 * (size_t)(BROKER_MAX_MESSAGE / 3))
		return NULL;
	unsigned char *raw = malloc(blen / 4 * 3 + 3);
	if (!raw)
		return NULL;
	struct secbuf *out = NULL;
	unsigned char ad[AD_BYTES];
	grant_ad(instance, nc, nb, ad);
	if (sodium_base642bin(raw, blen / 4 * 3 + 3, b64, blen, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    n > crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES &&
	    (out = secbuf_new(n))) {
		unsigned long long len = 0;
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(out->data, &len, NULL,
							       raw + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
							       n - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, ad,
							       sizeof ad, raw, key->data) != 0) {
			secbuf_free(out);
			out = NULL;
		} else {
			out->len = (size_t)len;
		}
	}
	free(raw); /* ciphertext only */
	return out;
}

int auth_b64_32(const json_t *s, unsigned char out[32])
{
	const char *b64 = json_string_value(s);
	size_t n = 0;
	if (!b64 || sodium_base642bin(out, 32, b64, strlen(b64), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n != 32)
		return -1;
	return 0;
}
