# Shared by session.bats and session_attack.bats: latch as uid 65534
# (Landlock does not hold root back) with HOME, the vault and
# XDG_RUNTIME_DIR in a directory of its own under /tmp (bats' temporary
# directory is root's, 0700) and a copy of the binary there; a probe of
# attacks on a pid; a victim process started outside any session.

NOBODY=65534

session_setup_file() {
	[ "$(id -u)" -ne 0 ] || fed_keys
}

session_setup() {
	home_setup
	S=$(mktemp -d /tmp/latch-session.XXXXXX)
	track_dir "$S"
	chmod 0755 "$S"
	install -m 0755 "$LATCH" "$S/latch"
	SL=$S/latch
	mkdir -p "$S/home" "$S/rt" "$S/pub"
	chown "$NOBODY:$NOBODY" "$S/home" "$S/rt" "$S/pub"
	chmod 0700 "$S/home" "$S/rt"
	export HOME=$S/home
	export LATCH_HOME=$HOME/.local/share/latch
	export XDG_RUNTIME_DIR=$S/rt
	echo "$S/rt/latch" >>"$BATS_TEST_TMPDIR/bg.lockdirs"
	export LATCH_BROKER_IDLE=30
	# root's PATH may hold directories uid 65534 cannot search (execvp
	# then says 126, not 127).
	export PATH=/usr/local/bin:/usr/bin:/bin
	VAULT=$LATCH_HOME/vault.db
	AS=(setpriv --reuid "$NOBODY" --regid "$NOBODY" --clear-groups)
	# probe.py PID LABEL...: attacks on PID, one "name=result" line each
	# ("ok", or the errno's name), for each LABEL in order ("all":
	# kill0 environ mem fd ptrace). environ is "ok" only if the marker
	# VICTIM_MARK=here was read; with PROBE_CANARY set it is "ok" and says
	# whether the canary was in it (never the value), as fd3 does for
	# descriptor 3 (a --file value). term sends SIGTERM.
	cat >"$S/probe.py" <<'EOF'
import ctypes, errno, os, sys
pid = int(sys.argv[1])
labels = sys.argv[2:] if sys.argv[2:] != ["all"] else ["kill0", "environ", "mem", "fd", "ptrace"]
canary = os.environ.get("PROBE_CANARY", "").encode()
def name(e):
    return errno.errorcode.get(e, str(e))
def res(label, f):
    try:
        r = f()
        print(label + "=ok" + (r or ""))
    except OSError as e:
        print(label + "=" + name(e.errno))
def has_canary(data):
    return " canary" if canary in data else " no-canary"
def environ():
    data = open("/proc/%d/environ" % pid, "rb").read()
    if canary:
        return has_canary(data)
    if b"VICTIM_MARK=here" not in data:
        raise OSError(errno.ENODATA, "no marker")
def mem():
    with open("/proc/%d/maps" % pid) as m:
        lo = int(m.readline().split("-")[0], 16)
    with open("/proc/%d/mem" % pid, "rb", 0) as f:
        f.seek(lo)
        f.read(16)
def fds():
    os.close(os.open("/proc/%d/fd/0" % pid, os.O_RDONLY))
def fd3():
    with open("/proc/%d/fd/3" % pid, "rb") as f:
        return has_canary(f.read())
def trace():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    os.waitpid(pid, 0x40000000)  # __WALL
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
attacks = {"kill0": lambda: os.kill(pid, 0), "environ": environ, "mem": mem, "fd": fds, "fd3": fd3,
           "ptrace": trace, "term": lambda: os.kill(pid, 15)}
for label in labels:
    res(label, attacks[label])
EOF
	chmod 0644 "$S/probe.py"
}


# sx ARGS...: latch ARGS as uid 65534, in a new session with no
# controlling terminal and stdin from /dev/null, environment SX_ENV
# (VAR=VALUE...) added; any exit status may be CMD's, so none fails here
# but the sanitizer's (97, 98). Sets status, out, err.
sx() {
	lx_next
	local rc=0
	setsid -w env ${SX_ENV+"${SX_ENV[@]}"} "${AS[@]}" "$SL" "$@" </dev/null >"$LX_OUT" 2>"$LX_ERR" || rc=$?
	lx_read "$rc"
	if [ "$rc" -eq 97 ] || [ "$rc" -eq 98 ]; then
		echo "latch $* exited $rc (sanitizer report); stderr:" >&2
		cat "$LX_ERR" >&2
		return 1
	fi
}

# sxp ARGS...: sx with --passphrase-fd 3 and $LX_PASS (default $PASS).
sxp() {
	sx "$@" 3<<<"${LX_PASS:-$PASS}"
}

# as_nobody CMD...: CMD as uid 65534 (outside any session).
as_nobody() {
	"${AS[@]}" "$@"
}

# nobody_vault: a vault of uid 65534's holding `canary`.
nobody_vault() {
	as_nobody "$SL" init --kdf interactive --passphrase-fd 3 3<<<"$PASS" >/dev/null
	printf '%s' "$CANARY" | as_nobody "$SL" set canary --file - --passphrase-fd 3 3<<<"$PASS" >/dev/null 2>&1
	[ -f "$VAULT" ]
}

# start_victim: a process of uid 65534 started outside any session, as the
# broker's child is: VICTIM its pid. Its environment holds VICTIM_MARK;
# it lets any process of its uid trace it (Yama's ptrace_scope 1 would
# otherwise refuse the positive control for a reason of its own).
start_victim() {
	VICTIM_MARK=here "${AS[@]}" "$PY" -c '
import ctypes, time
ctypes.CDLL(None).prctl(0x59616d61, ctypes.c_ulong(-1), 0, 0, 0)  # PR_SET_PTRACER_ANY
time.sleep(600)
' </dev/null >/dev/null 2>&1 &
	VICTIM=$!
	bg_track "$VICTIM"
	# Until its environment shows the marker: it runs as 65534 by then.
	local i
	for ((i = 0; i < 100; i++)); do
		tr '\0' '\n' <"/proc/$VICTIM/environ" 2>/dev/null | grep -qx VICTIM_MARK=here && return 0
		sleep 0.05
	done
	echo "the victim never started" >&2
	return 1
}

# broker_running: a broker's lock file names a running `latch broker`.
broker_running() {
	local f p
	for f in "$S"/rt/latch/broker-*.lock; do
		[ -f "$f" ] || continue
		p=$(cat "$f" 2>/dev/null)
		br_is_broker "$p" && return 0
	done
	return 1
}

# nobody_brokers: how many `latch broker` processes uid 65534 runs.
nobody_brokers() {
	local n=0 p
	for p in $(pgrep -u "$NOBODY" -x latch 2>/dev/null); do
		br_is_broker "$p" && n=$((n + 1))
	done
	echo "$n"
}

