/* Fuzz target: audit_verify_export over an untrusted export file.
 *
 * The input is read as a FILE (fmemopen over exactly its bytes). The key
 * opener hands out a fixed 32-byte verifier key (FIXED_KEY below): no
 * passphrase, no KDF, so thousands of inputs a second. The seeds in
 * tests/fuzz/corpus/fuzz_export are real exports whose sealed first key
 * ("origin") was sealed again under FIXED_KEY, so they verify, and the
 * mutator works on real records, MACs and headers. The verdict may be
 * anything, but:
 *   - nothing crashes, reads out of bounds or leaks (heap: LeakSanitizer;
 *     secure buffers: secmem.h);
 *   - the call returns 0 or -1, and a report given (0) is consistent: OK
 *     has first_bad 0 and head.seq == records; TAMPERED has first_bad ==
 *     records + 1; UNVERIFIABLE has neither; the reason is one non-empty
 *     NUL-terminated line;
 *   - the opener is called at most once, with its JSON text NUL-terminated
 *     at `len` and parseable; no verdict is given without it;
 *   - when the opener fails, the call fails (-1) and nothing leaks;
 *   - an export that verifies OK verifies OK again against a checkpoint of
 *     its own head (same records, same head), and is TAMPERED against that
 *     checkpoint with its MAC or log id changed, or with the next seq.
 *
 * Self-check, once per process (at the first input): a real vault is made
 * in a temporary directory with vault_create_recorded and a hook like
 * cli/record.c's, unlocked, given three vault_set calls, and exported with
 * audit_export and vault_export_key("audit-verifier"). That export must
 * verify AUDIT_OK with the real verifier key (vault_key), with and without
 * a checkpoint from audit_head, and be UNVERIFIABLE under FIXED_KEY. Then
 * its origin is sealed again under FIXED_KEY and it and the damaged
 * variants in `variants[]` must get exactly their expected verdicts.
 * With LATCH_FUZZ_EXPORT_SEEDS=DIR the variants are also written to DIR
 * (how the checked-in seeds were made):
 *
 *   make build/fuzz-replay/fuzz_export
 *   LATCH_FUZZ_EXPORT_SEEDS=tests/fuzz/corpus/fuzz_export build/fuzz-replay/fuzz_export /dev/null
 */
#include "fuzz.h"

#include "../../audit/audit.h"
#include "../../vault/vault.h"
#include "secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Test strings, not secrets. */
#define FIXED_KEY "fuzz-export-fixed-verifier-key!!"
#define FUZZ_PASSPHRASE "fuzz-export-passphrase"
_Static_assert(sizeof FIXED_KEY - 1 == AUDIT_KEY_BYTES, "FIXED_KEY is one audit key");

/* The sealed first key's format, as audit/log.c writes it: XChaCha20-
 * Poly1305 with associated data "latch-audit-origin-v1\0" || log id. */
static const char ORIGIN_LABEL[] = "latch-audit-origin-v1";
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define ORIGIN_BLOB (NONCE_BYTES + AUDIT_KEY_BYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES)

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_export: %s\n", what);
	abort();
}

/* ---- the key opener ---- */

struct opener {
	const unsigned char *key; /* AUDIT_KEY_BYTES */
	bool refuse;              /* fail without a key */
	int calls;
};

static int open_key(const char *json, size_t len, void *ctx, struct secbuf **out)
{
	struct opener *o = ctx;
	o->calls++;
	if (!json || strlen(json) != len)
		fail("the opener got text that is not NUL-terminated at len");
	json_error_t err;
	json_t *j = json_loadb(json, len, 0, &err);
	if (!j)
		fail("the opener got text that is not JSON");
	json_decref(j);
	if (o->refuse)
		return latch_error(LATCH_DENIED, "fuzz: the opener refuses");
	struct secbuf *k = secbuf_new(AUDIT_KEY_BYTES);
	if (!k)
		fail("cannot allocate a key");
	memcpy(k->data, o->key, AUDIT_KEY_BYTES);
	k->len = AUDIT_KEY_BYTES;
	*out = k;
	return 0;
}

