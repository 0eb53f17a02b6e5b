#!/usr/bin/env bats
# `latch run` around the child (docs/design.md section 3): exit statuses pass
# through exactly (128+N for signal N, 126/127 like env(1)); Ctrl-C reaches
# the child once, under a terminal and without one; a forwarded SIGTERM
# stops the child's whole process group; eight concurrent runs under one
# grant leave exactly one release and one exit record each; --file values
# are sealed memory files the child inherits at /dev/fd/3, 4, ..., never on
# disk, held by the child alone; --env-file holds references only;
# --pristine keeps only what --keep names. (The attacks on what the child
# gets are in run_hygiene.bats.)

load helpers

setup() {
	br_setup
}

teardown() {
	bg_cleanup
}

@test "exit statuses pass through exactly: 0 1 42 255, SIGTERM 143, SIGKILL 137; each exit is recorded" {
	br_grant canary --ttl 10m --uses 1000
	local code
	for code in 0 1 42 255; do
		br_run --env X=latch://canary -- sh -c "$(br_check_canary); exit $code"
		want_status "$code"
		[ ! -s "$LX_ERR" ] || { echo "latch run wrote to stderr: $err" >&2; false; }
	done
	br_run --env X=latch://canary -- sh -c "$(br_check_canary); kill -TERM \$\$; exit 3"
	want_status 143
	br_run --env X=latch://canary -- sh -c "$(br_check_canary); kill -KILL \$\$; exit 3"
	want_status 137
	# Without any reference latch does not ask the broker; the same rules.
	br_run -- sh -c 'exit 42'
	want_status 42
	br_run -- sh -c 'kill -TERM $$'
	want_status 143
	br_audit '
assert [x["exit"] for x in r] == [0, 1, 42, 255, 143, 137], r
assert all(x["grant"] == sys.argv[2] for x in r), r
' --event exit -- "$BR_GRANT"
	br_audit 'assert len(r) == 6 and all(x["decision"] == "allow" for x in r), r' --event release
}

@test "a value of the largest size (1 MiB) goes through grant, broker and release intact, as a --file" {
	# Both ends read a message bigger than their first buffer: the broker
	# the grant's box, latch run the release's frame.
	head -c 786432 /dev/urandom | base64 -w0 | head -c 1048576 >"$BATS_TEST_TMPDIR/big"
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/big")" -eq 1048576 ]
	latch_p set big --file "$BATS_TEST_TMPDIR/big" >/dev/null
	br_grant big --ttl 10m --cmd sh
	br_run --file F=latch://big -- sh -c 'sha256sum <"$F"'
	want_status 0
	[ "$(cut -d' ' -f1 <<<"$out")" = "$(sha256sum <"$BATS_TEST_TMPDIR/big" | cut -d' ' -f1)" ]
}

@test "a missing command exits 127, a non-executable file 126, both before anything is released" {
	br_grant canary --ttl 10m --uses 1000
	local t=$BATS_TEST_TMPDIR
	printf '#!/bin/sh\nexit 0\n' >"$t/noexec"
	chmod 0644 "$t/noexec"
	mkdir "$t/adir"

	br_run --env X=latch://canary -- "$t/no-such-command"
	want_status 127
	want_err_line "no-such-command"
	br_run --env X=latch://canary -- latch-test-no-such-command
	want_status 127
	want_err_line "latch-test-no-such-command"
	br_run --env X=latch://canary -- "$t/noexec"
	want_status 126
	want_err_line "noexec"
	br_run --env X=latch://canary -- "$t/adir"
	want_status 126
	want_err_line "adir"
	br_run -- "$t/no-such-command"
	want_status 127
	br_run -- "$t/noexec"
	want_status 126
	br_audit 'assert r == [], r' --event release

	# Found and executable, but exec fails: a missing interpreter is
	# "not found" (127), an unknown format "cannot run" (126), as env(1).
	printf '#!%s/no-such-interpreter\n' "$t" >"$t/badinterp"
	printf '\177ELF garbage' >"$t/badformat"
	chmod 0755 "$t/badinterp" "$t/badformat"
	br_run --env X=latch://canary -- "$t/badinterp"
	want_status 127
	br_run --env X=latch://canary -- "$t/badformat"
	want_status 126
	br_audit 'assert [x["exit"] for x in r] == [127, 126], r' --event exit
}

