#!/usr/bin/env bats
# The vault commands end to end: --help and usage errors, values (empty,
# binary, the 1 MiB limit, the trailing newline), passwd, rekey, rm, status.
# Values are read back with `latch reveal` under a pseudo-terminal in raw
# mode, so the comparison is byte for byte.

load helpers

teardown() {
	bg_cleanup
}

# reveal_to FILE NAME [PASSPHRASE]: reveal NAME under a raw pty (passphrase on
# fd 3) and leave the value in FILE: the terminal bytes minus the one newline
# reveal adds. Fails unless reveal exits 0 with nothing on stdout/stderr.
reveal_to() {
	local pass=${3:-$PASS}
	lpty --raw -- reveal "$2" --passphrase-fd 3 3<<<"$pass" || return 1
	want_status 0 || return 1
	want_no_stdout || return 1
	[ ! -s "$LX_ERR" ] || { echo "reveal wrote to stderr: $err" >&2; return 1; }
	if [ "$(tail -c1 "$TTY_LOG" | od -An -tx1 | tr -d ' ')" != 0a ]; then
		echo "reveal output does not end in a newline" >&2
		return 1
	fi
	head -c -1 "$TTY_LOG" >"$1" || return 1
}

# rows: id, name, version, hex(nonce)||hex(ciphertext) of every secret.
rows() {
	sqlite3 "$VAULT" "SELECT id, name, version, hex(nonce) || hex(ciphertext) FROM secrets ORDER BY id"
}

@test "every command's --help exits 0, prints to stdout only and names its options" {
	declare -A want=(
		[init]="--kdf --passphrase-fd --help interactive moderate sensitive"
		[set]="--file --passphrase-fd --help"
		[ls]="--json --help"
		[rm]="--passphrase-fd --help"
		[passwd]="--kdf --passphrase-fd --help"
		[rekey]="--passphrase-fd --help"
		[reveal]="--passphrase-fd --help"
		[status]="--json --help"
	)
	local c o
	for c in "${!want[@]}"; do
		for h in --help -h; do
			lx "$c" "$h" </dev/null
			want_status 0
			[[ "$out" == "usage: latch $c"* ]] || { echo "$c $h: no usage line: $out"; return 1; }
			[ ! -s "$LX_ERR" ] || { echo "$c $h wrote to stderr: $err"; return 1; }
			for o in ${want[$c]}; do
				[[ "$out" == *"$o"* ]] || { echo "latch $c --help does not mention $o"; return 1; }
			done
		done
	done
	# latch help CMD is the same text.
	lx help set
	want_status 0
	[[ "$out" == "usage: latch set"*"--file"* ]]
	# --help wins even with a vault that is missing.
	[ ! -e "$LATCH_HOME" ]
}

@test "usage errors exit 2 with one line on stderr, nothing on stdout, vault untouched" {
	init_vault
	set_secret a value-a
	local sha
	sha=$(vault_sha)
	local cases=(
		"init extra"
		"init --kdf"
		"init --kdf bogus"
		"init --passphrase-fd x"
		"init --frob"
		"set"
		"set a b"
		"set -x a"
		"set --frob a"
		"set bad!name"
		"set -leading-dash"
		"set a --file"
		"set a --passphrase-fd"
		"set a --passphrase-fd -1"
		"set a --passphrase-fd 3x"
		"ls extra"
		"ls --json extra"
		"ls --frob"
		"rm"
		"rm a b"
		"rm bad!name"
		"passwd extra"
		"passwd --kdf huge"
		"rekey extra"
		"rekey --passphrase-fd"
		"reveal"
		"reveal a b"
		"reveal bad!name"
		"status extra"
		"status --frob"
		"frobnicate"
		"help frobnicate"
	)
	local c
	for c in "${cases[@]}"; do
		# shellcheck disable=SC2086 # word splitting is the point
		lx $c 3<<<"$PASS" </dev/null
		[ "$status" -eq 2 ] || { echo "latch $c: expected 2, got $status: $err"; return 1; }
		want_err_line || { echo "(latch $c)"; return 1; }
		want_no_stdout || { echo "(latch $c)"; return 1; }
	done
	# A name longer than 128 characters.
	lx set "$(printf 'n%.0s' {1..129})" 3<<<"$PASS" </dev/null
	want_status 2
	want_err_line
	lx set "$(printf 'n%.0s' {1..128})" --passphrase-fd 3 3<<<"$PASS" <<<"long-name-value"
	want_status 0
	lx ls
	[[ "$out" == *"$(printf 'n%.0s' {1..128})"* ]]
	sha=$(vault_sha)
	# latch with no command: usage on stderr, exit 2.
	lx </dev/null
	want_status 2
	[ "$(vault_sha)" = "$sha" ]
}

