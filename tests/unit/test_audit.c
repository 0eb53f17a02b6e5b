/* Unit tests: the audit log's HMAC chain (docs/threat-model.md P7, docs/audit.md).
 *
 * A real vault records its changes through the same hook the CLI uses;
 * more records are appended with audit_append inside BEGIN IMMEDIATE. An
 * attacker with write access to the vault file (but no passphrase) then
 * edits it through a second sqlite connection: flipped bytes in every
 * record and MAC, deleted, swapped, duplicated, forged and spliced rows,
 * altered index columns, truncation, an emptied log, a rolled-back file.
 * Each edit must make audit_verify answer TAMPERED with the exact first
 * bad seq; a wrong key must answer UNVERIFIABLE; an append that cannot be
 * recorded must leave nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit_fixture.h"

#define N 20 /* records in the standard log */

/* --- 1. a clean log -------------------------------------------------------- */

static void set_str(struct afx *f, const char *name, const char *value)
{
	struct secbuf *b = afx_secstr(value);
	assert_non_null(b);
	assert_int_equal(vault_set(f->v, name, b, NULL), 0);
	secbuf_free(b);
}

static bool has(const unsigned char *rec, const char *s)
{
	return strstr((const char *)rec, s) != NULL;
}

static void clean_log_verifies(void **state)
{
	struct afx *f = *state;
	/* seq 1 is "init", from vault_create_recorded. */
	afx_expect_seqs(f->db, 1);
	set_str(f, "alpha", "first value of alpha"); /* 2 */
	set_str(f, "beta", "value of beta");         /* 3 */
	set_str(f, "alpha", "second value");         /* 4 */
	const char *names[] = {"alpha", "beta"};
	struct secbuf *vals[2] = {NULL, NULL};
	assert_int_equal(vault_read(f->v, names, 2, "reveal", vals), 0); /* 5 */
	secbuf_free(vals[0]);
	secbuf_free(vals[1]);
	assert_int_equal(vault_remove(f->v, "beta"), 0); /* 6 */
	assert_int_equal(f->hook.calls, 6);
	afx_expect_seqs(f->db, 6);
	assert_int_equal(afx_append(f, N - 6), N);
	afx_expect_seqs(f->db, N);

	/* The records say what happened, in order. */
	size_t len;
	unsigned char *r1 = afx_blob(f->db, "record", 1, &len);
	assert_true(has(r1, "{\"seq\":1,\"time\":") && has(r1, "\"event\":\"init\""));
	unsigned char *r4 = afx_blob(f->db, "record", 4, &len);
	assert_true(has(r4, "\"event\":\"set\",\"secrets\":[\"alpha\"]") && has(r4, "\"version\":2"));
	unsigned char *r5 = afx_blob(f->db, "record", 5, &len);
	assert_true(has(r5, "\"event\":\"reveal\",\"secrets\":[\"alpha\",\"beta\"]") &&
		    has(r5, "\"decision\":\"allow\""));
	unsigned char *r6 = afx_blob(f->db, "record", 6, &len);
	assert_true(has(r6, "{\"seq\":6,") && has(r6, "\"event\":\"rm\",\"secrets\":[\"beta\"]"));
	free(r1);
	free(r4);
	free(r5);
	free(r6);

	struct audit_report r;
	assert_int_equal(afx_verify(f, NULL, &r), 0);
	assert_int_equal(r.verdict, AUDIT_OK);
	assert_int_equal(r.records, N);
	assert_int_equal(r.first_bad, 0);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	assert_int_equal(cp.seq, N);
	assert_true(afx_cp_equal(&cp, &r.head));
	size_t mlen;
	unsigned char *mac = afx_blob(f->db, "mac", N, &mlen);
	assert_int_equal(mlen, AUDIT_MAC_BYTES);
	assert_memory_equal(mac, cp.mac, AUDIT_MAC_BYTES);
	free(mac);
	/* Against its own head, and against an older head. */
	afx_expect_ok(f, &cp, N, "own checkpoint");
	struct audit_checkpoint old = cp;
	assert_int_equal(afx_append(f, 3), N + 3);
	afx_expect_ok(f, &old, N + 3, "older checkpoint");
	afx_head(f, &cp);
	assert_int_equal(cp.seq, N + 3);
	afx_expect_ok(f, &cp, N + 3, "newer checkpoint");
}

/* --- 2. every byte of a record and of its MAC ------------------------------ */

/* Flip every byte of audit_log.<col> of `seq` one at a time, restoring
 * between, with each of `masks` (e.g. low bit, high bit, all bits): each
 * must be TAMPERED at seq. */
static void flip_all(struct afx *f, sqlite3 *raw, const char *col, int64_t seq, const unsigned char *masks,
		     size_t nmasks)
{
	size_t len;
	unsigned char *orig = afx_blob(raw, col, seq, &len);
	unsigned char *buf = malloc(len);
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++) {
		for (size_t m = 0; m < nmasks; m++) {
			memcpy(buf, orig, len);
			buf[i] ^= masks[m];
			afx_set_blob(raw, col, seq, buf, len);
			struct audit_report r;
			int rc = afx_verify(f, NULL, &r);
			if (rc != 0 || r.verdict != AUDIT_TAMPERED || r.first_bad != seq)
				fail_msg("%s of %lld, byte %zu ^ 0x%02x: rc %d verdict %s first_bad %lld: %s", col,
					 (long long)seq, i, masks[m], rc, afx_verdict_name(r.verdict),
					 (long long)r.first_bad, r.reason);
		}
	}
	afx_set_blob(raw, col, seq, orig, len);
	afx_expect_ok(f, NULL, N, "after restoring");
	free(buf);
	free(orig);
}

