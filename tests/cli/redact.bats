#!/usr/bin/env bats
# Redaction (issue 13, P4/N2): what a child writes to its stdout, stderr
# or terminal reaches the caller with every occurrence of a granted value,
# in any common encoding, replaced by [latch:NAME]; the bytes around it
# unchanged; output held back no longer than a value could still be
# completing (a prompt without a newline shows at once); 1 GiB of binary
# output byte for byte. rev defeats it (N2). The exit record counts the
# redactions per name; --no-redact says so in the release record.

load helpers

setup() {
	br_setup
	br_grant canary --ttl 10m
	T=$BATS_TEST_TMPDIR
	# emit.py MODE: writes pieces "<A i>" FORM "<B i>" to stdout and
	# stderr, the forms of $X (raw, base64 alone and inside a larger blob
	# at each alignment, url-safe, hex, HEX, percent, json, utf-16le) in
	# pieces a byte at a time with sleeps, across 4096 and 65536 byte
	# boundaries, with CRLF, and cut by colour codes.
	cat >"$T/emit.py" <<'PYEOF'
import base64, binascii, json, os, sys, time, urllib.parse
v = os.environ["X"].encode()
mode = sys.argv[1]
def forms():
    out = [("raw", v), ("b64", base64.b64encode(v)), ("b64url", base64.urlsafe_b64encode(v).rstrip(b"=")),
           ("hex", binascii.hexlify(v)), ("HEX", binascii.hexlify(v).upper()),
           ("pct", urllib.parse.quote_from_bytes(v, safe="").encode()),
           ("json", json.dumps(v.decode())[1:-1].encode()), ("utf16", v.decode().encode("utf-16-le"))]
    for k in range(3):
        out.append(("blob%d" % k, base64.b64encode(b"\x00\xff\x10"[:k] + b"some bytes before " + v + b" and after")))
    return out
def write(fd, b, bytewise=False):
    if bytewise:
        for i in range(len(b)):
            os.write(fd, b[i:i+1])
            time.sleep(0.001)
    else:
        os.write(fd, b)
if mode == "forms":
    for fd in (1, 2):
        for i, (name, f) in enumerate(forms()):
            write(fd, b"<A%d %s>" % (i, name.encode()) + f + b"<B%d>\r\n" % i)
elif mode == "bytewise":
    for fd in (1, 2):
        write(fd, b"<A0>" + v + b"<B0>\r\n", bytewise=True)
elif mode == "boundaries":
    for edge in (4096, 65536):
        pad = b"." * (edge - 4 - len(v) // 2)
        for fd in (1, 2):
            write(fd, b"<A>" + pad + v + b"<B>\n")
elif mode == "colour":
    half = len(v) // 2
    for fd in (1, 2):
        write(fd, b"<A>\x1b[1;31m" + v[:half] + b"\x1b[0m" + v[half:] + b"\x1b[32m<B>\x1b[0m\n")
PYEOF
}

teardown() {
	bg_cleanup
}

# no_value_anywhere FILE...: no form of the canary, nor half of it, in any.
no_value_anywhere() {
	local f
	for f in "$@"; do
		CANARY=$CANARY "$PY" - "$f" <<'PYEOF'
import base64, binascii, os, sys
v = os.environ["CANARY"].encode()
data = open(sys.argv[1], "rb").read()
bad = [v, base64.b64encode(v), binascii.hexlify(v), binascii.hexlify(v).upper(), v.decode().encode("utf-16-le"),
       v[: len(v) // 2 + 2], v[len(v) // 2 - 2 :]]
assert not any(b in data for b in bad), "a form of the value, or half of it, is in %s" % sys.argv[1]
PYEOF
	done
}

@test "every encoding, each base64 alignment inside a larger blob, on stdout and stderr: each is a marker, the text around is byte-identical" {
	br_run --env X=latch://canary -- "$PY" "$T/emit.py" forms
	want_status 0
	no_value_anywhere "$LX_OUT" "$LX_ERR"
	local f
	for f in "$LX_OUT" "$LX_ERR"; do
		"$PY" - "$f" <<'PYEOF'
import re, sys
data = open(sys.argv[1], "rb").read()
lines = data.split(b"\r\n")[:-1]
assert len(lines) == 11, lines
for i, line in enumerate(lines):
    m = re.fullmatch(rb"<A%d (\w+)>(.*)<B%d>" % (i, i), line, re.S)
    assert m, line
    name, mid = m.group(1), m.group(2)
    assert b"[latch:canary]" in mid, (name, mid)
    if name in (b"raw", b"b64", b"hex", b"HEX", b"pct", b"json", b"utf16", b"b64url"):
        assert mid == b"[latch:canary]", (name, mid)
PYEOF
	done
}

@test "a byte per write with sleeps, 4096- and 65536-byte boundaries, CRLF, a value cut by colour codes: never shown; the rest intact" {
	br_run --env X=latch://canary -- "$PY" "$T/emit.py" bytewise
	want_status 0
	[ "$(cat "$LX_OUT")" = "$(printf '<A0>[latch:canary]<B0>\r')" ]
	[ "$(cat "$LX_ERR")" = "$(printf '<A0>[latch:canary]<B0>\r')" ]
	br_run --env X=latch://canary -- "$PY" "$T/emit.py" boundaries
	want_status 0
	no_value_anywhere "$LX_OUT" "$LX_ERR"
	"$PY" - "$LX_OUT" "$LX_ERR" "$CANARY" <<'PYEOF'
import sys
v = sys.argv[3].encode()
for f in sys.argv[1:3]:
    lines = open(f, "rb").read().split(b"\n")[:-1]
    assert len(lines) == 2, lines
    for edge, line in zip((4096, 65536), lines):
        pad = b"." * (edge - 4 - len(v) // 2)
        assert line == b"<A>" + pad + b"[latch:canary]<B>", (edge, line[-60:])
PYEOF
	br_run --env X=latch://canary -- "$PY" "$T/emit.py" colour
	want_status 0
	no_value_anywhere "$LX_OUT" "$LX_ERR"
	[ "$(cat "$LX_OUT")" = "$(printf '<A>\033[1;31m[latch:canary]\033[32m<B>\033[0m')" ] ||
		{ echo "stdout: $(cat -v "$LX_OUT")" >&2; false; }
	[ "$(cat "$LX_ERR")" = "$(cat "$LX_OUT")" ]
}

@test "1 GiB of binary output with no value passes byte for byte; stdout and stderr stay apart" {
	local want_out want_err
	want_out=$(head -c 1073741824 /dev/zero | openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 -nosalt | sha256sum)
	want_err=$(head -c 67108864 /dev/zero | openssl enc -aes-128-ctr -K ffeeddccbbaa99887766554433221100 -iv 00000000000000000000000000000000 -nosalt | sha256sum)
	"$LATCH" run --env X=latch://canary -- sh -c '
		head -c 67108864 /dev/zero | openssl enc -aes-128-ctr -K ffeeddccbbaa99887766554433221100 -iv 00000000000000000000000000000000 -nosalt >&2 &
		head -c 1073741824 /dev/zero | openssl enc -aes-128-ctr -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 -nosalt
		wait' </dev/null 2> >(sha256sum >"$T/err.sum") | sha256sum >"$T/out.sum"
	local i
	for ((i = 0; i < 100; i++)); do [ -s "$T/err.sum" ] && break; sleep 0.1; done
	[ "$(cat "$T/out.sum")" = "$want_out" ]
	[ "$(cat "$T/err.sum")" = "$want_err" ]
}

@test "a prompt without a newline appears before the child waits for its input" {
	"$PY" - "$LATCH" <<'PYEOF'
import os, select, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "run", "--env", "X=latch://canary", "--", "sh", "-c",
                      'printf "Password: "; read -r answer; echo "got:$answer"'],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
seen = b""
deadline = time.monotonic() + 10
while b"Password: " not in seen and time.monotonic() < deadline:
    r, _, _ = select.select([p.stdout], [], [], 0.2)
    if r:
        seen += os.read(p.stdout.fileno(), 100)
assert seen == b"Password: ", seen
p.stdin.write(b"typed\n")
p.stdin.close()
rest = p.stdout.read()
assert p.wait() == 0 and rest == b"got:typed\n", rest
PYEOF
}

@test "N2: rev defeats redaction (the value reversed is not a form latch knows)" {
	br_run --env X=latch://canary -- sh -c 'printf "%s\n" "$X" | rev'
	want_status 0
	[ "$(cat "$LX_OUT")" = "$(printf '%s' "$CANARY" | rev)" ]
}

@test "the exit record counts the redactions per name; --no-redact shows the value and says so in the release record" {
	set_secret other "other-value-Q8z7x6w5v4u3"
	br_grant canary other --ttl 10m
	br_run --env X=latch://canary --env Y=latch://other -- sh -c 'echo "$X $X"; echo "$Y" >&2; echo "$X" >&2'
	want_status 0
	[ "$(cat "$LX_OUT")" = "[latch:canary] [latch:canary]" ]
	[ "$(cat "$LX_ERR")" = "$(printf '[latch:other]\n[latch:canary]')" ]
	br_run --no-redact --env X=latch://canary -- sh -c 'echo "$X"'
	want_status 0
	[ "$(cat "$LX_OUT")" = "$CANARY" ]
	br_audit '
ex = [x for x in r if x["event"] == "exit"][-2:]
assert ex[0]["redacted"] == {"canary": 3, "other": 1} and ex[0]["redactions"] == 4, ex
assert "redacted" not in ex[1], ex
rel = [x for x in r if x["event"] == "release"][-2:]
assert "redact" not in rel[0] and rel[1]["redact"] is False, rel
'
}

@test "a value shorter than 6 bytes: set and grant warn that redaction does not look for it" {
	printf 'abc12' >"$T/tiny"
	lx set tiny --file "$T/tiny" --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	[[ $err == *"latch: warning: 'tiny' is shorter than 6 bytes: redaction does not look for it"* ]]
	lx grant tiny --ttl 1m --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 0
	[[ $err == *"latch: warning: 'tiny' is shorter than 6 bytes"* ]]
}

@test "a reader that stops (latch run -- yes | head -1): the child gets its SIGPIPE, as without latch" {
	local rc=0
	timeout 20 setsid -w "$LATCH" run --env X=latch://canary -- yes </dev/null 2>"$T/err" | head -1 >"$T/out" ||
		true
	rc=${PIPESTATUS[0]}
	[ "$(cat "$T/out")" = y ]
	[ "$rc" -eq 141 ] || { echo "latch run exited $rc: $(cat "$T/err")" >&2; false; }
}

@test "a one-shot release (passphrase, no grant) is redacted by the runner latch run forks, and its exit record counts it" {
	lx revoke --all </dev/null
	want_status 0
	br_run --passphrase-fd 3 --env X=latch://canary -- sh -c 'echo "$X"; echo "$X" >&2' 3<<<"$PASS"
	want_status 0
	[ "$(cat "$LX_OUT")" = "[latch:canary]" ]
	# After latch's own line saying the passphrase releases it for this run.
	[ "$(tail -n 1 "$LX_ERR")" = "[latch:canary]" ]
	assert_absent "$CANARY" "$LX_OUT" "$LX_ERR"
	br_audit 'ex = [x for x in r if x["event"] == "exit"][-1]; assert ex["redacted"] == {"canary": 2} and ex["redactions"] == 2, ex'
}
