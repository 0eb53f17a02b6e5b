/* broker/ private: the daemon's state, and the parts that work on it:
 * grant policy (policy.c: pure functions of a grant and the time), the
 * exit queue (exits.c), the protocol (protocol.c: a request in, its
 * answer out) and the serve loop (daemon.c). Everything the daemon knows
 * is in one struct broker, passed to each, so that the protocol can be
 * driven without a socket or a daemon (tests/unit/test_broker_dispatch.c,
 * tests/fuzz/fuzz_broker_request.c). */
#ifndef LATCH_BROKER_STATE_H
#define LATCH_BROKER_STATE_H

#include "broker.h"
#include "auth.h"
#include "wire.h"

#include <sys/socket.h>

/* A granted secret: its name and its value, a view into the grant's
 * store. */
struct grant_item {
	char *name;
	struct secbuf value;
};

/* A granted program as the broker found it when the grant arrived: a
 * program replaced (a new inode) or changed in place (size, mtime or
 * ctime; ctime cannot be set back by a process of the user) since then
 * is not the program the human granted. */
struct pin {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct grant {
	char id[BROKER_ID_MAX];
	size_t n;
	struct grant_item items[BROKER_MAX_NAMES];
	struct secbuf *store; /* the opened grant: every value lives here */
	size_t n_cmds;
	char *cmds[BROKER_MAX_CMDS];
	struct pin pins[BROKER_MAX_CMDS]; /* cmds[i]'s, taken by the broker itself */
	size_t n_allow_env;
	char *allow_env[BROKER_MAX_ALLOW_ENV];
	int64_t deadline;
	int64_t uses_left; /* -1: unlimited */
	const char *ended; /* NULL while live; else why it ended */
	void *prepared;    /* broker_prep's, discarded with the values */
	void (*discard)(void *prepared);
	struct grant *next;
};

/* A release whose child has not reported its exit yet, or (on the
 * pending list) whose exit record waits for the next commit. */
struct release {
	char id[BROKER_ID_MAX];
	char grant_id[BROKER_ID_MAX];
	size_t n;
	char *names[BROKER_MAX_NAMES];
	pid_t runner; /* the runner that starts its child, reaped for the exit */
	int report;   /* the runner's report (redactions), read when it is reaped; -1 */
	bool has_redacted;
	int64_t redacted[BROKER_MAX_NAMES]; /* aligned with names */
	int64_t redacted_token;
	pid_t pid; /* who reported the exit: the runner */
	uid_t uid;
	int status;
	int64_t time;
	struct release *next;
};

/* Exit records queue here: at most this many, for at most
 * BROKER_EXIT_FLUSH_MS, and a flush that keeps failing gives up on them
 * rather than hold every later release hostage; how many were lost is
 * recorded with the next commit that succeeds. */
#define EXITS_MAX_PENDING (BROKER_RECORD_BATCH - 2)
#define EXITS_MAX_FAILURES 20
/* Releases whose exit is awaited: a child that never reports is
 * forgotten past this many. */
#define EXITS_MAX_AWAITED 4096

struct broker {
	struct grant *grants;
	struct release *releases; /* awaiting their exit, newest first */
	size_t n_releases;
	struct release *pending, **pending_tail;
	size_t n_pending;
	int64_t pending_since_ms; /* monotonic time of the oldest pending exit */
	int flush_failures;
	int64_t lost; /* exit records dropped and not yet said so */
	const struct broker_recorder *rec;
	struct secbuf *key; /* from the enrolment */
	unsigned char instance[BROKER_INSTANCE_BYTES];
	pid_t pid;                      /* the daemon's, for its answers and records */
	bool stop_asked;                /* a "stop" request came */
	broker_run_fn run;              /* what a runner calls; NULL: this broker runs nothing */
	const struct broker_prep *prep; /* NULL: nothing is prepared */
	size_t n_runners;               /* runners forked and not reaped yet */
	/* Scratch for one commit: a "lost" record, the pending exits, the
	 * event itself. */
	struct broker_event batch[BROKER_RECORD_BATCH];
};

/* One connection's side of the protocol: who the kernel says the peer is,
 * and the challenge it was given. */
struct broker_peer {
	struct ucred cred;
	int conn_fd; /* the connection itself: a runner takes it over */
	bool hello;  /* challenged: nc and nb are set */
	/* Descriptors that came with the request (SCM_RIGHTS): a run's
	 * stdin, stdout, stderr and working directory; -1 unused. */
	int fds[4];
	size_t n_fds;
	bool fds_bad; /* more than four came, or more than once */
	bool granted;
	unsigned char nc[AUTH_NONCE_BYTES], nb[AUTH_NONCE_BYTES];
};

/* UNIX time (monotonic milliseconds: common's monotonic_ms). */
int64_t broker_now(void);

/* A fresh state recording through `rec`; state_free forgets every value
 * and frees everything. */
void state_init(struct broker *b, const struct broker_recorder *rec);
void state_free(struct broker *b);

/* ---- policy.c: pure functions of grants and the time ---- */

/* Live: not ended, before its deadline, uses left. */
bool policy_live(const struct grant *g, int64_t now);
/* The item of `name` in g, or NULL. */
const struct grant_item *policy_item(const struct grant *g, const char *name);
/* True if g has no command list or lists `cmd`. */
bool policy_allows_cmd(const struct grant *g, const char *cmd);
/* Pin every program of a grant (stat, by the broker itself): 0, or -1
 * with `why` saying which could not be pinned. */
int policy_pin(struct grant *g, char *why, size_t len);
/* Whether `cmd`, one of the grant's programs (or any, with none named),
 * is still the file that was pinned: true, or false with `why`. */
bool policy_pin_holds(const struct grant *g, const char *cmd, char *why, size_t len);
/* The first grant of `list` live at `now` that covers every name and
 * allows `cmd`; NULL if none. */
struct grant *policy_find(struct grant *list, const char *const *names, size_t n, const char *cmd, int64_t now);
/* Why no grant of `list` covers the request: for a refusal and its record. */
void policy_denial(const struct grant *list, const char *const *names, size_t n, const char *cmd, int64_t now,
		   char *buf, size_t len);
/* Wipe g's values and mark it ended (the first reason stays). */
void policy_end(struct grant *g, const char *why);
/* End every grant of `list` past its deadline at `now`. */
void policy_sweep(struct grant *list, int64_t now);
/* Count one release against g: it ends ("used up") with its last use. */
void policy_use(struct grant *g);
/* Free a grant (its values wiped). NULL-safe. */
void policy_grant_free(struct grant *g);

/* ---- exits.c: the exit queue ---- */

/* Record a "lost" count, the pending exits, then `ev` (if any), in one
 * durable commit. If that fails and `ev` is given, `ev` is tried alone: a
 * release must not be refused because an earlier exit could not be
 * written. 0, or -1 if `ev` (or, without one, the queue) was not written. */
int exits_record(struct broker *b, const struct broker_event *ev);
/* Await the exit of release `id` of grant g for `names`, whose child
 * `runner` starts. */
void exits_await(struct broker *b, const char *id, const struct grant *g, const char *const *names, size_t n,
		 pid_t runner, int report);
/* The runner `runner` ended with `status` (its child's): its release's
 * exit is queued for the next commit. 0 queued, 1 no such release
 * awaited, -1 it had to be written now and could not be. */
int exits_report(struct broker *b, pid_t runner, int status);
/* True if the queue's oldest exit has waited BROKER_EXIT_FLUSH_MS. */
bool exits_due(const struct broker *b, int64_t now_ms);
/* Milliseconds until the queue is due (0 if due; -1 if empty). */
int64_t exits_wait_ms(const struct broker *b, int64_t now_ms);
void exits_free(struct broker *b);

/* ---- runner.c: forking runners and reaping them ---- */

/* Fork the runner of `job` (release job->id of grant g, the caller's
 * stdio in stdio[0..3)). It waits for runner_go before it touches
 * anything: the release is recorded with its pid first. Returns its pid
 * with *gate set and *report the read end of what it says when its child
 * has ended (the redactions, one line of JSON), or -1 reported. */
pid_t runner_fork(struct broker *b, const struct grant *g, const struct broker_run_job *job, const int stdio[3],
		  int *gate, int *report);
/* Let the runner go (`go`), or end it unstarted; closes the gate. An
 * ended runner is reaped here, and never reported as an exit. */
void runner_go(struct broker *b, pid_t pid, int gate, bool go);
/* Reap every runner that has ended and queue its exit. */
void runner_reap(struct broker *b);

/* ---- protocol.c: a request in, its answer out ---- */

/* The first whole request in p[0..len), answered. Returns the answer (a
 * message in secure memory) and sets *used to the bytes consumed; NULL
 * with *used 0: the request is not complete yet; NULL with *used set:
 * close the connection (a runner took it over, or no answer could be
 * made: out of memory). */
struct secbuf *proto_answer(struct broker *b, struct broker_peer *c, const unsigned char *p, size_t len, size_t *used);
/* Take an enrolment (instance id, key, audit stream keys) from its
 * message and hand the stream keys to the recorder. 0 or -1 reported. */
int proto_enrol(struct broker *b, const struct wire_msg *m);

#endif
