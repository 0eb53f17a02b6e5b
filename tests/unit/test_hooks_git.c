/* Unit tests: what a commit or a push would add (hooks/git.c), against a
 * real git in temporary repositories. Besides calling the functions
 * directly, this binary is itself installed as a pre-commit or pre-push
 * hook (argv[1] "--hook-staged" or "--hook-push"), so that `git commit
 * -a`, `git commit PATH`, `--amend` and `git push` run it with the
 * environment and stdin git really gives a hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../hooks/hooks.h"
#include "capture.h"

static char top[PATH_MAX];   /* the test's temporary directory (HOME too) */
static char start[PATH_MAX]; /* where the test binary was started */
static char self[PATH_MAX];  /* this binary, for the hooks */

/* ---- helpers --------------------------------------------------------------- */

/* Run a shell command line in the current directory; it must succeed. */
__attribute__((format(printf, 1, 2))) static void sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof cmd);
	int st = system(cmd);
	if (st != 0)
		fail_msg("command failed (%d): %s", st, cmd);
}

/* The same, returning its exit status. */
__attribute__((format(printf, 1, 2))) static int sh_status(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A command's first line of output (an object name), into out. */
__attribute__((format(printf, 2, 3))) static void sh_line(char out[128], const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	out[0] = '\0';
	if (!fgets(out, 128, p))
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	assert_int_equal(pclose(p), 0);
	assert_true(out[0] != '\0');
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void put(const char *path, const char *text)
{
	write_file(path, text, strlen(text));
}

/* What a callback was handed. */
struct got {
	enum hooks_kind kind;
	char *path;
	char *oid;
	unsigned char *data;
	size_t len;
	bool binary;
};

struct coll {
	struct got v[512];
	size_t n;
	size_t stop_after; /* return 7 after this many (0: never) */
	bool keep_data;
	size_t largest;
};

static int collect(const struct hooks_blob *b, void *ctx)
{
	struct coll *c = ctx;
	assert_true(c->n < 512);
	assert_non_null(b->path);
	assert_true(b->data != NULL || b->len == 0);
	struct got *g = &c->v[c->n++];
	g->kind = b->kind;
	g->path = strdup(b->path);
	g->oid = b->oid ? strdup(b->oid) : NULL;
	g->len = b->len;
	g->binary = b->binary;
	g->data = NULL;
	if (c->keep_data) {
		g->data = malloc(b->len + 1);
		assert_non_null(g->data);
		memcpy(g->data, b->data, b->len);
		g->data[b->len] = '\0';
	}
	if (b->len > c->largest)
		c->largest = b->len;
	return c->stop_after && c->n >= c->stop_after ? 7 : 0;
}

static struct coll *coll_new(void)
{
	struct coll *c = calloc(1, sizeof *c);
	assert_non_null(c);
	c->keep_data = true;
	return c;
}

static void coll_free(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].path);
		free(c->v[i].oid);
		free(c->v[i].data);
	}
	free(c);
}

/* The entry for `path` of `kind`, which must be there exactly once. */
static struct got *one(struct coll *c, enum hooks_kind kind, const char *path)
{
	struct got *found = NULL;
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].kind == kind && !strcmp(c->v[i].path, path)) {
			if (found)
				fail_msg("'%s' handed over twice", path);
			found = &c->v[i];
		}
	if (!found) {
		for (size_t i = 0; i < c->n; i++)
			print_message("handed over: %d '%s' (%zu bytes)\n", (int)c->v[i].kind, c->v[i].path,
				      c->v[i].len);
		fail_msg("'%s' (kind %d) not handed over", path, (int)kind);
	}
	return found;
}

static size_t count(struct coll *c, const char *path)
{
	size_t k = 0;
	for (size_t i = 0; i < c->n; i++)
		k += !strcmp(c->v[i].path, path);
	return k;
}

/* How many entries hold `text` anywhere in their data. */
static size_t holding(struct coll *c, const char *text)
{
	size_t k = 0;
	for (size_t i = 0; i < c->n; i++)
		k += c->v[i].data && memmem(c->v[i].data, c->v[i].len, text, strlen(text)) != NULL;
	return k;
}

static void expect_data(struct got *g, const char *text)
{
	assert_int_equal(g->len, strlen(text));
	assert_memory_equal(g->data, text, g->len);
}

static int staged(struct coll *c)
{
	return hooks_staged(collect, c);
}

/* A new repository `name` under top (cwd afterwards), with one commit of
 * base.txt unless `empty`. */
static void repo(const char *name, const char *init_opts, bool empty)
{
	assert_int_equal(chdir(top), 0);
	sh("git init -q %s %s", init_opts, name);
	assert_int_equal(chdir(name), 0);
	if (!empty) {
		put("base.txt", "base\n");
		sh("git add base.txt && git commit -q -m base");
	}
}

/* ---- fixtures -------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	snprintf(top, sizeof top, "/tmp/latch-hooks-git-XXXXXX");
	if (!mkdtemp(top))
		return -1;
	static const char *const drop[] =
		{"GIT_DIR",         "GIT_INDEX_FILE", "GIT_WORK_TREE",           "GIT_OBJECT_DIRECTORY",
		 "GIT_COMMON_DIR",  "GIT_NAMESPACE",  "GIT_CEILING_DIRECTORIES", "GIT_CONFIG_PARAMETERS",
		 "GIT_CONFIG_COUNT"};
	for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
		unsetenv(drop[i]);
	setenv("HOME", top, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "A U Thor", 1);
	setenv("GIT_AUTHOR_EMAIL", "author@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "C O Mitter", 1);
	setenv("GIT_COMMITTER_EMAIL", "committer@example.com", 1);
	if (chdir(top) != 0)
		return -1;
	return system("git config --global init.defaultBranch main && git config --global advice.detachedHead false ") ==
			       0
		       ? 0
		       : -1;
}

static int teardown(void **state)
{
	(void)state;
	unsetenv("GIT_INDEX_FILE");
	if (chdir(start) != 0)
		return -1;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- staged ---------------------------------------------------------------- */

