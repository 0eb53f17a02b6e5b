/* Reading secrets: passphrases and values arrive through a file
 * descriptor or a no-echo terminal prompt, straight into secure memory.
 * Nothing here uses stdio, whose buffers would keep copies. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

int read_fd_secret(int fd, size_t max, struct secbuf **out, bool *too_big)
{
	if (too_big)
		*too_big = false;
	/* One byte more than allowed tells "exactly max" from "too big". */
	struct secbuf *b = secbuf_new(max + 1);
	if (!b)
		return -1;
	for (;;) {
		ssize_t r = read(fd, b->data + b->len, b->cap - b->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			secbuf_free(b);
			return latch_error(LATCH_OPERR, "cannot read input: %s", strerror(e));
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
		if (b->len > max) {
			secbuf_free(b);
			if (too_big) {
				*too_big = true; /* the caller says what was too big */
				return -1;
			}
			return latch_error(LATCH_USAGE, "input is larger than %zu bytes", max);
		}
	}
	*out = b;
	return 0;
}

/* Job-control flags, set by the prompt's handlers (below). */
static volatile sig_atomic_t prompt_stop; /* a stop signal caught: which */
static volatile sig_atomic_t prompt_cont; /* SIGCONT caught */
static sigset_t prompt_async;             /* the four job-control signals */

/* read_line: one line from fd, byte by byte. At the prompt (at_prompt) it
 * returns 1, dropping the part read, as soon as a stop or continue signal
 * has been caught; elsewhere EINTR is simply retried. */
static int read_line(int fd, size_t max, struct secbuf **out, bool at_prompt)
{
	struct secbuf *b = secbuf_new(max);
	if (!b)
		return -1;
	for (;;) {
		if (at_prompt) {
			/* A plain read() could sleep through a SIGCONT that came
			 * just before it, with the shell's echo back on: check the
			 * flags with the signals blocked, and let ppoll() unblock
			 * them only while it waits. */
			sigset_t old;
			sigprocmask(SIG_BLOCK, &prompt_async, &old);
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			int w = (prompt_stop || prompt_cont) ? 0 : ppoll(&pfd, 1, NULL, &old);
			int e = errno;
			sigprocmask(SIG_SETMASK, &old, NULL);
			if (prompt_stop || prompt_cont) {
				secbuf_free(b);
				return 1;
			}
			if (w < 0 && e == EINTR)
				continue;
			if (w < 0) {
				secbuf_free(b);
				return latch_error(LATCH_OPERR, "cannot read from fd %d: %s", fd, strerror(e));
			}
		}
		unsigned char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			secbuf_free(b);
			return latch_error(LATCH_OPERR, "cannot read from fd %d: %s", fd, strerror(e));
		}
		if (r == 0 || c == '\n')
			break;
		if (b->len == max) {
			secbuf_free(b);
			return latch_error(LATCH_USAGE, "line on fd %d is longer than %zu bytes", fd, max);
		}
		b->data[b->len++] = c;
	}
	if (b->len && b->data[b->len - 1] == '\r')
		b->data[--b->len] = 0;
	*out = b;
	return 0;
}

int read_fd_line_secret(int fd, size_t max, struct secbuf **out)
{
	return read_line(fd, max, out, false);
}

bool tty_available(void)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

#define TTY_LINE_MAX 4095 /* N_TTY_BUF_SIZE - 1 */

/*
 * Signals at the prompt. SIGINT, SIGTERM, SIGHUP and SIGQUIT restore the
 * terminal and kill us as they would have. Job control is harder: when a
 * job stops, the shell puts back its own terminal modes, echo on, and
 * `fg` continues us in them, so the rest of the passphrase would be
 * echoed. We do what sudo's tgetpass does: a caught SIGTSTP, SIGTTIN or
 * SIGTTOU restores the terminal and stops us for real; on the way back,
 * and after any SIGCONT (a `kill -STOP` cannot be caught), echo goes off
 * again and the prompt is printed again. Blocking the stop signals would
 * not do: SIGSTOP cannot be blocked, and with SIGTTOU blocked a latch in
 * the background may turn off echo under the shell. The handlers only
 * set flags or call async-signal-safe functions.
 */
