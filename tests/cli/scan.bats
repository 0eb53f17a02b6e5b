#!/usr/bin/env bats
# latch scan: managed values found in files, staged changes and pushes, raw
# and encoded, with no passphrase (the scan index); weak values never skipped
# silently; nothing it prints or stores holds a value. Real git repositories
# in the test's temporary directory.

load helpers

setup() {
	home_setup
	export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.invalid \
		GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.invalid
	git config --global init.defaultBranch main
	git config --global advice.detachedHead false
	init_vault
	set_secret api "$CANARY"
	REPO=$BATS_TEST_TMPDIR/repo
}

# sc_repo [git init args]: a fresh repository with one clean commit, cwd.
sc_repo() {
	git init -q "$@" "$REPO"
	cd "$REPO"
	echo hello >README
	git add README
	git commit -qm init
}

# enc FORM: the canary in that form (python's encoders, independent of latch).
enc() {
	"$PY" - "$1" "$CANARY" <<'PY'
import base64, json, sys, textwrap, urllib.parse
form, v = sys.argv[1], sys.argv[2].encode()
b = lambda pre, post: base64.b64encode(pre + v + post).decode()
out = {
    "raw": v.decode(),
    "b64-0": b(b"", b"tail"),
    "b64-1": b(b"x", b"tail"),
    "b64-2": b(b"xy", b"tail"),
    "b64url": base64.urlsafe_b64encode(b"\xfb\xff" + v).decode().rstrip("="),
    "b64-wrap76": textwrap.fill(base64.b64encode(b"k" * 200 + v + b"z" * 200).decode(), 76),
    "b64-wrap64": textwrap.fill(base64.b64encode(b"q" * 101 + v + b"z" * 90).decode(), 64),
    "hex": v.hex(),
    "HEX": v.hex().upper(),
    "percent": urllib.parse.quote(v.decode() + " /", safe=""),
    "json": json.dumps({"k": v.decode() + '"\n'}),
}[form]
print(out)
PY
}

# sc_want_found_name NAME CMD...: latch scan ... exits 1 naming NAME.
sc_want_found_name() {
	local name=$1
	shift
	lx scan "$@" </dev/null
	want_status 1
	[[ $err == *": $name ("* ]] || { echo "no finding for $name in: $err" >&2; return 1; }
}

# sc_want_found CMD...: latch scan ... exits 1 naming the secret api.
sc_want_found() {
	lx scan "$@" </dev/null
	want_status 1
	[[ $err == *": api ("* ]] || { echo "no finding for api in: $err" >&2; return 1; }
}

@test "files on disk: the value raw and in every encoding is found, by line, never printed" {
	mkdir "$BATS_TEST_TMPDIR/w"
	local f
	for f in raw b64-0 b64-1 b64-2 b64url b64-wrap76 b64-wrap64 hex HEX percent json; do
		{ echo "line one"; echo "value: $(enc $f)"; } >"$BATS_TEST_TMPDIR/w/$f.txt"
	done
	echo "nothing here" >"$BATS_TEST_TMPDIR/w/clean.txt"
	lx scan "$BATS_TEST_TMPDIR/w" </dev/null
	want_status 1
	for f in raw b64-0 b64-1 b64-2 b64url hex HEX percent json; do
		[[ $err == *"/$f.txt:2: api ("* ]] || { echo "missing $f in: $err" >&2; false; }
	done
	# Wrapped base64: found on the line where the value's form starts.
	[[ $err == *"/b64-wrap76.txt:"*": api (base64)"* ]]
	[[ $err == *"/b64-wrap64.txt:"*": api (base64)"* ]]
	[[ $err != *clean.txt* ]]
	assert_absent "$CANARY" "$LX_OUT" "$LX_ERR"
	# --json: the same findings on stdout, still no value.
	lx scan --json "$BATS_TEST_TMPDIR/w/hex.txt" </dev/null
	want_status 1
	[ "$(jq -r '.[0].secret + " " + .[0].encoding + " " + (.[0].line|tostring)' <<<"$out")" = "api hex 2" ]
	assert_absent "$CANARY" "$LX_OUT" "$LX_ERR"
}

