/* latch broker: the broker daemon, normally started on demand by grant. */
#include "cli.h"

#include "../audit/audit.h"
#include "../run/run.h"

#include <errno.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char usage_broker[] =
	"usage: latch broker [--foreground] [--passphrase-fd N]\n"
	"       latch broker stop\n"
	"\n"
	"The broker daemon for this vault. 'latch grant' starts it on demand; you\n"
	"rarely run it by hand. It holds granted values in locked memory, enforces\n"
	"each grant's deadline, uses and commands, records every release in its\n"
	"stream of the audit log before it happens, and forgets values when a grant\n"
	"ends. It holds no data key and cannot read the vault.\n"
	"\n"
	"Only a passphrase holder starts a broker: with no argument, this asks for\n"
	"the passphrase, starts one and enrols it (its key and its audit stream);\n"
	"grants go only to a broker that proves it was started that way. It\n"
	"listens on a socket in $XDG_RUNTIME_DIR/latch (else in the vault's\n"
	"directory, run/), and exits LATCH_BROKER_IDLE seconds (default 600) after\n"
	"its last grant ended and its last request.\n"
	"\n"
	"  --foreground       do not detach; logs go to stderr; stop with Ctrl-C\n"
	"  --passphrase-fd N  read the passphrase from fd N instead of /dev/tty\n"
	"  stop               stop the running broker: every grant ends (no\n"
	"                     passphrase needed: it only narrows access)\n"
	"  -h, --help         show this help\n";

/* The broker's audit stream, kept in this process only, and its file in
 * the vault's directory: the broker never opens the vault itself. */
struct recorder_ctx {
	const char *vault_dir;
	struct audit_stream *stream;
};

static int enrol(void *ctx, const struct secbuf *stream_keys)
{
	struct recorder_ctx *r = ctx;
	return audit_stream_open(stream_keys, r->vault_dir, &r->stream);
}

static int record(void *ctx, const struct broker_event *evs, size_t n)
{
	struct recorder_ctx *r = ctx;
	if (n > BROKER_RECORD_BATCH)
		return latch_error(LATCH_OPERR, "too many audit events in one commit");
	static struct audit_secret_ref refs[BROKER_RECORD_BATCH][BROKER_MAX_NAMES];
	static struct audit_event out[BROKER_RECORD_BATCH];
	static struct audit_mint mints[BROKER_RECORD_BATCH];
	for (size_t k = 0; k < n; k++) {
		const struct broker_event *e = &evs[k];
		size_t n_refs = e->n < BROKER_MAX_NAMES ? e->n : BROKER_MAX_NAMES;
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
			.has_exit = e->exit_status >= 0,
			.exit_status = e->exit_status,
			.lost_exits = e->lost_exits,
			.pid = e->pid,
			.uid = e->uid,
			.exe = e->exe,
			.cwd = e->cwd,
			.argv = e->argv,
			.argc = e->argc,
		};
		out[k].runner = e->runner;
		out[k].has_session = e->has_session;
		out[k].in_session = e->in_session;
		out[k].no_redact = e->no_redact;
		if (e->redacted) {
			int64_t total = e->redacted_token > 0 ? e->redacted_token : 0;
			for (size_t i = 0; i < n_refs; i++)
				total += e->redacted[i];
			out[k].has_redactions = true;
			out[k].redactions = total;
			out[k].redacted = e->redacted;
			out[k].redacted_token = e->redacted_token;
		}
		out[k].paths = e->paths;
		out[k].n_paths = e->n_paths;
		out[k].scope = e->scope;
		if (e->mint) {
			mints[k] = (struct audit_mint){e->mint->profile, e->mint->rule_id, e->mint->expires_at,
						       e->mint->iss,     e->mint->sub,     e->mint->jti};
			out[k].mint = &mints[k];
		}
	}
	return audit_stream_append(r->stream, out, n);
}

/* In a runner the broker forked: start the job's child with run/. The
 * values stay views into the runner's copy of the grant. */
static int run_job(const struct broker_run_job *j)
{
	static struct run_plan p;
	if (j->n_refs > RUN_MAX_REFS || j->n_allow_env > sizeof p.allow_env / sizeof p.allow_env[0] ||
	    strlen(j->exe) >= sizeof p.path)
		return 125;
	for (size_t i = 0; i < j->n_refs; i++) {
		p.refs[i] = (struct run_ref){(char *)j->refs[i].var, (char *)j->refs[i].name, j->refs[i].as_file, i};
		p.secrets[i] = (struct run_secret){.name = j->refs[i].name, .value = j->values[i]};
	}
	p.n_refs = p.n_secrets = j->n_refs;
	/* run/ wipes it with the plan's values, once the child has them. */
	p.store = j->store;
	for (size_t i = 0; i < j->n_allow_env; i++)
		p.allow_env[i] = j->allow_env[i];
	p.n_allow_env = j->n_allow_env;
	p.base_env = j->env;
	p.no_pty = j->no_pty;
	p.no_redact = j->no_redact;
	p.token_var = j->token_var;
	p.prepared = j->prepared;
	for (size_t i = 0; j->prepared && i < j->n_refs; i++)
		p.prepared_index[i] = j->prepared_index[i];
	p.argv = j->argv;
	snprintf(p.path, sizeof p.path, "%s", j->exe);
	p.redacted_token = -1;
	int status = run_serve(&p, j->cwd_fd, j->control);
	for (size_t i = 0; i < j->n_refs; i++)
		j->redacted[i] = p.redacted[i];
	j->redacted[j->n_refs] = p.redacted_token;
	return status;
}

