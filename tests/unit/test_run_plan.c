/* Unit test: a run plan (run/refs.c, run/exec.c). References name
 * secrets; each reference is linked to its secret once (run_secrets), and
 * references to the same secret share it; a value is attached to its
 * secret, never looked up by name again. run_child gives the child each
 * value (as a variable or a memory file) and leaves the plan holding none:
 * its store and every secret's own buffer are wiped by the time it
 * returns, whatever the child did, and when it refuses before exec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../run/run.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static struct run_plan plan;

static int setup(void **state)
{
	(void)state;
	memset(&plan, 0, sizeof plan);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	run_plan_free(&plan);
	return 0;
}

static void refs_share_their_secret(void **state)
{
	(void)state;
	struct run_plan *p = &plan;
	char *envp[] = {"A=latch://db", "PATH=/usr/bin", "B=latch://api", NULL};
	assert_int_equal(run_add_environ(p, envp), 0);
	assert_int_equal(run_add_ref(p, "C=latch://db", true), 0);
	assert_int_equal(run_add_ref(p, "B=latch://other", false), 0); /* replaces B */
	assert_int_equal(p->n_refs, 3);
	assert_int_equal(run_secrets(p), 2);
	assert_string_equal(p->secrets[0].name, "db");
	assert_string_equal(p->secrets[1].name, "other");
	assert_int_equal(p->refs[0].secret, 0); /* A */
	assert_int_equal(p->refs[1].secret, 1); /* B */
	assert_int_equal(p->refs[2].secret, 0); /* C, as a file */
	assert_true(p->refs[2].as_file);
	assert_int_equal(run_add_ref(p, "X=plain", false), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
}

/* Values in one store, as a release gives them. */
static void attach(struct run_plan *p, const char *const *values)
{
	size_t total = 0;
	for (size_t i = 0; i < p->n_secrets; i++)
		total += strlen(values[i]);
	p->store = secbuf_new(total);
	assert_non_null(p->store);
	for (size_t i = 0; i < p->n_secrets; i++) {
		size_t n = strlen(values[i]);
		unsigned char *d = p->store->data + p->store->len;
		memcpy(d, values[i], n);
		p->store->len += n;
		p->secrets[i].value = (struct secbuf){d, n, n};
	}
}

static void child_gets_values_plan_keeps_none(void **state)
{
	(void)state;
	struct run_plan *p = &plan;
	assert_int_equal(run_add_ref(p, "A=latch://db", false), 0);
	assert_int_equal(run_add_ref(p, "F=latch://db", true), 0);
	assert_int_equal(run_add_ref(p, "B=latch://api", false), 0);
	run_secrets(p);
	const char *values[] = {"db-value", "api value"};
	attach(p, values);
	char *argv[] =
		{"sh", "-c",
		 "[ \"$A\" = db-value ] && [ \"$B\" = 'api value' ] && [ \"$(cat \"$F\")\" = db-value ] || exit 7",
		 NULL};
	p->argv = argv;
	assert_int_equal(run_resolve("sh", p->path), 0);
	assert_int_equal(run_child(p), 0);
	assert_null(p->store);
	assert_null(p->secrets[0].value.data);
	assert_int_equal(p->secrets[1].value.len, 0);

	/* A child that fails: its status, and still nothing held. */
	run_secrets(p);
	attach(p, values);
	argv[2] = "[ \"$A\" = other ] || exit 7";
	assert_int_equal(run_child(p), 7);
	assert_null(p->store);
}

static void own_buffers_are_wiped_too(void **state)
{
	(void)state;
	struct run_plan *p = &plan;
	assert_int_equal(run_add_ref(p, "A=latch://db", false), 0);
	run_secrets(p);
	struct secbuf *own = secbuf_new(3);
	memcpy(own->data, "abc", 3);
	own->len = 3;
	p->secrets[0].own = own;
	p->secrets[0].value = *own;
	char *argv[] = {"sh", "-c", "[ \"$A\" = abc ] || exit 7", NULL};
	p->argv = argv;
	assert_int_equal(run_resolve("sh", p->path), 0);
	assert_int_equal(run_child(p), 0);
	assert_null(p->secrets[0].own);
	assert_null(p->secrets[0].value.data);
}

static void refused_before_exec(void **state)
{
	(void)state;
	struct run_plan *p = &plan;
	assert_int_equal(run_add_ref(p, "A=latch://db", false), 0);
	run_secrets(p);
	/* No value attached: 125, nothing run. */
	char *argv[] = {"sh", "-c", "exit 0", NULL};
	p->argv = argv;
	assert_int_equal(run_resolve("sh", p->path), 0);
	assert_int_equal(run_child(p), 125);
	/* A NUL byte cannot go into a variable: 125. */
	const char *values[] = {"a"};
	attach(p, values);
	p->store->data[0] = '\0';
	assert_int_equal(run_child(p), 125);
	assert_null(p->store); /* wiped on this path too */
	run_values_free(p);    /* idempotent */
	assert_null(p->store);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	latch_error_quiet(true);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(refs_share_their_secret, setup, teardown),
		cmocka_unit_test_setup_teardown(child_gets_values_plan_keeps_none, setup, teardown),
		cmocka_unit_test_setup_teardown(own_buffers_are_wiped_too, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_before_exec, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
