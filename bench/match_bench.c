/* bench/match_bench: how fast match/ finds many patterns, and what it
 * costs to build them.
 *
 *   match_bench [-m MIB] [-r RUNS] [DIR...]
 *
 * Texts (MIB MiB each, default 50): random printable ASCII with a line
 * break every 40-120 characters, and source code (the .c and .h files
 * under DIR..., default /usr/include and the current directory, repeated
 * to fill). Pattern sets: 1,000 and 25,000 random patterns of 20-60
 * characters of the base64 alphabet (what secrets look like, and
 * characters source code is full of), and the forms (match_forms,
 * min_len 16) of 1,000 random values of 24-48 such characters: the
 * scanner's set. For each set: the patterns, the build time, the
 * automaton's resident memory (VmRSS after build minus before the set),
 * and MB/s (10^6 bytes per second) on each text, the median of RUNS scans
 * (default 5), with the number of matches. Then match_forms per value,
 * and match_unwrap_base64 on the source code and on wrapped base64. */
#include "../match/match.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 100

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Resident memory of this process, in KiB. */
static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void die(const char *what)
{
	fprintf(stderr, "match_bench: %s\n", what);
	exit(3);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* splitmix64, seeded from libsodium: randombytes_uniform is a getrandom
 * system call each (libsodium 1.0.18), 100 million of them to fill the
 * texts. */
static uint64_t rng_state;
static uint32_t rnd_below(uint32_t n)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	z ^= z >> 31;
	return (uint32_t)((z >> 32) * n >> 32);
}

static void random_b64(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)b64[rnd_below(64)];
}

/* ---- The source-code text ---- */
static unsigned char *src;
static size_t src_len, src_cap;

static int add_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	size_t n = strlen(path);
	if (type != FTW_F || n < 2 || path[n - 2] != '.' || (path[n - 1] != 'c' && path[n - 1] != 'h'))
		return 0;
	if (src_len >= src_cap)
		return 1;
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t room = src_cap - src_len, want = (size_t)st->st_size < room ? (size_t)st->st_size : room;
	src_len += fread(src + src_len, 1, want, f);
	fclose(f);
	return 0;
}

struct counter {
	size_t n;
};
static int count_hit(uint32_t id, size_t start, size_t end, void *ctx)
{
	(void)id, (void)start, (void)end;
	((struct counter *)ctx)->n++;
	return 0;
}

/* Median MB/s of `runs` scans; *matches from the last. */
static double scan_rate(const struct match_set *s, const unsigned char *t, size_t n, int runs, size_t *matches)
{
	double rate[MAX_RUNS];
	for (int r = 0; r < runs; r++) {
		struct counter c = {0};
		double t0 = now_ms();
		if (match_set_scan(s, t, n, count_hit, &c) != 0)
			die("scan failed");
		rate[r] = (double)n / 1e3 / (now_ms() - t0);
		*matches = c.n;
	}
	return median(rate, runs);
}

static void report(const char *label, size_t n_pat, double build_ms, long kib, const unsigned char *rnd_text,
		   const unsigned char *src_text, size_t n, int runs, const struct match_set *s)
{
	size_t m_rnd, m_src;
	double r_rnd = scan_rate(s, rnd_text, n, runs, &m_rnd);
	double r_src = scan_rate(s, src_text, n, runs, &m_src);
	printf("%-30s %8zu %10.1f %10.1f %12.0f %10zu %12.0f %10zu\n", label, n_pat, build_ms, (double)kib / 1024,
	       r_rnd, m_rnd, r_src, m_src);
}

static void random_set(size_t n_pat, const unsigned char *rnd_text, const unsigned char *src_text, size_t n, int runs)
{
	unsigned char pat[60];
	long before = rss_kib();
	struct match_set *s = match_set_new();
	if (!s)
		die("out of memory");
	for (size_t i = 0; i < n_pat; i++) {
		size_t len = 20 + rnd_below(41);
		random_b64(pat, len);
		if (match_set_add(s, pat, len, (uint32_t)i) != 0)
			die("add failed");
	}
	double t0 = now_ms();
	if (match_set_build(s) != 0)
		die("build failed");
	double build = now_ms() - t0;
	char label[64];
	snprintf(label, sizeof label, "random 20-60 B");
	report(label, n_pat, build, rss_kib() - before, rnd_text, src_text, n, runs, s);
	match_set_free(s);
}

/* The forms of `n_val` values, as the scanner would add them; prints the
 * time match_forms takes per value too. */
