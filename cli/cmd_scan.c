/* latch scan: find managed values, in any common encoding, in what a
 * commit or a push would add, or in files (docs/scanning.md). Needs no
 * passphrase: it reads the scan index (hooks/index.c); --unlock also
 * finds the values too weak to be fingerprinted. */
#include "cli.h"

#include "../audit/audit.h"
#include "../hooks/hooks.h"
#include "../match/match.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char usage_scan[] =
	"usage: latch scan [--staged | --push REMOTE [URL] | --range A..B | --message FILE | PATH...]\n"
	"                  [--json | --sarif] [--unlock [--passphrase-fd N]]\n"
	"       latch scan allow NAME PATH | disallow NAME PATH [--passphrase-fd N]\n"
	"       latch scan allowed\n"
	"\n"
	"Look for the values latch manages, raw or encoded (base64 at any offset\n"
	"and wrapped at any width, hex, percent, JSON, shell and YAML quoting,\n"
	"UTF-16), in:\n"
	"  --staged          what 'git commit' would record (the index, or\n"
	"                    GIT_INDEX_FILE), every file, whatever .gitattributes say\n"
	"  --push REMOTE     what a push would send that REMOTE lacks: the pre-push\n"
	"                    hook's stdin lines; blobs, commit and tag messages\n"
	"  --range A..B      the objects of 'git rev-list --objects A..B'\n"
	"  --message FILE    a commit message (the commit-msg hook)\n"
	"  PATH...           files and directories on disk\n"
	"\n"
	"Needs no passphrase and no plaintext: it checks keyed fingerprints that\n"
	"'latch set' stored. Values too weak to fingerprint safely (see 'latch\n"
	"status') are found only with --unlock, which asks for the passphrase; a\n"
	"scan without it says how many it left out.\n"
	"\n"
	"Findings go to stderr as 'path:line: NAME (encoding)', never the value.\n"
	"A finding of NAME in exactly PATH is not reported once 'latch scan allow\n"
	"NAME PATH' (the passphrase, and an audit record) says it is intended;\n"
	"'allowed' lists those pairs. No comment in a file can silence a finding.\n"
	"(A file to scan named 'allow', 'disallow' or 'allowed': write ./allow.)\n"
	"  --json      print the findings as a JSON array on stdout\n"
	"  --sarif     print them as SARIF 2.1.0 on stdout (for code-scanning uploads)\n"
	"  -h, --help  show this help\n"
	"\n"
	"Exit status: 0 nothing found, 1 found (a hook then stops the commit or\n"
	"push), 2 usage, 3 error, 4 wrong passphrase (--unlock).\n";

struct finding {
	char *path;
	char *oid;
	size_t line;
	const char *name;
	const char *encoding;
};

struct scan {
	struct hooks_index *ix;
	struct match_set *plain; /* --unlock: every form of every value */
	char **plain_names;      /* id -> name for the plain set: plain_names[id / MATCH_N_ENCODINGS] */
	size_t n_plain;
	struct finding *f;
	size_t n, cap;
	const struct hooks_blob *blob; /* during the callbacks */
	const struct match_unwrapped *unwrapped;
	struct allowed {
		char *name, *path;
	} * allow; /* the allow-list, by name */
	size_t n_allow;
	size_t n_allowed; /* findings it silenced */
};

static size_t line_of(const unsigned char *p, size_t off)
{
	size_t line = 1;
	for (const unsigned char *q = p; (q = memchr(q, '\n', (size_t)(p + off - q))); q++)
		line++;
	return line;
}

