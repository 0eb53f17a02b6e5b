#!/usr/bin/env bats
# latch hook install | uninstall | status, with a real git in temporary
# repositories, and the pre-commit framework (Debian's pre-commit) running
# latch from .pre-commit-hooks.yaml.
#
# Most tests install the hooks from a copy of latch ($HK_BIN/latch: the
# hooks name the executable that installed them) and then put a stand-in
# in its place (hk_stub) that logs its arguments and stdin and exits as
# told: that checks what the scripts do (the chain and its order, the
# arguments, pre-push's stdin bytes, the exit status) whatever the scan
# finds. The tests named "(real scan)" run latch's own `latch scan`: they
# fail, saying so, until build/latch has it.

load helpers

ROOT=$BATS_TEST_DIRNAME/../..
ZERO=0000000000000000000000000000000000000000

setup() {
	home_setup
	export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=hk GIT_AUTHOR_EMAIL=hk@example.invalid \
		GIT_COMMITTER_NAME=hk GIT_COMMITTER_EMAIL=hk@example.invalid
	unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY PRE_COMMIT_HOME
	HK_BIN=$BATS_TEST_TMPDIR/bin
	HK_LOG=$BATS_TEST_TMPDIR/hklog
	mkdir -p "$HK_BIN" "$HK_LOG"
	HK_ABS=$(readlink -f "$LATCH")
	R=$BATS_TEST_TMPDIR/repo
}

# hk_repo DIR: a new repository (branch main) at DIR, made the current
# directory.
hk_repo() {
	git init -q -b main "$1" && cd "$1"
}

# hk_remote: a bare repository as remote "origin"; HK_URL is its path.
hk_remote() {
	HK_URL=$BATS_TEST_TMPDIR/remote.git
	git init -q --bare "$HK_URL" && git remote add origin "$HK_URL"
}

# hk_copy: a copy of latch at $HK_BIN/latch, to install the hooks from.
hk_copy() {
	cp "$LATCH" "$HK_BIN/latch"
}

# hk_stub [STATUS]: put a stand-in at $HK_BIN/latch that appends "latch
# ARGS" to $HK_LOG/calls, saves the stdin of a `scan --push` to
# $HK_LOG/latch.stdin and exits STATUS (default 0).
hk_stub() {
	cat >"$HK_BIN/latch.new" <<EOF
#!/bin/sh
printf 'latch %s\n' "\$*" >>'$HK_LOG/calls'
if [ "\$2" = --push ]; then cat >'$HK_LOG/latch.stdin'; fi
exit ${1:-0}
EOF
	chmod 0755 "$HK_BIN/latch.new" && mv "$HK_BIN/latch.new" "$HK_BIN/latch"
}

# hk_foreign: foreign hooks in .git/hooks: a pre-commit (0755) that logs
# "orig pre-commit ARGS" to $HK_LOG/calls, and a pre-push (0750) that logs
# "orig pre-push ARGS" and saves its stdin to $HK_LOG/orig.stdin. Each
# exits with the number in $HK_LOG/orig.status (0 without it). Their
# sha256 and modes are in HK_PC_SHA, HK_PP_SHA (0755 and 0750).
hk_foreign() {
	mkdir -p .git/hooks
	cat >.git/hooks/pre-commit <<EOF
#!/bin/sh
printf 'orig pre-commit %s\n' "\$*" >>'$HK_LOG/calls'
exit \$(cat '$HK_LOG/orig.status' 2>/dev/null || echo 0)
EOF
	cat >.git/hooks/pre-push <<EOF
#!/bin/sh
printf 'orig pre-push %s\n' "\$*" >>'$HK_LOG/calls'
cat >'$HK_LOG/orig.stdin'
exit \$(cat '$HK_LOG/orig.status' 2>/dev/null || echo 0)
EOF
	chmod 0755 .git/hooks/pre-commit
	chmod 0750 .git/hooks/pre-push
	HK_PC_SHA=$(hk_sha .git/hooks/pre-commit)
	HK_PP_SHA=$(hk_sha .git/hooks/pre-push)
}

hk_sha() {
	sha256sum <"$1" | cut -d' ' -f1
}

hk_mode() {
	stat -c %a "$1"
}

