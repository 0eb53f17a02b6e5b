/* The runner's control protocol, both ends of which are run/'s (the
 * runner's loop and the caller's wait): one JSON object a line over a
 * stream socket. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int run_ctl_send(int fd, json_t *m)
{
	char line[4096];
	size_t n = fd >= 0 && m ? json_dumpb(m, line, sizeof line - 1, JSON_COMPACT) : 0;
	if (n == 0 || n >= sizeof line - 1)
		return -1;
	line[n++] = '\n';
	/* MSG_NOSIGNAL: a caller gone is an error here, not a SIGPIPE. */
	for (size_t off = 0; off < n;) {
		ssize_t w = send(fd, line + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

int run_ctl_read(int fd, char *buf, size_t cap, size_t *len, int (*on)(json_t *m, void *ctx), void *ctx)
{
	ssize_t n = recv(fd, buf + *len, cap - *len, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return -1;
	*len += (size_t)n;
	char *nl;
	while ((nl = memchr(buf, '\n', *len))) {
		json_t *m = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
		int rc = on(m, ctx);
		json_decref(m);
		*len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, *len);
		if (rc != 0)
			return rc;
	}
	return *len == cap ? -1 : 0;
}
