/* broker: the broker daemon and its client (docs/design.md sections 1 P5/P6/P7, 2).
 *
 * The daemon holds granted values in locked memory, enforces each grant's
 * deadline, use count and command list, writes the audit records of what
 * it does to a stream of its own, and forgets a value at its deadline, when
 * its uses run out, on revoke, and on exit. Grant policy lives only in its
 * memory.
 *
 * Who may give it values: only a passphrase holder. A broker exists only
 * because a passphrase holder started it (`latch grant`, or `latch broker`
 * by hand): that process execs latch itself with a scrubbed environment,
 * and enrols the new broker over an inherited descriptor with an instance
 * id, a key derived from the vault's data key for that id (broker_key_fn),
 * and the keys of its audit stream. Every later grant first challenges
 * whatever answers at the socket with a fresh nonce: the answer must be a
 * MAC under that key, from the process the kernel says is on the other end
 * of the socket. The grant itself travels encrypted and authenticated under
 * the key, bound to both nonces, so a process that relays every byte learns
 * nothing and cannot replay it. A process that cannot prove itself is
 * refused and never used.
 *
 * Values never leave the broker's processes (P8): no operation answers
 * with one. `latch run` sends what to run and its descriptors; the daemon
 * checks the grant, forks a runner (non-dumpable, as the daemon is),
 * durably records the release with the runner's pid, and only then lets
 * the runner go. The runner takes over the connection: it starts the
 * child with the values, takes signals from the caller as messages, ends
 * the child's process group if the caller goes away, and says how the
 * child ended; the daemon records that exit when it reaps the runner.
 *
 * Exit records are not on any run's critical path: the daemon reaps a
 * runner at once and writes the exit record with its next commit (the
 * next release, refusal or revoke), after BROKER_EXIT_FLUSH_MS of quiet,
 * when asked to flush (every `latch audit` command asks first), or when
 * it stops. A release record is always durable before its values leave.
 *
 * Protocol (owned here: callers use the typed functions below): a UNIX
 * stream socket in a 0700 directory; a request and its answer in turn,
 * each a JSON header on one line followed by binary frames (wire.h); the
 * peer must have the daemon's uid (SO_PEERCRED); every connection has an
 * absolute deadline, so a slow client holds nothing up. A value is never
 * JSON: it travels as a length-prefixed frame inside the sealed grant and
 * is read straight into secure memory. */
#ifndef LATCH_BROKER_H
#define LATCH_BROKER_H

#include "../common/common.h"

#include <limits.h>

#define BROKER_MAX_MESSAGE (8u << 20)
#define BROKER_MAX_NAMES 64         /* secrets in one grant or one release */
#define BROKER_MAX_CMDS 16          /* --cmd in one grant */
#define BROKER_MAX_ALLOW_ENV 16     /* --allow-env in one grant */
#define BROKER_VAR_MAX 128          /* an --allow-env variable's name, with its NUL */
#define BROKER_VALUE_MAX (1u << 20) /* bytes in one value (VAULT_VALUE_MAX) */
#define BROKER_ID_MAX 32            /* a grant or release id, with its NUL */
#define BROKER_REASON_MAX 512       /* a refusal's reason, with its NUL */
#define BROKER_DEFAULT_TTL (15 * 60)
#define BROKER_MAX_TTL (24 * 3600)
#define BROKER_EXIT_FLUSH_MS 50
#define BROKER_RECORD_BATCH 258 /* pending exits, a "lost" record, the event itself */
#define BROKER_INSTANCE_BYTES 16
#define BROKER_KEY_BYTES 32
/* Every connection to the daemon ends this long after it was accepted. */
#define BROKER_CONN_DEADLINE_MS 5000

/* The socket for the vault in `vault_dir`: <runtime>/broker-<hash>.sock,
 * where <runtime> is $XDG_RUNTIME_DIR/latch, else `vault_dir`/run (made
 * 0700: the user's own, unlike a directory in /tmp that another user could
 * create first). One daemon per vault. */
int broker_paths(const char *vault_dir, char sock[PATH_MAX], char lock[PATH_MAX]);