/* Record a finding once per (path, line, secret, encoding). */
static int add(struct scan *s, size_t off, const char *name, const char *encoding)
{
	if (s->unwrapped)
		off = match_unwrapped_offset(s->unwrapped, off);
	size_t line = line_of(s->blob->data, off);
	for (size_t i = 0; i < s->n_allow; i++)
		if (!strcmp(s->allow[i].name, name) && !strcmp(s->allow[i].path, s->blob->path)) {
			s->n_allowed++;
			return 0;
		}
	for (size_t i = 0; i < s->n; i++)
		if (s->f[i].line == line && !strcmp(s->f[i].name, name) && s->f[i].encoding == encoding &&
		    !strcmp(s->f[i].path, s->blob->path))
			return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct finding *grown = realloc(s->f, cap * sizeof *grown);
		if (!grown)
			return latch_error(LATCH_OPERR, "out of memory");
		s->f = grown;
		s->cap = cap;
	}
	struct finding *f = &s->f[s->n];
	f->path = strdup(s->blob->path);
	f->oid = s->blob->oid ? strdup(s->blob->oid) : NULL;
	if (!f->path || (s->blob->oid && !f->oid)) {
		free(f->path);
		free(f->oid);
		return latch_error(LATCH_OPERR, "out of memory");
	}
	f->line = line;
	f->name = name;
	f->encoding = encoding;
	s->n++;
	return 0;
}

static int found_fp(const struct hooks_finding *hf, void *ctx)
{
	return add(ctx, hf->offset, hf->name, hf->encoding);
}

static int found_plain(uint32_t id, size_t start, size_t end, void *ctx)
{
	(void)end;
	struct scan *s = ctx;
	return add(s, start, s->plain_names[id / MATCH_N_ENCODINGS],
		   match_encoding_name((enum match_encoding)(id % MATCH_N_ENCODINGS)));
}

static int scan_text(struct scan *s, const unsigned char *p, size_t n)
{
	if (s->ix && hooks_index_scan(s->ix, p, n, found_fp, s) != 0)
		return -1;
	if (s->plain && match_set_scan(s->plain, p, n, found_plain, s) != 0)
		return -1;
	return 0;
}

/* Each blob twice when it holds base64 broken into lines: as it is, and
 * with those line breaks removed (a value inside wrapped base64). */
static int scan_blob(const struct hooks_blob *b, void *ctx)
{
	struct scan *s = ctx;
	s->blob = b;
	s->unwrapped = NULL;
	if (scan_text(s, b->data, b->len) != 0)
		return -1;
	struct match_unwrapped u;
	int rc = match_unwrap_base64(b->data, b->len, &u);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		s->unwrapped = &u;
		rc = scan_text(s, u.text, u.len);
		s->unwrapped = NULL;
		match_unwrapped_free(&u);
	}
	return rc < 0 ? -1 : 0; /* 1: nothing was joined */
}

/* --unlock: every value, read (and recorded as a "scan" read) with the
 * passphrase, and all its forms in one pattern set. */
struct plain_ctx {
	const char **names;
	size_t n, cap;
};

static int collect_name(int64_t id, int64_t version, const char *name, void *ctx)
{
	(void)id;
	(void)version;
	struct plain_ctx *c = ctx;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		const char **grown = realloc(c->names, cap * sizeof *grown);
		if (!grown)
			return latch_error(LATCH_OPERR, "out of memory");
		c->names = grown;
		c->cap = cap;
	}
	if (!(c->names[c->n] = strdup(name)))
		return latch_error(LATCH_OPERR, "out of memory");
	c->n++;
	return 0;
}

static int build_plain(struct vault *v, struct scan *s)
{
	struct plain_ctx c = {0};
	if (vault_rows(v, collect_name, &c) != 0)
		return -1;
	s->plain_names = (char **)c.names;
	s->n_plain = c.n;
	if (c.n == 0)
		return 0;
	struct secbuf **values = calloc(c.n, sizeof *values);
	if (!values || !(s->plain = match_set_new())) {
		free(values);
		return latch_error(LATCH_OPERR, "out of memory");
	}
	int rc = 0;
	/* vault_read takes at most a grant's worth of names at once. */
	for (size_t at = 0; rc == 0 && at < c.n; at += 64) {
		size_t k = c.n - at < 64 ? c.n - at : 64;
		rc = vault_read(v, c.names + at, k, "scan", values + at);
	}
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		struct match_form *forms = NULL;
		size_t nf = 0;
		rc = match_forms(values[i]->data, values[i]->len, 1, &forms, &nf);
		for (size_t k = 0; rc == 0 && k < nf; k++)
			rc = match_set_add(s->plain, forms[k].bytes->data, forms[k].bytes->len,
					   (uint32_t)(i * MATCH_N_ENCODINGS + forms[k].enc));
		match_forms_free(forms, nf);
	}
	for (size_t i = 0; i < c.n; i++)
		secbuf_free(values[i]);
	free(values);
	return rc == 0 ? match_set_build(s->plain) : -1;
}

