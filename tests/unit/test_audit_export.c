/* Unit tests: audit checkpoints, --since parsing, exports and queries, and
 * that no secret value reaches the log (docs/threat-model.md P4, P7; docs/audit.md).
 *
 * Checkpoints round-trip and malformed ones are refused. --since gives
 * exact UNIX times, checked against constants computed independently
 * (date -u -d ... +%s). An export verifies on its own with the verifier
 * key recovered from the passphrase, and edits to its lines are caught at
 * the right seq. A canary value set in the vault appears nowhere in the
 * database file, the export, a checkpoint or any record: not raw, not hex,
 * not base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "audit_fixture.h"

#define N 20

/* --- 9. checkpoints --------------------------------------------------------- */

static void checkpoint_round_trip(void **state)
{
	(void)state;
	const int64_t seqs[] = {1, 2, 20, 123456789012LL, INT64_MAX};
	for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
		struct audit_checkpoint a, b;
		randombytes_buf(&a, sizeof a);
		a.seq = seqs[i];
		memset(&b, 0, sizeof b);
		char text[512];
		assert_int_equal(audit_checkpoint_format(&a, text, sizeof text), 0);
		assert_int_equal(audit_checkpoint_parse(text, strlen(text), &b), 0);
		assert_memory_equal(a.vault_id, b.vault_id, sizeof a.vault_id);
		assert_memory_equal(a.log_id, b.log_id, AUDIT_LOG_ID_BYTES);
		assert_memory_equal(a.mac, b.mac, AUDIT_MAC_BYTES);
		assert_int_equal(a.seq, b.seq);
		/* One line of JSON with the documented fields, in lowercase hex. */
		assert_null(strchr(text, '\n'));
		json_error_t err;
		json_t *o = json_loads(text, 0, &err);
		assert_non_null(o);
		char hex[2 * AUDIT_MAC_BYTES + 1];
		sodium_bin2hex(hex, sizeof hex, a.vault_id, sizeof a.vault_id);
		assert_string_equal(json_string_value(json_object_get(o, "vault_id")), hex);
		sodium_bin2hex(hex, sizeof hex, a.log_id, AUDIT_LOG_ID_BYTES);
		assert_string_equal(json_string_value(json_object_get(o, "log_id")), hex);
		sodium_bin2hex(hex, sizeof hex, a.mac, AUDIT_MAC_BYTES);
		assert_string_equal(json_string_value(json_object_get(o, "mac")), hex);
		assert_int_equal(json_integer_value(json_object_get(o, "seq")), a.seq);
		json_decref(o);
		/* A checkpoint file ends with a newline. */
		size_t n = strlen(text);
		text[n] = '\n';
		text[n + 1] = '\0';
		memset(&b, 0, sizeof b);
		assert_int_equal(audit_checkpoint_parse(text, n + 1, &b), 0);
		assert_int_equal(b.seq, a.seq);
		/* Too small a buffer is refused, never cut short. */
		latch_error_quiet(true);
		assert_int_equal(audit_checkpoint_format(&a, text, n), -1);
		latch_error_quiet(false);
	}
}

/* The valid checkpoint text with key `key` set to the JSON `value`
 * (NULL: removed). */
