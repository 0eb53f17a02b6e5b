/* The runner's loop (docs/design.md section 2): in the process the
 * broker forked for one run, start the child and stay with it until it
 * ends. The caller's stdin, stdout and stderr are this process's 0, 1
 * and 2; `control` is the caller's connection.
 *
 * When the caller's stdin or stdout is a terminal (and not --no-pty),
 * the child runs on a pseudo-terminal of its own, as its controlling
 * terminal, so that programs that open /dev/tty (a password prompt) or
 * manage the screen (vim, htop, a REPL) work: the caller's terminal goes
 * to raw mode while the child has it, keystrokes go to the pty, what the
 * child writes comes back through the relay, and the caller's settings
 * and window size are the pty's. The runner holds the caller's terminal
 * (a descriptor of it), so it restores the terminal's settings on every
 * way out, the caller's death included, and hands the terminal back when
 * the child stops (Ctrl-Z): latch run then stops too, and the shell's
 * job control takes over; `fg` continues both.
 *
 * Every stream the child writes that is not the caller's own descriptor
 * (the pty, or a pipe when the caller's stdout or stderr is not a
 * terminal) goes through a sink on its way out (the redaction relay). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* One stream of the child's output on its way to the caller. */
struct sink {
	int from;                 /* our read end (a pipe, the pty's master), -1 once at its end */
	int to;                   /* the caller's descriptor */
	bool pipe;                /* from is a pipe of the sink's own, closed at its end */
	struct run_redact_out *o; /* the redaction relay, NULL: none */
	int64_t last_ms;          /* when the child last wrote to it */
	bool broken;              /* a write to the caller failed: the relay's
				     state is not to be used again (its counts
				     still are) */
};

struct runner {
	struct run_plan *p;
	pid_t pid;     /* the child */
	int status;    /* its status, once it ended; -1 before */
	int control;   /* the caller; -1 once gone */
	char ctl[512]; /* the caller's messages not yet whole */
	size_t ctl_len;
	int sfd;         /* signalfd: SIGCHLD and the signals that stop the runner */
	int64_t kill_at; /* when the child's group gets SIGKILL; -1 none */
	/* The pseudo-terminal */
	int master; /* -1: none */
	char slave[64];
	int slave_fd;           /* ours, held open while the child runs: without
				a slave open, the master reads EIO (before the
				child opened it, too) */
	int tty;                /* the caller's terminal whose settings we change, -1 none */
	struct termios saved;   /* its settings as we found them */
	bool raw;               /* it is in raw mode now */
	bool stopped;           /* the child stopped: the terminal is the caller's again */
	bool keys;              /* the caller's keystrokes go to the pty (stdin is the terminal) */
	unsigned char in[4096]; /* keystrokes on their way to the master */
	size_t in_len, in_off;
	/* What the child writes to its terminal (the master), to its stdout
	 * and stderr when they are pipes. */
	struct sink term, out, err;
};

/* Signals the caller may have the runner pass on, as `latch run` would
 * have sent them itself. */
