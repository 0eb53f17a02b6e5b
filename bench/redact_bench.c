/* bench/redact_bench: how fast the redactor (run/redact.c) passes a
 * child's output through.
 *
 *   redact_bench [-m MIB] [-r RUNS]
 *
 * Values: 1, 20 and 100 random values of 24-48 characters of the base64
 * alphabet, with all their forms (match_forms, min_len RUN_REDACT_MIN).
 * Texts (MIB MiB each, default 64), none holding a value: random binary
 * (every byte value, so ESC about every 256 bytes), printable text with a
 * line break every 40-120 characters, and the same text with a colour code
 * (ESC [ 3 1 m ... ESC [ 0 m) around every tenth word. Each text is fed to
 * run_redact_feed in 64 KiB and 4 KiB pieces and written to /dev/null;
 * MB/s (10^6 bytes per second) is the median of RUNS (default 5), beside
 * match_set_scan alone over the same text with the same forms (the floor
 * the redactor stands on; match/ac.c). Then
 * the cost of one feed of one byte (a child writing byte by byte), the
 * bytes held after a line of text, and the build time (run_redactor_new)
 * for 1, 20, 100 and 1,000 values. */
#include "../match/match.h"
#include "../run/run.h"
#include "bench.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 50

static void die(const char *what)
{
	fprintf(stderr, "redact_bench: %s\n", what);
	exit(3);
}

static uint64_t rng_state;
static uint32_t rnd_below(uint32_t n)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	z ^= z >> 31;
	return (uint32_t)((z >> 32) * n >> 32);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* n values and their needles (names "v0", "v1", ...). */
static struct run_needle *values(size_t n, unsigned char **store)
{
	struct run_needle *nd = calloc(n, sizeof *nd);
	*store = malloc(n * 48);
	char *names = malloc(n * 24);
	if (!nd || !*store || !names)
		die("out of memory");
	for (size_t i = 0; i < n; i++) {
		size_t len = 24 + rnd_below(25);
		for (size_t j = 0; j < len; j++)
			(*store)[i * 48 + j] = (unsigned char)b64[rnd_below(64)];
		snprintf(names + i * 24, 24, "v%zu", i);
		nd[i] = (struct run_needle){names + i * 24, *store + i * 48, len};
	}
	return nd;
}

static void values_free(struct run_needle *nd, unsigned char *store)
{
	free((void *)nd[0].name);
	free(nd);
	free(store);
}

static void text(unsigned char *p, size_t n, bool colour)
{
	static const char words[] = "abcdefghijklmnopqrstuvwxyz";
	size_t i = 0, line = 0, word = 0;
	while (i < n) {
		bool c = colour && word++ % 10 == 0;
		if (c && i + 5 < n) {
			memcpy(p + i, "\x1b[31m", 5);
			i += 5;
		}
		size_t wl = 2 + rnd_below(8);
		for (size_t j = 0; j < wl && i < n; j++)
			p[i++] = (unsigned char)words[rnd_below(26)];
		if (c && i + 4 < n) {
			memcpy(p + i, "\x1b[0m", 4);
			i += 4;
		}
		line += wl + 1;
		if (i < n)
			p[i++] = line > 40 + rnd_below(80) ? (line = 0, '\n') : ' ';
	}
}

static int no_hit(uint32_t id, size_t start, size_t end, void *ctx)
{
	(void)id, (void)start, (void)end;
	++*(size_t *)ctx;
	return 0;
}

/* The floor: match_set_scan alone over the text, the needles' forms. */
static double scan_mbs(const struct run_needle *nd, size_t k, const unsigned char *t, size_t n, int runs)
{
	struct match_set *s = match_set_new();
	uint32_t id = 0;
	for (size_t i = 0; i < k; i++) {
		struct match_form *f;
		size_t c;
		if (!s || match_forms(nd[i].value, nd[i].len, RUN_REDACT_MIN, &f, &c) != 0)
			die("match_forms");
		for (size_t j = 0; j < c; j++)
			if (match_set_add(s, f[j].bytes->data, f[j].bytes->len, id++) != 0)
				die("match_set_add");
		match_forms_free(f, c);
	}
	if (match_set_build(s) != 0)
		die("match_set_build");
	double mbs[MAX_RUNS];
	for (int r = 0; r < runs; r++) {
		size_t hits = 0;
		double t0 = now_ms();
		if (match_set_scan(s, t, n, no_hit, &hits) != 0)
			die("match_set_scan");
		mbs[r] = (double)n / 1e3 / (now_ms() - t0);
	}
	match_set_free(s);
	return median(mbs, runs);
}

