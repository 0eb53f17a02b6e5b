/* What a commit or a push would add (hooks.h), read from git's own
 * plumbing rather than from the working tree or a parser of our own:
 *
 *   staged: git diff-index --cached -z --raw --no-renames <HEAD's tree>
 *           (the empty tree when there is no HEAD), then the blobs through
 *           one git cat-file --batch;
 *   push, range: git rev-list --objects piped straight into git cat-file
 *           --batch, whose %(rest) echoes the path rev-list names (trees
 *           pass through and are dropped: --filter=object:type=blob, which
 *           would spare them, also drops commits other than the tips in
 *           git 2.39, and with them their messages).
 *
 * git runs without a shell, in the current directory with the inherited
 * environment (GIT_INDEX_FILE, GIT_DIR and worktrees are git's to decide),
 * stderr the user's, and no other descriptor of ours. Every git runs with
 * --no-replace-objects: a replace ref could otherwise show the scan a
 * clean object in place of the one a commit records or a push sends.
 *
 * cat-file's requests are written to a memory file that becomes its stdin,
 * not to a pipe: it answers while we are still in a callback, and neither
 * side can then wait for the other (no thread, no poll, no SIGPIPE). Each
 * object is read into one reusable buffer and handed over before the next
 * is read, so memory is the largest object plus what git itself holds.
 *
 * Departures from the brief, on purpose: an LFS pointer is scanned itself
 * as well as its object (a file shaped like a pointer could carry a value
 * in its own text); rev-list gives no modes, so a pushed symlink is HOOKS_FILE (its target
 * text all the same). Local files (paths, LFS objects) are mmapped: a
 * multi-GB LFS object costs no heap, and a file truncated while it is read
 * kills the scan with SIGBUS, which fails closed. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* git's buffer_is_binary() looks this far for a NUL (FIRST_FEW_BYTES). */
#define BINARY_PROBE 8000
/* git-lfs reads only blobs smaller than this as pointers. */
#define LFS_POINTER_MAX 1024
/* The most of a bad pre-push line a message quotes. */
#define QUOTE_MAX 80
/* A header line of cat-file (an object name, type, size and a path). */
#define HEADER_MAX (1024 * 1024)
#define OID_MAX 64

#define NO_REPLACE "--no-replace-objects"
#define BATCH_FORMAT "--batch=%(objectname) %(objecttype) %(objectsize) %(rest)"

/* ---- small helpers -------------------------------------------------------- */

/* A buffer reused from object to object; its old contents are wiped when
 * it grows, since they may be a file's text. */
static int grow(struct growbuf *g, size_t need, bool keep)
{
	if (need <= g->cap)
		return 0;
	size_t cap = g->cap ? g->cap : 4096;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	unsigned char *p = malloc(cap);
	if (!p)
		return latch_error(LATCH_OPERR, "cannot allocate %zu bytes", cap);
	if (keep && g->len)
		memcpy(p, g->p, g->len);
	if (g->p) {
		explicit_bzero(g->p, g->cap);
		free(g->p);
	}
	g->p = p;
	g->cap = cap;
	return 0;
}

void hooks_growbuf_free(struct growbuf *g)
{
	if (g->p) {
		explicit_bzero(g->p, g->cap);
		free(g->p);
	}
	memset(g, 0, sizeof *g);
}

