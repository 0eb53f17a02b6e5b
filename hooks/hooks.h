/* hooks: the git hooks that keep managed values out of commits and
 * pushes (docs/scanning.md). Depends on common/ only. */
#ifndef LATCH_HOOKS_H
#define LATCH_HOOKS_H

#include "../common/common.h"

#include <limits.h>
#include <stdbool.h>

/* ==== Install: latch's git hooks in a repository (hooks/install.c) ====
 *
 * A latch hook is a small POSIX sh script, 0755, whose second line is
 * HOOKS_MARKER and which names the latch executable that installed it.
 * It runs the hook it replaced first, if any (kept beside it as
 * "<hook>.latch-orig", with the same arguments and, for pre-push, the
 * same stdin bytes), then `latch scan --staged`, `latch scan --message
 * FILE` or `latch scan --push REMOTE URL`. If that executable is gone,
 * the hook fails (the commit or push is refused) and says to run `latch
 * hook install` again. Everything here works on the repository of the
 * current directory; git (posix_spawnp, no shell) names its hooks
 * directory, which honours core.hooksPath and linked worktrees. */

#define HOOKS_MARKER "# latch hook v1"
#define HOOKS_ORIG_SUFFIX ".latch-orig"

/* The hooks latch installs: bits of a set. */
enum hooks_which {
	HOOKS_PRE_COMMIT = 1 << 0,
	HOOKS_COMMIT_MSG = 1 << 1,
	HOOKS_PRE_PUSH = 1 << 2,
};
#define HOOKS_ALL (HOOKS_PRE_COMMIT | HOOKS_COMMIT_MSG | HOOKS_PRE_PUSH)
#define HOOKS_N 3

/* What a hook's file is. */
enum hooks_state {
	HOOKS_ABSENT,  /* no file */
	HOOKS_LATCH,   /* latch's script */
	HOOKS_FOREIGN, /* someone else's */
	HOOKS_MANAGED, /* a hooks manager's (husky, lefthook) */
};

/* What install or uninstall did to a hook. */
enum hooks_action {
	HOOKS_UNTOUCHED,
	HOOKS_INSTALLED,  /* written where there was none */
	HOOKS_REFRESHED,  /* latch's script written again */
	HOOKS_CHAINED,    /* a foreign hook kept as <hook>.latch-orig (--force) */
	HOOKS_REMOVED,    /* latch's script removed */
	HOOKS_RESTORED,   /* latch's script removed, the chained original put back */
	HOOKS_LEFT_ALONE, /* uninstall: not latch's, not touched */
};

struct hooks_hook_status {
	const char *name; /* "pre-commit", "commit-msg", "pre-push" */
	enum hooks_which which;
	enum hooks_state state;
	/* latch's hook, with <name>.latch-orig beside it, which it runs
	 * first (git would run it: it is executable). */
	bool chained;
	/* A latch hook: the executable it runs ("" if it names none), and
	 * whether that is an executable file now. */
	char latch[PATH_MAX];
	bool latch_found;
	enum hooks_action action;
};

struct hooks_status {
	char dir[PATH_MAX];  /* the hooks directory, absolute */
	const char *manager; /* "husky", "lefthook", or NULL */
	struct hooks_hook_status hooks[HOOKS_N];
};

/* Where the hooks are and what each of latch's three is. -1 (reported,
 * LATCH_USAGE) outside a git repository. */
int hooks_status(struct hooks_status *st);

/* Install the hooks in `which` (a set of enum hooks_which), each running
 * `latch_exe` (an absolute path: cli_self_exe). Nothing is written, and
 * -1 is returned with LATCH_USAGE, when the hooks directory is a hooks
 * manager's (the message says what to add to its configuration instead),
 * or when a hook exists that is not latch's and `force` is false (with
 * force it is kept as <hook>.latch-orig, its mode and bytes unchanged,
 * and chained). Installing again refreshes the scripts and keeps the
 * chain. Each script is written atomically (a temporary file renamed
 * into place); `st` says what was done. */
int hooks_install(const char *latch_exe, unsigned which, bool force, struct hooks_status *st);

/* Remove latch's hooks; where <hook>.latch-orig exists, move it back in
 * place. A hook that is not latch's is left alone (HOOKS_LEFT_ALONE). */
int hooks_uninstall(struct hooks_status *st);

/* ==== end of install ==== */

#endif
