/* run: what `latch run` does around the child (docs/design.md section 2):
 * find the references, resolve the command, build the child's
 * environment, deliver values as variables or sealed memory files, exec,
 * pass signals and the exit status through. Values never go into argv,
 * and never onto a disk. */
#ifndef LATCH_RUN_H
#define LATCH_RUN_H

#include "../common/common.h"

#include <limits.h>

#define RUN_MAX_REFS 64
#define RUN_SCHEME "latch://"

/* One reference: VAR gets the value of secret NAME, as the variable's
 * value, or (as_file) as "/dev/fd/N", a sealed 0600 memory file the child
 * inherits at descriptor N (3, 4, ... in the order of the references). */
struct run_ref {
	char *var;
	char *name;
	bool as_file;
	size_t secret; /* its secret: p->secrets[secret] (run_secrets) */
};

/* A secret the plan needs, and its value once released: a view into the
 * plan's store, or into `own` (a buffer of its own). Refs that name the
 * same secret share it. */
struct run_secret {
	const char *name; /* the first ref's */
	struct secbuf value;
	struct secbuf *own;
};

/* A variable latch sets in the child itself (the model token with
 * --fed): copied into the secure buffer the references' values go in. */
struct run_var {
	const char *name;
	const char *value;
	size_t len;
};
#define RUN_MAX_VARS 4

struct run_plan {
	struct run_ref refs[RUN_MAX_REFS];
	size_t n_refs;
	struct run_secret secrets[RUN_MAX_REFS];
	size_t n_secrets;
	struct secbuf *store; /* the buffer values are views into, if one */
	bool pristine;        /* start from an empty environment */
	bool no_pty;          /* never a pseudo-terminal (--no-pty) */
	bool no_redact;       /* the child writes to the caller's own descriptors (--no-redact) */
	/* The variable that holds the model token (--fed), whose value the
	 * relay keeps out of the output as [latch:model-token]; NULL none. */
	const char *token_var;
	/* A relay compiled beforehand (the broker's, for the whole grant) to
	 * use instead of compiling one (when there is no model token to add),
	 * and secrets[i]'s needle in it; NULL: compile. Not the plan's to free. */
	const struct run_redactor *prepared;
	size_t prepared_index[RUN_MAX_REFS];
	/* After a runner's run: occurrences redacted per secret (aligned
	 * with secrets[]) and of the model token (-1: there was none). */
	int64_t redacted[RUN_MAX_REFS];
	int64_t redacted_token;
	bool has_redacted;        /* run_child: the counts came back from its runner */
	char *keep[RUN_MAX_REFS]; /* with pristine: variables to keep */
	size_t n_keep;
	struct run_var vars[RUN_MAX_VARS]; /* set last, over any other */
	size_t n_vars;
	/* Unsafe variables (run_env_unsafe) the grant lets the child keep
	 * (grant --allow-env), as the broker said at release. */
	const char *allow_env[16];
	size_t n_allow_env;
	/* The environment to start from instead of latch's own (a runner's:
	 * what the caller sent), or NULL. */
	char *const *base_env;
	/* Variables the child must not get (federation's list), or NULL. */
	bool (*drop)(const char *name, size_t len);
	/* While the child runs: called `tick_s` seconds after it starts, then
	 * after as many seconds as it returns (0 or less: no more calls).
	 * For --fed-file, which refreshes a file the child reads. */
	int (*tick)(void *ctx);
	void *tick_ctx;
	int tick_s;
	char *const *argv;   /* the command and its arguments */
	char path[PATH_MAX]; /* the resolved command */
};

/* True if a variable of this name (`len` bytes, no '=') makes a program
 * load, run or print what its caller chose (LD_PRELOAD, BASH_ENV,
 * PYTHONPATH, ...; run/env.c has the list and why). No reference may
 * target one, and no child gets one, wherever it comes from. */
bool run_env_unsafe(const char *name, size_t len);

/* Add a reference "VAR=latch://NAME" (from --env or --file). */
int run_add_ref(struct run_plan *p, const char *spec, bool as_file);
/* Add the references of an env file: VAR=latch://NAME lines, '#'
 * comments, blank lines, an optional "export ". Anything else is refused:
 * the file is meant to be committed, so it must hold no values. */
int run_add_env_file(struct run_plan *p, const char *path);
/* Add references found in this process's environment (VAR=latch://NAME). */
int run_add_environ(struct run_plan *p, char *const *envp);
/* Collect the distinct secrets the plan needs, in first-use order, into
 * p->secrets, and link each reference to its own. Returns how many. */