static void staged_changes(void **state)
{
	(void)state;
	repo("r", "", false);
	put("a.txt", "old\n");
	put("gone.txt", "SECRET-GONE\n");
	put("moved.txt", "mover SECRET-MOVED\n");
	put("same.txt", "unchanged\n");
	sh("git add . && git commit -q -m two");
	put("a.txt", "new SECRET-A\n");
	put("b.txt", "SECRET-B\n");
	put("empty", "");
	sh("git add a.txt b.txt empty && git rm -q gone.txt && git mv moved.txt renamed.txt");

	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 4); /* not the deletion, not the unchanged */
	expect_data(one(c, HOOKS_FILE, "empty"), "");
	expect_data(one(c, HOOKS_FILE, "a.txt"), "new SECRET-A\n");
	expect_data(one(c, HOOKS_FILE, "b.txt"), "SECRET-B\n");
	expect_data(one(c, HOOKS_FILE, "renamed.txt"), "mover SECRET-MOVED\n");
	assert_int_equal(holding(c, "SECRET-GONE"), 0);
	char oid[128];
	sh_line(oid, "git rev-parse :a.txt");
	assert_string_equal(one(c, HOOKS_FILE, "a.txt")->oid, oid);
	assert_false(one(c, HOOKS_FILE, "a.txt")->binary);
	coll_free(c);

	/* A deletion alone adds nothing; a clean index neither. */
	sh("git commit -q -m three && git rm -q renamed.txt");
	c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 0);
	coll_free(c);
	sh("git commit -q -m four");
	c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 0);
	coll_free(c);
}

static void staged_no_head(void **state)
{
	(void)state;
	repo("r", "", true);
	put("one", "1\n");
	mkdir("dir", 0700);
	put("dir/two", "2\n");
	sh("git add .");
	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 2);
	expect_data(one(c, HOOKS_FILE, "one"), "1\n");
	expect_data(one(c, HOOKS_FILE, "dir/two"), "2\n");
	coll_free(c);
}

/* The working tree differs from the index: the index is what is scanned
 * (the `git add -p` case). */
static void staged_not_worktree(void **state)
{
	(void)state;
	repo("r", "", false);
	put("f", "clean\n");
	sh("git add f");
	put("f", "SECRET only in the working tree\n");
	put("untracked", "SECRET untracked\n");
	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 1);
	expect_data(one(c, HOOKS_FILE, "f"), "clean\n");
	assert_int_equal(holding(c, "SECRET"), 0);
	coll_free(c);
}

static void staged_symlink_binary_attributes(void **state)
{
	(void)state;
	repo("r", "", false);
	assert_int_equal(symlink("target SECRET-LINK", "link"), 0);
	put(".gitattributes", "k.txt -diff\nsecret.bin binary\n*.dat -text -diff\n");
	put("k.txt", "SECRET-K\n");
	unsigned char bin[64] = {0, 1, 2, 'S', 'E', 'C', 'R', 'E', 'T', '-', 'B', 'I', 'N'};
	write_file("secret.bin", bin, sizeof bin);
	/* A NUL past git's 8000-byte probe: text, as git decides. */
	static unsigned char late[9000];
	memset(late, 'x', sizeof late);
	late[8500] = '\0';
	write_file("late.dat", late, sizeof late);
	char odd[] = "sp ace\nnew\xff line";
	put(odd, "SECRET-ODD\n");
	sh("git add .");
	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 6);
	struct got *l = one(c, HOOKS_SYMLINK, "link");
	expect_data(l, "target SECRET-LINK");
	expect_data(one(c, HOOKS_FILE, "k.txt"), "SECRET-K\n");
	struct got *b = one(c, HOOKS_FILE, "secret.bin");
	assert_true(b->binary);
	assert_int_equal(b->len, sizeof bin);
	assert_memory_equal(b->data, bin, sizeof bin);
	struct got *d = one(c, HOOKS_FILE, "late.dat");
	assert_false(d->binary);
	assert_int_equal(d->len, sizeof late);
	expect_data(one(c, HOOKS_FILE, odd), "SECRET-ODD\n");
	coll_free(c);
}

static void staged_submodule_skipped(void **state)
{
	(void)state;
	repo("r", "", false);
	char head[128];
	sh_line(head, "git rev-parse HEAD");
	/* A gitlink (mode 160000): a commit in another repository. */
	sh("git update-index --add --cacheinfo 160000,%s,sub", head);
	put("f", "f\n");
	sh("git add f");
	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 1);
	one(c, HOOKS_FILE, "f");
	assert_int_equal(count(c, "sub"), 0);
	coll_free(c);
}

/* A Git LFS pointer for `content`, written to `path`; its sha256 in sha. */
static void lfs_pointer(const char *path, const char *content, char sha[65])
{
	unsigned char h[32];
	crypto_hash_sha256(h, (const unsigned char *)content, strlen(content));
	sodium_bin2hex(sha, 65, h, sizeof h);
	char text[256];
	snprintf(text, sizeof text, "version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %zu\n", sha,
		 strlen(content));
	put(path, text);
}

/* The object into git-lfs's store (<git dir>/lfs, or lfs.storage). */
static void lfs_store(const char *store, const char *sha, const char *content)
{
	char dir[PATH_MAX], file[PATH_MAX + 80];
	snprintf(dir, sizeof dir, "%s/objects/%.2s/%.2s", store, sha, sha + 2);
	sh("mkdir -p '%s'", dir);
	snprintf(file, sizeof file, "%s/%s", dir, sha);
	put(file, content);
}

