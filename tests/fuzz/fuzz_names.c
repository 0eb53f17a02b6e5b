/* Fuzz target: the small string parsers -- latch_name_valid() (common/)
 * against an independent reimplementation of its rule, and
 * vault_kdf_parse() (vault/). The input is split at NUL bytes; every piece, and
 * the whole input as one C string, is checked. */
#include "fuzz.h"

#include "../../vault/vault.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rule from common.h, written out the obvious way:
 * [A-Za-z0-9][A-Za-z0-9_./-]{0,127}. Works on a length, not on strlen.
 * Class lookups go through a table built once from the spelled-out sets,
 * which keeps the reference out of libFuzzer's comparison tracing (a
 * 62-way compare per byte cost 20x in speed). */
enum { REF_FIRST = 1, REF_REST = 2 };
static unsigned char ref_class[256];

static void ref_init(void)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static const char punct[] = "_./-";
	for (const char *p = alnum; *p; p++)
		ref_class[(unsigned char)*p] = REF_FIRST | REF_REST;
	for (const char *p = punct; *p; p++)
		ref_class[(unsigned char)*p] = REF_REST;
}

static bool ref_name_valid(const unsigned char *s, size_t n)
{
	if (n < 1 || n > 128)
		return false;
	bool ok = (ref_class[s[0]] & REF_FIRST) != 0;
	for (size_t i = 1; i < n; i++)
		ok = ok && (ref_class[s[i]] & REF_REST) != 0;
	return ok;
}

static void check_name(const char *s, size_t n)
{
	bool got = latch_name_valid(s), want = ref_name_valid((const unsigned char *)s, n);
	if (got != want) {
		fprintf(stderr, "fuzz_names: latch_name_valid() says %s, the rule says %s (length %zu)\n",
			got ? "valid" : "invalid", want ? "valid" : "invalid", n);
		abort();
	}
}

static void check_kdf(const char *s)
{
	static const struct {
		const char *name;
		enum vault_kdf kdf;
	} levels[] = {{"interactive", VAULT_KDF_INTERACTIVE},
		      {"moderate", VAULT_KDF_MODERATE},
		      {"sensitive", VAULT_KDF_SENSITIVE}};
	int want = -1;
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, levels[i].name))
			want = i;
	enum vault_kdf out = (enum vault_kdf) - 1;
	int rc = vault_kdf_parse(s, &out);
	if (want >= 0 && (rc != 0 || out != levels[want].kdf)) {
		fprintf(stderr, "fuzz_names: vault_kdf_parse() rejected or misread '%s'\n", s);
		abort();
	}
	if (want < 0 && (rc != -1 || latch_last_status() != LATCH_USAGE)) {
		fprintf(stderr, "fuzz_names: vault_kdf_parse() accepted an unknown level (rc %d)\n", rc);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		ref_init();
		latch_error_quiet(true);
		ready = true;
	}
	/* A NUL-terminated copy with nothing after the terminator, so ASan
	 * catches a read past it. */
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	for (size_t start = 0; start <= size;) {
		size_t n = strlen(s + start);
		check_name(s + start, n);
		check_kdf(s + start);
		start += n + 1;
	}
	/* The length limit: the first piece repeated to 127, 128 and 129
	 * bytes, which a mutator rarely reaches on its own. */
	size_t first = strlen(s);
	if (first > 0) {
		char long_name[LATCH_NAME_MAX + 2];
		for (size_t len = LATCH_NAME_MAX - 1; len <= LATCH_NAME_MAX + 1; len++) {
			for (size_t i = 0; i < len; i++)
				long_name[i] = s[i % first];
			long_name[len] = '\0';
			check_name(long_name, len);
		}
	}
	free(s);
	return 0;
}
