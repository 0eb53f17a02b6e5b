/* latch: keep the secrets coding agents need out of the agents' hands.
 * Entry point: harden the process, then dispatch to one cmd_<name>.c. */
#include "cli.h"

#include "../audit/audit.h"
#include "../hooks/hooks.h"

#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

static const struct cli_command commands[] = {
	{"init", cmd_init, "create a new vault", usage_init},
	{"set", cmd_set, "store a secret (value from stdin, a prompt or --file)", usage_set},
	{"ls", cmd_ls, "list secret names, versions and times; never values", usage_ls},
	{"rm", cmd_rm, "remove a secret", usage_rm},
	{"passwd", cmd_passwd, "change the passphrase", usage_passwd},
	{"rekey", cmd_rekey, "re-encrypt every value under a new data key", usage_rekey},
	{"reveal", cmd_reveal, "show a value on the terminal, never on stdout", usage_reveal},
	{"status", cmd_status, "show the state of the vault", usage_status},
	{"grant", cmd_grant, "let 'latch run' release secrets for a while (needs the passphrase)", usage_grant},
	{"grants", cmd_grants, "list the live grants", usage_grants},
	{"revoke", cmd_revoke, "end a grant, or all of them", usage_revoke},
	{"run", cmd_run, "run a command with secrets delivered by reference", usage_run},
	{"audit", cmd_audit, "query, verify, checkpoint or export the audit log", usage_audit},
	{"scan", cmd_scan, "find managed values, in any common encoding, in a commit, a push or files", usage_scan},
	{"fed", cmd_fed, "model-API tokens from workload identity (federation profiles)", usage_fed},
	{"hook", cmd_hook, "install, remove or show the git hooks that run 'latch scan'", usage_hook},
	{"session", cmd_session, "run an agent (default: a shell) where it cannot reach the broker's processes",
	 usage_session},
	{"broker", cmd_broker, "the broker daemon (started on demand)", usage_broker},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static int usage(FILE *out)
{
	fputs("usage: latch COMMAND [OPTION]... [ARG]...\n\n"
	      "latch keeps the secrets coding agents need in a local encrypted vault.\n\n"
	      "Commands:\n",
	      out);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("\nRun 'latch COMMAND --help' for the options of a command; 'man latch' for more.\n"
	      "Exit status: 0 success, 1 findings, 2 usage, 3 operational error, 4 denied.\n",
	      out);
	return 0;
}

static const struct cli_command *find(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

mode_t cli_caller_umask = 022;

int main(int argc, char **argv)
{
	/* harden_process sets 077 for latch's own files; a session's command
	 * is the user's, and gets the user's umask back. */
	cli_caller_umask = umask(077);
	/* Every vault this process opens holds the audit log's tables. */
	if (harden_process() != 0 || sodium_init() < 0 || vault_add_tables(&audit_tables) != 0 ||
	    vault_add_tables(&hooks_tables) != 0)
		return LATCH_OPERR;
	cli_record_argv(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return LATCH_USAGE;
	}
	const char *name = argv[1];
	if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
		usage(stdout);
		return cli_finish_output() == 0 ? 0 : LATCH_OPERR;
	}
	if (!strcmp(name, "--version")) {
		printf("latch %s\n", LATCH_VERSION);
		return cli_finish_output() == 0 ? 0 : LATCH_OPERR;
	}
	if (!strcmp(name, "help")) {
		const struct cli_command *c = argc > 2 ? find(argv[2]) : NULL;
		if (argc > 2 && !c) {
			latch_error(LATCH_USAGE, "no command '%s' (see 'latch --help')", argv[2]);
			return LATCH_USAGE;
		}
		if (c)
			return cli_help(c->usage);
		usage(stdout);
		return cli_finish_output() == 0 ? 0 : LATCH_OPERR;
	}
	const struct cli_command *c = find(name);
	if (!c) {
		latch_error(LATCH_USAGE, "no command '%s' (see 'latch --help')", name);
		return LATCH_USAGE;
	}
	/* The command sees argv[0] = its own name, as getopt expects. */
	return c->run(argc - 1, argv + 1);
}