static bool hex_oid(const char *s, size_t n)
{
	if (n != 40 && n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool all_zeros(const char *s)
{
	return s[strspn(s, "0")] == '\0';
}

static bool is_binary(const unsigned char *d, size_t n)
{
	return memchr(d, 0, n < BINARY_PROBE ? n : BINARY_PROBE) != NULL;
}

/* ---- running git -------------------------------------------------------- */

/* Start git with `argv` (argv[0] "git", argv[2] the subcommand), stdin
 * from `in` and stdout to `out` (-1: /dev/null). */
static int git_spawn(char *const argv[], int in, int out, pid_t *pid)
{
	int e = spawn_plain(argv, true, in, out, false, pid);
	if (e != 0)
		return latch_error(LATCH_OPERR, "cannot run git %s: %s", argv[2], strerror(e));
	return 0;
}

/* Wait for git; *status is its exit status, or 128 + the signal. */
static int git_wait(pid_t pid, const char *what, int *status)
{
	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return latch_error(LATCH_OPERR, "cannot wait for git %s: %s", what, strerror(errno));
	*status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	return 0;
}

int hooks_git_capture(char *const argv[], int in, struct growbuf *out, int *status)
{
	int p[2];
	out->len = 0;
	if (pipe2(p, O_CLOEXEC) != 0)
		return latch_error(LATCH_OPERR, "cannot run git %s: %s", argv[2], strerror(errno));
	pid_t pid;
	int rc = git_spawn(argv, in, p[1], &pid);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		return -1;
	}
	for (;;) {
		if (grow(out, out->len + 65536, true) != 0) {
			rc = -1;
			break;
		}
		ssize_t k = read(p[0], out->p + out->len, out->cap - out->len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			rc = latch_error(LATCH_OPERR, "cannot read from git %s: %s", argv[2], strerror(errno));
		if (k <= 0)
			break;
		out->len += (size_t)k;
	}
	close(p[0]);
	if (git_wait(pid, argv[2], status) != 0 || rc != 0)
		return -1;
	out->p[out->len] = '\0';
	return 0;
}

/* A memory file holding `n` bytes of `s`, at offset 0: git's stdin. */
static int memfd_of(const char *s, size_t n, const char *what)
{
	int fd = memfd_create("latch-git-input", MFD_CLOEXEC);
	if (fd < 0)
		return latch_error(LATCH_OPERR, "cannot prepare git %s's input: %s", what, strerror(errno));
	if (write_all(fd, s, n) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
		int e = errno;
		close(fd);
		return latch_error(LATCH_OPERR, "cannot prepare git %s's input: %s", what, strerror(e));
	}
	return fd;
}

/* Append printf-formatted text to a growbuf (requests for git). */
__attribute__((format(printf, 2, 3))) static int append(struct growbuf *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || grow(g, g->len + (size_t)n + 1, true) != 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf((char *)g->p + g->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	g->len += (size_t)n;
	return 0;
}

/* ---- reading git cat-file --batch --------------------------------------- */

struct reader {
	int fd;
	size_t at, end;
	struct growbuf line; /* the current header, NUL-terminated */
	struct growbuf data; /* the current object */
	unsigned char buf[65536];
};

/* More bytes into r->buf: 1, 0 at EOF, -1 reported. */
static int fill(struct reader *r)
{
	r->at = r->end = 0;
	for (;;) {
		ssize_t k = read(r->fd, r->buf, sizeof r->buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return latch_error(LATCH_OPERR, "cannot read from git cat-file: %s", strerror(errno));
		r->end = (size_t)k;
		return k > 0;
	}
}

static int ended_early(void)
{
	return latch_error(LATCH_OPERR, "git cat-file's output ended in the middle of an object");
}

/* The next header line into r->line (without its LF): 1, or 0 at EOF. */
static int read_header(struct reader *r)
{
	r->line.len = 0;
	for (;;) {
		if (r->at == r->end) {
			int k = fill(r);
			if (k <= 0)
				return k < 0 ? -1 : r->line.len ? ended_early() : 0;
		}
		unsigned char *nl = memchr(r->buf + r->at, '\n', r->end - r->at);
		size_t take = nl ? (size_t)(nl - (r->buf + r->at)) : r->end - r->at;
		if (r->line.len + take >= HEADER_MAX)
			return latch_error(LATCH_OPERR, "git cat-file wrote a header line of more than 1 MiB");
		if (grow(&r->line, r->line.len + take + 1, true) != 0)
			return -1;
		memcpy(r->line.p + r->line.len, r->buf + r->at, take);
		r->line.len += take;
		r->at += take;
		if (nl) {
			r->at++;
			r->line.p[r->line.len] = '\0';
			return 1;
		}
	}
}

/* Exactly `n` bytes of object into r->data, then the LF after them. */
static int read_object(struct reader *r, size_t n)
{
	if (grow(&r->data, n ? n : 1, false) != 0)
		return -1;
	r->data.len = 0;
	while (r->data.len < n) {
		size_t left = n - r->data.len;
		if (r->at == r->end && left >= sizeof r->buf) {
			/* Large objects go straight into place. */
			ssize_t k = read(r->fd, r->data.p + r->data.len, left);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return latch_error(LATCH_OPERR, "cannot read from git cat-file: %s", strerror(errno));
			if (k == 0)
				return ended_early();
			r->data.len += (size_t)k;
			continue;
		}
		if (r->at == r->end) {
			int k = fill(r);
			if (k <= 0)
				return k < 0 ? -1 : ended_early();
		}
		size_t take = r->end - r->at < left ? r->end - r->at : left;
		memcpy(r->data.p + r->data.len, r->buf + r->at, take);
		r->data.len += take;
		r->at += take;
	}
	if (r->at == r->end) {
		int k = fill(r);
		if (k <= 0)
			return k < 0 ? -1 : ended_early();
	}
	if (r->buf[r->at++] != '\n')
		return latch_error(LATCH_OPERR, "git cat-file wrote an object not followed by a newline");
	return 0;
}

/* One answer's header, "<oid> <type> <size> <rest>" or "<oid> missing",
 * split in place. */
struct header {
	const char *oid, *type, *rest;
	size_t size;
	bool missing;
};

static int bad_header(void)
{
	return latch_error(LATCH_OPERR, "git cat-file wrote a header latch cannot read");
}

static int parse_header(struct reader *r, struct header *h)
{
	char *s = (char *)r->line.p;
	char *sp = strchr(s, ' ');
	if (!sp || !hex_oid(s, (size_t)(sp - s)))
		return bad_header();
	*sp = '\0';
	h->oid = s;
	s = sp + 1;
	if (!strcmp(s, "missing") || !strcmp(s, "ambiguous")) {
		h->missing = true;
		h->type = s;
		h->rest = "";
		h->size = 0;
		return 0;
	}
	h->missing = false;
	if (!(sp = strchr(s, ' ')))
		return bad_header();
	*sp = '\0';
	h->type = s;
	s = sp + 1;
	size_t size = 0, digits = strspn(s, "0123456789");
	if (digits == 0 || digits > 19 || s[digits] != ' ')
		return bad_header();
	for (size_t i = 0; i < digits; i++)
		size = size * 10 + (size_t)(s[i] - '0');
	h->size = size;
	h->rest = s + digits + 1;
	return 0;
}

/* ---- handing content over ----------------------------------------------- */

struct emitter {
	hooks_blob_fn fn;
	void *ctx;
	bool lfs_looked;
	char *lfs_objects; /* <LFS storage>/objects, or NULL if unknown */
};

static int emit(struct emitter *e, enum hooks_kind kind, const char *path, const char *oid, const unsigned char *d,
		size_t n)
{
	struct hooks_blob b = {.kind = kind, .path = path, .oid = oid, .data = d, .len = n, .binary = is_binary(d, n)};
	return e->fn(&b, e->ctx);
}

/* A local file's contents: mapped when it has a size (no heap for a large
 * file), else read into `g` (a file whose size the kernel does not know). */
struct content {
	const unsigned char *data;
	size_t len;
	void *map;
};

static int load_file(int fd, const char *shown, struct growbuf *g, struct content *c)
{
	struct stat st;
	memset(c, 0, sizeof *c);
	if (fstat(fd, &st) != 0)
		return latch_error(LATCH_OPERR, "cannot read '%s': %s", shown, strerror(errno));
	if (st.st_size > 0 && (uint64_t)st.st_size <= SIZE_MAX) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m != MAP_FAILED) {
			c->map = m;
			c->data = m;
			c->len = (size_t)st.st_size;
			return 0;
		}
	}
	g->len = 0;
	for (;;) {
		if (grow(g, g->len + 65536, true) != 0)
			return -1;
		ssize_t k = read(fd, g->p + g->len, g->cap - g->len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return latch_error(LATCH_OPERR, "cannot read '%s': %s", shown, strerror(errno));
		if (k == 0)
			break;
		g->len += (size_t)k;
	}
	c->data = g->p;
	c->len = g->len;
	return 0;
}

static void unload_file(struct content *c)
{
	if (c->map)
		munmap(c->map, c->len);
	memset(c, 0, sizeof *c);
}

/* The sha256 a Git LFS pointer (spec v1) names, into sha[65]. */
static bool lfs_pointer(const unsigned char *d, size_t n, char sha[OID_MAX + 1])
{
	static const char v1[] = "version https://git-lfs.github.com/spec/v1\n";
	static const char v0[] = "version https://hawser.github.com/spec/v1\n";
	static const char key[] = "\noid sha256:";
	if (n == 0 || n >= LFS_POINTER_MAX || d[n - 1] != '\n')
		return false;
	if (!(n > sizeof v1 - 1 && !memcmp(d, v1, sizeof v1 - 1)) &&
	    !(n > sizeof v0 - 1 && !memcmp(d, v0, sizeof v0 - 1)))
		return false;
	const unsigned char *k = memmem(d, n, key, sizeof key - 1);
	if (!k)
		return false;
	const char *h = (const char *)k + sizeof key - 1;
	if ((size_t)((const unsigned char *)h - d) + 65 > n || h[64] != '\n' || !hex_oid(h, 64))
		return false;
	memcpy(sha, h, 64);
	sha[64] = '\0';
	return true;
}

/* Where git-lfs keeps objects: lfs.storage (relative to the common git
 * directory, which is shared by linked worktrees), else <common>/lfs. */
static const char *lfs_objects(struct emitter *e)
{
	if (e->lfs_looked)
		return e->lfs_objects;
	e->lfs_looked = true;
	struct growbuf common = {0}, storage = {0};
	int st;
	char *dir_argv[] = {"git", NO_REPLACE, "rev-parse", "--git-common-dir", NULL};
	char *cfg_argv[] = {"git", NO_REPLACE, "config", "--get", "lfs.storage", NULL};
	if (hooks_git_capture(dir_argv, -1, &common, &st) == 0 && st == 0 && common.len > 1 &&
	    hooks_git_capture(cfg_argv, -1, &storage, &st) == 0) {
		char *c = (char *)common.p, *s = (char *)storage.p;
		c[strcspn(c, "\n")] = '\0';
		s[st == 0 ? strcspn(s, "\n") : 0] = '\0';
		const char *base = s[0] == '/' ? "" : c, *sep = s[0] == '/' ? "" : "/";
		const char *sub = s[0] ? s : "lfs";
		if (asprintf(&e->lfs_objects, "%s%s%s/objects", base, sep, sub) < 0)
			e->lfs_objects = NULL;
	}
	hooks_growbuf_free(&common);
	hooks_growbuf_free(&storage);
	return e->lfs_objects;
}

static int lfs_not_local(const char *path)
{
	char shown[512];
	text_escape(path, shown, sizeof shown);
	fprintf(stderr, "latch: warning: LFS object for '%s' is not local; not scanned\n", shown);
	return 0;
}

/* The local copy of the LFS object `sha`, scanned for the pointer at
 * `path`; a warning if there is none. */
static int emit_lfs_object(struct emitter *e, const char *path, const char *oid, const char *sha)
{
	const char *dir = lfs_objects(e);
	char *file = NULL;
	if (!dir || asprintf(&file, "%s/%.2s/%.2s/%s", dir, sha, sha + 2, sha) < 0)
		return lfs_not_local(path);
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		free(file);
		if (fd >= 0 || err == ENOENT || err == ELOOP || err == ENOTDIR)
			return lfs_not_local(path);
		return latch_error(LATCH_OPERR, "cannot read the LFS object of '%s': %s", path, strerror(err));
	}
	struct growbuf g = {0};
	struct content c;
	int rc = load_file(fd, file, &g, &c);
	close(fd);
	free(file);
	if (rc == 0) {
		rc = emit(e, HOOKS_LFS_OBJECT, path, oid, c.data, c.len);
		unload_file(&c);
	}
	hooks_growbuf_free(&g);
	return rc;
}

/* A blob from git: scanned as it is; an LFS pointer also stands for its
 * object, scanned after it. */
static int emit_blob(struct emitter *e, enum hooks_kind kind, const char *path, const char *oid, const unsigned char *d,
		     size_t n)
{
	int rc = emit(e, kind, path, oid, d, n);
	char sha[OID_MAX + 1];
	if (rc == 0 && kind == HOOKS_FILE && lfs_pointer(d, n, sha))
		rc = emit_lfs_object(e, path, oid, sha);
	return rc;
}

static void emitter_done(struct emitter *e)
{
	free(e->lfs_objects);
	e->lfs_objects = NULL;
}

/* ---- staged --------------------------------------------------------------- */

struct staged {
	char oid[OID_MAX + 1];
	enum hooks_kind kind;
	const char *path; /* into diff-index's output */
};

/* The tree a commit would be compared with: HEAD's, or the empty tree
 * (git's own name for it, right for SHA-1 and SHA-256 alike). */
static int base_tree(char tree[OID_MAX + 1])
{
	struct growbuf out = {0};
	int st, rc = -1;
	char *head[] = {"git", NO_REPLACE, "rev-parse", "-q", "--verify", "HEAD^{tree}", NULL};
	char *empty[] = {"git", NO_REPLACE, "hash-object", "-t", "tree", "/dev/null", NULL};
	if (hooks_git_capture(head, -1, &out, &st) != 0)
		goto out;
	if (st == 1) { /* no HEAD yet: every staged file is new */
		if (hooks_git_capture(empty, -1, &out, &st) != 0)
			goto out;
		if (st != 0) {
			latch_error(LATCH_OPERR, "git hash-object failed (status %d)", st);
			goto out;
		}
	} else if (st != 0) {
		latch_error(LATCH_OPERR, "git rev-parse failed (status %d)", st);
		goto out;
	}
	size_t n = strcspn((char *)out.p, "\n");
	if (!hex_oid((char *)out.p, n) || out.p[n] != '\n' || out.len != n + 1) {
		latch_error(LATCH_OPERR, "git rev-parse wrote something other than a tree's name");
		goto out;
	}
	memcpy(tree, out.p, n);
	tree[n] = '\0';
	rc = 0;
out:
	hooks_growbuf_free(&out);
	return rc;
}

static int bad_raw(void)
{
	return latch_error(LATCH_OPERR, "git diff-index wrote output latch cannot read");
}

/* diff-index -z --raw: ":<mode> <mode> <oid> <oid> <status>\0<path>\0",
 * and a second path for a copy or rename (should renames be on after
 * all). Fills `out` with what the commit would add. */
static int parse_raw(char *s, size_t n, struct staged **out, size_t *count)
{
	struct staged *v = NULL;
	size_t len = 0, cap = 0;
	char *end = s + n;
	*out = NULL;
	*count = 0;
	while (s < end) {
		/* ":" 6 " " 6 " " oid " " oid " " status NUL */
		char *nul = memchr(s, '\0', (size_t)(end - s));
		if (!nul || s[0] != ':' || nul - s < 16)
			goto bad;
		char *f[5];
		size_t nf = 0;
		for (char *p = s + 1; nf < 5; nf++) {
			f[nf] = p;
			char *sp = nf < 4 ? memchr(p, ' ', (size_t)(nul - p)) : nul;
			if (!sp)
				goto bad;
			*sp = '\0';
			p = sp + 1;
		}
		size_t oid_len = strlen(f[3]);
		if (strlen(f[0]) != 6 || strlen(f[1]) != 6 || !hex_oid(f[2], strlen(f[2])) || !hex_oid(f[3], oid_len) ||
		    strspn(f[0], "01234567") != 6 || strspn(f[1], "01234567") != 6 || !f[4][0])
			goto bad;
		char status = f[4][0];
		s = nul + 1;
		char *path = s;
		if (!(nul = memchr(s, '\0', (size_t)(end - s))) || nul == s)
			goto bad;
		s = nul + 1;
		if (status == 'C' || status == 'R') {
			path = s; /* the destination */
			if (!(nul = memchr(s, '\0', (size_t)(end - s))) || nul == s)
				goto bad;
			s = nul + 1;
		}
		/* Deleted or unmerged: nothing this commit adds. A gitlink's
		 * object is a commit in another repository. */
		if (!strcmp(f[1], "000000") || !strcmp(f[1], "160000"))
			continue;
		if (all_zeros(f[3])) {
			free(v);
			return latch_error(LATCH_OPERR, "git diff-index named no staged object for a path");
		}
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct staged *nv = realloc(v, ncap * sizeof *nv);
			if (!nv) {
				free(v);
				return latch_error(LATCH_OPERR, "cannot allocate the list of staged files");
			}
			v = nv;
			cap = ncap;
		}
		memcpy(v[len].oid, f[3], oid_len + 1);
		v[len].kind = !strcmp(f[1], "120000") ? HOOKS_SYMLINK : HOOKS_FILE;
		v[len].path = path;
		len++;
	}
	*out = v;
	*count = len;
	return 0;
bad:
	free(v);
	return bad_raw();
}

/* Read the staged blobs through one cat-file, each request "<oid> <i>" so
 * that %(rest) says which entry an answer is for. */
static int fetch_staged(const struct staged *v, size_t n, struct emitter *e)
{
	struct growbuf req = {0};
	for (size_t i = 0; i < n; i++)
		if (append(&req, "%s %zu\n", v[i].oid, i) != 0) {
			hooks_growbuf_free(&req);
			return -1;
		}
	int in = memfd_of((char *)req.p, req.len, "cat-file");
	hooks_growbuf_free(&req);
	if (in < 0)
		return -1;
	struct reader *r = calloc(1, sizeof *r);
	int p[2];
	if (!r || pipe2(p, O_CLOEXEC) != 0) {
		free(r);
		close(in);
		return latch_error(LATCH_OPERR, "cannot run git cat-file: %s", strerror(r ? errno : ENOMEM));
	}
	char *argv[] = {"git", NO_REPLACE, "cat-file", BATCH_FORMAT, NULL};
	pid_t pid;
	int rc = git_spawn(argv, in, p[1], &pid);
	close(in);
	close(p[1]);
	if (rc != 0) {
		close(p[0]);
		free(r);
		return -1;
	}
	r->fd = p[0];
	size_t seen = 0;
	int k;
	while (rc == 0 && (k = read_header(r)) == 1) {
		struct header h;
		if (parse_header(r, &h) != 0) {
			rc = -1;
			break;
		}
		char *end;
		errno = 0;
		unsigned long long i = strtoull(h.rest, &end, 10);
		if (h.missing) {
			rc = latch_error(LATCH_OPERR, "git cannot find the staged object %s", h.oid);
		} else if (errno || end == h.rest || *end || i != seen || i >= n || strcmp(h.oid, v[i].oid) != 0) {
			rc = bad_header();
		} else if (strcmp(h.type, "blob") != 0) {
			rc = latch_error(LATCH_OPERR, "the staged object %s is a %s, not a blob", h.oid, h.type);
		} else if (read_object(r, h.size) == 0) {
			rc = emit_blob(e, v[i].kind, v[i].path, v[i].oid, r->data.p, r->data.len);
			seen++;
		} else {
			rc = -1;
		}
	}
	if (rc == 0 && k < 0)
		rc = -1;
	close(p[0]);
	int st = 0;
	if (git_wait(pid, "cat-file", &st) != 0 && rc == 0)
		rc = -1;
	/* Stopped early, cat-file may have died of the closed pipe. */
	if (rc == 0 && st != 0)
		rc = latch_error(LATCH_OPERR, "git cat-file failed (status %d)", st);
	if (rc == 0 && seen != n)
		rc = latch_error(LATCH_OPERR, "git cat-file answered for %zu of %zu staged files", seen, n);
	hooks_growbuf_free(&r->line);
	hooks_growbuf_free(&r->data);
	free(r);
	return rc;
}

int hooks_staged(hooks_blob_fn fn, void *ctx)
{
	char base[OID_MAX + 1];
	if (base_tree(base) != 0)
		return -1;
	char *argv[] = {"git", NO_REPLACE, "diff-index", "--cached", "-z", "--raw", "--no-renames", base, "--", NULL};
	struct growbuf out = {0};
	int st;
	if (hooks_git_capture(argv, -1, &out, &st) != 0) {
		hooks_growbuf_free(&out);
		return -1;
	}
	if (st != 0) {
		hooks_growbuf_free(&out);
		return latch_error(LATCH_OPERR, "git diff-index failed (status %d)", st);
	}
	struct staged *v;
	size_t n;
	int rc = parse_raw((char *)out.p, out.len, &v, &n);
	if (rc == 0 && n > 0) {
		struct emitter e = {.fn = fn, .ctx = ctx};
		rc = fetch_staged(v, n, &e);
		emitter_done(&e);
	}
	free(v);
	hooks_growbuf_free(&out);
	return rc;
}

/* ---- pushes and ranges ---------------------------------------------------- */

/* A commit's or tag's text after its headers (the first empty line). */
static void message_of(const unsigned char *d, size_t n, const unsigned char **msg, size_t *len)
{
	size_t at = n; /* no empty line: no message */
	if (n > 0 && d[0] == '\n') {
		at = 1; /* no headers at all */
	} else if (n >= 2) {
		const unsigned char *m = memmem(d, n, "\n\n", 2);
		if (m)
			at = (size_t)(m - d) + 2;
	}
	*msg = d + at;
	*len = n - at;
}

/* A tag object's "tag <name>" header, copied; NULL if it has none. */
static char *tag_name(const unsigned char *d, size_t n)
{
	const unsigned char *p = d, *end = d + n;
	while (p < end && *p != '\n') {
		const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 4 && !memcmp(p, "tag ", 4))
			return strndup((const char *)p + 4, len - 4);
		if (!nl)
			break;
		p = nl + 1;
	}
	return NULL;
}

