/* Unit tests: secret names and small parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../vault/vault.h"

static void names_valid(void **state)
{
	(void)state;
	assert_true(vault_name_valid("a"));
	assert_true(vault_name_valid("prod-db"));
	assert_true(vault_name_valid("team/api.key_2"));
	assert_true(vault_name_valid("9"));
	char longest[VAULT_NAME_MAX + 1];
	memset(longest, 'x', VAULT_NAME_MAX);
	longest[VAULT_NAME_MAX] = '\0';
	assert_true(vault_name_valid(longest));
}

static void names_invalid(void **state)
{
	(void)state;
	assert_false(vault_name_valid(""));
	assert_false(vault_name_valid("-x"));
	assert_false(vault_name_valid("/x"));
	assert_false(vault_name_valid(".x"));
	assert_false(vault_name_valid("_x"));
	assert_false(vault_name_valid("a b"));
	assert_false(vault_name_valid("a=b"));
	assert_false(vault_name_valid("a\nb"));
	assert_false(vault_name_valid("a\x1b[2J"));
	assert_false(vault_name_valid("caf\xc3\xa9"));
	char too_long[VAULT_NAME_MAX + 2];
	memset(too_long, 'x', VAULT_NAME_MAX + 1);
	too_long[VAULT_NAME_MAX + 1] = '\0';
	assert_false(vault_name_valid(too_long));
}

static void fd_numbers(void **state)
{
	(void)state;
	int fd = -1;
	latch_error_quiet(true);
	assert_int_equal(parse_fd("3", &fd), 0);
	assert_int_equal(fd, 3);
	assert_int_equal(parse_fd("-1", &fd), -1);
	assert_int_equal(parse_fd("", &fd), -1);
	assert_int_equal(parse_fd("3x", &fd), -1);
	assert_int_equal(parse_fd("99999999999", &fd), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	latch_error_quiet(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_valid),
		cmocka_unit_test(names_invalid),
		cmocka_unit_test(fd_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
