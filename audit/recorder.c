/* The vault's recording hook: every change the vault makes is recorded,
 * in the same transaction, through here; and a release is refused here
 * unless the secrets table is what its recorded changes left. */
#include "internal.h"

#include "../vault/vault.h"

#include <string.h>

/* Events that hand a value out: a decision, checked before it is made. */
static bool is_release(const char *event)
{
	return !strcmp(event, "reveal") || !strcmp(event, "grant") || !strcmp(event, "release");
}

/* A rekey also replaces the writer key: one taken before (by a broker of
 * an older latch, which held it) no longer opens the state. */
static int rotate_writer(struct vault *v, const struct secbuf *writer)
{
	struct secbuf *fresh = secbuf_new(AUDIT_KEY_BYTES);
	if (!fresh)
		return -1;
	randombytes_buf(fresh->data, AUDIT_KEY_BYTES);
	fresh->len = AUDIT_KEY_BYTES;
	int rc = audit_rotate_writer(vault_db(v), writer, fresh, vault_rows, v);
	if (rc == 0)
		rc = vault_key_replace(v, "audit-writer", fresh);
	secbuf_free(fresh);
	return rc;
}

int audit_record_change(struct vault *v, const struct vault_change *c, void *recorder)
{
	const struct audit_recorder *r = recorder;
	const struct audit_grant *grant = r ? r->grant : NULL;
	struct secbuf *writer = NULL, *verifier = NULL;
	struct audit_secret_ref refs[AUDIT_MAX_SECRETS];
	if (c->n > AUDIT_MAX_SECRETS)
		return latch_error(LATCH_USAGE, "at most %d secrets at once", AUDIT_MAX_SECRETS);
	for (size_t i = 0; i < c->n; i++) {
		refs[i].name = c->names[i];
		refs[i].id = c->ids[i];
	}
	bool rm = !strcmp(c->event, "rm"), rekey = !strcmp(c->event, "rekey");
	struct audit_event ev = {
		.event = c->event,
		/* A release is a decision; a change (set, rm) just happened. */
		.decision = is_release(c->event) ? "allow" : NULL,
		.grant_id = grant ? grant->id : NULL,
		.ttl = grant ? grant->ttl : 0,
		.uses = grant ? grant->uses : 0,
		.cmds = grant ? grant->cmds : NULL,
		.n_cmds = grant ? grant->n_cmds : 0,
		.allow_env = grant ? grant->allow_env : NULL,
		.n_allow_env = grant ? grant->n_allow_env : 0,
		.secrets = refs,
		.n_secrets = c->n,
		/* set: the new version; rm: the version removed */
		.version = rm && c->n == 1 ? c->versions[0] : c->version,
		.self = true,
		.argv = r ? r->argv : NULL,
		.argc = r ? r->argc : 0,
	};
	int rc = vault_key(v, "audit-writer", true, &writer);
	if (rc == 0)
		rc = vault_key(v, "audit-verifier", true, &verifier);
	/* Before a release: every row must be the one its recorded changes
	 * made. A row put back from an older copy of the vault, or a removed
	 * secret brought back, still decrypts; this is what refuses it. */
	if (rc == 0 && ev.decision)
		rc = audit_check_secrets(vault_db(v), writer, verifier, vault_rows, v);
	/* A new data key ends the running broker's keys: its stream is
	 * closed where it stands, so nothing can be added to it later. */
	if (rc == 0 && rekey)
		rc = audit_stream_close(vault_db(v), writer);
	if (rc == 0)
		rc = audit_append(vault_db(v), writer, verifier, &ev, NULL);
	if (rc == 0 && rekey)
		rc = rotate_writer(v, writer);
	secbuf_free(writer);
	secbuf_free(verifier);
	return rc;
}

int audit_record_event(struct vault *v, const struct audit_event *ev)
{
	struct secbuf *writer = NULL;
	int rc = vault_key(v, "audit-writer", false, &writer);
	if (rc == 0)
		rc = audit_append_commit(vault_db(v), writer, ev, 1);
	secbuf_free(writer);
	return rc;
}

int audit_record_event_in(struct vault *v, const struct audit_event *ev)
{
	struct secbuf *writer = NULL, *verifier = NULL;
	int rc = vault_key(v, "audit-writer", false, &writer);
	if (rc == 0)
		rc = vault_key(v, "audit-verifier", false, &verifier);
	if (rc == 0)
		rc = audit_append(vault_db(v), writer, verifier, ev, NULL);
	secbuf_free(writer);
	secbuf_free(verifier);
	return rc;
}

int audit_upgrade(struct vault *v)
{
	sqlite3 *db = vault_db(v);
	if (audit_state_version(db) != 1)
		return 0;
	struct secbuf *writer = NULL, *verifier = NULL;
	int rc = vault_key(v, "audit-writer", false, &writer);
	if (rc == 0)
		rc = vault_key(v, "audit-verifier", false, &verifier);
	if (rc == 0 && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		rc = -1;
	if (rc == 0)
		rc = audit_check_secrets(db, writer, verifier, vault_rows, v);
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = latch_error(LATCH_OPERR, "cannot upgrade the audit log: %s", sqlite3_errmsg(db));
	if (rc != 0 && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	secbuf_free(writer);
	secbuf_free(verifier);
	return rc;
}