# hk_snap DIR: every path under DIR (but git's objects and logs) with its
# type, and for a regular file its mode and sha256: two equal snapshots
# mean nothing was written.
hk_snap() {
	(
		cd "$1" || exit 1
		find . -path ./.git/objects -prune -o -path ./.git/logs -prune -o -print0 | sort -z |
			while IFS= read -r -d '' f; do
				if [ -f "$f" ] && [ ! -L "$f" ]; then
					printf '%s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"
				else
					printf '%s %s\n' "$f" "$(stat -c %F "$f")"
				fi
			done
	)
}

# hk_calls: the stand-ins' log (empty if none ran).
hk_calls() {
	cat "$HK_LOG/calls" 2>/dev/null || true
}

# want_calls LINE...: the log is exactly these lines, in order.
want_calls() {
	local want got
	want=$(printf '%s\n' "$@")
	got=$(hk_calls)
	if [ "$got" != "$want" ]; then
		printf 'expected the hooks to run:\n%s\nbut they ran:\n%s\n' "$want" "$got" >&2
		return 1
	fi
}

# hk_commit FILE TEXT [GIT_COMMIT_ARG]...: write FILE, stage it and commit
# (message "add FILE"), stdin /dev/null; status and output as bats' run.
hk_commit() {
	local f=$1 text=$2
	shift 2
	printf '%s\n' "$text" >"$f"
	git add -- "$f"
	run git commit -q -m "add $f" "$@" </dev/null
}

# need_scan: fail (not skip) when build/latch has no `latch scan` yet.
need_scan() {
	if ! "$LATCH" scan --help >/dev/null 2>&1; then
		echo "$LATCH has no 'latch scan' yet: this test needs the scan (issue 11, items 3-4)" >&2
		return 1
	fi
}

# need_pre_commit: skip when Debian's pre-commit is missing.
need_pre_commit() {
	command -v pre-commit >/dev/null 2>&1 ||
		skip "the pre-commit framework is not installed (scripts/deps.sh installs Debian's pre-commit)"
}

# hk_value: a value strong enough to be fingerprinted (24 random bytes,
# base64 letters and digits only).
hk_value() {
	head -c 24 /dev/urandom | base64 | tr -d '/+=\n'
}

@test "install: all three hooks, 0755, marker and latch's absolute path; status says latch; installing again changes nothing" {
	hk_repo "$R"
	lx hook install
	want_status 0
	[[ "$out" == *"$R/.git/hooks"* ]]
	local h
	for h in pre-commit commit-msg pre-push; do
		[ "$(hk_mode ".git/hooks/$h")" = 755 ]
		[ "$(sed -n 1p ".git/hooks/$h")" = "#!/bin/sh" ]
		[ "$(sed -n 2p ".git/hooks/$h")" = "# latch hook v1" ]
		grep -qxF "LATCH='$HK_ABS'" ".git/hooks/$h"
		sh -n ".git/hooks/$h"
	done
	grep -qF 'scan --staged' .git/hooks/pre-commit
	grep -qF 'scan --message "$1"' .git/hooks/commit-msg
	grep -qF 'scan --push "$1" "$2"' .git/hooks/pre-push
	lx hook status --json
	want_status 0
	[ "$(jq -r .hooks_dir <<<"$out")" = "$R/.git/hooks" ]
	[ "$(jq -r .manager <<<"$out")" = null ]
	for h in pre-commit commit-msg pre-push; do
		[ "$(jq -r --arg h "$h" '.hooks[$h].state' <<<"$out")" = latch ]
		[ "$(jq -r --arg h "$h" '.hooks[$h].chained' <<<"$out")" = false ]
		[ "$(jq -r --arg h "$h" '.hooks[$h].latch' <<<"$out")" = "$HK_ABS" ]
		[ "$(jq -r --arg h "$h" '.hooks[$h].latch_found' <<<"$out")" = true ]
	done
	lx hook status
	want_status 0
	[[ "$out" == *"hooks directory: $R/.git/hooks"* ]]
	[[ "$out" == *"pre-commit  latch"* ]]
	[[ "$out" == *"pre-push    latch"* ]]
	local before
	before=$(hk_snap .git/hooks)
	lx hook install
	want_status 0
	[[ "$out" == *"installed again"* ]]
	[ "$(hk_snap .git/hooks)" = "$before" ] # same bytes and modes, no file left behind

	# One hook only.
	hk_repo "$BATS_TEST_TMPDIR/one"
	lx hook install --commit-msg
	want_status 0
	[ -x .git/hooks/commit-msg ]
	[ ! -e .git/hooks/pre-commit ]
	[ ! -e .git/hooks/pre-push ]
	lx hook status --json
	[ "$(jq -r '.hooks["pre-commit"].state' <<<"$out")" = absent ]
}

