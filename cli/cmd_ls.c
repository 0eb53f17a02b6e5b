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
	"'weak' for a value too weak to fingerprint safely: 'latch scan' and the git\n"
	"hooks find it only with --unlock (docs/scanning.md).\n"
	"\n"
	"  --json      print a JSON array of {name, version, created, updated, scan}\n"
	"              (scan: \"fingerprinted\" or \"weak\")\n"
	"  -h, --help  show this help\n";

/* One pass, one entry at a time: no tree of 10,000 objects in memory. */
struct listing {
	bool json;
	bool first;
	int64_t *weak; /* ids of the values not fingerprinted, sorted */
	size_t n_weak;
};

static int add_weak(int64_t id, int bits, void *ctx)
{
	(void)bits;
	struct listing *l = ctx;
	int64_t *grown = realloc(l->weak, (l->n_weak + 1) * sizeof *grown);
	if (!grown)
		return latch_error(LATCH_OPERR, "out of memory");
	l->weak = grown;
	l->weak[l->n_weak++] = id;
	return 0;
}

static bool is_weak(const struct listing *l, int64_t id)
{
	size_t a = 0, b = l->n_weak;
	while (a < b) {
		size_t m = a + (b - a) / 2;
		if (l->weak[m] == id)
			return true;
		if (l->weak[m] < id)
			a = m + 1;
		else
			b = m;
	}
	return false;
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
		       l->first ? "" : ",", e->name, (long long)e->version, created, updated,
		       is_weak(l, e->id) ? "weak" : "fingerprinted");
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
	/* A value too weak for the scan index says so: the hooks find it
	 * only with the passphrase (docs/scanning.md). */
	if (is_weak(l, e->id)) {
		memcpy(line + n, "  weak", 6);
		n += 6;
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
	if (hooks_weak(v, add_weak, &l) != 0) {
		vault_close(v);
		free(l.weak);
		return cli_fail();
	}
	if (json)
		putchar('[');
	else
		printf("%-32s %7s  %-20s  %-20s  %s\n", "NAME", "VERSION", "CREATED", "UPDATED", "SCAN");
	int rc = vault_list(v, print_entry, &l);
	vault_close(v);
	free(l.weak);
	if (rc != 0)
		return cli_fail();
	if (json)
		fputs(l.first ? "]\n" : "\n]\n", stdout);
	return cli_finish_output() == 0 ? 0 : cli_fail();
}
