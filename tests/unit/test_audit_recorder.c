/* Unit tests: the vault's recording hook (audit/recorder.c) and what an
 * audit_event's fields write. Zero leaves a field out; has_exit and
 * has_redactions let zero be a real value; a process is this one only
 * when the event says `self`, and a pid not known is written -1, as it
 * always was. The record bytes are pinned here: verify and old logs
 * depend on them. Also: the typed rows audit_query hands out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit_fixture.h"

#define T0 1795392000 /* 2026-11-23T15:00:00Z */

static void set_str(struct afx *f, const char *name, const char *value)
{
	struct secbuf *b = afx_secstr(value);
	assert_non_null(b);
	assert_int_equal(vault_set(f->v, name, b, NULL), 0);
	secbuf_free(b);
}

/* The newest record's text (free it). */
static char *last_record(struct afx *f)
{
	int64_t seq = afx_int(f->db, "SELECT max(seq) FROM audit_log");
	size_t len = 0;
	unsigned char *p = afx_blob(f->db, "record", seq, &len);
	assert_non_null(p);
	char *text = malloc(len + 1);
	assert_non_null(text);
	memcpy(text, p, len);
	text[len] = '\0';
	free(p);
	return text;
}

/* The tail of the newest record: what follows its head's "event":"E". */
static char *last_tail(struct afx *f, const char *event)
{
	char *text = last_record(f), want[64];
	snprintf(want, sizeof want, "\"event\":\"%s\"", event);
	char *at = strstr(text, want);
	assert_non_null(at);
	char *tail = strdup(at + strlen(want));
	free(text);
	return tail;
}

static void append_one(struct afx *f, const struct audit_event *ev)
{
	afx_exec(f->db, "BEGIN IMMEDIATE");
	assert_int_equal(audit_append(f->db, f->writer, NULL, ev, NULL), 0);
	afx_exec(f->db, "COMMIT");
}

/* A zeroed event: only the process fields, pid -1 (not known). */
static void zero_is_unset(void **state)
{
	struct afx *f = *state;
	struct audit_event ev = {.event = "lost", .time = T0};
	append_one(f, &ev);
	char *tail = last_tail(f, "lost");
	assert_string_equal(tail, ",\"pid\":-1,\"uid\":0}");
	free(tail);
	afx_expect_ok(f, NULL, 2, "a zeroed event");
}

/* Zero as a real value: an exit status 0 and no redactions. */
static void flags_say_zero(void **state)
{
	struct afx *f = *state;
	struct audit_event ev = {.event = "exit",
				 .time = T0,
				 .has_exit = true,
				 .exit_status = 0,
				 .has_redactions = true,
				 .redactions = 0,
				 .pid = 4242,
				 .uid = 1000,
				 .exe = "/usr/bin/psql",
				 .cwd = "/home/dev"};
	append_one(f, &ev);
	char *tail = last_tail(f, "exit");
	assert_string_equal(tail,
			    ",\"exit\":0,\"redactions\":0,\"pid\":4242,\"uid\":1000,\"exe\":\"/usr/bin/psql\","
			    "\"cwd\":\"/home/dev\"}");
	free(tail);
	/* Without the flags the same values are left out. */
	ev.has_exit = ev.has_redactions = false;
	append_one(f, &ev);
	tail = last_tail(f, "exit");
	assert_string_equal(tail, ",\"pid\":4242,\"uid\":1000,\"exe\":\"/usr/bin/psql\",\"cwd\":\"/home/dev\"}");
	free(tail);
	afx_expect_ok(f, NULL, 3, "exit records");
}

/* `self`: this process, whatever the event's own process fields say. */
static void self_is_this_process(void **state)
{
	struct afx *f = *state;
	struct audit_event ev = {.event = "exit", .time = T0, .self = true, .pid = 4242, .exe = "/not/this"};
	append_one(f, &ev);
	char *tail = last_tail(f, "exit"), want[64];
	snprintf(want, sizeof want, ",\"pid\":%d,\"uid\":%d,\"exe\":\"", (int)getpid(), (int)getuid());
	assert_true(strncmp(tail, want, strlen(want)) == 0);
	assert_null(strstr(tail, "/not/this"));
	assert_non_null(strstr(tail, "\"cwd\":\""));
	free(tail);
}

