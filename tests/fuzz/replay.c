/* Replay driver: runs a fuzz target's LLVMFuzzerTestOneInput over every
 * regular file of a corpus directory, in name order, without libFuzzer,
 * and reports in TAP ("1..N", then "ok I - FILE"). A crash or a sanitizer
 * report aborts the process; tests/run.sh counts that as a failure.
 *
 *   build/fuzz-replay/NAME DIR|FILE...
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct list {
	char **paths;
	size_t n, cap;
};

static void die(const char *what, const char *path, int e)
{
	/* TAP: a harness stops at "Bail out!"; the exit status says failure. */
	printf("Bail out! cannot %s '%s': %s\n", what, path, strerror(e));
	exit(2);
}

static void add(struct list *l, const char *path)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->paths = realloc(l->paths, l->cap * sizeof *l->paths);
		if (!l->paths)
			die("allocate a list for", path, ENOMEM);
	}
	if (!(l->paths[l->n++] = strdup(path)))
		die("allocate a list for", path, ENOMEM);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file directly in `dir` (dot files included), sorted. */
static void add_dir(struct list *l, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		die("open directory", dir, errno);
	size_t first = l->n;
	struct dirent *e;
	char path[PATH_MAX];
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
			die("use", e->d_name, ENAMETOOLONG);
		struct stat st;
		if (stat(path, &st) != 0)
			die("stat", path, errno);
		if (S_ISREG(st.st_mode))
			add(l, path);
	}
	closedir(d);
	qsort(l->paths + first, l->n - first, sizeof *l->paths, by_name);
}

/* The whole file in a buffer of exactly its size, so that ASan sees any
 * read past the end of the input. */
static uint8_t *slurp(const char *path, size_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		die("open", path, errno);
	size_t n = (size_t)st.st_size;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		die("read", path, ENOMEM);
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read", path, errno);
		if (r == 0)
			die("read", path, EIO); /* shrank while we read it */
		got += (size_t)r;
	}
	close(fd);
	*size = n;
	return buf;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
		return 2;
	}
	/* Line-buffered, so a crash report follows the last "ok" in the log. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct list l = {NULL, 0, 0};
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0)
			die("use", argv[i], errno);
		if (S_ISDIR(st.st_mode))
			add_dir(&l, argv[i]);
		else
			add(&l, argv[i]);
	}
	printf("1..%zu\n", l.n);
	for (size_t i = 0; i < l.n; i++) {
		size_t size;
		uint8_t *data = slurp(l.paths[i], &size);
		printf("# %s (%zu bytes)\n", l.paths[i], size);
		LLVMFuzzerTestOneInput(data, size);
		free(data);
		printf("ok %zu - %s\n", i + 1, l.paths[i]);
		free(l.paths[i]);
	}
	free(l.paths);
	return 0;
}
