/* The broker's protocol, daemon side: one request in, its answer out.
 * Nothing here touches a socket, so the dispatcher is driven directly by
 * tests/unit/test_broker_dispatch.c and tests/fuzz/fuzz_broker_request.c. */
#include "state.h"

#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t broker_now(void)
{
	return (int64_t)time(NULL);
}

void state_init(struct broker *b, const struct broker_recorder *rec)
{
	memset(b, 0, sizeof *b);
	b->rec = rec;
	b->pending_tail = &b->pending;
	b->pid = getpid();
}

void state_free(struct broker *b)
{
	while (b->grants) {
		struct grant *g = b->grants;
		b->grants = g->next;
		policy_grant_free(g);
	}
	exits_free(b);
	secbuf_free(b->key);
	b->key = NULL;
}

/* An answer: `head` (taken) and its frames, as one message. */
static struct secbuf *reply(json_t *head, const struct secbuf *frames, size_t n)
{
	struct secbuf *msg = head ? wire_build(head, frames, n) : NULL;
	json_decref(head);
	return msg;
}

static struct secbuf *reply_error(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static struct secbuf *reply_error(const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return reply(json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "message", msg), NULL, 0);
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

/* A grant's --allow-env: at most BROKER_MAX_ALLOW_ENV variable names,
 * [A-Za-z_][A-Za-z0-9_]*, shorter than BROKER_VAR_MAX. Absent: none. */
static int vars_of(json_t *arr, char **out, size_t *n)
{
	*n = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > BROKER_MAX_ALLOW_ENV)
		return -1;
	size_t i;
	json_t *s;
	json_array_foreach(arr, i, s)
	{
		const char *v = json_string_value(s);
		size_t len = v ? strlen(v) : 0;
		bool ok = len > 0 && len < BROKER_VAR_MAX && !(v[0] >= '0' && v[0] <= '9');
		for (size_t k = 0; ok && k < len; k++)
			ok = v[k] == '_' || (v[k] >= '0' && v[k] <= '9') ||
			     ((v[k] | 0x20) >= 'a' && (v[k] | 0x20) <= 'z');
		if (!ok || !(out[(*n)++] = strdup(v)))
			return -1;
	}
	return 0;
}

static void strings_free(char **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i]);
}

static struct secbuf *op_hello(struct broker *b, json_t *req, struct broker_peer *c)
{
	if (c->hello || auth_b64_32(json_object_get(req, "nonce"), c->nc) != 0)
		return reply_error("bad-request", "malformed hello");
	c->hello = true;
	randombytes_buf(c->nb, sizeof c->nb);
	unsigned char proof[AUTH_MAC_BYTES];
	char hex[2 * BROKER_INSTANCE_BYTES + 1];
	auth_proof(b->key, b->instance, b->pid, c->nc, c->nb, proof);
	sodium_bin2hex(hex, sizeof hex, b->instance, sizeof b->instance);
	return reply(json_pack("{s:b, s:i, s:s, s:o, s:o}", "ok", 1, "pid", (int)b->pid, "instance", hex, "nonce",
			       auth_b64_json(c->nb, sizeof c->nb), "proof", auth_b64_json(proof, sizeof proof)),
		     NULL, 0);
}

/* The grant's header and values, from the opened box (itself a message:
 * a JSON header, then one frame per name, in order) into g. */
