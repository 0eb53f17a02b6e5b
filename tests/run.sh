#!/bin/sh
# Run every test: a lint of the test files, the cmocka unit tests and the
# bats end-to-end tests against build/latch, then all of them again built
# with ASan+UBSan, then the fuzz corpora replayed under the sanitizers.
# Every suite speaks TAP; this script counts "ok" and "not ok" lines (an
# "ok ... # skip" line is a skipped test, counted apart, not a pass) and
# ends with "N skipped" and then "N passed, N failed". Exit status 0 only
# when nothing failed. The end-to-end files run in two lanes (make test
# must stay under 15 minutes on two cores); the files that act as another
# uid or look at processes machine-wide never run at the same time.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
logdir=$root/build/test-logs
rm -rf "$logdir"
mkdir -p "$logdir/sanitizer"
# One line per suite, "ok nok skip", appended by run_tap (in whichever
# lane ran it) and summed at the end.
counts=$logdir/counts
: >"$counts"

# run_tap LABEL CMD...: run a TAP-speaking command, count its results.
# A command that exits non-zero without a "not ok" line (a crash, a
# sanitizer abort before the report) counts as one more failure.
run_tap() {
	label=$1
	shift
	log=$logdir/$(printf '%s' "$label" | tr ' /' '__').tap
	t0=$(date +%s)
	"$@" >"$log" 2>&1
	status=$?
	took=$(($(date +%s) - t0))
	# A skip is "ok N ... # skip" (bats) or "not ok N # SKIP" (cmocka).
	ok=$(grep -c '^ok ' "$log")
	nok=$(grep -c '^not ok ' "$log")
	okskip=$(grep -ci '^ok .*# skip' "$log")
	nokskip=$(grep -ci '^not ok .*# skip' "$log")
	skip=$((okskip + nokskip))
	ok=$((ok - okskip))
	nok=$((nok - nokskip))
	if [ "$status" -ne 0 ] && [ "$nok" -eq 0 ]; then
		nok=1
		echo "not ok - $label exited with status $status" >>"$log"
	fi
	echo "$ok $nok $skip" >>"$counts"
	if [ "$skip" -ne 0 ]; then
		printf '%-40s %4d passed, %d failed, %d skipped (%ds)\n' "$label" "$ok" "$nok" "$skip" "$took"
	else
		printf '%-40s %4d passed, %d failed (%ds)\n' "$label" "$ok" "$nok" "$took"
	fi
	if [ "$nok" -ne 0 ]; then
		grep -iv '^not ok .*# skip' "$log" | grep -A15 '^not ok ' | head -60 | sed 's/^/    /'
	fi
}

# Lint of the tests themselves: a `! cmd` line that cannot fail its test.
run_tap "lint bats_bang" sh tests/lint/bats_bang.sh
# The daemon is the broker: the word agent means the coding agent, nowhere else.
run_tap "lint daemon_name" sh tests/lint/daemon_name.sh
# cli/ parses, calls and prints: no JSON library, no protocol, no SQL.
run_tap "lint cli_layers" sh tests/lint/cli_layers.sh
# The layout is .clang-format's: `make format` changes nothing.
run_tap "lint format" sh tests/lint/format.sh

export CMOCKA_MESSAGE_OUTPUT=TAP
# Sanitizer reports go to files as well as failing the process, so a
# report from a latch process whose exit status a test expected to be
# non-zero is still caught below. Exit codes 97/98 never collide with
# latch's own 0-4 or a child's status in these tests.
export ASAN_OPTIONS="exitcode=97:abort_on_error=0:detect_leaks=1:log_path=$logdir/sanitizer/asan"
export UBSAN_OPTIONS="halt_on_error=1:exitcode=98:print_stacktrace=1:log_path=$logdir/sanitizer/ubsan"

for variant in plain asan; do
	bindir=build
	[ $variant = plain ] || bindir=build/asan
	for t in "$bindir"/tests/test_*; do
		[ -x "$t" ] || continue
		run_tap "$variant unit $(basename "$t")" "$t"
	done
done

# The end-to-end files, both variants, in two lanes taking from one queue.
# Files that run latch as uid 65534 or count processes of the machine
# (pgrep, setpriv) are "shared": they run in lane 1 only, one at a time,
# before it takes from the queue; the rest are queued, slowest first.
shared="audit_fail broker broker_attack broker_proof perms run_hygiene session session_attack"
queue=$logdir/queue
: >"$queue"
echo 1 >"$queue.next"
for b in fed_exchange fed_errors fed_refresh audit_fed scan hook_install $(ls tests/cli/*.bats | sed 's|.*/||; s|\.bats$||'); do
	case " $shared " in *" $b "*) continue ;; esac
	for variant in plain asan; do
		grep -qx "$variant $b" "$queue" || echo "$variant $b" >>"$queue"
	done
done
# take: the next queued "variant file", or nothing when the queue is empty.
take() {
	while ! mkdir "$queue.lock" 2>/dev/null; do sleep 0.02; done
	n=$(cat "$queue.next")
	echo $((n + 1)) >"$queue.next"
	rmdir "$queue.lock"
	sed -n "${n}p" "$queue"
}
e2e() {
	bindir=build
	[ "$1" = plain ] || bindir=build/asan
	[ -f "tests/cli/$2.bats" ] || return 0
	run_tap "$1 e2e $2" env LATCH_BIN="$root/$bindir/latch" bats --tap "tests/cli/$2.bats"
}
lane() {
	if [ "$1" = 1 ]; then
		for b in $shared; do
			e2e plain "$b"
			e2e asan "$b"
		done
	fi
	while job=$(take) && [ -n "$job" ]; do
		e2e $job
	done
}
lane 1 &
lane1=$!
lane 2 &
lane2=$!
wait "$lane1"
wait "$lane2"

for r in build/fuzz-replay/fuzz_*; do
	[ -x "$r" ] || continue
	n=$(basename "$r")
	run_tap "fuzz replay $n" "$r" "tests/fuzz/corpus/$n"
done

passed=$(awk '{s += $1} END {print s + 0}' "$counts")
failed=$(awk '{s += $2} END {print s + 0}' "$counts")
skipped=$(awk '{s += $3} END {print s + 0}' "$counts")
reports=$(find "$logdir/sanitizer" -type f | wc -l)
if [ "$reports" -ne 0 ]; then
	echo "not ok - sanitizer reports in $logdir/sanitizer:"
	for f in "$logdir"/sanitizer/*; do sed 's/^/    /' "$f" | head -40; done
	failed=$((failed + reports))
fi

echo "logs: $logdir"
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
