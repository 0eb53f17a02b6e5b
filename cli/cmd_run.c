/* latch run: resolve references, get the values released by the broker
 * under a human's grant, and run one command with them. */
#include "cli.h"

#include "../broker/broker.h"
#include "../audit/audit.h"
#include "../federation/federation.h"
#include "../run/run.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>

extern char **environ;

const char usage_run[] =
	"usage: latch run [--env VAR=latch://NAME]... [--env-file FILE] [--file VAR=latch://NAME]...\n"
	"                 [--fed PROFILE [--fed-file]] [--pristine] [--keep VAR]... [--no-pty]\n"
	"                 [--no-redact] [--passphrase-fd N]\n"
	"                 [--] CMD [ARG...]\n"
	"\n"
	"Run CMD with secrets delivered by reference. Every variable whose value is\n"
	"latch://NAME (in latch's own environment, --env, or an --env-file of such\n"
	"lines, safe to commit) gets the value of secret NAME in the child only;\n"
	"--file puts the value in a read-only 0600 memory file, never on disk, that\n"
	"CMD inherits as descriptor 3, 4, ... (in order), and sets VAR to its path,\n"
	"/dev/fd/N. Values never appear in argv.\n"
	"\n"
	"CMD gets descriptors 0, 1 and 2 and the --file ones, no other. Its\n"
	"environment never holds a variable that makes a program load, run or\n"
	"print what someone else chose: LD_*, BASH_FUNC_*, glibc's secure-mode\n"
	"list (GCONV_PATH, GLIBC_TUNABLES, LOCPATH, ...), BASH_ENV, ENV, SHELLOPTS,\n"
	"BASHOPTS, PS4, PROMPT_COMMAND, PYTHONPATH, PYTHONSTARTUP, PERL5OPT,\n"
	"RUBYOPT, NODE_OPTIONS, JAVA_TOOL_OPTIONS and the like (latch(1) lists\n"
	"them): they are removed, and no reference or --keep may name one.\n"
	"\n"
	"The broker starts CMD, under a live grant that covers every name and CMD\n"
	"(see 'latch grant'), after recording the release in the audit log: its\n"
	"runner starts CMD with the values, in this directory, on this process's\n"
	"stdin, stdout and stderr; the values never reach latch run. latch run\n"
	"waits, passes on the signals it gets (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT,\n"
	"Ctrl-Z and fg, SIGWINCH, SIGUSR1/2) to CMD's process group, and exits with\n"
	"CMD's status; if latch run dies, CMD's process group gets SIGTERM, then\n"
	"SIGKILL 3 s later. When stdin or stdout is a terminal, CMD runs on a\n"
	"pseudo-terminal of its own (/dev/tty, Ctrl-C, Ctrl-Z and full-screen\n"
	"programs work; the terminal is restored however CMD ends). With no such grant and a\n"
	"human at the terminal, latch asks for the passphrase for this one run and\n"
	"starts CMD itself; with no terminal it exits 4 and prints the command a\n"
	"human should run.\n"
	"\n"
	"  --env VAR=latch://NAME   a reference (repeatable)\n"
	"  --env-file FILE          references, one VAR=latch://NAME per line\n"
	"  --file VAR=latch://NAME  deliver as a file; VAR holds its path\n"
	"  --fed PROFILE            give CMD a model-API token minted from workload\n"
	"                           identity (see 'latch fed'); also LATCH_FED_PROFILE.\n"
	"                           CMD gets ANTHROPIC_AUTH_TOKEN (and the profile's\n"
	"                           ANTHROPIC_BASE_URL) and never ANTHROPIC_API_KEY (even\n"
	"                           empty, it would win), the ANTHROPIC_* federation\n"
	"                           variables, ANTHROPIC_PROFILE, ANTHROPIC_CONFIG_DIR or\n"
	"                           ACTIONS_ID_TOKEN_REQUEST_*: it cannot mint its own\n"
	"  --fed-file               for a CMD that outlives a token: instead of the\n"
	"                           variable, a private Anthropic configuration directory\n"
	"                           (ANTHROPIC_CONFIG_DIR, ANTHROPIC_PROFILE) whose\n"
	"                           credentials file latch rewrites before each expiry\n"
	"                           while CMD runs, and removes when it exits\n"
	"  --no-pty                 never a pseudo-terminal: CMD gets the terminal as\n"
	"                           it is, and has no controlling terminal\n"
	"  --no-redact              CMD writes to stdout and stderr as they are (the\n"
	"                           release record says so)\n"
	"  --pristine               start CMD from an empty environment\n"
	"  --keep VAR               with --pristine, keep this variable (repeatable)\n"
	"  --passphrase-fd N        for a one-shot release without a grant (N > 2;\n"
	"                           closed once read)\n"
	"  -h, --help               show this help\n"
	"\n"
	"Limits: 64 variables with references (64 distinct secrets), 128 --env\n"
	"and --file, 16 --env-file, 64 --keep; a secret name is at most 128 bytes,\n"
	"a value at most 1 MiB.\n"
	"\n"
	"Exit status: CMD's own; 128+N if it died of signal N; 4 if no grant allows\n"
	"the release; 125 if latch failed before running it (usage errors too),\n"
	"126 if it could not be run, 127 if it was not found.\n"
	"What CMD writes reaches stdout and stderr with every granted value (and\n"
	"the model token), in any common encoding, replaced by [latch:NAME]: a\n"
	"backstop, not a boundary (rev, compression or a file defeat it).\n";

