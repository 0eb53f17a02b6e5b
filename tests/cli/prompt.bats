#!/usr/bin/env bats
# The passphrase prompt under job control. When a job stops, the shell
# puts back its own terminal modes (echo on); a prompt continued by `fg`
# must turn echo off again and ask again, or the rest of the passphrase is
# shown on the screen. A real interactive bash on a pseudo-terminal runs
# `latch reveal` (tests/cli/pty_shell.py): job control needs a shell, the
# kernel drops SIGTSTP sent to an orphaned process group.

load helpers

PROBE="probe-typed-after-fg-Kq83"

# The shell and every job it started (latch, stopped or not) are killed
# whatever way the test ends; pty_shell.py does it too, this is for when
# pty_shell.py itself was killed.
teardown() {
	if [ -s "$BATS_TEST_TMPDIR/sid" ]; then
		/usr/bin/python3 "$BATS_TEST_DIRNAME/pty_shell.py" --kill-session "$(cat "$BATS_TEST_TMPDIR/sid")"
	fi
}

# ECHO_STATE: a command printing ECHOSTATE:echo or ECHOSTATE:-echo for the
# terminal's modes as the shell leaves them to the commands it runs.
ECHO_STATE='stty -a | tr " ;" "\\n\\n" | grep -x -e echo -e -echo | sed s/^/ECHOSTATE:/\n'

# start_reveal: a vault with canary; the shell runs latch reveal canary and
# the passphrase prompt is up.
start_reveal() {
	STEPS=$BATS_TEST_TMPDIR/steps
	TTY_LOG=$BATS_TEST_TMPDIR/tty.log
	: >"$STEPS"
	init_vault
	set_secret canary "$CANARY"
	step expect 'sh> '
	step send '"$LATCH" reveal canary\n'
	step expect 'Passphrase: '
}

# answer_after_fg: `fg`, then at the prompt (a soft wait: latch without the
# fix never asks again, and the probe must then show up echoed) type the
# probe, erase it (^U), type the passphrase; then ask the shell for the exit
# status and the terminal's echo, and leave.
answer_after_fg() {
	step send 'fg\n'
	step 'expect?' '10 Passphrase: '
	step send "$PROBE"
	step sleep 0.2
	step send '\x15'"$PASS"'\n'
	step expect "$CANARY"
	step expect 'sh> '
	step send 'echo "rc=$?"\n'
	step expect 'rc=[0-9]+\r'
	step send "$ECHO_STATE"
	step expect 'ECHOSTATE:-?echo\r'
	step send 'exit\n'
}

# check_answered N: nothing typed after fg was echoed; the prompt appeared N
# times; reveal exited 0; every echo check found echo on.
check_answered() {
	local n
	if grep -qaF "$PROBE" "$TTY_LOG" || grep -qaF "$PASS" "$TTY_LOG"; then
		echo "what was typed at the prompt after fg was echoed:" >&2
		cat -v "$TTY_LOG" >&2
		return 1
	fi
	n=$(grep -aoF 'Passphrase: ' "$TTY_LOG" | wc -l)
	[ "$n" -eq "$1" ] || { echo "the prompt appeared $n times, not $1:" >&2; cat -v "$TTY_LOG" >&2; return 1; }
	grep -qa 'rc=0' "$TTY_LOG" || { echo "latch reveal failed:" >&2; cat -v "$TTY_LOG" >&2; return 1; }
	grep -qa 'ECHOSTATE:echo' "$TTY_LOG" || { echo "no echo check ran" >&2; return 1; }
	refute grep -qa 'ECHOSTATE:-echo' "$TTY_LOG"
}

@test "^Z at the passphrase prompt, then fg: asked again with echo off, reveal completes, the terminal echoes after" {
	start_reveal
	step send '\x1a'
	step expect 'Stopped'
	step expect 'sh> '
	answer_after_fg
	shell_run
	check_answered 2
}

@test "kill -STOP at the passphrase prompt, then fg: asked again with echo off, reveal completes" {
	start_reveal
	step kill STOP
	step expect 'Stopped'
	step expect 'sh> '
	answer_after_fg
	shell_run
	check_answered 2
}

@test "^Z, then bg: latch stops again without touching the shell's terminal; fg: asked again with echo off" {
	start_reveal
	step send '\x1a'
	step expect 'Stopped'
	step expect 'sh> '
	step send 'bg\n'
	step expect '&\r'
	step expect 'sh> '
	# In the background latch must not turn echo off under the shell: it
	# stops (SIGTTOU) and waits for fg.
	step send 'for i in $(seq 200); do case $(jobs %1) in *Stopped*) break;; esac; sleep 0.05; done; echo "JOB:$(jobs %1)"\n'
	step expect 'JOB:.*\r'
	step send "$ECHO_STATE"
	step expect 'ECHOSTATE:-?echo\r'
	answer_after_fg
	shell_run
	grep -qaE 'JOB:\[1\]\+ +Stopped' "$TTY_LOG" || { echo "latch did not stop in the background:" >&2; cat -v "$TTY_LOG" >&2; false; }
	[ "$(grep -ac 'ECHOSTATE:echo' "$TTY_LOG")" -eq 2 ]
	check_answered 2
}
