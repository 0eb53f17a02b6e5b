# Shared set-up for the end-to-end tests: each test gets a fresh HOME and
# vault directory under bats' own temporary directory, and drives the real
# binary ($LATCH_BIN, default build/latch).

LATCH=${LATCH_BIN:-$BATS_TEST_DIRNAME/../../build/latch}
PASS="correct horse battery staple"
CANARY="CANARY$(printf '%s' "$BATS_TEST_NAME" | cksum | cut -d' ' -f1)Zq7vX2mK9pL4"

setup() {
	export HOME="$BATS_TEST_TMPDIR/home"
	export LATCH_HOME="$HOME/.local/share/latch"
	unset XDG_DATA_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR
	mkdir -p "$HOME"
	VAULT="$LATCH_HOME/vault.db"
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

# sql STATEMENT: run SQL against the vault file directly.
sql() {
	sqlite3 "$VAULT" "$1"
}

# ---------------------------------------------------------------------------
# Vault end-to-end helpers (vault.bats, leak.bats, denied.bats, tamper.bats,
# crash.bats, perms.bats). None of them changes the helpers above.

# pty_run [OPTION]... -- CMD...: run CMD with a pseudo-terminal as its
# controlling terminal (see tests/cli/pty_run.py for the options).
pty_run() {
	/usr/bin/python3 "$BATS_TEST_DIRNAME/pty_run.py" "$@"
}

# lx ARGS...: run latch with stdout and stderr captured in numbered files
# under $BATS_TEST_TMPDIR (kept, so a test can scan every output it
# produced). Sets status, LX_OUT, LX_ERR, out (stdout text) and err (stderr
# text). Fails the test at once if latch crashed: latch's own exit codes
# are 0-4, anything else is a signal, a sanitizer report or worse.
# Redirections on the call (3<<<"$PASS", <file) reach latch.
lx() {
	LX_N=$((${LX_N:-0} + 1))
	LX_OUT=$BATS_TEST_TMPDIR/lx.$LX_N.out
	LX_ERR=$BATS_TEST_TMPDIR/lx.$LX_N.err
	local rc=0
	"$LATCH" "$@" >"$LX_OUT" 2>"$LX_ERR" || rc=$?
	status=$rc
	{ out=$(<"$LX_OUT") err=$(<"$LX_ERR"); } 2>/dev/null # no "ignored null byte"
	if [ "$rc" -gt 4 ]; then
		echo "latch $* exited with status $rc (crash or sanitizer report); stderr:" >&2
		cat "$LX_ERR" >&2
		return 1
	fi
	return 0
}

# lpty [PTY_OPTION]... -- ARGS...: run latch under pty_run, stdout and stderr
# of latch redirected to files (LX_OUT, LX_ERR), everything written to the
# terminal captured in TTY_LOG. Sets status, out, err like lx; fails the test
# on a crash or a timeout.
lpty() {
	LX_N=$((${LX_N:-0} + 1))
	LX_OUT=$BATS_TEST_TMPDIR/lx.$LX_N.out
	LX_ERR=$BATS_TEST_TMPDIR/lx.$LX_N.err
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
	status=$rc
	{ out=$(<"$LX_OUT") err=$(<"$LX_ERR"); } 2>/dev/null
	if [ "$rc" -gt 4 ]; then
		echo "latch $* under a pty exited with status $rc (crash, sanitizer report or timeout); stderr:" >&2
		cat "$LX_ERR" >&2
		return 1
	fi
	return 0
}

# want_status N: the last lx/lpty exited with N.
want_status() {
	if [ "$status" -ne "$1" ]; then
		echo "expected exit status $1, got $status" >&2
		echo "stdout: $out" >&2
		echo "stderr: $err" >&2
		return 1
	fi
}

# want_err_line [SUBSTRING]...: stderr of the last lx/lpty is exactly one
# line "latch: ...\n" containing every SUBSTRING.
want_err_line() {
	local raw='' nl
	IFS= read -r -d '' raw <"$LX_ERR" || true
	nl=${raw//[!$'\n']/}
	if [ "${#nl}" -ne 1 ] || [[ "$raw" != "latch: "*$'\n' ]]; then
		echo "expected exactly one line 'latch: ...' on stderr, got:" >&2
		cat "$LX_ERR" >&2
		return 1
	fi
	local s
	for s in "$@"; do
		if [[ "$err" != *"$s"* ]]; then
			echo "stderr does not mention '$s': $err" >&2
			return 1
		fi
	done
}

# want_no_stdout: the last lx/lpty wrote nothing to stdout.
want_no_stdout() {
	if [ -s "$LX_OUT" ]; then
		echo "expected no stdout, got: $out" >&2
		return 1
	fi
}

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

# vault_files: every file under $LATCH_HOME (vault.db, any -journal, ...).
vault_files() {
	find "$LATCH_HOME" -type f 2>/dev/null
}

# vault_sha: sha256 of the vault file.
vault_sha() {
	sha256sum "$VAULT" | cut -d' ' -f1
}

# sql_in: run SQL read from stdin against the vault file (for statements
# too long for argv, such as a 1 MiB blob literal).
sql_in() {
	sqlite3 "$VAULT"
}

# flip_blob TABLE COLUMN WHERE INDEX [MASK]: XOR the byte at INDEX (negative
# counts from the end) of a BLOB column with MASK (default 0x01), rewriting
# the whole blob with an X'..' literal through the sqlite3 CLI.
flip_blob() {
	local table=$1 col=$2 where=$3 pos=$4 mask=${5:-1} hex n b nb
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
	sql_in <<<"UPDATE $table SET $col = X'${hex:0:$((2 * pos))}$nb${hex:$((2 * pos + 2))}' WHERE $where;"
	[ "$(sqlite3 "$VAULT" "SELECT hex($col) FROM $table WHERE $where")" != "$hex" ]
}

# bg_track PID: remember a background process; bg_cleanup (call it from
# teardown) kills and reaps every one still running.
bg_track() {
	echo "$1" >>"$BATS_TEST_TMPDIR/bg.pids"
}
bg_cleanup() {
	local p
	[ -f "$BATS_TEST_TMPDIR/bg.pids" ] || return 0
	while read -r p; do
		# Only our own children: a reaped PID may have been reused.
		if [ "$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)" = "$BASHPID" ]; then
			kill -9 "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done <"$BATS_TEST_TMPDIR/bg.pids"
	rm -f "$BATS_TEST_TMPDIR/bg.pids"
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
