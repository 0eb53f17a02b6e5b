/* audit: the append-only, tamper-evident HMAC chains (docs/audit.md).
 *
 * The log lives in the vault database (tables audit_log, audit_secret and
 * audit_state, which audit_tables adds to the vault's schema). It is made of
 * chains whose records share one sequence (seq 1, 2, ... over the whole
 * log). The main chain holds what only a passphrase holder may record
 * (init, set, rm, passwd, rekey, grant, reveal, a one-shot release, and the
 * opening and closing of broker streams); each broker has a stream of its
 * own for what it does (release, exit, revoke, lost, stop), so the key a
 * broker holds can never make a record that widens access or changes the
 * vault. A broker appends its stream to a file of its own, with one
 * sync per release; readers fold those files into the tables first
 * (fold.c). Record i of a chain carries
 *   mac_i = HMAC-SHA-256(k_i, chain_id || i || mac_{i-1} || len || record)
 * and the key evolves one way after every record, k_{i+1} = KDF(k_i), so a
 * key exposed today cannot rewrite the past. The main chain's state (its
 * length, last MAC, next key, the secrets digest and the open stream) is
 * stored only sealed under the writer key W; a stream's state lives only in
 * its broker's memory. Every chain's first key is sealed under the
 * verifier key V. Only a passphrase holder has W and V. Records hold
 * names, ids and metadata, never a value. */
#ifndef LATCH_AUDIT_H
#define LATCH_AUDIT_H

#include "../common/common.h"

#include <sqlite3.h>
#include <stdio.h>

#define AUDIT_MAC_BYTES 32
#define AUDIT_LOG_ID_BYTES 16
#define AUDIT_KEY_BYTES 32
#define AUDIT_MAX_SECRETS 64

/* The log's tables, their migrations and schema: pass this to
 * vault_add_tables before a vault is created or opened. */
struct vault_tables;
extern const struct vault_tables audit_tables;

struct audit_secret_ref {
	const char *name;
	int64_t id; /* the vault's secret id; 0 if unknown */
};

/* One event. Zero (NULL, 0, false) leaves a field out of the record;
 * a field for which zero is also a real value (an exit status, a count of
 * redactions) says so with its has_ flag. */
/* A model token minted by federation (event "fed_mint"): which profile
 * and rule, when the token expires, and whose identity token was
 * exchanged. Never a token. Strings plain text, at most 255 bytes. */
struct audit_mint {
	const char *profile;
	const char *rule_id;
	int64_t expires_at;
	const char *iss, *sub, *jti; /* "" or NULL when the token had none */
};

struct audit_event {
	const char *event;    /* "init", "set", "rm", "reveal", "grant", "release", ... */
	int64_t time;         /* UNIX time of the event; 0: now */
	const char *decision; /* "allow" or "deny"; NULL for plain changes */
	const char *reason;   /* why a denial happened, NULL otherwise */
	const struct audit_secret_ref *secrets;
	size_t n_secrets;
	const char *grant_id;
	int64_t version; /* a set: the new version; an rm: the one removed; 0 unset */
	bool has_exit;
	int exit_status; /* a child's exit status, when has_exit */
	/* A grant's policy: seconds to live (0 unset), uses (0: unlimited;
	 * recorded only with a ttl), allowed commands. */
	int64_t ttl;
	int64_t uses;
	const char *const *cmds;
	size_t n_cmds;
	bool has_redactions;
	int64_t redactions; /* redaction hits, when has_redactions */
	/* With has_redactions and this set: the hits per secret, aligned with
	 * `secrets`, and the model token's (< 0: it was not redacted). */
	const int64_t *redacted;
	int64_t redacted_token;
	int64_t lost_exits;            /* a broker's "lost" record: exit records it dropped */
	const struct audit_mint *mint; /* "fed_mint" */
	/* A scan's paths (scan_block, scan_allow), and what was scanned
	 * ("staged", "push origin refs/heads/main", "range A..B", ...). */
	const char *const *paths;
	size_t n_paths;
	const char *scope;
	/* A grant's --allow-env: variables of the unsafe list its child keeps. */
	const char *const *allow_env;
	size_t n_allow_env;
	/* A release by the broker: the runner it forked to start the child
	 * (0: none), and whether the caller said it runs inside a latch
	 * session (has_session). */
	pid_t runner;
	bool has_session;
	bool in_session;
	bool no_redact; /* a release whose child's output is not redacted */
	/* The process the event is about. With `self`, this process (latch
	 * itself): pid, uid, exe and cwd are read from /proc/self and the
	 * four fields below are ignored. Otherwise they are as given; pid 0
	 * is a process not known, recorded as -1 (as it always was). */
	bool self;
	pid_t pid;
	uid_t uid;
	const char *exe;
	const char *cwd;
	/* argv is recorded only as a keyed hash (argv may hold anything). */
	char *const *argv;
	int argc;
};

