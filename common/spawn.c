/* Starting a helper process (a git, an identity command): no shell, only
 * the descriptors asked for, default signals. (run/exec.c starts the
 * granted child itself, with more to arrange.) */
#include "common.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>

extern char **environ;

int spawn_plain(char *const argv[], bool search, int in, int out, bool own_group, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	int e = posix_spawn_file_actions_init(&fa);
	if (e != 0)
		return e;
	if ((e = posix_spawnattr_init(&at)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return e;
	}
	e = in < 0 ? posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
		   : posix_spawn_file_actions_adddup2(&fa, in, 0);
	if (!e)
		e = out < 0 ? posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0)
			    : posix_spawn_file_actions_adddup2(&fa, out, 1);
	/* Default dispositions (a SIGPIPE ignored here must not be ignored
	 * there), an empty mask, and nothing of ours past stderr. */
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (own_group ? POSIX_SPAWN_SETPGROUP : 0);
	if (!e && !(e = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) &&
	    !(e = posix_spawnattr_setsigmask(&at, &none)) && !(e = posix_spawnattr_setsigdefault(&at, &all)) &&
	    !(e = posix_spawnattr_setpgroup(&at, 0)) && !(e = posix_spawnattr_setflags(&at, flags)))
		e = search ? posix_spawnp(pid, argv[0], &fa, &at, argv, environ)
			   : posix_spawn(pid, argv[0], &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return e;
}
