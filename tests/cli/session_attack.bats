#!/usr/bin/env bats
# P8 (docs/threat-model.md): inside `latch session`, while a child the
# broker started under a grant runs, a process of the agent cannot read
# the child's /proc/PID/environ, mem or --file descriptor, trace it, or
# signal it, its runner or the broker; no client, latch or hand-written,
# gets a value out of the broker's protocol; loader variables the agent
# sets never reach the granted program. Outside a session the child's
# environment is readable (N1), which the same probe shows.
#
# Every attack runs as uid 65534 (root is not held back by Landlock) in
# the directory session_helpers.bash makes; the grant is made outside the
# session, as a human would, and starts the broker there.

load helpers
load session_helpers

setup() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	session_setup
	# client.py SOCKET: a hand-written client of the broker's protocol
	# naming the granted program: the old release operation, then a run
	# with its own descriptors and an LD_PRELOAD of its choosing. Prints
	# what came back (never a value: it says whether the canary was in
	# any byte it received).
	cat >"$S/client.py" <<'EOF'
import base64, glob, json, os, socket, sys
sock_path = glob.glob(os.environ["XDG_RUNTIME_DIR"] + "/latch/broker-*.sock")[0]
canary = os.environ["PROBE_CANARY"].encode()
got = b""
def b64(s):
    return base64.b64encode(s.encode()).decode()
def talk(req, fds=None):
    global got
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    data = (json.dumps(req) + "\n").encode()
    if fds:
        socket.send_fds(s, [data], fds)
    else:
        s.sendall(data)
    s.settimeout(20)
    buf = b""
    while True:
        try:
            c = s.recv(65536)
        except socket.timeout:
            break
        if not c:
            break
        buf += c
        if not fds:
            break
    s.close()
    got += buf
    return buf
ans = talk({"op": "release", "names": ["canary"], "cmd": "/usr/bin/sleep", "argv": [b64("sleep")], "cwd": "/"})
print("release=" + json.loads(ans.split(b"\n")[0]).get("message", "?"))
r, w = os.pipe()
null = os.open("/dev/null", os.O_RDONLY)
cwd = os.open("/", os.O_PATH)
req = {"op": "run", "cmd": "/usr/bin/sleep", "argv": [b64("sleep"), b64("0.2")],
       "env": [b64("LD_PRELOAD=" + sys.argv[1]), b64("PATH=/usr/bin:/bin")],
       "refs": [{"var": "X", "name": "canary", "file": False}, {"var": "F", "name": "canary", "file": True}],
       "cwd": "/", "session": True}
ans = talk(req, [null, w, w, cwd])
os.close(w)
out = os.read(r, 65536)
got += out
lines = [json.loads(l) for l in ans.split(b"\n") if l]
print("run=" + ",".join(sorted(k for l in lines for k in l.keys())))
print("exit=%s" % [l.get("exit") for l in lines if "exit" in l])
print("canary_received=" + ("yes" if canary in got else "no"))
EOF
	# dump.so: preloaded, it writes the environment of any process whose X
	# holds a value (not a reference) to $S/pub/dumped.
	command -v cc >/dev/null || skip "no C compiler for the preload library"
	cat >"$S/dump.c" <<EOF
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
extern char **environ;
__attribute__((constructor)) static void dump(void)
{
	const char *x = getenv("X");
	if (!x || !strncmp(x, "latch://", 8))
		return;
	FILE *f = fopen("$S/pub/dumped", "w");
	for (char **e = environ; f && *e; e++)
		fprintf(f, "%s\n", *e);
	if (f)
		fclose(f);
}
EOF
	cc -shared -fPIC -o "$S/dump.so" "$S/dump.c"
	chmod 0644 "$S/client.py" "$S/dump.so"
	nobody_vault
	# The human's grant, outside any session: it starts the broker there.
	as_nobody "$SL" grant canary --cmd sleep --ttl 10m --passphrase-fd 3 3<<<"$PASS" >/dev/null
	broker_running
}

teardown() {
	bg_cleanup
}

# granted_sleep: the pid of the `sleep 300` a runner started for uid
# 65534 (CHILD), its runner (RUNNER) and the broker (BROKER), once there.
granted_sleep() {
	local i p
	for ((i = 0; i < 200; i++)); do
		for p in $(pgrep -u "$NOBODY" -x sleep 2>/dev/null); do
			[ "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" = "sleep 300 " ] || continue
			CHILD=$p
			RUNNER=$(awk '/^PPid:/ {print $2}' "/proc/$p/status")
			BROKER=$(awk '/^PPid:/ {print $2}' "/proc/$RUNNER/status")
			bg_track "$CHILD"
			br_is_broker "$BROKER" && return 0
			echo "sleep $CHILD's parent $RUNNER is not a runner of a broker" >&2
			return 1
		done
		sleep 0.05
	done
	echo "the granted sleep never started" >&2
	return 1
}