/* Every failure of latch run's own before exec exits 125, usage errors
 * included: any other number could be CMD's own status. */
#define RUN_FAILED 125

static int run_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_usage(const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cli_usage("run", "%s", msg);
	return RUN_FAILED;
}

struct release {
	const char *names[RUN_MAX_REFS]; /* the plan's secrets' names */
	size_t n;
	struct vault *v;                /* a one-shot release: the unlocked vault */
	char reason[BROKER_REASON_MAX]; /* why the broker said no */
};

/* Ask the broker to run the plan under a grant: it sends the request and
 * our stdin, stdout, stderr and working directory; the values stay in
 * the broker. 0 started (*run connected to its runner), 1 refused or no
 * broker (reason set), -1 error. */
static int start_run(const char *dir, struct run_plan *p, struct release *r, struct broker_run *run)
{
	char cwd[PATH_MAX];
	struct broker_ref refs[RUN_MAX_REFS];
	for (size_t i = 0; i < p->n_refs; i++)
		refs[i] = (struct broker_ref){p->refs[i].var, p->refs[i].name, p->refs[i].as_file};
	int cwd_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd_fd < 0)
		return latch_error(LATCH_OPERR, "cannot open the working directory: %s", strerror(errno));
	char **env = run_request_env(p);
	struct broker_run_req req = {.exe = p->path,
				     .cwd = getcwd(cwd, sizeof cwd) ? cwd : NULL,
				     .argv = p->argv,
				     .env = env,
				     .refs = refs,
				     .n_refs = p->n_refs,
				     .in_session = run_in_session(NULL),
				     .no_pty = p->no_pty,
				     .no_redact = p->no_redact,
				     .token_var = p->token_var,
				     .stdio = {0, 1, 2},
				     .cwd_fd = cwd_fd};
	int rc = env ? broker_run_start(dir, &req, run) : latch_error(LATCH_OPERR, "out of memory");
	run_request_env_free(env, p);
	close(cwd_fd);
	if (rc == 1)
		snprintf(r->reason, sizeof r->reason, "%s", run->reason);
	return rc;
}

/* A word the human's shell reads back as exactly itself: bare when it
 * holds only characters no POSIX shell treats specially, else in single
 * quotes, each ' written as '\''. Appended to `b` (`cap` bytes, `*len`
 * used); false if it does not fit. */
