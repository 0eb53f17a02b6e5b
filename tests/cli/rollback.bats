#!/usr/bin/env bats
# P2, replayed rows: a vault row put back from an older copy of the vault
# still decrypts (it was genuine once); the keyed digest of the secrets
# table that the audit log's sealed state carries is what refuses its
# release, read through the table itself, never an index.

load helpers

PTY=${BATS_TEST_DIRNAME}/pty_run.py

reveal() { # reveal NAME LOG: reveal under a pty, terminal output to LOG
	/usr/bin/python3 "$PTY" --raw --log "$2" -- "$LATCH" reveal "$1" --passphrase-fd 3 3<<<"$PASS"
}

@test "a row rolled back to an older version is not released" {
	init_vault
	set_secret db old-value-xyz
	cp "$VAULT" "$BATS_TEST_TMPDIR/old.db"
	set_secret db new-value-xyz
	run reveal db "$BATS_TEST_TMPDIR/t1"
	[ "$status" -eq 0 ]
	grep -q new-value-xyz "$BATS_TEST_TMPDIR/t1"
	sql "ATTACH '$BATS_TEST_TMPDIR/old.db' AS o;
	     UPDATE secrets SET (version, nonce, ciphertext) =
	       (SELECT version, nonce, ciphertext FROM o.secrets WHERE name = 'db') WHERE name = 'db';"
	run reveal db "$BATS_TEST_TMPDIR/t2"
	[ "$status" -eq 3 ]
	grep -q "rolled back" "$BATS_TEST_TMPDIR/t2"
	refute grep -q old-value-xyz "$BATS_TEST_TMPDIR/t2"
	# the refused release left no reveal record
	run "$LATCH" audit --event reveal --json
	[ "$(grep -c '"seq"' <<<"$output")" -eq 1 ]
}

@test "a removed secret brought back is not released" {
	init_vault
	set_secret gone gone-value-xyz
	cp "$VAULT" "$BATS_TEST_TMPDIR/old.db"
	latch_p rm gone >/dev/null
	sql "ATTACH '$BATS_TEST_TMPDIR/old.db' AS o;
	     INSERT INTO secrets SELECT * FROM o.secrets WHERE name = 'gone';"
	run reveal gone "$BATS_TEST_TMPDIR/t"
	[ "$status" -eq 3 ]
	refute grep -q gone-value-xyz "$BATS_TEST_TMPDIR/t"
}

@test "deleting the index rows of a secret's recorded changes neither lets a rolled-back row out nor goes unnoticed" {
	init_vault
	set_secret a value-a-old
	cp "$VAULT" "$BATS_TEST_TMPDIR/old.db"
	set_secret a value-a-xyz
	# The agent deletes every index row naming 'a' (the release check once
	# read these to find the newest set) and puts the old row back.
	sql "DELETE FROM audit_secret WHERE secret = 'a';
	     ATTACH '$BATS_TEST_TMPDIR/old.db' AS o;
	     UPDATE secrets SET (version, nonce, ciphertext) =
	       (SELECT version, nonce, ciphertext FROM o.secrets WHERE name = 'a') WHERE name = 'a';"
	run reveal a "$BATS_TEST_TMPDIR/t"
	[ "$status" -eq 3 ]
	grep -q "rolled back" "$BATS_TEST_TMPDIR/t"
	refute grep -q value-a-old "$BATS_TEST_TMPDIR/t"
	run latch_p audit verify
	[ "$status" -eq 1 ]
}

@test "index rows deleted alone: the release check does not read them (the row is the one recorded), verify reports them" {
	init_vault
	set_secret a value-a-xyz
	sql "DELETE FROM audit_secret WHERE secret = 'a';"
	# The row is what the sealed digest of the recorded changes says: the
	# current value is released, as it would be without the edit.
	run reveal a "$BATS_TEST_TMPDIR/t"
	[ "$status" -eq 0 ]
	grep -q value-a-xyz "$BATS_TEST_TMPDIR/t"
	run latch_p audit verify
	[ "$status" -eq 1 ]
	[[ "$output" == *"index entries"* ]]
}

@test "an index rebuilt to hide a release from 'latch audit --secret' (its SQL text put back) fails verify" {
	init_vault
	set_secret a value-a-xyz
	run reveal a "$BATS_TEST_TMPDIR/t"
	[ "$status" -eq 0 ]
	local seq
	seq=$(sql "SELECT max(seq) FROM audit_log WHERE event = 'reveal'")
	run "$LATCH" audit --secret a --json
	[ "$status" -eq 0 ] && [[ "$output" == *'"event":"reveal"'* ]] # control: listed
	# The agent rebuilds the index to leave the reveal out, then puts the
	# index's original SQL text back so the schema looks untouched.
	sqlite3 "$VAULT" "DROP INDEX audit_secret_name;
		CREATE INDEX audit_secret_name ON audit_secret (secret, time) WHERE seq <> $seq;
		PRAGMA writable_schema = ON;
		UPDATE sqlite_master SET sql = 'CREATE INDEX audit_secret_name ON audit_secret (secret, time)'
		  WHERE name = 'audit_secret_name';"
	run "$LATCH" audit --secret a --json
	[ "$status" -eq 0 ]
	[[ "$output" != *'"event":"reveal"'* ]] # the attack works on the query
	run latch_p audit verify
	[ "$status" -eq 1 ]
	[[ "$output" == *"indexes disagree with its tables"* ]]
}