@test "install: usage errors exit 2 and write nothing" {
	hk_repo "$R"
	lx hook
	want_status 2
	lx hook frobnicate
	want_status 2
	lx hook install --frobnicate
	want_status 2
	lx hook install extra
	want_status 2
	lx hook status extra
	want_status 2
	[ -z "$(ls .git/hooks | grep -v '\.sample$')" ]
	cd "$BATS_TEST_TMPDIR"
	lx hook install
	want_status 2
	[[ "$err" == *"not in a git repository"* ]]
}

@test "core.hooksPath is honoured (relative, from a subdirectory); a linked worktree installs into the common hooks directory" {
	hk_repo "$R"
	git config core.hooksPath myhooks
	mkdir -p sub/deep
	cd sub/deep
	lx hook install
	want_status 0
	cd "$R"
	[ -x myhooks/pre-commit ] && [ -x myhooks/commit-msg ] && [ -x myhooks/pre-push ]
	[ -z "$(ls .git/hooks | grep -v '\.sample$')" ]
	lx hook status --json
	[ "$(jq -r .hooks_dir <<<"$out")" = "$R/myhooks" ]

	# A linked worktree: the hooks go to the main repository's .git/hooks,
	# and git runs them for a commit made in the worktree.
	local main=$BATS_TEST_TMPDIR/main wt=$BATS_TEST_TMPDIR/wt
	hk_repo "$main"
	git commit -q --allow-empty -m root
	git worktree add -q "$wt"
	cd "$wt"
	hk_copy
	"$HK_BIN/latch" hook install >/dev/null
	[ -x "$main/.git/hooks/pre-commit" ]
	[ ! -e "$main/.git/worktrees/wt/hooks" ]
	lx hook status --json
	[ "$(jq -r .hooks_dir <<<"$out")" = "$main/.git/hooks" ]
	[ "$(jq -r '.hooks["pre-push"].state' <<<"$out")" = latch ]
	hk_stub 0
	hk_commit f.txt hello
	[ "$status" -eq 0 ]
	[ "$(hk_calls | sed -n 1p)" = "latch scan --staged" ]
	[[ "$(hk_calls | sed -n 2p)" == "latch scan --message "*"/worktrees/wt/COMMIT_EDITMSG" ]]
}

@test "foreign pre-commit and pre-push hooks: install refuses without --force, writing nothing" {
	hk_repo "$R"
	hk_foreign
	local before
	before=$(hk_snap .git)
	lx hook install
	want_status 2
	want_err_line "pre-commit and pre-push hooks exist and are not latch's" "--force"
	want_no_stdout
	lx hook install --pre-commit
	want_status 2
	want_err_line "pre-commit hook exists and is not latch's: --force keeps it and runs it first (chained), or remove it"
	lx hook install --pre-push --commit-msg
	want_status 2
	[[ "$err" == *"pre-push hook exists and is not latch's"* ]]
	[ "$(hk_snap .git)" = "$before" ]
	[ "$(hk_sha .git/hooks/pre-commit)" = "$HK_PC_SHA" ]
	[ "$(hk_sha .git/hooks/pre-push)" = "$HK_PP_SHA" ]
	lx hook status --json
	[ "$(jq -r '.hooks["pre-commit"].state' <<<"$out")" = foreign ]
	[ "$(jq -r '.hooks["commit-msg"].state' <<<"$out")" = absent ]
	lx hook status
	[[ "$out" == *"pre-commit  foreign (not latch's)"* ]]
}

