/* audit: the append-only, tamper-evident HMAC chain (DESIGN.md section 5).
 *
 * The log lives in the vault database (tables audit_log, audit_secret and
 * audit_state, created by the vault's schema migrations). Record i carries
 *   mac_i = HMAC-SHA-256(k_i, log_id || seq || mac_{i-1} || len || record)
 * and the key evolves one way after every record, k_{i+1} = KDF(k_i), so a
 * key exposed today cannot rewrite the past. The evolving state (seq, last
 * MAC, next key) is stored only sealed under the writer key W; the first key
 * k_1 is stored only sealed under the verifier key V. Whoever appends (the
 * CLI after a passphrase, later the broker) holds W; only a passphrase
 * holder has V. Records hold names, ids and metadata, never a value. */
#ifndef LATCH_AUDIT_H
#define LATCH_AUDIT_H

#include "../common/common.h"

#include <sqlite3.h>
#include <stdio.h>

#define AUDIT_MAC_BYTES 32
#define AUDIT_LOG_ID_BYTES 16
#define AUDIT_KEY_BYTES 32
#define AUDIT_MAX_SECRETS 64

struct audit_secret_ref {
	const char *name;
	int64_t id; /* the vault's secret id; 0 if unknown */
};

/* One event. Unset (NULL / negative) fields are left out of the record. */
struct audit_event {
	const char *event;    /* "init", "set", "rm", "reveal", "grant", "release", ... */
	int64_t time;         /* UNIX time of the event; 0: now */
	const char *decision; /* "allow" or "deny"; NULL for plain changes */
	const char *reason;   /* why a denial happened, NULL otherwise */
	const struct audit_secret_ref *secrets;
	size_t n_secrets;
	const char *grant_id;
	int64_t version;  /* the secret's version after a set; <0 unset */
	int exit_status;  /* a child's exit status; <0 unset */
	/* A grant's policy: seconds to live (<=0 unset), uses (<0 unset:
	 * unlimited), allowed commands. */
	int64_t ttl;
	int64_t uses;
	const char *const *cmds;
	size_t n_cmds;
	int64_t redactions; /* redaction hits; <0 unset */
	/* The process the event is about. pid 0: this process (latch itself):
	 * pid, uid, exe, cwd and argv are filled in from /proc/self. */
	pid_t pid;
	uid_t uid;
	const char *exe;
	const char *cwd;
	/* argv is recorded only as a keyed hash (argv may hold anything). */
	char *const *argv;
	int argc;
};

/* Append one record inside the caller's write transaction (BEGIN IMMEDIATE
 * already taken): a failure returns -1 and the caller must roll back, so
 * the action and its record commit together or not at all. If the log does
 * not exist yet (a new vault) it is created, which needs `verifier_key` too;
 * pass NULL where only the writer key is held (the broker). */
int audit_append(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		 const struct audit_event *ev, int64_t *seq_out);

/* For tests: compute MACs with libsodium instead of libcrypto (both give
 * the same HMAC-SHA-256). */
void audit_mac_use_openssl(bool use);

/* 0 if `writer_key` opens this log's sealed state: proof that its holder
 * got it from the vault with the passphrase. -1 (reported) otherwise. */
int audit_check_writer(sqlite3 *db, const struct secbuf *writer_key);

/* audit_append of `n` events, in order, in one transaction of their own
 * (BEGIN IMMEDIATE ... COMMIT), for events that change nothing else: a
 * release by the broker and the exits queued before it. All or none. */
int audit_append_commit(sqlite3 *db, const struct secbuf *writer_key, const struct audit_event *evs, size_t n);

/* Verification. */
struct audit_checkpoint {
	unsigned char vault_id[16]; /* filled and checked by the caller */
	unsigned char log_id[AUDIT_LOG_ID_BYTES];
	int64_t seq;
	unsigned char mac[AUDIT_MAC_BYTES];
};
enum audit_verdict {
	AUDIT_OK,
	AUDIT_TAMPERED,     /* a record, MAC, order or count does not verify */
	AUDIT_UNVERIFIABLE, /* wrong key, unknown log, no log to check */
};
struct audit_report {
	enum audit_verdict verdict;
	int64_t records;  /* records checked */
	int64_t first_bad; /* first bad seq when TAMPERED, else 0 */
	char reason[256];  /* one line, no values */
	struct audit_checkpoint head; /* the last record, when OK */
};
/* Recompute every MAC from k_1 (needs both keys). With a checkpoint, the log
 * must also still contain exactly that record. Returns 0 when the check ran
 * (the verdict is in `report`), -1 on an operational error. */
int audit_verify(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		 const struct audit_checkpoint *cp, struct audit_report *report);

/* Verify an export (see audit_export) on its own. `open_verifier` gets the
 * header's "verifier" object (JSON text) and must return the verifier key,
 * e.g. by asking for the passphrase. Without a checkpoint, an export cut
 * short at its end cannot be told from a shorter log. */
typedef int (*audit_key_opener)(const char *json, size_t len, void *ctx, struct secbuf **key_out);
int audit_verify_export(FILE *in, audit_key_opener open_verifier, void *ctx,
			const struct audit_checkpoint *cp, struct audit_report *report);

/* The head of the log (log id, last seq, last MAC), from the plaintext
 * tables; keep it somewhere the agent cannot write. */
int audit_head(sqlite3 *db, struct audit_checkpoint *out);
/* Checkpoint text: one line of JSON {"vault_id","log_id","seq","mac"}. */
int audit_checkpoint_format(const struct audit_checkpoint *cp, char *buf, size_t n);
int audit_checkpoint_parse(const char *text, size_t len, struct audit_checkpoint *out);

/* Queries need no key: records hold no values. */
struct audit_filter {
	const char *secret;   /* NULL: any */
	const char *grant_id; /* NULL: any */
	const char *event;    /* NULL: any */
	int64_t since;        /* UNIX time; 0: from the start */
};
/* Calls fn with each matching record (exact stored bytes), oldest first. */
int audit_query(sqlite3 *db, const struct audit_filter *f,
		int (*fn)(int64_t seq, const char *record, size_t len, void *ctx), void *ctx);

/* The newest "set" or "rm" record naming `secret`, from the plaintext
 * tables (verify authenticates them): 1 found, 0 none, -1 error. Before a
 * value is released its row must match this, so a row put back from an
 * older copy of the vault (which still decrypts) is refused. */
struct audit_change {
	int64_t seq;
	bool removed;      /* the newest is an rm */
	int64_t secret_id;
	int64_t version;   /* for a set */
};
int audit_last_change(sqlite3 *db, const char *secret, struct audit_change *out);

/* "30m", "24h", "7d", "90s", "2w" ago, or an RFC 3339 time
 * ("2026-11-23T15:00:00Z") or date ("2026-11-23", UTC): a UNIX time. */
int audit_parse_since(const char *s, int64_t now, int64_t *out);

/* Export: JSON Lines. The first line describes the log (log id, the
 * sealed first key, and `verifier_json`: what a passphrase holder needs to
 * open the verifier key, from vault_export_key); then one line per record
 * with its seq, exact record text and MAC. */
int audit_export(sqlite3 *db, const char *verifier_json, FILE *out);

#endif
