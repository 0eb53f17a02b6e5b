/* latch status: the vault, the broker daemon and its live grants, and
 * which model credential a child would use. Needs no passphrase. */
#include "cli.h"

#include "../broker/broker.h"
#include "../federation/federation.h"
#include "../hooks/hooks.h"
#include "../run/run.h"

#include <stdlib.h>
#include <string.h>

const char usage_status[] =
	"usage: latch status [--json]\n"
	"\n"
	"Show where the vault is, whether latch accepts it, how many secrets it\n"
	"holds and its key-derivation cost; whether the broker daemon runs (its\n"
	"pid) and its live grants: secrets, deadline, uses left, commands; and\n"
	"which model-API credential a child would use, and why, in the order\n"
	"Anthropic's SDKs take them: ANTHROPIC_API_KEY (set at all, even empty),\n"
	"then ANTHROPIC_AUTH_TOKEN, then federation (a profile in\n"
	"LATCH_FED_PROFILE, or the SDK's own federation variables). Needs no\n"
	"passphrase. Exits 0 when the vault is usable, 3 when it is missing or\n"
	"refused (the reason is printed).\n"
	"\n"
	"It also says whether this shell is inside a 'latch session', found by a\n"
	"probe (LATCH_SESSION names the launcher, which a process inside may not\n"
	"signal; a variable set by hand outside proves nothing) and what the\n"
	"sandbox covers: ptrace and the /proc files that need it, signals,\n"
	"abstract unix sockets, under which Landlock ABI; outside one, whether\n"
	"this machine could run one, or why not.\n"
	"\n"
	"  --json      print a JSON object\n"
	"  -h, --help  show this help\n";

/* The values a scan without the passphrase cannot find, by name. */
struct weak {
	char **names;
	size_t n_names;
	size_t unindexed;
};

static int left_name(int64_t id, const char *name, int bits, void *ctx)
{
	(void)id;
	struct weak *w = ctx;
	char **grown = realloc(w->names, (w->n_names + 1) * sizeof *grown);
	if (!grown)
		return latch_error(LATCH_OPERR, "out of memory");
	w->names = grown;
	if (!(w->names[w->n_names] = strdup(name)))
		return latch_error(LATCH_OPERR, "out of memory");
	w->n_names++;
	w->unindexed += bits < 0;
	return 0;
}

static void weak_free(struct weak *w)
{
	for (size_t i = 0; i < w->n_names; i++)
		free(w->names[i]);
	free(w->names);
}

/* Whether this process is inside a session, and what a session here
 * covers or why there can be none. */
struct session_state {
	bool inside;
	pid_t launcher;
	bool available;
	int abi;
	char why[128];
};

static void session_probe(struct session_state *st)
{
	*st = (struct session_state){0};
	st->inside = run_in_session(&st->launcher);
	st->available = run_sandbox_available(&st->abi, st->why, sizeof st->why) == 0;
}

/* Inside, the domain is the one `latch session` makes, which it makes
 * only at ABI 6 or more: ptrace, signals and abstract sockets. */
static struct jout *session_json(const struct session_state *st)
{
	struct jout *o = jout_object();
	jout_bool(o, "inside", st->inside);
	if (st->inside) {
		jout_int(o, "launcher", st->launcher);
		jout_int(o, "abi", st->abi);
		jout_bool(o, "ptrace", true);
		jout_bool(o, "signals", true);
		jout_bool(o, "abstract_unix", true);
	} else {
		jout_bool(o, "available", st->available);
		jout_int(o, "abi", st->abi);
		if (!st->available)
			jout_str(o, "why_not", st->why);
	}
	return o;
}

