/* References: which variable gets which secret, and the command to run. */
#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool var_valid(const char *s, size_t n)
{
	if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return false;
	return true;
}

/* "VAR=latch://NAME": 1 a reference, 0 not a reference (e.g. a plain
 * variable), -1 a malformed or refused reference (reported, after
 * `where`: "" or "FILE:LINE: "). */
static int parse_ref(const char *spec, size_t len, const char *where, char **var, char **name)
{
	const char *eq = memchr(spec, '=', len);
	if (!eq)
		return 0;
	size_t vlen = (size_t)(eq - spec), slen = strlen(RUN_SCHEME);
	const char *value = eq + 1;
	size_t rest = len - vlen - 1;
	if (rest < slen || strncmp(value, RUN_SCHEME, slen) != 0)
		return 0;
	if (!var_valid(spec, vlen))
		return latch_error(LATCH_USAGE, "%sinvalid variable name in reference '%.*s'", where, (int)vlen, spec);
	/* The value would reach ld.so, a shell's start-up or an
	 * interpreter's, which print it or hand it to the agent's code. */
	if (run_env_unsafe(spec, vlen))
		return latch_error(
			LATCH_USAGE,
			"%sa reference cannot target '%.*s': loader, shell and interpreter start-up variables never reach the child",
			where, (int)vlen, spec);
	*name = strndup(value + slen, rest - slen);
	*var = strndup(spec, vlen);
	if (!*name || !*var || !latch_name_valid(*name)) {
		free(*name);
		free(*var);
		return latch_error(LATCH_USAGE, "%sinvalid secret name in reference for %.*s", where, (int)vlen, spec);
	}
	return 1;
}

static int add(struct run_plan *p, char *var, char *name, bool as_file)
{
	/* A later reference to the same variable replaces the earlier one. */
	for (size_t i = 0; i < p->n_refs; i++)
		if (!strcmp(p->refs[i].var, var)) {
			free(p->refs[i].var);
			free(p->refs[i].name);
			p->refs[i] = (struct run_ref){var, name, as_file, 0};
			return 0;
		}
	if (p->n_refs == RUN_MAX_REFS) {
		free(var);
		free(name);
		return latch_error(LATCH_USAGE, "more than %d references", RUN_MAX_REFS);
	}
	p->refs[p->n_refs++] = (struct run_ref){var, name, as_file, 0};
	return 0;
}

int run_add_ref(struct run_plan *p, const char *spec, bool as_file)
{
	char *var, *name;
	int rc = parse_ref(spec, strlen(spec), "", &var, &name);
	if (rc == 0)
		return latch_error(LATCH_USAGE, "'%s' is not a reference: use VAR=latch://NAME", spec);
	return rc < 0 ? -1 : add(p, var, name, as_file);
}

int run_add_environ(struct run_plan *p, char *const *envp)
{
	for (; envp && *envp; envp++) {
		char *var, *name;
		int rc = parse_ref(*envp, strlen(*envp), "", &var, &name);
		if (rc < 0 || (rc == 1 && add(p, var, name, false) != 0))
			return -1;
	}
	return 0;
}

int run_add_env_file(struct run_plan *p, const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return latch_error(LATCH_USAGE, "cannot open env file '%s': %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, rc = 0;
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (n > 0 &&
		       (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		if (!strncmp(s, "export ", 7))
			s += 7;
		char *var, *name, where[PATH_MAX + 32];
		snprintf(where, sizeof where, "%s:%d: ", path, lineno);
		int r = parse_ref(s, strlen(s), where, &var, &name);
		if (r == 0)
			rc = latch_error(LATCH_USAGE,
					 "%snot a reference (only VAR=latch://NAME lines belong in an env file)",
					 where);
		else if (r < 0)
			rc = -1; /* reported, with the line */
		else
			rc = add(p, var, name, false);
	}
	free(line);
	fclose(f);
	return rc;
}

size_t run_secrets(struct run_plan *p)
{
	p->n_secrets = 0;
	for (size_t i = 0; i < p->n_refs; i++) {
		size_t j = 0;
		while (j < p->n_secrets && strcmp(p->secrets[j].name, p->refs[i].name) != 0)
			j++;
		if (j == p->n_secrets)
			p->secrets[p->n_secrets++] = (struct run_secret){.name = p->refs[i].name};
		p->refs[i].secret = j;
	}
	return p->n_secrets;
}

void run_values_free(struct run_plan *p)
{
	secbuf_free(p->store);
	p->store = NULL;
	for (size_t i = 0; i < p->n_secrets; i++) {
		secbuf_free(p->secrets[i].own);
		p->secrets[i].own = NULL;
		p->secrets[i].value = (struct secbuf){NULL, 0, 0};
	}
}

static int resolved(const char *path, char out[PATH_MAX])
{
	struct stat st;
	if (stat(path, &st) != 0)
		return errno == ENOENT || errno == ENOTDIR ? 127 : 126;
	if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0)
		return 126;
	if (!realpath(path, out))
		return 126;
	return 0;
}

int run_resolve(const char *cmd, char out[PATH_MAX])
{
	int rc = 127;
	if (cmd[0] == '\0') {
		rc = 127;
	} else if (strchr(cmd, '/')) {
		rc = resolved(cmd, out);
	} else {
		const char *path = getenv("PATH");
		if (!path || !*path)
			path = "/usr/local/bin:/usr/bin:/bin";
		char buf[PATH_MAX];
		for (const char *p = path; rc != 0;) {
			const char *end = strchr(p, ':');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			if (snprintf(buf, sizeof buf, "%.*s%s%s", (int)len, p, len ? "/" : "", cmd) < (int)sizeof buf) {
				int r = resolved(buf, out);
				/* Like execvp: a later match beats an unusable one. */
				if (r == 0 || (r == 126 && rc == 127))
					rc = r;
			}
			if (!end)
				break;
			p = end + 1;
		}
	}
	if (rc == 127)
		latch_error(LATCH_USAGE, "%s: command not found", cmd);
	else if (rc == 126)
		latch_error(LATCH_USAGE, "%s: not an executable file", cmd);
	return rc;
}

void run_plan_free(struct run_plan *p)
{
	run_values_free(p);
	p->n_secrets = 0;
	for (size_t i = 0; i < p->n_refs; i++) {
		free(p->refs[i].var);
		free(p->refs[i].name);
	}
	p->n_refs = 0;
}