size_t run_secrets(struct run_plan *p);
/* Wipe and free every value the plan holds (its store, and each secret's
 * own buffer); the views become empty. Idempotent. */
void run_values_free(struct run_plan *p);

/* Resolve a command as execvp would (a name with '/' as is, else along
 * PATH), then to its real path, which is what grants name and what runs.
 * Returns 0, or 127 (not found) / 126 (not executable) after reporting. */
int run_resolve(const char *cmd, char out[PATH_MAX]);

/* Run the plan's command with the values of its secrets (each set), in
 * this process's directory, on its stdin, stdout and stderr: a runner
 * forked here (run_serve: a pseudo-terminal under a terminal, the relay,
 * the --file memory files) while this process waits as run_wait does;
 * its copy of the values is wiped as soon as the runner has them. Returns
 * the status to exit with: the child's, 128+N if it died of signal N,
 * 126/127 if it could not be run, 125 if latch failed before exec
 * (reported). */
int run_child(struct run_plan *p);

/* Free the references and every value (run_values_free). */
void run_plan_free(struct run_plan *p);

/* The environment `latch run` sends the broker for a runner: latch's
 * own, less what --pristine/--keep, the references' variables and `drop`
 * remove, with the plan's latch variables (--fed) added; the unsafe
 * variables stay in it (the runner removes them, keeping those the grant
 * allows). NULL-terminated; NULL out of memory. */
char **run_request_env(const struct run_plan *p);
void run_request_env_free(char **env, const struct run_plan *p);

/* ---- The runner (in a process the broker forked) ---- */

/* After the caller of a runner went away, its child's process group gets
 * SIGTERM, and SIGKILL this much later if still there. */
#define RUN_GRACE_MS 3000

/* Be the runner of the plan's command (run/runner.c): with the caller's
 * stdin, stdout and stderr at this process's 0-2, in the directory
 * `cwd_fd` (-1: this one), starting from p->base_env (or environ),
 * scrubbed of the unsafe variables but those p->allow_env names. Under a
 * terminal (stdin or stdout, and not p->no_pty) the child gets a
 * pseudo-terminal of its own, the caller's terminal goes raw and is
 * restored on every way out; what the child writes to the pty or to pipes
 * goes through the redaction relay (unless p->no_redact or nothing is to
 * be kept out). The caller's messages on `control` ({"signal": N}, one a
 * line) become signals to the child's process group; a child stopped on
 * its terminal is reported ({"stopped": N}); if `control` closes (the
 * caller died, even by SIGKILL), the group gets SIGTERM, then SIGKILL
 * after RUN_GRACE_MS. At the end {"exit": status, ...} goes to the caller
 * if it is still there, with the redaction counts, which also land in
 * p->redacted. Returns the child's status as latch run exits with it
 * (128+N for signal N, 125-127 when it could not start). */
int run_serve(struct run_plan *p, int cwd_fd, int control);

/* The caller's side (run/caller.c): wait on `control`, a runner's
 * connection, until the child ends, passing this process's SIGINT,
 * SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT, SIGWINCH, SIGUSR1 and
 * SIGUSR2 on as messages (and stopping after SIGTSTP, or when the runner
 * says the child stopped on its terminal); signals that would end it
 * before the child does (SIGALRM, SIGPIPE, real-time, ...) are blocked
 * and stay blocked; p->tick runs on its schedule. Returns the child's
 * status, or 125 if the runner went away without saying (reported). */
int run_wait(int control, struct run_plan *p);

/* ---- Sandbox (run/sandbox.c) ---- */

/* The Landlock ABI the kernel offers, 0 if none (or disabled);
 * LATCH_LANDLOCK_ABI_MAX (a number) caps it, so tests can simulate an old
 * kernel — only downwards: a larger number changes nothing, and a value
 * that is not a plain decimal number caps it at 0 (never pretends). */
int run_landlock_abi(void);

/* What a session's domain scopes, for `latch status`: abi is the ABI the
 * domain was made under; ptrace covers ptrace and the /proc/PID files
 * that need it (environ, mem, fd/N); signals and abstract_unix are the
 * ABI-6 scopes. */
struct run_sandbox {
	int abi;
	bool ptrace;
	bool signals;
	bool abstract_unix;
};

