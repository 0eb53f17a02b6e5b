/* Before a broker takes any key: it is not traced, and nothing but its
 * own code and root's libraries runs inside it. A broker is exec'd by a
 * passphrase holder with a scrubbed environment, so this is a second line:
 * it also stops a broker that someone else started from becoming useful
 * to them by accident. What it cannot stop is a tracer that attached in
 * the moment between exec and PR_SET_DUMPABLE and left again; every latch
 * process shares that window (docs/threat-model.md). */
#include "broker.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static int tracer_pid(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return -1;
	char line[256];
	int pid = -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "TracerPid:", 10)) {
			pid = atoi(line + 10);
			break;
		}
	fclose(f);
	return pid;
}

/* Every file mapped executable must be the program itself or root's and
 * writable by no one else: a library of the user's (or the agent's) was
 * preloaded, even if it removed LD_PRELOAD from the environment. */
static int check_maps(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return latch_error(LATCH_OPERR, "cannot read /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return latch_error(LATCH_OPERR, "cannot read /proc/self/maps: %s", strerror(errno));
	char line[PATH_MAX + 128];
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		char perms[8];
		int path_at = 0;
		if (sscanf(line, "%*s %7s %*s %*s %*s %n", perms, &path_at) != 1 || perms[2] != 'x')
			continue;
		char *path = line + path_at;
		path[strcspn(path, "\n")] = '\0';
		if (path[0] != '/' || !strcmp(path, self))
			continue; /* anonymous, [vdso], the program itself */
		struct stat st;
		if (strstr(path, " (deleted)") || stat(path, &st) != 0 || st.st_uid != 0 || (st.st_mode & 022))
			rc = latch_error(LATCH_OPERR,
					 "refusing to run the broker with '%s' loaded: not a library of root's", path);
	}
	fclose(f);
	return rc;
}

int broker_check_pristine(void)
{
	int t = tracer_pid();
	if (t < 0)
		return latch_error(LATCH_OPERR, "cannot tell whether the broker is traced: refusing to run it");
	if (t != 0)
		return latch_error(LATCH_OPERR, "refusing to run the broker: it is traced (by pid %d)", t);
	for (char **e = environ; e && *e; e++)
		if (!strncmp(*e, "LD_", 3))
			return latch_error(LATCH_OPERR, "refusing to run the broker with the loader variable %.*s set",
					   (int)strcspn(*e, "="), *e);
	return check_maps();
}