/* When a grant arrives: its relay, compiled once for all its runs (the
 * forms of every value it holds). */
static void *prepare_relay(const struct broker_item *items, size_t n)
{
	struct run_needle needles[BROKER_MAX_NAMES];
	for (size_t i = 0; i < n && i < BROKER_MAX_NAMES; i++)
		needles[i] = (struct run_needle){items[i].name, items[i].value.data, items[i].value.len};
	return run_redactor_new(needles, n < BROKER_MAX_NAMES ? n : BROKER_MAX_NAMES);
}

static void discard_relay(void *prepared)
{
	run_redactor_free(prepared);
}

/* The daemon itself: exec'd by a passphrase holder with the enrolment
 * socket as fd 3. */
static int serve(bool foreground)
{
	char dir[PATH_MAX];
	struct recorder_ctx r = {dir, NULL};
	if (broker_check_pristine() != 0 || broker_detach(foreground, 3) != 0 || vault_dir(dir, sizeof dir) != 0)
		return cli_fail();
	/* A write past a file size limit fails (EFBIG) and is refused like
	 * any other; it must not kill the broker. */
	signal(SIGXFSZ, SIG_IGN);
	struct broker_recorder rec = {enrol, record, &r};
	static const struct broker_prep prep = {prepare_relay, discard_relay};
	int rc = broker_serve(dir, 3, &rec, run_job, &prep);
	audit_stream_free(r.stream);
	return rc == 0 ? 0 : cli_fail();
}

static volatile pid_t foreground_child;

static void pass_on(int sig)
{
	if (foreground_child > 0)
		kill(foreground_child, sig);
}

static int stop(void)
{
	char dir[PATH_MAX];
	pid_t pid = 0;
	if (vault_dir(dir, sizeof dir) != 0 || broker_stop(dir, 5000, &pid) != 0)
		return cli_fail();
	if (pid)
		printf("Stopped the broker (pid %d): every grant has ended.\n", (int)pid);
	else
		printf("No broker is running.\n");
	return cli_finish_output() == 0 ? 0 : cli_fail();
}

int cmd_broker(int argc, char **argv)
{
	static const struct option opts[] = {{"foreground", no_argument, NULL, 'f'},
					     {"passphrase-fd", required_argument, NULL, 'p'},
					     {"enrol-fd", required_argument, NULL, 'E'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool foreground = false;
	int fd = -1, enrol_fd = -1, c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "broker")) != -1) {
		switch (c) {
		case 'f':
			foreground = true;
			break;
		case 'p':
			if (parse_fd(optarg, &fd) != 0)
				return cli_fail();
			break;
		case 'E':
			/* Internal: how a passphrase holder's latch starts one. */
			if (strcmp(optarg, "3") != 0)
				return cli_usage("broker", "--enrol-fd is for latch itself");
			enrol_fd = 3;
			break;
		case 'h':
			return cli_help(usage_broker);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind == argc - 1 && !strcmp(argv[optind], "stop") && !foreground && fd < 0 && enrol_fd < 0)
		return stop();
	if (optind != argc)
		return cli_usage("broker", "unexpected argument '%s'", argv[optind]);
	if (enrol_fd == 3)
		return serve(foreground);

	/* By hand: the passphrase, then a broker started and enrolled. */
	char dir[PATH_MAX];
	struct vault *v = NULL;
	struct broker_session s;
	if (vault_dir(dir, sizeof dir) != 0 || cli_open_unlocked(fd, &v) != 0)
		return cli_fail();
	int rc = broker_connect_verified(dir, cli_broker_key, v, &s);
	if (rc == 0) {
		printf("A broker is already running (pid %d).\n", (int)s.pid);
		broker_session_close(&s);
		vault_close(v);
		return cli_finish_output() == 0 ? 0 : cli_fail();
	}
	pid_t pid = 0;
	if (rc == 1)
		rc = cli_broker_start(v, dir, foreground, &pid);
	vault_close(v); /* the data key goes before any waiting */
	if (rc != 0)
		return cli_fail();
	if (!foreground) {
		printf("Started the broker (pid %d).\n", (int)pid);
		return cli_finish_output() == 0 ? 0 : cli_fail();
	}
	/* In the foreground the broker is our child, in our process group: a
	 * Ctrl-C reaches it; we wait and pass its status on. */
	foreground_child = pid;
	signal(SIGINT, SIG_IGN);
	struct sigaction sa = {.sa_handler = pass_on};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	int ws = 0;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}
