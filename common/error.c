/* One error function for every module: a single lowercase line on stderr
 * and a remembered status that cli/ turns into the exit status. */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>

static enum latch_status last_status = LATCH_OPERR;
static bool quiet;

int latch_error(enum latch_status status, const char *fmt, ...)
{
	last_status = status;
	if (quiet)
		return -1;
	char line[LATCH_ERROR_MAX + 1], shown[LATCH_ERROR_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* A path, a name or a broker's message may carry control characters:
	 * the line says them, the terminal never obeys them. */
	text_escape(line, shown, sizeof shown);
	/* One write, so the line is not interleaved with a child's output. */
	fprintf(stderr, "latch: %s\n", shown);
	return -1;
}

enum latch_status latch_last_status(void)
{
	return last_status;
}

void latch_error_quiet(bool q)
{
	quiet = q;
}
