/* Unit tests: common/jout.c, the --json output of cli/. jout_print writes
 * to stdout, which each test points at a temporary file for the call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../common/common.h"

static char printed[4096];

/* jout_print(j, pretty) with stdout captured in `printed`. */
static int print_captured(struct jout *j, bool pretty)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	fflush(stdout);
	int saved = dup(1);
	dup2(fileno(f), 1);
	int rc = jout_print(j, pretty);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	rewind(f);
	size_t n = fread(printed, 1, sizeof printed - 1, f);
	printed[n] = '\0';
	fclose(f);
	return rc;
}

static void scalars(void **state)
{
	(void)state;
	struct jout *o = jout_object();
	assert_non_null(o);
	jout_str(o, "name", "db/prod");
	jout_str(o, "none", NULL);
	jout_str(o, "quote", "a\"b\\c\n\x1b");
	jout_str(o, "utf8", "caf\xc3\xa9");
	jout_int(o, "zero", 0);
	jout_int(o, "min", INT64_MIN);
	jout_int(o, "max", INT64_MAX);
	jout_bool(o, "yes", true);
	jout_bool(o, "no", false);
	assert_int_equal(print_captured(o, false), 0);
	assert_string_equal(printed,
			    "{\"name\":\"db/prod\",\"none\":null,\"quote\":\"a\\\"b\\\\c\\n\\u001B\","
			    "\"utf8\":\"caf\xc3\xa9\",\"zero\":0,\"min\":-9223372036854775808,"
			    "\"max\":9223372036854775807,\"yes\":true,\"no\":false}\n");
}

static void nested(void **state)
{
	(void)state;
	struct jout *top = jout_array();
	for (int i = 0; i < 2; i++) {
		struct jout *rec = jout_object();
		jout_int(rec, "seq", i + 1);
		struct jout *secrets = jout_array();
		jout_str(secrets, NULL, "a");
		if (i)
			jout_str(secrets, NULL, NULL);
		jout_add(rec, "secrets", secrets);
		struct jout *empty = jout_object();
		jout_add(rec, "meta", empty);
		jout_add(top, NULL, rec);
	}
	jout_add(top, NULL, jout_array());
	assert_int_equal(print_captured(top, false), 0);
	assert_string_equal(printed,
			    "[{\"seq\":1,\"secrets\":[\"a\"],\"meta\":{}},"
			    "{\"seq\":2,\"secrets\":[\"a\",null],\"meta\":{}},[]]\n");
}

static void pretty(void **state)
{
	(void)state;
	struct jout *o = jout_object();
	jout_str(o, "a", "x");
	struct jout *arr = jout_array();
	jout_int(arr, NULL, 1);
	jout_bool(arr, NULL, true);
	jout_add(o, "b", arr);
	assert_int_equal(print_captured(o, true), 0);
	assert_string_equal(printed, "{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    true\n  ]\n}\n");

	/* Empty containers. */
	assert_int_equal(print_captured(jout_object(), true), 0);
	assert_string_equal(printed, "{}\n");
	assert_int_equal(print_captured(jout_array(), false), 0);
	assert_string_equal(printed, "[]\n");
}

/* A key set twice keeps the last value, in its first place. */
static void same_key(void **state)
{
	(void)state;
	struct jout *o = jout_object();
	jout_int(o, "k", 1);
	jout_int(o, "other", 2);
	jout_str(o, "k", "again");
	assert_int_equal(print_captured(o, false), 0);
	assert_string_equal(printed, "{\"k\":\"again\",\"other\":2}\n");
}

/* A failed part (a NULL child, text that is not UTF-8) fails the whole:
 * nothing is printed, jout_print reports it once and returns -1. */
static void failures(void **state)
{
	(void)state;
	latch_error_quiet(true);
	struct jout *o = jout_object();
	jout_add(o, "child", NULL);
	assert_int_equal(print_captured(o, false), -1);
	assert_string_equal(printed, "");
	assert_int_equal(latch_last_status(), LATCH_OPERR);

	o = jout_object();
	jout_str(o, "bad", "\xff");
	assert_int_equal(print_captured(o, false), -1);
	assert_string_equal(printed, "");

	/* A failed child fails its parent. */
	o = jout_object();
	struct jout *child = jout_array();
	jout_str(child, NULL, "\xc3(");
	jout_add(o, "c", child);
	assert_int_equal(print_captured(o, false), -1);

	/* A NULL value (a failed jout_object): reported, no crash. (Setting a
	 * member on NULL is left out: put() leaks the new member then.) */
	assert_int_equal(jout_print(NULL, false), -1);
	jout_free(NULL);
	latch_error_quiet(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(scalars),  cmocka_unit_test(nested),   cmocka_unit_test(pretty),
		cmocka_unit_test(same_key), cmocka_unit_test(failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