@test "--force chains foreign hooks: they run first, pre-push's with git's stdin bytes; uninstall restores them byte-identical with their modes" {
	hk_repo "$R"
	hk_remote
	hk_foreign
	hk_copy
	run "$HK_BIN/latch" hook install --force
	[ "$status" -eq 0 ]
	[[ "$output" == *"kept as pre-commit.latch-orig"* ]]
	[ "$(hk_sha .git/hooks/pre-commit.latch-orig)" = "$HK_PC_SHA" ]
	[ "$(hk_mode .git/hooks/pre-commit.latch-orig)" = 755 ]
	[ "$(hk_sha .git/hooks/pre-push.latch-orig)" = "$HK_PP_SHA" ]
	[ "$(hk_mode .git/hooks/pre-push.latch-orig)" = 750 ]
	[ ! -e .git/hooks/commit-msg.latch-orig ]
	lx hook status --json
	[ "$(jq -r '.hooks["pre-commit"].chained' <<<"$out")" = true ]
	[ "$(jq -r '.hooks["pre-push"].chained' <<<"$out")" = true ]
	[ "$(jq -r '.hooks["commit-msg"].chained' <<<"$out")" = false ]
	lx hook status
	[[ "$out" == *"pre-commit  latch (chaining an original)"* ]]

	# Installing again keeps the chain and the originals.
	"$HK_BIN/latch" hook install --force >/dev/null
	[ "$(hk_sha .git/hooks/pre-commit.latch-orig)" = "$HK_PC_SHA" ]
	[ ! -e .git/hooks/pre-commit.latch-orig.latch-orig ]

	# A commit: the original first, then the scan of the index, then the
	# message's.
	hk_stub 0
	hk_commit a.txt one
	[ "$status" -eq 0 ]
	want_calls "orig pre-commit " "latch scan --staged" "latch scan --message .git/COMMIT_EDITMSG"
	local c1
	c1=$(git rev-parse HEAD)

	# A push of a new branch: the original and the scan get git's line
	# for it, byte for byte, and the same arguments (remote, URL).
	rm -f "$HK_LOG/calls"
	run git push -q origin main </dev/null
	[ "$status" -eq 0 ]
	want_calls "orig pre-push origin $HK_URL" "latch scan --push origin $HK_URL"
	printf 'refs/heads/main %s refs/heads/main %s\n' "$c1" "$ZERO" >"$HK_LOG/expected"
	[ "$(hk_sha "$HK_LOG/orig.stdin")" = "$(hk_sha "$HK_LOG/expected")" ]
	[ "$(hk_sha "$HK_LOG/latch.stdin")" = "$(hk_sha "$HK_LOG/expected")" ]

	# Two refs at once (an update and a new annotated tag): two lines,
	# the same bytes for both.
	hk_commit b.txt two
	[ "$status" -eq 0 ]
	git tag -a v1 -m v1
	rm -f "$HK_LOG/calls"
	run git push -q origin main v1 </dev/null
	[ "$status" -eq 0 ]
	{
		printf 'refs/heads/main %s refs/heads/main %s\n' "$(git rev-parse HEAD)" "$c1"
		printf 'refs/tags/v1 %s refs/tags/v1 %s\n' "$(git rev-parse v1)" "$ZERO"
	} | sort >"$HK_LOG/expected"
	[ "$(sort "$HK_LOG/orig.stdin" | hk_sha /dev/stdin)" = "$(hk_sha "$HK_LOG/expected")" ]
	[ "$(hk_sha "$HK_LOG/latch.stdin")" = "$(hk_sha "$HK_LOG/orig.stdin")" ]

	# The scan's verdict stops a commit and a push.
	hk_stub 1
	rm -f "$HK_LOG/calls"
	hk_commit c.txt three
	[ "$status" -ne 0 ]
	[ "$(git rev-parse HEAD)" = "$(git rev-parse v1^{commit})" ]
	want_calls "orig pre-commit " "latch scan --staged"
	run git commit -q --no-verify -m "add c.txt" </dev/null
	[ "$status" -eq 0 ]
	run git push -q origin main </dev/null
	[ "$status" -ne 0 ]
	[ "$(git --git-dir="$HK_URL" rev-parse main)" = "$(git rev-parse v1^{commit})" ]

	# A failing original stops them too, before the scan runs.
	hk_stub 0
	echo 3 >"$HK_LOG/orig.status"
	rm -f "$HK_LOG/calls"
	run git push -q origin main </dev/null
	[ "$status" -ne 0 ]
	want_calls "orig pre-push origin $HK_URL"
	hk_commit d.txt four
	[ "$status" -ne 0 ]
	want_calls "orig pre-push origin $HK_URL" "orig pre-commit "
	rm -f "$HK_LOG/orig.status"

	# Uninstall: the originals are back, same bytes and modes.
	lx hook uninstall
	want_status 0
	[[ "$out" == *"pre-commit  removed; the original hook is back"* ]]
	[[ "$out" == *"commit-msg  removed"* ]]
	[ "$(hk_sha .git/hooks/pre-commit)" = "$HK_PC_SHA" ]
	[ "$(hk_mode .git/hooks/pre-commit)" = 755 ]
	[ "$(hk_sha .git/hooks/pre-push)" = "$HK_PP_SHA" ]
	[ "$(hk_mode .git/hooks/pre-push)" = 750 ]
	[ ! -e .git/hooks/commit-msg ]
	[ -z "$(ls .git/hooks | grep 'latch')" ]
	lx hook status --json
	[ "$(jq -r '.hooks["pre-commit"].state' <<<"$out")" = foreign ]
	# A foreign hook is left alone by uninstall.
	lx hook uninstall
	want_status 0
	[[ "$out" == *"pre-commit  not latch's: left alone"* ]]
	[ "$(hk_sha .git/hooks/pre-commit)" = "$HK_PC_SHA" ]
}