/* A path as JSON can carry it: as it is when it is plain UTF-8, else
 * with every control character and byte above 0x7f as \xNN (a git path
 * may be any bytes but NUL). */
static void plain_path(const char *path, char *out, size_t n)
{
	if (text_is_plain(path)) {
		snprintf(out, n, "%s", path);
		return;
	}
	size_t k = 0;
	for (const unsigned char *c = (const unsigned char *)path; *c && k + 5 < n; c++)
		k += (size_t)(*c < 0x20 || *c >= 0x7f ? snprintf(out + k, n - k, "\\x%02x", *c)
						      : snprintf(out + k, n - k, "%c", *c));
	out[k] = '\0';
}

/* SARIF 2.1.0, for code-scanning uploads: one rule, one result per
 * finding, at error level; the message names the secret, never the value. */
static struct jout *sarif(const struct scan *s)
{
	struct jout *log = jout_object(), *runs = jout_array(), *run = jout_object(), *tool = jout_object(),
		    *driver = jout_object(), *rules = jout_array(), *rule = jout_object(), *desc = jout_object(),
		    *results = jout_array();
	jout_str(log, "version", "2.1.0");
	jout_str(log, "$schema", "https://json.schemastore.org/sarif-2.1.0.json");
	jout_str(driver, "name", "latch");
	jout_str(driver, "version", LATCH_VERSION);
	jout_str(rule, "id", "latch/managed-value");
	jout_str(desc, "text", "A value managed by latch, raw or encoded");
	jout_add(rule, "shortDescription", desc);
	jout_add(rules, NULL, rule);
	jout_add(driver, "rules", rules);
	jout_add(tool, "driver", driver);
	jout_add(run, "tool", tool);
	for (size_t i = 0; i < s->n; i++) {
		struct jout *r = jout_object(), *msg = jout_object(), *locs = jout_array(), *loc = jout_object(),
			    *phys = jout_object(), *art = jout_object(), *region = jout_object();
		char text[256], path[4 * PATH_MAX];
		snprintf(text, sizeof text, "The value of secret '%s' (%s)", s->f[i].name, s->f[i].encoding);
		plain_path(s->f[i].path, path, sizeof path);
		jout_str(r, "ruleId", "latch/managed-value");
		jout_str(r, "level", "error");
		jout_str(msg, "text", text);
		jout_add(r, "message", msg);
		jout_str(art, "uri", path);
		jout_int(region, "startLine", (int64_t)s->f[i].line);
		jout_add(phys, "artifactLocation", art);
		jout_add(phys, "region", region);
		jout_add(loc, "physicalLocation", phys);
		jout_add(locs, NULL, loc);
		jout_add(r, "locations", locs);
		jout_add(results, NULL, r);
	}
	jout_add(run, "results", results);
	jout_add(runs, NULL, run);
	jout_add(log, "runs", runs);
	return log;
}

static int print_findings(const struct scan *s, bool json, bool as_sarif)
{
	for (size_t i = 0; i < s->n; i++) {
		char path[4 * PATH_MAX];
		text_escape(s->f[i].path, path, sizeof path);
		fprintf(stderr, "%s:%zu: %s (%s)\n", path, s->f[i].line, s->f[i].name, s->f[i].encoding);
	}
	if (as_sarif)
		return jout_print(sarif(s), true);
	if (!json)
		return 0;
	struct jout *arr = jout_array();
	for (size_t i = 0; i < s->n; i++) {
		struct jout *o = jout_object();
		char path[4 * PATH_MAX];
		plain_path(s->f[i].path, path, sizeof path);
		jout_str(o, "path", path);
		jout_int(o, "line", (int64_t)s->f[i].line);
		jout_str(o, "secret", s->f[i].name);
		jout_str(o, "encoding", s->f[i].encoding);
		jout_str(o, "object", s->f[i].oid);
		jout_add(arr, NULL, o);
	}
	return jout_print(arr, true);
}

