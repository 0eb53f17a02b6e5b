/* hooks: what a commit or a push would add to a repository, read from git
 * itself; the scan index (fingerprints of every managed value) and the
 * scan of that content against it; the hooks that run the scan
 * (docs/scanning.md). Depends on common/, match/ and vault/. */
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

/* ==== The scan index (hooks/index.c, hooks/scan.c) ====
 *
 * Keyed fingerprints of every value's forms, in the vault file, written in
 * the transaction that sets or removes the value, so that a scan needs no
 * passphrase and no plaintext. index.c's comment and docs/scanning.md say
 * what a process holding the index can and cannot learn from it. */

/* A form is found by its first HOOKS_WINDOW bytes: shorter forms are not
 * fingerprinted. */
#define HOOKS_WINDOW 12
/* Bits of the rolling hash kept per form: a 2^20-bit (128 KiB) bitmap. */
#define HOOKS_PRE_BITS 20
/* Bits of the keyed SipHash kept per form. */
#define HOOKS_FP_BITS 32
/* The slow check of a whole form: Argon2id, this cost. */
#define HOOKS_VERIFY_OPS 1
#define HOOKS_VERIFY_MEM (4u * 1024 * 1024)
#define HOOKS_SALT_BYTES 16
#define HOOKS_VERIFY_BYTES 16
/* Values estimated below this many bits are not fingerprinted: they are
 * listed as weak and scanned only with the passphrase. */
#define HOOKS_WEAK_BITS 112

/* The index's tables, for vault_add_tables (main() and fixtures). */
struct vault_tables;
extern const struct vault_tables hooks_tables;

/* The index's vault_value_hook (vault_on_value): on a set, the value's
 * fingerprints (or, for a weak value, its entry in the weak list) replace
 * the old ones; on an rm they go; a rekey starts the index again with new
 * keys and fingerprints every value anew. Runs in the change's
 * transaction: -1 (reported) rolls the change back. */
struct vault;
int hooks_index_value(struct vault *v, const char *event, int64_t id, const struct secbuf *value, void *ctx);

/* Every secret a scan without the passphrase cannot find, never left out
 * silently: fn(id, name, bits, ctx) with `bits` its estimated entropy when
 * it is too weak to fingerprint, or -1 when it is not in the index at all
 * (stored before the index existed: `latch rekey` indexes it). A non-zero
 * return stops and is returned. */
int hooks_left_out(struct vault *v, int (*fn)(int64_t id, const char *name, int bits, void *ctx), void *ctx);

/* An estimate of a value's entropy in bits (index.c says how; it is a
 * heuristic that overrates words and known prefixes). */
int hooks_entropy_bits(const unsigned char *v, size_t n);

/* The allow-list: (secret, path) pairs a scan does not report, for the
 * rare intended case (a test fixture that must hold a real value). It
 * lives in the vault and changes only with the passphrase; no comment in
 * a file can silence a finding. hooks_allow_change adds (or removes) the
 * pair for secret NAME and the exact path a finding names, and calls
 * `record` (the audit record) in the same transaction: 0 changed, 1
 * nothing to change, -1 reported. hooks_allow_list: fn(secret id, path)
 * for each pair. */
int hooks_allow_change(struct vault *v, const char *name, const char *path, bool add,
		       int (*record)(struct vault *v, void *ctx), void *ctx);
int hooks_allow_list(struct vault *v, int (*fn)(int64_t secret, const char *path, void *ctx), void *ctx);

/* The index in memory, for scanning. */
struct hooks_index;
int hooks_index_load(struct vault *v, struct hooks_index **out);
void hooks_index_free(struct hooks_index *ix);
size_t hooks_index_size(const struct hooks_index *ix);      /* forms fingerprinted */
size_t hooks_index_weak(const struct hooks_index *ix);      /* too weak to fingerprint */
size_t hooks_index_unindexed(const struct hooks_index *ix); /* not in the index at all */
const char *hooks_index_name(const struct hooks_index *ix, int64_t id);

/* A value found: which secret, in which encoding, where (bytes). */
struct hooks_finding {
	int64_t secret;
	const char *name;
	const char *encoding;
	size_t offset;
	size_t len;
};
typedef int (*hooks_found_fn)(const struct hooks_finding *f, void *ctx);
/* Every occurrence of a fingerprinted form in p[0..n): fn for each, in
 * order of offset; a non-zero return stops and is returned. */
int hooks_index_scan(const struct hooks_index *ix, const unsigned char *p, size_t n, hooks_found_fn fn, void *ctx);

/* The three stages, shared by the writer and the scanner (and tests). */
uint64_t hooks_roll_init(const unsigned char *window, uint64_t mult);
uint32_t hooks_pre(uint64_t rolling);
uint32_t hooks_fp(const unsigned char *window, const unsigned char key[16]);
int hooks_verify_hash(const unsigned char *form, size_t n, const unsigned char salt[HOOKS_SALT_BYTES],
		      unsigned char out[HOOKS_VERIFY_BYTES]);

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
