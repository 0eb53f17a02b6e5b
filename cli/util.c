/* Helpers shared by the cmd_*.c files. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>

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

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
	       const char *cmd)
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

int cli_open_unlocked(int passphrase_fd, struct vault **v)
{
	struct secbuf *pass = NULL;
	if (cli_open_vault(v) != 0)
		return -1;
	if (vault_read_passphrase(passphrase_fd, "Passphrase: ", false, &pass) != 0 ||
	    vault_unlock(*v, pass) != 0) {
		secbuf_free(pass);
		vault_close(*v);
		*v = NULL;
		return -1;
	}
	secbuf_free(pass);
	vault_on_change(*v, cli_record, NULL);
	return 0;
}

int cli_finish_output(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return latch_error(LATCH_OPERR, "cannot write to standard output: %s", strerror(errno));
	return 0;
}
