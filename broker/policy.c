/* Grant policy: whether a grant covers a request, its deadline, its uses.
 * Pure functions of the grants and the time given (tests/unit/
 * test_broker_policy.c); only policy_end and what calls it wipe values. */
#include "state.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

bool policy_live(const struct grant *g, int64_t now)
{
	return !g->ended && g->deadline > now && g->uses_left != 0;
}

const struct grant_item *policy_item(const struct grant *g, const char *name)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->items[i].name, name))
			return &g->items[i];
	return NULL;
}

bool policy_allows_cmd(const struct grant *g, const char *cmd)
{
	if (g->n_cmds == 0)
		return true;
	for (size_t i = 0; i < g->n_cmds; i++)
		if (!strcmp(g->cmds[i], cmd))
			return true;
	return false;
}

struct grant *policy_find(struct grant *list, const char *const *names, size_t n, const char *cmd, int64_t now)
{
	for (struct grant *g = list; g; g = g->next) {
		bool all = policy_live(g, now) && policy_allows_cmd(g, cmd);
		for (size_t k = 0; all && k < n; k++)
			all = policy_item(g, names[k]) != NULL;
		if (all)
			return g;
	}
	return NULL;
}

void policy_denial(const struct grant *list, const char *const *names, size_t n, const char *cmd, int64_t now,
		   char *buf, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		const struct grant *seen = NULL;
		for (const struct grant *g = list; g && !seen; g = g->next)
			if (policy_item(g, names[i]))
				seen = g;
		if (!seen) {
			snprintf(buf, len, "no grant covers '%s'", names[i]);
			return;
		}
		bool any_live = false, cmd_ok = false;
		for (const struct grant *g = list; g; g = g->next)
			if (policy_item(g, names[i]) && policy_live(g, now)) {
				any_live = true;
				cmd_ok = cmd_ok || policy_allows_cmd(g, cmd);
			}
		if (!any_live) {
			snprintf(buf, len, "grant %s for '%s' has %s", seen->id, names[i],
				 seen->ended && !strcmp(seen->ended, "used up")   ? "no uses left"
				 : seen->ended && !strcmp(seen->ended, "revoked") ? "been revoked"
										  : "expired");
			return;
		}
		if (!cmd_ok) {
			snprintf(buf, len, "no grant for '%s' allows the command '%s'", names[i], cmd);
			return;
		}
	}
	snprintf(buf, len, "no single grant covers all of these secrets");
}

void policy_end(struct grant *g, const char *why)
{
	secbuf_free(g->store);
	g->store = NULL;
	if (g->prepared && g->discard)
		g->discard(g->prepared);
	g->prepared = NULL;
	for (size_t i = 0; i < g->n; i++)
		g->items[i].value = (struct secbuf){NULL, 0, 0};
	if (!g->ended)
		g->ended = why;
}

void policy_sweep(struct grant *list, int64_t now)
{
	for (struct grant *g = list; g; g = g->next)
		if (!g->ended && g->deadline <= now)
			policy_end(g, "expired");
}

void policy_use(struct grant *g)
{
	if (g->uses_left > 0 && --g->uses_left == 0)
		policy_end(g, "used up");
}

void policy_grant_free(struct grant *g)
{
	if (!g)
		return;
	policy_end(g, "freed");
	for (size_t i = 0; i < g->n; i++)
		free(g->items[i].name);
	for (size_t i = 0; i < g->n_cmds; i++)
		free(g->cmds[i]);
	for (size_t i = 0; i < g->n_allow_env; i++)
		free(g->allow_env[i]);
	free(g);
}

static void pin_of(const struct stat *st, struct pin *p)
{
	*p = (struct pin){st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim};
}

int policy_pin(struct grant *g, char *why, size_t len)
{
	for (size_t i = 0; i < g->n_cmds; i++) {
		struct stat st;
		if (stat(g->cmds[i], &st) != 0) {
			snprintf(why, len, "cannot pin program '%s': %s", g->cmds[i], strerror(errno));
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			snprintf(why, len, "cannot pin program '%s': not a regular file", g->cmds[i]);
			return -1;
		}
		pin_of(&st, &g->pins[i]);
	}
	return 0;
}

static bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

bool policy_pin_holds(const struct grant *g, const char *cmd, char *why, size_t len)
{
	for (size_t i = 0; i < g->n_cmds; i++) {
		if (strcmp(g->cmds[i], cmd))
			continue;
		struct stat st;
		struct pin now;
		if (stat(cmd, &st) != 0) {
			snprintf(why, len, "the program '%s' is gone since the grant", cmd);
			return false;
		}
		pin_of(&st, &now);
		const struct pin *p = &g->pins[i];
		if (now.dev != p->dev || now.ino != p->ino) {
			snprintf(why, len, "the program '%s' was replaced since the grant: a human must grant it again",
				 cmd);
			return false;
		}
		if (now.size != p->size || !same_time(now.mtime, p->mtime) || !same_time(now.ctime, p->ctime)) {
			snprintf(why, len, "the program '%s' was changed since the grant: a human must grant it again",
				 cmd);
			return false;
		}
		return true;
	}
	return true; /* a grant for any command pins none */
}
