/* Glue between the vault and the audit log: every change the vault makes
 * is recorded, in the same transaction, by this hook. */
#include "cli.h"

#include "../audit/audit.h"

#include <string.h>

static int record_argc;
static char **record_argv;

void cli_record_argv(int argc, char **argv)
{
	record_argc = argc;
	record_argv = argv;
}

/* Events that hand a value out. */
static bool is_release(const char *event)
{
	return !strcmp(event, "reveal") || !strcmp(event, "grant") || !strcmp(event, "release");
}

/* Before a release: each row must be the one its newest recorded change
 * made. A row put back from an older copy of the vault, or a removed
 * secret brought back, still decrypts; this is what refuses it. */
static int check_rows(struct vault *v, const struct vault_change *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct audit_change last;
		int rc = audit_last_change(vault_db(v), c->names[i], &last);
		if (rc < 0)
			return -1;
		if (rc == 0 || last.removed || last.secret_id != c->ids[i] || last.version != c->versions[i])
			return latch_error(LATCH_OPERR,
					   "secret '%s' is not what its last recorded change left (version %lld stored): the vault was rolled back or edited; run 'latch audit verify'",
					   c->names[i], (long long)c->versions[i]);
	}
	return 0;
}

int cli_record(struct vault *v, const struct vault_change *c, void *ctx)
{
	const struct cli_grant_info *grant = ctx; /* set for grants */
	struct secbuf *writer = NULL, *verifier = NULL;
	struct audit_secret_ref refs[AUDIT_MAX_SECRETS];
	if (c->n > AUDIT_MAX_SECRETS)
		return latch_error(LATCH_USAGE, "at most %d secrets at once", AUDIT_MAX_SECRETS);
	for (size_t i = 0; i < c->n; i++) {
		refs[i].name = c->names[i];
		refs[i].id = c->ids[i];
	}
	struct audit_event ev = {
		.event = c->event,
		/* A release is a decision; a change (set, rm) just happened. */
		.decision = is_release(c->event) ? "allow" : NULL,
		.grant_id = grant ? grant->id : NULL,
		.ttl = grant ? grant->ttl : 0,
		.uses = grant ? grant->uses : -1,
		.cmds = grant ? grant->cmds : NULL,
		.n_cmds = grant ? grant->n_cmds : 0,
		.secrets = refs,
		.n_secrets = c->n,
		.version = c->version,
		.exit_status = -1,
		.redactions = -1,
		.argv = record_argv,
		.argc = record_argc,
	};
	if (ev.decision && check_rows(v, c) != 0)
		return -1;
	int rc = -1;
	if (vault_key(v, "audit-writer", true, &writer) == 0 &&
	    vault_key(v, "audit-verifier", true, &verifier) == 0)
		rc = audit_append(vault_db(v), writer, verifier, &ev, NULL);
	secbuf_free(writer);
	secbuf_free(verifier);
	return rc;
}

int cli_record_event(struct vault *v, const struct audit_event *ev)
{
	struct secbuf *writer = NULL;
	int rc = vault_key(v, "audit-writer", false, &writer);
	if (rc == 0)
		rc = audit_append_commit(vault_db(v), writer, ev, 1);
	secbuf_free(writer);
	return rc;
}
