/* latch set: create or replace a secret. The value never comes from argv. */
#include "cli.h"

#include "../run/run.h"

#include "../hooks/hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

const char usage_set[] =
	"usage: latch set NAME [--file PATH] [--passphrase-fd N]\n"
	"\n"
	"Store a secret under NAME, replacing any older value (its version goes up).\n"
	"The value comes from, in order: --file PATH (exact bytes, binary safe; '-' for\n"
	"stdin), standard input when it is not a terminal (one trailing newline is\n"
	"dropped), or a no-echo prompt on the terminal. Never from the command line.\n"
	"Values are 1 byte to 1 MiB. Names: [A-Za-z0-9][A-Za-z0-9_./-]{0,127}.\n"
	"\n"
	"  --file PATH         read the value from PATH, byte for byte\n"
	"  --passphrase-fd N   read the passphrase from fd N instead of /dev/tty\n"
	"  -h, --help          show this help\n";

/* Reads the value: exact bytes from a file or `-`, stdin without one
 * trailing newline, or a hidden prompt. */
static int read_value(const char *file, const char *name, struct secbuf **out)
{
	bool too_big = false;
	int rc;
	if (file) {
		bool is_stdin = !strcmp(file, "-");
		int fd = is_stdin ? 0 : open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return latch_error(LATCH_USAGE, "cannot open '%s': %s", file, strerror(errno));
		rc = read_fd_secret(fd, VAULT_VALUE_MAX, out, &too_big);
		if (!is_stdin)
			close(fd);
	} else if (!isatty(0)) {
		/* One byte of slack for the newline that `echo` adds. */
		rc = read_fd_secret(0, VAULT_VALUE_MAX + 1, out, &too_big);
		if (rc == 0 && (*out)->len && (*out)->data[(*out)->len - 1] == '\n')
			(*out)->data[--(*out)->len] = 0;
	} else {
		char prompt[LATCH_NAME_MAX + 32];
		snprintf(prompt, sizeof prompt, "Value for %s: ", name);
		rc = tty_read_hidden(prompt, VAULT_VALUE_MAX, out);
	}
	if (too_big)
		return latch_error(LATCH_USAGE, "value for '%s' is larger than the 1 MiB limit (%d bytes)", name,
				   VAULT_VALUE_MAX);
	return rc;
}

int cmd_set(int argc, char **argv)
{
	static const struct option opts[] = {{"file", required_argument, NULL, 'f'},
					     {"passphrase-fd", required_argument, NULL, 'p'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *file = NULL;
	int fd = -1, c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "set")) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'p':
			if (parse_fd(optarg, &fd) != 0)
				return cli_fail();
			break;
		case 'h':
			return cli_help(usage_set);
		default:
			return LATCH_USAGE;
		}
	}
	if (argc - optind != 1)
		return cli_usage("set", "expected one NAME");
	const char *name = argv[optind];
	if (!latch_name_valid(name))
		return cli_usage("set", "invalid secret name: use %s", LATCH_NAME_RULE);

	struct vault *v = NULL;
	struct secbuf *value = NULL;
	int64_t version = 0;
	if (cli_open_unlocked(fd, &v) != 0)
		return cli_fail();
	int rc = read_value(file, name, &value);
	if (rc == 0)
		rc = vault_set(v, name, value, &version);
	int bits = rc == 0 ? hooks_entropy_bits(value->data, value->len) : HOOKS_WEAK_BITS;
	bool short_value = rc == 0 && value->len < RUN_REDACT_MIN;
	secbuf_free(value);
	if (short_value)
		cli_warn_short(name);
	if (bits < HOOKS_WEAK_BITS)
		fprintf(stderr,
			"latch: warning: '%s' is too weak to fingerprint safely (about %d bits; the scan index needs "
			"%d): the git hooks find it only with 'latch scan --unlock' (docs/scanning.md)\n",
			name, bits, HOOKS_WEAK_BITS);
	vault_close(v);
	if (rc != 0)
		return cli_fail();
	printf("Stored '%s' (version %lld).\n", name, (long long)version);
	return cli_finish_output() == 0 ? 0 : cli_fail();
}
