#!/usr/bin/env bats
# A vault made by the previous release (vault schema 3, audit state
# version 1), as the real old binary wrote it (tests/data/README.md):
# the current latch opens it, migrates it to schema 5, loses nothing,
# verifies its log, upgrades its sealed state at the first release, and
# still refuses a row rolled back before the upgrade. Values are checked
# by sha256 in a child or on a terminal log, never printed. The last two
# tests are skipped: they show known bugs of the legacy upgrade (see the
# comment above them) and pass once those are fixed.

load helpers

FIXTURES=$BATS_TEST_DIRNAME/../data
# The fixtures' passphrase (replaces helpers.bash's for latch_p, br_grant).
PASS="legacy fixture passphrase"
# What the old latch wrote into schema3-vault.db (README.md).
LEGACY_RECORDS=15
LEGACY_EVENTS="init set set set set set set rm grant release exit revoke reveal release exit"
# The sealed state: nonce 24 + state + tag 16.
STATE_V1=$((24 + 72 + 16))
STATE_V2=$((24 + 128 + 16))

sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
SHA_API_TOKEN=$(sha legacy-fixture-api-token-0001)
SHA_DB_V1=$(sha legacy-fixture-db-password-v1)
SHA_DB=$(sha legacy-fixture-db-password-v2)
SHA_DB_V3=$(sha legacy-fixture-db-password-v3)
SHA_NOTES=$(sha "legacy fixture notes: spaces, punctuation; test data only")
SHA_DEPLOY_KEY=$(sha legacy-fixture-deploy-key-0002)

setup() {
	home_setup
	export LATCH_BROKER_IDLE=10
	br_runtime "$BATS_TEST_TMPDIR/rt"
}

teardown() {
	bg_cleanup
}

# use_fixture FILE: tests/data/FILE becomes this test's vault, 0600 in a
# 0700 directory; checks that it is the old format (schema 3, a version 1
# state). FIXTURE_RECORDS: its number of audit records; FIXTURE_ROWS: its
# secrets rows (id, name, version), as the old latch left them.
use_fixture() {
	mkdir -p "$LATCH_HOME"
	chmod 0700 "$LATCH_HOME"
	cp "$FIXTURES/$1" "$VAULT"
	chmod 0600 "$VAULT"
	[ "$(sql 'PRAGMA user_version')" -eq 3 ] || { echo "$1 is not a schema-3 vault" >&2; return 1; }
	[ "$(state_len)" -eq "$STATE_V1" ] || { echo "$1 has no version 1 state" >&2; return 1; }
	FIXTURE_RECORDS=$(sql 'SELECT count(*) FROM audit_log')
	FIXTURE_ROWS=$(secret_rows)
}

# secret_rows: every secrets row's id, name and version.
secret_rows() {
	sql "SELECT group_concat(id || ' ' || name || ' ' || version, ',') FROM (SELECT * FROM secrets ORDER BY id)"
}

# state_len: the size of the sealed audit state blob.
state_len() {
	sql 'SELECT length(state) FROM audit_state WHERE id = 1'
}

# records: the number of audit records in the vault.
records() {
	sql 'SELECT count(*) FROM audit_log'
}

# no_journal: the vault was closed (no -journal beside it).
no_journal() {
	[ ! -e "$VAULT-journal" ] || { echo "a -journal was left beside the vault" >&2; return 1; }
}

