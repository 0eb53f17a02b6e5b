/* latch init: create the vault. */
#include "cli.h"

#include "../audit/audit.h"

const char usage_init[] =
	"usage: latch init [--kdf interactive|moderate|sensitive] [--passphrase-fd N]\n"
	"\n"
	"Create a new, empty vault in $LATCH_HOME, else $XDG_DATA_HOME/latch, else\n"
	"~/.local/share/latch (directory 0700, file 0600). The passphrase is asked twice\n"
	"on the terminal, or read as one line from file descriptor N.\n"
	"\n"
	"  --kdf LEVEL         Argon2id cost: interactive (2 passes, 64 MiB),\n"
	"                      moderate (3 passes, 256 MiB; the default) or\n"
	"                      sensitive (4 passes, 1 GiB)\n"
	"  --passphrase-fd N   read the new passphrase from fd N instead of /dev/tty\n"
	"  -h, --help          show this help\n";

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {{"kdf", required_argument, NULL, 'k'},
					     {"passphrase-fd", required_argument, NULL, 'p'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	enum vault_kdf kdf = VAULT_KDF_MODERATE;
	int fd = -1, c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "init")) != -1) {
		switch (c) {
		case 'k':
			if (vault_kdf_parse(optarg, &kdf) != 0)
				return cli_fail();
			break;
		case 'p':
			if (parse_fd(optarg, &fd) != 0)
				return cli_fail();
			break;
		case 'h':
			return cli_help(usage_init);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("init", "unexpected argument '%s'", argv[optind]);

	char dir[PATH_MAX], path[PATH_MAX];
	struct secbuf *pass = NULL;
	if (vault_dir(dir, sizeof dir) != 0 || vault_path(dir, path, sizeof path) != 0)
		return cli_fail();
	int rc = vault_read_passphrase(fd, "New passphrase: ", true, &pass);
	cli_passphrase_done(fd);
	if (rc != 0)
		return cli_fail();
	rc = vault_create_recorded(dir, pass, kdf, audit_record_change, cli_recorder(NULL));
	secbuf_free(pass);
	if (rc != 0)
		return cli_fail();
	printf("Created vault '%s' (Argon2id, %s).\n", path, vault_kdf_name(kdf));
	return cli_finish_output() == 0 ? 0 : cli_fail();
}
