#!/usr/bin/env bats
# What the child of `latch run` gets, and what it must not (docs/design.md P4,
# P5, N1): descriptors 0-2 and its --file ones only, so no --passphrase-fd
# or other descriptor of latch's; no loader, shell or interpreter start-up
# variable (LD_PRELOAD, LD_AUDIT, SHELLOPTS+PS4, BASH_ENV, BASH_FUNC_*,
# PYTHONPATH, ...) that would make a granted program print or hand over a
# value, and no reference may target one; --file values as sealed memory
# files at /dev/fd/N, never on a disk, not even when `latch run` is
# killed; signals that would end latch while it waits (SIGALRM, SIGPIPE,
# SIGXCPU, real-time, ...) do not keep the exit from being recorded; the
# `latch grant` line printed on a denial is safe to paste into a shell.
# Each attack is shown to work without latch first (positive control).

load helpers

setup() {
	br_setup
}

teardown() {
	bg_cleanup
}

# hy_env VAR=VALUE... -- ARGS...: br_nt with the VARs set in latch's own
# environment, through env(1) (bash itself refuses to assign SHELLOPTS).
hy_env() {
	local vars=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		vars+=("$1")
		shift
	done
	shift
	local BR_ENV=("${vars[@]}") # seen by br_nt (bash scopes dynamically)
	br_nt "$@"
}

# hy_outputs: every output file of this test's latch runs.
hy_outputs() {
	ls "$BATS_TEST_TMPDIR"/lx.* 2>/dev/null || true
}

# A python script for a child: writes the numbers of its open descriptors
# (every number up to the limit that fstat accepts) to argv[1].
HY_FDS='
import os, sys
limit = min(os.sysconf("SC_OPEN_MAX"), 65536)
fds = []
for fd in range(limit):
    try:
        os.fstat(fd)
    except OSError:
        continue
    fds.append(fd)
with open(sys.argv[1], "w") as f:
    f.write(" ".join(map(str, fds)) + "\n")
'

# A python script for a child: appends to argv[1] everything it can read
# through any open descriptor, from its start (lseek) and by opening
# /proc/self/fd/N afresh.
HY_DUMP='
import os, sys
out = open(sys.argv[1], "ab")
limit = min(os.sysconf("SC_OPEN_MAX"), 65536)
for fd in range(limit):
    if fd == out.fileno():
        continue
    try:
        os.fstat(fd)
    except OSError:
        continue
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.set_blocking(fd, False)
        out.write(os.read(fd, 1 << 20))
    except OSError:
        pass
    try:
        g = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY | os.O_NONBLOCK)
        out.write(os.read(g, 1 << 20))
        os.close(g)
    except OSError:
        pass
out.close()
'

# ---------------------------------------------------------------------------
# Descriptors

@test "the child gets descriptors 0, 1, 2 and its --file ones (3, 4), none of the others latch had open" {
	br_grant canary --ttl 10m --uses 1000
	local t=$BATS_TEST_TMPDIR
	printf 'not for the child\n' >"$t/extra"
	# Positive control: a child of a plain shell inherits 5 and 9.
	"$PY" -c "$HY_FDS" "$t/fds.ctl" 5<"$t/extra" 9<>"$t/extra"
	[[ " $(cat "$t/fds.ctl") " == *" 5 "* ]] && [[ " $(cat "$t/fds.ctl") " == *" 9 "* ]] ||
		{ echo "control: $(cat "$t/fds.ctl")" >&2; false; }

	# No reference: latch asks no broker; the same rule.
	br_run -- "$PY" -c "$HY_FDS" "$t/fds.2" 5<"$t/extra" 9<>"$t/extra"
	want_status 0
	[ "$(cat "$t/fds.2")" = "0 1 2" ] || { echo "the child had descriptors: $(cat "$t/fds.2")" >&2; false; }

	# With references: 3 and 4 are the --file values, in order.
	br_run --file F=latch://canary --file G=latch://canary --env X=latch://canary \
		-- "$PY" -c "$HY_FDS"'
import os
assert os.environ["F"] == "/dev/fd/3" and os.environ["G"] == "/dev/fd/4", (os.environ["F"], os.environ["G"])
' "$t/fds.1" 5<"$t/extra" 9<>"$t/extra"
	want_status 0
	[ "$(cat "$t/fds.1")" = "0 1 2 3 4" ] || { echo "the child had descriptors: $(cat "$t/fds.1")" >&2; false; }

	assert_absent "$CANARY" $(hy_outputs) "$t"/fds.*
}

