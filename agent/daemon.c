/* The broker daemon: grants in locked memory, enforced here and only here. */
#include "agent.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct grant {
	char id[32];
	size_t n;
	char *names[AGENT_MAX_NAMES];
	struct secbuf *values[AGENT_MAX_NAMES];
	size_t n_cmds;
	char *cmds[AGENT_MAX_CMDS];
	int64_t deadline;
	int64_t uses_left;  /* -1: unlimited */
	const char *ended;  /* NULL while live; else why it ended */
	struct grant *next;
};

/* A release whose child has not reported its exit yet, or (on the
 * pending list) whose exit record waits for the next commit. */
struct release {
	char id[32];
	struct grant *grant;
	size_t n;
	char *names[AGENT_MAX_NAMES];
	pid_t pid; /* who reported the exit */
	uid_t uid;
	int status;
	int64_t time;
	struct release *next;
};

/* Exit records queue here: at most this many, for at most
 * AGENT_EXIT_FLUSH_MS, and a flush that keeps failing gives up on them
 * (said on stderr) rather than hold every later release hostage. */
#define MAX_PENDING (AGENT_RECORD_BATCH - 1)
#define MAX_FLUSH_FAILURES 20

static struct grant *grants;
static struct release *releases;
static size_t n_releases;
static struct release *pending, **pending_tail = &pending;
static size_t n_pending;
static int64_t pending_since_ms; /* monotonic time of the oldest pending exit */
static int flush_failures;
static struct secbuf *writer; /* the audit writer key, from the last grant */
static const struct agent_recorder *recorder;
static volatile sig_atomic_t stopping;

static int64_t now(void)
{
	return (int64_t)time(NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void release_free(struct release *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r);
}

static void pending_drop_all(void)
{
	while (pending) {
		struct release *r = pending;
		pending = r->next;
		release_free(r);
	}
	pending_tail = &pending;
	n_pending = 0;
}

/* Record the pending exits, then `ev` (if any), in one durable commit.
 * If that fails and `ev` is given, `ev` is tried alone: a release must
 * not be refused because an earlier exit could not be written. */
static int record_with_pending(const struct agent_event *ev)
{
	struct agent_event evs[MAX_PENDING + 1];
	size_t n = 0;
	for (const struct release *r = pending; r && n < MAX_PENDING; r = r->next)
		evs[n++] = (struct agent_event){.event = "exit", .grant_id = r->grant->id,
						 .names = (const char *const *)r->names, .n = r->n, .pid = r->pid,
						 .uid = r->uid, .exit_status = r->status, .time = r->time};
	size_t n_exits = n;
	if (ev)
		evs[n++] = *ev;
	if (n == 0)
		return 0;
	if (writer && recorder->record(recorder->ctx, writer, evs, n) == 0) {
		pending_drop_all();
		flush_failures = 0;
		return 0;
	}
	if (n_exits > 0) {
		pending_since_ms = now_ms(); /* retry later, not in a loop */
		if (++flush_failures >= MAX_FLUSH_FAILURES) {
			fprintf(stderr, "latch agent: %zu exit records could not be written and are dropped\n",
				n_pending);
			pending_drop_all();
			flush_failures = 0;
		}
	}
	return ev && n_exits > 0 && writer ? recorder->record(recorder->ctx, writer, ev, 1) : -1;
}

static void grant_forget_values(struct grant *g, const char *why)
{
	for (size_t i = 0; i < g->n; i++) {
		secbuf_free(g->values[i]);
		g->values[i] = NULL;
	}
	if (!g->ended)
		g->ended = why;
}

static bool grant_live(const struct grant *g)
{
	return !g->ended && g->deadline > now() && g->uses_left != 0;
}

/* Ends grants past their deadline: their values are wiped at once. */
static void sweep(void)
{
	for (struct grant *g = grants; g; g = g->next)
		if (!g->ended && g->deadline <= now())
			grant_forget_values(g, "expired");
}

static bool grant_has(const struct grant *g, const char *name)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->names[i], name))
			return true;
	return false;
}