@test "--force refuses to overwrite an earlier <hook>.latch-orig" {
	hk_repo "$R"
	hk_foreign
	echo old >.git/hooks/pre-commit.latch-orig
	local before
	before=$(hk_snap .git)
	lx hook install --force
	want_status 2
	want_err_line "pre-commit.latch-orig' exists already" "nothing written"
	[ "$(hk_snap .git)" = "$before" ]
}

@test "husky and lefthook layouts are refused, saying what to add instead; nothing written" {
	# husky 9: core.hooksPath .husky/_, its scripts there, the user's in .husky.
	hk_repo "$R"
	mkdir -p .husky/_
	printf '#!/usr/bin/env sh\n. "$(dirname "$0")/h"\n' >.husky/_/pre-commit
	printf '#!/usr/bin/env sh\nexit 0\n' >.husky/_/h
	printf 'npm test\n' >.husky/pre-commit
	chmod 0755 .husky/_/pre-commit .husky/_/h
	git config core.hooksPath .husky/_
	local before
	before=$(hk_snap "$R")
	lx hook install
	want_status 2
	want_err_line "husky" "'latch scan --staged' to .husky/pre-commit" \
		"'latch scan --push \"\$1\" \"\$2\"' to .husky/pre-push" "nothing written"
	lx hook install --force
	want_status 2
	[ "$(hk_snap "$R")" = "$before" ]
	lx hook status --json
	[ "$(jq -r .manager <<<"$out")" = husky ]
	[ "$(jq -r '.hooks["pre-commit"].state' <<<"$out")" = manager ]

	# husky 4: its scripts in .git/hooks, sourcing husky.sh.
	hk_repo "$BATS_TEST_TMPDIR/h4"
	printf '#!/bin/sh\n. "$(dirname "$0")/husky.sh"\n' >.git/hooks/pre-push
	chmod 0755 .git/hooks/pre-push
	before=$(hk_snap "$BATS_TEST_TMPDIR/h4")
	lx hook install --pre-commit
	want_status 2
	want_err_line "husky" "nothing written"
	[ "$(hk_snap "$BATS_TEST_TMPDIR/h4")" = "$before" ]

	# lefthook: lefthook.yml and its script in .git/hooks.
	hk_repo "$BATS_TEST_TMPDIR/lh"
	printf 'pre-commit:\n  commands:\n    lint:\n      run: make lint\n' >lefthook.yml
	cat >.git/hooks/pre-commit <<'EOF'
#!/bin/sh
if [ "$LEFTHOOK" = "0" ]; then
  exit 0
fi
call_lefthook()
{
  lefthook "$@"
}
call_lefthook run "pre-commit" "$@"
EOF
	chmod 0755 .git/hooks/pre-commit
	before=$(hk_snap "$BATS_TEST_TMPDIR/lh")
	lx hook install --pre-push
	want_status 2
	want_err_line "lefthook" "run: latch scan --staged" "nothing written"
	lx hook install --force
	want_status 2
	[ "$(hk_snap "$BATS_TEST_TMPDIR/lh")" = "$before" ]
	lx hook status
	[[ "$out" == *"(a hooks manager's: lefthook)"* ]]
	[[ "$out" == *"pre-commit  inside a hooks manager (lefthook)"* ]]
}

