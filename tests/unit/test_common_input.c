/* Unit tests: input parsing in common/ (parse_fd, parse_duration) and the
 * readers of common/input.c, fed through pipes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../common/common.h"

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	return sodium_init() < 0 ? -1 : 0;
}

static void fd_numbers(void **state)
{
	(void)state;
	int fd = -1;
	assert_int_equal(parse_fd("0", &fd), 0);
	assert_int_equal(fd, 0);
	assert_int_equal(parse_fd("2147483647", &fd), 0);
	assert_int_equal(fd, 2147483647);
	assert_int_equal(parse_fd("007", &fd), 0);
	assert_int_equal(fd, 7);

	const char *bad[] = {"",   "-1", "+3",  "3 ", "3x", "0x3", "2147483648", "99999999999999999999",
			     "-0", " 3", "\t3", "\n3"};
	latch_error_quiet(true);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		fd = -5;
		assert_int_equal(parse_fd(bad[i], &fd), -1);
		assert_int_equal(latch_last_status(), LATCH_USAGE);
		assert_int_equal(fd, -5); /* untouched on failure */
	}
	latch_error_quiet(false);
}

static void duration_units(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t want;
	} ok[] = {{"0s", 0},
		  {"1s", 1},
		  {"90s", 90},
		  {"30m", 1800},
		  {"24h", 86400},
		  {"7d", 604800},
		  {"2w", 1209600},
		  {"0090s", 90},
		  {"1m", 60},
		  {"1h", 3600},
		  {"1d", 86400},
		  {"1w", 604800},
		  {"99999999999w", 99999999999LL * 604800}};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int64_t got = -1;
		assert_int_equal(parse_duration(ok[i].s, INT64_MAX, "ttl", &got), 0);
		assert_int_equal(got, ok[i].want);
	}
}

static void duration_garbage(void **state)
{
	(void)state;
	/* The last two: 13 characters or more, refused before any arithmetic. */
	const char *bad[] = {"",
			     "s",
			     "5",
			     "10",
			     "5x",
			     "5S",
			     "5 s",
			     " 5s",
			     "5s ",
			     "-5s",
			     "+5s",
			     "5ss",
			     "s5",
			     "1.5h",
			     "5sm",
			     "h",
			     "0x10s",
			     "5\n",
			     "5s\n",
			     "m30",
			     "1e3s",
			     "5y",
			     "5ms",
			     "\xc2\xb5s",
			     "999999999999s",
			     "0000000000001s"};
	latch_error_quiet(true);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t got = -7;
		assert_int_equal(parse_duration(bad[i], INT64_MAX, "ttl", &got), -1);
		assert_int_equal(latch_last_status(), LATCH_USAGE);
	}
	latch_error_quiet(false);
}

/* The maximum: equal is fine, one second more is refused, whatever the
 * unit; the message names what was parsed and the maximum. */
static void duration_max(void **state)
{
	(void)state;
	int64_t got;
	assert_int_equal(parse_duration("3600s", 3600, "ttl", &got), 0);
	assert_int_equal(got, 3600);
	assert_int_equal(parse_duration("60m", 3600, "ttl", &got), 0);
	assert_int_equal(parse_duration("1h", 3600, "ttl", &got), 0);
	latch_error_quiet(true);
	assert_int_equal(parse_duration("3601s", 3600, "ttl", &got), -1);
	assert_int_equal(parse_duration("61m", 3600, "ttl", &got), -1);
	assert_int_equal(parse_duration("2h", 3600, "ttl", &got), -1);
	assert_int_equal(parse_duration("1d", 3600, "ttl", &got), -1);
	assert_int_equal(parse_duration("1s", 0, "ttl", &got), -1);
	assert_int_equal(parse_duration("0s", 0, "ttl", &got), 0);
	assert_int_equal(got, 0);
	/* The largest count of weeks that fits in 12 characters. */
	assert_int_equal(parse_duration("99999999999w", 99999999999LL * 604800 - 1, "ttl", &got), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	latch_error_quiet(false);

	/* The message: one line naming `what`, the input and the maximum. */
	FILE *f = tmpfile();
	assert_non_null(f);
	fflush(stderr);
	int saved = dup(2);
	dup2(fileno(f), 2);
	int rc = parse_duration("2h", 3600, "grant lifetime", &got);
	rc += parse_duration("2x", 3600, "grant lifetime", &got);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	char msg[512];
	size_t n = fread(msg, 1, sizeof msg - 1, f);
	msg[n] = '\0';
	fclose(f);
	assert_int_equal(rc, -2);
	assert_non_null(strstr(msg, "latch: grant lifetime '2h' is longer than the maximum (3600 s)\n"));
	assert_non_null(strstr(msg, "latch: invalid grant lifetime '2x'"));
}

/* A pipe holding `data` (then closed for writing unless keep_open). For
 * more than a pipe holds, a child writes it. */
static int feed(const void *data, size_t n)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	if (n <= 4096) {
		assert_int_equal(write_all(p[1], data, n), 0);
		close(p[1]);
		return p[0];
	}
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(write_all(p[1], data, n) == 0 ? 0 : 1);
	}
	close(p[1]);
	return p[0];
}

