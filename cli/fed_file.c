/* The file form of a model token (`run --fed-file`, `session --fed`): a
 * private Anthropic configuration directory whose credentials file latch
 * rewrites before each expiry while the command runs, for a command that
 * outlives one token. */
#include "cli.h"

#include "../federation/federation.h"

#include <time.h>

int cli_fed_until_refresh(int64_t expires_at)
{
	/* Once in the refresh window, every 5 s, as Anthropic's SDKs back
	 * off a failed refresh. */
	int64_t left = expires_at - (int64_t)time(NULL) - FED_REFRESH_BEFORE;
	return left > 5 ? (int)(left < 86400 ? left + 1 : 86400) : 5;
}

int cli_fed_file_open(struct cli_fed_file *f, const struct fed_profile *p, const struct fed_token *t)
{
	f->p = p;
	f->expires_at = t->expires_at;
	return fed_file_create(p, t, f->dir);
}

int cli_fed_file_tick(void *ctx)
{
	struct cli_fed_file *f = ctx;
	struct fed_token t;
	/* A failure is reported (a line on the command's stderr) and tried
	 * again: the command keeps its old token until it expires. */
	if (cli_fed_token(f->p, &t) != 0)
		return 5;
	if (t.expires_at != f->expires_at && fed_file_update(f->dir, f->p, &t) == 0)
		f->expires_at = t.expires_at;
	fed_token_clear(&t);
	return cli_fed_until_refresh(f->expires_at);
}

void cli_fed_file_close(struct cli_fed_file *f)
{
	fed_file_remove(f->dir);
	f->dir[0] = '\0';
}