static char *cp_with(const char *valid, const char *key, const char *value)
{
	json_error_t err;
	json_t *o = json_loads(valid, 0, &err);
	assert_non_null(o);
	if (value) {
		json_t *v = json_loads(value, JSON_DECODE_ANY, &err);
		if (!v)
			fail_msg("bad test value %s", value);
		json_object_set_new(o, key, v);
	} else {
		assert_int_equal(json_object_del(o, key), 0);
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	assert_non_null(s);
	return s;
}

static void refuse_cp(const char *text, size_t len, const char *what)
{
	struct audit_checkpoint out;
	memset(&out, 0, sizeof out);
	latch_error_quiet(true);
	int rc = audit_checkpoint_parse(text, len, &out);
	enum latch_status st = latch_last_status();
	latch_error_quiet(false);
	if (rc != -1)
		fail_msg("malformed checkpoint accepted (%s): %.*s", what, (int)len, text);
	assert_int_equal(st, LATCH_USAGE);
}

static void checkpoint_malformed(void **state)
{
	(void)state;
	struct audit_checkpoint a;
	randombytes_buf(&a, sizeof a);
	a.seq = 42;
	char valid[512];
	assert_int_equal(audit_checkpoint_format(&a, valid, sizeof valid), 0);
	struct audit_checkpoint ok;
	assert_int_equal(audit_checkpoint_parse(valid, strlen(valid), &ok), 0);

	static const char *const plain[] = {
		"", " ", "not json", "{", "[]", "null", "42", "\"latch\"", "{}", "{\"latch_audit_checkpoint\":1}",
	};
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
		refuse_cp(plain[i], strlen(plain[i]), plain[i]);

	/* Trailing garbage, a second object, a cut-off text. */
	char buf[1024];
	static const char *const tails[] = {"x", "{}", "]", ",", " 1", "\n{\"seq\":1}"};
	for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
		snprintf(buf, sizeof buf, "%s%s", valid, tails[i]);
		refuse_cp(buf, strlen(buf), "trailing garbage");
	}
	for (size_t cut = 1; cut < strlen(valid); cut += 9)
		refuse_cp(valid, strlen(valid) - cut, "cut short");

	/* Each field missing, of the wrong type, or out of range. */
	char hex16[33], hex32[65];
	memset(hex16, 'a', 32);
	hex16[32] = '\0';
	memset(hex32, 'b', 64);
	hex32[64] = '\0';
	struct {
		const char *key, *value;
	} fields[] = {
		{"latch_audit_checkpoint", NULL},
		{"latch_audit_checkpoint", "2"},
		{"latch_audit_checkpoint", "0"},
		{"latch_audit_checkpoint", "\"1\""},
		{"latch_audit_checkpoint", "true"},
		{"seq", NULL},
		{"seq", "0"},
		{"seq", "-1"},
		{"seq", "-9223372036854775807"},
		{"seq", "\"5\""},
		{"seq", "1.5"},
		{"seq", "5.0"},
		{"seq", "null"},
		{"seq", "true"},
		{"vault_id", NULL},
		{"vault_id", "\"\""},
		{"vault_id", "7"},
		{"vault_id", "\"zzaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},   /* bad hex, right length */
		{"vault_id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},    /* 31 digits */
		{"vault_id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},     /* 15 bytes */
		{"vault_id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""}, /* 17 bytes */
		{"vault_id", "\"aa:aa:aa:aa:aa:aa:aa:aa:aa:aa:aa\""},
		{"log_id", NULL},
		{"log_id", "\"\""},
		{"log_id", "[1]"},
		{"log_id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaag\""},
		{"log_id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},
		{"log_id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},
		{"log_id", "\" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},
		{"mac", NULL},
		{"mac", "\"\""},
		{"mac", "{}"},
		{"mac", "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbx\""},
		{"mac", "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\""},
		{"mac", "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\""},
	};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		char *t = cp_with(valid, fields[i].key, fields[i].value);
		refuse_cp(t, strlen(t), fields[i].key);
		free(t);
	}
	/* The replacement values themselves are well formed where they should
	 * be: the right lengths parse. */
	char v1[80], v2[80], v3[80];
	snprintf(v1, sizeof v1, "\"%s\"", hex16);
	snprintf(v2, sizeof v2, "\"%s\"", hex32);
	char *t = cp_with(valid, "vault_id", v1);
	char *t2 = cp_with(t, "log_id", v1);
	char *t3 = cp_with(t2, "mac", v2);
	snprintf(v3, sizeof v3, "%d", 1);
	char *t4 = cp_with(t3, "seq", v3);
	assert_int_equal(audit_checkpoint_parse(t4, strlen(t4), &ok), 0);
	assert_int_equal(ok.seq, 1);
	assert_int_equal(ok.vault_id[0], 0xaa);
	assert_int_equal(ok.mac[31], 0xbb);
	free(t);
	free(t2);
	free(t3);
	free(t4);
	/* An embedded NUL inside the given length. */
	size_t n = strlen(valid);
	memcpy(buf, valid, n + 1);
	buf[n / 2] = '\0';
	refuse_cp(buf, n, "embedded NUL");
}

/* --- 9. --since -------------------------------------------------------------- */

static void since_valid(void **state)
{
	(void)state;
	/* Expected values computed with `date -u -d <text> +%s`. */
	const int64_t now = 1795392000 + 54321;
	struct {
		const char *text;
		int64_t want;
	} cases[] = {
		{"90s", now - 90},
		{"30m", now - 1800},
		{"24h", now - 86400},
		{"7d", now - 604800},
		{"2w", now - 1209600},
		{"0s", now},
		{"1s", now - 1},
		{"1w", now - 604800},
		{"365d", now - 31536000},
		{"2026-11-23", 1795392000},
		{"2026-11-23T00:00:00Z", 1795392000},
		{"2026-11-23T15:00:00Z", 1795446000},
		{"1970-01-01", 0},
		{"1970-01-01T00:00:01Z", 1},
		{"2000-02-29", 951782400},
		{"2024-02-29T23:59:59Z", 1709251199},
		{"2026-12-31T23:59:59Z", 1798761599},
		{"2026-03-01T12:34:56Z", 1772368496},
		{"2038-01-19T03:14:08Z", 2147483648LL},
		{"2100-03-01", 4107542400LL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t out = -12345;
		int rc = audit_parse_since(cases[i].text, now, &out);
		if (rc != 0 || out != cases[i].want)
			fail_msg("'%s': rc %d, %lld (want %lld)", cases[i].text, rc, (long long)out,
				 (long long)cases[i].want);
	}
}

static void since_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"1x",
		"-5m",
		"+5m",
		"5",
		"m",
		"5 m",
		" 5m",
		"5m ",
		"5M",
		"1.5h",
		"0x10s",
		"1e3s",
		"25:00",
		"2026-02-30",
		"2026-02-29",
		"2100-02-29",
		"2026-13-01",
		"2026-00-10",
		"2026-11-00",
		"2026-11-31",
		"2026-11-32",
		"1969-12-31",
		"2026-1-05",
		"26-11-23",
		"2026/11/23",
		"2026-11-23T25:00:00Z",
		"2026-11-23T24:00:00Z",
		"2026-11-23T15:60:00Z",
		"2026-11-23T15:00:61Z",
		"2026-11-23T15:00:00",
		"2026-11-23T15:00Z",
		"2026-11-23 15:00:00Z",
		"2026-11-23t15:00:00Z",
		"2026-11-23T15:00:00+01:00",
		"2026-11-23T15:00:00.5Z",
		"2026-11-23Z",
		"2026-11-23T",
		"99999999999w",
		"999999999999",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t out = -12345;
		latch_error_quiet(true);
		int rc = audit_parse_since(bad[i], 1795392000, &out);
		enum latch_status st = latch_last_status();
		latch_error_quiet(false);
		if (rc != -1)
			fail_msg("'%s' accepted as %lld", bad[i], (long long)out);
		assert_int_equal(st, LATCH_USAGE);
	}
}

/* --- 10. exports ------------------------------------------------------------- */

struct opener {
	const char *pass;
	int calls;
	const struct secbuf *expect; /* the key it must recover */
	bool mismatch;
};

/* Recovers the verifier key from the export's header with a passphrase,
 * as `latch audit verify --export` does. */
static int import_opener(const char *json, size_t len, void *ctx, struct secbuf **key_out)
{
	struct opener *o = ctx;
	o->calls++;
	struct secbuf *pass = afx_secstr(o->pass);
	if (!pass)
		return -1;
	int rc = vault_import_key(json, len, pass, "audit-verifier", key_out);
	secbuf_free(pass);
	if (rc == 0 && o->expect &&
	    ((*key_out)->len != o->expect->len || memcmp((*key_out)->data, o->expect->data, o->expect->len) != 0))
		o->mismatch = true;
	return rc;
}

/* For the many-edit loops: hands out the known verifier key (no Argon2id
 * per run). */
static int copy_opener(const char *json, size_t len, void *ctx, struct secbuf **key_out)
{
	(void)json;
	(void)len;
	const struct secbuf *k = ctx;
	*key_out = afx_secbuf(k->data, k->len);
	return *key_out ? 0 : -1;
}

static char *export_text(struct afx *f, size_t *len)
{
	char *vjson = NULL;
	assert_int_equal(vault_export_key(f->v, "audit-verifier", &vjson), 0);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	assert_int_equal(audit_export(f->db, vjson, tmp), 0);
	free(vjson);
	assert_int_equal(fflush(tmp), 0);
	long n = ftell(tmp);
	assert_true(n > 0);
	rewind(tmp);
	char *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, tmp), (size_t)n);
	buf[n] = '\0';
	fclose(tmp);
	*len = (size_t)n;
	return buf;
}

static int verify_text(const char *text, size_t len, audit_key_opener fn, void *ctx, const struct audit_checkpoint *cp,
		       struct audit_report *r)
{
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	if (len)
		assert_int_equal(fwrite(text, 1, len, tmp), len);
	rewind(tmp);
	latch_error_quiet(true);
	int rc = audit_verify_export(tmp, fn, ctx, cp, r);
	latch_error_quiet(false);
	fclose(tmp);
	return rc;
}

/* An export as an array of lines (without their newlines). */
struct lines {
	char *v[64];
	size_t n;
};

static void split(const char *text, struct lines *l)
{
	l->n = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl); /* every line ends with a newline */
		assert_true(l->n < 64);
		l->v[l->n++] = strndup(p, (size_t)(nl - p));
		p = nl + 1;
	}
}

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

/* Join lines (skipping `skip`, SIZE_MAX for none) with a newline after
 * each. */
static char *join(const struct lines *l, size_t skip, size_t *len)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		n += strlen(l->v[i]) + 1;
	char *out = malloc(n + 1);
	assert_non_null(out);
	size_t at = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (i == skip)
			continue;
		size_t k = strlen(l->v[i]);
		memcpy(out + at, l->v[i], k);
		out[at + k] = '\n';
		at += k + 1;
	}
	out[at] = '\0';
	*len = at;
	return out;
}

