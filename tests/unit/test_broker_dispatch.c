/* Unit test: the broker's protocol without a socket or a daemon
 * (broker/protocol.c). Requests go into proto_answer as bytes; answers
 * come out as messages, checked header and frames. Covered: the
 * challenge, a sealed grant and its receipt, runs (a real fork: the
 * runner gets each reference's value, in the order asked, and its exit is
 * recorded when it is reaped; no answer carries a value), refusals and
 * their records, a recorder that fails (nothing runs), list, revoke,
 * flush, stop, argv bytes that are not UTF-8 (recorded as they are), and
 * requests that are malformed or not yet complete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../broker/state.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- a recorder that remembers what it was asked to record ---- */

#define MAX_SEEN 64
struct seen {
	char event[16], decision[8], grant[BROKER_ID_MAX], argv1[16];
	size_t n_names, argv1_len;
	int status;
	int64_t lost;
	pid_t runner;
};
static struct seen seen[MAX_SEEN];
static size_t n_seen;
static bool recorder_fails;

static int rec_enrol(void *ctx, const struct secbuf *keys)
{
	(void)ctx;
	return keys->len == 7 ? 0 : -1;
}

static int rec_record(void *ctx, const struct broker_event *evs, size_t n)
{
	(void)ctx;
	if (recorder_fails)
		return -1;
	for (size_t i = 0; i < n && n_seen < MAX_SEEN; i++) {
		struct seen *s = &seen[n_seen++];
		memset(s, 0, sizeof *s);
		snprintf(s->event, sizeof s->event, "%s", evs[i].event);
		snprintf(s->decision, sizeof s->decision, "%s", evs[i].decision ? evs[i].decision : "");
		snprintf(s->grant, sizeof s->grant, "%s", evs[i].grant_id ? evs[i].grant_id : "");
		if (evs[i].argc > 1) {
			s->argv1_len = strlen(evs[i].argv[1]);
			memcpy(s->argv1, evs[i].argv[1], s->argv1_len < 15 ? s->argv1_len : 15);
		}
		s->n_names = evs[i].n;
		s->status = evs[i].exit_status;
		s->lost = evs[i].lost_exits;
		s->runner = evs[i].runner;
	}
	return 0;
}

static const struct broker_recorder recorder = {rec_enrol, rec_record, NULL};

/* ---- driving the protocol ---- */

struct answer {
	struct secbuf *buf;
	struct wire_msg m;
};

static struct broker b;
static struct broker_peer peer;

static void answer_free(struct answer *a)
{
	wire_msg_clear(&a->m);
	secbuf_free(a->buf);
	a->buf = NULL;
}

/* proto_answer on exactly `text`: the whole of it is one request. */
static struct answer ask_text(const char *text, size_t len)
{
	struct answer a = {0};
	size_t used = 0;
	a.buf = proto_answer(&b, &peer, (const unsigned char *)text, len, &used);
	assert_int_equal(used, len);
	assert_non_null(a.buf);
	size_t end = 0;
	assert_int_equal(wire_parse(a.buf->data, a.buf->len, &a.m, &end), 1);
	assert_int_equal(end, a.buf->len);
	return a;
}

/* A request built as JSON (taken). */
static struct answer ask(json_t *req)
{
	assert_non_null(req);
	struct secbuf *msg = wire_build(req, NULL, 0);
	json_decref(req);
	assert_non_null(msg);
	struct answer a = ask_text((const char *)msg->data, msg->len);
	secbuf_free(msg);
	return a;
}

static bool ok(const struct answer *a)
{
	return json_is_true(json_object_get(a->m.head, "ok"));
}

static const char *field(const struct answer *a, const char *key)
{
	const char *s = json_string_value(json_object_get(a->m.head, key));
	return s ? s : "";
}

static json_t *b64(const void *p, size_t n)
{
	return auth_b64_json(p, n);
}

/* ---- runs: a real fork of a runner, whose broker_run_fn reports what
 * it was given on its control connection ---- */

/* What the test's runner writes: VAR=value; for each reference, in the
 * order of the references, then the environment's first entry. */
static int test_run(const struct broker_run_job *j)
{
	for (size_t i = 0; i < j->n_refs; i++)
		dprintf(j->control, "%s=%.*s;", j->refs[i].var, (int)j->values[i].len, (const char *)j->values[i].data);
	dprintf(j->control, "env:%s\n", j->env[0] ? j->env[0] : "");
	return 3;
}

