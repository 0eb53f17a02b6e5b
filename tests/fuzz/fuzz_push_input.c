/* Fuzz target: the pre-push hook's stdin parser of hooks/git.c, which
 * reads whatever git, or anything else that runs `latch scan --push`,
 * writes there.
 *
 * On acceptance, what was accepted must hold: each ref's four fields are
 * non-empty, free of NUL, spaces and control characters; every object name
 * is lowercase hex of one length (40 or 64) in the whole input; and the
 * fields joined again by single spaces, each line ended by LF, give back
 * the input byte for byte (nothing dropped, nothing invented). On refusal
 * nothing is returned and the status is LATCH_USAGE (or LATCH_OPERR when
 * memory runs out). Nothing may crash, read out of bounds or leak. */
#include "fuzz.h"

#include "../../hooks/hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_push_input: %s\n", what);
	abort();
}

static void check_ref(const char *s)
{
	if (!s || !s[0])
		fail("accepted an empty ref");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			fail("accepted a ref with a space or control character");
}

static void check_oid(const char *s, size_t *len)
{
	size_t n = s ? strlen(s) : 0;
	if (n != 40 && n != 64)
		fail("accepted an object name of neither 40 nor 64 digits");
	if (*len && n != *len)
		fail("accepted object names of two lengths");
	*len = n;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			fail("accepted an object name that is not lowercase hex");
}

/* Append s and a separator to out at *at, within size. */
static void put(const uint8_t *in, size_t size, size_t *at, const char *s, char sep)
{
	size_t n = strlen(s);
	if (*at + n + 1 > size || memcmp(in + *at, s, n) != 0 || in[*at + n] != (uint8_t)sep)
		fail("the refs do not give back the input");
	*at += n + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		latch_error_quiet(true);
		ready = true;
	}
	struct hooks_push_ref *refs = (void *)1;
	size_t count = 99;
	int rc = hooks_push_parse((const char *)data, size, &refs, &count);
	if (rc != 0) {
		if (rc != -1 || refs != NULL || count != 0)
			fail("a refusal returned refs or other than -1");
		if (latch_last_status() != LATCH_USAGE && latch_last_status() != LATCH_OPERR)
			fail("a refusal with a status other than LATCH_USAGE");
		return 0;
	}
	if ((count == 0) != (refs == NULL))
		fail("refs and count disagree");
	size_t oid_len = 0, at = 0;
	for (size_t i = 0; i < count; i++) {
		check_ref(refs[i].local_ref);
		check_ref(refs[i].remote_ref);
		check_oid(refs[i].local_oid, &oid_len);
		check_oid(refs[i].remote_oid, &oid_len);
		put(data, size, &at, refs[i].local_ref, ' ');
		put(data, size, &at, refs[i].local_oid, ' ');
		put(data, size, &at, refs[i].remote_ref, ' ');
		put(data, size, &at, refs[i].remote_oid, '\n');
	}
	if (at != size)
		fail("the refs do not account for the whole input");
	hooks_push_free(refs, count);
	return 0;
}
