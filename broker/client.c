/* Finding, starting, proving and calling the broker. */
#include "broker.h"
#include "auth.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int broker_paths(const char *vault_dir, char sock[PATH_MAX], char lock[PATH_MAX])
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
	/* Without a runtime directory, not /tmp (another user could make
	 * /tmp/latch-UID first and keep the broker out) but a directory in
	 * the vault's own, private one. */
	int n = rt && rt[0] == '/' ? snprintf(dir, sizeof dir, "%s/latch", rt) : snprintf(dir, sizeof dir, "%s/run", vault_dir);
	if (n < 0 || (size_t)n >= sizeof dir)
		return latch_error(LATCH_USAGE, "runtime directory path is too long");
	if (!(rt && rt[0] == '/') && check_private_dir(vault_dir) != 0)
		return -1;
	if (ensure_private_dir(dir) != 0)
		return -1;
	/* One broker per vault: the socket is named after the vault's path. */
	if (!realpath(vault_dir, real))
		snprintf(real, sizeof real, "%s", vault_dir);
	unsigned char h[8];
	char hex[17];
	crypto_generichash(h, sizeof h, (const unsigned char *)real, strlen(real), NULL, 0);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	struct sockaddr_un addr;
	if (snprintf(sock, PATH_MAX, "%s/broker-%s.sock", dir, hex) >= (int)sizeof addr.sun_path ||
	    snprintf(lock, PATH_MAX, "%s/broker-%s.lock", dir, hex) >= PATH_MAX)
		return latch_error(LATCH_USAGE, "runtime directory '%s' is too long a path for a socket: set XDG_RUNTIME_DIR", dir);
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
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	struct timeval tv = {30, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

/* One request, one answer, on an open connection. */
static int exchange(int fd, json_t *req, json_t **resp)
{
	*resp = NULL;
	if (wire_write_json(fd, req) != 0)
		return -1;
	struct secbuf *line = wire_read_line(fd);
	if (!line)
		return latch_error(LATCH_OPERR, "the broker did not answer");
	json_error_t err;
	*resp = json_loadb((const char *)line->data, line->len, JSON_DISABLE_EOF_CHECK, &err);
	secbuf_free(line);
	if (!*resp || !json_is_object(*resp)) {
		json_decref(*resp);
		*resp = NULL;
		return latch_error(LATCH_OPERR, "the broker's answer is not understood");
	}
	return 0;
}

int broker_call(const char *vault_dir, json_t *req, json_t **resp)
{
	char sock[PATH_MAX], lock[PATH_MAX];
	if (broker_paths(vault_dir, sock, lock) != 0)
		return -1;
	int fd = connect_to(sock);
	if (fd < 0)
		return errno == ENOENT || errno == ECONNREFUSED
			       ? 1
			       : latch_error(LATCH_OPERR, "cannot reach the broker at '%s': %s", sock, strerror(errno));
	int rc = exchange(fd, req, resp);
	close(fd);
	return rc;
}

int broker_flush(const char *vault_dir)
{
	json_t *req = json_pack("{s:s}", "op", "flush"), *resp = NULL;
	int rc = req ? broker_call(vault_dir, req, &resp) : latch_error(LATCH_OPERR, "out of memory");
	json_decref(req);
	if (rc == 1)
		return 0; /* no daemon: nothing is pending */
	if (rc == 0 && !json_is_true(json_object_get(resp, "ok")))
		rc = latch_error(LATCH_OPERR, "the broker %s",
				 json_string_value(json_object_get(resp, "message")) ?: "could not write its records");
	json_decref(resp);
	return rc;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int broker_stop(const char *vault_dir, int wait_ms, pid_t *pid_out)
{
	char sock[PATH_MAX], lock[PATH_MAX];
	*pid_out = 0;
	json_t *req = json_pack("{s:s}", "op", "stop"), *resp = NULL;
	int rc = req ? broker_call(vault_dir, req, &resp) : latch_error(LATCH_OPERR, "out of memory");
	json_decref(req);
	if (rc != 0)
		return rc == 1 ? 0 : -1;
	pid_t pid = (pid_t)json_integer_value(json_object_get(resp, "pid"));
	bool ok = json_is_true(json_object_get(resp, "ok"));
	json_decref(resp);
	if (!ok || pid <= 0 || broker_paths(vault_dir, sock, lock) != 0)
		return latch_error(LATCH_OPERR, "the process at the broker's socket did not agree to stop");
	*pid_out = pid;
	/* Gone when its pid is, or at least its socket no longer answers. */
	for (int waited = 0; waited < wait_ms; waited += 10) {
		if (kill(pid, 0) != 0 && errno == ESRCH)
			return 0;
		int fd = connect_to(sock);
		if (fd < 0 && (errno == ENOENT || errno == ECONNREFUSED) && kill(pid, 0) != 0)
			return 0;
		if (fd >= 0)
			close(fd);
		sleep_ms(10);
	}
	return latch_error(LATCH_OPERR, "the broker (pid %d) did not stop: kill it and try again", (int)pid);
}

void broker_session_close(struct broker_session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	secbuf_free(s->key);
	s->key = NULL;
	sodium_memzero(s->nc, sizeof s->nc);
	sodium_memzero(s->nb, sizeof s->nb);
}

static int refuse_impostor(const char *sock, pid_t pid)
{
	return latch_error(LATCH_OPERR,
			   "the process answering at '%s' (pid %d) did not prove it is a broker this vault's passphrase started (or the vault was rekeyed since): stop it ('latch broker stop', or kill %d) and try again",
			   sock, (int)pid, (int)pid);
}

int broker_connect_verified(const char *vault_dir, broker_key_fn key_fn, void *ctx, struct broker_session *s)
{
	char lock[PATH_MAX];
	memset(s, 0, sizeof *s);
	s->fd = -1;
	if (broker_paths(vault_dir, s->sock, lock) != 0)
		return -1;
	int fd = connect_to(s->sock);
	if (fd < 0)
		return errno == ENOENT || errno == ECONNREFUSED
			       ? 1
			       : latch_error(LATCH_OPERR, "cannot reach the broker at '%s': %s", s->sock, strerror(errno));
	s->fd = fd;
	/* Who the kernel says is on the other end: the process that listens. */
	struct ucred peer;
	socklen_t plen = sizeof peer;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) != 0 || peer.uid != geteuid()) {
		broker_session_close(s);
		return latch_error(LATCH_OPERR, "the process at '%s' is not yours: refusing it", s->sock);
	}
	randombytes_buf(s->nc, sizeof s->nc);
	json_t *req = json_pack("{s:s, s:o}", "op", "hello", "nonce", auth_b64_json(s->nc, sizeof s->nc)), *resp = NULL;
	/* Whatever goes wrong, the one line to say is refuse_impostor's. */
	latch_error_quiet(true);
	int rc = req ? exchange(fd, req, &resp) : -1;
	latch_error_quiet(false);
	json_decref(req);
	if (rc != 0) {
		broker_session_close(s);
		return refuse_impostor(s->sock, peer.pid);
	}
	const char *inst = json_string_value(json_object_get(resp, "instance"));
	json_t *jpid = json_object_get(resp, "pid");
	unsigned char proof[AUTH_MAC_BYTES], want[AUTH_MAC_BYTES];
	size_t got = 0;
	if (!json_is_true(json_object_get(resp, "ok")) || !inst || !json_is_integer(jpid) ||
	    sodium_hex2bin(s->instance, sizeof s->instance, inst, strlen(inst), NULL, &got, NULL) != 0 ||
	    got != sizeof s->instance || auth_b64_32(json_object_get(resp, "nonce"), s->nb) != 0 ||
	    auth_b64_32(json_object_get(resp, "proof"), proof) != 0 || key_fn(ctx, s->instance, &s->key) != 0) {
		json_decref(resp);
		broker_session_close(s);
		return refuse_impostor(s->sock, peer.pid);
	}
	s->pid = (pid_t)json_integer_value(jpid);
	json_decref(resp);
	auth_proof(s->key, s->instance, s->pid, s->nc, s->nb, want);
	if (sodium_memcmp(want, proof, sizeof want) != 0) {
		broker_session_close(s);
		return refuse_impostor(s->sock, peer.pid);
	}
	/* A true proof from another process: something relays the broker. */
	if (s->pid != peer.pid) {
		broker_session_close(s);
		return latch_error(LATCH_OPERR,
				   "the broker's socket '%s' is answered by pid %d, relaying for the broker (pid %d): something is in the way; kill %d and try again",
				   s->sock, (int)peer.pid, (int)s->pid, (int)peer.pid);
	}
	return 0;
}

