#!/usr/bin/env bats
# Federation, the exchange that works: `latch fed token` and `latch run
# --fed` against a real token server on 127.0.0.1 (tests/fed/tokenserver.py)
# that checks every header and body member, verifies the identity token's
# signature against its JWKS and accepts a jti once. What the child gets
# (the access token, no ANTHROPIC_API_KEY even when empty, none of the
# federation variables); one exchange for 16 concurrent runs; the cache;
# plain http refused; status, --from-env; every identity source.

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

# fx_post JWT [JQ]: POST a token request for JWT to the server with curl
# (the right headers; JQ edits the body), print the HTTP status and the
# body's error_description, or "200".
fx_post() {
	local body
	body=$(jq -nc --arg a "$1" '{grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion: $a,
		federation_rule_id: "fdrl_test", organization_id: "org_test", service_account_id: "svac_test"}' |
		jq -c "${2:-.}")
	curl -s -m 10 -o "$BATS_TEST_TMPDIR/fx.body" -w '%{http_code}' -X POST \
		-H 'content-type: application/json' \
		-H "anthropic-beta: ${FX_BETA:-oauth-2025-04-20,oidc-federation-2026-04-01}" \
		-A "${FX_UA:-latch/test}" --data "$body" "$FED_URL/v1/oauth/token"
	jq -r 'if .error_description then " " + .error_description else "" end' "$BATS_TEST_TMPDIR/fx.body"
}

# fx_env VAR: the value of VAR in the child's `env` listing in $out;
# fails if the child did not have it.
# fx_child FILE: $out becomes what the child wrote to FILE (not to its
# stdout, which latch redacts: the tests here check the token's value).
fx_child() {
	out=$(cat "$1")
}

fx_env() {
	grep -m1 "^$1=" <<<"$out" | cut -d= -f2-
	grep -q "^$1=" <<<"$out"
}

# fx_absent VAR...: none of the VARs is in the child's `env` listing.
fx_absent() {
	local v bad=0
	for v in "$@"; do
		if grep -q "^$v=" <<<"$out"; then
			echo "the child had $v" >&2
			bad=1
		fi
	done
	return $bad
}

# The variables a child run with federation must not see (set in the
# parent by the tests, each to a value that would work or mislead).
FX_DROPPED=(ANTHROPIC_API_KEY ANTHROPIC_FEDERATION_RULE_ID ANTHROPIC_ORGANIZATION_ID
	ANTHROPIC_SERVICE_ACCOUNT_ID ANTHROPIC_WORKSPACE_ID ANTHROPIC_SCOPE ANTHROPIC_IDENTITY_TOKEN
	ANTHROPIC_IDENTITY_TOKEN_FILE ANTHROPIC_PROFILE ANTHROPIC_CONFIG_DIR
	ACTIONS_ID_TOKEN_REQUEST_URL ACTIONS_ID_TOKEN_REQUEST_TOKEN)

