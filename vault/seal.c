/* The vault's cryptography, all libsodium: Argon2id for the passphrase,
 * XChaCha20-Poly1305-IETF for the data key and the values, crypto_kdf for
 * subkeys (libsodium 1.0.18 has no HKDF), BLAKE2b for the header check. */
#include "internal.h"

#include <string.h>

#define KDF_OPS_CEILING 32ULL
#define KDF_MEM_CEILING (4ULL << 30)

static const char KEY_AD_LABEL[] = "latch-key-v1";
static const char VALUE_AD_LABEL[] = "latch-value-v1";
static const char NAMED_KEY_AD_LABEL[] = "latch-named-key-v1";
static const char HEADER_LABEL[] = "latch-header-v1";

static unsigned char *put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*p++ = (unsigned char)(v >> (8 * i));
	return p;
}

static unsigned char *put_bytes(unsigned char *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/* The KDF levels: their names (--kdf, vault_info) and Argon2id costs. */
static const struct {
	const char *name;
	uint64_t ops;
	size_t mem;
} kdf_levels[] = {
	[VAULT_KDF_INTERACTIVE] = {"interactive", crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
				   crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE},
	[VAULT_KDF_MODERATE] = {"moderate", crypto_pwhash_argon2id_OPSLIMIT_MODERATE,
				crypto_pwhash_argon2id_MEMLIMIT_MODERATE},
	[VAULT_KDF_SENSITIVE] = {"sensitive", crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE,
				 crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE},
};
#define N_KDF_LEVELS (sizeof kdf_levels / sizeof kdf_levels[0])

int vault_kdf_parse(const char *s, enum vault_kdf *out)
{
	for (size_t i = 0; i < N_KDF_LEVELS; i++)
		if (!strcmp(s, kdf_levels[i].name)) {
			*out = (enum vault_kdf)i;
			return 0;
		}
	return latch_error(LATCH_USAGE, "unknown KDF level '%s' (interactive, moderate, sensitive)", s);
}

const char *vault_kdf_name(enum vault_kdf kdf)
{
	return (size_t)kdf < N_KDF_LEVELS ? kdf_levels[kdf].name : "custom";
}

void kdf_params_of(enum vault_kdf kdf, uint64_t *ops, uint64_t *mem)
{
	if ((size_t)kdf >= N_KDF_LEVELS)
		kdf = VAULT_KDF_MODERATE;
	*ops = kdf_levels[kdf].ops;
	*mem = kdf_levels[kdf].mem;
}

const char *kdf_name_of(uint64_t ops, uint64_t mem)
{
	for (size_t i = 0; i < N_KDF_LEVELS; i++)
		if (kdf_levels[i].ops == ops && kdf_levels[i].mem == mem)
			return kdf_levels[i].name;
	return "custom";
}

int kdf_params_check(const struct vault_header *h)
{
	if (h->kdf_alg != crypto_pwhash_ALG_ARGON2ID13)
		return latch_error(LATCH_OPERR, "vault header names KDF algorithm %lld, not Argon2id: refusing it",
				   (long long)h->kdf_alg);
	if (h->kdf_opslimit < crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE ||
	    h->kdf_memlimit < crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE)
		return latch_error(LATCH_OPERR,
				   "vault KDF parameters are below the floor (ops %llu, mem %llu): refusing them",
				   (unsigned long long)h->kdf_opslimit, (unsigned long long)h->kdf_memlimit);
	if (h->kdf_opslimit > KDF_OPS_CEILING || h->kdf_memlimit > KDF_MEM_CEILING)
		return latch_error(LATCH_OPERR,
				   "vault KDF parameters are implausibly high (ops %llu, mem %llu): refusing them",
				   (unsigned long long)h->kdf_opslimit, (unsigned long long)h->kdf_memlimit);
	return 0;
}

/* The fields that name the key: everything but the wrapped key itself. */
static size_t key_binding(const struct vault_header *h, unsigned char *buf)
{
	unsigned char *p = buf;
	p = put_bytes(p, KEY_AD_LABEL, sizeof KEY_AD_LABEL);
	p = put_bytes(p, h->vault_id, VAULT_ID_BYTES);
	p = put_u64(p, (uint64_t)h->kdf_alg);
	p = put_u64(p, h->kdf_opslimit);
	p = put_u64(p, h->kdf_memlimit);
	p = put_bytes(p, h->kdf_salt, SALT_BYTES);
	p = put_u64(p, (uint64_t)h->key_generation);
	return (size_t)(p - buf);
}
#define KEY_BINDING_MAX (sizeof KEY_AD_LABEL + VAULT_ID_BYTES + 8 * 4 + SALT_BYTES)

void header_checksum(const struct vault_header *h, unsigned char out[HEADER_CHECK_BYTES])
{
	crypto_generichash_state st;
	unsigned char kb[KEY_BINDING_MAX], created[8];
	size_t n = key_binding(h, kb);
	put_u64(created, (uint64_t)h->created);
	crypto_generichash_init(&st, NULL, 0, HEADER_CHECK_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)HEADER_LABEL, sizeof HEADER_LABEL);
	crypto_generichash_update(&st, kb, n);
	crypto_generichash_update(&st, created, sizeof created);
	crypto_generichash_update(&st, h->key_nonce, KEY_NONCE_BYTES);
	crypto_generichash_update(&st, h->wrapped_key, WRAPPED_KEY_BYTES);
	crypto_generichash_final(&st, out, HEADER_CHECK_BYTES);
}

