/* Finding, starting, proving and calling the broker. */
#include "broker.h"
#include "auth.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
	int n = rt && rt[0] == '/' ? snprintf(dir, sizeof dir, "%s/latch", rt)
				   : snprintf(dir, sizeof dir, "%s/run", vault_dir);
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
		return latch_error(LATCH_USAGE,
				   "runtime directory '%s' is too long a path for a socket: set XDG_RUNTIME_DIR", dir);
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

/* One request, one answer, on an open connection: 0 with *m and *buf
 * set (the answer's frames point into *buf), -1 reported. */
static int exchange(int fd, json_t *req, struct wire_msg *m, struct secbuf **buf)
{
	*buf = NULL;
	m->head = NULL;
	m->n = 0;
	if (!req || wire_send_json(fd, req, NULL, 0) != 0)
		return req ? -1 : latch_error(LATCH_OPERR, "out of memory");
	if (!(*buf = wire_read(fd, m)))
		return latch_error(LATCH_OPERR, "the broker did not answer");
	return 0;
}

/* A connection to this vault's broker: 0 with *fd, 1 if no daemon is
 * listening, -1 reported. */
static int open_broker(const char *vault_dir, int *fd)
{
	char sock[PATH_MAX], lock[PATH_MAX];
	*fd = -1;
	if (broker_paths(vault_dir, sock, lock) != 0)
		return -1;
	if ((*fd = connect_to(sock)) >= 0)
		return 0;
	return errno == ENOENT || errno == ECONNREFUSED
		       ? 1
		       : latch_error(LATCH_OPERR, "cannot reach the broker at '%s': %s", sock, strerror(errno));
}

/* Send `req` (taken) to this vault's broker and read its answer. 0 with
 * *m and *buf set, 1 if no daemon is listening, -1 reported. */
static int call(const char *vault_dir, json_t *req, struct wire_msg *m, struct secbuf **buf)
{
	int fd;
	int rc = open_broker(vault_dir, &fd);
	*buf = NULL;
	m->head = NULL;
	m->n = 0;
	if (fd >= 0) {
		rc = exchange(fd, req, m, buf);
		close(fd);
	}
	json_decref(req);
	return rc;
}

/* The answer's "message", or `fallback`. */
static const char *message_of(const struct wire_msg *m, const char *fallback)
{
	const char *s = json_string_value(json_object_get(m->head, "message"));
	return s ? s : fallback;
}

static void answer_free(struct wire_msg *m, struct secbuf *buf)
{
	wire_msg_clear(m);
	secbuf_free(buf);
}

void broker_new_id(char prefix, char out[BROKER_ID_MAX])
{
	unsigned char rnd[6];
	randombytes_buf(rnd, sizeof rnd);
	snprintf(out, BROKER_ID_MAX, "%c-%02x%02x%02x%02x%02x%02x", prefix, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
		 rnd[5]);
}

