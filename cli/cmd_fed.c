/* latch fed: federation profiles and the model token they mint
 * (docs/federation.md). One function per subcommand, dispatched from a
 * table, as `latch audit` does. */
#include "cli.h"

#include "../federation/federation.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char usage_fed[] =
	"usage: latch fed add PROFILE (--from FILE | --from-env) [--force]\n"
	"       latch fed ls [--json]\n"
	"       latch fed rm PROFILE\n"
	"       latch fed status [PROFILE] [--json]\n"
	"       latch fed token PROFILE\n"
	"       latch fed logout PROFILE\n"
	"\n"
	"The model-API token from workload identity instead of a stored key: a\n"
	"profile names an identity token the platform gives this workload (a file,\n"
	"a variable, GitHub Actions, a GCP metadata server, a URL, a command) and\n"
	"the federation rule it is exchanged under (OAuth 2.0 jwt-bearer, at\n"
	"{base_url}/v1/oauth/token). 'latch run --fed PROFILE' gives the token to\n"
	"one command as ANTHROPIC_AUTH_TOKEN. Needs no vault and no passphrase.\n"
	"\n"
	"  add      check a profile in Anthropic's profile-file format and store it\n"
	"           (0600, under $XDG_CONFIG_HOME/latch/fed); --from - reads stdin;\n"
	"           --from-env builds it from the ANTHROPIC_* federation variables;\n"
	"           --force replaces a profile of that name\n"
	"  ls       the stored profiles\n"
	"  rm       remove a profile and its cached token\n"
	"  status   what an exchange would send and where each field comes from\n"
	"           (the profile, or an ANTHROPIC_* variable filling a field the\n"
	"           profile leaves empty), and the cached token's expiry; sends\n"
	"           nothing and never shows a token. Without PROFILE: every profile\n"
	"  token    print a fresh access token on stdout (from the cache, else\n"
	"           exchanged): for helpers such as Claude Code's apiKeyHelper\n"
	"  logout   remove the profile's cached token\n"
	"  -h, --help  show this help\n"
	"\n"
	"Tokens are cached 0600 in $XDG_RUNTIME_DIR/latch/fed, reused while more\n"
	"than 120 s remain, refreshed in the last 120 s, never handed out with 30 s\n"
	"or less left. Concurrent runs share one exchange per identity token.\n"
	"\n"
	"Exit status: 0 success, 2 usage, 3 the exchange or the identity token\n"
	"failed (network, the server's answer, a bad token).\n";

#define PROFILE_FILE_MAX (64 * 1024)

struct fed_args {
	const char *profile;
	const char *from;
	bool from_env, force, json;
};