static void replace_line(struct lines *l, size_t i, char *text)
{
	free(l->v[i]);
	l->v[i] = text;
}

/* Line `i` with its record's byte `pos` flipped (^ mask), re-encoded as
 * JSON so the line stays well formed. */
static char *line_record_flipped(const char *line, size_t pos, unsigned char mask, size_t *rec_len)
{
	json_error_t err;
	json_t *o = json_loads(line, 0, &err);
	assert_non_null(o);
	json_t *rec = json_object_get(o, "record");
	assert_true(json_is_string(rec));
	size_t n = json_string_length(rec);
	*rec_len = n;
	char *buf = malloc(n + 1);
	assert_non_null(buf);
	memcpy(buf, json_string_value(rec), n);
	if (pos < n)
		buf[pos] = (char)(buf[pos] ^ mask);
	json_t *s = json_stringn(buf, n);
	assert_non_null(s);
	json_object_set_new(o, "record", s);
	char *out = json_dumps(o, JSON_COMPACT);
	assert_non_null(out);
	json_decref(o);
	free(buf);
	return out;
}

/* Line with the MAC's hex digit `pos` replaced by `c`. */
static char *line_mac_digit(const char *line, size_t pos, char c)
{
	char *out = strdup(line);
	assert_non_null(out);
	char *m = strstr(out, "\"mac\":\"");
	assert_non_null(m);
	m += 7;
	assert_true(pos < 2 * AUDIT_MAC_BYTES);
	m[pos] = c;
	return out;
}

