/* bench/populate: create a vault and fill it with N generated secrets
 * through the real vault API, for the benchmarks in bench/run.sh.
 *
 *   populate DIR N [--kdf interactive|moderate|sensitive] [--passphrase-fd FD]
 *            [--index] [--values FILE]
 *
 * The vault is created in DIR (vault_create_recorded), opened and unlocked
 * once (one Argon2id run), then vault_set is called N times, so a
 * 10,000-secret vault costs one KDF plus 10,000 small transactions, not
 * 10,000 KDF runs. Like `latch init` and `latch set`, every change is
 * recorded in the audit log in its own transaction by the same hook
 * (audit_record_change), so the vault is the one 10,000 `latch set` runs
 * would leave: later releases find each row explained by its last record.
 * Without --passphrase-fd it uses a fixed bench passphrase: this is a bench
 * tool, never product code. Values are random and never printed; the only
 * output is a summary line (counts and seconds) on stdout.
 *
 * --index installs the scan index's value hook, as `latch set` does, so
 * every value is fingerprinted in its own transaction (a few Argon2id runs
 * of 4 MiB each; off by default, see below). --values FILE takes the N
 * values from FILE, one a line, instead of making them: bench/scan.sh
 * needs to know them to give the same values to git-secrets. */
#include "../audit/audit.h"
#include "../hooks/hooks.h"
#include "../vault/vault.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The passphrase run.sh also writes to the file it hands to `latch set
 * --passphrase-fd`. Not a secret: the vaults it opens hold generated junk. */
static const char BENCH_PASSPHRASE[] = "latch-bench-passphrase";

/* Value length in bytes: about the size of an API token. */
#define VALUE_BYTES 40

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fputs("usage: populate DIR N [--kdf interactive|moderate|sensitive] [--passphrase-fd FD] [--index]\n"
	      "                [--values FILE]\n",
	      stderr);
	return LATCH_USAGE;
}

static int parse_count(const char *s, long *out)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || n < 0 || n > 10000000)
		return -1;
	*out = n;
	return 0;
}

/* Names look like real ones and sort in a spread-out order:
 * "svc042/API_TOKEN_00042". */
static void secret_name(long i, char *buf, size_t n)
{
	static const char *const kinds[] = {"API_TOKEN", "DB_PASSWORD", "WEBHOOK_SECRET", "PRIVATE_KEY",
					    "CLIENT_SECRET"};
	snprintf(buf, n, "svc%03ld/%s_%05ld", i % 1000, kinds[i % 5], i);
}

/* The next value of --values into `value`: one line, without its newline,
 * at least one byte and at most value->cap - 1. */
static int read_value(FILE *f, const char *path, struct secbuf *value)
{
	char *line = (char *)value->data;
	if (!fgets(line, (int)value->cap, f))
		return latch_error(LATCH_USAGE, "'%s' holds fewer values than asked for", path);
	size_t len = strcspn(line, "\n");
	if (line[len] != '\n' && !feof(f))
		return latch_error(LATCH_USAGE, "'%s' has a line longer than %zu bytes", path, value->cap - 2);
	if (len == 0)
		return latch_error(LATCH_USAGE, "'%s' has an empty line", path);
	value->len = len;
	return 0;
}

static struct secbuf *bench_passphrase(int fd)
{
	struct secbuf *p = NULL;
	if (fd >= 0) {
		if (vault_read_passphrase(fd, "Passphrase: ", true, &p) != 0)
			return NULL;
		return p;
	}
	size_t len = sizeof BENCH_PASSPHRASE - 1;
	if (!(p = secbuf_new(len + 1)))
		return NULL;
	memcpy(p->data, BENCH_PASSPHRASE, len);
	p->len = len;
	return p;
}

int main(int argc, char **argv)
{
	/* As latch's main(): umask 077 (the vault refuses group/world
	 * access), no core dumps, fds 0-2 open. */
	if (harden_process() != 0 || sodium_init() < 0 || vault_add_tables(&audit_tables) != 0 ||
	    vault_add_tables(&hooks_tables) != 0)
		return LATCH_OPERR;
	struct audit_recorder recorder = {argc, argv, NULL};
	const char *dir = NULL, *count = NULL, *values = NULL;
	bool with_index = false;
	enum vault_kdf kdf = VAULT_KDF_MODERATE;
	int fd = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--kdf") && i + 1 < argc) {
			if (vault_kdf_parse(argv[++i], &kdf) != 0)
				return LATCH_USAGE;
		} else if (!strcmp(argv[i], "--passphrase-fd") && i + 1 < argc) {
			if (parse_fd(argv[++i], &fd) != 0)
				return LATCH_USAGE;
		} else if (!strcmp(argv[i], "--index")) {
			with_index = true;
		} else if (!strcmp(argv[i], "--values") && i + 1 < argc) {
			values = argv[++i];
		} else if (argv[i][0] == '-') {
			return usage();
		} else if (!dir) {
			dir = argv[i];
		} else if (!count) {
			count = argv[i];
		} else {
			return usage();
		}
	}
	long n;
	if (!dir || !count || parse_count(count, &n) != 0)
		return usage();

	struct secbuf *pass = bench_passphrase(fd);
	if (!pass)
		return latch_last_status();
	int status = LATCH_OPERR;
	struct vault *v = NULL;
	struct secbuf *value = NULL;
	FILE *vf = NULL;
	if (values && !(vf = fopen(values, "r"))) {
		latch_error(LATCH_USAGE, "cannot open '%s': %s", values, strerror(errno));
		goto out;
	}
	double t0 = now_seconds();
	if (vault_create_recorded(dir, pass, kdf, audit_record_change, &recorder) != 0)
		goto out;
	double t1 = now_seconds();
	if (vault_open(dir, &v) != 0 || vault_unlock(v, pass) != 0)
		goto out;
	/* No scan index by default: fingerprinting costs a few Argon2id runs
	 * a value (hooks/index.c), and run.sh measures the vault. bench/scan.sh
	 * asks for it with --index. */
	vault_on_change(v, audit_record_change, &recorder);
	if (with_index)
		vault_on_value(v, hooks_index_value, NULL);
	double t2 = now_seconds();
	if (!(value = secbuf_new(vf ? 1024 : VALUE_BYTES * 2 + 1)))
		goto out;
	unsigned char raw[VALUE_BYTES];
	for (long i = 0; i < n; i++) {
		char name[LATCH_NAME_MAX + 1];
		secret_name(i, name, sizeof name);
		if (vf) {
			if (read_value(vf, values, value) != 0)
				goto out;
		} else {
			randombytes_buf(raw, sizeof raw);
			sodium_bin2hex((char *)value->data, value->cap, raw, sizeof raw);
			value->len = VALUE_BYTES * 2;
		}
		if (vault_set(v, name, value, NULL) != 0)
			goto out;
	}
	double t3 = now_seconds();
	sodium_memzero(raw, sizeof raw);
	printf("populate: %ld secrets; create %.3f s, open+unlock %.3f s, %ld recorded sets%s %.3f s (%.3f ms each)\n",
	       n, t1 - t0, t2 - t1, n, with_index ? " with the scan index" : "", t3 - t2,
	       n ? (t3 - t2) * 1e3 / (double)n : 0.0);
	status = fflush(stdout) == 0 ? LATCH_OK : LATCH_OPERR;
out:
	if (status != LATCH_OK)
		status = latch_last_status();
	if (vf)
		fclose(vf);
	secbuf_free(value);
	secbuf_free(pass);
	vault_close(v);
	return status;
}
