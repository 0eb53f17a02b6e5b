#!/usr/bin/env bats
# The broker end to end (docs/design.md P4, P5, P7; section 3 grant/grants/
# revoke/run): a human's grant lets `latch run` hand a value to one child;
# the value shows in no latch output, file or argv; without a terminal or a
# passphrase nothing widens access; expired, used-up and out-of-list
# releases are refused and each refusal is in the audit log; the daemon
# goes away when idle.
# Attacks on the socket and the daemon's memory: broker_attack.bats.
# Exit statuses, signals, --file, --env-file, concurrency: broker_exec.bats.

load helpers

setup() {
	br_setup
}

teardown() {
	bg_cleanup
}

@test "with a grant, run gives the child the canary; it is in no latch output, no file, no argv, not in latch's own environment" {
	br_grant canary --ttl 5m --cmd sh
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	[ ! -s "$LX_OUT" ] && [ ! -s "$LX_ERR" ] || { echo "latch run printed: $out / $err" >&2; false; }

	# Again, holding the child while /proc is read.
	local d=$BATS_TEST_TMPDIR/hold
	mkdir "$d"
	Y=latch://canary setsid -w "$LATCH" run --env X=latch://canary -- sh -c "$(br_check_canary)"'
		[ "$X" = "$Y" ] || exit 8
		echo $$ $PPID >"$0/pids.tmp" && mv "$0/pids.tmp" "$0/pids"
		while [ ! -e "$0/go" ]; do sleep 0.05; done' "$d" \
		</dev/null >"$BATS_TEST_TMPDIR/lx.hold.out" 2>"$BATS_TEST_TMPDIR/lx.hold.err" &
	local bg=$!
	bg_track "$bg"
	wait_file "$d/pids" "$bg" || { echo "the child never started: $(cat "$BATS_TEST_TMPDIR/lx.hold.err")" >&2; false; }
	local child runner latchpid=$bg broker
	read -r child runner <"$d/pids"
	bg_track "$child"
	bg_track "$runner"
	broker=$(br_broker_pid)
	[[ "$(tr '\0' ' ' <"/proc/$latchpid/cmdline")" == "$LATCH run --env X=latch://canary -- sh -c "* ]] ||
		{ echo "pid $latchpid is not the latch run: $(tr '\0' ' ' <"/proc/$latchpid/cmdline")" >&2; false; }
	# The child's parent is the broker's runner, a fork of the daemon.
	[ "$(awk '/^PPid:/ {print $2}' "/proc/$runner/status")" = "$broker" ] ||
		{ echo "the child's parent $runner is not a runner of the broker $broker" >&2; false; }
	# Positive control: the value is where it must be, and the scan finds
	# it (assert_absent also fails on a file missing or unreadable: the
	# grep shows this one is neither).
	grep -qaF "$CANARY" "/proc/$child/environ"
	refute assert_absent "$CANARY" "/proc/$child/environ" 2>/dev/null
	assert_absent "$CANARY" "/proc/$child/cmdline" "/proc/$latchpid/cmdline" "/proc/$broker/cmdline" \
		"/proc/$runner/cmdline"
	if [ "$(id -u)" -eq 0 ]; then
		# latch and the daemon are not dumpable: only root reads these.
		grep -qa 'Y=latch://canary' "/proc/$latchpid/environ" # the scan reads it
		assert_absent "$CANARY" "/proc/$latchpid/environ" "/proc/$broker/environ" "/proc/$runner/environ"
	fi
	touch "$d/go"
	local rc=0
	wait "$bg" || rc=$?
	[ "$rc" -eq 0 ] || { echo "latch run exited $rc: $(cat "$BATS_TEST_TMPDIR/lx.hold.err")" >&2; false; }

	# Every listing and report latch has.
	lx grants </dev/null
	want_status 0
	[[ "$out" == *"$BR_GRANT"*canary* ]]
	lx grants --json </dev/null
	want_status 0
	lx audit </dev/null
	want_status 0
	lx audit --json </dev/null
	want_status 0
	lx audit export </dev/null
	want_status 0
	lx ls --json </dev/null
	want_status 0
	lx status </dev/null
	[ "$status" -le 4 ]
	lx revoke "$BR_GRANT" </dev/null
	want_status 0
	assert_absent "$CANARY" "$BATS_TEST_TMPDIR"/lx.*
	br_scan_files "$CANARY"
}

@test "no terminal, no passphrase: grant and reveal exit 4; run without a grant exits 4 naming the grant to ask for, runs nothing" {
	br_nt grant canary --ttl 10m
	want_status 4
	want_err_line "passphrase"
	# Nothing reached a daemon: none was even started.
	[ -z "$(ls -A "$XDG_RUNTIME_DIR/latch" 2>/dev/null | grep '\.sock$')" ]
	br_nt grants --json
	want_status 0
	[ "$(tr -d ' \n' <<<"$out")" = "[]" ]

	br_nt reveal canary
	want_status 4
	want_err_line "canary"

	br_run --env X=latch://canary -- sh -c 'touch "$0/ran"' "$BATS_TEST_TMPDIR"
	want_status 4
	want_err_line "latch grant canary --cmd $(br_real sh)"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]

	# The daemon runs (a grant for another secret), still nothing for canary.
	set_secret other "value of other"
	br_grant other --ttl 10m
	br_run --env X=latch://canary -- sh -c 'touch "$0/ran"' "$BATS_TEST_TMPDIR"
	want_status 4
	want_err_line "no grant covers 'canary'" "latch grant canary --cmd $(br_real sh)"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	br_audit '