static void reap(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void secret_whole(void **state)
{
	(void)state;
	struct secbuf *b = NULL;
	bool big = true;
	int fd = feed("s3cret\n\0x", 9);
	assert_int_equal(read_fd_secret(fd, 100, &b, &big), 0);
	close(fd);
	assert_false(big);
	assert_int_equal(b->len, 9); /* every byte, newline and NUL included */
	assert_memory_equal(b->data, "s3cret\n\0x", 9);
	secbuf_free(b);

	/* Empty input: an empty value, not an error. */
	fd = feed("", 0);
	assert_int_equal(read_fd_secret(fd, 100, &b, NULL), 0);
	close(fd);
	assert_int_equal(b->len, 0);
	secbuf_free(b);
}

static void secret_limit(void **state)
{
	(void)state;
	static unsigned char big_in[200000];
	memset(big_in, 'v', sizeof big_in);
	struct secbuf *b = NULL;
	bool big = true;

	/* Exactly the maximum, larger than a pipe holds. */
	int fd = feed(big_in, sizeof big_in);
	assert_int_equal(read_fd_secret(fd, sizeof big_in, &b, &big), 0);
	close(fd);
	reap();
	assert_false(big);
	assert_int_equal(b->len, sizeof big_in);
	assert_memory_equal(b->data, big_in, sizeof big_in);
	secbuf_free(b);

	/* One byte more: too big, reported by the caller (nothing printed). */
	b = NULL;
	fd = feed(big_in, 101);
	latch_error_quiet(false);
	assert_int_equal(read_fd_secret(fd, 100, &b, &big), -1);
	close(fd);
	assert_true(big);
	assert_null(b);

	/* Without too_big: reported here, as a usage error. */
	fd = feed(big_in, 4000);
	latch_error_quiet(true);
	assert_int_equal(read_fd_secret(fd, 100, &b, NULL), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	close(fd);
	/* A descriptor that cannot be read. */
	assert_int_equal(read_fd_secret(fd, 100, &b, &big), -1);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	assert_false(big);
	latch_error_quiet(false);
	assert_null(b);
}

/* One line at a time: nothing past the newline is consumed, so the next
 * reader of the descriptor gets the rest. */
static void lines(void **state)
{
	(void)state;
	struct secbuf *b = NULL;
	const char in[] = "first\nsecond\r\n\nlast";
	int fd = feed(in, sizeof in - 1);
	assert_int_equal(read_fd_line_secret(fd, 64, &b), 0);
	assert_int_equal(b->len, 5);
	assert_memory_equal(b->data, "first", 5);
	secbuf_free(b);
	assert_int_equal(read_fd_line_secret(fd, 64, &b), 0);
	assert_int_equal(b->len, 6); /* CRLF: the CR goes too */
	assert_memory_equal(b->data, "second", 6);
	secbuf_free(b);
	assert_int_equal(read_fd_line_secret(fd, 64, &b), 0);
	assert_int_equal(b->len, 0); /* an empty line */
	secbuf_free(b);
	assert_int_equal(read_fd_line_secret(fd, 64, &b), 0);
	assert_int_equal(b->len, 4); /* no final newline */
	assert_memory_equal(b->data, "last", 4);
	secbuf_free(b);
	assert_int_equal(read_fd_line_secret(fd, 64, &b), 0);
	assert_int_equal(b->len, 0); /* end of input */
	secbuf_free(b);
	close(fd);

	/* The byte after the newline is still in the pipe. */
	fd = feed("pw\nREST", 7);
	assert_int_equal(read_fd_line_secret(fd, 64, &b), 0);
	secbuf_free(b);
	char rest[8] = {0};
	assert_int_equal(read(fd, rest, sizeof rest), 4);
	assert_string_equal(rest, "REST");
	close(fd);
}

static void line_limit(void **state)
{
	(void)state;
	struct secbuf *b = NULL;
	/* Exactly max bytes, then the newline: fine. */
	int fd = feed("12345678\n", 9);
	assert_int_equal(read_fd_line_secret(fd, 8, &b), 0);
	assert_int_equal(b->len, 8);
	secbuf_free(b);
	close(fd);
	/* One more: refused as usage, nothing returned. */
	b = NULL;
	fd = feed("123456789\n", 10);
	latch_error_quiet(true);
	assert_int_equal(read_fd_line_secret(fd, 8, &b), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	assert_null(b);
	close(fd);
	/* A closed descriptor. */
	assert_int_equal(read_fd_line_secret(fd, 8, &b), -1);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	latch_error_quiet(false);
}

static void writes(void **state)
{
	(void)state;
	static unsigned char big[300000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The reader: check every byte, slowly enough for short writes. */
		close(p[1]);
		static unsigned char got[sizeof big];
		size_t n = 0;
		ssize_t r;
		while ((r = read(p[0], got + n, 1000)) > 0)
			n += (size_t)r;
		_exit(n == sizeof big && memcmp(got, big, n) == 0 ? 0 : 1);
	}
	close(p[0]);
	assert_int_equal(write_all(p[1], big, sizeof big), 0);
	close(p[1]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(write_all(p[1], "x", 1), -1); /* closed */
	assert_int_equal(write_all(p[1], "", 0), 0);   /* nothing to do */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fd_numbers),   cmocka_unit_test(duration_units), cmocka_unit_test(duration_garbage),
		cmocka_unit_test(duration_max), cmocka_unit_test(secret_whole),   cmocka_unit_test(secret_limit),
		cmocka_unit_test(lines),        cmocka_unit_test(line_limit),     cmocka_unit_test(writes),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
