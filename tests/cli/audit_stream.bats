#!/usr/bin/env bats
# A broker's stream file (docs/audit.md, "Stream files"): each release is
# one line appended and synced before the child starts; readers fold the
# file into the vault's tables; verify reads the file itself. These tests
# kill the broker mid-release, edit, cut and move its records, and query
# right after a release.

load helpers

setup() {
	br_setup
	export LATCH_BROKER_IDLE=60
}

teardown() {
	bg_cleanup
}

# stream_file N: the path of broker stream N's file.
stream_file() {
	echo "$LATCH_HOME/audit/stream-$1"
}

# seq_of STREAM N: the seq the fold gave record N of STREAM.
seq_of() {
	sql "SELECT seq FROM audit_log WHERE stream = $1 ORDER BY seq LIMIT 1 OFFSET $(($2 - 1))"
}

# runs N: N releases of the canary, each child checking it has it.
runs() {
	local i
	for ((i = 0; i < $1; i++)); do
		br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
		want_status 0 || return 1
	done
}

# edit_line FILE N SCRIPT: line N of FILE (1-based) replaced by what the
# Python expression SCRIPT makes of `l` (bytes, with its newline); None
# removes it.
edit_line() {
	"$PY" - "$@" <<'EOF'
import sys
path, n, script = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(path, "rb").read().split(b"\n")
l = lines[n - 1] + b"\n"
new = eval(script)
rest = b"\n".join(lines[n:])
head = b"".join(x + b"\n" for x in lines[: n - 1])
open(path, "wb").write(head + (new or b"") + rest)
EOF
}

@test "right after a release, latch audit --secret lists it: the record is in the stream file first, the fold runs before the query" {
	br_grant canary --ttl 10m --uses 10
	runs 1
	# Durable in the broker's file before the child started; nothing of
	# it in the vault's tables until a reader folds.
	[ "$(in_streams release)" -eq 1 ]
	[ "$(sql "SELECT count(*) FROM audit_log WHERE event = 'release'")" -eq 0 ]
	br_audit '
assert len(r) == 1, r
x = r[0]
assert x["event"] == "release" and x["decision"] == "allow" and x["secrets"] == ["canary"], x
assert x["stream"] == 1 and x["n"] == 1 and "seq" not in x, x
' --secret canary --since 1h --event release
	[ "$(sql "SELECT count(*) FROM audit_log WHERE event = 'release' AND stream = 1")" -eq 1 ]
	# The human listing shows it with the seq the fold gave it.
	lx audit --secret canary </dev/null
	want_status 0
	grep -q "release  canary" <<<"$out"
	au_want_verified
}

@test "a byte flipped, a record removed, a record moved to another stream's file: verify names the record" {
	br_grant canary --ttl 10m --uses 20
	runs 3
	lx audit </dev/null # folds the releases and exits in
	want_status 0
	local f orig seq2 seq3
	f=$(stream_file 1)
	orig=$BATS_TEST_TMPDIR/stream-1.orig
	cp "$f" "$orig"
	seq2=$(seq_of 1 2)
	seq3=$(seq_of 1 3)
	# A byte of record 2's text: its MAC no longer matches.
	edit_line "$f" 2 'l[:120] + bytes([l[120] ^ 1]) + l[121:]'
	au_want_tampered "$seq2"
	[[ "$err" == *"record $seq2 (broker stream 1, record 2) does not match its MAC"* ]]
	cp "$orig" "$f"
	# Record 3 removed: record 4 does not link to record 2.
	edit_line "$f" 3 'None'
	au_want_tampered "$seq3"
	[[ "$err" == *"(broker stream 1, record 3) does not match its MAC"* ]]
	cp "$orig" "$f"
	au_want_verified
	# A second broker: stream 2. Record 2 of stream 1 appended to it.
	lx broker stop </dev/null
	want_status 0
	br_grant canary --ttl 10m --uses 20
	runs 1
	lx audit </dev/null
	want_status 0
	sed -n 2p "$orig" >>"$(stream_file 2)"
	au_verify
	want_status 1
	want_err_line "tampered" "broker stream 2, record 3 does not match its MAC"
	# A query will not fold past a line that is not the stream's next
	# record, and says so rather than answer without it.
	lx audit --secret canary </dev/null
	want_status 3
	want_err_line "record 3 of broker stream 2 is damaged: run 'latch audit verify'"
}

