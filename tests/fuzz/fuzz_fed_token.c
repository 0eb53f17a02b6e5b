/* Fuzz target: the token endpoint's answer as federation/exchange.c reads
 * it (fed_token_parse), which is whatever a server, or anything between
 * latch and it, sends back.
 *
 * Each input is parsed twice: as the body of a 200, and as the body of
 * the status its first byte picks (2xx, 3xx, 4xx with 401, 403 and 429,
 * 5xx) with the rest as the body. Whenever a token is accepted it must be
 * 1 to 8192 bytes of printable ASCII, NUL-terminated, with expires_in
 * in 1..31536000, and nothing is printed; a refusal leaves no token and a
 * zero expiry, and prints exactly one line that holds neither "eyJ" (a
 * JWT, such as an echoed assertion) nor "sk-ant-" (a key or token).
 * Nothing may crash, read out of bounds or leak.
 *
 * The line is caught by pointing `stderr` (the FILE latch_error writes
 * to, not file descriptor 2) at a buffer around each call: libFuzzer and
 * the sanitizers keep writing their own reports to descriptor 2. */
#include "fuzz.h"

#include "../../federation/internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_fed_token: %s\n", what);
	abort();
}

static char line[4096];
static FILE *line_file;

/* What latch_error printed during the last call, NUL-terminated. */
static const char *printed(void)
{
	fflush(line_file);
	long n = ftell(line_file);
	if (n < 0 || (size_t)n >= sizeof line)
		fail("the message buffer overflowed");
	line[n] = '\0';
	return line;
}

static void check(long status, const unsigned char *body, size_t len)
{
	struct secbuf *tok = (struct secbuf *)&tok;
	int64_t expires_in = -7;
	/* A copy of exactly `len` bytes, so a read past the end is caught. */
	unsigned char *copy = malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, body, len);
	memset(line, 0, sizeof line);
	rewind(line_file);
	FILE *saved = stderr;
	stderr = line_file;
	int rc = fed_token_parse(status, "req_fuzz", copy, len, &tok, &expires_in);
	stderr = saved;
	free(copy);
	const char *said = printed();
	if (rc != 0) {
		if (rc != -1 || tok != NULL || expires_in != 0)
			fail("a refusal left a token or an expiry behind");
		const char *nl = strchr(said, '\n');
		if (strncmp(said, "latch: ", 7) != 0 || !nl || nl[1] != '\0')
			fail("a refusal did not print exactly one line");
		if (strstr(said, "eyJ") || strstr(said, "sk-ant-"))
			fail("a refusal quoted what looks like a JWT or a token");
		return;
	}
	if (said[0] != '\0')
		fail("an accepted answer printed something");
	if (status < 200 || status > 299)
		fail("accepted a token from an error status");
	if (!tok || tok->len == 0 || tok->len > 8192 || tok->data[tok->len] != '\0')
		fail("accepted a token of a length outside 1..8192");
	for (size_t i = 0; i < tok->len; i++)
		if (tok->data[i] < 0x21 || tok->data[i] > 0x7e)
			fail("accepted a token that is not printable ASCII");
	if (expires_in < 1 || expires_in > 31536000)
		fail("accepted an expires_in outside 1..31536000");
	secbuf_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("sodium_init");
		line_file = fmemopen(line, sizeof line, "w");
		if (!line_file)
			fail("fmemopen");
		setvbuf(line_file, NULL, _IONBF, 0);
		ready = true;
	}
	check(200, data, size);
	if (size == 0)
		return 0;
	static const long statuses[] = {200, 201, 204, 302, 400, 401, 403, 404, 429, 500, 502, 503};
	check(statuses[data[0] % (sizeof statuses / sizeof statuses[0])], data + 1, size - 1);
	return 0;
}