static int emit_object(struct emitter *e, const struct header *h, const unsigned char *d, size_t n)
{
	if (!strcmp(h->type, "blob"))
		return emit_blob(e, HOOKS_FILE, h->rest[0] ? h->rest : h->oid, h->oid, d, n);
	bool commit = !strcmp(h->type, "commit");
	if (!commit && strcmp(h->type, "tag") != 0)
		return 0; /* a tree: its entries come as objects of their own */
	const unsigned char *msg;
	size_t len;
	message_of(d, n, &msg, &len);
	char *name = commit ? NULL : tag_name(d, n);
	char *path = NULL;
	if (asprintf(&path, "%s %s", commit ? "commit" : "tag", name ? name : h->oid) < 0) {
		free(name);
		return latch_error(LATCH_OPERR, "cannot allocate a message's name");
	}
	free(name);
	int rc = emit(e, HOOKS_MESSAGE, path, h->oid, msg, len);
	free(path);
	return rc;
}

/* rev-list (`revs`, stdin from `in`) piped into cat-file, each object
 * handed to `e`. */
static int walk(char *const revs[], int in, struct emitter *e)
{
	int p[2], q[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return latch_error(LATCH_OPERR, "cannot run git rev-list: %s", strerror(errno));
	if (pipe2(q, O_CLOEXEC) != 0) {
		int err = errno;
		close(p[0]);
		close(p[1]);
		return latch_error(LATCH_OPERR, "cannot run git rev-list: %s", strerror(err));
	}
	char *cat[] = {"git", NO_REPLACE, "cat-file", BATCH_FORMAT, NULL};
	pid_t rl, cf = -1;
	int rc = git_spawn(revs, in, p[1], &rl);
	close(p[1]);
	if (rc == 0 && (rc = git_spawn(cat, p[0], q[1], &cf)) != 0) {
		/* rev-list dies of the closed pipe. */
		close(p[0]);
		int st;
		git_wait(rl, "rev-list", &st);
		close(q[0]);
		close(q[1]);
		return -1;
	}
	close(p[0]);
	close(q[1]);
	if (rc != 0) {
		close(q[0]);
		return -1;
	}
	struct reader *r = calloc(1, sizeof *r);
	if (!r)
		rc = latch_error(LATCH_OPERR, "cannot allocate a reader for git cat-file");
	else
		r->fd = q[0];
	int k = 0;
	while (rc == 0 && (k = read_header(r)) == 1) {
		struct header h;
		if (parse_header(r, &h) != 0)
			rc = -1;
		else if (h.missing)
			rc = latch_error(LATCH_OPERR, "git cannot find the object %s", h.oid);
		else if (read_object(r, h.size) != 0)
			rc = -1;
		else
			rc = emit_object(e, &h, r->data.p, r->data.len);
	}
	if (rc == 0 && k < 0)
		rc = -1;
	/* Stopped early: closing the pipe ends cat-file, then rev-list. */
	close(q[0]);
	int st_cf = 0, st_rl = 0;
	bool waited = git_wait(cf, "cat-file", &st_cf) == 0;
	waited = git_wait(rl, "rev-list", &st_rl) == 0 && waited;
	if (rc == 0 && !waited)
		rc = -1;
	else if (rc == 0 && st_rl != 0)
		rc = latch_error(LATCH_OPERR, "git rev-list failed (status %d)", st_rl);
	else if (rc == 0 && st_cf != 0)
		rc = latch_error(LATCH_OPERR, "git cat-file failed (status %d)", st_cf);
	if (r) {
		hooks_growbuf_free(&r->line);
		hooks_growbuf_free(&r->data);
		free(r);
	}
	return rc;
}

/* A remote's name, which --remotes can take as it is; a URL or a path
 * (with ':', '\\', "..", "//", a glob character) is not one. */
static bool remote_name(const char *s)
{
	if (!s[0] || s[0] == '-' || s[0] == '.' || s[0] == '/' || strlen(s) > 255)
		return false;
	if (strstr(s, "..") || strstr(s, "//") || s[strlen(s) - 1] == '/')
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_' || *p == '-' || *p == '/'))
			return false;
	return true;
}

/* Of the remote oids, "^<oid>\n" for each this repository has, appended
 * to `revs`: rev-list would fail on one it has never seen (someone else
 * pushed it). */
static int known_remote_oids(const struct hooks_push_ref *refs, size_t n, struct growbuf *revs)
{
	struct growbuf req = {0}, out = {0};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!all_zeros(refs[i].local_oid) && !all_zeros(refs[i].remote_oid))
			rc = append(&req, "%s\n", refs[i].remote_oid);
	if (rc != 0 || req.len == 0) {
		hooks_growbuf_free(&req);
		return rc;
	}
	int in = memfd_of((char *)req.p, req.len, "cat-file");
	hooks_growbuf_free(&req);
	if (in < 0)
		return -1;
	char *argv[] = {"git", NO_REPLACE, "cat-file", "--batch-check=%(objectname)", NULL};
	int st;
	rc = hooks_git_capture(argv, in, &out, &st);
	close(in);
	if (rc == 0 && st != 0)
		rc = latch_error(LATCH_OPERR, "git cat-file failed (status %d)", st);
	for (char *line = (char *)out.p; rc == 0 && line && *line;) {
		char *nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		if (hex_oid(line, strlen(line)))
			rc = append(revs, "^%s\n", line);
		line = nl + 1;
	}
	hooks_growbuf_free(&out);
	return rc;
}