static bool relayed(int sig)
{
	static const int ok[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT, SIGWINCH, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (ok[i] == sig)
			return true;
	return false;
}

static void say(int control, const char *key, int value)
{
	json_t *m = json_pack("{s:i}", key, value);
	run_ctl_send(control, m);
	json_decref(m);
}

/* The last message: {"exit": N}, with the redactions when the relay ran
 * ("redacted": per secret, in the plan's order; "token": the model
 * token's, -1 none): latch run records them for a one-shot release. */
static void say_exit(const struct runner *r, int status, bool redacted)
{
	json_t *m = json_pack("{s:i}", "exit", status);
	if (m && redacted) {
		json_t *per = json_array();
		for (size_t i = 0; i < r->p->n_secrets; i++)
			json_array_append_new(per, json_integer(r->p->redacted[i]));
		json_object_set_new(m, "redacted", per);
		json_object_set_new(m, "token", json_integer(r->p->redacted_token));
	}
	if (run_ctl_send(r->control, m) != 0)
		say(r->control, "exit", status); /* at least the status */
	json_decref(m);
}

/* ---- The caller's terminal ---- */

static void term_raw(struct runner *r)
{
	if (r->tty < 0 || r->raw)
		return;
	struct termios t = r->saved;
	cfmakeraw(&t);
	if (tcsetattr(r->tty, TCSADRAIN, &t) == 0)
		r->raw = true;
}

/* Back as we found it: on every way out, and while the child is stopped. */
static void term_restore(struct runner *r)
{
	if (r->tty < 0 || !r->raw)
		return;
	tcsetattr(r->tty, TCSADRAIN, &r->saved);
	r->raw = false;
}

/* The caller's window size, onto the pty (the kernel then sends the
 * child's foreground process group SIGWINCH). */
static void term_size(const struct runner *r)
{
	struct winsize ws;
	int from = isatty(1) ? 1 : 0;
	if (r->master >= 0 && ioctl(from, TIOCGWINSZ, &ws) == 0)
		ioctl(r->master, TIOCSWINSZ, &ws);
}

/* A pseudo-terminal for the child, with the caller's settings and size;
 * our slave descriptor at or above `low` (run_spawn moves the --file
 * descriptors below it). 0, or -1 reported. */
static int pty_open(struct runner *r, int low)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, r->slave, sizeof r->slave) != 0) {
		int e = errno;
		if (m >= 0)
			close(m);
		return latch_error(LATCH_OPERR, "cannot make a terminal for the program: %s", strerror(e));
	}
	r->master = m;
	int from = isatty(0) ? 0 : 1;
	struct termios t;
	/* The runner leads the terminal's session, and the child runs in a
	 * process group of its own in it: a group whose parent is in its
	 * session is not orphaned, so the terminal's Ctrl-Z can stop it
	 * (the kernel drops SIGTSTP for an orphaned group), and the runner
	 * sees the stop. */
	int s = setsid() < 0 ? -1 : open(r->slave, O_RDWR | O_CLOEXEC);
	r->slave_fd = s < 0 ? -1 : fcntl(s, F_DUPFD_CLOEXEC, low);
	if (s >= 0)
		close(s);
	if (r->slave_fd < 0 || ioctl(r->slave_fd, TIOCSCTTY, 0) != 0)
		return latch_error(LATCH_OPERR, "cannot open the program's terminal: %s", strerror(errno));
	if (tcgetattr(from, &t) == 0)
		tcsetattr(r->slave_fd, TCSANOW, &t);
	term_size(r);
	if (isatty(0) && tcgetattr(0, &r->saved) == 0)
		r->tty = 0;
	return 0;
}

/* ---- The child's output ---- */

static int sink_write(struct sink *s, const unsigned char *p, size_t n)
{
	s->last_ms = monotonic_ms();
	if (s->broken)
		return -1;
	int rc = s->o ? run_redact_feed(s->o, p, n) : write_all(s->to, p, n);
	s->broken = rc != 0;
	return rc;
}

/* Write what the relay holds (idle, or at the end). */
static void sink_flush(struct sink *s)
{
	if (s->o && !s->broken && run_redact_flush(s->o) != 0)
		s->broken = true;
}

/* What the relay held back (the start of what may be a value), written
 * once the stream has been quiet for RUN_REDACT_IDLE_MS, so that a prompt
 * without a newline shows. -1: nothing held; else ms until due (0: now). */
static int64_t sink_due(const struct sink *s, int64_t now)
{
	if (!s->o || s->broken || !run_redact_held(s->o))
		return -1;
	int64_t due = s->last_ms + RUN_REDACT_IDLE_MS - now;
	return due > 0 ? due : 0;
}

/* Read what the stream has (once, or until it would block with `drain`)
 * and pass it on. A stream at its end (EOF; EIO from a pty master whose
 * terminal no process holds any more) is closed. */