static bool grant_allows_cmd(const struct grant *g, const char *cmd)
{
	if (g->n_cmds == 0)
		return true;
	for (size_t i = 0; i < g->n_cmds; i++)
		if (!strcmp(g->cmds[i], cmd))
			return true;
	return false;
}

static json_t *reply_error(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *reply_error(const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "message", msg);
}

/* Copies a JSON array of strings, each a valid secret name or command. */
static int strings_of(json_t *arr, size_t max, char **out, size_t *n, bool names)
{
	*n = 0;
	if (!json_is_array(arr) || json_array_size(arr) > max)
		return -1;
	size_t i;
	json_t *s;
	json_array_foreach(arr, i, s)
	{
		const char *v = json_string_value(s);
		if (!v || (names && !latch_name_valid(v)) || (!names && v[0] != '/'))
			return -1;
		if (!(out[(*n)++] = strdup(v)))
			return -1;
	}
	return 0;
}

static void strings_free(char **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i]);
}

static json_t *op_grant(json_t *req)
{
	struct grant *g = calloc(1, sizeof *g);
	struct secbuf *key = secret_from_json_b64(json_object_get(req, "writer_key"), 32);
	const char *id = json_string_value(json_object_get(req, "grant"));
	json_t *values = json_object_get(req, "values");
	json_int_t ttl = json_integer_value(json_object_get(req, "ttl"));
	json_t *uses = json_object_get(req, "uses");
	json_t *reply = NULL;
	if (!g || !key || key->len != 32 || !id || !latch_name_valid(id) || strlen(id) >= sizeof g->id ||
	    ttl < 1 || ttl > AGENT_MAX_TTL || (!json_is_null(uses) && (!json_is_integer(uses) || json_integer_value(uses) < 1)) ||
	    strings_of(json_object_get(req, "names"), AGENT_MAX_NAMES, g->names, &g->n, true) != 0 || g->n == 0 ||
	    strings_of(json_object_get(req, "cmds"), AGENT_MAX_CMDS, g->cmds, &g->n_cmds, false) != 0 ||
	    json_array_size(values) != g->n) {
		reply = reply_error("bad-request", "malformed grant");
		goto fail;
	}
	for (struct grant *o = grants; o; o = o->next)
		if (!strcmp(o->id, id)) {
			reply = reply_error("bad-request", "grant %s exists already", id);
			goto fail;
		}
	/* Only the holder of the passphrase has the writer key; a request
	 * without it is not a human's grant. */
	if (recorder->check_key(recorder->ctx, key) != 0) {
		reply = reply_error("denied", "the grant does not carry this vault's audit key");
		goto fail;
	}
	for (size_t i = 0; i < g->n; i++)
		if (!(g->values[i] = secret_from_json_b64(json_array_get(values, i), 1u << 20))) {
			reply = reply_error("bad-request", "malformed value for '%s'", g->names[i]);
			goto fail;
		}
	snprintf(g->id, sizeof g->id, "%s", id);
	g->deadline = now() + ttl;
	g->uses_left = json_is_integer(uses) ? json_integer_value(uses) : -1;
	g->next = grants;
	grants = g;
	secbuf_free(writer);
	writer = key;
	return json_pack("{s:b, s:s, s:I}", "ok", 1, "grant", g->id, "deadline", (json_int_t)g->deadline);
fail:
	if (g) {
		grant_forget_values(g, "refused");
		strings_free(g->names, g->n);
		strings_free(g->cmds, g->n_cmds);
		free(g);
	}
	secbuf_free(key);
	return reply;
}

/* Why no live grant covers this request: for the refusal and its record. */
static void denial_reason(char **names, size_t n, const char *cmd, char *buf, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		const struct grant *seen = NULL;
		for (const struct grant *g = grants; g && !seen; g = g->next)
			if (grant_has(g, names[i]))
				seen = g;
		if (!seen) {
			snprintf(buf, len, "no grant covers '%s'", names[i]);
			return;
		}
		bool any_live = false, cmd_ok = false;
		for (const struct grant *g = grants; g; g = g->next)
			if (grant_has(g, names[i]) && grant_live(g)) {
				any_live = true;
				cmd_ok = cmd_ok || grant_allows_cmd(g, cmd);
			}
		if (!any_live) {
			snprintf(buf, len, "grant %s for '%s' has %s", seen->id, names[i],
				 seen->ended && !strcmp(seen->ended, "used up") ? "no uses left"
				 : seen->ended && !strcmp(seen->ended, "revoked") ? "been revoked"
										  : "expired");
			return;
		}
		if (!cmd_ok) {
			snprintf(buf, len, "no grant for '%s' allows the command '%s'", names[i], cmd);
			return;
		}
	}
	snprintf(buf, len, "no single grant covers all of these secrets");
}

