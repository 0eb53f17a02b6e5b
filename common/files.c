/* Permission checks: latch refuses a path that another user could read or
 * replace (docs/design.md). Each refusal says how to fix it. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_private(const char *path, const struct stat *st, bool dir)
{
	const char *kind = dir ? "directory" : "file";
	if (S_ISLNK(st->st_mode))
		return latch_error(LATCH_OPERR,
				   "refusing %s '%s': it is a symbolic link (point LATCH_HOME at the real path)", kind,
				   path);
	if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode))
		return latch_error(LATCH_OPERR, "refusing '%s': not a %s", path, dir ? "directory" : "regular file");
	if (st->st_uid != geteuid())
		return latch_error(LATCH_OPERR, "refusing %s '%s': owned by uid %u, not by you (uid %u)", kind, path,
				   (unsigned)st->st_uid, (unsigned)geteuid());
	if (st->st_mode & 077)
		return latch_error(
			LATCH_OPERR,
			"refusing %s '%s': accessible by group or others (mode %04o); fix with: chmod %s '%s'", kind,
			path, (unsigned)(st->st_mode & 07777), dir ? "700" : "600", path);
	return 0;
}

int check_private_dir(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return latch_error(LATCH_OPERR, "cannot use directory '%s': %s", path, strerror(errno));
	return check_private(path, &st, true);
}

int check_private_file(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 1;
		return latch_error(LATCH_OPERR, "cannot use file '%s': %s", path, strerror(errno));
	}
	return check_private(path, &st, false);
}

int ensure_private_dir(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf)
		return latch_error(LATCH_USAGE, "invalid directory path '%s'", path);
	memcpy(buf, path, n + 1);
	/* mkdir -p: parents that are missing are created 0700 too; existing
	 * parents are left alone (the home directory may well be 0755). */
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return latch_error(LATCH_OPERR, "cannot create directory '%s': %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0700) != 0 && errno != EEXIST)
		return latch_error(LATCH_OPERR, "cannot create directory '%s': %s", buf, strerror(errno));
	return check_private_dir(path);
}

int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return latch_error(LATCH_OPERR, "cannot sync directory '%s': %s", dir, strerror(e));
	}
	close(fd);
	return 0;
}

int file_write_temp(char *tmpl, mode_t mode, const void *data, size_t len)
{
	int fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return latch_error(LATCH_OPERR, "cannot create '%s': %s", tmpl, strerror(errno));
	int rc = 0;
	if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0)
		rc = latch_error(LATCH_OPERR, "cannot write '%s': %s", tmpl, strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = latch_error(LATCH_OPERR, "cannot write '%s': %s", tmpl, strerror(errno));
	if (rc != 0)
		unlink(tmpl);
	return rc;
}