d = [x for x in r if x["secrets"] == ["canary"]]
assert len(d) == 1 and d[0]["decision"] == "deny" and "canary" in d[0]["reason"], r
' --event release
	# A wrong passphrase on an fd is no better.
	lx grant canary --passphrase-fd 3 3<<<"not the passphrase" </dev/null
	want_status 4
	br_nt grants --json
	[[ "$out" != *canary* ]] || { echo "a grant for canary exists: $out" >&2; false; }
	assert_absent "$CANARY" "$BATS_TEST_TMPDIR"/lx.*
}

@test "an expired grant (--ttl 2s) releases nothing; the refusal is recorded with its reason" {
	export LATCH_BROKER_IDLE=60 # the daemon must outlive the deadline
	br_grant canary --ttl 2s --cmd sh
	local deadline
	deadline=$(br_deadline "$BR_GRANT")
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	br_wait_past "$deadline"
	br_run --env X=latch://canary -- sh -c "$(br_check_canary); touch \"\$0/ran\"" "$BATS_TEST_TMPDIR"
	want_status 4
	want_err_line "expired" "latch grant canary --cmd $(br_real sh)"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	br_audit '
assert [x["decision"] for x in r] == ["allow", "deny"], r
d = r[1]
assert d["secrets"] == ["canary"] and "expired" in d["reason"], d
assert d["exe"] == sys.argv[2], d
' --event release -- "$(br_real sh)"
	br_nt grants --json
	[ "$(tr -d ' \n' <<<"$out")" = "[]" ]
}

@test "--uses 2: two releases, the third refused as used up and recorded" {
	br_grant canary --ttl 10m --uses 2
	lx grants --json </dev/null
	"$PY" -c 'import json,sys; g=json.loads(sys.argv[1]); assert g[0]["uses_left"] == 2, g' "$out"
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	lx grants --json </dev/null
	"$PY" -c 'import json,sys; g=json.loads(sys.argv[1]); assert g[0]["uses_left"] == 1, g' "$out"
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	br_run --env X=latch://canary -- sh -c "$(br_check_canary); touch \"\$0/ran\"" "$BATS_TEST_TMPDIR"
	want_status 4
	want_err_line "no uses left" "latch grant canary"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	br_audit '
assert [x["decision"] for x in r] == ["allow", "allow", "deny"], r
assert "no uses left" in r[2]["reason"] and r[2]["secrets"] == ["canary"], r
assert r[0]["grant"] == r[1]["grant"] == sys.argv[2], r
' --event release -- "$BR_GRANT"
	br_nt grants --json
	[ "$(tr -d ' \n' <<<"$out")" = "[]" ]
}

@test "--cmd: only that program's real path; other commands, a copy of it and a PATH decoy are refused and recorded" {
	local sh_real env_real t=$BATS_TEST_TMPDIR
	sh_real=$(br_real sh)
	env_real=$(br_real env)
	br_grant canary --ttl 10m --cmd sh
	lx grants --json </dev/null
	"$PY" -c 'import json,sys; g=json.loads(sys.argv[1]); assert g[0]["cmds"] == [sys.argv[2]], g' "$out" "$sh_real"

	br_run --env X=latch://canary -- env
	want_status 4
	want_err_line "allows the command '$env_real'" "latch grant canary --cmd $env_real"
	[[ "$out" != *"$CANARY"* ]]

	# A symlink to the same program is the same program.
	mkdir -p "$t/bin" "$t/decoy"
	ln -s "$sh_real" "$t/bin/mysh"
	br_run --env X=latch://canary -- "$t/bin/mysh" -c "$(br_check_canary)"
	want_status 0

	# A copy is another program.
	cp "$sh_real" "$t/bin/copysh"
	br_run --env X=latch://canary -- "$t/bin/copysh" -c "$(br_check_canary); touch \"\$0/ran\"" "$t"
	want_status 4
	want_err_line "allows the command '$(readlink -f "$t/bin/copysh")'"
	[ ! -e "$t/ran" ]

	# A script called sh earlier on PATH is not /bin/sh.
	printf '#!%s\ntouch "%s/decoy-ran"\n' "$sh_real" "$t" >"$t/decoy/sh"
	chmod +x "$t/decoy/sh"
	PATH="$t/decoy:$PATH" br_run --env X=latch://canary -- sh -c 'exit 0'
	want_status 4
	want_err_line "allows the command '$(readlink -f "$t/decoy/sh")'"
	[ ! -e "$t/decoy-ran" ]

	br_audit '
sh_real, copy, decoy, env_real = sys.argv[2:6]
assert [(x["decision"], x["exe"]) for x in r] == [
    ("deny", env_real), ("allow", sh_real), ("deny", copy), ("deny", decoy)], r
for x in r:
    if x["decision"] == "deny":
        assert "allows the command" in x["reason"], x
' --event release -- "$sh_real" "$(readlink -f "$t/bin/copysh")" "$(readlink -f "$t/decoy/sh")" "$env_real"
	assert_absent "$CANARY" "$BATS_TEST_TMPDIR"/lx.*
}