static void release_remember(const char *id, struct grant *g, char **names, size_t n)
{
	struct release *r = calloc(1, sizeof *r);
	if (!r)
		return;
	snprintf(r->id, sizeof r->id, "%s", id);
	r->grant = g;
	for (size_t i = 0; i < n; i++)
		if (!(r->names[r->n++] = strdup(names[i]))) {
			release_free(r); /* its exit will be "unknown release" */
			return;
		}
	r->next = releases;
	releases = r;
	/* Bounded: a child that never reports its exit is forgotten. */
	if (++n_releases > 4096) {
		struct release **p = &releases;
		while ((*p)->next)
			p = &(*p)->next;
		release_free(*p);
		*p = NULL;
		n_releases--;
	}
}

static json_t *op_release(json_t *req, const struct ucred *peer)
{
	char *names[AGENT_MAX_NAMES], *argv[256];
	size_t n = 0, argc = 0;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	const char *cwd = json_string_value(json_object_get(req, "cwd"));
	json_t *reply = NULL;
	if (!cmd || cmd[0] != '/' || strings_of(json_object_get(req, "names"), AGENT_MAX_NAMES, names, &n, true) != 0 ||
	    n == 0) {
		strings_free(names, n);
		return reply_error("bad-request", "malformed release");
	}
	json_t *jargv = json_object_get(req, "argv"), *a;
	size_t i;
	json_array_foreach(jargv, i, a)
	{
		if (argc == sizeof argv / sizeof argv[0] - 1 || !json_string_value(a) ||
		    !(argv[argc] = strdup(json_string_value(a))))
			break;
		argc++;
	}
	argv[argc] = NULL;
	sweep();
	/* The daemon cannot tell latch from another program of this user
	 * speaking its protocol (a non-dumpable peer's /proc/PID/exe is closed
	 * to it, and a connection can be handed between processes): the
	 * policy is what it enforces, and every release is recorded (N1). */
	struct grant *g = NULL;
	for (struct grant *c = grants; c && !g; c = c->next) {
		bool all = grant_live(c) && grant_allows_cmd(c, cmd);
		for (size_t k = 0; all && k < n; k++)
			all = grant_has(c, names[k]);
		if (all)
			g = c;
	}
	struct agent_event ev = {.event = "release", .names = (const char *const *)names, .n = n,
				 .pid = peer->pid, .uid = peer->uid, .exe = cmd, .cwd = cwd,
				 .argv = argv, .argc = (int)argc, .exit_status = -1};
	if (!g) {
		char why[256];
		denial_reason(names, n, cmd, why, sizeof why);
		ev.decision = "deny";
		ev.reason = why;
		/* Refusals are recorded when the daemon can (it holds the writer
		 * key once any grant was made); the refusal stands either way. */
		if (writer)
			record_with_pending(&ev);
		reply = reply_error("denied", "%s", why);
		goto out;
	}
	char rid[32];
	unsigned char rnd[6];
	randombytes_buf(rnd, sizeof rnd);
	snprintf(rid, sizeof rid, "r-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	ev.decision = "allow";
	ev.grant_id = g->id;
	/* Recorded durably first; if that fails nothing is released. */
	if (record_with_pending(&ev) != 0) {
		reply = reply_error("audit", "the release could not be recorded, so it was refused");
		goto out;
	}
	json_t *vals = json_array();
	for (size_t k = 0; k < n; k++)
		for (size_t j = 0; j < g->n; j++)
			if (!strcmp(g->names[j], names[k]))
				json_array_append_new(vals, json_secret_b64(g->values[j]));
	reply = json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "release", rid, "grant", g->id, "values", vals);
	release_remember(rid, g, names, n);
	if (g->uses_left > 0 && --g->uses_left == 0)
		grant_forget_values(g, "used up");
out:
	strings_free(names, n);
	strings_free(argv, argc);
	return reply;
}