static void staged_lfs(void **state)
{
	(void)state;
	repo("r", "", false);
	char here[65], away[65];
	lfs_pointer("model.bin", "weights SECRET-LFS-LOCAL\n", here);
	lfs_store(".git/lfs", here, "weights SECRET-LFS-LOCAL\n");
	lfs_pointer("far.bin", "SECRET-LFS-REMOTE\n", away);
	sh("git add model.bin far.bin");
	struct coll *c = coll_new();
	int rc;
	CAPTURE(rc, staged(c));
	assert_int_equal(rc, 0);
	/* Both pointers, and the one object that is here. */
	assert_int_equal(c->n, 3);
	expect_data(one(c, HOOKS_LFS_OBJECT, "model.bin"), "weights SECRET-LFS-LOCAL\n");
	assert_non_null(memmem(one(c, HOOKS_FILE, "model.bin")->data, one(c, HOOKS_FILE, "model.bin")->len, here, 64));
	assert_non_null(memmem(one(c, HOOKS_FILE, "far.bin")->data, one(c, HOOKS_FILE, "far.bin")->len, away, 64));
	assert_string_equal(captured, "latch: warning: LFS object for 'far.bin' is not local; not scanned\n");
	assert_int_equal(holding(c, "SECRET-LFS-REMOTE"), 0);
	coll_free(c);

	/* lfs.storage moves the store: the default place is then not used. */
	sh("mkdir -p ../store && git config lfs.storage \"$PWD/../store\"");
	c = coll_new();
	CAPTURE(rc, staged(c));
	assert_int_equal(rc, 0);
	assert_int_equal(count(c, "model.bin"), 1);
	assert_non_null(strstr(captured, "'model.bin' is not local"));
	coll_free(c);
	lfs_store("../store", here, "weights SECRET-LFS-LOCAL\n");
	c = coll_new();
	CAPTURE(rc, staged(c));
	assert_int_equal(rc, 0);
	expect_data(one(c, HOOKS_LFS_OBJECT, "model.bin"), "weights SECRET-LFS-LOCAL\n");
	coll_free(c);
}

/* `git commit -a` uses a temporary index named by GIT_INDEX_FILE. */
static void staged_index_file(void **state)
{
	(void)state;
	repo("r", "", false);
	put("base.txt", "base SECRET-INDEX\n");
	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 0); /* positive control: not in .git/index */
	coll_free(c);
	char idx[PATH_MAX + 16];
	snprintf(idx, sizeof idx, "%s/tmp-index", top);
	sh("cp .git/index '%s' && GIT_INDEX_FILE='%s' git add base.txt", idx, idx);
	setenv("GIT_INDEX_FILE", idx, 1);
	c = coll_new();
	assert_int_equal(staged(c), 0);
	unsetenv("GIT_INDEX_FILE");
	assert_int_equal(c->n, 1);
	expect_data(one(c, HOOKS_FILE, "base.txt"), "base SECRET-INDEX\n");
	coll_free(c);
}

/* Install this binary as `hook`, writing what it is handed to `out`. */
static void install_hook(const char *hooks_dir, const char *hook, const char *mode, const char *out)
{
	char path[PATH_MAX + 64], text[3 * PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", hooks_dir, hook);
	snprintf(text, sizeof text, "#!/bin/sh\nexec '%s' %s '%s' \"$@\"\n", self, mode, out);
	put(path, text);
	assert_int_equal(chmod(path, 0700), 0);
}

/* The hook's record: one line per thing handed over, "<kind> <path>"
 * (and for a push, "refs N" first), then the data's line. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return strdup("");
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
	return strdup(buf);
}

/* Through real commits: the hook sees -a, PATH and --amend; it blocks
 * every commit (exit 1), so HEAD stays where it was. */
static void staged_through_git_commit(void **state)
{
	(void)state;
	repo("r", "", false);
	char out[PATH_MAX + 16];
	snprintf(out, sizeof out, "%s/hook-out", top);
	install_hook(".git/hooks", "pre-commit", "--hook-staged", out);

	put("base.txt", "base SECRET-A\n");
	assert_int_not_equal(sh_status("git commit -q -a -m x 2>/dev/null"), 0);
	char *got = slurp(out);
	assert_non_null(strstr(got, "0 base.txt\nbase SECRET-A\n"));
	free(got);

	put("other.txt", "SECRET-PATH\n");
	sh("git add -N other.txt");
	assert_int_not_equal(sh_status("git commit -q -m x other.txt 2>/dev/null"), 0);
	got = slurp(out);
	assert_non_null(strstr(got, "0 other.txt\nSECRET-PATH\n"));
	assert_null(strstr(got, "SECRET-A")); /* `commit PATH`: that path only */
	free(got);

	sh("git rm -q --cached other.txt && git checkout -q base.txt");
	put("amended.txt", "SECRET-AMEND\n");
	sh("git add amended.txt");
	assert_int_not_equal(sh_status("git commit -q --amend -m y 2>/dev/null"), 0);
	got = slurp(out);
	assert_non_null(strstr(got, "0 amended.txt\nSECRET-AMEND\n"));
	free(got);
}

static void staged_linked_worktree(void **state)
{
	(void)state;
	repo("r", "", false);
	sh("git worktree add -q ../wt -b side");
	assert_int_equal(chdir("../wt"), 0);
	put("w.txt", "SECRET-WORKTREE\n");
	char sha[65];
	lfs_pointer("w.bin", "SECRET-WT-LFS\n", sha);
	lfs_store("../r/.git/lfs", sha, "SECRET-WT-LFS\n"); /* the common directory */
	sh("git add w.txt w.bin");
	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 3);
	expect_data(one(c, HOOKS_FILE, "w.txt"), "SECRET-WORKTREE\n");
	expect_data(one(c, HOOKS_LFS_OBJECT, "w.bin"), "SECRET-WT-LFS\n");
	coll_free(c);
	/* The main worktree's index is another one. */
	assert_int_equal(chdir("../r"), 0);
	c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 0);
	coll_free(c);
}