/* One verification of `data` as a file. */
static int verify(const void *data, size_t size, struct opener *o, const struct audit_checkpoint *cp,
		  struct audit_report *r)
{
	static char empty[1];
	FILE *in = fmemopen(size ? (void *)data : empty, size, "r");
	if (!in)
		fail("fmemopen failed");
	memset(r, 0x5a, sizeof *r); /* the call must set every field */
	int rc = audit_verify_export(in, open_key, o, cp, r);
	fclose(in);
	return rc;
}

/* The invariants every result must meet. */
static void check_report(int rc, const struct audit_report *r, const struct opener *o)
{
	if (o->calls > 1)
		fail("the opener was called more than once");
	if (rc == -1) {
		enum latch_status s = latch_last_status();
		if (s != LATCH_USAGE && s != LATCH_OPERR && s != LATCH_DENIED)
			fail("a failure without a failure status");
		return;
	}
	if (rc != 0)
		fail("audit_verify_export returned neither 0 nor -1");
	if (o->calls != 1)
		fail("a verdict without opening the verifier key");
	if (!memchr(r->reason, '\0', sizeof r->reason) || !r->reason[0] || strchr(r->reason, '\n'))
		fail("the reason is not one non-empty line");
	if (r->records < 0)
		fail("a negative record count");
	switch (r->verdict) {
	case AUDIT_OK:
		if (r->first_bad != 0 || r->head.seq != r->records)
			fail("OK with a bad record or a head that is not the last record");
		break;
	case AUDIT_TAMPERED:
		if (r->records == INT64_MAX || r->first_bad != r->records + 1)
			fail("TAMPERED does not name the record after the last good one");
		break;
	case AUDIT_UNVERIFIABLE:
		if (r->records != 0 || r->first_bad != 0)
			fail("UNVERIFIABLE after checking records");
		break;
	default:
		fail("an unknown verdict");
	}
}

static bool same_head(const struct audit_checkpoint *a, const struct audit_checkpoint *b)
{
	return memcmp(a->log_id, b->log_id, AUDIT_LOG_ID_BYTES) == 0 && a->seq == b->seq &&
	       memcmp(a->mac, b->mac, AUDIT_MAC_BYTES) == 0;
}

/* An export that verified OK (report `ok`) against checkpoints made from
 * its own head. */
static void check_checkpoints(const uint8_t *data, size_t size, const unsigned char *key,
			      const struct audit_report *ok)
{
	struct audit_report r;
	struct audit_checkpoint cp;
	if (ok->records >= 1) {
		cp = ok->head;
		struct opener o = {key, false, 0};
		int rc = verify(data, size, &o, &cp, &r);
		check_report(rc, &r, &o);
		if (rc != 0 || r.verdict != AUDIT_OK || r.records != ok->records || !same_head(&r.head, &ok->head))
			fail("an export is not OK against a checkpoint of its own head");

		cp.mac[0] ^= 1;
		o.calls = 0;
		rc = verify(data, size, &o, &cp, &r);
		check_report(rc, &r, &o);
		if (rc != 0 || r.verdict != AUDIT_TAMPERED || r.first_bad != cp.seq)
			fail("an export passed a checkpoint whose MAC differs");

		cp = ok->head;
		cp.log_id[AUDIT_LOG_ID_BYTES - 1] ^= 0x80;
		o.calls = 0;
		rc = verify(data, size, &o, &cp, &r);
		check_report(rc, &r, &o);
		if (rc != 0 || r.verdict != AUDIT_TAMPERED || r.first_bad != 1)
			fail("an export passed a checkpoint of another log");
	}
	if (ok->head.seq < INT64_MAX) {
		cp = ok->head;
		cp.seq++;
		struct opener o = {key, false, 0};
		int rc = verify(data, size, &o, &cp, &r);
		check_report(rc, &r, &o);
		if (rc != 0 || r.verdict != AUDIT_TAMPERED || r.first_bad != cp.seq || r.records != ok->records)
			fail("an export passed a checkpoint beyond its end");
	}
}

/* ---- the self-check: a real vault, a real export ---- */

static char dir[PATH_MAX];

