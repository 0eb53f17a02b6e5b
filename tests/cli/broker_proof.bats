#!/usr/bin/env bats
# Issue 8, tried as a same-uid agent with a shell, no terminal and no
# passphrase would: values and keys go only to a broker that proves a
# passphrase holder started it (P5, P7); whatever else answers at its
# socket (a proxy, a squatter, a broker the agent started itself, a
# preloaded or traced one) is refused and named, records nothing and gets
# nothing. A slow client holds nothing up; control characters never reach
# the human's terminal; another user cannot squat the runtime directory.
# Each attack has a positive control where one makes sense.

load helpers

setup() {
	br_setup
}

teardown() {
	bg_cleanup
	# A /tmp/latch-UID that was there before a test took it over.
	if [ -f "$BATS_TEST_TMPDIR/owner" ]; then
		local path owner
		read -r path owner <"$BATS_TEST_TMPDIR/owner"
		chown "$owner" "$path" || true
	fi
}

# pb_grants_of_kind EVENT: how many records of EVENT the log holds.
pb_count() {
	"$LATCH" audit --json --event "$1" </dev/null | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# pb_bg SCRIPT ARGS...: run a python script in the background, tracked.
pb_bg() {
	"$PY" "$@" </dev/null >"$BATS_TEST_TMPDIR/bg.$$.out" 2>&1 &
	PB_BG=$!
	bg_track "$PB_BG"
}

@test "a proxy relaying the broker's socket learns no value and no key, makes no grant, and is named (exit 3)" {
	local t=$BATS_TEST_TMPDIR sock n_grants
	br_grant canary --ttl 10m --cmd sh
	sock=$(br_sock)
	n_grants=$(pb_count grant)
	cat >"$t/proxy.py" <<'EOF'
import os, select, socket, sys, threading
sock, log, ready = sys.argv[1:4]
os.rename(sock, sock + ".real")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock)
srv.listen(16)
open(ready, "w").close()
lock = threading.Lock()
def pipe(c):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up.connect(sock + ".real")
    socks = [c, up]
    while True:
        r, _, _ = select.select(socks, [], [], 30)
        if not r:
            break
        for s in r:
            data = s.recv(65536)
            if not data:
                c.close(); up.close()
                return
            with lock, open(log, "ab") as f:
                f.write(data)
            (up if s is c else c).sendall(data)
while True:
    c, _ = srv.accept()
    threading.Thread(target=pipe, args=(c,), daemon=True).start()
EOF
	pb_bg "$t/proxy.py" "$sock" "$t/relayed" "$t/ready"
	local proxy=$PB_BG
	wait_file "$t/ready"
	# Control: the proxy relays (a listing needs no proof and passes).
	lx grants --json </dev/null
	want_status 0
	[[ "$out" == *"$BR_GRANT"* ]]
	[ -s "$t/relayed" ]
	# The human grants again: refused, the proxy named.
	lx grant canary --ttl 24h --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 3
	want_err_line "relaying" "pid $proxy"
	# It saw no value, no key, no grant box.
	assert_absent "$CANARY" "$t/relayed"
	refute grep -qaE 'writer_key|"box"|"values"' "$t/relayed"
	# No grant happened or was recorded.
	[ "$(pb_count grant)" -eq "$n_grants" ]
	lx grants --json </dev/null
	[ "$("$PY" -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$out")" -eq 1 ]
	stop_pid "$proxy"
	mv "$sock.real" "$sock"
	lx audit verify --passphrase-fd 3 3<<<"$PASS"
	want_status 0
}

