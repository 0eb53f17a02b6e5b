/* Small conversions shared by the modules. */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

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

int parse_duration(const char *s, int64_t max, const char *what, int64_t *seconds)
{
	static const struct {
		char unit;
		int64_t seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
	size_t n = strlen(s);
	if (n >= 2 && n <= 12 && s[0] >= '0' && s[0] <= '9') {
		char *end;
		errno = 0;
		long long v = strtoll(s, &end, 10);
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			if (errno || end != s + n - 1 || *end != units[i].unit || v < 0 ||
			    v > INT64_MAX / units[i].seconds)
				continue;
			*seconds = v * units[i].seconds;
			if (*seconds > max)
				return latch_error(LATCH_USAGE, "%s '%s' is longer than the maximum (%lld s)", what, s,
						   (long long)max);
			return 0;
		}
	}
	return latch_error(LATCH_USAGE, "invalid %s '%s': use digits and a unit, e.g. 90s, 30m, 24h, 7d", what, s);
}

/* Each block carries its size in front, so free can wipe it. */
static void *wiping_malloc(size_t n)
{
	size_t *p = malloc(n + sizeof(size_t) * 2);
	if (!p)
		return NULL;
	p[0] = n;
	return p + 2; /* two words keep 16-byte alignment */
}

static void wiping_free(void *ptr)
{
	if (!ptr)
		return;
	size_t *p = (size_t *)ptr - 2;
	sodium_memzero(ptr, p[0]);
	free(p);
}

void json_use_wiping_allocator(void)
{
	json_set_alloc_funcs(wiping_malloc, wiping_free);
}

bool latch_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '/' && c != '-')))
			return false;
	}
	return true;
}

void json_free_text(char *text)
{
	json_malloc_t m;
	json_free_t f;
	json_get_alloc_funcs(&m, &f);
	if (text)
		f(text);
}