@test "init creates an empty vault; a second init is refused and changes nothing" {
	lx init --kdf interactive --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[[ "$out" == *"$VAULT"* ]]
	lx status --json
	want_status 0
	[ "$(jq -r .state <<<"$out")" = ok ]
	[ "$(jq -r .secrets <<<"$out")" = 0 ]
	[ "$(jq -r .kdf.level <<<"$out")" = interactive ]
	[ "$(jq -r .kdf.algorithm <<<"$out")" = argon2id ]
	[ "$(jq -r .key_generation <<<"$out")" = 1 ]
	lx ls --json
	want_status 0
	[ "$(jq length <<<"$out")" = 0 ]
	local sha
	sha=$(vault_sha)
	lx init --kdf interactive --passphrase-fd 3 3<<<"other passphrase"
	want_status 3
	want_err_line "already exists"
	[ "$(vault_sha)" = "$sha" ]
	# The original passphrase still opens it.
	set_secret x y
	# A too-short passphrase is refused before anything is created.
	rm -rf "$LATCH_HOME"
	lx init --kdf interactive --passphrase-fd 3 3<<<"short"
	want_status 2
	want_err_line "too short"
	[ ! -e "$VAULT" ]
	lx init --kdf interactive --passphrase-fd 3 3<<<""
	want_status 2
	want_err_line
	[ ! -e "$VAULT" ]
}

@test "set, ls, status and rm: versions go up, rm removes, missing names are errors" {
	init_vault
	lx set alpha --passphrase-fd 3 3<<<"$PASS" <<<"one"
	want_status 0
	[[ "$out" == *"'alpha' (version 1)"* ]]
	lx set alpha --passphrase-fd 3 3<<<"$PASS" <<<"two"
	want_status 0
	[[ "$out" == *"'alpha' (version 2)"* ]]
	lx set beta/x.y_z-1 --passphrase-fd 3 3<<<"$PASS" <<<"three"
	want_status 0
	lx ls --json
	want_status 0
	[ "$(jq -r '[.[].name] | join(",")' <<<"$out")" = "alpha,beta/x.y_z-1" ]
	[ "$(jq -r '.[0].version' <<<"$out")" = 2 ]
	[ "$(jq -r '.[1].version' <<<"$out")" = 1 ]
	[[ "$(jq -r '.[0].created' <<<"$out")" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$ ]]
	lx ls
	want_status 0
	[ "$(grep -c '' "$LX_OUT")" -eq 3 ] # header + 2 rows
	lx status --json
	[ "$(jq -r .secrets <<<"$out")" = 2 ]
	reveal_to "$BATS_TEST_TMPDIR/v" alpha
	[ "$(cat "$BATS_TEST_TMPDIR/v")" = two ]

	lx rm alpha --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	lx ls --json
	[ "$(jq -r '[.[].name] | join(",")' <<<"$out")" = "beta/x.y_z-1" ]
	local sha
	sha=$(vault_sha)
	lx rm alpha --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	want_err_line "alpha"
	[ "$(vault_sha)" = "$sha" ]
	lpty --raw -- reveal alpha --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	want_err_line "alpha"
	[ ! -s "$TTY_LOG" ]
	# A new secret under a removed name starts again at version 1.
	lx set alpha --passphrase-fd 3 3<<<"$PASS" <<<"again"
	[[ "$out" == *"(version 1)"* ]]
}

@test "empty values are refused with exit 2 and store nothing" {
	init_vault
	local sha
	sha=$(vault_sha)
	: >"$BATS_TEST_TMPDIR/empty"
	lx set e --file "$BATS_TEST_TMPDIR/empty" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 2
	want_err_line "empty"
	lx set e --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 2
	want_err_line "empty"
	# A lone newline on stdin is an empty value once the newline is dropped.
	lx set e --passphrase-fd 3 3<<<"$PASS" <<<""
	want_status 2
	want_err_line "empty"
	lx set e --file - --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 2
	want_err_line "empty"
	[ "$(vault_sha)" = "$sha" ]
	lx ls --json
	[ "$(jq length <<<"$out")" = 0 ]
}

