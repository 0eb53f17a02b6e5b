/* The broker daemon: grants in locked memory, enforced here and only here.
 * One thread, one poll loop: every connection is non-blocking and has an
 * absolute deadline, so expiry, revocation and stop never wait for a
 * client. */
#include "broker.h"
#include "auth.h"
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
	char *names[BROKER_MAX_NAMES];
	struct secbuf *values[BROKER_MAX_NAMES];
	size_t n_cmds;
	char *cmds[BROKER_MAX_CMDS];
	int64_t deadline;
	int64_t uses_left; /* -1: unlimited */
	const char *ended; /* NULL while live; else why it ended */
	struct grant *next;
};

/* A release whose child has not reported its exit yet, or (on the
 * pending list) whose exit record waits for the next commit. */
struct release {
	char id[32];
	struct grant *grant;
	size_t n;
	char *names[BROKER_MAX_NAMES];
	pid_t pid; /* who reported the exit */
	uid_t uid;
	int status;
	int64_t time;
	struct release *next;
};

/* A client connection: a request line comes in, its answer goes out,
 * and so on until the client closes it or its deadline passes. */
struct conn {
	int fd;
	struct ucred peer;
	int64_t deadline_ms;
	struct secbuf *in;
	char *out; /* the answer being sent (json_dumps text, wiped when freed) */
	size_t out_len, out_off;
	bool hello; /* challenged: nc and nb are set */
	bool granted;
	unsigned char nc[AUTH_NONCE_BYTES], nb[AUTH_NONCE_BYTES];
};

/* Exit records queue here: at most this many, for at most
 * BROKER_EXIT_FLUSH_MS, and a flush that keeps failing gives up on them
 * rather than hold every later release hostage; how many were lost is
 * recorded with the next commit that succeeds. */
#define MAX_PENDING (BROKER_RECORD_BATCH - 2)
#define MAX_FLUSH_FAILURES 20
#define MAX_CONNS 64

static struct {
	struct grant *grants;
	struct release *releases;
	size_t n_releases;
	struct release *pending, **pending_tail;
	size_t n_pending;
	int64_t pending_since_ms; /* monotonic time of the oldest pending exit */
	int flush_failures;
	int64_t lost; /* exit records dropped and not yet said so */
	const struct broker_recorder *rec;
	struct secbuf *key; /* from the enrolment */
	unsigned char instance[BROKER_INSTANCE_BYTES];
	struct conn conns[MAX_CONNS];
	size_t n_conns;
	bool stop_asked;
} b;
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
	while (b.pending) {
		struct release *r = b.pending;
		b.pending = r->next;
		release_free(r);
	}
	b.pending_tail = &b.pending;
	b.n_pending = 0;
}

/* Record a "lost" count, the pending exits, then `ev` (if any), in one
 * durable commit. If that fails and `ev` is given, `ev` is tried alone: a
 * release must not be refused because an earlier exit could not be
 * written. */
static int record_with_pending(const struct broker_event *ev)
{
	static struct broker_event evs[BROKER_RECORD_BATCH];
	size_t n = 0;
	if (b.lost > 0)
		evs[n++] = (struct broker_event){.event = "lost", .lost_exits = b.lost, .pid = getpid(), .uid = getuid(),
						.exit_status = -1};
	for (const struct release *r = b.pending; r && n < MAX_PENDING + 1; r = r->next)
		evs[n++] = (struct broker_event){.event = "exit", .grant_id = r->grant->id,
						.names = (const char *const *)r->names, .n = r->n, .pid = r->pid,
						.uid = r->uid, .exit_status = r->status, .time = r->time};
	size_t n_queued = n;
	if (ev)
		evs[n++] = *ev;
	if (n == 0)
		return 0;
	if (b.rec->record(b.rec->ctx, evs, n) == 0) {
		pending_drop_all();
		b.lost = 0;
		b.flush_failures = 0;
		return 0;
	}
	if (b.n_pending > 0) {
		b.pending_since_ms = now_ms(); /* retry later, not in a loop */
		if (++b.flush_failures >= MAX_FLUSH_FAILURES) {
			b.lost += (int64_t)b.n_pending;
			pending_drop_all();
			b.flush_failures = 0;
		}
	}
	return ev && n_queued > 0 ? b.rec->record(b.rec->ctx, ev, 1) : -1;
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
	for (struct grant *g = b.grants; g; g = g->next)
		if (!g->ended && g->deadline <= now())
			grant_forget_values(g, "expired");
}