static void expect_export(const struct lines *l, size_t skip, audit_key_opener fn, void *ctx,
			  const struct audit_checkpoint *cp, enum audit_verdict want, int64_t first_bad,
			  const char *what)
{
	size_t len;
	char *text = join(l, skip, &len);
	struct audit_report r;
	int rc = verify_text(text, len, fn, ctx, cp, &r);
	free(text);
	if (rc != 0 || r.verdict != want || r.first_bad != first_bad)
		fail_msg("%s: rc %d, verdict %s (want %s), first_bad %lld (want %lld): %s", what, rc,
			 afx_verdict_name(r.verdict), afx_verdict_name(want), (long long)r.first_bad,
			 (long long)first_bad, r.reason);
}

static void export_verifies(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	size_t len;
	char *text = export_text(f, &len);
	struct opener op = {AFX_PASS, 0, f->verifier, false};
	struct audit_report r;
	assert_int_equal(verify_text(text, len, import_opener, &op, NULL, &r), 0);
	if (r.verdict != AUDIT_OK)
		fail_msg("clean export: %s: %s", afx_verdict_name(r.verdict), r.reason);
	assert_int_equal(r.records, N);
	assert_int_equal(op.calls, 1);
	assert_false(op.mismatch);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	assert_true(afx_cp_equal(&cp, &r.head));
	assert_int_equal(verify_text(text, len, import_opener, &op, &cp, &r), 0);
	assert_int_equal(r.verdict, AUDIT_OK);
	assert_int_equal(r.records, N);

	/* The shape: a header, then one line per record with its exact bytes. */
	struct lines l;
	split(text, &l);
	assert_int_equal(l.n, N + 1);
	assert_non_null(strstr(l.v[0], "\"latch_audit_export\":1"));
	for (int64_t s = 1; s <= N; s++) {
		json_error_t err;
		json_t *o = json_loads(l.v[s], 0, &err);
		assert_non_null(o);
		assert_int_equal(json_integer_value(json_object_get(o, "seq")), s);
		size_t rlen;
		unsigned char *rec = afx_blob(f->db, "record", s, &rlen);
		json_t *jr = json_object_get(o, "record");
		assert_int_equal(json_string_length(jr), rlen);
		assert_memory_equal(json_string_value(jr), rec, rlen);
		free(rec);
		json_decref(o);
	}
	lines_free(&l);
	free(text);
}

