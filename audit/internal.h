/* audit/ private: what the main chain (log.c), its sealed state
 * (state.c) and secrets digest (digest.c), the broker streams (stream.c),
 * verification (verify.c), the record text (record.c) and the MACs
 * (mac.c) share. Not a public header. */
#ifndef LATCH_AUDIT_INTERNAL_H
#define LATCH_AUDIT_INTERNAL_H

#include "audit.h"

#include <jansson.h>
#include <sodium.h>

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
/* A chain's first key k_1, sealed under the verifier key. */
#define ORIGIN_BLOB (NONCE_BYTES + AUDIT_KEY_BYTES + TAG_BYTES)
#define STREAM_ID_BYTES 16
/* What `latch grant` hands a new broker for its stream: number, id, k_1
 * and the key argv is hashed under. */
#define STREAM_BLOB_BYTES (8 + STREAM_ID_BYTES + 2 * AUDIT_KEY_BYTES)

extern const char ORIGIN_LABEL[22];        /* the main chain's k_1 */
extern const char STREAM_ORIGIN_LABEL[29]; /* a stream's k_1 */

/* Events a broker's stream may hold: what the broker does, never what
 * only a passphrase holder may (set, rm, grant, ...). */
bool audit_stream_event(const char *event);

int audit_db_fail(sqlite3 *db, const char *what);

static inline void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* mac.c: k_{i+1} = KDF(k_i); the record MAC; sealing under a key. */
void audit_evolve(unsigned char k[AUDIT_KEY_BYTES]);
void audit_fast_hmac_load(void);
/* HMAC-SHA-256(k, chain_id || cseq || prev || len || record): chain_id
 * is the main log's id or a stream's, cseq the record's place in that
 * chain (1, 2, ...). */
void audit_record_mac(const unsigned char k[AUDIT_KEY_BYTES], const unsigned char chain_id[16], int64_t cseq,
		      const unsigned char prev[AUDIT_MAC_BYTES], const void *record, size_t len,
		      unsigned char out[AUDIT_MAC_BYTES]);
/* XChaCha20-Poly1305 under `key` (32 bytes) with associated data
 * label || id: blob = nonce || ciphertext || tag. */
void audit_seal(const char *label, size_t label_len, const unsigned char id[16], const unsigned char *key,
		const unsigned char *plain, size_t n, unsigned char *blob);
int audit_unseal(const char *label, size_t label_len, const unsigned char id[16], const unsigned char *key,
		 const unsigned char *blob, size_t blob_len, unsigned char *plain, size_t n);

/* record.c: the record's text. Events, grant ids and secret names need
 * no JSON escaping, so the head {"seq":S,"time":T,"event":"E"
 * [,"grant":"G"][,"secrets":["a",...]][,"stream":N] can be rebuilt byte
 * for byte from the indexed columns at verification. */
struct head_buf {
	char *p;
	size_t len, cap; /* len SIZE_MAX: out of memory */
};
void head_begin(struct head_buf *h, int64_t seq, int64_t time, const char *event, const char *grant);
/* The head of a record of a stream kept in a file (the broker's): it
 * numbers its records itself, {"stream":N,"n":I,"time":T,"event":"E"...,
 * and carries no seq (the log's sequence is given at the fold). */
void head_begin_stream(struct head_buf *h, int64_t stream, int64_t n, int64_t time, const char *event,
		       const char *grant);
void head_secret(struct head_buf *h, size_t pos, const char *name);
void head_end(struct head_buf *h, size_t n_secrets, int64_t stream);
void head_add(struct head_buf *h, const char *s);
/* A character an event, grant id or secret name may hold: none needs
 * JSON escaping. */
bool audit_token_char(char ch);
/* Reading a head back (fold.c, verify.c), a cursor *p before `end`: the
 * literal `lit`, or a number as int_text writes it (digits, no leading
 * zero, at most 18). Each moves *p past what it read, or returns false
 * and leaves it. */
bool text_take(const char **p, const char *end, const char *lit);
bool text_take_int(const char **p, const char *end, int64_t *out);
/* The record begins with exactly the head, and none of the head's
 * optional fields follows it (else index rows were deleted). */
bool head_matches(const struct head_buf *h, const void *record, size_t len);
int audit_check_event(const struct audit_event *ev);

/* One chain's writing end: the next record is number cseq + 1, linked to
 * last_mac, made with key (k_{cseq+1}, in secure memory). */
struct link {
	unsigned char id[16];
	int64_t cseq;
	unsigned char last_mac[AUDIT_MAC_BYTES];
	struct secbuf *key;
};
/* The record `ev` makes as `l`'s next: its text into `h` (its head
 * numbered by `seq`, or with seq 0 by `stream` and the chain's own count),
 * its time and its MAC. `l` does not move (link_advance, once the record
 * is kept). argv is hashed under `argv_key`. */
int link_record(const struct link *l, const struct audit_event *ev, const unsigned char *argv_key, json_t *extra,
		int64_t seq, int64_t stream, struct head_buf *h, int64_t *time_out, unsigned char mac[AUDIT_MAC_BYTES]);
void link_advance(struct link *l, const unsigned char mac[AUDIT_MAC_BYTES]);
/* Append `ev` to `l`'s chain at the next global seq, inside the caller's
 * transaction: the record (head, then the event's fields, then `extra`'s),
 * its MAC and its index rows. `l` moves on in memory only; the caller
 * makes that durable (the sealed state). */
