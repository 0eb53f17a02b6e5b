/* Helpers shared by the cmd_*.c files. */
#include "cli.h"

#include "../audit/audit.h"

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

void cli_passphrase_done(int fd)
{
	/* 0-2 are the caller's own streams, which the child gets anyway. */
	if (fd > 2)
		close(fd);
}

/* A log from before the secrets digest is verified in full and given
 * its digest before this command changes anything: a set or rm on a row
 * rolled back earlier would otherwise bury the rollback. */
static int upgrade_audit(struct vault *v)
{
	if (audit_state_version(vault_db(v)) != 1)
		return 0;
	struct secbuf *writer = NULL, *verifier = NULL;
	sqlite3 *db = vault_db(v);
	int rc = vault_key(v, "audit-writer", false, &writer) == 0 && vault_key(v, "audit-verifier", false, &verifier) == 0 &&
			 sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
		 ? audit_check_secrets(db, writer, verifier, vault_rows, v)
		 : -1;
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = latch_error(LATCH_OPERR, "cannot upgrade the audit log: %s", sqlite3_errmsg(db));
	if (rc != 0 && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	secbuf_free(writer);
	secbuf_free(verifier);
	return rc;
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
	if (rc == 0 && upgrade)
		rc = upgrade_audit(*v);
	if (rc != 0) {
		vault_close(*v);
		*v = NULL;
		return -1;
	}
	vault_on_change(*v, cli_record, NULL);
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