static void export_tampered(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	size_t len;
	char *text = export_text(f, &len);
	struct lines l;
	split(text, &l);
	assert_int_equal(l.n, N + 1);
	struct opener op = {AFX_PASS, 0, f->verifier, false};
	const size_t s = 10, none = SIZE_MAX;
	char *orig = strdup(l.v[s]);
	assert_non_null(orig);

	/* With the passphrase opener: one of each kind of edit. */
	size_t rec_len;
	replace_line(&l, s, line_record_flipped(orig, 40, 0x01, &rec_len));
	expect_export(&l, none, import_opener, &op, NULL, AUDIT_TAMPERED, 10, "record byte flipped");
	replace_line(&l, s, line_mac_digit(orig, 5, orig[strstr(orig, "\"mac\":\"") - orig + 12] == '0' ? '1' : '0'));
	expect_export(&l, none, import_opener, &op, NULL, AUDIT_TAMPERED, 10, "MAC digit changed");
	replace_line(&l, s, strdup(orig));
	expect_export(&l, s, import_opener, &op, NULL, AUDIT_TAMPERED, 10, "line 10 deleted");
	char *tmp = l.v[s];
	l.v[s] = l.v[s + 1];
	l.v[s + 1] = tmp;
	expect_export(&l, none, import_opener, &op, NULL, AUDIT_TAMPERED, 10, "lines 10 and 11 swapped");
	l.v[s + 1] = l.v[s];
	l.v[s] = tmp;
	expect_export(&l, N, import_opener, &op, &cp, AUDIT_TAMPERED, N, "last line deleted, with a checkpoint");
	expect_export(&l, none, import_opener, &op, &cp, AUDIT_OK, 0, "restored");
	assert_false(op.mismatch);

	/* Every byte of record 10 and every digit of its MAC. */
	for (size_t pos = 0; pos < rec_len; pos++) {
		size_t n;
		replace_line(&l, s, line_record_flipped(orig, pos, 0x01, &n));
		struct audit_report r;
		size_t tlen;
		char *t = join(&l, none, &tlen);
		int rc = verify_text(t, tlen, copy_opener, f->verifier, NULL, &r);
		free(t);
		if (rc != 0 || r.verdict != AUDIT_TAMPERED || r.first_bad != 10)
			fail_msg("record byte %zu flipped: rc %d %s first_bad %lld: %s", pos, rc,
				 afx_verdict_name(r.verdict), (long long)r.first_bad, r.reason);
	}
	const char *mac_at = strstr(orig, "\"mac\":\"") + 7;
	for (size_t pos = 0; pos < 2 * AUDIT_MAC_BYTES; pos++) {
		char c = mac_at[pos] == 'f' ? 'e' : 'f';
		replace_line(&l, s, line_mac_digit(orig, pos, c));
		expect_export(&l, none, copy_opener, f->verifier, NULL, AUDIT_TAMPERED, 10, "MAC digit");
		replace_line(&l, s, line_mac_digit(orig, pos, 'x'));
		expect_export(&l, none, copy_opener, f->verifier, NULL, AUDIT_TAMPERED, 10, "MAC digit not hex");
	}
	replace_line(&l, s, strdup(orig));

	/* More structural edits. */
	struct lines m;
	m.n = 0;
	/* Duplicated line: record 10 twice, the second where 11 belongs. */
	for (size_t i = 0; i <= (size_t)N; i++) {
		m.v[m.n++] = strdup(l.v[i]);
		if (i == s)
			m.v[m.n++] = strdup(l.v[i]);
	}
	expect_export(&m, none, copy_opener, f->verifier, NULL, AUDIT_TAMPERED, 11, "line 10 duplicated");
	lines_free(&m);
	/* The last record moved to the front. */
	m.v[m.n++] = strdup(l.v[0]);
	m.v[m.n++] = strdup(l.v[N]);
	for (size_t i = 1; i < (size_t)N; i++)
		m.v[m.n++] = strdup(l.v[i]);
	expect_export(&m, none, copy_opener, f->verifier, NULL, AUDIT_TAMPERED, 1, "last line moved first");
	lines_free(&m);
	expect_export(&l, 1, copy_opener, f->verifier, NULL, AUDIT_TAMPERED, 1, "first record line deleted");
	/* Garbage in place of a line; a line's seq renumbered. */
	replace_line(&l, s, strdup("not json at all"));
	expect_export(&l, none, copy_opener, f->verifier, NULL, AUDIT_TAMPERED, 10, "garbage line");
	replace_line(&l, s, strdup("{\"seq\":10}"));
	expect_export(&l, none, copy_opener, f->verifier, NULL, AUDIT_TAMPERED, 10, "line without record");
	char *renum = strdup(orig);
	char *sq = strstr(renum, "\"seq\":10");
	assert_non_null(sq);
	sq[7] = '1'; /* "seq":11 */
	replace_line(&l, s, renum);
	expect_export(&l, none, copy_opener, f->verifier, NULL, AUDIT_TAMPERED, 10, "seq renumbered");
	replace_line(&l, s, strdup(orig));
	expect_export(&l, none, copy_opener, f->verifier, &cp, AUDIT_OK, 0, "restored");

	/* The header: another log id, or a damaged sealed first key. */
	char *hdr = strdup(l.v[0]);
	char *id = strstr(l.v[0], "\"log_id\":\"");
	assert_non_null(id);
	id[10] = id[10] == '0' ? '1' : '0';
	expect_export(&l, none, copy_opener, f->verifier, NULL, AUDIT_UNVERIFIABLE, 0, "header log id changed");
	expect_export(&l, none, copy_opener, f->verifier, &cp, AUDIT_TAMPERED, 1, "header log id changed, checkpoint");
	replace_line(&l, 0, strdup(hdr));
	char *org = strstr(l.v[0], "\"origin\":\"");
	assert_non_null(org);
	org[30] = org[30] == '0' ? '1' : '0';
	expect_export(&l, none, copy_opener, f->verifier, NULL, AUDIT_UNVERIFIABLE, 0, "header origin changed");
	replace_line(&l, 0, hdr);

	free(orig);
	lines_free(&l);
	free(text);
}

