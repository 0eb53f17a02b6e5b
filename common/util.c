/* Small conversions shared by the modules. */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm):
 * no gmtime/strftime, which cost more than the rest of `latch ls`. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void format_time_utc(int64_t t, char buf[32])
{
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400), y;
	int64_t secs = t - days * 86400;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999) {
		buf[0] = '?';
		buf[1] = '\0';
		return;
	}
	/* Digits by hand: snprintf here was most of `latch ls`'s time. */
	unsigned f[6] = {(unsigned)y, m, d, (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60), (unsigned)(secs % 60)};
	char *p = buf;
	*p++ = (char)('0' + f[0] / 1000);
	*p++ = (char)('0' + f[0] / 100 % 10);
	*p++ = (char)('0' + f[0] / 10 % 10);
	*p++ = (char)('0' + f[0] % 10);
	for (int i = 1; i < 6; i++) {
		*p++ = "--T::"[i - 1];
		*p++ = (char)('0' + f[i] / 10);
		*p++ = (char)('0' + f[i] % 10);
	}
	*p++ = 'Z';
	*p = '\0';
}

int parse_fd(const char *s, int *fd)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	/* Digits only: strtol would also take leading space and a sign. */
	if (errno || end == s || *end || v < 0 || v > INT_MAX || s[0] < '0' || s[0] > '9')
		return latch_error(LATCH_USAGE, "invalid file descriptor '%s'", s);
	*fd = (int)v;
	return 0;
}

bool duration_seconds(const char *s, int64_t *seconds)
{
	static const struct {
		char unit;
		int64_t seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
	size_t n = strlen(s);
	if (n < 2 || n > 12)
		return false;
	/* At most 11 digits: no product below overflows. */
	int64_t v = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (s[n - 1] == units[i].unit) {
			*seconds = v * units[i].seconds;
			return true;
		}
	return false;
}

int parse_duration(const char *s, int64_t max, const char *what, int64_t *seconds)
{
	if (!duration_seconds(s, seconds))
		return latch_error(LATCH_USAGE, "invalid %s '%s': use digits and a unit, e.g. 90s, 30m, 24h, 7d", what,
				   s);
	if (*seconds > max)
		return latch_error(LATCH_USAGE, "%s '%s' is longer than the maximum (%lld s)", what, s, (long long)max);
	return 0;
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

_Static_assert(LATCH_NAME_MAX == 128, "LATCH_NAME_RULE states the maximum as 128");

bool latch_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > LATCH_NAME_MAX)
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

int write_all(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