@test "a binary value with NUL bytes round-trips exactly through --file" {
	init_vault
	local v=$BATS_TEST_TMPDIR/bin
	{
		printf '\0\0lead\0'
		head -c 4096 /dev/urandom
		printf '\0\r\n\033[2J\0'
		head -c 100 /dev/zero
	} >"$v"
	[ "$(stat -c %s "$v")" -eq $((7 + 4096 + 8 + 100)) ]
	lx set blob --file "$v" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	reveal_to "$BATS_TEST_TMPDIR/got" blob
	cmp "$v" "$BATS_TEST_TMPDIR/got"
	# --file - takes stdin byte for byte too (no newline dropped).
	printf 'x\n' >"$BATS_TEST_TMPDIR/nl"
	lx set nl --file - --passphrase-fd 3 3<<<"$PASS" <"$BATS_TEST_TMPDIR/nl"
	want_status 0
	reveal_to "$BATS_TEST_TMPDIR/got" nl
	cmp "$BATS_TEST_TMPDIR/nl" "$BATS_TEST_TMPDIR/got"
	# Binary through plain stdin: exact, only a trailing newline would go.
	lx set blob2 --passphrase-fd 3 3<<<"$PASS" <"$v"
	want_status 0
	reveal_to "$BATS_TEST_TMPDIR/got" blob2
	cmp "$v" "$BATS_TEST_TMPDIR/got"
}

@test "1 MiB values round-trip; 1 MiB + 1 byte is refused with exit 2" {
	init_vault
	local max=$BATS_TEST_TMPDIR/max over=$BATS_TEST_TMPDIR/over
	head -c 1048576 /dev/urandom >"$max"
	{
		cat "$max"
		printf 'Z'
	} >"$over"
	lx set big --file "$max" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	reveal_to "$BATS_TEST_TMPDIR/got" big
	cmp "$max" "$BATS_TEST_TMPDIR/got"

	local sha
	sha=$(vault_sha)
	lx set over --file "$over" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 2
	want_err_line "1 MiB"
	want_no_stdout
	lx set over --file - --passphrase-fd 3 3<<<"$PASS" <"$over"
	want_status 2
	want_err_line "over"
	# Plain stdin: 1048577 bytes that do not end in a newline are too big...
	lx set over --passphrase-fd 3 3<<<"$PASS" <"$over"
	want_status 2
	want_err_line "over"
	# ...and so is a megabyte and a byte plus a newline.
	{
		cat "$over"
		echo
	} >"$BATS_TEST_TMPDIR/over-nl"
	lx set over --passphrase-fd 3 3<<<"$PASS" <"$BATS_TEST_TMPDIR/over-nl"
	want_status 2
	want_err_line "over"
	[ "$(vault_sha)" = "$sha" ]
	lx ls --json
	[ "$(jq -r '[.[].name] | join(",")' <<<"$out")" = big ]

	# Exactly 1 MiB plus the newline echo adds is accepted as 1 MiB.
	{
		cat "$max"
		echo
	} >"$BATS_TEST_TMPDIR/max-nl"
	lx set big2 --passphrase-fd 3 3<<<"$PASS" <"$BATS_TEST_TMPDIR/max-nl"
	want_status 0
	reveal_to "$BATS_TEST_TMPDIR/got" big2
	cmp "$max" "$BATS_TEST_TMPDIR/got"
}

@test "a value on stdin loses exactly one trailing newline" {
	init_vault
	local got=$BATS_TEST_TMPDIR/got
	echo value | latch_p set one
	reveal_to "$got" one
	[ "$(od -An -tx1 "$got" | tr -d ' \n')" = "$(printf value | od -An -tx1 | tr -d ' \n')" ]
	printf 'value\n\n' | latch_p set two >/dev/null
	reveal_to "$got" two
	[ "$(od -An -tx1 "$got" | tr -d ' \n')" = "$(printf 'value\n' | od -An -tx1 | tr -d ' \n')" ]
	printf 'value' | latch_p set three >/dev/null
	reveal_to "$got" three
	[ "$(od -An -tx1 "$got" | tr -d ' \n')" = "$(printf value | od -An -tx1 | tr -d ' \n')" ]
	printf 'a\nb\n' | latch_p set four >/dev/null
	reveal_to "$got" four
	[ "$(od -An -tx1 "$got" | tr -d ' \n')" = "$(printf 'a\nb' | od -An -tx1 | tr -d ' \n')" ]
}