static void export_wrong_passphrase_or_input(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	size_t len;
	char *text = export_text(f, &len);
	struct opener op = {"not the passphrase, sorry", 0, NULL, false};
	struct audit_report r;
	latch_error_quiet(true);
	int rc = verify_text(text, len, import_opener, &op, NULL, &r);
	enum latch_status st = latch_last_status();
	latch_error_quiet(false);
	assert_int_equal(rc, -1);
	assert_int_equal(st, LATCH_DENIED);
	assert_int_equal(op.calls, 1);
	/* Not an export at all. */
	static const char *const junk[] = {"", "\n", "hello\n", "{\"latch_audit_export\":2}\n", "[]\n"};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		latch_error_quiet(true);
		rc = verify_text(junk[i], strlen(junk[i]), copy_opener, f->verifier, NULL, &r);
		latch_error_quiet(false);
		assert_int_equal(rc, -1);
	}
	free(text);
}

/* --- queries ----------------------------------------------------------------- */

struct hits {
	int64_t seqs[64];
	size_t n;
	int stop_after;
};

static int hits_fn(const struct audit_row *r, void *ctx)
{
	struct hits *h = ctx;
	char want[32];
	snprintf(want, sizeof want, "{\"seq\":%lld,", (long long)r->seq);
	assert_true(r->len > strlen(want) && memcmp(r->record, want, strlen(want)) == 0);
	if (h->n < 64)
		h->seqs[h->n++] = r->seq;
	return h->stop_after && (int)h->n == h->stop_after ? 7 : 0;
}