/* A blocking scan is an audit record (scan_block) when a broker runs for
 * the vault: it holds an audit key. With the vault locked and no broker,
 * nothing can append, and nothing is recorded (docs/scanning.md). */
static void record_block(const struct scan *s, const char *scope)
{
	char dir[PATH_MAX];
	const char *names[64], *paths[256];
	char path_text[256][512];
	size_t n = 0, n_paths = 0;
	for (size_t i = 0; i < s->n; i++) {
		bool seen = false;
		for (size_t k = 0; k < n && !seen; k++)
			seen = !strcmp(names[k], s->f[i].name);
		if (!seen && n < 64)
			names[n++] = s->f[i].name;
		plain_path(s->f[i].path, path_text[n_paths], sizeof path_text[n_paths]);
		seen = false;
		for (size_t k = 0; k < n_paths && !seen; k++)
			seen = !strcmp(paths[k], path_text[n_paths]);
		if (!seen && n_paths < 256) {
			paths[n_paths] = path_text[n_paths];
			n_paths++;
		}
	}
	latch_error_quiet(true);
	int ok = vault_dir(dir, sizeof dir);
	latch_error_quiet(false);
	if (ok == 0 && broker_record_scan(dir, names, n, paths, n_paths, scope) < 0)
		fprintf(stderr, "latch: warning: the broker did not record this blocked scan\n");
}

static void scan_free(struct scan *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->f[i].path);
		free(s->f[i].oid);
	}
	free(s->f);
	for (size_t i = 0; i < s->n_plain; i++)
		free(s->plain_names[i]);
	free(s->plain_names);
	match_set_free(s->plain);
	for (size_t i = 0; i < s->n_allow; i++) {
		free(s->allow[i].name);
		free(s->allow[i].path);
	}
	free(s->allow);
	hooks_index_free(s->ix);
}

static int load_allowed(int64_t secret, const char *path, void *ctx)
{
	struct scan *s = ctx;
	struct allowed *grown = realloc(s->allow, (s->n_allow + 1) * sizeof *grown);
	if (!grown)
		return latch_error(LATCH_OPERR, "out of memory");
	s->allow = grown;
	s->allow[s->n_allow].name = strdup(hooks_index_name(s->ix, secret));
	s->allow[s->n_allow].path = strdup(path);
	if (!s->allow[s->n_allow].name || !s->allow[s->n_allow].path) {
		free(s->allow[s->n_allow].name);
		free(s->allow[s->n_allow].path);
		return latch_error(LATCH_OPERR, "out of memory");
	}
	s->n_allow++;
	return 0;
}

/* latch scan allow|disallow NAME PATH (the passphrase), latch scan
 * allowed: the allow-list. */
struct allow_record {
	const char *event, *name, *path;
};

static int record_allow(struct vault *v, void *ctx)
{
	const struct allow_record *a = ctx;
	struct audit_secret_ref ref = {a->name, 0};
	const char *paths[1] = {a->path};
	struct audit_event ev =
		{.event = a->event, .secrets = &ref, .n_secrets = 1, .paths = paths, .n_paths = 1, .self = true};
	return audit_record_event_in(v, &ev);
}

static int print_allowed(int64_t secret, const char *path, void *ctx)
{
	const struct hooks_index *ix = ctx;
	char shown[4 * PATH_MAX];
	text_escape(path, shown, sizeof shown);
	printf("%s %s\n", hooks_index_name(ix, secret), shown);
	return 0;
}