@test "passwd re-wraps the key only: ciphertexts byte-identical, old passphrase refused, new one works" {
	local NEW="a new passphrase for the vault"
	init_vault
	set_secret a "value a"
	set_secret b "value b"
	printf 'v2' | latch_p set a --file - >/dev/null
	local before header_before
	before=$(rows)
	header_before=$(sqlite3 "$VAULT" "SELECT hex(kdf_salt), hex(key_nonce), hex(wrapped_key), key_generation FROM vault")
	lx ls --json
	local ls_before=$out

	lx passwd --passphrase-fd 3 3<<<"$PASS"$'\n'"$NEW"
	want_status 0
	[[ "$out" == *"Passphrase changed"* ]]
	[ "$(rows)" = "$before" ]
	local header_after
	header_after=$(sqlite3 "$VAULT" "SELECT hex(kdf_salt), hex(key_nonce), hex(wrapped_key), key_generation FROM vault")
	[ "$header_after" != "$header_before" ]
	# Salt, nonce and wrapped key are all new; the key generation is not.
	local i
	for i in 1 2 3; do
		[ "$(cut -d'|' -f$i <<<"$header_after")" != "$(cut -d'|' -f$i <<<"$header_before")" ]
	done
	[ "$(cut -d'|' -f4 <<<"$header_after")" = "$(cut -d'|' -f4 <<<"$header_before")" ]
	lx ls --json
	[ "$out" = "$ls_before" ]

	# The old passphrase is refused everywhere it is asked for.
	local sha
	sha=$(vault_sha)
	lx set c --passphrase-fd 3 3<<<"$PASS" <<<"x"
	want_status 4
	want_err_line "wrong passphrase"
	lpty --raw -- reveal a --passphrase-fd 3 3<<<"$PASS"
	want_status 4
	want_err_line
	[ ! -s "$TTY_LOG" ]
	lx passwd --passphrase-fd 3 3<<<"$PASS"$'\n'"$PASS"
	want_status 4
	[ "$(vault_sha)" = "$sha" ]

	# The new one opens the same values.
	reveal_to "$BATS_TEST_TMPDIR/got" a "$NEW"
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = v2 ]
	reveal_to "$BATS_TEST_TMPDIR/got" b "$NEW"
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = "value b" ]

	# A new passphrase that is too short is refused and changes nothing.
	sha=$(vault_sha)
	lx passwd --passphrase-fd 3 3<<<"$NEW"$'\n'"short"
	want_status 2
	want_err_line "too short"
	[ "$(vault_sha)" = "$sha" ]

	# passwd --kdf changes the cost too, still without touching a value.
	lx passwd --kdf moderate --passphrase-fd 3 3<<<"$NEW"$'\n'"$PASS"
	want_status 0
	[ "$(rows)" = "$before" ]
	lx status --json
	[ "$(jq -r .kdf.level <<<"$out")" = moderate ]
	reveal_to "$BATS_TEST_TMPDIR/got" b "$PASS"
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = "value b" ]
}

