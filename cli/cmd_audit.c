/* latch audit: query, verify, checkpoint and export the audit log. */
#include "cli.h"

#include "../broker/broker.h"
#include "../audit/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

const char usage_audit[] =
	"usage: latch audit [--secret NAME] [--grant ID] [--event EVENT] [--since DUR|TIME] [--json]\n"
	"       latch audit verify [--checkpoint FILE] [--export FILE] [--json] [--passphrase-fd N]\n"
	"       latch audit checkpoint\n"
	"       latch audit export\n"
	"\n"
	"Every change to the vault and every release of a value is recorded, before\n"
	"it takes effect, in an append-only log of HMAC-chained records inside the\n"
	"vault. Records name secrets, never hold values.\n"
	"\n"
	"With no subcommand, list records (oldest first). Needs no passphrase.\n"
	"  --secret NAME   only records naming this secret\n"
	"  --grant ID      only records of this grant\n"
	"  --event EVENT   only this event (init, set, rm, passwd, rekey, reveal, ...)\n"
	"  --since WHEN    a duration ago (90s, 30m, 24h, 7d, 2w) or a UTC time\n"
	"                  (2026-11-23 or 2026-11-23T15:00:00Z)\n"
	"  --json          a JSON array of the records, byte for byte as stored\n"
	"\n"
	"verify       recompute every MAC from the first key (needs the passphrase).\n"
	"             Exit 0 verified, 1 tampered (the first bad record is named),\n"
	"             3 unverifiable (another vault's checkpoint, a missing key).\n"
	"  --checkpoint FILE  the log must still contain exactly that record\n"
	"  --export FILE      verify an export instead of the vault (no vault needed;\n"
	"                     '-' for stdin); without a checkpoint, an export cut short\n"
	"                     at its end cannot be told from a shorter log\n"
	"checkpoint   print the log's head (vault id, log id, seq, MAC) as one line\n"
	"             of JSON; keep it where the agent cannot write, and pass it to\n"
	"             verify later to expose truncation and rollback\n"
	"export       print the log as JSON Lines: a header, then one line per record\n";

static int print_record(const struct audit_row *r, void *ctx)
{
	bool *first = ctx;
	if (first) { /* --json: the record, byte for byte as stored */
		fputs(*first ? "[\n  " : ",\n  ", stdout);
		fwrite(r->record, 1, r->len, stdout);
		*first = false;
		return 0;
	}
	char when[32];
	format_time_utc(r->time, when);
	/* Anyone can write these tables: what a record says is shown with
	 * its control characters escaped, never sent to the terminal. */
	char event[64], shown_names[1024], shown_decision[64], shown_exe[4 * PATH_MAX];
	text_escape(r->event ? r->event : "?", event, sizeof event);
	text_escape(r->secrets[0] ? r->secrets : "-", shown_names, sizeof shown_names);
	text_escape(r->decision ? r->decision : "-", shown_decision, sizeof shown_decision);
	text_escape(r->exe ? r->exe : "-", shown_exe, sizeof shown_exe);
	printf("%7lld  %s  %-8s %-24s %-6s %7lld  %s\n", (long long)r->seq, when, event, shown_names, shown_decision,
	       (long long)r->pid, shown_exe);
	return 0;
}

/* The broker queues exit records for a moment (broker.h): have it write
 * them first, so that what is shown or verified is complete. A broker
 * that cannot write them says so; what the log holds is still shown. */
static void flush_broker(void)
{
	char dir[PATH_MAX];
	latch_error_quiet(true);
	int rc = vault_dir(dir, sizeof dir);
	latch_error_quiet(false);
	if (rc == 0)
		broker_flush(dir);
}

