#!/usr/bin/env bats
# A child under a terminal (issue 13): when the caller's stdin or stdout
# is a terminal, the broker's runner starts the child on a pseudo-terminal
# that is its controlling terminal, so /dev/tty, line editing, job control
# and full-screen programs work; the caller's terminal is in raw mode
# while the child has it and is restored on every way out. A real
# interactive bash on a pseudo-terminal (tests/cli/pty_shell.py) plays the
# user's shell: job control needs one.

load helpers

setup() {
	br_setup
	br_grant canary --ttl 10m
	STEPS=$BATS_TEST_TMPDIR/steps
	TTY_LOG=$BATS_TEST_TMPDIR/tty.log
	SHELL_TIMEOUT=60
	: >"$STEPS"
	export T=$BATS_TEST_TMPDIR
}

teardown() {
	if [ -s "$BATS_TEST_TMPDIR/sid" ]; then
		/usr/bin/python3 "$BATS_TEST_DIRNAME/pty_shell.py" --kill-session "$(cat "$BATS_TEST_TMPDIR/sid")"
	fi
	bg_cleanup
}

# same_stty A B: two `stty -a` of the outer terminal are identical.
same_stty() {
	[ -s "$T/$1" ] && cmp -s "$T/$1" "$T/$2" || { diff "$T/$1" "$T/$2" >&2; false; }
}

@test "under a terminal the child has one of its own: tty names it, stty size is the caller's, /dev/tty reads what is typed; the outer terminal's settings are the same after" {
	step expect 'sh> '
	step resize '30 100'
	step send 'stty -a >"$T/before"\n'
	step expect 'sh> '
	step send '"$LATCH" run --env X=latch://canary -- sh -c '"'"'tty; stty size; read -r pw </dev/tty; echo "got:$pw"'"'"'\n'
	step expect '/dev/pts/[0-9]+\r'
	step expect '30 100\r'
	step send 'typed-on-dev-tty\n'
	step expect 'got:typed-on-dev-tty'
	step expect 'sh> '
	step send 'echo "rc=$?"; stty -a >"$T/after"\n'
	step expect 'rc=0'
	step expect 'sh> '
	step send 'exit\n'
	shell_run
	same_stty before after
}

@test "bash -i and python3 -i through latch run: a resize reaches the child, Ctrl-C interrupts the child's job and not latch, Ctrl-Z and fg work inside" {
	step expect 'sh> '
	step send 'PS1="in> " "$LATCH" run --env X=latch://canary -- bash --norc --noprofile -i\n'
	step expect 'in> '
	step resize '40 120'
	step sleep 0.3
	step send 'stty size\n'
	step expect '40 120\r'
	step send 'sleep 30\n'
	step sleep 0.5
	step send '\x03'
	step expect 'in> '
	step send 'echo "alive-$((6*7))"\n'
	step expect 'alive-42'
	step send 'sleep 31\n'
	step sleep 0.5
	step send '\x1a'
	step expect 'Stopped'
	step expect 'in> '
	step send 'fg\n'
	step expect 'sleep 31'
	step sleep 0.3
	step send '\x03'
	step expect 'in> '
	step send 'exit 7\n'
	step expect 'sh> '
	step send 'echo "rc=$?"\n'
	step expect 'rc=7'
	step expect 'sh> '
	step send '"$LATCH" run --env X=latch://canary -- /usr/bin/python3 -q -i\n'
	step expect '>>> '
	step send 'print(6 * 7)\n'
	step expect '42\r'
	step send 'import os; print(os.isatty(0), os.ttyname(0).startswith("/dev/pts/"))\n'
	step expect 'True True'
	step send 'exit()\n'
	step expect 'sh> '
	step send 'exit\n'
	shell_run
}

@test "Ctrl-Z stops a child that does not catch it, and latch run with it: the shell gets the terminal back as it was; fg continues both; Ctrl-C then ends the child (130)" {
	step expect 'sh> '
	step send 'stty -a >"$T/before"\n'
	step expect 'sh> '
	step send '"$LATCH" run --env X=latch://canary -- sleep 30\n'
	step sleep 0.5
	step send '\x1a'
	step expect 'Stopped'
	step expect 'sh> '
	step send 'stty -a >"$T/stopped"; fg\n'
	step expect 'sleep 30'
	step sleep 0.5
	step send '\x03'
	step expect 'sh> '
	step send 'echo "rc=$?"; stty -a >"$T/after"\n'
	step expect 'rc=130'
	step expect 'sh> '
	step send 'exit\n'
	shell_run
	same_stty before stopped
	same_stty before after
}

@test "latch run under a terminal killed with SIGTERM or SIGHUP: the child ends, and the outer terminal's settings come back" {
	local sig
	step expect 'sh> '
	step send 'stty -a >"$T/before"\n'
	step expect 'sh> '
	for sig in TERM HUP; do
		step send '"$LATCH" run --env X=latch://canary -- sleep 30\n'
		step sleep 0.5
		step kill "$sig"
		step expect 'sh> '
		step send 'echo "rc=$?"; stty -a >"$T/after.'"$sig"'"\n'
		step expect 'rc=1[0-9][0-9]'
		step expect 'sh> '
	done
	step send 'exit\n'
	shell_run
	same_stty before after.TERM
	same_stty before after.HUP
	br_audit 'assert [x["exit"] for x in r][-2:] == [143, 129], r' --event exit
}

@test "--no-pty: the child has no terminal of its own (/dev/tty fails at once); without a terminal at all, none is made" {
	step expect 'sh> '
	step send '"$LATCH" run --no-pty --env X=latch://canary -- sh -c '"'"'echo hi >/dev/tty'"'"'; echo "rc=$?"\n'
	step expect 'No such device or address'
	step expect 'rc=2'
	step expect 'sh> '
	step send 'exit\n'
	shell_run
	br_run --env X=latch://canary -- sh -c 'tty; [ -t 0 ] || [ -t 1 ] && exit 9; exit 0'
	want_status 0
	[ "$(cat "$LX_OUT")" = "not a tty" ]
}
