/* latch passwd: new passphrase; one key is re-wrapped, no value changes. */
#include "cli.h"

const char usage_passwd[] =
	"usage: latch passwd [--kdf interactive|moderate|sensitive] [--passphrase-fd N]\n"
	"\n"
	"Change the vault passphrase. Only the wrapped data key is rewritten, so this\n"
	"takes the same time however many secrets there are. With --passphrase-fd N,\n"
	"fd N holds two lines: the current passphrase, then the new one.\n"
	"\n"
	"  --kdf LEVEL         also change the Argon2id cost (see 'latch init --help')\n"
	"  --passphrase-fd N   read both passphrases from fd N instead of /dev/tty\n"
	"  -h, --help          show this help\n";

int cmd_passwd(int argc, char **argv)
{
	static const struct option opts[] = {{"kdf", required_argument, NULL, 'k'},
					     {"passphrase-fd", required_argument, NULL, 'p'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	enum vault_kdf kdf;
	bool new_kdf = false;
	int fd = -1, c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "passwd")) != -1) {
		switch (c) {
		case 'k':
			if (vault_kdf_parse(optarg, &kdf) != 0)
				return cli_fail();
			new_kdf = true;
			break;
		case 'p':
			if (parse_fd(optarg, &fd) != 0)
				return cli_fail();
			break;
		case 'h':
			return cli_help(usage_passwd);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("passwd", "unexpected argument '%s'", argv[optind]);
	struct vault *v = NULL;
	struct secbuf *pass = NULL;
	if (cli_open_unlocked_more(fd, &v) != 0) {
		cli_passphrase_done(fd);
		return cli_fail();
	}
	int rc = vault_read_passphrase(fd, "New passphrase: ", true, &pass);
	cli_passphrase_done(fd);
	if (rc == 0)
		rc = vault_passwd(v, pass, new_kdf ? &kdf : NULL);
	secbuf_free(pass);
	vault_close(v);
	if (rc != 0)
		return cli_fail();
	printf("Passphrase changed.\n");
	return cli_finish_output() == 0 ? 0 : cli_fail();
}
