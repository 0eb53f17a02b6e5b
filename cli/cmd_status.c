/* latch status: the vault, the broker daemon and its live grants. (The
 * model credential comes with federation.) Needs no passphrase. */
#include "cli.h"

#include "../broker/broker.h"

#include <jansson.h>

const char usage_status[] =
	"usage: latch status [--json]\n"
	"\n"
	"Show where the vault is, whether latch accepts it, how many secrets it\n"
	"holds and its key-derivation cost; whether the broker daemon runs (its\n"
	"pid) and its live grants: secrets, deadline, uses left, commands. Needs no\n"
	"passphrase. Exits 0 when the vault is usable, 3 when it is missing or\n"
	"refused (the reason is printed).\n"
	"\n"
	"  --json      print a JSON object\n"
	"  -h, --help  show this help\n";

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool json = false;
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "status")) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			return cli_help(usage_status);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("status", "unexpected argument '%s'", argv[optind]);
	char dir[PATH_MAX], path[PATH_MAX];
	if (vault_dir(dir, sizeof dir) != 0 || vault_path(dir, path, sizeof path) != 0)
		return cli_fail();
	struct vault *v = NULL;
	struct vault_info info;
	/* The reason a vault is unusable is the error line already printed. */
	int rc = vault_open(dir, &v);
	if (rc == 0)
		rc = vault_info(v, &info);
	vault_close(v);
	char created[32] = "";
	if (rc == 0)
		format_time_utc(info.created, created);
	/* The daemon: its pid and live grants, if it answers. */
	json_t *req = json_pack("{s:s}", "op", "list"), *resp = NULL;
	latch_error_quiet(true);
	int arc = broker_call(dir, req, &resp);
	latch_error_quiet(false);
	json_decref(req);
	json_t *grants = arc == 0 ? json_object_get(resp, "grants") : NULL;
	int broker_pid = arc == 0 ? (int)json_integer_value(json_object_get(resp, "pid")) : 0;
	if (json) {
		json_t *o = rc != 0 ? json_pack("{s:s, s:s}", "vault", path, "state", "unusable")
				    : json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:I, s:{s:s, s:s, s:I, s:I}}",
						"vault", info.path, "state", "ok", "id", info.vault_id,
						"created", created, "secrets", (json_int_t)info.secrets,
						"schema_version", info.schema_version, "key_generation",
						(json_int_t)info.key_generation, "kdf", "algorithm",
						"argon2id", "level", info.kdf_name, "opslimit",
						(json_int_t)info.kdf_opslimit, "memlimit",
						(json_int_t)info.kdf_memlimit);
		if (o)
			json_object_set_new(o, "broker",
					    arc == 0 ? json_pack("{s:b, s:i, s:O}", "running", 1, "pid", broker_pid, "grants",
								 grants ? grants : json_array())
						     : json_pack("{s:b}", "running", 0));
		if (o && json_dumpf(o, stdout, JSON_INDENT(2)) == 0)
			putchar('\n');
		json_decref(o);
	} else if (rc != 0) {
		printf("vault:    %s (unusable)\n", path);
	} else {
		printf("vault:    %s\n"
		       "state:    ok\n"
		       "secrets:  %lld\n"
		       "kdf:      Argon2id %s (%llu passes, %llu MiB)\n"
		       "created:  %s\n"
		       "schema:   %d, key generation %lld\n",
		       info.path, (long long)info.secrets, info.kdf_name,
		       (unsigned long long)info.kdf_opslimit, (unsigned long long)(info.kdf_memlimit >> 20),
		       created, info.schema_version, (long long)info.key_generation);
	}
	if (!json) {
		if (arc != 0)
			printf("broker:   not running\n");
		else
			printf("broker:   running, pid %d, %zu live grant%s\n", broker_pid, json_array_size(grants),
			       json_array_size(grants) == 1 ? "" : "s");
		size_t i;
		json_t *g;
		json_array_foreach(grants, i, g)
		{
			/* What the broker says is shown, never obeyed: escaped. */
			char until[32], text[4 * PATH_MAX];
			format_time_utc(json_integer_value(json_object_get(g, "deadline")), until);
			text_escape(json_string_value(json_object_get(g, "grant")) ?: "?", text, sizeof text);
			printf("  %s until %s:", text, until);
			size_t k;
			json_t *s;
			json_array_foreach(json_object_get(g, "names"), k, s)
			{
				text_escape(json_string_value(s) ?: "?", text, sizeof text);
				printf("%s%s", k ? "," : " ", text);
			}
			json_t *uses = json_object_get(g, "uses_left");
			if (json_is_integer(uses))
				printf(", %lld uses left", (long long)json_integer_value(uses));
			json_t *cmds = json_object_get(g, "cmds");
			printf(", %s", json_array_size(cmds) ? "for" : "any command");
			json_array_foreach(cmds, k, s)
			{
				text_escape(json_string_value(s) ?: "?", text, sizeof text);
				printf("%s %s", k ? "," : "", text);
			}
			putchar('\n');
		}
	}
	json_decref(resp);
	if (cli_finish_output() != 0)
		return cli_fail();
	return rc == 0 ? 0 : cli_fail();
}
