/* bench/kdf: time crypto_pwhash (Argon2id v1.3) alone, at the parameters
 * latch's KDF levels use, so that run.sh can split `latch set` into the
 * KDF and the rest.
 *
 *   kdf [-n RUNS] [LEVEL...]      LEVEL: interactive, moderate, sensitive
 *                                 (default: interactive moderate; RUNS 7)
 *
 * One line per level on stdout, for run.sh to read:
 *   kdf LEVEL opslimit=N memlimit_mib=N runs=N median_ms=X min_ms=X max_ms=X samples_ms=X,X,...
 * Each run derives a 32-byte key from a fixed passphrase and a fresh salt,
 * as vault_unlock does; one untimed warm-up run comes first. */
#include "bench.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUNS 1000

struct level {
	const char *name;
	unsigned long long ops;
	size_t mem;
};

static const struct level levels[] = {
	{"interactive", crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE, crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE},
	{"moderate", crypto_pwhash_argon2id_OPSLIMIT_MODERATE, crypto_pwhash_argon2id_MEMLIMIT_MODERATE},
	{"sensitive", crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE, crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE},
};
#define N_LEVELS (sizeof levels / sizeof levels[0])

static int derive(const struct level *l)
{
	static const char pass[] = "latch-bench-passphrase";
	unsigned char key[32], salt[crypto_pwhash_SALTBYTES];
	randombytes_buf(salt, sizeof salt);
	int rc = crypto_pwhash(key, sizeof key, pass, sizeof pass - 1, salt, l->ops, l->mem,
			       crypto_pwhash_ALG_ARGON2ID13);
	sodium_memzero(key, sizeof key);
	if (rc != 0)
		fprintf(stderr, "kdf: crypto_pwhash failed at %s (out of memory?)\n", l->name);
	return rc;
}

static int bench_level(const struct level *l, int runs)
{
	static double t[MAX_RUNS];
	if (derive(l) != 0) /* warm-up: page in the memory once */
		return -1;
	for (int i = 0; i < runs; i++) {
		double t0 = now_ms();
		if (derive(l) != 0)
			return -1;
		t[i] = now_ms() - t0;
	}
	qsort(t, (size_t)runs, sizeof t[0], cmp_double);
	printf("kdf %s opslimit=%llu memlimit_mib=%zu runs=%d median_ms=%.1f min_ms=%.1f max_ms=%.1f samples_ms=",
	       l->name, l->ops, l->mem >> 20, runs, median(t, runs), t[0], t[runs - 1]);
	for (int i = 0; i < runs; i++)
		printf("%s%.2f", i ? "," : "", t[i]);
	putchar('\n');
	return fflush(stdout) == 0 ? 0 : -1;
}

static const struct level *find_level(const char *name)
{
	for (size_t i = 0; i < N_LEVELS; i++)
		if (!strcmp(levels[i].name, name))
			return &levels[i];
	return NULL;
}

int main(int argc, char **argv)
{
	int runs = 7, i = 1;
	if (sodium_init() < 0)
		return 3;
	if (i + 1 < argc && !strcmp(argv[i], "-n")) {
		char *end;
		long n = strtol(argv[i + 1], &end, 10);
		if (*argv[i + 1] == '\0' || *end != '\0' || n < 1 || n > MAX_RUNS) {
			fprintf(stderr, "kdf: -n takes 1 to %d\n", MAX_RUNS);
			return 2;
		}
		runs = (int)n;
		i += 2;
	}
	if (i == argc) {
		if (bench_level(&levels[0], runs) != 0 || bench_level(&levels[1], runs) != 0)
			return 3;
		return 0;
	}
	for (; i < argc; i++) {
		const struct level *l = find_level(argv[i]);
		if (!l) {
			fprintf(stderr, "usage: kdf [-n RUNS] [interactive|moderate|sensitive]...\n");
			return 2;
		}
		if (bench_level(l, runs) != 0)
			return 3;
	}
	return 0;
}
