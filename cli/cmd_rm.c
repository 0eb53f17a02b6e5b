/* latch rm: remove a secret; changing the vault needs the passphrase. */
#include "cli.h"

const char usage_rm[] =
	"usage: latch rm NAME [--passphrase-fd N]\n"
	"\n"
	"Remove the secret NAME. Its ciphertext is overwritten in the file\n"
	"(sqlite secure_delete). Needs the passphrase.\n"
	"\n"
	"  --passphrase-fd N   read the passphrase from fd N instead of /dev/tty\n"
	"  -h, --help          show this help\n";

int cmd_rm(int argc, char **argv)
{
	static const struct option opts[] = {{"passphrase-fd", required_argument, NULL, 'p'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int fd = -1, c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "rm")) != -1) {
		switch (c) {
		case 'p':
			if (parse_fd(optarg, &fd) != 0)
				return cli_fail();
			break;
		case 'h':
			return cli_help(usage_rm);
		default:
			return LATCH_USAGE;
		}
	}
	if (argc - optind != 1)
		return cli_usage("rm", "expected one NAME");
	const char *name = argv[optind];
	if (!latch_name_valid(name))
		return cli_usage("rm", "invalid secret name");
	struct vault *v = NULL;
	if (cli_open_unlocked(fd, &v) != 0)
		return cli_fail();
	int rc = vault_remove(v, name);
	vault_close(v);
	if (rc != 0)
		return cli_fail();
	printf("Removed '%s'.\n", name);
	return cli_finish_output() == 0 ? 0 : cli_fail();
}