static double feed_mbs(const struct run_redactor *r, const unsigned char *t, size_t n, size_t piece, int runs,
		       int null_fd)
{
	double mbs[MAX_RUNS];
	for (int k = 0; k < runs; k++) {
		struct run_redact_out *o = run_redact_out_new(r, null_fd);
		if (!o)
			die("run_redact_out_new");
		double t0 = now_ms();
		for (size_t at = 0; at < n; at += piece)
			if (run_redact_feed(o, t + at, n - at < piece ? n - at : piece) != 0)
				die("run_redact_feed");
		if (run_redact_flush(o) != 0)
			die("run_redact_flush");
		double ms = now_ms() - t0;
		run_redact_out_free(o);
		mbs[k] = (double)n / 1e3 / ms;
	}
	return median(mbs, runs);
}

int main(int argc, char **argv)
{
	size_t mib = 64;
	int runs = 5, opt;
	while ((opt = getopt(argc, argv, "m:r:")) != -1) {
		if (opt == 'm')
			mib = (size_t)atoi(optarg);
		else if (opt == 'r')
			runs = atoi(optarg);
		else
			die("usage: redact_bench [-m MIB] [-r RUNS]");
	}
	if (mib < 1 || runs < 1 || runs > MAX_RUNS)
		die("bad -m or -r");
	if (sodium_init() < 0)
		die("sodium_init");
	randombytes_buf(&rng_state, sizeof rng_state);
	int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0)
		die("cannot open /dev/null");
	size_t n = mib << 20;
	unsigned char *texts[3];
	static const char *const text_names[3] = {"random binary", "text", "text, colour codes"};
	for (int i = 0; i < 3; i++)
		if (!(texts[i] = malloc(n)))
			die("out of memory");
	for (size_t i = 0; i < n; i++)
		texts[0][i] = (unsigned char)rnd_below(256);
	text(texts[1], n, false);
	text(texts[2], n, true);

	printf("redact_bench: %zu MiB texts, median of %d runs, MB/s (10^6 bytes/s), output to /dev/null\n", mib, runs);
	printf("%-8s %-7s %-20s %10s %10s %10s\n", "values", "forms", "text", "64 KiB", "4 KiB", "scan alone");
	static const size_t counts[] = {1, 20, 100};
	for (size_t c = 0; c < 3; c++) {
		unsigned char *store;
		struct run_needle *nd = values(counts[c], &store);
		struct run_redactor *r = run_redactor_new(nd, counts[c]);
		if (!r)
			die("run_redactor_new");
		size_t forms = 0;
		for (size_t i = 0; i < counts[c]; i++) {
			struct match_form *f;
			size_t k;
			if (match_forms(nd[i].value, nd[i].len, RUN_REDACT_MIN, &f, &k) != 0)
				die("match_forms");
			forms += k;
			match_forms_free(f, k);
		}
		for (int t = 0; t < 3; t++)
			printf("%-8zu %-7zu %-20s %10.0f %10.0f %10.0f\n", counts[c], forms, text_names[t],
			       feed_mbs(r, texts[t], n, 65536, runs, null_fd),
			       feed_mbs(r, texts[t], n, 4096, runs, null_fd),
			       scan_mbs(nd, counts[c], texts[t], n, runs));
		if (counts[c] == 100) {
			/* A byte per feed (a child that writes byte by byte). */
			struct run_redact_out *o = run_redact_out_new(r, null_fd);
			size_t bytes = 1u << 20;
			double t0 = now_ms();
			for (size_t i = 0; i < bytes; i++)
				if (run_redact_feed(o, texts[1] + i, 1) != 0)
					die("run_redact_feed");
			double ms = now_ms() - t0;
			/* What is held after each line of text. */
			size_t lines = 0, held = 0;
			for (size_t i = 0; i < bytes; i++)
				if (texts[1][i] == '\n') {
					if (run_redact_feed(o, (const unsigned char *)"Password: ", 10) != 0)
						die("run_redact_feed");
					held += run_redact_held(o);
					lines++;
				}
			run_redact_out_free(o);
			printf("100 values, one byte per feed: %.3f us a feed (write(2) to /dev/null included)\n",
			       ms * 1e3 / (double)bytes);
			printf("100 values, bytes held after \"Password: \": %zu in %zu prompts\n", held, lines);
		}
		run_redactor_free(r);
		values_free(nd, store);
	}
	static const size_t build[] = {1, 20, 100, 1000};
	for (size_t c = 0; c < 4; c++) {
		unsigned char *store;
		struct run_needle *nd = values(build[c], &store);
		double t0 = now_ms();
		struct run_redactor *r = run_redactor_new(nd, build[c]);
		double ms = now_ms() - t0;
		if (!r)
			die("run_redactor_new");
		printf("run_redactor_new, %zu values: %.2f ms\n", build[c], ms);
		run_redactor_free(r);
		values_free(nd, store);
	}
	for (int i = 0; i < 3; i++)
		free(texts[i]);
	close(null_fd);
	return 0;
}
