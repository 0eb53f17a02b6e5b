# Helpers for the audit log end-to-end tests (audit.bats, audit_fail.bats).
# Load after helpers.bash: uses LATCH, PASS, CANARY, VAULT, LATCH_HOME and
# latch_p/init_vault/set_secret from there, nothing else, and defines only
# au_* names so it cannot collide with the shared helpers.
#
# Every process a test starts in the background is passed to au_track, every
# mount to au_track_mount and every directory outside $BATS_TEST_TMPDIR to
# au_track_dir; au_teardown (called from each file's teardown) kills, reaps,
# unmounts and removes them, whether the test passed or not.

AU_PY=/usr/bin/python3
AU_PTY="$BATS_TEST_DIRNAME/pty_run.py"

# ---------------------------------------------------------------------------
# Running latch

# AU_WRAP: a command prefix for au_lx (empty: run latch directly), e.g.
# setpriv arguments to run latch as another user.
AU_WRAP=()

# au_lx ARGS...: run latch, stdout and stderr to numbered files kept under
# $BATS_TEST_TMPDIR (AU_OUT, AU_ERR); sets status, out, err. Returns 1 (fails
# the test) if latch crashed: its own exit codes are 0-4, anything above is
# a signal, a sanitizer report or worse. Redirections on the call reach latch.
au_lx() {
	AU_N=$((${AU_N:-0} + 1))
	AU_OUT=$BATS_TEST_TMPDIR/au.$AU_N.out
	AU_ERR=$BATS_TEST_TMPDIR/au.$AU_N.err
	local rc=0
	"${AU_WRAP[@]}" "$LATCH" "$@" >"$AU_OUT" 2>"$AU_ERR" || rc=$?
	status=$rc
	{ out=$(<"$AU_OUT") err=$(<"$AU_ERR"); } 2>/dev/null
	if [ "$rc" -gt 4 ]; then
		echo "latch $* exited with status $rc (crash or sanitizer report); stderr:" >&2
		cat "$AU_ERR" >&2
		return 1
	fi
}

# au_lxp ARGS...: au_lx with --passphrase-fd 3 and $AU_PASS (default $PASS)
# on fd 3; stdin is /dev/null unless the caller redirects it.
au_lxp() {
	au_lx "$@" --passphrase-fd 3 3<<<"${AU_PASS:-$PASS}"
}

# au_pty ARGS...: run latch under tests/cli/pty_run.py (a pseudo-terminal
# as controlling terminal, raw mode) with the passphrase on fd 3; the bytes
# written to the terminal land in AU_TTY. Sets status, out, err like au_lx.
au_pty() {
	AU_N=$((${AU_N:-0} + 1))
	AU_OUT=$BATS_TEST_TMPDIR/au.$AU_N.out
	AU_ERR=$BATS_TEST_TMPDIR/au.$AU_N.err
	AU_TTY=$BATS_TEST_TMPDIR/au.$AU_N.tty
	local rc=0
	"$AU_PY" "$AU_PTY" --raw --timeout 30 --log "$AU_TTY" --stdin /dev/null --stdout "$AU_OUT" \
		--stderr "$AU_ERR" -- "$LATCH" "$@" --passphrase-fd 3 3<<<"${AU_PASS:-$PASS}" || rc=$?
	status=$rc
	{ out=$(<"$AU_OUT") err=$(<"$AU_ERR"); } 2>/dev/null
	if [ "$rc" -gt 4 ]; then
		echo "latch $* under a pty exited with status $rc (crash, sanitizer report or timeout):" >&2
		cat "$AU_ERR" >&2
		return 1
	fi
}

# au_need_pty: skip the test when the pty helper is missing.
au_need_pty() {
	[ -f "$AU_PTY" ] && [ -x "$AU_PY" ] ||
		skip "reveal needs a terminal and tests/cli/pty_run.py (or /usr/bin/python3) is missing"
}

# au_status N: the last au_lx/au_lxp/au_pty exited with N.
au_status() {
	if [ "$status" -ne "$1" ]; then
		echo "expected exit status $1, got $status" >&2
		echo "stdout: $out" >&2
		echo "stderr: $err" >&2
		return 1
	fi
}

