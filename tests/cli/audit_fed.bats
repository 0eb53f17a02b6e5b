#!/usr/bin/env bats
# Federation and the audit log: a model token minted while the vault's
# broker runs is a `fed_mint` record in the broker's stream (profile, rule,
# the token's expiry, the identity token's iss/sub/jti; never a token, never
# the assertion), which verifies with the rest of the log; a token from the
# cache is no new record; without a broker nothing is recorded and no vault
# is made; a forged or malformed mint report is refused by the broker.

load helpers

setup_file() {
	fed_keys
}

setup() {
	fed_setup
}

teardown() {
	bg_cleanup
}

# af_mints: the fed_mint records, one JSON object per line.
af_mints() {
	lx audit --json --event fed_mint </dev/null || return 1
	want_status 0 || return 1
	jq -c '.[]' "$LX_OUT"
}

@test "a mint under a running broker is one fed_mint record, with the identity token's claims and never a token" {
	br_setup
	br_grant canary --cmd "$(br_real sh)"
	fed_server
	fed_idtoken -- --jti jti-audit-1 --iss https://issuer.test --sub repo:latch/latch
	fed_profile p
	br_run --fed p --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	fed_want_requests 1
	run af_mints
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	local rec=${lines[0]}
	[ "$(jq -r .event <<<"$rec")" = fed_mint ]
	[ "$(jq -r .fed.profile <<<"$rec")" = p ]
	[ "$(jq -r .fed.rule <<<"$rec")" = fdrl_test ]
	[ "$(jq -r .fed.iss <<<"$rec")" = https://issuer.test ]
	[ "$(jq -r .fed.sub <<<"$rec")" = repo:latch/latch ]
	[ "$(jq -r .fed.jti <<<"$rec")" = jti-audit-1 ]
	# The expiry recorded is the token's: now + the server's 3600 s.
	local exp now
	exp=$(jq -r .fed.expires <<<"$rec")
	now=$(date +%s)
	[ "$exp" -gt $((now + 3500)) ] && [ "$exp" -le $((now + 3600)) ]
	# The pid is the minting process's, from the socket: a latch run.
	[ "$(jq -r .pid <<<"$rec")" -gt 0 ]
	# The listing names the profile where a release names its secrets.
	lx audit --event fed_mint </dev/null
	want_status 0
	[[ $out == *" fed_mint fed:p "* ]]
	# The cached token makes no new record.
	br_run --fed p -- true
	want_status 0
	fed_want_requests 1
	run af_mints
	[ "${#lines[@]}" -eq 1 ]
	# The log verifies with the broker's fed_mint in its stream.
	au_want_verified
	# The identity token is nowhere; the access token is in the cache (its
	# one home) and in no audit record, output or other file.
	fed_canary_scan "$FED_JWT"
	sqlite3 "$VAULT" .dump >"$BATS_TEST_TMPDIR/dump.sql"
	assert_absent "$(fed_tokens_issued)" "$BATS_TEST_TMPDIR/dump.sql" "$BATS_TEST_TMPDIR"/lx.*
}

@test "latch fed token records its mint too; a second profile's mint is its own record" {
	br_setup
	br_grant canary
	fed_server
	fed_idtoken -- --no-jti
	fed_profile p
	lx fed token p </dev/null
	want_status 0
	run af_mints
	[ "${#lines[@]}" -eq 1 ]
	[ "$(jq -r '.fed.jti // "none"' <<<"${lines[0]}")" = none ]
	fed_idtoken "$BATS_TEST_TMPDIR/idtoken2" -- --jti second
	fed_profile q ".authentication.identity_token.path = \"$BATS_TEST_TMPDIR/idtoken2\""
	lx fed token q </dev/null
	want_status 0
	run af_mints
	[ "${#lines[@]}" -eq 2 ]
	[ "$(jq -r .fed.profile <<<"${lines[1]}")" = q ]
	[ "$(jq -r .fed.jti <<<"${lines[1]}")" = second ]
	au_want_verified
}

@test "without a broker a mint is not recorded and no vault is made; with a vault but no broker, none either" {
	fed_server
	fed_idtoken
	fed_profile p
	lx fed token p </dev/null
	want_status 0
	[ ! -e "$LATCH_HOME/vault.db" ]
	# A vault, but its broker stopped: still nothing, and no broker started.
	init_vault
	lx fed logout p
	want_status 0
	fed_idtoken
	lx fed token p </dev/null
	want_status 0
	fed_want_requests 2
	[ -z "$(ls "$XDG_RUNTIME_DIR"/latch/broker-*.lock 2>/dev/null)" ]
	run af_mints
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 0 ]
}

@test "the broker refuses a malformed mint report (control characters, a missing field, a long claim) and records nothing" {
	br_setup
	br_grant canary
	local sock
	sock=$(ls "$XDG_RUNTIME_DIR"/latch/broker-*.sock)
	# send JSON: one request line to the broker, print its answer.
	send() {
		"$PY" - "$sock" "$1" <<'PY'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile("rb").readline().decode().strip())
PY
	}
	local good='{"op":"mint","profile":"p","rule":"r","expires":1,"iss":"i","sub":"s","jti":"j"}'
	run send "$(jq -c '.sub = "a\u001b[31mb"' <<<"$good")"
	[[ $output == *malformed* ]]
	run send "$(jq -c 'del(.jti)' <<<"$good")"
	[[ $output == *malformed* ]]
	run send "$(jq -c --arg l "$(printf 'x%.0s' $(seq 256))" '.iss = $l' <<<"$good")"
	[[ $output == *malformed* ]]
	run send "$(jq -c '.expires = "soon"' <<<"$good")"
	[[ $output == *malformed* ]]
	run af_mints
	[ "${#lines[@]}" -eq 0 ]
	# Positive control: the same report, well formed, is recorded.
	run send "$good"
	[[ $output == *'"ok": true'* || $output == *'"ok":true'* ]]
	run af_mints
	[ "${#lines[@]}" -eq 1 ]
}
