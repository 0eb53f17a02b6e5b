/* One error function for every module: a single lowercase line on stderr
 * and a remembered status that cli/ turns into the exit status. */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>

static enum latch_status last_status = LATCH_OPERR;
static bool quiet;
static char last_message[LATCH_ERROR_MAX + 1];

int latch_error(enum latch_status status, const char *fmt, ...)
{
	last_status = status;
	char line[LATCH_ERROR_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* A path, a name or a broker's message may carry control characters:
	 * the line says them, the terminal never obeys them. */
	text_escape(line, last_message, sizeof last_message);
	if (quiet)
		return -1;
	/* One write, so the line is not interleaved with a child's output. */
	fprintf(stderr, "latch: %s\n", last_message);
	return -1;
}

enum latch_status latch_last_status(void)
{
	return last_status;
}

const char *latch_last_message(void)
{
	return last_message;
}

bool latch_error_quiet(bool q)
{
	bool was = quiet;
	quiet = q;
	return was;
}

void latch_error_print_last(void)
{
	if (!quiet)
		fprintf(stderr, "latch: %s\n", last_message);
}