/* A model token minted by `latch run --fed` or `latch fed token`, as the
 * client reports it: never the token. Strings plain, < 256 bytes. */
struct broker_mint {
	const char *profile, *rule_id;
	int64_t expires_at;
	const char *iss, *sub, *jti;
};

/* What the daemon asks to have recorded in its stream. */
struct broker_event {
	const char *event;    /* "release", "exit", "revoke", "lost", "stop", "fed_mint" */
	const char *decision; /* "allow" / "deny"; NULL for the others */
	const char *reason;   /* a denial's reason */
	const char *grant_id;
	const char *const *names;
	size_t n;
	pid_t pid; /* the requesting process (SO_PEERCRED) */
	uid_t uid;
	const char *exe; /* the command to be run, as the client resolved it */
	const char *cwd;
	char *const *argv; /* the child's argv: recorded as a keyed hash only */
	int argc;
	int exit_status;                /* exit: the child's status; else -1 */
	int64_t lost_exits;             /* lost: how many exit records were dropped */
	int64_t time;                   /* UNIX time it happened; 0: now */
	const struct broker_mint *mint; /* fed_mint */
	const char *const *paths;       /* scan_block: where values were found */
	size_t n_paths;
	const char *scope; /* scan_block: what was scanned */
	pid_t runner;      /* release: the runner forked for it */
	/* exit: redactions per name (aligned with names) and of the model
	 * token (< 0: not redacted), when the runner reported them */
	const int64_t *redacted;
	int64_t redacted_token;
	bool has_session; /* release: whether the caller said ... */
	bool in_session;  /* ... it runs inside a latch session */
	bool no_redact;   /* release: the child's output is not redacted */
};
struct broker_recorder {
	/* Take the audit stream keys the enrolling passphrase holder made
	 * for this broker (audit_stream_begin). 0 or -1. */
	int (*enrol)(void *ctx, const struct secbuf *stream_keys);
	/* Durably record `n` events, in order, in one commit: all or none.
	 * On -1 nothing may be released. */
	int (*record)(void *ctx, const struct broker_event *evs, size_t n);
	void *ctx;
};

/* Before the daemon touches anything: refuse to run traced (TracerPid), or
 * with a loader variable (LD_*) in the environment, or with a shared object
 * mapped that is not root's and unwritable by others (a preloaded library
 * that removed its own LD_PRELOAD). The process must already be
 * non-dumpable (harden_process). 0, or -1 reported. */
int broker_check_pristine(void);

/* First thing in the daemon process, before it opens anything: close
 * every inherited descriptor above 2 but `keep` (a caller's pipe must not
 * be held open) and, unless `foreground`, detach (double fork, new
 * session, /dev/null for 0-2). */
int broker_detach(bool foreground, int keep);
/* What a runner calls (struct broker_run_job, below): start the job's
 * child (its stdin, stdout and stderr are already the runner's 0, 1 and
 * 2), relay the caller's signals, stop the child's process group if the
 * caller goes away, send the exit and return the status to exit with.
 * Provided by the command that runs the daemon, so that broker/ does not
 * depend on run/. */
struct broker_run_job;
struct broker_item;
typedef int (*broker_run_fn)(const struct broker_run_job *job);
/* Optional, beside it: what the daemon prepares from a grant's values
 * when the grant arrives (the relay's compiled forms, so that no run of
 * the grant compiles them again), handed to each of its runs; discarded
 * with the values when the grant ends. */
struct broker_prep {
	void *(*prepare)(const struct broker_item *items, size_t n);
	void (*discard)(void *prepared);
};
/* Run the daemon: take the vault's lock, listen, report ready on
 * `enrol_fd`, take the enrolment from it, serve until idle, stopped or
 * signalled, write its last records, wipe, return. It stops
 * LATCH_BROKER_IDLE seconds (default 600) after its last grant ended and
 * it last served a request. */
int broker_serve(const char *vault_dir, int enrol_fd, const struct broker_recorder *rec, broker_run_fn run,
		 const struct broker_prep *prep);

/* Client side. */

