/* Running the child: environment, private files, exec, signals, status. */
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* The child's environment: ours (or only --keep with --pristine), with
 * every reference replaced by its value or file path. */
static char **build_env(const struct broker_plan *p, const char *const *names, struct secbuf *const *values,
			size_t n, const char *filedir, struct secbuf **store)
{
	size_t count = 0;
	for (char **e = environ; e && *e; e++)
		count++;
	char **env = calloc(count + p->n_refs + 1, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t vlen = eq ? (size_t)(eq - *e) : strlen(*e);
		bool keep = !p->pristine;
		for (size_t i = 0; p->pristine && i < p->n_keep; i++)
			keep = keep || (strlen(p->keep[i]) == vlen && !strncmp(p->keep[i], *e, vlen));
		for (size_t i = 0; keep && i < p->n_refs; i++)
			keep = !(strlen(p->refs[i].var) == vlen && !strncmp(p->refs[i].var, *e, vlen));
		if (keep)
			env[k++] = *e;
	}
	/* One secure buffer holds every "VAR=value" string. */
	size_t need = 0;
	for (size_t i = 0; i < p->n_refs; i++) {
		need += strlen(p->refs[i].var) + 2;
		if (p->refs[i].as_file) {
			need += PATH_MAX;
			continue;
		}
		for (size_t j = 0; j < n; j++)
			if (!strcmp(names[j], p->refs[i].name)) {
				need += values[j]->len;
				break;
			}
	}
	struct secbuf *b = secbuf_new(need + 1);
	if (!b) {
		free(env);
		return NULL;
	}
	for (size_t i = 0; i < p->n_refs; i++) {
		const struct secbuf *v = NULL;
		for (size_t j = 0; j < n && !v; j++)
			if (!strcmp(names[j], p->refs[i].name))
				v = values[j];
		char *s = (char *)b->data + b->len;
		size_t vl = strlen(p->refs[i].var);
		memcpy(s, p->refs[i].var, vl);
		s[vl] = '=';
		size_t len = vl + 1;
		if (p->refs[i].as_file) {
			int w = snprintf(s + len, PATH_MAX, "%s/%s", filedir, p->refs[i].var);
			len += w < 0 ? 0 : w >= PATH_MAX ? PATH_MAX - 1 : (size_t)w; /* as written */
		} else {
			memcpy(s + len, v->data, v->len);
			len += v->len;
		}
		s[len] = '\0';
		b->len += len + 1;
		env[k++] = s;
	}
	env[k] = NULL;
	*store = b;
	return env;
}

/* --file values: 0600 files in a fresh 0700 directory. */
static int write_files(const struct broker_plan *p, const char *const *names, struct secbuf *const *values,
		       size_t n, char dir[PATH_MAX])
{
	bool any = false;
	for (size_t i = 0; i < p->n_refs; i++)
		any = any || p->refs[i].as_file;
	if (!any)
		return 0;
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char base[PATH_MAX];
	snprintf(base, sizeof base, "%s", rt && rt[0] == '/' ? rt : "/tmp");
	if (snprintf(dir, PATH_MAX, "%s/latch-run-XXXXXX", base) >= PATH_MAX || !mkdtemp(dir))
		return latch_error(LATCH_OPERR, "cannot create a private directory in '%s': %s", base, strerror(errno));
	for (size_t i = 0; i < p->n_refs; i++) {
		if (!p->refs[i].as_file)
			continue;
		const struct secbuf *v = NULL;
		for (size_t j = 0; j < n && !v; j++)
			if (!strcmp(names[j], p->refs[i].name))
				v = values[j];
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", dir, p->refs[i].var);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || write_all(fd, v->data, v->len) != 0 || close(fd) != 0)
			return latch_error(LATCH_OPERR, "cannot write '%s': %s", path, strerror(errno));
	}
	return 0;
}

static void remove_files(const struct broker_plan *p, const char *dir)
{
	if (!dir[0])
		return;
	char path[PATH_MAX];
	for (size_t i = 0; i < p->n_refs; i++) {
		if (!p->refs[i].as_file)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, p->refs[i].var);
		unlink(path);
	}
	rmdir(dir);
}

int broker_run(struct broker_plan *p, const char *const *names, struct secbuf *const *values, size_t n)
{
	for (size_t i = 0; i < p->n_refs; i++) {
		const struct secbuf *v = NULL;
		for (size_t j = 0; j < n && !v; j++)
			if (!strcmp(names[j], p->refs[i].name))
				v = values[j];
		if (!v) {
			latch_error(LATCH_OPERR, "no value for '%s'", p->refs[i].name);
			return 125;
		}
		if (!p->refs[i].as_file && memchr(v->data, '\0', v->len)) {
			latch_error(LATCH_USAGE, "secret '%s' holds a NUL byte, which no variable can carry: use --file %s=latch://%s",
				    p->refs[i].name, p->refs[i].var, p->refs[i].name);
			return 125;
		}
	}
	char dir[PATH_MAX] = "";
	struct secbuf *store = NULL;
	char **env = NULL;
	int status = 125;
	if (write_files(p, names, values, n, dir) != 0)
		goto out;
	if (!(env = build_env(p, names, values, n, dir, &store))) {
		latch_error(LATCH_OPERR, "cannot build the child's environment");
		goto out;
	}
	/* posix_spawn, not fork: glibc's clones without copying our page
	 * tables (a fork costs more with every locked mapping), and it
	 * reports an exec failure as its result. */
	child_own_group = !tty_available();
	sigset_t all, old, dfl;
	sigfillset(&all);
	sigemptyset(&dfl);
	for (size_t i = 0; i < N_FORWARDED; i++)
		sigaddset(&dfl, forwarded[i]);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_t attr;
	if (posix_spawnattr_init(&attr) != 0) {
		latch_error(LATCH_OPERR, "cannot start '%s': out of memory", p->path);
		goto out;
	}
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
						(child_own_group ? POSIX_SPAWN_SETPGROUP : 0));
	sigprocmask(SIG_BLOCK, &all, &old);
	posix_spawnattr_setsigmask(&attr, &old);
	pid_t pid;
	int err = posix_spawn(&pid, p->path, NULL, &attr, p->argv, env);
	posix_spawnattr_destroy(&attr);
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
	sigprocmask(SIG_SETMASK, &old, NULL);
	/* The child's copy of the values is its own now: wipe ours. */
	secbuf_free(store);
	store = NULL;
	int ws;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	child_pid = 0;
	if (WIFEXITED(ws))
		status = WEXITSTATUS(ws);
	else if (WIFSIGNALED(ws))
		status = 128 + WTERMSIG(ws);
out:
	remove_files(p, dir);
	secbuf_free(store);
	free(env);
	return status;
}