static void sink_read(struct sink *s, bool drain)
{
	unsigned char buf[65536];
	while (s->from >= 0) {
		ssize_t n = read(s->from, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (s->pipe)
				close(s->from);
			s->from = -1; /* the pty's master stays open until the end */
			return;
		}
		/* A caller that stopped reading (`latch run -- yes | head`):
		 * our end of the child's pipe closes too, so the child's next
		 * write fails (SIGPIPE) as it would without latch. */
		if (sink_write(s, buf, (size_t)n) != 0 && s->pipe) {
			close(s->from);
			s->from = -1;
			return;
		}
		if (!drain)
			return;
	}
}

/* ---- Signals and the child's state ---- */

/* Pass signal `sig` from the caller on: on a pty, keyboard signals go to
 * the terminal's foreground process group (a shell's job), as the
 * terminal would send them; a window change is the pty's new size; a
 * continue after a stop gives the child its terminal back. */
static void pass_signal(struct runner *r, int sig)
{
	pid_t group = -r->pid;
	if (r->master >= 0) {
		if (sig == SIGWINCH) {
			term_size(r);
			return;
		}
		pid_t fg = tcgetpgrp(r->master);
		if (fg > 0 && (sig == SIGINT || sig == SIGQUIT || sig == SIGTSTP))
			group = -fg;
	}
	if (sig == SIGCONT && r->stopped) {
		r->stopped = false;
		term_size(r);
		term_raw(r);
	}
	kill(group, sig);
	if (sig == SIGCONT && group != -r->pid)
		kill(-r->pid, SIGCONT);
}

/* A message of the caller's: {"signal": N}. What is not understood is
 * skipped. */
static int on_control(json_t *m, void *ctx)
{
	json_t *sig = json_object_get(m, "signal");
	if (json_is_integer(sig) && relayed((int)json_integer_value(sig)))
		pass_signal(ctx, (int)json_integer_value(sig));
	return 0;
}

/* The caller's messages that have arrived. -1: the caller is gone (EOF,
 * an error, or a line longer than the buffer: not latch). */
static int read_control(struct runner *r)
{
	return run_ctl_read(r->control, r->ctl, sizeof r->ctl, &r->ctl_len, on_control, r);
}

/* The child goes (latch run is gone, or the runner was told to stop):
 * its process group gets SIGTERM now and SIGKILL after RUN_GRACE_MS; a
 * pty's session gets its hangup when the master closes. */
static void end_child(struct runner *r)
{
	if (r->kill_at >= 0 || r->status >= 0)
		return;
	term_restore(r);
	kill(-r->pid, SIGTERM);
	kill(-r->pid, SIGCONT);
	if (r->master >= 0) {
		pid_t fg = tcgetpgrp(r->master);
		if (fg > 0 && fg != r->pid) {
			kill(-fg, SIGTERM);
			kill(-fg, SIGCONT);
		}
	}
	r->kill_at = monotonic_ms() + RUN_GRACE_MS;
}

/* What SIGCHLD says: the child ended (status set), stopped (the terminal
 * goes back to the caller, who stops too) or continued. */
static void child_changed(struct runner *r)
{
	int ws;
	pid_t got;
	while (r->status < 0 && (got = waitpid(r->pid, &ws, WNOHANG | WUNTRACED)) == r->pid) {
		if (WIFSTOPPED(ws)) {
			/* Only a stop on the terminal's behalf is the caller's to
			 * follow; without a pty the caller asked for it itself. */
			if (r->master >= 0 && !r->stopped) {
				r->stopped = true;
				term_restore(r);
				say(r->control, "stopped", WSTOPSIG(ws));
			}
			continue;
		}
		r->status = run_status_of(ws);
	}
}

static void on_signals(struct runner *r)
{
	struct signalfd_siginfo si;
	bool child = false;
	while (read(r->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGCHLD)
			child = true;
		else
			end_child(r); /* TERM, INT, HUP, QUIT: told to stop */
	}
	if (child)
		child_changed(r);
}

/* ---- Keystrokes ---- */

static void keys_in(struct runner *r)
{
	ssize_t n = read(0, r->in, sizeof r->in);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* The terminal hung up, or stdin ended: the pty gets no more. */
		r->keys = false;
		return;
	}
	r->in_len = (size_t)n;
	r->in_off = 0;
}

