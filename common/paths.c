/* Where latch keeps things (docs/design.md section 3): data (the vault),
 * configuration (federation profiles) and runtime files (sockets, the
 * model-token cache). Every module that needs a directory asks here, so
 * that the environment variables are read the same way everywhere. */
#include "common.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* $HOME, else the password database's entry: absolute, or an error. */
static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	if (!h || h[0] != '/') {
		struct passwd *pw = getpwuid(geteuid());
		h = pw ? pw->pw_dir : NULL;
	}
	return h && h[0] == '/' ? h : NULL;
}

/* "dir/" and "dir" are the same directory; keep messages tidy. */
static int finish(char *buf, int len, size_t n, const char *what)
{
	if (len < 0 || (size_t)len >= n)
		return latch_error(LATCH_USAGE, "%s directory path is too long", what);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	return 0;
}

int latch_data_dir(char *buf, size_t n)
{
	const char *home = getenv("LATCH_HOME"), *xdg = getenv("XDG_DATA_HOME"), *h;
	if (home && *home)
		return finish(buf, snprintf(buf, n, "%s", home), n, "vault");
	if (xdg && xdg[0] == '/')
		return finish(buf, snprintf(buf, n, "%s/latch", xdg), n, "vault");
	if (!(h = home_dir()))
		return latch_error(LATCH_OPERR, "cannot find the home directory: set LATCH_HOME");
	return finish(buf, snprintf(buf, n, "%s/.local/share/latch", h), n, "vault");
}

int latch_config_dir(char *buf, size_t n)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *h;
	if (xdg && xdg[0] == '/')
		return finish(buf, snprintf(buf, n, "%s/latch", xdg), n, "configuration");
	if (!(h = home_dir()))
		return latch_error(LATCH_OPERR, "cannot find the home directory: set XDG_CONFIG_HOME");
	return finish(buf, snprintf(buf, n, "%s/.config/latch", h), n, "configuration");
}

int latch_runtime_dir(char *buf, size_t n)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	if (rt && rt[0] == '/')
		return finish(buf, snprintf(buf, n, "%s/latch", rt), n, "runtime");
	/* Not /tmp: another user could create /tmp/latch-UID first. The data
	 * directory is the user's own and private. */
	char data[PATH_MAX];
	if (latch_data_dir(data, sizeof data) != 0 || ensure_private_dir(data) != 0)
		return -1;
	return finish(buf, snprintf(buf, n, "%s/run", data), n, "runtime");
}
