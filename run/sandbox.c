/* Entering a Landlock domain: the library half of `latch session`.
 *
 * The domain handles no filesystem and no network access, so the agent's
 * files and network work as before; what it adds is scoping. At every ABI
 * a process inside cannot ptrace a process outside, nor open the /proc
 * files that need ptrace access (environ, mem, fd/N); from ABI 6 (Linux
 * 6.12) it cannot signal one either, nor connect to an abstract unix
 * socket bound outside. The broker, its runners and their children live
 * outside, which is P8. Root is refused: it has other ways out.
 *
 * Debian 12's <linux/landlock.h> knows only the ABI-1 attribute (one
 * field), and glibc has no wrappers: the ABI-6 layout is declared here
 * under a name of its own, its size passed, and the calls made with
 * syscall(). The kernel accepts a ruleset with only `scoped` set (it
 * refuses one that handles nothing at all, ENOMSG), so no filesystem
 * right needs handling and no rule on "/" is added. */
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct landlock_ruleset_attr as of ABI 6; the kernel takes its size and
 * reads the fields it knows. */
struct latch_ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

#define LATCH_LL_CREATE_RULESET_VERSION (1U << 0)
#define LATCH_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LATCH_LL_SCOPE_SIGNAL (1ULL << 1)

/* The first ABI with signal and abstract-socket scoping. */
#define LATCH_LL_ABI_SCOPED 6

/* The cap from LATCH_LANDLOCK_ABI_MAX, or -1 if unset. Anything but a
 * plain decimal number caps at 0, so a typo never raises what is used. */
static long abi_cap(void)
{
	const char *s = getenv("LATCH_LANDLOCK_ABI_MAX");
	if (!s)
		return -1;
	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	char *end;
	long v = strtol(s, &end, 10);
	if (errno || *end)
		return 0;
	return v;
}

int run_landlock_abi(void)
{
	/* ENOSYS without Landlock in the kernel, EOPNOTSUPP when it is built
	 * but not enabled at boot (lsm=): both mean none. */
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LATCH_LL_CREATE_RULESET_VERSION);
	if (abi < 0)
		return 0;
	long cap = abi_cap();
	if (cap >= 0 && cap < abi)
		abi = cap;
	return abi > INT32_MAX ? INT32_MAX : (int)abi;
}

int run_sandbox_available(int *abi, char *why, size_t n)
{
	*abi = run_landlock_abi();
	if (geteuid() == 0)
		snprintf(why, n, "latch runs as root, and Landlock does not hold root back");
	else if (*abi == 0)
		snprintf(why, n, "Landlock is missing or disabled in this kernel");
	else if (*abi < LATCH_LL_ABI_SCOPED)
		snprintf(why, n, "Landlock ABI %d cannot scope signals (ABI 6, Linux 6.12, is needed)", *abi);
	else
		return 0;
	return -1;
}

int run_sandbox_enter(struct run_sandbox *out)
{
	/* Every refusal comes before the first change. */
	char why[128];
	int abi;
	if (run_sandbox_available(&abi, why, sizeof why) != 0)
		return latch_error(LATCH_OPERR, "cannot sandbox: %s", why);

	struct latch_ll_ruleset_attr attr = {
		.handled_access_fs = 0,
		.handled_access_net = 0,
		.scoped = LATCH_LL_SCOPE_SIGNAL | LATCH_LL_SCOPE_ABSTRACT_UNIX_SOCKET,
	};
	long fd = syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0U);
	if (fd < 0)
		return latch_error(LATCH_OPERR, "cannot create a Landlock ruleset: %s", strerror(errno));

	/* Without CAP_SYS_ADMIN the kernel requires no_new_privs first: no
	 * setuid program started inside could leave the domain's limits. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		int e = errno;
		close((int)fd);
		return latch_error(LATCH_OPERR, "cannot set no_new_privs: %s", strerror(e));
	}
	if (syscall(SYS_landlock_restrict_self, (int)fd, 0U) != 0) {
		int e = errno;
		close((int)fd);
		return latch_error(LATCH_OPERR, "cannot enter the Landlock domain: %s", strerror(e));
	}
	close((int)fd);

	*out = (struct run_sandbox){
		.abi = abi,
		.ptrace = true,
		.signals = true,
		.abstract_unix = true,
	};
	return 0;
}

/* The real and saved uids of process `pid` (from /proc/PID/status, which
 * any process may read, even inside a domain and for a non-dumpable
 * target, whose /proc/PID directory the kernel gives to root). 0, or -1
 * if it is gone or unreadable. */
static int proc_uids(pid_t pid, uid_t *real, uid_t *saved, pid_t *ppid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int found = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long r, e, s;
		long pp;
		if (sscanf(line, "PPid: %ld", &pp) == 1) {
			*ppid = (pid_t)pp;
			found |= 1;
		} else if (sscanf(line, "Uid: %lu %lu %lu", &r, &e, &s) == 3) {
			*real = (uid_t)r;
			*saved = (uid_t)s;
			found |= 2;
		}
	}
	fclose(f);
	return found == 3 ? 0 : -1;
}

/* True if `pid` is a process of ours that we may not signal. kill()
 * lets a process signal any other whose real or saved uid is its own
 * real or effective uid; refused for such a process, only a scope stands
 * in the way: the Landlock domain we are in and it is not. */
static bool scoped_away(pid_t pid, pid_t *ppid)
{
	uid_t real, saved;
	if (pid <= 1 || proc_uids(pid, &real, &saved, ppid) != 0)
		return false;
	uid_t me = getuid(), eme = geteuid();
	if (real != me && real != eme && saved != me && saved != eme)
		return false;
	return kill(pid, 0) != 0 && errno == EPERM;
}

bool run_in_session(pid_t *launcher)
{
	/* A session always sets no_new_privs (Landlock needs it of a process
	 * without CAP_SYS_ADMIN, and sessions refuse root), which no process
	 * can clear: without it this is no session, known in one system call
	 * (latch run asks on every run). */
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return false;
	pid_t ppid = 0;
	const char *s = getenv("LATCH_SESSION");
	if (s && *s >= '1' && *s <= '9') {
		char *end;
		errno = 0;
		long pid = strtol(s, &end, 10);
		if (!errno && !*end && pid <= INT32_MAX && scoped_away((pid_t)pid, &ppid)) {
			if (launcher)
				*launcher = (pid_t)pid;
			return true;
		}
	}
	/* The variable can be removed or changed by anyone: also walk up
	 * our ancestors, among which the launcher of any session we are in
	 * stays while the session lasts. */
	pid_t pid = getppid();
	for (int depth = 0; depth < 64 && pid > 1; depth++) {
		ppid = 0;
		if (scoped_away(pid, &ppid)) {
			if (launcher)
				*launcher = pid;
			return true;
		}
		pid = ppid;
	}
	return false;
}
