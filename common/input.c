/* Reading secrets: passphrases and values arrive through a file
 * descriptor or a no-echo terminal prompt, straight into secure memory.
 * Nothing here uses stdio, whose buffers would keep copies. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
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

int read_fd_line_secret(int fd, size_t max, struct secbuf **out)
{
	struct secbuf *b = secbuf_new(max);
	if (!b)
		return -1;
	for (;;) {
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

bool tty_available(void)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

#define TTY_LINE_MAX 4095 /* N_TTY_BUF_SIZE - 1 */

/* The terminal state to restore if a signal arrives mid-prompt. */
static int prompt_fd = -1;
static struct termios prompt_saved;
static const int prompt_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU};
#define N_PROMPT_SIGNALS (sizeof prompt_signals / sizeof prompt_signals[0])

static void prompt_restore_and_reraise(int sig)
{
	if (prompt_fd >= 0)
		tcsetattr(prompt_fd, TCSAFLUSH, &prompt_saved);
	(void)!write(prompt_fd, "\n", 1);
	signal(sig, SIG_DFL);
	raise(sig);
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
	struct sigaction sa, old[N_PROMPT_SIGNALS];
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = prompt_restore_and_reraise;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
		sigaction(prompt_signals[i], &sa, &old[i]);

	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	t.c_lflag |= ICANON;
	int rc = -1;
	if (tcsetattr(fd, TCSAFLUSH, &t) != 0) {
		latch_error(LATCH_DENIED, "cannot turn off terminal echo: %s", strerror(errno));
		goto restore;
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		latch_error(LATCH_OPERR, "cannot write to the terminal: %s", strerror(errno));
		goto restore;
	}
	rc = read_fd_line_secret(fd, max, out);
	(void)!write(fd, "\n", 1);
	/* The terminal's line editor keeps at most 4095 bytes of a line and
	 * drops the rest without a word: a line that long may be cut. */
	if (rc == 0 && (*out)->len >= TTY_LINE_MAX) {
		secbuf_free(*out);
		*out = NULL;
		size_t plen = strlen(prompt);
		while (plen && (prompt[plen - 1] == ' ' || prompt[plen - 1] == ':'))
			plen--;
		rc = latch_error(LATCH_USAGE,
				 "the answer to '%.*s' reached the terminal's %d-byte line limit and may be cut: use --file or stdin",
				 (int)plen, prompt, TTY_LINE_MAX);
	}
restore:
	tcsetattr(fd, TCSAFLUSH, &prompt_saved);
	for (size_t i = 0; i < N_PROMPT_SIGNALS; i++)
		sigaction(prompt_signals[i], &old[i], NULL);
	prompt_fd = -1;
	close(fd);
	return rc;
}
