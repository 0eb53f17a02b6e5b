/* Unit tests: common/files.c, the permission checks on the vault's
 * directory and files. Each test works in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/common.h"
#include "capture.h"

struct tmp {
	char dir[64];
	char path[PATH_MAX];
};

static int make_tmp(void **state)
{
	struct tmp *t = calloc(1, sizeof *t);
	if (!t)
		return -1;
	snprintf(t->dir, sizeof t->dir, "/tmp/latch-test-files.XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int remove_tmp(void **state)
{
	struct tmp *t = *state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
	int rc = system(cmd);
	free(t);
	return rc == 0 ? 0 : -1;
}

static const char *at(struct tmp *t, const char *name)
{
	snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
	return t->path;
}

static void make_file(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void private_dir(void **state)
{
	struct tmp *t = *state;
	const char *d = at(t, "d");
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(check_private_dir(d), 0);

	/* Group or others with any access: refused, with the fix. */
	mode_t bad[] = {0750, 0710, 0701, 0705, 0770, 0777, 0740};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc;
		assert_int_equal(chmod(d, bad[i]), 0);
		CAPTURE(rc, check_private_dir(d));
		assert_int_equal(rc, -1);
		assert_int_equal(latch_last_status(), LATCH_OPERR);
		assert_non_null(strstr(captured, "accessible by group or others"));
		assert_non_null(strstr(captured, "chmod 700"));
		assert_non_null(strstr(captured, d));
	}
	/* The owner's own bits do not matter. */
	assert_int_equal(chmod(d, 0500), 0);
	assert_int_equal(check_private_dir(d), 0);
	assert_int_equal(chmod(d, 0700), 0);
}

static void private_file(void **state)
{
	struct tmp *t = *state;
	const char *f = at(t, "f");
	make_file(f, 0600);
	assert_int_equal(check_private_file(f), 0);
	assert_int_equal(chmod(f, 0400), 0);
	assert_int_equal(check_private_file(f), 0);

	mode_t bad[] = {0640, 0604, 0660, 0606, 0644, 0666, 0610, 0601};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc;
		assert_int_equal(chmod(f, bad[i]), 0);
		CAPTURE(rc, check_private_file(f));
		assert_int_equal(rc, -1);
		assert_int_equal(latch_last_status(), LATCH_OPERR);
		assert_non_null(strstr(captured, "accessible by group or others"));
		assert_non_null(strstr(captured, "chmod 600"));
	}
}

/* A missing file is no error (1: there is nothing to check); a missing
 * directory is. */
static void missing(void **state)
{
	struct tmp *t = *state;
	latch_error_quiet(true);
	assert_int_equal(check_private_file(at(t, "nope")), 1);
	assert_int_equal(check_private_dir(at(t, "nope")), -1);
	assert_int_equal(check_private_file(at(t, "nodir/f")), 1);
	latch_error_quiet(false);
}

/* A symbolic link is refused even when its target is fine. */
static void symlinks(void **state)
{
	struct tmp *t = *state;
	char target[PATH_MAX];
	snprintf(target, sizeof target, "%s", at(t, "real"));
	assert_int_equal(mkdir(target, 0700), 0);
	assert_int_equal(check_private_dir(target), 0);
	int rc;
	assert_int_equal(symlink(target, at(t, "link")), 0);
	CAPTURE(rc, check_private_dir(t->path));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(captured, "symbolic link"));

	char file[PATH_MAX];
	snprintf(file, sizeof file, "%s", at(t, "real/f"));
	make_file(file, 0600);
	assert_int_equal(check_private_file(file), 0);
	assert_int_equal(symlink(file, at(t, "flink")), 0);
	CAPTURE(rc, check_private_file(t->path));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(captured, "symbolic link"));
	/* A dangling link is still a link, not a missing file. */
	assert_int_equal(symlink(at(t, "gone"), at(t, "dangling")), 0);
	CAPTURE(rc, check_private_file(t->path));
	assert_int_equal(rc, -1);
}

/* The wrong kind of object: a file where a directory is wanted, and the
 * other way round, a fifo. */
static void wrong_kind(void **state)
{
	struct tmp *t = *state;
	latch_error_quiet(true);
	make_file(at(t, "f"), 0600);
	assert_int_equal(check_private_dir(t->path), -1);
	assert_int_equal(mkdir(at(t, "d"), 0700), 0);
	assert_int_equal(check_private_file(t->path), -1);
	assert_int_equal(mkfifo(at(t, "p"), 0600), 0);
	assert_int_equal(check_private_file(t->path), -1);
	latch_error_quiet(false);
}

/* Owned by another user: refused, even with a private mode (as root, the
 * file and directory are given to uid 65534). */
static void other_owner(void **state)
{
	struct tmp *t = *state;
	if (geteuid() != 0)
		skip();
	int rc;
	const char *d = at(t, "theirs");
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(chown(d, 65534, 65534), 0);
	CAPTURE(rc, check_private_dir(d));
	assert_int_equal(rc, -1);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	assert_non_null(strstr(captured, "owned by uid 65534"));

	const char *f = at(t, "theirs.db");
	make_file(f, 0600);
	assert_int_equal(chown(f, 65534, 65534), 0);
	CAPTURE(rc, check_private_file(f));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(captured, "owned by uid 65534"));
	/* Given back: accepted again. */
	assert_int_equal(chown(f, 0, 0), 0);
	assert_int_equal(check_private_file(f), 0);
}

/* ensure_private_dir: mkdir -p with 0700 for what it creates; an existing
 * directory is checked, not repaired. */
static void ensure_dir(void **state)
{
	struct tmp *t = *state;
	struct stat st;
	const char *deep = at(t, "a/b/c");
	assert_int_equal(ensure_private_dir(deep), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(at(t, "a/b"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* Again: it exists and is private. */
	assert_int_equal(ensure_private_dir(at(t, "a/b/c")), 0);
	/* Trailing slash. */
	assert_int_equal(ensure_private_dir(at(t, "a/b/c/")), 0);

	latch_error_quiet(true);
	/* Existing but open to others: refused and left as it is. */
	assert_int_equal(chmod(at(t, "a/b/c"), 0755), 0);
	assert_int_equal(ensure_private_dir(t->path), -1);
	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	/* A parent that is a file. */
	make_file(at(t, "plain"), 0600);
	assert_int_equal(ensure_private_dir(at(t, "plain/sub")), -1);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	/* Empty and too long. */
	assert_int_equal(ensure_private_dir(""), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	char *huge = malloc(PATH_MAX + 10);
	assert_non_null(huge);
	memset(huge, 'x', PATH_MAX + 9);
	huge[0] = '/';
	huge[PATH_MAX + 9] = '\0';
	assert_int_equal(ensure_private_dir(huge), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	free(huge);
	latch_error_quiet(false);
}

int main(void)
{
	umask(077);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(private_dir, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(private_file, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(missing, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(symlinks, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(wrong_kind, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(other_owner, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(ensure_dir, make_tmp, remove_tmp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
