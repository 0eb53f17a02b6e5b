#!/usr/bin/env bats
# Exit records are queued by the broker, not written on the run's path
# (broker/broker.h): each reaches the log with the broker's next commit,
# after 50 ms of quiet, when an audit command asks first, or when the
# broker stops. These tests try to lose one or to catch the log without
# it, and check that no release record is ever the one that waits.

load helpers

setup() {
	br_setup
}

teardown() {
	bg_cleanup
}

# exits_in_file: exit records in the broker's stream file, read as they
# are so the broker is not asked to flush (as `latch audit` would).
exits_in_file() {
	in_streams exit
}

# seq_events: "seq event exit-status" of every release and exit, in order.
seq_events() {
	sql "SELECT seq || ' ' || event || ' ' || coalesce(json_extract(CAST(record AS TEXT), '\$.exit'), '-') FROM audit_log
	     WHERE event IN ('release', 'exit') ORDER BY seq"
}

verify_ok() {
	lx audit verify --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
}

@test "with no reader, a queued exit record reaches the file within seconds" {
	br_grant canary --ttl 10m --uses 100
	br_run --env X=latch://canary -- sh -c "$(br_check_canary); exit 7"
	want_status 7
	# The release is durable before the child starts, whatever the exit.
	[ "$(in_streams release)" = 1 ]
	local i n=0
	for ((i = 0; i < 50; i++)); do
		n=$(exits_in_file)
		[ "$n" = 1 ] && break
		sleep 0.1
	done
	[ "$n" = 1 ] || { echo "the exit record never reached the stream file ($n records)" >&2; false; }
	"$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["event"] == "exit" and r["exit"] == 7, r' "$(stream_last)"
	verify_ok
}

@test "latch audit asks the broker first: right after each run, its exit is listed" {
	br_grant canary --ttl 10m --uses 100
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		br_run --env X=latch://canary -- sh -c "$(br_check_canary); exit $i"
		want_status "$i"
		# No sleep: without the flush most of these would miss the last exit.
		br_audit 'import sys
n = int(sys.argv[2])
assert len(r) == n, (n, r)
assert r[-1]["exit"] == n, r[-1]' --event exit -- "$i"
	done
	# The checkpoint, too, is taken after the flush: its seq is the head.
	lx audit checkpoint </dev/null
	want_status 0
	"$PY" -c 'import json,sys; c=json.loads(sys.argv[1]); assert c["seq"] == int(sys.argv[2]), (c, sys.argv[2])' \
		"$out" "$(sql "SELECT max(seq) FROM audit_log")"
	verify_ok
}

@test "a release commits the exits queued before it: release, exit, release, exit in order" {
	br_grant canary --ttl 10m --uses 100
	br_run --env X=latch://canary -- sh -c "$(br_check_canary); exit 3"
	want_status 3
	br_run --env X=latch://canary -- sh -c "$(br_check_canary); exit 4"
	want_status 4
	lx audit --json </dev/null # flushes the last exit
	want_status 0
	run seq_events
	[ "${#lines[@]}" -eq 4 ] || { printf '%s\n' "${lines[@]}" >&2; false; }
	[ "$(cut -d' ' -f2- <<<"$output" | tr '\n' ' ')" = "release - exit 3 release - exit 4 " ] ||
		{ echo "order: $output" >&2; false; }
	# The exit's time is when the child ended, not when it was written.
	[ "$(sql "SELECT count(*) FROM audit_log a JOIN audit_log b ON b.seq = a.seq + 1
		WHERE a.event = 'exit' AND a.time > b.time")" = 0 ]
	verify_ok
}

@test "stopping the broker writes the exits it holds" {
	br_grant canary --ttl 10m --uses 100
	local pid i
	pid=$(br_broker_pid)
	for i in 1 2 3 4 5; do
		br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
		want_status 0
	done
	kill -TERM "$pid"
	wait_gone "$pid" || { echo "the broker did not stop" >&2; false; }
	[ "$(exits_in_file)" = 5 ] || { echo "$(exits_in_file) of 5 exit records written at stop" >&2; false; }
	verify_ok
}

@test "kill -9 of the broker loses at most the queued exit: every release is there, the log verifies, a new grant works" {
	br_grant canary --ttl 10m --uses 100
	local pid
	pid=$(br_broker_pid)
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	kill -KILL "$pid"
	wait_gone "$pid"
	[ "$(in_streams release)" = 1 ]
	local n
	n=$(exits_in_file)
	[ "$n" = 0 ] || [ "$n" = 1 ] || { echo "$n exit records" >&2; false; }
	verify_ok
	br_grant canary --ttl 10m
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	lx audit --json --event release </dev/null
	want_status 0
	[ "$(sql "SELECT count(*) FROM audit_log WHERE event = 'release'")" = 2 ]
	verify_ok
}

@test "a hand-written flush request is answered with what was written; a bad exit report is refused" {
	br_grant canary --ttl 10m --uses 100
	local sock reply
	sock=$(br_sock)
	reply=$(br_call "$sock" '{"op":"flush"}')
	"$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["ok"] is True and r["written"] == 0, r' "$reply"
	reply=$(br_call "$sock" '{"op":"exit","release":"r-000000000000","status":0}')
	"$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["ok"] is False and r["error"] == "bad-request", r' "$reply"
	reply=$(br_call "$sock" '{"op":"exit","release":"r-000000000000"}')
	"$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["ok"] is False, r' "$reply"
	[ "$(exits_in_file)" = 0 ]
}
