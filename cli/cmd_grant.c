/* latch grant, grants, revoke: a human lends named secrets to the broker
 * for a bounded time, uses and set of commands. */
#include "cli.h"

#include "../broker/broker.h"
#include "../audit/audit.h"
#include "../run/run.h"

#include <sodium.h>
#include <string.h>
#include <unistd.h>

const char usage_grant[] =
	"usage: latch grant NAME... [--ttl DUR] [--uses N] [--cmd PROGRAM]... [--allow-env VAR]...\n"
	"                   [--passphrase-fd N]\n"
	"\n"
	"Let 'latch run' release the named secrets, without a passphrase, until the\n"
	"grant ends: at its deadline, after N releases, or on 'latch revoke'. Needs\n"
	"the passphrase every time: only a human can widen access. The values go\n"
	"only to a broker daemon that proves it was started and enrolled with this\n"
	"passphrase (this command starts one if none runs); it holds them in\n"
	"locked memory and forgets them when the grant ends. Anything else that\n"
	"answers at the broker's socket is refused (exit 3) and named. The grant is\n"
	"recorded in the audit log before it takes effect (and, if the broker then\n"
	"does not take it, so is that).\n"
	"\n"
	"  --ttl DUR          how long: 90s, 30m, 2h, ... (default 15m, at most 24h)\n"
	"  --uses N           at most N releases (default: no limit within the TTL)\n"
	"  --cmd PROGRAM      only for this program (resolved along PATH to its real\n"
	"                     path); repeat for several; default: any command. The\n"
	"                     broker pins the file it finds there: replaced or\n"
	"                     changed later, it is refused\n"
	"  --allow-env VAR    let the child keep VAR, one of the variables latch\n"
	"                     otherwise removes (LD_*, PYTHONPATH, ...;\n"
	"                     docs/environment.md); repeat for several\n"
	"  --passphrase-fd N  read the passphrase from fd N instead of /dev/tty\n"
	"  -h, --help         show this help\n"
	"\n"
	"Limits: at most 64 secrets, 16 --cmd and 16 --allow-env in one grant; a secret name is at\n"
	"most 128 bytes, a value at most 1 MiB; --ttl at most 24h.\n";

const char usage_grants[] =
	"usage: latch grants [--json]\n"
	"\n"
	"List the live grants: id, secrets, deadline, uses left, commands.\n"
	"Needs no passphrase.\n"
	"\n"
	"  --json      print a JSON array\n"
	"  -h, --help  show this help\n";

const char usage_revoke[] =
	"usage: latch revoke GRANT_ID | --all\n"
	"\n"
	"End a grant now (or every grant): the broker forgets its values at once.\n"
	"Narrowing access needs no passphrase.\n"
	"\n"
	"  --all       revoke every live grant\n"
	"  -h, --help  show this help\n";

/* Hands the grant to this vault's broker, verified again: the values
 * travel only inside a box sealed for it. */
static int hand_over(struct vault *v, const char *dir, const struct audit_grant *g, const char *const *names,
		     struct secbuf *const *values, size_t n, int64_t *deadline)
{
	struct broker_session s;
	if (cli_broker_session(v, dir, &s) != 0)
		return -1;
	struct broker_item items[BROKER_MAX_NAMES];
	for (size_t i = 0; i < n; i++) {
		items[i] = (struct broker_item){names[i], *values[i]};
		if (values[i]->len < RUN_REDACT_MIN)
			cli_warn_short(names[i]);
	}
	struct broker_grant_spec spec = {.id = g->id,
					 .items = items,
					 .n = n,
					 .cmds = g->cmds,
					 .n_cmds = g->n_cmds,
					 .allow_env = g->allow_env,
					 .n_allow_env = g->n_allow_env,
					 .ttl = g->ttl,
					 .uses = g->uses};
	int rc = broker_grant(&s, &spec, deadline);
	sodium_memzero(items, sizeof items);
	broker_session_close(&s);
	return rc;
}

/* The grant was recorded but the broker did not take it: the log says
 * so, so that it never shows a grant that did not happen as one that did. */
static void record_failure(struct vault *v, const struct audit_grant *g, const char *const *names, size_t n)
{
	struct audit_secret_ref refs[BROKER_MAX_NAMES];
	for (size_t i = 0; i < n; i++)
		refs[i] = (struct audit_secret_ref){names[i], 0};
	struct audit_event ev = {.event = "grant-failed",
				 .grant_id = g->id,
				 .secrets = refs,
				 .n_secrets = n,
				 .reason = "the broker did not take the grant",
				 .self = true};
	latch_error_quiet(true);
	audit_record_event(v, &ev);
	latch_error_quiet(false);
}

/* False (reported) inside a session where no broker answers: one would
 * have to be started, and cli_broker_start refuses that there. */