static void staged_sha256(void **state)
{
	(void)state;
	repo("r", "--object-format=sha256", true);
	put("f", "SECRET-256\n");
	sh("git add f");
	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0); /* no HEAD: the SHA-256 empty tree */
	assert_int_equal(c->n, 1);
	assert_int_equal(strlen(one(c, HOOKS_FILE, "f")->oid), 64);
	coll_free(c);
	sh("git commit -q -m one");
	put("f", "SECRET-256-TWO\n");
	sh("git add f");
	c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 1);
	expect_data(one(c, HOOKS_FILE, "f"), "SECRET-256-TWO\n");
	coll_free(c);
}

/* A callback's non-zero return stops everything, with many blobs still
 * in cat-file's pipe. */
static void staged_stop_early(void **state)
{
	(void)state;
	repo("r", "", false);
	static char big[200000];
	memset(big, 'b', sizeof big);
	for (int i = 0; i < 40; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%02d", i);
		big[0] = (char)('A' + i % 26);
		write_file(name, big, sizeof big);
	}
	sh("git add .");
	struct coll *c = coll_new();
	c->stop_after = 2;
	c->keep_data = false;
	assert_int_equal(staged(c), 7);
	assert_int_equal(c->n, 2);
	coll_free(c);
	c = coll_new();
	c->keep_data = false;
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 40);
	coll_free(c);
}

/* An index entry whose object this repository lacks fails closed. */
static void staged_missing_object(void **state)
{
	(void)state;
	repo("r", "", false);
	put("f", "f\n");
	sh("git add f && git update-index --add --info-only --cacheinfo "
	   "100644,1111111111111111111111111111111111111111,ghost");
	struct coll *c = coll_new();
	int rc;
	CAPTURE(rc, staged(c));
	assert_int_equal(rc, -1);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	assert_string_equal(captured,
			    "latch: git cannot find the staged object 1111111111111111111111111111111111111111\n");
	coll_free(c);
}

static void staged_not_a_repository(void **state)
{
	(void)state;
	sh("mkdir -p plain");
	assert_int_equal(chdir("plain"), 0);
	setenv("GIT_CEILING_DIRECTORIES", top, 1);
	struct coll *c = coll_new();
	int rc;
	CAPTURE(rc, staged(c));
	unsetenv("GIT_CEILING_DIRECTORIES");
	assert_int_equal(rc, -1);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	/* git's own complaint, then latch's. */
	assert_non_null(strstr(captured, "not a git repository"));
	assert_non_null(strstr(captured, "latch: git rev-parse failed (status 128)\n"));
	coll_free(c);
}

/* From a subdirectory, with diff.relative set: still the whole index
 * (diff.relative is for porcelain; diff-index does not read it). */
static void staged_from_subdirectory(void **state)
{
	(void)state;
	repo("r", "", false);
	sh("git config diff.relative true && mkdir sub && printf SECRET-S > sub/s && printf SECRET-T > t && git add .");
	assert_int_equal(chdir("sub"), 0);
	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0);
	assert_int_equal(c->n, 2);
	expect_data(one(c, HOOKS_FILE, "sub/s"), "SECRET-S");
	expect_data(one(c, HOOKS_FILE, "t"), "SECRET-T");
	coll_free(c);
}

/* 50 MB staged: memory grows by about the largest blob (1 MiB), not the
 * total. Run first, while this process's peak is still small. */
static void staged_memory(void **state)
{
	(void)state;
	repo("r", "", false);
	static char blob[1 << 20];
	for (size_t i = 0; i < sizeof blob; i++)
		blob[i] = (char)('a' + (i * 7 + i / 13) % 26);
	for (int i = 0; i < 50; i++) {
		char name[32];
		snprintf(name, sizeof name, "m%02d", i);
		memcpy(blob, name, 3);
		write_file(name, blob, sizeof blob);
	}
	sh("git add .");
	struct rusage before, after;
	getrusage(RUSAGE_SELF, &before);
	struct coll *c = coll_new();
	c->keep_data = false;
	assert_int_equal(staged(c), 0);
	getrusage(RUSAGE_SELF, &after);
	assert_int_equal(c->n, 50);
	assert_int_equal(c->largest, sizeof blob);
	long grew_kb = after.ru_maxrss - before.ru_maxrss;
	if (grew_kb > 16 * 1024)
		fail_msg("staging 50 MB grew this process by %ld KiB", grew_kb);
	coll_free(c);
}

/* ---- push ------------------------------------------------------------------ */

/* r with a bare origin holding main at base; cwd r. */
static void repo_with_origin(const char *init_opts)
{
	assert_int_equal(chdir(top), 0);
	sh("git init -q --bare %s origin.git", init_opts);
	repo("r", init_opts, false);
	sh("git remote add origin ../origin.git && git push -q origin main 2>/dev/null");
}

static char zeros40[] = "0000000000000000000000000000000000000000";

static int push(struct coll *c, const char *remote, const char *lines)
{
	struct hooks_push_ref *refs;
	size_t n;
	assert_int_equal(hooks_push_parse(lines, strlen(lines), &refs, &n), 0);
	int rc = hooks_push(remote, refs, n, collect, c);
	hooks_push_free(refs, n);
	return rc;
}

static void commit_file(const char *path, const char *text, const char *msg, char oid[128])
{
	put(path, text);
	sh("git add '%s' && git commit -q -m '%s'", path, msg);
	sh_line(oid, "git rev-parse HEAD");
}

