/* bench/match_bench: how fast match/ finds many patterns, and what it
 * costs to build them.
 *
 *   match_bench [-m MIB] [-r RUNS] [-c] [DIR...]
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
 * (default 5), with the number of matches; with -c, the time is this
 * thread's CPU time, not the wall clock's (steadier on a loaded machine). Then match_forms per value,
 * and match_unwrap_base64 on the source code and on wrapped base64.
 *
 * Then issue 13's set (redaction): the forms (min_len 6) of 100 random
 * values of 16-40 base64 characters, on random binary data, the random
 * printable text, the source code, and the printable text with one of
 * the values planted every 64 KiB, each scanned three ways in the same
 * run: match_set_scan (the prefilter in front of the automaton), the
 * same set built with LATCH_MATCH_PREFILTER=0 (the automaton alone, as
 * before the prefilter), and match_stream_feed in chunks of 64 KiB (what
 * a redactor feeds). Then the build time of the forms of 1,000 such
 * values. */
#include "../match/match.h"
#include "bench.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 100

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

struct stream_counter {
	size_t n;
};
static int count_stream_hit(uint32_t id, uint64_t start, uint64_t end, void *ctx)
{
	(void)id, (void)start, (void)end;
	((struct stream_counter *)ctx)->n++;
	return 0;
}

/* Median MB/s of `runs` streamed scans in chunks of `chunk` bytes. */
static double stream_rate(const struct match_set *s, const unsigned char *t, size_t n, size_t chunk, int runs,
			  size_t *matches)
{
	double rate[MAX_RUNS];
	for (int r = 0; r < runs; r++) {
		struct stream_counter c = {0};
		struct match_stream st;
		double t0 = now_ms();
		match_stream_init(&st, s);
		for (size_t i = 0; i < n; i += chunk)
			if (match_stream_feed(&st, t + i, n - i < chunk ? n - i : chunk, count_stream_hit, &c) != 0)
				die("feed failed");
		rate[r] = (double)n / 1e3 / (now_ms() - t0);
		*matches = c.n;
	}
	return median(rate, runs);
}

/* Issue 13's values: `n_val` random values of 16-40 base64 characters,
 * kept for planting. */
struct values {
	unsigned char v[1000][40];
	size_t len[1000];
	size_t n;
};

/* A set of the forms (min_len 6) of the values; *n_pat patterns, the
 * build time in *build_ms. */
static struct match_set *values_set(const struct values *vs, size_t *n_pat, double *build_ms)
{
	struct match_set *s = match_set_new();
	if (!s)
		die("out of memory");
	*n_pat = 0;
	for (size_t i = 0; i < vs->n; i++) {
		struct match_form *f;
		size_t count;
		if (match_forms(vs->v[i], vs->len[i], 6, &f, &count) != 0)
			die("match_forms failed");
		for (size_t k = 0; k < count; k++)
			if (match_set_add(s, f[k].bytes->data, f[k].bytes->len, (uint32_t)i) != 0)
				die("add failed");
		*n_pat += count;
		match_forms_free(f, count);
	}
	double t0 = now_ms();
	if (match_set_build(s) != 0)
		die("build failed");
	*build_ms = now_ms() - t0;
	return s;
}

/* `n` values of lo-40 characters: base64 ones, or printable ASCII (which
 * have every form: json, shell, yaml, percent differ from raw). */
static void random_values(struct values *vs, size_t n, size_t lo, int printable)
{
	vs->n = n;
	for (size_t i = 0; i < n; i++) {
		vs->len[i] = lo + rnd_below((uint32_t)(41 - lo));
		if (printable)
			for (size_t k = 0; k < vs->len[i]; k++)
				vs->v[i][k] = (unsigned char)(0x21 + rnd_below(94));
		else
			random_b64(vs->v[i], vs->len[i]);
	}
}

