/* hooks/ internals: shared by its files, not by other modules. */
#ifndef LATCH_HOOKS_INTERNAL_H
#define LATCH_HOOKS_INTERNAL_H

#include "hooks.h"

/* A growing buffer, wiped when freed (what git prints may be a value). */
struct growbuf {
	unsigned char *p;
	size_t len, cap;
};
void hooks_growbuf_free(struct growbuf *g);

/* Run git (argv[0] "git", argv[1] "--no-replace-objects", argv[2] the
 * subcommand, which messages name) to its end, with stdin from `in` (-1:
 * /dev/null), stderr the user's, no other descriptor of ours, default
 * signal dispositions; its whole stdout, NUL-terminated, in `out`, its
 * exit status (128 + N for a signal) in *status. 0, or -1 reported when
 * git could not be run or read. (git.c) */
int hooks_git_capture(char *const argv[], int in, struct growbuf *out, int *status);

#endif