static void keys_out(struct runner *r)
{
	ssize_t n = write(r->master, r->in + r->in_off, r->in_len - r->in_off);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		r->in_len = r->in_off = 0;
		r->keys = false;
		return;
	}
	r->in_off += (size_t)n;
	if (r->in_off == r->in_len)
		r->in_len = r->in_off = 0;
}

/* ---- Setting up ---- */

/* A pipe for one of the child's output streams: its write end (moved to
 * at or above `low`, for run_spawn) in *w, ours in s->from. */
static int sink_pipe(struct sink *s, int to, int low, int *w)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return latch_error(LATCH_OPERR, "cannot make a pipe: %s", strerror(errno));
	*w = fcntl(fds[1], F_DUPFD_CLOEXEC, low);
	close(fds[1]);
	if (*w < 0) {
		close(fds[0]);
		return latch_error(LATCH_OPERR, "cannot make a pipe: %s", strerror(errno));
	}
	*s = (struct sink){.from = fds[0], .to = to, .pipe = true};
	return 0;
}

/* Which of the child's streams are the pty, which go through a pipe
 * (to be redacted), and which are the caller's own descriptor (a
 * terminal with --no-pty, or anything with --no-redact). 0, or -1
 * reported. */
static int plan_stdio(struct runner *r, struct run_stdio *io, size_t n_files, const struct run_redactor *red)
{
	bool tty_in = isatty(0), tty_out = isatty(1), tty_err = isatty(2);
	int low = (int)(3 + n_files);
	*io = (struct run_stdio){.fd = {-1, -1, -1}, .tty = -1};
	if (!r->p->no_pty && (tty_in || tty_out)) {
		if (pty_open(r, low) != 0)
			return -1;
		io->tty = r->slave_fd;
		io->on_tty[0] = tty_in;
		io->on_tty[1] = tty_out;
		io->on_tty[2] = tty_err;
		r->keys = tty_in;
		/* What the child writes to its terminal goes to the caller's
		 * terminal, whichever of the caller's descriptors that is. */
		r->term = (struct sink){.from = r->master, .to = tty_out ? 1 : tty_err ? 2 : 0};
		fcntl(r->master, F_SETFL, O_NONBLOCK);
		if (r->keys)
			fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	}
	if (red && !io->on_tty[1] && sink_pipe(&r->out, 1, low, &io->fd[1]) != 0)
		return -1;
	if (red && !io->on_tty[2] && sink_pipe(&r->err, 2, low, &io->fd[2]) != 0)
		return -1;
	struct sink *sinks[] = {&r->term, &r->out, &r->err};
	for (size_t i = 0; red && i < 3; i++)
		if (sinks[i]->from >= 0 && !(sinks[i]->o = run_redact_out_new(red, sinks[i]->to)))
			return -1;
	return 0;
}

static void runner_close(struct runner *r, const struct run_stdio *io)
{
	for (int i = 1; i < 3; i++)
		if (io->fd[i] >= 0)
			close(io->fd[i]);
	if (r->out.from >= 0)
		close(r->out.from);
	if (r->err.from >= 0)
		close(r->err.from);
	if (r->master >= 0)
		close(r->master);
	if (r->slave_fd >= 0)
		close(r->slave_fd);
	if (r->sfd >= 0)
		close(r->sfd);
	run_redact_out_free(r->term.o);
	run_redact_out_free(r->out.o);
	run_redact_out_free(r->err.o);
	if (r->keys)
		fcntl(0, F_SETFL, fcntl(0, F_GETFL) & ~O_NONBLOCK);
}

/* ---- The loop ---- */