/* Append one record to the main chain inside the caller's write
 * transaction (BEGIN IMMEDIATE already taken): a failure returns -1 and the
 * caller must roll back, so the action and its record commit together or
 * not at all. If the log does not exist yet (a new vault) it is created,
 * which needs `verifier_key` too. A set or rm record names its one secret
 * with its id and version (for an rm, the version removed): the secrets
 * digest follows it. */
int audit_append(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		 const struct audit_event *ev, int64_t *seq_out);

/* For tests: compute MACs with libsodium instead of libcrypto (both give
 * the same HMAC-SHA-256). */
void audit_mac_use_openssl(bool use);

/* audit_append of `n` events, in order, in one transaction of their own
 * (BEGIN IMMEDIATE ... COMMIT), for events that change nothing else (the
 * exit of a one-shot release). All or none. */
int audit_append_commit(sqlite3 *db, const struct secbuf *writer_key, const struct audit_event *evs, size_t n);

/* The rows of the secrets table as the vault has them: `rows(vault,
 * each, each_ctx)` calls `each` once per row (id, version, name) and
 * returns 0, or the first non-zero `each` returned, or -1 on an error
 * (reported). It is vault_rows: the audit log does not read the vault's
 * tables itself, and only passes the vault back. */
struct vault;
typedef int (*audit_rows_fn)(struct vault *vault,
			     int (*each)(int64_t id, int64_t version, const char *name, void *each_ctx),
			     void *each_ctx);

/* Before any value is released (inside the release's write transaction):
 * the secrets table must be exactly what the recorded changes made. The
 * main chain's sealed state holds a keyed digest of every row's (id,
 * version, name), kept up to date by each set and rm; a row rolled back to
 * an older copy, a removed secret brought back or a row edited changes it.
 * Reads the table, never an index. A log from before the digest is
 * verified in full once (audit_verify with `rows`) and then carries it.
 * 0, or -1 reported. */
int audit_check_secrets(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
			audit_rows_fn rows, struct vault *ctx);

/* A new writer key, inside the caller's write transaction (a rekey): the
 * state is sealed under `new_writer` from now on and its digest remade
 * with it, once the table is checked under the old one. A writer key
 * taken before stops working. The caller stores the new key. */
int audit_rotate_writer(sqlite3 *db, const struct secbuf *old_writer, const struct secbuf *new_writer,
			audit_rows_fn rows, struct vault *ctx);

/* The sealed state's version: 2, 1 (a log from before the digest: a
 * passphrase holder's first command verifies it in full and upgrades it
 * with audit_check_secrets before it changes anything), 0 (no log), or -1
 * (reported). Needs no key. */
int audit_state_version(sqlite3 *db);

/* Recording the vault's changes (recorder.c). What a change's record
 * carries besides the change: the command line, hashed, and for a grant
 * its id and policy. */
struct audit_grant {
	const char *id;
	int64_t ttl;  /* seconds */
	int64_t uses; /* 0: unlimited */
	const char *const *cmds;
	size_t n_cmds;
	const char *const *allow_env; /* variables the child may keep (--allow-env) */
	size_t n_allow_env;
};
struct audit_recorder {
	int argc;
	char *const *argv;
	const struct audit_grant *grant; /* a grant's read only, else NULL */
};
/* The vault's hook (a vault_hook: vault_on_change, vault_create_recorded,
 * with a struct audit_recorder, or NULL, as its ctx): appends the change
 * to the main chain inside its transaction, about this process. Before a
 * release (reveal, grant, release) the secrets table is checked
 * (audit_check_secrets); a rekey closes the open broker stream and
 * replaces the writer key. 0, or -1 reported: the change rolls back. */
struct vault_change;
int audit_record_change(struct vault *v, const struct vault_change *c, void *recorder);
/* Append one event outside a vault change, in its own transaction (a
 * one-shot release's exit, a grant the broker did not take). */
int audit_record_event(struct vault *v, const struct audit_event *ev);
/* The same, inside the caller's write transaction (BEGIN IMMEDIATE
 * already taken), for a change another module makes with its record:
 * -1 means roll back. */
int audit_record_event_in(struct vault *v, const struct audit_event *ev);
/* Before a passphrase holder's command changes anything: a log from
 * before the secrets digest (audit_state_version 1) is verified in full
 * and given its digest, in a transaction of its own; else nothing. A set
 * or rm on a row rolled back earlier would otherwise bury the rollback.
 * Needs the vault unlocked. 0, or -1 reported. */
int audit_upgrade(struct vault *v);

