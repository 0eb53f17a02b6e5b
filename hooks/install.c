/* latch's git hooks: install, uninstall and status (hooks.h, section
 * Install). git names the hooks directory (`git rev-parse
 * --path-format=absolute --git-path hooks`, git 2.31 or later), so
 * core.hooksPath and linked worktrees are git's to decide;
 * the scripts are plain POSIX sh, so a hook costs one sh and one latch.
 *
 * A hook that is not latch's is never replaced without `force`; with it,
 * it is hard-linked to <hook>.latch-orig before latch's script is renamed
 * over it, so there is no moment without a hook and the original keeps
 * its bytes and mode. A hooks manager's directory (husky, lefthook) is
 * refused: the manager would overwrite latch's scripts, or latch would
 * break the manager; the message says what to add to its configuration. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* More than any hook script latch writes or any manager's stub. */
#define HOOK_READ_MAX (64 * 1024)
/* A hooks directory with more files than this is not searched whole
 * for a manager's scripts (only latch's three names are). */
#define DIR_SCAN_MAX 256

static const struct {
	const char *name;
	enum hooks_which which;
} hook_names[HOOKS_N] = {
	{"pre-commit", HOOKS_PRE_COMMIT},
	{"commit-msg", HOOKS_COMMIT_MSG},
	{"pre-push", HOOKS_PRE_PUSH},
};

/* ---- git ------------------------------------------------------------- */

/* The hooks directory, absolute. --path-format needs git 2.31. */
static int locate(char dir[PATH_MAX])
{
	char *where[] = {"git", "--no-replace-objects", "rev-parse", "--path-format=absolute", "--git-path", "hooks",
			 NULL};
	struct growbuf out = {0};
	int st, rc = hooks_git_capture(where, -1, &out, &st);
	if (rc == 0 && st == 0) {
		/* One absolute path, its newline dropped. */
		while (out.len > 0 && out.p[out.len - 1] == '\n')
			out.len--;
		out.p[out.len] = '\0';
		if (memchr(out.p, '\0', out.len) || memchr(out.p, '\n', out.len))
			rc = latch_error(LATCH_OPERR, "'git rev-parse' printed more than one path");
		else if (out.len >= PATH_MAX)
			rc = latch_error(LATCH_OPERR, "cannot read what 'git rev-parse' printed: too long");
		else
			memcpy(dir, out.p, out.len + 1);
	}
	bool found = rc == 0 && st == 0 && dir[0] == '/';
	hooks_growbuf_free(&out);
	if (rc != 0)
		return -1;
	if (!found)
		return latch_error(LATCH_USAGE,
				   "cannot find the git hooks directory here: 'git rev-parse --git-path "
				   "hooks' failed (not in a git repository, or git older than 2.31)");
	return 0;
}

/* ---- What a hook file is ---------------------------------------------- */

/* Up to HOOK_READ_MAX bytes of a regular file (not followed if a
 * symlink), NUL-terminated, into *text (malloc'd). 0, or 1 if it is not
 * a regular file or cannot be read. */
static int read_hook(const char *path, char **text)
{
	*text = NULL;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 1;
	struct stat sb;
	char *buf = NULL;
	size_t len = 0;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (buf = malloc(HOOK_READ_MAX + 1))) {
		for (;;) {
			ssize_t r = read(fd, buf + len, HOOK_READ_MAX - len);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			len += (size_t)r;
			if (len == HOOK_READ_MAX)
				break;
		}
		buf[len] = '\0';
	}
	close(fd);
	*text = buf;
	return buf ? 0 : 1;
}

/* `line` is a whole line of text (text is NUL-terminated; a NUL byte in
 * the file ends the search early, which only makes a match less likely). */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, line, n) && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

/* The path in latch's line LATCH='...' (sh single quotes, a quote
 * written '\''), "" if there is none or it does not fit. */
