/* Where passphrases come from: a no-echo prompt on /dev/tty, or one line
 * of a file descriptor the caller names. Never argv, never the environment
 * (an agent can read both). */
#include "vault.h"

#include <sodium.h>

static int check_new(const struct secbuf *p)
{
	if (p->len < VAULT_PASSPHRASE_MIN)
		return latch_error(LATCH_USAGE, "passphrase too short: use at least %d characters",
				   VAULT_PASSPHRASE_MIN);
	return 0;
}

int vault_read_passphrase(int fd, const char *prompt, bool is_new, struct secbuf **out)
{
	struct secbuf *p = NULL, *again = NULL;
	if (fd >= 0) {
		if (read_fd_line_secret(fd, VAULT_PASSPHRASE_MAX, &p) != 0)
			return -1;
	} else {
		if (!tty_available())
			return latch_error(
				LATCH_DENIED,
				"no terminal to ask for the passphrase (a human must run this, or use --passphrase-fd N)");
		if (tty_read_hidden(prompt, VAULT_PASSPHRASE_MAX, &p) != 0)
			return -1;
	}
	if (p->len == 0) {
		secbuf_free(p);
		return latch_error(LATCH_USAGE, "empty passphrase");
	}
	if (is_new && check_new(p) != 0) {
		secbuf_free(p);
		return -1;
	}
	if (is_new && fd < 0) {
		if (tty_read_hidden("Repeat to confirm: ", VAULT_PASSPHRASE_MAX, &again) != 0) {
			secbuf_free(p);
			return -1;
		}
		bool same = again->len == p->len && sodium_memcmp(again->data, p->data, p->len) == 0;
		secbuf_free(again);
		if (!same) {
			secbuf_free(p);
			return latch_error(LATCH_USAGE, "the passphrases do not match");
		}
	}
	*out = p;
	return 0;
}
