/* Helpers shared by the cmd_*.c files. */
#include "cli.h"

#include "../run/run.h"

#include "../audit/audit.h"
#include "../hooks/hooks.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

int cli_fail(void)
{
	return (int)latch_last_status();
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	latch_error(LATCH_USAGE, "%s: %s (see 'latch %s --help')", cmd, msg, cmd);
	return LATCH_USAGE;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts, const char *cmd)
{
	opterr = 0;
	int c = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (c == '?' || c == ':') {
		const char *arg = argv[optind - 1];
		if (c == ':')
			cli_usage(cmd, "option '%s' needs a value", arg);
		else if (optopt && optopt != '?')
			cli_usage(cmd, "unknown option '-%c'", optopt);
		else
			cli_usage(cmd, "unknown option '%s'", arg);
		return '?';
	}
	return c;
}

int cli_help(const char *usage)
{
	fputs(usage, stdout);
	return cli_finish_output() == 0 ? 0 : LATCH_OPERR;
}

int cli_open_vault(struct vault **v)
{
	char dir[PATH_MAX];
	if (vault_dir(dir, sizeof dir) != 0)
		return -1;
	return vault_open(dir, v);
}

void cli_passphrase_done(int fd)
{
	/* 0-2 are the caller's own streams, which the child gets anyway. */
	if (fd > 2)
		close(fd);
}

static struct audit_recorder recorder;

void cli_record_argv(int argc, char **argv)
{
	recorder.argc = argc;
	recorder.argv = argv;
}

struct audit_recorder *cli_recorder(const struct audit_grant *grant)
{
	recorder.grant = grant;
	return &recorder;
}

static int open_unlocked(int passphrase_fd, bool more, bool upgrade, struct vault **v)
{
	struct secbuf *pass = NULL;
	*v = NULL;
	int rc = cli_open_vault(v);
	if (rc == 0)
		rc = vault_read_passphrase(passphrase_fd, "Passphrase: ", false, &pass);
	if (!more)
		cli_passphrase_done(passphrase_fd);
	if (rc == 0)
		rc = vault_unlock(*v, pass);
	secbuf_free(pass);
	/* A log from before the secrets digest gets it before this command
	 * changes anything. */
	if (rc == 0 && upgrade)
		rc = audit_upgrade(*v);
	if (rc != 0) {
		vault_close(*v);
		*v = NULL;
		return -1;
	}
	vault_on_change(*v, audit_record_change, cli_recorder(NULL));
	vault_on_value(*v, hooks_index_value, NULL);
	return 0;
}

int cli_open_unlocked(int passphrase_fd, struct vault **v)
{
	return open_unlocked(passphrase_fd, false, true, v);
}

int cli_open_unlocked_more(int passphrase_fd, struct vault **v)
{
	return open_unlocked(passphrase_fd, true, true, v);
}

int cli_open_to_verify(int passphrase_fd, struct vault **v)
{
	return open_unlocked(passphrase_fd, false, false, v);
}

int cli_finish_output(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return latch_error(LATCH_OPERR, "cannot write to standard output: %s", strerror(errno));
	return 0;
}

int cli_passphrase_args(int argc, char **argv, const char *cmd, const char *usage, bool one_name, int *fd)
{
	static const struct option opts[] = {{"passphrase-fd", required_argument, NULL, 'p'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int c;
	*fd = -1;
	while ((c = cli_getopt(argc, argv, ":h", opts, cmd)) != -1) {
		switch (c) {
		case 'p':
			if (parse_fd(optarg, fd) != 0)
				return cli_fail();
			break;
		case 'h':
			return cli_help(usage);
		default:
			return LATCH_USAGE;
		}
	}
	if (!one_name)
		return optind == argc ? -1 : cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (argc - optind != 1)
		return cli_usage(cmd, "expected one NAME");
	if (!latch_name_valid(argv[optind]))
		return cli_usage(cmd, "invalid secret name");
	return -1;
}

void cli_print_escaped(char *const *items, size_t n, const char *first, const char *sep)
{
	char text[4 * PATH_MAX];
	for (size_t k = 0; k < n; k++) {
		text_escape(items[k] ? items[k] : "?", text, sizeof text);
		printf("%s%s", k ? sep : first, text);
	}
}

void cli_warn_short(const char *name)
{
	fprintf(stderr,
		"latch: warning: '%s' is shorter than %d bytes: redaction does not look for it in what a child "
		"prints (docs/redaction.md)\n",
		name, RUN_REDACT_MIN);
}
