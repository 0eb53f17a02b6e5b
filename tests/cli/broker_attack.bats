#!/usr/bin/env bats
# Attacks on the broker (docs/design.md P3, P5, P6): hand-written requests on
# its socket, the daemon's memory after a grant ends, the files on disk,
# and another user or the same user going after the socket, /proc and
# ptrace. The memory and uid tests need root (they skip otherwise); the uid
# test runs the whole scenario as uid 65534, because root reads anything.

load helpers

setup() {
	br_setup
}

teardown() {
	bg_cleanup
}

@test "hand-written socket requests get nothing the policy does not allow, and change no grant" {
	local other="Other${CANARY}" t=$BATS_TEST_TMPDIR sock before
	set_secret other "$other"
	br_grant canary --ttl 10m --uses 5 --cmd sh
	sock=$(br_sock)
	lx grants --json </dev/null
	before=$out
	lx audit --json </dev/null
	local n_before
	n_before=$("$PY" -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$out")

	cat >"$t/attack.py" <<'EOF'
import base64, json, os, socket, sys
sock, sh_real, env_real, grant, out = sys.argv[1:6]

def call(line, fds=None):
    """One request line (with descriptors: SCM_RIGHTS), its one-line answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sock)
    if fds:
        socket.send_fds(s, [line + b"\n"], fds)
    else:
        s.sendall(line + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    with open(out, "ab") as f:
        f.write(data)
    return json.loads(data) if data.strip() else None

def req(**kw):
    return call(json.dumps(kw).encode())

def refused(resp, what):
    assert resp is None or (resp.get("ok") is False and "values" not in resp and "frames" not in resp), (what, resp)

b64 = lambda b: base64.b64encode(b).decode()
fake_key = b64(os.urandom(32))

# Control: this client speaks the protocol.
r = req(op="ping")
assert r and r["ok"] is True, r
r = req(op="list")
assert [g["grant"] for g in r["grants"]] == [grant], r

# No operation hands a value back: the old release is gone.
refused(req(op="release", names=["canary"], cmd=sh_real, argv=[b64(b"x")], cwd="/"), "release")

# Runs (with their descriptors): a name no grant covers, a command outside
# the grant, one name too many. (A run the policy allows starts the
# granted program even for a script: see the N1 test below.)
def run_req(names, cmd, fds=True, **kw):
    r = dict(op="run", cmd=cmd, argv=[b64(b"x")], env=[], cwd="/",
             refs=[dict(var="V%d" % i, name=n, file=False) for i, n in enumerate(names)])
    r.update(kw)
    null = os.open("/dev/null", os.O_RDWR)
    return call(json.dumps(r).encode(), [null, null, null, os.open("/", os.O_PATH)] if fds else None)
refused(run_req(["other"], sh_real), "uncovered name")
refused(run_req(["canary"], env_real), "command outside --cmd")
refused(run_req(["canary", "other"], sh_real), "one name too many")
refused(run_req(["canary"], "sh"), "relative command")
refused(run_req([], sh_real), "no names")
refused(run_req(["canary"], sh_real, refs="canary"), "refs not an array")
refused(run_req(["../canary"], sh_real), "invalid name")
refused(run_req(["canary"], sh_real, fds=False), "no descriptors")

# Grants: a made-up writer key, with values of its own ...
grant_req = lambda **kw: req(**dict(dict(op="grant", grant="g-0123456789ab", names=["other"],
    values=[b64(b"x")], cmds=[], ttl=3600, uses=None, writer_key=fake_key), **kw))
refused(grant_req(), "made-up writer key")
refused(grant_req(writer_key=None), "no writer key")
refused(grant_req(writer_key=""), "empty writer key")
refused(grant_req(writer_key=b64(os.urandom(16))), "short writer key")
refused(grant_req(writer_key=b64(b"\0" * 32)), "zero writer key")
# ... and reusing values it does not have: no values, empty, null, for a
# name the daemon holds; the existing grant's id, to widen it.
refused(grant_req(names=["canary"], values=[]), "no values")
refused(grant_req(names=["canary"], values=None), "null values")
refused(grant_req(names=["canary"], values=[None]), "a null value")
refused(grant_req(names=["canary"], values=[""]), "an empty value")
refused(grant_req(grant=grant, names=["canary"], values=[], cmds=[], ttl=86400), "widen by id, no values")
refused(grant_req(grant=grant, names=["canary"], values=[b64(b"x")], cmds=[], ttl=86400), "widen by id")
refused(call(b'{"op":"grant","grant":"g-aaaaaaaaaaaa","names":["canary"],"cmds":[],"ttl":60,"uses":null}'),
        "no values, no key")

# Exits reported by hand: no such operation (the broker reaps its runners).
refused(req(op="exit", release="r-000000000000", status=0), "exit report")

# Garbage.
refused(call(b"not json"), "not json")
refused(call(b"{}"), "empty object")
refused(call(b"[1,2]"), "array")
refused(req(op="nope"), "unknown op")
refused(call(b'{"op":"run","refs":[{"var":"X","name":"canary","file":false}],"cmd":"' + sh_real.encode() + b'"'), "cut short")

# Still alive, still the same grant.
r = req(op="ping")
assert r and r["ok"] is True, r
print("done")
EOF
	run "$PY" "$t/attack.py" "$sock" "$(br_real sh)" "$(br_real env)" "$BR_GRANT" "$t/replies"
	[ "$status" -eq 0 ] && [ "$output" = done ] || { echo "$output" >&2; false; }

	# No grant appeared or widened; no use was spent.
	lx grants --json </dev/null
	[ "$out" = "$before" ] || { echo "grants changed: $before -> $out" >&2; false; }
	"$PY" -c 'import json,sys; g=json.loads(sys.argv[1]); assert g[0]["uses_left"] == 5, g' "$out"
	# The refused releases are recorded as denials; nothing else was.
	br_audit '
new = r[int(sys.argv[2]):]
assert len(new) == 3, new  # uncovered name, command outside --cmd, one name too many
assert all(x["event"] == "release" and x["decision"] == "deny" and x["reason"] for x in new), new
' -- "$n_before"
	# No reply carried either value in any form.
	[ -s "$t/replies" ]
	assert_absent "$CANARY" "$t/replies"
	assert_absent "$other" "$t/replies"

	# The same requests from a script posing as latch (see the next test):
	# past the peer check, if it has one, the policy itself refuses them.
	local sh_real env_real key
	sh_real=$(br_real sh)
	env_real=$(br_real env)
	key=$(head -c 32 /dev/urandom | base64)
	local ref='{"var":"X","name":"canary","file":false}' oref='{"var":"Y","name":"other","file":false}'
	br_handoff "$sock" "$t/posed" \
		"{\"op\":\"run\",\"refs\":[$oref],\"cmd\":\"$sh_real\",\"argv\":[\"eA==\"],\"env\":[],\"cwd\":\"/\"}" \
		"{\"op\":\"run\",\"refs\":[$ref],\"cmd\":\"$env_real\",\"argv\":[\"eA==\"],\"env\":[],\"cwd\":\"/\"}" \
		"{\"op\":\"run\",\"refs\":[$ref,$oref],\"cmd\":\"$sh_real\",\"argv\":[\"eA==\"],\"env\":[],\"cwd\":\"/\"}" \
		"{\"op\":\"grant\",\"grant\":\"g-0123456789ab\",\"names\":[\"other\"],\"values\":[\"eA==\"],\"cmds\":[],\"ttl\":3600,\"uses\":null,\"writer_key\":\"$key\"}" \
		"{\"op\":\"grant\",\"grant\":\"$BR_GRANT\",\"names\":[\"canary\"],\"values\":[],\"cmds\":[],\"ttl\":86400,\"uses\":null,\"writer_key\":\"$key\"}" \
		"{\"op\":\"exit\",\"release\":\"r-000000000000\",\"status\":0}"
	"$PY" -c '
import json, sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
assert len(lines) == 6, lines
for line in lines:
    r = json.loads(line) if line else {}
    assert r.get("ok") is not True and "values" not in r and "frames" not in r, r
' "$t/posed"
	assert_absent "$CANARY" "$t/posed"
	assert_absent "$other" "$t/posed"
	lx grants --json </dev/null
	[ "$out" = "$before" ] || { echo "grants changed: $before -> $out" >&2; false; }
	br_audit '
new = r[int(sys.argv[2]):]
assert new and all(x["event"] == "release" and x["decision"] == "deny" and x["reason"] for x in new), new
' -- "$n_before"

	# The real latch, for the allowed command, still gets it: the policy is
	# intact and the refusals above were not for want of a working daemon.
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
}

@test "N1: a script speaking the protocol gets no value from it; it can run what the policy allows, and --cmd sh runs code of its choosing, which hands the value over" {
	# The daemon cannot tell latch from another program of the same user
	# (a connection can be handed between processes). What it enforces is
	# the policy; it records every release with the requesting pid and the
	# runner's; and no answer of its protocol carries a value (P8). But a
	# granted program that runs what its caller says (sh -c) is the
	# caller's to use: that is N1 as narrowed by sessions.
	br_grant canary --ttl 10m --cmd sh
	local t=$BATS_TEST_TMPDIR n_before
	lx audit --json </dev/null
	n_before=$("$PY" -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$out")
	cat >"$t/n1.py" <<'EOF'
import base64, json, os, socket, sys
sock, sh_real, env_real, out = sys.argv[1:5]
b64 = lambda b: base64.b64encode(b).decode()
def run(cmd, argv):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sock)
    r, w = os.pipe()
    null = os.open("/dev/null", os.O_RDWR)
    req = dict(op="run", cmd=cmd, argv=[b64(a) for a in argv], env=[], cwd="/",
               refs=[dict(var="X", name="canary", file=False)])
    socket.send_fds(s, [json.dumps(req).encode() + b"\n"], [null, w, null, os.open("/", os.O_PATH)])
    os.close(w)
    proto = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        proto += c
    child = b""
    while True:
        c = os.read(r, 65536)
        if not c:
            break
        child += c
    return proto, child
proto, child = run(sh_real, [b"sh", b"-c", b'printf %s "$X"; printf %s "$X" >"$0"', (out + ".file").encode()])
proto2, child2 = run(env_real, [b"env"])
with open(out + ".proto", "wb") as f:
    f.write(proto + proto2)
with open(out + ".child", "wb") as f:
    f.write(child + child2)
lines = [json.loads(l) for l in proto.split(b"\n") if l]
assert lines[0].get("ok") is True and lines[0].get("runner", 0) > 0, lines
assert lines[-1].get("exit") == 0, lines
refused = json.loads(proto2.split(b"\n")[0])
assert refused.get("ok") is False and not child2, (refused, child2)
print("done")
EOF
	run "$PY" "$t/n1.py" "$(br_sock)" "$(br_real sh)" "$(br_real env)" "$t/n1"
	[ "$status" -eq 0 ] && [ "$output" = done ] || { echo "$output" >&2; false; }
	# The protocol carried no value; the granted sh printed it where its
	# caller asked (N1).
	assert_absent "$CANARY" "$t/n1.proto"
	# What it printed came back redacted; what it wrote to a file is the
	# value (N1: the granted sh ran the script's code).
	[ "$(cat "$t/n1.child")" = "[latch:canary]" ]
	grep -qaF "$CANARY" "$t/n1.file" || { echo "sh -c did not write the value" >&2; false; }
	# Both decisions are in the log: the release that happened and the one refused.
	br_audit '
new = [x for x in r[int(sys.argv[2]):] if x["event"] == "release"]
assert [(x["event"], x["decision"]) for x in new] == [("release", "allow"), ("release", "deny")], new
assert all(x.get("pid", 0) > 0 for x in new), new
assert new[0].get("runner", 0) > 0, new
' -- "$n_before"
}

@test "after a grant expires and the daemon sweeps, its memory no longer holds the value; no file yields it" {
	[ "$(id -u)" -eq 0 ] || skip "reading the non-dumpable daemon's memory needs root"
	export LATCH_BROKER_IDLE=60 # the daemon must outlive the deadline
	br_grant canary --ttl 6s --cmd sh
	local deadline pid forms
	deadline=$(br_deadline "$BR_GRANT")
	pid=$(br_broker_pid)
	# A release first, so the release path's copies are there to be missed.
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	forms=$(br_forms_file "$CANARY")
	# Positive control: before the deadline the scan finds the value.
	br_memscan "$pid" "$forms" >"$BATS_TEST_TMPDIR/scan1"
	"$PY" -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert sys.argv[2] in s["found"], "the scan did not find the live value: %s" % s
' "$BATS_TEST_TMPDIR/scan1" "$CANARY"
	br_scan_files "$CANARY"

	br_wait_past "$deadline"
	lx grants </dev/null # a request: the daemon sweeps
	want_status 0
	br_is_broker "$pid" # the same daemon, still running
	br_memscan "$pid" "$forms" >"$BATS_TEST_TMPDIR/scan2"
	"$PY" -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["scanned"] > 1 << 20 and s["regions"] > 10, "the scan read too little: %s" % s
assert s["found"] == [], "the daemon still holds the value after the deadline: %s" % s
' "$BATS_TEST_TMPDIR/scan2"
	br_scan_files "$CANARY"
	# And the value is not to be had from it any more.
	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 4
}

@test "a grant used up or revoked is wiped from the daemon's memory at once" {
	[ "$(id -u)" -eq 0 ] || skip "reading the non-dumpable daemon's memory needs root"
	local other="Other${CANARY}" pid f1 f2
	set_secret other "$other"
	br_grant canary --ttl 10m --uses 1
	br_grant other --ttl 10m
	local g_other=$BR_GRANT
	pid=$(br_broker_pid)
	f1=$(br_forms_file "$CANARY")
	f2=$(br_forms_file "$other")
	br_memscan "$pid" "$f1" >"$BATS_TEST_TMPDIR/s1"
	br_memscan "$pid" "$f2" >"$BATS_TEST_TMPDIR/s2"
	"$PY" -c '
import json, sys
for f, v in ((sys.argv[1], sys.argv[3]), (sys.argv[2], sys.argv[4])):
    s = json.load(open(f))
    assert v in s["found"], "control: the live value was not found: %s" % s
' "$BATS_TEST_TMPDIR/s1" "$BATS_TEST_TMPDIR/s2" "$CANARY" "$other"

	br_run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	lx revoke "$g_other" </dev/null
	want_status 0
	br_is_broker "$pid"
	br_memscan "$pid" "$f1" >"$BATS_TEST_TMPDIR/s3"
	br_memscan "$pid" "$f2" >"$BATS_TEST_TMPDIR/s4"
	"$PY" -c '
import json, sys
for f, what in ((sys.argv[1], "used-up"), (sys.argv[2], "revoked")):
    s = json.load(open(f))
    assert s["scanned"] > 1 << 20, s
    assert s["found"] == [], "the daemon still holds the %s value: %s" % (what, s)
' "$BATS_TEST_TMPDIR/s3" "$BATS_TEST_TMPDIR/s4"
}

@test "as uid 65534: another uid cannot connect; the same uid cannot read the daemon's environ or memory nor ptrace it" {
	[ "$(id -u)" -eq 0 ] || skip "needs root: the scenario runs as uid 65534 and another uid attacks"
	br_u65534
	local u=$BR_U rt=$BR_U_RT hash=$BR_U_HASH
	cat >"$u/attack.py" <<'EOF'
import ctypes, json, os, signal, subprocess, sys, time
latch, lock, victim_file = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
# A subreaper: the daemon (and the control victim) detach by a double
# fork, so they end up our children; Yama's ptrace_scope 1 then allows
# the attack on a descendant, and only the daemon's own protection stops it.
assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER

# The control: an ordinary process of this uid, detached the same way.
r, w = os.pipe()
p = os.fork()
if p == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        os.execve("/bin/sleep", ["sleep", "120"], {"CONTROL": "environ-readable"})
    os._exit(0)
os.waitpid(p, 0)
os.close(w)
victim = int(os.read(r, 32))

def attempt(f):
    try:
        return f()
    except OSError as e:
        return "E:" + os.strerror(e.errno)

def read_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        data = f.read()
    return "ok" if data else "empty"

def read_mem(pid):
    with open("/proc/%d/mem" % pid, "rb", 0) as f:
        # An address: the first readable region in maps.
        with open("/proc/%d/maps" % pid) as m:
            for line in m:
                a, perms = line.split()[:2]
                if perms[0] == "r":
                    f.seek(int(a.split("-")[0], 16))
                    return "ok" if f.read(64) else "empty"
    return "no region"

def ptrace_attach(pid):
    ctypes.set_errno(0)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        return "E:" + os.strerror(ctypes.get_errno())
    os.waitpid(pid, os.WUNTRACED | 0x40000000)  # __WALL
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
    return "ok"

def gdb_attach(pid):
    try:
        out = subprocess.run(["gdb", "-nx", "-batch", "-p", str(pid), "-ex", "info registers rip"],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    except FileNotFoundError:
        return "missing"
    text = out.stdout + out.stderr
    return "ok" if b"rip " in text and b"detached" in text else "refused"

def attack():
    # The grant starts the daemon as this uid.
    g = subprocess.run([latch, "grant", "canary", "--ttl", "10m", "--cmd", "sh", "--passphrase-fd", "3"],
                       pass_fds=(3,), stdin=subprocess.DEVNULL, capture_output=True)
    assert g.returncode == 0, g
    daemon = int(open(lock).read())
    assert open("/proc/%d/cmdline" % daemon, "rb").read().startswith(b"latch\0broker\0")
    assert os.stat("/proc/%d" % daemon).st_uid in (0, os.getuid())

    res = {}
    for name, pid in (("victim", victim), ("daemon", daemon)):
        res[name] = {
            "environ": attempt(lambda: read_environ(pid)),
            "mem": attempt(lambda: read_mem(pid)),
            "ptrace": attempt(lambda: ptrace_attach(pid)),
            "gdb": attempt(lambda: gdb_attach(pid)),
            "alive": os.path.exists("/proc/%d" % pid),
        }
    print(json.dumps(res))

os.close(r)
with open(victim_file, "w") as f:
    f.write(str(victim))
try:
    for _ in range(500):
        if os.path.realpath("/proc/%d/exe" % victim).endswith("sleep"):
            break
        time.sleep(0.01)
    attack()
finally:
    os.kill(victim, signal.SIGKILL)
    os.waitpid(victim, 0)
EOF
	run br_as 65534 "$PY" "$u/attack.py" "$LATCH" "$rt/broker-$hash.lock" "$u/victim.pid" 3<<<"$PASS"
	[ ! -s "$u/victim.pid" ] || bg_track "$(cat "$u/victim.pid")"
	[ "$status" -eq 0 ] || { echo "attack script failed: $output" >&2; false; }
	echo "$output" >"$BATS_TEST_TMPDIR/attack.json"
	"$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
v, d = r["victim"], r["daemon"]
# Controls: each attack works on an ordinary process of the same uid.
assert v["environ"] == "ok" and v["mem"] == "ok" and v["ptrace"] == "ok", r
for k in ("environ", "mem", "ptrace"):
    assert d[k].startswith("E:"), "same uid: %s of the daemon succeeded: %s" % (k, r)
if v["gdb"] == "ok":  # gdb is usable here (not blocked by Yama for a non-descendant)
    assert d["gdb"] == "refused", r
assert d["alive"], r
' "$BATS_TEST_TMPDIR/attack.json"

	# The runtime directory and the socket are the user's own and private.
	local sock=$rt/broker-$hash.sock
	[ "$(stat -c %u:%a "$rt")" = "65534:700" ]
	[ -S "$sock" ]
	[ "$(stat -c %u "$sock")" = 65534 ]
	# The same uid talks to it (control).
	run br_as 65534 "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"{\"op\":\"ping\"}\n")
print(s.recv(4096).decode().strip())' "$sock"
	[ "$status" -eq 0 ] && [[ "$output" == *'"ok":true'* ]] || { echo "control ping: $output" >&2; false; }
	# Another uid cannot even reach the socket.
	run br_as 65533 "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("refused")
else:
    s.sendall(b"{\"op\":\"list\"}\n"); print("connected:", s.recv(4096))' "$sock"
	[ "$output" = refused ] || { echo "uid 65533: $output" >&2; false; }
	run br_as 65533 cat "$u/vault/vault.db"
	[ "$status" -ne 0 ]
	# Root reaches the socket file (it bypasses permissions), but the
	# daemon answers only its own uid.
	[ -z "$(br_call "$sock" '{"op":"list"}')" ]
}