/* The broker key for an instance id: derived from the data key
 * (vault_derive_key), so only a passphrase holder can make it. */
typedef int (*broker_key_fn)(void *ctx, const unsigned char instance[BROKER_INSTANCE_BYTES], struct secbuf **key);
/* What a passphrase holder gives a new broker: its instance id and key,
 * and its audit stream's keys (opening the stream in the main chain
 * records the broker's pid, hence the callback). */
typedef int (*broker_enrol_fn)(void *ctx, pid_t broker_pid, unsigned char instance[BROKER_INSTANCE_BYTES],
			       struct secbuf **key, struct secbuf **stream_keys);

/* A connection to a broker that proved itself. */
struct broker_session {
	int fd;
	pid_t pid;
	unsigned char instance[BROKER_INSTANCE_BYTES];
	unsigned char nc[32], nb[32]; /* the client's and the broker's nonces */
	struct secbuf *key;
	char sock[PATH_MAX];
};
/* Connect and challenge: 0 with *s ready, 1 if nothing listens, -1
 * (reported, LATCH_OPERR) if what answers does not prove it is a broker a
 * passphrase holder started for this vault under its current data key, or
 * is not the process on the other end of the socket. */
int broker_connect_verified(const char *vault_dir, broker_key_fn key_fn, void *ctx, struct broker_session *s);
void broker_session_close(struct broker_session *s);
/* Start a broker (exec of `self_exe broker --enrol-fd 3`, environment
 * scrubbed to latch's own variables) and enrol it. `foreground`: it does
 * not detach, and *pid_out is the child to wait for. 0, or -1 reported
 * (another process holding the broker lock is named with its pid). */
int broker_start(const char *vault_dir, const char *self_exe, bool foreground, broker_enrol_fn enrol, void *ctx,
		 pid_t *pid_out);
/* A grant or release id: `prefix` ('g' or 'r'), '-', 12 hex digits of
 * randomness. The one place ids are made. */
void broker_new_id(char prefix, char out[BROKER_ID_MAX]);

/* A secret with its value, for a grant. */
struct broker_item {
	const char *name;
	struct secbuf value;
};

/* What a human grants. */
struct broker_grant_spec {
	const char *id; /* broker_new_id('g', ...) */
	const struct broker_item *items;
	size_t n;                /* 1..BROKER_MAX_NAMES */
	const char *const *cmds; /* absolute paths; none: any command */
	size_t n_cmds;
	const char *const *allow_env; /* unsafe variables the child may keep */
	size_t n_allow_env;
	int64_t ttl;  /* seconds, 1..BROKER_MAX_TTL */
	int64_t uses; /* at most this many releases; 0 or less: no limit */
};
/* Hand a grant to a verified broker: it travels sealed under the session
 * key, bound to both nonces, its values as binary frames. 0 with
 * *deadline set; -1 reported (LATCH_DENIED if the broker refused it). */
int broker_grant(struct broker_session *s, const struct broker_grant_spec *g, int64_t *deadline);

/* A reference as `latch run` sends it: VAR gets secret NAME's value in
 * the child, as the variable or (as_file) as a sealed memory file whose
 * /dev/fd/N path VAR holds. */
struct broker_ref {
	const char *var;
	const char *name;
	bool as_file;
};

/* What `latch run` asks the broker to run. The values never come back:
 * the broker forks a runner that starts the child with them. */
struct broker_run_req {
	const char *exe;   /* the resolved program: what grants name */
	const char *cwd;   /* for the record; NULL: unknown */
	char *const *argv; /* the child's argv (any bytes but NUL) */
	char *const *env;  /* the child's environment without the references */
	const struct broker_ref *refs;
	size_t n_refs;         /* 1..BROKER_MAX_NAMES distinct names among them */
	bool in_session;       /* the caller found itself inside a latch session */
	const char *token_var; /* the variable of env holding the model token (--fed), or NULL */
	bool no_pty;           /* --no-pty: never a pseudo-terminal for the child */
	bool no_redact;        /* --no-redact: the child writes to stdout/stderr as they are */
	int stdio[3];          /* the child's stdin, stdout, stderr */
	int cwd_fd;            /* an O_PATH descriptor of the child's directory */
};