static void latch_path(const char *text, char out[PATH_MAX])
{
	out[0] = '\0';
	const char *p = text;
	while (p && strncmp(p, "LATCH='", 7) != 0) {
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	if (!p)
		return;
	p += 7;
	size_t n = 0;
	for (;;) {
		if (*p == '\0' || *p == '\n')
			return;
		if (*p == '\'') {
			if (strncmp(p, "'\\''", 4) != 0)
				break;
			p += 4;
			if (n + 1 >= PATH_MAX)
				return;
			out[n++] = '\'';
			continue;
		}
		if (n + 1 >= PATH_MAX)
			return;
		out[n++] = *p++;
	}
	out[n] = '\0';
	if (out[0] != '/' || !text_is_plain(out))
		out[0] = '\0';
}

/* A hooks manager's script: its name, else NULL. Every script lefthook
 * installs calls lefthook; husky 4's and 8's source husky.sh. */
static const char *manager_of(const char *text)
{
	if (strstr(text, "lefthook"))
		return "lefthook";
	if (strstr(text, "husky.sh"))
		return "husky";
	return NULL;
}

static int join(char out[PATH_MAX], const char *dir, const char *name, const char *suffix)
{
	int n = snprintf(out, PATH_MAX, "%s/%s%s", dir, name, suffix);
	if (n < 0 || n >= PATH_MAX)
		return latch_error(LATCH_OPERR, "the path of hook '%s' in '%s' is too long", name, dir);
	return 0;
}

static bool exists(const char *path)
{
	struct stat sb;
	return lstat(path, &sb) == 0 || errno != ENOENT;
}

static bool executable_file(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0;
}

/* Fill h from its file; *manager is set if it is a manager's script. */
static int classify(const char *dir, struct hooks_hook_status *h, const char **manager)
{
	char path[PATH_MAX], orig[PATH_MAX];
	if (join(path, dir, h->name, "") != 0 || join(orig, dir, h->name, HOOKS_ORIG_SUFFIX) != 0)
		return -1;
	h->state = HOOKS_ABSENT;
	h->chained = false;
	h->latch[0] = '\0';
	h->latch_found = false;
	if (!exists(path))
		return 0;
	char *text;
	h->state = HOOKS_FOREIGN;
	if (read_hook(path, &text) != 0)
		return 0;
	if (has_line(text, HOOKS_MARKER)) {
		h->state = HOOKS_LATCH;
		latch_path(text, h->latch);
		h->latch_found = h->latch[0] && executable_file(h->latch);
		/* What the script does: run it if sh's -x says so. */
		h->chained = access(orig, X_OK) == 0;
	} else if ((*manager = manager_of(text))) {
		h->state = HOOKS_MANAGED;
	}
	free(text);
	return 0;
}

/* husky: a ".husky" component in the directory's path (husky 5 and
 * later set core.hooksPath to .husky or .husky/_), or a script of husky
 * 4 in .git/hooks (manager_of). lefthook: a script of its in the
 * directory (a lefthook.yml alone installs nothing). */
static const char *find_manager(const char *dir)
{
	for (const char *p = strstr(dir, "/.husky"); p; p = strstr(p + 1, "/.husky"))
		if (p[7] == '/' || p[7] == '\0')
			return "husky";
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	const char *found = NULL;
	struct dirent *de;
	for (int seen = 0; !found && seen < DIR_SCAN_MAX && (de = readdir(d)); seen++) {
		size_t n = strlen(de->d_name);
		if (de->d_name[0] == '.' || (n > 7 && !strcmp(de->d_name + n - 7, ".sample")))
			continue;
		char path[PATH_MAX], *text;
		int len = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (len < 0 || len >= (int)sizeof path || read_hook(path, &text) != 0)
			continue;
		if (!has_line(text, HOOKS_MARKER))
			found = manager_of(text);
		free(text);
	}
	closedir(d);
	return found;
}

int hooks_status(struct hooks_status *st)
{
	memset(st, 0, sizeof *st);
	if (locate(st->dir) != 0)
		return -1;
	st->manager = find_manager(st->dir);
	for (int i = 0; i < HOOKS_N; i++) {
		struct hooks_hook_status *h = &st->hooks[i];
		h->name = hook_names[i].name;
		h->which = hook_names[i].which;
		const char *manager = NULL;
		if (classify(st->dir, h, &manager) != 0)
			return -1;
		/* Found here when the directory had too many files to search. */
		if (!st->manager)
			st->manager = manager;
	}
	for (int i = 0; i < HOOKS_N; i++)
		if (st->manager && st->hooks[i].state == HOOKS_FOREIGN)
			st->hooks[i].state = HOOKS_MANAGED;
	return 0;
}

/* ---- The scripts -------------------------------------------------------- */

/* What each hook does after the common head (which sets LATCH and fails
 * closed without it). The original runs first, so that a hook that
 * edits the message (commit-msg) is scanned as edited; `|| exit $?`
 * refuses the commit or push with the original's status. */
static const char body_pre_commit[] =
	"if [ -x \"$0.latch-orig\" ]; then\n"
	"\t\"$0.latch-orig\" \"$@\" || exit $?\n"
	"fi\n"
	"exec \"$LATCH\" scan --staged\n";

static const char body_commit_msg[] =
	"if [ -x \"$0.latch-orig\" ]; then\n"
	"\t\"$0.latch-orig\" \"$@\" || exit $?\n"
	"fi\n"
	"exec \"$LATCH\" scan --message \"$1\"\n";

/* git's lines on stdin are read once into a private file (mktemp: 0600,
 * O_EXCL) that both the original and the scan read from the start, so
 * each gets the same bytes. */
static const char body_pre_push[] =
	"in=$(mktemp \"${TMPDIR:-/tmp}/latch-pre-push.XXXXXX\") || {\n"
	"\tprintf 'latch: the pre-push hook cannot make a temporary file: push refused\\n' >&2\n"
	"\texit 1\n"
	"}\n"
	"trap 'rm -f \"$in\"' EXIT\n"
	"trap 'exit 129' HUP\n"
	"trap 'exit 130' INT\n"
	"trap 'exit 143' TERM\n"
	"cat >\"$in\" || exit 1\n"
	"if [ -x \"$0.latch-orig\" ]; then\n"
	"\t\"$0.latch-orig\" \"$@\" <\"$in\" || exit $?\n"
	"fi\n"
	"\"$LATCH\" scan --push \"$1\" \"$2\" <\"$in\"\n"
	"exit $?\n";

/* `s` in sh single quotes, a quote as '\''. */
static int sh_quote(const char *s, char *out, size_t n)
{
	size_t k = 0;
	for (const char *p = s;; p++) {
		const char *piece = *p == '\'' ? "'\\''" : NULL;
		size_t m = piece ? 4 : 1;
		if (k + m + 1 > n)
			return -1;
		if (*p == '\0')
			break;
		if (piece)
			memcpy(out + k, piece, m);
		else
			out[k] = *p;
		k += m;
	}
	out[k] = '\0';
	return 0;
}

/* The whole script for hook `h`, malloc'd. */
static char *script(const struct hooks_hook_status *h, const char *latch_exe)
{
	const char *body = h->which == HOOKS_PRE_COMMIT   ? body_pre_commit
			   : h->which == HOOKS_COMMIT_MSG ? body_commit_msg
							  : body_pre_push;
	const char *what = h->which == HOOKS_PRE_PUSH ? "push" : "commit";
	const char *scan = h->which == HOOKS_PRE_COMMIT   ? "scan --staged"
			   : h->which == HOOKS_COMMIT_MSG ? "scan --message"
							  : "scan --push";
	char quoted[4 * PATH_MAX + 3];
	if (sh_quote(latch_exe, quoted, sizeof quoted) != 0)
		return NULL;
	char *out = NULL;
	int n = asprintf(&out,
			 "#!/bin/sh\n" HOOKS_MARKER
			 "\n"
			 "# Written by 'latch hook install': runs the %s hook it replaced, kept as\n"
			 "# %s" HOOKS_ORIG_SUFFIX
			 ", if there is one, then 'latch %s'; if either\n"
			 "# fails, the %s is refused. 'latch hook uninstall' removes this script\n"
			 "# and puts the original back.\n"
			 "LATCH='%s'\n"
			 "if [ ! -x \"$LATCH\" ]; then\n"
			 "\tprintf 'latch: the %s hook cannot run %%s (moved or uninstalled?): %s refused; "
			 "run '\\''latch hook install'\\'' again to repair it, or '\\''latch hook uninstall'\\''\\n' "
			 "\"$LATCH\" >&2\n"
			 "\texit 1\n"
			 "fi\n"
			 "%s",
			 h->name, h->name, scan, what, quoted, h->name, what, body);
	return n < 0 ? NULL : out;
}

/* Write the script of `h` to a new temporary file in `dir`, 0755,
 * synced; its name in tmp. */
static int write_temp(const char *dir, const struct hooks_hook_status *h, const char *latch_exe, char tmp[PATH_MAX])
{
	int n = snprintf(tmp, PATH_MAX, "%s/.%s.latch-XXXXXX", dir, h->name);
	if (n < 0 || n >= PATH_MAX)
		return latch_error(LATCH_OPERR, "the path of hook '%s' in '%s' is too long", h->name, dir);
	char *text = script(h, latch_exe);
	if (!text)
		return latch_error(LATCH_OPERR, "out of memory");
	/* A hook is run by git as the user; group and others may read and
	 * run it, as git's own samples (0755). */
	int rc = file_write_temp(tmp, 0755, text, strlen(text));
	free(text);
	return rc;
}

/* Keep a foreign hook as <hook>.latch-orig, same inode (bytes, mode,
 * owner). A hard link leaves the hook in place until latch's script is
 * renamed over it; where links are not supported, a rename that will
 * not replace anything. */
static int keep_original(const char *path, const char *orig)
{
	if (link(path, orig) == 0)
		return 0;
	int e = errno;
	if (e != EEXIST) {
		if (renameat2(AT_FDCWD, path, AT_FDCWD, orig, RENAME_NOREPLACE) == 0)
			return 0;
		e = errno;
	}
	return latch_error(LATCH_OPERR, "cannot keep the hook '%s' as '%s': %s", path, orig, strerror(e));
}

/* ---- Install and uninstall -------------------------------------------- */

static int refuse_manager(const struct hooks_status *st)
{
	char shown[PATH_MAX];
	text_escape(st->dir, shown, sizeof shown);
	if (!strcmp(st->manager, "husky"))
		return latch_error(LATCH_USAGE,
				   "the hooks directory '%s' is husky's: add 'latch scan --staged' to "
				   ".husky/pre-commit, 'latch scan --message \"$1\"' to .husky/commit-msg and 'latch "
				   "scan --push \"$1\" \"$2\"' to .husky/pre-push instead; nothing written",
				   shown);
	return latch_error(LATCH_USAGE,
			   "the hooks in '%s' are lefthook's: add a lefthook command 'run: latch scan --staged' "
			   "under pre-commit, 'run: latch scan --message {1}' under commit-msg and 'run: latch scan "
			   "--push {1} {2}' with 'use_stdin: true' under pre-push in lefthook.yml instead; nothing "
			   "written",
			   shown);
}

/* Refuse foreign hooks without force, in one line naming them all. */
static int refuse_foreign(const struct hooks_status *st, unsigned which)
{
	char names[64] = "";
	int n = 0;
	for (int i = 0; i < HOOKS_N; i++)
		if ((which & st->hooks[i].which) && st->hooks[i].state == HOOKS_FOREIGN) {
			if (n++)
				strcat(names, " and ");
			strcat(names, st->hooks[i].name);
		}
	if (n == 1)
		return latch_error(LATCH_USAGE,
				   "%s hook exists and is not latch's: --force keeps it and runs it first "
				   "(chained), or remove it",
				   names);
	return latch_error(LATCH_USAGE,
			   "%s hooks exist and are not latch's: --force keeps them and runs each first "
			   "(chained), or remove them",
			   names);
}

/* Create the hooks directory if git names one that is not there yet
 * (core.hooksPath set first): one level, 0755, as git's own. */
static int ensure_dir(const char *dir)
{
	struct stat sb;
	if (stat(dir, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode))
			return latch_error(LATCH_OPERR, "the hooks directory '%s' is not a directory", dir);
		return 0;
	}
	if (errno != ENOENT || mkdir(dir, 0755) != 0 || chmod(dir, 0755) != 0)
		return latch_error(LATCH_OPERR, "cannot create the hooks directory '%s': %s", dir, strerror(errno));
	return 0;
}