@test "P8: inside a session, a granted child's environ, mem, --file descriptor, ptrace and signals are out of reach, and so are its runner and the broker; outside, its environ shows the value (N1)" {
	local run_pid sess
	# The agent, inside a session: a granted run in the background, then
	# (once the test names the targets) every attack, then its own
	# latch run ended, as a harness would.
	cat >"$S/agent.sh" <<EOF
"$SL" run --env X=latch://canary --file F=latch://canary -- sleep 300 </dev/null >"$S/pub/run.out" 2>"$S/pub/run.err" &
echo \$! >"$S/pub/latchrun"
while [ ! -s "$S/pub/targets" ]; do sleep 0.05; done
read child runner broker <"$S/pub/targets"
PROBE_CANARY="$CANARY" "$PY" "$S/probe.py" "\$child" kill0 environ mem fd3 ptrace term >"$S/pub/child.txt" 2>&1
PROBE_CANARY="$CANARY" "$PY" "$S/probe.py" "\$runner" kill0 environ mem ptrace term >"$S/pub/runner.txt" 2>&1
PROBE_CANARY="$CANARY" "$PY" "$S/probe.py" "\$broker" kill0 environ mem ptrace term >"$S/pub/broker.txt" 2>&1
PROBE_CANARY="$CANARY" "$PY" "$S/client.py" "$S/dump.so" >"$S/pub/client.txt" 2>&1
"$SL" status >"$S/pub/status.txt" 2>&1
kill -TERM \$(cat "$S/pub/latchrun")
wait
EOF
	chmod 0644 "$S/agent.sh"
	setsid -w "${AS[@]}" "$SL" session -- sh "$S/agent.sh" </dev/null >"$S/pub/session.out" 2>"$S/pub/session.err" &
	sess=$!
	bg_track "$sess"
	granted_sleep
	echo "$CHILD $RUNNER $BROKER" >"$S/pub/targets.tmp"
	chown "$NOBODY" "$S/pub/targets.tmp"
	mv "$S/pub/targets.tmp" "$S/pub/targets"
	local rc=0
	wait "$sess" || rc=$?
	[ "$rc" -eq 0 ] || { echo "the session exited $rc: $(cat "$S/pub/session.err")" >&2; false; }
	grep -q "inside a latch session" "$S/pub/status.txt" ||
		{ echo "latch status inside: $(cat "$S/pub/status.txt")" >&2; false; }

	# Every attack on the child, the runner and the broker was refused.
	[ "$(cat "$S/pub/child.txt")" = $'kill0=EPERM\nenviron=EACCES\nmem=EACCES\nfd3=EACCES\nptrace=EPERM\nterm=EPERM' ] ||
		{ echo "on the child: $(cat "$S/pub/child.txt")" >&2; false; }
	[ "$(cat "$S/pub/runner.txt")" = $'kill0=EPERM\nenviron=EACCES\nmem=EACCES\nptrace=EPERM\nterm=EPERM' ] ||
		{ echo "on the runner: $(cat "$S/pub/runner.txt")" >&2; false; }
	[ "$(cat "$S/pub/broker.txt")" = $'kill0=EPERM\nenviron=EACCES\nmem=EACCES\nptrace=EPERM\nterm=EPERM' ] ||
		{ echo "on the broker: $(cat "$S/pub/broker.txt")" >&2; false; }
	# The hand-written client: no release operation; a run of the granted
	# program with its own descriptors starts it (a hello, the exit with the
	# redaction counts) and hands back nothing else; its LD_PRELOAD never
	# loaded.
	local client
	client=$(cat "$S/pub/client.txt")
	[ "$client" = $'release=unknown op\nrun=exit,ok,redacted,release,runner,token\nexit=[0]\ncanary_received=no' ] ||
		{ echo "the client: $client" >&2; false; }
	[ ! -e "$S/pub/dumped" ] || { echo "the preloaded library ran in the granted program" >&2; false; }

	# Ending its own latch run ended the child (and the runner).
	wait_gone "$CHILD" 100
	wait_gone "$RUNNER" 100

	# The record: the release names the runner and says "in a session".
	run as_nobody "$SL" audit --json
	[ "$status" -eq 0 ]
	"$PY" -c '
import json, sys
r = [x for x in json.loads(sys.argv[1]) if x["event"] == "release" and x.get("decision") == "allow"]
assert r and r[0]["runner"] == int(sys.argv[2]) and r[0]["session"] is True, r
assert all(x["session"] is True for x in r), r
' "$output" "$RUNNER"
	assert_absent "$CANARY" "$S"/pub/*
}

@test "N1, outside a session: the same probe reads a granted child's environ and --file descriptor; the runner and the broker stay unreadable" {
	setsid -w "${AS[@]}" "$SL" run --env X=latch://canary --file F=latch://canary -- sleep 300 \
		</dev/null >"$S/pub/run.out" 2>"$S/pub/run.err" &
	local bg=$!
	bg_track "$bg"
	granted_sleep
	run env PROBE_CANARY="$CANARY" "${AS[@]}" "$PY" "$S/probe.py" "$CHILD" kill0 environ mem fd3
	[ "$status" -eq 0 ]
	[ "$output" = $'kill0=ok\nenviron=ok canary\nmem=ok\nfd3=ok canary' ] || { echo "outside: $output" >&2; false; }
	# The runner and the broker are not dumpable: the same uid reads
	# neither (P6), though it may signal them outside a session.
	run env PROBE_CANARY="$CANARY" "${AS[@]}" "$PY" "$S/probe.py" "$RUNNER" kill0 environ mem
	[ "$output" = $'kill0=ok\nenviron=EACCES\nmem=EACCES' ] || { echo "the runner: $output" >&2; false; }
	run env PROBE_CANARY="$CANARY" "${AS[@]}" "$PY" "$S/probe.py" "$BROKER" kill0 environ mem
	[ "$output" = $'kill0=ok\nenviron=EACCES\nmem=EACCES' ] || { echo "the broker: $output" >&2; false; }
	kill -TERM "$bg"
	local rc=0
	wait "$bg" || rc=$?
	[ "$rc" -eq 143 ] || { echo "latch run exited $rc: $(cat "$S/pub/run.err")" >&2; false; }
	wait_gone "$CHILD" 100
}

@test "inside a session latch run works unchanged: stdin, stdout, stderr (pipe, file), working directory, --file, statuses, a relayed signal" {
	mkdir "$S/pub/work"
	chown "$NOBODY" "$S/pub/work"
	printf 'line one\nline two\n' >"$S/pub/in.txt"
	chmod 0644 "$S/pub/in.txt"
	as_nobody "$SL" grant canary --cmd sh --ttl 10m --passphrase-fd 3 3<<<"$PASS" >/dev/null
	cat >"$S/agent2.sh" <<EOF
cd "$S/pub/work"
R="$SL run --env X=latch://canary --file F=latch://canary --"
# A file in, a pipe out, a file for stderr; the working directory; the value.
\$R sh -c '[ "\$X" = "$CANARY" ] || exit 9; [ "\$(cat "\$F")" = "\$X" ] || exit 10; pwd; cat; echo to-err >&2' \
	<"$S/pub/in.txt" 2>"$S/pub/err.txt" | tr a-z A-Z >"$S/pub/out.txt"
for s in 0 3 42; do \$R sh -c "exit \$s"; echo "status=\$?"; done
\$R sh -c 'kill -TERM \$\$'; echo "status=\$?"
# kill -INT of latch run reaches the child once, through the runner.
\$R sh -c 'trap "echo INT >>ints; exit 5" INT; touch started; while :; do sleep 0.05; done' &
p=\$!
while [ ! -e started ]; do sleep 0.05; done
kill -INT \$p
wait \$p; echo "status=\$?"
EOF
	chmod 0644 "$S/agent2.sh"
	sx session -- sh "$S/agent2.sh"
	want_status 0
	[ "$out" = $'status=0\nstatus=3\nstatus=42\nstatus=143\nstatus=5' ] || { echo "statuses: $out / $err" >&2; false; }
	[ "$(cat "$S/pub/out.txt")" = "$(printf '%s\nLINE ONE\nLINE TWO' "$(echo "$S/pub/work" | tr a-z A-Z)")" ] ||
		{ echo "stdout: $(cat "$S/pub/out.txt")" >&2; false; }
	[ "$(cat "$S/pub/err.txt")" = to-err ]
	[ "$(cat "$S/pub/work/ints")" = INT ]
	assert_absent "$CANARY" "$S"/pub/*.txt "$LX_OUT" "$LX_ERR"
}

@test "inside a session, under a terminal: the child writes to it, and one Ctrl-C reaches the child exactly once" {
	need_pty
	as_nobody "$SL" grant canary --cmd "$PY" --ttl 10m --passphrase-fd 3 3<<<"$PASS" >/dev/null
	cat >"$S/count.py" <<'EOF2'
import os, signal, sys, time
n = 0
def on_int(sig, frame):
    global n
    n += 1
signal.signal(signal.SIGINT, on_int)
sys.stdout.write("READY tty=%s\n" % os.isatty(1))
sys.stdout.flush()
deadline = time.monotonic() + 20
while n == 0 and time.monotonic() < deadline:
    time.sleep(0.02)
time.sleep(1)  # a second SIGINT would arrive within this second
with open(sys.argv[1], "w") as f:
    f.write(str(n))
sys.exit(0 if n else 3)
EOF2
	chmod 0644 "$S/count.py"
	local rc=0
	pty_run --timeout 30 --log "$S/pub/tty.log" --answer "READY tty=True" $'\x03' -- \
		"${AS[@]}" "$SL" session -- "$SL" run --env X=latch://canary -- "$PY" "$S/count.py" "$S/pub/count" || rc=$?
	[ "$rc" -eq 0 ] || { echo "the session under a pty exited $rc: $(cat -v "$S/pub/tty.log")" >&2; false; }
	[ "$(cat "$S/pub/count")" = 1 ] || { echo "the child saw $(cat "$S/pub/count") SIGINTs" >&2; false; }
}