/* Version, ttl and uses: 0 is unset; uses only with a ttl. */
static void policy_fields(void **state)
{
	struct afx *f = *state;
	static const char *const cmds[] = {"/usr/bin/env"};
	struct audit_event ev = {.event = "grant",
				 .time = T0,
				 .grant_id = "g-0123456789ab",
				 .ttl = 60,
				 .uses = 3,
				 .cmds = cmds,
				 .n_cmds = 1,
				 .version = 7,
				 .pid = 1,
				 .uid = 2};
	append_one(f, &ev);
	char *tail = last_tail(f, "grant");
	assert_string_equal(tail,
			    ",\"grant\":\"g-0123456789ab\",\"ttl\":60,\"uses\":3,\"cmds\":[\"/usr/bin/env\"],"
			    "\"version\":7,\"pid\":1,\"uid\":2}");
	free(tail);
	ev.ttl = 0;
	ev.version = 0;
	append_one(f, &ev);
	tail = last_tail(f, "grant");
	assert_string_equal(tail, ",\"grant\":\"g-0123456789ab\",\"cmds\":[\"/usr/bin/env\"],\"pid\":1,\"uid\":2}");
	free(tail);
}

/* Through the vault: each change recorded by the library's hook, about
 * this process, with its secret's id and version. */
static void changes_recorded(void **state)
{
	struct afx *f = *state;
	set_str(f, "db", "one");
	set_str(f, "db", "two");
	char *text = last_record(f);
	assert_non_null(strstr(text, "\"event\":\"set\",\"secrets\":[\"db\"],\"secret_ids\":[1],\"version\":2,"));
	assert_null(strstr(text, "decision"));
	free(text);
	const char *names[] = {"db"};
	struct secbuf *out[1] = {NULL};
	assert_int_equal(vault_read(f->v, names, 1, "reveal", out), 0);
	secbuf_free(out[0]);
	text = last_record(f);
	assert_non_null(
		strstr(text, "\"event\":\"reveal\",\"secrets\":[\"db\"],\"secret_ids\":[1],\"decision\":\"allow\","));
	char want[32];
	snprintf(want, sizeof want, "\"pid\":%d,", (int)getpid());
	assert_non_null(strstr(text, want));
	free(text);
	assert_int_equal(vault_remove(f->v, "db"), 0);
	text = last_record(f);
	assert_non_null(strstr(text, "\"event\":\"rm\",\"secrets\":[\"db\"],\"secret_ids\":[1],\"version\":2,"));
	free(text);
	afx_expect_ok(f, NULL, 5, "set, set, reveal, rm");
}

/* A grant's read carries its policy: the recorder's grant. */
static void grant_recorded_with_its_policy(void **state)
{
	struct afx *f = *state;
	set_str(f, "db", "one");
	static const char *const cmds[] = {"/usr/bin/psql"};
	static char *const argv[] = {"latch", "grant", "db"};
	struct audit_grant g = {"g-00000000beef", 600, 0, cmds, 1, NULL, 0};
	struct audit_recorder r = {3, argv, &g};
	vault_on_change(f->v, audit_record_change, &r);
	const char *names[] = {"db"};
	struct secbuf *out[1] = {NULL};
	assert_int_equal(vault_read(f->v, names, 1, "grant", out), 0);
	secbuf_free(out[0]);
	char *text = last_record(f);
	assert_non_null(strstr(text,
			       "\"event\":\"grant\",\"grant\":\"g-00000000beef\",\"secrets\":[\"db\"],"
			       "\"secret_ids\":[1],\"ttl\":600,\"cmds\":[\"/usr/bin/psql\"],\"decision\":\"allow\","));
	assert_null(strstr(text, "\"uses\""));
	assert_non_null(strstr(text, "\"argv_hash\":\""));
	free(text);
	g.uses = 2;
	assert_int_equal(vault_read(f->v, names, 1, "grant", out), 0);
	secbuf_free(out[0]);
	text = last_record(f);
	assert_non_null(strstr(text, "\"ttl\":600,\"uses\":2,"));
	free(text);
	afx_expect_ok(f, NULL, 4, "grants");
}

