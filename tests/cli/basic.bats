#!/usr/bin/env bats
# Basic command-line behaviour: help, usage errors, init/set/ls round trip.

load helpers

@test "--help and every command's --help exit 0" {
	run "$LATCH" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"usage: latch"* ]]
	for c in init set ls rm passwd rekey reveal status audit grant grants revoke run broker; do
		run "$LATCH" "$c" --help
		[ "$status" -eq 0 ]
		[[ "$output" == *"usage: latch $c"* ]]
	done
}

@test "unknown command and unknown option: exit 2 with one line" {
	run "$LATCH" frobnicate
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	run "$LATCH" ls --frobnicate
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
}

@test "init, set, ls round trip" {
	init_vault
	set_secret prod-db "$CANARY"
	run "$LATCH" ls
	[ "$status" -eq 0 ]
	[[ "$output" == *prod-db* ]]
	[[ "$output" != *"$CANARY"* ]]
}