static void push_new_branch(void **state)
{
	(void)state;
	repo_with_origin("");
	char c1[128], line[512];
	sh("git checkout -q -b feat");
	put("odd\nname", "SECRET-ODD\n");
	sh("git add .");
	commit_file("feat.txt", "SECRET-FEAT\n", "feat message", c1);
	snprintf(line, sizeof line, "refs/heads/feat %s refs/heads/feat %s\n", c1, zeros40);

	/* origin/main is the remote's: base.txt and its commit are not new. */
	struct coll *c = coll_new();
	assert_int_equal(push(c, "origin", line), 0);
	assert_int_equal(c->n, 3);
	expect_data(one(c, HOOKS_FILE, "feat.txt"), "SECRET-FEAT\n");
	/* rev-list cuts a path at its newline; the blob is there all the same. */
	expect_data(one(c, HOOKS_FILE, "odd"), "SECRET-ODD\n");
	char name[160];
	snprintf(name, sizeof name, "commit %s", c1);
	struct got *m = one(c, HOOKS_MESSAGE, name);
	expect_data(m, "feat message\n");
	assert_string_equal(m->oid, c1);
	assert_int_equal(count(c, "base.txt"), 0);
	coll_free(c);

	/* Pushing to a path, not a remote: only the remote oids count, and
	 * there are none, so everything is new. */
	c = coll_new();
	assert_int_equal(push(c, "../origin.git", line), 0);
	assert_int_equal(c->n, 5);
	one(c, HOOKS_FILE, "base.txt");
	one(c, HOOKS_FILE, "feat.txt");
	coll_free(c);
}

static void push_update_and_deletion(void **state)
{
	(void)state;
	repo_with_origin("");
	char base[128], c2[128], line[512];
	sh_line(base, "git rev-parse HEAD");
	commit_file("new.txt", "SECRET-NEW\n", "second", c2);
	/* The remote-tracking ref is moved back out of the way: only the
	 * remote oid on the line says what the remote has. */
	sh("git update-ref -d refs/remotes/origin/main");
	snprintf(line, sizeof line, "refs/heads/main %s refs/heads/main %s\n", c2, base);
	struct coll *c = coll_new();
	assert_int_equal(push(c, "origin", line), 0);
	assert_int_equal(c->n, 2);
	expect_data(one(c, HOOKS_FILE, "new.txt"), "SECRET-NEW\n");
	assert_int_equal(count(c, "base.txt"), 0);
	coll_free(c);

	/* A remote oid this repository never saw (someone else's push) is
	 * left out, not an error. */
	snprintf(line, sizeof line, "refs/heads/main %s refs/heads/main %s\n", c2,
		 "1111111111111111111111111111111111111111");
	c = coll_new();
	assert_int_equal(push(c, "origin", line), 0);
	assert_int_equal(c->n, 4);
	coll_free(c);

	/* A deletion sends nothing. */
	snprintf(line, sizeof line, "(delete) %s refs/heads/old %s\n", zeros40, c2);
	c = coll_new();
	assert_int_equal(push(c, "origin", line), 0);
	assert_int_equal(c->n, 0);
	coll_free(c);
	c = coll_new();
	assert_int_equal(push(c, "origin", ""), 0);
	assert_int_equal(c->n, 0);
	coll_free(c);
}

static void push_annotated_tag(void **state)
{
	(void)state;
	repo_with_origin("");
	char tag[128], line[512];
	sh("git tag -a v1 -m 'release SECRET-TAG'");
	sh_line(tag, "git rev-parse v1");
	snprintf(line, sizeof line, "refs/tags/v1 %s refs/tags/v1 %s\n", tag, zeros40);
	struct coll *c = coll_new();
	assert_int_equal(push(c, "origin", line), 0);
	assert_int_equal(c->n, 1); /* the commit it names is the remote's */
	struct got *m = one(c, HOOKS_MESSAGE, "tag v1");
	expect_data(m, "release SECRET-TAG\n");
	assert_string_equal(m->oid, tag);
	coll_free(c);
}

static void push_shared_objects(void **state)
{
	(void)state;
	repo_with_origin("");
	char cs[128], c1[128], c2[128], lines[1024];
	commit_file("shared.txt", "SECRET-SHARED\n", "shared", cs);
	sh("git branch b2");
	commit_file("x.txt", "x\n", "x", c1);
	sh("git checkout -q b2");
	commit_file("y.txt", "y\n", "y", c2);
	snprintf(lines, sizeof lines, "refs/heads/main %s refs/heads/b1 %s\nrefs/heads/b2 %s refs/heads/b2 %s\n", c1,
		 zeros40, c2, zeros40);
	struct coll *c = coll_new();
	assert_int_equal(push(c, "origin", lines), 0);
	assert_int_equal(count(c, "shared.txt"), 1);
	char name[160];
	snprintf(name, sizeof name, "commit %s", cs);
	assert_int_equal(count(c, name), 1);
	one(c, HOOKS_FILE, "x.txt");
	one(c, HOOKS_FILE, "y.txt");
	assert_int_equal(c->n, 6);
	coll_free(c);
}

/* A value committed with --no-verify, then removed: the push still
 * carries the earlier commit, and its blob is scanned. */
static void push_no_verify_commit(void **state)
{
	(void)state;
	repo_with_origin("");
	sh("printf '#!/bin/sh\\nexit 1\\n' > .git/hooks/pre-commit && chmod 700 .git/hooks/pre-commit");
	put("leak.txt", "SECRET-NO-VERIFY\n");
	sh("git add leak.txt");
	assert_int_not_equal(sh_status("git commit -q -m leak 2>/dev/null"), 0); /* the hook works */
	sh("git commit -q --no-verify -m leak && git rm -q leak.txt && git commit -q --no-verify -m 'remove it'");
	char tip[128], line[512];
	sh_line(tip, "git rev-parse HEAD");
	char base[128];
	sh_line(base, "git rev-parse origin/main");
	snprintf(line, sizeof line, "refs/heads/main %s refs/heads/main %s\n", tip, base);
	struct coll *c = coll_new();
	assert_int_equal(push(c, "origin", line), 0);
	expect_data(one(c, HOOKS_FILE, "leak.txt"), "SECRET-NO-VERIFY\n");
	assert_int_equal(c->n, 3); /* the blob and two messages */
	coll_free(c);
}

