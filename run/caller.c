/* The caller's side of a runner (docs/design.md section 2): `latch run`
 * waits while a runner (the broker's, or one it forked itself for a
 * one-shot release) has the child. The runner's control protocol, both
 * ends of which are run/'s (run/ctl.c): one JSON object a line; the caller sends
 * {"signal": N}, the runner sends {"stopped": N} when the child stopped on
 * its terminal and {"exit": N} at the end (with "redacted": the counts
 * per secret, and "token", when the relay ran). */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Signals latch run passes to the child through its runner (the child is
 * beyond our reach: the broker's, and inside a session beyond our
 * signals). */
static const int relayed[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT, SIGWINCH, SIGUSR1, SIGUSR2};

static void send_signal(int control, int sig)
{
	json_t *m = json_pack("{s:i}", "signal", sig);
	run_ctl_send(control, m);
	json_decref(m);
}

/* A message of the runner's: 1 it is the exit (the status, and the
 * relay's counts for a one-shot release's exit record, land in the plan),
 * else 0. A child stopped on its terminal (Ctrl-Z) stops us too, so the
 * shell takes the terminal; fg continues us, and the SIGCONT, relayed,
 * the child. */
struct waiting {
	struct run_plan *p;
	int status;
};

static int on_message(json_t *m, void *ctx)
{
	struct waiting *w = ctx;
	struct run_plan *p = w->p;
	json_t *exit = json_object_get(m, "exit");
	if (json_is_integer(exit) && json_integer_value(exit) >= 0 && json_integer_value(exit) <= 255) {
		w->status = (int)json_integer_value(exit);
		json_t *per = json_object_get(m, "redacted");
		p->has_redacted = json_is_array(per) && json_array_size(per) == p->n_secrets;
		for (size_t i = 0; p->has_redacted && i < p->n_secrets; i++)
			p->redacted[i] = json_integer_value(json_array_get(per, i));
		json_t *tok = json_object_get(m, "token");
		p->redacted_token = json_is_integer(tok) ? json_integer_value(tok) : -1;
		return 1;
	}
	if (json_is_integer(json_object_get(m, "stopped")))
		raise(SIGSTOP);
	return 0;
}

int run_wait(int control, struct run_plan *p)
{
	sigset_t set, held;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof relayed / sizeof relayed[0]; i++)
		sigaddset(&set, relayed[i]);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	/* And the ones whose default would end latch run before the child
	 * ends (SIGALRM, SIGPIPE, ...): blocked, never delivered. */
	run_held_signals(&held);
	sigorset(&set, &set, &held);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int64_t next_tick = p->tick ? monotonic_ms() + (int64_t)p->tick_s * 1000 : -1;
	char buf[1024];
	size_t len = 0;
	struct waiting got = {p, 125};
	for (;;) {
		struct pollfd w[2] = {{.fd = control, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		int64_t ms = next_tick < 0 ? -1 : next_tick - monotonic_ms();
		int n = poll(w, sfd >= 0 ? 2 : 1, next_tick < 0 ? -1 : (int)(ms > 0 ? ms : 0));
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (w[1].revents & POLLIN)) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				send_signal(control, (int)si.ssi_signo);
				/* Without a terminal of its own the child got the stop
				 * from us: stop too, so the shell gets its prompt back. */
				if (si.ssi_signo == SIGTSTP)
					raise(SIGSTOP);
			}
		}
		if (n > 0 && w[0].revents) {
			int rc = run_ctl_read(control, buf, sizeof buf, &len, on_message, &got);
			if (rc < 0) {
				latch_error(LATCH_OPERR, "the runner ended without saying how the program ended");
				got.status = 125;
			}
			if (rc != 0)
				break;
		}
		if (next_tick >= 0 && monotonic_ms() >= next_tick) {
			int again = p->tick(p->tick_ctx);
			next_tick = again > 0 ? monotonic_ms() + (int64_t)again * 1000 : -1;
		}
	}
	if (sfd >= 0)
		close(sfd);
	return got.status;
}

int run_child(struct run_plan *p)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		latch_error(LATCH_OPERR, "cannot start the program: %s", strerror(errno));
		run_values_free(p);
		return 125;
	}
	pid_t pid = fork();
	if (pid < 0) {
		latch_error(LATCH_OPERR, "cannot start the program: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		run_values_free(p);
		return 125;
	}
	if (pid == 0) {
		close(sv[0]);
		_exit(run_serve(p, -1, sv[1]) & 0xff);
	}
	close(sv[1]);
	/* The runner has its copy: ours goes at once. */
	run_values_free(p);
	int status = run_wait(sv[0], p);
	close(sv[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return status;
}