@test "latch's executable gone: the hooks fail closed, saying how to repair" {
	hk_repo "$R"
	hk_remote
	hk_copy
	"$HK_BIN/latch" hook install >/dev/null
	rm "$HK_BIN/latch"
	hk_commit a.txt one
	[ "$status" -ne 0 ]
	[[ "$output" == *"cannot run $HK_BIN/latch"* ]]
	[[ "$output" == *"commit refused"* ]]
	[[ "$output" == *"latch hook install"* ]]
	refute git rev-parse -q --verify HEAD
	run git commit -q --no-verify -m "add a.txt" </dev/null
	[ "$status" -eq 0 ]
	run git push -q origin main </dev/null
	[ "$status" -ne 0 ]
	[[ "$output" == *"push refused"* ]]
	refute git --git-dir="$HK_URL" rev-parse -q --verify main
	lx hook status
	[[ "$out" == *"its latch executable $HK_BIN/latch is missing"* ]]
	lx hook status --json
	[ "$(jq -r '.hooks["pre-commit"].latch_found' <<<"$out")" = false ]
	# Installing again from a latch that is there repairs them.
	lx hook install
	want_status 0
	lx hook status --json
	[ "$(jq -r '.hooks["pre-commit"].latch_found' <<<"$out")" = true ]
}

@test "(real scan) with no terminal and no vault, a commit and a push succeed" {
	need_scan
	hk_repo "$R"
	hk_remote
	lx hook install
	want_status 0
	printf 'hello\n' >a.txt
	git add a.txt
	run setsid -w git commit -q -m "add a.txt" </dev/null
	[ "$status" -eq 0 ]
	git rev-parse -q --verify HEAD
	run setsid -w git push -q origin main </dev/null
	[ "$status" -eq 0 ]
	[ "$(git --git-dir="$HK_URL" rev-parse main)" = "$(git rev-parse HEAD)" ]
	[ ! -e "$VAULT" ]
}

@test "(real scan) a locked vault: the hooks prompt for nothing; a clean commit passes, a staged value is refused" {
	need_scan
	local value
	value=$(hk_value)
	init_vault
	set_secret hk-token "$value"
	hk_repo "$R"
	hk_remote
	lx hook install
	want_status 0
	printf 'nothing to see\n' >clean.txt
	git add clean.txt
	run setsid -w git commit -q -m "add clean.txt" </dev/null
	[ "$status" -eq 0 ]
	local head
	head=$(git rev-parse HEAD)
	printf 'token: %s\n' "$value" >leak.txt
	git add leak.txt
	run setsid -w git commit -q -m "add leak.txt" </dev/null
	[ "$status" -ne 0 ]
	[ "$(git rev-parse HEAD)" = "$head" ]
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/commit.out"
	grep -q hk-token "$BATS_TEST_TMPDIR/commit.out"
	assert_absent "$value" "$BATS_TEST_TMPDIR/commit.out"
	# In the message: the commit-msg hook refuses it.
	git rm -q --cached leak.txt
	printf 'more\n' >>clean.txt
	git add clean.txt
	run setsid -w git commit -q -m "the token is $value" </dev/null
	[ "$status" -ne 0 ]
	[ "$(git rev-parse HEAD)" = "$head" ]
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/msg.out"
	grep -q hk-token "$BATS_TEST_TMPDIR/msg.out"
	assert_absent "$value" "$BATS_TEST_TMPDIR/msg.out"
	# Committed with --no-verify: the pre-push hook refuses the push.
	run setsid -w git push -q origin main </dev/null
	[ "$status" -eq 0 ]
	git add leak.txt
	run git commit -q --no-verify -m "add leak.txt" </dev/null
	[ "$status" -eq 0 ]
	run setsid -w git push -q origin main </dev/null
	[ "$status" -ne 0 ]
	[ "$(git --git-dir="$HK_URL" rev-parse main)" = "$head" ]
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/push.out"
	grep -q hk-token "$BATS_TEST_TMPDIR/push.out"
	assert_absent "$value" "$BATS_TEST_TMPDIR/push.out"
}