static void push_sha256(void **state)
{
	(void)state;
	repo_with_origin("--object-format=sha256");
	char c1[128], line[512];
	commit_file("f.txt", "SECRET-256-PUSH\n", "m", c1);
	assert_int_equal(strlen(c1), 64);
	char z[65];
	memset(z, '0', 64);
	z[64] = '\0';
	snprintf(line, sizeof line, "refs/heads/main %s refs/heads/main %s\n", c1, z);
	struct coll *c = coll_new();
	assert_int_equal(push(c, "origin", line), 0);
	assert_int_equal(c->n, 2);
	expect_data(one(c, HOOKS_FILE, "f.txt"), "SECRET-256-PUSH\n");
	coll_free(c);
}

/* Through a real `git push`: its pre-push stdin, several refs, a tag, a
 * deletion. The hook blocks (exit 1) except for the deletion check. */
static void push_through_git(void **state)
{
	(void)state;
	repo_with_origin("");
	char out[PATH_MAX + 16], c1[128];
	snprintf(out, sizeof out, "%s/hook-out", top);
	install_hook(".git/hooks", "pre-push", "--hook-push", out);
	sh("git checkout -q -b feat");
	commit_file("feat.txt", "SECRET-GIT-PUSH\n", "feat", c1);
	sh("git tag -a v2 -m 'SECRET-TAG-MSG'");
	assert_int_not_equal(sh_status("git push -q origin feat v2 2>/dev/null"), 0);
	char *got = slurp(out);
	assert_non_null(strstr(got, "refs 2\n"));
	assert_non_null(strstr(got, "0 feat.txt\nSECRET-GIT-PUSH\n"));
	assert_non_null(strstr(got, "2 tag v2\nSECRET-TAG-MSG\n"));
	assert_non_null(strstr(got, "2 commit "));
	assert_null(strstr(got, "base.txt"));
	free(got);

	/* A deletion: the hook runs, with nothing to scan. */
	sh("git push -q --no-verify origin feat 2>/dev/null");
	assert_int_not_equal(sh_status("git push -q origin --delete feat 2>/dev/null"), 0);
	got = slurp(out);
	assert_string_equal(got, "refs 1\n");
	free(got);
}

/* A replace ref shows git's porcelain a clean object in place of the
 * one a commit records or a push sends; the scan sees the real one. */
static void replace_refs_ignored(void **state)
{
	(void)state;
	repo_with_origin("");
	char real[128], clean[128], leak[128], tidy[128], line[512];
	put("f", "SECRET-REPLACED\n");
	sh("git add f");
	sh_line(real, "git rev-parse :f");
	sh_line(clean, "printf 'clean\\n' | git hash-object -w --stdin");
	sh("git replace %s %s", real, clean);
	sh_line(tidy, "git cat-file -p %s", real); /* positive control */
	assert_string_equal(tidy, "clean");
	struct coll *c = coll_new();
	assert_int_equal(staged(c), 0);
	expect_data(one(c, HOOKS_FILE, "f"), "SECRET-REPLACED\n");
	coll_free(c);

	/* The commit that carries it, replaced by one that does not. */
	sh("git commit -q -m leak");
	sh_line(leak, "git rev-parse HEAD");
	sh("git replace -d %s >/dev/null && git checkout -q -b other origin/main && git commit -q --allow-empty -m tidy",
	   real);
	sh_line(tidy, "git rev-parse HEAD");
	sh("git checkout -q main && git replace %s %s", leak, tidy);
	snprintf(line, sizeof line, "refs/heads/main %s refs/heads/main %s\n", leak, zeros40);
	c = coll_new();
	assert_int_equal(push(c, "origin", line), 0);
	expect_data(one(c, HOOKS_FILE, "f"), "SECRET-REPLACED\n");
	coll_free(c);
}

/* ---- range and paths ------------------------------------------------------ */

static void range(void **state)
{
	(void)state;
	repo("r", "", false);
	char a[128], b[128], spec[300];
	sh_line(a, "git rev-parse HEAD");
	commit_file("r1.txt", "SECRET-R1\n", "r1", b);
	commit_file("r2.txt", "SECRET-R2\n", "r2", b);
	snprintf(spec, sizeof spec, "%s..%s", a, b);
	struct coll *c = coll_new();
	assert_int_equal(hooks_range(spec, collect, c), 0);
	assert_int_equal(c->n, 4);
	one(c, HOOKS_FILE, "r1.txt");
	one(c, HOOKS_FILE, "r2.txt");
	assert_int_equal(count(c, "base.txt"), 0);
	coll_free(c);

	c = coll_new();
	assert_int_equal(hooks_range("HEAD~1...HEAD", collect, c), 0);
	assert_int_equal(c->n, 2);
	one(c, HOOKS_FILE, "r2.txt");
	coll_free(c);

	/* One revision: everything it reaches. */
	c = coll_new();
	assert_int_equal(hooks_range("main", collect, c), 0);
	assert_int_equal(c->n, 6);
	expect_data(one(c, HOOKS_FILE, "base.txt"), "base\n");
	coll_free(c);

	/* Stopped by the callback: its value, and no git left behind. */
	c = coll_new();
	c->stop_after = 1;
	assert_int_equal(hooks_range("main", collect, c), 7);
	assert_int_equal(c->n, 1);
	coll_free(c);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);

	c = coll_new();
	latch_error_quiet(true);
	assert_int_equal(hooks_range("--all", collect, c), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	assert_int_equal(hooks_range("", collect, c), -1);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	int rc;
	CAPTURE(rc, hooks_range("no-such-rev..main", collect, c));
	latch_error_quiet(false);
	assert_int_equal(rc, -1);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	assert_string_equal(latch_last_message(), "git rev-list failed (status 128)");
	/* base.txt is a file, not a revision: refused, not read as a path. */
	CAPTURE(rc, hooks_range("base.txt", collect, c));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(captured, "latch: git rev-list failed (status 128)\n"));
	assert_int_equal(c->n, 0);
	coll_free(c);
}

