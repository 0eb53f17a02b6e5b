# The one set of helpers every end-to-end suite loads (`load helpers`): each
# test gets a fresh HOME and vault directory under bats' own temporary
# directory and drives the real binary ($LATCH_BIN, default build/latch).
#
# Sections: set-up; running latch (lx, lxp, lpty, lptyp, br_nt, br_run) and
# checking what it did (want_status, want_err_line, want_no_stdout,
# refute); values that must not leak (value_forms, assert_absent); the
# vault file (sql, flip_blob); background processes, mounts and
# directories, stopped or removed by bg_cleanup on every exit path; the
# audit log (au_*); the broker (br_*); federation (fed_*).
#
# Every process a test starts in the background is passed to bg_track, a
# broker's lock file outside a runtime directory from br_runtime to
# track_lock, a mount to track_mount and a directory outside
# $BATS_TEST_TMPDIR to track_dir. bg_cleanup stops, unmounts and removes
# them whether the test passed or not: the default teardown calls it, and a
# file that defines its own teardown must call it too (a broker left
# running hangs CI).

LATCH=${LATCH_BIN:-$BATS_TEST_DIRNAME/../../build/latch}
PASS="correct horse battery staple"
CANARY="CANARY$(printf '%s' "$BATS_TEST_NAME" | cksum | cut -d' ' -f1)Zq7vX2mK9pL4"
PY=/usr/bin/python3
PTY_RUN="$BATS_TEST_DIRNAME/pty_run.py"

# ---------------------------------------------------------------------------
# Set-up

# home_setup: a fresh HOME and LATCH_HOME, no XDG variables; VAULT is the
# vault file. The default setup; a file's own setup calls it first.
home_setup() {
	export HOME="$BATS_TEST_TMPDIR/home"
	export LATCH_HOME="$HOME/.local/share/latch"
	unset XDG_DATA_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR
	mkdir -p "$HOME"
	VAULT="$LATCH_HOME/vault.db"
}

setup() {
	home_setup
}

teardown() {
	bg_cleanup
}

# latch_p ARGS...: run latch with the passphrase $PASS on fd 3.
latch_p() {
	"$LATCH" "$@" --passphrase-fd 3 3<<<"$PASS"
}

# init_vault: a vault with the cheap KDF level the tests use.
init_vault() {
	latch_p init --kdf interactive >/dev/null
}

# set_secret NAME VALUE: store VALUE (exact bytes, via --file -).
set_secret() {
	printf '%s' "$2" | latch_p set "$1" --file - >/dev/null
}

# ---------------------------------------------------------------------------
# Running latch
#
# Every runner below writes latch's stdout and stderr to numbered files
# under $BATS_TEST_TMPDIR, lx.N.out and lx.N.err (kept, so a test can scan
# every output it produced: "$BATS_TEST_TMPDIR"/lx.*), named by LX_OUT and
# LX_ERR, and sets status, out (stdout text) and err (stderr text).

# lx_next: the next pair of output files (LX_N counts them).
lx_next() {
	LX_N=$((${LX_N:-0} + 1))
	LX_OUT=$BATS_TEST_TMPDIR/lx.$LX_N.out
	LX_ERR=$BATS_TEST_TMPDIR/lx.$LX_N.err
}

# lx_read RC: set status, out and err from the last run.
lx_read() {
	status=$1
	{ out=$(<"$LX_OUT") err=$(<"$LX_ERR"); } 2>/dev/null # no "ignored null byte"
}

# LX_WRAP: a command prefix for lx (empty: run latch directly), e.g.
# setpriv arguments to run latch as another user.
LX_WRAP=()

# lx ARGS...: run latch (behind LX_WRAP). Fails the test at once if latch
# crashed: latch's own exit codes are 0-4, anything else is a signal, a
# sanitizer report or worse. Redirections on the call (3<<<"$PASS", <file)
# reach latch.
lx() {
	lx_next
	local rc=0
	"${LX_WRAP[@]}" "$LATCH" "$@" >"$LX_OUT" 2>"$LX_ERR" || rc=$?
	lx_read "$rc"
	if [ "$rc" -gt 4 ]; then
		echo "latch $* exited with status $rc (crash or sanitizer report); stderr:" >&2
		cat "$LX_ERR" >&2
		return 1
	fi
	return 0
}

# lxp ARGS...: lx with --passphrase-fd 3 and $LX_PASS (default $PASS) on
# fd 3; stdin is the caller's.
lxp() {
	lx "$@" --passphrase-fd 3 3<<<"${LX_PASS:-$PASS}"
}

# pty_run [OPTION]... -- CMD...: run CMD with a pseudo-terminal as its
# controlling terminal (see tests/cli/pty_run.py for the options).
pty_run() {
	"$PY" "$PTY_RUN" "$@"
}

# need_pty: skip the test when the pty helper is missing.
need_pty() {
	[ -f "$PTY_RUN" ] && [ -x "$PY" ] ||
		skip "reveal needs a terminal and tests/cli/pty_run.py (or /usr/bin/python3) is missing"
}

# lpty [PTY_OPTION]... -- ARGS...: run latch under pty_run, everything
# written to the terminal captured in TTY_LOG (tty.N.log). Fails the test on
# a crash or a timeout.
lpty() {
	lx_next
	TTY_LOG=$BATS_TEST_TMPDIR/tty.$LX_N.log
	local opts=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		opts+=("$1")
		shift
	done
	shift
	local rc=0
	pty_run --timeout 30 --log "$TTY_LOG" --stdout "$LX_OUT" --stderr "$LX_ERR" "${opts[@]}" \
		-- "$LATCH" "$@" || rc=$?
	lx_read "$rc"
	if [ "$rc" -gt 4 ]; then
		echo "latch $* under a pty exited with status $rc (crash, sanitizer report or timeout); stderr:" >&2
		cat "$LX_ERR" >&2
		return 1
	fi
	return 0
}

# lptyp ARGS...: latch ARGS under a pty in raw mode, stdin /dev/null, with
# the passphrase $LX_PASS (default $PASS) on fd 3.
lptyp() {
	lpty --raw --stdin /dev/null -- "$@" --passphrase-fd 3 3<<<"${LX_PASS:-$PASS}"
}

# br_nt ARGS...: latch ARGS in a new session with no controlling terminal
# and stdin from /dev/null (so the suite behaves the same when run from a
# developer's terminal). Any exit status may be a child's to give (`latch
# run`), so none fails the test here, except 97/98 (tests/run.sh's
# sanitizer exit codes; no child in these tests exits with them).
br_nt() {
	lx_next
	local rc=0
	# BR_ENV (an array of VAR=VALUE, e.g. from run_hygiene.bats' hy_env):
	# set in latch's own environment through env(1).
	setsid -w env ${BR_ENV+"${BR_ENV[@]}"} "$LATCH" "$@" </dev/null >"$LX_OUT" 2>"$LX_ERR" || rc=$?
	lx_read "$rc"
	if [ "$rc" -eq 97 ] || [ "$rc" -eq 98 ]; then
		echo "latch $* exited $rc (sanitizer report); stderr:" >&2
		cat "$LX_ERR" >&2
		return 1
	fi
	return 0
}

