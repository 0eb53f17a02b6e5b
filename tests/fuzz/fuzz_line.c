/* Fuzz target: common/input.c's readers, read_fd_line_secret() and
 * read_fd_secret(), fed through a pipe and compared byte for byte with a
 * model of their contract.
 *
 * Input: byte 0 = line limit (0-63), byte 1 = limit for read_fd_secret
 * (0-63) and whether it gets a too_big pointer (bit 7), the rest is what
 * the pipe carries. Checked on every call:
 *   - a line is at most `max` bytes, holds no '\n', equals the model's line
 *     (one trailing '\r' dropped), and nothing past its newline is read;
 *   - a line longer than `max` fails with LATCH_USAGE after reading exactly
 *     max + 1 bytes of it;
 *   - read_fd_secret returns exactly the remaining bytes when they fit in
 *     its limit and fails (too_big set, or LATCH_USAGE) when they do not;
 *   - no secure buffer is leaked. */
#include "fuzz.h"

#include "../../common/common.h"
#include "secmem.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_line: %s\n", what);
	abort();
}

/* A pipe whose read end holds `data` followed by EOF. Payloads beyond the
 * pipe's capacity are cut (libFuzzer's default max_len is far below it). */
static int pipe_with(const uint8_t *data, size_t *size)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		fail("cannot create a pipe");
	int cap = fcntl(p[1], F_GETPIPE_SZ);
	if (cap > 0 && *size > (size_t)cap)
		*size = (size_t)cap;
	size_t off = 0;
	while (off < *size) {
		ssize_t w = write(p[1], data + off, *size - off);
		if (w <= 0)
			fail("cannot fill the pipe");
		off += (size_t)w;
	}
	close(p[1]);
	return p[0];
}

/* How many bytes are still unread in the pipe (0 = at EOF). */
static size_t pipe_left(int fd)
{
	int n = 0;
	if (ioctl(fd, FIONREAD, &n) != 0 || n < 0)
		fail("cannot query the pipe");
	return (size_t)n;
}

/* Reads lines until EOF and checks each against the model. Returns how
 * many bytes the readers consumed in total (always all of them). */
static size_t check_lines(int fd, const uint8_t *d, size_t n, size_t max, size_t limit_lines)
{
	size_t pos = 0;
	for (size_t k = 0; k < limit_lines; k++) {
		/* The model: the line runs to the next '\n' or the end. */
		size_t end = pos;
		while (end < n && d[end] != '\n')
			end++;
		size_t len = end - pos;
		struct secbuf *line = NULL;
		int rc = read_fd_line_secret(fd, max, &line);
		if (len > max) {
			if (rc != -1 || latch_last_status() != LATCH_USAGE)
				fail("an over-long line was accepted");
			pos += max + 1; /* read up to the first byte too many */
		} else {
			if (rc != 0 || !line)
				fail("a line within the limit was refused");
			size_t want = len;
			if (want && d[pos + want - 1] == '\r')
				want--;
			if (line->len != want || line->len > max || line->len > line->cap ||
			    memcmp(line->data, d + pos, want) != 0)
				fail("the line read differs from the input");
			if (memchr(line->data, '\n', line->len))
				fail("a line holds a newline");
			pos = end < n ? end + 1 : end;
			secbuf_free(line);
		}
		if (pipe_left(fd) != n - pos)
			fail("the reader consumed bytes past the line");
		if (pos == n)
			break;
	}
	return pos;
}

static void check_secret(int fd, const uint8_t *rest, size_t n, size_t max, bool want_flag)
{
	struct secbuf *b = NULL;
	bool too_big = false;
	int rc = read_fd_secret(fd, max, &b, want_flag ? &too_big : NULL);
	if (n <= max) {
		if (rc != 0 || !b || b->len != n || b->len > b->cap || memcmp(b->data, rest, n) != 0)
			fail("read_fd_secret did not return the exact bytes");
		if (too_big)
			fail("too_big set on success");
		secbuf_free(b);
	} else {
		if (rc != -1)
			fail("read_fd_secret accepted more than its limit");
		if (want_flag ? !too_big : latch_last_status() != LATCH_USAGE)
			fail("read_fd_secret did not say the input was too big");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		/* As main() does: secbuf_new needs an initialised libsodium. */
		if (sodium_init() < 0)
			fail("cannot initialise libsodium");
		latch_error_quiet(true);
		signal(SIGPIPE, SIG_IGN);
		ready = true;
	}
	if (size < 2)
		return 0;
	size_t line_max = data[0] & 63, secret_max = data[1] & 63;
	bool want_flag = data[1] & 0x80;
	const uint8_t *d = data + 2;
	size_t n = size - 2;
	long before = secmem_in_use();

	/* 1: lines until EOF. */
	int fd = pipe_with(d, &n);
	check_lines(fd, d, n, line_max, SIZE_MAX);
	/* At EOF a line read succeeds, empty. */
	struct secbuf *line = NULL;
	if (read_fd_line_secret(fd, line_max, &line) != 0 || line->len != 0)
		fail("a line read at EOF is not empty");
	secbuf_free(line);
	close(fd);

	/* 2: one line, then the rest in one piece: the line reader must
	 * leave every byte after the line for the next reader. */
	n = size - 2;
	fd = pipe_with(d, &n);
	size_t pos = check_lines(fd, d, n, line_max, 1);
	check_secret(fd, d + pos, n - pos, secret_max, want_flag);
	close(fd);

	/* 3: the whole input at once. */
	n = size - 2;
	fd = pipe_with(d, &n);
	check_secret(fd, d, n, secret_max, want_flag);
	close(fd);

	secmem_check(before, "reading");
	return 0;
}