@test "under a terminal, one Ctrl-C reaches the child exactly once, through latch run and the runner" {
	br_grant canary --ttl 10m
	local t=$BATS_TEST_TMPDIR
	cat >"$t/count.py" <<'EOF'
import os, signal, sys, time
n = 0
def on_int(sig, frame):
    global n
    n += 1
signal.signal(signal.SIGINT, on_int)
# stdout is the terminal (the child runs without a controlling one: it is
# the broker's, not in the terminal's session).
sys.stdout.write("READY\n")
sys.stdout.flush()
deadline = time.monotonic() + 20
while n == 0 and time.monotonic() < deadline:
    time.sleep(0.02)
# A second SIGINT (one forwarded by latch on top of the terminal's) would
# arrive within this second.
time.sleep(1)
with open(sys.argv[1], "w") as f:
    f.write(str(n))
sys.exit(0 if n else 3)
EOF
	local rc=0
	pty_run --timeout 30 --log "$t/tty.log" --answer READY $'\x03' \
		-- "$LATCH" run --env X=latch://canary -- "$PY" "$t/count.py" "$t/count" || rc=$?
	[ "$rc" -eq 0 ] || { echo "latch run under a pty exited $rc; terminal: $(cat -v "$t/tty.log")" >&2; false; }
	[ "$(cat "$t/count")" = 1 ] || { echo "the child saw $(cat "$t/count") SIGINTs" >&2; false; }
}

@test "without a terminal, kill -INT of latch reaches the child exactly once; SIGTERM stops the child's process group" {
	br_grant canary --ttl 10m --uses 1000
	local d=$BATS_TEST_TMPDIR/s child runner latchpid bg rc
	mkdir "$d"
	# The child traps INT (it could not if latch left SIGINT ignored, as a
	# background job inherits it), counts it in $0/ints, and waits.
	setsid -w "$LATCH" run --env X=latch://canary -- sh -c "$(br_check_canary)"'
		trap "echo INT >>\"\$0/ints\"" INT
		echo $$ $PPID >"$0/pids.tmp" && mv "$0/pids.tmp" "$0/pids"
		while [ ! -e "$0/stop" ]; do sleep 0.05; done
		exit 7' "$d" </dev/null >"$d/out" 2>"$d/err" &
	bg=$!
	bg_track "$bg"
	wait_file "$d/pids" "$bg"
	read -r child runner <"$d/pids"
	latchpid=$bg
	bg_track "$child"
	[[ "$(tr '\0' ' ' <"/proc/$latchpid/cmdline")" == "$LATCH run "* ]]
	kill -INT "$latchpid"
	wait_file "$d/ints" "$child"
	sleep 1 # a duplicate would arrive within this second
	touch "$d/stop"
	rc=0
	wait "$bg" || rc=$?
	[ "$rc" -eq 7 ] || { echo "latch run exited $rc: $(cat "$d/err")" >&2; false; }
	[ "$(cat "$d/ints")" = INT ] || { echo "the child saw: $(cat "$d/ints")" >&2; false; }

	# SIGTERM: the child and the process it started (same group) both stop.
	rm -f "$d/pids"
	setsid -w "$LATCH" run --env X=latch://canary -- sh -c "$(br_check_canary)"'
		sleep 1000 &
		echo $! >"$0/gc"
		echo $$ $PPID >"$0/pids.tmp" && mv "$0/pids.tmp" "$0/pids"
		while :; do sleep 0.05; done' "$d" </dev/null >"$d/out" 2>"$d/err" &
	bg=$!
	bg_track "$bg"
	wait_file "$d/pids" "$bg"
	local gc
	read -r child runner <"$d/pids"
	latchpid=$bg
	gc=$(cat "$d/gc")
	bg_track "$child"
	bg_track "$gc"
	refute proc_gone "$gc"
	kill -TERM "$latchpid"
	rc=0
	wait "$bg" || rc=$?
	[ "$rc" -eq 143 ] || { echo "latch run exited $rc: $(cat "$d/err")" >&2; false; }
	wait_gone "$gc" 50 || { echo "the child's own child $gc survived the forwarded SIGTERM" >&2; false; }
	br_audit 'assert [x["exit"] for x in r] == [7, 143], r' --event exit
}

