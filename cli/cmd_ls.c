/* latch ls: names, versions and times. Never values; needs no passphrase. */
#include "cli.h"

#include "../hooks/hooks.h"

#include <stdlib.h>
#include <string.h>

const char usage_ls[] =
	"usage: latch ls [--json]\n"
	"\n"
	"List the secrets in the vault: name, version and when each was created and\n"
	"last set (UTC). Values are never shown. Needs no passphrase. SCAN says\n"
	"'weak' for a value too weak to fingerprint safely, 'unindexed' for one\n"
	"stored before the scan index existed ('latch rekey' indexes it): 'latch\n"
	"scan' and the git hooks find those only with --unlock (docs/scanning.md).\n"
	"\n"
	"  --json      print a JSON array of {name, version, created, updated, scan}\n"
	"              (scan: \"fingerprinted\", \"weak\" or \"unindexed\")\n"
	"  -h, --help  show this help\n";

/* One pass, one entry at a time: no tree of 10,000 objects in memory. */
struct listing {
	bool json;
	bool first;
	struct left { /* the values a scan without the passphrase cannot find */
		int64_t id;
		bool weak; /* else: not in the index at all */
	} * left;
	size_t n_left;
};

static int add_left(int64_t id, const char *name, int bits, void *ctx)
{
	(void)name;
	struct listing *l = ctx;
	struct left *grown = realloc(l->left, (l->n_left + 1) * sizeof *grown);
	if (!grown)
		return latch_error(LATCH_OPERR, "out of memory");
	l->left = grown;
	l->left[l->n_left++] = (struct left){id, bits >= 0};
	return 0;
}

static int by_left_id(const void *a, const void *b)
{
	const struct left *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* "fingerprinted", "weak" or "unindexed". */
static const char *scan_state(const struct listing *l, int64_t id)
{
	struct left key = {id, false};
	const struct left *f = l->n_left ? bsearch(&key, l->left, l->n_left, sizeof key, by_left_id) : NULL;
	return !f ? "fingerprinted" : f->weak ? "weak" : "unindexed";
}

static int print_entry(const struct vault_entry *e, void *ctx)
{
	struct listing *l = ctx;
	char created[32], updated[32];
	format_time_utc(e->created, created);
	format_time_utc(e->updated, updated);
	if (l->json) {
		/* Names are [A-Za-z0-9_./-] (vault_list refuses others): no
		 * character of them needs JSON escaping. */
		printf("%s\n  {\"name\": \"%s\", \"version\": %lld, \"created\": \"%s\", \"updated\": \"%s\", "
		       "\"scan\": \"%s\"}",
		       l->first ? "" : ",", e->name, (long long)e->version, created, updated, scan_state(l, e->id));
		l->first = false;
		return 0;
	}
	/* "%-32s %7lld  %s  %s\n" by hand: printf was most of the time for
	 * 10,000 rows. Names are at most 128 bytes; a fixed column keeps this
	 * one pass. */
	char line[256], num[24];
	size_t n = strlen(e->name), k = 0;
	memcpy(line, e->name, n);
	while (n < 32)
		line[n++] = ' ';
	line[n++] = ' ';
	unsigned long long ver = (unsigned long long)e->version;
	do
		num[k++] = (char)('0' + ver % 10);
	while ((ver /= 10) && k < sizeof num);
	for (size_t pad = k; pad < 7; pad++)
		line[n++] = ' ';
	while (k)
		line[n++] = num[--k];
	memcpy(line + n, "  ", 2);
	memcpy(line + n + 2, created, 20);
	memcpy(line + n + 22, "  ", 2);
	memcpy(line + n + 24, updated, 20);
	n += 44;
	/* A value the scan index leaves out says so: the hooks find it
	 * only with the passphrase (docs/scanning.md). */
	const char *state = scan_state(l, e->id);
	if (state[0] != 'f') {
		size_t len = strlen(state);
		memcpy(line + n, "  ", 2);
		memcpy(line + n + 2, state, len);
		n += 2 + len;
	}
	line[n] = '\n';
	fwrite(line, 1, n + 1, stdout);
	return 0;
}

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool json = false;
	int c;
	while ((c = cli_getopt(argc, argv, ":h", opts, "ls")) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			return cli_help(usage_ls);
		default:
			return LATCH_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("ls", "unexpected argument '%s'", argv[optind]);
	struct vault *v = NULL;
	if (cli_open_vault(&v) != 0)
		return cli_fail();
	struct listing l = {json, true, NULL, 0};
	if (hooks_left_out(v, add_left, &l) != 0) {
		vault_close(v);
		free(l.left);
		return cli_fail();
	}
	if (l.n_left)
		qsort(l.left, l.n_left, sizeof *l.left, by_left_id);
	if (json)
		putchar('[');
	else
		printf("%-32s %7s  %-20s  %-20s  %s\n", "NAME", "VERSION", "CREATED", "UPDATED", "SCAN");
	int rc = vault_list(v, print_entry, &l);
	vault_close(v);
	free(l.left);
	if (rc != 0)
		return cli_fail();
	if (json)
		fputs(l.first ? "]\n" : "\n]\n", stdout);
	return cli_finish_output() == 0 ? 0 : cli_fail();
}
