#!/bin/sh
# Run every test: a lint of the test files, the cmocka unit tests and the
# bats end-to-end tests against build/latch, then all of them again built
# with ASan+UBSan, then the fuzz corpora replayed under the sanitizers.
# Every suite speaks TAP; this script counts "ok" and "not ok" lines (an
# "ok ... # skip" line is a skipped test, counted apart, not a pass) and
# ends with "N skipped" and then "N passed, N failed". Exit status 0 only
# when nothing failed.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
logdir=$root/build/test-logs
rm -rf "$logdir"
mkdir -p "$logdir/sanitizer"
passed=0
failed=0
skipped=0

# run_tap LABEL CMD...: run a TAP-speaking command, count its results.
# A command that exits non-zero without a "not ok" line (a crash, a
# sanitizer abort before the report) counts as one more failure.
run_tap() {
	label=$1
	shift
	log=$logdir/$(printf '%s' "$label" | tr ' /' '__').tap
	"$@" >"$log" 2>&1
	status=$?
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
	passed=$((passed + ok))
	failed=$((failed + nok))
	skipped=$((skipped + skip))
	if [ "$skip" -ne 0 ]; then
		printf '%-40s %4d passed, %d failed, %d skipped\n' "$label" "$ok" "$nok" "$skip"
	else
		printf '%-40s %4d passed, %d failed\n' "$label" "$ok" "$nok"
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
	if [ $variant = plain ]; then
		bindir=build
	else
		bindir=build/asan
	fi
	for t in "$bindir"/tests/test_*; do
		[ -x "$t" ] || continue
		run_tap "$variant unit $(basename "$t")" "$t"
	done
	for b in tests/cli/*.bats; do
		[ -f "$b" ] || continue
		run_tap "$variant e2e $(basename "$b" .bats)" env LATCH_BIN="$root/$bindir/latch" bats --tap "$b"
	done
done

for r in build/fuzz-replay/fuzz_*; do
	[ -x "$r" ] || continue
	n=$(basename "$r")
	run_tap "fuzz replay $n" "$r" "tests/fuzz/corpus/$n"
done

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