/* Options shared by the subcommands; each says which it takes. */
static int parse(int argc, char **argv, const char *sub, const char *allowed, bool profile_required, struct fed_args *a)
{
	static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
					     {"from-env", no_argument, NULL, 'e'},
					     {"force", no_argument, NULL, 'F'},
					     {"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	char cmd[32];
	snprintf(cmd, sizeof cmd, "fed %s", sub);
	int c;
	memset(a, 0, sizeof *a);
	while ((c = cli_getopt(argc, argv, ":h", opts, "fed")) != -1) {
		if (c == 'h')
			return cli_help(usage_fed) == 0 ? 0 : LATCH_OPERR;
		if (c == '?' || !strchr(allowed, c))
			return c == '?' ? LATCH_USAGE : cli_usage("fed", "'%s' takes no such option", cmd);
		a->from = c == 'f' ? optarg : a->from;
		a->from_env |= c == 'e';
		a->force |= c == 'F';
		a->json |= c == 'j';
	}
	if (optind < argc)
		a->profile = argv[optind++];
	if (optind < argc)
		return cli_usage("fed", "'%s' takes one profile name", cmd);
	if (profile_required && !a->profile)
		return cli_usage("fed", "'%s' needs a profile name", cmd);
	if (a->profile && !fed_name_valid(a->profile)) {
		latch_error(LATCH_USAGE, "'%s' is not a profile name: 1-64 of letters, digits, '_', '.', '-'",
			    a->profile);
		return LATCH_USAGE;
	}
	return -1;
}

static int fed_add(int argc, char **argv)
{
	struct fed_args a;
	int rc = parse(argc, argv, "add", "feF", true, &a);
	if (rc >= 0)
		return rc;
	if (!a.from == !a.from_env)
		return cli_usage("fed", "'fed add' needs one of --from FILE and --from-env");
	if (a.from_env)
		return fed_profile_add_env(a.profile, a.force) == 0 ? 0 : cli_fail();
	int fd = strcmp(a.from, "-") ? open(a.from, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0) {
		latch_error(LATCH_USAGE, "cannot open '%s': %s", a.from, strerror(errno));
		return LATCH_USAGE;
	}
	struct secbuf *text = NULL;
	bool too_big = false;
	rc = read_fd_secret(fd, PROFILE_FILE_MAX, &text, &too_big);
	if (fd > 0)
		close(fd);
	if (rc != 0) {
		if (too_big)
			latch_error(LATCH_USAGE, "profile '%s' is larger than 64 KiB", a.from);
		return cli_fail();
	}
	rc = fed_profile_add(a.profile, (const char *)text->data, text->len, a.force) == 0 ? 0 : cli_fail();
	secbuf_free(text);
	return rc;
}

static int fed_ls(int argc, char **argv)
{
	struct fed_args a;
	int rc = parse(argc, argv, "ls", "j", false, &a);
	if (rc >= 0)
		return rc;
	if (a.profile)
		return cli_usage("fed", "'fed ls' takes no profile name");
	char **names;
	size_t n;
	if (fed_profile_list(&names, &n) != 0)
		return cli_fail();
	rc = 0;
	if (a.json) {
		struct jout *arr = jout_array();
		for (size_t i = 0; i < n; i++)
			jout_str(arr, NULL, names[i]);
		rc = jout_print(arr, true); /* and frees it */
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", names[i]);
	}
	fed_names_free(names, n);
	return rc == 0 && cli_finish_output() == 0 ? 0 : LATCH_OPERR;
}

static int fed_rm(int argc, char **argv)
{
	struct fed_args a;
	int rc = parse(argc, argv, "rm", "", true, &a);
	if (rc >= 0)
		return rc;
	return fed_profile_remove(a.profile) == 0 ? 0 : cli_fail();
}

static int fed_logout(int argc, char **argv)
{
	struct fed_args a;
	int rc = parse(argc, argv, "logout", "", true, &a);
	if (rc >= 0)
		return rc;
	struct fed_profile p;
	if (fed_profile_load(a.profile, &p) != 0)
		return cli_fail();
	rc = fed_cache_remove(&p) < 0 ? cli_fail() : 0;
	fed_profile_free(&p);
	return rc;
}

static const char *origin(enum fed_origin o)
{
	return o == FED_FROM_PROFILE ? "profile" : o == FED_FROM_ENV ? "environment" : "unset";
}

/* One field of `fed status`: value (or "-") and where it came from. */
static void field(struct jout *j, const char *label, const char *key, const char *value, enum fed_origin o)
{
	if (j) {
		struct jout *f = jout_object();
		jout_str(f, "value", value);
		jout_str(f, "from", origin(o));
		jout_add(j, key, f);
		return;
	}
	char shown[512];
	text_escape(value ? value : "-", shown, sizeof shown);
	printf("  %-17s %s%s%s%s\n", label, shown, o ? " (" : "", o ? origin(o) : "", o ? ")" : "");
}

/* Everything `fed status` says about one profile, as text or into `j`. */
static int status_one(const char *name, struct jout *j)
{
	struct fed_profile p;
	if (fed_profile_load(name, &p) != 0)
		return -1;
	char src[1024] = "-", endpoint[2200];
	static const char *const kinds[] = {"", "file", "env", "github_actions", "gcp_metadata", "url", "exec"};
	if (p.source.kind != FED_SOURCE_NONE)
		snprintf(src, sizeof src, "%s", kinds[p.source.kind]);
	snprintf(endpoint, sizeof endpoint, "%s/v1/oauth/token", p.base_url ? p.base_url : FED_DEFAULT_BASE_URL);
	if (!j)
		printf("profile %s\n", name);
	else
		jout_str(j, "profile", name);
	field(j, "endpoint", "endpoint", endpoint, p.base_url ? p.base_url_from : FED_FROM_NONE);
	field(j, "federation rule", "federation_rule_id", p.rule_id, p.rule_from);
	field(j, "organization", "organization_id", p.org_id, p.org_from);
	field(j, "service account", "service_account_id", p.service_account_id, p.service_account_from);
	field(j, "workspace", "workspace_id", p.workspace_id, p.workspace_from);
	field(j, "identity source", "identity_source", src, p.source_from);
	const char *detail = p.source.path   ? p.source.path
			     : p.source.var  ? p.source.var
			     : p.source.url  ? p.source.url
			     : p.source.argc ? p.source.argv[0]
					     : p.source.audience;
	/* A URL's query may carry a key: shown as "?...", never its text. */
	char cut[1100];
	if (detail && detail == p.source.url && strchr(detail, '?')) {
		snprintf(cut, sizeof cut, "%.*s?...", (int)(strchr(detail, '?') - detail), detail);
		detail = cut;
	}
	if (detail)
		field(j, "  from", "identity_detail", detail, FED_FROM_NONE);
	/* Can it be exchanged? Say what is missing, without sending. */
	latch_error_quiet(true);
	bool complete = fed_profile_complete(&p) == 0;
	latch_error_quiet(false);
	const char *missing = complete ? NULL : latch_last_message();
	int64_t exp = 0, now = (int64_t)time(NULL);
	int c = fed_cache_expiry(&p, &exp);
	char when[32] = "", line[96];
	if (c == 0) {
		format_time_utc(exp, when);
		if (exp - now > FED_EXP_SKEW)
			snprintf(line, sizeof line, "expires %s (in %lld s)", when, (long long)(exp - now));
		else
			snprintf(line, sizeof line, "expired or about to, %s: the next use exchanges", when);
	} else {
		snprintf(line, sizeof line, c > 0 ? "none" : "unreadable");
	}
	if (j) {
		jout_bool(j, "complete", complete);
		jout_str(j, "missing", missing);
		jout_str(j, "cached_token_expires", c == 0 ? when : NULL);
	} else {
		printf("  %-17s %s\n", "ready", complete ? "yes" : missing);
		printf("  %-17s %s\n", "cached token", line);
	}
	fed_profile_free(&p);
	return 0;
}

static int fed_status(int argc, char **argv)
{
	struct fed_args a;
	int rc = parse(argc, argv, "status", "j", false, &a);
	if (rc >= 0)
		return rc;
	char **names = NULL;
	size_t n = 0;
	if (a.profile) {
		names = (char **)&a.profile;
		n = 1;
	} else if (fed_profile_list(&names, &n) != 0) {
		return cli_fail();
	}
	struct jout *arr = a.json ? jout_array() : NULL;
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct jout *o = a.json ? jout_object() : NULL;
		if (!a.json && i > 0)
			printf("\n");
		rc = status_one(names[i], o);
		if (o)
			jout_add(arr, NULL, o);
	}
	if (!a.profile) {
		if (n == 0 && !a.json)
			printf("no profiles (see 'latch fed add')\n");
		fed_names_free(names, n);
	}
	if (rc != 0) {
		jout_free(arr);
		return cli_fail();
	}
	if (arr)
		rc = jout_print(arr, true); /* and frees it */
	return rc == 0 && cli_finish_output() == 0 ? 0 : LATCH_OPERR;
}

