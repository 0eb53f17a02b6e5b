/* Glue between the vault and the audit log: every change the vault makes
 * is recorded, in the same transaction, by this hook. */
#include "cli.h"

#include "../audit/audit.h"

#include <sodium.h>
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

static int rotate_writer(struct vault *v, const struct secbuf *writer)
{
	struct secbuf *fresh = secbuf_new(32);
	if (!fresh)
		return -1;
	randombytes_buf(fresh->data, 32);
	fresh->len = 32;
	int rc = audit_rotate_writer(vault_db(v), writer, fresh, vault_rows, v);
	if (rc == 0)
		rc = vault_key_replace(v, "audit-writer", fresh);
	secbuf_free(fresh);
	return rc;
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
	bool rm = !strcmp(c->event, "rm");
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
		/* set: the new version; rm: the version removed */
		.version = rm && c->n == 1 ? c->versions[0] : c->version,
		.exit_status = -1,
		.redactions = -1,
		.argv = record_argv,
		.argc = record_argc,
	};
	int rc = vault_key(v, "audit-writer", true, &writer) == 0 && vault_key(v, "audit-verifier", true, &verifier) == 0
			 ? 0
			 : -1;
	/* Before a release: every row must be the one its recorded changes
	 * made. A row put back from an older copy of the vault, or a removed
	 * secret brought back, still decrypts; this is what refuses it. */
	if (rc == 0 && ev.decision)
		rc = audit_check_secrets(vault_db(v), writer, verifier, vault_rows, v);
	/* A new data key ends the running broker's keys: its stream is
	 * closed where it stands, so nothing can be added to it later. */
	if (rc == 0 && !strcmp(c->event, "rekey"))
		rc = audit_stream_close(vault_db(v), writer);
	if (rc == 0)
		rc = audit_append(vault_db(v), writer, verifier, &ev, NULL);
	/* ... and so does the writer key: one taken before (by a broker of
	 * an older latch, which held it) no longer opens the state. */
	if (rc == 0 && !strcmp(c->event, "rekey"))
		rc = rotate_writer(v, writer);
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