@test "a squatter at the socket before any broker runs gets no value, and grant records nothing (exit 3)" {
	local t=$BATS_TEST_TMPDIR mode
	mkdir -p "$XDG_RUNTIME_DIR/latch"
	chmod 0700 "$XDG_RUNTIME_DIR/latch"
	cat >"$t/squat.py" <<'EOF'
import base64, json, os, socket, sys
sock, log, ready, mode = sys.argv[1:5]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock)
srv.listen(16)
open(ready, "w").close()
b64 = lambda b: base64.b64encode(b).decode()
while True:
    c, _ = srv.accept()
    c.settimeout(5)
    try:
        while True:
            data = b""
            while not data.endswith(b"\n"):
                d = c.recv(65536)
                if not d:
                    raise EOFError
                data += d
            with open(log, "ab") as f:
                f.write(data)
            if mode == "mute":
                continue
            # Says yes to everything, with a made-up proof.
            c.sendall(json.dumps({"ok": True, "pid": os.getpid(), "instance": os.urandom(16).hex(),
                                  "nonce": b64(os.urandom(32)), "proof": b64(os.urandom(32)),
                                  "grant": "g-000000000000", "deadline": 2000000000,
                                  "ack": b64(os.urandom(32)), "grants": []}).encode() + b"\n")
    except (EOFError, OSError):
        pass
    c.close()
EOF
	for mode in yes mute; do
		local sock=$XDG_RUNTIME_DIR/latch/broker-$("$PY" -c 'import hashlib, sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=8).hexdigest())' "$(readlink -f "$LATCH_HOME")").sock
		rm -f "$sock" "$t/ready" "$t/seen"
		pb_bg "$t/squat.py" "$sock" "$t/seen" "$t/ready" "$mode"
		local squatter=$PB_BG
		wait_file "$t/ready"
		lx grant canary --ttl 24h --passphrase-fd 3 3<<<"$PASS" </dev/null
		want_status 3
		want_err_line "did not prove" "pid $squatter"
		[ -s "$t/seen" ] # control: it was asked
		assert_absent "$CANARY" "$t/seen"
		refute grep -qaE '"box"|"values"|writer_key' "$t/seen"
		[ "$(pb_count grant)" -eq 0 ]
		[ "$(pb_count enrol)" -eq 0 ]
		stop_pid "$squatter"
	done
}

@test "a process holding the broker's lock before any broker runs: grant names it (exit 3), records no grant, leaves no broker" {
	local t=$BATS_TEST_TMPDIR lock
	mkdir -p "$XDG_RUNTIME_DIR/latch"
	chmod 0700 "$XDG_RUNTIME_DIR/latch"
	lock=$XDG_RUNTIME_DIR/latch/broker-$("$PY" -c 'import hashlib, sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=8).hexdigest())' "$(readlink -f "$LATCH_HOME")").lock
	cat >"$t/hold.py" <<'EOF'
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b"%d\n" % os.getpid())
open(sys.argv[2], "w").close()
time.sleep(600)
EOF
	pb_bg "$t/hold.py" "$lock" "$t/ready"
	local holder=$PB_BG
	wait_file "$t/ready"
	lx grant canary --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 3
	want_err_line "holds the broker lock" "pid $holder"
	[ "$(pb_count grant)" -eq 0 ]
	[ "$(pb_count enrol)" -eq 0 ]
	# The broker that found the lock taken is gone: no broker of this
	# vault runs (other suites' brokers may: they run in another lane).
	local p
	for p in $(pgrep -x latch); do
		br_is_broker "$p" || continue
		if [ "$(id -u)" -ne 0 ]; then
			echo "a broker runs: $p" >&2
			false
		fi
		refute grep -qxF "LATCH_HOME=$LATCH_HOME" < <(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null)
	done
}

@test "latch broker by hand needs the passphrase: with no terminal it is refused (4) and no broker runs" {
	br_nt broker
	want_status 4
	[ -z "$(ls "$XDG_RUNTIME_DIR/latch"/*.sock 2>/dev/null)" ]
	# Control: with the passphrase it starts one, which a grant then uses.
	lx broker --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	[[ "$out" == "Started the broker (pid "* ]]
	local pid
	pid=$(br_broker_pid)
	br_grant canary --ttl 1m
	[ "$(br_broker_pid)" = "$pid" ]
	[ "$(pb_count enrol)" -eq 1 ]
}