@test "a value with special characters: percent, JSON, shell and YAML quoting, UTF-16LE" {
	local v="Tk9/p+Q2 'qu\"ote' \$HOME\\zX8#mW3&vR7=yL5"
	set_secret special "$v"
	"$PY" - "$v" "$BATS_TEST_TMPDIR" <<'PY'
import json, re, sys, urllib.parse
v, d = sys.argv[1], sys.argv[2]
forms = {
    "percent": urllib.parse.quote_plus(v),
    "percent-lower-20": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(v, safe="")),
    "json": json.dumps(v)[1:-1],
    "shell-single": v.replace("'", "'\\''"),
    "shell-double": "".join("\\" + c if c in '"\\$`' else c for c in v),
    "yaml-single": v.replace("'", "''"),
}
for k, f in forms.items():
    open(f"{d}/{k}.txt", "w").write("x: " + f + "\n")
open(f"{d}/utf16.bin", "wb").write(b"\xff\xfe" + v.encode("utf-16-le"))
PY
	local f
	for f in percent percent-lower-20 json shell-single shell-double yaml-single; do
		sc_want_found_name special "$BATS_TEST_TMPDIR/$f.txt"
	done
	sc_want_found_name special "$BATS_TEST_TMPDIR/utf16.bin"
	[[ $err == *"utf16.bin:1: special (utf16le)"* ]]
}

@test "no vault: nothing is managed, nothing found, exit 0; a clean file: exit 0" {
	echo clean >"$BATS_TEST_TMPDIR/c.txt"
	lx scan "$BATS_TEST_TMPDIR/c.txt" </dev/null
	want_status 0
	rm -rf "$LATCH_HOME"
	printf '%s\n' "$CANARY" >"$BATS_TEST_TMPDIR/v.txt"
	lx scan "$BATS_TEST_TMPDIR/v.txt" </dev/null
	want_status 0
}

@test "staged: new, modified, -diff and binary files; git commit -a and git commit PATH; unstaged only is not a finding" {
	sc_repo
	# Not staged (the git add -p case): not a finding.
	printf 'token=%s\n' "$CANARY" >>README
	lx scan --staged </dev/null
	want_status 0
	# git commit -a stages it through a temporary index: blocked.
	cat >.git/hooks/pre-commit <<EOF
#!/bin/sh
exec "$LATCH" scan --staged
EOF
	chmod +x .git/hooks/pre-commit
	run git commit -qam "leak"
	[ "$status" -ne 0 ]
	[[ $output == *"README:2: api (raw)"* ]]
	# git commit PATH: the same.
	run git commit -qm "leak" README
	[ "$status" -ne 0 ]
	git checkout -q README
	# A file marked -diff in .gitattributes, and a binary file.
	echo 'secret.bin -diff' >.gitattributes
	{ printf '\0\1\2'; printf '%s' "$CANARY"; printf '\0'; } >secret.bin
	git add .gitattributes secret.bin
	sc_want_found --staged
	[[ $err == *"secret.bin:1: api (raw)"* ]]
	git rm -q --cached secret.bin
	# base64 of the value inside a Kubernetes-style manifest, modified file.
	printf 'data:\n  key: %s\n' "$(enc b64-1)" >README
	git add README
	sc_want_found --staged
	[[ $err == *"README:2: api (base64)"* ]]
	# A clean commit goes through; deleting a file that held the value too.
	git reset -q --hard
	printf '%s\n' "$CANARY" >old.txt
	git add old.txt
	git commit -q --no-verify -m "leaked before the hook"
	git rm -q old.txt
	lx scan --staged </dev/null
	want_status 0
	git commit -qm "remove it"
}

@test "push: a commit made with --no-verify, an annotated tag's message, only objects new to the remote" {
	git init -q --bare "$BATS_TEST_TMPDIR/remote.git"
	sc_repo
	git remote add origin "$BATS_TEST_TMPDIR/remote.git"
	git push -q origin main
	cat >.git/hooks/pre-push <<EOF
#!/bin/sh
exec "$LATCH" scan --push "\$1" "\$2"
EOF
	chmod +x .git/hooks/pre-push
	printf 'k=%s\n' "$(enc hex)" >leak.txt
	git add leak.txt
	git commit -q --no-verify -m "hooks off"
	echo later >later.txt
	git add later.txt
	git commit -qm "a clean commit on top"
	run git push origin main
	[ "$status" -ne 0 ]
	[[ $output == *"leak.txt:1: api (hex)"* ]]
	# The remote did not get it.
	[ "$(git --git-dir="$BATS_TEST_TMPDIR/remote.git" rev-list --count main)" = 1 ]
	# Rewrite without the leak: the push goes through.
	git reset -q --hard HEAD~2
	echo fine >fine.txt
	git add fine.txt
	git commit -qm fine
	git push -q origin main
	# An annotated tag whose message holds the value.
	git tag -a v1 -m "release notes: $CANARY"
	run git push origin v1
	[ "$status" -ne 0 ]
	[[ $output == *"tag "*": api (raw)"* ]]
	git tag -d v1 >/dev/null
	assert_absent "$CANARY" "$REPO/.git/COMMIT_EDITMSG" "$LATCH_HOME/vault.db"
}