static struct secbuf *grant_parse(struct broker *b, struct secbuf *plain, struct grant *g)
{
	struct wire_msg m;
	size_t end = 0;
	if (wire_parse(plain->data, plain->len, &m, &end) != 1 || end != plain->len) {
		wire_msg_clear(&m);
		return reply_error("bad-request", "malformed grant");
	}
	json_t *h = m.head, *uses = json_object_get(h, "uses");
	const char *id = json_string_value(json_object_get(h, "grant"));
	json_int_t ttl = json_integer_value(json_object_get(h, "ttl"));
	char *names[BROKER_MAX_NAMES];
	size_t n = 0;
	struct secbuf *err = NULL;
	if (!id || !latch_name_valid(id) || strlen(id) >= sizeof g->id || ttl < 1 || ttl > BROKER_MAX_TTL ||
	    (!json_is_null(uses) && (!json_is_integer(uses) || json_integer_value(uses) < 1)) ||
	    strings_of(json_object_get(h, "names"), BROKER_MAX_NAMES, names, &n, true) != 0 || n == 0 ||
	    strings_of(json_object_get(h, "cmds"), BROKER_MAX_CMDS, g->cmds, &g->n_cmds, false) != 0 ||
	    vars_of(json_object_get(h, "allow_env"), g->allow_env, &g->n_allow_env) != 0 || m.n != n) {
		err = reply_error("bad-request", "malformed grant");
		goto out;
	}
	for (struct grant *o = b->grants; o; o = o->next)
		if (!strcmp(o->id, id)) {
			err = reply_error("bad-request", "grant %s exists already", id);
			goto out;
		}
	for (size_t i = 0; i < n; i++)
		if (m.frame[i].len == 0 || m.frame[i].len > BROKER_VALUE_MAX) {
			err = reply_error("bad-request", "malformed value for '%s'", names[i]);
			goto out;
		}
	snprintf(g->id, sizeof g->id, "%s", id);
	g->deadline = broker_now() + ttl;
	g->uses_left = json_is_integer(uses) ? json_integer_value(uses) : -1;
	char why[PATH_MAX + 64];
	if (policy_pin(g, why, sizeof why) != 0) {
		err = reply_error("denied", "%s", why);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		g->items[i] = (struct grant_item){names[i], m.frame[i]};
	g->n = n;
	n = 0;
out:
	strings_free(names, n);
	wire_msg_clear(&m);
	return err;
}

/* A grant comes only from the one who answered this connection's
 * challenge with the broker's key: a passphrase holder. */
static struct secbuf *op_grant(struct broker *b, json_t *req, struct broker_peer *c)
{
	if (!c->hello || c->granted)
		return reply_error("denied", "a grant must follow a challenge, once per connection");
	c->granted = true;
	struct secbuf *plain = auth_open(b->key, b->instance, c->nc, c->nb, json_object_get(req, "box"));
	if (!plain)
		return reply_error("denied", "the grant is not sealed with this broker's key");
	struct grant *g = calloc(1, sizeof *g);
	if (!g) {
		secbuf_free(plain);
		return NULL;
	}
	/* The values stay where the box opened: the grant's store. */
	g->store = plain;
	struct secbuf *err = grant_parse(b, plain, g);
	if (err) {
		policy_grant_free(g);
		return err;
	}
	if (b->prep && b->prep->prepare) {
		struct broker_item items[BROKER_MAX_NAMES];
		for (size_t i = 0; i < g->n; i++)
			items[i] = (struct broker_item){g->items[i].name, g->items[i].value};
		/* Best effort: without it, each run prepares its own. */
		g->prepared = b->prep->prepare(items, g->n);
		g->discard = b->prep->discard;
		sodium_memzero(items, sizeof items);
	}
	g->next = b->grants;
	b->grants = g;
	unsigned char ack[AUTH_MAC_BYTES];
	auth_ack(b->key, c->nc, c->nb, g->id, g->deadline, ack);
	return reply(json_pack("{s:b, s:s, s:I, s:o}", "ok", 1, "grant", g->id, "deadline", (json_int_t)g->deadline,
			       "ack", auth_b64_json(ack, sizeof ack)),
		     NULL, 0);
}

/* argv or the environment as the client sent it: base64 of each
 * element's bytes (any bytes but NUL, which no element holds), so that
 * what is not UTF-8 runs and is hashed as it is. A NULL-terminated array
 * (strings_free + free), or NULL if malformed. */
static char **b64_strings(json_t *arr, size_t *count)
{
	*count = 0;
	if (!json_is_array(arr))
		return NULL;
	size_t cap = json_array_size(arr);
	char **out = calloc(cap + 1, sizeof *out);
	for (size_t i = 0; out && i < cap; i++) {
		const char *s = json_string_value(json_array_get(arr, i));
		size_t slen = s ? strlen(s) : 0, got = 0;
		char *v = s ? malloc(slen / 4 * 3 + 3) : NULL;
		if (!v ||
		    sodium_base642bin((unsigned char *)v, slen / 4 * 3 + 2, s, slen, NULL, &got, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    memchr(v, '\0', got)) {
			free(v);
			strings_free(out, *count);
			free(out);
			return NULL;
		}
		v[got] = '\0';
		out[(*count)++] = v;
	}
	return out;
}

/* A variable's name as a shell takes it: [A-Za-z_][A-Za-z0-9_]*, < 128. */
static bool var_name_valid(const char *v)
{
	size_t len = strlen(v);
	return len > 0 && len < BROKER_VAR_MAX &&
	       strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_") > 0 &&
	       strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789") == len;
}

/* The references: {"var", "name", "file"} each, 1..BROKER_MAX_NAMES, no
 * variable twice; refs[] points into `arr`. The distinct names, in first
 * use order, go to names[]. -1 if malformed. */
static int refs_of(json_t *arr, struct broker_ref *refs, size_t *n, const char **names, size_t *n_names)
{
	*n = *n_names = 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > BROKER_MAX_NAMES)
		return -1;
	size_t i;
	json_t *r;
	json_array_foreach(arr, i, r)
	{
		const char *var = json_string_value(json_object_get(r, "var"));
		const char *name = json_string_value(json_object_get(r, "name"));
		json_t *file = json_object_get(r, "file");
		if (!var || !name || !var_name_valid(var) || !latch_name_valid(name) || !json_is_boolean(file))
			return -1;
		for (size_t k = 0; k < *n; k++)
			if (!strcmp(refs[k].var, var))
				return -1;
		refs[(*n)++] = (struct broker_ref){var, name, json_is_true(file)};
		size_t k = 0;
		while (k < *n_names && strcmp(names[k], name) != 0)
			k++;
		if (k == *n_names)
			names[(*n_names)++] = name;
	}
	return 0;
}

/* The descriptors a run needs: stdin, stdout, stderr and a directory. */
static bool run_fds_ok(const struct broker_peer *c)
{
	struct stat st;
	return !c->fds_bad && c->n_fds == 4 && fstat(c->fds[3], &st) == 0 && S_ISDIR(st.st_mode);
}

/* Run a granted program: check the grant and the program's pin, fork the
 * runner, record the release with its pid, and only then let it go. The
 * runner takes the connection over (the answer is NULL: the daemon
 * closes its copy). No value is ever sent back. */
static struct secbuf *op_run(struct broker *b, json_t *req, struct broker_peer *c)
{
	struct broker_ref refs[BROKER_MAX_NAMES];
	const char *names[BROKER_MAX_NAMES];
	size_t n_refs = 0, n = 0, argc = 0, envc = 0;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	const char *cwd = json_string_value(json_object_get(req, "cwd"));
	json_t *session = json_object_get(req, "session");
	json_t *pty = json_object_get(req, "pty"), *redact = json_object_get(req, "redact");
	json_t *token_var = json_object_get(req, "token_var");
	struct secbuf *answer = NULL;
	char **argv = b64_strings(json_object_get(req, "argv"), &argc);
	char **env = b64_strings(json_object_get(req, "env"), &envc);
	/* A command or directory holding control characters would reach the
	 * human's terminal through the log and the denial hint: refused. */
	if (!cmd || cmd[0] != '/' || !text_is_plain(cmd) || (cwd && !text_is_plain(cwd)) || !argv || argc == 0 ||
	    !env || (session && !json_is_boolean(session)) || (pty && !json_is_boolean(pty)) ||
	    (redact && !json_is_boolean(redact)) ||
	    (token_var && (!json_is_string(token_var) || !var_name_valid(json_string_value(token_var)))) ||
	    refs_of(json_object_get(req, "refs"), refs, &n_refs, names, &n) != 0) {
		answer = reply_error("bad-request", "malformed run request");
		goto out;
	}
	if (!run_fds_ok(c)) {
		answer = reply_error("bad-request", "a run sends its stdin, stdout, stderr and directory");
		goto out;
	}
	if (!b->run) {
		answer = reply_error("bad-request", "this broker starts no programs");
		goto out;
	}
	int64_t now = broker_now();
	policy_sweep(b->grants, now);
	/* The daemon cannot tell latch from another program of this user
	 * speaking its protocol: the policy is what it enforces, every
	 * release is recorded, and no value ever goes back on the socket. */
	struct grant *g = policy_find(b->grants, names, n, cmd, now);
	char changed[PATH_MAX + 128];
	bool pinned = !g || policy_pin_holds(g, cmd, changed, sizeof changed);
	struct broker_event ev = {.event = "release",
				  .names = names,
				  .n = n,
				  .pid = c->cred.pid,
				  .uid = c->cred.uid,
				  .exe = cmd,
				  .cwd = cwd,
				  .argv = argv,
				  .argc = (int)argc,
				  .exit_status = -1,
				  .has_session = session != NULL,
				  .in_session = json_is_true(session),
				  .no_redact = json_is_false(redact)};
	if (!g || !pinned) {
		char why[256];
		if (!g)
			policy_denial(b->grants, names, n, cmd, now, why, sizeof why);
		ev.decision = "deny";
		/* Without a grant: why none covers it; with one, the program
		 * is not what it pinned. */
		ev.reason = g ? changed : why;
		ev.grant_id = g ? g->id : NULL;
		/* The refusal stands whether or not it could be recorded. */
		exits_record(b, &ev);
		answer = reply_error("denied", "%s", ev.reason);
		goto out;
	}
	char rid[BROKER_ID_MAX];
	broker_new_id('r', rid);
	struct secbuf values[BROKER_MAX_NAMES];
	size_t index[BROKER_MAX_NAMES];
	for (size_t k = 0; k < n_refs; k++) {
		const struct grant_item *it = policy_item(g, refs[k].name);
		values[k] = it->value;
		index[k] = (size_t)(it - g->items);
	}
	struct broker_run_job job = {.id = rid,
				     .exe = cmd,
				     .argv = argv,
				     .env = env,
				     .refs = refs,
				     .values = values,
				     .store = g->store,
				     .n_refs = n_refs,
				     .allow_env = (const char *const *)g->allow_env,
				     .n_allow_env = g->n_allow_env,
				     .cwd_fd = c->fds[3],
				     .control = c->conn_fd,
				     .no_pty = json_is_false(pty),
				     .no_redact = json_is_false(redact),
				     .token_var = json_string_value(token_var),
				     .prepared = g->prepared,
				     .prepared_index = index};
	int gate = -1, report = -1;
	pid_t runner = runner_fork(b, g, &job, c->fds, &gate, &report);
	sodium_memzero(values, sizeof values);
	if (runner < 0) {
		answer = reply_error("runner", "%s", latch_last_message());
		goto out;
	}
	ev.decision = "allow";
	ev.grant_id = g->id;
	ev.runner = runner;
	/* Recorded durably first; if that fails the runner ends unstarted. */
	if (exits_record(b, &ev) != 0) {
		close(report);
		runner_go(b, runner, gate, false);
		answer = reply_error("audit", "the release could not be recorded, so it was refused");
		goto out;
	}
	runner_go(b, runner, gate, true);
	exits_await(b, rid, g, names, n, runner, report);
	policy_use(g);
out:
	if (argv)
		strings_free(argv, argc);
	if (env)
		strings_free(env, envc);
	free(argv);
	free(env);
	return answer;
}

/* A string member of a mint or scan report: present, plain text, < 256
 * bytes. */
static const char *mint_field(json_t *req, const char *key)
{
	json_t *v = json_object_get(req, key);
	const char *s = json_string_value(v);
	if (!s || json_string_length(v) != strlen(s) || strlen(s) > 255 || !text_is_plain(s))
		return NULL;
	return s;
}

/* A client minted a model token: record it (what it says, and who said
 * it: the pid and uid come from the socket, not from the report). */
static struct secbuf *op_mint(struct broker *b, json_t *req, const struct ucred *peer)
{
	struct broker_mint mt = {mint_field(req, "profile"), mint_field(req, "rule"), 0,
				 mint_field(req, "iss"),     mint_field(req, "sub"),  mint_field(req, "jti")};
	json_t *exp = json_object_get(req, "expires");
	if (!mt.profile || !mt.rule_id || !mt.iss || !mt.sub || !mt.jti || !json_is_integer(exp))
		return reply_error("bad-request", "malformed mint report");
	mt.expires_at = json_integer_value(exp);
	struct broker_event ev = {.event = "fed_mint",
				  .pid = peer->pid,
				  .uid = peer->uid,
				  .exit_status = -1,
				  .mint = &mt};
	if (exits_record(b, &ev) != 0)
		return reply_error("audit", "the mint could not be recorded");
	return reply(json_pack("{s:b}", "ok", 1), NULL, 0);
}

/* A scan blocked a commit or a push: names, paths, scope, all plain. */
static struct secbuf *op_scan_block(struct broker *b, json_t *req, const struct ucred *peer)
{
	json_t *jn = json_object_get(req, "names"), *jp = json_object_get(req, "paths");
	const char *scope = mint_field(req, "scope");
	size_t n = json_array_size(jn), n_paths = json_array_size(jp);
	if (!json_is_array(jn) || !json_is_array(jp) || !scope || n == 0 || n > BROKER_MAX_NAMES || n_paths > 256)
		return reply_error("bad-request", "malformed scan report");
	const char *names[BROKER_MAX_NAMES], *paths[256];
	for (size_t i = 0; i < n; i++)
		if (!(names[i] = json_string_value(json_array_get(jn, i))) || !latch_name_valid(names[i]))
			return reply_error("bad-request", "malformed scan report");
	for (size_t i = 0; i < n_paths; i++) {
		json_t *p = json_array_get(jp, i);
		paths[i] = json_string_value(p);
		if (!paths[i] || strlen(paths[i]) != json_string_length(p) || strlen(paths[i]) > 4096 ||
		    !text_is_plain(paths[i]))
			return reply_error("bad-request", "malformed scan report");
	}
	struct broker_event ev = {.event = "scan_block",
				  .names = names,
				  .n = n,
				  .pid = peer->pid,
				  .uid = peer->uid,
				  .exit_status = -1,
				  .paths = paths,
				  .n_paths = n_paths,
				  .scope = scope};
	if (exits_record(b, &ev) != 0)
		return reply_error("audit", "the scan could not be recorded");
	return reply(json_pack("{s:b}", "ok", 1), NULL, 0);
}

static struct secbuf *op_flush(struct broker *b)
{
	size_t n = b->n_pending;
	if (exits_record(b, NULL) != 0)
		return reply_error("audit", "%zu exit records could not be written", n);
	return reply(json_pack("{s:b, s:I}", "ok", 1, "written", (json_int_t)n), NULL, 0);
}

static struct secbuf *op_list(struct broker *b)
{
	int64_t now = broker_now();
	policy_sweep(b->grants, now);
	json_t *list = json_array();
	for (struct grant *g = b->grants; g; g = g->next) {
		if (!policy_live(g, now))
			continue;
		json_t *names = json_array(), *cmds = json_array();
		for (size_t i = 0; i < g->n; i++)
			json_array_append_new(names, json_string(g->items[i].name));
		for (size_t i = 0; i < g->n_cmds; i++)
			json_array_append_new(cmds, json_string(g->cmds[i]));
		json_array_append_new(list, json_pack("{s:s, s:o, s:I, s:o, s:o}", "grant", g->id, "names", names,
						      "deadline", (json_int_t)g->deadline, "uses_left",
						      g->uses_left < 0 ? json_null() : json_integer(g->uses_left),
						      "cmds", cmds));
	}
	return reply(json_pack("{s:b, s:i, s:o}", "ok", 1, "pid", (int)b->pid, "grants", list), NULL, 0);
}

static struct secbuf *op_revoke(struct broker *b, json_t *req, const struct ucred *peer)
{
	const char *id = json_string_value(json_object_get(req, "grant"));
	bool all = json_is_true(json_object_get(req, "all"));
	int count = 0;
	int64_t now = broker_now();
	for (struct grant *g = b->grants; g; g = g->next) {
		if (!policy_live(g, now) || (!all && (!id || strcmp(g->id, id) != 0)))
			continue;
		policy_end(g, "revoked");
		count++;
		const char *names[BROKER_MAX_NAMES];
		for (size_t i = 0; i < g->n; i++)
			names[i] = g->items[i].name;
		struct broker_event ev = {.event = "revoke",
					  .grant_id = g->id,
					  .names = names,
					  .n = g->n,
					  .pid = peer->pid,
					  .uid = peer->uid,
					  .exit_status = -1};
		exits_record(b, &ev);
	}
	if (!all && count == 0)
		return reply_error("not-found", "no live grant '%s'", id && latch_name_valid(id) ? id : "");
	return reply(json_pack("{s:b, s:i}", "ok", 1, "revoked", count), NULL, 0);
}

static struct secbuf *dispatch(struct broker *b, json_t *req, struct broker_peer *c)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	if (!op)
		return reply_error("bad-request", "no op");
	if (!strcmp(op, "ping"))
		return reply(json_pack("{s:b, s:i}", "ok", 1, "pid", (int)b->pid), NULL, 0);
	if (!strcmp(op, "hello"))
		return op_hello(b, req, c);
	if (!strcmp(op, "grant"))
		return op_grant(b, req, c);
	if (!strcmp(op, "run"))
		return op_run(b, req, c);
	if (!strcmp(op, "mint"))
		return op_mint(b, req, &c->cred);
	if (!strcmp(op, "scan_block"))
		return op_scan_block(b, req, &c->cred);
	if (!strcmp(op, "list"))
		return op_list(b);
	if (!strcmp(op, "revoke"))
		return op_revoke(b, req, &c->cred);
	if (!strcmp(op, "flush"))
		return op_flush(b);
	if (!strcmp(op, "stop")) {
		/* Narrowing: anyone of this uid may stop the broker. */
		b->stop_asked = true;
		return reply(json_pack("{s:b, s:i}", "ok", 1, "pid", (int)b->pid), NULL, 0);
	}
	return reply_error("bad-request", "unknown op");
}