@test "a broker the agent starts with an enrolment of its own is refused by grant (exit 3), gets no value, and its records fail verify" {
	local t=$BATS_TEST_TMPDIR
	cat >"$t/rogue.py" <<'EOF'
import base64, json, os, socket, struct, subprocess, sys
latch, out, home = sys.argv[1:4]
# Its stream's file, which a passphrase holder would have made.
os.makedirs(home + "/audit", mode=0o700, exist_ok=True)
os.close(os.open(home + "/audit/stream-1", os.O_CREAT | os.O_WRONLY, 0o600))
a, b = socket.socketpair()
os.set_inheritable(b.fileno(), True)
pid = os.fork()
if pid == 0:
    os.dup2(b.fileno(), 3)
    os.execv(latch, ["latch", "broker", "--enrol-fd", "3"])
b.close()
f = a.makefile("rwb")
ready = json.loads(f.readline())
assert ready["ok"], ready
stream = struct.pack("<Q", 1) + os.urandom(16 + 32 + 32)
# The enrolment: its header, then the key and the stream keys as frames.
frame = lambda x: struct.pack(">I", len(x)) + x
f.write(json.dumps({"instance": os.urandom(16).hex(), "frames": 2}).encode() + b"\n" + frame(os.urandom(32)) + frame(stream))
f.flush()
ok = json.loads(f.readline())
assert ok["ok"], ok
open(out, "w").write(str(ready["pid"]))
os.waitpid(pid, 0)
EOF
	"$PY" "$t/rogue.py" "$LATCH" "$t/pid" "$LATCH_HOME" </dev/null
	local rogue
	rogue=$(cat "$t/pid")
	bg_track "$rogue"
	br_is_broker "$rogue" # control: the agent's broker runs and listens
	[ -S "$(br_sock)" ]
	lx grant canary --ttl 24h --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 3
	want_err_line "did not prove" "pid $rogue"
	[ "$(pb_count grant)" -eq 0 ]
	lx grants --json </dev/null
	[ "$out" = "[]" ]
	if [ "$(id -u)" -eq 0 ]; then # its memory holds no value
		br_memscan "$rogue" "$(br_forms_file "$CANARY")" >"$t/scan"
		"$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["found"] == [] and s["scanned"] > 1 << 20, s' "$t/scan"
	fi
	# Stopped, it writes its "stop" into a stream no passphrase holder
	# opened: the log says so.
	lx broker stop </dev/null
	want_status 0
	wait_gone "$rogue"
	lx audit verify --passphrase-fd 3 3<<<"$PASS"
	want_status 1
	[[ "$err" == *"which no passphrase holder opened"* ]]
	# Its file is evidence: a passphrase holder's broker does not take
	# that stream over, it says why and starts nothing.
	lx grant canary --ttl 1m --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 3
	want_err_line "already holds records no passphrase holder opened"
	[ -s "$LATCH_HOME/audit/stream-1" ]
}