int hooks_install(const char *latch_exe, unsigned which, bool force, struct hooks_status *st)
{
	if (latch_exe[0] != '/' || !text_is_plain(latch_exe) || strlen(latch_exe) >= PATH_MAX)
		return latch_error(LATCH_OPERR, "the latch executable's path is not an absolute path of plain text");
	which &= HOOKS_ALL;
	if (hooks_status(st) != 0)
		return -1;
	if (st->manager)
		return refuse_manager(st);
	bool foreign = false;
	for (int i = 0; i < HOOKS_N; i++) {
		struct hooks_hook_status *h = &st->hooks[i];
		if (!(which & h->which) || h->state != HOOKS_FOREIGN)
			continue;
		foreign = true;
		char orig[PATH_MAX];
		if (join(orig, st->dir, h->name, HOOKS_ORIG_SUFFIX) != 0)
			return -1;
		if (force && exists(orig)) {
			char shown[PATH_MAX];
			text_escape(orig, shown, sizeof shown);
			return latch_error(LATCH_USAGE,
					   "%s hook is not latch's and '%s' exists already: move one of them away; "
					   "nothing written",
					   h->name, shown);
		}
	}
	if (foreign && !force)
		return refuse_foreign(st, which);
	if (ensure_dir(st->dir) != 0)
		return -1;
	for (int i = 0; i < HOOKS_N; i++) {
		struct hooks_hook_status *h = &st->hooks[i];
		if (!(which & h->which))
			continue;
		char path[PATH_MAX], orig[PATH_MAX], tmp[PATH_MAX];
		if (join(path, st->dir, h->name, "") != 0 || join(orig, st->dir, h->name, HOOKS_ORIG_SUFFIX) != 0 ||
		    write_temp(st->dir, h, latch_exe, tmp) != 0)
			return -1;
		bool chain = h->state == HOOKS_FOREIGN;
		if (chain && keep_original(path, orig) != 0) {
			unlink(tmp);
			return -1;
		}
		if (rename(tmp, path) != 0) {
			int e = errno;
			unlink(tmp);
			/* Put the original back if it was moved rather than linked. */
			if (chain && !exists(path))
				rename(orig, path);
			else if (chain)
				unlink(orig);
			return latch_error(LATCH_OPERR, "cannot install '%s': %s", path, strerror(e));
		}
		h->action = chain ? HOOKS_CHAINED : h->state == HOOKS_LATCH ? HOOKS_REFRESHED : HOOKS_INSTALLED;
		const char *manager = NULL;
		if (classify(st->dir, h, &manager) != 0)
			return -1;
	}
	return fsync_dir(st->dir);
}

