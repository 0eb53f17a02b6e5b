#!/usr/bin/env bats
# Federation, the exchange that fails: a token server that refuses, rate
# limits, breaks, stalls, lies, answers garbage or 2 MiB, echoes the
# assertion back, or presents a certificate from an unknown CA. Each time
# `latch fed token` exits 3 with one "latch: " line and nothing on stdout,
# sends no more requests than the retry policy allows (never the same jti
# twice), and no file or output holds the identity token, its signature or
# any access token the server sent.

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

# fe_start [fed_server OPTION]... [-- jwt.py sign ARGS]: a server, an
# identity token in the file, and profile p for them.
fe_start() {
	local opts=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	fed_server ${opts[@]+"${opts[@]}"}
	fed_idtoken "$@"
	fed_profile p
}

# fe_scan: no file or output holds the identity token, its signature part,
# or any access token the server put in an answer.
fe_scan() {
	local strings=("$FED_JWT" "${FED_JWT##*.}") t
	while IFS= read -r t; do
		[ -n "$t" ] && strings+=("$t")
	done < <(fed_tokens_sent)
	fed_canary_scan "${strings[@]}"
}

# fe_pieces: no 16-character piece of the identity token's payload or
# signature in any output of latch (a message that quotes the token cut
# short leaks its claims, and assert_absent looks for whole values only).
fe_pieces() {
	"$PY" -c '
import glob, sys
jwt = sys.argv[1]
parts = jwt.split(".")[1:]
pieces = {p[i:i + 16] for p in parts for i in range(0, len(p) - 15)}
bad = 0
for f in glob.glob(sys.argv[2] + "/lx.*"):
    data = open(f, "rb").read().decode("latin-1")
    hits = [x for x in pieces if x in data]
    if hits:
        print("%s holds a piece of the identity token: %s" % (f, hits[0]), file=sys.stderr)
        bad = 1
sys.exit(bad)
' "$FED_JWT" "$BATS_TEST_TMPDIR"
}

# fe_fail N [SUBSTRING]...: `latch fed token p` failed as an operational
# error: exit 3, exactly one "latch: " line on stderr holding every
# SUBSTRING, nothing on stdout; N token requests reached the server, no
# token was issued, and neither fe_scan nor fe_pieces finds anything.
fe_fail() {
	local n=$1
	shift
	lx fed token p </dev/null
	want_status 3
	want_err_line "$@"
	want_no_stdout
	fed_want_requests "$n"
	[ -z "$(fed_tokens_issued)" ] || { echo "the server issued a token: the exchange should have failed" >&2; return 1; }
	fe_scan
	fe_pieces
}

@test "400 with Anthropic's error shape: exit 3, the status and the server's message" {
	fe_start
	fed_script "status 400 json"
	fe_fail 1 "400" "scripted 400"
}

@test "400 with the OAuth error shape: exit 3, the error and its description" {
	fe_start
	fed_script "status 400 oauth"
	fe_fail 1 "400" "invalid_grant" "scripted 400"
}

@test "401: exit 3, the request id and where the reason is (the Console's authentication history)" {
	fe_start
	fed_script "status 401"
	fe_fail 1 "401" "req_scripted401" "authentication history"
}

@test "403: exit 3, not retried" {
	fe_start -- --no-jti
	fed_script "status 403" ok
	fe_fail 1 "403"
}

@test "429 then 200, identity token without a jti: retried after Retry-After with the same token; success" {
	fe_start -- --no-jti
	fed_script "retry-after 1" ok
	lx fed token p </dev/null
	want_status 0
	[ "$out" = "$(fed_tokens_issued)" ]
	fed_want_requests 2
	fed_reqs '
assert [x["verdict"] for x in r] == ["ok", "ok"], r
assert r[0]["body"]["assertion"] == r[1]["body"]["assertion"] == sys.argv[1]
assert r[1]["t"] - r[0]["t"] >= 0.9, "Retry-After: 1 not honoured: %.2f s" % (r[1]["t"] - r[0]["t"])
' -- "$FED_JWT"
}