@test "the broker refuses to start preloaded (even by a library that hides itself), with a loader variable, or traced" {
	[ "$(id -u)" -eq 0 ] || skip "needs root: the preload runs as uid 65534, whose library is not root's"
	command -v cc >/dev/null || skip "no C compiler"
	br_u65534
	local u=$BR_U
	cat >"$u/evil.c" <<'EOF'
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void hide(void)
{
	unsetenv("LD_PRELOAD");
	int fd = open(getenv("EVIL_MARK"), O_WRONLY | O_CREAT, 0600);
	if (fd >= 0)
		close(fd);
}
EOF
	cc -shared -fPIC -o "$u/evil.so" "$u/evil.c"
	chown 65534:65534 "$u/evil.so"
	run br_as 65534 env LD_PRELOAD="$u/evil.so" EVIL_MARK="$u/ran" "$LATCH" broker --enrol-fd 3 3</dev/null
	[ "$status" -eq 3 ] || { echo "status $status: $output" >&2; false; }
	[[ "$output" == *"evil.so' loaded: not a library of root's"* ]]
	[ -e "$u/ran" ] # control: the library did run inside latch
	[ ! -e "$BR_U_RT/broker-$BR_U_HASH.sock" ]
	# A root library, but the loader variable still set.
	local libm
	libm=$(ls /lib/x86_64-linux-gnu/libm.so.6 /usr/lib/*/libm.so.6 2>/dev/null | head -1)
	if [ -n "$libm" ]; then
		run br_as 65534 env LD_PRELOAD="$libm" "$LATCH" broker --enrol-fd 3 3</dev/null
		[ "$status" -eq 3 ] && [[ "$output" == *"loader variable LD_PRELOAD"* ]] || { echo "$output" >&2; false; }
	fi
	# Traced from its first instruction (PTRACE_TRACEME before exec).
	cat >"$u/trace.py" <<'EOF'
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.dup2(w, 2)
    libc.ptrace(0, 0, None, None)  # PTRACE_TRACEME
    os.execv(sys.argv[1], ["latch", "broker", "--enrol-fd", "3"])
os.close(w)
while True:
    _, st = os.waitpid(pid, 0)
    if os.WIFEXITED(st):
        print("exit", os.WEXITSTATUS(st)); break
    if os.WIFSIGNALED(st):
        print("signal", os.WTERMSIG(st)); break
    sig = os.WSTOPSIG(st)
    libc.ptrace(7, pid, None, None if sig == signal.SIGTRAP else ctypes.c_void_p(sig))  # PTRACE_CONT
print(os.read(r, 4096).decode())
EOF
	# (LeakSanitizer cannot run under ptrace: off for this one process of
	# an ASan build; it has no effect on a plain one.)
	run br_as 65534 env ASAN_OPTIONS=detect_leaks=0 "$PY" "$u/trace.py" "$LATCH" 3</dev/null
	[[ "$output" == "exit 3"*"it is traced (by pid "* ]] || { echo "$output" >&2; false; }
}

@test "grant starts its broker with a scrubbed environment: no loader variable reaches it" {
	[ "$(id -u)" -eq 0 ] || skip "reading the non-dumpable broker's environ needs root"
	local libm
	libm=$(ls /lib/x86_64-linux-gnu/libm.so.6 /usr/lib/*/libm.so.6 2>/dev/null | head -1)
	[ -n "$libm" ] || skip "no libm to preload"
	LD_PRELOAD=$libm BROKER_SET_THIS=1 lx grant canary --ttl 1m --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	local pid
	pid=$(br_broker_pid)
	tr '\0' '\n' <"/proc/$pid/environ" >"$BATS_TEST_TMPDIR/env"
	grep -q '^LATCH_HOME=' "$BATS_TEST_TMPDIR/env" # control: it is the broker's environment
	refute grep -q '^LD_PRELOAD=' "$BATS_TEST_TMPDIR/env"
	refute grep -q '^BROKER_SET_THIS=' "$BATS_TEST_TMPDIR/env"
}

@test "a hand-written grant without the broker's key is refused, before and after a challenge" {
	local t=$BATS_TEST_TMPDIR sock before
	br_grant canary --ttl 10m --cmd sh
	sock=$(br_sock)
	lx grants --json </dev/null
	before=$out
	cat >"$t/forge.py" <<'EOF'
import base64, json, os, socket, sys
sock, grant = sys.argv[1:3]
b64 = lambda b: base64.b64encode(b).decode()
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    return s, s.makefile("rwb")
def ask(f, obj):
    f.write(json.dumps(obj).encode() + b"\n"); f.flush()
    line = f.readline()
    return json.loads(line) if line.strip() else None
def refused(r, what):
    assert r is None or r.get("ok") is False, (what, r)
plain = {"grant": "g-0123456789ab", "names": ["canary"], "values": [b64(b"agent's value")],
         "cmds": [], "ttl": 86400, "uses": None}
# Without a challenge: the old form, with a writer key of its own, and a box.
s, f = conn()
refused(ask(f, dict(plain, op="grant", writer_key=b64(os.urandom(32)))), "old form")
s, f = conn()
refused(ask(f, {"op": "grant", "box": b64(os.urandom(200))}), "box, no hello")
# After a challenge: a box under a key it made up.
s, f = conn()
h = ask(f, {"op": "hello", "nonce": b64(os.urandom(32))})
assert h["ok"] and len(bytes.fromhex(h["instance"])) == 16, h  # control: it answers challenges
refused(ask(f, {"op": "grant", "box": b64(os.urandom(300))}), "made-up box")
refused(ask(f, {"op": "grant", "box": b64(os.urandom(300))}), "a second try on the same connection")
s, f = conn()
ask(f, {"op": "hello", "nonce": b64(os.urandom(32))})
refused(ask(f, {"op": "hello", "nonce": b64(os.urandom(32))}), "a second hello")
print("done")
EOF
	run "$PY" "$t/forge.py" "$sock" "$BR_GRANT"
	[ "$status" -eq 0 ] && [ "$output" = done ] || { echo "$output" >&2; false; }
	lx grants --json </dev/null
	[ "$out" = "$before" ]
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0 # the genuine grant is intact
}

