/* Running the child: environment, memory files, exec, signals, status. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <sodium.h>
#include <unistd.h>

extern char **environ;

/* Signals a child starts with at their default, besides the held ones:
 * those latch run passes on, whatever latch itself does with them. */
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
#define N_FORWARDED (sizeof forwarded / sizeof forwarded[0])

/* Signals whose default would end latch while it waits, before the exit
 * is recorded: a harness's alarm or CPU limit, a closed pipe, a profiler,
 * a stray real-time signal, and SIGIO, SIGPWR, SIGSTKFLT, which end a
 * process by default too. Blocked, not handled, so nothing runs in latch
 * for them. SIGUSR1/2 are forwarded instead (`forwarded` above). */
void run_held_signals(sigset_t *set)
{
	static const int held[] = {SIGALRM, SIGPIPE, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT};
	sigemptyset(set);
	for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
		sigaddset(set, held[i]);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaddset(set, sig);
}

void run_default_signals(sigset_t *set)
{
	run_held_signals(set);
	for (size_t i = 0; i < N_FORWARDED; i++)
		sigaddset(set, forwarded[i]);
	sigaddset(set, SIGTSTP);
	sigaddset(set, SIGCHLD);
}

static const struct secbuf *value_of(const struct run_plan *p, size_t ref)
{
	return &p->secrets[p->refs[ref].secret].value;
}

static bool named(const char *const *list, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && !strncmp(list[i], s, len))
			return true;
	return false;
}

/* Whether the child keeps variable `e` (its name `vlen` bytes) of the
 * base environment: not with --pristine unless kept, not one a reference
 * or a latch variable sets, not one `drop` names, and (with `scrub`) not
 * an unsafe one the grant does not allow. */
static bool kept(const struct run_plan *p, const char *e, size_t vlen, bool scrub)
{
	for (size_t i = 0; i < p->n_refs; i++)
		if (strlen(p->refs[i].var) == vlen && !strncmp(p->refs[i].var, e, vlen))
			return false;
	for (size_t i = 0; i < p->n_vars; i++)
		if (strlen(p->vars[i].name) == vlen && !strncmp(p->vars[i].name, e, vlen))
			return false;
	return !(p->pristine && !named((const char *const *)p->keep, p->n_keep, e, vlen)) &&
	       !(scrub && run_env_unsafe(e, vlen) && !named(p->allow_env, p->n_allow_env, e, vlen)) &&
	       !(p->drop && p->drop(e, vlen));
}

/* The child's environment: the base (ours, or a runner's caller's) less
 * what `kept` removes, with every reference set to its value, or for
 * --file to "/dev/fd/N" (N = 3, 4, ... in order). */