static void paths(void **state)
{
	(void)state;
	sh("mkdir -p d/sub d/.git d/deep/.git && printf 'SECRET-P1' > d/a.txt && printf 'SECRET-P2' > d/sub/b.txt");
	sh("printf 'SECRET-GITDIR' > d/.git/config && printf 'SECRET-SUBMOD' > d/deep/.git/x && printf 'x' > d/deep/c");
	sh("ln -s 'a.txt SECRET-LINK' d/link && mkfifo d/fifo && printf 'SECRET-TOP' > top.txt");
	char *argv[] = {"d", "top.txt"};
	struct coll *c = coll_new();
	int rc;
	CAPTURE(rc, hooks_paths(argv, 2, collect, c));
	assert_int_equal(rc, 0);
	assert_non_null(strstr(captured, "latch: warning: 'd/fifo' is not a regular file"));
	assert_int_equal(c->n, 5);
	/* Name order, depth first. */
	assert_string_equal(c->v[0].path, "d/a.txt");
	assert_string_equal(c->v[1].path, "d/deep/c");
	assert_string_equal(c->v[2].path, "d/link");
	assert_string_equal(c->v[3].path, "d/sub/b.txt");
	assert_string_equal(c->v[4].path, "top.txt");
	expect_data(&c->v[0], "SECRET-P1");
	assert_int_equal(c->v[2].kind, HOOKS_SYMLINK);
	expect_data(&c->v[2], "a.txt SECRET-LINK");
	assert_null(c->v[0].oid);
	assert_int_equal(holding(c, "SECRET-GITDIR") + holding(c, "SECRET-SUBMOD"), 0);
	coll_free(c);

	char *missing[] = {"nope"};
	c = coll_new();
	latch_error_quiet(true);
	assert_int_equal(hooks_paths(missing, 1, collect, c), -1);
	latch_error_quiet(false);
	assert_int_equal(latch_last_status(), LATCH_OPERR);
	assert_string_equal(latch_last_message(), "cannot read 'nope': No such file or directory");
	coll_free(c);
}

/* ---- the pre-push input ---------------------------------------------------- */

static const char o1[] = "1234567890abcdef1234567890abcdef12345678";
static const char o2[] = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";
static const char s1[] = "1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef";

