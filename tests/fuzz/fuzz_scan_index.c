/* Fuzz target: the scan index's scanner (hooks/scan.c) and the entropy
 * estimate (hooks/index.c) on arbitrary bytes.
 *
 * Once per process, a vault is made in a private temporary directory
 * (removed at exit) with two fingerprinted values, and its index loaded as
 * `latch scan` loads it, locked. For each input:
 *   - hooks_entropy_bits of the input is between 0 and 8 bits a byte, and
 *     below HOOKS_WEAK_BITS for fewer than HOOKS_WEAK_BITS / 8 bytes;
 *   - hooks_index_scan of the input: every finding lies inside it, in
 *     order of offset, and is byte for byte a form of the value it names
 *     under the encoding it names (stage 3 does not pass anything else);
 *   - with at least 3 bytes: one form, chosen by the first byte, is
 *     inserted into the rest of the input at an offset the next two bytes
 *     choose, and the scan of that (a buffer of exactly its size) finds it
 *     there once, whatever surrounds it.
 *
 * Cost: one interactive Argon2id and about 40 index runs at start-up;
 * then one 4 MiB Argon2id run per window that passes the fast stages
 * (a planted form, and the forms that share its first 12 bytes). */
#include "fuzz.h"

#include "../../audit/audit.h"
#include "../../hooks/hooks.h"
#include "../../match/match.h"
#include "../../vault/vault.h"

#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A test passphrase and two test values (not secrets): one letters and
 * digits only, one with every character some encoding writes otherwise. */
#define FUZZ_PASSPHRASE "fuzz-scan-index-passphrase"
static const char *const names[2] = {"plain", "special"};
static const char *const values[2] = {"wSrgnMmhGdcmurO6bZhzLyxLIosAawpK", "Zq\"7v X2'mK9\\pL4$\xc3\xa9\n<&>r8Wc3N`T"};

static char root[PATH_MAX], vdir[PATH_MAX + 16];
static struct hooks_index *ix;
static struct match_form *forms[2];
static size_t n_forms[2];

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_scan_index: %s\n", what);
	abort();
}

static void cleanup(void)
{
	hooks_index_free(ix);
	for (int i = 0; i < 2; i++)
		match_forms_free(forms[i], n_forms[i]);
	if (!root[0])
		return;
	static const char *const files[] = {"vault.db", "vault.db-journal", "vault.db-wal", "vault.db-shm"};
	char p[PATH_MAX + 64];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", vdir, files[i]);
		unlink(p);
	}
	rmdir(vdir);
	rmdir(root);
}

static struct secbuf *sb(const char *s)
{
	struct secbuf *b = secbuf_new(strlen(s));
	if (!b)
		fail("out of memory");
	memcpy(b->data, s, strlen(s));
	b->len = strlen(s);
	return b;
}

static void setup(void)
{
	if (ix)
		return;
	if (sodium_init() < 0 || vault_add_tables(&audit_tables) != 0 || vault_add_tables(&hooks_tables) != 0)
		fail("cannot initialise");
	latch_error_quiet(true);
	umask(077);
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	if (snprintf(root, sizeof root, "%s/latch-fuzz-scan-XXXXXX", tmp) >= (int)sizeof root || !mkdtemp(root))
		fail("cannot create a temporary directory");
	atexit(cleanup);
	snprintf(vdir, sizeof vdir, "%s/vault", root);
	struct secbuf *pass = sb(FUZZ_PASSPHRASE);
	struct vault *v = NULL;
	if (vault_create(vdir, pass, VAULT_KDF_INTERACTIVE) != 0 || vault_open(vdir, &v) != 0 ||
	    vault_unlock(v, pass) != 0)
		fail("cannot create the vault");
	secbuf_free(pass);
	vault_on_value(v, hooks_index_value, NULL);
	for (int i = 0; i < 2; i++) {
		struct secbuf *b = sb(values[i]);
		if (vault_set(v, names[i], b, NULL) != 0)
			fail("cannot set a value");
		secbuf_free(b);
		if (match_forms((const unsigned char *)values[i], strlen(values[i]), HOOKS_WINDOW, &forms[i],
				&n_forms[i]) != 0 ||
		    n_forms[i] == 0)
			fail("cannot make the forms");
	}
	vault_close(v);
	/* Locked, as the hooks scan. */
	if (vault_open(vdir, &v) != 0 || hooks_index_load(v, &ix) != 0)
		fail("cannot load the index");
	vault_close(v);
	if (hooks_index_size(ix) != n_forms[0] + n_forms[1] || hooks_index_weak(ix) != 0 ||
	    hooks_index_unindexed(ix) != 0)
		fail("the index does not hold every form");
}

struct scan {
	const uint8_t *p;
	size_t n;
	size_t last;
	/* The planted form, if any: where, and how often it was found. */
	int want_value;
	const struct match_form *want;
	size_t want_off;
	size_t hits;
};

static int on_found(const struct hooks_finding *f, void *vctx)
{
	struct scan *s = vctx;
	if (f->offset > s->n || f->len > s->n - f->offset)
		fail("a finding past the end");
	if (f->offset < s->last)
		fail("findings out of order");
	s->last = f->offset;
	int val = -1;
	for (int i = 0; i < 2; i++)
		if (!strcmp(f->name, names[i]))
			val = i;
	if (val < 0)
		fail("a finding of no value");
	bool real = false;
	for (size_t i = 0; i < n_forms[val] && !real; i++) {
		const struct match_form *m = &forms[val][i];
		real = m->bytes->len == f->len && !strcmp(match_encoding_name(m->enc), f->encoding) &&
		       memcmp(s->p + f->offset, m->bytes->data, f->len) == 0;
	}
	if (!real)
		fail("a finding that is not a form of its value");
	if (s->want && val == s->want_value && f->offset == s->want_off && f->len == s->want->bytes->len &&
	    !strcmp(f->encoding, match_encoding_name(s->want->enc)))
		s->hits++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	int bits = hooks_entropy_bits(data, size);
	if (bits < 0 || (size_t)bits > 8 * size || (size < HOOKS_WEAK_BITS / 8 && bits >= HOOKS_WEAK_BITS))
		fail("an entropy estimate out of bounds");

	struct scan s = {data, size, 0, -1, NULL, 0, 0};
	if (hooks_index_scan(ix, data, size, on_found, &s) != 0)
		fail("the scan failed");
	if (size < 3)
		return 0;

	/* Plant one form in the rest of the input. */
	size_t total = n_forms[0] + n_forms[1], pick = data[0] % total;
	int val = pick < n_forms[0] ? 0 : 1;
	const struct match_form *m = &forms[val][val ? pick - n_forms[0] : pick];
	const uint8_t *rest = data + 3;
	size_t n_rest = size - 3, at = ((size_t)data[1] | (size_t)data[2] << 8) % (n_rest + 1);
	size_t n = n_rest + m->bytes->len;
	uint8_t *buf = malloc(n);
	if (!buf)
		fail("out of memory");
	memcpy(buf, rest, at);
	memcpy(buf + at, m->bytes->data, m->bytes->len);
	memcpy(buf + at + m->bytes->len, rest + at, n_rest - at);
	struct scan p = {buf, n, 0, val, m, at, 0};
	if (hooks_index_scan(ix, buf, n, on_found, &p) != 0)
		fail("the scan failed");
	if (p.hits != 1)
		fail("a planted form not found once");
	free(buf);
	return 0;
}
