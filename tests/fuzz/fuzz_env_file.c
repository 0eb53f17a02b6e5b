/* Fuzz target: run_add_env_file (run/refs.c), the parser of --env-file,
 * which reads a file the agent may have written. The input is the file
 * (a memory file, opened by its /proc/self/fd path). The result is
 * compared with an independent model of the format:
 *   - lines end at '\n'; each loses trailing '\n', '\r', ' ', '\t', then
 *     ends at its first NUL byte (a C string), then loses leading ' ',
 *     '\t'; an empty line or one starting with '#' is skipped; "export "
 *     is dropped;
 *   - every other line is VAR=latch://NAME, VAR [A-Za-z_][A-Za-z0-9_]*
 *     and not a variable that no child gets (run_env_unsafe), NAME
 *     [A-Za-z0-9][A-Za-z0-9_./-]{0,127}; anything else fails the file;
 *   - a later line for the same VAR replaces the earlier; more than 64
 *     variables fail.
 * On success the plan must hold exactly the model's references, in
 * order; on failure, LATCH_USAGE. Nothing may leak. */
#include "fuzz.h"

#include "../../run/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_env_file: %s\n", what);
	abort();
}

struct model_ref {
	char *var;
	char *name;
};

static void model_free(struct model_ref *refs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(refs[i].var);
		free(refs[i].name);
	}
}

static bool var_ok(const char *s, size_t n)
{
	if (n == 0 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static bool name_ok(const char *s, size_t n)
{
	static const char first[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static const char rest[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-";
	if (n == 0 || n > 128 || !memchr(first, s[0], sizeof first - 1))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!s[i] || !memchr(rest, s[i], sizeof rest - 1))
			return false;
	return true;
}

/* The model: 1 the file is accepted with refs[0..*n), 0 refused. */
static int model(const uint8_t *data, size_t size, struct model_ref *refs, size_t *n)
{
	*n = 0;
	size_t at = 0;
	while (at < size) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		size_t len = nl ? (size_t)(nl - (data + at)) : size - at;
		char *line = malloc(len + 1);
		if (!line)
			fail("out of memory");
		memcpy(line, data + at, len);
		line[len] = '\0';
		at += len + (nl ? 1 : 0);
		while (len > 0 && strchr("\r \t", line[len - 1]) && line[len - 1])
			line[--len] = '\0';
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		int ok = 1;
		if (*s && *s != '#') {
			if (!strncmp(s, "export ", 7))
				s += 7;
			char *eq = strchr(s, '=');
			size_t vlen = eq ? (size_t)(eq - s) : 0;
			const char *name = eq ? eq + 1 + strlen("latch://") : NULL;
			if (!eq || strncmp(eq + 1, "latch://", 8) != 0 || !var_ok(s, vlen) || run_env_unsafe(s, vlen) ||
			    !name_ok(name, strlen(name))) {
				ok = 0;
			} else {
				size_t i = 0;
				while (i < *n && !(strlen(refs[i].var) == vlen && !memcmp(refs[i].var, s, vlen)))
					i++;
				if (i == *n && *n == RUN_MAX_REFS) {
					ok = 0;
				} else {
					if (i == *n) {
						(*n)++;
					} else {
						free(refs[i].var);
						free(refs[i].name);
					}
					refs[i].var = strndup(s, vlen);
					refs[i].name = strdup(name);
					if (!refs[i].var || !refs[i].name)
						fail("out of memory");
				}
			}
		}
		free(line);
		if (!ok) {
			model_free(refs, *n);
			*n = 0;
			return 0;
		}
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static struct model_ref want[RUN_MAX_REFS];
	if (!ready) {
		latch_error_quiet(true);
		ready = true;
	}
	int fd = memfd_create("fuzz-env-file", MFD_CLOEXEC);
	if (fd < 0)
		fail("cannot create a memory file");
	size_t off = 0;
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w <= 0)
			fail("cannot write the memory file");
		off += (size_t)w;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	struct run_plan *p = calloc(1, sizeof *p);
	if (!p)
		fail("out of memory");
	size_t n_want = 0;
	int accepted = model(data, size, want, &n_want);
	int rc = run_add_env_file(p, path);
	if (accepted ? rc != 0 : rc != -1)
		fail(accepted ? "a file the model accepts was refused" : "a file the model refuses was accepted");
	if (rc != 0 && latch_last_status() != LATCH_USAGE)
		fail("a refusal that is not LATCH_USAGE");
	if (rc == 0) {
		if (p->n_refs != n_want)
			fail("not the model's number of references");
		for (size_t i = 0; i < n_want; i++)
			if (strcmp(p->refs[i].var, want[i].var) != 0 || strcmp(p->refs[i].name, want[i].name) != 0 ||
			    p->refs[i].as_file)
				fail("not the model's references");
	}
	model_free(want, n_want);
	run_plan_free(p);
	free(p);
	close(fd);
	return 0;
}