@test "a stream's tail cut: named against the index, against a checkpoint, and against the head the next passphrase holder recorded" {
	br_grant canary --ttl 10m --uses 20
	runs 2
	lx audit </dev/null
	want_status 0
	local f last cp
	f=$(stream_file 1)
	cp "$f" "$BATS_TEST_TMPDIR/s1"
	last=$(sql "SELECT max(seq) FROM audit_log")
	# Before any close, folded: the index still holds it.
	edit_line "$f" 4 'None'
	au_want_tampered "$last"
	[[ "$err" == *"is in the index but not in its stream's file"* ]]
	cp "$BATS_TEST_TMPDIR/s1" "$f"
	# Cut from the file and from the index alike (the fold's position put
	# back too): only a checkpoint taken after it knows.
	cp=$BATS_TEST_TMPDIR/cp
	lx audit checkpoint </dev/null
	want_status 0
	printf '%s\n' "$out" >"$cp"
	edit_line "$f" 4 'None'
	sql "DELETE FROM audit_secret WHERE seq = $last; DELETE FROM audit_log WHERE seq = $last;
	     UPDATE audit_fold SET folded = 3, offset = $(stat -c %s "$f") WHERE stream = 1"
	au_want_verified
	au_want_tampered "$last" --checkpoint "$cp"
	cp "$BATS_TEST_TMPDIR/s1" "$f"
	lx audit </dev/null # folds the record in again
	want_status 0
	au_want_verified
	# After the next passphrase holder's command closed the stream at its
	# head: the same cut is named against the close record.
	lx broker stop </dev/null
	want_status 0
	br_grant canary --ttl 10m
	cp "$f" "$BATS_TEST_TMPDIR/s1"
	last=$(seq_of 1 5) # the broker's stop
	edit_line "$f" 5 'None'
	au_want_tampered "$last"
	sql "DELETE FROM audit_secret WHERE seq = $last; DELETE FROM audit_log WHERE seq = $last;
	     UPDATE audit_fold SET folded = 4, offset = $(stat -c %s "$f") WHERE stream = 1"
	au_want_tampered "$last"
	[[ "$err" == *"record $last is missing"* ]]
}

@test "kill -9 of the broker at random points during 200 releases: every child that started has its release record, the log verifies, each next broker starts a new stream" {
	local t=$BATS_TEST_TMPDIR round batch kills=0
	: >"$t/started"
	for ((round = 1; round <= 10; round++)); do
		br_grant canary --ttl 10m --uses 1000
		local pid
		pid=$(br_broker_pid)
		# 20 releases back to back; each child notes its runner (its
		# parent) once it runs.
		(
			for ((i = 0; i < 20; i++)); do
				"$LATCH" run --env X=latch://canary -- sh -c 'echo $PPID >>"$0"' "$t/started" \
					</dev/null >/dev/null 2>&1
			done
		) &
		batch=$!
		bg_track "$batch"
		sleep "0.$(printf '%03d' $((RANDOM % 200)))"
		kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
		wait "$batch" || true
		wait_gone "$pid"
	done
	echo "# kills $kills" >&3
	[ "$kills" -ge 5 ] || { echo "only $kills of 10 kills landed during the runs" >&2; false; }
	# The children that ran: at least one per round, usually more.
	local started
	started=$(sort -u "$t/started" | wc -l)
	echo "# started $started" >&3
	[ "$started" -ge 10 ]
	# Each broker had a stream of its own, opened by its grant.
	[ "$(ls "$LATCH_HOME"/audit/ | grep -c '^stream-')" -ge 10 ]
	br_grant canary --ttl 10m
	lx audit --json --event release </dev/null
	want_status 0
	"$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
runners = {x["runner"] for x in r if x["decision"] == "allow"}
started = {int(l) for l in open(sys.argv[2])}
missing = started - runners
assert not missing, ("children ran without a release record", sorted(missing))
' "$out" "$t/started"
	[ "$(sql "SELECT count(*) FROM audit_log WHERE event = 'enrol'")" -eq 11 ]
	au_want_verified
}

@test "P7: a broker that cannot write its stream file (a file size limit: EFBIG, as on a full disk) releases nothing; the child never starts; once it can, releases go on" {
	br_grant canary --ttl 10m --uses 10
	local t=$BATS_TEST_TMPDIR broker stream size
	broker=$(br_broker_pid)
	stream=$(stream_file 1)
	runs 1
	size=$(stat -c %s "$stream")
	prlimit --pid "$broker" --fsize="$size:"
	br_run --env X=latch://canary -- sh -c 'touch "$0/ran"' "$t"
	want_status 125 # latch failed before exec
	[ ! -e "$t/ran" ]
	[[ "$err" == *"the release could not be recorded, so it was refused"* ]] || { echo "stderr: $err" >&2; false; }
	kill -0 "$broker" # refused, not killed by SIGXFSZ
	# Nothing half-written: the file ends with the same whole records.
	[ "$(stat -c %s "$stream")" -eq "$size" ]
	prlimit --pid "$broker" --fsize=unlimited:
	br_run --env X=latch://canary -- sh -c 'touch "$0/ran"' "$t"
	want_status 0
	[ -e "$t/ran" ]
	au_want_verified
	# The broker ignores SIGXFSZ; the child it starts does not inherit that.
	br_run --env X=latch://canary -- cat /proc/self/status
	want_status 0
	local ign
	ign=$(awk '/^SigIgn:/ {print $2}' <<<"$out")
	[ -n "$ign" ] && [ $((0x$ign & (1 << 24))) -eq 0 ] || { echo "the child ignores SIGXFSZ: SigIgn $ign" >&2; false; }
}
