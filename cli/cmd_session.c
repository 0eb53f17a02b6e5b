/* latch session: a human runs the coding agent (by default a shell) in a
 * Landlock domain, from which the broker, its runners and their children
 * cannot be traced, read through /proc or signalled (docs/design.md
 * section 1, P8). The broker is started first, outside the domain; the
 * launcher stays outside too, waits, and keeps a --fed token fresh. */
#include "cli.h"

#include "../broker/broker.h"
#include "../federation/federation.h"
#include "../run/run.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char usage_session[] =
	"usage: latch session [--fed PROFILE] [--passphrase-fd N] [--] [CMD [ARG...]]\n"
	"\n"
	"Run CMD (default $SHELL, else /bin/sh), typically a coding agent such as\n"
	"'latch session -- claude', in a Linux Landlock domain: nothing started\n"
	"inside can trace, read the /proc files (environ, mem, fd) of, or signal a\n"
	"process outside it, nor reach an abstract unix socket bound outside. The\n"
	"broker, and every child it starts for 'latch run', live outside, so a\n"
	"coding agent inside cannot take a granted value from them. Files and\n"
	"the network are not restricted: inside, everything works as before\n"
	"('latch run', 'latch grants', git), except those attacks. CMD gets\n"
	"LATCH_SESSION (the pid of this launcher, which stays outside and\n"
	"waits) and descriptors 0-2 only.\n"
	"\n"
	"If no broker runs, the passphrase is asked and one is started and enrolled\n"
	"first, outside the domain, as 'latch grant' does: no broker is ever started\n"
	"inside a session, so later grants made inside use this one. If one\n"
	"answers, nothing is asked ('latch grant' checks its proof when it hands it\n"
	"values). With no vault yet, the session runs without a broker: grants need\n"
	"one started outside ('latch grant' in a terminal outside the session).\n"
	"\n"
	"Refused (exit 3, nothing started) as root (Landlock does not hold root\n"
	"back), without Landlock ABI 6 (Linux 6.12: signal scoping), and inside a\n"
	"session already. 'latch status' says whether a shell is inside one.\n"
	"\n"
	"  --fed PROFILE      give CMD its model-API token from workload identity\n"
	"                     (see 'latch fed'), as 'latch run --fed-file' does: a\n"
	"                     private Anthropic configuration directory\n"
	"                     (ANTHROPIC_CONFIG_DIR, ANTHROPIC_PROFILE) whose\n"
	"                     credentials file the launcher rewrites before each\n"
	"                     expiry and removes at the end; ANTHROPIC_API_KEY,\n"
	"                     ANTHROPIC_AUTH_TOKEN and the federation variables are\n"
	"                     removed. Also LATCH_FED_PROFILE\n"
	"  --passphrase-fd N  read the passphrase from fd N (N > 2) instead of\n"
	"                     /dev/tty, if a broker must be started\n"
	"  -h, --help         show this help\n"
	"\n"
	"Exit status: CMD's own; 128+N if it died of signal N; 126 if it could not\n"
	"be run, 127 if it was not found; 125 if latch failed after starting it\n"
	"(entering the domain). Before CMD starts: 2 usage, 3 refused or failed,\n"
	"4 wrong passphrase. The launcher ignores SIGINT and SIGQUIT (they are\n"
	"CMD's) and passes SIGTERM and SIGHUP on to CMD.\n";

/* The launcher failed after the fork, before CMD ran (as `latch run`). */
#define SESSION_FAILED 125

/* The broker the session's grants will use: one that answers, else one
 * started and enrolled now with the passphrase (outside the domain, which
 * does not exist yet). No vault: none, and the session still runs. The
 * passphrase descriptor is closed on every path. 0, or -1 reported. */