static void serve(struct runner *r)
{
	while (r->status < 0) {
		int64_t now = monotonic_ms();
		if (r->kill_at >= 0 && now >= r->kill_at) {
			kill(-r->pid, SIGKILL);
			r->kill_at = -2; /* sent */
		}
		enum { CHLD, CTL, MASTER, KEYS, TERM, OUT, ERR, N };
		struct pollfd w[N] = {
			[CHLD] = {r->sfd, POLLIN, 0},
			[CTL] = {r->control, POLLIN, 0},
			[MASTER] = {r->in_len ? r->master : -1, POLLOUT, 0},
			[KEYS] = {r->keys && !r->stopped && !r->in_len ? 0 : -1, POLLIN, 0},
			[TERM] = {r->term.from, POLLIN, 0},
			[OUT] = {r->out.from, POLLIN, 0},
			[ERR] = {r->err.from, POLLIN, 0},
		};
		int64_t ms = r->kill_at >= 0 ? r->kill_at - now : -1;
		struct sink *sinks[] = {&r->term, &r->out, &r->err};
		for (size_t i = 0; i < 3; i++) {
			int64_t due = sink_due(sinks[i], now);
			if (due == 0)
				sink_flush(sinks[i]);
			else if (due > 0 && (ms < 0 || due < ms))
				ms = due;
		}
		int n = poll(w, N, (int)ms);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (w[CHLD].revents)
			on_signals(r);
		if (w[CTL].revents && read_control(r) != 0) {
			/* latch run is gone (an agent harness's timeout kills it
			 * with SIGKILL): the child goes too, gently first. */
			r->control = -1;
			end_child(r);
		}
		if (w[KEYS].revents)
			keys_in(r);
		if (w[MASTER].revents)
			keys_out(r);
		if (w[TERM].revents)
			sink_read(&r->term, false);
		if (w[OUT].revents)
			sink_read(&r->out, false);
		if (w[ERR].revents)
			sink_read(&r->err, false);
	}
	/* What the child wrote before it ended, still in the pipes or the
	 * pty; not what a process it left behind writes later. With our
	 * slave closed, the master reads EIO once it is empty (if no process
	 * the child left behind holds the terminal). */
	if (r->slave_fd >= 0) {
		close(r->slave_fd);
		r->slave_fd = -1;
	}
	if (r->out.from >= 0)
		fcntl(r->out.from, F_SETFL, O_NONBLOCK);
	if (r->err.from >= 0)
		fcntl(r->err.from, F_SETFL, O_NONBLOCK);
	sink_read(&r->term, true);
	sink_read(&r->out, true);
	sink_read(&r->err, true);
	struct sink *sinks[] = {&r->term, &r->out, &r->err};
	for (size_t i = 0; i < 3; i++)
		sink_flush(sinks[i]);
}

/* The values to keep out of the output: every secret's, and the model
 * token's (p->token_var, from the plan's variables or the environment the
 * child starts from). NULL when there is none, or with --no-redact. */
static struct run_redactor *redactor_for(struct run_plan *p, size_t *token)
{
	struct run_needle needles[RUN_MAX_REFS + 1];
	size_t n = 0;
	*token = SIZE_MAX;
	if (p->no_redact)
		return NULL;
	for (size_t i = 0; i < p->n_secrets; i++)
		needles[n++] =
			(struct run_needle){p->secrets[i].name, p->secrets[i].value.data, p->secrets[i].value.len};
	size_t vlen = p->token_var ? strlen(p->token_var) : 0;
	for (size_t i = 0; vlen && i < p->n_vars && *token == SIZE_MAX; i++)
		if (!strcmp(p->vars[i].name, p->token_var)) {
			needles[ *token = n++] = (struct run_needle){"model-token",
								     (const unsigned char *)p->vars[i].value,
								     p->vars[i].len};
		}
	for (char *const *e = p->base_env; vlen && e && *e && *token == SIZE_MAX; e++)
		if (!strncmp(*e, p->token_var, vlen) && (*e)[vlen] == '=') {
			const char *v = *e + vlen + 1;
			needles[ *token = n++] =
				(struct run_needle){"model-token", (const unsigned char *)v, strlen(v)};
		}
	return n ? run_redactor_new(needles, n) : NULL;
}

/* The relay to use: the one prepared for the grant when there is no
 * model token to add to it (*owned false), else one compiled here. */
static const struct run_redactor *relay_for(struct run_plan *p, size_t *token, bool *owned)
{
	*owned = false;
	*token = SIZE_MAX;
	if (p->no_redact)
		return NULL;
	if (p->prepared && !p->token_var)
		return p->prepared;
	*owned = true;
	return redactor_for(p, token);
}