@test "a one-shot run with --passphrase-fd: the child cannot read the passphrase from any descriptor" {
	local t=$BATS_TEST_TMPDIR
	printf '%s\n' "$PASS" >"$t/pw" # a file: seekable, as a careless script's would be
	# Positive control: the dumper finds the passphrase on a descriptor it
	# inherits, even after the line was read.
	(read -r _ <&3 && "$PY" -c "$HY_DUMP" "$t/dump.ctl") 3<"$t/pw"
	refute assert_absent "$PASS" "$t/dump.ctl" 2>/dev/null

	# No grant and no terminal: the passphrase on fd 3 releases for this run.
	br_run --passphrase-fd 3 --env X=latch://canary -- sh -c "$(br_check_canary)"' && exec "$0" -c "$1" "$2"' \
		"$PY" "$HY_DUMP" "$t/dump" 3<"$t/pw"
	want_status 0
	[[ "$err" == *"for this run only"* ]]
	[ -e "$t/dump" ]
	assert_absent "$PASS" "$t/dump" $(hy_outputs)
	assert_absent "$CANARY" "$t/dump" $(hy_outputs)
	br_audit 'assert [x["exit"] for x in r] == [0], r' --event exit

	# Descriptors 0-2 go to the child: refused for the passphrase.
	br_run --passphrase-fd 0 --env X=latch://canary -- sh -c 'touch "$0/ran"' "$t" <"$t/pw"
	want_status 125
	want_err_line "--passphrase-fd 0"
	[ ! -e "$t/ran" ]
}

# ---------------------------------------------------------------------------
# Loader, shell and interpreter start-up variables

@test "a reference may not target a loader, shell or interpreter start-up variable (125, one line, nothing released)" {
	br_grant canary --ttl 10m --uses 1000 --cmd true
	local t=$BATS_TEST_TMPDIR name
	# Positive control: ld.so prints an LD_PRELOAD it cannot load.
	env LD_PRELOAD="$CANARY" true 2>"$t/ctl.err"
	refute assert_absent "$CANARY" "$t/ctl.err" 2>/dev/null

	br_run --env LD_PRELOAD=latch://canary -- true
	want_status 125
	want_err_line "'LD_PRELOAD'"
	for name in LD_AUDIT LD_LIBRARY_PATH LD_ANYTHING_NEW BASH_FUNC_true GCONV_PATH GLIBC_TUNABLES LOCPATH TZDIR \
		BASH_ENV ENV SHELLOPTS BASHOPTS PS4 PROMPT_COMMAND PYTHONSTARTUP PYTHONPATH PYTHONHOME PYTHONINSPECT \
		PERL5OPT PERL5LIB PERLLIB PERL5DB RUBYOPT RUBYLIB NODE_OPTIONS NODE_PATH JAVA_TOOL_OPTIONS _JAVA_OPTIONS \
		JDK_JAVA_OPTIONS NIS_PATH NLSPATH RESOLV_HOST_CONF RES_OPTIONS HOSTALIASES LOCALDOMAIN MALLOC_TRACE GETCONF_DIR; do
		br_run --env "$name=latch://canary" -- true
		want_status 125
		want_err_line "'$name'"
	done
	br_run --file LD_PRELOAD=latch://canary -- true
	want_status 125
	want_err_line "'LD_PRELOAD'"
	printf '# refs\nX=latch://canary\nBASH_ENV=latch://canary\n' >"$t/refs.env"
	br_run --env-file "$t/refs.env" -- true
	want_status 125
	want_err_line "refs.env:3:" "'BASH_ENV'"
	# A reference in latch's own environment.
	hy_env LD_AUDIT=latch://canary -- run -- true
	want_status 125
	[[ "$err" == *"latch: a reference cannot target 'LD_AUDIT'"* ]] || { echo "stderr: $err" >&2; false; }
	# --keep cannot bring one back either.
	br_run --pristine --keep LD_PRELOAD --env X=latch://canary -- true
	want_status 125
	want_err_line "'LD_PRELOAD'"
	# Names that only look alike are ordinary variables.
	br_run --env LDX=latch://canary --env MY_LD_PRELOAD=latch://canary --env BASH_ENVX=latch://canary -- true
	want_status 0

	br_audit 'assert len(r) == 1, r' --event release
	assert_absent "$CANARY" $(hy_outputs)
}

