#!/usr/bin/env bats
# P5: changing or reading the vault needs the passphrase. A wrong one is
# refused with exit 4 and one line, leaving the file as it was; with no
# terminal and no --passphrase-fd, nothing is asked and nothing happens.
# Passphrases typed at the terminal are never echoed.

load helpers

teardown() {
	bg_cleanup
}

WRONG="not the passphrase at all"

# nottyx ARGS...: run latch in a new session with no controlling terminal
# and stdin from /dev/null (so this holds when the suite is run from a
# developer's terminal too). Sets status, out, err, LX_OUT, LX_ERR.
nottyx() {
	LX_N=$((${LX_N:-0} + 1))
	LX_OUT=$BATS_TEST_TMPDIR/lx.$LX_N.out
	LX_ERR=$BATS_TEST_TMPDIR/lx.$LX_N.err
	status=0
	setsid -w "$LATCH" "$@" </dev/null >"$LX_OUT" 2>"$LX_ERR" || status=$?
	{ out=$(<"$LX_OUT") err=$(<"$LX_ERR"); } 2>/dev/null
	if [ "$status" -gt 4 ]; then
		echo "latch $* exited $status: $err" >&2
		return 1
	fi
}

@test "a wrong passphrase: exit 4, one line, vault file unchanged (set, rm, passwd, rekey, reveal)" {
	init_vault
	set_secret a "value of a"
	set_secret b "value of b"
	local sha
	sha=$(vault_sha)

	lx set a --passphrase-fd 3 3<<<"$WRONG" <<<"new value"
	want_status 4
	want_err_line "wrong passphrase"
	want_no_stdout
	[ "$(vault_sha)" = "$sha" ]

	lx set c --file - --passphrase-fd 3 3<<<"$WRONG" <<<"new value"
	want_status 4
	want_err_line "wrong passphrase"
	[ "$(vault_sha)" = "$sha" ]

	lx rm a --passphrase-fd 3 3<<<"$WRONG"
	want_status 4
	want_err_line "wrong passphrase"
	want_no_stdout
	[ "$(vault_sha)" = "$sha" ]

	lx passwd --passphrase-fd 3 3<<<"$WRONG"$'\n'"a brand new passphrase"
	want_status 4
	want_err_line "wrong passphrase"
	want_no_stdout
	[ "$(vault_sha)" = "$sha" ]

	lx rekey --passphrase-fd 3 3<<<"$WRONG"
	want_status 4
	want_err_line "wrong passphrase"
	want_no_stdout
	[ "$(vault_sha)" = "$sha" ]

	lpty --raw -- reveal a --passphrase-fd 3 3<<<"$WRONG"
	want_status 4
	want_err_line "wrong passphrase"
	want_no_stdout
	[ ! -s "$TTY_LOG" ]
	[ "$(vault_sha)" = "$sha" ]

	# The same at the terminal prompt.
	lpty --answer "Passphrase: " "$WRONG" -- reveal a
	want_status 4
	want_err_line "wrong passphrase"
	refute grep -qaF "value of a" "$TTY_LOG"
	refute grep -qaF "$WRONG" "$TTY_LOG"
	[ "$(vault_sha)" = "$sha" ]
	lpty --answer "Passphrase: " "$WRONG" -- rm a
	want_status 4
	want_err_line "wrong passphrase"
	[ "$(vault_sha)" = "$sha" ]

	# A passphrase that differs only by a trailing space, or is empty.
	lx rm a --passphrase-fd 3 3<<<"$PASS "
	want_status 4
	want_err_line
	lx rm a --passphrase-fd 3 3<<<""
	[ "$status" -ne 0 ]
	want_err_line
	[ "$(vault_sha)" = "$sha" ]

	# Nothing was changed: both secrets still there, at version 1.
	lx ls --json
	[ "$(jq -r '[.[] | "\(.name)=\(.version)"] | join(",")' <<<"$out")" = "a=1,b=1" ]
}

@test "reveal with no terminal: exit 4, one line, nothing on stdout" {
	init_vault
	set_secret a "$CANARY"
	nottyx reveal a --passphrase-fd 3 3<<<"$PASS"
	want_status 4
	want_err_line "terminal"
	want_no_stdout
	nottyx reveal a
	want_status 4
	want_err_line "terminal"
	want_no_stdout
	# Even a missing secret or a wrong passphrase get the same answer:
	# without a terminal nothing is looked at.
	nottyx reveal missing --passphrase-fd 3 3<<<"$WRONG"
	want_status 4
	want_err_line "terminal"
	assert_absent "$CANARY" "$BATS_TEST_TMPDIR"/lx.*
}

@test "no terminal and no --passphrase-fd: init, set, rm, passwd, rekey exit 4 saying what to do" {
	nottyx init --kdf interactive
	want_status 4
	want_err_line "--passphrase-fd"
	want_no_stdout
	[ ! -e "$VAULT" ]

	init_vault
	set_secret a "value of a"
	local sha
	sha=$(vault_sha)
	nottyx set b
	want_status 4
	want_err_line "--passphrase-fd"
	want_no_stdout
	nottyx set b --file "$BATS_TEST_TMPDIR/nonexistent"
	want_status 4
	want_err_line "--passphrase-fd"
	nottyx rm a
	want_status 4
	want_err_line "--passphrase-fd"
	nottyx passwd
	want_status 4
	want_err_line "--passphrase-fd"
	nottyx rekey
	want_status 4
	want_err_line "--passphrase-fd"
	[ "$(vault_sha)" = "$sha" ]
	# ls and status need no passphrase and work without a terminal.
	nottyx ls
	want_status 0
	nottyx status
	want_status 0
}

