/* The caller's side of a runner (docs/design.md section 2): `latch run`
 * waits while a runner (the broker's, or one it forked itself for a
 * one-shot release) has the child. The runner's control protocol, both
 * ends of which are run/'s: one JSON object a line; the caller sends
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
	char line[32];
	int n = snprintf(line, sizeof line, "{\"signal\":%d}\n", sig);
	for (ssize_t off = 0, w; off < n; off += w)
		if ((w = send(control, line + off, (size_t)(n - off), MSG_NOSIGNAL)) <= 0)
			return;
}

/* The runner's messages not yet read: 1 the exit came (*status set), 0
 * not yet, -1 the runner is gone without saying. */
static int read_messages(int control, char *buf, size_t cap, size_t *len, int *status, struct run_plan *p)
{
	ssize_t n = recv(control, buf + *len, cap - *len, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return -1;
	*len += (size_t)n;
	char *nl;
	while ((nl = memchr(buf, '\n', *len))) {
		json_t *m = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
		json_t *exit = json_object_get(m, "exit");
		bool stopped = json_is_integer(json_object_get(m, "stopped"));
		bool done = json_is_integer(exit) && json_integer_value(exit) >= 0 && json_integer_value(exit) <= 255;
		if (done) {
			*status = (int)json_integer_value(exit);
			/* The relay's counts, for the exit record of a one-shot
			 * release (the broker takes its own runner's from it). */
			json_t *per = json_object_get(m, "redacted");
			p->has_redacted = json_is_array(per) && json_array_size(per) == p->n_secrets;
			for (size_t i = 0; p->has_redacted && i < p->n_secrets; i++)
				p->redacted[i] = json_integer_value(json_array_get(per, i));
			json_t *tok = json_object_get(m, "token");
			p->redacted_token = json_is_integer(tok) ? json_integer_value(tok) : -1;
		}
		json_decref(m);
		*len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, *len);
		if (done)
			return 1;
		/* The child stopped on its terminal (Ctrl-Z): so do we, and the
		 * shell takes the terminal; fg continues us, and the SIGCONT,
		 * relayed, the child. */
		if (stopped)
			raise(SIGSTOP);
	}
	return *len == cap ? -1 : 0;
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
	int status = 125;
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
			int rc = read_messages(control, buf, sizeof buf, &len, &status, p);
			if (rc < 0) {
				latch_error(LATCH_OPERR, "the runner ended without saying how the program ended");
				status = 125;
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
	return status;
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