static void every_byte_of_record_and_mac(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	sqlite3 *raw = afx_raw(f);
	afx_exec(raw, "PRAGMA journal_mode=MEMORY"); /* speed: thousands of edits */
	/* The first, a middle one with a grant and two secrets, the last. */
	const int64_t mid = 13; /* k = 11 of afx_append */
	size_t len;
	unsigned char *rec = afx_blob(raw, "record", mid, &len);
	assert_true(has(rec, "\"grant\":\"") && has(rec, "\"secrets\":[\""));
	free(rec);
	static const unsigned char three[] = {0x01, 0x80, 0xff}, whole[] = {0xff};
	flip_all(f, raw, "record", mid, three, sizeof three);
	flip_all(f, raw, "mac", mid, three, sizeof three);
	const int64_t ends[] = {1, N};
	for (size_t i = 0; i < 2; i++) {
		flip_all(f, raw, "record", ends[i], whole, sizeof whole);
		flip_all(f, raw, "mac", ends[i], whole, sizeof whole);
	}
	afx_release(f, raw);
	afx_expect_ok(f, NULL, N, "all restored");
}

/* Shorter, longer, empty records and MACs of the wrong length. */
static void record_and_mac_lengths(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	sqlite3 *raw = afx_raw(f);
	const int64_t s = 12;
	size_t len, mlen;
	unsigned char *rec = afx_blob(raw, "record", s, &len);
	unsigned char *mac = afx_blob(raw, "mac", s, &mlen);
	unsigned char *big = malloc(len + 64);
	assert_non_null(big);
	struct {
		const char *col;
		size_t n;
		const char *what;
	} cases[] = {
		{"record", len - 1, "record cut by one byte"},
		{"record", len + 1, "record with one byte more"},
		{"record", len / 2, "record cut in half"},
		{"record", 0, "empty record"},
		{"mac", AUDIT_MAC_BYTES - 1, "31-byte MAC"},
		{"mac", AUDIT_MAC_BYTES + 1, "33-byte MAC"},
		{"mac", 0, "empty MAC"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool is_rec = !strcmp(cases[i].col, "record");
		memset(big, ' ', len + 64);
		memcpy(big, is_rec ? rec : mac, is_rec ? len : mlen);
		afx_set_blob(raw, cases[i].col, s, big, cases[i].n);
		afx_expect(f, NULL, AUDIT_TAMPERED, s, cases[i].what);
		afx_set_blob(raw, cases[i].col, s, is_rec ? rec : mac, is_rec ? len : mlen);
		afx_expect_ok(f, NULL, N, "restored");
	}
	/* The record stored as TEXT instead of BLOB: same bytes, same MAC. */
	afx_exec(raw, "UPDATE audit_log SET record = CAST(record AS TEXT) WHERE seq = %d", (int)s);
	afx_expect_ok(f, NULL, N, "record as text");
	afx_release(f, raw);
	free(big);
	free(rec);
	free(mac);
}

/* --- 3. rows deleted, swapped, duplicated, forged, spliced ----------------- */

static void row_deleted(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = 10");
	afx_expect(f, NULL, AUDIT_TAMPERED, 10, "middle row deleted");
	afx_restore(raw, snap);
	afx_expect_ok(f, NULL, N, "restored");
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = 1");
	afx_expect(f, NULL, AUDIT_TAMPERED, 1, "first row deleted");
	afx_restore(raw, snap);
	afx_exec(raw, "DELETE FROM audit_log WHERE seq IN (7, 8, 15)");
	afx_expect(f, NULL, AUDIT_TAMPERED, 7, "three rows deleted");
	/* Deleted, and the later rows renumbered to close the gap. */
	afx_restore(raw, snap);
	afx_exec(raw,
		 "DELETE FROM audit_log WHERE seq = 10;"
		 "UPDATE audit_log SET seq = seq - 1 WHERE seq > 10;"
		 "DELETE FROM audit_secret WHERE seq = 10;"
		 "UPDATE audit_secret SET seq = seq - 1 WHERE seq > 10");
	afx_expect(f, NULL, AUDIT_TAMPERED, 10, "row deleted and the rest renumbered");
	afx_release(f, snap);
	afx_release(f, raw);
}

/* Swap record and MAC of rows a and b (index columns stay). */
static void swap_rows(sqlite3 *raw, int64_t a, int64_t b)
{
	size_t la, lb, ma, mb;
	unsigned char *ra = afx_blob(raw, "record", a, &la), *rb = afx_blob(raw, "record", b, &lb);
	unsigned char *ka = afx_blob(raw, "mac", a, &ma), *kb = afx_blob(raw, "mac", b, &mb);
	afx_set_blob(raw, "record", a, rb, lb);
	afx_set_blob(raw, "mac", a, kb, mb);
	afx_set_blob(raw, "record", b, ra, la);
	afx_set_blob(raw, "mac", b, ka, ma);
	free(ra);
	free(rb);
	free(ka);
	free(kb);
}

static void rows_swapped(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	swap_rows(raw, 5, 12);
	afx_expect(f, NULL, AUDIT_TAMPERED, 5, "rows 5 and 12 swapped");
	afx_restore(raw, snap);
	swap_rows(raw, 10, 11);
	afx_expect(f, NULL, AUDIT_TAMPERED, 10, "rows 10 and 11 swapped");
	afx_restore(raw, snap);
	swap_rows(raw, N - 1, N);
	afx_expect(f, NULL, AUDIT_TAMPERED, N - 1, "the last two rows swapped");
	/* Whole rows swapped, index columns and all, by renumbering. */
	afx_restore(raw, snap);
	afx_exec(raw,
		 "UPDATE audit_log SET seq = -1 WHERE seq = 6;"
		 "UPDATE audit_log SET seq = 6 WHERE seq = 9;"
		 "UPDATE audit_log SET seq = 9 WHERE seq = -1");
	afx_expect(f, NULL, AUDIT_TAMPERED, 6, "rows 6 and 9 renumbered");
	afx_restore(raw, snap);
	afx_expect_ok(f, NULL, N, "restored");
	afx_release(f, snap);
	afx_release(f, raw);
}

/* Copy row `from` (all columns, and its secret index rows) to seq `to`. */
static void copy_row(sqlite3 *raw, int64_t from, int64_t to)
{
	afx_exec(raw,
		 "INSERT INTO audit_log (seq, time, event, grant_id, record, mac)"
		 " SELECT %lld, time, event, grant_id, record, mac FROM audit_log WHERE seq = %lld;"
		 "INSERT INTO audit_secret (seq, pos, secret, time, event)"
		 " SELECT %lld, pos, secret, time, event FROM audit_secret WHERE seq = %lld",
		 (long long)to, (long long)from, (long long)to, (long long)from);
}

static void rows_duplicated(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	copy_row(raw, 7, N + 1);
	afx_expect(f, NULL, AUDIT_TAMPERED, N + 1, "row 7 copied to the end");
	afx_restore(raw, snap);
	copy_row(raw, N, N + 1);
	afx_expect(f, NULL, AUDIT_TAMPERED, N + 1, "the last row copied to the end");
	afx_restore(raw, snap);
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = 8; DELETE FROM audit_secret WHERE seq = 8");
	copy_row(raw, 7, 8);
	afx_expect(f, NULL, AUDIT_TAMPERED, 8, "row 7 copied into deleted row 8");
	afx_restore(raw, snap);
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = 8; DELETE FROM audit_secret WHERE seq = 8");
	copy_row(raw, 9, 8);
	afx_expect(f, NULL, AUDIT_TAMPERED, 8, "row 9 copied into deleted row 8");
	afx_restore(raw, snap);
	afx_expect_ok(f, NULL, N, "restored");
	afx_release(f, snap);
	afx_release(f, raw);
}

/* Insert a plausible record at `seq` with a random MAC. */
static void forge_row(sqlite3 *raw, int64_t seq)
{
	char rec[256];
	int n = snprintf(rec, sizeof rec,
			 "{\"seq\":%lld,\"time\":1795392000,\"event\":\"release\",\"secrets\":[\"prod-token\"],"
			 "\"secret_ids\":[1],\"decision\":\"allow\",\"pid\":1,\"uid\":1000}",
			 (long long)seq);
	unsigned char mac[AUDIT_MAC_BYTES];
	randombytes_buf(mac, sizeof mac);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(raw,
					    "INSERT INTO audit_log (seq, time, event, grant_id, record, mac)"
					    " VALUES (?1, 1795392000, 'release', NULL, ?2, ?3)",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_blob(st, 2, rec, n, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 3, mac, sizeof mac, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	afx_exec(
		raw,
		"INSERT INTO audit_secret (seq, pos, secret, time, event) VALUES (%lld, 0, 'prod-token', 1795392000, 'set')",
		(long long)seq);
}

static void row_forged(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	forge_row(raw, N + 1);
	afx_expect(f, NULL, AUDIT_TAMPERED, N + 1, "forged row at the end");
	afx_restore(raw, snap);
	afx_exec(raw, "DELETE FROM audit_log WHERE seq = 10; DELETE FROM audit_secret WHERE seq = 10");
	forge_row(raw, 10);
	afx_expect(f, NULL, AUDIT_TAMPERED, 10, "forged row in place of row 10");
	afx_restore(raw, snap);
	forge_row(raw, N + 5);
	afx_expect(f, NULL, AUDIT_TAMPERED, N + 1, "forged row after a gap: N+1 is missing");
	/* A row before the first: the chain breaks at its first position. */
	afx_restore(raw, snap);
	forge_row(raw, 0);
	afx_expect(f, NULL, AUDIT_TAMPERED, 1, "forged row 0");
	afx_restore(raw, snap);
	afx_expect_ok(f, NULL, N, "restored");
	afx_release(f, snap);
	afx_release(f, raw);
}

/* Replace rows [from, to] of f's log with the same seqs of g's log. */
static void splice_rows(sqlite3 *raw, const struct afx *g, int64_t from, int64_t to)
{
	afx_exec(raw, "ATTACH DATABASE '%s' AS b", g->path);
	afx_exec(raw,
		 "BEGIN;"
		 "DELETE FROM main.audit_log WHERE seq BETWEEN %lld AND %lld;"
		 "DELETE FROM main.audit_secret WHERE seq BETWEEN %lld AND %lld;"
		 "INSERT INTO main.audit_log SELECT * FROM b.audit_log WHERE seq BETWEEN %lld AND %lld;"
		 "INSERT INTO main.audit_secret SELECT * FROM b.audit_secret WHERE seq BETWEEN %lld AND %lld;"
		 "COMMIT",
		 (long long)from, (long long)to, (long long)from, (long long)to, (long long)from, (long long)to,
		 (long long)from, (long long)to);
	afx_exec(raw, "DETACH DATABASE b");
}

static void rows_from_another_vault(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	struct afx *g = afx_other(f);
	/* g's log has the same shape: same events, same names, same seqs. */
	afx_fill(g, N);
	afx_expect_ok(g, NULL, N, "the other vault");
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	splice_rows(raw, g, 10, 12);
	afx_expect(f, NULL, AUDIT_TAMPERED, 10, "rows 10-12 from another vault");
	afx_restore(raw, snap);
	splice_rows(raw, g, N, N);
	afx_expect(f, NULL, AUDIT_TAMPERED, N, "the last row from another vault");
	afx_restore(raw, snap);
	splice_rows(raw, g, 1, N);
	afx_expect(f, NULL, AUDIT_TAMPERED, 1, "every row from another vault");
	/* Rows and state from another vault: its first key does not open
	 * with this vault's verifier key; against this vault's checkpoint the
	 * log id differs. */
	afx_exec(raw,
		 "ATTACH DATABASE '%s' AS b;"
		 "DELETE FROM main.audit_state;"
		 "INSERT INTO main.audit_state SELECT * FROM b.audit_state;"
		 "DETACH DATABASE b",
		 g->path);
	afx_expect(f, NULL, AUDIT_UNVERIFIABLE, 0, "the other vault's whole log");
	afx_expect(f, &cp, AUDIT_TAMPERED, 1, "the other vault's whole log, with a checkpoint");
	afx_restore(raw, snap);
	afx_expect_ok(f, &cp, N, "restored");
	afx_release(f, snap);
	afx_release(f, raw);
}

/* --- 4. the copied index columns ------------------------------------------- */

static void index_columns_altered(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	/* Record k of afx_append is seq k + 2 (seq 1 is "init"): T (k = 11)
	 * has a grant and two secrets, U (k = 12) neither, M (k = 10) one
	 * secret and no grant. */
	const int64_t T = 13, U = 14, M = 12;
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_secret WHERE seq = %d", (int)T), 2);
	assert_int_equal(afx_int(f->db, "SELECT grant_id IS NOT NULL FROM audit_log WHERE seq = %d", (int)T), 1);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_secret WHERE seq = %d", (int)U), 0);
	assert_int_equal(afx_int(f->db, "SELECT grant_id IS NULL FROM audit_log WHERE seq = %d", (int)U), 1);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_secret WHERE seq = %d", (int)M), 1);
	assert_int_equal(afx_int(f->db, "SELECT grant_id IS NULL FROM audit_log WHERE seq = %d", (int)M), 1);
	struct {
		const char *sql;
		int64_t bad;
	} cases[] = {
		{"UPDATE audit_log SET time = time + 1 WHERE seq = 13", T},
		{"UPDATE audit_log SET time = time - 86400 WHERE seq = 13", T},
		{"UPDATE audit_log SET time = 0 WHERE seq = 14", U},
		{"UPDATE audit_log SET event = 'other' WHERE seq = 13", T},
		{"UPDATE audit_log SET event = substr(event, 1, 2) WHERE seq = 13", T},
		{"UPDATE audit_log SET event = event || 'x' WHERE seq = 14", U},
		{"UPDATE audit_log SET grant_id = NULL WHERE seq = 13", T},
		{"UPDATE audit_log SET grant_id = 'g-forged' WHERE seq = 13", T},
		{"UPDATE audit_log SET grant_id = grant_id || '0' WHERE seq = 13", T},
		{"UPDATE audit_log SET grant_id = 'g-1' WHERE seq = 14", U},
		{"UPDATE audit_log SET grant_id = 'g-1' WHERE seq = 12", M},
		{"DELETE FROM audit_secret WHERE seq = 13", T},
		{"DELETE FROM audit_secret WHERE seq = 13 AND pos = 1", T},
		{"DELETE FROM audit_secret WHERE seq = 13 AND pos = 0", T},
		{"DELETE FROM audit_secret WHERE seq = 12", M},
		{"UPDATE audit_secret SET secret = 'zzz' WHERE seq = 13 AND pos = 0", T},
		{"UPDATE audit_secret SET secret = secret || 'x' WHERE seq = 13 AND pos = 1", T},
		{"UPDATE audit_secret SET secret = 'prod-token' WHERE seq = 12", M},
		{"UPDATE audit_secret SET pos = 5 WHERE seq = 13 AND pos = 1", T},
		{"UPDATE audit_secret SET event = 'exit' WHERE seq = 13 AND pos = 0", T},
		{"UPDATE audit_secret SET pos = -pos - 1 WHERE seq = 13", T},
		{"UPDATE audit_secret SET secret = CASE pos WHEN 0 THEN (SELECT secret FROM audit_secret WHERE seq = 13 AND pos = 1)"
		 " ELSE (SELECT secret FROM audit_secret WHERE seq = 13 AND pos = 0) END WHERE seq = 13",
		 T},
		{"INSERT INTO audit_secret (seq, pos, secret, time, event) SELECT 13, 2, 'extra', time, event FROM audit_log WHERE seq = 13",
		 T},
		{"INSERT INTO audit_secret (seq, pos, secret, time, event) SELECT 14, 0, 'extra', time, event FROM audit_log WHERE seq = 14",
		 U},
		{"UPDATE audit_secret SET seq = 14, pos = 0 WHERE seq = 13 AND pos = 1", T},
		{"UPDATE audit_secret SET seq = 13, pos = 2 WHERE seq = 12", M},
		/* The whole index row of T replaced by U's. */
		{"UPDATE audit_log SET (time, event, grant_id) = (SELECT time, event, grant_id FROM audit_log WHERE seq = 14)"
		 " WHERE seq = 13",
		 T},
	};
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		afx_exec(raw, "%s", cases[i].sql);
		afx_expect(f, NULL, AUDIT_TAMPERED, cases[i].bad, cases[i].sql);
		afx_restore(raw, snap);
		afx_expect_ok(f, NULL, N, "restored");
	}
	afx_release(f, snap);
	afx_release(f, raw);
}

/* audit_secret.time is a copied index column too: `latch audit --secret X
 * --since T` filters on it (audit/query.c). Moving it must not go
 * unnoticed, or a record can be hidden from that query and still verify. */
static int count_fn(const struct audit_row *r, void *ctx)
{
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

static void index_secret_time_altered(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	const int64_t T = 10;
	int64_t t = afx_int(f->db, "SELECT time FROM audit_log WHERE seq = %d", (int)T);
	char name[64];
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT secret FROM audit_secret WHERE seq = 10 AND pos = 0", -1,
					    &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	struct audit_filter q = {.secret = name, .since = t};
	int hits = 0;
	assert_int_equal(audit_query(f->db, &q, count_fn, &hits), 0);
	assert_int_equal(hits, 1);

	sqlite3 *raw = afx_raw(f);
	afx_exec(raw, "UPDATE audit_secret SET time = 0 WHERE seq = 10");
	hits = 0;
	assert_int_equal(audit_query(f->db, &q, count_fn, &hits), 0);
	/* The record is now hidden from the query; verify must say so. */
	assert_int_equal(hits, 0);
	afx_expect(f, NULL, AUDIT_TAMPERED, T, "audit_secret.time of record 10 set to 0");
	afx_release(f, raw);
}

/* --- 5. truncation, an emptied log, a rolled-back file --------------------- */

static void tail_truncated(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	for (int k = 1; k <= 5; k++) {
		afx_exec(raw, "DELETE FROM audit_log WHERE seq > %d; DELETE FROM audit_secret WHERE seq > %d", N - k,
			 N - k);
		afx_expect(f, &cp, AUDIT_TAMPERED, N - k + 1, "tail cut, with a checkpoint");
		/* The sealed state still counts the removed records. */
		afx_expect(f, NULL, AUDIT_TAMPERED, N - k + 1, "tail cut, no checkpoint");
		afx_restore(raw, snap);
	}
	afx_expect_ok(f, &cp, N, "restored");
	afx_release(f, snap);
	afx_release(f, raw);
}

static void truncated_then_appended(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	sqlite3 *raw = afx_raw(f);
	afx_exec(raw, "DELETE FROM audit_log WHERE seq > 17; DELETE FROM audit_secret WHERE seq > 17");
	afx_release(f, raw);
	/* Later records through the API are refused: the sealed state names
	 * a last record the log no longer has (no checkpoint was ever taken). */
	struct secbuf *b = afx_secstr("value written after the cut");
	latch_error_quiet(true);
	assert_int_equal(vault_set(f->v, "after", b, NULL), -1);
	latch_error_quiet(false);
	secbuf_free(b);
	assert_int_equal(afx_count(f->db), 17);
	afx_expect(f, NULL, AUDIT_TAMPERED, 18, "truncated, then appended");
}

/* The attacker kept an old copy of the sealed state and puts it back with
 * the log cut to match: only a checkpoint can tell. */
static void stale_state_replayed(void **state)
{
	struct afx *f = *state;
	afx_fill(f, 17);
	size_t slen;
	unsigned char *old_state = afx_state_blob(f->db, "state", &slen);
	afx_fill(f, N);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	sqlite3 *raw = afx_raw(f);
	/* The state alone put back: it disagrees with the log. */
	afx_set_state_blob(raw, "state", old_state, slen);
	afx_expect(f, NULL, AUDIT_TAMPERED, 18, "stale state");
	/* ... and an append on top of it cannot reuse seq 18. */
	struct secbuf *b = afx_secstr("never stored");
	latch_error_quiet(true);
	assert_int_equal(vault_set(f->v, "x", b, NULL), -1);
	latch_error_quiet(false);
	secbuf_free(b);
	assert_int_equal(afx_count(f->db), N);
	/* State and log both rolled back to 17: consistent but for the
	 * checkpoint. */
	afx_exec(raw, "DELETE FROM audit_log WHERE seq > 17; DELETE FROM audit_secret WHERE seq > 17");
	afx_expect(f, &cp, AUDIT_TAMPERED, 18, "log and state rolled back to 17, with a checkpoint");
	afx_release(f, raw);
	free(old_state);
}

static void audit_tables_emptied(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	/* Rows only: the sealed state still says N. */
	afx_exec(raw, "DELETE FROM audit_log; DELETE FROM audit_secret");
	afx_expect(f, &cp, AUDIT_TAMPERED, 1, "rows deleted, with a checkpoint");
	afx_expect(f, NULL, AUDIT_TAMPERED, 1, "rows deleted, no checkpoint");
	/* Rows and state: the log is gone. */
	afx_exec(raw, "DELETE FROM audit_state");
	afx_expect(f, &cp, AUDIT_TAMPERED, 1, "log and state deleted, with a checkpoint");
	afx_expect(f, NULL, AUDIT_UNVERIFIABLE, 0, "log and state deleted, no checkpoint");
	/* The next change starts a new log; the checkpoint still exposes it. */
	set_str(f, "after", "value written after the deletion");
	afx_expect_seqs(f->db, 1);
	afx_expect_ok(f, NULL, 1, "the new log on its own");
	afx_expect(f, &cp, AUDIT_TAMPERED, 1, "a new log against the old checkpoint");
	/* The tables themselves dropped: never OK. */
	afx_restore(raw, snap);
	afx_expect_ok(f, &cp, N, "restored");
	afx_exec(raw, "DROP TABLE audit_log");
	struct audit_report r;
	int rc = afx_verify(f, &cp, &r);
	assert_true(rc == -1 || r.verdict == AUDIT_TAMPERED);
	rc = afx_verify(f, NULL, &r);
	assert_true(rc == -1 || r.verdict != AUDIT_OK);
	afx_release(f, snap);
	afx_release(f, raw);
}

static void file_rolled_back(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	/* The file as it is now (no write in progress: journal_mode=DELETE
	 * leaves no journal behind a commit). */
	char journal[PATH_MAX + 16];
	snprintf(journal, sizeof journal, "%s-journal", f->path);
	assert_int_equal(access(journal, F_OK), -1);
	size_t len;
	unsigned char *old = afx_read_file(f->path, &len);
	set_str(f, "late", "a later value");
	assert_int_equal(afx_append(f, 4), N + 5);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	assert_int_equal(cp.seq, N + 5);
	afx_close(f);
	afx_write_file(f->path, old, len);
	free(old);
	assert_int_equal(afx_open(f), 0);
	afx_expect(f, &cp, AUDIT_TAMPERED, N + 1, "older copy of the vault file");
}

/* --- 6. checkpoints and keys ------------------------------------------------ */

static void checkpoint_of_another_log(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	struct afx *g = afx_other(f);
	afx_fill(g, N);
	struct audit_checkpoint cpg;
	afx_head(g, &cpg);
	assert_int_equal(cpg.seq, N);
	/* audit_verify checks the log id before anything else: a different
	 * log is a replaced log, TAMPERED from record 1. */
	struct audit_report r;
	assert_int_equal(afx_verify(f, &cpg, &r), 0);
	assert_int_not_equal(r.verdict, AUDIT_OK);
	afx_expect(f, &cpg, AUDIT_TAMPERED, 1, "checkpoint of another log");
	/* Same log id, other MAC or seq. */
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	struct audit_checkpoint bad = cp;
	bad.mac[0] ^= 1;
	afx_expect(f, &bad, AUDIT_TAMPERED, N, "checkpoint MAC altered");
	bad = cp;
	bad.seq = 10;
	afx_expect(f, &bad, AUDIT_TAMPERED, 10, "checkpoint of record N claimed for 10");
	bad = cp;
	bad.seq = N + 5;
	afx_expect(f, &bad, AUDIT_TAMPERED, N + 1, "checkpoint beyond the end");
	bad = cp;
	memcpy(bad.mac, cpg.mac, AUDIT_MAC_BYTES);
	afx_expect(f, &bad, AUDIT_TAMPERED, N, "checkpoint with another log's MAC");
	afx_expect_ok(f, &cp, N, "the right checkpoint");
}

static void wrong_keys(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	unsigned char rnd[AUDIT_KEY_BYTES];
	randombytes_buf(rnd, sizeof rnd);
	struct secbuf *wrong = afx_secbuf(rnd, sizeof rnd);
	struct audit_report r;
	latch_error_quiet(true);
	assert_int_equal(audit_verify(f->db, f->writer, wrong, NULL, vault_rows, f->v, &r), 0);
	assert_int_equal(r.verdict, AUDIT_UNVERIFIABLE);
	assert_int_equal(r.first_bad, 0);
	assert_int_equal(audit_verify(f->db, f->writer, wrong, &cp, vault_rows, f->v, &r), 0);
	assert_int_equal(r.verdict, AUDIT_UNVERIFIABLE);
	/* The writer key given as verifier, and the other way round. */
	assert_int_equal(audit_verify(f->db, f->writer, f->writer, NULL, vault_rows, f->v, &r), 0);
	assert_int_equal(r.verdict, AUDIT_UNVERIFIABLE);
	assert_int_equal(audit_verify(f->db, f->verifier, f->verifier, NULL, vault_rows, f->v, &r), 0);
	assert_int_not_equal(r.verdict, AUDIT_OK);
	/* A wrong writer key cannot open the sealed state: never OK. */
	assert_int_equal(audit_verify(f->db, wrong, f->verifier, NULL, vault_rows, f->v, &r), 0);
	assert_int_not_equal(r.verdict, AUDIT_OK);
	latch_error_quiet(false);
	/* ...nor append. */
	afx_exec(f->db, "BEGIN IMMEDIATE");
	struct audit_event ev = {.event = "release", .self = true};
	latch_error_quiet(true);
	assert_int_equal(audit_append(f->db, wrong, f->verifier, &ev, NULL), -1);
	latch_error_quiet(false);
	assert_int_equal(afx_count(f->db), N);
	afx_exec(f->db, "ROLLBACK");
	secbuf_free(wrong);
	afx_expect_ok(f, &cp, N, "the right keys");
}

/* The sealed origin (k_1) and sealed state damaged. */
static void sealed_blobs_damaged(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	sqlite3 *raw = afx_raw(f);
	sqlite3 *snap = afx_snapshot(f, raw);
	size_t olen, slen, ilen;
	unsigned char *origin = afx_state_blob(raw, "origin", &olen);
	unsigned char *st = afx_state_blob(raw, "state", &slen);
	unsigned char *id = afx_state_blob(raw, "log_id", &ilen);
	assert_int_equal(ilen, AUDIT_LOG_ID_BYTES);
	for (size_t i = 0; i < olen; i += 7) {
		origin[i] ^= 0x10;
		afx_set_state_blob(raw, "origin", origin, olen);
		origin[i] ^= 0x10;
		afx_expect(f, NULL, AUDIT_UNVERIFIABLE, 0, "origin byte flipped");
	}
	afx_restore(raw, snap);
	for (size_t i = 0; i < slen; i += 7) {
		st[i] ^= 0x10;
		afx_set_state_blob(raw, "state", st, slen);
		st[i] ^= 0x10;
		afx_expect(f, NULL, AUDIT_TAMPERED, N + 1, "state byte flipped");
	}
	/* A damaged state refuses appends, so the change is refused too. */
	struct secbuf *b = afx_secstr("never stored");
	latch_error_quiet(true);
	assert_int_equal(vault_set(f->v, "x", b, NULL), -1);
	latch_error_quiet(false);
	secbuf_free(b);
	assert_int_equal(afx_count(f->db), N);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM secrets WHERE name = 'x'"), 0);
	afx_restore(raw, snap);
	/* Another log id: the origin's binding breaks; with the checkpoint
	 * the log is a different one. */
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	id[0] ^= 1;
	afx_set_state_blob(raw, "log_id", id, ilen);
	afx_expect(f, NULL, AUDIT_UNVERIFIABLE, 0, "log id altered");
	afx_expect(f, &cp, AUDIT_TAMPERED, 1, "log id altered, with a checkpoint");
	afx_restore(raw, snap);
	afx_expect_ok(f, &cp, N, "restored");
	afx_release(f, snap);
	afx_release(f, raw);
	free(origin);
	free(st);
	free(id);
}

/* --- 8. appends fail closed -------------------------------------------------- */

static void append_read_only_connection(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	size_t slen;
	unsigned char *before = afx_state_blob(f->db, "state", &slen);
	sqlite3 *ro = NULL;
	int orc = sqlite3_open_v2(f->path, &ro, SQLITE_OPEN_READONLY, NULL);
	afx_track(f, ro);
	assert_int_equal(orc, SQLITE_OK);
	struct audit_secret_ref ref = {"prod-token", 1};
	struct audit_event ev = {.event = "release",
				 .decision = "allow",
				 .secrets = &ref,
				 .n_secrets = 1,
				 .self = true};
	int64_t seq = -7;
	latch_error_quiet(true);
	assert_int_equal(audit_append(ro, f->writer, f->verifier, &ev, &seq), -1);
	assert_int_equal(sqlite3_get_autocommit(ro), 1);
	/* In a read transaction on it, too. */
	assert_int_equal(sqlite3_exec(ro, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(audit_append(ro, f->writer, f->verifier, &ev, &seq), -1);
	assert_int_equal(sqlite3_exec(ro, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	latch_error_quiet(false);
	assert_int_equal(seq, -7);
	afx_release(f, ro);
	afx_expect_seqs(f->db, N);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_secret WHERE secret = 'prod-token'"), 0);
	size_t alen;
	unsigned char *after = afx_state_blob(f->db, "state", &alen);
	assert_int_equal(alen, slen);
	assert_memory_equal(before, after, slen);
	free(before);
	free(after);
	afx_expect_ok(f, NULL, N, "nothing written");
}

static void want_value(struct afx *f, const char *name, const char *value)
{
	struct secbuf *out = NULL;
	assert_int_equal(vault_get(f->v, name, &out), 0);
	assert_int_equal(out->len, strlen(value));
	assert_memory_equal(out->data, value, out->len);
	secbuf_free(out);
}

static void append_after_state_deleted(void **state)
{
	struct afx *f = *state;
	set_str(f, "keep", "the value that must survive");
	afx_fill(f, N);
	sqlite3 *raw = afx_raw(f);
	afx_exec(raw, "DELETE FROM audit_state");
	afx_release(f, raw);
	/* Directly: refuses to start a second chain over the records. */
	struct audit_event ev = {.event = "release", .self = true};
	afx_exec(f->db, "BEGIN IMMEDIATE");
	latch_error_quiet(true);
	assert_int_equal(audit_append(f->db, f->writer, f->verifier, &ev, NULL), -1);
	latch_error_quiet(false);
	assert_int_equal(afx_count(f->db), N);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_state"), 0);
	afx_exec(f->db, "ROLLBACK");
	/* Through the vault: the change is refused with its record. */
	struct secbuf *b = afx_secstr("replacement value");
	latch_error_quiet(true);
	assert_int_equal(vault_set(f->v, "keep", b, NULL), -1);
	assert_int_equal(vault_set(f->v, "new-one", b, NULL), -1);
	assert_int_equal(vault_remove(f->v, "keep"), -1);
	const char *names[] = {"keep"};
	struct secbuf *vals[1] = {NULL};
	assert_int_equal(vault_read(f->v, names, 1, "reveal", vals), -1);
	assert_null(vals[0]);
	latch_error_quiet(false);
	secbuf_free(b);
	want_value(f, "keep", "the value that must survive");
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM secrets WHERE name = 'new-one'"), 0);
	afx_expect_seqs(f->db, N);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_state"), 0);
	/* Not OK, whatever else it is. */
	struct audit_report r;
	assert_int_equal(afx_verify(f, NULL, &r), 0);
	assert_int_not_equal(r.verdict, AUDIT_OK);
}

/* With no log at all, only a holder of the verifier key may start one. */
static void append_without_verifier_cannot_start_log(void **state)
{
	struct afx *f = *state;
	sqlite3 *raw = afx_raw(f);
	afx_exec(raw, "DELETE FROM audit_log; DELETE FROM audit_secret; DELETE FROM audit_state");
	afx_release(f, raw);
	struct audit_event ev = {.event = "release", .self = true};
	afx_exec(f->db, "BEGIN IMMEDIATE");
	latch_error_quiet(true);
	assert_int_equal(audit_append(f->db, f->writer, NULL, &ev, NULL), -1);
	latch_error_quiet(false);
	assert_int_equal(afx_count(f->db), 0);
	assert_int_equal(afx_int(f->db, "SELECT count(*) FROM audit_state"), 0);
	int64_t seq = 0;
	assert_int_equal(audit_append(f->db, f->writer, f->verifier, &ev, &seq), 0);
	assert_int_equal(seq, 1);
	afx_exec(f->db, "COMMIT");
	afx_expect_ok(f, NULL, 1, "a new log");
	/* Later appends need only the writer key. */
	afx_exec(f->db, "BEGIN IMMEDIATE");
	assert_int_equal(audit_append(f->db, f->writer, NULL, &ev, &seq), 0);
	assert_int_equal(seq, 2);
	afx_exec(f->db, "COMMIT");
	afx_expect_ok(f, NULL, 2, "appended by a writer-only holder");
}

static void hook_failure_changes_nothing(void **state)
{
	struct afx *f = *state;
	set_str(f, "keep", "original value");
	set_str(f, "other", "other value");
	afx_fill(f, N);
	const enum afx_hook_mode modes[] = {AFX_HOOK_FAIL, AFX_HOOK_RECORD_FAIL};
	for (size_t m = 0; m < 2; m++) {
		f->hook.mode = modes[m];
		struct secbuf *b = afx_secstr("replacement value");
		latch_error_quiet(true);
		assert_int_equal(vault_set(f->v, "keep", b, NULL), -1);
		assert_int_equal(vault_set(f->v, "brand-new", b, NULL), -1);
		assert_int_equal(vault_remove(f->v, "other"), -1);
		const char *names[] = {"keep", "other"};
		struct secbuf *vals[2] = {NULL, NULL};
		assert_int_equal(vault_read(f->v, names, 2, "reveal", vals), -1);
		assert_null(vals[0]);
		assert_null(vals[1]);
		latch_error_quiet(false);
		secbuf_free(b);
		want_value(f, "keep", "original value");
		want_value(f, "other", "other value");
		assert_int_equal(afx_int(f->db, "SELECT version FROM secrets WHERE name = 'keep'"), 1);
		assert_int_equal(afx_int(f->db, "SELECT count(*) FROM secrets WHERE name = 'brand-new'"), 0);
		afx_expect_seqs(f->db, N);
		afx_expect_ok(f, NULL, N, "after failed hooks");
	}
	f->hook.mode = AFX_HOOK_RECORD;
	set_str(f, "keep", "now recorded");
	afx_expect_seqs(f->db, N + 1);
	afx_expect_ok(f, NULL, N + 1, "after a recorded change");
}

static void invalid_events_refused(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	struct audit_secret_ref good = {"prod-token", 1}, bad_name = {"a b", 2}, quote = {"a\"b", 3}, empty = {"", 4};
	struct audit_secret_ref many[AUDIT_MAX_SECRETS + 1];
	for (size_t i = 0; i < AUDIT_MAX_SECRETS + 1; i++)
		many[i] = good;
	char long_event[40];
	memset(long_event, 'e', 33);
	long_event[33] = '\0';
	char long_grant[70];
	memset(long_grant, 'g', 65);
	long_grant[65] = '\0';
	struct audit_event base = {.event = "release", .self = true};
	struct audit_event cases[12];
	for (size_t i = 0; i < 12; i++)
		cases[i] = base;
	cases[0].event = NULL;
	cases[1].event = "";
	cases[2].event = "bad event";
	cases[3].event = "a\"},\"x\":\"";
	cases[4].event = long_event;
	cases[5].grant_id = "g 1";
	cases[6].grant_id = long_grant;
	cases[7].grant_id = "";
	cases[8].secrets = &bad_name, cases[8].n_secrets = 1;
	cases[9].secrets = &quote, cases[9].n_secrets = 1;
	cases[10].secrets = &empty, cases[10].n_secrets = 1;
	cases[11].secrets = many, cases[11].n_secrets = AUDIT_MAX_SECRETS + 1;
	afx_exec(f->db, "BEGIN IMMEDIATE");
	latch_error_quiet(true);
	for (size_t i = 0; i < 12; i++) {
		int64_t seq = -1;
		if (audit_append(f->db, f->writer, f->verifier, &cases[i], &seq) != -1)
			fail_msg("invalid event %zu was appended as %lld", i, (long long)seq);
		assert_int_equal(afx_count(f->db), N);
	}
	latch_error_quiet(false);
	/* The largest valid event goes in. */
	struct audit_event ok = base;
	ok.secrets = many;
	ok.n_secrets = AUDIT_MAX_SECRETS;
	long_event[32] = '\0';
	long_grant[64] = '\0';
	ok.event = long_event;
	ok.grant_id = long_grant;
	int64_t seq = 0;
	assert_int_equal(audit_append(f->db, f->writer, f->verifier, &ok, &seq), 0);
	assert_int_equal(seq, N + 1);
	afx_exec(f->db, "COMMIT");
	afx_expect_ok(f, NULL, N + 1, "after refused events");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, afx_setup, afx_teardown)
	const struct CMUnitTest tests[] = {
		T(clean_log_verifies),
		T(every_byte_of_record_and_mac),
		T(record_and_mac_lengths),
		T(row_deleted),
		T(rows_swapped),
		T(rows_duplicated),
		T(row_forged),
		T(rows_from_another_vault),
		T(index_columns_altered),
		T(index_secret_time_altered),
		T(tail_truncated),
		T(truncated_then_appended),
		T(stale_state_replayed),
		T(audit_tables_emptied),
		T(file_rolled_back),
		T(checkpoint_of_another_log),
		T(wrong_keys),
		T(sealed_blobs_damaged),
		T(append_read_only_connection),
		T(append_after_state_deleted),
		T(append_without_verifier_cannot_start_log),
		T(hook_failure_changes_nothing),
		T(invalid_events_refused),
	};
#undef T
	if (sodium_init() < 0)
		return 1;
	umask(077); /* as harden_process() does in latch's main */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