static void parse_valid(void **state)
{
	(void)state;
	char in[1024];
	snprintf(in, sizeof in, "refs/heads/main %s refs/heads/main %s\n(delete) %s refs/heads/x %s\n", o1, o2, zeros40,
		 o1);
	struct hooks_push_ref *r;
	size_t n;
	assert_int_equal(hooks_push_parse(in, strlen(in), &r, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(r[0].local_ref, "refs/heads/main");
	assert_string_equal(r[0].local_oid, o1);
	assert_string_equal(r[0].remote_ref, "refs/heads/main");
	assert_string_equal(r[0].remote_oid, o2);
	assert_string_equal(r[1].local_ref, "(delete)");
	assert_string_equal(r[1].local_oid, zeros40);
	hooks_push_free(r, n);

	assert_int_equal(hooks_push_parse("", 0, &r, &n), 0);
	assert_int_equal(n, 0);
	assert_null(r);
	hooks_push_free(r, n);

	snprintf(in, sizeof in, "HEAD %s refs/heads/caf\xc3\xa9 %s\n", s1, s1);
	assert_int_equal(hooks_push_parse(in, strlen(in), &r, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].remote_ref, "refs/heads/caf\xc3\xa9");
	hooks_push_free(r, n);
}

/* `in` must be refused with a message naming line `no` and `why`. */
static void refused(const char *in, size_t len, size_t no, const char *why)
{
	struct hooks_push_ref *r = (void *)1;
	size_t n = 99;
	int rc;
	CAPTURE(rc, hooks_push_parse(in, len, &r, &n));
	if (rc != -1)
		fail_msg("accepted: %s", in);
	assert_int_equal(latch_last_status(), LATCH_USAGE);
	assert_null(r);
	assert_int_equal(n, 0);
	char head[64];
	snprintf(head, sizeof head, "latch: pre-push input line %zu is not ", no);
	if (strncmp(captured, head, strlen(head)) != 0 || !strstr(captured, why))
		fail_msg("message '%s' for '%s'", captured, in);
}

/* `tmpl` with @1 and @2 replaced by o1 and o2, @3 by o2 cut to 39 digits. */
static void fill(char *out, size_t cap, const char *tmpl)
{
	size_t o = 0;
	for (const char *p = tmpl; *p; p++) {
		const char *put_s = NULL;
		size_t put_n = 0;
		if (p[0] == '@' && (p[1] == '1' || p[1] == '2' || p[1] == '3')) {
			put_s = p[1] == '1' ? o1 : o2;
			put_n = p[1] == '3' ? 39 : 40;
			p++;
		} else {
			put_s = p;
			put_n = 1;
		}
		assert_true(o + put_n < cap);
		memcpy(out + o, put_s, put_n);
		o += put_n;
	}
	out[o] = '\0';
}

static void parse_malformed(void **state)
{
	(void)state;
	char ok[256], in[1024];
	snprintf(ok, sizeof ok, "refs/heads/a %s refs/heads/a %s\n", o1, o2);
	const char *fields = "not four fields";
	static const struct {
		const char *tmpl;
		const char *why;
	} cases[] = {
		{"refs/heads/a @1 refs/heads/a @2", "does not end with a newline"},
		{"\n", "not four fields"},
		{"refs/heads/a @1 refs/heads/a\n", "not four fields"},
		{"refs/heads/a @1 refs/heads/a @2 extra\n", "not four fields"},
		{"refs/heads/a  @1 refs/heads/a @2\n", "not four fields"},
		{" refs/heads/a @1 refs/heads/a @2\n", "not four fields"},
		{"refs/heads/a @1 refs/heads/a @2 \n", "not four fields"},
		{"refs/heads/a\t@1 refs/heads/a @2\n", "not four fields"},
		{"refs/heads/a @1 refs/heads/a @2\r\n", "lowercase hex"},
		{"refs/heads/a @1 refs/heads/a @3\n", "lowercase hex"},
		{"refs/heads/a @1 refs/heads/a @20\n", "lowercase hex"},
		{"refs/heads/a @1 refs/heads/a g@3\n", "lowercase hex"},
		{"refs/heads/\x1b[2J @1 refs/heads/a @2\n", "control character"},
		{"refs/heads/a\x7f @1 refs/heads/a @2\n", "control character"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		fill(in, sizeof in, cases[i].tmpl);
		refused(in, strlen(in), 1, cases[i].why);
		/* The same after a good line is line 2. */
		char two[1300];
		snprintf(two, sizeof two, "%s%s", ok, in);
		refused(two, strlen(two), 2, cases[i].why);
	}
	/* Upper-case hex, and lengths that differ within a line or between lines. */
	snprintf(in, sizeof in, "refs/heads/a %s refs/heads/a ABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCD\n", o1);
	refused(in, strlen(in), 1, "lowercase hex");
	snprintf(in, sizeof in, "refs/heads/a %s refs/heads/a %s\n", o1, s1);
	refused(in, strlen(in), 1, "differ in length");
	snprintf(in, sizeof in, "%srefs/heads/b %s refs/heads/b %s\n", ok, s1, s1);
	refused(in, strlen(in), 2, "differ in length");
	/* Empty refs, a NUL, an empty line after a good one. */
	snprintf(in, sizeof in, " %s refs/heads/a %s\n", o1, o2);
	refused(in, strlen(in), 1, "a ref is empty");
	snprintf(in, sizeof in, "refs/heads/a %s refs/heads/a %s\n", o1, o2);
	in[5] = '\0';
	refused(in, strlen(ok), 1, "control character");
	assert_non_null(strstr(captured, "'refs/\\x00eads/a "));
	snprintf(in, sizeof in, "%s\n", ok);
	refused(in, strlen(in), 2, fields);
}

/* At most 80 bytes of a bad line are quoted, escaped. */
static void parse_quote_limit(void **state)
{
	(void)state;
	char in[600];
	memset(in, 'q', sizeof in);
	memcpy(in + 76,
	       "\x1b"
	       "ABC"
	       "ZZZZ",
	       8);
	in[sizeof in - 1] = '\n';
	refused(in, sizeof in, 1, "not four fields");
	assert_non_null(strstr(captured, "qqq\\x1bABC'..."));
	assert_null(strstr(captured, "Z"));
	assert_null(strchr(captured, '\x1b'));
}

/* ---- this binary as a hook ------------------------------------------------- */

static int record(const struct hooks_blob *b, void *ctx)
{
	FILE *f = ctx;
	fprintf(f, "%d %s\n", (int)b->kind, b->path);
	fwrite(b->data, 1, b->len, f);
	fputc('\n', f);
	return 0;
}

/* argv: --hook-staged OUT, or --hook-push OUT REMOTE URL (stdin: the
 * refs). Exits 1 to block the commit or push, 3 on failure. */
static int hook_main(int argc, char **argv)
{
	if (sodium_init() < 0 || argc < 3)
		return 3;
	FILE *f = fopen(argv[2], "a");
	if (!f)
		return 3;
	int rc;
	if (!strcmp(argv[1], "--hook-staged")) {
		rc = hooks_staged(record, f);
	} else {
		static char in[1 << 16];
		size_t n = fread(in, 1, sizeof in, stdin);
		struct hooks_push_ref *refs;
		size_t count;
		rc = argc < 4 ? -1 : hooks_push_parse(in, n, &refs, &count);
		if (rc == 0) {
			fprintf(f, "refs %zu\n", count);
			rc = hooks_push(argv[3], refs, count, record, f);
			hooks_push_free(refs, count);
		}
	}
	fclose(f);
	return rc == 0 ? 1 : 3;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strncmp(argv[1], "--hook-", 7))
		return hook_main(argc, argv);
	if (sodium_init() < 0 || !getcwd(start, sizeof start))
		return 1;
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	if (k <= 0)
		return 1;
	self[k] = '\0';
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(staged_memory),
		T(staged_changes),
		T(staged_no_head),
		T(staged_not_worktree),
		T(staged_symlink_binary_attributes),
		T(staged_submodule_skipped),
		T(staged_lfs),
		T(staged_index_file),
		T(staged_through_git_commit),
		T(staged_linked_worktree),
		T(staged_sha256),
		T(staged_stop_early),
		T(staged_missing_object),
		T(staged_not_a_repository),
		T(staged_from_subdirectory),
		T(push_new_branch),
		T(push_update_and_deletion),
		T(push_annotated_tag),
		T(push_shared_objects),
		T(push_no_verify_commit),
		T(push_sha256),
		T(push_through_git),
		T(replace_refs_ignored),
		T(range),
		T(paths),
		cmocka_unit_test(parse_valid),
		cmocka_unit_test(parse_malformed),
		cmocka_unit_test(parse_quote_limit),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
