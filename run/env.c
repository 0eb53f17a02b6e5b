/* Variables no child of latch gets, and no reference may target: each
 * makes a program that is not the agent's (a granted /usr/bin/psql, bash,
 * python3) load, run or print what the agent chose, with the child's
 * environment, values included, in reach. */
#include "run.h"

#include <string.h>

/* Prefixes: every name that starts with one of these. */
static const char *const unsafe_prefixes[] = {
	/* The dynamic loader: LD_PRELOAD, LD_AUDIT and LD_LIBRARY_PATH load
	 * the agent's code into the child; LD_DEBUG and friends make ld.so
	 * print; a reference LD_PRELOAD=latch://x makes ld.so print the value
	 * in its "cannot be preloaded" error. The whole prefix, so a loader
	 * variable added later is covered: a program that needs one gets it
	 * from a wrapper script the grant names. */
	"LD_",
	/* bash imports BASH_FUNC_name%% as a function, which overrides any
	 * command the granted script runs by name. */
	"BASH_FUNC_",
};

/* Exact names, sorted within each group. */
static const char *const unsafe_names[] = {
	/* glibc's own secure-mode list (elf/unsecvars.h, what it clears for
	 * setuid programs): each makes libc load or write a file of the
	 * caller's choosing (iconv modules, locale and message catalogues,
	 * host aliases, resolver and time zone data, a malloc trace) or
	 * retune its allocator. TMPDIR from that list is left alone: it only
	 * names where temporary files go, and programs need it. */
	"GCONV_PATH",
	"GETCONF_DIR",
	"GLIBC_TUNABLES",
	"HOSTALIASES",
	"LOCALDOMAIN",
	"LOCPATH",
	"MALLOC_TRACE",
	"NIS_PATH",
	"NLSPATH",
	"RESOLV_HOST_CONF",
	"RES_OPTIONS",
	"TZDIR",
	/* Shell start-up: BASH_ENV and ENV name a script every (bash, sh)
	 * shell runs first; SHELLOPTS=xtrace with PS4='$X' prints a
	 * variable's value on stderr; BASHOPTS and PROMPT_COMMAND run or
	 * change code the same way. */
	"BASH_ENV",
	"BASHOPTS",
	"ENV",
	"PROMPT_COMMAND",
	"PS4",
	"SHELLOPTS",
	/* Interpreter start-up: each runs, imports or preloads code of the
	 * caller's choosing before the program's own (a granted python3,
	 * perl, ruby, node or java script). */
	"PYTHONHOME",
	"PYTHONINSPECT",
	"PYTHONPATH",
	"PYTHONSTARTUP",
	"PERL5DB",
	"PERL5LIB",
	"PERL5OPT",
	"PERLLIB",
	"RUBYLIB",
	"RUBYOPT",
	"NODE_OPTIONS",
	"NODE_PATH",
	"JAVA_TOOL_OPTIONS",
	"JDK_JAVA_OPTIONS",
	"_JAVA_OPTIONS",
};

bool run_env_unsafe(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof unsafe_prefixes / sizeof unsafe_prefixes[0]; i++) {
		size_t n = strlen(unsafe_prefixes[i]);
		if (len >= n && !memcmp(name, unsafe_prefixes[i], n))
			return true;
	}
	for (size_t i = 0; i < sizeof unsafe_names / sizeof unsafe_names[0]; i++)
		if (strlen(unsafe_names[i]) == len && !memcmp(name, unsafe_names[i], len))
			return true;
	return false;
}