/* A mint is recorded when a broker runs for the vault in the usual
 * place; without one (CI has no vault) it is not, and says nothing.
 * A broker that cannot record it is worth a warning, not a failed run:
 * the token exists already. */
static void record_mint(const struct fed_profile *p, const struct fed_token *t)
{
	char dir[PATH_MAX];
	latch_error_quiet(true);
	int ok = vault_dir(dir, sizeof dir);
	latch_error_quiet(false);
	if (ok != 0 || access(dir, F_OK) != 0)
		return;
	struct broker_mint m = {p->name, p->rule_id, t->expires_at, t->id.iss, t->id.sub, t->id.jti};
	if (broker_record_mint(dir, &m) < 0)
		fprintf(stderr, "latch: warning: the broker did not record this model token's mint\n");
}

int cli_fed_token(const struct fed_profile *p, struct fed_token *t)
{
	if (fed_token_get(p, t) != 0)
		return -1;
	if (t->minted)
		record_mint(p, t);
	return 0;
}

static int fed_token(int argc, char **argv)
{
	struct fed_args a;
	int rc = parse(argc, argv, "token", "", true, &a);
	if (rc >= 0)
		return rc;
	struct fed_profile p;
	struct fed_token t;
	if (fed_profile_load(a.profile, &p) != 0)
		return cli_fail();
	if (cli_fed_token(&p, &t) != 0) {
		fed_profile_free(&p);
		return cli_fail();
	}
	fwrite(t.token->data, 1, t.token->len, stdout);
	fputc('\n', stdout);
	fed_token_clear(&t);
	fed_profile_free(&p);
	return cli_finish_output() == 0 ? 0 : LATCH_OPERR;
}

static const struct {
	const char *name;
	int (*run)(int, char **);
} subs[] = {
	{"add", fed_add},       {"ls", fed_ls},       {"rm", fed_rm},
	{"status", fed_status}, {"token", fed_token}, {"logout", fed_logout},
};

int cmd_fed(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage("fed", "name a subcommand: add, ls, rm, status, token or logout");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return cli_help(usage_fed);
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].run(argc - 1, argv + 1);
	return cli_usage("fed", "no subcommand '%s'", argv[1]);
}