# br_run ARGS...: br_nt run ARGS...
br_run() {
	br_nt run "$@"
}

# want_status N: the last run exited with N.
want_status() {
	if [ "$status" -ne "$1" ]; then
		echo "expected exit status $1, got $status" >&2
		echo "stdout: $out" >&2
		echo "stderr: $err" >&2
		return 1
	fi
}

# want_err_line [SUBSTRING]...: stderr of the last run is exactly one line
# "latch: ...\n" containing every SUBSTRING.
want_err_line() {
	local raw='' nl s
	IFS= read -r -d '' raw <"$LX_ERR" || true
	nl=${raw//[!$'\n']/}
	if [ "${#nl}" -ne 1 ] || [[ "$raw" != "latch: "*$'\n' ]]; then
		echo "expected exactly one line 'latch: ...' on stderr, got:" >&2
		cat "$LX_ERR" >&2
		return 1
	fi
	for s in "$@"; do
		if [[ "$err" != *"$s"* ]]; then
			echo "stderr does not mention '$s': $err" >&2
			return 1
		fi
	done
}

# want_no_stdout: the last run wrote nothing to stdout.
want_no_stdout() {
	if [ -s "$LX_OUT" ]; then
		echo "expected no stdout, got: $out" >&2
		return 1
	fi
}

# refute CMD...: fail (return 1) if CMD succeeds. Use it instead of
# `! CMD`, which bash's errexit ignores, so a bats test would go on.
refute() {
	if "$@"; then
		echo "expected to fail, but succeeded: $*" >&2
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------------------
# Values that must not leak

# value_forms: read a value on stdin, print the strings that would betray
# it, one per line: the raw bytes, lower- and upper-case hex, and base64
# (standard and URL-safe) at each of the three alignments a value can have
# inside a larger encoded blob (only the characters that depend on the
# value alone). The value must not contain a newline.
value_forms() {
	/usr/bin/python3 -c '
import base64, sys
v = sys.stdin.buffer.read()
forms = {v, v.hex().encode(), v.hex().upper().encode()}
for shift in range(3):
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        e = enc(b"\0" * shift + v)
        start = -(-8 * shift // 6)
        end = (8 * (shift + len(v))) // 6
        forms.add(e[start:end])
for f in sorted(forms):
    sys.stdout.buffer.write(f + b"\n")
'
}

# assert_absent VALUE FILE...: none of value_forms(VALUE) occurs in any of
# the FILEs. Every FILE must exist and be readable: a mistyped path (or a
# glob that matched nothing) must not make a leak test pass. A caller
# scanning files that come and go (a journal) passes what a find just
# listed, or copies of them (br_scan_files).
assert_absent() {
	local value=$1 pats f rc bad=0
	shift
	[ $# -gt 0 ] || { echo "assert_absent: no file to scan" >&2; return 1; }
	pats=$(mktemp "$BATS_TEST_TMPDIR/forms.XXXXXX")
	printf '%s' "$value" | value_forms >"$pats"
	[ -s "$pats" ] || { echo "assert_absent: no forms computed" >&2; rm -f "$pats"; return 1; }
	for f in "$@"; do
		if [ ! -f "$f" ]; then
			echo "assert_absent: no file $f" >&2
			bad=1
			continue
		fi
		rc=0
		grep -qaF -f "$pats" -- "$f" || rc=$?
		if [ "$rc" -eq 0 ]; then
			echo "the value (or an encoding of it) occurs in $f:" >&2
			grep -oaF -f "$pats" -- "$f" | head -3 >&2
			bad=1
		elif [ "$rc" -ne 1 ]; then
			echo "assert_absent: cannot read $f" >&2 # unread is not clean
			bad=1
		fi
	done
	rm -f "$pats"
	return $bad
}


# ---------------------------------------------------------------------------
# The vault file

# sql STATEMENT: run SQL against the vault file directly.
sql() {
	sqlite3 "$VAULT" "$1"
}

# in_streams EVENT: how many EVENT records the broker stream files hold,
# read from the files themselves (nothing is folded, no broker is asked
# to flush): what is durable on disk, as a crash would leave it.
in_streams() {
	cat "$LATCH_HOME"/audit/stream-* 2>/dev/null | grep -c "\"event\":\"$1\"" || true
}

# stream_last: the last whole record of the newest broker stream file.
stream_last() {
	local f
	f=$(ls -v "$LATCH_HOME"/audit/stream-* | tail -1)
	tail -n 1 "$f" | cut -d' ' -f2-
}

# sql_in: run SQL read from stdin against the vault file (for statements
# too long for argv, such as a 1 MiB blob literal).
sql_in() {
	sqlite3 "$VAULT"
}

# vault_files: every file under $LATCH_HOME (vault.db, any -journal, ...).
vault_files() {
	find "$LATCH_HOME" -type f 2>/dev/null
}

# vault_sha: sha256 of the vault file.
vault_sha() {
	sha256sum "$VAULT" | cut -d' ' -f1
}

# flip_blob TABLE COLUMN WHERE INDEX [MASK]: XOR the byte at INDEX (from 0;
# negative counts from the end) of a column with MASK (default 0x01),
# rewriting the whole value as an X'..' literal through the sqlite3 CLI (so
# it is a BLOB, as record and mac are). Fails unless exactly that byte
# changed.
flip_blob() {
	local table=$1 col=$2 where=$3 pos=$4 mask=${5:-1} hex n b nb want
	hex=$(sqlite3 "$VAULT" "SELECT hex($col) FROM $table WHERE $where")
	if [ -z "$hex" ]; then
		echo "flip_blob: no $table.$col where $where" >&2
		return 1
	fi
	n=$((${#hex} / 2))
	[ "$pos" -lt 0 ] && pos=$((n + pos))
	if [ "$pos" -lt 0 ] || [ "$pos" -ge "$n" ]; then
		echo "flip_blob: index $4 outside $n bytes" >&2
		return 1
	fi
	b=${hex:$((2 * pos)):2}
	nb=$(printf '%02X' $((0x$b ^ mask)))
	want=${hex:0:$((2 * pos))}$nb${hex:$((2 * pos + 2))}
	sql_in <<<"UPDATE $table SET $col = X'$want' WHERE $where;"
	[ "$want" != "$hex" ] && [ "$(sqlite3 "$VAULT" "SELECT hex($col) FROM $table WHERE $where")" = "$want" ]
}

# ---------------------------------------------------------------------------
# Background processes, mounts and directories: bg_cleanup stops, unmounts
# and removes them. A process is remembered with its start time, so a later
# process that reuses its pid is left alone.

# proc_starttime PID: the process's start time (field 22 of
# /proc/PID/stat), which tells a process from a later one that reuses its
# pid.
proc_starttime() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	set -- $stat
	echo "${20}"
}

# proc_gone PID: the process no longer runs (absent, or a zombie).
proc_gone() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[ "${stat:0:1}" = Z ]
}

# wait_gone PID [TENTHS]: bounded wait (default 10 s) until PID is gone.
wait_gone() {
	local i
	for ((i = 0; i < ${2:-100}; i++)); do
		proc_gone "$1" && return 0
		sleep 0.1
	done
	proc_gone "$1"
}

# wait_file FILE [PID]: bounded wait (10 s) until FILE exists; with PID,
# give up early once that process is gone (it will not write FILE now).
wait_file() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -e "$1" ] && return 0
		[ -n "${2:-}" ] && proc_gone "$2" && break
		sleep 0.1
	done
	[ -e "$1" ] || { echo "$1 never appeared" >&2; return 1; }
}

# stop_pid PID: TERM, then KILL; waits until it is gone and reaps it if it
# is our child.
stop_pid() {
	proc_gone "$1" && { wait "$1" 2>/dev/null || true; return 0; }
	kill -TERM "$1" 2>/dev/null || true
	if ! wait_gone "$1" 50; then
		kill -KILL "$1" 2>/dev/null || true
		wait_gone "$1" 50 || echo "stop_pid: process $1 survived SIGKILL" >&2
	fi
	wait "$1" 2>/dev/null || true
}

# bg_track PID: stop this process in bg_cleanup (if it still is the same
# process by then). A process already gone needs no tracking.
bg_track() {
	local st
	st=$(proc_starttime "$1") || return 0
	echo "$1 $st" >>"$BATS_TEST_TMPDIR/bg.pids"
}

# track_lock FILE: a broker lock file outside the runtime directories
# br_runtime made (the /tmp/latch-UID fallback); its broker is stopped too.
track_lock() {
	echo "$1" >>"$BATS_TEST_TMPDIR/bg.locks"
}

# track_mount DIR: a mount point, unmounted in bg_cleanup.
track_mount() {
	echo "$1" >>"$BATS_TEST_TMPDIR/bg.mounts"
}

# track_dir PATH: a directory (or file) under /tmp outside
# $BATS_TEST_TMPDIR, removed in bg_cleanup after every process is stopped
# and every mount undone. Nothing outside /tmp is ever removed.
track_dir() {
	echo "$1" >>"$BATS_TEST_TMPDIR/bg.dirs"
}

# bg_cleanup: close the write end of au_lock_hold's fifo, stop every
# tracked process and every broker whose lock file this test may have
# caused (br_lock_files), unmount, remove the tracked directories. Safe to
# call more than once.
bg_cleanup() {
	local p st f m d
	if [ -f "$BATS_TEST_TMPDIR/lock.fd" ]; then
		f=$(<"$BATS_TEST_TMPDIR/lock.fd")
		eval "exec $f>&-" 2>/dev/null || true
		rm -f "$BATS_TEST_TMPDIR/lock.fd"
	fi
	if [ -f "$BATS_TEST_TMPDIR/bg.pids" ]; then
		while read -r p st; do
			[ "$(proc_starttime "$p")" = "$st" ] && stop_pid "$p"
		done <"$BATS_TEST_TMPDIR/bg.pids"
		rm -f "$BATS_TEST_TMPDIR/bg.pids"
	fi
	for f in $(br_lock_files); do
		p=$(cat "$f" 2>/dev/null)
		if br_is_broker "$p"; then
			stop_pid "$p"
		fi
	done
	if [ -f "$BATS_TEST_TMPDIR/bg.mounts" ]; then
		while read -r m; do
			if mountpoint -q "$m" 2>/dev/null; then
				umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
					echo "bg_cleanup: cannot unmount $m" >&2
			fi
		done <"$BATS_TEST_TMPDIR/bg.mounts"
		rm -f "$BATS_TEST_TMPDIR/bg.mounts"
	fi
	if [ -f "$BATS_TEST_TMPDIR/bg.dirs" ]; then
		while read -r d; do
			case $d in /tmp/?*) rm -rf -- "$d" ;; esac
		done <"$BATS_TEST_TMPDIR/bg.dirs"
		rm -f "$BATS_TEST_TMPDIR/bg.dirs"
	fi
	return 0
}

# ---------------------------------------------------------------------------
# The audit log

# au_parse: read `latch audit --json` output on stdin; fail unless it is a
# JSON array of objects; print one line per record: "SEQ EVENT SECRETS"
# with SECRETS comma-separated, or "-" when the record names none.
au_parse() {
	"$PY" -c '
import json, sys
try:
    recs = json.load(sys.stdin)
except ValueError as e:
    sys.exit("audit --json output is not JSON: %s" % e)
if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
    sys.exit("audit --json output is not an array of objects")
for r in recs:
    print(r["seq"], r["event"], ",".join(r.get("secrets", [])) or "-")
'
}

# au_records [FILTER]...: the records `latch audit --json FILTER...` lists,
# as au_parse lines, in AU_RECS (fails the test unless latch exits 0 with
# valid JSON and nothing on stderr). AU_SEQS: the seqs, space separated.
au_records() {
	lx audit --json "$@" </dev/null || return 1
	want_status 0 || return 1
	[ ! -s "$LX_ERR" ] || { echo "latch audit --json $* wrote to stderr: $err" >&2; return 1; }
	AU_RECS=$(au_parse <"$LX_OUT") || { echo "from: latch audit --json $*" >&2; return 1; }
	AU_SEQS=$(printf '%s\n' "$AU_RECS" | awk 'NF {printf "%s%s", sep, $1; sep=" "}')
}

# au_want_seqs "SEQ..." [FILTER]...: latch audit --json FILTER... lists
# exactly these records, in this order.
au_want_seqs() {
	local want=$1
	shift
	au_records "$@" || return 1
	if [ "$AU_SEQS" != "$want" ]; then
		echo "latch audit --json $*: expected seqs [$want], got [$AU_SEQS]:" >&2
		printf '%s\n' "$AU_RECS" >&2
		return 1
	fi
}

# au_count: the number of rows in audit_log, read with sqlite3 (independent
# of latch's own query code).
au_count() {
	sqlite3 "$VAULT" "SELECT count(*) FROM audit_log"
}

# au_want_new_record EVENT SECRETS BEFORE: the log has exactly one record
# more than BEFORE (raw row count and `latch audit --json`), and the newest
# is EVENT naming SECRETS ("-" for none), with seq BEFORE+1.
au_want_new_record() {
	local event=$1 secrets=$2 before=$3 n last
	n=$(au_count)
	if [ "$n" -ne $((before + 1)) ]; then
		echo "expected $((before + 1)) audit rows after $event, found $n" >&2
		return 1
	fi
	au_records || return 1
	last=$(printf '%s\n' "$AU_RECS" | tail -n 1)
	if [ "$(printf '%s\n' "$AU_RECS" | grep -c .)" -ne "$n" ] || [ "$last" != "$n $event $secrets" ]; then
		echo "expected the newest record to be '$n $event $secrets'; latch audit --json lists:" >&2
		printf '%s\n' "$AU_RECS" >&2
		return 1
	fi
}

# au_no_record_for NAME: no record names NAME, by latch's query and by the
# raw index table.
au_no_record_for() {
	au_records --secret "$1" || return 1
	if [ -n "$AU_SEQS" ]; then
		echo "expected no audit record naming '$1', found: $AU_RECS" >&2
		return 1
	fi
	local raw
	raw=$(sqlite3 "$VAULT" "SELECT count(*) FROM audit_secret WHERE secret = '$1'")
	[ "$raw" -eq 0 ] || { echo "audit_secret has $raw rows naming '$1'" >&2; return 1; }
	raw=$(sqlite3 "$VAULT" "SELECT count(*) FROM audit_log WHERE instr(CAST(record AS TEXT), '\"$1\"') > 0")
	[ "$raw" -eq 0 ] || { echo "$raw audit records mention '$1'" >&2; return 1; }
}

# au_has_secret NAME: the secrets table holds NAME (read with sqlite3).
au_has_secret() {
	[ "$(sqlite3 "$VAULT" "SELECT count(*) FROM secrets WHERE name = '$1'")" -eq 1 ]
}

# ---------------------------------------------------------------------------
# Verification

# au_verify [ARG]...: latch audit verify ARG... with the passphrase on fd 3.
au_verify() {
	lxp audit verify "$@" </dev/null
}

# au_want_verified [ARG]...: verify exits 0 and says so.
au_want_verified() {
	au_verify "$@" || return 1
	want_status 0 || return 1
	[[ "$out" == "audit log verified: "* ]] || { echo "unexpected verify output: $out" >&2; return 1; }
	[ ! -s "$LX_ERR" ] || { echo "verify wrote to stderr: $err" >&2; return 1; }
}

# au_want_tampered SEQ [ARG]...: verify exits 1, stdout is empty and stderr
# is one line naming SEQ as the first bad record.
au_want_tampered() {
	local seq=$1
	shift
	au_verify "$@" || return 1
	want_status 1 || return 1
	[ ! -s "$LX_OUT" ] || { echo "verify wrote to stdout: $out" >&2; return 1; }
	want_err_line "tampered" "first bad record $seq:" || return 1
}

# au_want_tampered_json SEQ [ARG]...: au_want_tampered, then the same with
# --json: exit 1, verdict "tampered" and first_bad_seq SEQ on stdout.
au_want_tampered_json() {
	local seq=$1
	au_want_tampered "$@" || return 1
	shift
	au_verify --json "$@" || return 1
	want_status 1 || return 1
	"$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["verdict"] == "tampered", d
assert d["first_bad_seq"] == int(sys.argv[2]), d
' "$out" "$seq" || { echo "verify --json said: $out" >&2; return 1; }
}

# au_want_unverifiable [ARG]...: verify exits 3 with one line on stderr.
au_want_unverifiable() {
	au_verify "$@" || return 1
	want_status 3 || return 1
	want_err_line "unverifiable" || return 1
}

# au_checkpoint FILE: latch audit checkpoint > FILE (must exit 0).
au_checkpoint() {
	"$LATCH" audit checkpoint </dev/null >"$1" || { echo "latch audit checkpoint failed" >&2; return 1; }
	[ -s "$1" ]
}

# au_build_template: build, once per file (call it from setup_file), a vault
# with 8 records in $BATS_FILE_TMPDIR/template:
#   1 init, 2 set a, 3 set b, 4 set c, 5 set a, 6 rm b, 7 set d, 8 set e
au_build_template() {
	(
		export HOME=$BATS_FILE_TMPDIR/template-home
		export LATCH_HOME=$BATS_FILE_TMPDIR/template
		unset XDG_DATA_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR
		VAULT=$LATCH_HOME/vault.db
		mkdir -p "$HOME"
		cd "$HOME"
		init_vault
		set_secret a "value-a-1"
		set_secret b "value-b-1"
		set_secret c "value-c-1"
		set_secret a "value-a-2"
		latch_p rm b >/dev/null
		set_secret d "value-d-1"
		set_secret e "value-e-1"
		[ "$(au_count)" -eq 8 ]
	)
}

# au_build_log: this test's vault is a copy of the template (see above).
au_build_log() {
	[ -f "$BATS_FILE_TMPDIR/template/vault.db" ] || { echo "au_build_log: no template" >&2; return 1; }
	rm -rf "$LATCH_HOME"
	mkdir -p "$(dirname "$LATCH_HOME")"
	cp -a "$BATS_FILE_TMPDIR/template" "$LATCH_HOME"
	[ "$(au_count)" -eq 8 ]
}


# au_lock_hold: start the sqlite3 CLI on the vault, reading statements from
# a fifo, and make it take the write lock (BEGIN IMMEDIATE). Returns once a
# second connection sees the vault locked (bounded wait; fails otherwise).
# AU_LOCK_PID is the holder, AU_LOCK_FD the fifo's write end.
au_lock_hold() {
	local fifo=$BATS_TEST_TMPDIR/au.lock.fifo held=$BATS_TEST_TMPDIR/au.lock.held i
	rm -f "$fifo" "$held"
	mkfifo "$fifo"
	sqlite3 "$VAULT" <"$fifo" >"$BATS_TEST_TMPDIR/au.lock.log" 2>&1 &
	AU_LOCK_PID=$!
	bg_track "$AU_LOCK_PID"
	exec {AU_LOCK_FD}>"$fifo"
	echo "$AU_LOCK_FD" >"$BATS_TEST_TMPDIR/lock.fd"
	printf 'BEGIN IMMEDIATE;\n.system touch %s\n' "$held" >&"$AU_LOCK_FD"
	for i in $(seq 1 200); do
		[ -e "$held" ] && break
		sleep 0.05
	done
	[ -e "$held" ] || { echo "au_lock_hold: sqlite3 never took the lock" >&2; return 1; }
	# Another connection must now find the vault locked for writing.
	if sqlite3 -cmd '.timeout 0' "$VAULT" 'BEGIN IMMEDIATE; ROLLBACK;' >/dev/null 2>&1; then
		echo "au_lock_hold: the vault is not locked" >&2
		return 1
	fi
}

# au_lock_release: roll back, close the fifo and reap the holder.
au_lock_release() {
	printf 'ROLLBACK;\n' >&"$AU_LOCK_FD" 2>/dev/null || true
	exec {AU_LOCK_FD}>&-
	rm -f "$BATS_TEST_TMPDIR/lock.fd"
	wait "$AU_LOCK_PID" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# The broker
#
# A broker test gets its own XDG_RUNTIME_DIR (so its own broker) under
# $BATS_TEST_TMPDIR, mode 0700; bg_cleanup stops every broker whose lock
# file lies in a runtime directory the test used (read from the lock,
# checked to be a running `latch broker`, then TERM, KILL, and waited for
# until it is gone).

# br_setup: the broker suites' set-up: home_setup, a private runtime
# directory, a small LATCH_BROKER_IDLE (BR_IDLE, default 10 s), a vault
# holding the secret `canary` = $CANARY. BR_CANARY_SHA: its sha256, for
# children that check the value they got without ever printing it.
br_setup() {
	home_setup
	export LATCH_BROKER_IDLE=${BR_IDLE:-10}
	br_runtime "$BATS_TEST_TMPDIR/rt"
	BR_CANARY_SHA=$(printf '%s' "$CANARY" | sha256sum | cut -d' ' -f1)
	init_vault
	set_secret canary "$CANARY"
}

# br_runtime DIR: use DIR (created 0700) as XDG_RUNTIME_DIR; its brokers
# are stopped in bg_cleanup.
br_runtime() {
	mkdir -p "$1"
	chmod 0700 "$1"
	export XDG_RUNTIME_DIR=$1
	echo "$1/latch" >>"$BATS_TEST_TMPDIR/bg.lockdirs"
}

# br_is_broker PID: PID runs `latch broker` (as a broker: `latch broker
# --enrol-fd 3 ...`).
br_is_broker() {
	[[ "$1" =~ ^[0-9]+$ ]] || return 1
	proc_gone "$1" && return 1
	[[ "$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" == "latch broker "* ]]
}

# br_lock_files: every broker lock file this test may have caused (in a
# br_runtime directory, or passed to track_lock).
br_lock_files() {
	local d f
	if [ -f "$BATS_TEST_TMPDIR/bg.lockdirs" ]; then
		while read -r d; do
			for f in "$d"/broker-*.lock; do
				[ -f "$f" ] && echo "$f"
			done
		done <"$BATS_TEST_TMPDIR/bg.lockdirs"
	fi
	if [ -f "$BATS_TEST_TMPDIR/bg.locks" ]; then
		while read -r f; do
			[ -f "$f" ] && echo "$f"
		done <"$BATS_TEST_TMPDIR/bg.locks"
	fi
	return 0
}

# br_grant ARGS...: `latch grant ARGS` with the passphrase on fd 3 and no
# stdin; must succeed. BR_GRANT: the new grant's id.
br_grant() {
	lx grant "$@" --passphrase-fd 3 3<<<"$PASS" </dev/null || return 1
	want_status 0 || return 1
	BR_GRANT=$(grep -o 'grant g-[0-9a-f]*$' <<<"$out" | cut -d' ' -f2)
	[ -n "$BR_GRANT" ] || { echo "no grant id in: $out" >&2; return 1; }
}

# br_check_canary: a `sh -c` script for a child: exits 0 when $X holds
# exactly the canary (compared by sha256, so the value is never printed or
# put in argv), 9 otherwise. Use: br_run ... -- sh -c "$(br_check_canary)".
br_check_canary() {
	printf '[ "$(printf %%s "$X" | sha256sum | cut -d" " -f1)" = %s ] || exit 9' "$BR_CANARY_SHA"
}

# br_real CMD: the real path of a command found along PATH.
br_real() {
	readlink -f "$(command -v "$1")"
}

# ---------------------------------------------------------------------------
# The running broker: its lock, socket, requests, audit records, memory

# br_lock: the lock file of this test's daemon (exactly one).
br_lock() {
	local locks=("$XDG_RUNTIME_DIR"/latch/broker-*.lock)
	if [ ${#locks[@]} -ne 1 ] || [ ! -f "${locks[0]}" ]; then
		echo "expected one broker lock file in $XDG_RUNTIME_DIR/latch, got: ${locks[*]}" >&2
		return 1
	fi
	echo "${locks[0]}"
}

# br_broker_pid: the pid of this test's running daemon.
br_broker_pid() {
	local lock pid
	lock=$(br_lock) || return 1
	pid=$(cat "$lock")
	if ! br_is_broker "$pid"; then
		echo "pid '$pid' in $lock is not a running latch broker" >&2
		return 1
	fi
	echo "$pid"
}

# br_sock: this test's daemon socket.
br_sock() {
	local s=("$XDG_RUNTIME_DIR"/latch/broker-*.sock)
	if [ ${#s[@]} -ne 1 ] || [ ! -S "${s[0]}" ]; then
		echo "expected one broker socket in $XDG_RUNTIME_DIR/latch, got: ${s[*]}" >&2
		return 1
	fi
	echo "${s[0]}"
}

# br_call SOCKET JSON: send one request line, print the raw reply line
# (nothing if the daemon closed the connection without answering).
br_call() {
	"$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
data = b""
while not data.endswith(b"\n"):
    c = s.recv(65536)
    if not c:
        break
    data += c
sys.stdout.buffer.write(data)
' "$@"
}

# br_deadline GRANT_ID: the grant's deadline (unix seconds) from
# `latch grants --json`.
br_deadline() {
	"$LATCH" grants --json </dev/null | "$PY" -c '
import json, sys
g = [x for x in json.load(sys.stdin) if x["grant"] == sys.argv[1]]
assert len(g) == 1, "grant %s not listed" % sys.argv[1]
print(g[0]["deadline"])
' "$1"
}

# br_wait_past DEADLINE: bounded wait until the clock is past DEADLINE
# (unix seconds); at most 30 s.
br_wait_past() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(date +%s)" -gt "$1" ] && return 0
		sleep 0.1
	done
	echo "the clock did not pass $1" >&2
	return 1
}

# br_audit PYTHON [FILTER]... [-- ARG...]: run `latch audit --json
# FILTER...` (must succeed), then PYTHON with the parsed records in `r` and
# the ARGs in sys.argv[2:]; a failed assert fails the test.
br_audit() {
	local script=$1 filters=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		filters+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	lx audit --json "${filters[@]}" </dev/null || return 1
	want_status 0 || return 1
	"$PY" -c "import json, sys
r = json.loads(sys.argv[1])
$script" "$out" "$@"
}

# br_forms_file VALUE: a file listing value_forms(VALUE), one per line.
br_forms_file() {
	local f
	f=$(mktemp "$BATS_TEST_TMPDIR/forms.XXXXXX")
	printf '%s' "$1" | value_forms >"$f"
	echo "$f"
}

# br_memscan PID FORMS_FILE: read every readable region of PID's memory
# (/proc/PID/maps and /proc/PID/mem; needs root for a non-dumpable process)
# and print a JSON object: "found" (the forms that occur), "scanned"
# (bytes read), "regions" (regions read). Regions over 1 GiB are skipped:
# they are ASan's shadow and reserved address space, which hold no data.
br_memscan() {
	"$PY" -c '
import json, sys
pid, forms = int(sys.argv[1]), [l for l in open(sys.argv[2], "rb").read().split(b"\n") if l]
keep = max(len(f) for f in forms) - 1
found, scanned, regions = set(), 0, 0
with open("/proc/%d/maps" % pid) as m:
    maps = m.read().splitlines()
with open("/proc/%d/mem" % pid, "rb", 0) as mem:
    for line in maps:
        parts = line.split(None, 5)
        if parts[1][0] != "r":
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if hi - lo > (1 << 30):
            continue
        off, tail, got = lo, b"", False
        while off < hi:
            n = min(1 << 20, hi - off)
            try:
                mem.seek(off)
                chunk = mem.read(n)
            except OSError:
                break
            if not chunk:
                break
            got = True
            buf = tail + chunk
            for f in forms:
                if f in buf:
                    found.add(f.decode("latin-1"))
            tail = buf[-keep:] if keep else b""
            scanned += len(chunk)
            off += len(chunk)
        regions += got
print(json.dumps({"found": sorted(found), "scanned": scanned, "regions": regions}))
' "$@"
}

# br_scan_files FORMS_SOURCE_VALUE: no file under the vault directory, the
# runtime directory or /tmp/latch-UID (the fallback of older releases)
# yields the value (raw, hex or base64).
# A daemon may still be writing (a queued exit record: the vault's journal
# comes and goes) and /tmp/latch-UID is shared, so each file found is copied
# and the copies are scanned: one gone before its copy is skipped (found
# by find, its path is no typo); one there but unreadable fails.
br_scan_files() {
	local files=() copies=() f snap
	snap=$(mktemp -d "$BATS_TEST_TMPDIR/scan.XXXXXX")
	mapfile -t files < <(find "$LATCH_HOME" "${XDG_RUNTIME_DIR:-$LATCH_HOME}" /tmp/latch-[0-9]* -type f 2>/dev/null)
	[ ${#files[@]} -gt 0 ] || { echo "br_scan_files: no files found to scan" >&2; return 1; }
	for f in "${files[@]}"; do
		mkdir -p "$snap${f%/*}"
		if cp -- "$f" "$snap$f" 2>/dev/null; then
			copies+=("$snap$f")
		elif [ -e "$f" ]; then
			echo "br_scan_files: cannot copy $f" >&2
			return 1
		fi
	done
	[ ${#copies[@]} -gt 0 ] || { echo "br_scan_files: every file found was gone" >&2; return 1; }
	assert_absent "$1" "${copies[@]}"
}

# ---------------------------------------------------------------------------
# Another user (needs root)

# br_u65534: a scenario for uid 65534: BR_U, a 0700 directory it owns
# under /tmp (HOME; the vault in $BR_U/vault) and a vault there holding
# `canary`; no XDG_RUNTIME_DIR, so its daemon uses $BR_U/vault/run
# (BR_U_RT). BR_U_HASH names that vault's daemon files there
# (broker-HASH.sock/.lock); the daemon is stopped and the directories are
# removed in teardown.
br_u65534() {
	BR_U=$(mktemp -d /tmp/br-u65534.XXXXXX)
	track_dir "$BR_U"
	chown 65534:65534 "$BR_U"
	chmod 0700 "$BR_U"
	BR_U_RT=$BR_U/vault/run
	BR_U_HASH=$("$PY" -c 'import hashlib, sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=8).hexdigest())' \
		"$(readlink -f "$BR_U")/vault")
	track_lock "$BR_U_RT/broker-$BR_U_HASH.lock"
	br_as 65534 "$LATCH" init --kdf interactive --passphrase-fd 3 3<<<"$PASS" </dev/null >/dev/null
	printf '%s' "$CANARY" | br_as 65534 "$LATCH" set canary --file - --passphrase-fd 3 3<<<"$PASS" >/dev/null
}

# br_as UID CMD...: run CMD as UID (groups cleared), with HOME and the vault
# of br_u65534 and no XDG_RUNTIME_DIR.
br_as() {
	local id=$1
	shift
	setpriv --reuid="$id" --regid="$id" --clear-groups \
		env -u XDG_RUNTIME_DIR HOME="$BR_U" LATCH_HOME="$BR_U/vault" LATCH_BROKER_IDLE=60 "$@"
}

# ---------------------------------------------------------------------------
# A script posing as latch

# br_handoff SOCKET OUT REQUEST...: a script connects to SOCKET once per
# REQUEST (a JSON line), forks a helper holding those connections, and
# execs latch in the connecting process (a `latch run` with no reference
# that waits for the helper). The helper, once its parent is latch, sends
# each REQUEST on its own connection and writes the replies, one line each
# (an empty line when the daemon answered nothing), to OUT; a "run"
# request goes with /dev/null as its stdio and / as its directory. So the daemon
# sees latch as its peer while a script writes the requests and reads the
# answers. Returns when OUT is complete (bounded: 30 s).
br_handoff() {
	local sock=$1 outf=$2 script=$BATS_TEST_TMPDIR/handoff.py rc=0 i
	shift 2
	cat >"$script" <<'PYEOF'
import json, os, socket, sys, time
sock, latch, out, pidfile = sys.argv[1:5]
reqs = sys.argv[5:]
stop = out + ".stop"
conns = []
for _ in reqs:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.set_inheritable(True)
    conns.append(s)
child = os.fork()
if child == 0:
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    replies = []
    try:
        parent = os.getppid()
        for _ in range(1000):
            try:
                if os.readlink("/proc/%d/exe" % parent) == os.path.realpath(latch):
                    break
            except OSError:
                pass
            time.sleep(0.01)
        for s, req in zip(conns, reqs):
            s.settimeout(20)
            if json.loads(req).get("op") == "run":
                # A run brings stdin, stdout, stderr and a directory.
                fds = [os.open("/dev/null", os.O_RDWR)] * 3 + [os.open("/", os.O_PATH)]
                socket.send_fds(s, [req.encode() + b"\n"], fds)
            else:
                s.sendall(req.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                c = s.recv(65536)
                if not c:
                    break
                data += c
            replies.append(data.strip(b"\n"))
    finally:
        with open(out + ".tmp", "wb") as f:
            f.write(b"".join(r + b"\n" for r in replies))
        os.rename(out + ".tmp", out)
        open(stop, "w").close()
    os._exit(0)
for s in conns:
    s.close()  # the helper holds them
os.execv(latch, ["latch", "run", "--", "/bin/sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.02; done', stop])
PYEOF
	rm -f "$outf" "$outf.pid"
	setsid -w "$PY" "$script" "$sock" "$LATCH" "$outf" "$outf.pid" "$@" </dev/null \
		>"$outf.stdout" 2>"$outf.stderr" &
	local bg=$!
	bg_track "$bg"
	for ((i = 0; i < 300; i++)); do
		[ -s "$outf.pid" ] && break
		proc_gone "$bg" && break
		sleep 0.1
	done
	[ -s "$outf.pid" ] && bg_track "$(cat "$outf.pid")"
	for ((i = 0; i < 300; i++)); do
		[ -e "$outf" ] && break
		proc_gone "$bg" && break
		sleep 0.1
	done
	wait "$bg" || rc=$?
	[ -e "$outf" ] || { echo "br_handoff: no replies: $(cat "$outf.stderr")" >&2; return 1; }
	[ "$rc" -eq 0 ] || { echo "br_handoff: latch exited $rc: $(cat "$outf.stderr")" >&2; return 1; }
}

# ---------------------------------------------------------------------------
# Federation (fed_*)
#
# A real token server on 127.0.0.1 (tests/fed/tokenserver.py: the
# jwt-bearer exchange checked field by field, signatures verified against a
# JWKS, a jti accepted once, scripted faults) and test JWTs from
# tests/fed/jwt.py. Keys and certificates are made once per file
# (fed_keys, from setup_file) in $BATS_FILE_TMPDIR/fedkeys: rsa.pem (kid
# rsa1, also the issuer key for the GitHub and GCP endpoints), ec.pem (kid
# ec1), rogue.pem (an EC key outside the JWKS), jwks.json, ca.pem/ca.key,
# server.pem/server.key (signed by that CA, for 127.0.0.1) and
# self.pem/self.key (self-signed).

FED_TOOLS=$BATS_TEST_DIRNAME/../fed

# fed_setup: the federation suites' set-up: home_setup, a private runtime
# directory (the token cache is $XDG_RUNTIME_DIR/latch/fed), and none of
# the variables that choose a model credential or an identity token
# inherited from whoever runs the tests.
fed_setup() {
	home_setup
	br_runtime "$BATS_TEST_TMPDIR/rt"
	unset ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN ANTHROPIC_BASE_URL ANTHROPIC_PROFILE ANTHROPIC_CONFIG_DIR \
		ANTHROPIC_FEDERATION_RULE_ID ANTHROPIC_ORGANIZATION_ID ANTHROPIC_SERVICE_ACCOUNT_ID \
		ANTHROPIC_WORKSPACE_ID ANTHROPIC_SCOPE ANTHROPIC_IDENTITY_TOKEN ANTHROPIC_IDENTITY_TOKEN_FILE \
		ACTIONS_ID_TOKEN_REQUEST_URL ACTIONS_ID_TOKEN_REQUEST_TOKEN LATCH_FED_PROFILE
}

# fed_keys: make the keys, the JWKS and the TLS material (see above), once
# per file; later calls do nothing. RSA key generation is the slow part.
fed_keys() {
	local k=$BATS_FILE_TMPDIR/fedkeys
	[ -f "$k/done" ] && return 0
	rm -rf "$k"
	mkdir -p "$k"
	(
		set -e
		cd "$k"
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out rogue.pem 2>/dev/null
		"$PY" "$FED_TOOLS/jwt.py" jwks rsa.pem:rsa1 ec.pem:ec1 >jwks.json
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=latch-test-ca \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
			-days 1 -keyout ca.key -out ca.pem 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
			-keyout server.key -out server.csr 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
			-extfile server.ext -out server.pem 2>/dev/null
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
			-addext subjectAltName=IP:127.0.0.1 -days 1 -keyout self.key -out self.pem 2>/dev/null
		touch done
	) || { echo "fed_keys: cannot make the keys in $k" >&2; return 1; }
}

# fed_server [--tls | --tls-self] [--bind ADDR]: start a token server
# (HTTPS with a certificate from the test CA, or self-signed) in
# FED_DIR=$BATS_TEST_TMPDIR/fedsrv, stopped in bg_cleanup. Its expect.json
# asks for the rule, organization and service account fed_profile writes.
# Exports FED_DIR, FED_PID, FED_PORT and FED_URL (http(s)://127.0.0.1:PORT).
fed_server() {
	local k=$BATS_FILE_TMPDIR/fedkeys tls=() scheme=http bind=127.0.0.1
	fed_keys || return 1
	while [ $# -gt 0 ]; do
		case $1 in
		--tls) tls=(--tls "$k/server.pem" "$k/server.key") scheme=https ;;
		--tls-self) tls=(--tls "$k/self.pem" "$k/self.key") scheme=https ;;
		--bind) bind=$2 && shift ;;
		*) echo "fed_server: unknown option $1" >&2; return 1 ;;
		esac
		shift
	done
	FED_DIR=$BATS_TEST_TMPDIR/fedsrv
	rm -rf "$FED_DIR"
	mkdir -p "$FED_DIR"
	printf '{"federation_rule_id":"fdrl_test","organization_id":"org_test","service_account_id":"svac_test"}\n' \
		>"$FED_DIR/expect.json"
	"$PY" "$FED_TOOLS/tokenserver.py" --dir "$FED_DIR" --jwks "$k/jwks.json" --bind "$bind" \
		--issuer-key "$k/rsa.pem" --issuer-kid rsa1 ${tls[@]+"${tls[@]}"} \
		</dev/null >"$FED_DIR/server.out" 2>"$FED_DIR/server.err" 3>&- &
	FED_PID=$!
	bg_track "$FED_PID"
	wait_file "$FED_DIR/port" "$FED_PID" || { cat "$FED_DIR/server.err" >&2; return 1; }
	FED_PORT=$(<"$FED_DIR/port")
	FED_URL=$scheme://127.0.0.1:$FED_PORT
	export FED_DIR FED_PID FED_PORT FED_URL
}

# fed_server_ok: the server still runs and has written nothing to stderr
# (a crash in it must not pass for latch refusing something).
fed_server_ok() {
	if proc_gone "$FED_PID" || [ -s "$FED_DIR/server.err" ]; then
		echo "the token server died or complained:" >&2
		cat "$FED_DIR/server.err" >&2
		return 1
	fi
}

# fed_expect JQ: edit the server's expect.json with a jq filter, e.g.
# '.service_account_id = null' (the member must be absent) or
# '.iss = "https://token.actions.githubusercontent.com"'.
fed_expect() {
	jq "$1" "$FED_DIR/expect.json" >"$FED_DIR/expect.json.tmp" &&
		mv "$FED_DIR/expect.json.tmp" "$FED_DIR/expect.json"
}

# fed_jwt [jwt.py sign ARGS]: print a test JWT signed with the RSA key
# (kid rsa1), or with the EC key (kid ec1) given --alg ES256. Defaults:
# a random jti, exp in 600 s, aud https://api.anthropic.com, iss
# https://issuer.test.
fed_jwt() {
	local k=$BATS_FILE_TMPDIR/fedkeys key=rsa.pem kid=rsa1 a
	for a in "$@"; do
		[ "$a" = ES256 ] && key=ec.pem kid=ec1
	done
	"$PY" "$FED_TOOLS/jwt.py" sign --key "$k/$key" --kid "$kid" "$@"
}

# fed_idtoken [FILE] [-- jwt.py sign ARGS]: mint a JWT (fed_jwt) into FILE
# (default $BATS_TEST_TMPDIR/idtoken, the file fed_profile names), written
# atomically; FED_JWT is the token.
fed_idtoken() {
	local f=$BATS_TEST_TMPDIR/idtoken
	if [ $# -gt 0 ] && [ "$1" != -- ]; then
		f=$1
		shift
	fi
	[ "${1:-}" = -- ] && shift
	FED_JWT=$(fed_jwt "$@") || return 1
	printf '%s\n' "$FED_JWT" >"$f.tmp" && mv "$f.tmp" "$f"
}

# fed_profile_json NAME [JQ]...: write a profile for this test's server to
# FED_PROFILE_FILE ($BATS_TEST_TMPDIR/profile.NAME.json): base_url
# $FED_URL, rule fdrl_test, organization org_test, service account
# svac_test, the identity token from the file $BATS_TEST_TMPDIR/idtoken,
# timeout_s 5; then each JQ filter applied in turn (e.g. 'del(.base_url)',
# '.authentication.identity_token = {"source":"env"}').
fed_profile_json() {
	local name=$1 f o
	shift
	f=$BATS_TEST_TMPDIR/profile.$name.json
	jq -n --arg url "${FED_URL:-}" --arg id "$BATS_TEST_TMPDIR/idtoken" '{
		version: "1.0",
		authentication: {
			type: "oidc_federation",
			federation_rule_id: "fdrl_test",
			service_account_id: "svac_test",
			identity_token: {source: "file", path: $id}
		},
		organization_id: "org_test",
		base_url: $url,
		timeout_s: 5
	}' >"$f" || return 1
	for o in "$@"; do
		jq "$o" "$f" >"$f.tmp" || { echo "fed_profile_json: bad filter: $o" >&2; return 1; }
		mv "$f.tmp" "$f"
	done
	FED_PROFILE_FILE=$f
}

# fed_profile NAME [JQ]...: fed_profile_json, then `latch fed add NAME
# --from FILE`, which must succeed.
fed_profile() {
	fed_profile_json "$@" || return 1
	lx fed add "$1" --from "$FED_PROFILE_FILE" </dev/null || return 1
	want_status 0 || return 1
}

# fed_script LINE...: append scripted actions for the next token requests
# (tests/fed/tokenserver.py lists them).
fed_script() {
	printf '%s\n' "$@" >>"$FED_DIR/script"
}

# fed_requests: the number of POST /v1/oauth/token requests the server
# logged. Prints nothing and fails if the server died or complained.
fed_requests() {
	fed_server_ok || return 1
	[ -f "$FED_DIR/requests.jsonl" ] || { echo 0; return 0; }
	jq -s '[.[] | select(.method == "POST" and .path == "/v1/oauth/token")] | length' \
		"$FED_DIR/requests.jsonl"
}

# fed_want_requests N: exactly N token requests reached the server.
fed_want_requests() {
	local n
	n=$(fed_requests) || return 1
	if [ "$n" != "$1" ]; then
		echo "expected $1 token requests at the server, got $n:" >&2
		[ -f "$FED_DIR/requests.jsonl" ] &&
			jq -c '{method, path, verdict, action}' "$FED_DIR/requests.jsonl" >&2
		return 1
	fi
}

# fed_tokens_issued: the access tokens the server handed out, one a line.
fed_tokens_issued() {
	[ -f "$FED_DIR/issued.txt" ] && cat "$FED_DIR/issued.txt"
	return 0
}

# fed_tokens_sent: every access token the server put in an answer,
# accepted ones (issued.txt) and ones latch must refuse (bad_tokens.txt).
fed_tokens_sent() {
	cat "$FED_DIR/issued.txt" "$FED_DIR/bad_tokens.txt" 2>/dev/null
	return 0
}

# fed_reqs PYTHON [-- ARG...]: run PYTHON with `r` the list of logged
# token requests (dicts: method, path, headers, body, verdict, action, t)
# and `g` every logged request, ARGs in sys.argv[1:]; a failed assert
# fails the test.
fed_reqs() {
	local script=$1
	shift
	[ "${1:-}" = -- ] && shift
	fed_server_ok || return 1
	"$PY" -c "import json, os, sys
log = os.path.join(os.environ['FED_DIR'], 'requests.jsonl')
g = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
r = [x for x in g if x['method'] == 'POST' and x['path'] == '/v1/oauth/token']
$script" "$@"
}

# fed_jwt_claims JWT: the JWT's payload, as JSON (not verified).
fed_jwt_claims() {
	"$PY" -c '
import base64, sys
p = sys.argv[1].split(".")[1]
sys.stdout.write(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).decode() + "\n")
' "$1"
}

# fed_canary_scan STRING...: no file under $HOME or $XDG_RUNTIME_DIR, no
# output of a latch run ($BATS_TEST_TMPDIR/lx.*) and no row of the vault
# (a sqlite3 dump, audit log included) holds any STRING in any of the
# forms assert_absent looks for. The token server's own directory and the
# identity-token files, which hold them by design, are not scanned. An
# empty STRING fails (a scan for nothing must not pass).
fed_canary_scan() {
	local files=() f s bad=0 dump=$BATS_TEST_TMPDIR/fedscan.vault.sql
	[ $# -gt 0 ] || { echo "fed_canary_scan: nothing to scan for" >&2; return 1; }
	if [ -n "${VAULT:-}" ] && [ -f "$VAULT" ]; then
		sqlite3 "$VAULT" .dump >"$dump" || { echo "fed_canary_scan: cannot dump the vault" >&2; return 1; }
		files+=("$dump")
	fi
	while IFS= read -r -d '' f; do
		case $f in
		"${FED_DIR:-/nonexistent}"/* | "$BATS_TEST_TMPDIR"/idtoken*) continue ;;
		esac
		[ -f "$f" ] && files+=("$f")
	done < <(find "$HOME" ${XDG_RUNTIME_DIR:+"$XDG_RUNTIME_DIR"} -type f -print0 2>/dev/null;
		find "$BATS_TEST_TMPDIR" -maxdepth 1 -type f -name 'lx.*' -print0)
	[ ${#files[@]} -gt 0 ] || { echo "fed_canary_scan: no file to scan" >&2; return 1; }
	for s in "$@"; do
		[ -n "$s" ] || { echo "fed_canary_scan: an empty string to scan for" >&2; return 1; }
		assert_absent "$s" "${files[@]}" || bad=1
	done
	rm -f "$dump"
	return $bad
}

# ---------------------------------------------------------------------------
# An interactive shell on a pty, step by step (tests/cli/pty_shell.py)

# step VERB ARG: one more step for pty_shell.py (see its --steps), in the
# file STEPS.
step() {
	printf '%s\t%s\n' "$1" "$2" >>"$STEPS"
}

# shell_run: run the steps in an interactive bash on a pty (in all at most
# SHELL_TIMEOUT seconds, default 30); the terminal's output goes to
# TTY_LOG. The steps travel in a file: no passphrase in argv.
shell_run() {
	local rc=0
	LATCH=$LATCH /usr/bin/python3 "$BATS_TEST_DIRNAME/pty_shell.py" --timeout "${SHELL_TIMEOUT:-30}" \
		--log "$TTY_LOG" --steps "$STEPS" --sid-file "$BATS_TEST_TMPDIR/sid" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "pty_shell.py exited $rc; the terminal showed:" >&2
		cat -v "$TTY_LOG" >&2
		return 1
	fi
}
