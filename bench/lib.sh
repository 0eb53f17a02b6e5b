# bench/lib.sh: sourced by bench/run.sh, scan.sh and release.sh: one temporary
# directory, removed on every exit path; every child run in a process group
# of its own, so that the trap stops it and all it started. The caller sets
# TMP (mktemp -d) and LOG after sourcing this.
TMP=
child=
# descendants PID: the pids below PID (procps ps; nothing if it is missing).
descendants() {
	for d in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$d"
		descendants "$d"
	done
}
cleanup() {
	if [ -n "$child" ]; then
		# The whole tree, found before anything dies and is re-parented,
		# then the child's process group (note: dash's kill takes no --).
		# shellcheck disable=SC2046 # one pid per word
		kill -TERM $(descendants "$child") "$child" 2>/dev/null
		kill -TERM "-$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	if [ -n "$TMP" ]; then
		# What the sourcing script must stop before TMP goes (its
		# brokers): a function it names in BENCH_BEFORE_RM.
		[ -n "${BENCH_BEFORE_RM:-}" ] && "$BENCH_BEFORE_RM"
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
umask 077

# run CMD...: run in the background in a process group of its own (setsid
# does not fork here: a background child of a shell without job control is
# not a group leader), so that the trap can stop it and all it started.
if command -v setsid >/dev/null 2>&1; then SETSID=setsid; else SETSID=; fi
run() {
	$SETSID "$@" &
	child=$!
	wait "$child"
	rc=$?
	child=
	return $rc
}

fail() {
	echo "bench: $*" >&2
	if [ -s "$LOG" ]; then
		echo "bench: last lines of the log:" >&2
		tail -n 20 "$LOG" >&2
	fi
	exit 3
}
note() { printf '%s\n' "$*" >&2; }