/* The exit is queued, not written: see AGENT_EXIT_FLUSH_MS. */
static json_t *op_exit(json_t *req, const struct ucred *peer)
{
	const char *rid = json_string_value(json_object_get(req, "release"));
	json_t *status = json_object_get(req, "status");
	if (!rid || !json_is_integer(status))
		return reply_error("bad-request", "malformed exit report");
	for (struct release **p = &releases; *p; p = &(*p)->next) {
		struct release *r = *p;
		if (strcmp(r->id, rid) != 0)
			continue;
		*p = r->next;
		n_releases--;
		r->pid = peer->pid;
		r->uid = peer->uid;
		r->status = (int)json_integer_value(status);
		r->time = now();
		r->next = NULL;
		if (n_pending++ == 0)
			pending_since_ms = now_ms();
		*pending_tail = r;
		pending_tail = &r->next;
		if (n_pending >= MAX_PENDING && record_with_pending(NULL) != 0)
			return reply_error("audit", "the exit could not be recorded");
		return json_pack("{s:b}", "ok", 1);
	}
	return reply_error("bad-request", "unknown release");
}

static json_t *op_flush(void)
{
	size_t n = n_pending;
	if (record_with_pending(NULL) != 0)
		return reply_error("audit", "%zu exit records could not be written", n);
	return json_pack("{s:b, s:I}", "ok", 1, "written", (json_int_t)n);
}

static json_t *op_list(void)
{
	sweep();
	json_t *list = json_array();
	for (struct grant *g = grants; g; g = g->next) {
		if (!grant_live(g))
			continue;
		json_t *names = json_array(), *cmds = json_array();
		for (size_t i = 0; i < g->n; i++)
			json_array_append_new(names, json_string(g->names[i]));
		for (size_t i = 0; i < g->n_cmds; i++)
			json_array_append_new(cmds, json_string(g->cmds[i]));
		json_array_append_new(list, json_pack("{s:s, s:o, s:I, s:o, s:o}", "grant", g->id, "names", names,
						      "deadline", (json_int_t)g->deadline, "uses_left",
						      g->uses_left < 0 ? json_null() : json_integer(g->uses_left),
						      "cmds", cmds));
	}
	return json_pack("{s:b, s:i, s:o}", "ok", 1, "pid", (int)getpid(), "grants", list);
}

static json_t *op_revoke(json_t *req, const struct ucred *peer)
{
	const char *id = json_string_value(json_object_get(req, "grant"));
	bool all = json_is_true(json_object_get(req, "all"));
	int count = 0;
	for (struct grant *g = grants; g; g = g->next) {
		if (!grant_live(g) || (!all && (!id || strcmp(g->id, id) != 0)))
			continue;
		grant_forget_values(g, "revoked");
		count++;
		struct agent_event ev = {.event = "revoke", .grant_id = g->id,
					 .names = (const char *const *)g->names, .n = g->n,
					 .pid = peer->pid, .uid = peer->uid, .exit_status = -1};
		if (writer)
			record_with_pending(&ev);
	}
	if (!all && count == 0)
		return reply_error("not-found", "no live grant '%s'", id ? id : "");
	return json_pack("{s:b, s:i}", "ok", 1, "revoked", count);
}

static json_t *dispatch(json_t *req, const struct ucred *peer)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	if (!op)
		return reply_error("bad-request", "no op");
	if (!strcmp(op, "ping"))
		return json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid());
	if (!strcmp(op, "grant"))
		return op_grant(req);
	if (!strcmp(op, "release"))
		return op_release(req, peer);
	if (!strcmp(op, "exit"))
		return op_exit(req, peer);
	if (!strcmp(op, "list"))
		return op_list();
	if (!strcmp(op, "revoke"))
		return op_revoke(req, peer);
	if (!strcmp(op, "flush"))
		return op_flush();
	return reply_error("bad-request", "unknown op");
}