@test "a release needs one live grant covering every name; revoke ends a grant at once and is recorded" {
	set_secret other "value of other"
	br_grant canary --ttl 10m
	local g1=$BR_GRANT g2 g3
	br_run --env X=latch://canary --env Y=latch://other -- sh -c 'touch "$0/ran"' "$BATS_TEST_TMPDIR"
	want_status 4
	want_err_line "no grant covers 'other'"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]

	br_grant other --ttl 10m
	g2=$BR_GRANT
	br_run --env X=latch://canary --env Y=latch://other -- sh -c 'touch "$0/ran"' "$BATS_TEST_TMPDIR"
	want_status 4
	want_err_line "no single grant covers all"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	br_run --env Y=latch://other -- sh -c '[ "$Y" = "value of other" ]'
	want_status 0

	br_grant canary other --ttl 10m
	g3=$BR_GRANT
	br_run --env X=latch://canary --env Y=latch://other -- sh -c "$(br_check_canary)"' && [ "$Y" = "value of other" ]'
	want_status 0

	lx revoke "$g1" </dev/null
	want_status 0
	[ "$out" = "Revoked 1 grant." ]
	lx revoke "$g1" </dev/null
	[ "$status" -ne 0 ] # not live any more
	br_nt grants --json
	"$PY" -c 'import json,sys; g=json.loads(sys.argv[1]); assert sorted(x["grant"] for x in g) == sorted(sys.argv[2:]), g' \
		"$out" "$g2" "$g3"
	lx revoke --all </dev/null
	want_status 0
	[ "$out" = "Revoked 2 grants." ]
	br_run --env X=latch://canary -- sh -c 'touch "$0/ran"' "$BATS_TEST_TMPDIR"
	want_status 4
	want_err_line "revoked" "latch grant canary"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	br_nt grants --json
	[ "$(tr -d ' \n' <<<"$out")" = "[]" ]
	br_audit '
assert sorted(x["grant"] for x in r) == sorted(sys.argv[2:]), r
' --event revoke -- "$g1" "$g2" "$g3"
	br_audit '
assert r[-1]["decision"] == "deny" and "revoked" in r[-1]["reason"], r[-1]
assert [x["decision"] for x in r] == ["deny", "deny", "allow", "allow", "deny"], r
' --event release
}

@test "LATCH_BROKER_IDLE: the daemon exits after its last grant ended, removing its socket; grants then lists nothing" {
	export LATCH_BROKER_IDLE=1
	br_grant canary --ttl 2s
	local pid sock
	pid=$(br_broker_pid)
	sock=$(br_sock)
	# Bounded wait: the deadline (2 s) plus the idle time (1 s) plus slack.
	wait_gone "$pid" 150 || { echo "the daemon $pid still runs 15 s after its grant ended" >&2; false; }
	[ ! -e "$sock" ]
	br_nt grants --json
	want_status 0
	[ "$(tr -d ' \n' <<<"$out")" = "[]" ]
	[ ! -e "$sock" ] # listing did not start a daemon
	br_run --env X=latch://canary -- sh -c 'touch "$0/ran"' "$BATS_TEST_TMPDIR"
	want_status 4
	want_err_line "latch grant canary --cmd $(br_real sh)"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
}

@test "as an ordinary user (uid 65534, no XDG_RUNTIME_DIR: daemon in the vault's run/): grant, then run releases to the child" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to become uid 65534 (as a non-root user every other test here runs unprivileged already)"
	br_u65534
	br_as 65534 "$LATCH" grant canary --ttl 10m --cmd sh --passphrase-fd 3 3<<<"$PASS" </dev/null >"$BATS_TEST_TMPDIR/g.out"
	local rt=$BR_U_RT
	[ "$(stat -c %u:%a "$rt")" = "65534:700" ]
	[ "$(stat -c %u:%a "$rt/broker-$BR_U_HASH.sock")" = "65534:600" ]
	[ "$(stat -c %U "/proc/$(cat "$rt/broker-$BR_U_HASH.lock")/status")" ] # the daemon runs
	local rc=0
	br_as 65534 setsid -w "$LATCH" run --env X=latch://canary -- sh -c "$(br_check_canary)" </dev/null \
		>"$BATS_TEST_TMPDIR/r.out" 2>"$BATS_TEST_TMPDIR/r.err" || rc=$?
	[ "$rc" -eq 0 ] || { echo "latch run as uid 65534 exited $rc: $(cat "$BATS_TEST_TMPDIR/r.err")" >&2; false; }
	br_as 65534 "$LATCH" audit --json --event release </dev/null >"$BATS_TEST_TMPDIR/a.out"
	"$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert [x["decision"] for x in r] == ["allow"] and r[0]["uid"] == 65534, r
' "$BATS_TEST_TMPDIR/a.out"
}