static void setup_broker(void)
{
	state_init(&b, &recorder);
	b.run = test_run;
	memset(&peer, 0, sizeof peer);
	peer.cred.pid = 4242;
	peer.cred.uid = 1000;
	n_seen = 0;
	recorder_fails = false;
	/* Enrolment: the instance id, the key, 7 bytes of stream keys. */
	struct secbuf frames[2];
	unsigned char key[BROKER_KEY_BYTES], stream[7] = "streamk";
	memset(key, 0x42, sizeof key);
	frames[0] = (struct secbuf){key, sizeof key, sizeof key};
	frames[1] = (struct secbuf){stream, sizeof stream, sizeof stream};
	json_t *head = json_pack("{s:s}", "instance", "00112233445566778899aabbccddeeff");
	struct secbuf *msg = wire_build(head, frames, 2);
	json_decref(head);
	struct wire_msg m;
	size_t end;
	assert_int_equal(wire_parse(msg->data, msg->len, &m, &end), 1);
	assert_int_equal(proto_enrol(&b, &m), 0);
	wire_msg_clear(&m);
	secbuf_free(msg);
}

static int setup(void **state)
{
	(void)state;
	setup_broker();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	state_free(&b);
	return 0;
}

/* The challenge: the proof verifies under the broker's key. */
static void hello(void)
{
	unsigned char nc[AUTH_NONCE_BYTES], nb[AUTH_NONCE_BYTES], proof[AUTH_MAC_BYTES], want[AUTH_MAC_BYTES];
	randombytes_buf(nc, sizeof nc);
	struct answer a = ask(json_pack("{s:s, s:o}", "op", "hello", "nonce", b64(nc, sizeof nc)));
	assert_true(ok(&a));
	assert_int_equal(auth_b64_32(json_object_get(a.m.head, "nonce"), nb), 0);
	assert_int_equal(auth_b64_32(json_object_get(a.m.head, "proof"), proof), 0);
	auth_proof(b.key, b.instance, b.pid, nc, nb, want);
	assert_memory_equal(proof, want, sizeof want);
	answer_free(&a);
}

/* A grant sealed for this connection: names[i] gets values[i]. */
static struct answer grant(const char *id, const char *const *names, const char *const *values, size_t n,
			   const char *cmd, int uses)
{
	json_t *jn = json_array(), *jc = json_array();
	struct secbuf frames[8];
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(jn, json_string(names[i]));
		frames[i] =
			(struct secbuf){(unsigned char *)(uintptr_t)values[i], strlen(values[i]), strlen(values[i])};
	}
	if (cmd)
		json_array_append_new(jc, json_string(cmd));
	json_t *head = json_pack("{s:s, s:o, s:o, s:i, s:o}", "grant", id, "names", jn, "cmds", jc, "ttl", 600, "uses",
				 uses > 0 ? json_integer(uses) : json_null());
	struct secbuf *plain = wire_build(head, frames, n);
	json_decref(head);
	assert_non_null(plain);
	json_t *box = auth_seal(b.key, b.instance, peer.nc, peer.nb, (const char *)plain->data, plain->len);
	secbuf_free(plain);
	return ask(json_pack("{s:s, s:o}", "op", "grant", "box", box));
}

/* Until every runner forked is reaped (and its exit queued). */
static void reap_all(void)
{
	for (int i = 0; i < 5000 && b.n_runners; i++) {
		runner_reap(&b);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(b.n_runners, 0);
}

/* A run of `cmd` (argv: cmd, arg1) with V0=latch://names[0], ...: the
 * daemon's answer, or, when a runner took the connection over (no
 * answer), what the runner wrote, in *out. */
static struct answer run(const char *const *names, size_t n, const char *cmd, const char *arg1, char *out, size_t cap)
{
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	peer.conn_fd = sp[1];
	for (int i = 0; i < 3; i++)
		peer.fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
	peer.fds[3] = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	peer.n_fds = 4;
	json_t *argv = json_array(), *refs = json_array();
	json_array_append_new(argv, b64(cmd, strlen(cmd)));
	if (arg1)
		json_array_append_new(argv, b64(arg1, strlen(arg1)));
	for (size_t i = 0; i < n; i++) {
		char var[8];
		snprintf(var, sizeof var, "V%zu", i);
		json_array_append_new(refs, json_pack("{s:s, s:s, s:b}", "var", var, "name", names[i], "file", 0));
	}
	json_t *env = json_array();
	json_array_append_new(env, b64("HOME=/h", 7));
	json_t *req = json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:b}", "op", "run", "cmd", cmd, "argv", argv, "env",
				env, "refs", refs, "cwd", "/tmp", "session", 0);
	struct secbuf *msg = wire_build(req, NULL, 0);
	json_decref(req);
	struct answer a = {0};
	size_t used = 0;
	a.buf = proto_answer(&b, &peer, msg->data, msg->len, &used);
	assert_int_equal(used, msg->len);
	secbuf_free(msg);
	/* What the daemon's conn_close does. */
	for (size_t i = 0; i < peer.n_fds; i++)
		close(peer.fds[i]);
	peer.n_fds = 0;
	close(sp[1]);
	out[0] = '\0';
	if (a.buf) {
		size_t end = 0;
		assert_int_equal(wire_parse(a.buf->data, a.buf->len, &a.m, &end), 1);
	} else {
		size_t len = 0;
		ssize_t r;
		while (len + 1 < cap && (r = read(sp[0], out + len, cap - 1 - len)) > 0)
			len += (size_t)r;
		out[len] = '\0';
	}
	close(sp[0]);
	return a;
}