static void session_print(const struct session_state *st)
{
	if (st->inside)
		printf("session:  inside a latch session (launcher pid %d): no process here can trace, read the /proc files of, or signal the broker's processes, nor reach their abstract unix sockets (Landlock ABI %d)\n",
		       (int)st->launcher, st->abi);
	else if (st->available)
		printf("session:  not in a latch session; this machine can run one (Landlock ABI %d)\n", st->abi);
	else
		printf("session:  not in a latch session; none can run here: %s\n", st->why);
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool json = false;
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "status")) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			return cli_help(usage_status);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("status", "unexpected argument '%s'", argv[optind]);
	char dir[PATH_MAX], path[PATH_MAX];
	if (vault_dir(dir, sizeof dir) != 0 || vault_path(dir, path, sizeof path) != 0)
		return cli_fail();
	struct vault *v = NULL;
	struct vault_info info;
	/* The reason a vault is unusable is the error line already printed. */
	int rc = vault_open(dir, &v);
	if (rc == 0)
		rc = vault_info(v, &info);
	struct weak weak = {0};
	if (rc == 0)
		rc = hooks_left_out(v, left_name, &weak);
	vault_close(v);
	char created[32] = "";
	if (rc == 0)
		format_time_utc(info.created, created);
	/* The daemon: its pid and live grants, if it answers. */
	struct broker_list l;
	latch_error_quiet(true);
	int arc = broker_list(dir, &l);
	latch_error_quiet(false);
	struct session_state sess;
	session_probe(&sess);
	const char *fed = getenv("LATCH_FED_PROFILE");
	struct fed_choice model;
	fed_model_credential(fed && *fed ? fed : NULL, &model);
	if (json) {
		struct jout *o = jout_object();
		jout_str(o, "vault", rc != 0 ? path : info.path);
		jout_str(o, "state", rc != 0 ? "unusable" : "ok");
		if (rc == 0) {
			struct jout *kdf = jout_object();
			jout_str(o, "id", info.vault_id);
			jout_str(o, "created", created);
			jout_int(o, "secrets", info.secrets);
			jout_int(o, "schema_version", info.schema_version);
			jout_int(o, "key_generation", info.key_generation);
			jout_str(kdf, "algorithm", "argon2id");
			jout_str(kdf, "level", info.kdf_name);
			jout_int(kdf, "opslimit", (int64_t)info.kdf_opslimit);
			jout_int(kdf, "memlimit", (int64_t)info.kdf_memlimit);
			jout_add(o, "kdf", kdf);
			struct jout *scan = jout_object(), *names = jout_array();
			for (size_t i = 0; i < weak.n_names; i++)
				jout_str(names, NULL, weak.names[i]);
			jout_int(scan, "fingerprinted", info.secrets - (int64_t)weak.n_names);
			jout_add(scan, "left_out", names);
			jout_int(scan, "unindexed", (int64_t)weak.unindexed);
			jout_add(o, "scan", scan);
		}
		struct jout *broker = jout_object();
		jout_bool(broker, "running", arc == 0);
		if (arc == 0) {
			jout_int(broker, "pid", l.pid);
			jout_add(broker, "grants", cli_grants_json(&l));
		}
		jout_add(o, "broker", broker);
		struct jout *m = jout_object();
		jout_str(m, "winner", model.winner);
		jout_str(m, "why", model.why);
		jout_add(o, "model_credential", m);
		jout_add(o, "session", session_json(&sess));
		if (jout_print(o, true) != 0) {
			broker_list_free(&l);
			weak_free(&weak);
			return cli_fail();
		}
	} else if (rc != 0) {
		printf("vault:    %s (unusable)\n", path);
	} else {
		printf("vault:    %s\n"
		       "state:    ok\n"
		       "secrets:  %lld\n"
		       "kdf:      Argon2id %s (%llu passes, %llu MiB)\n"
		       "created:  %s\n"
		       "schema:   %d, key generation %lld\n",
		       info.path, (long long)info.secrets, info.kdf_name, (unsigned long long)info.kdf_opslimit,
		       (unsigned long long)(info.kdf_memlimit >> 20), created, info.schema_version,
		       (long long)info.key_generation);
		printf("scan:     %lld fingerprinted", (long long)(info.secrets - (int64_t)weak.n_names));
		if (weak.n_names) {
			/* Names are [A-Za-z0-9_./-]: nothing to escape. */
			printf("; %zu found only by 'latch scan --unlock' (too weak%s):", weak.n_names,
			       weak.unindexed ? ", or unindexed: 'latch rekey' indexes them" : "");
			for (size_t i = 0; i < weak.n_names; i++)
				printf("%s %s", i ? "," : "", weak.names[i]);
		}
		putchar('\n');
	}
	if (!json) {
		if (arc != 0)
			printf("broker:   not running\n");
		else
			printf("broker:   running, pid %d, %zu live grant%s\n", (int)l.pid, l.n, l.n == 1 ? "" : "s");
		for (size_t i = 0; arc == 0 && i < l.n; i++) {
			const struct broker_grant_info *g = &l.grants[i];
			/* What the broker says is shown, never obeyed: escaped. */
			char until[32], text[4 * PATH_MAX];
			format_time_utc(g->deadline, until);
			text_escape(g->id ? g->id : "?", text, sizeof text);
			printf("  %s until %s:", text, until);
			cli_print_escaped(g->names, g->n_names, " ", ",");
			if (g->uses_left >= 0)
				printf(", %lld uses left", (long long)g->uses_left);
			printf(", %s", g->n_cmds ? "for" : "any command");
			cli_print_escaped(g->cmds, g->n_cmds, " ", ", ");
			putchar('\n');
		}
	}
	if (!json) {
		char why[2 * sizeof model.why];
		text_escape(model.why, why, sizeof why); /* may name a variable's profile */
		printf("model:    %s: %s\n", model.winner, why);
		session_print(&sess);
	}
	broker_list_free(&l);
	weak_free(&weak);
	if (cli_finish_output() != 0)
		return cli_fail();
	return rc == 0 ? 0 : cli_fail();
}
