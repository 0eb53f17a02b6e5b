/* The audit log's cryptography: the one-way key evolution, the record
 * MAC and the sealing of keys and state. */
#include "internal.h"

#include <dlfcn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <string.h>

const char ORIGIN_LABEL[22] = "latch-audit-origin-v1";
const char STREAM_ORIGIN_LABEL[29] = "latch-audit-stream-origin-v1";

int audit_db_fail(sqlite3 *db, const char *what)
{
	int code = sqlite3_errcode(db);
	if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
		return latch_error(LATCH_OPERR, "cannot %s: the vault is locked by another process", what);
	return latch_error(LATCH_OPERR, "cannot %s: %s", what, sqlite3_errmsg(db));
}

/* k_{i+1} = BLAKE2b keyed with k_i (crypto_kdf): one way. */
void audit_evolve(unsigned char k[AUDIT_KEY_BYTES])
{
	unsigned char next[AUDIT_KEY_BYTES];
	crypto_kdf_derive_from_key(next, sizeof next, 1, "latchevo", k);
	memcpy(k, next, sizeof next);
	sodium_memzero(next, sizeof next);
}

/* HMAC-SHA-256 through OpenSSL's libcrypto, loaded only to verify: it
 * uses the CPU's SHA instructions and is about 3x faster than libsodium
 * 1.0.18's portable SHA-256, which is what brings verifying a million
 * records under 4 s. It is opened with dlopen rather than linked because
 * loading it costs every latch command about a millisecond at start-up,
 * and appends (one MAC each) gain nothing from it. Same algorithm, same
 * bytes: libsodium computes it otherwise (tests/unit checks both agree). */
static struct {
	bool tried;
	EVP_MAC_CTX *ctx;
	__typeof__(EVP_MAC_init) *init;
	__typeof__(EVP_MAC_update) *update;
	__typeof__(EVP_MAC_final) *final;
} fast;
static bool use_openssl = true;

void audit_mac_use_openssl(bool use)
{
	use_openssl = use;
}

void audit_fast_hmac_load(void)
{
	if (fast.tried || !use_openssl)
		return;
	fast.tried = true;
	void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return;
	__typeof__(EVP_MAC_fetch) *fetch = (__typeof__(EVP_MAC_fetch) *)dlsym(h, "EVP_MAC_fetch");
	__typeof__(EVP_MAC_CTX_new) *ctx_new = (__typeof__(EVP_MAC_CTX_new) *)dlsym(h, "EVP_MAC_CTX_new");
	__typeof__(EVP_MAC_free) *mac_free = (__typeof__(EVP_MAC_free) *)dlsym(h, "EVP_MAC_free");
	__typeof__(EVP_MAC_CTX_set_params) *set_params =
		(__typeof__(EVP_MAC_CTX_set_params) *)dlsym(h, "EVP_MAC_CTX_set_params");
	fast.init = (__typeof__(EVP_MAC_init) *)dlsym(h, "EVP_MAC_init");
	fast.update = (__typeof__(EVP_MAC_update) *)dlsym(h, "EVP_MAC_update");
	fast.final = (__typeof__(EVP_MAC_final) *)dlsym(h, "EVP_MAC_final");
	if (!fetch || !ctx_new || !mac_free || !set_params || !fast.init || !fast.update || !fast.final)
		return;
	EVP_MAC *mac = fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? ctx_new(mac) : NULL;
	if (mac)
		mac_free(mac); /* the context keeps its own reference */
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {{OSSL_MAC_PARAM_DIGEST, OSSL_PARAM_UTF8_STRING, digest, sizeof digest - 1,
				OSSL_PARAM_UNMODIFIED},
			       {NULL, 0, NULL, 0, 0}};
	if (ctx && set_params(ctx, params))
		fast.ctx = ctx;
}

void audit_record_mac(const unsigned char k[AUDIT_KEY_BYTES], const unsigned char chain_id[16], int64_t cseq,
		      const unsigned char prev[AUDIT_MAC_BYTES], const void *record, size_t len,
		      unsigned char out[AUDIT_MAC_BYTES])
{
	unsigned char head[16 + 8 + AUDIT_MAC_BYTES + 8];
	memcpy(head, chain_id, 16);
	put_u64(head + 16, (uint64_t)cseq);
	memcpy(head + 16 + 8, prev, AUDIT_MAC_BYTES);
	put_u64(head + 16 + 8 + AUDIT_MAC_BYTES, (uint64_t)len);
	EVP_MAC_CTX *ctx = use_openssl ? fast.ctx : NULL;
	size_t outlen = 0;
	if (ctx && fast.init(ctx, k, AUDIT_KEY_BYTES, NULL) && fast.update(ctx, head, sizeof head) &&
	    fast.update(ctx, record, len) && fast.final(ctx, out, &outlen, AUDIT_MAC_BYTES) &&
	    outlen == AUDIT_MAC_BYTES)
		return;
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, k, AUDIT_KEY_BYTES);
	crypto_auth_hmacsha256_update(&st, head, sizeof head);
	crypto_auth_hmacsha256_update(&st, record, len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

static size_t label_ad(const char *label, size_t label_len, const unsigned char id[16], unsigned char *ad)
{
	memcpy(ad, label, label_len);
	memcpy(ad + label_len, id, 16);
	return label_len + 16;
}

void audit_seal(const char *label, size_t label_len, const unsigned char id[16], const unsigned char *key,
		const unsigned char *plain, size_t n, unsigned char *blob)
{
	unsigned char ad[64];
	size_t adlen = label_ad(label, label_len, id, ad);
	randombytes_buf(blob, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(blob + NONCE_BYTES, NULL, plain, n, ad, adlen, NULL, blob, key);
}

int audit_unseal(const char *label, size_t label_len, const unsigned char id[16], const unsigned char *key,
		 const unsigned char *blob, size_t blob_len, unsigned char *plain, size_t n)
{
	unsigned char ad[64];
	size_t adlen = label_ad(label, label_len, id, ad);
	if (blob_len != NONCE_BYTES + n + TAG_BYTES)
		return -1;
	return crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, blob + NONCE_BYTES, blob_len - NONCE_BYTES,
							  ad, adlen, blob, key);
}