/* The check before a release: a row put back from before its last set
 * still decrypts, and the hook refuses the release. */
static void release_refused_after_rollback(void **state)
{
	struct afx *f = *state;
	set_str(f, "db", "old value");
	sqlite3 *raw = afx_raw(f);
	afx_exec(raw, "CREATE TEMP TABLE saved AS SELECT * FROM secrets");
	set_str(f, "db", "new value");
	afx_exec(raw, "DELETE FROM secrets");
	afx_exec(raw, "INSERT INTO secrets SELECT * FROM saved");
	afx_release(f, raw);
	int64_t before = afx_count(f->db);
	const char *names[] = {"db"};
	struct secbuf *out[1] = {NULL};
	latch_error_quiet(true);
	assert_int_equal(vault_read(f->v, names, 1, "reveal", out), -1);
	latch_error_quiet(false);
	assert_null(out[0]);
	assert_int_equal(afx_count(f->db), before);
}

/* audit_record_event: its own transaction; audit_upgrade: nothing to do
 * on a log that has its digest. */
static void event_and_upgrade(void **state)
{
	struct afx *f = *state;
	struct audit_event ev = {.event = "grant-failed",
				 .grant_id = "g-0000000000aa",
				 .self = true,
				 .reason = "the broker did not take the grant"};
	assert_int_equal(audit_record_event(f->v, &ev), 0);
	assert_int_equal(sqlite3_get_autocommit(f->db), 1);
	assert_int_equal(afx_count(f->db), 2);
	assert_int_equal(audit_state_version(f->db), 2);
	assert_int_equal(audit_upgrade(f->v), 0);
	assert_int_equal(afx_count(f->db), 2);
	afx_expect_ok(f, NULL, 2, "init, grant-failed");
}

struct rows {
	int n;
	struct audit_row last;
	char event[32], decision[16], exe[PATH_MAX];
};

static int rows_fn(const struct audit_row *r, void *ctx)
{
	struct rows *w = ctx;
	w->n++;
	w->last = *r;
	snprintf(w->event, sizeof w->event, "%s", r->event ? r->event : "");
	snprintf(w->decision, sizeof w->decision, "%s", r->decision ? r->decision : "");
	snprintf(w->exe, sizeof w->exe, "%s", r->exe ? r->exe : "");
	return 0;
}

/* audit_query's rows: the stored bytes and the fields read from them. */
static void query_rows(void **state)
{
	struct afx *f = *state;
	set_str(f, "a", "1");
	set_str(f, "b", "2");
	const char *names[] = {"a", "b"};
	struct secbuf *out[2] = {NULL, NULL};
	assert_int_equal(vault_read(f->v, names, 2, "reveal", out), 0);
	secbuf_free(out[0]);
	secbuf_free(out[1]);
	struct rows w = {0};
	struct audit_filter all = {0};
	assert_int_equal(audit_query(f->db, &all, rows_fn, &w), 0);
	assert_int_equal(w.n, 4);
	assert_int_equal(w.last.seq, 4);
	assert_string_equal(w.event, "reveal");
	assert_string_equal(w.decision, "allow");
	assert_string_equal(w.last.secrets, "a,b");
	assert_int_equal(w.last.pid, getpid());
	assert_true(w.last.time > 0);
	assert_true(w.exe[0] == '/');
	/* A record edited into something else is an error, not a row. */
	sqlite3 *raw = afx_raw(f);
	afx_exec(raw, "UPDATE audit_log SET record = CAST('{\"seq\":9}' AS BLOB) WHERE seq = 2");
	afx_release(f, raw);
	w.n = 0;
	latch_error_quiet(true);
	assert_int_equal(audit_query(f->db, &all, rows_fn, &w), -1);
	latch_error_quiet(false);
	assert_int_equal(w.n, 1);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(zero_is_unset, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(flags_say_zero, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(self_is_this_process, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(policy_fields, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(changes_recorded, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(grant_recorded_with_its_policy, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(release_refused_after_rollback, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(event_and_upgrade, afx_setup, afx_teardown),
		cmocka_unit_test_setup_teardown(query_rows, afx_setup, afx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
