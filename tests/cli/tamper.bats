#!/usr/bin/env bats
# P2: edited, swapped or replayed ciphertexts and parameters fail closed with
# a clear one-line error (exit 3), never a crash, and a failed command leaves
# the file as it was. Edits are made the way an attacker with write access
# would: with the sqlite3 CLI, rewriting blobs as X'..' literals.

load helpers

teardown() {
	bg_cleanup
}

# A vault with three secrets; b (the middle row) is the one tampered with,
# so a rekey has already re-encrypted a when it reaches b.
setup_three() {
	init_vault
	set_secret a "value of a"
	set_secret b "value of b, the target"
	set_secret c "value of c"
	cp -p "$VAULT" "$BATS_TEST_TMPDIR/pristine.db"
}

restore() {
	cp "$BATS_TEST_TMPDIR/pristine.db" "$VAULT"
	rm -f "$VAULT-journal"
}

# value_refused NAME [REKEY_NAME]: reveal NAME (under a pty) and rekey both
# fail with exit 3 and one line naming NAME (rekey stops at the first bad
# row: REKEY_NAME when that is another damaged one); the failed rekey leaves
# the file as it was; nothing reaches the terminal.
value_refused() {
	local name=$1 sha
	sha=$(vault_sha)
	lx rekey --passphrase-fd 3 3<<<"$PASS" || return 1
	want_status 3 || return 1
	want_err_line "'${2:-$name}'" || return 1
	want_no_stdout || return 1
	[ "$(vault_sha)" = "$sha" ] || { echo "failed rekey changed the vault file"; return 1; }
	lpty --raw -- reveal "$name" --passphrase-fd 3 3<<<"$PASS" || return 1
	want_status 3 || return 1
	want_err_line "'$name'" || return 1
	want_no_stdout || return 1
	[ ! -s "$TTY_LOG" ] || { echo "reveal wrote to the terminal: $(cat "$TTY_LOG")"; return 1; }
}

# reveal_is NAME VALUE: reveal under a raw pty shows exactly VALUE.
reveal_is() {
	lpty --raw -- reveal "$1" --passphrase-fd 3 3<<<"$PASS" || return 1
	want_status 0 || return 1
	[ "$(cat "$TTY_LOG")" = "$2" ] || { echo "reveal $1: got '$(cat "$TTY_LOG")', want '$2'"; return 1; }
}

# all_refused [SUBSTRING]...: the commands that open the vault (ls, status,
# set, reveal) fail with exit 3 and one line on stderr that mentions the
# vault and each SUBSTRING; none of them changes the file. With ALL=1, also
# ls --json, status --json, set of an existing name, rm, passwd and rekey.
all_refused() {
	local sha
	sha=$(vault_sha)
	lx ls || return 1
	want_status 3 || return 1
	want_err_line vault "$@" || return 1
	lx status || return 1
	want_status 3 || return 1
	want_err_line vault "$@" || return 1
	[[ "$out" == *unusable* ]] || return 1
	lx set new --passphrase-fd 3 3<<<"$PASS" <<<"a value" || return 1
	want_status 3 || return 1
	want_err_line vault "$@" || return 1
	lpty --raw -- reveal a --passphrase-fd 3 3<<<"$PASS" || return 1
	want_status 3 || return 1
	want_err_line vault "$@" || return 1
	[ ! -s "$TTY_LOG" ] || return 1
	if [ "${ALL:-0}" = 1 ]; then
		lx ls --json || return 1
		want_status 3 || return 1
		want_err_line vault "$@" || return 1
		lx status --json || return 1
		want_status 3 || return 1
		want_err_line vault "$@" || return 1
		[ "$(jq -r .state <<<"$out")" = unusable ] || return 1
		lx set a --passphrase-fd 3 3<<<"$PASS" <<<"a value" || return 1
		want_status 3 || return 1
		want_err_line vault "$@" || return 1
		lx rm a --passphrase-fd 3 3<<<"$PASS" || return 1
		want_status 3 || return 1
		want_err_line vault "$@" || return 1
		lx passwd --passphrase-fd 3 3<<<"$PASS"$'\n'"$PASS-new" || return 1
		want_status 3 || return 1
		want_err_line vault "$@" || return 1
		lx rekey --passphrase-fd 3 3<<<"$PASS" || return 1
		want_status 3 || return 1
		want_err_line vault "$@" || return 1
	fi
	[ "$(vault_sha)" = "$sha" ] || { echo "a refused command changed the vault file"; return 1; }
}