static void serve_one(int fd)
{
	struct ucred peer;
	socklen_t len = sizeof peer;
	/* Same user only; the 0700 directory already keeps others out. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.uid != geteuid())
		return;
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct secbuf *in = wire_read_line(fd);
	if (!in)
		return;
	json_error_t err;
	json_t *req = json_loadb((const char *)in->data, in->len, JSON_DISABLE_EOF_CHECK, &err);
	secbuf_free(in);
	json_t *reply = req ? dispatch(req, &peer) : reply_error("bad-request", "not JSON");
	json_decref(req);
	if (reply)
		wire_write_json(fd, reply);
	json_decref(reply);
}

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int detach(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return latch_error(LATCH_OPERR, "cannot start the agent: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	setsid();
	pid = fork();
	if (pid < 0)
		_exit(LATCH_OPERR);
	if (pid > 0)
		_exit(0);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	if (chdir("/") != 0)
		return -1;
	return 0;
}

/* No inherited descriptor may keep a caller's pipe open (a test runner
 * waits for its output to close). */
static void close_inherited(void)
{
	struct rlimit rl;
	int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
	for (int fd = 3; fd < max; fd++)
		close(fd);
}

static int idle_seconds(void)
{
	const char *s = getenv("LATCH_AGENT_IDLE");
	int v = s ? atoi(s) : 0;
	return v > 0 ? v : 600;
}

int agent_detach(bool foreground)
{
	close_inherited();
	return foreground ? 0 : detach();
}

int agent_serve(const char *vault_dir, const struct agent_recorder *rec)
{
	char sock[PATH_MAX], lock[PATH_MAX];
	recorder = rec;
	if (agent_paths(vault_dir, sock, lock) != 0)
		return -1;
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd < 0)
		return latch_error(LATCH_OPERR, "cannot open '%s': %s", lock, strerror(errno));
	if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		close(lfd);
		return 0; /* another agent serves this vault */
	}
	/* The lock is ours: a socket file left here is a dead agent's. */
	unlink(sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (fd < 0 || strlen(sock) >= sizeof addr.sun_path) {
		close(lfd);
		return latch_error(LATCH_OPERR, "cannot create the agent socket");
	}
	memcpy(addr.sun_path, sock, strlen(sock) + 1);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || chmod(sock, 0600) != 0 || listen(fd, 64) != 0) {
		int e = errno;
		close(fd);
		close(lfd);
		return latch_error(LATCH_OPERR, "cannot listen on '%s': %s", sock, strerror(e));
	}
	char pidtext[32];
	int n = snprintf(pidtext, sizeof pidtext, "%d\n", (int)getpid());
	if (ftruncate(lfd, 0) != 0 || write(lfd, pidtext, (size_t)n) != n)
		latch_error(LATCH_OPERR, "cannot write the agent's pid to '%s'", lock);

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int64_t last = now();
	int idle = idle_seconds();
	while (!stopping) {
		sweep();
		bool live = false;
		int64_t next = last + idle;
		for (struct grant *g = grants; g; g = g->next)
			if (grant_live(g)) {
				live = true;
				if (g->deadline < next)
					next = g->deadline;
			}
		if (!live && !pending && now() - last >= idle)
			break;
		int64_t wait = next - now();
		if (wait < 1)
			wait = 1;
		if (live && wait > 60)
			wait = 60;
		int64_t wait_ms = wait * 1000;
		if (pending) {
			int64_t due = pending_since_ms + AGENT_EXIT_FLUSH_MS - now_ms();
			wait_ms = due < 0 ? 0 : due < wait_ms ? due : wait_ms;
		}
		struct pollfd p = {fd, POLLIN, 0};
		int r = poll(&p, 1, (int)wait_ms);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0 && (p.revents & POLLIN)) {
			int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0) {
				serve_one(c);
				close(c);
				last = now();
			}
		}
		if (pending && now_ms() - pending_since_ms >= AGENT_EXIT_FLUSH_MS)
			record_with_pending(NULL);
	}
	record_with_pending(NULL);
	/* Forget everything before the socket goes away. */
	for (struct grant *g = grants; g; g = g->next)
		grant_forget_values(g, "agent stopped");
	secbuf_free(writer);
	writer = NULL;
	unlink(sock);
	close(fd);
	close(lfd);
	return 0;
}