static int audit_list(int argc, char **argv)
{
	static const struct option opts[] = {{"secret", required_argument, NULL, 's'},
					     {"grant", required_argument, NULL, 'g'},
					     {"event", required_argument, NULL, 'e'},
					     {"since", required_argument, NULL, 'S'},
					     {"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct audit_filter f = {0};
	bool json = false;
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "audit")) != -1) {
		switch (c) {
		case 's':
			if (!latch_name_valid(optarg))
				return cli_usage("audit", "invalid secret name");
			f.secret = optarg;
			break;
		case 'g':
			f.grant_id = optarg;
			break;
		case 'e':
			f.event = optarg;
			break;
		case 'S':
			if (audit_parse_since(optarg, (int64_t)time(NULL), &f.since) != 0)
				return cli_fail();
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			return cli_help(usage_audit);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("audit", "unexpected argument '%s'", argv[optind]);
	struct vault *v = NULL;
	flush_broker();
	if (cli_open_vault(&v) != 0)
		return cli_fail();
	bool first = true;
	if (!json)
		printf("%7s  %-20s  %-8s %-24s %-6s %7s  %s\n", "SEQ", "TIME", "EVENT", "SECRETS", "DECIDE", "PID",
		       "EXE");
	int rc = audit_query(vault_db(v), &f, print_record, json ? &first : NULL);
	vault_close(v);
	if (rc != 0)
		return cli_fail();
	if (json)
		fputs(first ? "[]\n" : "\n]\n", stdout);
	return cli_finish_output() == 0 ? 0 : cli_fail();
}

static int read_checkpoint(const char *path, struct audit_checkpoint *cp)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return latch_error(LATCH_USAGE, "cannot open checkpoint '%s': %s", path, strerror(errno));
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0 || (size_t)n == sizeof buf)
		return latch_error(LATCH_USAGE, "'%s' is not a latch audit checkpoint", path);
	return audit_checkpoint_parse(buf, (size_t)n, cp);
}

static int vault_id_of(struct vault *v, unsigned char id[16])
{
	struct vault_info info;
	size_t n = 0;
	if (vault_info(v, &info) != 0)
		return -1;
	if (sodium_hex2bin(id, 16, info.vault_id, 32, NULL, &n, NULL) != 0 || n != 16)
		return latch_error(LATCH_OPERR, "cannot read the vault id");
	return 0;
}

static int verify_vault(int fd, const struct audit_checkpoint *cp, struct audit_report *r)
{
	struct vault *v = NULL;
	struct secbuf *writer = NULL, *verifier = NULL;
	unsigned char vid[16];
	flush_broker();
	if (cli_open_to_verify(fd, &v) != 0)
		return -1;
	int rc = vault_id_of(v, vid);
	if (rc == 0 && cp && memcmp(vid, cp->vault_id, sizeof vid) != 0) {
		r->verdict = AUDIT_UNVERIFIABLE;
		snprintf(r->reason, sizeof r->reason, "the checkpoint is of another vault");
	} else if (rc == 0) {
		/* A missing key is the verdict's reason, said once below. */
		latch_error_quiet(true);
		bool keys = vault_key(v, "audit-writer", false, &writer) == 0 &&
			    vault_key(v, "audit-verifier", false, &verifier) == 0;
		latch_error_quiet(false);
		if (!keys) {
			r->verdict = AUDIT_UNVERIFIABLE;
			snprintf(r->reason, sizeof r->reason, "the vault's audit keys are missing");
		}
	}
	if (rc == 0 && r->reason[0] == '\0') {
		rc = audit_verify(vault_db(v), writer, verifier, cp, vault_rows, v, r);
	}
	secbuf_free(writer);
	secbuf_free(verifier);
	vault_close(v);
	return rc;
}

/* Opens the verifier key of an export with the passphrase. */
static int open_exported_verifier(const char *text, size_t len, void *ctx, struct secbuf **key)
{
	int *fd = ctx;
	struct secbuf *pass = NULL;
	int rc = vault_read_passphrase(*fd, "Passphrase: ", false, &pass);
	cli_passphrase_done(*fd);
	*fd = -1;
	if (rc != 0)
		return -1;
	rc = vault_import_key(text, len, pass, "audit-verifier", key);
	secbuf_free(pass);
	return rc;
}

static int verify_export(const char *path, int fd, const struct audit_checkpoint *cp, struct audit_report *r)
{
	FILE *in = strcmp(path, "-") ? fopen(path, "re") : stdin;
	if (!in)
		return latch_error(LATCH_USAGE, "cannot open export '%s': %s", path, strerror(errno));
	int rc = audit_verify_export(in, open_exported_verifier, &fd, cp, r);
	if (in != stdin)
		fclose(in);
	return rc;
}