bool broker_busy_tick(void)
{
	sweep();
	return !stopping;
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

/* Copies a JSON array of strings, each a valid secret name or an
 * absolute command path with no control character. */
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
		if (!v || (names && !latch_name_valid(v)) || (!names && (v[0] != '/' || !text_is_plain(v))))
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

static json_t *op_hello(json_t *req, struct conn *c)
{
	if (c->hello || auth_b64_32(json_object_get(req, "nonce"), c->nc) != 0)
		return reply_error("bad-request", "malformed hello");
	c->hello = true;
	randombytes_buf(c->nb, sizeof c->nb);
	unsigned char proof[AUTH_MAC_BYTES];
	char hex[2 * BROKER_INSTANCE_BYTES + 1];
	auth_proof(b.key, b.instance, getpid(), c->nc, c->nb, proof);
	sodium_bin2hex(hex, sizeof hex, b.instance, sizeof b.instance);
	return json_pack("{s:b, s:i, s:s, s:o, s:o}", "ok", 1, "pid", (int)getpid(), "instance", hex, "nonce",
			 auth_b64_json(c->nb, sizeof c->nb), "proof", auth_b64_json(proof, sizeof proof));
}

/* A grant comes only from the one who answered this connection's
 * challenge with the broker's key: a passphrase holder. */
static json_t *op_grant(json_t *req, struct conn *c)
{
	if (!c->hello || c->granted)
		return reply_error("denied", "a grant must follow a challenge, once per connection");
	c->granted = true;
	struct secbuf *plain = auth_open(b.key, b.instance, c->nc, c->nb, json_object_get(req, "box"));
	if (!plain)
		return reply_error("denied", "the grant is not sealed with this broker's key");
	json_error_t err;
	json_t *g_req = json_loadb((const char *)plain->data, plain->len, 0, &err);
	secbuf_free(plain);
	struct grant *g = calloc(1, sizeof *g);
	const char *id = json_string_value(json_object_get(g_req, "grant"));
	json_t *values = json_object_get(g_req, "values");
	json_int_t ttl = json_integer_value(json_object_get(g_req, "ttl"));
	json_t *uses = json_object_get(g_req, "uses");
	json_t *reply = NULL;
	if (!g || !id || !latch_name_valid(id) || strlen(id) >= sizeof g->id || ttl < 1 || ttl > BROKER_MAX_TTL ||
	    (!json_is_null(uses) && (!json_is_integer(uses) || json_integer_value(uses) < 1)) ||
	    strings_of(json_object_get(g_req, "names"), BROKER_MAX_NAMES, g->names, &g->n, true) != 0 || g->n == 0 ||
	    strings_of(json_object_get(g_req, "cmds"), BROKER_MAX_CMDS, g->cmds, &g->n_cmds, false) != 0 ||
	    json_array_size(values) != g->n) {
		reply = reply_error("bad-request", "malformed grant");
		goto fail;
	}
	for (struct grant *o = b.grants; o; o = o->next)
		if (!strcmp(o->id, id)) {
			reply = reply_error("bad-request", "grant %s exists already", id);
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
	g->next = b.grants;
	b.grants = g;
	unsigned char ack[AUTH_MAC_BYTES];
	auth_ack(b.key, c->nc, c->nb, g->id, g->deadline, ack);
	json_decref(g_req);
	return json_pack("{s:b, s:s, s:I, s:o}", "ok", 1, "grant", g->id, "deadline", (json_int_t)g->deadline, "ack",
			 auth_b64_json(ack, sizeof ack));
fail:
	if (g) {
		grant_forget_values(g, "refused");
		strings_free(g->names, g->n);
		strings_free(g->cmds, g->n_cmds);
		free(g);
	}
	json_decref(g_req);
	return reply;
}

/* Why no live grant covers this request: for the refusal and its record. */
static void denial_reason(char **names, size_t n, const char *cmd, char *buf, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		const struct grant *seen = NULL;
		for (const struct grant *g = b.grants; g && !seen; g = g->next)
			if (grant_has(g, names[i]))
				seen = g;
		if (!seen) {
			snprintf(buf, len, "no grant covers '%s'", names[i]);
			return;
		}
		bool any_live = false, cmd_ok = false;
		for (const struct grant *g = b.grants; g; g = g->next)
			if (grant_has(g, names[i]) && grant_live(g)) {
				any_live = true;
				cmd_ok = cmd_ok || grant_allows_cmd(g, cmd);
			}
		if (!any_live) {
			snprintf(buf, len, "grant %s for '%s' has %s", seen->id, names[i],
				 seen->ended && !strcmp(seen->ended, "used up")   ? "no uses left"
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
	r->next = b.releases;
	b.releases = r;
	/* Bounded: a child that never reports its exit is forgotten. */
	if (++b.n_releases > 4096) {
		struct release **p = &b.releases;
		while ((*p)->next)
			p = &(*p)->next;
		release_free(*p);
		*p = NULL;
		b.n_releases--;
	}
}

static json_t *op_release(json_t *req, const struct ucred *peer)
{
	char *names[BROKER_MAX_NAMES], *argv[256];
	size_t n = 0, argc = 0;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	const char *cwd = json_string_value(json_object_get(req, "cwd"));
	json_t *reply = NULL;
	/* A command or directory holding control characters would reach the
	 * human's terminal through the log and the denial hint: refused. */
	if (!cmd || cmd[0] != '/' || !text_is_plain(cmd) || (cwd && !text_is_plain(cwd)) ||
	    strings_of(json_object_get(req, "names"), BROKER_MAX_NAMES, names, &n, true) != 0 || n == 0) {
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
	for (struct grant *c = b.grants; c && !g; c = c->next) {
		bool all = grant_live(c) && grant_allows_cmd(c, cmd);
		for (size_t k = 0; all && k < n; k++)
			all = grant_has(c, names[k]);
		if (all)
			g = c;
	}
	struct broker_event ev = {.event = "release", .names = (const char *const *)names, .n = n, .pid = peer->pid,
				 .uid = peer->uid, .exe = cmd, .cwd = cwd, .argv = argv, .argc = (int)argc,
				 .exit_status = -1};
	if (!g) {
		char why[256];
		denial_reason(names, n, cmd, why, sizeof why);
		ev.decision = "deny";
		ev.reason = why;
		/* The refusal stands whether or not it could be recorded. */
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

/* The exit is queued, not written: see BROKER_EXIT_FLUSH_MS. */
static json_t *op_exit(json_t *req, const struct ucred *peer)
{
	const char *rid = json_string_value(json_object_get(req, "release"));
	json_t *status = json_object_get(req, "status");
	if (!rid || !json_is_integer(status))
		return reply_error("bad-request", "malformed exit report");
	for (struct release **p = &b.releases; *p; p = &(*p)->next) {
		struct release *r = *p;
		if (strcmp(r->id, rid) != 0)
			continue;
		*p = r->next;
		b.n_releases--;
		r->pid = peer->pid;
		r->uid = peer->uid;
		r->status = (int)json_integer_value(status);
		r->time = now();
		r->next = NULL;
		if (b.n_pending++ == 0)
			b.pending_since_ms = now_ms();
		*b.pending_tail = r;
		b.pending_tail = &r->next;
		if (b.n_pending >= MAX_PENDING && record_with_pending(NULL) != 0)
			return reply_error("audit", "the exit could not be recorded");
		return json_pack("{s:b}", "ok", 1);
	}
	return reply_error("bad-request", "unknown release");
}

static json_t *op_flush(void)
{
	size_t n = b.n_pending;
	if (record_with_pending(NULL) != 0)
		return reply_error("audit", "%zu exit records could not be written", n);
	return json_pack("{s:b, s:I}", "ok", 1, "written", (json_int_t)n);
}

static json_t *op_list(void)
{
	sweep();
	json_t *list = json_array();
	for (struct grant *g = b.grants; g; g = g->next) {
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
	for (struct grant *g = b.grants; g; g = g->next) {
		if (!grant_live(g) || (!all && (!id || strcmp(g->id, id) != 0)))
			continue;
		grant_forget_values(g, "revoked");
		count++;
		struct broker_event ev = {.event = "revoke", .grant_id = g->id, .names = (const char *const *)g->names,
					 .n = g->n, .pid = peer->pid, .uid = peer->uid, .exit_status = -1};
		record_with_pending(&ev);
	}
	if (!all && count == 0)
		return reply_error("not-found", "no live grant '%s'", id && latch_name_valid(id) ? id : "");
	return json_pack("{s:b, s:i}", "ok", 1, "revoked", count);
}

static json_t *dispatch(json_t *req, struct conn *c)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	if (!op)
		return reply_error("bad-request", "no op");
	if (!strcmp(op, "ping"))
		return json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid());
	if (!strcmp(op, "hello"))
		return op_hello(req, c);
	if (!strcmp(op, "grant"))
		return op_grant(req, c);
	if (!strcmp(op, "release"))
		return op_release(req, &c->peer);
	if (!strcmp(op, "exit"))
		return op_exit(req, &c->peer);
	if (!strcmp(op, "list"))
		return op_list();
	if (!strcmp(op, "revoke"))
		return op_revoke(req, &c->peer);
	if (!strcmp(op, "flush"))
		return op_flush();
	if (!strcmp(op, "stop")) {
		/* Narrowing: anyone of this uid may stop the broker. */
		b.stop_asked = true;
		return json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid());
	}
	return reply_error("bad-request", "unknown op");
}

static void conn_close(size_t i)
{
	struct conn *c = &b.conns[i];
	close(c->fd);
	secbuf_free(c->in);
	if (c->out) {
		sodium_memzero(c->out, c->out_len);
		json_free_text(c->out);
	}
	b.conns[i] = b.conns[--b.n_conns];
}

/* Sends what it can of the answer: 1 all sent, 0 more to send, -1 the
 * connection is done for. */
static int conn_send(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w <= 0)
			return -1;
		c->out_off += (size_t)w;
	}
	sodium_memzero(c->out, c->out_len);
	json_free_text(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	return 1;
}

/* The first complete line in the buffer, answered. -1: close. */
static int conn_handle_line(struct conn *c)
{
	unsigned char *nl = memchr(c->in->data, '\n', c->in->len);
	if (!nl)
		return 0;
	size_t len = (size_t)(nl - c->in->data);
	json_error_t err;
	json_t *req = json_loadb((const char *)c->in->data, len, 0, &err);
	/* The line is consumed; what follows it stays. */
	size_t rest = c->in->len - len - 1;
	memmove(c->in->data, nl + 1, rest);
	sodium_memzero(c->in->data + rest, c->in->len - rest);
	c->in->len = rest;
	json_t *reply = json_is_object(req) ? dispatch(req, c) : reply_error("bad-request", "not JSON");
	json_decref(req);
	char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	json_decref(reply);
	if (!text)
		return -1;
	size_t n = strlen(text);
	/* The answer and its newline in one block from jansson's (wiping)
	 * allocator, so json_free_text frees it. */
	json_malloc_t jmalloc;
	json_free_t jfree;
	json_get_alloc_funcs(&jmalloc, &jfree);
	char *out = jmalloc(n + 2);
	if (out) {
		memcpy(out, text, n);
		out[n] = '\n';
		out[n + 1] = '\0';
	}
	sodium_memzero(text, n);
	json_free_text(text);
	if (!out)
		return -1;
	c->out = out;
	c->out_len = n + 1;
	c->out_off = 0;
	return conn_send(c) < 0 ? -1 : 1;
}

/* Reads what has arrived. -1: close (EOF, error, too long a line). */
static int conn_read(struct conn *c)
{
	for (;;) {
		if (c->in->len == c->in->cap) {
			if (c->in->cap >= BROKER_MAX_MESSAGE)
				return -1;
			struct secbuf *bigger = secbuf_new(c->in->cap * 2);
			if (!bigger)
				return -1;
			memcpy(bigger->data, c->in->data, c->in->len);
			bigger->len = c->in->len;
			secbuf_free(c->in);
			c->in = bigger;
		}
		ssize_t r = recv(c->fd, c->in->data + c->in->len, c->in->cap - c->in->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0)
			return -1;
		size_t before = c->in->len;
		c->in->len += (size_t)r;
		if (memchr(c->in->data + before, '\n', (size_t)r))
			return 0;
	}
}

static void accept_all(int lfd)
{
	while (b.n_conns < MAX_CONNS) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ucred peer;
		socklen_t len = sizeof peer;
		struct secbuf *in = NULL;
		/* Same user only; the 0700 directory already keeps others out. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.uid != geteuid() ||
		    !(in = secbuf_new(2048))) {
			close(fd);
			continue;
		}
		b.conns[b.n_conns++] = (struct conn){.fd = fd, .peer = peer, .in = in,
						     .deadline_ms = now_ms() + BROKER_CONN_DEADLINE_MS};
	}
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
		return latch_error(LATCH_OPERR, "cannot start the broker: %s", strerror(errno));
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

static int idle_seconds(void)
{
	const char *s = getenv("LATCH_BROKER_IDLE");
	int v = s ? atoi(s) : 0;
	return v > 0 ? v : 600;
}

int broker_detach(bool foreground, int keep)
{
	/* No inherited descriptor may keep a caller's pipe open (a test
	 * runner waits for its output to close). */
	if (keep > 3)
		return latch_error(LATCH_USAGE, "the enrolment descriptor must be 3");
	closefrom(keep == 3 ? 4 : 3);
	return foreground ? 0 : detach();
}

/* Reads the enrolment: instance id, key, audit stream keys. */
static int take_enrolment(int fd)
{
	struct secbuf *line = wire_read_line(fd);
	if (!line)
		return latch_error(LATCH_OPERR, "no enrolment came");
	json_error_t err;
	json_t *o = json_loadb((const char *)line->data, line->len, JSON_DISABLE_EOF_CHECK, &err);
	secbuf_free(line);
	const char *inst = json_string_value(json_object_get(o, "instance"));
	struct secbuf *stream = secret_from_json_b64(json_object_get(o, "stream"), 4096);
	size_t got = 0;
	int rc = -1;
	b.key = secret_from_json_b64(json_object_get(o, "key"), BROKER_KEY_BYTES);
	if (!inst || !b.key || b.key->len != BROKER_KEY_BYTES || !stream ||
	    sodium_hex2bin(b.instance, sizeof b.instance, inst, strlen(inst), NULL, &got, NULL) != 0 ||
	    got != sizeof b.instance)
		latch_error(LATCH_OPERR, "the enrolment is malformed");
	else
		rc = b.rec->enrol(b.rec->ctx, stream);
	secbuf_free(stream);
	json_decref(o);
	return rc;
}

static void say(int fd, json_t *msg)
{
	if (msg)
		wire_write_json(fd, msg);
	json_decref(msg);
}

int broker_serve(const char *vault_dir, int enrol_fd, const struct broker_recorder *rec)
{
	char sock[PATH_MAX], lock[PATH_MAX];
	b.rec = rec;
	b.pending_tail = &b.pending;
	if (broker_paths(vault_dir, sock, lock) != 0)
		return -1;
	struct timeval tv = {30, 0};
	setsockopt(enrol_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lfd < 0) {
		say(enrol_fd, json_pack("{s:b, s:s}", "ok", 0, "message", "cannot open the broker's lock file"));
		return latch_error(LATCH_OPERR, "cannot open '%s': %s", lock, strerror(errno));
	}
	if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		char text[32] = "";
		ssize_t r = pread(lfd, text, sizeof text - 1, 0);
		text[r > 0 ? r : 0] = '\0';
		close(lfd);
		say(enrol_fd, json_pack("{s:b, s:s, s:i}", "ok", 0, "error", "busy", "pid", atoi(text)));
		return latch_error(LATCH_OPERR, "another process holds the broker lock '%s'", lock);
	}
	/* The lock is ours: a socket file left here is a dead broker's. */
	unlink(sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (fd < 0 || strlen(sock) >= sizeof addr.sun_path) {
		close(lfd);
		say(enrol_fd, json_pack("{s:b, s:s}", "ok", 0, "message", "cannot create the broker socket"));
		return latch_error(LATCH_OPERR, "cannot create the broker socket");
	}
	memcpy(addr.sun_path, sock, strlen(sock) + 1);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || chmod(sock, 0600) != 0 || listen(fd, 64) != 0) {
		int e = errno;
		close(fd);
		close(lfd);
		say(enrol_fd, json_pack("{s:b, s:s}", "ok", 0, "message", "cannot listen on the broker socket"));
		return latch_error(LATCH_OPERR, "cannot listen on '%s': %s", sock, strerror(e));
	}
	char pidtext[32];
	int n = snprintf(pidtext, sizeof pidtext, "%d\n", (int)getpid());
	if (ftruncate(lfd, 0) != 0 || pwrite(lfd, pidtext, (size_t)n, 0) != n)
		latch_error(LATCH_OPERR, "cannot write the broker's pid to '%s'", lock);

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Ready: the passphrase holder that started us opens our audit stream
	 * with our pid and sends the keys. Nothing is served before. */
	say(enrol_fd, json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid()));
	int rc = take_enrolment(enrol_fd);
	say(enrol_fd, json_pack("{s:b}", "ok", rc == 0));
	close(enrol_fd);
	if (rc != 0) {
		unlink(sock);
		close(fd);
		close(lfd);
		secbuf_free(b.key);
		return -1;
	}

	int64_t last = now();
	int idle = idle_seconds();
	struct pollfd pfds[MAX_CONNS + 1];
	while (!stopping && !b.stop_asked) {
		sweep();
		int64_t t = now_ms();
		for (size_t i = 0; i < b.n_conns;)
			if (b.conns[i].deadline_ms <= t)
				conn_close(i);
			else
				i++;
		bool live = false;
		int64_t next = last + idle;
		for (struct grant *g = b.grants; g; g = g->next)
			if (grant_live(g)) {
				live = true;
				if (g->deadline < next)
					next = g->deadline;
			}
		if (!live && !b.pending && !b.n_conns && now() - last >= idle)
			break;
		int64_t wait_ms = (next - now()) * 1000;
		if (wait_ms < 1000)
			wait_ms = 1000; /* deadlines are in seconds: recheck each one */
		if (live && wait_ms > 60000)
			wait_ms = 60000;
		if (b.pending) {
			int64_t due = b.pending_since_ms + BROKER_EXIT_FLUSH_MS - t;
			wait_ms = due < 0 ? 0 : due < wait_ms ? due : wait_ms;
		}
		for (size_t i = 0; i < b.n_conns; i++) {
			int64_t due = b.conns[i].deadline_ms - t;
			wait_ms = due < wait_ms ? (due < 0 ? 0 : due) : wait_ms;
		}
		size_t np = 0;
		pfds[np++] = (struct pollfd){fd, b.n_conns < MAX_CONNS ? POLLIN : 0, 0};
		for (size_t i = 0; i < b.n_conns; i++)
			pfds[np++] = (struct pollfd){b.conns[i].fd, b.conns[i].out ? POLLOUT : POLLIN, 0};
		int r = poll(pfds, np, (int)wait_ms);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0) {
			/* Connections first (by their fd, as accept moves the array). */
			for (size_t k = 1; k < np; k++) {
				if (!pfds[k].revents)
					continue;
				size_t i = 0;
				while (i < b.n_conns && b.conns[i].fd != pfds[k].fd)
					i++;
				if (i == b.n_conns)
					continue;
				struct conn *c = &b.conns[i];
				int st = 0;
				if (c->out)
					st = conn_send(c);
				else if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR))
					st = conn_read(c);
				while (st >= 0 && !c->out && (st = conn_handle_line(c)) > 0)
					;
				if (st < 0)
					conn_close(i);
				last = now();
			}
			if (pfds[0].revents & POLLIN)
				accept_all(fd);
		}
		if (b.pending && now_ms() - b.pending_since_ms >= BROKER_EXIT_FLUSH_MS)
			record_with_pending(NULL);
	}
	/* Its last record: what it still holds, and that it stopped, which
	 * ends its stream. */
	struct broker_event ev = {.event = "stop", .pid = getpid(), .uid = getuid(), .exit_status = -1};
	record_with_pending(&ev);
	/* Forget everything before the socket goes away. */
	for (struct grant *g = b.grants; g; g = g->next)
		grant_forget_values(g, "broker stopped");
	while (b.n_conns)
		conn_close(b.n_conns - 1);
	secbuf_free(b.key);
	b.key = NULL;
	unlink(sock);
	close(fd);
	close(lfd);
	return 0;
}