static void query_filters(void **state)
{
	struct afx *f = *state;
	afx_fill(f, N);
	struct hits h = {{0}, 0, 0};
	struct audit_filter all = {0};
	assert_int_equal(audit_query(f->db, &all, hits_fn, &h), 0);
	assert_int_equal(h.n, N);
	for (size_t i = 0; i < h.n; i++)
		assert_int_equal(h.seqs[i], (int64_t)i + 1);
	/* Record k = seq - 2 names team/s<k> when k % 3 >= 1. */
	h.n = 0;
	struct audit_filter bysecret = {.secret = "team/s7"};
	assert_int_equal(audit_query(f->db, &bysecret, hits_fn, &h), 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.seqs[0], 9);
	h.n = 0;
	struct audit_filter bygrant = {.grant_id = "g-7"};
	assert_int_equal(audit_query(f->db, &bygrant, hits_fn, &h), 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.seqs[0], 9);
	h.n = 0;
	struct audit_filter byevent = {.event = "deny"}; /* k % 4 == 2 */
	assert_int_equal(audit_query(f->db, &byevent, hits_fn, &h), 0);
	assert_int_equal(h.n, 5);
	for (size_t i = 0; i < h.n; i++)
		assert_int_equal((h.seqs[i] - 2) % 4, 2);
	h.n = 0;
	struct audit_filter future = {.since = (int64_t)time(NULL) + 3600};
	assert_int_equal(audit_query(f->db, &future, hits_fn, &h), 0);
	assert_int_equal(h.n, 0);
	struct audit_filter both = {.secret = "team/s7", .event = "deny"};
	assert_int_equal(audit_query(f->db, &both, hits_fn, &h), 0);
	assert_int_equal(h.n, 0);
	/* The callback's non-zero return stops the walk and is returned. */
	struct hits stop = {{0}, 0, 3};
	assert_int_equal(audit_query(f->db, &all, hits_fn, &stop), 7);
	assert_int_equal(stop.n, 3);
}

/* --- 11. no value in the log ------------------------------------------------- */

#define CANARY "CANARY-d41d8cd98f00b204e980-0998ecf8427e-Zq7vX"

struct needles {
	char *v[8];
	size_t len[8];
	const char *what[8];
	size_t n;
};

static void add_needle(struct needles *nd, char *s, const char *what)
{
	nd->v[nd->n] = s;
	nd->len[nd->n] = strlen(s);
	nd->what[nd->n] = what;
	nd->n++;
}