@test "a slow client holds nothing up: a 3 s grant is wiped on time, revoke and SIGTERM answer at once" {
	local t=$BATS_TEST_TMPDIR sock pid deadline
	export LATCH_BROKER_IDLE=60
	br_grant canary --ttl 3s --cmd sh
	sock=$(br_sock)
	pid=$(br_broker_pid)
	deadline=$(br_deadline "$BR_GRANT")
	cat >"$t/slow.py" <<'EOF'
import socket, sys, time
sock, out = sys.argv[1:3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock)
start = time.time()
why = "timeout"
for i in range(120):  # one byte a second, never a whole line
    try:
        s.sendall(b"{")
        s.settimeout(1)
        if s.recv(1) == b"":
            why = "closed"
            break
    except socket.timeout:
        continue
    except OSError:
        why = "closed"
        break
open(out, "w").write("%s %.1f" % (why, time.time() - start))
EOF
	pb_bg "$t/slow.py" "$sock" "$t/slow"
	local slow=$PB_BG
	sleep 0.5
	br_wait_past "$deadline"
	sleep 1
	if [ "$(id -u)" -eq 0 ]; then
		br_memscan "$pid" "$(br_forms_file "$CANARY")" >"$t/scan"
		"$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["found"] == [] and s["scanned"] > 1 << 20, s' "$t/scan"
	fi
	local rc=0
	timeout 5 "$LATCH" revoke --all </dev/null >"$t/revoke" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || { echo "revoke --all: $rc $(cat "$t/revoke")" >&2; false; }
	# The broker ends the slow connection at its deadline.
	wait_file "$t/slow"
	[[ "$(cat "$t/slow")" == closed* ]] || { echo "slow client: $(cat "$t/slow")" >&2; false; }
	# A second slow client, and SIGTERM: the broker stops at once.
	pb_bg "$t/slow.py" "$sock" "$t/slow2"
	sleep 0.5
	kill -TERM "$pid"
	wait_gone "$pid" 50
}

@test "exit records the broker had to drop are recorded as lost once it can write again" {
	local t=$BATS_TEST_TMPDIR broker stream
	export LATCH_BROKER_IDLE=60
	br_grant canary --ttl 10m --cmd sh
	broker=$(br_broker_pid)
	stream=$(ls "$LATCH_HOME"/audit/stream-*)
	# The child runs (its release is recorded); then the broker may not
	# grow its stream file (a file size limit: every append fails with
	# EFBIG, as on a full disk) while the child exits, for longer than
	# the broker keeps trying (20 tries, 50 ms apart).
	setsid -w "$LATCH" run --env X=latch://canary -- sh -c 'touch "$0/running"; while [ ! -e "$0/locked" ]; do sleep 0.05; done' "$t" \
		</dev/null >"$t/run.out" 2>"$t/run.err" &
	local runner=$!
	bg_track "$runner"
	wait_file "$t/running"
	prlimit --pid "$broker" --fsize="$(stat -c %s "$stream"):"
	touch "$t/locked"
	wait "$runner"
	sleep 2.5
	[ "$(in_streams exit)" -eq 0 ]
	kill -0 "$broker" # the limit made appends fail; it did not kill the broker
	prlimit --pid "$broker" --fsize=unlimited:
	# Now it can write: the next commit says how many were lost.
	lx audit --json --event lost </dev/null
	want_status 0
	"$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
assert len(r) == 1 and r[0]["lost_exits"] == 1 and r[0].get("stream"), r
' "$out"
	lx audit verify --passphrase-fd 3 3<<<"$PASS"
	want_status 0
}

