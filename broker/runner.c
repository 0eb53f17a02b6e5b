/* Runners: the processes of the broker that start children with values
 * (docs/design.md section 2). A runner is a fork of the daemon, so it is
 * non-dumpable and in the daemon's process family like the daemon: a
 * process inside a latch session can neither trace it nor signal it, and
 * outside one the same uid cannot read its memory. The values it needs
 * are already in its copy of the daemon's memory: they never cross a
 * socket. What starts the child is the daemon's broker_run_fn (run/). */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* In the runner, before it is let go: only the one grant's values stay
 * (the others, and the broker key, are wiped from its copy). */
static void forget_others(struct broker *b, const struct grant *keep)
{
	for (struct grant **p = &b->grants; *p;) {
		struct grant *g = *p;
		if (g == keep) {
			p = &g->next;
			continue;
		}
		*p = g->next;
		policy_grant_free(g);
	}
	secbuf_free(b->key);
	b->key = NULL;
}

/* The caller's stdio at 0-2, the control connection at 3, the working
 * directory at 4 and the report to the daemon at 5, nothing else: not
 * the daemon's socket, lock, vault or other connections (a runner holding
 * the lock would keep the next broker out). */
static int take_descriptors(const int stdio[3], int *control, int *cwd, int *report)
{
	int top = *control > *cwd ? *control : *cwd;
	top = *report > top ? *report : top;
	for (int i = 0; i < 3; i++)
		top = stdio[i] > top ? stdio[i] : top;
	/* Above every one of them first, so no dup2 below lands on one not
	 * moved yet. */
	int c = fcntl(*control, F_DUPFD_CLOEXEC, top + 1), d = fcntl(*cwd, F_DUPFD_CLOEXEC, top + 1);
	int rep = fcntl(*report, F_DUPFD_CLOEXEC, top + 1);
	int s[3];
	for (int i = 0; i < 3; i++)
		s[i] = fcntl(stdio[i], F_DUPFD_CLOEXEC, top + 1);
	if (c < 0 || d < 0 || rep < 0 || s[0] < 0 || s[1] < 0 || s[2] < 0)
		return -1;
	for (int i = 0; i < 3; i++)
		if (dup2(s[i], i) != i)
			return -1;
	if (dup3(c, 3, O_CLOEXEC) != 3 || dup3(d, 4, O_CLOEXEC) != 4 || dup3(rep, 5, O_CLOEXEC) != 5)
		return -1;
	closefrom(6);
	*control = 3;
	*cwd = 4;
	*report = 5;
	return 0;
}

static void hello(int control, const char *id)
{
	json_t *m = json_pack("{s:b, s:s, s:i}", "ok", 1, "release", id, "runner", (int)getpid());
	if (m)
		wire_send_json(control, m, NULL, 0);
	json_decref(m);
}

/* Tell the daemon the run's redactions, per name (a name referenced
 * twice is counted once per occurrence, whichever reference's value it
 * was). Without redaction, nothing. */
static void report(int fd, const struct broker_run_job *job)
{
	if (job->no_redact)
		return;
	json_t *per = json_object();
	for (size_t i = 0; per && i < job->n_refs; i++) {
		json_int_t n = json_integer_value(json_object_get(per, job->refs[i].name));
		json_object_set_new(per, job->refs[i].name,
				    json_integer(n + (job->redacted[i] > 0 ? job->redacted[i] : 0)));
	}
	if (per && job->redacted[job->n_refs] >= 0)
		json_object_set_new(per, "model-token", json_integer(job->redacted[job->n_refs]));
	json_t *m = per ? json_pack("{s:o}", "redacted", per) : NULL;
	char text[8192];
	size_t n = m ? json_dumpb(m, text, sizeof text, JSON_COMPACT) : 0;
	if (n > 0 && n <= sizeof text)
		write_all(fd, text, n);
	json_decref(m);
}

static _Noreturn void runner_main(struct broker *b, const struct grant *g, struct broker_run_job job,
				  const int stdio[3], int gate, int rep)
{
	/* The daemon's handlers and mask are not the runner's. */
	static const int handled[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
	for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
		signal(handled[i], SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	char go = 0;
	ssize_t r;
	while ((r = read(gate, &go, 1)) < 0 && errno == EINTR)
		;
	if (r != 1 || go != 'g')
		_exit(125); /* not recorded: nothing may run */
	/* What ps and top show: the daemon's command line stays, its name
	 * says what this process is. */
	prctl(PR_SET_NAME, "latch-runner", 0, 0, 0);
	forget_others(b, g);
	int control = job.control, cwd = job.cwd_fd;
	if (take_descriptors(stdio, &control, &cwd, &rep) != 0)
		_exit(125);
	job.control = control;
	job.cwd_fd = cwd;
	int64_t redacted[BROKER_MAX_NAMES + 1] = {0};
	redacted[job.n_refs] = -1;
	job.redacted = redacted;
	hello(control, job.id);
	int status = b->run(&job);
	report(rep, &job);
	_exit(status & 0xff);
}

pid_t runner_fork(struct broker *b, const struct grant *g, const struct broker_run_job *job, const int stdio[3],
		  int *gate, int *report_fd)
{
	int p[2], r[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return latch_error(LATCH_OPERR, "cannot start a runner: %s", strerror(errno));
	if (pipe2(r, O_CLOEXEC | O_NONBLOCK) != 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return latch_error(LATCH_OPERR, "cannot start a runner: %s", strerror(e));
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		close(r[0]);
		close(r[1]);
		return latch_error(LATCH_OPERR, "cannot start a runner: %s", strerror(e));
	}
	if (pid == 0) {
		close(p[1]);
		close(r[0]);
		runner_main(b, g, *job, stdio, p[0], r[1]);
	}
	close(p[0]);
	close(r[1]);
	*gate = p[1];
	*report_fd = r[0];
	b->n_runners++;
	return pid;
}

void runner_go(struct broker *b, pid_t pid, int gate, bool go)
{
	if (go && write(gate, "g", 1) == 1) {
		close(gate);
		return;
	}
	/* Closed without a word, the runner exits at once. */
	close(gate);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	b->n_runners--;
}

void runner_reap(struct broker *b)
{
	int ws;
	pid_t pid;
	while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
		b->n_runners -= b->n_runners > 0;
		/* The runner exits with its child's status (run_status_of's
		 * encoding); a runner killed itself ends as 128+N too. */
		int status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
		exits_report(b, pid, status);
	}
}