@test "range, a SHA-256 repository and a linked worktree" {
	sc_repo --object-format=sha256
	git tag base
	printf '%s\n' "$(enc b64-2)" >x.txt
	git add x.txt
	git commit -qm x
	sc_want_found --range base..HEAD
	[[ $err == *"x.txt:1: api (base64)"* ]]
	lx scan --range HEAD..HEAD </dev/null
	want_status 0
	# A linked worktree stages into its own index.
	git worktree add -q "$BATS_TEST_TMPDIR/wt" base
	cd "$BATS_TEST_TMPDIR/wt"
	printf '%s\n' "$(enc percent)" >p.txt
	git add p.txt
	sc_want_found --staged
	[[ $err == *"p.txt:1: api ("* ]]
}

@test "a weak value is not fingerprinted, and never silently skipped: set warns, ls and status list it, scan says so; --unlock finds it" {
	printf 'hunter2hunter' | latch_p set weakpw --file - >"$BATS_TEST_TMPDIR/set.out" 2>"$BATS_TEST_TMPDIR/set.err"
	grep -q "'weakpw' is too weak to fingerprint" "$BATS_TEST_TMPDIR/set.err"
	lx ls </dev/null
	want_status 0
	grep -Eq '^weakpw +1 .* weak$' "$LX_OUT"
	! grep -Eq '^api .* weak$' "$LX_OUT" || false
	lx status --json </dev/null
	[ "$(jq -r '.scan.left_out | join(",")' <<<"$out")" = weakpw ]
	echo 'password: hunter2hunter' >"$BATS_TEST_TMPDIR/w.txt"
	lx scan "$BATS_TEST_TMPDIR/w.txt" </dev/null
	want_status 0
	[[ $err == *"1 value too weak to fingerprint was not scanned"* ]]
	# With the passphrase: found, and the read is recorded.
	lx scan --unlock --passphrase-fd 3 "$BATS_TEST_TMPDIR/w.txt" 3<<<"$PASS" </dev/null
	want_status 1
	[[ $err == *"w.txt:1: weakpw (raw)"* ]]
	lx audit --json --event scan </dev/null
	[ "$(jq length <<<"$out")" -ge 1 ]
	# Without a terminal and without --passphrase-fd, --unlock is denied.
	lx scan --unlock "$BATS_TEST_TMPDIR/w.txt" </dev/null
	want_status 4
}

@test "the index holds no value in any form; rm removes a value's fingerprints; rekey rebuilds the index" {
	[ "$(sql "SELECT count(*) FROM scan_index")" -ge 8 ]
	local forms=() f
	for f in raw b64-0 hex HEX; do forms+=("$(enc $f)"); done
	sqlite3 "$VAULT" .dump >"$BATS_TEST_TMPDIR/dump.sql"
	for f in "${forms[@]}"; do assert_absent "${f:0:24}" "$BATS_TEST_TMPDIR/dump.sql" "$VAULT"; done
	local before
	before=$(sqlite3 "$VAULT" "SELECT hex(key) FROM scan_key")
	latch_p rekey >/dev/null
	[ "$(sqlite3 "$VAULT" "SELECT hex(key) FROM scan_key")" != "$before" ]
	printf '%s\n' "$CANARY" >"$BATS_TEST_TMPDIR/v.txt"
	sc_want_found "$BATS_TEST_TMPDIR/v.txt"
	# A value with no fingerprints (as one stored before the index
	# existed): said by ls and by every scan, and rekey indexes it.
	sql "DELETE FROM scan_index"
	lx ls </dev/null
	grep -Eq '^api .* unindexed$' "$LX_OUT"
	lx scan "$BATS_TEST_TMPDIR/v.txt" </dev/null
	want_status 0
	[[ $err == *"1 value stored before the scan index existed was not scanned"* ]]
	latch_p rekey >/dev/null
	sc_want_found "$BATS_TEST_TMPDIR/v.txt"
	latch_p rm api >/dev/null
	[ "$(sqlite3 "$VAULT" "SELECT count(*) FROM scan_index")" = 0 ]
	lx scan "$BATS_TEST_TMPDIR/v.txt" </dev/null
	want_status 0
}

