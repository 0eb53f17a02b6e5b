#!/usr/bin/env bats
# P2, replayed rows: a vault row put back from an older copy of the vault
# still decrypts (it was genuine once); the audit log's newest change for
# that secret is what refuses its release.

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

@test "a secret that no recorded set explains is not released" {
	init_vault
	set_secret a value-a-xyz
	# the agent deletes the set record's index rows so no change names 'a'
	sql "DELETE FROM audit_secret WHERE secret = 'a';"
	run reveal a "$BATS_TEST_TMPDIR/t"
	[ "$status" -eq 3 ]
	refute grep -q value-a-xyz "$BATS_TEST_TMPDIR/t"
	run latch_p audit verify
	[ "$status" -eq 1 ]
}