static void remove_vault_dir(void)
{
	static const char *const names[] = {"vault.db", "vault.db-journal", "vault.db-wal", "vault.db-shm"};
	char p[PATH_MAX + 32];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			fail("cannot clean the temporary directory");
	}
	if (rmdir(dir) != 0)
		fail("cannot remove the temporary directory");
	dir[0] = '\0';
}

/* As cli/record.c's cli_record, with a fixed process description so the
 * records hold no path of the machine that made them. */
static int record_hook(struct vault *v, const struct vault_change *c, void *ctx)
{
	(void)ctx;
	struct audit_secret_ref refs[AUDIT_MAX_SECRETS];
	if (c->n > AUDIT_MAX_SECRETS)
		return -1;
	for (size_t i = 0; i < c->n; i++) {
		refs[i].name = c->names[i];
		refs[i].id = c->ids[i];
	}
	struct audit_event ev = {
		.event = c->event,
		.secrets = refs,
		.n_secrets = c->n,
		.version = c->version,
		.exit_status = -1,
		.redactions = -1,
		.pid = 4242,
		.uid = 1000,
		.exe = "/usr/local/bin/latch",
		.cwd = "/home/fuzz",
	};
	struct secbuf *writer = NULL, *verifier = NULL;
	int rc = -1;
	if (vault_key(v, "audit-writer", true, &writer) == 0 && vault_key(v, "audit-verifier", true, &verifier) == 0)
		rc = audit_append(vault_db(v), writer, verifier, &ev, NULL);
	secbuf_free(writer);
	secbuf_free(verifier);
	return rc;
}

static struct secbuf *secret_of(const char *s)
{
	size_t n = strlen(s);
	struct secbuf *b = secbuf_new(n);
	if (!b)
		fail("cannot allocate a secure buffer");
	memcpy(b->data, s, n);
	b->len = n;
	return b;
}

/* A real export (malloc'd text) of a vault with one init and three set
 * records; its verifier key in `key_out`, its head in `head`. */
static char *make_real_export(size_t *len, unsigned char key_out[AUDIT_KEY_BYTES], struct audit_checkpoint *head)
{
	umask(077);
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	if (snprintf(dir, sizeof dir, "%s/latch-fuzz-export-XXXXXX", tmp) >= (int)sizeof dir || !mkdtemp(dir))
		fail("cannot create a temporary directory");
	struct secbuf *pass = secret_of(FUZZ_PASSPHRASE);
	if (vault_create_recorded(dir, pass, VAULT_KDF_INTERACTIVE, record_hook, NULL) != 0)
		fail("vault_create_recorded failed");
	struct vault *v = NULL;
	if (vault_open(dir, &v) != 0)
		fail("vault_open failed");
	vault_on_change(v, record_hook, NULL);
	if (vault_unlock(v, pass) != 0)
		fail("vault_unlock failed");
	static const char *const sets[][2] = {
		{"api-key", "test-value-one"},
		{"team/db.password", "test-value-two"},
		{"api-key", "test-value-one-v2"},
	};
	for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
		struct secbuf *val = secret_of(sets[i][1]);
		if (vault_set(v, sets[i][0], val, NULL) != 0)
			fail("vault_set failed");
		secbuf_free(val);
	}
	char *vjson = NULL;
	struct secbuf *k = NULL;
	if (vault_export_key(v, "audit-verifier", &vjson) != 0)
		fail("vault_export_key failed");
	if (vault_key(v, "audit-verifier", false, &k) != 0 || k->len != AUDIT_KEY_BYTES)
		fail("vault_key(audit-verifier) failed");
	memcpy(key_out, k->data, AUDIT_KEY_BYTES);
	secbuf_free(k);
	char *text = NULL;
	FILE *out = open_memstream(&text, len);
	if (!out || audit_export(vault_db(v), vjson, out) != 0 || fclose(out) != 0)
		fail("audit_export failed");
	memset(head, 0, sizeof *head);
	if (audit_head(vault_db(v), head) != 0 || head->seq != 4)
		fail("audit_head failed or the log does not hold 4 records");
	free(vjson);
	vault_close(v);
	secbuf_free(pass);
	remove_vault_dir();
	return text;
}