@test "a blocked scan is a scan_block audit record when a broker runs (names, paths, scope; never a value); none without one" {
	sc_repo
	printf 'k=%s\n' "$CANARY" >leak.txt
	git add leak.txt
	# No broker: blocked, nothing recorded, none started.
	sc_want_found --staged
	lx audit --json --event scan_block </dev/null
	[ "$(jq length <<<"$out")" = 0 ]
	[ -z "$(ls "$BATS_TEST_TMPDIR"/home/.local/share/latch/run/broker-*.lock 2>/dev/null)" ]
	# A broker (started by a grant): the block is recorded.
	br_runtime "$BATS_TEST_TMPDIR/rt"
	br_grant api --ttl 5m
	sc_want_found --staged
	lx audit --json --event scan_block </dev/null
	[ "$(jq length <<<"$out")" = 1 ]
	[ "$(jq -r '.[0].secrets | join(",")' <<<"$out")" = api ]
	[ "$(jq -r '.[0].paths | join(",")' <<<"$out")" = leak.txt ]
	[ "$(jq -r '.[0].scope' <<<"$out")" = staged ]
	au_want_verified
	# Nothing latch printed, stored or recorded holds the value: its
	# files, the repository's .git (but the staged blob itself, which is
	# zlib-compressed, and the index) and every output.
	local files=()
	mapfile -t files < <(find "$LATCH_HOME" "$XDG_RUNTIME_DIR" "$REPO/.git" -type f -readable 2>/dev/null)
	sqlite3 "$VAULT" .dump >"$BATS_TEST_TMPDIR/dump.sql"
	assert_absent "$CANARY" "${files[@]}" "$BATS_TEST_TMPDIR/dump.sql" "$BATS_TEST_TMPDIR"/lx.*
}

@test "an allowed (secret, path) pair is not reported; changing the allow-list needs the passphrase and is recorded" {
	mkdir "$BATS_TEST_TMPDIR/w"
	printf '%s\n' "$CANARY" >"$BATS_TEST_TMPDIR/w/fixture.txt"
	printf '%s\n' "$CANARY" >"$BATS_TEST_TMPDIR/w/other.txt"
	cd "$BATS_TEST_TMPDIR"
	# No terminal, no passphrase: refused, nothing changed.
	lx scan allow api w/fixture.txt </dev/null
	want_status 4
	lx scan allow api w/fixture.txt --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	lx scan allowed </dev/null
	[ "$out" = "api w/fixture.txt" ]
	lx scan w </dev/null
	want_status 1
	[[ $err == *"w/other.txt:1: api (raw)"* ]]
	[[ $err != *"fixture.txt:1:"* ]]
	[[ $err == *"1 finding allowed by the allow-list"* ]]
	lx audit --json --event scan_allow </dev/null
	[ "$(jq -r '.[0].paths[0]' <<<"$out")" = w/fixture.txt ]
	# A comment in the file silences nothing.
	printf '%s # latch:allow\n' "$CANARY" >"$BATS_TEST_TMPDIR/w/other.txt"
	lx scan w/other.txt </dev/null
	want_status 1
	lx scan disallow api w/fixture.txt --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	sc_want_found w/fixture.txt
}

@test "--sarif: SARIF 2.1.0 with one result per finding, never the value" {
	printf 'a\n%s\n' "$CANARY" >"$BATS_TEST_TMPDIR/s.txt"
	lx scan --sarif "$BATS_TEST_TMPDIR/s.txt" </dev/null
	want_status 1
	[ "$(jq -r .version <<<"$out")" = 2.1.0 ]
	[ "$(jq -r '.runs[0].tool.driver.name' <<<"$out")" = latch ]
	[ "$(jq -r '.runs[0].results | length' <<<"$out")" = 1 ]
	[ "$(jq -r '.runs[0].results[0].locations[0].physicalLocation.region.startLine' <<<"$out")" = 2 ]
	[ "$(jq -r '.runs[0].results[0].ruleId' <<<"$out")" = latch/managed-value ]
	assert_absent "$CANARY" "$LX_OUT" "$LX_ERR"
	lx scan --sarif --json "$BATS_TEST_TMPDIR/s.txt" </dev/null
	want_status 2
}

@test "git commit --amend that adds the value is blocked" {
	sc_repo
	printf '#!/bin/sh\nexec "%s" scan --staged\n' "$LATCH" >.git/hooks/pre-commit
	chmod +x .git/hooks/pre-commit
	printf '%s\n' "$(enc b64-0)" >>README
	git add README
	run git commit -q --amend -m "amended"
	[ "$status" -ne 0 ]
	[[ $output == *"README:2: api (base64)"* ]]
	[ "$(git log -1 --format=%s)" = init ]
}
