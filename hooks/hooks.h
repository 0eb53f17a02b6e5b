/* hooks: what a commit or a push would add to a repository, read from git
 * itself, and (later sections) the hooks that scan it. Depends on common/
 * only. */
#ifndef LATCH_HOOKS_H
#define LATCH_HOOKS_H

#include "../common/common.h"

#include <stdbool.h>
#include <stddef.h>

/* ==== Enumeration: staged, pushed and on-disk content (hooks/git.c) ==== */

enum hooks_kind { HOOKS_FILE, HOOKS_SYMLINK, HOOKS_MESSAGE, HOOKS_LFS_OBJECT };

/* One thing to scan, valid during the callback only. */
struct hooks_blob {
	enum hooks_kind kind;
	/* The tree path (any bytes but NUL; from a push or a range, cut at
	 * its first newline, as git's rev-list prints it), the path on disk,
	 * or for a message "commit <oid>" or "tag <name>". */
	const char *path;
	/* The object's name in hex (40 or 64 digits): the blob, the commit
	 * or tag, or for an LFS object the pointer's blob. NULL for a file
	 * on disk. */
	const char *oid;
	const unsigned char *data;
	size_t len;
	bool binary; /* a NUL in the first 8000 bytes, as git decides */
};

/* Called once per thing to scan; a non-zero return stops the enumeration,
 * which then returns that value. */
typedef int (*hooks_blob_fn)(const struct hooks_blob *b, void *ctx);

/* What `git commit` would record: every blob staged that differs from
 * HEAD (every staged blob when there is no HEAD yet), whether added,
 * modified, copied, renamed or type-changed; deletions are not scanned.
 * A symlink is its target text (HOOKS_SYMLINK); a gitlink (submodule) has
 * nothing to scan. A Git LFS pointer stands for its object: the local
 * copy (<common dir>/lfs/objects/aa/bb/<sha256>, or under lfs.storage) is
 * scanned as HOOKS_LFS_OBJECT if present; if not, a warning is printed
 * ("latch: warning: LFS object for 'path' is not local; not scanned") and
 * the pointer itself is scanned. git runs in the current directory with
 * the inherited environment, so GIT_INDEX_FILE (git commit -a, git commit
 * PATH), GIT_DIR, linked worktrees and SHA-256 repositories are git's to
 * decide. .gitattributes are not consulted: a -diff or binary file is read
 * like any other. Returns 0, -1 after reporting, or fn's non-zero value. */
int hooks_staged(hooks_blob_fn fn, void *ctx);

/* The pre-push hook's stdin, parsed strictly: lines of "<local ref> SP
 * <local oid> SP <remote ref> SP <remote oid> LF", object names of 40 or
 * 64 lowercase hex digits (one length in the whole input), refs non-empty
 * without spaces or control characters. A local oid of zeros is a
 * deletion, a remote oid of zeros a new ref. Empty input is zero refs
 * (*refs NULL). Anything else fails with LATCH_USAGE "pre-push input line
 * N is not ...", quoting at most 80 bytes of the line, escaped. */
struct hooks_push_ref {
	char *local_ref, *local_oid, *remote_ref, *remote_oid;
};
int hooks_push_parse(const char *in, size_t n, struct hooks_push_ref **refs, size_t *count);
void hooks_push_free(struct hooks_push_ref *refs, size_t count); /* NULL-safe */

/* What a push to `remote` (the pre-push hook's first argument: a remote's
 * name, or a URL or path when pushing to one) would send that the remote
 * is not known to have: the objects of
 *   git rev-list --objects <local oids> --not <remote oids> --remotes=<remote>
 * over every ref that is not a deletion (each object once, however many
 * refs reach it). Remote oids this repository does not have are left
 * out; --remotes only when `remote` looks like a remote's name. Blobs
 * come as HOOKS_FILE with the first path rev-list names (LFS pointers as
 * in hooks_staged), commit and annotated-tag messages as HOOKS_MESSAGE
 * (the object's text after its headers). */
int hooks_push(const char *remote, const struct hooks_push_ref *refs, size_t n, hooks_blob_fn fn, void *ctx);

/* `latch scan --range RANGE`: the objects of `git rev-list --objects
 * RANGE` (A..B, A...B, or one revision for everything it reaches), as in
 * hooks_push. RANGE must not start with '-'. */
int hooks_range(const char *range, hooks_blob_fn fn, void *ctx);

/* Files on disk (`latch scan PATH...`), kind HOOKS_FILE: each regular
 * file read; a directory walked recursively in name order, skipping any
 * entry named .git; a symlink not followed, its target text scanned
 * (HOOKS_SYMLINK). Other file types are skipped with a warning. oid is
 * NULL. */
int hooks_paths(char *const *paths, size_t n, hooks_blob_fn fn, void *ctx);

/* ==== end of enumeration ==== */

#endif
