/* Fuzz target: the profile parser of federation/profile.c, which reads a
 * file the agent may have written (a profile names a command latch runs
 * and the URLs it sends identity tokens to).
 *
 * The input is a profile's text. Whenever fed_profile_parse accepts it,
 * what it accepted must hold: every field a source kind needs is set, an
 * exec command's first word is an absolute path and its argv ends in
 * NULL, every string is plain text, ids are short, timeouts in range, at
 * most FED_SOURCE_HEADERS_MAX headers; and fed_profile_json(p) must parse
 * back to the same profile. On refusal the profile must be empty.
 * Nothing may crash, read out of bounds or leak. */
#include "fuzz.h"

#include "../../federation/internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_fed_profile: %s\n", what);
	abort();
}

static void plain(const char *s, size_t max, bool spaces)
{
	if (!s)
		return;
	if (!text_is_plain(s) || strlen(s) > max || (!spaces && strchr(s, ' ')))
		fail("an accepted string is not plain text that fits");
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void check(const struct fed_profile *p)
{
	if (strcmp(p->name, "fuzz"))
		fail("the name was not kept");
	plain(p->rule_id, 255, false);
	plain(p->org_id, 255, false);
	plain(p->service_account_id, 255, false);
	plain(p->workspace_id, 255, false);
	plain(p->scope, 255, true);
	plain(p->base_url, 2048, true);
	plain(p->ca_file, PATH_MAX - 1, true);
	if (p->base_url && !fed_url_allowed(p->base_url))
		fail("accepted a base_url that is not https or loopback http");
	if (p->ca_file && p->ca_file[0] != '/')
		fail("accepted a relative ca_file");
	if (p->timeout_s < 0 || p->timeout_s > 300)
		fail("accepted a timeout out of range");
	const struct fed_source *s = &p->source;
	if (s->timeout_s < 0 || s->timeout_s > 300)
		fail("accepted a source timeout out of range");
	if (s->n_headers > FED_SOURCE_HEADERS_MAX || s->argc > FED_SOURCE_ARGS_MAX)
		fail("too many headers or arguments");
	plain(s->path, PATH_MAX - 1, true);
	plain(s->var, 255, false);
	plain(s->audience, 1024, false);
	plain(s->url, 2048, true);
	plain(s->field, 255, true);
	for (size_t i = 0; i < s->n_headers; i++) {
		plain(s->headers[i], 8192, true);
		if (!strstr(s->headers[i], ": "))
			fail("a header line without ': '");
	}
	for (size_t i = 0; i < s->argc; i++)
		plain(s->argv[i], 4096, true);
	switch (s->kind) {
	case FED_SOURCE_NONE:
		if (p->source_from != FED_FROM_NONE)
			fail("no source, yet an origin");
		break;
	case FED_SOURCE_FILE:
		if (!s->path || s->path[0] != '/')
			fail("a file source without an absolute path");
		break;
	case FED_SOURCE_ENV:
		if (!s->var || !s->var[0])
			fail("an env source without a variable");
		break;
	case FED_SOURCE_GITHUB:
		break;
	case FED_SOURCE_GCP:
		if (!s->audience || (s->url && strncasecmp(s->url, "http://", 7)))
			fail("a gcp_metadata source without an audience, or with a URL that is not http");
		break;
	case FED_SOURCE_URL:
		if (!s->url || !fed_url_allowed(s->url))
			fail("a url source without an allowed URL");
		break;
	case FED_SOURCE_EXEC:
		if (s->argc < 1 || !s->argv[0] || s->argv[0][0] != '/' || s->argv[s->argc])
			fail("an exec source without an absolute command, or argv not ending in NULL");
		break;
	default:
		fail("an unknown source kind");
	}
	char desc[256];
	fed_source_describe(s, desc, sizeof desc);
}

static void check_same(const struct fed_profile *a, const struct fed_profile *b)
{
	const struct fed_source *x = &a->source, *y = &b->source;
	bool ok = same(a->rule_id, b->rule_id) && same(a->org_id, b->org_id) &&
		  same(a->service_account_id, b->service_account_id) && same(a->workspace_id, b->workspace_id) &&
		  same(a->scope, b->scope) && same(a->base_url, b->base_url) && same(a->ca_file, b->ca_file) &&
		  a->timeout_s == b->timeout_s && x->kind == y->kind && same(x->path, y->path) &&
		  same(x->var, y->var) && same(x->audience, y->audience) && same(x->url, y->url) &&
		  same(x->field, y->field) && x->timeout_s == y->timeout_s && x->n_headers == y->n_headers &&
		  x->argc == y->argc;
	for (size_t i = 0; ok && i < x->n_headers; i++)
		ok = !strcmp(x->headers[i], y->headers[i]);
	for (size_t i = 0; ok && i < x->argc; i++)
		ok = !strcmp(x->argv[i], y->argv[i]);
	if (!ok)
		fail("fed_profile_json did not round-trip");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		if (sodium_init() < 0)
			fail("sodium_init");
		latch_error_quiet(true);
		ready = true;
	}
	struct fed_profile p;
	memset(&p, 0xa5, sizeof p);
	if (fed_profile_parse((const char *)data, size, "fuzz", &p) != 0) {
		static const struct fed_profile zero;
		if (memcmp(&p, &zero, sizeof p) != 0)
			fail("a refusal left the profile filled");
		return 0;
	}
	check(&p);
	char *text = fed_profile_json(&p);
	if (!text)
		fail("fed_profile_json failed");
	struct fed_profile q;
	if (fed_profile_parse(text, strlen(text), "fuzz", &q) != 0)
		fail("fed_profile_json wrote a profile that does not parse");
	check_same(&p, &q);
	fed_profile_free(&q);
	json_free_text(text);
	fed_profile_free(&p);
	return 0;
}