int broker_flush(const char *vault_dir)
{
	struct wire_msg m;
	struct secbuf *buf;
	int rc = call(vault_dir, json_pack("{s:s}", "op", "flush"), &m, &buf);
	if (rc == 1)
		return 0; /* no daemon: nothing is pending */
	if (rc == 0 && !json_is_true(json_object_get(m.head, "ok")))
		rc = latch_error(LATCH_OPERR, "the broker %s", message_of(&m, "could not write its records"));
	answer_free(&m, buf);
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
	struct wire_msg m;
	struct secbuf *buf;
	int rc = call(vault_dir, json_pack("{s:s}", "op", "stop"), &m, &buf);
	if (rc != 0)
		return rc == 1 ? 0 : -1;
	pid_t pid = (pid_t)json_integer_value(json_object_get(m.head, "pid"));
	bool ok = json_is_true(json_object_get(m.head, "ok"));
	answer_free(&m, buf);
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
	return latch_error(
		LATCH_OPERR,
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
			       : latch_error(LATCH_OPERR, "cannot reach the broker at '%s': %s", s->sock,
					     strerror(errno));
	s->fd = fd;
	/* Who the kernel says is on the other end: the process that listens. */
	struct ucred peer;
	socklen_t plen = sizeof peer;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) != 0 || peer.uid != geteuid()) {
		broker_session_close(s);
		return latch_error(LATCH_OPERR, "the process at '%s' is not yours: refusing it", s->sock);
	}
	randombytes_buf(s->nc, sizeof s->nc);
	json_t *req = json_pack("{s:s, s:o}", "op", "hello", "nonce", auth_b64_json(s->nc, sizeof s->nc));
	struct wire_msg m;
	struct secbuf *buf;
	/* Whatever goes wrong, the one line to say is refuse_impostor's. */
	latch_error_quiet(true);
	int rc = exchange(fd, req, &m, &buf);
	latch_error_quiet(false);
	json_decref(req);
	json_t *resp = m.head;
	if (rc != 0) {
		answer_free(&m, buf);
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
		answer_free(&m, buf);
		broker_session_close(s);
		return refuse_impostor(s->sock, peer.pid);
	}
	s->pid = (pid_t)json_integer_value(jpid);
	answer_free(&m, buf);
	auth_proof(s->key, s->instance, s->pid, s->nc, s->nb, want);
	if (sodium_memcmp(want, proof, sizeof want) != 0) {
		broker_session_close(s);
		return refuse_impostor(s->sock, peer.pid);
	}
	/* A true proof from another process: something relays the broker. */
	if (s->pid != peer.pid) {
		broker_session_close(s);
		return latch_error(
			LATCH_OPERR,
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
	static const char *const keep[] = {"HOME=",
					   "LATCH_HOME=",
					   "XDG_DATA_HOME=",
					   "XDG_RUNTIME_DIR=",
					   "LATCH_BROKER_IDLE=",
					   "LATCH_LOCK_TIMEOUT_MS=",
					   "ASAN_OPTIONS=",
					   "UBSAN_OPTIONS=",
					   "LSAN_OPTIONS="};
	for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
		if (!strncmp(e, keep[i], strlen(keep[i])))
			return true;
	return false;
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
	struct wire_msg rm, om = {0};
	struct secbuf *rbuf = wire_read(fd, &rm), *obuf = NULL;
	json_t *ready = rbuf ? rm.head : NULL;
	unsigned char instance[BROKER_INSTANCE_BYTES];
	struct secbuf *key = NULL, *stream = NULL;
	pid_t broker = ready ? (pid_t)json_integer_value(json_object_get(ready, "pid")) : 0;
	if (!ready) {
		latch_error(LATCH_OPERR, "the broker did not start (try 'latch broker --foreground' to see why)");
	} else if (!json_is_true(json_object_get(ready, "ok"))) {
		const char *why = json_string_value(json_object_get(ready, "error"));
		if (why && !strcmp(why, "busy"))
			latch_error(
				LATCH_OPERR,
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
		/* The keys as frames: straight from secure memory to secure memory. */
		json_t *msg = json_pack("{s:s}", "instance", hex);
		struct secbuf frames[2] = {*key, *stream};
		if (!msg || wire_send_json(fd, msg, frames, 2) != 0 || !(obuf = wire_read(fd, &om)) ||
		    !json_is_true(json_object_get(om.head, "ok")))
			latch_error(LATCH_OPERR, "the broker (pid %d) did not take its enrolment", (int)broker);
		else
			rc = 0;
		json_decref(msg);
		sodium_memzero(frames, sizeof frames);
	}
	answer_free(&rm, rbuf);
	answer_free(&om, obuf);
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

/* A JSON array of strings; NULL if one is not UTF-8 (or no memory). */
static json_t *string_array(const char *const *s, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		json_t *v = json_string(s[i]);
		if (!v || json_array_append_new(a, v) != 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

int broker_grant(struct broker_session *s, const struct broker_grant_spec *g, int64_t *deadline)
{
	if (g->n == 0 || g->n > BROKER_MAX_NAMES || g->n_cmds > BROKER_MAX_CMDS)
		return latch_error(LATCH_USAGE, "a grant names 1 to %d secrets and at most %d commands",
				   BROKER_MAX_NAMES, BROKER_MAX_CMDS);
	/* The plaintext to seal is itself a message: the grant's header, then
	 * each value as a frame, in the order of the names. */
	const char *names[BROKER_MAX_NAMES];
	struct secbuf frames[BROKER_MAX_NAMES];
	for (size_t i = 0; i < g->n; i++) {
		names[i] = g->items[i].name;
		frames[i] = g->items[i].value;
	}
	if (g->n_allow_env > BROKER_MAX_ALLOW_ENV)
		return latch_error(LATCH_USAGE, "at most %d --allow-env", BROKER_MAX_ALLOW_ENV);
	json_t *head = json_pack("{s:s, s:o, s:o, s:I, s:o, s:o}", "grant", g->id, "names", string_array(names, g->n),
				 "cmds", string_array(g->cmds, g->n_cmds), "ttl", (json_int_t)g->ttl, "uses",
				 g->uses > 0 ? json_integer(g->uses) : json_null(), "allow_env",
				 string_array(g->allow_env, g->n_allow_env));
	struct secbuf *plain = head ? wire_build(head, frames, g->n) : NULL;
	json_decref(head);
	sodium_memzero(frames, sizeof frames);
	if (!plain)
		return head ? -1 : latch_error(LATCH_OPERR, "out of memory");
	json_t *box = auth_seal(s->key, s->instance, s->nc, s->nb, (const char *)plain->data, plain->len);
	secbuf_free(plain);
	struct wire_msg m;
	struct secbuf *buf;
	json_t *req = box ? json_pack("{s:s, s:o}", "op", "grant", "box", box) : NULL;
	int rc = exchange(s->fd, req, &m, &buf);
	json_decref(req);
	if (rc != 0)
		return -1;
	json_t *d = json_object_get(m.head, "deadline");
	unsigned char ack[AUTH_MAC_BYTES], want[AUTH_MAC_BYTES];
	if (!json_is_true(json_object_get(m.head, "ok"))) {
		rc = latch_error(LATCH_DENIED, "the broker refused the grant: %s", message_of(&m, "no reason given"));
	} else if (!json_is_integer(d) || auth_b64_32(json_object_get(m.head, "ack"), ack) != 0 ||
		   (auth_ack(s->key, s->nc, s->nb, g->id, json_integer_value(d), want),
		    sodium_memcmp(ack, want, sizeof ack) != 0)) {
		rc = latch_error(LATCH_OPERR, "the broker's receipt for the grant does not verify");
	} else {
		*deadline = json_integer_value(d);
	}
	answer_free(&m, buf);
	return rc;
}

/* argv or an environment as base64 of each element's bytes: JSON
 * carries only UTF-8, and what is not must still run (and be hashed) as
 * it is. */
static json_t *b64_array(char *const *argv)
{
	json_t *a = json_array();
	for (char *const *p = argv; a && p && *p; p++) {
		size_t len = strlen(*p), n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
		char *text = malloc(n);
		json_t *v = text ? json_string(sodium_bin2base64(text, n, (const unsigned char *)*p, len,
								 sodium_base64_VARIANT_ORIGINAL))
				 : NULL;
		free(text);
		if (!v || json_array_append_new(a, v) != 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

static json_t *refs_array(const struct broker_ref *refs, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		json_t *r =
			json_pack("{s:s, s:s, s:b}", "var", refs[i].var, "name", refs[i].name, "file", refs[i].as_file);
		if (!r || json_array_append_new(a, r) != 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

/* The request, with the four descriptors riding on its first byte. */
static int send_with_fds(int fd, const struct secbuf *msg, const int fds[4])
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = {msg->data, msg->len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(4 * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, 4 * sizeof(int));
	ssize_t w;
	while ((w = sendmsg(fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (w < 0)
		return latch_error(LATCH_OPERR, "cannot reach the broker: %s", strerror(errno));
	struct secbuf rest = {msg->data + w, msg->len - (size_t)w, msg->len - (size_t)w};
	return rest.len ? wire_send(fd, &rest) : 0;
}

/* One message of a run's connection: a header line and no frames (the
 * daemon's refusal, the runner's hello, its exit), taken up to its
 * newline only, so that nothing of the next message is consumed with it:
 * looked at first (MSG_PEEK) and read in one go when it is all there (it
 * is sent with one write), else a byte at a time. 0 with m->head set, -1
 * on EOF, error, or a line that is not a JSON object (or over 1 KiB). */
static int read_line(int fd, struct wire_msg *m)
{
	char line[1024];
	ssize_t n;
	while ((n = recv(fd, line, sizeof line, MSG_PEEK)) < 0 && errno == EINTR)
		;
	if (n <= 0)
		return -1;
	char *nl = memchr(line, '\n', (size_t)n);
	size_t want = nl ? (size_t)(nl - line) + 1 : 1, len = 0;
	for (;;) {
		n = recv(fd, line + len, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
		if (line[len - 1] == '\n')
			break;
		if (len == sizeof line)
			return -1;
		want = nl ? want - (size_t)n : 1;
	}
	m->n = 0;
	m->head = json_loadb(line, len - 1, 0, NULL);
	return json_is_object(m->head) ? 0 : (wire_msg_clear(m), -1);
}

int broker_run_start(const char *vault_dir, const struct broker_run_req *req, struct broker_run *r)
{
	memset(r, 0, sizeof *r);
	r->fd = -1;
	if (req->n_refs == 0 || req->n_refs > BROKER_MAX_NAMES)
		return latch_error(LATCH_USAGE, "a run names 1 to %d references", BROKER_MAX_NAMES);
	/* JSON carries only UTF-8: a path that is not was "out of memory". */
	json_t *exe = json_string(req->exe);
	if (!exe)
		return latch_error(LATCH_USAGE, "the program's path is not UTF-8, so no grant can name it");
	json_t *cwd = req->cwd ? json_string(req->cwd) : NULL;
	json_t *head = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:b}", "op", "run", "cmd", exe, "argv",
				 b64_array(req->argv), "env", b64_array(req->env), "refs",
				 refs_array(req->refs, req->n_refs), "cwd", cwd ? cwd : json_string(""), "session",
				 req->in_session, "pty", !req->no_pty, "redact", !req->no_redact);
	if (head && req->token_var)
		json_object_set_new(head, "token_var", json_string(req->token_var));
	struct secbuf *msg = head ? wire_build(head, NULL, 0) : NULL;
	json_decref(head);
	if (!msg)
		return latch_error(LATCH_OPERR, "the run request could not be built (out of memory?)");
	int fd;
	int rc = open_broker(vault_dir, &fd);
	if (rc == 1)
		snprintf(r->reason, sizeof r->reason, "no live grant (the broker is not running)");
	int fds[4] = {req->stdio[0], req->stdio[1], req->stdio[2], req->cwd_fd};
	if (fd >= 0 && send_with_fds(fd, msg, fds) != 0)
		rc = -1;
	secbuf_free(msg);
	if (fd < 0 || rc != 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	/* The answer: a refusal from the daemon, or the runner's hello. */
	struct wire_msg m = {0};
	struct secbuf *buf = NULL;
	if (read_line(fd, &m) != 0) {
		close(fd);
		return latch_error(LATCH_OPERR, "the broker did not answer");
	}
	const char *id = json_string_value(json_object_get(m.head, "release"));
	json_t *runner = json_object_get(m.head, "runner");
	if (!json_is_true(json_object_get(m.head, "ok"))) {
		const char *code = json_string_value(json_object_get(m.head, "error"));
		snprintf(r->reason, sizeof r->reason, "%s", message_of(&m, "refused"));
		rc = code && !strcmp(code, "denied") ? 1
						     : latch_error(LATCH_OPERR, "the broker refused: %s", r->reason);
	} else if (!id || strlen(id) >= sizeof r->id || !json_is_integer(runner)) {
		rc = latch_error(LATCH_OPERR, "the broker's answer is not understood");
	} else {
		snprintf(r->id, sizeof r->id, "%s", id);
		r->runner = (pid_t)json_integer_value(runner);
		/* The child may read stdin for hours: no timeout from here on. */
		struct timeval none = {0, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
		r->fd = fd;
		fd = -1;
	}
	answer_free(&m, buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

void broker_run_close(struct broker_run *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

int broker_record_mint(const char *vault_dir, const struct broker_mint *mt)
{
	struct wire_msg m;
	struct secbuf *buf;
	int rc = call(vault_dir,
		      json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "op", "mint", "profile", mt->profile, "rule",
				mt->rule_id ? mt->rule_id : "", "expires", (json_int_t)mt->expires_at, "iss",
				mt->iss ? mt->iss : "", "sub", mt->sub ? mt->sub : "", "jti", mt->jti ? mt->jti : ""),
		      &m, &buf);
	if (rc == 0 && !json_is_true(json_object_get(m.head, "ok")))
		rc = latch_error(LATCH_OPERR, "the mint was not recorded: %s", message_of(&m, "(null)"));
	answer_free(&m, buf);
	return rc;
}

int broker_record_scan(const char *vault_dir, const char *const *names, size_t n, const char *const *paths,
		       size_t n_paths, const char *scope)
{
	json_t *jn = json_array(), *jp = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(jn, json_string(names[i]));
	for (size_t i = 0; i < n_paths; i++)
		json_array_append_new(jp, json_string(paths[i]));
	struct wire_msg m;
	struct secbuf *buf;
	int rc = call(vault_dir,
		      json_pack("{s:s, s:o, s:o, s:s}", "op", "scan_block", "names", jn, "paths", jp, "scope", scope),
		      &m, &buf);
	if (rc == 0 && !json_is_true(json_object_get(m.head, "ok")))
		rc = latch_error(LATCH_OPERR, "the blocked scan was not recorded: %s", message_of(&m, "(null)"));
	answer_free(&m, buf);
	return rc;
}

/* Copies a JSON array of strings (NULL entries for what is not one). */
static int strings_copy(json_t *arr, char ***out, size_t *n)
{
	*n = json_array_size(arr);
	*out = calloc(*n ? *n : 1, sizeof **out);
	if (!*out)
		return -1;
	for (size_t i = 0; i < *n; i++) {
		const char *v = json_string_value(json_array_get(arr, i));
		if (v && !((*out)[i] = strdup(v)))
			return -1;
	}
	return 0;
}

int broker_list(const char *vault_dir, struct broker_list *l)
{
	memset(l, 0, sizeof *l);
	struct wire_msg m;
	struct secbuf *buf;
	int rc = call(vault_dir, json_pack("{s:s}", "op", "list"), &m, &buf);
	if (rc != 0)
		return rc;
	json_t *grants = json_object_get(m.head, "grants");
	if (!json_is_array(grants)) {
		answer_free(&m, buf);
		return latch_error(LATCH_OPERR, "the broker's answer is not understood");
	}
	l->pid = (pid_t)json_integer_value(json_object_get(m.head, "pid"));
	l->grants = calloc(json_array_size(grants) + 1, sizeof *l->grants);
	size_t i;
	json_t *g;
	json_array_foreach(grants, i, g)
	{
		if (!l->grants)
			break;
		struct broker_grant_info *info = &l->grants[l->n++];
		const char *id = json_string_value(json_object_get(g, "grant"));
		json_t *uses = json_object_get(g, "uses_left");
		info->deadline = json_integer_value(json_object_get(g, "deadline"));
		info->uses_left = json_is_integer(uses) ? json_integer_value(uses) : -1;
		if ((id && !(info->id = strdup(id))) ||
		    strings_copy(json_object_get(g, "names"), &info->names, &info->n_names) != 0 ||
		    strings_copy(json_object_get(g, "cmds"), &info->cmds, &info->n_cmds) != 0)
			rc = -1;
	}
	answer_free(&m, buf);
	if (rc != 0 || !l->grants) {
		broker_list_free(l);
		return latch_error(LATCH_OPERR, "out of memory");
	}
	return 0;
}

void broker_list_free(struct broker_list *l)
{
	for (size_t i = 0; l->grants && i < l->n; i++) {
		struct broker_grant_info *g = &l->grants[i];
		free(g->id);
		for (size_t k = 0; g->names && k < g->n_names; k++)
			free(g->names[k]);
		for (size_t k = 0; g->cmds && k < g->n_cmds; k++)
			free(g->cmds[k]);
		free(g->names);
		free(g->cmds);
	}
	free(l->grants);
	memset(l, 0, sizeof *l);
}

int broker_revoke(const char *vault_dir, const char *id, int *count)
{
	struct wire_msg m;
	struct secbuf *buf;
	int rc = call(vault_dir,
		      id ? json_pack("{s:s, s:s}", "op", "revoke", "grant", id)
			 : json_pack("{s:s, s:b}", "op", "revoke", "all", 1),
		      &m, &buf);
	if (rc != 0)
		return rc;
	if (!json_is_true(json_object_get(m.head, "ok"))) {
		/* What the broker says is shown, never obeyed: escaped. */
		char msg[512];
		text_escape(message_of(&m, "refused"), msg, sizeof msg);
		rc = latch_error(LATCH_OPERR, "%s", msg);
	} else {
		*count = (int)json_integer_value(json_object_get(m.head, "revoked"));
	}
	answer_free(&m, buf);
	return rc;
}