static void grant_then_run(void **state)
{
	(void)state;
	hello();
	const char *names[] = {"db", "api"}, *values[] = {"db-value", "api-value-2"};
	struct answer a = grant("g-000000000001", names, values, 2, NULL, 2);
	assert_true(ok(&a));
	assert_string_equal(field(&a, "grant"), "g-000000000001");
	unsigned char ack[AUTH_MAC_BYTES], want[AUTH_MAC_BYTES];
	assert_int_equal(auth_b64_32(json_object_get(a.m.head, "ack"), ack), 0);
	auth_ack(b.key, peer.nc, peer.nb, "g-000000000001", json_integer_value(json_object_get(a.m.head, "deadline")),
		 want);
	assert_memory_equal(ack, want, sizeof ack);
	answer_free(&a);

	/* One grant per connection. */
	a = grant("g-000000000002", names, values, 2, NULL, 0);
	assert_false(ok(&a));
	assert_string_equal(field(&a, "error"), "denied");
	answer_free(&a);

	/* Asked in another order: the runner gets each reference's value;
	 * the daemon answers nothing (the runner took the connection). */
	const char *ask2[] = {"api", "db"};
	char out[512];
	a = run(ask2, 2, "/bin/true", "x", out, sizeof out);
	assert_null(a.buf);
	char *nl = strchr(out, '\n');
	assert_non_null(nl);
	*nl = '\0';
	json_t *hi = json_loads(out, 0, NULL);
	assert_true(json_is_true(json_object_get(hi, "ok")));
	const char *rid = json_string_value(json_object_get(hi, "release"));
	assert_non_null(rid);
	assert_int_equal(strlen(rid), 14);
	assert_memory_equal(rid, "r-", 2);
	pid_t runner = (pid_t)json_integer_value(json_object_get(hi, "runner"));
	assert_true(runner > 0 && runner != getpid());
	json_decref(hi);
	assert_string_equal(nl + 1, "V0=api-value-2;V1=db-value;env:HOME=/h\n");
	assert_int_equal(n_seen, 1);
	assert_string_equal(seen[0].event, "release");
	assert_string_equal(seen[0].decision, "allow");
	assert_string_equal(seen[0].grant, "g-000000000001");
	assert_int_equal(seen[0].n_names, 2);
	assert_int_equal(seen[0].runner, runner);

	/* Its exit: the runner's status, queued when it is reaped, then
	 * written with the next commit. */
	reap_all();
	assert_int_equal(n_seen, 1);
	a = ask(json_pack("{s:s}", "op", "flush"));
	assert_true(ok(&a));
	assert_int_equal(json_integer_value(json_object_get(a.m.head, "written")), 1);
	answer_free(&a);
	assert_int_equal(n_seen, 2);
	assert_string_equal(seen[1].event, "exit");
	assert_int_equal(seen[1].status, 3);

	/* No operation hands a value back, the old "release" included. */
	a = ask(json_pack("{s:s, s:[s], s:s}", "op", "release", "names", "db", "cmd", "/bin/true"));
	assert_string_equal(field(&a, "message"), "unknown op");
	assert_int_equal(a.m.n, 0);
	answer_free(&a);
	a = ask(json_pack("{s:s, s:s, s:i}", "op", "exit", "release", "r-000000000000", "status", 0));
	assert_string_equal(field(&a, "message"), "unknown op");
	answer_free(&a);

	/* The second use is the last. */
	a = run(names, 1, "/bin/true", NULL, out, sizeof out);
	assert_null(a.buf);
	assert_non_null(strstr(out, "V0=db-value;"));
	a = run(names, 1, "/bin/true", NULL, out, sizeof out);
	assert_false(ok(&a));
	assert_string_equal(field(&a, "error"), "denied");
	assert_string_equal(field(&a, "message"), "grant g-000000000001 for 'db' has no uses left");
	assert_int_equal(a.m.n, 0);
	assert_string_equal(out, "");
	answer_free(&a);
	assert_string_equal(seen[n_seen - 1].decision, "deny");
	reap_all();
}