int derive_kek(const struct secbuf *passphrase, const struct vault_header *h, struct secbuf **kek_out)
{
	if (kdf_params_check(h) != 0)
		return -1;
	struct secbuf *kek = secbuf_new(DATA_KEY_BYTES);
	if (!kek)
		return -1;
	if (crypto_pwhash(kek->data, DATA_KEY_BYTES, (const char *)passphrase->data, passphrase->len, h->kdf_salt,
			  h->kdf_opslimit, (size_t)h->kdf_memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
		secbuf_free(kek);
		return latch_error(LATCH_OPERR, "cannot derive the key: Argon2id needs %llu MiB of memory",
				   (unsigned long long)(h->kdf_memlimit >> 20));
	}
	kek->len = DATA_KEY_BYTES;
	*kek_out = kek;
	return 0;
}

void wrap_data_key(struct vault_header *h, const struct secbuf *kek, const struct secbuf *data_key)
{
	unsigned char ad[KEY_BINDING_MAX];
	size_t adlen = key_binding(h, ad);
	randombytes_buf(h->key_nonce, KEY_NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(h->wrapped_key, NULL, data_key->data, DATA_KEY_BYTES, ad, adlen,
						   NULL, h->key_nonce, kek->data);
}

int unwrap_data_key(const struct vault_header *h, const struct secbuf *kek, struct secbuf **data_key_out)
{
	unsigned char ad[KEY_BINDING_MAX];
	size_t adlen = key_binding(h, ad);
	struct secbuf *dk = secbuf_new(DATA_KEY_BYTES);
	if (!dk)
		return -1;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(dk->data, NULL, NULL, h->wrapped_key, WRAPPED_KEY_BYTES, ad,
						       adlen, h->key_nonce, kek->data) != 0) {
		secbuf_free(dk);
		return latch_error(LATCH_DENIED, "wrong passphrase");
	}
	dk->len = DATA_KEY_BYTES;
	*data_key_out = dk;
	return 0;
}

int derive_value_key(const struct secbuf *data_key, struct secbuf **value_key_out)
{
	struct secbuf *vk = secbuf_new(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
	if (!vk)
		return -1;
	crypto_kdf_derive_from_key(vk->data, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, 1, "latchval",
				   data_key->data);
	vk->len = crypto_aead_xchacha20poly1305_ietf_KEYBYTES;
	*value_key_out = vk;
	return 0;
}

#define VALUE_BINDING_MAX (sizeof NAMED_KEY_AD_LABEL + VAULT_ID_BYTES + 8 + 8 + 4 + LATCH_NAME_MAX)

/* label || vault id || secret id || version || len(name) || name. Named
 * keys use their own label, so no blob authenticates as the other kind. */
static size_t value_ad(const struct value_binding *b, unsigned char *buf)
{
	const char *label = b->named_key ? NAMED_KEY_AD_LABEL : VALUE_AD_LABEL;
	size_t label_len = b->named_key ? sizeof NAMED_KEY_AD_LABEL : sizeof VALUE_AD_LABEL;
	size_t nlen = strlen(b->name);
	if (nlen > LATCH_NAME_MAX)
		nlen = LATCH_NAME_MAX; /* names are validated long before this */
	unsigned char *p = buf;
	p = put_bytes(p, label, label_len);
	p = put_bytes(p, b->vault_id, VAULT_ID_BYTES);
	p = put_u64(p, (uint64_t)b->secret_id);
	p = put_u64(p, (uint64_t)b->version);
	for (int i = 0; i < 4; i++)
		*p++ = (unsigned char)(nlen >> (8 * i));
	p = put_bytes(p, b->name, nlen);
	return (size_t)(p - buf);
}

void value_seal(const struct secbuf *value_key, const struct value_binding *b, const unsigned char *value, size_t len,
		unsigned char nonce[KEY_NONCE_BYTES], unsigned char *ct)
{
	unsigned char ad[VALUE_BINDING_MAX];
	size_t adlen = value_ad(b, ad);
	randombytes_buf(nonce, KEY_NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, value, len, ad, adlen, NULL, nonce, value_key->data);
}

int value_open(const struct secbuf *value_key, const struct value_binding *b,
	       const unsigned char nonce[KEY_NONCE_BYTES], const unsigned char *ct, size_t ct_len,
	       struct secbuf **value_out)
{
	if (ct_len < AEAD_TAG_BYTES)
		return -1;
	unsigned char ad[VALUE_BINDING_MAX];
	size_t adlen = value_ad(b, ad);
	struct secbuf *v = secbuf_new(ct_len - AEAD_TAG_BYTES);
	if (!v)
		return -1;
	unsigned long long n = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(v->data, &n, NULL, ct, ct_len, ad, adlen, nonce,
						       value_key->data) != 0) {
		secbuf_free(v);
		return -1;
	}
	v->len = (size_t)n;
	*value_out = v;
	return 0;
}