static int audit_verify_cmd(int argc, char **argv)
{
	static const struct option opts[] = {{"checkpoint", required_argument, NULL, 'c'},
					     {"export", required_argument, NULL, 'x'},
					     {"json", no_argument, NULL, 'j'},
					     {"passphrase-fd", required_argument, NULL, 'p'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *cp_path = NULL, *export_path = NULL;
	bool json = false;
	int fd = -1, c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "audit verify")) != -1) {
		switch (c) {
		case 'c':
			cp_path = optarg;
			break;
		case 'x':
			export_path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'p':
			if (parse_fd(optarg, &fd) != 0)
				return cli_fail();
			break;
		case 'h':
			return cli_help(usage_audit);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("audit verify", "unexpected argument '%s'", argv[optind]);
	struct audit_checkpoint cp;
	if (cp_path && read_checkpoint(cp_path, &cp) != 0)
		return cli_fail();
	struct audit_report r = {0};
	int rc = export_path ? verify_export(export_path, fd, cp_path ? &cp : NULL, &r)
			     : verify_vault(fd, cp_path ? &cp : NULL, &r);
	if (rc != 0)
		return cli_fail();
	static const char *const names[] = {"verified", "tampered", "unverifiable"};
	if (json) {
		struct jout *o = jout_object();
		jout_str(o, "verdict", names[r.verdict]);
		jout_int(o, "records", r.records);
		jout_str(o, "reason", r.reason);
		if (r.verdict == AUDIT_TAMPERED)
			jout_int(o, "first_bad_seq", r.first_bad);
		/* The verdict's exit status follows whatever this printed. */
		jout_print(o, false);
	}
	if (r.verdict == AUDIT_OK) {
		if (!json)
			printf("audit log verified: %s%s\n", r.reason, cp_path ? ", checkpoint found" : "");
		return cli_finish_output() == 0 ? 0 : cli_fail();
	}
	cli_finish_output();
	if (r.verdict == AUDIT_TAMPERED) {
		if (r.first_bad > 0)
			latch_error(LATCH_FINDINGS, "audit log tampered: first bad record %lld: %s",
				    (long long)r.first_bad, r.reason);
		else
			latch_error(LATCH_FINDINGS, "audit log tampered: %s", r.reason);
		return LATCH_FINDINGS;
	}
	latch_error(LATCH_OPERR, "audit log unverifiable: %s", r.reason);
	return LATCH_OPERR;
}

static int audit_checkpoint_cmd(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return cli_help(usage_audit);
	if (argc > 1)
		return cli_usage("audit checkpoint", "unexpected argument '%s'", argv[1]);
	struct vault *v = NULL;
	struct audit_checkpoint cp;
	char line[512];
	flush_broker();
	if (cli_open_vault(&v) != 0)
		return cli_fail();
	int rc = vault_id_of(v, cp.vault_id);
	if (rc == 0)
		rc = audit_head(vault_db(v), &cp);
	vault_close(v);
	if (rc != 0 || audit_checkpoint_format(&cp, line, sizeof line) != 0)
		return cli_fail();
	puts(line);
	return cli_finish_output() == 0 ? 0 : cli_fail();
}

static int audit_export_cmd(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return cli_help(usage_audit);
	if (argc > 1)
		return cli_usage("audit export", "unexpected argument '%s'", argv[1]);
	struct vault *v = NULL;
	flush_broker();
	if (cli_open_vault(&v) != 0)
		return cli_fail();
	char *verifier = NULL;
	int rc = vault_export_key(v, "audit-verifier", &verifier);
	if (rc == 0)
		rc = audit_export(vault_db(v), verifier, stdout);
	free(verifier);
	vault_close(v);
	if (rc != 0)
		return cli_fail();
	return cli_finish_output() == 0 ? 0 : cli_fail();
}

int cmd_audit(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "verify"))
		return audit_verify_cmd(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "checkpoint"))
		return audit_checkpoint_cmd(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "export"))
		return audit_export_cmd(argc - 1, argv + 1);
	return audit_list(argc, argv);
}