static int ensure_broker(int fd)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct stat st;
	if (vault_dir(dir, sizeof dir) != 0 || vault_path(dir, path, sizeof path) != 0) {
		cli_passphrase_done(fd);
		return -1;
	}
	if (lstat(path, &st) != 0 && errno == ENOENT) {
		cli_passphrase_done(fd);
		fprintf(stderr,
			"latch: no vault at '%s' yet, so no broker; to grant secrets later, run 'latch grant' in a terminal outside this session\n",
			path);
		return 0;
	}
	/* Asking the broker to prove itself needs the data key, so the
	 * passphrase; the session hands it nothing, and `grant` checks the
	 * proof before it does. An answer is enough here. */
	struct broker_list l;
	bool quiet = latch_error_quiet(true);
	int rc = broker_list(dir, &l);
	latch_error_quiet(quiet);
	if (rc == 0) {
		broker_list_free(&l);
		cli_passphrase_done(fd);
		return 0;
	}
	struct vault *v = NULL;
	struct broker_session s;
	if (cli_open_unlocked(fd, &v) != 0)
		return -1;
	rc = cli_broker_session(v, dir, &s);
	if (rc == 0)
		broker_session_close(&s);
	vault_close(v); /* the data key goes before the session starts */
	return rc;
}

/* Remove every variable federation says the command must not get. */
static void drop_fed_vars(void)
{
	for (bool again = true; again;) {
		again = false;
		for (char **e = environ; e && *e; e++) {
			const char *eq = strchr(*e, '=');
			size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
			if (!fed_child_drops(*e, len))
				continue;
			char name[256];
			if (len >= sizeof name)
				continue; /* no such long name is on the list */
			memcpy(name, *e, len);
			name[len] = '\0';
			unsetenv(name);
			again = true; /* environ changed under us: from the top */
			break;
		}
	}
}

/* The child: its environment, the domain, exec. Never returns. */
static void start_cmd(char **cmd, pid_t launcher, const struct cli_fed_file *ff, const struct sigaction *old_int,
		      const struct sigaction *old_quit)
{
	sigaction(SIGINT, old_int, NULL);
	sigaction(SIGQUIT, old_quit, NULL);
	char num[24];
	snprintf(num, sizeof num, "%d", (int)launcher);
	int rc = setenv("LATCH_SESSION", num, 1);
	if (rc == 0 && ff) {
		drop_fed_vars();
		rc = setenv("ANTHROPIC_CONFIG_DIR", ff->dir, 1) | setenv("ANTHROPIC_PROFILE", ff->p->name, 1);
		if (rc == 0 && ff->p->base_url)
			rc = setenv("ANTHROPIC_BASE_URL", ff->p->base_url, 1);
	}
	if (rc != 0) {
		latch_error(LATCH_OPERR, "cannot set the session's environment: %s", strerror(errno));
		_exit(SESSION_FAILED);
	}
	umask(cli_caller_umask);
	/* A forked child has one thread, as the domain requires. */
	struct run_sandbox sb;
	if (run_sandbox_enter(&sb) != 0)
		_exit(SESSION_FAILED);
	/* Whatever latch still holds (the vault's, the passphrase's, a
	 * socket) is close-on-exec; closefrom makes sure, and keeps the
	 * command's descriptors what `latch run` gives a child: 0-2. */
	closefrom(3);
	execvp(cmd[0], cmd);
	int e = errno;
	latch_error(LATCH_OPERR, "cannot run '%s': %s", cmd[0], strerror(e));
	_exit(e == ENOENT ? 127 : 126);
}

static volatile sig_atomic_t session_child;

static void pass_on(int sig)
{
	if (session_child > 0)
		kill((pid_t)session_child, sig);
}

/* Wait for the command, keeping its credentials file fresh (ff, or
 * NULL). Returns its status: its own, or 128+N for signal N. */
static int wait_cmd(pid_t pid, struct cli_fed_file *ff)
{
	/* A pidfd becomes readable when the child ends: one poll waits for
	 * the child and for the next refresh. Without one (never on a kernel
	 * with Landlock ABI 6), a poll of a second at a time. */
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int64_t next = ff ? monotonic_ms() + 1000LL * cli_fed_until_refresh(ff->expires_at) : -1;
	for (;;) {
		int ws = 0;
		pid_t w = waitpid(pid, &ws, WNOHANG);
		if (w == pid) {
			if (pfd >= 0)
				close(pfd);
			return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
		}
		if (w < 0 && errno != EINTR) {
			/* Not ours any more: cannot happen; say so rather than spin. */
			latch_error(LATCH_OPERR, "cannot wait for the session's command: %s", strerror(errno));
			if (pfd >= 0)
				close(pfd);
			return SESSION_FAILED;
		}
		int timeout = pfd < 0 ? 1000 : -1;
		if (ff) {
			int64_t left = next - monotonic_ms();
			if (left <= 0) {
				next = monotonic_ms() + 1000LL * cli_fed_file_tick(ff);
				continue;
			}
			if (timeout < 0 || left < timeout)
				timeout = left > 86400000 ? 86400000 : (int)left;
		}
		struct pollfd p = {.fd = pfd, .events = POLLIN};
		poll(&p, pfd >= 0 ? 1 : 0, timeout);
	}
}

