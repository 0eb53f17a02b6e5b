/* Fuzz target: a vault file from an untrusted source. The input is
 * written as vault.db into a private temporary directory; then vault_open,
 * vault_info, vault_list and, when the header passes, vault_unlock with the
 * passphrase the seed vaults were made with, vault_get of every listed name
 * and vault_key (read-only) of the audit log's two named keys. Nothing may
 * crash, leak (heap or secure memory) or hand out a value it should refuse.
 *
 * Cost: a header that passes its checksum leads to one Argon2id derivation
 * at the interactive level (64 MiB, ~70 ms), which bounds the speed on such
 * inputs to about a dozen a second. Headers naming a costlier level (only
 * possible with a forged checksum) are opened but not unlocked, so one input
 * costs at most one interactive derivation. */
#include "fuzz.h"

#include "../../audit/audit.h"
#include "../../vault/vault.h"
#include "secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The seed vaults in tests/fuzz/corpus/fuzz_vault_file were created with
 * this passphrase (a test string, not a secret). */
#define FUZZ_PASSPHRASE "fuzz-vault-passphrase"

static char dir[PATH_MAX];
static char db_path[PATH_MAX];
static struct secbuf *passphrase;
/* LATCH_FUZZ_VERBOSE=1: one line per input on stderr saying how far it got
 * (to check that seeds reach unlock and vault_get). */
static bool verbose;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_vault_file: %s\n", what);
	abort();
}

/* Everything sqlite may leave beside the database. */
static void remove_files(void)
{
	static const char *const suffixes[] = {"", "-journal", "-wal", "-shm"};
	char p[PATH_MAX + 16];
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		snprintf(p, sizeof p, "%s%s", db_path, suffixes[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			fail("cannot remove a file from the temporary directory");
	}
}

static void cleanup(void)
{
	if (!dir[0])
		return;
	remove_files();
	rmdir(dir);
	secbuf_free(passphrase);
}

/* Once per process: a 0700 directory under $TMPDIR (or /tmp), removed at
 * exit; umask 077 so that whatever sqlite creates in it is 0600. */
static void setup(void)
{
	if (dir[0])
		return;
	/* The vault's schema includes the audit log's tables, as in latch. */
	if (sodium_init() < 0 || vault_add_tables(&audit_tables) != 0)
		fail("cannot initialise libsodium");
	latch_error_quiet(true);
	verbose = getenv("LATCH_FUZZ_VERBOSE") != NULL;
	umask(077);
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	if (snprintf(dir, sizeof dir, "%s/latch-fuzz-vault-XXXXXX", tmp) >= (int)sizeof dir || !mkdtemp(dir))
		fail("cannot create a temporary directory");
	if (chmod(dir, 0700) != 0 || vault_path(dir, db_path, sizeof db_path) != 0)
		fail("cannot prepare the temporary directory");
	size_t n = strlen(FUZZ_PASSPHRASE);
	if (!(passphrase = secbuf_new(n)))
		fail("cannot allocate the passphrase");
	memcpy(passphrase->data, FUZZ_PASSPHRASE, n);
	passphrase->len = n;
	atexit(cleanup);
}

static void write_vault(const uint8_t *data, size_t size)
{
	int fd = open(db_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		fail("cannot create vault.db");
	size_t off = 0;
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail("cannot write vault.db");
		off += (size_t)w;
	}
	if (fchmod(fd, 0600) != 0 || close(fd) != 0)
		fail("cannot write vault.db");
}

struct names {
	char **v;
	size_t n, cap;
};

static int collect(const struct vault_entry *e, void *ctx)
{
	struct names *l = ctx;
	if (!e || !e->name)
		fail("vault_list passed an entry without a name");
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		if (!(l->v = realloc(l->v, l->cap * sizeof *l->v)))
			fail("out of memory");
	}
	if (!(l->v[l->n++] = strdup(e->name)))
		fail("out of memory");
	return 0;
}

static int stop_at_first(const struct vault_entry *e, void *ctx)
{
	(void)e;
	++*(int *)ctx;
	return 7;
}

/* Locked: a value must not come out, whatever the name. */
static void check_locked(struct vault *v, const struct names *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct secbuf *value = NULL;
		if (vault_get(v, l->v[i], &value) == 0 || value)
			fail("vault_get returned a value from a locked vault");
	}
}

