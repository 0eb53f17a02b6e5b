/* bench/bench.h: what the C benchmarks share (each is one file that
 * includes this): a millisecond clock and the median of samples. */
#ifndef LATCH_BENCH_H
#define LATCH_BENCH_H

#include <stdlib.h>
#include <time.h>

/* The clock now_ms reads: the wall clock, unless a benchmark measures CPU
 * time instead (match_bench --cpu sets CLOCK_THREAD_CPUTIME_ID). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static inline double now_ms(void)
{
	struct timespec ts;
	clock_gettime(bench_clock, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median of v[0..n), which it sorts. */
static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