static bool shell_word(char *b, size_t cap, size_t *len, const char *w)
{
	static const char bare[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@%+,-";
	bool plain = w[0] && strspn(w, bare) == strlen(w);
	size_t need = 1 + (plain ? strlen(w) : 2 + strlen(w));
	for (const char *c = w; !plain && *c; c++)
		need += *c == '\'' ? 3 : 0;
	if (*len + need >= cap)
		return false;
	b[(*len)++] = ' ';
	if (!plain)
		b[(*len)++] = '\'';
	for (const char *c = w; *c; c++) {
		if (!plain && *c == '\'') {
			memcpy(b + *len, "'\\''", 4);
			*len += 4;
		} else {
			b[(*len)++] = *c;
		}
	}
	if (!plain)
		b[(*len)++] = '\'';
	b[*len] = '\0';
	return true;
}

/* Refused with no terminal: say what a human can run, as a line that
 * pasted into a shell runs that grant and nothing else, naming the real
 * program (what the grant checks) rather than what the agent typed. */
static void deny_with_hint(const struct release *r, const struct run_plan *p)
{
	/* The broker's reason may name the program too. */
	const char *reason = !text_is_plain(r->reason) ? "no live grant covers this program" : r->reason;
	if (!text_is_plain(p->path)) {
		latch_error(LATCH_DENIED, "%s; the program's path has control characters, so no grant command is shown",
			    reason);
		return;
	}
	/* Names are [A-Za-z0-9][A-Za-z0-9_./-]*: quoted all the same. */
	size_t cap = sizeof "latch grant --cmd" + 4 * strlen(p->path) + 3;
	for (size_t i = 0; i < r->n; i++)
		cap += 4 * strlen(r->names[i]) + 3;
	char *hint = malloc(cap);
	size_t len = 0;
	bool ok = hint != NULL;
	if (ok)
		len = (size_t)snprintf(hint, cap, "latch grant");
	for (size_t i = 0; ok && i < r->n; i++)
		ok = shell_word(hint, cap, &len, r->names[i]);
	ok = ok && shell_word(hint, cap, &len, "--cmd") && shell_word(hint, cap, &len, p->path);
	/* Cut short, the line could lose --cmd and grant every program. */
	static const char sep[] = "; a human can run: ";
	if (ok && strlen(reason) + strlen(sep) + len <= LATCH_ERROR_MAX)
		latch_error(LATCH_DENIED, "%s%s%s", reason, sep, hint);
	else
		latch_error(LATCH_DENIED, "%s; the grant command is too long to show", reason);
	free(hint);
}

/* No grant, but a human is here: the passphrase releases for this run.
 * 0, or the status to exit with: 4 if the passphrase did not come or
 * was wrong (still no grant), else 125. Decided where it failed, before
 * anything else can report. */
static int one_shot(int fd, struct release *r, struct run_plan *p)
{
	fprintf(stderr, "latch: %s; the passphrase releases %s for this run only\n", r->reason,
		r->n == 1 ? r->names[0] : "these secrets");
	if (cli_open_unlocked(fd, &r->v) != 0)
		return latch_last_status() == LATCH_DENIED ? LATCH_DENIED : RUN_FAILED;
	struct secbuf *values[RUN_MAX_REFS] = {0};
	int rc = vault_read(r->v, r->names, r->n, "release", values);
	for (size_t i = 0; i < r->n; i++) {
		p->secrets[i].own = values[i];
		if (values[i])
			p->secrets[i].value = *values[i];
	}
	return rc == 0 ? 0 : RUN_FAILED;
}

/* The child's model token: the token (and the profile's base URL) as
 * variables, or with --fed-file a directory. Every federation variable
 * goes; a reference may not name one. 0, or -1 reported. */
static int plan_fed(struct run_plan *p, struct fed_profile *prof, struct fed_token *t, bool as_file,
		    struct cli_fed_file *f)
{
	for (size_t i = 0; i < p->n_refs; i++)
		if (fed_child_drops(p->refs[i].var, strlen(p->refs[i].var)))
			return latch_error(LATCH_USAGE,
					   "with --fed, %s never reaches the child: remove its reference (latch://%s)",
					   p->refs[i].var, p->refs[i].name);
	if (cli_fed_token(prof, t) != 0)
		return -1;
	p->drop = fed_child_drops;
	if (prof->base_url)
		p->vars[p->n_vars++] = (struct run_var){"ANTHROPIC_BASE_URL", prof->base_url, strlen(prof->base_url)};
	if (!as_file) {
		p->vars[p->n_vars++] =
			(struct run_var){"ANTHROPIC_AUTH_TOKEN", (const char *)t->token->data, t->token->len};
		/* The relay keeps it out of the output: [latch:model-token]. */
		p->token_var = "ANTHROPIC_AUTH_TOKEN";
		return 0;
	}
	if (cli_fed_file_open(f, prof, t) != 0)
		return -1;
	p->vars[p->n_vars++] = (struct run_var){"ANTHROPIC_CONFIG_DIR", f->dir, strlen(f->dir)};
	p->vars[p->n_vars++] = (struct run_var){"ANTHROPIC_PROFILE", prof->name, strlen(prof->name)};
	p->tick = cli_fed_file_tick;
	p->tick_ctx = f;
	p->tick_s = cli_fed_until_refresh(t->expires_at);
	return 0;
}

/* A one-shot run's exit, recorded by this process (a runner's is
 * recorded by the broker when it reaps the runner). */
static void report_exit(struct release *r, const struct run_plan *p, int status)
{
	{
		struct audit_secret_ref refs[RUN_MAX_REFS];
		for (size_t i = 0; i < r->n; i++)
			refs[i] = (struct audit_secret_ref){r->names[i], 0};
		int64_t total = p->redacted_token > 0 ? p->redacted_token : 0;
		for (size_t i = 0; i < r->n; i++)
			total += p->redacted[i];
		struct audit_event ev = {.event = "exit",
					 .secrets = refs,
					 .n_secrets = r->n,
					 .has_exit = status >= 0,
					 .exit_status = status,
					 .has_redactions = p->has_redacted,
					 .redactions = total,
					 .redacted = p->has_redacted ? p->redacted : NULL,
					 .redacted_token = p->redacted_token,
					 .self = true,
					 .exe = p->path};
		audit_record_event(r->v, &ev);
	}
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] =
		{{"env", required_argument, NULL, 'e'},  {"env-file", required_argument, NULL, 'E'},
		 {"file", required_argument, NULL, 'f'}, {"pristine", no_argument, NULL, 'P'},
		 {"keep", required_argument, NULL, 'k'}, {"passphrase-fd", required_argument, NULL, 'p'},
		 {"fed", required_argument, NULL, 'F'},  {"fed-file", no_argument, NULL, 'D'},
		 {"no-pty", no_argument, NULL, 'T'},     {"no-redact", no_argument, NULL, 'R'},
		 {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
	static struct run_plan plan;
	struct run_plan *p = &plan;
	const char *specs[2 * RUN_MAX_REFS], *env_files[16];
	bool spec_file[2 * RUN_MAX_REFS];
	size_t n_specs = 0, n_env_files = 0;
	int fd = -1, c;
	const char *fed = getenv("LATCH_FED_PROFILE");
	bool fed_file = false;
	/* '+': options end at CMD, whose own options are its business. */
	while ((c = cli_getopt(argc, argv, "+:h", opts, "run")) != -1) {
		switch (c) {
		case 'e':
		case 'f':
			if (n_specs == 2 * RUN_MAX_REFS)
				return run_usage("more than %d --env and --file", 2 * RUN_MAX_REFS);
			spec_file[n_specs] = c == 'f';
			specs[n_specs++] = optarg;
			break;
		case 'E':
			if (n_env_files == sizeof env_files / sizeof env_files[0])
				return run_usage("more than %zu --env-file", sizeof env_files / sizeof env_files[0]);
			env_files[n_env_files++] = optarg;
			break;
		case 'P':
			p->pristine = true;
			break;
		case 'k':
			if (p->n_keep == RUN_MAX_REFS)
				return run_usage("more than %d --keep", RUN_MAX_REFS);
			if (run_env_unsafe(optarg, strlen(optarg))) {
				latch_error(
					LATCH_USAGE,
					"'%s' cannot be kept: loader, shell and interpreter start-up variables never reach the child",
					optarg);
				return RUN_FAILED;
			}
			p->keep[p->n_keep++] = optarg;
			break;
		case 'p':
			if (parse_fd(optarg, &fd) != 0)
				return RUN_FAILED;
			/* The child gets 0-2: a passphrase there would reach it. */
			if (fd <= 2) {
				latch_error(LATCH_USAGE,
					    "--passphrase-fd %d: descriptors 0-2 go to the child; use 3 or above", fd);
				return RUN_FAILED;
			}
			break;
		case 'F':
			fed = optarg;
			break;
		case 'T':
			p->no_pty = true;
			break;
		case 'R':
			p->no_redact = true;
			break;
		case 'D':
			fed_file = true;
			break;
		case 'h':
			return cli_help(usage_run) == 0 ? 0 : RUN_FAILED;
		default:
			return RUN_FAILED; /* cli_getopt reported it */
		}
	}
	if (optind == argc)
		return run_usage("name a command to run");
	if (fed && !*fed)
		fed = NULL;
	if (fed_file && !fed)
		return run_usage("--fed-file needs --fed PROFILE (or LATCH_FED_PROFILE)");
	if (fed && !fed_name_valid(fed))
		return run_usage("'%s' is not a profile name", fed);
	p->argv = argv + optind;
	/* Later sources override earlier ones: the environment, env files,
	 * then --env / --file in command-line order. */
	if (!p->pristine && run_add_environ(p, environ) != 0)
		return RUN_FAILED;
	for (size_t i = 0; i < n_env_files; i++)
		if (run_add_env_file(p, env_files[i]) != 0)
			return RUN_FAILED;
	for (size_t i = 0; i < n_specs; i++)
		if (run_add_ref(p, specs[i], spec_file[i]) != 0)
			return RUN_FAILED;
	int rc = run_resolve(p->argv[0], p->path);
	if (rc != 0)
		return rc;

	/* The model token first: if it cannot be had, no secret is released
	 * (and no release recorded) for a run that will not happen. */
	static struct fed_profile prof;
	static struct fed_token tok;
	static struct cli_fed_file ff;
	if (fed && (fed_profile_load(fed, &prof) != 0 || plan_fed(p, &prof, &tok, fed_file, &ff) != 0)) {
		cli_fed_file_close(&ff);
		fed_token_clear(&tok);
		fed_profile_free(&prof);
		return RUN_FAILED;
	}

	struct release r = {0};
	char dir[PATH_MAX];
	r.n = run_secrets(p);
	for (size_t i = 0; i < r.n; i++)
		r.names[i] = p->secrets[i].name;
	int status;
	if (r.n == 0) {
		cli_passphrase_done(fd);
		status = run_child(p); /* nothing to release: no broker */
	} else {
		struct broker_run run = {.fd = -1};
		rc = vault_dir(dir, sizeof dir) != 0 ? -1 : start_run(dir, p, &r, &run);
		if (rc == 1 && (fd >= 0 || tty_available())) {
			rc = one_shot(fd, &r, p); /* reads fd, and closes it */
			fd = -1;
		} else if (rc == 1) {
			deny_with_hint(&r, p);
			rc = LATCH_DENIED;
		} else if (rc != 0) {
			rc = RUN_FAILED;
		}
		if (rc != 0) {
			run_values_free(p);
			vault_close(r.v);
			cli_fed_file_close(&ff);
			fed_token_clear(&tok);
			fed_profile_free(&prof);
			return rc;
		}
		cli_passphrase_done(fd); /* unread: a grant covered the run */
		if (run.fd >= 0) {
			status = run_wait(run.fd, p);
			broker_run_close(&run);
		} else {
			status = run_child(p);
			report_exit(&r, p, status);
		}
	}
	cli_fed_file_close(&ff);
	fed_token_clear(&tok);
	fed_profile_free(&prof);
	vault_close(r.v);
	run_plan_free(p);
	return status;
}