@test "the test bed: the token server accepts a good request once and refuses forged, replayed or malformed ones" {
	fed_server
	local good
	fed_idtoken
	good=$FED_JWT
	[ "$(fx_post "$good")" = 200 ]
	# The same jti again: refused, whatever else is right.
	[ "$(fx_post "$good")" = "400 jti already used" ]
	# A signature by a key outside the JWKS under a known kid.
	local forged
	forged=$("$PY" "$FED_TOOLS/jwt.py" sign --key "$BATS_FILE_TMPDIR/fedkeys/rogue.pem" --kid ec1 --alg ES256)
	[ "$(fx_post "$forged")" = "400 signature invalid" ]
	[ "$(fx_post "$(fed_jwt --alg ES256)")" = 200 ]
	[ "$(fx_post "$(fed_jwt --exp-in -5)")" = "400 assertion expired (or no exp)" ]
	[ "$(fx_post "$(fed_jwt --aud https://elsewhere.test)")" = "400 aud does not contain https://api.anthropic.com" ]
	[ "$(fx_post "$(fed_jwt)" '.scope = "x"')" = "400 body has unknown members scope" ]
	[ "$(fx_post "$(fed_jwt)" 'del(.service_account_id)')" = "400 service_account_id is None, expected 'svac_test'" ]
	[ "$(FX_BETA=oauth-2025-04-20 fx_post "$(fed_jwt)")" = "400 anthropic-beta is not exactly oauth-2025-04-20,oidc-federation-2026-04-01" ]
	[ "$(FX_UA=curl/8 fx_post "$(fed_jwt)")" = "400 user-agent does not start with latch/" ]
	fed_want_requests 10
	[ "$(fed_tokens_issued | grep -c .)" -eq 2 ]
}

@test "latch fed token: one exchange with every header and member the server wants; the token on stdout, the profile 0600" {
	fed_server
	fed_expect '.workspace_id = "wrk_test"'
	fed_idtoken
	fed_profile p '.workspace_id = "wrk_test"'
	local stored=$HOME/.config/latch/fed/p.json
	[ "$(stat -c %a "$stored")" = 600 ]
	[ "$(stat -c %a "$(dirname "$stored")")" = 700 ]
	lx fed token p </dev/null
	want_status 0
	[ ! -s "$LX_ERR" ]
	local tok
	tok=$(fed_tokens_issued)
	[ "$(printf '%s\n' "$tok" | grep -c .)" -eq 1 ]
	[ "$(cat "$LX_OUT")" = "$tok" ]
	# Exactly the token and one newline.
	[ "$(stat -c %s "$LX_OUT")" -eq $((${#tok} + 1)) ]
	fed_want_requests 1
	fed_reqs '
x = r[0]
assert x["verdict"] == "ok", x["verdict"]
h = x["headers"]
assert h["content-type"].split(";")[0].strip() == "application/json", h
assert h["anthropic-beta"] == "oauth-2025-04-20,oidc-federation-2026-04-01", h
assert h["user-agent"].startswith("latch/"), h
assert "authorization" not in h and "x-api-key" not in h, h
b = x["body"]
assert sorted(b) == ["assertion", "federation_rule_id", "grant_type", "organization_id",
                     "service_account_id", "workspace_id"], sorted(b)
assert b["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer", b
assert b["assertion"] == sys.argv[1]
assert (b["federation_rule_id"], b["organization_id"], b["service_account_id"], b["workspace_id"]) == \
    ("fdrl_test", "org_test", "svac_test", "wrk_test"), b
' -- "$FED_JWT"
	fed_canary_scan "$FED_JWT"
}

@test "latch run --fed: the child gets the issued token; ANTHROPIC_API_KEY=value and the federation variables are gone" {
	fed_server
	fed_idtoken
	fed_profile p
	BR_ENV=(ANTHROPIC_API_KEY=sk-ant-api03-parent-key ANTHROPIC_AUTH_TOKEN=sk-ant-oat01-stale
		ANTHROPIC_BASE_URL=https://parent.invalid
		ANTHROPIC_FEDERATION_RULE_ID=fdrl_env ANTHROPIC_ORGANIZATION_ID=org_env
		ANTHROPIC_SERVICE_ACCOUNT_ID=svac_env ANTHROPIC_WORKSPACE_ID=wrk_env ANTHROPIC_SCOPE=scope_env
		ANTHROPIC_IDENTITY_TOKEN=not-a-jwt ANTHROPIC_IDENTITY_TOKEN_FILE=/nonexistent/idtoken
		ANTHROPIC_PROFILE=other ANTHROPIC_CONFIG_DIR=/nonexistent/anthropic
		ACTIONS_ID_TOKEN_REQUEST_URL=http://127.0.0.1:9/gha ACTIONS_ID_TOKEN_REQUEST_TOKEN=ghreq
		FX_KEPT=kept)
	br_run --fed p -- sh -c 'env >"$0"' "$BATS_TEST_TMPDIR/child"
	fx_child "$BATS_TEST_TMPDIR/child"
	want_status 0
	local tok
	tok=$(fed_tokens_issued)
	[ -n "$tok" ]
	[ "$(fx_env ANTHROPIC_AUTH_TOKEN)" = "$tok" ]
	[ "$(fx_env ANTHROPIC_BASE_URL)" = "$FED_URL" ]
	# Control: the listing is the child's whole environment.
	[ "$(fx_env FX_KEPT)" = kept ]
	fx_absent "${FX_DROPPED[@]}"
	# The profile's values were sent, not the parent's.
	fed_want_requests 1
	fed_reqs 'assert r[0]["verdict"] == "ok", r[0]["verdict"]'
	fed_canary_scan "$FED_JWT"
}

@test "latch run --fed: ANTHROPIC_API_KEY set to \"\" is removed too; LATCH_FED_PROFILE is --fed" {
	fed_server
	fed_idtoken
	fed_profile p
	BR_ENV=(ANTHROPIC_API_KEY= LATCH_FED_PROFILE=p)
	br_run -- sh -c '{ if [ "${ANTHROPIC_API_KEY+set}" = set ]; then echo HAS_API_KEY; fi; env; } >"$0"' \
		"$BATS_TEST_TMPDIR/child"
	want_status 0
	fx_child "$BATS_TEST_TMPDIR/child"
	refute grep -q HAS_API_KEY <<<"$out"
	[ "$(fx_env ANTHROPIC_AUTH_TOKEN)" = "$(fed_tokens_issued)" ]
	BR_ENV=(ANTHROPIC_API_KEY=)
	br_run --fed p -- sh -c '{ if [ "${ANTHROPIC_API_KEY+set}" = set ]; then echo HAS_API_KEY; fi; env; } >"$0"' \
		"$BATS_TEST_TMPDIR/child"
	want_status 0
	fx_child "$BATS_TEST_TMPDIR/child"
	refute grep -q HAS_API_KEY <<<"$out"
	[ "$(fx_env ANTHROPIC_AUTH_TOKEN)" = "$(fed_tokens_issued)" ]
	# Control: without federation the empty key is passed on as it was.
	br_run -- sh -c 'if [ "${ANTHROPIC_API_KEY+set}" = set ]; then echo HAS_API_KEY; fi'
	want_status 0
	[ "$out" = HAS_API_KEY ]
	fed_want_requests 1
}

@test "an ES256 identity token is exchanged; one signed by a key outside the issuer's JWKS is refused by the server" {
	fed_server
	fed_idtoken -- --alg ES256
	fed_profile p
	lx fed token p </dev/null
	want_status 0
	[ "$out" = "$(fed_tokens_issued)" ]
	fed_reqs '
import base64
h = r[0]["body"]["assertion"].split(".")[0]
assert json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))["alg"] == "ES256"
assert r[0]["verdict"] == "ok"
'
	# Control: the server does verify: a forged ES256 signature fails
	# (latch cannot tell; the server says no). Another identity source,
	# so p's cached token is not q's.
	export FX_ROGUE=$BATS_TEST_TMPDIR/idtoken.rogue
	"$PY" "$FED_TOOLS/jwt.py" sign --key "$BATS_FILE_TMPDIR/fedkeys/rogue.pem" --kid ec1 --alg ES256 >"$FX_ROGUE"
	fed_profile q '.authentication.identity_token.path = env.FX_ROGUE'
	lx fed token q </dev/null
	want_status 3
	want_err_line
	want_no_stdout
	fed_want_requests 2
	fed_reqs 'assert r[1]["verdict"] == "signature invalid", r[1]["verdict"]'
}

@test "latch run --fed with a latch:// reference in the same run (one-shot release)" {
	br_setup
	fed_server
	fed_idtoken
	fed_profile p
	br_run --fed p --passphrase-fd 3 --env X=latch://canary -- \
		sh -c "$(br_check_canary); printf '%s\n' \"\$ANTHROPIC_AUTH_TOKEN\" >\"\$0\"" "$BATS_TEST_TMPDIR/child" 3<<<"$PASS"
	want_status 0
	fx_child "$BATS_TEST_TMPDIR/child"
	[ "$out" = "$(fed_tokens_issued)" ]
	fed_want_requests 1
	fed_canary_scan "$FED_JWT" "$CANARY"
}

@test "16 concurrent latch run --fed with one identity token (with a jti): one exchange, the same token for all" {
	fed_server
	fed_idtoken
	fed_profile p
	# The first answer comes after 1 s, so the runs pile up on the lock.
	fed_script "stall 1"
	local i pids=() rc bad=0
	for i in $(seq 1 16); do
		"$LATCH" run --fed p -- sh -c 'printf "%s\n" "$ANTHROPIC_AUTH_TOKEN" >"$0"' "$BATS_TEST_TMPDIR/c.$i.out" \
			</dev/null 2>"$BATS_TEST_TMPDIR/c.$i.err" 3>&- &
		pids+=($!)
		bg_track "$!"
	done
	for i in $(seq 1 16); do
		rc=0
		wait "${pids[$((i - 1))]}" || rc=$?
		if [ "$rc" -ne 0 ]; then
			echo "run $i exited $rc: $(cat "$BATS_TEST_TMPDIR/c.$i.err")" >&2
			bad=1
		fi
	done
	[ "$bad" -eq 0 ]
	fed_want_requests 1
	local tok
	tok=$(fed_tokens_issued)
	[ "$(printf '%s\n' "$tok" | grep -c .)" -eq 1 ]
	for i in $(seq 1 16); do
		[ "$(cat "$BATS_TEST_TMPDIR/c.$i.out")" = "$tok" ] ||
			{ echo "run $i got another token: $(cat "$BATS_TEST_TMPDIR/c.$i.out")" >&2; return 1; }
	done
}

@test "the cache: reused with no request; logout and rm remove it; its files are 0600 and never hold the identity token" {
	fed_server
	fed_idtoken
	fed_profile p
	local cache=$XDG_RUNTIME_DIR/latch/fed tok1 tok2 jwt1
	jwt1=$FED_JWT
	lx fed token p </dev/null
	want_status 0
	tok1=$out
	[ "$tok1" = "$(fed_tokens_issued)" ]
	# Reused: by fed token and by run, with no request.
	lx fed token p </dev/null
	want_status 0
	[ "$out" = "$tok1" ]
	br_run --fed p -- sh -c 'printf "%s\n" "$ANTHROPIC_AUTH_TOKEN" >"$0"' "$BATS_TEST_TMPDIR/child"
	want_status 0
	fx_child "$BATS_TEST_TMPDIR/child"
	[ "$out" = "$tok1" ]
	fed_want_requests 1
	# Where it lives and how.
	[ "$(stat -c %a "$cache")" = 700 ]
	[ -n "$(grep -rlF -- "$tok1" "$cache")" ]
	local f
	while IFS= read -r f; do
		[ "$(stat -c %a "$f")" = 600 ] || { echo "$f is mode $(stat -c %a "$f")" >&2; return 1; }
	done < <(find "$cache" -type f)
	fed_canary_scan "$jwt1"
	# logout: the token is gone; the next run exchanges again (a new
	# identity token: the old jti is spent).
	lx fed logout p </dev/null
	want_status 0
	[ -z "$(grep -rlF -- "$tok1" "$cache")" ]
	fed_idtoken
	br_run --fed p -- sh -c 'printf "%s\n" "$ANTHROPIC_AUTH_TOKEN" >"$0"' "$BATS_TEST_TMPDIR/child"
	want_status 0
	fx_child "$BATS_TEST_TMPDIR/child"
	fed_want_requests 2
	tok2=$(fed_tokens_issued | tail -n 1)
	[ "$out" = "$tok2" ]
	[ "$tok2" != "$tok1" ]
	[ -n "$(grep -rlF -- "$tok2" "$cache")" ]
	fed_canary_scan "$jwt1" "$FED_JWT"
	# rm: the profile and its cached token.
	lx fed rm p </dev/null
	want_status 0
	[ ! -e "$HOME/.config/latch/fed/p.json" ]
	[ -z "$(grep -rlF -- "$tok2" "$cache")" ]
	lx fed token p </dev/null
	want_status 2
	want_err_line
	want_no_stdout
	fed_want_requests 2
}

@test "fed ls, fed rm; without XDG_RUNTIME_DIR the cache is under \$LATCH_HOME/run/fed; XDG_CONFIG_HOME holds the profiles" {
	unset XDG_RUNTIME_DIR
	export XDG_CONFIG_HOME=$BATS_TEST_TMPDIR/cfg
	fed_server
	fed_idtoken
	fed_profile b
	fed_profile a
	[ -f "$XDG_CONFIG_HOME/latch/fed/a.json" ]
	[ ! -e "$HOME/.config/latch" ]
	lx fed ls </dev/null
	want_status 0
	[ "$out" = $'a\nb' ]
	lx fed ls --json </dev/null
	want_status 0
	jq -e '. == ["a", "b"] or ([.[] | .name? // .] == ["a", "b"])' <<<"$out" >/dev/null
	lx fed token a </dev/null
	want_status 0
	[ -n "$(grep -rlF -- "$out" "$LATCH_HOME/run/fed")" ]
	lx fed rm a </dev/null
	want_status 0
	lx fed ls </dev/null
	[ "$out" = b ]
	lx fed rm a </dev/null
	want_status 2
	want_err_line
	# Names outside [A-Za-z0-9_.-] are refused.
	fed_profile_json bad
	lx fed add ../x --from "$FED_PROFILE_FILE" </dev/null
	want_status 2
	want_err_line
	[ ! -e "$XDG_CONFIG_HOME/latch/x.json" ]
}

@test "plain http to an address that is not loopback is refused before any connection: at fed add, and from ANTHROPIC_BASE_URL" {
	local ip
	ip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | grep -v '^127\.' | head -n 1)
	[ -n "$ip" ] || skip "this machine has no IPv4 address outside 127.0.0.0/8"
	fed_server --bind 0.0.0.0
	fed_idtoken
	# Control: the server answers on that address, and logs what it gets.
	curl -s -m 5 -o /dev/null "http://$ip:$FED_PORT/idtoken"
	fed_reqs 'assert [x for x in g if x["path"] == "/idtoken"], g'
	fed_profile_json p ".base_url = \"http://$ip:$FED_PORT\""
	lx fed add p --from "$FED_PROFILE_FILE" </dev/null
	want_status 2
	want_err_line "https"
	lx fed ls </dev/null
	[ -z "$out" ]
	# A name that cannot resolve either: the refusal is about the scheme.
	fed_profile_json p '.base_url = "http://example.invalid"'
	lx fed add p --from "$FED_PROFILE_FILE" </dev/null
	want_status 2
	want_err_line "https"
	# At run time, from the environment (the profile has no base_url).
	fed_profile p 'del(.base_url)'
	export ANTHROPIC_BASE_URL=http://$ip:$FED_PORT
	lx fed token p </dev/null
	want_status 2
	want_err_line "https"
	want_no_stdout
	br_run --fed p -- sh -c 'touch "$0"' "$BATS_TEST_TMPDIR/ran"
	want_status 125
	want_err_line "https"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	fed_want_requests 0
	# Control: the same server through loopback works.
	export ANTHROPIC_BASE_URL=$FED_URL
	lx fed token p </dev/null
	want_status 0
	fed_want_requests 1
}

@test "fed status: what would be sent and where each value came from; the environment fills only empty fields; never a token" {
	fed_server
	fed_idtoken
	fed_expect '.workspace_id = "wrk_env"'
	fed_profile p
	export ANTHROPIC_FEDERATION_RULE_ID=fdrl_env ANTHROPIC_WORKSPACE_ID=wrk_env
	lx fed status p </dev/null
	want_status 0
	local before=$out line shown=("$LX_OUT" "$LX_ERR")
	for s in fdrl_test org_test svac_test wrk_env "$FED_URL" "$BATS_TEST_TMPDIR/idtoken"; do
		[[ "$out" == *"$s"* ]] || { echo "status does not show $s: $out" >&2; return 1; }
	done
	refute grep -q fdrl_env <<<"$out"
	line=$(grep fdrl_test <<<"$out")
	[[ "$line" == *profile* ]] || { echo "no origin on: $line" >&2; return 1; }
	line=$(grep wrk_env <<<"$out")
	[[ "$line" == *ANTHROPIC_WORKSPACE_ID* || "$line" == *env* ]] || { echo "no origin on: $line" >&2; return 1; }
	# The exchange sends what status showed.
	lx fed token p </dev/null
	want_status 0
	local tok=$out
	fed_reqs 'assert r[0]["verdict"] == "ok", r[0]["verdict"]
assert r[0]["body"]["federation_rule_id"] == "fdrl_test" and r[0]["body"]["workspace_id"] == "wrk_env"'
	lx fed status p </dev/null
	want_status 0
	[ "$out" != "$before" ] # now with the cached token's expiry
	shown+=("$LX_OUT" "$LX_ERR")
	lx fed status p --json </dev/null
	want_status 0
	"$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
d = d[0] if isinstance(d, list) else d
f = lambda k: (d[k]["value"], d[k]["from"])
assert f("federation_rule_id") == ("fdrl_test", "profile"), d
assert f("organization_id") == ("org_test", "profile"), d
assert f("service_account_id") == ("svac_test", "profile"), d
assert f("workspace_id") == ("wrk_env", "environment"), d
assert d["cached_token_expires"], d
assert "fdrl_env" not in json.dumps(d)
' "$out"
	shown+=("$LX_OUT" "$LX_ERR")
	lx fed status </dev/null
	want_status 0
	shown+=("$LX_OUT" "$LX_ERR")
	assert_absent "$tok" "${shown[@]}"
	fed_canary_scan "$FED_JWT"
}

@test "fed add --from-env: a profile from the ANTHROPIC_* variables, naming the identity token's file or variable, never its value" {
	fed_server
	fed_idtoken
	export XDG_CONFIG_HOME=$BATS_TEST_TMPDIR/cfg
	(
		export ANTHROPIC_FEDERATION_RULE_ID=fdrl_test ANTHROPIC_ORGANIZATION_ID=org_test \
			ANTHROPIC_SERVICE_ACCOUNT_ID=svac_test ANTHROPIC_BASE_URL=$FED_URL \
			ANTHROPIC_IDENTITY_TOKEN_FILE=$BATS_TEST_TMPDIR/idtoken
		"$LATCH" fed add e --from-env </dev/null
	)
	local f=$XDG_CONFIG_HOME/latch/fed/e.json
	[ "$(stat -c %a "$f")" = 600 ]
	jq -e --arg url "$FED_URL" --arg id "$BATS_TEST_TMPDIR/idtoken" '
		.authentication.type == "oidc_federation" and
		.authentication.federation_rule_id == "fdrl_test" and
		.organization_id == "org_test" and
		.authentication.service_account_id == "svac_test" and
		.base_url == $url and
		.authentication.identity_token.source == "file" and
		.authentication.identity_token.path == $id' "$f" >/dev/null
	# With none of the variables left, the profile alone is enough.
	lx fed token e </dev/null
	want_status 0
	[ "$out" = "$(fed_tokens_issued)" ]
	fed_reqs 'assert r[0]["verdict"] == "ok", r[0]["verdict"]'
	# From ANTHROPIC_IDENTITY_TOKEN: the profile names the variable.
	fed_idtoken "$BATS_TEST_TMPDIR/idtoken.env"
	(
		export ANTHROPIC_FEDERATION_RULE_ID=fdrl_test ANTHROPIC_ORGANIZATION_ID=org_test \
			ANTHROPIC_SERVICE_ACCOUNT_ID=svac_test ANTHROPIC_BASE_URL=$FED_URL \
			ANTHROPIC_IDENTITY_TOKEN=$FED_JWT
		"$LATCH" fed add v --from-env </dev/null
	)
	jq -e '.authentication.identity_token.source == "env"' "$XDG_CONFIG_HOME/latch/fed/v.json" >/dev/null
	fed_canary_scan "$FED_JWT"
	ANTHROPIC_IDENTITY_TOKEN=$FED_JWT lx fed token v </dev/null
	want_status 0
	fed_want_requests 2
	fed_reqs 'assert r[1]["verdict"] == "ok" and r[1]["body"]["assertion"] == sys.argv[1]' -- "$FED_JWT"
	# An existing profile is replaced only with --force.
	export ANTHROPIC_FEDERATION_RULE_ID=fdrl_other ANTHROPIC_ORGANIZATION_ID=org_test \
		ANTHROPIC_IDENTITY_TOKEN_FILE=$BATS_TEST_TMPDIR/idtoken
	lx fed add e --from-env </dev/null
	want_status 2
	want_err_line
	jq -e '.authentication.federation_rule_id == "fdrl_test"' "$f" >/dev/null
	lx fed add e --from-env --force </dev/null
	want_status 0
	jq -e '.authentication.federation_rule_id == "fdrl_other"' "$f" >/dev/null
}

@test "github_actions source: the request URL's own query kept, audience added, bearer request token; the child cannot mint more" {
	fed_server
	fed_expect '.iss = "https://token.actions.githubusercontent.com"'
	echo ghreq-secret >"$FED_DIR/gha_request_token"
	fed_profile g '.authentication.identity_token = {source: "github_actions", audience: "https://api.anthropic.com"}'
	# Outside GitHub Actions the source cannot work: a usage error.
	lx fed token g </dev/null
	want_status 2
	want_err_line "ACTIONS_ID_TOKEN_REQUEST"
	fed_want_requests 0
	export ACTIONS_ID_TOKEN_REQUEST_URL="$FED_URL/gha?x=1" ACTIONS_ID_TOKEN_REQUEST_TOKEN=wrong
	lx fed token g </dev/null
	want_status 3
	want_err_line
	want_no_stdout
	fed_want_requests 0
	export ACTIONS_ID_TOKEN_REQUEST_TOKEN=ghreq-secret
	lx fed token g </dev/null
	want_status 0
	[ "$out" = "$(fed_tokens_issued)" ]
	fed_want_requests 1
	fed_reqs '
from urllib.parse import parse_qs
ok = [x for x in g if x["path"] == "/gha" and x["verdict"] == "ok"]
assert len(ok) == 1, g
q = parse_qs(ok[0]["query"])
assert q == {"x": ["1"], "audience": ["https://api.anthropic.com"]}, q
assert r[0]["verdict"] == "ok", r[0]["verdict"]
'
	br_run --fed g -- sh -c 'env >"$0"' "$BATS_TEST_TMPDIR/child"
	fx_child "$BATS_TEST_TMPDIR/child"
	want_status 0
	fx_absent ACTIONS_ID_TOKEN_REQUEST_URL ACTIONS_ID_TOKEN_REQUEST_TOKEN
	[ "$(fx_env ANTHROPIC_AUTH_TOKEN)" = "$(fed_tokens_issued)" ]
	fed_canary_scan ghreq-secret
}

@test "gcp_metadata source with a loopback url override: Metadata-Flavor sent, audience and format=full asked" {
	fed_server
	fed_expect '.iss = "https://accounts.google.com"'
	fed_profile c '.authentication.identity_token = {source: "gcp_metadata", audience: "https://api.anthropic.com", url: env.FED_URL}'
	lx fed token c </dev/null
	want_status 0
	[ "$out" = "$(fed_tokens_issued)" ]
	fed_reqs '
from urllib.parse import parse_qs
m = [x for x in g if x["path"].startswith("/computeMetadata/")]
assert len(m) == 1 and m[0]["verdict"] == "ok", m
assert parse_qs(m[0]["query"]) == {"audience": ["https://api.anthropic.com"], "format": ["full"]}, m[0]["query"]
assert r[0]["verdict"] == "ok", r[0]["verdict"]
'
	# Not loopback: refused when the profile is added.
	fed_profile_json c2 '.authentication.identity_token = {source: "gcp_metadata", audience: "a", url: "http://example.invalid"}'
	lx fed add c2 --from "$FED_PROFILE_FILE" </dev/null
	want_status 2
	want_err_line
}

@test "url source: the body, or a JSON member of it, with the profile's headers" {
	fed_server
	fed_idtoken "$FED_DIR/idtoken"
	fed_profile u '.authentication.identity_token = {source: "url", url: (env.FED_URL + "/idtoken")}'
	lx fed token u </dev/null
	want_status 0
	fed_reqs 'assert r[0]["verdict"] == "ok" and r[0]["body"]["assertion"] == sys.argv[1]' -- "$FED_JWT"
	fed_idtoken "$FED_DIR/idtoken"
	echo "X-Test: yes" >"$FED_DIR/idtoken_header"
	fed_profile j '.authentication.identity_token = {source: "url", url: (env.FED_URL + "/idtoken.json"), field: "id_token", headers: {"X-Test": "yes"}}'
	lx fed token j </dev/null
	want_status 0
	fed_want_requests 2
	fed_reqs 'assert r[1]["verdict"] == "ok" and r[1]["body"]["assertion"] == sys.argv[1]' -- "$FED_JWT"
	# Control: without the header the URL answers 401, and nothing is
	# exchanged. (Another URL: the same one is the same identity source,
	# whose token j cached.)
	fed_profile k '.authentication.identity_token = {source: "url", url: (env.FED_URL + "/idtoken.json?k=1"), field: "id_token"}'
	lx fed token k </dev/null
	want_status 3
	want_err_line
	fed_want_requests 2
	# A URL's query may hold a key: fed status shows the URL without it.
	lx fed status k </dev/null
	want_status 0
	[[ $out == *"/idtoken.json?..."* ]]
	[[ $out != *"k=1"* ]]
}

@test "exec source: a command (no shell) printing a JWT or Google's executable-credential JSON; only with allow_exec" {
	fed_server
	export FX_EXEC=$BATS_TEST_TMPDIR/mint.sh
	printf '#!/bin/sh\ncat "%s"\n' "$BATS_TEST_TMPDIR/idtoken.exec" >"$FX_EXEC"
	chmod 0755 "$FX_EXEC"
	fed_idtoken "$BATS_TEST_TMPDIR/idtoken.exec"
	fed_profile_json x '.authentication.identity_token = {source: "exec", command: [env.FX_EXEC]}'
	lx fed add x --from "$FED_PROFILE_FILE" </dev/null
	want_status 2
	want_err_line "allow_exec"
	fed_profile x '.authentication.identity_token = {source: "exec", command: [env.FX_EXEC], allow_exec: true}'
	lx fed token x </dev/null
	want_status 0
	fed_reqs 'assert r[0]["verdict"] == "ok" and r[0]["body"]["assertion"] == sys.argv[1]' -- "$FED_JWT"
	# Google's executable-sourced credential format.
	fed_idtoken "$BATS_TEST_TMPDIR/jwt.tmp"
	jq -nc --arg t "$FED_JWT" '{version: 1, success: true, token_type: "urn:ietf:params:oauth:token-type:id_token",
		id_token: $t, expiration_time: (now + 600 | floor)}' >"$BATS_TEST_TMPDIR/idtoken.exec"
	lx fed logout x </dev/null
	lx fed token x </dev/null
	want_status 0
	fed_want_requests 2
	fed_reqs 'assert r[1]["verdict"] == "ok" and r[1]["body"]["assertion"] == sys.argv[1]' -- "$FED_JWT"
	fed_canary_scan "$FED_JWT"
}

@test "the model token is kept out of the child's output as [latch:model-token], and counted in the exit record" {
	br_setup
	br_grant canary --ttl 10m
	fed_server
	fed_idtoken
	fed_profile p
	br_run --fed p -- sh -c 'echo "token: $ANTHROPIC_AUTH_TOKEN"; echo "$ANTHROPIC_AUTH_TOKEN" | base64 >&2'
	want_status 0
	[ "$out" = "token: [latch:model-token]" ]
	[[ $err == *"[latch:model-token]"* ]]
	assert_absent "$(fed_tokens_issued)" "$LX_OUT" "$LX_ERR"
	# Through the broker's runner (a reference in the same run): the exit
	# record counts it beside the secret's.
	br_run --fed p --env X=latch://canary -- sh -c 'echo "$ANTHROPIC_AUTH_TOKEN $X"'
	want_status 0
	[ "$out" = "[latch:model-token] [latch:canary]" ]
	br_audit 'ex = [x for x in r if x["event"] == "exit"][-1]; assert ex["redacted"] == {"canary": 1, "model-token": 1}, ex'
}