int hooks_push(const char *remote, const struct hooks_push_ref *refs, size_t n, hooks_blob_fn fn, void *ctx)
{
	struct growbuf revs = {0};
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		const struct hooks_push_ref *x = &refs[i];
		size_t l = strlen(x->local_oid);
		if (!hex_oid(x->local_oid, l) || !hex_oid(x->remote_oid, strlen(x->remote_oid)) ||
		    strlen(x->remote_oid) != l || (len && l != len)) {
			hooks_growbuf_free(&revs);
			return latch_error(LATCH_USAGE, "pre-push ref %zu does not name objects of one hash", i + 1);
		}
		len = l;
		if (!all_zeros(x->local_oid) && append(&revs, "%s\n", x->local_oid) != 0) {
			hooks_growbuf_free(&revs);
			return -1;
		}
	}
	if (revs.len == 0) /* deletions only, or nothing */
		return 0;
	if (known_remote_oids(refs, n, &revs) != 0) {
		hooks_growbuf_free(&revs);
		return -1;
	}
	int in = memfd_of((char *)revs.p, revs.len, "rev-list");
	hooks_growbuf_free(&revs);
	if (in < 0)
		return -1;
	char *remotes = NULL;
	if (remote && remote_name(remote) && asprintf(&remotes, "--remotes=%s", remote) < 0) {
		close(in);
		return latch_error(LATCH_OPERR, "cannot allocate git's arguments");
	}
	/* Revisions on stdin ("^" marks the remote's), not in argv: a
	 * mirror push may name thousands. */
	char *argv[] = {"git", NO_REPLACE, "rev-list", "--objects", "--stdin", remotes ? "--not" : NULL, remotes, NULL};
	struct emitter e = {.fn = fn, .ctx = ctx};
	int rc = walk(argv, in, &e);
	emitter_done(&e);
	close(in);
	free(remotes);
	return rc;
}