@test "8 concurrent runs under one grant: all succeed, exactly one release and one exit record each, the log verifies" {
	br_grant canary --ttl 10m --uses 1000
	local d=$BATS_TEST_TMPDIR/c i bg=() rc before
	mkdir "$d"
	lx audit --json </dev/null
	before=$("$PY" -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$out")
	for i in 1 2 3 4 5 6 7 8; do
		setsid -w "$LATCH" run --env X=latch://canary -- sh -c "$(br_check_canary)"'
			echo $PPID >"$0"' "$d/ppid.$i" </dev/null >"$d/out.$i" 2>"$d/err.$i" &
		bg+=($!)
		bg_track "$!"
	done
	echo "${bg[*]}" >"$d/latchpids"
	for i in 0 1 2 3 4 5 6 7; do
		rc=0
		wait "${bg[$i]}" || rc=$?
		[ "$rc" -eq 0 ] || { echo "run $((i + 1)) exited $rc: $(cat "$d/err.$((i + 1))")" >&2; false; }
	done
	br_audit '
before = int(sys.argv[2])
pids = sorted(int(p) for p in sys.argv[3:-1])
assert len(set(pids)) == 8, pids
new = r[before:]
rel = [x for x in new if x["event"] == "release"]
ex = [x for x in new if x["event"] == "exit"]
assert len(new) == 16 and len(rel) == 8 and len(ex) == 8, new
assert all(x["decision"] == "allow" for x in rel), rel
assert all(x["exit"] == 0 for x in ex), ex
# Each release names the latch run that asked and the runner that is the
# parent of its child; each exit is the runner own.
latch = sorted(int(p) for p in open(sys.argv[-1]).read().split())
assert sorted(x["pid"] for x in rel) == latch, (rel, latch)
assert sorted(x["runner"] for x in rel) == pids, (rel, pids)
assert sorted(x["pid"] for x in ex) == pids, (ex, pids)
# The broker numbers the records of its stream itself: no gap, no repeat.
ns = [x["n"] for x in new]
assert ns == list(range(ns[0], ns[0] + len(ns))) and all(x["stream"] == new[0]["stream"] for x in new), new
' -- "$before" $(cat "$d"/ppid.*) "$d/latchpids"
	lx audit verify --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	[[ "$out" == "audit log verified: "* ]]
}

# memfds_of PID: the memory files PID holds open, one line each (needs
# root when PID is latch, which is not dumpable).
memfds_of() {
	local f
	for f in /proc/"$1"/fd/*; do
		[[ "$(readlink "$f" 2>/dev/null)" == /memfd:* ]] && echo "$f"
	done
	return 0
}

@test "--file: sealed 0600 memory files at /dev/fd/3, 4, 5 with the exact bytes, held by the child alone; nothing on disk" {
	printf 'two\nlines, no newline at the end' | latch_p set nonl --file - >/dev/null
	printf 'with\0NUL\nand newline\n' | latch_p set binary --file - >/dev/null
	local t=$BATS_TEST_TMPDIR
	printf 'two\nlines, no newline at the end' >"$t/nonl.want"
	printf 'with\0NUL\nand newline\n' >"$t/binary.want"
	br_grant canary nonl binary --ttl 10m --uses 1000
	br_run --file F=latch://canary --file G=latch://nonl --file H=latch://binary -- sh -c '
		[ "$F" = /dev/fd/3 ] && [ "$G" = /dev/fd/4 ] && [ "$H" = /dev/fd/5 ] || exit 11
		for n in 3 4 5; do
			[ "$(stat -L -c %a:%u "/dev/fd/$n")" = "600:$(id -u)" ] || exit 12
			case "$(readlink "/proc/self/fd/$n")" in /memfd:*) ;; *) exit 13 ;; esac
		done
		cmp -s "$G" "$0/nonl.want" || exit 15
		cmp -s "$H" "$0/binary.want" || exit 16
		[ "$(sha256sum <"$F" | cut -d" " -f1)" = "$1" ] || exit 17
		# Read again from the start: each open of the path is a fresh one.
		cmp -s "$G" "$0/nonl.want" || exit 18
		echo $PPID >"$0/runnerpid"
		ls -l /proc/$PPID/fd >"$0/latch.fds" 2>&1' "$t" "$BR_CANARY_SHA"
	want_status 0
	# The runner (the child's parent) closed its copies once the child had
	# them (root reads the fds of a runner, which is not dumpable).
	if [ "$(id -u)" -eq 0 ]; then
		grep -q ' -> ' "$t/latch.fds" || { echo "latch's fds were not listed: $(cat "$t/latch.fds")" >&2; false; }
		refute grep -q memfd "$t/latch.fds"
	fi
	assert_absent "$CANARY" "$BATS_TEST_TMPDIR"/lx.* "$t/latch.fds"
	br_scan_files "$CANARY"
}

@test "--file: after the child dies of a signal, and after latch itself is sent SIGTERM, nothing holds the value" {
	br_grant canary --ttl 10m --uses 1000
	local t=$BATS_TEST_TMPDIR
	br_run --file F=latch://canary -- sh -c '[ "$F" = /dev/fd/3 ] || exit 11; kill -KILL $$'
	want_status 137
	br_run --file F=latch://canary -- sh -c '[ "$F" = /dev/fd/3 ] || exit 11; kill -SEGV $$'
	want_status 139
	br_scan_files "$CANARY"

	setsid -w "$LATCH" run --file F=latch://canary -- sh -c '
		echo $$ $PPID >"$0/p3.tmp" && mv "$0/p3.tmp" "$0/p3"
		while :; do sleep 0.05; done' "$t" </dev/null >"$t/out3" 2>"$t/err3" &
	local bg=$! child runner latchpid rc=0
	bg_track "$bg"
	wait_file "$t/p3" "$bg"
	read -r child runner <"$t/p3"
	latchpid=$bg
	bg_track "$child"
	# The child holds the memory file; latch and the runner do not (root
	# only: they are not dumpable).
	[ -n "$(memfds_of "$child")" ] || { echo "the child holds no memory file" >&2; false; }
	if [ "$(id -u)" -eq 0 ]; then
		[ -z "$(memfds_of "$latchpid")" ] || { echo "latch still holds: $(memfds_of "$latchpid")" >&2; false; }
		[ -z "$(memfds_of "$runner")" ] || { echo "the runner still holds: $(memfds_of "$runner")" >&2; false; }
	fi
	br_scan_files "$CANARY"
	kill -TERM "$latchpid"
	wait "$bg" || rc=$?
	[ "$rc" -eq 143 ] || { echo "latch run exited $rc: $(cat "$t/err3")" >&2; false; }
	wait_gone "$child" 50 || { echo "the child survived the forwarded SIGTERM" >&2; false; }
	br_scan_files "$CANARY"
	br_audit 'assert [x["exit"] for x in r] == [137, 139, 143], r' --event exit
}

@test "--env-file: references, comments, blank lines and export work; a plain VAR=value line is refused (125) before anything is released" {
	set_secret other "value of other"
	br_grant canary other --ttl 10m --uses 1000
	local t=$BATS_TEST_TMPDIR
	cat >"$t/refs.env" <<'EOF'
# references only: safe to commit

X=latch://canary
  export Y=latch://other
	# an indented comment
EOF
	br_run --env-file "$t/refs.env" -- sh -c "$(br_check_canary)"' && [ "$Y" = "value of other" ]'
	want_status 0
	# --env after the file wins for the same variable.
	br_run --env-file "$t/refs.env" --env Y=latch://canary -- sh -c "$(br_check_canary)"' && [ "$X" = "$Y" ]'
	want_status 0

	br_audit 'assert len(r) == 2, r' --event release
	printf '# a value does not belong here\nX=latch://canary\nPLAIN=some value\n' >"$t/plain.env"
	br_run --env-file "$t/plain.env" -- sh -c 'touch "$0/ran"' "$t"
	want_status 125
	want_err_line "plain.env:3"
	[ ! -e "$t/ran" ]
	printf 'X=latch://\n' >"$t/empty.env"
	br_run --env-file "$t/empty.env" -- sh -c 'touch "$0/ran"' "$t"
	want_status 125
	[ ! -e "$t/ran" ]
	br_run --env-file "$t/no-such.env" -- sh -c 'touch "$0/ran"' "$t"
	want_status 125
	[ ! -e "$t/ran" ]
	br_audit 'assert len(r) == 2, r' --event release
}

@test "--pristine with --keep: the child gets only the kept variables and the references" {
	set_secret other "value of other"
	br_grant canary other --ttl 10m --uses 1000
	local t=$BATS_TEST_TMPDIR
	# --no-redact: what is checked is the environment env prints, values
	# included (a shell in between to write it to a file would add its own
	# variables).
	KEEP1="kept one" KEEP2="kept two" DROPPED="dropped" FROMENV=latch://other \
		br_run --no-redact --pristine --keep KEEP1 --keep KEEP2 --keep NOT_SET --env X=latch://canary \
		--env Y=latch://other -- env -0
	want_status 0
	"$PY" -c '
import sys
env = open(sys.argv[1], "rb").read().split(b"\0")[:-1]
names = sorted(e.split(b"=", 1)[0] for e in env)
assert names == [b"KEEP1", b"KEEP2", b"X", b"Y"], names
assert b"KEEP1=kept one" in env and b"KEEP2=kept two" in env and b"Y=value of other" in env, env
assert b"X=" + sys.argv[2].encode() in env, "X does not hold the canary"
' "$LX_OUT" "$CANARY"
}

@test "no grant, a human at the terminal: the passphrase releases for this one run and is recorded; a wrong one runs nothing" {
	local t=$BATS_TEST_TMPDIR rc=0
	printf 'Passphrase: \t%s\n' "$PASS" >"$t/answers"
	pty_run --timeout 30 --log "$t/tty1" --answers-file "$t/answers" \
		-- "$LATCH" run --env X=latch://canary -- sh -c "$(br_check_canary); touch \"\$0/ran1\"" "$t" || rc=$?
	[ "$rc" -eq 0 ] || { echo "latch run exited $rc; terminal: $(cat -v "$t/tty1")" >&2; false; }
	[ -e "$t/ran1" ]
	grep -q 'for this run only' "$t/tty1"
	refute grep -qF "$PASS" "$t/tty1" # not echoed
	assert_absent "$CANARY" "$t/tty1"
	br_audit '
rel = [x for x in r if x["event"] == "release"]
ex = [x for x in r if x["event"] == "exit"]
assert len(rel) == 1 and rel[0]["secrets"] == ["canary"] and rel[0].get("decision", "allow") == "allow", r
assert len(ex) == 1 and ex[0]["exit"] == 0, r
'
	br_nt grants --json
	[ "$(tr -d ' \n' <<<"$out")" = "[]" ] # a one-shot release makes no grant

	rc=0
	printf 'Passphrase: \t%s\n' "not the passphrase" >"$t/answers"
	pty_run --timeout 30 --log "$t/tty2" --answers-file "$t/answers" \
		-- "$LATCH" run --env X=latch://canary -- sh -c 'touch "$0/ran2"' "$t" || rc=$?
	[ "$rc" -eq 4 ] || { echo "latch run exited $rc; terminal: $(cat -v "$t/tty2")" >&2; false; }
	[ ! -e "$t/ran2" ]
	br_audit 'assert len([x for x in r if x["event"] == "release"]) == 1, r'
}

@test "kill -9 of latch run: the runner ends the child's process group, TERM first, KILL after the grace period; no runner or child outlives it; each exit is recorded" {
	br_grant canary --ttl 10m --uses 1000
	local d=$BATS_TEST_TMPDIR/k9 bg child runner gc rc
	mkdir "$d"
	# A child that ends on TERM, with a process of its own in its group.
	setsid -w "$LATCH" run --env X=latch://canary -- sh -c '
		sleep 1000 &
		echo $! >"$0/gc"
		echo $$ $PPID >"$0/pids.tmp" && mv "$0/pids.tmp" "$0/pids"
		while :; do sleep 0.05; done' "$d" </dev/null >"$d/out" 2>"$d/err" &
	bg=$!
	bg_track "$bg"
	wait_file "$d/pids" "$bg"
	read -r child runner <"$d/pids"
	gc=$(cat "$d/gc")
	bg_track "$child"
	bg_track "$runner"
	bg_track "$gc"
	kill -KILL "$bg"
	rc=0
	wait "$bg" || rc=$?
	[ "$rc" -eq 137 ]
	# TERM at once: well within the 3 s grace period.
	wait_gone "$child" 25 || { echo "the child outlived latch run by 2.5 s" >&2; false; }
	wait_gone "$gc" 25 || { echo "the child's own child outlived latch run" >&2; false; }
	wait_gone "$runner" 25 || { echo "the runner outlived its child" >&2; false; }

	# A child that ignores TERM: KILL after the grace period (3 s), not
	# before, and not much later.
	rm -f "$d/pids"
	setsid -w "$LATCH" run --env X=latch://canary -- sh -c '
		trap "" TERM
		echo $$ $PPID >"$0/pids.tmp" && mv "$0/pids.tmp" "$0/pids"
		while :; do sleep 0.05; done' "$d" </dev/null >"$d/out" 2>"$d/err" &
	bg=$!
	bg_track "$bg"
	wait_file "$d/pids" "$bg"
	read -r child runner <"$d/pids"
	bg_track "$child"
	bg_track "$runner"
	kill -KILL "$bg"
	wait "$bg" || true
	sleep 1.5
	refute proc_gone "$child" # still in its grace period
	wait_gone "$child" 50 || { echo "the child that ignores TERM outlived the grace period by 3.5 s" >&2; false; }
	wait_gone "$runner" 25
	br_audit 'assert [x["exit"] for x in r] == [143, 137], r' --event exit
}

@test "with --no-pty, a child that opens /dev/tty fails at once with the system's clear message (it has no controlling terminal); it does not hang" {
	need_pty
	br_grant canary --ttl 10m
	local t=$BATS_TEST_TMPDIR rc=0
	pty_run --timeout 20 --log "$t/tty.log" -- "$LATCH" run --no-pty --env X=latch://canary -- \
		"$PY" -c 'open("/dev/tty", "w")' || rc=$?
	[ "$rc" -eq 1 ] || { echo "latch run under a pty exited $rc: $(cat -v "$t/tty.log")" >&2; false; }
	grep -q "No such device or address: '/dev/tty'" "$t/tty.log" ||
		{ echo "the terminal showed: $(cat -v "$t/tty.log")" >&2; false; }
	# What a prompt for a password does: psql, ssh and sudo read /dev/tty.
	rc=0
	pty_run --timeout 20 --log "$t/tty2.log" -- "$LATCH" run --no-pty --env X=latch://canary -- \
		sh -c 'read -r pw </dev/tty' || rc=$?
	[ "$rc" -eq 2 ] || { echo "latch run under a pty exited $rc: $(cat -v "$t/tty2.log")" >&2; false; }
	grep -q "/dev/tty: No such device or address" "$t/tty2.log" ||
		{ echo "the terminal showed: $(cat -v "$t/tty2.log")" >&2; false; }
}