int link_append(sqlite3 *db, struct link *l, const struct audit_event *ev, const unsigned char *argv_key, json_t *extra,
		int64_t stream, int64_t *seq_out);
/* The next seq of the whole log: the rowid b-tree's last entry + 1, or
 * -1. */
int64_t audit_next_seq(sqlite3 *db);
/* Writing a record's rows (audit_log, audit_secret) with statements
 * prepared once: the fold writes thousands at a time. */
struct rows {
	sqlite3 *db;
	sqlite3_stmt *log, *secret;
};
int rows_prepare(sqlite3 *db, struct rows *w);
int rows_insert(struct rows *w, int64_t seq, int64_t time, int64_t stream, const struct audit_event *ev,
		const char *record, size_t len, const unsigned char mac[AUDIT_MAC_BYTES]);
void rows_finish(struct rows *w);
/* The argv hash key of a writer key: equal argv hash equally in every
 * chain of a vault (the broker gets this key, not the writer key). */
void audit_argv_key(const struct secbuf *writer_key, unsigned char out[AUDIT_KEY_BYTES]);

/* state.c: the sealed state of the main chain, also read by verify.c. */
struct state {
	int version;                           /* 1: before broker streams and the digest; 2 */
	struct link l;                         /* l.id is the log id */
	unsigned char digest[AUDIT_MAC_BYTES]; /* version 2: see digest.c */
	int64_t streams;                       /* the number of the newest broker stream, 0 if none */
	int64_t stream_open;                   /* while it is open, the seq of its enrol record; else 0 */
	int64_t last_seq;                      /* the seq of the main chain's last record (version 1: l.cseq) */
};
#define STATE_BLOB_MAX (NONCE_BYTES + 8 + 2 * AUDIT_MAC_BYTES + AUDIT_KEY_BYTES + 24 + TAG_BYTES)
/* 1 loaded (the sealed blob, and the origin if asked), 0 no state row,
 * -1 error. */
int state_load(sqlite3 *db, unsigned char log_id[AUDIT_LOG_ID_BYTES], unsigned char *blob, size_t *blob_len,
	       unsigned char origin[ORIGIN_BLOB]);
/* Opens a state blob into `s` (s->l.id set by the caller; s->l.key
 * allocated here): -1 without a report when it does not authenticate. */
int state_unseal(const struct secbuf *writer_key, const unsigned char *blob, size_t blob_len, struct state *s);
/* Loads and opens the state into `s` (the caller frees s->l.key), which
 * must be the newest (its last record is the table's): 0, or -1
 * reported. With no state row and `verifier_key`, a new log is made in
 * memory (`*created`), which state_store then inserts. */
int state_open(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key, bool *created,
	       struct state *s);
/* Seals `s` under `writer_key` into the state row: an update, or for a
 * new log (`insert`) the row with its first key sealed under
 * `verifier_key`. 0, or -1 reported. */
int state_store(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key, const struct state *s,
		bool insert);

/* digest.c: the secrets digest of rows, keyed by the writer key. */
int audit_digest_rows(const struct secbuf *writer_key, audit_rows_fn rows, struct vault *ctx,
		      unsigned char out[AUDIT_MAC_BYTES]);
/* A set or rm record changes one row: the digest in `s` follows it
 * (version 2 only; other events change nothing). 0, or -1 reported. */
int digest_update(const struct secbuf *writer_key, const struct audit_event *ev, struct state *s);

/* fold.c: broker streams kept in files (docs/audit.md, "Stream files").
 * A line is the record's MAC in hex, a space, the record, "\n". */
#define STREAM_LINE_OVERHEAD (2 * AUDIT_MAC_BYTES + 2)
/* The file of stream `n` of the vault whose directory is `vault_dir`, or
 * of the database `db`: <vault>/audit/stream-N. 0, or -1 reported. */
int stream_path(const char *vault_dir, int64_t n, char *buf, size_t len);
int stream_path_db(sqlite3 *db, int64_t n, char *buf, size_t len);
/* Opens stream n's file to read (no symbolic link, a regular file): 1
 * with its descriptor, size and path, 0 when it does not exist, -1
 * reported. */
#define STREAM_PATH_MAX 4096
int stream_open_read(sqlite3 *db, int64_t n, int *fd, int64_t *size, char path[STREAM_PATH_MAX]);
/* The next whole line in p[0..avail): 1 with the record and MAC (and
 * `*used`, the line's length with its newline), 0 when no whole line is
 * left (the end, or a write cut short), -1 when the line is malformed. */
int stream_line(const char *p, size_t avail, size_t *used, const char **rec, size_t *rec_len,
		unsigned char mac[AUDIT_MAC_BYTES]);
/* Fold every open stream's new records into the tables, inside the
 * caller's write transaction: idempotent (audit_fold says where each
 * stream's fold stands), crash-safe (it commits with the caller). A
 * damaged record stops a stream's fold there; `*damaged` (may be NULL)
 * then names it, and it is not an error here: verify reports it. 0, or
 * -1 reported. */
struct fold_damage {
	int64_t stream, n; /* 0: none */
};
int fold_in(sqlite3 *db, struct fold_damage *damaged);
/* A stream kept in a file is closed: nothing more of it is folded. */
int fold_close(sqlite3 *db, int64_t stream);

#endif
