/* Small conversions shared by the modules. */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

void format_time_utc(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		buf[0] = '?';
		buf[1] = '\0';
	}
}

int parse_fd(const char *s, int *fd)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > INT_MAX || s[0] == '-' || s[0] == '+')
		return latch_error(LATCH_USAGE, "invalid file descriptor '%s'", s);
	*fd = (int)v;
	return 0;
}
