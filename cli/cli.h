/* cli/ private: the command table and the helpers the commands share.
 * cli/ is the only module that prints for people or exits. */
#ifndef LATCH_CLI_H
#define LATCH_CLI_H

#include "../broker/broker.h"
#include "../common/common.h"
#include "../vault/vault.h"

#include <getopt.h>
#include <stdio.h>
#include <sys/types.h>

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
	const char *usage; /* full --help text */
};

int cmd_init(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_passwd(int argc, char **argv);
int cmd_rekey(int argc, char **argv);
int cmd_reveal(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_grant(int argc, char **argv);
int cmd_grants(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_broker(int argc, char **argv);
int cmd_hook(int argc, char **argv);
extern const char usage_hook[];
int cmd_fed(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_session(int argc, char **argv);

extern const char usage_init[], usage_set[], usage_ls[], usage_rm[], usage_passwd[], usage_rekey[], usage_reveal[],
	usage_status[], usage_audit[], usage_grant[], usage_grants[], usage_revoke[], usage_run[], usage_broker[],
	usage_fed[], usage_scan[], usage_session[];

/* A value too short for redaction to find it in a child's output (fewer
 * than RUN_REDACT_MIN bytes): one warning line naming the secret. */
void cli_warn_short(const char *name);

/* The exit status for the last reported error (docs/design.md). */
int cli_fail(void);
/* Report a usage error for `cmd` and return exit status 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long with latch's messages: returns the option, -1 at the end,
 * or '?' after reporting an unknown option or a missing argument.
 * `h` / `--help` is returned as 'h'. */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts, const char *cmd);
/* Print the usage text of `cmd` to stdout; returns 0. */
int cli_help(const char *usage);
/* The whole command line of a command whose only option is
 * --passphrase-fd: sets *fd, and with `one_name` checks that exactly one
 * operand follows and is a valid secret name (argv[optind]); without, that
 * none does. Returns -1 to go on, else the status to exit with (after
 * printing the help or reporting the usage error). */
int cli_passphrase_args(int argc, char **argv, const char *cmd, const char *usage, bool one_name, int *fd);

/* Open the vault in the usual place. */
int cli_open_vault(struct vault **v);
/* Open the vault and unlock it with a passphrase from `fd` or the tty;
 * every change made through it is recorded in the audit log. The
 * descriptor is closed once read (cli_passphrase_done), on every path. */
int cli_open_unlocked(int passphrase_fd, struct vault **v);
/* The same, for `audit verify`: a log from before the secrets digest is
 * not upgraded first (verify reports; it does not refuse). */
int cli_open_to_verify(int passphrase_fd, struct vault **v);
/* The same, leaving the descriptor open for one more line (passwd's new
 * passphrase); the caller calls cli_passphrase_done after that read. */
int cli_open_unlocked_more(int passphrase_fd, struct vault **v);
/* Close a --passphrase-fd descriptor (above 2) after its last read: left
 * open, it would reach what latch starts (the broker, a `latch run`
 * child), which could seek back and read the passphrase. */
void cli_passphrase_done(int fd);

/* main() hands over argv, which each record of this command carries as
 * a keyed hash (audit_record_change). */
void cli_record_argv(int argc, char **argv);
/* The recorder to pass as the ctx of audit_record_change: this command's
 * argv and, for a grant's read, the grant (else NULL). */
struct audit_grant;
struct audit_recorder *cli_recorder(const struct audit_grant *grant);

/* The broker, as only a passphrase holder can reach it (cli/enrol.c):
 * the key of an instance (broker_key_fn), starting and enrolling a broker,
 * and a verified session with this vault's broker, started if none runs. */
int cli_broker_key(void *vault, const unsigned char instance[BROKER_INSTANCE_BYTES], struct secbuf **key);
int cli_broker_start(struct vault *v, const char *dir, bool foreground, pid_t *pid);
/* 0 if this process may start a broker; -1 reported inside a session
 * (run_in_session), where it would be within the agent's reach. The one
 * check cli_broker_start makes; `grant` also asks before the passphrase. */
int cli_broker_may_start(void);
int cli_broker_session(struct vault *v, const char *dir, struct broker_session *s);
int cli_self_exe(char out[PATH_MAX]);

/* The broker's live grants as --json prints them (grants, status). */
struct jout *cli_grants_json(const struct broker_list *l);

/* The profile's model token (fed_token_get); a token minted now is
 * recorded by this vault's broker when one runs (a fed_mint record: the
 * profile, rule, expiry and the identity token's iss/sub/jti). */
struct fed_profile;
struct fed_token;
int cli_fed_token(const struct fed_profile *p, struct fed_token *t);

/* The file form of the model token (cli/fed_file.c): a private Anthropic
 * configuration directory (fed_file_create) for a command that outlives
 * a token. open writes it for `t` (the caller clears `t` after); tick,
 * while the command runs, rewrites the credentials file once a fresh
 * token is due and returns the seconds until it should be called again
 * (a failure is reported and retried in 5 s); close removes the
 * directory (safe on one never opened, if zeroed). until_refresh: the
 * seconds until a token expiring at `expires_at` enters its refresh
 * window, at least 1 (5 once inside it). */
struct cli_fed_file {
	const struct fed_profile *p;
	char dir[PATH_MAX];
	int64_t expires_at;
};
int cli_fed_file_open(struct cli_fed_file *f, const struct fed_profile *p, const struct fed_token *t);
int cli_fed_file_tick(void *ctx);
void cli_fed_file_close(struct cli_fed_file *f);
int cli_fed_until_refresh(int64_t expires_at);

/* The caller's umask, before latch's hardening set 077: what a session's
 * command gets back (main.c saves it). */
extern mode_t cli_caller_umask;

/* Flush stdout; a write error (a full disk, a closed pipe) is an error. */
int cli_finish_output(void);
/* Print `n` strings a broker sent (never obeyed: control characters
 * escaped, "?" for a missing one) on stdout, `first` before the first and
 * `sep` before each other. */
void cli_print_escaped(char *const *items, size_t n, const char *first, const char *sep);

#endif