struct secbuf *proto_answer(struct broker *b, struct broker_peer *c, const unsigned char *p, size_t len, size_t *used)
{
	struct wire_msg m;
	size_t end = 0;
	*used = 0;
	int rc = wire_parse(p, len, &m, &end);
	if (rc == 0)
		return NULL;
	*used = end;
	struct secbuf *answer = rc > 0 ? dispatch(b, m.head, c) : reply_error("bad-request", "not JSON");
	wire_msg_clear(&m);
	return answer;
}

int proto_enrol(struct broker *b, const struct wire_msg *m)
{
	const char *inst = json_string_value(json_object_get(m->head, "instance"));
	size_t got = 0;
	if (!inst || m->n != 2 || m->frame[0].len != BROKER_KEY_BYTES || m->frame[1].len == 0 ||
	    m->frame[1].len > 4096 ||
	    sodium_hex2bin(b->instance, sizeof b->instance, inst, strlen(inst), NULL, &got, NULL) != 0 ||
	    got != sizeof b->instance)
		return latch_error(LATCH_OPERR, "the enrolment is malformed");
	struct secbuf *stream = secbuf_new(m->frame[1].len);
	if (!(b->key = secbuf_new(BROKER_KEY_BYTES)) || !stream) {
		secbuf_free(stream);
		return -1;
	}
	memcpy(b->key->data, m->frame[0].data, BROKER_KEY_BYTES);
	b->key->len = BROKER_KEY_BYTES;
	memcpy(stream->data, m->frame[1].data, m->frame[1].len);
	stream->len = m->frame[1].len;
	int rc = b->rec->enrol(b->rec->ctx, stream);
	secbuf_free(stream);
	return rc;
}
