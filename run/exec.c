/* Running the child: environment, memory files, exec, signals, status. */
#include "run.h"

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
#include <unistd.h>

extern char **environ;

static volatile pid_t child_pid;
static volatile bool child_own_group;

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
#define N_FORWARDED (sizeof forwarded / sizeof forwarded[0])

/* Pass a signal on once. Under a terminal the child shares our process
 * group, so a signal the terminal sent (si_code SI_KERNEL) reached it
 * already; only signals sent to latch alone are forwarded. Without a
 * terminal the child leads its own group, and the whole group gets it. */
static void forward(int sig, siginfo_t *si, void *uctx)
{
	(void)uctx;
	pid_t pid = child_pid;
	if (pid <= 0)
		return;
	if (!child_own_group && si && si->si_code == SI_KERNEL)
		return;
	kill(child_own_group ? -pid : pid, sig);
}

/* Signals whose default would end latch while it waits, before the exit
 * is recorded: a harness's alarm or CPU limit, a closed pipe, a profiler,
 * a stray real-time signal, and SIGIO, SIGPWR, SIGSTKFLT, which end a
 * process by default too. Blocked, not handled, so nothing runs in latch
 * for them. SIGUSR1/2 are forwarded instead (`forwarded` above). */
static void held_signals(sigset_t *set)
{
	static const int held[] = {SIGALRM, SIGPIPE, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT};
	sigemptyset(set);
	for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
		sigaddset(set, held[i]);
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
		sigaddset(set, sig);
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

/* The child's environment: ours (or only --keep with --pristine) less
 * every unsafe variable (run_env_unsafe), with every reference set to
 * its value, or for --file to "/dev/fd/N" (N = 3, 4, ... in order). */
static char **build_env(const struct run_plan *p, struct secbuf **store)
{
	size_t count = 0;
	for (char **e = environ; e && *e; e++)
		count++;
	char **env = calloc(count + p->n_refs + p->n_vars + 1, sizeof *env);
	if (!env)
		return NULL;
	const char *vars[RUN_MAX_REFS + RUN_MAX_VARS];
	for (size_t i = 0; i < p->n_refs; i++)
		vars[i] = p->refs[i].var;
	for (size_t i = 0; i < p->n_vars; i++)
		vars[p->n_refs + i] = p->vars[i].name;
	size_t k = 0;
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t vlen = eq ? (size_t)(eq - *e) : strlen(*e);
		if ((p->pristine && !named((const char *const *)p->keep, p->n_keep, *e, vlen)) ||
		    named(vars, p->n_refs + p->n_vars, *e, vlen) ||
		    (run_env_unsafe(*e, vlen) && !named(p->allow_env, p->n_allow_env, *e, vlen)) ||
		    (p->drop && p->drop(*e, vlen)))
			continue;
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

static void close_files(int *fds, size_t n_files)
{
	for (size_t i = 0; i < n_files; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* Until the child ends, call p->tick on its schedule. A pidfd says when
 * the child is gone without reaping it (the caller's waitpid does). If
 * there is none (Linux before 5.3), the ticks are skipped. */
static void wait_ticking(struct run_plan *p, pid_t pid)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return;
	int64_t next = monotonic_ms() + (int64_t)p->tick_s * 1000;
	for (;;) {
		int64_t wait = next - monotonic_ms();
		struct pollfd fd = {.fd = pfd, .events = POLLIN};
		int r = poll(&fd, 1, wait > 0 ? (int)(wait < INT32_MAX ? wait : INT32_MAX) : 0);
		if (r > 0)
			break;
		if (r < 0 && errno != EINTR)
			break;
		if (r == 0) {
			int again = p->tick(p->tick_ctx);
			if (again <= 0)
				break;
			next = monotonic_ms() + (int64_t)again * 1000;
		}
	}
	close(pfd);
}

int run_child(struct run_plan *p)
{
	size_t n_files = 0;
	for (size_t i = 0; i < p->n_refs; i++) {
		const struct secbuf *v = value_of(p, i);
		if (!v->data) {
			latch_error(LATCH_OPERR, "no value for '%s'", p->refs[i].name);
			run_values_free(p);
			return 125;
		}
		if (!p->refs[i].as_file && memchr(v->data, '\0', v->len)) {
			latch_error(
				LATCH_USAGE,
				"secret '%s' holds a NUL byte, which no variable can carry: use --file %s=latch://%s",
				p->refs[i].name, p->refs[i].var, p->refs[i].name);
			run_values_free(p);
			return 125;
		}
		n_files += p->refs[i].as_file;
	}
	int fds[RUN_MAX_REFS];
	for (size_t i = 0; i < RUN_MAX_REFS; i++)
		fds[i] = -1;
	struct secbuf *store = NULL;
	char **env = NULL;
	int status = 125;
	if (make_files(p, fds, n_files) != 0)
		goto out;
	if (!(env = build_env(p, &store))) {
		latch_error(LATCH_OPERR, "cannot build the child's environment");
		goto out;
	}
	/* From here the environment is the one copy of the values in latch. */
	run_values_free(p);
	/* posix_spawn, not fork: glibc's clones without copying our page
	 * tables (a fork costs more with every locked mapping), and it
	 * reports an exec failure as its result. */
	child_own_group = !tty_available();
	sigset_t all, old, held, dfl, none;
	sigfillset(&all);
	sigemptyset(&none);
	held_signals(&held);
	dfl = held;
	for (size_t i = 0; i < N_FORWARDED; i++)
		sigaddset(&dfl, forwarded[i]);
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	if (posix_spawnattr_init(&attr) != 0) {
		latch_error(LATCH_OPERR, "cannot start '%s': out of memory", p->path);
		goto out;
	}
	if (posix_spawn_file_actions_init(&fa) != 0) {
		posix_spawnattr_destroy(&attr);
		latch_error(LATCH_OPERR, "cannot start '%s': out of memory", p->path);
		goto out;
	}
	/* The child gets 0-2 and its --file descriptors, nothing else of
	 * ours: a --passphrase-fd, the vault, a socket, whatever latch's own
	 * parent left open. (closefrom_np: glibc 2.34.) */
	int err = 0;
	for (size_t i = 0; i < n_files && !err; i++)
		err = posix_spawn_file_actions_adddup2(&fa, fds[i], (int)(3 + i));
	if (!err)
		err = posix_spawn_file_actions_addclosefrom_np(&fa, (int)(3 + n_files));
	/* Default dispositions and an empty mask, whatever latch inherited
	 * or blocks while it waits. */
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
						(child_own_group ? POSIX_SPAWN_SETPGROUP : 0));
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid;
	if (!err)
		err = posix_spawn(&pid, p->path, &fa, &attr, p->argv, env);
	/* The child has its copy (or none): wipe ours at once. */
	secbuf_free(store);
	store = NULL;
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (err != 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (err == EAGAIN || err == ENOMEM) {
			latch_error(LATCH_OPERR, "cannot start '%s': %s", p->path, strerror(err));
		} else {
			status = err == ENOENT ? 127 : 126;
			latch_error(LATCH_USAGE, "cannot run '%s': %s", p->path, strerror(err));
		}
		goto out;
	}
	child_pid = pid;
	struct sigaction sa = {.sa_sigaction = forward, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < N_FORWARDED; i++)
		sigaction(forwarded[i], &sa, NULL);
	sigorset(&old, &old, &held);
	sigprocmask(SIG_SETMASK, &old, NULL);
	/* The memory files are the child's now. */
	close_files(fds, n_files);
	int ws;
	if (p->tick)
		wait_ticking(p, pid);
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	child_pid = 0;
	if (WIFEXITED(ws))
		status = WEXITSTATUS(ws);
	else if (WIFSIGNALED(ws))
		status = 128 + WTERMSIG(ws);
out:
	close_files(fds, n_files);
	secbuf_free(store);
	free(env);
	run_values_free(p);
	return status;
}