@test "loader, shell and interpreter start-up variables in latch's environment never reach the child; others do" {
	br_grant canary --ttl 10m --uses 1000
	local t=$BATS_TEST_TMPDIR vars=() bad=() name
	# Empty values: harmless to latch itself, still present as names.
	for name in LD_PRELOAD LD_AUDIT LD_LIBRARY_PATH LD_DEBUG LD_ANYTHING_NEW 'BASH_FUNC_foo%%' BASH_FUNC_x \
		GCONV_PATH GETCONF_DIR GLIBC_TUNABLES HOSTALIASES LOCALDOMAIN LOCPATH MALLOC_TRACE NIS_PATH NLSPATH \
		RESOLV_HOST_CONF RES_OPTIONS TZDIR BASH_ENV ENV SHELLOPTS BASHOPTS PS4 PROMPT_COMMAND PYTHONSTARTUP \
		PYTHONPATH PYTHONHOME PYTHONINSPECT PERL5OPT PERL5LIB PERLLIB PERL5DB RUBYOPT RUBYLIB NODE_OPTIONS NODE_PATH \
		JAVA_TOOL_OPTIONS _JAVA_OPTIONS JDK_JAVA_OPTIONS; do
		bad+=("$name")
		vars+=("$name=")
	done
	vars+=(TMPDIR="$t" LDX=kept MY_LD_PRELOAD=kept BASH_ENVX=kept PS44=kept)
	# The child prints its variables' names only, never a value.
	local names='import os, sys; sys.stdout.write("\n".join(sorted(os.environ)) + "\n")'
	hy_env "${vars[@]}" -- run --env X=latch://canary -- "$PY" -c "$names"
	want_status 0
	cp "$LX_OUT" "$t/names.plain"
	hy_env "${vars[@]}" -- run --pristine --keep TMPDIR --keep LDX --env X=latch://canary -- "$PY" -c "$names"
	want_status 0
	cp "$LX_OUT" "$t/names.pristine"
	"$PY" -c '
import sys
bad = sys.argv[3:]
plain = open(sys.argv[1]).read().split()
pristine = open(sys.argv[2]).read().split()
assert not [n for n in plain if n in bad], [n for n in plain if n in bad]
assert not [n for n in plain if n.startswith(("LD_", "BASH_FUNC_"))], plain
for n in ("TMPDIR", "LDX", "MY_LD_PRELOAD", "BASH_ENVX", "PS44", "X"):
    assert n in plain, (n, plain)
# python adds LC_CTYPE to its own environment (PEP 538 locale coercion).
assert [n for n in pristine if n != "LC_CTYPE"] == ["LDX", "TMPDIR", "X"], pristine
' "$t/names.plain" "$t/names.pristine" "${bad[@]}"
	assert_absent "$CANARY" $(hy_outputs)
}