int cmd_session(int argc, char **argv)
{
	static const struct option opts[] = {{"fed", required_argument, NULL, 'F'},
					     {"passphrase-fd", required_argument, NULL, 'p'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int fd = -1, c;
	const char *fed = getenv("LATCH_FED_PROFILE");
	/* '+': options end at CMD, whose own options are its business. */
	while ((c = cli_getopt(argc, argv, "+:h", opts, "session")) != -1) {
		switch (c) {
		case 'F':
			fed = optarg;
			break;
		case 'p':
			if (parse_fd(optarg, &fd) != 0)
				return cli_fail();
			/* CMD gets 0-2: a passphrase there would reach it. */
			if (fd <= 2)
				return cli_usage("session",
						 "--passphrase-fd %d: descriptors 0-2 go to CMD; use 3 or above", fd);
			break;
		case 'h':
			return cli_help(usage_session);
		default:
			return LATCH_USAGE;
		}
	}
	if (fed && !*fed)
		fed = NULL;
	if (fed && !fed_name_valid(fed))
		return cli_usage("session", "'%s' is not a profile name", fed);
	const char *shell = getenv("SHELL");
	char *dflt[] = {(char *)(shell && *shell ? shell : "/bin/sh"), NULL};
	char **cmd = optind < argc ? argv + optind : dflt;

	/* Every refusal before anything is asked or started. */
	char why[128];
	int abi;
	pid_t launcher = 0;
	if (run_sandbox_available(&abi, why, sizeof why) != 0) {
		cli_passphrase_done(fd);
		latch_error(LATCH_OPERR, "cannot start a session: %s", why);
		return cli_fail();
	}
	if (run_in_session(&launcher)) {
		cli_passphrase_done(fd);
		latch_error(
			LATCH_OPERR,
			"cannot start a session inside a session (launched by pid %d): start it in a terminal outside",
			(int)launcher);
		return cli_fail();
	}
	char path[PATH_MAX];
	int rc = run_resolve(cmd[0], path);
	if (rc != 0) {
		cli_passphrase_done(fd);
		return rc;
	}
	static struct fed_profile prof;
	if (fed && fed_profile_load(fed, &prof) != 0) {
		cli_passphrase_done(fd);
		return cli_fail();
	}
	if (ensure_broker(fd) != 0) {
		fed_profile_free(&prof);
		return cli_fail();
	}
	/* The token after the broker, which records its mint. */
	static struct cli_fed_file ff;
	if (fed) {
		struct fed_token tok;
		rc = cli_fed_token(&prof, &tok);
		if (rc == 0) {
			rc = cli_fed_file_open(&ff, &prof, &tok);
			fed_token_clear(&tok); /* the file holds it; the launcher needs only its expiry */
		}
		if (rc != 0) {
			cli_fed_file_close(&ff);
			fed_profile_free(&prof);
			return cli_fail();
		}
	}

	/* As system(3): the launcher ignores the terminal's SIGINT and
	 * SIGQUIT, which are for CMD; set before the fork, so that none
	 * falls between, and put back in the child. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	fflush(NULL);
	pid_t self = getpid();
	pid_t pid = fork();
	if (pid == 0)
		start_cmd(cmd, self, fed ? &ff : NULL, &old_int, &old_quit);
	int status;
	if (pid < 0) {
		latch_error(LATCH_OPERR, "cannot start the session: %s", strerror(errno));
		status = cli_fail();
	} else {
		session_child = pid;
		struct sigaction fwd = {.sa_handler = pass_on};
		sigemptyset(&fwd.sa_mask);
		sigaction(SIGTERM, &fwd, NULL);
		sigaction(SIGHUP, &fwd, NULL);
		status = wait_cmd(pid, fed ? &ff : NULL);
	}
	cli_fed_file_close(&ff);
	fed_profile_free(&prof);
	return status;
}