/* Each stream's redactions, summed, into the plan (for the exit record). */
static void count_redactions(struct runner *r, const struct run_redactor *red, size_t token, bool owned)
{
	const struct sink *sinks[] = {&r->term, &r->out, &r->err};
	for (size_t i = 0; red && i < r->p->n_secrets; i++) {
		size_t needle = owned ? i : r->p->prepared_index[i];
		for (size_t k = 0; k < 3; k++)
			r->p->redacted[i] += sinks[k]->o ? (int64_t)run_redact_count(sinks[k]->o, needle) : 0;
	}
	if (red && token != SIZE_MAX) {
		r->p->redacted_token = 0;
		for (size_t k = 0; k < 3; k++)
			r->p->redacted_token += sinks[k]->o ? (int64_t)run_redact_count(sinks[k]->o, token) : 0;
	}
}

int run_serve(struct run_plan *p, int cwd_fd, int control)
{
	int fds[RUN_MAX_REFS];
	size_t n_files = 0;
	struct secbuf *store = NULL;
	char **env = NULL;
	struct runner r = {.p = p,
			   .status = -1,
			   .control = control,
			   .sfd = -1,
			   .kill_at = -1,
			   .master = -1,
			   .slave_fd = -1,
			   .tty = -1,
			   .term = {.from = -1, .to = 1},
			   .out = {.from = -1, .to = 1},
			   .err = {.from = -1, .to = 2}};
	struct run_stdio io = {.fd = {-1, -1, -1}, .tty = -1};
	size_t token = SIZE_MAX;
	p->redacted_token = -1; /* until a model token is among the needles */
	/* Before run_prepare wipes the plan's values: the relay keeps their
	 * forms (in secure memory) for as long as the child can print. */
	bool owned;
	const struct run_redactor *red = relay_for(p, &token, &owned);
	int status = (p->no_redact || red || !p->n_secrets) ? run_prepare(p, fds, &n_files, &env, &store) : 125;
	if (status != 0)
		goto out;
	/* Every signal stays blocked in the runner: a stray one (an alarm, a
	 * closed pipe) cannot end it before its child. SIGCHLD and the ones
	 * that ask it to stop are read from a signalfd. */
	sigset_t all, dfl, watched;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sigemptyset(&watched);
	sigaddset(&watched, SIGCHLD);
	sigaddset(&watched, SIGTERM);
	sigaddset(&watched, SIGINT);
	sigaddset(&watched, SIGHUP);
	sigaddset(&watched, SIGQUIT);
	r.sfd = signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK);
	status = 125;
	if (r.sfd < 0) {
		latch_error(LATCH_OPERR, "cannot watch the program: %s", strerror(errno));
		goto out;
	}
	if (plan_stdio(&r, &io, n_files, red) != 0)
		goto out;
	run_default_signals(&dfl);
	/* A process group of its own (a session, with a pty): what the
	 * caller's signals reach, and what ends when the caller goes away. */
	status = run_spawn(p, env, fds, n_files, &dfl, true, cwd_fd, &io, &r.pid);
	secbuf_free(store);
	store = NULL;
	run_close_files(fds, n_files);
	for (int i = 1; i < 3; i++)
		if (io.fd[i] >= 0) {
			close(io.fd[i]);
			io.fd[i] = -1;
		}
	if (status != 0)
		goto out;
	term_raw(&r);
	serve(&r);
	count_redactions(&r, red, token, owned);
	status = r.status >= 0 ? r.status : 125;
out:
	/* Also when the child could not start (125-127, the reason already
	 * on the caller's stderr, which is ours). The terminal first: latch
	 * run exits as soon as it reads this. */
	term_restore(&r);
	say_exit(&r, status, red != NULL);
	runner_close(&r, &io);
	if (owned)
		run_redactor_free((struct run_redactor *)red);
	run_close_files(fds, n_files);
	secbuf_free(store);
	free(env);
	run_values_free(p);
	return status;
}
