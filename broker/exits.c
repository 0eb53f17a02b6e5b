/* The exit queue: exit records are not on any run's critical path. A
 * runner is reaped at once and its exit record rides on the next
 * commit (the next release, refusal or revoke), or is written after
 * BROKER_EXIT_FLUSH_MS of quiet, on a flush, or when the broker stops. */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

static void release_free(struct release *r)
{
	if (r->report >= 0)
		close(r->report);
	for (size_t i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r);
}

static void pending_drop_all(struct broker *b)
{
	while (b->pending) {
		struct release *r = b->pending;
		b->pending = r->next;
		release_free(r);
	}
	b->pending_tail = &b->pending;
	b->n_pending = 0;
}

int exits_record(struct broker *b, const struct broker_event *ev)
{
	struct broker_event *evs = b->batch;
	size_t n = 0;
	if (b->lost > 0)
		evs[n++] = (struct broker_event){.event = "lost",
						 .lost_exits = b->lost,
						 .pid = b->pid,
						 .uid = getuid(),
						 .exit_status = -1};
	for (const struct release *r = b->pending; r && n < EXITS_MAX_PENDING + 1; r = r->next)
		evs[n++] = (struct broker_event){.event = "exit",
						 .grant_id = r->grant_id,
						 .names = (const char *const *)r->names,
						 .n = r->n,
						 .pid = r->pid,
						 .uid = r->uid,
						 .exit_status = r->status,
						 .time = r->time,
						 .redacted = r->has_redacted ? r->redacted : NULL,
						 .redacted_token = r->redacted_token};
	size_t n_queued = n;
	if (ev)
		evs[n++] = *ev;
	if (n == 0)
		return 0;
	if (b->rec->record(b->rec->ctx, evs, n) == 0) {
		pending_drop_all(b);
		b->lost = 0;
		b->flush_failures = 0;
		return 0;
	}
	if (b->n_pending > 0) {
		b->pending_since_ms = monotonic_ms(); /* retry later, not in a loop */
		if (++b->flush_failures >= EXITS_MAX_FAILURES) {
			b->lost += (int64_t)b->n_pending;
			pending_drop_all(b);
			b->flush_failures = 0;
		}
	}
	return ev && n_queued > 0 ? b->rec->record(b->rec->ctx, ev, 1) : -1;
}

void exits_await(struct broker *b, const char *id, const struct grant *g, const char *const *names, size_t n,
		 pid_t runner, int report)
{
	struct release *r = calloc(1, sizeof *r);
	if (!r) {
		close(report);
		return; /* its exit goes unrecorded */
	}
	snprintf(r->id, sizeof r->id, "%s", id);
	r->runner = runner;
	r->report = report;
	snprintf(r->grant_id, sizeof r->grant_id, "%s", g->id);
	for (size_t i = 0; i < n; i++)
		if (!(r->names[r->n++] = strdup(names[i]))) {
			release_free(r);
			return;
		}
	r->next = b->releases;
	b->releases = r;
	/* Bounded: beyond this many children running at once, the oldest
	 * one's exit goes unrecorded. */
	if (++b->n_releases > EXITS_MAX_AWAITED) {
		struct release **p = &b->releases;
		while ((*p)->next)
			p = &(*p)->next;
		release_free(*p);
		*p = NULL;
		b->n_releases--;
	}
}

/* What the runner said when its child ended: {"redacted": {NAME: N,
 * ...}} (the model token as "model-token"), written before it exited, so
 * whole by now. Names it did not release are ignored. */
static void read_report(struct release *r)
{
	char buf[8192];
	ssize_t n = r->report >= 0 ? read(r->report, buf, sizeof buf - 1) : -1;
	if (r->report >= 0)
		close(r->report);
	r->report = -1;
	r->redacted_token = -1;
	json_t *m = n > 0 ? json_loadb(buf, (size_t)n, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
	json_t *per = json_object_get(m, "redacted");
	if (json_is_object(per)) {
		r->has_redacted = true;
		for (size_t i = 0; i < r->n; i++) {
			json_t *v = json_object_get(per, r->names[i]);
			r->redacted[i] = json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : 0;
		}
		json_t *t = json_object_get(per, "model-token");
		if (json_is_integer(t) && json_integer_value(t) >= 0)
			r->redacted_token = json_integer_value(t);
	}
	json_decref(m);
}

int exits_report(struct broker *b, pid_t runner, int status)
{
	for (struct release **p = &b->releases; *p; p = &(*p)->next) {
		struct release *r = *p;
		if (r->runner != runner)
			continue;
		*p = r->next;
		b->n_releases--;
		read_report(r);
		r->pid = runner;
		r->uid = getuid();
		r->status = status;
		r->time = broker_now();
		r->next = NULL;
		if (b->n_pending++ == 0)
			b->pending_since_ms = monotonic_ms();
		*b->pending_tail = r;
		b->pending_tail = &r->next;
		if (b->n_pending >= EXITS_MAX_PENDING && exits_record(b, NULL) != 0)
			return -1;
		return 0;
	}
	return 1;
}

bool exits_due(const struct broker *b, int64_t now_ms)
{
	return b->pending && now_ms - b->pending_since_ms >= BROKER_EXIT_FLUSH_MS;
}

int64_t exits_wait_ms(const struct broker *b, int64_t now_ms)
{
	if (!b->pending)
		return -1;
	int64_t due = b->pending_since_ms + BROKER_EXIT_FLUSH_MS - now_ms;
	return due < 0 ? 0 : due;
}

void exits_free(struct broker *b)
{
	pending_drop_all(b);
	while (b->releases) {
		struct release *r = b->releases;
		b->releases = r->next;
		release_free(r);
	}
	b->n_releases = 0;
}
