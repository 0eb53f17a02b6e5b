/* The secrets digest, sealed in the main chain's state: what release
 * checks compare the secrets table with, kept up to date by each set and
 * rm record, and carried over to a new writer key. */
#include "internal.h"

#include <string.h>

/* The secrets digest: the XOR, over every row of the secrets table, of
 * BLAKE2b-256(K, id || version || name), K derived from the writer key.
 * XOR of a keyed PRF is a multiset hash (MSet-XOR-Hash, Clarke et al.):
 * without K no one can tell which other table gives the same digest, and
 * a set or rm updates it from the one row it changes, so only a release
 * pays for reading the whole table. */
struct digest_ctx {
	unsigned char key[crypto_generichash_KEYBYTES];
	unsigned char d[AUDIT_MAC_BYTES];
	int64_t rows;
};

static void digest_key(const struct secbuf *writer_key, struct digest_ctx *c)
{
	crypto_kdf_derive_from_key(c->key, sizeof c->key, 3, "latchdig", writer_key->data);
	memset(c->d, 0, sizeof c->d);
	c->rows = 0;
}

static void digest_toggle(struct digest_ctx *c, int64_t id, int64_t version, const char *name)
{
	unsigned char in[16], h[AUDIT_MAC_BYTES];
	put_u64(in, (uint64_t)id);
	put_u64(in + 8, (uint64_t)version);
	crypto_generichash_state st;
	crypto_generichash_init(&st, c->key, sizeof c->key, sizeof h);
	crypto_generichash_update(&st, in, sizeof in);
	crypto_generichash_update(&st, (const unsigned char *)name, strlen(name));
	crypto_generichash_final(&st, h, sizeof h);
	for (size_t i = 0; i < sizeof h; i++)
		c->d[i] ^= h[i];
	c->rows++;
}

static int digest_each(int64_t id, int64_t version, const char *name, void *ctx)
{
	digest_toggle(ctx, id, version, name);
	return 0;
}

int audit_digest_rows(const struct secbuf *writer_key, audit_rows_fn rows, struct vault *ctx,
		      unsigned char out[AUDIT_MAC_BYTES])
{
	struct digest_ctx *c = sodium_malloc(sizeof *c);
	if (!c)
		return latch_error(LATCH_OPERR, "out of secure memory");
	digest_key(writer_key, c);
	int rc = rows(ctx, digest_each, c);
	memcpy(out, c->d, AUDIT_MAC_BYTES);
	sodium_free(c);
	return rc == 0 ? 0 : -1;
}

/* A set or rm changes one row: the digest follows it. */
int digest_update(const struct secbuf *writer_key, const struct audit_event *ev, struct state *s)
{
	bool set = !strcmp(ev->event, "set"), rm = !strcmp(ev->event, "rm");
	if (s->version != 2 || (!set && !rm))
		return 0;
	if (ev->n_secrets != 1 || ev->secrets[0].id < 1 || ev->version < 1)
		return latch_error(LATCH_OPERR, "a %s record must name one secret with its id and version", ev->event);
	struct digest_ctx *c = sodium_malloc(sizeof *c);
	if (!c)
		return latch_error(LATCH_OPERR, "out of secure memory");
	digest_key(writer_key, c);
	memcpy(c->d, s->digest, sizeof c->d);
	const struct audit_secret_ref *r = &ev->secrets[0];
	if (rm || ev->version > 1) /* the row as it was */
		digest_toggle(c, r->id, rm ? ev->version : ev->version - 1, r->name);
	if (set)
		digest_toggle(c, r->id, ev->version, r->name);
	memcpy(s->digest, c->d, sizeof s->digest);
	sodium_free(c);
	return 0;
}

/* The digest of the table now, under `writer_key`, into `digest`; with
 * a version 2 state it must be the sealed one. 0, or -1 reported. */
static int digest_check(const struct secbuf *writer_key, audit_rows_fn rows, struct vault *ctx, const struct state *s,
			unsigned char digest[AUDIT_MAC_BYTES])
{
	if (audit_digest_rows(writer_key, rows, ctx, digest) != 0)
		return -1;
	if (s->version == 2 && sodium_memcmp(digest, s->digest, AUDIT_MAC_BYTES) != 0)
		return latch_error(
			LATCH_OPERR,
			"the vault's secrets are not what their recorded changes left (rolled back or edited): run 'latch audit verify'");
	return 0;
}

int audit_check_secrets(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
			audit_rows_fn rows, struct vault *ctx)
{
	struct state s = {0};
	bool created;
	unsigned char digest[AUDIT_MAC_BYTES];
	int rc = state_open(db, writer_key, NULL, &created, &s);
	if (rc == 0)
		rc = digest_check(writer_key, rows, ctx, &s, digest);
	if (rc == 0 && s.version == 1) {
		/* A log from before the digest: every row is checked against
		 * its newest set/rm record by a full verification, once, and
		 * the digest of the rows that pass is sealed from now on. */
		struct audit_report r;
		rc = audit_verify(db, writer_key, verifier_key, NULL, rows, ctx, &r);
		if (rc == 0 && r.verdict != AUDIT_OK)
			rc = latch_error(LATCH_OPERR, "the audit log does not verify (%s): run 'latch audit verify'",
					 r.reason);
		if (rc == 0) {
			s.version = 2;
			memcpy(s.digest, digest, sizeof digest);
			rc = state_store(db, writer_key, NULL, &s, false);
		}
	}
	secbuf_free(s.l.key);
	return rc;
}

int audit_rotate_writer(sqlite3 *db, const struct secbuf *old_writer, const struct secbuf *new_writer,
			audit_rows_fn rows, struct vault *ctx)
{
	struct state s = {0};
	bool created;
	unsigned char digest[AUDIT_MAC_BYTES];
	int rc = state_open(db, old_writer, NULL, &created, &s);
	/* The table is checked under the old key before its digest is made
	 * under the new one: a rotation must not bless an edited table. */
	if (rc == 0 && s.version == 2) {
		rc = digest_check(old_writer, rows, ctx, &s, digest);
		if (rc == 0)
			rc = audit_digest_rows(new_writer, rows, ctx, s.digest);
	}
	if (rc == 0)
		rc = state_store(db, new_writer, NULL, &s, false);
	secbuf_free(s.l.key);
	return rc;
}