# header_check_hex: the unkeyed header checksum recomputed from the row,
# as anyone who can write the file can do (vault/seal.c header_checksum).
header_check_hex() {
	/usr/bin/python3 - "$VAULT" <<'EOF'
import hashlib, sqlite3, struct, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
vid, created, alg, ops, mem, salt, gen, nonce, wk = db.execute(
    "SELECT vault_id, created, kdf_alg, kdf_opslimit, kdf_memlimit, kdf_salt,"
    " key_generation, key_nonce, wrapped_key FROM vault WHERE id = 1").fetchone()
u64 = lambda v: struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)
h = hashlib.blake2b(digest_size=16)
h.update(b"latch-header-v1\0")
h.update(b"latch-key-v1\0" + vid + u64(alg) + u64(ops) + u64(mem) + salt + u64(gen))
h.update(u64(created))
h.update(nonce)
h.update(wk)
print(h.hexdigest().upper())
EOF
}

# forge_check: rewrite header_check to match the (edited) header.
forge_check() {
	local hex
	hex=$(header_check_hex)
	sql_in <<<"UPDATE vault SET header_check = X'$hex' WHERE id = 1;"
}

@test "a flipped byte in a value's nonce: reveal and rekey fail naming the secret; rekey leaves the file as it was" {
	setup_three
	local pos
	for pos in 0 12 23; do
		restore
		flip_blob secrets nonce "name = 'b'" "$pos"
		value_refused b || { echo "(nonce byte $pos)"; return 1; }
	done
	# The others are untouched and still open.
	reveal_is a "value of a"
	reveal_is c "value of c"
}

@test "a flipped byte in a value's ciphertext or tag: reveal and rekey fail naming the secret" {
	setup_three
	local len pos
	len=$(sqlite3 "$VAULT" "SELECT length(ciphertext) FROM secrets WHERE name = 'b'")
	[ "$len" -eq $((22 + 16)) ]
	for pos in 0 21 22 -1; do
		restore
		flip_blob secrets ciphertext "name = 'b'" "$pos" || return 1
		value_refused b || { echo "(ciphertext byte $pos)"; return 1; }
	done
	# Another bit of the same byte, and a whole-byte inversion.
	restore
	flip_blob secrets ciphertext "name = 'b'" 5 0x80
	value_refused b
	restore
	flip_blob secrets ciphertext "name = 'b'" -3 0xff
	value_refused b
	reveal_is a "value of a"
}

@test "truncated, extended or mis-sized nonce and ciphertext blobs fail closed" {
	setup_three
	local edits=(
		"ciphertext = substr(ciphertext, 1, length(ciphertext) - 1)"
		"ciphertext = ciphertext || X'00'"
		"ciphertext = substr(ciphertext, 1, 16)"
		"ciphertext = X''"
		"nonce = substr(nonce, 1, 23)"
		"nonce = 7"
	)
	local e
	for e in "${edits[@]}"; do
		restore
		sql_in <<<"UPDATE secrets SET $e WHERE name = 'b';"
		value_refused b || { echo "(edit: $e)"; return 1; }
	done
}

@test "swapped, copied, renamed or re-versioned rows fail: values are bound to their row" {
	setup_three
	# Swap b's and c's nonce+ciphertext.
	sql_in <<<"BEGIN;
		CREATE TEMP TABLE t AS SELECT name, nonce, ciphertext FROM secrets WHERE name IN ('b', 'c');
		UPDATE secrets SET nonce = (SELECT nonce FROM t WHERE name = 'c'),
			ciphertext = (SELECT ciphertext FROM t WHERE name = 'c') WHERE name = 'b';
		UPDATE secrets SET nonce = (SELECT nonce FROM t WHERE name = 'b'),
			ciphertext = (SELECT ciphertext FROM t WHERE name = 'b') WHERE name = 'c';
		COMMIT;"
	value_refused b
	value_refused c b
	reveal_is a "value of a"

	# Copy a's blobs over b: b fails, a still opens.
	restore
	sql_in <<<"UPDATE secrets SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM secrets WHERE name = 'a') WHERE name = 'b';"
	value_refused b
	reveal_is a "value of a"

	# Rename the row: the name is bound.
	restore
	sqlite3 "$VAULT" "UPDATE secrets SET name = 'bb' WHERE name = 'b'"
	value_refused bb

	# Swap the names of two rows (so each name points at the other's value).
	restore
	sql_in <<<"BEGIN; UPDATE secrets SET name = 'tmp' WHERE name = 'b';
		UPDATE secrets SET name = 'b' WHERE name = 'c';
		UPDATE secrets SET name = 'c' WHERE name = 'tmp'; COMMIT;"
	value_refused b c
	value_refused c

	# Change the version: the version is bound.
	restore
	sqlite3 "$VAULT" "UPDATE secrets SET version = 2 WHERE name = 'b'"
	value_refused b

	# Change the row id: the id is bound.
	restore
	sqlite3 "$VAULT" "UPDATE secrets SET id = 100 WHERE name = 'b'"
	value_refused b
}