int hooks_range(const char *range, hooks_blob_fn fn, void *ctx)
{
	if (!range[0] || range[0] == '-') {
		char shown[128];
		text_escape(range, shown, sizeof shown);
		return latch_error(LATCH_USAGE, "'%s' is not a revision range", shown);
	}
	char *argv[] = {"git", NO_REPLACE, "rev-list", "--objects", "--end-of-options", (char *)range, "--", NULL};
	struct emitter e = {.fn = fn, .ctx = ctx};
	int rc = walk(argv, -1, &e);
	emitter_done(&e);
	return rc;
}

/* ---- the pre-push input --------------------------------------------------- */

void hooks_push_free(struct hooks_push_ref *refs, size_t count)
{
	if (!refs)
		return;
	for (size_t i = 0; i < count; i++) {
		free(refs[i].local_ref);
		free(refs[i].local_oid);
		free(refs[i].remote_ref);
		free(refs[i].remote_oid);
	}
	free(refs);
}

/* Report line `no` (at `line`, `n` bytes) as malformed, quoting at most
 * QUOTE_MAX bytes of it with anything but printable ASCII as \xNN. */
static int bad_line(size_t no, const char *line, size_t n, const char *why)
{
	char q[QUOTE_MAX * 4 + 4];
	size_t o = 0, take = n < QUOTE_MAX ? n : QUOTE_MAX;
	for (size_t i = 0; i < take; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c >= 0x20 && c < 0x7f)
			q[o++] = (char)c;
		else
			o += (size_t)snprintf(q + o, sizeof q - o, "\\x%02x", c);
	}
	q[o] = '\0';
	return latch_error(LATCH_USAGE,
			   "pre-push input line %zu is not '<local ref> <local oid> <remote ref> <remote oid>' (%s): "
			   "'%s'%s",
			   no, why, q, n > take ? "..." : "");
}