/* The canary raw, in hex (both cases) and in the four base64 variants. */
static void canary_forms(struct needles *nd, const char *value)
{
	const unsigned char *b = (const unsigned char *)value;
	size_t n = strlen(value);
	nd->n = 0;
	add_needle(nd, strdup(value), "raw");
	char *hex = malloc(2 * n + 1);
	assert_non_null(hex);
	sodium_bin2hex(hex, 2 * n + 1, b, n);
	add_needle(nd, hex, "hex");
	char *up = strdup(hex);
	assert_non_null(up);
	for (char *p = up; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	add_needle(nd, up, "HEX");
	static const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
				       sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
	static const char *const vnames[] = {"base64", "base64 no padding", "base64url", "base64url no padding"};
	for (size_t i = 0; i < 4; i++) {
		size_t cap = sodium_base64_encoded_len(n, variants[i]);
		char *s = malloc(cap);
		assert_non_null(s);
		sodium_bin2base64(s, cap, b, n, variants[i]);
		add_needle(nd, s, vnames[i]);
	}
}

static void needles_free(struct needles *nd)
{
	for (size_t i = 0; i < nd->n; i++)
		free(nd->v[i]);
	nd->n = 0;
}

static void expect_absent(const struct needles *nd, const void *hay, size_t len, const char *where)
{
	for (size_t i = 0; i < nd->n; i++) {
		size_t c = afx_occurrences(hay, len, nd->v[i], nd->len[i]);
		if (c != 0)
			fail_msg("the canary (%s) appears %zu times in %s", nd->what[i], c, where);
	}
}

struct rec_scan {
	const struct needles *nd;
	int records;
	int naming; /* records that name the canary's secret */
	int hashed; /* records with an argv hash */
};

static int scan_fn(const struct audit_row *r, void *ctx)
{
	const char *record = r->record;
	size_t len = r->len;
	struct rec_scan *s = ctx;
	s->records++;
	expect_absent(s->nd, record, len, "a record");
	if (memmem(record, len, "\"canary-name\"", 13))
		s->naming++;
	if (memmem(record, len, "\"argv_hash\":\"", 13))
		s->hashed++;
	return 0;
}

static void canary_never_logged(void **state)
{
	struct afx *f = *state;
	/* The CLI records argv only as a keyed hash; give it one holding the
	 * value, as a careless `latch set NAME --value V` would. */
	static char *const argv[] = {"latch", "set", "canary-name", "--value", CANARY};
	f->hook.argv = argv;
	f->hook.argc = 5;
	struct secbuf *v = afx_secstr(CANARY);
	assert_int_equal(vault_set(f->v, "canary-name", v, NULL), 0);
	assert_int_equal(vault_set(f->v, "canary-name", v, NULL), 0);
	const char *names[] = {"canary-name"};
	struct secbuf *out[1] = {NULL};
	assert_int_equal(vault_read(f->v, names, 1, "reveal", out), 0);
	assert_int_equal(out[0]->len, strlen(CANARY));
	assert_memory_equal(out[0]->data, CANARY, out[0]->len);
	secbuf_free(out[0]);
	secbuf_free(v);
	f->hook.argv = NULL;
	f->hook.argc = 0;
	afx_append(f, 5);
	const int64_t n = 1 + 3 + 5;
	afx_expect_ok(f, NULL, n, "the canary's log");

	struct needles nd;
	canary_forms(&nd, CANARY);
	/* Every record. */
	struct rec_scan scan = {&nd, 0, 0, 0};
	struct audit_filter all = {0};
	assert_int_equal(audit_query(f->db, &all, scan_fn, &scan), 0);
	assert_int_equal(scan.records, n);
	assert_int_equal(scan.naming, 3); /* set, set, reveal: the search works */
	assert_true(scan.hashed >= 3);
	/* The export. */
	size_t elen;
	char *exp = export_text(f, &elen);
	expect_absent(&nd, exp, elen, "the export");
	assert_true(afx_occurrences(exp, elen, "canary-name", 11) >= 3);
	free(exp);
	/* A checkpoint. */
	struct audit_checkpoint cp;
	afx_head(f, &cp);
	struct vault_info info;
	assert_int_equal(vault_info(f->v, &info), 0);
	size_t got = 0;
	assert_int_equal(sodium_hex2bin(cp.vault_id, sizeof cp.vault_id, info.vault_id, 32, NULL, &got, NULL), 0);
	char line[512];
	assert_int_equal(audit_checkpoint_format(&cp, line, sizeof line), 0);
	expect_absent(&nd, line, strlen(line), "a checkpoint");
	/* The database file, with no transaction open (so no journal). */
	char journal[PATH_MAX + 16];
	snprintf(journal, sizeof journal, "%s-journal", f->path);
	assert_int_equal(access(journal, F_OK), -1);
	size_t dlen;
	unsigned char *db = afx_read_file(f->path, &dlen);
	expect_absent(&nd, db, dlen, "the vault file");
	assert_true(afx_occurrences(db, dlen, "canary-name", 11) >= 1);
	free(db);
	needles_free(&nd);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, afx_setup, afx_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(checkpoint_round_trip),
		cmocka_unit_test(checkpoint_malformed),
		cmocka_unit_test(since_valid),
		cmocka_unit_test(since_invalid),
		T(export_verifies),
		T(export_tampered),
		T(export_wrong_passphrase_or_input),
		T(query_filters),
		T(canary_never_logged),
	};
#undef T
	if (sodium_init() < 0)
		return 1;
	umask(077); /* as harden_process() does in latch's main */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