@test "passphrases typed at the terminal are not echoed (init asks twice, set asks once)" {
	lpty --answer "New passphrase: " "$PASS" --answer "Repeat to confirm: " "$PASS" \
		-- init --kdf interactive
	want_status 0
	grep -qaF "New passphrase: " "$TTY_LOG"
	grep -qaF "Repeat to confirm: " "$TTY_LOG"
	refute grep -qaF "$PASS" "$TTY_LOG"
	refute grep -qaF "${PASS:0:8}" "$TTY_LOG"
	[ -f "$VAULT" ]

	# set: passphrase and value both typed at hidden prompts.
	lpty --answer "Passphrase: " "$PASS" --answer "Value for typed: " "$CANARY" -- set typed
	want_status 0
	grep -qaF "Passphrase: " "$TTY_LOG"
	grep -qaF "Value for typed: " "$TTY_LOG"
	refute grep -qaF "$PASS" "$TTY_LOG"
	refute grep -qaF "${PASS:0:8}" "$TTY_LOG"
	assert_absent "$CANARY" "$TTY_LOG" "$LX_OUT" "$LX_ERR"

	# The typed passphrase is the vault's, and the typed value was stored.
	lpty --raw -- reveal typed --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[ "$(cat "$TTY_LOG")" = "$CANARY" ]

	# With stdin not the terminal, set takes the value from stdin while the
	# passphrase is still asked on the terminal, unechoed.
	printf 'from stdin' >"$BATS_TEST_TMPDIR/v"
	lpty --stdin "$BATS_TEST_TMPDIR/v" --answer "Passphrase: " "$PASS" -- set piped
	want_status 0
	refute grep -qaF "Value for" "$TTY_LOG"
	refute grep -qaF "$PASS" "$TTY_LOG"
	lpty --raw -- reveal piped --passphrase-fd 3 3<<<"$PASS"
	[ "$(cat "$TTY_LOG")" = "from stdin" ]

	# passwd asks three times: current, new, confirmation.
	local NEW="the passphrase after passwd"
	lpty --answer "Passphrase: " "$PASS" --answer "New passphrase: " "$NEW" \
		--answer "Repeat to confirm: " "$NEW" -- passwd
	want_status 0
	grep -qaF "Repeat to confirm: " "$TTY_LOG"
	refute grep -qaF "$PASS" "$TTY_LOG"
	refute grep -qaF "$NEW" "$TTY_LOG"
	refute grep -qaF "${NEW:0:8}" "$TTY_LOG"
	lpty --raw -- reveal piped --passphrase-fd 3 3<<<"$NEW"
	want_status 0
	[ "$(cat "$TTY_LOG")" = "from stdin" ]
}

@test "init at the terminal: mismatched confirmation creates nothing" {
	lpty --answer "New passphrase: " "$PASS" --answer "Repeat to confirm: " "$PASS-typo" \
		-- init --kdf interactive
	want_status 2
	want_err_line "do not match"
	[ ! -e "$VAULT" ]
	refute grep -qaF "$PASS" "$TTY_LOG"
}

# echo_state: a shell snippet printing ECHO-ON or ECHO-OFF for the terminal.
ECHO_STATE='if stty -a | tr " ;" "\n\n" | grep -qx echo; then echo ECHO-ON; else echo ECHO-OFF; fi'

@test "a passphrase prompt interrupted by ^C, SIGTERM or SIGHUP leaves the terminal echoing" {
	init_vault
	local log=$BATS_TEST_TMPDIR/tty rc
	# ^C typed at the prompt. The shell catches SIGINT (so it survives to
	# report); latch starts with the default disposition, as from a shell.
	rc=0
	pty_run --timeout 30 --log "$log" --answer "Passphrase: " $'\003' \
		-- sh -c 'trap ":" INT; "$0" set x; echo "rc=$?"; '"$ECHO_STATE" "$LATCH" || rc=$?
	[ "$rc" -eq 0 ] || { echo "pty_run: $rc"; cat -v "$log"; return 1; }
	grep -qa "rc=130" "$log" || { echo "latch did not die of SIGINT:"; cat -v "$log"; return 1; }
	grep -qa "ECHO-ON" "$log" || { echo "terminal left without echo:"; cat -v "$log"; return 1; }

	# A signal from elsewhere while the prompt waits (echo off: the shell
	# polls for that rather than sleeping).
	local sig code
	for sig in TERM:143 HUP:129; do
		code=${sig#*:}
		sig=${sig%:*}
		rc=0
		pty_run --timeout 30 --log "$log" -- sh -c '
			"$0" set x & p=$!
			i=0
			until stty -a | tr " ;" "\n\n" | grep -qx -- -echo; do
				i=$((i + 1)); [ $i -lt 1000 ] || { kill -9 $p; echo never-prompted; exit 1; }
				sleep 0.01
			done
			kill -'"$sig"' $p; wait $p; echo "rc=$?"; '"$ECHO_STATE" "$LATCH" || rc=$?
		[ "$rc" -eq 0 ] || { echo "SIG$sig: pty_run $rc"; cat -v "$log"; return 1; }
		grep -qa "rc=$code" "$log" || { echo "SIG$sig:"; cat -v "$log"; return 1; }
		grep -qa "ECHO-ON" "$log" || { echo "SIG$sig: terminal left without echo:"; cat -v "$log"; return 1; }
	done
	lx ls --json
	[ "$(jq length <<<"$out")" = 0 ]
}
