/* The fuzz targets of match/ (fuzz_match_ac, fuzz_match_scan): the
 * occurrences a scan reports, collected from its callbacks, put in one
 * order and compared. A file that includes this defines fail(). */
#ifndef LATCH_FUZZ_HITS_H
#define LATCH_FUZZ_HITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_HITS (1u << 20)

static void fail(const char *what);

struct hit {
	uint32_t id;
	uint64_t start, end;
};
struct hits {
	struct hit *h;
	size_t n;
	size_t stop_at; /* return 5 from the callback at this many hits (0: never) */
};

static int push(struct hits *hs, uint32_t id, uint64_t start, uint64_t end)
{
	if (hs->n == MAX_HITS)
		fail("more hits than the harness holds");
	hs->h[hs->n++] = (struct hit){id, start, end};
	return hs->stop_at && hs->n == hs->stop_at ? 5 : 0;
}
static int on_hit(uint32_t id, size_t start, size_t end, void *ctx)
{
	return push(ctx, id, start, end);
}
static int on_stream_hit(uint32_t id, uint64_t start, uint64_t end, void *ctx)
{
	return push(ctx, id, start, end);
}

/* By end, then start, then id: the order the naive matchers sort into. */
static int by_hit(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static bool equal(const struct hits *a, const struct hits *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (by_hit(&a->h[i], &b->h[i]) != 0)
			return false;
	return true;
}

#endif