static void issue13(const unsigned char *prn_text, const unsigned char *src_text, size_t n, int runs, size_t lo,
		    int printable)
{
	static struct values vs;
	random_values(&vs, 100, lo, printable);
	unsigned char *bin = malloc(n), *planted = malloc(n);
	if (!bin || !planted)
		die("out of memory");
	for (size_t i = 0; i < n; i++)
		bin[i] = (unsigned char)rnd_below(256);
	memcpy(planted, prn_text, n);
	for (size_t i = 0; i + 64 <= n; i += 65536) {
		size_t k = rnd_below(100);
		memcpy(planted + i + rnd_below(16), vs.v[k], vs.len[k]);
	}
	const unsigned char *texts[] = {bin, prn_text, src_text, planted};

	size_t n_pat;
	double build_ms, plain_ms;
	struct match_set *s = values_set(&vs, &n_pat, &build_ms);
	setenv("LATCH_MATCH_PREFILTER", "0", 1);
	struct match_set *plain = values_set(&vs, &n_pat, &plain_ms);
	unsetenv("LATCH_MATCH_PREFILTER");
	printf("\nIssue 13: the forms (min_len 6) of 100 values of %zu-40 %s characters: %zu patterns of %zu-%zu "
	       "bytes, built in %.1f ms (%.1f without the prefilter)\n",
	       lo, printable ? "printable" : "base64", n_pat, match_set_min_len(s), match_set_max_len(s), build_ms,
	       plain_ms);
	printf("%-34s %12s %12s %12s %12s %8s\n", "path", "binary_MB/s", "printable", "source", "planted", "matches");
	const char *label[] = {"match_set_scan (prefilter)", "automaton alone (PREFILTER=0)", "stream, 64 KiB chunks"};
	for (int way = 0; way < 3; way++) {
		double r[4];
		size_t m[4];
		for (int k = 0; k < 4; k++)
			r[k] = way == 2 ? stream_rate(s, texts[k], n, 65536, runs, &m[k])
					: scan_rate(way ? plain : s, texts[k], n, runs, &m[k]);
		printf("%-34s %12.0f %12.0f %12.0f %12.0f %8zu\n", label[way], r[0], r[1], r[2], r[3], m[3]);
		if (m[0] || m[1] || m[2] > n / 1000)
			printf("(matches on binary, printable, source: %zu %zu %zu)\n", m[0], m[1], m[2]);
	}
	match_set_free(s);
	match_set_free(plain);

	static struct values big;
	random_values(&big, 1000, lo, printable);
	long before = rss_kib();
	s = values_set(&big, &n_pat, &build_ms);
	long kib = rss_kib() - before;
	size_t m_src;
	double r_src = scan_rate(s, src_text, n, runs, &m_src);
	printf("forms of 1,000 such values: %zu patterns, built in %.1f ms, %.1f MiB; %.0f MB/s on source code\n",
	       n_pat, build_ms, (double)kib / 1024, r_src);
	match_set_free(s);
	free(bin);
	free(planted);
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
	while ((opt = getopt(argc, argv, "m:r:c")) != -1) {
		if (opt == 'c')
			bench_clock = CLOCK_THREAD_CPUTIME_ID;
		else if (opt == 'm')
			mib = (size_t)strtoul(optarg, NULL, 10);
		else if (opt == 'r')
			runs = atoi(optarg);
		else
			die("usage: match_bench [-m MIB] [-r RUNS] [-c] [DIR...]");
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
	       "repeated), median of %d scans, %s time\n",
	       mib, mib, (double)one / 1048576, runs, bench_clock == CLOCK_MONOTONIC ? "wall-clock" : "CPU");
	printf("%-30s %8s %10s %10s %12s %10s %12s %10s\n", "set", "patterns", "build_ms", "mem_MiB", "random_MB/s",
	       "matches", "source_MB/s", "matches");
	random_set(1000, rnd_text, src, n, runs);
	random_set(25000, rnd_text, src, n, runs);
	forms_set(1000, rnd_text, src, n, runs);

	issue13(rnd_text, src, n, runs, 16, 0);
	issue13(rnd_text, src, n, runs, 6, 1);

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