static char **build_env(const struct run_plan *p, struct secbuf **store)
{
	char *const *base = p->base_env ? p->base_env : environ;
	size_t count = 0;
	for (char *const *e = base; e && *e; e++)
		count++;
	char **env = calloc(count + p->n_refs + p->n_vars + 1, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (char *const *e = base; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (kept(p, *e, eq ? (size_t)(eq - *e) : strlen(*e), true))
			env[k++] = *e;
	}
	/* One secure buffer holds every "VAR=value" string. */
	size_t need = 0;
	for (size_t i = 0; i < p->n_refs; i++) {
		need += strlen(p->refs[i].var) + 2;
		need += p->refs[i].as_file ? sizeof "/dev/fd/" + 3 * sizeof(int) : value_of(p, i)->len;
	}
	for (size_t i = 0; i < p->n_vars; i++)
		need += strlen(p->vars[i].name) + 2 + p->vars[i].len;
	struct secbuf *b = secbuf_new(need + 1);
	if (!b) {
		free(env);
		return NULL;
	}
	int fd = 3;
	for (size_t i = 0; i < p->n_refs; i++) {
		char *s = (char *)b->data + b->len;
		size_t len = strlen(p->refs[i].var);
		memcpy(s, p->refs[i].var, len);
		s[len++] = '=';
		if (p->refs[i].as_file) {
			len += (size_t)sprintf(s + len, "/dev/fd/%d", fd++);
		} else {
			const struct secbuf *v = value_of(p, i);
			memcpy(s + len, v->data, v->len);
			len += v->len;
		}
		s[len] = '\0';
		b->len += len + 1;
		env[k++] = s;
	}
	for (size_t i = 0; i < p->n_vars; i++) {
		char *s = (char *)b->data + b->len;
		size_t len = strlen(p->vars[i].name);
		memcpy(s, p->vars[i].name, len);
		s[len++] = '=';
		memcpy(s + len, p->vars[i].value, p->vars[i].len);
		len += p->vars[i].len;
		s[len] = '\0';
		b->len += len + 1;
		env[k++] = s;
	}
	env[k] = NULL;
	*store = b;
	return env;
}

/* --file values: no file on any disk, nothing to remove if latch is
 * killed. Each is a memory file (memfd), 0600, sealed against writing,
 * growing and shrinking, that the child inherits as descriptor 3, 4, ...;
 * ours is closed once the child has it, so the value lives exactly as
 * long as the child and what it passes the descriptor to. They are moved
 * to numbers at or above 3 + n_files, so no move to 3.. in the child
 * overwrites one not yet moved, and none is a dup2 onto itself (which
 * would leave close-on-exec set). */
static int make_files(const struct run_plan *p, int *fds, size_t n_files)
{
	size_t k = 0;
	for (size_t i = 0; i < p->n_refs; i++) {
		if (!p->refs[i].as_file)
			continue;
		const struct secbuf *v = value_of(p, i);
		int m = memfd_create("latch-file", MFD_ALLOW_SEALING | MFD_CLOEXEC);
		if (m < 0)
			return latch_error(LATCH_OPERR, "cannot create a memory file for '%s': %s", p->refs[i].var,
					   strerror(errno));
		fds[k] = fcntl(m, F_DUPFD_CLOEXEC, (int)(3 + n_files));
		int e = errno;
		close(m);
		if (fds[k] < 0)
			return latch_error(LATCH_OPERR, "cannot create a memory file for '%s': %s", p->refs[i].var,
					   strerror(e));
		if (fchmod(fds[k], 0600) != 0 || write_all(fds[k], v->data, v->len) != 0 ||
		    fcntl(fds[k], F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0 ||
		    lseek(fds[k], 0, SEEK_SET) != 0)
			return latch_error(LATCH_OPERR, "cannot fill the memory file for '%s': %s", p->refs[i].var,
					   strerror(errno));
		k++;
	}
	return 0;
}

void run_close_files(int *fds, size_t n_files)
{
	for (size_t i = 0; i < n_files; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* Everything before the spawn: the values checked, the memory files
 * made (fds[0..*n_files)), the environment built (*env, its strings in
 * *store), and the plan's own copy of the values wiped. 0, or the status
 * to exit with (reported). */
int run_prepare(struct run_plan *p, int *fds, size_t *n_files, char ***env, struct secbuf **store)
{
	*n_files = 0;
	for (size_t i = 0; i < RUN_MAX_REFS; i++)
		fds[i] = -1;
	for (size_t i = 0; i < p->n_refs; i++) {
		const struct secbuf *v = value_of(p, i);
		if (!v->data)
			return latch_error(LATCH_OPERR, "no value for '%s'", p->refs[i].name), 125;
		/* Checked here too: a runner's references come off a socket. */
		if (run_env_unsafe(p->refs[i].var, strlen(p->refs[i].var)))
			return latch_error(LATCH_USAGE, "a reference may not set '%s'", p->refs[i].var), 125;
		if (!p->refs[i].as_file && memchr(v->data, '\0', v->len))
			return latch_error(
				       LATCH_USAGE,
				       "secret '%s' holds a NUL byte, which no variable can carry: use --file %s=latch://%s",
				       p->refs[i].name, p->refs[i].var, p->refs[i].name),
			       125;
		*n_files += p->refs[i].as_file;
	}
	if (make_files(p, fds, *n_files) != 0)
		return 125;
	if (!(*env = build_env(p, store)))
		return latch_error(LATCH_OPERR, "cannot build the child's environment"), 125;
	/* From here the environment is the one copy of the values in latch. */
	run_values_free(p);
	return 0;
}

int run_spawn(const struct run_plan *p, char **env, const int *fds, size_t n_files, const sigset_t *dfl, bool own_group,
	      int cwd_fd, const struct run_stdio *io, pid_t *pid)
{
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	if (posix_spawnattr_init(&attr) != 0)
		return latch_error(LATCH_OPERR, "cannot start '%s': out of memory", p->path), 125;
	if (posix_spawn_file_actions_init(&fa) != 0) {
		posix_spawnattr_destroy(&attr);
		return latch_error(LATCH_OPERR, "cannot start '%s': out of memory", p->path), 125;
	}
	/* The child gets 0-2 and its --file descriptors, nothing else of
	 * ours: a --passphrase-fd, the vault, a socket, whatever latch's own
	 * parent left open. (closefrom_np: glibc 2.34.) */
	int err = 0;
	/* The directory first: the moves below may land on its descriptor. */
	if (cwd_fd >= 0)
		err = posix_spawn_file_actions_addfchdir_np(&fa, cwd_fd);
	for (size_t i = 0; i < n_files && !err; i++)
		err = posix_spawn_file_actions_adddup2(&fa, fds[i], (int)(3 + i));
	for (int i = 0; io && i < 3 && !err; i++) {
		if (io->tty >= 0 && io->on_tty[i])
			err = posix_spawn_file_actions_adddup2(&fa, io->tty, i);
		else if (io->fd[i] >= 0)
			err = posix_spawn_file_actions_adddup2(&fa, io->fd[i], i);
	}
	/* On a terminal, its foreground group before it runs: a program that
	 * reads the terminal at once is not stopped as a background job.
	 * (glibc 2.35.) */
	if (!err && io && io->tty >= 0)
		err = posix_spawn_file_actions_addtcsetpgrp_np(&fa, io->tty);
	if (!err)
		err = posix_spawn_file_actions_addclosefrom_np(&fa, (int)(3 + n_files));
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&attr, dfl);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setpgroup(&attr, 0);
	short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
	if (own_group || (io && io->tty >= 0))
		flags |= POSIX_SPAWN_SETPGROUP;
	posix_spawnattr_setflags(&attr, flags);
	if (!err)
		err = posix_spawn(pid, p->path, &fa, &attr, p->argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (err == 0)
		return 0;
	if (err == EAGAIN || err == ENOMEM)
		return latch_error(LATCH_OPERR, "cannot start '%s': %s", p->path, strerror(err)), 125;
	latch_error(LATCH_USAGE, "cannot run '%s': %s", p->path, strerror(err));
	return err == ENOENT ? 127 : 126;
}

int run_status_of(int ws)
{
	if (WIFEXITED(ws))
		return WEXITSTATUS(ws);
	if (WIFSIGNALED(ws))
		return 128 + WTERMSIG(ws);
	return 125;
}

char **run_request_env(const struct run_plan *p)
{
	size_t count = 0;
	for (char **e = environ; e && *e; e++)
		count++;
	char **env = calloc(count + p->n_vars + 1, sizeof *env);
	size_t k = 0;
	for (char **e = environ; env && e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (kept(p, *e, eq ? (size_t)(eq - *e) : strlen(*e), false))
			env[k++] = *e;
	}
	for (size_t i = 0; env && i < p->n_vars; i++) {
		size_t len = strlen(p->vars[i].name);
		if (!(env[k] = malloc(len + p->vars[i].len + 2))) {
			for (size_t j = k - i; j < k; j++)
				free(env[j]);
			free(env);
			return NULL;
		}
		memcpy(env[k], p->vars[i].name, len);
		env[k][len] = '=';
		memcpy(env[k] + len + 1, p->vars[i].value, p->vars[i].len);
		env[k++][len + 1 + p->vars[i].len] = '\0';
	}
	return env;
}

void run_request_env_free(char **env, const struct run_plan *p)
{
	if (!env)
		return;
	/* The latch variables, at the end, are this function's copies: wiped
	 * (a model token among them). The rest are environ's own. */
	size_t n = 0;
	while (env[n])
		n++;
	for (size_t i = n > p->n_vars ? n - p->n_vars : 0; i < n; i++) {
		sodium_memzero(env[i], strlen(env[i]));
		free(env[i]);
	}
	free(env);
}
