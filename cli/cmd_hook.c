/* latch hook: install, uninstall or show latch's git hooks in the
 * repository of the current directory (hooks/install.c does the work). */
#include "cli.h"

#include "../hooks/hooks.h"

#include <string.h>

const char usage_hook[] =
	"usage: latch hook install [--pre-commit] [--commit-msg] [--pre-push] [--force]\n"
	"       latch hook uninstall\n"
	"       latch hook status [--json]\n"
	"\n"
	"Git hooks that keep the values latch manages out of commits and pushes,\n"
	"in the repository of the current directory (its hooks directory as git\n"
	"names it: core.hooksPath, and a linked worktree's main repository).\n"
	"\n"
	"  install    write the hooks (all three without a hook option):\n"
	"               pre-commit  runs 'latch scan --staged'\n"
	"               commit-msg  runs 'latch scan --message FILE'\n"
	"               pre-push    runs 'latch scan --push REMOTE URL' on git's lines\n"
	"             Each names this latch executable; if it moves, the hook\n"
	"             refuses the commit or push until you install again.\n"
	"             Installing again refreshes them.\n"
	"    --force  where a hook that is not latch's exists, keep it as\n"
	"             <hook>.latch-orig and run it first (same arguments and, for\n"
	"             pre-push, the same stdin); without --force latch refuses\n"
	"  uninstall  remove latch's hooks, putting back each one kept by --force\n"
	"  status     each hook: absent, latch's (chaining an original), foreign,\n"
	"             or a hooks manager's; and the hooks directory\n"
	"    --json   print a JSON object\n"
	"  -h, --help show this help\n"
	"\n"
	"Under husky or lefthook latch installs nothing: it says what to add to\n"
	"their configuration. For the pre-commit framework (pre-commit.com), use\n"
	"the hooks in latch's .pre-commit-hooks.yaml. The hooks need no\n"
	"passphrase and no terminal.\n"
	"\n"
	"Exit status: 0 done, 2 usage, or a hook is in the way (nothing written),\n"
	"3 error.\n";

/* Paths come from git and from hook files anyone may have written. */
static const char *shown(const char *s, char *buf, size_t n)
{
	text_escape(s, buf, n);
	return buf;
}

static const char *state_word(enum hooks_state s)
{
	static const char *const words[] = {"absent", "latch", "foreign", "manager"};
	return words[s];
}

static int parse_none(int argc, char **argv, const char *sub)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "hook")) != -1) {
		if (c == 'h')
			return cli_help(usage_hook);
		return LATCH_USAGE;
	}
	if (optind < argc)
		return cli_usage("hook", "'hook %s' takes no operand", sub);
	return -1;
}