@test "429 then 200, identity token with a jti from a file: not sent again (the jti is spent), exit 3 after one request" {
	fe_start
	fed_script "retry-after 1" ok
	fe_fail 1 "429" "cannot be sent again"
}

@test "500, identity token with a jti: one request, exit 3" {
	fe_start
	fed_script "status 500" ok
	fe_fail 1 "500" "cannot be sent again"
}

@test "503 three times, identity token without a jti: three attempts, then exit 3 (a fourth would have succeeded)" {
	fe_start -- --no-jti
	fed_script "status 503" "status 503" "status 503" ok
	fe_fail 3 "503"
}

@test "200 with a body that is not JSON: exit 3" {
	fe_start
	fed_script nonjson
	fe_fail 1 "not JSON"
}

@test "200 with a 2 MiB body holding a token: exit 3, the token neither printed nor kept" {
	fe_start
	fed_script big
	fe_fail 1 "1 MiB"
	[ -n "$(fed_tokens_sent)" ]
}

@test "200 without access_token: exit 3" {
	fe_start
	fed_script no-token
	fe_fail 1 "access_token"
}

@test "200 without expires_in: exit 3, the token neither printed nor kept" {
	fe_start
	fed_script no-expiry
	fe_fail 1 "expires_in"
	[ -n "$(fed_tokens_sent)" ]
}

@test "200 with token_type mac: exit 3, the token neither printed nor kept" {
	fe_start
	fed_script mac
	fe_fail 1 "mac" "Bearer"
	[ -n "$(fed_tokens_sent)" ]
}

@test "a server that stalls past timeout_s: exit 3 within the bound, not retried" {
	fed_server
	fed_idtoken
	fed_profile p '.timeout_s = 2'
	fed_script "stall 30" ok
	local start=$SECONDS
	LX_WRAP=(timeout 20)
	fe_fail 1 "within 2 s"
	LX_WRAP=()
	[ $((SECONDS - start)) -lt 15 ] || { echo "took $((SECONDS - start)) s with timeout_s 2" >&2; return 1; }
}

@test "a server that closes the connection without answering: exit 3, not retried" {
	fe_start
	fed_script close ok
	fe_fail 1
}

@test "TLS: a certificate from an unknown CA fails the handshake (no request); with ca_file naming that CA it works" {
	fe_start --tls
	[[ "$FED_URL" == https://* ]]
	fe_fail 0 "certificate"
	fed_reqs 'assert [x for x in g if x["method"] == "TLS"], "no TLS handshake was attempted"'
	export FE_CA=$BATS_FILE_TMPDIR/fedkeys/ca.pem
	fed_profile q '.ca_file = env.FE_CA'
	lx fed token q </dev/null
	want_status 0
	[ "$out" = "$(fed_tokens_issued)" ]
	fed_want_requests 1
	fed_reqs 'assert r[0]["verdict"] == "ok", r[0]["verdict"]'
}

@test "TLS: a self-signed certificate fails even with a ca_file (another CA)" {
	fe_start --tls-self
	export FE_CA=$BATS_FILE_TMPDIR/fedkeys/ca.pem
	fed_profile_json p '.ca_file = env.FE_CA'
	lx fed add p --from "$FED_PROFILE_FILE" --force </dev/null
	want_status 0
	fe_fail 0 "certificate"
	fed_reqs 'assert [x for x in g if x["method"] == "TLS"], "no TLS handshake was attempted"'
}

@test "a server that echoes the assertion in its error: exit 3, the JWT appears nowhere" {
	fe_start
	fed_script echo
	fe_fail 1
	# Control: the server did put the JWT in its answer.
	fed_reqs 'assert r[0]["action"] == "echo"'
}

@test "an expired identity token, or one within 30 s of expiry, is refused before any request" {
	fe_start -- --exp-in -10
	fe_fail 0 "expired"
	fed_idtoken -- --exp-in 20
	fe_fail 0 "30 s"
	# Control: 60 s left is enough.
	fed_idtoken -- --exp-in 60
	lx fed token p </dev/null
	want_status 0
	fed_want_requests 1
}