@test "control characters: the broker refuses them in cmd and cwd; audit, grants and status never print them raw" {
	local t=$BATS_TEST_TMPDIR sock n
	br_grant canary --ttl 10m
	sock=$(br_sock)
	n=$(pb_count release)
	local bad
	for bad in '{"op":"release","names":["canary"],"cmd":"/usr/bin/x\r\u001b[2K\u001b[1Aok","argv":[],"cwd":"/"}' \
		'{"op":"release","names":["canary"],"cmd":"/bin/true","argv":[],"cwd":"/tmp/\u001b]0;owned\u0007"}' \
		'{"op":"release","names":["canary"],"cmd":"/bin/\u009b2Jtrue","argv":[],"cwd":"/"}'; do
		run br_call "$sock" "$bad"
		[[ "$output" == *'"ok":false'* ]] && [[ "$output" != *values* ]] || { echo "$output" >&2; false; }
	done
	[ "$(pb_count release)" -eq "$n" ]
	# A record edited to hold escapes (a plaintext table anyone can
	# write): shown escaped.
	sqlite3 "$VAULT" "UPDATE audit_log SET record = CAST(replace(CAST(record AS TEXT), '\"exe\":\"', '\"exe\":\"\\u001b[2K\\r') AS BLOB) WHERE seq = (SELECT max(seq) FROM audit_log WHERE event = 'grant')"
	lx audit </dev/null
	want_status 0
	refute grep -qaP '[\x00-\x08\x0b-\x1f\x7f]' "$LX_OUT"
	[[ "$out" == *'\x1b[2K\x0d'* ]]
	# A fake broker whose answers carry escapes.
	lx broker stop </dev/null
	cat >"$t/fake.py" <<'EOF'
import json, socket, sys
sock, ready = sys.argv[1:3]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock); srv.listen(8)
open(ready, "w").close()
evil = "\x1b[2K\r\x1b]0;x\x07"
while True:
    c, _ = srv.accept()
    f = c.makefile("rwb")
    while f.readline():
        f.write(json.dumps({"ok": True, "pid": 1, "grants": [{"grant": "g-1" + evil, "names": ["a" + evil],
            "deadline": 2000000000, "uses_left": None, "cmds": ["/bin/" + evil]}]}).encode() + b"\n")
        f.flush()
    c.close()
EOF
	pb_bg "$t/fake.py" "$sock" "$t/ready"
	wait_file "$t/ready"
	lx grants </dev/null
	want_status 0
	refute grep -qaP '[\x00-\x08\x0b-\x1f\x7f]' "$LX_OUT"
	[[ "$out" == *'\x1b[2K\x0d'* ]]
	lx status </dev/null
	refute grep -qaP '[\x00-\x08\x0b-\x1f\x7f]' "$LX_OUT"
	[[ "$out" == *'\x1b'* ]]
}

@test "another uid squatting /tmp/latch-UID keeps no one out: without XDG_RUNTIME_DIR the broker lives in the vault's own run/" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to act as two other uids"
	br_u65534
	local squat=/tmp/latch-65534
	if [ ! -e "$squat" ]; then
		mkdir "$squat"
		chmod 0700 "$squat"
		track_dir "$squat"
	else # left by an older latch: another uid's for this test, then given back
		echo "$squat $(stat -c %u:%g "$squat")" >"$BATS_TEST_TMPDIR/owner"
	fi
	chown 65533:65533 "$squat"
	[ "$(stat -c %u:%a "$squat")" = "65533:700" ] # control: the directory the old latch wanted is another uid's
	run br_as 65534 "$LATCH" grant canary --ttl 10m --cmd sh --passphrase-fd 3 3<<<"$PASS" </dev/null
	[ "$status" -eq 0 ] || { echo "$output" >&2; false; }
	[ "$(stat -c %u:%a "$BR_U_RT")" = "65534:700" ]
	[ -S "$BR_U_RT/broker-$BR_U_HASH.sock" ]
	local rc=0
	br_as 65534 setsid -w "$LATCH" run --env X=latch://canary -- sh -c "$(br_check_canary)" </dev/null \
		>"$BATS_TEST_TMPDIR/r.out" 2>"$BATS_TEST_TMPDIR/r.err" || rc=$?
	[ "$rc" -eq 0 ] || { echo "run: $rc $(cat "$BATS_TEST_TMPDIR/r.err")" >&2; false; }
}