@test "replaying a secret's older ciphertext at its current version fails" {
	init_vault
	set_secret b "first value"
	local old
	old=$(sqlite3 "$VAULT" "SELECT hex(nonce) || '|' || hex(ciphertext) FROM secrets WHERE name = 'b'")
	printf 'second value' | latch_p set b --file - >/dev/null
	sql_in <<<"UPDATE secrets SET nonce = X'${old%|*}', ciphertext = X'${old#*|}' WHERE name = 'b';"
	value_refused b
	latch_p rm b >/dev/null
	# The ciphertext of a removed secret does not open under a new secret
	# of the same name either (ids are never reused).
	set_secret gone "gone value"
	old=$(sqlite3 "$VAULT" "SELECT hex(nonce) || '|' || hex(ciphertext) FROM secrets WHERE name = 'gone'")
	latch_p rm gone >/dev/null
	set_secret gone "new value"
	sql_in <<<"UPDATE secrets SET nonce = X'${old%|*}', ciphertext = X'${old#*|}' WHERE name = 'gone';"
	value_refused gone
}

@test "a flipped byte in the wrapped key, key nonce, salt, vault id or checksum: every command refuses (exit 3)" {
	setup_three
	local col pos
	local ALL=1
	for col in "wrapped_key 0" "wrapped_key -1" "key_nonce 0" "key_nonce -1" \
		"kdf_salt 0" "vault_id 3" "header_check 0"; do
		restore
		# shellcheck disable=SC2086
		flip_blob vault ${col% *} "id = 1" ${col#* }
		all_refused "corrupt" || { echo "(flipped $col)"; return 1; }
		ALL=0
	done
}

@test "changed KDF parameters, algorithm, key generation or creation time: every command refuses (exit 3)" {
	setup_three
	local e ALL=1
	for e in "kdf_opslimit = 3" "kdf_opslimit = 4294967295" "kdf_memlimit = 268435456" \
		"kdf_memlimit = 1" "kdf_alg = 1" "kdf_alg = 'argon2id'" \
		"key_generation = 2" "created = created + 1" "wrapped_key = X''"; do
		restore
		sqlite3 "$VAULT" "UPDATE vault SET $e WHERE id = 1"
		all_refused || { echo "(vault edit: $e)"; return 1; }
		ALL=0
	done
}

@test "an attacker who also fixes the header checksum still gets nothing: refused or wrong passphrase" {
	setup_three
	# The test's model of the checksum matches the product's.
	[ "$(header_check_hex)" = "$(sqlite3 "$VAULT" "SELECT hex(header_check) FROM vault")" ] ||
		{ echo "header checksum model out of date with vault/seal.c"; return 1; }

	# Out-of-range parameters are refused by every command, quickly, before
	# any key derivation (a forged 2^32-pass or 1 TiB Argon2id never runs).
	local e
	for e in "kdf_alg = 1|Argon2id" "kdf_memlimit = 8192|floor" \
		"kdf_opslimit = 4294967295|high" "kdf_memlimit = -1|high"; do
		restore
		sqlite3 "$VAULT" "UPDATE vault SET ${e%|*} WHERE id = 1"
		forge_check
		if [ -n "${e#*|}" ]; then
			all_refused "${e#*|}" || { echo "(forged: ${e%|*})"; return 1; }
		else
			all_refused || { echo "(forged: ${e%|*})"; return 1; }
		fi
	done

	# Plausible edits: the header reads, but nothing unlocks. ls and status
	# still work; set, passwd, rekey and reveal fail closed and change
	# nothing.
	for e in "kdf_opslimit = 3" "kdf_salt = X'$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')'" \
		"vault_id = X'$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')'"; do
		restore
		sqlite3 "$VAULT" "UPDATE vault SET $e WHERE id = 1"
		forge_check
		local sha
		sha=$(vault_sha)
		lx ls
		want_status 0
		lx status
		want_status 0
		lx set a --passphrase-fd 3 3<<<"$PASS" <<<"replaced"
		[ "$status" -eq 3 ] || [ "$status" -eq 4 ] || { echo "set after forged '$e': $status"; return 1; }
		want_err_line
		lx rekey --passphrase-fd 3 3<<<"$PASS"
		[ "$status" -eq 3 ] || [ "$status" -eq 4 ] || { echo "rekey after forged '$e': $status"; return 1; }
		want_err_line
		lx passwd --passphrase-fd 3 3<<<"$PASS"$'\n'"$PASS-new"
		[ "$status" -eq 3 ] || [ "$status" -eq 4 ] || { echo "passwd after forged '$e': $status"; return 1; }
		want_err_line
		lpty --raw -- reveal b --passphrase-fd 3 3<<<"$PASS"
		[ "$status" -eq 3 ] || [ "$status" -eq 4 ] || { echo "reveal after forged '$e': $status"; return 1; }
		want_err_line
		[ ! -s "$TTY_LOG" ]
		[ "$(vault_sha)" = "$sha" ]
	done
	# Edits to the flipped wrapped key with a fixed checksum fail the same way.
	restore
	flip_blob vault wrapped_key "id = 1" 9
	forge_check
	lpty --raw -- reveal b --passphrase-fd 3 3<<<"$PASS"
	[ "$status" -eq 3 ] || [ "$status" -eq 4 ]
	want_err_line
	[ ! -s "$TTY_LOG" ]
}

@test "a vault with a newer schema (user_version) is refused and left exactly as it is" {
	setup_three
	sqlite3 "$VAULT" "PRAGMA user_version = 99"
	ALL=1 all_refused "newer" "99"
	restore
	sqlite3 "$VAULT" "PRAGMA user_version = 2147483647"
	all_refused "newer"
}

@test "damaged files: not a database, empty, truncated, no header row, no secrets table" {
	setup_three
	local sha
	# Random bytes.
	head -c 8192 /dev/urandom >"$VAULT"
	all_refused
	# An empty file.
	: >"$VAULT"
	all_refused
	# A text file.
	echo "this is not a vault" >"$VAULT"
	all_refused
	# user_version 0: an sqlite file that is not a latch vault.
	restore
	sqlite3 "$VAULT" "PRAGMA user_version = 0"
	all_refused
	# No header row.
	restore
	sqlite3 "$VAULT" "DELETE FROM vault"
	all_refused "header"
	# Two header rows are impossible (CHECK id = 1); a dropped secrets table:
	restore
	sqlite3 "$VAULT" "DROP TABLE secrets"
	sha=$(vault_sha)
	lx ls
	want_status 3
	want_err_line
	lx set x --passphrase-fd 3 3<<<"$PASS" <<<"value"
	want_status 3
	want_err_line
	lx rekey --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	want_err_line
	[ "$(vault_sha)" = "$sha" ]
	# Truncated to its first page.
	restore
	head -c 4096 "$BATS_TEST_TMPDIR/pristine.db" >"$VAULT"
	sha=$(vault_sha)
	lx ls
	[ "$status" -ne 0 ]
	want_err_line
	lx rekey --passphrase-fd 3 3<<<"$PASS"
	[ "$status" -ne 0 ]
	want_err_line
	lpty --raw -- reveal b --passphrase-fd 3 3<<<"$PASS"
	[ "$status" -ne 0 ]
	[ ! -s "$TTY_LOG" ]
	[ "$(vault_sha)" = "$sha" ]
}

@test "an impossible stored version (at its limit, zero, negative): set refuses, never overflows" {
	setup_three
	local v sha
	for v in 9223372036854775807 0 -1; do
		restore
		sqlite3 "$VAULT" "UPDATE secrets SET version = $v WHERE name = 'b'"
		sha=$(vault_sha)
		lx set b --passphrase-fd 3 3<<<"$PASS" <<<"next value"
		want_status 3 || { echo "(version $v)"; return 1; }
		want_err_line "'b'"
		[ "$(vault_sha)" = "$sha" ]
		# The row's value is bound to its old version: it does not open.
		value_refused b
	done
}

@test "a secret name edited to hold terminal escapes is never printed" {
	setup_three
	sqlite3 "$VAULT" "UPDATE secrets SET name = 'b' || char(27) || ']0;owned' || char(7) || char(27) || '[2J' WHERE name = 'b'"
	local sha
	sha=$(vault_sha)
	for args in "ls" "ls --json"; do
		# shellcheck disable=SC2086
		lx $args
		want_status 3
		want_err_line
		if grep -qa $'\033' "$LX_OUT" "$LX_ERR"; then
			echo "latch $args printed an escape sequence from the file"
			return 1
		fi
	done
	lx rekey --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	want_err_line
	refute grep -qa $'\033' "$LX_OUT" "$LX_ERR"
	[ "$(vault_sha)" = "$sha" ]
}
