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

int run_sandbox_enter(struct run_sandbox *out)
{
	/* Every refusal comes before the first change. */
	if (geteuid() == 0)
		return latch_error(LATCH_OPERR,
				   "cannot sandbox a process running as root: Landlock does not hold root back");
	int abi = run_landlock_abi();
	if (abi == 0)
		return latch_error(LATCH_OPERR, "cannot sandbox: Landlock is missing or disabled in this kernel");
	if (abi < LATCH_LL_ABI_SCOPED)
		return latch_error(
			LATCH_OPERR,
			"cannot sandbox: Landlock ABI %d cannot scope signals (ABI 6, Linux 6.12, is needed)", abi);

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
