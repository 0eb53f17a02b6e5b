/* Opening one named key from its exported form (vault_export_key), with
 * the passphrase and without the vault file. The same checks apply as to
 * the vault itself: header checksum, KDF floor and ceiling, authenticated
 * unwrapping bound to the vault id and the key's purpose. */
#include "internal.h"

#include <jansson.h>
#include <string.h>

static int hex_into(json_t *o, const char *key, unsigned char *dst, size_t n)
{
	const char *hex = json_string_value(json_object_get(o, key));
	size_t got = 0;
	if (!hex || strlen(hex) != 2 * n || sodium_hex2bin(dst, n, hex, 2 * n, NULL, &got, NULL) != 0 ||
	    got != n)
		return -1;
	return 0;
}

static int int_into(json_t *o, const char *key, int64_t *dst)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		return -1;
	*dst = (int64_t)json_integer_value(v);
	return 0;
}

int vault_import_key(const char *json, size_t len, const struct secbuf *passphrase, const char *purpose,
		     struct secbuf **key_out)
{
	json_error_t err;
	json_t *o = json_loadb(json, len, 0, &err);
	struct vault_header h;
	unsigned char nonce[KEY_NONCE_BYTES], wrapped[WRAPPED_KEY_BYTES], check[HEADER_CHECK_BYTES];
	int64_t ops = 0, mem = 0;
	memset(&h, 0, sizeof h);
	const char *p = json_string_value(json_object_get(o, "purpose"));
	if (!o || !p || strcmp(p, purpose) != 0 || hex_into(o, "vault_id", h.vault_id, VAULT_ID_BYTES) ||
	    int_into(o, "created", &h.created) || int_into(o, "kdf_alg", &h.kdf_alg) ||
	    int_into(o, "kdf_opslimit", &ops) || int_into(o, "kdf_memlimit", &mem) || ops < 0 || mem < 0 ||
	    hex_into(o, "kdf_salt", h.kdf_salt, SALT_BYTES) || int_into(o, "key_generation", &h.key_generation) ||
	    hex_into(o, "key_nonce", h.key_nonce, KEY_NONCE_BYTES) ||
	    hex_into(o, "wrapped_key", h.wrapped_key, WRAPPED_KEY_BYTES) ||
	    hex_into(o, "header_check", h.check, HEADER_CHECK_BYTES) || hex_into(o, "nonce", nonce, KEY_NONCE_BYTES) ||
	    hex_into(o, "wrapped", wrapped, WRAPPED_KEY_BYTES)) {
		json_decref(o);
		return latch_error(LATCH_USAGE, "the exported '%s' key is damaged or missing", purpose);
	}
	json_decref(o);
	h.kdf_opslimit = (uint64_t)ops;
	h.kdf_memlimit = (uint64_t)mem;
	header_checksum(&h, check);
	if (sodium_memcmp(check, h.check, HEADER_CHECK_BYTES) != 0)
		return latch_error(LATCH_OPERR, "the exported vault header is corrupt (checksum mismatch)");
	struct secbuf *kek = NULL, *dk = NULL, *vk = NULL;
	int rc = -1;
	if (derive_kek(passphrase, &h, &kek) == 0 && unwrap_data_key(&h, kek, &dk) == 0 &&
	    derive_value_key(dk, &vk) == 0) {
		struct value_binding b = {h.vault_id, 0, 0, purpose, true};
		rc = value_open(vk, &b, nonce, wrapped, WRAPPED_KEY_BYTES, key_out);
		if (rc != 0)
			latch_error(LATCH_OPERR, "the exported '%s' key was altered", purpose);
	}
	secbuf_free(kek);
	secbuf_free(dk);
	secbuf_free(vk);
	return rc;
}