# au_one_err_line [SUBSTRING]...: stderr of the last run is exactly one line
# "latch: ...\n" containing every SUBSTRING.
au_one_err_line() {
	local raw='' nl s
	IFS= read -r -d '' raw <"$AU_ERR" || true
	nl=${raw//[!$'\n']/}
	if [ "${#nl}" -ne 1 ] || [[ "$raw" != "latch: "*$'\n' ]]; then
		echo "expected exactly one line 'latch: ...' on stderr, got:" >&2
		cat "$AU_ERR" >&2
		return 1
	fi
	for s in "$@"; do
		if [[ "$err" != *"$s"* ]]; then
			echo "stderr does not mention '$s': $err" >&2
			return 1
		fi
	done
}

# ---------------------------------------------------------------------------
# Reading the log

# au_parse: read `latch audit --json` output on stdin; fail unless it is a
# JSON array of objects; print one line per record: "SEQ EVENT SECRETS"
# with SECRETS comma-separated, or "-" when the record names none.
au_parse() {
	"$AU_PY" -c '
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
	au_lx audit --json "$@" </dev/null || return 1
	au_status 0 || return 1
	[ ! -s "$AU_ERR" ] || { echo "latch audit --json $* wrote to stderr: $err" >&2; return 1; }
	AU_RECS=$(au_parse <"$AU_OUT") || { echo "from: latch audit --json $*" >&2; return 1; }
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
	au_lxp audit verify "$@" </dev/null
}

# au_want_verified [ARG]...: verify exits 0 and says so.
au_want_verified() {
	au_verify "$@" || return 1
	au_status 0 || return 1
	[[ "$out" == "audit log verified: "* ]] || { echo "unexpected verify output: $out" >&2; return 1; }
	[ ! -s "$AU_ERR" ] || { echo "verify wrote to stderr: $err" >&2; return 1; }
}

# au_want_tampered SEQ [ARG]...: verify exits 1, stdout is empty and stderr
# is one line naming SEQ as the first bad record.
au_want_tampered() {
	local seq=$1
	shift
	au_verify "$@" || return 1
	au_status 1 || return 1
	[ ! -s "$AU_OUT" ] || { echo "verify wrote to stdout: $out" >&2; return 1; }
	au_one_err_line "tampered" "first bad record $seq:" || return 1
}

# au_want_tampered_json SEQ [ARG]...: au_want_tampered, then the same with
# --json: exit 1, verdict "tampered" and first_bad_seq SEQ on stdout.
au_want_tampered_json() {
	local seq=$1
	au_want_tampered "$@" || return 1
	shift
	au_verify --json "$@" || return 1
	au_status 1 || return 1
	"$AU_PY" -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["verdict"] == "tampered", d
assert d["first_bad_seq"] == int(sys.argv[2]), d
' "$out" "$seq" || { echo "verify --json said: $out" >&2; return 1; }
}

# au_want_unverifiable [ARG]...: verify exits 3 with one line on stderr.
au_want_unverifiable() {
	au_verify "$@" || return 1
	au_status 3 || return 1
	au_one_err_line "unverifiable" || return 1
}

# au_checkpoint FILE: latch audit checkpoint > FILE (must exit 0).
au_checkpoint() {
	"$LATCH" audit checkpoint </dev/null >"$1" || { echo "latch audit checkpoint failed" >&2; return 1; }
	[ -s "$1" ]
}

# ---------------------------------------------------------------------------
# Tampering with the vault file

# au_flip TABLE COLUMN WHERE INDEX: XOR one byte (INDEX counts from 0;
# negative from the end) of a BLOB/TEXT column with 0x01, in place, with the
# sqlite3 CLI. Fails unless exactly that byte changed.
au_flip() {
	local table=$1 col=$2 where=$3 pos=$4 hex n b nb after
	hex=$(sqlite3 "$VAULT" "SELECT hex($col) FROM $table WHERE $where")
	[ -n "$hex" ] || { echo "au_flip: no $table.$col where $where" >&2; return 1; }
	n=$((${#hex} / 2))
	[ "$pos" -lt 0 ] && pos=$((n + pos))
	b=${hex:$((2 * pos)):2}
	nb=$(printf '%02X' $((0x$b ^ 1)))
	# Keep the column's storage class: record and mac are BLOBs.
	sqlite3 "$VAULT" "UPDATE $table SET $col = X'${hex:0:$((2 * pos))}$nb${hex:$((2 * pos + 2))}' WHERE $where"
	after=$(sqlite3 "$VAULT" "SELECT hex($col) FROM $table WHERE $where")
	[ "$after" = "${hex:0:$((2 * pos))}$nb${hex:$((2 * pos + 2))}" ] && [ "$after" != "$hex" ]
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

# ---------------------------------------------------------------------------
# Canaries

# au_value_forms: read a value on stdin, print the strings that would betray
# it, one per line: the raw bytes, lower/upper-case hex, and standard and
# URL-safe base64 at each of the three alignments a value can have inside a
# larger blob (only the characters that depend on the value alone).
au_value_forms() {
	"$AU_PY" -c '
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

# au_assert_absent VALUE FILE...: no form of VALUE occurs in any FILE (every
# FILE must exist: a missing file would hide a leak behind a typo).
au_assert_absent() {
	local value=$1 pats f bad=0
	shift
	pats=$BATS_TEST_TMPDIR/au.forms
	printf '%s' "$value" | au_value_forms >"$pats"
	[ "$(grep -c . "$pats")" -ge 6 ] || { echo "au_assert_absent: forms not computed" >&2; return 1; }
	for f in "$@"; do
		[ -f "$f" ] || { echo "au_assert_absent: no file $f" >&2; return 1; }
		if grep -qaF -f "$pats" -- "$f"; then
			echo "the value (or an encoding of it) occurs in $f:" >&2
			grep -oaF -f "$pats" -- "$f" | head -3 >&2
			bad=1
		fi
	done
	return $bad
}

# ---------------------------------------------------------------------------
# Background processes, locks, mounts: always cleaned up by au_teardown

au_track() {
	echo "$1" >>"$BATS_TEST_TMPDIR/au.pids"
}
au_track_mount() {
	echo "$1" >>"$BATS_TEST_TMPDIR/au.mounts"
}
au_track_dir() {
	echo "$1" >>"$BATS_TEST_TMPDIR/au.dirs"
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
	au_track "$AU_LOCK_PID"
	exec {AU_LOCK_FD}>"$fifo"
	echo "$AU_LOCK_FD" >"$BATS_TEST_TMPDIR/au.lockfd"
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
	rm -f "$BATS_TEST_TMPDIR/au.lockfd"
	wait "$AU_LOCK_PID" 2>/dev/null || true
}

au_teardown() {
	local p fd m d
	if [ -f "$BATS_TEST_TMPDIR/au.lockfd" ]; then
		fd=$(<"$BATS_TEST_TMPDIR/au.lockfd")
		eval "exec $fd>&-" 2>/dev/null || true
		rm -f "$BATS_TEST_TMPDIR/au.lockfd"
	fi
	if [ -f "$BATS_TEST_TMPDIR/au.pids" ]; then
		while read -r p; do
			# Only our own children: a reaped PID may have been reused.
			if [ "$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)" = "$BASHPID" ] ||
				[ "$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)" = "$$" ]; then
				kill -9 "$p" 2>/dev/null || true
			fi
			wait "$p" 2>/dev/null || true
		done <"$BATS_TEST_TMPDIR/au.pids"
		rm -f "$BATS_TEST_TMPDIR/au.pids"
	fi
	if [ -f "$BATS_TEST_TMPDIR/au.mounts" ]; then
		while read -r m; do
			if mountpoint -q "$m" 2>/dev/null; then
				umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
					echo "au_teardown: cannot unmount $m" >&2
			fi
		done <"$BATS_TEST_TMPDIR/au.mounts"
		rm -f "$BATS_TEST_TMPDIR/au.mounts"
	fi
	if [ -f "$BATS_TEST_TMPDIR/au.dirs" ]; then
		while read -r d; do
			case $d in /tmp/latch-audit-*) rm -rf -- "$d" ;; esac
		done <"$BATS_TEST_TMPDIR/au.dirs"
		rm -f "$BATS_TEST_TMPDIR/au.dirs"
	fi
}