static void list_revoke_stop(void **state)
{
	(void)state;
	hello();
	const char *names[] = {"db"}, *values[] = {"v"};
	struct answer a = grant("g-00000000000a", names, values, 1, "/usr/bin/psql", 0);
	assert_true(ok(&a));
	answer_free(&a);
	a = ask(json_pack("{s:s}", "op", "list"));
	assert_true(ok(&a));
	json_t *g = json_array_get(json_object_get(a.m.head, "grants"), 0);
	assert_string_equal(json_string_value(json_object_get(g, "grant")), "g-00000000000a");
	assert_true(json_is_null(json_object_get(g, "uses_left")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(g, "cmds"), 0)), "/usr/bin/psql");
	assert_int_equal(a.m.n, 0); /* no values in a list */
	answer_free(&a);
	char out[64];
	a = run(names, 1, "/bin/sh", NULL, out, sizeof out);
	assert_string_equal(field(&a, "message"), "no grant for 'db' allows the command '/bin/sh'");
	answer_free(&a);
	a = ask(json_pack("{s:s, s:s}", "op", "revoke", "grant", "g-nope"));
	assert_false(ok(&a));
	assert_string_equal(field(&a, "error"), "not-found");
	answer_free(&a);
	a = ask(json_pack("{s:s, s:s}", "op", "revoke", "grant", "g-00000000000a"));
	assert_true(ok(&a));
	assert_int_equal(json_integer_value(json_object_get(a.m.head, "revoked")), 1);
	answer_free(&a);
	assert_null(b.grants->store); /* wiped at once */
	assert_string_equal(seen[n_seen - 1].event, "revoke");
	a = run(names, 1, "/usr/bin/psql", NULL, out, sizeof out);
	assert_string_equal(field(&a, "message"), "grant g-00000000000a for 'db' has been revoked");
	answer_free(&a);
	assert_false(b.stop_asked);
	a = ask(json_pack("{s:s}", "op", "stop"));
	assert_true(ok(&a));
	assert_true(b.stop_asked);
	answer_free(&a);
}

static void recorder_failure_runs_nothing(void **state)
{
	(void)state;
	hello();
	const char *names[] = {"db"}, *values[] = {"v-not-to-be-seen"};
	struct answer a = grant("g-00000000000b", names, values, 1, NULL, 0);
	answer_free(&a);
	recorder_fails = true;
	char out[256];
	a = run(names, 1, "/bin/true", NULL, out, sizeof out);
	assert_false(ok(&a));
	assert_string_equal(field(&a, "error"), "audit");
	assert_int_equal(a.m.n, 0);
	answer_free(&a);
	/* The runner forked for it ended unstarted, reaped at once. */
	assert_int_equal(b.n_runners, 0);
	assert_string_equal(out, "");
}

/* argv is carried as bytes: two arguments that differ only in bytes
 * that are not UTF-8 reach the recorder as they are. */
static void argv_bytes_reach_the_record(void **state)
{
	(void)state;
	hello();
	const char *names[] = {"db"}, *values[] = {"v"};
	struct answer a = grant("g-00000000000c", names, values, 1, NULL, 0);
	answer_free(&a);
	char out[256];
	a = run(names, 1, "/bin/true", "a\xff", out, sizeof out);
	assert_null(a.buf);
	a = run(names, 1, "/bin/true", "a\xfe", out, sizeof out);
	assert_null(a.buf);
	reap_all();
	assert_int_equal(seen[n_seen - 2].argv1_len, 2);
	assert_memory_equal(seen[n_seen - 2].argv1, "a\xff", 2);
	assert_memory_equal(seen[n_seen - 1].argv1, "a\xfe", 2);
	/* A NUL inside an argument, or what is not base64, is malformed. */
	json_t *argv = json_array();
	json_array_append_new(argv, b64("a\0b", 3));
	json_t *refs = json_pack("[{s:s, s:s, s:b}]", "var", "X", "name", "db", "file", 0);
	a = ask(json_pack("{s:s, s:O, s:s, s:o, s:[]}", "op", "run", "refs", refs, "cmd", "/bin/true", "argv", argv,
			  "env"));
	assert_string_equal(field(&a, "message"), "malformed run request");
	answer_free(&a);
	a = ask(json_pack("{s:s, s:O, s:s, s:[s], s:[]}", "op", "run", "refs", refs, "cmd", "/bin/true", "argv",
			  "not base64!", "env"));
	assert_string_equal(field(&a, "message"), "malformed run request");
	answer_free(&a);
	/* A variable named twice, or not a variable's name. */
	json_t *twice = json_pack("[{s:s, s:s, s:b}, {s:s, s:s, s:b}]", "var", "X", "name", "db", "file", 0, "var", "X",
				  "name", "db", "file", 1);
	a = ask(json_pack("{s:s, s:o, s:s, s:[s], s:[]}", "op", "run", "refs", twice, "cmd", "/bin/true", "argv",
			  "YQ==", "env"));
	assert_string_equal(field(&a, "message"), "malformed run request");
	answer_free(&a);
	json_t *bad = json_pack("[{s:s, s:s, s:b}]", "var", "X=Y", "name", "db", "file", 0);
	a = ask(json_pack("{s:s, s:o, s:s, s:[s], s:[]}", "op", "run", "refs", bad, "cmd", "/bin/true", "argv",
			  "YQ==", "env"));
	assert_string_equal(field(&a, "message"), "malformed run request");
	answer_free(&a);
	/* Whole, but without its four descriptors. */
	a = ask(json_pack("{s:s, s:O, s:s, s:[s], s:[]}", "op", "run", "refs", refs, "cmd", "/bin/true", "argv",
			  "YQ==", "env"));
	assert_string_equal(field(&a, "message"), "a run sends its stdin, stdout, stderr and directory");
	answer_free(&a);
	json_decref(refs);
}

