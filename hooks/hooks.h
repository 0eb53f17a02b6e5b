/* hooks: what would be committed or pushed, and the scan of it for
 * values latch manages (docs/scanning.md). */
#ifndef LATCH_HOOKS_H
#define LATCH_HOOKS_H

#include "../common/common.h"

/* ---- The scan index (index.c, scan.c) ---------------------------------
 *
 * Keyed fingerprints of every value's forms, in the vault file, written in
 * the transaction that sets or removes the value, so that a scan needs no
 * passphrase and no plaintext. index.c's comment and docs/scanning.md say
 * what a process holding the index can and cannot learn from it. */

/* A form is found by its first HOOKS_WINDOW bytes: shorter forms are not
 * fingerprinted. */
#define HOOKS_WINDOW 12
/* Bits of the rolling hash kept per form: a 2^20-bit (128 KiB) bitmap. */
#define HOOKS_PRE_BITS 20
/* Bits of the keyed SipHash kept per form. */
#define HOOKS_FP_BITS 32
/* The slow check of a whole form: Argon2id, this cost. */
#define HOOKS_VERIFY_OPS 1
#define HOOKS_VERIFY_MEM (4u * 1024 * 1024)
#define HOOKS_SALT_BYTES 16
#define HOOKS_VERIFY_BYTES 16
/* Values estimated below this many bits are not fingerprinted: they are
 * listed as weak and scanned only with the passphrase. */
#define HOOKS_WEAK_BITS 112

/* The index's tables, for vault_add_tables (main() and fixtures). */
struct vault_tables;
extern const struct vault_tables hooks_tables;

/* The index's vault_value_hook (vault_on_value): on a set, the value's
 * fingerprints (or, for a weak value, its entry in the weak list) replace
 * the old ones; on an rm they go; a rekey starts the index again with new
 * keys and fingerprints every value anew. Runs in the change's
 * transaction: -1 (reported) rolls the change back. */
struct vault;
int hooks_index_value(struct vault *v, const char *event, int64_t id, const struct secbuf *value, void *ctx);

/* The secrets that are not fingerprinted, by id, with their estimated
 * entropy in bits: fn(id, bits, ctx) for each; a non-zero return stops
 * and is returned. */
int hooks_weak(struct vault *v, int (*fn)(int64_t id, int bits, void *ctx), void *ctx);

/* An estimate of a value's entropy in bits (index.c says how; it is a
 * heuristic that overrates words and known prefixes). */
int hooks_entropy_bits(const unsigned char *v, size_t n);

/* The index in memory, for scanning. */
struct hooks_index;
int hooks_index_load(struct vault *v, struct hooks_index **out);
void hooks_index_free(struct hooks_index *ix);
size_t hooks_index_size(const struct hooks_index *ix);   /* forms fingerprinted */
size_t hooks_index_weak(const struct hooks_index *ix);   /* values left out */
const char *hooks_index_name(const struct hooks_index *ix, int64_t id);

/* A value found: which secret, in which encoding, where (bytes). */
struct hooks_finding {
	int64_t secret;
	const char *name;
	const char *encoding;
	size_t offset;
	size_t len;
};
typedef int (*hooks_found_fn)(const struct hooks_finding *f, void *ctx);
/* Every occurrence of a fingerprinted form in p[0..n): fn for each, in
 * order of offset; a non-zero return stops and is returned. */
int hooks_index_scan(const struct hooks_index *ix, const unsigned char *p, size_t n, hooks_found_fn fn, void *ctx);

/* The three stages, shared by the writer and the scanner (and tests). */
uint64_t hooks_roll_init(const unsigned char *window, uint64_t mult);
uint32_t hooks_pre(uint64_t rolling);
uint32_t hooks_fp(const unsigned char *window, const unsigned char key[16]);
int hooks_verify_hash(const unsigned char *form, size_t n, const unsigned char salt[HOOKS_SALT_BYTES],
		      unsigned char out[HOOKS_VERIFY_BYTES]);

#endif
