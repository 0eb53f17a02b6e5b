/* Finding, starting and calling the daemon. */
#include "agent.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int agent_paths(const char *vault_dir, char sock[PATH_MAX], char lock[PATH_MAX])
{
	/* `latch run` asks twice (release, exit): the checks and the
	 * realpath walk are made once per process. */
	static char last_vault[PATH_MAX], last_sock[PATH_MAX], last_lock[PATH_MAX];
	if (last_vault[0] && !strcmp(last_vault, vault_dir)) {
		memcpy(sock, last_sock, PATH_MAX);
		memcpy(lock, last_lock, PATH_MAX);
		return 0;
	}
	char dir[PATH_MAX], real[PATH_MAX];
	const char *rt = getenv("XDG_RUNTIME_DIR");
	int n = rt && rt[0] == '/' ? snprintf(dir, sizeof dir, "%s/latch", rt)
				   : snprintf(dir, sizeof dir, "/tmp/latch-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= sizeof dir)
		return latch_error(LATCH_USAGE, "runtime directory path is too long");
	if (ensure_private_dir(dir) != 0)
		return -1;
	/* One agent per vault: the socket is named after the vault's path. */
	if (!realpath(vault_dir, real))
		snprintf(real, sizeof real, "%s", vault_dir);
	unsigned char h[8];
	char hex[17];
	crypto_generichash(h, sizeof h, (const unsigned char *)real, strlen(real), NULL, 0);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	struct sockaddr_un addr;
	if (snprintf(sock, PATH_MAX, "%s/agent-%s.sock", dir, hex) >= (int)sizeof addr.sun_path ||
	    snprintf(lock, PATH_MAX, "%s/agent-%s.lock", dir, hex) >= PATH_MAX)
		return latch_error(LATCH_USAGE, "runtime directory path '%s' is too long for a socket", dir);
	if (strlen(vault_dir) < sizeof last_vault) {
		memcpy(last_sock, sock, PATH_MAX);
		memcpy(last_lock, lock, PATH_MAX);
		snprintf(last_vault, sizeof last_vault, "%s", vault_dir);
	}
	return 0;
}

static int connect_to(const char *sock)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	memcpy(addr.sun_path, sock, strlen(sock) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int agent_call(const char *vault_dir, json_t *req, json_t **resp)
{
	char sock[PATH_MAX], lock[PATH_MAX];
	if (agent_paths(vault_dir, sock, lock) != 0)
		return -1;
	int fd = connect_to(sock);
	if (fd < 0)
		return errno == ENOENT || errno == ECONNREFUSED ? 1
							       : latch_error(LATCH_OPERR, "cannot reach the agent at '%s': %s",
									     sock, strerror(errno));
	struct timeval tv = {30, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (wire_write_json(fd, req) != 0) {
		close(fd);
		return -1;
	}
	struct secbuf *line = wire_read_line(fd);
	close(fd);
	if (!line)
		return latch_error(LATCH_OPERR, "the agent did not answer");
	json_error_t err;
	*resp = json_loadb((const char *)line->data, line->len, JSON_DISABLE_EOF_CHECK, &err);
	secbuf_free(line);
	if (!*resp || !json_is_object(*resp)) {
		json_decref(*resp);
		return latch_error(LATCH_OPERR, "the agent's answer is not understood");
	}
	return 0;
}

static bool agent_answers(const char *vault_dir)
{
	json_t *req = json_pack("{s:s}", "op", "ping"), *resp = NULL;
	latch_error_quiet(true);
	int rc = agent_call(vault_dir, req, &resp);
	latch_error_quiet(false);
	json_decref(req);
	bool ok = rc == 0 && json_is_true(json_object_get(resp, "ok"));
	json_decref(resp);
	return ok;
}

int agent_ensure(const char *vault_dir, const char *self_exe)
{
	if (agent_answers(vault_dir))
		return 0;
	pid_t pid = fork();
	if (pid < 0)
		return latch_error(LATCH_OPERR, "cannot start the agent: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		execl(self_exe, "latch", "agent", (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* `latch agent` detaches at once; wait up to 5 s for it to listen. */
	for (int i = 0; i < 250; i++) {
		if (agent_answers(vault_dir))
			return 0;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return latch_error(LATCH_OPERR, "the agent did not start (try 'latch agent --foreground' to see why)");
}

int agent_flush(const char *vault_dir)
{
	json_t *req = json_pack("{s:s}", "op", "flush"), *resp = NULL;
	int rc = req ? agent_call(vault_dir, req, &resp) : latch_error(LATCH_OPERR, "out of memory");
	json_decref(req);
	if (rc == 1)
		return 0; /* no daemon: nothing is pending */
	if (rc == 0 && !json_is_true(json_object_get(resp, "ok")))
		rc = latch_error(LATCH_OPERR, "the broker %s",
				 json_string_value(json_object_get(resp, "message")) ?: "could not write its records");
	json_decref(resp);
	return rc;
}