static void malformed_requests(void **state)
{
	(void)state;
	/* Not whole yet: nothing consumed, no answer. */
	size_t used = 7;
	assert_null(proto_answer(&b, &peer, (const unsigned char *)"{\"op\":", 6, &used));
	assert_int_equal(used, 0);
	struct answer a = ask_text("not json\n", 9);
	assert_string_equal(field(&a, "message"), "not JSON");
	answer_free(&a);
	a = ask_text("{\"op\":\"ping\",\"frames\":65}\n", 26);
	assert_string_equal(field(&a, "message"), "not JSON");
	answer_free(&a);
	a = ask(json_pack("{s:s}", "op", "nope"));
	assert_string_equal(field(&a, "message"), "unknown op");
	answer_free(&a);
	a = ask(json_pack("{s:i}", "op", 1));
	assert_string_equal(field(&a, "message"), "no op");
	answer_free(&a);
	/* A grant before any challenge, and a box that is not this broker's. */
	a = ask(json_pack("{s:s, s:s}", "op", "grant", "box", "AAAA"));
	assert_string_equal(field(&a, "error"), "denied");
	answer_free(&a);
	hello();
	a = ask(json_pack("{s:s, s:s}", "op", "grant", "box", "AAAA"));
	assert_string_equal(field(&a, "message"), "the grant is not sealed with this broker's key");
	answer_free(&a);
	/* A sealed grant whose value frame is empty, or whose frames do not
	 * match its names. */
	struct broker_peer fresh = {.cred = peer.cred};
	peer = fresh;
	hello();
	const char *names[] = {"db"}, *empty[] = {""};
	a = grant("g-00000000000d", names, empty, 1, NULL, 0);
	assert_string_equal(field(&a, "message"), "malformed value for 'db'");
	answer_free(&a);
	peer = fresh;
	hello();
	json_t *head = json_pack("{s:s, s:[s,s], s:[], s:i, s:n}", "grant", "g-00000000000e", "names", "a", "b", "cmds",
				 "ttl", 60, "uses");
	struct secbuf one = {(unsigned char *)"x", 1, 1};
	struct secbuf *plain = wire_build(head, &one, 1);
	json_decref(head);
	json_t *box = auth_seal(b.key, b.instance, peer.nc, peer.nb, (const char *)plain->data, plain->len);
	secbuf_free(plain);
	a = ask(json_pack("{s:s, s:o}", "op", "grant", "box", box));
	assert_string_equal(field(&a, "message"), "malformed grant");
	answer_free(&a);
	assert_null(b.grants);
	/* Two requests in one buffer: the first is answered, the rest stays. */
	const char two[] = "{\"op\":\"ping\"}\n{\"op\":\"ping\"}\n";
	struct secbuf *ans = proto_answer(&b, &peer, (const unsigned char *)two, sizeof two - 1, &used);
	assert_non_null(ans);
	assert_int_equal(used, 14);
	secbuf_free(ans);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	latch_error_quiet(true);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(grant_then_run, setup, teardown),
		cmocka_unit_test_setup_teardown(list_revoke_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(recorder_failure_runs_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(argv_bytes_reach_the_record, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_requests, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