@test "a grant the broker did not take is recorded as failed, never as a grant alone" {
	[ "$(id -u)" -eq 0 ] || skip "watching a non-dumpable latch's system call needs root"
	local t=$BATS_TEST_TMPDIR pid lock
	export LATCH_BROKER_IDLE=60
	br_grant canary --ttl 10m
	pid=$(br_broker_pid)
	lock=$(br_lock)
	cat >"$t/lockdb.py" <<'EOF'
import sqlite3, sys, time, os
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
db.execute("COMMIT")
EOF
	cat >"$t/hold.py" <<'EOF'
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(600)
EOF
	"$PY" "$t/lockdb.py" "$VAULT" "$t/dblocked" "$t/go" &
	local locker=$!
	bg_track "$locker"
	wait_file "$t/dblocked"
	# The second grant proves the broker, then waits for the vault lock
	# to record itself.
	LATCH_LOCK_TIMEOUT_MS=60000 setsid -w "$LATCH" grant canary --ttl 10m --passphrase-fd 3 3<<<"$PASS" </dev/null \
		>"$t/g.out" 2>"$t/g.err" &
	local granter=$!
	bg_track "$granter"
	local i waiting=
	for ((i = 0; i < 300; i++)); do
		local sc
		sc=$(cut -d' ' -f1 "/proc/$granter/syscall" 2>/dev/null) || true
		# nanosleep or clock_nanosleep: sqlite's wait for the lock
		if [ "$sc" = 35 ] || [ "$sc" = 230 ]; then
			waiting=1
			break
		fi
		sleep 0.05
	done
	[ -n "$waiting" ] || { echo "the grant never waited for the vault lock" >&2; false; }
	# Meanwhile its broker dies, and something else takes the broker lock.
	kill -KILL "$pid"
	wait_gone "$pid"
	"$PY" "$t/hold.py" "$lock" "$t/held" &
	bg_track $!
	wait_file "$t/held"
	touch "$t/go"
	local rc=0
	wait "$granter" || rc=$?
	[ "$rc" -eq 3 ] || { echo "grant: $rc $(cat "$t/g.err")" >&2; false; }
	wait "$locker"
	lx audit --json </dev/null
	"$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
grants = [x for x in r if x["event"] == "grant"]
failed = [x for x in r if x["event"] == "grant-failed"]
assert len(grants) == 2 and len(failed) == 1 and failed[0]["grant"] == grants[1]["grant"], r
assert failed[0]["seq"] > grants[1]["seq"], r
' "$out"
}

@test "a --cmd path that is not UTF-8 is refused (2), never a grant for any command" {
	# JSON cannot carry the path: before, it dropped out of the grant and
	# its record, and the grant covered every program.
	local f
	f="$BATS_TEST_TMPDIR/$(printf 'x\377y')"
	printf '#!/bin/sh\nexit 0\n' >"$f"
	chmod 0755 "$f"
	lx grant canary --cmd "$f" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 2
	want_err_line "is not UTF-8"
	[ "$(pb_count grant)" -eq 0 ]
	lx grants --json </dev/null
	[ "$out" = "[]" ]
	# Control: a UTF-8 path beside it is granted for that program only.
	printf '#!/bin/sh\nexit 0\n' >"$BATS_TEST_TMPDIR/xy"
	chmod 0755 "$BATS_TEST_TMPDIR/xy"
	br_grant canary --cmd "$BATS_TEST_TMPDIR/xy"
	lx grants --json </dev/null
	[[ "$out" == *"$BATS_TEST_TMPDIR/xy"* ]] && [[ "$out" != *'"cmds": []'* ]]
}
