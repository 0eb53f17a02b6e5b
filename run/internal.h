/* run/ internals: shared by exec.c (the plan, the environment, the
 * memory files, the spawn) and runner.c (the runner's loop: the
 * pseudo-terminal, the relay, the caller's messages); not by other
 * modules. */
#ifndef LATCH_RUN_INTERNAL_H
#define LATCH_RUN_INTERNAL_H

#include "run.h"

#include <jansson.h>
#include <signal.h>
#include <sys/types.h>

/* Signals whose default would end latch while it waits (SIGALRM, SIGPIPE,
 * SIGXCPU, real-time signals, ...): blocked, never acted on. */
void run_held_signals(sigset_t *set);
/* The dispositions a child starts with at their default: the held
 * signals, the forwarded ones, SIGTSTP and SIGCHLD. */
void run_default_signals(sigset_t *set);

/* Everything before the spawn: the values checked, the memory files made
 * (fds[0..*n_files), at or above 3 + *n_files), the environment built
 * (*env, its strings in *store), and the plan's own copy of the values
 * wiped. 0, or the status to exit with (reported). */
int run_prepare(struct run_plan *p, int *fds, size_t *n_files, char ***env, struct secbuf **store);
void run_close_files(int *fds, size_t n_files);

/* What the child gets at 0, 1 and 2: fd[i] -1 keeps ours; else fd[i]
 * (at or above 3 + n_files) is moved there. With tty >= 0 (a pseudo-
 * terminal's slave, the caller's controlling terminal, at or above 3 +
 * n_files), the child gets it at each i with on_tty[i], and its process
 * group is the terminal's foreground group from before its exec. */
struct run_stdio {
	int fd[3];
	int tty;
	bool on_tty[3];
};

/* Start the child: its stdio as `io` says (NULL: ours), the --file
 * descriptors at 3.., nothing else; default dispositions for `dfl` and
 * an empty mask; a process group of its own with `own_group` (always
 * with a terminal); in directory `cwd_fd` if not -1. 0 with
 * *pid set, or the status to exit with (reported). The caller has every
 * signal blocked. */
int run_spawn(const struct run_plan *p, char **env, const int *fds, size_t n_files, const sigset_t *dfl, bool own_group,
	      int cwd_fd, const struct run_stdio *io, pid_t *pid);

/* The runner's control protocol (run/ctl.c): one JSON object a line.
 * run_ctl_send: `m` as one line, whole; 0, or -1 (fd -1 or gone, or more
 * than 4 KiB). run_ctl_read: read what has arrived on `fd` into buf (cap
 * bytes, *len in use) and hand each whole line to on() (NULL if it is not
 * JSON) until on() returns non-zero, which is returned; 0 when all is
 * handled; -1 when the other end is gone (EOF, an error, a line longer
 * than cap). */
int run_ctl_send(int fd, json_t *m);
int run_ctl_read(int fd, char *buf, size_t cap, size_t *len, int (*on)(json_t *m, void *ctx), void *ctx);

/* A wait status as latch run exits with it: the code, 128+N for signal
 * N, 125 otherwise. */
int run_status_of(int ws);

#endif