# values_script NAME SHA [NAME SHA]...: sets VS_ARGS (--env V0=latch://NAME
# ...) and VS_SH (a sh -c script exiting 0 when every Vi has its SHA, 9
# otherwise).
values_script() {
	local i=0
	VS_ARGS=()
	VS_SH=''
	while [ $# -gt 0 ]; do
		VS_ARGS+=(--env "V$i=latch://$1")
		VS_SH+="[ \"\$(printf %s \"\$V$i\" | sha256sum | cut -d' ' -f1)\" = $2 ] || exit 9; "
		i=$((i + 1))
		shift 2
	done
	VS_SH+='exit 0'
}

# one_shot NAME SHA [NAME SHA]...: a `latch run` with the passphrase on fd
# 3 (no broker runs) whose child checks the values; status as br_run.
one_shot() {
	values_script "$@"
	br_run --passphrase-fd 3 "${VS_ARGS[@]}" -- sh -c "$VS_SH" 3<<<"$PASS"
}

# reveal_sha NAME: `latch reveal NAME` on a raw pty; must exit 0 with
# nothing on stdout or stderr. REVEALED_SHA: the sha256 of the value shown
# (the terminal bytes minus reveal's one newline).
reveal_sha() {
	lpty --raw -- reveal "$1" --passphrase-fd 3 3<<<"$PASS" || return 1
	want_status 0 || return 1
	want_no_stdout || return 1
	[ ! -s "$LX_ERR" ] || { echo "reveal wrote to stderr: $err" >&2; return 1; }
	[ "$(tail -c1 "$TTY_LOG" | od -An -tx1 | tr -d ' ')" = 0a ] || { echo "reveal output does not end in a newline" >&2; return 1; }
	REVEALED_SHA=$(head -c -1 "$TTY_LOG" | sha256sum | cut -d' ' -f1)
}

# want_verified N: `latch audit verify --json` exits 0 with verdict
# "verified" over exactly N records.
want_verified() {
	lx audit verify --json --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0 || return 1
	/usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
assert r["verdict"] == "verified", r
assert r["records"] == int(sys.argv[2]), "%s records verified, expected %s" % (r["records"], sys.argv[2])
' "$out" "$1"
}

# br_want_err_lines N SUBSTRING...: the last br_run's stderr is exactly N
# lines, each "latch: ...", the last containing every SUBSTRING.
br_want_err_lines() {
	local n=$1 raw='' nl last s
	shift
	IFS= read -r -d '' raw <"$LX_ERR" || true
	nl=${raw//[!$'\n']/}
	last=$(tail -n1 "$LX_ERR")
	if [ "${#nl}" -ne "$n" ] || [[ "$raw" != *$'\n' ]] || grep -qv '^latch: ' "$LX_ERR"; then
		echo "expected $n lines 'latch: ...' on stderr, got:" >&2
		cat "$LX_ERR" >&2
		return 1
	fi
	for s in "$@"; do
		[[ "$last" == *"$s"* ]] || { echo "the last stderr line does not mention '$s': $last" >&2; return 1; }
	done
}

@test "a schema-3 vault opens: ls lists its secrets, the schema becomes 5 at the first open, every value is intact" {
	use_fixture schema3-vault.db
	# ls needs no passphrase, and its open migrates the file.
	lx ls --json </dev/null
	want_status 0
	/usr/bin/python3 -c '
import json, sys
got = {e["name"]: e["version"] for e in json.loads(sys.argv[1])}
want = {"api-token": 1, "ci/deploy-key": 1, "db": 2, "notes": 1}
assert got == want, "ls lists %r, expected %r" % (got, want)
# Stored before the scan index: said, never skipped silently.
scan = {e["scan"] for e in json.loads(sys.argv[1])}
assert scan == {"unindexed"}, scan
' "$out"
	[ "$(sql 'PRAGMA user_version')" -eq 6 ]
	[ "$(sql "SELECT count(*) FROM pragma_table_info('audit_log') WHERE name = 'stream'")" -eq 1 ]
	[ "$(sql 'SELECT count(*) FROM audit_log WHERE stream <> 0')" -eq 0 ]
	no_journal
	# Opening changed no row or record: the same rows (a migration may
	# rewrite the schema only).
	[ "$(secret_rows)" = "$FIXTURE_ROWS" ]
	[ "$FIXTURE_ROWS" = "1 api-token 1,2 db 2,4 notes 1,5 ci/deploy-key 1" ]
	[ "$(records)" -eq "$FIXTURE_RECORDS" ]
	# Every value, as the old latch stored it: first on a terminal (the
	# first release), then all of them to a child.
	reveal_sha notes
	[ "$REVEALED_SHA" = "$SHA_NOTES" ]
	one_shot api-token "$SHA_API_TOKEN" db "$SHA_DB" notes "$SHA_NOTES" ci/deploy-key "$SHA_DEPLOY_KEY"
	want_status 0
	# db is its version 2, not 1; the removed secret stays removed.
	one_shot db "$SHA_DB_V1"
	want_status 9
	lpty --raw -- reveal gone --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	want_err_line "no secret named 'gone'"
	[ ! -s "$TTY_LOG" ]
	no_journal
}

@test "audit verify on the migrated vault: verified, exactly the records the old latch wrote, and the old checkpoint is found" {
	use_fixture schema3-vault.db
	[ "$FIXTURE_RECORDS" -eq "$LEGACY_RECORDS" ]
	want_verified "$LEGACY_RECORDS"
	# verify migrated the file but released nothing: the state is as the
	# old latch sealed it, the log as it wrote it.
	[ "$(sql 'PRAGMA user_version')" -eq 6 ]
	[ "$(state_len)" -eq "$STATE_V1" ]
	[ "$(records)" -eq "$LEGACY_RECORDS" ]
	[ "$(sql "SELECT group_concat(event, ' ') FROM (SELECT event FROM audit_log ORDER BY seq)")" = "$LEGACY_EVENTS" ]
	# The old daemon wrote its release, exit and revoke into the main
	# chain with the writer key: they are part of what verified.
	[ "$(sql "SELECT count(*) FROM audit_log WHERE event IN ('release', 'exit', 'revoke') AND grant_id IS NOT NULL AND stream = 0")" -eq 3 ]
	# A checkpoint the old latch took names a record still there.
	lx audit verify --checkpoint "$FIXTURES/schema3-vault.checkpoint" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	[[ "$out" == *"$LEGACY_RECORDS records verified, checkpoint found"* ]]
}

@test "the first release upgrades the sealed state to version 2, once; the log verifies with the new records" {
	use_fixture schema3-vault.db
	one_shot db "$SHA_DB"
	want_status 0
	[ "$(state_len)" -eq "$STATE_V2" ]
	# The release and its exit, in the main chain, after the old records.
	[ "$(sql "SELECT group_concat(seq || ':' || event || ':' || stream, ' ') FROM audit_log WHERE seq > $LEGACY_RECORDS")" = \
		"$((LEGACY_RECORDS + 1)):release:0 $((LEGACY_RECORDS + 2)):exit:0" ]
	want_verified $((LEGACY_RECORDS + 2))
	# The state is not upgraded twice or dropped back: a second release
	# keeps 168 bytes, and verifies.
	one_shot api-token "$SHA_API_TOKEN"
	want_status 0
	[ "$(state_len)" -eq "$STATE_V2" ]
	want_verified $((LEGACY_RECORDS + 4))
	# From now on the digest guards the table: after a row is edited, a
	# release of any secret is refused.
	sql "UPDATE secrets SET version = version + 1 WHERE name = 'notes'"
	one_shot api-token "$SHA_API_TOKEN"
	want_status 125
	br_want_err_lines 2 "rolled back or edited"
	[ "$(records)" -eq $((LEGACY_RECORDS + 4)) ]
	no_journal
}

@test "a row rolled back before the upgrade: its first release is refused, nothing is released, the state stays version 1, verify reports it" {
	use_fixture schema3-rolled-back.db
	local n=$FIXTURE_RECORDS
	# reveal: exit 3, one line, nothing on the terminal.
	lpty --raw -- reveal db --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	want_no_stdout
	want_err_line "the audit log does not verify" "secret 'db'" "not what its newest recorded change left"
	[ ! -s "$TTY_LOG" ]
	# latch run: 125 (latch failed before running the child); the child
	# never ran, so it wrote no marker.
	br_run --passphrase-fd 3 --env D=latch://db -- sh -c ': >"$0"' "$BATS_TEST_TMPDIR/released" 3<<<"$PASS"
	want_status 125
	br_want_err_lines 2 "the audit log does not verify" "secret 'db'"
	[ ! -e "$BATS_TEST_TMPDIR/released" ]
	# Nor any other secret: the upgrade verifies the whole table.
	br_run --passphrase-fd 3 --env N=latch://notes -- sh -c ': >"$0"' "$BATS_TEST_TMPDIR/released" 3<<<"$PASS"
	want_status 125
	[ ! -e "$BATS_TEST_TMPDIR/released" ]
	# Nothing was recorded or sealed: no release record, the old state.
	[ "$(state_len)" -eq "$STATE_V1" ]
	[ "$(records)" -eq "$n" ]
	# verify: tampered, naming the row.
	lx audit verify --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 1
	[[ "$out$err" == *"secret 'db'"* ]]
	# A grant is refused too, and leaves no broker running.
	lx grant db --ttl 5m --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 3
	want_err_line "the audit log does not verify"
	local i f p live=1
	for ((i = 0; i < 50 && live; i++)); do
		live=0
		for f in $(br_lock_files); do
			p=$(cat "$f" 2>/dev/null)
			br_is_broker "$p" && live=1
		done
		[ "$live" -eq 0 ] || sleep 0.1
	done
	[ "$live" -eq 0 ]
	[ "$(state_len)" -eq "$STATE_V1" ]
	[ "$(records)" -eq "$n" ]
	no_journal
}

@test "a grant on the migrated vault works end to end; the log verifies with the broker's stream" {
	use_fixture schema3-vault.db
	br_grant db api-token --ttl 5m
	# The enrolment is the first release check: it upgraded the state.
	[ "$(state_len)" -eq "$STATE_V2" ]
	values_script db "$SHA_DB" api-token "$SHA_API_TOKEN"
	br_run "${VS_ARGS[@]}" -- sh -c "$VS_SH"
	want_status 0
	# The broker writes the exit record after the run returns: wait for
	# it in its stream file, then have latch audit fold the file in.
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(in_streams exit)" -eq 1 ] && break
		sleep 0.1
	done
	[ "$(in_streams exit)" -eq 1 ]
	lx audit </dev/null
	want_status 0
	# The new records: the broker's enrolment and the grant in the main
	# chain, the release and its exit in the broker's stream 1.
	[ "$(sql "SELECT group_concat(event || ':' || stream, ' ') FROM (SELECT event, stream FROM audit_log WHERE seq > $LEGACY_RECORDS AND event IN ('enrol', 'grant', 'release', 'exit') ORDER BY seq)")" = \
		"enrol:0 grant:0 release:1 exit:1" ]
	[ "$(records)" -eq $((LEGACY_RECORDS + 4)) ]
	want_verified $((LEGACY_RECORDS + 4))
	# A revoke, then the broker stopped: its stream ends, still verified.
	lx revoke --all </dev/null
	want_status 0
	local pid
	pid=$(br_broker_pid)
	stop_pid "$pid"
	lx audit </dev/null # folds the stream's last records in
	want_status 0
	want_verified "$(records)"
	[ "$(sql "SELECT count(*) FROM audit_log WHERE event = 'stop' AND stream = 1")" -eq 1 ]
	no_journal
}

@test "a checkpoint the old latch took still exposes the vault put back whole from an older copy, after the migration" {
	# schema3-vault.db is the copy taken before record 16 (the last set of
	# db); schema3-rolled-back.checkpoint names record 16.
	use_fixture schema3-vault.db
	lx audit verify --checkpoint "$FIXTURES/schema3-rolled-back.checkpoint" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 1
	[[ "$out$err" == *"truncated or rolled back"* ]]
	[ "$(sql 'PRAGMA user_version')" -eq 6 ]
	# The rolled-back vault itself does hold record 16: the checkpoint is
	# found, and the rolled-back row is what fails.
	use_fixture schema3-rolled-back.db
	lx audit verify --checkpoint "$FIXTURES/schema3-rolled-back.checkpoint" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 1
	[[ "$out$err" == *"secret 'db'"* ]]
}

# Known bugs: each test below fails on this commit (remove its skip line to
# see it). On a version 1 state, set and rm neither check the row they
# replace nor follow a digest (digest_update skips version 1), and the
# one full verification at the first release checks each row's id and
# version against its newest set only.

@test "a set over a row rolled back before the upgrade does not hide the rollback (known bug)" {
	use_fixture schema3-rolled-back.db
	# Before: verify reports the rolled-back row.
	lx audit verify --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 1
	# The user sets a new value. (Refusing this set would be a fix too.)
	printf '%s' legacy-fixture-db-password-v4 >"$BATS_TEST_TMPDIR/v4"
	lx set db --file - --passphrase-fd 3 3<<<"$PASS" <"$BATS_TEST_TMPDIR/v4"
	# A vault with a version 2 state refuses every release after this (its
	# digest no longer matches the table) and verify reports it; the
	# legacy vault should too.
	one_shot notes "$SHA_NOTES"
	want_status 125
	lx audit verify --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 1
}

@test "a stale value put back at a version number re-used after a rollback is not released (known bug)" {
	use_fixture schema3-vault.db
	local stale=legacy-fixture-db-password-v3-stale fresh=legacy-fixture-db-password-v4-fresh
	cp "$VAULT" "$BATS_TEST_TMPDIR/a.db" # db at version 2
	printf '%s' "$stale" | latch_p set db --file - >/dev/null # version 3
	cp "$VAULT" "$BATS_TEST_TMPDIR/b.db" # db at version 3: the stale value
	# The agent puts version 2 back; the user, none the wiser, sets a new
	# value: it is version 3 again.
	sql "ATTACH '$BATS_TEST_TMPDIR/a.db' AS o;
	     UPDATE secrets SET (version, updated, nonce, ciphertext) =
	       (SELECT version, updated, nonce, ciphertext FROM o.secrets WHERE name = 'db') WHERE name = 'db';"
	printf '%s' "$fresh" >"$BATS_TEST_TMPDIR/fresh"
	lx set db --file - --passphrase-fd 3 3<<<"$PASS" <"$BATS_TEST_TMPDIR/fresh"
	if [ "$status" -ne 0 ]; then
		# Fixed by refusing a set over a rolled-back row: no version 3 is
		# made twice, and the stale value is the newest recorded one.
		want_status 3
		return 0
	fi
	[ "$(sql "SELECT version FROM secrets WHERE name = 'db'")" -eq 3 ]
	# The agent puts the stale version 3 back: same id, version and name,
	# so it decrypts.
	sql "ATTACH '$BATS_TEST_TMPDIR/b.db' AS o;
	     UPDATE secrets SET (version, updated, nonce, ciphertext) =
	       (SELECT version, updated, nonce, ciphertext FROM o.secrets WHERE name = 'db') WHERE name = 'db';"
	# The first release must not hand out the stale value (the child
	# writes the marker only if it got it).
	br_run --passphrase-fd 3 --env D=latch://db -- sh -c \
		'[ "$(printf %s "$D" | sha256sum | cut -d" " -f1)" = "$1" ] && : >"$0"' \
		"$BATS_TEST_TMPDIR/stale-released" "$(sha "$stale")" 3<<<"$PASS"
	[ ! -e "$BATS_TEST_TMPDIR/stale-released" ]
	want_status 125
	lx audit verify --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 1
}
