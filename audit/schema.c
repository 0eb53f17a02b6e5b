/* The audit log's tables in the vault file: their migrations, run by the
 * vault's migration runner at the file's schema versions, and the schema
 * they leave (vault_add_tables). The format of what they hold: log.c,
 * record.c and docs/audit.md. */
#include "internal.h"

#include "../vault/vault.h"

/* steps[i] moves the file from version i to i+1, after the vault's own
 * step i. Append only: a released migration is never edited. */
static const char *const steps[] = {
	/* 1: the vault's header and secrets only. */
	NULL,
	/* 2: the log: one row per record (its exact text and MAC), the
	 * secrets each names, and the main chain's sealed state. */
	"CREATE TABLE audit_log ("
	" seq INTEGER PRIMARY KEY,"
	" time INTEGER NOT NULL,"
	" event TEXT NOT NULL,"
	" grant_id TEXT,"
	" record BLOB NOT NULL,"
	" mac BLOB NOT NULL);"
	"CREATE INDEX audit_log_time ON audit_log (time);"
	"CREATE INDEX audit_log_grant ON audit_log (grant_id, time) WHERE grant_id IS NOT NULL;"
	"CREATE INDEX audit_log_event ON audit_log (event, time);"
	"CREATE TABLE audit_secret ("
	" seq INTEGER NOT NULL,"
	" pos INTEGER NOT NULL,"
	" secret TEXT NOT NULL,"
	" time INTEGER NOT NULL,"
	" event TEXT NOT NULL,"
	" PRIMARY KEY (seq, pos)) WITHOUT ROWID;"
	"CREATE INDEX audit_secret_name ON audit_secret (secret, time);"
	"CREATE INDEX audit_secret_change ON audit_secret (secret, event, seq);"
	"CREATE TABLE audit_state ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" log_id BLOB NOT NULL,"
	" origin BLOB NOT NULL,"
	" state BLOB NOT NULL);",
	/* 3: the index that finds a secret's newest set or rm holds only
	 * those: every release added a row for each of its secrets there,
	 * a scattered page per secret in each commit the broker makes
	 * before a child may start. */
	("DROP INDEX audit_secret_change;"
	 "CREATE INDEX audit_secret_change ON audit_secret (secret, event, seq) WHERE event IN ('set', 'rm');"),
	/* 4: broker streams: which chain a record belongs to (0, the main
	 * chain, for every record before). Release checks no longer read a
	 * secondary index (an agent can rebuild one to say anything): the
	 * index of set/rm records goes. */
	("ALTER TABLE audit_log ADD COLUMN stream INTEGER NOT NULL DEFAULT 0;"
	 "DROP INDEX audit_secret_change;"),
	/* 5: the scan index's step (hooks/). */
	NULL,
	/* 6: broker streams kept in files of their own (audit/fold.c): how
	 * far each has been folded into audit_log, and whether it is
	 * closed. An index of the files, never evidence. */
	("CREATE TABLE audit_fold ("
	 " stream INTEGER PRIMARY KEY,"
	 " folded INTEGER NOT NULL,"
	 " offset INTEGER NOT NULL,"
	 " closed INTEGER NOT NULL);"),
};

/* What the steps leave in sqlite_master, sorted as vault_tables says. */
static const char *const schema[] = {
	"index audit_log_event audit_log CREATE INDEX audit_log_event ON audit_log (event, time)",
	"index audit_log_grant audit_log CREATE INDEX audit_log_grant ON audit_log (grant_id, time) WHERE grant_id IS NOT NULL",
	"index audit_log_time audit_log CREATE INDEX audit_log_time ON audit_log (time)",
	"index audit_secret_name audit_secret CREATE INDEX audit_secret_name ON audit_secret (secret, time)",
	"table audit_fold audit_fold CREATE TABLE audit_fold ( stream INTEGER PRIMARY KEY, folded INTEGER NOT NULL, offset INTEGER NOT NULL, closed INTEGER NOT NULL)",
	"table audit_log audit_log CREATE TABLE audit_log ( seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, event TEXT NOT NULL, grant_id TEXT, record BLOB NOT NULL, mac BLOB NOT NULL, stream INTEGER NOT NULL DEFAULT 0)",
	"table audit_secret audit_secret CREATE TABLE audit_secret ( seq INTEGER NOT NULL, pos INTEGER NOT NULL, secret TEXT NOT NULL, time INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (seq, pos)) WITHOUT ROWID",
	"table audit_state audit_state CREATE TABLE audit_state ( id INTEGER PRIMARY KEY CHECK (id = 1), log_id BLOB NOT NULL, origin BLOB NOT NULL, state BLOB NOT NULL)",
};

const struct vault_tables audit_tables = {steps, sizeof steps / sizeof steps[0], schema,
					  sizeof schema / sizeof schema[0]};
