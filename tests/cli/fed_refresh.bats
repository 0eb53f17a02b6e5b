#!/usr/bin/env bats
# Federation, tokens over time: a cached token is reused while more than
# 120 s remain, refreshed in its last 120 s (the old one still handed out
# if the refresh fails and more than 30 s remain), never handed out with
# 30 s or less; --fed-file gives the child an Anthropic configuration
# directory whose credentials the waiting `latch run` rewrites before the
# old token expires, removed when the child exits. The server's
# expires_in is small (125 s, 40 s) so the windows come in seconds.

load helpers

setup_file() {
	fed_keys
}

setup() {
	fed_setup
	fed_server
	fed_idtoken
	fed_profile p
}

teardown() {
	bg_cleanup
}

@test "in the last 120 s: a failed refresh still returns the old token (more than 30 s left); a good one returns a new token" {
	echo 125 >"$FED_DIR/expires_in"
	lx fed token p </dev/null
	want_status 0
	local tok1=$out t1
	t1=$(date +%s)
	[ "$tok1" = "$(fed_tokens_issued)" ]
	# More than 120 s left: the cache, even with a new identity token there.
	fed_idtoken
	lx fed token p </dev/null
	want_status 0
	[ "$out" = "$tok1" ]
	fed_want_requests 1
	# Into the refresh window (expires_at - 120 <= t1 + 6).
	br_wait_past $((t1 + 5))
	fed_script "status 503"
	lx fed token p </dev/null
	want_status 0
	[ "$out" = "$tok1" ]
	fed_want_requests 2
	fed_reqs 'assert r[1]["action"] == "status 503" and r[1]["verdict"] == "ok", r[1]'
	# A new identity token (that jti is spent) and a server that answers.
	fed_idtoken
	lx fed token p </dev/null
	want_status 0
	local tok2=$out
	fed_want_requests 3
	[ "$tok2" != "$tok1" ]
	[ "$tok2" = "$(fed_tokens_issued | tail -n 1)" ]
	# The new one is cached: no request.
	lx fed token p </dev/null
	want_status 0
	[ "$out" = "$tok2" ]
	fed_want_requests 3
}

@test "30 s or less left and the refresh fails: no token (fed token exits 3, run exits 125 before the child)" {
	echo 40 >"$FED_DIR/expires_in"
	lx fed token p </dev/null
	want_status 0
	local tok1=$out t1
	t1=$(date +%s)
	# expires_at < t1 + 41, so from t1 + 11 at most 29 s remain.
	br_wait_past $((t1 + 10))
	fed_idtoken
	fed_script "status 503"
	lx fed token p </dev/null
	want_status 3
	want_err_line
	want_no_stdout
	fed_want_requests 2
	fed_idtoken
	fed_script "status 503"
	br_run --fed p -- sh -c 'printf "%s\n" "$ANTHROPIC_AUTH_TOKEN" >"$0"' "$BATS_TEST_TMPDIR/child"
	want_status 125
	want_err_line
	[ ! -e "$BATS_TEST_TMPDIR/child" ]
	fed_want_requests 3
	# Control: a refresh that works gives a new token.
	fed_idtoken
	lx fed token p </dev/null
	want_status 0
	[ "$out" != "$tok1" ]
	[ "$out" = "$(fed_tokens_issued | tail -n 1)" ]
}

@test "--fed-file: the child gets a private configuration directory, no ANTHROPIC_AUTH_TOKEN; the credentials are refreshed before expiry; the directory goes with the child" {
	echo 125 >"$FED_DIR/expires_in"
	local o=$BATS_TEST_TMPDIR/child script=$BATS_TEST_TMPDIR/child.sh
	mkdir "$o"
	fed_jwt >"$BATS_TEST_TMPDIR/idtoken.next"
	# The child records what it got, swaps in a new identity token for
	# the refresh, then waits (at most 30 s) for the credentials to change.
	cat >"$script" <<'EOF'
o=$1
d=$ANTHROPIC_CONFIG_DIR
printf '%s\n' "$d" >"$o/dir"
printf '%s\n' "${ANTHROPIC_PROFILE-unset}" >"$o/profile"
if [ "${ANTHROPIC_AUTH_TOKEN+set}" = set ]; then echo yes; else echo no; fi >"$o/has_auth"
cred=$d/credentials/$ANTHROPIC_PROFILE.json
cp "$cred" "$o/cred1.json"
cp "$d/configs/$ANTHROPIC_PROFILE.json" "$o/config.json"
stat -c %a "$cred" >"$o/cred_mode"
stat -c %a "$d" >"$o/dir_mode"
mv "$2" "$3"
first=$(jq -r .access_token "$o/cred1.json")
i=0
while [ $i -lt 300 ]; do
	if t=$(jq -er .access_token "$cred" 2>/dev/null); then
		if [ "$t" != "$first" ]; then
			cp "$cred" "$o/cred2.json"
			date +%s >"$o/t2"
			exit 0
		fi
	else
		echo torn >>"$o/torn"
	fi
	sleep 0.1
	i=$((i + 1))
done
exit 7
EOF
	BR_ENV=(ANTHROPIC_AUTH_TOKEN=sk-ant-oat01-parent)
	br_run --fed p --fed-file -- sh "$script" "$o" "$BATS_TEST_TMPDIR/idtoken.next" "$BATS_TEST_TMPDIR/idtoken"
	want_status 0
	[ "$(cat "$o/has_auth")" = no ]
	[ "$(cat "$o/profile")" = p ]
	local d tok1 tok2
	d=$(cat "$o/dir")
	[[ "$d" == "$XDG_RUNTIME_DIR"/latch/fed/* ]] || { echo "the directory is $d" >&2; return 1; }
	[ ! -e "$d" ]
	[ "$(cat "$o/dir_mode")" = 700 ]
	[ "$(cat "$o/cred_mode")" = 600 ]
	[ ! -e "$o/torn" ]
	jq -e '.authentication.type == "user_oauth"' "$o/config.json" >/dev/null
	fed_want_requests 2
	tok1=$(fed_tokens_issued | head -n 1)
	tok2=$(fed_tokens_issued | tail -n 1)
	[ "$tok1" != "$tok2" ]
	jq -e --arg t "$tok1" '.version == "1.0" and .type == "oauth_token" and .access_token == $t
		and (.expires_at | type) == "number"' "$o/cred1.json" >/dev/null
	jq -e --arg t "$tok2" '.access_token == $t' "$o/cred2.json" >/dev/null
	# Rewritten before the old token expired, with a later expiry.
	[ "$(cat "$o/t2")" -lt "$(jq .expires_at "$o/cred1.json")" ]
	[ "$(jq .expires_at "$o/cred2.json")" -gt "$(jq .expires_at "$o/cred1.json")" ]
	fed_canary_scan "$FED_JWT" "$(cat "$BATS_TEST_TMPDIR/idtoken")"
}
