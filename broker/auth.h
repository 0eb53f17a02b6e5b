/* broker/ private: how a broker proves itself and how a grant reaches it
 * (broker.h explains why). Shared by the daemon and its client. */
#ifndef LATCH_BROKER_AUTH_H
#define LATCH_BROKER_AUTH_H

#include "broker.h"

#include <jansson.h>

#define AUTH_NONCE_BYTES 32
#define AUTH_MAC_BYTES 32

/* The broker's answer to a challenge: a MAC under its key over its
 * instance id, its pid and both nonces. */
void auth_proof(const struct secbuf *key, const unsigned char instance[BROKER_INSTANCE_BYTES], pid_t pid,
		const unsigned char nc[AUTH_NONCE_BYTES], const unsigned char nb[AUTH_NONCE_BYTES],
		unsigned char out[AUTH_MAC_BYTES]);
/* The broker's receipt for a grant it took. */
void auth_ack(const struct secbuf *key, const unsigned char nc[AUTH_NONCE_BYTES],
	      const unsigned char nb[AUTH_NONCE_BYTES], const char *grant_id, int64_t deadline,
	      unsigned char out[AUTH_MAC_BYTES]);
/* The grant, XChaCha20-Poly1305 under the key with the instance id and
 * both nonces as associated data, as a base64 JSON string. */
json_t *auth_seal(const struct secbuf *key, const unsigned char instance[BROKER_INSTANCE_BYTES],
		  const unsigned char nc[AUTH_NONCE_BYTES], const unsigned char nb[AUTH_NONCE_BYTES], const char *plain,
		  size_t len);
/* The reverse, into secure memory; NULL if it does not authenticate or
 * holds nothing (a grant is never empty). */
struct secbuf *auth_open(const struct secbuf *key, const unsigned char instance[BROKER_INSTANCE_BYTES],
			 const unsigned char nc[AUTH_NONCE_BYTES], const unsigned char nb[AUTH_NONCE_BYTES],
			 const json_t *box);
/* 32 bytes from a base64 JSON string (a nonce or a MAC); -1 if not. */
int auth_b64_32(const json_t *s, unsigned char out[32]);
json_t *auth_b64_json(const unsigned char *p, size_t n);

#endif
