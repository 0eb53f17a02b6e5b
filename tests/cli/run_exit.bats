#!/usr/bin/env bats
# latch run's own exit statuses (issue 9): every failure of latch's own
# before the child starts is 125, usage errors included, so that no
# status of latch's can be mistaken for the child's; a refusal for lack
# of a grant is 4; 126 and 127 when the command cannot be run or is not
# found. Each case also shows that the child did not run.

load helpers

setup() {
	br_setup
	RX_RAN=$BATS_TEST_TMPDIR/ran
}

teardown() {
	bg_cleanup
}

# rx_child: a command that leaves $RX_RAN behind if it runs.
rx_child() {
	printf '%s\n' sh -c 'touch "$0"' "$RX_RAN"
}

# rx_want STATUS: the last br_run exited STATUS with one error line, and
# the child did not run.
rx_want() {
	want_status "$1"
	want_err_line
	[ ! -e "$RX_RAN" ] || { echo "the child ran" >&2; return 1; }
}

@test "usage errors exit 125, not 2: unknown option, missing value, no command" {
	local child
	mapfile -t child < <(rx_child)
	br_run --bogus -- "${child[@]}"
	rx_want 125
	want_err_line "unknown option '--bogus'"
	br_run -x -- "${child[@]}"
	rx_want 125
	br_run --env
	rx_want 125
	want_err_line "needs a value"
	br_run
	rx_want 125
	want_err_line "name a command to run"
	br_run --env X=latch://canary
	rx_want 125
	br_run --passphrase-fd nope -- "${child[@]}"
	rx_want 125
	br_run --passphrase-fd 1 -- "${child[@]}"
	rx_want 125
	# Control: --help is no failure.
	br_run --help
	want_status 0
	[[ "$out" == *"Exit status"*"125"* ]]
}

@test "the limits: more than 128 --env/--file, 64 references, 16 --env-file or 64 --keep exit 125" {
	local child i args=()
	mapfile -t child < <(rx_child)
	for i in $(seq 1 129); do args+=(--env "V=latch://canary"); done
	br_run "${args[@]}" -- "${child[@]}"
	rx_want 125
	want_err_line "more than 128 --env and --file"
	args=()
	for i in $(seq 1 65); do args+=(--env "V$i=latch://canary"); done
	br_run "${args[@]}" -- "${child[@]}"
	rx_want 125
	want_err_line "more than 64 references"
	args=()
	: >"$BATS_TEST_TMPDIR/empty.env"
	for i in $(seq 1 17); do args+=(--env-file "$BATS_TEST_TMPDIR/empty.env"); done
	br_run "${args[@]}" -- "${child[@]}"
	rx_want 125
	want_err_line "more than 16 --env-file"
	args=()
	for i in $(seq 1 65); do args+=(--pristine --keep "K$i"); done
	br_run "${args[@]}" -- "${child[@]}"
	rx_want 125
	want_err_line "more than 64 --keep"
	# Control: at the limits it runs (128 --env for one variable, 64
	# references, 16 env files, 64 --keep).
	br_grant canary --ttl 5m
	args=()
	for i in $(seq 1 64); do args+=(--env "V$i=latch://canary"); done
	for i in $(seq 1 64); do args+=(--env "V1=latch://canary"); done
	for i in $(seq 1 16); do args+=(--env-file "$BATS_TEST_TMPDIR/empty.env"); done
	for i in $(seq 1 64); do args+=(--keep "K$i"); done
	br_run "${args[@]}" -- "${child[@]}"
	want_status 0
	[ -e "$RX_RAN" ]
}

@test "malformed references, a missing env file, a non-UTF-8 program path exit 125; nothing is released" {
	local child
	mapfile -t child < <(rx_child)
	br_grant canary --ttl 5m
	br_run --env X=latch://../canary -- "${child[@]}"
	rx_want 125
	br_run --env 1X=latch://canary -- "${child[@]}"
	rx_want 125
	br_run --env-file "$BATS_TEST_TMPDIR/missing.env" -- "${child[@]}"
	rx_want 125
	printf 'X=plain\n' >"$BATS_TEST_TMPDIR/plain.env"
	br_run --env-file "$BATS_TEST_TMPDIR/plain.env" -- "${child[@]}"
	rx_want 125
	# A program whose path is not UTF-8 can be named by no grant.
	local odd=$BATS_TEST_TMPDIR/$'bad\xff'
	mkdir "$odd"
	cp "$(br_real sh)" "$odd/sh"
	br_run --env X=latch://canary -- "$odd/sh" -c 'touch "$0"' "$RX_RAN"
	rx_want 125
	want_err_line "not UTF-8"
	br_audit '
assert not [x for x in r if x["event"] == "release"], "something was released"
'
}

@test "no grant and no terminal: 4; not found: 127; not executable: 126" {
	local child
	mapfile -t child < <(rx_child)
	br_run --env X=latch://canary -- "${child[@]}"
	rx_want 4
	want_err_line "latch grant"
	br_run --env X=latch://canary -- "$BATS_TEST_TMPDIR/no-such-program"
	want_status 127
	printf '#!/bin/sh\ntouch "%s"\n' "$RX_RAN" >"$BATS_TEST_TMPDIR/noexec"
	chmod 0644 "$BATS_TEST_TMPDIR/noexec"
	br_run -- "$BATS_TEST_TMPDIR/noexec"
	want_status 126
	[ ! -e "$RX_RAN" ]
}

@test "a wrong passphrase for a one-shot release is a refusal (4), a vault that cannot be read is 125" {
	local child
	mapfile -t child < <(rx_child)
	br_run --passphrase-fd 3 --env X=latch://canary -- "${child[@]}" 3<<<"not the passphrase"
	want_status 4
	[ ! -e "$RX_RAN" ]
	# A secret that does not exist: the one-shot read fails (125).
	br_run --passphrase-fd 3 --env X=latch://nosuch -- "${child[@]}" 3<<<"$PASS"
	want_status 125
	[ ! -e "$RX_RAN" ]
}