static bool ref_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
			return false;
	return true;
}

int hooks_push_parse(const char *in, size_t n, struct hooks_push_ref **refs, size_t *count)
{
	struct hooks_push_ref *v = NULL;
	size_t len = 0, cap = 0, oid_len = 0, no = 0;
	*refs = NULL;
	*count = 0;
	for (size_t at = 0; at < n;) {
		const char *line = in + at;
		const char *nl = memchr(line, '\n', n - at);
		size_t ll = nl ? (size_t)(nl - line) : n - at;
		no++;
		at += ll + 1;
		const char *why = NULL;
		/* Four fields, single spaces between them. */
		const char *f[4];
		size_t fl[4], nf = 0;
		for (size_t i = 0, start = 0; i <= ll && nf <= 4; i++) {
			if (i == ll || line[i] == ' ') {
				if (nf < 4) {
					f[nf] = line + start;
					fl[nf] = i - start;
				}
				nf++;
				start = i + 1;
			}
		}
		if (!nl)
			why = "it does not end with a newline";
		else if (nf != 4)
			why = "not four fields separated by spaces";
		else if (!ref_ok(f[0], fl[0]) || !ref_ok(f[2], fl[2]))
			why = "a ref is empty or holds a control character";
		else if (!hex_oid(f[1], fl[1]) || !hex_oid(f[3], fl[3]))
			why = "an object name is not 40 or 64 lowercase hex digits";
		else if (fl[1] != fl[3] || (oid_len && fl[1] != oid_len))
			why = "its object names differ in length from the others";
		if (why) {
			hooks_push_free(v, len);
			return bad_line(no, line, ll, why);
		}
		oid_len = fl[1];
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct hooks_push_ref *nv = realloc(v, ncap * sizeof *nv);
			if (!nv) {
				hooks_push_free(v, len);
				return latch_error(LATCH_OPERR, "cannot allocate the pre-push refs");
			}
			v = nv;
			cap = ncap;
		}
		struct hooks_push_ref *r = &v[len];
		r->local_ref = strndup(f[0], fl[0]);
		r->local_oid = strndup(f[1], fl[1]);
		r->remote_ref = strndup(f[2], fl[2]);
		r->remote_oid = strndup(f[3], fl[3]);
		len++;
		if (!r->local_ref || !r->local_oid || !r->remote_ref || !r->remote_oid) {
			hooks_push_free(v, len);
			return latch_error(LATCH_OPERR, "cannot allocate the pre-push refs");
		}
	}
	*refs = v;
	*count = len;
	return 0;
}