@test "LD_PRELOAD and LD_AUDIT in latch's environment: a library that prints \$X gets nothing from a granted program" {
	command -v cc >/dev/null || skip "no C compiler to build the attacking library"
	local t=$BATS_TEST_TMPDIR
	cat >"$t/leak.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
unsigned int la_version(unsigned int v) { return v; } /* an audit module too */
__attribute__((constructor)) static void leak(void)
{
	const char *x = getenv("X");
	if (x)
		fprintf(stderr, "leaked: %s\n", x);
}
EOF
	cc -shared -fPIC -o "$t/leak.so" "$t/leak.c"
	# Positive control: both make a program print its X.
	env X="$CANARY" LD_PRELOAD="$t/leak.so" true 2>"$t/ctl1.err"
	refute assert_absent "$CANARY" "$t/ctl1.err" 2>/dev/null
	env X="$CANARY" LD_AUDIT="$t/leak.so" true 2>"$t/ctl2.err"
	refute assert_absent "$CANARY" "$t/ctl2.err" 2>/dev/null

	br_grant canary --ttl 10m --uses 1000 --cmd true
	hy_env LD_PRELOAD="$t/leak.so" -- run --env X=latch://canary -- true
	want_status 0
	hy_env LD_AUDIT="$t/leak.so" -- run --env X=latch://canary -- true
	want_status 0
	br_audit 'assert [x["exit"] for x in r] == [0, 0], r' --event exit
	assert_absent "$CANARY" $(hy_outputs)
}

@test "SHELLOPTS=xtrace, BASH_ENV, an exported bash function: a granted bash prints nothing of the value" {
	local t=$BATS_TEST_TMPDIR fn
	printf 'printf "leaked: %%s\\n" "$X" >&2\n' >"$t/evil.sh"
	fn='() { printf "leaked: %s\n" "$X" >&2; }'
	# A granted script that uses its variable, as any does.
	local script=': "$X"'
	# Positive controls: each makes bash print X.
	env SHELLOPTS=xtrace X="$CANARY" bash -c "$script" 2>"$t/ctl1.err"
	refute assert_absent "$CANARY" "$t/ctl1.err" 2>/dev/null
	env BASH_ENV="$t/evil.sh" X="$CANARY" bash -c true 2>"$t/ctl2.err"
	refute assert_absent "$CANARY" "$t/ctl2.err" 2>/dev/null
	env "BASH_FUNC_true%%=$fn" X="$CANARY" bash -c true 2>"$t/ctl3.err"
	refute assert_absent "$CANARY" "$t/ctl3.err" 2>/dev/null

	br_grant canary --ttl 10m --uses 1000 --cmd bash
	hy_env SHELLOPTS=xtrace -- run --env X=latch://canary -- bash -c "$script"
	want_status 0
	hy_env BASH_ENV="$t/evil.sh" -- run --env X=latch://canary -- bash -c true
	want_status 0
	hy_env "BASH_FUNC_true%%=$fn" -- run --env X=latch://canary -- bash -c true
	want_status 0
	br_audit 'assert [x["exit"] for x in r] == [0, 0, 0], r' --event exit
	assert_absent "$CANARY" $(hy_outputs)
}

@test "SHELLOPTS=xtrace with PS4='\$X ': a granted bash -c true prints nothing of the value" {
	local t=$BATS_TEST_TMPDIR
	# bash takes PS4 from the environment only when not run as root: as
	# root, play the scenario as uid 65534 (its own vault and broker).
	local as=()
	if [ "$(id -u)" -eq 0 ]; then
		br_u65534
		as=(br_as 65534)
	fi
	# Positive control.
	"${as[@]}" env SHELLOPTS=xtrace 'PS4=$X ' X="$CANARY" bash -c true 2>"$t/ctl.err"
	refute assert_absent "$CANARY" "$t/ctl.err" 2>/dev/null

	"${as[@]}" "$LATCH" grant canary --ttl 10m --cmd bash --passphrase-fd 3 3<<<"$PASS" </dev/null >"$t/g.out"
	local rc=0
	"${as[@]}" setsid -w env SHELLOPTS=xtrace 'PS4=$X ' "$LATCH" run --env X=latch://canary -- bash -c true \
		</dev/null >"$t/lx.ps4.out" 2>"$t/lx.ps4.err" || rc=$?
	[ "$rc" -eq 0 ] || { echo "latch run exited $rc: $(cat "$t/lx.ps4.err")" >&2; false; }
	assert_absent "$CANARY" "$t/lx.ps4.out" "$t/lx.ps4.err"
}