static bool broker_possible(const char *dir)
{
	if (!run_in_session(NULL))
		return true;
	struct broker_list l;
	latch_error_quiet(true);
	int rc = broker_list(dir, &l);
	latch_error_quiet(false);
	if (rc == 0) {
		broker_list_free(&l);
		return true;
	}
	cli_broker_may_start(); /* reports the refusal */
	return false;
}

int cmd_grant(int argc, char **argv)
{
	static const struct option opts[] = {{"ttl", required_argument, NULL, 't'},
					     {"uses", required_argument, NULL, 'u'},
					     {"cmd", required_argument, NULL, 'c'},
					     {"allow-env", required_argument, NULL, 'a'},
					     {"passphrase-fd", required_argument, NULL, 'p'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct audit_grant g = {NULL, BROKER_DEFAULT_TTL, 0, NULL, 0, NULL, 0};
	static char cmd_paths[BROKER_MAX_CMDS][PATH_MAX];
	const char *cmds[BROKER_MAX_CMDS], *allow_env[BROKER_MAX_ALLOW_ENV];
	int fd = -1, c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "grant")) != -1) {
		switch (c) {
		case 't':
			if (parse_duration(optarg, BROKER_MAX_TTL, "--ttl", &g.ttl) != 0)
				return cli_fail();
			if (g.ttl < 1)
				return cli_usage("grant", "--ttl must be at least 1s");
			break;
		case 'u': {
			char *end;
			long long u = strtoll(optarg, &end, 10);
			if (*end || u < 1 || u > 1000000000)
				return cli_usage("grant", "--uses takes a number from 1 to 1000000000");
			g.uses = u;
			break;
		}
		case 'c':
			if (g.n_cmds == BROKER_MAX_CMDS)
				return cli_usage("grant", "at most %d --cmd", BROKER_MAX_CMDS);
			if (run_resolve(optarg, cmd_paths[g.n_cmds]) != 0)
				return LATCH_USAGE;
			/* The broker refuses such a path, no terminal should show
			 * it, and JSON cannot carry one that is not UTF-8 (it would
			 * drop out of the grant, leaving "any command"): refused
			 * before anything is read or recorded. */
			if (!text_is_plain(cmd_paths[g.n_cmds]))
				return cli_usage("grant",
						 "the path of --cmd %zu has control characters or is not UTF-8",
						 g.n_cmds + 1);
			cmds[g.n_cmds] = cmd_paths[g.n_cmds];
			g.n_cmds++;
			break;
		case 'a': {
			/* Only the variables latch removes need allowing; any other
			 * name reaches the child anyway, so it is refused as a
			 * likely mistake. */
			if (g.n_allow_env == BROKER_MAX_ALLOW_ENV)
				return cli_usage("grant", "at most %d --allow-env", BROKER_MAX_ALLOW_ENV);
			size_t len = strlen(optarg);
			if (len == 0 || len >= BROKER_VAR_MAX || strchr(optarg, '=') || !run_env_unsafe(optarg, len))
				return cli_usage(
					"grant",
					"--allow-env names a variable latch removes from the child (docs/environment.md): "
					"'%s' is not one",
					optarg);
			allow_env[g.n_allow_env++] = optarg;
			break;
		}
		case 'p':
			if (parse_fd(optarg, &fd) != 0)
				return cli_fail();
			break;
		case 'h':
			return cli_help(usage_grant);
		default:
			return LATCH_USAGE;
		}
	}
	size_t n = (size_t)(argc - optind);
	if (n == 0)
		return cli_usage("grant", "name at least one secret");
	if (n > BROKER_MAX_NAMES)
		return cli_usage("grant", "at most %d secrets in one grant", BROKER_MAX_NAMES);
	const char *const *names = (const char *const *)argv + optind;
	for (size_t i = 0; i < n; i++) {
		if (!latch_name_valid(names[i]))
			return cli_usage("grant", "invalid secret name");
		for (size_t j = 0; j < i; j++)
			if (!strcmp(names[i], names[j]))
				return cli_usage("grant", "'%s' is named twice", names[i]);
	}
	g.cmds = cmds;
	g.allow_env = allow_env;
	char id[BROKER_ID_MAX], dir[PATH_MAX];
	broker_new_id('g', id);
	g.id = id;

	struct vault *v = NULL;
	struct secbuf *values[BROKER_MAX_NAMES] = {0};
	struct broker_session s;
	if (vault_dir(dir, sizeof dir) != 0) {
		cli_passphrase_done(fd);
		return cli_fail();
	}
	/* Inside a session only a running broker will do: say so before
	 * the passphrase is typed for nothing. */
	if (!broker_possible(dir)) {
		cli_passphrase_done(fd);
		return cli_fail();
	}
	if (cli_open_unlocked(fd, &v) != 0)
		return cli_fail();
	/* First the broker must prove itself (started and enrolled now if
	 * none runs): nothing is recorded or read for an impostor. */
	int rc = cli_broker_session(v, dir, &s);
	if (rc == 0)
		broker_session_close(&s);
	/* Then the read and its record, in one transaction; then the values
	 * go to the broker, proved again. */
	vault_on_change(v, audit_record_change, cli_recorder(&g));
	if (rc == 0)
		rc = vault_read(v, names, n, "grant", values);
	int64_t deadline = 0;
	int status = rc == 0 ? 0 : cli_fail();
	if (rc == 0 && (rc = hand_over(v, dir, &g, names, values, n, &deadline)) != 0) {
		status = cli_fail();
		record_failure(v, &g, names, n);
	}
	for (size_t i = 0; i < n; i++)
		secbuf_free(values[i]);
	vault_close(v);
	if (rc != 0)
		return status;
	char until[32];
	format_time_utc(deadline, until);
	printf("Granted");
	for (size_t i = 0; i < n; i++)
		printf("%s %s", i ? "," : "", names[i]);
	printf(" until %s", until);
	if (g.uses > 0)
		printf(", %lld use%s", (long long)g.uses, g.uses == 1 ? "" : "s");
	for (size_t i = 0; i < g.n_cmds; i++)
		printf("%s %s", i ? "," : ", for", cmds[i]);
	printf(": grant %s\n", id);
	return cli_finish_output() == 0 ? 0 : cli_fail();
}