@test "pre-commit framework: .pre-commit-hooks.yaml runs latch scan at commit, commit-msg and push" {
	need_pre_commit
	export PRE_COMMIT_HOME=$BATS_TEST_TMPDIR/pre-commit-home
	run pre-commit validate-manifest "$ROOT/.pre-commit-hooks.yaml"
	[ "$status" -eq 0 ]
	# The manifest as it is in this tree, in a repository of its own.
	local hooks=$BATS_TEST_TMPDIR/latch-hooks rev
	hk_repo "$hooks"
	cp "$ROOT/.pre-commit-hooks.yaml" .
	git add .pre-commit-hooks.yaml
	git commit -q -m hooks
	rev=$(git rev-parse HEAD)

	hk_repo "$R"
	hk_remote
	cat >.pre-commit-config.yaml <<EOF
repos:
  - repo: $hooks
    rev: $rev
    hooks:
      - id: latch-staged
      - id: latch-message
      - id: latch-push
EOF
	git add .pre-commit-config.yaml
	hk_stub 0
	export PATH="$HK_BIN:$PATH"
	run pre-commit install -t pre-commit -t commit-msg -t pre-push
	[ "$status" -eq 0 ]
	hk_commit a.txt one
	[ "$status" -eq 0 ]
	[ "$(hk_calls | sed -n 1p)" = "latch scan --staged" ]
	[[ "$(hk_calls | sed -n 2p)" == "latch scan --message "*COMMIT_EDITMSG ]]
	[ "$(hk_calls | wc -l)" -eq 2 ]
	# A branch whose whole history is new: everything it reaches.
	local c1
	c1=$(git rev-parse HEAD)
	rm -f "$HK_LOG/calls"
	run git push -q origin main </dev/null
	[ "$status" -eq 0 ]
	want_calls "latch scan --range refs/heads/main"
	# Then only what is new.
	hk_commit b.txt two
	[ "$status" -eq 0 ]
	rm -f "$HK_LOG/calls"
	run git push -q origin main </dev/null
	[ "$status" -eq 0 ]
	want_calls "latch scan --range $c1..$(git rev-parse HEAD)"
	# latch's verdict stops the commit and the push.
	hk_stub 1
	hk_commit c.txt three
	[ "$status" -ne 0 ]
	run git commit -q --no-verify -m "add c.txt" </dev/null
	[ "$status" -eq 0 ]
	run git push -q origin main </dev/null
	[ "$status" -ne 0 ]
	[ "$(git --git-dir="$HK_URL" rev-parse main)" = "$(git rev-parse HEAD~1)" ]
}

@test "(real scan) pre-commit framework: a staged value is refused" {
	need_pre_commit
	need_scan
	export PRE_COMMIT_HOME=$BATS_TEST_TMPDIR/pre-commit-home
	local value hooks=$BATS_TEST_TMPDIR/latch-hooks rev
	value=$(hk_value)
	init_vault
	set_secret hk-token "$value"
	hk_repo "$hooks"
	cp "$ROOT/.pre-commit-hooks.yaml" .
	git add .pre-commit-hooks.yaml
	git commit -q -m hooks
	rev=$(git rev-parse HEAD)
	hk_repo "$R"
	hk_remote
	printf 'repos:\n  - repo: %s\n    rev: %s\n    hooks:\n      - id: %s\n      - id: %s\n      - id: %s\n' \
		"$hooks" "$rev" latch-staged latch-message latch-push >.pre-commit-config.yaml
	git add .pre-commit-config.yaml
	ln -s "$HK_ABS" "$HK_BIN/latch"
	export PATH="$HK_BIN:$PATH"
	pre-commit install -t pre-commit -t commit-msg -t pre-push >/dev/null
	hk_commit clean.txt "nothing to see"
	[ "$status" -eq 0 ]
	local head
	head=$(git rev-parse HEAD)
	printf 'token: %s\n' "$value" >leak.txt
	git add leak.txt
	run setsid -w git commit -q -m "add leak.txt" </dev/null
	[ "$status" -ne 0 ]
	[ "$(git rev-parse HEAD)" = "$head" ]
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/commit.out"
	grep -q hk-token "$BATS_TEST_TMPDIR/commit.out"
	assert_absent "$value" "$BATS_TEST_TMPDIR/commit.out"
	# A clean push passes; one with the value, committed with --no-verify,
	# is refused, whether the branch is new to the remote or not.
	run setsid -w git push -q origin main </dev/null
	[ "$status" -eq 0 ]
	run git commit -q --no-verify -m "add leak.txt" </dev/null
	[ "$status" -eq 0 ]
	run setsid -w git push -q origin main </dev/null
	[ "$status" -ne 0 ]
	[ "$(git --git-dir="$HK_URL" rev-parse main)" = "$head" ]
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/push.out"
	grep -q hk-token "$BATS_TEST_TMPDIR/push.out"
	assert_absent "$value" "$BATS_TEST_TMPDIR/push.out"
	run setsid -w git push -q origin main:refs/heads/other </dev/null
	[ "$status" -ne 0 ]
	refute git --git-dir="$HK_URL" rev-parse -q --verify other
}