static int allow_command(int argc, char **argv)
{
	static const struct option opts[] = {{"passphrase-fd", required_argument, NULL, 'f'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *sub = argv[0];
	bool list = !strcmp(sub, "allowed");
	int fd = -1, c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "scan")) != -1) {
		if (c == 'h')
			return cli_help(usage_scan);
		if (c != 'f' || list || parse_fd(optarg, &fd) != 0)
			return c == 'f' && !list ? cli_fail() : LATCH_USAGE;
	}
	if (argc - optind != (list ? 0 : 2)) {
		cli_passphrase_done(fd);
		return cli_usage("scan", list ? "'scan allowed' takes no argument" : "'scan %s' takes NAME PATH", sub);
	}
	struct vault *v = NULL;
	struct hooks_index *ix = NULL;
	int rc;
	if (list) {
		if (cli_open_vault(&v) != 0)
			return cli_fail();
		rc = hooks_index_load(v, &ix) == 0 && hooks_allow_list(v, print_allowed, ix) == 0 ? 0 : cli_fail();
		hooks_index_free(ix);
		vault_close(v);
		return rc == 0 && cli_finish_output() == 0 ? rc : cli_fail();
	}
	const char *name = argv[optind], *path = argv[optind + 1];
	if (!latch_name_valid(name)) {
		cli_passphrase_done(fd);
		return cli_usage("scan", "invalid secret name: use %s", LATCH_NAME_RULE);
	}
	bool add = !strcmp(sub, "allow");
	struct allow_record a = {add ? "scan_allow" : "scan_disallow", name, path};
	if (cli_open_unlocked(fd, &v) != 0)
		return cli_fail();
	rc = hooks_allow_change(v, name, path, add, record_allow, &a);
	vault_close(v);
	if (rc < 0)
		return cli_fail();
	if (rc == 1)
		fprintf(stderr, "latch: '%s' in '%s' was %s\n", name, path,
			add ? "already allowed" : "not allowed: nothing to remove");
	return 0;
}

/* --message FILE: the commit-msg hook's one file, as a message. */
static int scan_message(const char *path, struct scan *s)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return latch_error(LATCH_USAGE, "cannot open '%s': %s", path, strerror(errno));
	struct secbuf *b = NULL;
	bool too_big = false;
	int rc = read_fd_secret(fd, 16 * 1024 * 1024, &b, &too_big);
	close(fd);
	if (rc != 0)
		return too_big ? latch_error(LATCH_USAGE, "'%s' is larger than 16 MiB", path) : -1;
	struct hooks_blob blob = {.kind = HOOKS_MESSAGE, .path = path, .data = b->data, .len = b->len};
	rc = scan_blob(&blob, s);
	secbuf_free(b);
	return rc;
}