static void forms_set(size_t n_val, const unsigned char *rnd_text, const unsigned char *src_text, size_t n, int runs)
{
	unsigned char v[48];
	long before = rss_kib();
	struct match_set *s = match_set_new();
	if (!s)
		die("out of memory");
	size_t n_pat = 0;
	double forms_ms = 0;
	for (size_t i = 0; i < n_val; i++) {
		size_t len = 24 + rnd_below(25);
		random_b64(v, len);
		struct match_form *f;
		size_t count;
		double t0 = now_ms();
		if (match_forms(v, len, 16, &f, &count) != 0)
			die("match_forms failed");
		forms_ms += now_ms() - t0;
		for (size_t k = 0; k < count; k++)
			if (match_set_add(s, f[k].bytes->data, f[k].bytes->len, (uint32_t)i) != 0)
				die("add failed");
		n_pat += count;
		match_forms_free(f, count);
	}
	double t0 = now_ms();
	if (match_set_build(s) != 0)
		die("build failed");
	double build = now_ms() - t0;
	char label[64];
	snprintf(label, sizeof label, "forms of %zu values", n_val);
	report(label, n_pat, build, rss_kib() - before, rnd_text, src_text, n, runs, s);
	printf("match_forms: %.1f us per value (24-48 B; %.1f forms each), with its secure allocation and free\n",
	       forms_ms * 1e3 / (double)n_val, (double)n_pat / (double)n_val);
	match_set_free(s);
}

static void unwrap_rate(const char *label, const unsigned char *t, size_t n, int runs)
{
	double rate[MAX_RUNS];
	size_t cuts = 0;
	for (int r = 0; r < runs; r++) {
		struct match_unwrapped u;
		double t0 = now_ms();
		int rc = match_unwrap_base64(t, n, &u);
		rate[r] = (double)n / 1e3 / (now_ms() - t0);
		if (rc < 0)
			die("unwrap failed");
		cuts = u.n_cuts;
		match_unwrapped_free(&u);
	}
	printf("match_unwrap_base64 on %s: %.0f MB/s, %zu cuts\n", label, median(rate, runs), cuts);
}

int main(int argc, char **argv)
{
	size_t mib = 50;
	int runs = 5, opt;
	while ((opt = getopt(argc, argv, "m:r:")) != -1) {
		if (opt == 'm')
			mib = (size_t)strtoul(optarg, NULL, 10);
		else if (opt == 'r')
			runs = atoi(optarg);
		else
			die("usage: match_bench [-m MIB] [-r RUNS] [DIR...]");
	}
	if (mib == 0 || mib > 4096 || runs < 1 || runs > MAX_RUNS)
		die("-m takes 1-4096, -r 1-100");
	if (sodium_init() < 0)
		die("sodium_init failed");
	randombytes_buf(&rng_state, sizeof rng_state);
	size_t n = mib * 1024 * 1024;

	unsigned char *rnd_text = malloc(n);
	src = malloc(n);
	if (!rnd_text || !src)
		die("out of memory");
	for (size_t i = 0; i < n;) {
		size_t line = 40 + rnd_below(81);
		for (size_t k = 0; k < line && i < n; k++)
			rnd_text[i++] = (unsigned char)(0x20 + rnd_below(95));
		if (i < n)
			rnd_text[i++] = '\n';
	}
	src_cap = n;
	const char *dflt[] = {"/usr/include", "."};
	char **dirs = optind < argc ? argv + optind : (char **)dflt;
	int n_dirs = optind < argc ? argc - optind : 2;
	for (int d = 0; d < n_dirs && src_len < src_cap; d++)
		nftw(dirs[d], add_file, 16, FTW_PHYS);
	if (src_len == 0)
		die("no .c or .h file found for the source-code text");
	size_t one = src_len;
	while (src_len < n) {
		size_t k = n - src_len < one ? n - src_len : one;
		memcpy(src + src_len, src, k);
		src_len += k;
	}

	printf("match_bench: %zu MiB of random printable text, %zu MiB of source code (%.1f MiB of .c/.h files, "
	       "repeated), median of %d scans\n",
	       mib, mib, (double)one / 1048576, runs);
	printf("%-30s %8s %10s %10s %12s %10s %12s %10s\n", "set", "patterns", "build_ms", "mem_MiB", "random_MB/s",
	       "matches", "source_MB/s", "matches");
	random_set(1000, rnd_text, src, n, runs);
	random_set(25000, rnd_text, src, n, runs);
	forms_set(1000, rnd_text, src, n, runs);

	unwrap_rate("source code", src, n, runs);
	/* Wrapped base64: random base64 in lines of 76. */
	for (size_t i = 0; i < n;) {
		for (size_t k = 0; k < 76 && i < n; k++)
			rnd_text[i++] = (unsigned char)b64[rnd_below(64)];
		if (i < n)
			rnd_text[i++] = '\n';
	}
	unwrap_rate("base64 wrapped at 76", rnd_text, n, runs);
	free(rnd_text);
	free(src);
	return 0;
}
