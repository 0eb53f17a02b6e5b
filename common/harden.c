/* Process hardening done before anything else (docs/design.md). */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int harden_process(void)
{
	/* A closed 0, 1 or 2 would let the next open() (say, the vault) become
	 * stdout, and a later printf would write into it. */
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
			int n = open("/dev/null", O_RDWR);
			if (n != fd) {
				if (n >= 0)
					close(n);
				return latch_error(LATCH_OPERR, "cannot reopen fd %d on /dev/null", fd);
			}
		}
	}
	struct rlimit none = {0, 0};
	if (setrlimit(RLIMIT_CORE, &none) != 0)
		return latch_error(LATCH_OPERR, "cannot disable core dumps: %s", strerror(errno));
	/* Not dumpable: no core, and /proc/PID/mem, environ and ptrace are
	 * closed to processes of the same user without CAP_SYS_PTRACE. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return latch_error(LATCH_OPERR, "cannot make the process undumpable: %s", strerror(errno));
	umask(077);
	/* JSON may carry values (broker messages): every block jansson
	 * frees is wiped, from the first one on. */
	json_use_wiping_allocator();
	return 0;
}