@test "PYTHONPATH with a sitecustomize.py that prints \$X: a granted python3 prints nothing of the value" {
	local t=$BATS_TEST_TMPDIR
	mkdir "$t/py"
	printf 'import os, sys\nsys.stderr.write("leaked: %%s\\n" %% os.environ.get("X"))\n' >"$t/py/sitecustomize.py"
	# Positive control.
	PYTHONPATH="$t/py" X="$CANARY" "$PY" -c pass 2>"$t/ctl.err"
	refute assert_absent "$CANARY" "$t/ctl.err" 2>/dev/null

	br_grant canary --ttl 10m --uses 1000 --cmd "$PY"
	hy_env PYTHONPATH="$t/py" -- run --env X=latch://canary -- "$PY" -c pass
	want_status 0
	assert_absent "$CANARY" $(hy_outputs)
}

# ---------------------------------------------------------------------------
# --file

@test "--file: a sealed 0600 memory file at /dev/fd/N with the exact bytes, readable again, not writable by the child" {
	br_grant canary --ttl 10m --uses 1000
	local t=$BATS_TEST_TMPDIR
	br_run --file F=latch://canary --env X=latch://canary --file G=latch://canary -- sh -c "$(br_check_canary)"'
		[ "$F" = /dev/fd/3 ] && [ "$G" = /dev/fd/4 ] || exit 11
		for v in "$F" "$G"; do
			[ "$(stat -L -c %a:%u "$v")" = "600:$(id -u)" ] || exit 12
			[ "$(sha256sum <"$v" | cut -d" " -f1)" = "$0" ] || exit 13
			[ "$(sha256sum <"$v" | cut -d" " -f1)" = "$0" ] || exit 14
		done
		case "$(readlink /proc/self/fd/3)" in /memfd:*) ;; *) exit 15 ;; esac
		"$1" -c "