/* ---- building the variants ---- */

/* An export as lines, each with its '\n' (the last may lack one). */
struct lines {
	char *l[16];
	size_t n;
};

static void split(const char *text, struct lines *out)
{
	out->n = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
		if (out->n == sizeof out->l / sizeof out->l[0])
			fail("the export has too many lines");
		if (!(out->l[out->n++] = strndup(p, n)))
			fail("out of memory");
		p += n;
	}
}

static void free_lines(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->l[i]);
	ls->n = 0;
}

/* A growing text buffer. */
struct text {
	char *p;
	size_t len;
};

static void add_bytes(struct text *t, const void *s, size_t n)
{
	char *p = realloc(t->p, t->len + n + 1);
	if (!p)
		fail("out of memory");
	memcpy(p + t->len, s, n);
	t->p = p;
	t->len += n;
	t->p[t->len] = '\0';
}

static void add(struct text *t, const char *s)
{
	add_bytes(t, s, strlen(s));
}

/* A record line rebuilt with one field replaced by `value` (raw JSON). */
static char *with_field(const char *line, const char *key, const char *value)
{
	json_error_t err;
	json_t *o = json_loads(line, 0, &err), *v = json_loads(value, JSON_DECODE_ANY, &err);
	if (!o || !v || json_object_set_new(o, key, v) != 0)
		fail("cannot rebuild a record line");
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		fail("cannot rebuild a record line");
	struct text t = {NULL, 0};
	add(&t, s);
	add(&t, "\n");
	free(s);
	return t.p;
}

/* A record line whose record text has one byte changed at `pos`. */
static char *record_flipped(const char *line, size_t pos)
{
	json_error_t err;
	json_t *o = json_loads(line, 0, &err);
	json_t *rec = json_object_get(o, "record");
	if (!json_is_string(rec) || json_string_length(rec) <= pos)
		fail("a record line without a record");
	char *r = strndup(json_string_value(rec), json_string_length(rec));
	if (!r)
		fail("out of memory");
	r[pos] = r[pos] == 'e' ? 'E' : 'e';
	json_object_set_new(o, "record", json_string(r));
	free(r);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	struct text t = {NULL, 0};
	add(&t, s);
	add(&t, "\n");
	free(s);
	return t.p;
}

/* The header with its "origin" (or "log_id") hex replaced. */
static char *header_with_hex(const char *header, const char *key, const char *hex)
{
	char pat[32];
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = strstr(header, pat);
	if (!p)
		fail("the header has no such field");
	p += strlen(pat);
	const char *end = strchr(p, '"');
	if (!end || (size_t)(end - p) != strlen(hex))
		fail("the header's field has another length");
	char *s = strdup(header);
	if (!s)
		fail("out of memory");
	memcpy(s + (p - header), hex, strlen(hex));
	return s;
}

static void hex_of(const char *header, const char *key, unsigned char *bin, size_t n)
{
	char pat[32];
	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = strstr(header, pat);
	size_t got = 0;
	if (!p || sodium_hex2bin(bin, n, p + strlen(pat), 2 * n, NULL, &got, NULL) != 0 || got != n)
		fail("cannot read a hex field of the header");
}

/* The header with the first key sealed again under `to` (it was under
 * `from`). */