int cmd_scan(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "allow") || !strcmp(argv[1], "disallow") || !strcmp(argv[1], "allowed")))
		return allow_command(argc - 1, argv + 1);
	static const struct option opts[] =
		{{"staged", no_argument, NULL, 's'},      {"push", required_argument, NULL, 'p'},
		 {"range", required_argument, NULL, 'r'}, {"message", required_argument, NULL, 'm'},
		 {"json", no_argument, NULL, 'j'},        {"sarif", no_argument, NULL, 'S'},
		 {"unlock", no_argument, NULL, 'u'},      {"passphrase-fd", required_argument, NULL, 'f'},
		 {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
	const char *push = NULL, *range = NULL, *message = NULL;
	bool staged = false, json = false, as_sarif = false, unlock = false;
	int fd = -1, c, modes = 0;
	while ((c = cli_getopt(argc, argv, ":h", opts, "scan")) != -1) {
		switch (c) {
		case 's':
			staged = true;
			modes++;
			break;
		case 'p':
			push = optarg;
			modes++;
			break;
		case 'r':
			range = optarg;
			modes++;
			break;
		case 'm':
			message = optarg;
			modes++;
			break;
		case 'j':
			json = true;
			break;
		case 'S':
			as_sarif = true;
			break;
		case 'u':
			unlock = true;
			break;
		case 'f':
			if (parse_fd(optarg, &fd) != 0)
				return cli_fail();
			break;
		case 'h':
			return cli_help(usage_scan);
		default:
			return LATCH_USAGE;
		}
	}
	bool paths = optind < argc && !push;
	if (modes + paths != 1)
		return cli_usage("scan", "name one of --staged, --push REMOTE, --range A..B, --message FILE or PATHs");
	if (json && as_sarif)
		return cli_usage("scan", "--json and --sarif: choose one");
	if (push && argc - optind > 1)
		return cli_usage("scan", "--push takes the remote and, optionally, its URL");
	if (fd >= 0 && !unlock) {
		cli_passphrase_done(fd);
		return cli_usage("scan", "--passphrase-fd goes with --unlock");
	}

	/* No vault: nothing is managed, nothing can be found. */
	char dir[PATH_MAX], path[PATH_MAX];
	if (vault_dir(dir, sizeof dir) != 0 || vault_path(dir, path, sizeof path) != 0)
		return cli_fail();
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		cli_passphrase_done(fd);
		return 0;
	}
	struct scan s = {0};
	struct vault *v = NULL;
	int rc = unlock ? cli_open_unlocked(fd, &v) : vault_open(dir, &v);
	if (rc == 0)
		rc = hooks_index_load(v, &s.ix);
	if (rc == 0)
		rc = hooks_allow_list(v, load_allowed, &s);
	if (rc == 0 && unlock)
		rc = build_plain(v, &s);
	if (rc != 0) {
		vault_close(v);
		scan_free(&s);
		return cli_fail();
	}
	/* Never silently: what the index leaves out is said on every scan. */
	size_t weak = hooks_index_weak(s.ix), unindexed = hooks_index_unindexed(s.ix);
	if (weak && !unlock)
		fprintf(stderr,
			"latch: warning: %zu value%s too weak to fingerprint %s not scanned; 'latch scan --unlock' "
			"scans them with the passphrase ('latch status' lists them)\n",
			weak, weak == 1 ? "" : "s", weak == 1 ? "was" : "were");
	if (unindexed && !unlock)
		fprintf(stderr,
			"latch: warning: %zu value%s stored before the scan index existed %s not scanned; 'latch "
			"rekey' indexes them, 'latch scan --unlock' scans them now\n",
			unindexed, unindexed == 1 ? "" : "s", unindexed == 1 ? "was" : "were");
	if (staged) {
		rc = hooks_staged(scan_blob, &s);
	} else if (range) {
		rc = hooks_range(range, scan_blob, &s);
	} else if (message) {
		rc = scan_message(message, &s);
	} else if (push) {
		struct secbuf *in = NULL;
		struct hooks_push_ref *refs = NULL;
		size_t n = 0;
		bool too_big = false;
		rc = read_fd_secret(0, 16 * 1024 * 1024, &in, &too_big);
		if (rc != 0 && too_big)
			latch_error(LATCH_USAGE, "the pre-push input is larger than 16 MiB");
		if (rc == 0)
			rc = hooks_push_parse((const char *)in->data, in->len, &refs, &n);
		if (rc == 0)
			rc = hooks_push(push, refs, n, scan_blob, &s);
		hooks_push_free(refs, n);
		secbuf_free(in);
	} else {
		rc = hooks_paths(argv + optind, (size_t)(argc - optind), scan_blob, &s);
	}
	vault_close(v);
	if (rc != 0) {
		scan_free(&s);
		return cli_fail();
	}
	if (s.n_allowed)
		fprintf(stderr, "latch: %zu finding%s allowed by the allow-list ('latch scan allowed')\n", s.n_allowed,
			s.n_allowed == 1 ? "" : "s");
	int printed = print_findings(&s, json, as_sarif);
	if (s.n) {
		char scope[256];
		if (staged)
			snprintf(scope, sizeof scope, "staged");
		else if (push)
			snprintf(scope, sizeof scope, "push %s", push);
		else if (range)
			snprintf(scope, sizeof scope, "range %s", range);
		else if (message)
			snprintf(scope, sizeof scope, "commit message");
		else
			snprintf(scope, sizeof scope, "files");
		char plain[256];
		plain_path(scope, plain, sizeof plain);
		record_block(&s, plain);
	}
	int status = printed != 0 ? LATCH_OPERR : s.n ? LATCH_FINDINGS : 0;
	scan_free(&s);
	if (cli_finish_output() != 0)
		return cli_fail();
	return status;
}
