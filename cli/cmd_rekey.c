/* latch rekey: a new data key; every value is sealed again. */
#include "cli.h"

const char usage_rekey[] =
	"usage: latch rekey [--passphrase-fd N]\n"
	"\n"
	"Make a new random data key and re-encrypt every value under it, in one\n"
	"transaction: either all values move to the new key or none does. Use it\n"
	"when the old data key may have been exposed. The passphrase stays the same.\n"
	"The running broker is stopped first (every grant ends) and its audit\n"
	"stream closed: the keys it held are derived from the old data key.\n"
	"\n"
	"  --passphrase-fd N   read the passphrase from fd N instead of /dev/tty\n"
	"  -h, --help          show this help\n";

int cmd_rekey(int argc, char **argv)
{
	int fd, rc = cli_passphrase_args(argc, argv, "rekey", usage_rekey, false, &fd);
	if (rc >= 0)
		return rc;
	struct vault *v = NULL;
	int64_t count = 0;
	pid_t broker = 0;
	char dir[PATH_MAX];
	if (vault_dir(dir, sizeof dir) != 0 || cli_open_unlocked(fd, &v) != 0)
		return cli_fail();
	/* The broker goes first: its key and its stream end with the old
	 * data key (the rekey record closes the stream). */
	rc = broker_stop(dir, 5000, &broker);
	if (rc == 0)
		rc = vault_rekey(v, &count);
	vault_close(v);
	if (rc != 0)
		return cli_fail();
	if (broker)
		printf("Stopped the broker (pid %d): every grant has ended.\n", (int)broker);
	printf("Re-encrypted %lld secret%s under a new data key.\n", (long long)count, count == 1 ? "" : "s");
	return cli_finish_output() == 0 ? 0 : cli_fail();
}