/* Broker streams. A passphrase holder opens one for each broker it
 * starts, in a transaction of its own: the secrets table is checked
 * (audit_check_secrets, with `rows`), the open stream (if any) is closed
 * (its end recorded in the main chain), then a new one is opened in a
 * main-chain "enrol" record carrying its first key sealed for the
 * verifier. `*keys_out` (secure memory) is what the broker needs to append
 * to it, and goes to that broker only. */
int audit_stream_begin(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		       audit_rows_fn rows, struct vault *rows_ctx, pid_t broker_pid, struct secbuf **keys_out);
/* Close the open stream, if any, inside the caller's write transaction
 * (rekey: the broker's keys end with the data key). */
int audit_stream_close(sqlite3 *db, const struct secbuf *writer_key);
/* The broker's end: its stream from the keys audit_stream_begin made,
 * appended to the file <vault_dir>/audit/stream-N that it created
 * (empty, private; anything else is refused). */
struct audit_stream;
int audit_stream_open(const struct secbuf *keys, const char *vault_dir, struct audit_stream **out);
int64_t audit_stream_number(const struct audit_stream *s);
/* Append `n` events to the stream's file in one write, then one
 * fdatasync unless they are all exits (an exit rides on the next sync):
 * all or none. Only release, exit, revoke, lost, stop, fed_mint and
 * scan_block records; anything else is refused. After a failed sync
 * nothing more is appended (what is durable is unknown). 0, or -1
 * reported. */
int audit_stream_append(struct audit_stream *s, const struct audit_event *evs, size_t n);
/* Readers call this first: every open stream's new records are copied
 * into the tables that queries read, in a transaction of its own; with
 * nothing new it takes no lock. A damaged record stops a stream's fold
 * there and is an error (reported) unless `quiet_damage` (verify, which
 * names it itself). 0, or -1. */
int audit_fold(sqlite3 *db, bool quiet_damage);
void audit_stream_free(struct audit_stream *s);

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
	int64_t records;              /* records checked */
	int64_t first_bad;            /* first bad seq when TAMPERED, else 0 */
	char reason[256];             /* one line, no values */
	struct audit_checkpoint head; /* the last record, when OK */
};
/* Recompute every MAC of every chain from its first key (needs both
 * keys), check each stream's place in the main chain, the indexed copies,
 * the sealed state, and sqlite's indexes against their tables. With
 * `rows` (the vault's secrets table, see audit_rows_fn), each row must be
 * what its newest set record made, and each secret last set must have its
 * row. With a checkpoint, the log must also still contain exactly that
 * record. Returns 0 when the check ran (the verdict is in `report`; a
 * finding about no one record has first_bad 0), -1 on an operational
 * error. */
int audit_verify(sqlite3 *db, const struct secbuf *writer_key, const struct secbuf *verifier_key,
		 const struct audit_checkpoint *cp, audit_rows_fn rows, struct vault *rows_ctx,
		 struct audit_report *report);

/* Verify an export (see audit_export) on its own. `open_verifier` gets the
 * header's "verifier" object (JSON text) and must return the verifier key,
 * e.g. by asking for the passphrase. Without a checkpoint, an export cut
 * short at its end cannot be told from a shorter log. */
typedef int (*audit_key_opener)(const char *json, size_t len, void *ctx, struct secbuf **key_out);
int audit_verify_export(FILE *in, audit_key_opener open_verifier, void *ctx, const struct audit_checkpoint *cp,
			struct audit_report *report);

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
/* A record as a query returns it: its exact stored bytes, and the fields
 * `latch audit` shows, read from them (NULL or 0 when absent; the text
 * as stored, which anyone can write: escape it before a terminal sees
 * it). Valid during the callback only. */
struct audit_row {
	int64_t seq;
	const char *record; /* not NUL-terminated */
	size_t len;
	int64_t time;
	int64_t pid;
	const char *event;
	const char *decision;
	const char *exe;
	char secrets[256]; /* the names, joined by ','; cut before a name that does not fit;
			   * a fed_mint's "fed:PROFILE" */
};
/* Calls fn with each matching record, oldest first; a non-zero return
 * stops the walk and is returned. A record that is not one JSON object of
 * its own seq is an error (reported: damaged). */
int audit_query(sqlite3 *db, const struct audit_filter *f, int (*fn)(const struct audit_row *r, void *ctx), void *ctx);

/* "30m", "24h", "7d", "90s", "2w" ago, or an RFC 3339 time
 * ("2026-11-23T15:00:00Z") or date ("2026-11-23", UTC): a UNIX time. */
int audit_parse_since(const char *s, int64_t now, int64_t *out);

/* Export: JSON Lines. The first line describes the log (log id, the
 * sealed first key, and `verifier_json`: what a passphrase holder needs to
 * open the verifier key, from vault_export_key); then one line per record
 * with its seq, exact record text and MAC. */
int audit_export(sqlite3 *db, const char *verifier_json, FILE *out);

#endif