struct jout *cli_grants_json(const struct broker_list *l)
{
	struct jout *list = jout_array();
	for (size_t i = 0; i < l->n; i++) {
		const struct broker_grant_info *g = &l->grants[i];
		struct jout *o = jout_object(), *names = jout_array(), *cmds = jout_array();
		for (size_t k = 0; k < g->n_names; k++)
			jout_str(names, NULL, g->names[k]);
		for (size_t k = 0; k < g->n_cmds; k++)
			jout_str(cmds, NULL, g->cmds[k]);
		jout_str(o, "grant", g->id);
		jout_add(o, "names", names);
		jout_int(o, "deadline", g->deadline);
		if (g->uses_left < 0)
			jout_str(o, "uses_left", NULL);
		else
			jout_int(o, "uses_left", g->uses_left);
		jout_add(o, "cmds", cmds);
		jout_add(list, NULL, o);
	}
	return list;
}

int cmd_grants(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool json = false;
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "grants")) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'h')
			return cli_help(usage_grants);
		else
			return LATCH_USAGE;
	}
	if (optind != argc)
		return cli_usage("grants", "unexpected argument '%s'", argv[optind]);
	char dir[PATH_MAX];
	struct broker_list l;
	if (vault_dir(dir, sizeof dir) != 0 || broker_list(dir, &l) < 0)
		return cli_fail();
	if (json) {
		int rc = jout_print(cli_grants_json(&l), true);
		broker_list_free(&l);
		return rc == 0 && cli_finish_output() == 0 ? 0 : cli_fail();
	}
	printf("%-16s %-20s  %-9s %s\n", "GRANT", "UNTIL", "USES LEFT", "SECRETS / COMMANDS");
	for (size_t i = 0; i < l.n; i++) {
		const struct broker_grant_info *g = &l.grants[i];
		char until[32], ubuf[24] = "-";
		format_time_utc(g->deadline, until);
		if (g->uses_left >= 0)
			snprintf(ubuf, sizeof ubuf, "%lld", (long long)g->uses_left);
		/* What the broker says is shown, never obeyed: escaped. */
		char text[4 * PATH_MAX];
		text_escape(g->id ? g->id : "?", text, sizeof text);
		printf("%-16s %-20s  %-9s", text, until, ubuf);
		cli_print_escaped(g->names, g->n_names, " ", ",");
		printf(" / %s", g->n_cmds ? "" : "any command");
		cli_print_escaped(g->cmds, g->n_cmds, "", ",");
		putchar('\n');
	}
	broker_list_free(&l);
	return cli_finish_output() == 0 ? 0 : cli_fail();
}

int cmd_revoke(int argc, char **argv)
{
	static const struct option opts[] = {{"all", no_argument, NULL, 'a'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool all = false;
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "revoke")) != -1) {
		if (c == 'a')
			all = true;
		else if (c == 'h')
			return cli_help(usage_revoke);
		else
			return LATCH_USAGE;
	}
	if (all == (argc - optind == 1) || argc - optind > 1)
		return cli_usage("revoke", "name one GRANT_ID, or --all");
	char dir[PATH_MAX];
	if (vault_dir(dir, sizeof dir) != 0)
		return cli_fail();
	int count = 0;
	int rc = broker_revoke(dir, all ? NULL : argv[optind], &count);
	if (rc == 1) {
		if (all) {
			printf("No live grants.\n");
			return cli_finish_output() == 0 ? 0 : cli_fail();
		}
		latch_error(LATCH_OPERR, "no live grant '%s' (the broker is not running)", argv[optind]);
		return cli_fail();
	}
	if (rc != 0)
		return cli_fail();
	printf("Revoked %d grant%s.\n", count, count == 1 ? "" : "s");
	return cli_finish_output() == 0 ? 0 : cli_fail();
}
