#!/usr/bin/env bats
# P1/P4: a canary value stored with `latch set` must never show up, raw or
# hex- or base64-encoded, in the vault's files (also while a set is in
# flight), in any command's stdout or stderr (failing commands included), or
# in the argv or environment of a running latch. `latch reveal` shows it on
# the terminal and nowhere else.

load helpers

teardown() {
	exec 8>&-
	bg_cleanup
}

# scan_all: no form of the canary in any vault file or in any stdout/stderr
# captured by lx/lpty so far in this test.
scan_all() {
	local files
	mapfile -t files < <(vault_files)
	[ "${#files[@]}" -gt 0 ] || { echo "no vault files to scan" >&2; return 1; }
	assert_absent "$CANARY" "${files[@]}" "$BATS_TEST_TMPDIR"/lx.*.out "$BATS_TEST_TMPDIR"/lx.*.err
}

# wait_until SECONDS CMD...: poll CMD every 20 ms until it succeeds; fail
# after SECONDS (a bound against hanging, not a measurement).
wait_until() {
	local limit=$(($1 * 50)) i=0
	shift
	until "$@"; do
		i=$((i + 1))
		if [ "$i" -ge "$limit" ]; then
			echo "timed out waiting for: $*" >&2
			return 1
		fi
		sleep 0.02
	done
}

# read_environ PID FILE: copy /proc/PID/environ to FILE. latch is not
# dumpable, so only root (CAP_SYS_PTRACE) may read it; for anyone else the
# refusal is the protection, and FILE is left empty.
read_environ() {
	if cat "/proc/$1/environ" >"$2" 2>/dev/null; then
		[ -s "$2" ] || { echo "empty environment read from /proc/$1/environ"; return 1; }
	else
		[ "$(id -u)" -ne 0 ] || { echo "root cannot read /proc/$1/environ"; return 1; }
		: >"$2"
	fi
}

@test "the leak detector finds the raw, hex and base64 forms of a value" {
	local f=$BATS_TEST_TMPDIR/probe v=$CANARY
	printf 'clean text\n' >"$f"
	assert_absent "$v" "$f"
	local shift enc
	for shift in 0 1 2 3; do
		for enc in raw hex HEX b64 b64url; do
			{
				head -c "$shift" /dev/zero
				case $enc in
				raw) printf '%s' "$v" ;;
				hex) printf '%s' "$v" | od -An -tx1 | tr -d ' \n' ;;
				HEX) printf '%s' "$v" | od -An -tx1 | tr -d ' \n' | tr a-f A-F ;;
				b64) { head -c "$shift" /dev/urandom; printf '%s' "$v"; printf 'tail'; } | base64 -w0 ;;
				b64url) { head -c "$shift" /dev/urandom; printf '%s' "$v"; } | base64 -w0 | tr '+/' '-_' ;;
				esac
				printf '\0binary\n'
			} >"$f"
			if assert_absent "$v" "$f" 2>/dev/null; then
				echo "form $enc at offset $shift was not detected"
				return 1
			fi
		done
	done
}

@test "the canary never reaches the vault files or the output of any command" {
	lx init --kdf interactive --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	scan_all

	# Stored from stdin, from --file, and replaced.
	lx set prod --passphrase-fd 3 3<<<"$PASS" <<<"$CANARY"
	want_status 0
	scan_all
	printf '%s' "$CANARY" >"$BATS_TEST_TMPDIR/value"
	lx set other --file "$BATS_TEST_TMPDIR/value" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	lx set prod --file - --passphrase-fd 3 3<<<"$PASS" <"$BATS_TEST_TMPDIR/value"
	want_status 0
	scan_all

	lx ls
	want_status 0
	lx ls --json
	want_status 0
	lx status
	want_status 0
	lx status --json
	want_status 0
	scan_all

	# Failing commands, each handed the canary where it could echo it.
	lx set prod --passphrase-fd 3 3<<<"wrong passphrase" <<<"$CANARY"
	want_status 4
	lx set 'bad name' --passphrase-fd 3 3<<<"$PASS" <<<"$CANARY"
	want_status 2
	# A value one byte over the limit made of canaries.
	local big=$BATS_TEST_TMPDIR/big
	while [ "$(stat -c %s "$big" 2>/dev/null || echo 0)" -le 1048576 ]; do
		printf '%s' "$CANARY$CANARY$CANARY$CANARY$CANARY$CANARY$CANARY$CANARY" >>"$big"
		cat "$big" "$big" >"$big.2" && mv "$big.2" "$big"
	done
	lx set huge --file "$big" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 2
	lx set huge --passphrase-fd 3 3<<<"$PASS" <"$big"
	want_status 2
	lx rm prod --passphrase-fd 3 3<<<"wrong passphrase"
	want_status 4
	lx passwd --passphrase-fd 3 3<<<"wrong passphrase"$'\n'"$PASS"
	want_status 4
	lx rekey --passphrase-fd 3 3<<<"wrong passphrase"
	want_status 4
	# reveal with no terminal at all.
	LX_N=$((LX_N + 1))
	LX_OUT=$BATS_TEST_TMPDIR/lx.$LX_N.out LX_ERR=$BATS_TEST_TMPDIR/lx.$LX_N.err
	status=0
	setsid -w "$LATCH" reveal prod --passphrase-fd 3 3<<<"$PASS" </dev/null >"$LX_OUT" 2>"$LX_ERR" || status=$?
	err=$(<"$LX_ERR")
	want_status 4
	lpty --raw -- reveal prod --passphrase-fd 3 3<<<"wrong passphrase"
	want_status 4
	assert_absent "$CANARY" "$TTY_LOG"
	lpty --raw -- reveal missing --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	scan_all

	# Changing the vault.
	lx passwd --passphrase-fd 3 3<<<"$PASS"$'\n'"$PASS-2"
	want_status 0
	lx rekey --passphrase-fd 3 3<<<"$PASS-2"
	want_status 0
	lx rm other --passphrase-fd 3 3<<<"$PASS-2"
	want_status 0
	scan_all

	# Damaged ciphertext: the error names the secret, never the value.
	flip_blob secrets ciphertext "name = 'prod'" 3
	lx rekey --passphrase-fd 3 3<<<"$PASS-2"
	want_status 3
	lpty --raw -- reveal prod --passphrase-fd 3 3<<<"$PASS-2"
	want_status 3
	assert_absent "$CANARY" "$TTY_LOG"
	scan_all
	# Every command above wrote its outputs where scan_all looked.
	[ "$LX_N" -ge 20 ]
	[ "$(find "$BATS_TEST_TMPDIR" -name 'lx.*.err' | wc -l)" -eq "$LX_N" ]
}

