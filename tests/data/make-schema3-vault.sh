#!/usr/bin/env bash
# make-schema3-vault.sh OLD_LATCH [OUT_DIR]
#
# Makes the legacy vault fixtures tests/cli/legacy.bats uses, with a latch
# binary built from the last release before schema 4 (commit 83e0b14:
# vault schema 3, audit state version 1):
#
#   git worktree add /tmp/latch-old 83e0b14
#   make -C /tmp/latch-old -j2 all
#   tests/data/make-schema3-vault.sh /tmp/latch-old/build/latch tests/data
#   git worktree remove --force /tmp/latch-old
#
# OUT_DIR (default: this script's directory) gets schema3-vault.db,
# schema3-rolled-back.db and the old latch's checkpoint of each
# (schema3-vault.checkpoint, schema3-rolled-back.checkpoint). See
# README.md there for what they hold. Every
# value is test data, written here in the clear. Needs sqlite3, sha256sum
# and /usr/bin/python3 (tests/cli/pty_run.py drives `latch reveal`).
set -euo pipefail

old=${1:?usage: make-schema3-vault.sh OLD_LATCH [OUT_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
old=$(readlink -f "$old")
pty_run=$here/../cli/pty_run.py
[ -x "$old" ] || { echo "not an executable: $old" >&2; exit 2; }
[ -d "${2:-$here}" ] || { echo "no directory: ${2:-$here}" >&2; exit 2; }
out=$(cd "${2:-$here}" && pwd)

PASS="legacy fixture passphrase"
API_TOKEN="legacy-fixture-api-token-0001"
DB_V1="legacy-fixture-db-password-v1"
DB_V2="legacy-fixture-db-password-v2"
DB_V3="legacy-fixture-db-password-v3" # the rolled-back copy only
GONE="legacy-fixture-removed-value"
NOTES="legacy fixture notes: spaces, punctuation; test data only"
DEPLOY_KEY="legacy-fixture-deploy-key-0002"

work=$(mktemp -d /tmp/latch-legacy-fixture.XXXXXX)
chmod 0700 "$work"
export HOME=$work/home
export LATCH_HOME=$work/vault
export XDG_RUNTIME_DIR=$work/rt
export LATCH_BROKER_IDLE=60
unset XDG_DATA_HOME XDG_CONFIG_HOME LATCH_LOCK_TIMEOUT_MS
mkdir -m 0700 "$HOME" "$XDG_RUNTIME_DIR"
vault=$LATCH_HOME/vault.db
cd "$work" # the records name the cwd: a throw-away one

# The daemon `latch grant` started, by the pid in its lock file (checked to
# be a running `latch broker`): TERM, then wait until it is gone.
stop_broker() {
	local lock pid i
	for lock in "$XDG_RUNTIME_DIR"/latch/broker-*.lock; do
		[ -f "$lock" ] || continue
		pid=$(cat "$lock" 2>/dev/null) || continue
		[[ "$pid" =~ ^[0-9]+$ ]] || continue
		[[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == "latch broker"* ]] || continue
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			[ -e "/proc/$pid" ] || break
			[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
			sleep 0.1
		done
		if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.5
			[ -e "/proc/$pid" ] && echo "latch broker $pid survived SIGKILL" >&2
		fi
	done
}
cleanup() {
	stop_broker
	rm -rf -- "$work"
}
trap cleanup EXIT

L() { # L ARGS...: the old latch, the passphrase on fd 3, no stdin
	"$old" "$@" --passphrase-fd 3 3<<<"$PASS" </dev/null
}
set_secret() { # set_secret NAME VALUE
	printf '%s' "$2" | "$old" set "$1" --file - --passphrase-fd 3 3<<<"$PASS" >/dev/null
}

# 1. a vault, secrets, a second version, a removal
L init --kdf interactive >/dev/null
set_secret api-token "$API_TOKEN"
set_secret db "$DB_V1"
set_secret gone "$GONE"
set_secret notes "$NOTES"
set_secret ci/deploy-key "$DEPLOY_KEY"
set_secret db "$DB_V2"
L rm gone >/dev/null

# 2. a grant (starts the old broker daemon), a release under it by
#    `latch run` (the daemon records release, then exit), a revoke (which
#    writes the queued exit record first), then the daemon is stopped.
L grant api-token db --ttl 10m >/dev/null
want_a=$(printf '%s' "$API_TOKEN" | sha256sum | cut -d' ' -f1)
want_d=$(printf '%s' "$DB_V2" | sha256sum | cut -d' ' -f1)
# (setsid: no controlling terminal, so an uncovered run fails rather than
# asking for the passphrase)
setsid -w "$old" run --env A=latch://api-token --env D=latch://db -- sh -c \
	'[ "$(printf %s "$A" | sha256sum | cut -d" " -f1)" = "$0" ] && [ "$(printf %s "$D" | sha256sum | cut -d" " -f1)" = "$1" ]' \
	"$want_a" "$want_d" </dev/null
"$old" revoke --all </dev/null >/dev/null
stop_broker

# 3. a reveal on a pseudo-terminal (its output checked, then deleted)
/usr/bin/python3 "$pty_run" --raw --log "$work/reveal.log" -- "$old" reveal notes --passphrase-fd 3 3<<<"$PASS" \
	</dev/null >/dev/null
[ "$(head -c -1 "$work/reveal.log")" = "$NOTES" ] || { echo "reveal did not show the value" >&2; exit 1; }
rm -f "$work/reveal.log"

# 4. a one-shot `latch run` with the passphrase (no daemon runs): the CLI
#    records the release and the exit itself.
want_k=$(printf '%s' "$DEPLOY_KEY" | sha256sum | cut -d' ' -f1)
setsid -w "$old" run --passphrase-fd 3 --env K=latch://ci/deploy-key -- sh -c \
	'[ "$(printf %s "$K" | sha256sum | cut -d" " -f1)" = "$0" ]' "$want_k" 3<<<"$PASS" </dev/null 2>/dev/null

# Closed: no journal, schema 3, a 112-byte (version 1) sealed state, and
# the old latch verifies its own log.
[ ! -e "$vault-journal" ] || { echo "a journal was left" >&2; exit 1; }
[ "$(sqlite3 "$vault" 'PRAGMA user_version')" = 3 ] || { echo "not schema 3" >&2; exit 1; }
[ "$(sqlite3 "$vault" 'SELECT length(state) FROM audit_state')" = 112 ] || { echo "not a v1 state" >&2; exit 1; }
L audit verify >/dev/null
cp "$vault" "$work/schema3-vault.db"
"$old" audit checkpoint </dev/null >"$work/schema3-vault.checkpoint"

# 5. the rolled-back copy: db set to a third value by the old latch, then
#    its version-2 row (from the copy above) put back with sqlite.
set_secret db "$DB_V3"
# The head after that set (record 16): whoever kept it can tell the
# older copy above, put back whole, from the vault it replaced.
"$old" audit checkpoint </dev/null >"$work/schema3-rolled-back.checkpoint"
sqlite3 "$vault" "ATTACH '$work/schema3-vault.db' AS o;
	UPDATE secrets SET (version, updated, nonce, ciphertext) =
	  (SELECT version, updated, nonce, ciphertext FROM o.secrets WHERE name = 'db') WHERE name = 'db';"
[ ! -e "$vault-journal" ] || { echo "a journal was left" >&2; exit 1; }
cp "$vault" "$work/schema3-rolled-back.db"

for f in schema3-vault.checkpoint schema3-rolled-back.checkpoint; do
	install -m 0644 "$work/$f" "$out/$f"
done
for f in schema3-vault.db schema3-rolled-back.db; do
	install -m 0644 "$work/$f" "$out/$f"
	printf '%s: %s records (%s), state %s bytes, schema %s\n' "$f" \
		"$(sqlite3 "$out/$f" 'SELECT count(*) FROM audit_log')" \
		"$(sqlite3 "$out/$f" "SELECT group_concat(event, ' ') FROM (SELECT event FROM audit_log ORDER BY seq)")" \
		"$(sqlite3 "$out/$f" 'SELECT length(state) FROM audit_state')" \
		"$(sqlite3 "$out/$f" 'PRAGMA user_version')"
done
