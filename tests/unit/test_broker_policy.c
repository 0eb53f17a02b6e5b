/* Unit test: the broker's grant policy (broker/policy.c), as pure
 * functions of grants and the time: which grant covers a request (every
 * name, and the command), when a grant stops being live (deadline, uses,
 * revoke), why a request is refused, and that ending a grant wipes its
 * values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../broker/state.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define T0 1000000

/* A grant of `names` (comma-separated), each value "v-NAME", for `cmds`
 * (comma-separated; "" any), until `deadline`, with `uses` (-1: no limit). */
static struct grant *grant_of(const char *id, const char *names, const char *cmds, int64_t deadline, int64_t uses)
{
	struct grant *g = calloc(1, sizeof *g);
	assert_non_null(g);
	snprintf(g->id, sizeof g->id, "%s", id);
	g->store = secbuf_new(4096);
	assert_non_null(g->store);
	char buf[512];
	snprintf(buf, sizeof buf, "%s", names);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned char *v = g->store->data + g->store->len;
		int len = snprintf((char *)v, 64, "v-%s", t);
		g->store->len += (size_t)len;
		g->items[g->n++] = (struct grant_item){strdup(t), {v, (size_t)len, (size_t)len}};
	}
	snprintf(buf, sizeof buf, "%s", cmds);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		g->cmds[g->n_cmds++] = strdup(t);
	g->deadline = deadline;
	g->uses_left = uses;
	return g;
}

static void free_list(struct grant *list)
{
	while (list) {
		struct grant *next = list->next;
		policy_grant_free(list);
		list = next;
	}
}

static void live_until_deadline_and_uses(void **state)
{
	(void)state;
	struct grant *g = grant_of("g-1", "a,b", "", T0 + 10, 2);
	assert_true(policy_live(g, T0));
	assert_true(policy_live(g, T0 + 9));
	assert_false(policy_live(g, T0 + 10)); /* the deadline itself is past */
	policy_use(g);
	assert_true(policy_live(g, T0));
	assert_non_null(g->store);
	policy_use(g); /* the last use ends it and wipes the values */
	assert_false(policy_live(g, T0));
	assert_string_equal(g->ended, "used up");
	assert_null(g->store);
	assert_null(g->items[0].value.data);
	assert_int_equal(g->items[1].value.len, 0);
	policy_grant_free(g);

	g = grant_of("g-2", "a", "", T0 + 10, -1);
	for (int i = 0; i < 1000; i++)
		policy_use(g);
	assert_true(policy_live(g, T0)); /* no limit */
	policy_end(g, "revoked");
	policy_end(g, "expired"); /* the first reason stays */
	assert_string_equal(g->ended, "revoked");
	assert_false(policy_live(g, T0));
	policy_grant_free(g);
}

static void sweep_ends_expired_only(void **state)
{
	(void)state;
	struct grant *a = grant_of("g-a", "x", "", T0 + 5, -1), *b = grant_of("g-b", "y", "", T0 + 50, -1);
	a->next = b;
	policy_sweep(a, T0 + 5);
	assert_string_equal(a->ended, "expired");
	assert_null(a->store);
	assert_null(b->ended);
	assert_non_null(b->store);
	free_list(a);
}

static void find_needs_one_grant_for_all(void **state)
{
	(void)state;
	struct grant *ab = grant_of("g-ab", "a,b", "/usr/bin/psql", T0 + 60, -1);
	struct grant *c = grant_of("g-c", "c", "", T0 + 60, -1);
	ab->next = c;
	const char *n_ab[] = {"b", "a"}, *n_ac[] = {"a", "c"}, *n_c[] = {"c"};
	assert_ptr_equal(policy_find(ab, n_ab, 2, "/usr/bin/psql", T0), ab);
	assert_null(policy_find(ab, n_ab, 2, "/bin/sh", T0));            /* not its command */
	assert_null(policy_find(ab, n_ac, 2, "/usr/bin/psql", T0));      /* no single grant */
	assert_ptr_equal(policy_find(ab, n_c, 1, "/bin/sh", T0), c);     /* any command */
	assert_null(policy_find(ab, n_ab, 2, "/usr/bin/psql", T0 + 60)); /* expired */
	const struct grant_item *it = policy_item(ab, "b");
	assert_non_null(it);
	assert_int_equal(it->value.len, 3);
	assert_memory_equal(it->value.data, "v-b", 3);
	assert_null(policy_item(ab, "c"));
	assert_true(policy_allows_cmd(c, "/anything"));
	assert_false(policy_allows_cmd(ab, "/usr/bin/psql2"));
	free_list(ab);
}

static void denial_says_why(void **state)
{
	(void)state;
	char why[256];
	struct grant *ab = grant_of("g-ab", "a,b", "/usr/bin/psql", T0 + 60, -1);
	struct grant *used = grant_of("g-u", "u", "", T0 + 60, 1);
	struct grant *rev = grant_of("g-r", "r", "", T0 + 60, -1);
	struct grant *old = grant_of("g-o", "o", "", T0 + 1, -1);
	struct grant *c = grant_of("g-c", "c", "", T0 + 60, -1);
	ab->next = used;
	used->next = rev;
	rev->next = old;
	old->next = c;
	policy_use(used);
	policy_end(rev, "revoked");
	const char *none[] = {"zz"}, *u[] = {"u"}, *r[] = {"r"}, *o[] = {"o"}, *a[] = {"a"}, *ac[] = {"a", "c"};
	policy_denial(ab, none, 1, "/bin/sh", T0, why, sizeof why);
	assert_string_equal(why, "no grant covers 'zz'");
	policy_denial(ab, u, 1, "/bin/sh", T0, why, sizeof why);
	assert_string_equal(why, "grant g-u for 'u' has no uses left");
	policy_denial(ab, r, 1, "/bin/sh", T0, why, sizeof why);
	assert_string_equal(why, "grant g-r for 'r' has been revoked");
	policy_denial(ab, o, 1, "/bin/sh", T0 + 5, why, sizeof why);
	assert_string_equal(why, "grant g-o for 'o' has expired");
	policy_denial(ab, a, 1, "/bin/sh", T0, why, sizeof why);
	assert_string_equal(why, "no grant for 'a' allows the command '/bin/sh'");
	policy_denial(ab, ac, 2, "/usr/bin/psql", T0, why, sizeof why);
	assert_string_equal(why, "no single grant covers all of these secrets");
	free_list(ab);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(live_until_deadline_and_uses),
		cmocka_unit_test(sweep_ends_expired_only),
		cmocka_unit_test(find_needs_one_grant_for_all),
		cmocka_unit_test(denial_says_why),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
