/* agent: the broker daemon and its client (DESIGN.md sections 1 P5/P6, 2).
 *
 * The daemon holds granted values in locked memory, enforces each grant's
 * deadline, use count and command list, writes the audit records of
 * releases (it holds the audit writer key, never the data key), and forgets
 * a value at its deadline, when its uses run out, on revoke, and on exit.
 * Grant policy lives only in its memory.
 *
 * Exit records are not on any run's critical path: the daemon answers an
 * exit report at once and writes the record with its next commit (the
 * next release, refusal or revoke), after AGENT_EXIT_FLUSH_MS of quiet,
 * when asked to flush (every `latch audit` command asks first), or when
 * it stops. A release record is always durable before its values leave.
 *
 * Protocol: a UNIX stream socket in a 0700 directory; one request per
 * connection, one JSON object on one line each way; the peer must have the
 * daemon's uid (SO_PEERCRED). Values travel base64-encoded inside JSON
 * built with the wiping allocator (common.h). */
#ifndef LATCH_AGENT_H
#define LATCH_AGENT_H

#include "../common/common.h"

#include <jansson.h>
#include <limits.h>

#define AGENT_MAX_MESSAGE (8u << 20)
#define AGENT_MAX_NAMES 64
#define AGENT_MAX_CMDS 16
#define AGENT_DEFAULT_TTL (15 * 60)
#define AGENT_MAX_TTL (24 * 3600)
#define AGENT_EXIT_FLUSH_MS 50
#define AGENT_RECORD_BATCH 257 /* pending exits + the event itself */

/* The socket for the vault in `vault_dir`: <runtime>/latch/agent-<hash>.sock,
 * where <runtime> is $XDG_RUNTIME_DIR, else /tmp/latch-<uid> (made 0700).
 * One daemon per vault. */
int agent_paths(const char *vault_dir, char sock[PATH_MAX], char lock[PATH_MAX]);

/* What the daemon asks to have recorded. The daemon does not know the
 * audit log's format: the caller (cli/) supplies a recorder. */
struct agent_event {
	const char *event;    /* "release", "exit", "revoke" */
	const char *decision; /* "allow" / "deny"; NULL for exit, revoke */
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
	int exit_status; /* exit: the child's status; else -1 */
	int64_t time;    /* UNIX time it happened; 0: now */
};
struct agent_recorder {
	/* 0 if `writer_key` opens this vault's audit log: the proof that a
	 * grant comes from someone who typed the passphrase. */
	int (*check_key)(void *ctx, const struct secbuf *writer_key);
	/* Durably record `n` events, in order, in one commit: all or none.
	 * On -1 nothing may be released. */
	int (*record)(void *ctx, const struct secbuf *writer_key, const struct agent_event *evs, size_t n);
	void *ctx;
};

/* First thing in the daemon process, before it opens anything: close
 * every inherited descriptor above 2 (a caller's pipe must not be held
 * open) and, unless `foreground`, detach (double fork, new session,
 * /dev/null for 0-2). */
int agent_detach(bool foreground);
/* Run the daemon: bind, serve until idle or signalled, wipe, return.
 * It stops LATCH_AGENT_IDLE seconds (default 600) after its last grant
 * ended and it last served a request. */
int agent_serve(const char *vault_dir, const struct agent_recorder *rec);

/* Send one request and read the response. Returns 0 with *resp set, 1 if
 * no daemon is listening, -1 on error. */
int agent_call(const char *vault_dir, json_t *req, json_t **resp);
/* Ask a running daemon to write the exit records it holds, so that what
 * the audit log shows is complete. 0 if written or no daemon runs. */
int agent_flush(const char *vault_dir);
/* Start the daemon if none is listening (exec of `self_exe agent`), and
 * wait until it answers. */
int agent_ensure(const char *vault_dir, const char *self_exe);

#endif