/* ---- files on disk -------------------------------------------------------- */

struct disk {
	struct emitter *e;
	struct growbuf buf;
};

static int scan_at(struct disk *d, int dirfd, const char *name, const char *shown);

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's entries in name order (skipping ".", ".." and ".git"),
 * each scanned under `shown`/name. */
static int scan_dir(struct disk *d, int fd, const char *shown)
{
	int dup_fd = dup(fd);
	DIR *dir = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!dir) {
		if (dup_fd >= 0)
			close(dup_fd);
		return latch_error(LATCH_OPERR, "cannot read '%s': %s", shown, strerror(errno));
	}
	char **names = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(dir);
		if (!de) {
			if (errno)
				rc = latch_error(LATCH_OPERR, "cannot read '%s': %s", shown, strerror(errno));
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, ".git"))
			continue;
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **nv = realloc(names, ncap * sizeof *nv);
			if (!nv) {
				rc = latch_error(LATCH_OPERR, "cannot allocate the entries of '%s'", shown);
				break;
			}
			names = nv;
			cap = ncap;
		}
		if (!(names[len] = strdup(de->d_name))) {
			rc = latch_error(LATCH_OPERR, "cannot allocate the entries of '%s'", shown);
			break;
		}
		len++;
	}
	closedir(dir);
	if (len)
		qsort(names, len, sizeof *names, cmp_names);
	size_t sl = strlen(shown);
	bool slash = sl > 0 && shown[sl - 1] == '/';
	for (size_t i = 0; i < len && rc == 0; i++) {
		char *child = NULL;
		if (asprintf(&child, "%s%s%s", shown, slash ? "" : "/", names[i]) < 0) {
			rc = latch_error(LATCH_OPERR, "cannot allocate a path under '%s'", shown);
			break;
		}
		rc = scan_at(d, fd, names[i], child);
		free(child);
	}
	for (size_t i = 0; i < len; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int scan_at(struct disk *d, int dirfd, const char *name, const char *shown)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return latch_error(LATCH_OPERR, "cannot read '%s': %s", shown, strerror(errno));
	if (S_ISLNK(st.st_mode)) {
		size_t want = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
		for (;;) {
			if (grow(&d->buf, want, false) != 0)
				return -1;
			ssize_t k = readlinkat(dirfd, name, (char *)d->buf.p, d->buf.cap);
			if (k < 0)
				return latch_error(LATCH_OPERR, "cannot read the link '%s': %s", shown,
						   strerror(errno));
			if ((size_t)k < d->buf.cap)
				return emit(d->e, HOOKS_SYMLINK, shown, NULL, d->buf.p, (size_t)k);
			want = d->buf.cap * 2;
		}
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		char esc[512];
		text_escape(shown, esc, sizeof esc);
		fprintf(stderr, "latch: warning: '%s' is not a regular file, directory or symlink; not scanned\n", esc);
		return 0;
	}
	/* O_NOFOLLOW and the type checked again on the descriptor: the
	 * entry may have been swapped since fstatat. O_NONBLOCK so a FIFO
	 * swapped in cannot hang the open. */
	int flags = O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | (S_ISDIR(st.st_mode) ? O_DIRECTORY : O_NONBLOCK);
	int fd = openat(dirfd, name, flags);
	if (fd < 0)
		return latch_error(LATCH_OPERR, "cannot read '%s': %s", shown, strerror(errno));
	struct stat st2;
	int rc;
	if (fstat(fd, &st2) != 0 || (st2.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
		rc = latch_error(LATCH_OPERR, "cannot read '%s': it changed while being scanned", shown);
	} else if (S_ISDIR(st2.st_mode)) {
		rc = scan_dir(d, fd, shown);
	} else {
		struct content c;
		rc = load_file(fd, shown, &d->buf, &c);
		if (rc == 0) {
			rc = emit(d->e, HOOKS_FILE, shown, NULL, c.data, c.len);
			unload_file(&c);
		}
	}
	close(fd);
	return rc;
}

int hooks_paths(char *const *paths, size_t n, hooks_blob_fn fn, void *ctx)
{
	struct emitter e = {.fn = fn, .ctx = ctx};
	struct disk d = {.e = &e};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = scan_at(&d, AT_FDCWD, paths[i], paths[i]);
	hooks_growbuf_free(&d.buf);
	emitter_done(&e);
	return rc;
}