/* A started run: the connection to its runner (run/'s run_wait speaks
 * the runner's control protocol on it). */
struct broker_run {
	int fd;
	pid_t runner;
	char id[BROKER_ID_MAX];
	char reason[BROKER_REASON_MAX]; /* why not, when refused */
};

/* Ask this vault's broker to run req->exe under a live grant. The
 * request travels with the four descriptors (SCM_RIGHTS); the broker
 * records the release and forks a runner, which answers on this
 * connection. 0: started (r->fd is the runner's); 1: refused for lack of a grant, or no broker runs
 * (r->reason says which); -1 reported. */
int broker_run_start(const char *vault_dir, const struct broker_run_req *req, struct broker_run *r);
void broker_run_close(struct broker_run *r);

/* The runner's side, in the runner process the broker forked after the
 * release record became durable: what to start. The values are views
 * into the broker's memory, which the runner process has a copy of. */
struct broker_run_job {
	const char *id; /* the release */
	const char *exe;
	char *const *argv;
	char *const *env;
	const struct broker_ref *refs;
	const struct secbuf *values; /* values[i] is refs[i]'s: views into store */
	struct secbuf *store;        /* the runner's copy of the grant's values:
					wiped (secbuf_free) once the child has its own */
	size_t n_refs;
	const char *const *allow_env; /* the grant's --allow-env */
	size_t n_allow_env;
	int cwd_fd;  /* the caller's working directory (O_PATH) */
	int control; /* the caller's connection: signals in, the exit out */
	bool no_pty, no_redact;
	const char *token_var; /* the model token's variable in env, or NULL */
	/* What broker_prep made of the grant's values (NULL: nothing), and
	 * for each ref, the index of its name among the grant's. */
	const void *prepared;
	const size_t *prepared_index;
	/* Out: how many occurrences of refs[i]'s value the run redacted
	 * (redacted[n_refs]: of the model token; -1 there: none was given). */
	int64_t *redacted;
};

/* A live grant as the broker lists it (no values). */
struct broker_grant_info {
	char *id;
	char **names;
	size_t n_names;
	char **cmds; /* none: any command */
	size_t n_cmds;
	int64_t deadline;
	int64_t uses_left; /* -1: no limit */
};
struct broker_list {
	pid_t pid;
	struct broker_grant_info *grants;
	size_t n;
};
/* The live grants. 0 with *l set (broker_list_free it), 1 if no broker
 * runs (*l empty), -1 reported. */
int broker_list(const char *vault_dir, struct broker_list *l);
void broker_list_free(struct broker_list *l);
/* End grant `id`, or every live grant if `id` is NULL (narrowing: no
 * proof needed). 0 with *count set, 1 if no broker runs, -1 reported
 * (the broker's reason, escaped, e.g. no live grant of that id). */
int broker_revoke(const char *vault_dir, const char *id, int *count);

/* Have this vault's broker, if one runs, record a model token's mint in
 * its audit stream (the broker adds the reporting process's pid and uid).
 * 0 recorded, 1 no broker runs (nothing recorded), -1 reported. */
int broker_record_mint(const char *vault_dir, const struct broker_mint *m);

/* Have this vault's broker, if one runs, record a scan that blocked a
 * commit or a push (scan_block): the secrets' names, the paths (plain
 * text), what was scanned; never a value. 0 recorded, 1 no broker runs,
 * -1 reported. */
int broker_record_scan(const char *vault_dir, const char *const *names, size_t n, const char *const *paths,
		       size_t n_paths, const char *scope);

/* Ask a running daemon to write the exit records it holds, so that what
 * the audit log shows is complete. 0 if written or no daemon runs. */
int broker_flush(const char *vault_dir);
/* Ask the daemon to stop (narrowing: no proof needed) and wait up to
 * `wait_ms` until it is gone. 0 stopped or none ran (*pid_out its pid, or
 * 0), -1 reported. */
int broker_stop(const char *vault_dir, int wait_ms, pid_t *pid_out);

#endif