@test "rekey re-encrypts every value under a new key; values, versions and times unchanged" {
	init_vault
	set_secret a "value a"
	set_secret b "value b"
	set_secret c "value c"
	printf 'value a2' | latch_p set a --file - >/dev/null
	local before
	before=$(rows)
	lx ls --json
	local ls_before=$out
	lx status --json
	[ "$(jq -r .key_generation <<<"$out")" = 1 ]

	lx rekey --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[[ "$out" == *"Re-encrypted 3 secrets"* ]]
	local after
	after=$(rows)
	# Same rows (id, name, version), every nonce and ciphertext different.
	[ "$(cut -d'|' -f1-3 <<<"$after")" = "$(cut -d'|' -f1-3 <<<"$before")" ]
	local id old new
	for id in $(sqlite3 "$VAULT" "SELECT id FROM secrets"); do
		old=$(grep "^$id|" <<<"$before" | cut -d'|' -f4)
		new=$(grep "^$id|" <<<"$after" | cut -d'|' -f4)
		[ -n "$old" ] && [ -n "$new" ]
		[ "${old:0:48}" != "${new:0:48}" ] || { echo "nonce of row $id unchanged"; return 1; }
		[ "${old:48}" != "${new:48}" ] || { echo "ciphertext of row $id unchanged"; return 1; }
	done
	lx ls --json
	[ "$out" = "$ls_before" ]
	lx status --json
	[ "$(jq -r .key_generation <<<"$out")" = 2 ]

	reveal_to "$BATS_TEST_TMPDIR/got" a
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = "value a2" ]
	reveal_to "$BATS_TEST_TMPDIR/got" b
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = "value b" ]
	reveal_to "$BATS_TEST_TMPDIR/got" c
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = "value c" ]

	# A ciphertext from before the rekey (old data key) no longer opens.
	local old_b
	old_b=$(grep "^2|" <<<"$before" | cut -d'|' -f4)
	sql_in <<<"UPDATE secrets SET nonce = X'${old_b:0:48}', ciphertext = X'${old_b:48}' WHERE id = 2;"
	lpty --raw -- reveal b --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	want_err_line "'b'"
	[ ! -s "$TTY_LOG" ]

	# rekey of an empty vault is fine.
	rm -rf "$LATCH_HOME"
	init_vault
	lx rekey --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[[ "$out" == *"Re-encrypted 0 secrets"* ]]
}

@test "eight concurrent writers: every set succeeds and lands, versions never collide" {
	init_vault
	local pids=() i rc
	for i in 1 2 3 4 5 6 7 8; do
		"$LATCH" set "w$i" --passphrase-fd 3 3<<<"$PASS" <<<"value $i" \
			>"$BATS_TEST_TMPDIR/w$i.out" 2>"$BATS_TEST_TMPDIR/w$i.err" &
		pids+=($!)
		bg_track "$!"
	done
	for i in 1 2 3 4 5 6 7 8; do
		rc=0
		wait "${pids[$((i - 1))]}" || rc=$?
		[ "$rc" -eq 0 ] || { echo "writer $i exited $rc: $(cat "$BATS_TEST_TMPDIR/w$i.err")"; return 1; }
	done
	# Eight writers to one name: eight distinct versions, the last is 8.
	pids=()
	for i in 1 2 3 4 5 6 7 8; do
		"$LATCH" set same --passphrase-fd 3 3<<<"$PASS" <<<"same $i" \
			>"$BATS_TEST_TMPDIR/s$i.out" 2>"$BATS_TEST_TMPDIR/s$i.err" &
		pids+=($!)
		bg_track "$!"
	done
	for i in 1 2 3 4 5 6 7 8; do
		rc=0
		wait "${pids[$((i - 1))]}" || rc=$?
		[ "$rc" -eq 0 ] || { echo "writer $i exited $rc: $(cat "$BATS_TEST_TMPDIR/s$i.err")"; return 1; }
	done
	[ "$(cat "$BATS_TEST_TMPDIR"/s*.out | grep -o 'version [0-9]*' | sort -u | wc -l)" -eq 8 ]
	lx ls --json
	[ "$(jq -r '[.[].name] | join(",")' <<<"$out")" = "same,w1,w2,w3,w4,w5,w6,w7,w8" ]
	[ "$(jq -r '.[] | select(.name == "same") | .version' <<<"$out")" = 8 ]
	[ "$(sqlite3 "$VAULT" "PRAGMA integrity_check")" = ok ]
	lx rekey --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[[ "$out" == *"Re-encrypted 9 secrets"* ]]
	reveal_to "$BATS_TEST_TMPDIR/got" w5
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = "value 5" ]
}

@test "a value typed at the terminal prompt is stored whole or refused, never silently cut" {
	init_vault
	# 4000 bytes typed at the hidden prompt round-trip.
	local v
	v=$(head -c 3000 /dev/urandom | base64 -w0)
	[ "${#v}" -eq 4000 ]
	lpty --answer "Value for typed: " "$v" -- set typed --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	reveal_to "$BATS_TEST_TMPDIR/got" typed
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = "$v" ]
	# 5000 bytes: more than a terminal's canonical line holds (4095). latch
	# must store all of it or refuse; storing the first 4095 bytes and
	# saying "Stored" loses the secret without a word.
	v=$(head -c 3750 /dev/urandom | base64 -w0)
	[ "${#v}" -eq 5000 ]
	lpty --answer "Value for long: " "$v" -- set long --passphrase-fd 3 3<<<"$PASS"
	if [ "$status" -eq 0 ]; then
		reveal_to "$BATS_TEST_TMPDIR/got" long
		local n
		n=$(stat -c %s "$BATS_TEST_TMPDIR/got")
		[ "$(cat "$BATS_TEST_TMPDIR/got")" = "$v" ] ||
			{ echo "set exited 0 but stored $n of the 5000 bytes typed"; return 1; }
	else
		want_status 2
		want_err_line "long"
		lx ls --json
		[ "$(jq -r '[.[].name] | join(",")' <<<"$out")" = typed ]
	fi
}