@test "a running latch set: argv, environment and the journal hold no canary" {
	init_vault
	set_secret first "other value"
	local fifo=$BATS_TEST_TMPDIR/value.fifo ctl=$BATS_TEST_TMPDIR/ctl.fifo
	local vfile=$BATS_TEST_TMPDIR/value snap=$BATS_TEST_TMPDIR/snap
	mkdir "$snap"
	printf '%s' "$CANARY" >"$vfile"
	mkfifo "$fifo" "$ctl"

	# A reader holding a read transaction: the set's COMMIT then waits
	# (sqlite busy timeout) with its rollback journal on disk, so the journal
	# can be read while the set is in flight.
	sqlite3 "$VAULT" <"$ctl" >"$BATS_TEST_TMPDIR/reader.out" 2>&1 3>&- &
	local reader=$!
	bg_track "$reader"
	exec 8>"$ctl"
	echo "BEGIN; SELECT 'locked', count(*) FROM secrets;" >&8
	wait_until 10 grep -q '^locked|' "$BATS_TEST_TMPDIR/reader.out"

	# The set blocks opening its --file (a fifo) until a writer comes.
	"$LATCH" set canary --file "$fifo" --passphrase-fd 3 3<<<"$PASS" \
		>"$BATS_TEST_TMPDIR/set.out" 2>"$BATS_TEST_TMPDIR/set.err" 8>&- &
	local pid=$!
	bg_track "$pid"
	wait_until 10 [ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$LATCH")" ]

	# While it waits for the value.
	tr '\0' '\n' <"/proc/$pid/cmdline" >"$snap/cmdline.0"
	grep -qx set "$snap/cmdline.0" # it is the right process
	read_environ "$pid" "$snap/environ.0"
	assert_absent "$CANARY" "$snap/cmdline.0" "$snap/environ.0"

	# Feed the value; the set reads it, then waits to commit.
	cat "$vfile" >"$fifo" 3>&- 8>&- &
	local writer=$!
	bg_track "$writer"
	wait_until 10 [ -e "$VAULT-journal" ]
	cp "$VAULT-journal" "$snap/journal"
	cp "$VAULT" "$snap/vault.db"
	tr '\0' '\n' <"/proc/$pid/cmdline" >"$snap/cmdline.1"
	read_environ "$pid" "$snap/environ.1"
	# Still running: all of this was read during the set.
	kill -0 "$pid"
	[ -s "$snap/journal" ]
	assert_absent "$CANARY" "$snap"/*
	wait "$writer"

	# Let the set finish.
	exec 8>&-
	local rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ] || { echo "latch set exited $rc: $(cat "$BATS_TEST_TMPDIR/set.err")"; return 1; }
	wait "$reader"
	assert_absent "$CANARY" "$BATS_TEST_TMPDIR/set.out" "$BATS_TEST_TMPDIR/set.err"
	mapfile -t files < <(vault_files)
	assert_absent "$CANARY" "${files[@]}"

	# And the value stored was the canary.
	lpty --raw -- reveal canary --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[ "$(cat "$TTY_LOG")" = "$CANARY" ]
}

@test "reveal puts the canary on the terminal and nowhere else" {
	init_vault
	set_secret prod "$CANARY"
	# Passphrase on fd 3, stdout and stderr redirected to files.
	lpty --raw -- reveal prod --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[ "$(cat "$TTY_LOG")" = "$CANARY" ]
	[ ! -s "$LX_OUT" ]
	[ ! -s "$LX_ERR" ]
	# Passphrase typed at the prompt, cooked terminal: the value is shown,
	# the passphrase is not, stdout and stderr stay empty.
	lpty --answer "Passphrase: " "$PASS" -- reveal prod
	want_status 0
	grep -qaF "$CANARY" "$TTY_LOG"
	grep -qaF "Passphrase: " "$TTY_LOG"
	refute grep -qaF "$PASS" "$TTY_LOG"
	[ ! -s "$LX_OUT" ]
	[ ! -s "$LX_ERR" ]
	# stdout a pipe, stderr a file, both without the value.
	local rc=0
	pty_run --timeout 30 --log "$BATS_TEST_TMPDIR/tty" --stderr "$BATS_TEST_TMPDIR/err" --stdout - \
		-- "$LATCH" reveal prod --passphrase-fd 3 3<<<"$PASS" >"$BATS_TEST_TMPDIR/piped" || rc=$?
	[ "$rc" -eq 0 ]
	grep -qaF "$CANARY" "$BATS_TEST_TMPDIR/tty"
	[ ! -s "$BATS_TEST_TMPDIR/piped" ]
	[ ! -s "$BATS_TEST_TMPDIR/err" ]
	scan_all
}
