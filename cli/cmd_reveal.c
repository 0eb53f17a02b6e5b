/* latch reveal: a value for a human's eyes, written to /dev/tty only, so
 * that nothing reading latch's stdout or stderr (an agent) receives it. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

const char usage_reveal[] =
	"usage: latch reveal NAME [--passphrase-fd N]\n"
	"\n"
	"Write the value of NAME to the controlling terminal (/dev/tty), never to\n"
	"standard output or a file. Refuses (exit 4) when there is no terminal.\n"
	"\n"
	"  --passphrase-fd N   read the passphrase from fd N instead of /dev/tty\n"
	"  -h, --help          show this help\n";

int cmd_reveal(int argc, char **argv)
{
	int fd, rc = cli_passphrase_args(argc, argv, "reveal", usage_reveal, true, &fd);
	if (rc >= 0)
		return rc;
	const char *name = argv[optind];
	/* Open the terminal first: with none, refuse before any key exists. */
	int tty = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (tty < 0) {
		latch_error(LATCH_DENIED, "refusing to reveal '%s': no terminal (reveal writes only to /dev/tty)",
			    name);
		return cli_fail();
	}
	struct vault *v = NULL;
	struct secbuf *value = NULL;
	rc = cli_open_unlocked(fd, &v);
	if (rc == 0) /* recorded before anything is shown */
		rc = vault_read(v, &name, 1, "reveal", &value);
	vault_close(v);
	if (rc == 0 && (write_all(tty, value->data, value->len) != 0 || write_all(tty, "\n", 1) != 0))
		rc = latch_error(LATCH_OPERR, "cannot write to the terminal: %s", strerror(errno));
	secbuf_free(value);
	close(tty);
	return rc == 0 ? 0 : cli_fail();
}