static int prompt_fd = -1;
static struct termios prompt_saved;
static volatile sig_atomic_t prompt_echo_off; /* our modes are in force */
static const int prompt_fatal[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
static const int prompt_job[] = {SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT};
#define N_FATAL (sizeof prompt_fatal / sizeof prompt_fatal[0])
#define N_JOB (sizeof prompt_job / sizeof prompt_job[0])

static void prompt_restore_and_reraise(int sig)
{
	if (prompt_echo_off) {
		tcsetattr(prompt_fd, TCSAFLUSH, &prompt_saved);
		(void)!write(prompt_fd, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig); /* blocked until we return, then fatal */
}

static void prompt_note(int sig)
{
	if (sig == SIGCONT)
		prompt_cont = 1;
	else
		prompt_stop = sig;
}

/* Stop with `sig` for real: the terminal as we found it (unless we are in
 * the background, where it is the shell's), then the default action. A
 * SIGTSTP to an orphaned process group is discarded: we just go on. */
static void prompt_suspend(int fd, int sig)
{
	if (prompt_echo_off && tcgetpgrp(fd) == getpgrp()) {
		tcsetattr(fd, TCSAFLUSH, &prompt_saved);
		(void)!write(fd, "\n", 1);
	}
	prompt_echo_off = 0;
	struct sigaction dfl, ours;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, &ours);
	kill(getpid(), sig); /* delivered before kill() returns */
	sigaction(sig, &ours, NULL);
}

int tty_read_hidden(const char *prompt, size_t max, struct secbuf **out)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return latch_error(LATCH_DENIED, "no terminal to prompt on: %s", strerror(errno));
	struct termios t;
	if (tcgetattr(fd, &t) != 0) {
		int e = errno;
		close(fd);
		return latch_error(LATCH_DENIED, "cannot use the terminal: %s", strerror(e));
	}
	prompt_saved = t;
	prompt_fd = fd;
	prompt_echo_off = 0;
	prompt_stop = 0;
	prompt_cont = 0;
	sigemptyset(&prompt_async);
	for (size_t i = 0; i < N_JOB; i++)
		sigaddset(&prompt_async, prompt_job[i]);

	/* No SA_RESTART: a caught signal must interrupt a read or write. */
	struct sigaction sa, old_fatal[N_FATAL], old_job[N_JOB];
	bool caught[N_JOB];
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < N_FATAL; i++)
		sigaddset(&sa.sa_mask, prompt_fatal[i]);
	for (size_t i = 0; i < N_JOB; i++)
		sigaddset(&sa.sa_mask, prompt_job[i]);
	sa.sa_handler = prompt_restore_and_reraise;
	for (size_t i = 0; i < N_FATAL; i++)
		sigaction(prompt_fatal[i], &sa, &old_fatal[i]);
	/* A stop signal someone chose to ignore stays ignored (SIGCONT
	 * continues us whatever its handler: it is always caught). */
	sa.sa_handler = prompt_note;
	for (size_t i = 0; i < N_JOB; i++) {
		sigaction(prompt_job[i], NULL, &old_job[i]);
		caught[i] = prompt_job[i] == SIGCONT || old_job[i].sa_handler != SIG_IGN;
		if (caught[i])
			sigaction(prompt_job[i], &sa, NULL);
	}

	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	t.c_lflag |= ICANON;
	int rc = -1;
	for (;;) {
		prompt_stop = 0;
		prompt_cont = 0;
		/* Set first: a fatal signal from here on restores the terminal. */
		prompt_echo_off = 1;
		/* In the background this raises SIGTTOU: we stop until `fg`. */
		if (tcsetattr(fd, TCSAFLUSH, &t) != 0) {
			int e = errno;
			prompt_echo_off = 0;
			if (e == EINTR && prompt_stop) {
				prompt_suspend(fd, prompt_stop);
				continue;
			}
			if (e == EINTR)
				continue;
			latch_error(LATCH_DENIED, "cannot turn off terminal echo: %s", strerror(e));
			goto restore;
		}
		if (write(fd, prompt, strlen(prompt)) < 0 && errno != EINTR) {
			latch_error(LATCH_OPERR, "cannot write to the terminal: %s", strerror(errno));
			goto restore;
		}
		rc = read_line(fd, max, out, true);
		if (rc != 1)
			break;
		/* Stopped or continued mid-answer: what was typed is dropped
		 * (TCSAFLUSH), the human starts again at a fresh prompt. */
		if (prompt_stop)
			prompt_suspend(fd, prompt_stop);
	}
	if (rc == 0)
		(void)!write(fd, "\n", 1);
	/* The terminal's line editor keeps at most 4095 bytes of a line and
	 * drops the rest without a word: a line that long may be cut. */
	if (rc == 0 && (*out)->len >= TTY_LINE_MAX) {
		secbuf_free(*out);
		*out = NULL;
		size_t plen = strlen(prompt);
		while (plen && (prompt[plen - 1] == ' ' || prompt[plen - 1] == ':'))
			plen--;
		rc = latch_error(
			LATCH_USAGE,
			"the answer to '%.*s' reached the terminal's %d-byte line limit and may be cut: use --file or stdin",
			(int)plen, prompt, TTY_LINE_MAX);
	}
restore:;
	/* A stop that comes once the answer is in is not lost: it is sent
	 * again once the caller's handlers are back. */
	sigset_t old_mask;
	sigprocmask(SIG_BLOCK, &prompt_async, &old_mask);
	if (prompt_echo_off)
		tcsetattr(fd, TCSAFLUSH, &prompt_saved);
	prompt_echo_off = 0;
	for (size_t i = 0; i < N_FATAL; i++)
		sigaction(prompt_fatal[i], &old_fatal[i], NULL);
	for (size_t i = 0; i < N_JOB; i++)
		if (caught[i])
			sigaction(prompt_job[i], &old_job[i], NULL);
	int pending_stop = prompt_stop;
	prompt_fd = -1;
	close(fd);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	if (pending_stop)
		kill(getpid(), pending_stop);
	return rc;
}