static int hook_install(int argc, char **argv)
{
	static const struct option opts[] = {{"pre-commit", no_argument, NULL, 'c'},
					     {"commit-msg", no_argument, NULL, 'm'},
					     {"pre-push", no_argument, NULL, 'p'},
					     {"force", no_argument, NULL, 'f'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	unsigned which = 0;
	bool force = false;
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "hook")) != -1) {
		switch (c) {
		case 'c':
			which |= HOOKS_PRE_COMMIT;
			break;
		case 'm':
			which |= HOOKS_COMMIT_MSG;
			break;
		case 'p':
			which |= HOOKS_PRE_PUSH;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			return cli_help(usage_hook);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage("hook", "'hook install' takes no operand");
	char self[PATH_MAX];
	struct hooks_status st;
	if (cli_self_exe(self) != 0 || hooks_install(self, which ? which : HOOKS_ALL, force, &st) != 0)
		return cli_fail();
	char buf[PATH_MAX];
	printf("latch hooks in %s:\n", shown(st.dir, buf, sizeof buf));
	for (int i = 0; i < HOOKS_N; i++) {
		const struct hooks_hook_status *h = &st.hooks[i];
		if (h->action == HOOKS_UNTOUCHED)
			continue;
		printf("  %-11s %s", h->name, h->action == HOOKS_REFRESHED ? "installed again" : "installed");
		if (h->chained)
			printf(", after the hook it replaced (kept as %s" HOOKS_ORIG_SUFFIX ")", h->name);
		putchar('\n');
	}
	return cli_finish_output() == 0 ? 0 : LATCH_OPERR;
}

static int hook_uninstall(int argc, char **argv)
{
	int rc = parse_none(argc, argv, "uninstall");
	if (rc >= 0)
		return rc;
	struct hooks_status st;
	if (hooks_uninstall(&st) != 0)
		return cli_fail();
	char buf[PATH_MAX];
	printf("%s:\n", shown(st.dir, buf, sizeof buf));
	for (int i = 0; i < HOOKS_N; i++) {
		const struct hooks_hook_status *h = &st.hooks[i];
		const char *what = h->action == HOOKS_REMOVED      ? "removed"
				   : h->action == HOOKS_RESTORED   ? "removed; the original hook is back"
				   : h->action == HOOKS_LEFT_ALONE ? "not latch's: left alone"
								   : "not installed";
		printf("  %-11s %s\n", h->name, what);
	}
	return cli_finish_output() == 0 ? 0 : LATCH_OPERR;
}

static int hook_status(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool json = false;
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "hook")) != -1) {
		if (c == 'h')
			return cli_help(usage_hook);
		if (c != 'j')
			return LATCH_USAGE;
		json = true;
	}
	if (optind < argc)
		return cli_usage("hook", "'hook status' takes no operand");
	struct hooks_status st;
	if (hooks_status(&st) != 0)
		return cli_fail();
	if (json) {
		struct jout *o = jout_object(), *hooks = jout_object();
		jout_str(o, "hooks_dir", st.dir);
		jout_str(o, "manager", st.manager);
		for (int i = 0; i < HOOKS_N; i++) {
			const struct hooks_hook_status *h = &st.hooks[i];
			struct jout *j = jout_object();
			jout_str(j, "state", state_word(h->state));
			jout_bool(j, "chained", h->chained);
			bool latch = h->state == HOOKS_LATCH;
			jout_str(j, "latch", latch && h->latch[0] ? h->latch : NULL);
			jout_bool(j, "latch_found", latch && h->latch_found);
			jout_add(hooks, h->name, j);
		}
		jout_add(o, "hooks", hooks);
		return jout_print(o, true) == 0 && cli_finish_output() == 0 ? 0 : LATCH_OPERR;
	}
	char buf[PATH_MAX];
	printf("hooks directory: %s", shown(st.dir, buf, sizeof buf));
	if (st.manager)
		printf(" (a hooks manager's: %s)", st.manager);
	putchar('\n');
	for (int i = 0; i < HOOKS_N; i++) {
		const struct hooks_hook_status *h = &st.hooks[i];
		printf("  %-11s ", h->name);
		switch (h->state) {
		case HOOKS_ABSENT:
			fputs("absent", stdout);
			break;
		case HOOKS_LATCH:
			fputs(h->chained ? "latch (chaining an original)" : "latch", stdout);
			if (!h->latch_found)
				printf("; its latch executable %s is missing, so it refuses every %s: run 'latch hook "
				       "install' again",
				       h->latch[0] ? shown(h->latch, buf, sizeof buf) : "(none named)",
				       h->which == HOOKS_PRE_PUSH ? "push" : "commit");
			break;
		case HOOKS_FOREIGN:
			fputs("foreign (not latch's)", stdout);
			break;
		case HOOKS_MANAGED:
			printf("inside a hooks manager (%s)", st.manager ? st.manager : "husky or lefthook");
			break;
		}
		putchar('\n');
	}
	return cli_finish_output() == 0 ? 0 : LATCH_OPERR;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} subs[] = {
	{"install", hook_install},
	{"uninstall", hook_uninstall},
	{"status", hook_status},
};

int cmd_hook(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage("hook", "name a subcommand: install, uninstall or status");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return cli_help(usage_hook);
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].run(argc - 1, argv + 1);
	return cli_usage("hook", "no subcommand '%s'", argv[1]);
}
