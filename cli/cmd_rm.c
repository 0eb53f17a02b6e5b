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
	int fd, rc = cli_passphrase_args(argc, argv, "rm", usage_rm, true, &fd);
	if (rc >= 0)
		return rc;
	const char *name = argv[optind];
	struct vault *v = NULL;
	if (cli_open_unlocked(fd, &v) != 0)
		return cli_fail();
	rc = vault_remove(v, name);
	vault_close(v);
	if (rc != 0)
		return cli_fail();
	printf("Removed '%s'.\n", name);
	return cli_finish_output() == 0 ? 0 : cli_fail();
}