@test "rm and a replacing set leave no trace of the old ciphertext in the file" {
	init_vault
	set_secret keep "a value that stays"
	set_secret gone "$(head -c 200 /dev/urandom | base64 -w0)"
	set_secret moved "$(head -c 200 /dev/urandom | base64 -w0)"
	local ct_gone ct_moved hexdump=$BATS_TEST_TMPDIR/hex
	ct_gone=$(sqlite3 "$VAULT" "SELECT lower(hex(ciphertext)) FROM secrets WHERE name = 'gone'")
	ct_moved=$(sqlite3 "$VAULT" "SELECT lower(hex(ciphertext)) FROM secrets WHERE name = 'moved'")
	[ "${#ct_gone}" -gt 500 ]
	od -An -tx1 -v "$VAULT" | tr -d ' \n' >"$hexdump"
	# The detector sees them while they are live.
	grep -qF "${ct_gone:40:160}" "$hexdump"
	grep -qF "${ct_moved:40:160}" "$hexdump"

	lx rm gone --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	od -An -tx1 -v "$VAULT" | tr -d ' \n' >"$hexdump"
	refute grep -qF "${ct_gone:40:160}" "$hexdump"
	set_secret moved "short now"
	od -An -tx1 -v "$VAULT" | tr -d ' \n' >"$hexdump"
	refute grep -qF "${ct_moved:40:160}" "$hexdump"
	[ ! -e "$VAULT-journal" ]
}

@test "closed stdout/stderr never let output land in the vault; a full stdout is an error" {
	# With fds 1 and 2 closed, the vault file could be opened as fd 1 and
	# the "Stored" line written into it, were they not reopened on /dev/null.
	"$LATCH" init --kdf interactive --passphrase-fd 3 3<<<"$PASS" >&- 2>&-
	"$LATCH" set a --passphrase-fd 3 3<<<"$PASS" <<<"value a" >&- 2>&-
	"$LATCH" set a --passphrase-fd 3 3<<<"$PASS" <<<"value a2" >&- 2>&-
	"$LATCH" rm a --passphrase-fd 3 3<<<"$PASS" >&- 2>&-
	"$LATCH" set b --passphrase-fd 3 3<<<"$PASS" <<<"value b" >&- 2>&-
	# A closed stdin reads as empty: refused.
	local rc=0
	"$LATCH" set c --passphrase-fd 3 3<<<"$PASS" <&- >&- 2>&- || rc=$?
	[ "$rc" -eq 2 ]
	[ "$(sqlite3 "$VAULT" "PRAGMA integrity_check")" = ok ]
	refute grep -qa "Stored\|Removed\|Created" "$VAULT"
	lx ls --json
	want_status 0
	[ "$(jq -r '[.[].name] | join(",")' <<<"$out")" = b ]
	reveal_to "$BATS_TEST_TMPDIR/got" b
	[ "$(cat "$BATS_TEST_TMPDIR/got")" = "value b" ]
	# Output that cannot be written is a failure, not a silent success.
	if [ -w /dev/full ]; then
		local args
		for args in "ls" "ls --json" "status" "status --json" "--help" "set --help"; do
			rc=0
			# shellcheck disable=SC2086
			"$LATCH" $args >/dev/full 2>"$BATS_TEST_TMPDIR/full.err" || rc=$?
			[ "$rc" -eq 3 ] || { echo "latch $args >/dev/full exited $rc"; return 1; }
			[ "$(grep -c '' "$BATS_TEST_TMPDIR/full.err")" -eq 1 ]
			grep -q "^latch: .*standard output" "$BATS_TEST_TMPDIR/full.err"
		done
	fi
}