int hooks_uninstall(struct hooks_status *st)
{
	if (hooks_status(st) != 0)
		return -1;
	bool changed = false;
	for (int i = 0; i < HOOKS_N; i++) {
		struct hooks_hook_status *h = &st->hooks[i];
		char path[PATH_MAX], orig[PATH_MAX];
		if (join(path, st->dir, h->name, "") != 0 || join(orig, st->dir, h->name, HOOKS_ORIG_SUFFIX) != 0)
			return -1;
		bool has_orig = exists(orig);
		if (h->state == HOOKS_LATCH && has_orig) {
			if (rename(orig, path) != 0)
				return latch_error(LATCH_OPERR, "cannot put '%s' back: %s", orig, strerror(errno));
			h->action = HOOKS_RESTORED;
		} else if (h->state == HOOKS_LATCH) {
			if (unlink(path) != 0)
				return latch_error(LATCH_OPERR, "cannot remove '%s': %s", path, strerror(errno));
			h->action = HOOKS_REMOVED;
		} else if (h->state == HOOKS_ABSENT && has_orig) {
			/* latch's script was removed by hand: the original goes back all the same. */
			if (renameat2(AT_FDCWD, orig, AT_FDCWD, path, RENAME_NOREPLACE) != 0)
				return latch_error(LATCH_OPERR, "cannot put '%s' back: %s", orig, strerror(errno));
			h->action = HOOKS_RESTORED;
		} else if (h->state != HOOKS_ABSENT) {
			h->action = HOOKS_LEFT_ALONE;
			continue;
		} else {
			continue;
		}
		changed = true;
		const char *manager = NULL;
		if (classify(st->dir, h, &manager) != 0)
			return -1;
	}
	return changed ? fsync_dir(st->dir) : 0;
}