static char *reseal_header(const char *header, const unsigned char *from, const unsigned char *to)
{
	unsigned char log_id[AUDIT_LOG_ID_BYTES], blob[ORIGIN_BLOB], ad[sizeof ORIGIN_LABEL + AUDIT_LOG_ID_BYTES];
	hex_of(header, "log_id", log_id, sizeof log_id);
	hex_of(header, "origin", blob, sizeof blob);
	memcpy(ad, ORIGIN_LABEL, sizeof ORIGIN_LABEL);
	memcpy(ad + sizeof ORIGIN_LABEL, log_id, AUDIT_LOG_ID_BYTES);
	struct secbuf *k1 = secbuf_new(AUDIT_KEY_BYTES);
	if (!k1 || crypto_aead_xchacha20poly1305_ietf_decrypt(k1->data, NULL, NULL, blob + NONCE_BYTES,
							       ORIGIN_BLOB - NONCE_BYTES, ad, sizeof ad, blob,
							       from) != 0)
		fail("the real verifier key does not open the export's origin");
	randombytes_buf(blob, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(blob + NONCE_BYTES, NULL, k1->data, AUDIT_KEY_BYTES, ad,
						   sizeof ad, NULL, blob, to);
	secbuf_free(k1);
	char hex[2 * ORIGIN_BLOB + 1];
	sodium_bin2hex(hex, sizeof hex, blob, sizeof blob);
	return header_with_hex(header, "origin", hex);
}

struct variant {
	const char *name;
	struct text t;
	int rc;                    /* expected return */
	enum audit_verdict verdict; /* when rc == 0 */
	int64_t first_bad, records;
};

static struct variant variants[40];
static size_t n_variants;

static struct text *variant(const char *name, int rc, enum audit_verdict verdict, int64_t first_bad,
			    int64_t records)
{
	if (n_variants == sizeof variants / sizeof variants[0])
		fail("too many variants");
	struct variant *v = &variants[n_variants++];
	v->name = name;
	v->t.p = NULL;
	v->t.len = 0;
	add(&v->t, ""); /* an empty text is still a buffer */
	v->rc = rc;
	v->verdict = verdict;
	v->first_bad = first_bad;
	v->records = records;
	return &v->t;
}

/* Header h, then the lines of `ls` named by `order` (1-based record
 * indexes into ls->l, 0 ends). */
static void add_records(struct text *t, const struct lines *ls, const int *order)
{
	for (; *order; order++)
		add(t, ls->l[*order]);
}

static void build_variants(const char *real, const unsigned char *real_key)
{
	struct lines ls;
	split(real, &ls);
	if (ls.n != 5)
		fail("the real export does not have a header and 4 record lines");
	const unsigned char *fixed = (const unsigned char *)FIXED_KEY;
	char *h = reseal_header(ls.l[0], real_key, fixed);
	static const int all[] = {1, 2, 3, 4, 0};
	struct text *t;

	/* Intact. */
	t = variant("export-4-records", 0, AUDIT_OK, 0, 4);
	add(t, h);
	add_records(t, &ls, all);
	t = variant("export-real-key", 0, AUDIT_UNVERIFIABLE, 0, 0); /* as exported: not under FIXED_KEY */
	add(t, real);
	t = variant("export-truncated-to-2", 0, AUDIT_OK, 0, 2); /* not detectable without a checkpoint */
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 0});
	t = variant("export-header-only", 0, AUDIT_OK, 0, 0);
	add(t, h);
	t = variant("export-header-no-newline", 0, AUDIT_OK, 0, 0);
	add_bytes(t, h, strlen(h) - 1);
	t = variant("export-no-final-newline", 0, AUDIT_OK, 0, 4);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 3, 0});
	add_bytes(t, ls.l[4], strlen(ls.l[4]) - 1);
	t = variant("export-crlf", 0, AUDIT_OK, 0, 4);
	for (size_t i = 0; i < ls.n; i++) {
		const char *line = i ? ls.l[i] : h;
		add_bytes(t, line, strlen(line) - 1);
		add(t, "\r\n");
	}
	t = variant("export-extra-fields", 0, AUDIT_OK, 0, 4);
	add(t, h);
	for (int i = 1; i <= 4; i++) {
		char *l = with_field(ls.l[i], "note", "{\"x\":[1,2.5,null,\"\\u00e9\"]}");
		add(t, l);
		free(l);
	}

	/* Damaged records. */
	t = variant("export-record-2-flipped", 0, AUDIT_TAMPERED, 2, 1);
	add(t, h);
	add(t, ls.l[1]);
	char *l = record_flipped(ls.l[2], 30);
	add(t, l);
	free(l);
	add_records(t, &ls, (const int[]){3, 4, 0});
	t = variant("export-record-3-missing", 0, AUDIT_TAMPERED, 3, 2);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 4, 0});
	t = variant("export-records-2-3-swapped", 0, AUDIT_TAMPERED, 2, 1);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 3, 2, 4, 0});
	t = variant("export-record-2-twice", 0, AUDIT_TAMPERED, 3, 2);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 2, 3, 4, 0});
	t = variant("export-mac-4-flipped", 0, AUDIT_TAMPERED, 4, 3);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 3, 0});
	l = with_field(ls.l[4], "mac", "\"00000000000000000000000000000000000000000000000000000000000000ff\"");
	add(t, l);
	free(l);
	t = variant("export-mac-short", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	l = with_field(ls.l[1], "mac", "\"abcd\"");
	add(t, l);
	free(l);
	t = variant("export-seq-huge", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	l = with_field(ls.l[1], "seq", "9223372036854775807");
	add(t, l);
	free(l);
	t = variant("export-seq-negative", 0, AUDIT_TAMPERED, 2, 1);
	add(t, h);
	add(t, ls.l[1]);
	l = with_field(ls.l[2], "seq", "-9223372036854775808");
	add(t, l);
	free(l);
	t = variant("export-seq-string", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	l = with_field(ls.l[1], "seq", "\"1\"");
	add(t, l);
	free(l);
	t = variant("export-record-not-string", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	l = with_field(ls.l[1], "record", "{\"seq\":1}");
	add(t, l);
	free(l);
	t = variant("export-record-escaped-nul", 0, AUDIT_TAMPERED, 1, 0);
	add(t, h);
	add(t, "{\"seq\":1,\"record\":\"{\\u0000}\",\"mac\":\"00000000000000000000000000000000000000000000000000000000000000ff\"}\n");
	t = variant("export-nul-in-line", 0, AUDIT_TAMPERED, 2, 1);
	add(t, h);
	add(t, ls.l[1]);
	add_bytes(t, ls.l[2], 10);
	add_bytes(t, "\0", 1);
	add(t, ls.l[2] + 11);
	t = variant("export-blank-line-at-end", 0, AUDIT_TAMPERED, 5, 4);
	add(t, h);
	add_records(t, &ls, all);
	add(t, "\n");
	t = variant("export-garbage-line", 0, AUDIT_TAMPERED, 3, 2);
	add(t, h);
	add_records(t, &ls, (const int[]){1, 2, 0});
	add(t, "not json at all\n");
	add_records(t, &ls, (const int[]){3, 4, 0});

	/* Damaged headers. */
	char hex[2 * ORIGIN_BLOB + 1];
	unsigned char blob[ORIGIN_BLOB];
	hex_of(h, "origin", blob, sizeof blob);
	blob[NONCE_BYTES] ^= 1;
	sodium_bin2hex(hex, sizeof hex, blob, sizeof blob);
	char *h2 = header_with_hex(h, "origin", hex);
	t = variant("export-origin-flipped", 0, AUDIT_UNVERIFIABLE, 0, 0);
	add(t, h2);
	add_records(t, &ls, all);
	free(h2);
	h2 = header_with_hex(h, "log_id", "00000000000000000000000000000000");
	t = variant("export-log-id-changed", 0, AUDIT_UNVERIFIABLE, 0, 0);
	add(t, h2);
	add_records(t, &ls, all);
	free(h2);
	hex[2 * (ORIGIN_BLOB - 1)] = '\0';
	h2 = strstr(h, "\"origin\":\"");
	struct text s = {NULL, 0};
	add_bytes(&s, h, (size_t)(h2 - h) + 10);
	add(&s, hex);
	add(&s, strchr(h2 + 10, '"'));
	t = variant("export-origin-short", -1, AUDIT_OK, 0, 0);
	add(t, s.p);
	add_records(t, &ls, all);
	free(s.p);
	t = variant("export-version-2", -1, AUDIT_OK, 0, 0);
	add(t, "{\"latch_audit_export\":2");
	add(t, h + strlen("{\"latch_audit_export\":1"));
	add_records(t, &ls, all);
	t = variant("export-verifier-string", -1, AUDIT_OK, 0, 0);
	s.p = NULL;
	s.len = 0;
	add_bytes(&s, h, (size_t)(strstr(h, "\"verifier\":") - h));
	add(&s, "\"verifier\":\"passphrase\"}\n");
	add(t, s.p);
	free(s.p);
	add_records(t, &ls, all);
	t = variant("export-records-only", -1, AUDIT_OK, 0, 0);
	add_records(t, &ls, all);
	t = variant("export-empty", -1, AUDIT_OK, 0, 0);
	t = variant("export-newline", -1, AUDIT_OK, 0, 0);
	add(t, "\n");
	t = variant("export-not-json", -1, AUDIT_OK, 0, 0);
	add(t, "latch audit export\nseq 1\n");
	t = variant("export-json-array", -1, AUDIT_OK, 0, 0);
	add(t, "[{\"latch_audit_export\":1}]\n");
	free(h);
	free_lines(&ls);
}

static void self_check(void)
{
	long before = secmem_in_use();
	unsigned char real_key[AUDIT_KEY_BYTES];
	struct audit_checkpoint head;
	size_t len = 0;
	char *real = make_real_export(&len, real_key, &head);

	/* The real export with the real verifier key. */
	struct audit_report r;
	struct opener o = {real_key, false, 0};
	int rc = verify(real, len, &o, NULL, &r);
	check_report(rc, &r, &o);
	if (rc != 0 || r.verdict != AUDIT_OK || r.records != 4 || !same_head(&r.head, &head))
		fail("self-check: a real export does not verify OK with its verifier key");
	o.calls = 0;
	rc = verify(real, len, &o, &head, &r);
	check_report(rc, &r, &o);
	if (rc != 0 || r.verdict != AUDIT_OK || r.records != 4)
		fail("self-check: a real export does not verify OK against audit_head's checkpoint");
	check_checkpoints((const uint8_t *)real, len, real_key, &r);

	build_variants(real, real_key);
	const char *seeds = getenv("LATCH_FUZZ_EXPORT_SEEDS");
	for (size_t i = 0; i < n_variants; i++) {
		struct variant *v = &variants[i];
		struct opener f = {(const unsigned char *)FIXED_KEY, false, 0};
		rc = verify(v->t.p, v->t.len, &f, NULL, &r);
		check_report(rc, &r, &f);
		if (rc != v->rc || (rc == 0 && (r.verdict != v->verdict || r.first_bad != v->first_bad ||
						r.records != v->records))) {
			fprintf(stderr, "fuzz_export: self-check: %s: rc %d verdict %d first_bad %lld records %lld (%s)\n",
				v->name, rc, (int)r.verdict, (long long)r.first_bad, (long long)r.records,
				rc == 0 ? r.reason : "failed");
			fail("self-check: a variant got another verdict than expected");
		}
		if (seeds) {
			char path[PATH_MAX];
			snprintf(path, sizeof path, "%s/%s", seeds, v->name);
			FILE *out = fopen(path, "we");
			if (!out || fwrite(v->t.p, 1, v->t.len, out) != v->t.len || fclose(out) != 0)
				fail("cannot write a seed");
		}
		free(v->t.p);
	}
	free(real);
	sodium_memzero(real_key, sizeof real_key);
	secmem_check(before, "the self-check");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("cannot initialise libsodium");
		latch_error_quiet(true);
		self_check();
		ready = true;
	}
	long before = secmem_in_use();
	const unsigned char *key = (const unsigned char *)FIXED_KEY;
	struct audit_report r;
	struct opener o = {key, false, 0};
	int rc = verify(data, size, &o, NULL, &r);
	check_report(rc, &r, &o);
	if (rc == 0 && r.verdict == AUDIT_OK)
		check_checkpoints(data, size, key, &r);
	if (o.calls) {
		/* The same input with an opener that fails: the call fails. */
		struct audit_report r2;
		struct opener refuse = {key, true, 0};
		if (verify(data, size, &refuse, NULL, &r2) != -1 || refuse.calls != 1 ||
		    latch_last_status() != LATCH_DENIED)
			fail("a failed opener did not fail the verification");
	}
	secmem_check(before, "verifying an export");
	return 0;
}