static size_t check_values(struct vault *v, const struct names *l)
{
	size_t opened = 0;
	for (size_t i = 0; i < l->n; i++) {
		struct secbuf *value = NULL;
		int rc = vault_get(v, l->v[i], &value);
		if (!latch_name_valid(l->v[i])) {
			if (rc == 0 || latch_last_status() != LATCH_USAGE)
				fail("vault_get accepted a stored name that is not valid");
			continue;
		}
		if (rc != 0) {
			if (value)
				fail("vault_get failed but set its output");
			continue;
		}
		if (!value || value->len > value->cap || value->len > VAULT_VALUE_MAX)
			fail("vault_get returned an impossible value");
		secbuf_free(value);
		opened++;
	}
	return opened;
}

/* The keys table (schema 2): named keys the audit log uses, opened
 * read-only (create = false never writes). */
static size_t check_named_keys(struct vault *v)
{
	size_t opened = 0;
	static const char *const purposes[] = {"audit-writer", "audit-verifier"};
	for (size_t i = 0; i < sizeof purposes / sizeof purposes[0]; i++) {
		struct secbuf *k = NULL;
		int rc = vault_key(v, purposes[i], false, &k);
		if (rc == 0 && (!k || k->len != 32))
			fail("vault_key returned an impossible key");
		/* A failure may still leave a key in `k`: vault_key opens the key
		 * before it commits its own read transaction, and a commit that
		 * fails (a damaged file) returns -1 with *out already set. Its
		 * callers free the output whatever the result; so do we. */
		opened += rc == 0;
		secbuf_free(k);
	}
	return opened;
}

static void exercise(struct vault *v)
{
	struct vault_info info;
	memset(&info, 0, sizeof info);
	int info_rc = vault_info(v, &info);
	if (info_rc == 0 && (!info.kdf_name || strlen(info.vault_id) != 32 || info.secrets < 0))
		fail("vault_info returned an impossible header");

	struct names l = {NULL, 0, 0};
	/* Failure is fine (a damaged file); what was listed is checked below.
	 * No count is compared with vault_info's: on a corrupt file sqlite
	 * may answer count(*) from an index and the walk from the table. */
	vault_list(v, collect, &l);
	/* A non-zero return from the callback stops the walk and comes back. */
	int calls = 0;
	int stop_rc = vault_list(v, stop_at_first, &calls);
	if (calls > 1 || (calls == 1 && stop_rc != 7))
		fail("vault_list did not stop at the callback's non-zero return");

	check_locked(v, &l);
	int unlock_rc = 1; /* not tried */
	size_t opened = 0, keys = 0;
	/* Only the interactive cost: anything else in a header means a forged
	 * checksum and would cost seconds (up to 4 GiB) per input. vault_info
	 * fills the KDF fields from the header before it counts the secrets,
	 * so a broken secrets table still leaves them set. */
	if (info.kdf_name && !strcmp(info.kdf_name, "interactive")) {
		unlock_rc = vault_unlock(v, passphrase);
		if (unlock_rc != 0 && latch_last_status() != LATCH_DENIED && latch_last_status() != LATCH_OPERR)
			fail("vault_unlock failed with an unexpected status");
		if (unlock_rc == 0) {
			opened = check_values(v, &l);
			keys = check_named_keys(v);
		} else {
			check_locked(v, &l);
		}
	}
	if (verbose)
		fprintf(stderr,
			"fuzz_vault_file: opened; info %s, %zu listed, unlock %s, %zu values and %zu keys read\n",
			info_rc == 0 ? "ok" : "failed", l.n,
			unlock_rc == 1   ? "not tried"
			: unlock_rc == 0 ? "ok"
					 : "failed",
			opened, keys);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	free(l.v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	long before = secmem_in_use();
	remove_files();
	write_vault(data, size);
	struct vault *v = NULL;
	if (vault_open(dir, &v) == 0) {
		if (!v)
			fail("vault_open succeeded without a vault");
		exercise(v);
		vault_close(v);
	} else if (v) {
		fail("vault_open failed but set its output");
	} else if (verbose) {
		fprintf(stderr, "fuzz_vault_file: not opened (status %d)\n", (int)latch_last_status());
	}
	remove_files();
	secmem_check(before, "one vault");
	return 0;
}
