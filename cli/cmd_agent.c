/* latch agent: the broker daemon, normally started on demand by grant. */
#include "cli.h"

#include "../agent/agent.h"
#include "../audit/audit.h"

const char usage_agent[] =
	"usage: latch agent [--foreground]\n"
	"\n"
	"Run the broker daemon for this vault. 'latch grant' starts it on demand;\n"
	"you rarely run it by hand. It holds granted values in locked memory,\n"
	"enforces each grant's deadline, uses and commands, records every release\n"
	"in the audit log before it happens, and forgets values when a grant ends.\n"
	"It holds no data key and cannot read the vault. It listens on a socket in\n"
	"$XDG_RUNTIME_DIR/latch (else /tmp/latch-UID), and exits LATCH_AGENT_IDLE\n"
	"seconds (default 600) after its last grant ended and its last request.\n"
	"\n"
	"  --foreground  do not detach (logs go to stderr)\n"
	"  -h, --help    show this help\n";

/* The daemon records through the vault file it was started for. */
static int check_key(void *ctx, const struct secbuf *writer)
{
	return audit_check_writer(vault_db(ctx), writer);
}

static int record(void *ctx, const struct secbuf *writer, const struct agent_event *evs, size_t n)
{
	if (n > AGENT_RECORD_BATCH)
		return latch_error(LATCH_OPERR, "too many audit events in one commit");
	static struct audit_secret_ref refs[AGENT_RECORD_BATCH][AGENT_MAX_NAMES];
	static struct audit_event out[AGENT_RECORD_BATCH];
	for (size_t k = 0; k < n; k++) {
		const struct agent_event *e = &evs[k];
		size_t n_refs = e->n < AGENT_MAX_NAMES ? e->n : AGENT_MAX_NAMES;
		for (size_t i = 0; i < n_refs; i++)
			refs[k][i] = (struct audit_secret_ref){e->names[i], 0};
		out[k] = (struct audit_event){
			.event = e->event,
			.time = e->time,
			.decision = e->decision,
			.reason = e->reason,
			.secrets = refs[k],
			.n_secrets = n_refs,
			.grant_id = e->grant_id,
			.version = -1,
			.exit_status = e->exit_status,
			.redactions = -1,
			.uses = -1,
			.pid = e->pid ? e->pid : -1,
			.uid = e->uid,
			.exe = e->exe,
			.cwd = e->cwd,
			.argv = e->argv,
			.argc = e->argc,
		};
	}
	return audit_append_commit(vault_db(ctx), writer, out, n);
}

int cmd_agent(int argc, char **argv)
{
	static const struct option opts[] = {{"foreground", no_argument, NULL, 'f'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool foreground = false;
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "agent")) != -1) {
		switch (c) {
		case 'f':
			foreground = true;
			break;
		case 'h':
			return cli_help(usage_agent);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("agent", "unexpected argument '%s'", argv[optind]);
	char dir[PATH_MAX];
	struct vault *v = NULL;
	if (agent_detach(foreground) != 0 || vault_dir(dir, sizeof dir) != 0 || vault_open(dir, &v) != 0)
		return cli_fail();
	struct agent_recorder rec = {check_key, record, v};
	int rc = agent_serve(dir, &rec);
	vault_close(v);
	return rc == 0 ? 0 : cli_fail();
}