/* Put this process (and what it starts) in a new Landlock domain:
 * no_new_privs, a ruleset handling no filesystem or network access (so
 * files and the network work as before) but scoping signals and abstract
 * unix sockets when the ABI is 6 or more; ptrace and /proc access to
 * processes outside the domain are refused by Landlock itself at every
 * ABI. Refuses (LATCH_OPERR, one line saying why, nothing changed) when:
 * running as root (euid 0: Landlock does not hold root back), Landlock
 * is missing or disabled, or the ABI is below 6 (signal scoping is what
 * keeps the agent from signalling the broker's children). Call it while
 * the process has one thread: the domain is the calling thread's, and
 * what it starts after. If the kernel refuses the final step (more than
 * 16 nested domains), no_new_privs stays set, as it cannot be undone.
 * 0 and *out filled, or -1. */
int run_sandbox_enter(struct run_sandbox *out);

/* Whether run_sandbox_enter could succeed here: 0, or -1 with `why` (a
 * clause for "cannot sandbox: ...": root, no Landlock, too old an ABI)
 * filled. *abi: run_landlock_abi(). Reports nothing. */
int run_sandbox_available(int *abi, char *why, size_t n);

/* Whether this process is inside a `latch session` (or another Landlock
 * domain scoping signals): a probe, not trust in a variable. The session
 * sets LATCH_SESSION to its launcher's pid; we are inside if that
 * process is ours (its uids, from /proc/PID/status) and kill(pid, 0)
 * fails with EPERM, which for a process of our own uid only a signal
 * scope does. An agent outside that sets the variable gets a working
 * kill and the truth. Since the variable can also be removed, our
 * ancestors are probed the same way: the launcher is one of them. True
 * with *launcher (may be NULL) the process found out of reach. */
bool run_in_session(pid_t *launcher);

/* ---- Redaction (run/redact.c; docs/redaction.md) ---- */
#define RUN_REDACT_MIN 6      /* values shorter than this are not matched */
#define RUN_REDACT_IDLE_MS 10 /* the I/O loop flushes after this much quiet */

/* A value to keep out of the output, and the name its marker shows:
 * "[latch:NAME]". */
struct run_needle {
	const char *name;
	const unsigned char *value;
	size_t len;
};
struct run_redactor;   /* the needles compiled: one per run */
struct run_redact_out; /* one output stream (stdout, stderr, a pty) */

/* Compile every encoded form (match_forms, min_len RUN_REDACT_MIN) of
 * each needle's value; needles shorter than RUN_REDACT_MIN are skipped
 * (run_redactor_skipped says which). The forms live in secure memory;
 * the caller's values are not kept (it may wipe them on return). NULL
 * reported. */
struct run_redactor *run_redactor_new(const struct run_needle *needles, size_t n);
bool run_redactor_skipped(const struct run_redactor *r, size_t needle);
void run_redactor_free(struct run_redactor *r); /* NULL-safe, wipes */

/* A stream that writes to `fd` (write_all; blocking). It uses `r`, which
 * must outlive it. NULL reported. */
struct run_redact_out *run_redact_out_new(const struct run_redactor *r, int fd);
/* Take n bytes the child wrote: write to fd every byte that can no longer
 * be part of an occurrence, each occurrence replaced by [latch:NAME];
 * hold back the rest (the bytes from the start of the longest tail that
 * is still a proper prefix of some form: at most the longest form minus
 * one byte of text, plus the escape sequences among them). An occurrence
 * is a form either in the bytes as they are or in the text with escape
 * sequences left out; overlapping and touching occurrences make one
 * marker, named after the one that starts first. 0, or -1 with errno
 * (the write failed). */
int run_redact_feed(struct run_redact_out *o, const unsigned char *p, size_t n);
/* How many bytes are held back now: fed but neither written nor replaced
 * by a marker yet (the I/O loop arms its 10 ms timer when this is not
 * 0). */
size_t run_redact_held(const struct run_redact_out *o);
/* Write everything held back (after RUN_REDACT_IDLE_MS of quiet, and at
 * the end of the stream): occurrences already found as markers, the rest
 * as it is, even a prefix of a value. An occurrence that began before the
 * flush and ends after it is still found; what of it was not written yet
 * becomes a marker. 0 or -1 as feed. */
int run_redact_flush(struct run_redact_out *o);
/* Occurrences replaced so far in this stream for needle i: the markers
 * its occurrences were part of. */
uint64_t run_redact_count(const struct run_redact_out *o, size_t needle);
void run_redact_out_free(struct run_redact_out *o); /* NULL-safe, wipes */

#endif