import errno, os, sys
for p in sys.argv[1:]:
    for flags in (os.O_WRONLY, os.O_RDWR | os.O_APPEND, os.O_WRONLY | os.O_TRUNC):
        try:
            fd = os.open(p, flags)
        except PermissionError:
            continue
        for change in (lambda: os.write(fd, b\"x\"), lambda: os.ftruncate(fd, 0), lambda: os.ftruncate(fd, 1 << 20)):
            try:
                change()
            except PermissionError:
                continue
            sys.exit(16)
        os.close(fd)
" "$F" "$G" || exit 16
		[ "$(sha256sum <"$F" | cut -d" " -f1)" = "$0" ] || exit 17' "$BR_CANARY_SHA" "$PY"
	want_status 0
	assert_absent "$CANARY" $(hy_outputs)
	br_scan_files "$CANARY"
}

@test "--file: no file holds the value while the child runs, after SIGKILL of latch run, or after revoke" {
	br_grant canary --ttl 10m --uses 1000
	local t=$BATS_TEST_TMPDIR d=$BATS_TEST_TMPDIR/k bg child runner latchpid rc
	mkdir "$d"
	touch "$t/start"
	# hy_scan: br_scan_files, and every file under /tmp changed since the
	# start (but another bats run's, whose files come and go under it).
	hy_scan() {
		br_scan_files "$CANARY"
		local files=() run=${BATS_RUN_TMPDIR:-/nonexistent}
		mapfile -t files < <(find /tmp "$XDG_RUNTIME_DIR" "$LATCH_HOME" -xdev \
			\( -path '/tmp/bats-run-*' -a ! -path "$run" -a ! -path "$run/*" \) -prune -o \
			-type f -newer "$t/start" -readable -print 2>/dev/null)
		# Copies, scanned: a file that went away meanwhile (a compiler's
		# temporary file of another process) holds nothing any more.
		local snap=$t/snap.$RANDOM i=0 f copies=()
		mkdir "$snap"
		for f in "${files[@]}"; do
			i=$((i + 1))
			cp -- "$f" "$snap/$i" 2>/dev/null && copies+=("$snap/$i")
		done
		assert_absent "$CANARY" "${copies[@]}"
		rm -rf "$snap"
	}
	setsid -w "$LATCH" run --file F=latch://canary -- sh -c '
		echo $$ $PPID >"$0/pids.tmp" && mv "$0/pids.tmp" "$0/pids"
		while [ ! -e "$0/stop" ]; do
			if [ -e "$0/again" ] && [ ! -e "$0/reread" ]; then
				[ "$(sha256sum <"$F" | cut -d" " -f1)" = "$1" ] && touch "$0/reread"
			fi
			sleep 0.05
		done' "$d" "$BR_CANARY_SHA" </dev/null >"$t/lx.k.out" 2>"$t/lx.k.err" &
	bg=$!
	bg_track "$bg"
	wait_file "$d/pids" "$bg"
	read -r child runner <"$d/pids"
	latchpid=$bg
	bg_track "$child"
	bg_track "$runner"
	hy_scan
	lx revoke --all </dev/null
	want_status 0
	hy_scan
	# After the revoke the value lives on only in the child's descriptor.
	touch "$d/again"
	wait_file "$d/reread" "$child"

	# SIGKILL of latch run (an agent harness's timeout): the runner ends
	# the child, and itself.
	kill -KILL "$latchpid"
	rc=0
	wait "$bg" || rc=$?
	[ "$rc" -eq 137 ] || { echo "latch run exited $rc: $(cat "$t/lx.k.err")" >&2; false; }
	wait_gone "$child" 100
	wait_gone "$runner" 100
	hy_scan
}

# ---------------------------------------------------------------------------
# Signals

@test "SIGALRM, SIGPIPE, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, real-time signals sent to latch run: it keeps waiting and records the exit" {
	br_grant canary --ttl 10m --uses 1000
	local d=$BATS_TEST_TMPDIR/s sig n bg child runner latchpid rc pend sigs=(ALRM PIPE XCPU XFSZ VTALRM PROF RTMIN RTMIN+3 RTMAX)
	mkdir "$d"
	for sig in "${sigs[@]}"; do
		rm -f "$d/pids" "$d/stop"
		setsid -w "$LATCH" run --env X=latch://canary -- sh -c "$(br_check_canary)"'
			echo $$ $PPID >"$0/pids.tmp" && mv "$0/pids.tmp" "$0/pids"
			while [ ! -e "$0/stop" ]; do sleep 0.05; done
			exit 7' "$d" </dev/null >"$d/out" 2>"$d/err" &
		bg=$!
		bg_track "$bg"
		wait_file "$d/pids" "$bg"
		read -r child runner <"$d/pids"
		latchpid=$bg
		bg_track "$child"
		kill -s "$sig" "$latchpid"
		# Held, not lost or acted on: pending in latch, which still runs.
		n=$(kill -l "$sig")
		pend=$(awk '/^ShdPnd:/ {print $2}' "/proc/$latchpid/status" 2>/dev/null) || pend=0
		[ $(((16#${pend:-0} >> (n - 1)) & 1)) -eq 1 ] ||
			{ echo "SIG$sig ($n) is not pending in latch run (ShdPnd $pend)" >&2; false; }
		touch "$d/stop"
		rc=0
		wait "$bg" || rc=$?
		[ "$rc" -eq 7 ] || { echo "after SIG$sig latch run exited $rc: $(cat "$d/err")" >&2; false; }
		[ ! -s "$d/err" ] || { echo "latch run wrote: $(cat "$d/err")" >&2; false; }
	done
	br_audit 'assert [x["exit"] for x in r] == [7] * int(sys.argv[2]), r' --event exit -- "${#sigs[@]}"
}

@test "the child starts with an empty signal mask and default dispositions, whatever latch inherited" {
	br_grant canary --ttl 10m --uses 1000
	local t=$BATS_TEST_TMPDIR
	# latch started with signals blocked and ignored, as a harness may leave them.
	"$PY" -c '
import os, signal, sys
sigs = [signal.SIGALRM, signal.SIGPIPE, signal.SIGXCPU, signal.SIGUSR1, signal.SIGINT, signal.SIGTERM,
        signal.SIGHUP, signal.SIGRTMIN, signal.SIGRTMIN + 3, signal.SIGRTMAX]
signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
for s in sigs:
    signal.signal(s, signal.SIG_IGN)
os.execv("/usr/bin/setsid", ["setsid", "-w"] + sys.argv[1:])
' "$LATCH" run --env X=latch://canary -- grep -E '^Sig(Blk|Ign):' /proc/self/status </dev/null >"$t/status" 2>"$t/err"
	[ ! -s "$t/err" ] || { echo "latch run wrote: $(cat "$t/err")" >&2; false; }
	"$PY" -c '
import signal, sys
f = dict(l.split(":") for l in open(sys.argv[1]).read().split("\n") if l)
blk, ign = int(f["SigBlk"], 16), int(f["SigIgn"], 16)
assert blk == 0, "SigBlk %x" % blk
# 32 and 33 are glibc internal, which its posix_spawn leaves ignored.
mine = [s for s in range(1, 65) if ign >> (s - 1) & 1 and s not in (32, 33)]
assert not mine, "ignored in the child: %s" % mine
' "$t/status"
}

# ---------------------------------------------------------------------------
# The denial hint

# hy_hint_check WANT_PATH: the last br_run was denied (4) with one line
# whose "a human can run: " part is, to a POSIX shell, exactly
# `latch grant canary --cmd WANT_PATH`; run in bash with a fake latch
# first on PATH, it calls latch once with those words and runs nothing
# else (no file appears in its working directory).
hy_hint_check() {
	local want=$1 t=$BATS_TEST_TMPDIR hint
	want_status 4
	want_err_line "a human can run: latch grant "
	hint=${err#*a human can run: }
	rm -rf "$t/fake" "$t/exec" "$t/argv"
	mkdir -p "$t/fake" "$t/exec"
	cat >"$t/fake/latch" <<EOF
#!/bin/bash
printf '%s\0' "\$@" >>"$t/argv"
printf '\n' >>"$t/argv"
EOF
	chmod 0755 "$t/fake/latch"
	local rc=0
	(cd "$t/exec" && PATH="$t/fake:$PATH" bash -c "$hint") >"$t/exec.out" 2>&1 || rc=$?
	[ -z "$(ls -A "$t/exec")" ] || { echo "the hint made: $(ls -A "$t/exec")" >&2; false; }
	[ "$rc" -eq 0 ] || { echo "the hint failed in a shell ($rc): $(cat "$t/exec.out")" >&2; false; }
	"$PY" -c '
import sys
got = open(sys.argv[1], "rb").read()
want = b"\0".join([b"grant", b"canary", b"--cmd", sys.argv[2].encode("utf-8", "surrogateescape")]) + b"\0\n"
assert got == want, (got, want)
' "$t/argv" "$want"
	"$PY" -c '
import shlex, sys
words = shlex.split(sys.argv[1])
want = ["latch", "grant", "canary", "--cmd", sys.argv[2]]
assert words == want, (words, want)
' "$hint" "$want"
}

@test "the denial hint quotes every word for a shell: ; \$(...) backticks quotes spaces pipes in the command run nothing" {
	local t=$BATS_TEST_TMPDIR name real
	mkdir "$t/w"
	local names=(
		'x;touch MARK;x'
		'x$(touch MARK)x'
		'x`touch MARK`x'
		"it's"
		"x'\$(touch MARK)'x"
		'x"$(touch MARK)"x'
		'a b'
		'x|touch MARK'
		'x&&touch MARK'
		'x>MARK'
		'x#c'
		'~'
		'*'
		'plain-name_1.2'
	)
	for name in "${names[@]}"; do
		printf '#!/bin/sh\nexit 0\n' >"$t/w/$name"
		chmod 0755 "$t/w/$name"
		real=$(readlink -f "$t/w/$name")
		pushd "$t/w" >/dev/null
		br_run --env X=latch://canary -- "./$name"
		popd >/dev/null
		hy_hint_check "$real"
	done
	# The reviewer's line: a directory named to smuggle a second, wider grant.
	mkdir "$t/w/x;latch grant canary --ttl 24h;"
	printf '#!/bin/sh\nexit 0\n' >"$t/w/x;latch grant canary --ttl 24h;/true"
	chmod 0755 "$t/w/x;latch grant canary --ttl 24h;/true"
	pushd "$t/w" >/dev/null
	br_run --env X=latch://canary -- "./x;latch grant canary --ttl 24h;/true"
	popd >/dev/null
	hy_hint_check "$(readlink -f "$t/w/x;latch grant canary --ttl 24h;/true")"
	br_audit 'assert r == [], r' --event release
}

@test "the denial hint names the real program: ./true, a symlink to sh, shows as sh's real path" {
	local t=$BATS_TEST_TMPDIR
	mkdir "$t/w"
	ln -s "$(command -v sh)" "$t/w/true"
	pushd "$t/w" >/dev/null
	br_run --env X=latch://canary -- ./true -c 'exit 0'
	popd >/dev/null
	hy_hint_check "$(br_real sh)"
	# And a command found along PATH.
	br_run --env X=latch://canary -- env
	hy_hint_check "$(br_real env)"
}

@test "the denial hint is not printed for a path with control characters, and never when it would be cut short" {
	local t=$BATS_TEST_TMPDIR name
	mkdir "$t/w"
	for name in $'esc\e[31mred' $'new\nline' $'tab\there' $'del\x7f' $'c1\xc2\x9b31m'; do
		printf '#!/bin/sh\nexit 0\n' >"$t/w/$name"
		chmod 0755 "$t/w/$name"
		br_run --env X=latch://canary -- "$t/w/$name"
		want_status 4
		want_err_line "the program's path has control characters"
		[[ "$err" != *"human can run"* ]]
		refute env LC_ALL=C grep -qaP '[\x00-\x09\x0b-\x1f\x7f\x80-\xff]' "$LX_ERR"
	done
	# Not UTF-8 (a lone 0x9b is CSI to a Latin-1 terminal): no broker
	# message can name it, so latch stops there (125), without showing it.
	name=$'csi\x9b31m'
	printf '#!/bin/sh\nexit 0\n' >"$t/w/$name"
	chmod 0755 "$t/w/$name"
	br_run --env X=latch://canary -- "$t/w/$name"
	want_status 125
	want_err_line "not UTF-8"
	refute env LC_ALL=C grep -qaP '[\x00-\x09\x0b-\x1f\x7f\x80-\xff]' "$LX_ERR"
	# An ordinary UTF-8 name is shown, quoted.
	name='café €'
	printf '#!/bin/sh\nexit 0\n' >"$t/w/$name"
	chmod 0755 "$t/w/$name"
	br_run --env X=latch://canary -- "$t/w/$name"
	hy_hint_check "$(readlink -f "$t/w/$name")"

	# Eight 128-character names: too long for one line; a hint cut before
	# --cmd would grant every program, so none is shown.
	local refs=() i long
	for i in 1 2 3 4 5 6 7 8; do
		long=$i$(printf 'n%.0s' {1..127})
		refs+=(--env "V$i=latch://$long")
	done
	br_run "${refs[@]}" -- sh -c true
	want_status 4
	want_err_line "too long to show"
	[[ "$err" != *"human can run"* ]]
}