/* What the broker's environment keeps of ours: latch's own settings, and
 * the sanitizers' (inert in a normal build). No loader variable, nothing
 * else the agent may have set. */
static bool broker_env_keep(const char *e)
{
	static const char *const keep[] = {"HOME=",		     "LATCH_HOME=",		"XDG_DATA_HOME=",
					   "XDG_RUNTIME_DIR=",	     "LATCH_BROKER_IDLE=",	"LATCH_LOCK_TIMEOUT_MS=",
					   "ASAN_OPTIONS=",	     "UBSAN_OPTIONS=",		"LSAN_OPTIONS="};
	for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
		if (!strncmp(e, keep[i], strlen(keep[i])))
			return true;
	return false;
}

/* Reads one JSON object from the enrolment socket. */
static json_t *read_object(int fd)
{
	struct secbuf *line = wire_read_line(fd);
	if (!line)
		return NULL;
	json_error_t err;
	json_t *o = json_loadb((const char *)line->data, line->len, JSON_DISABLE_EOF_CHECK, &err);
	secbuf_free(line);
	if (o && !json_is_object(o)) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

int broker_start(const char *vault_dir, const char *self_exe, bool foreground, broker_enrol_fn enrol, void *ctx,
		pid_t *pid_out)
{
	char sock[PATH_MAX], lock[PATH_MAX];
	if (broker_paths(vault_dir, sock, lock) != 0)
		return -1;
	size_t n_env = 0;
	for (char **e = environ; e && *e; e++)
		n_env++;
	char **env = calloc(n_env + 1, sizeof *env);
	int sp[2];
	if (!env || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		free(env);
		return latch_error(LATCH_OPERR, "cannot start the broker: %s", strerror(errno));
	}
	size_t k = 0;
	for (char **e = environ; e && *e; e++)
		if (broker_env_keep(*e))
			env[k++] = *e;
	char *argv[] = {"latch", "broker", "--enrol-fd", "3", foreground ? "--foreground" : NULL, NULL};
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sp[0]);
		close(sp[1]);
		free(env);
		return latch_error(LATCH_OPERR, "cannot start the broker: %s", strerror(e));
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (dup2(sp[1], 3) != 3 || null < 0)
			_exit(127);
		dup2(null, 0);
		dup2(null, 1);
		if (!foreground)
			dup2(null, 2);
		closefrom(4);
		execve(self_exe, argv, env);
		_exit(127);
	}
	close(sp[1]);
	free(env);
	int fd = sp[0], rc = -1;
	struct timeval tv = {30, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (!foreground) /* the first of its two forks exits at once */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	json_t *ready = read_object(fd), *msg = NULL, *ok = NULL;
	unsigned char instance[BROKER_INSTANCE_BYTES];
	struct secbuf *key = NULL, *stream = NULL;
	pid_t broker = ready ? (pid_t)json_integer_value(json_object_get(ready, "pid")) : 0;
	if (!ready) {
		latch_error(LATCH_OPERR, "the broker did not start (try 'latch broker --foreground' to see why)");
	} else if (!json_is_true(json_object_get(ready, "ok"))) {
		const char *why = json_string_value(json_object_get(ready, "error"));
		if (why && !strcmp(why, "busy"))
			latch_error(LATCH_OPERR,
				    "another process (pid %d) holds the broker lock '%s' but does not answer as a broker: stop it and try again",
				    (int)broker, lock);
		else
			latch_error(LATCH_OPERR, "the broker did not start: %s",
				    json_string_value(json_object_get(ready, "message")) ?: "unknown reason");
	} else if (broker <= 0 || (foreground && broker != pid)) {
		latch_error(LATCH_OPERR, "the broker's start-up message is not understood");
	} else if (enrol(ctx, broker, instance, &key, &stream) == 0) {
		char hex[2 * BROKER_INSTANCE_BYTES + 1];
		sodium_bin2hex(hex, sizeof hex, instance, sizeof instance);
		msg = json_pack("{s:s, s:o, s:o}", "instance", hex, "key", json_secret_b64(key), "stream",
				json_secret_b64(stream));
		if (!msg || wire_write_json(fd, msg) != 0 || !(ok = read_object(fd)) ||
		    !json_is_true(json_object_get(ok, "ok")))
			latch_error(LATCH_OPERR, "the broker (pid %d) did not take its enrolment", (int)broker);
		else
			rc = 0;
	}
	json_decref(ready);
	json_decref(msg);
	json_decref(ok);
	secbuf_free(key);
	secbuf_free(stream);
	close(fd); /* an unenrolled broker sees the end and exits */
	if (rc != 0 && foreground) {
		kill(pid, SIGTERM);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (rc == 0)
		*pid_out = foreground ? pid : broker;
	return rc;
}

int broker_grant(struct broker_session *s, json_t *grant, int64_t *deadline)
{
	char *plain = json_dumps(grant, JSON_COMPACT);
	if (!plain)
		return latch_error(LATCH_OPERR, "out of memory");
	json_t *box = auth_seal(s->key, s->instance, s->nc, s->nb, plain, strlen(plain));
	sodium_memzero(plain, strlen(plain));
	json_free_text(plain);
	json_t *req = box ? json_pack("{s:s, s:o}", "op", "grant", "box", box) : NULL, *resp = NULL;
	int rc = req ? exchange(s->fd, req, &resp) : latch_error(LATCH_OPERR, "out of memory");
	json_decref(req);
	if (rc != 0)
		return -1;
	const char *id = json_string_value(json_object_get(grant, "grant"));
	json_t *d = json_object_get(resp, "deadline");
	unsigned char ack[AUTH_MAC_BYTES], want[AUTH_MAC_BYTES];
	if (!json_is_true(json_object_get(resp, "ok"))) {
		rc = latch_error(LATCH_DENIED, "the broker refused the grant: %s",
				 json_string_value(json_object_get(resp, "message")) ?: "no reason given");
	} else if (!id || !json_is_integer(d) || auth_b64_32(json_object_get(resp, "ack"), ack) != 0 ||
		   (auth_ack(s->key, s->nc, s->nb, id, json_integer_value(d), want),
		    sodium_memcmp(ack, want, sizeof ack) != 0)) {
		rc = latch_error(LATCH_OPERR, "the broker's receipt for the grant does not verify");
	} else {
		*deadline = json_integer_value(d);
	}
	json_decref(resp);
	return rc;
}
