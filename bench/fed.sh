#!/bin/sh
# bench/fed.sh: what `latch run --fed` adds to `latch run` when the model
# token is cached (goal: under 2 ms), measured side by side, run by run in
# ABBA order on one machine; and beside it the cold exchange against a
# local token server (tests/fed/tokenserver.py on 127.0.0.1, plain HTTP:
# the figure is latch's own work plus libcurl's load, not a network's).
# `make bench` builds build/latch. Needs hyperfine for the cold figure,
# /usr/bin/python3 with python3-cryptography (scripts/deps.sh installs it)
# and openssl.
set -u
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd) || exit 3
LATCH=$ROOT/build/latch
FED=$ROOT/tests/fed
PY=/usr/bin/python3
PAIRS=${LATCH_BENCH_FED_PAIRS:-400}
COLD=${LATCH_BENCH_FED_COLD:-50}
TMP=$(mktemp -d) || exit 3
srv=
cleanup() {
	[ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export HOME=$TMP/home LATCH_HOME=$TMP/home/vault XDG_RUNTIME_DIR=$TMP/run XDG_CONFIG_HOME=$TMP/home/config
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$TMP/srv" && chmod 700 "$XDG_RUNTIME_DIR"
unset ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN ANTHROPIC_BASE_URL

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/rsa.pem" 2>/dev/null || exit 3
"$PY" "$FED/jwt.py" jwks "$TMP/rsa.pem:bench" >"$TMP/jwks.json" || exit 3
# No jti: the same identity token may be exchanged again, once per cold run.
"$PY" "$FED/jwt.py" sign --key "$TMP/rsa.pem" --kid bench --no-jti --exp-in 3600 >"$TMP/idtoken" || exit 3
"$PY" "$FED/tokenserver.py" --dir "$TMP/srv" --jwks "$TMP/jwks.json" &
srv=$!
i=0
while [ ! -s "$TMP/srv/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$TMP/srv/port" ] || { echo "bench: the token server did not start" >&2; exit 3; }
cat >"$TMP/profile.json" <<EOF
{"version": "1.0",
 "authentication": {"type": "oidc_federation", "federation_rule_id": "fdrl_bench",
                    "identity_token": {"source": "file", "path": "$TMP/idtoken"}},
 "organization_id": "org_bench", "base_url": "http://127.0.0.1:$(cat "$TMP/srv/port")"}
EOF
"$LATCH" fed add bench --from "$TMP/profile.json" || exit 3
"$LATCH" fed token bench >/dev/null || { echo "bench: the first exchange failed" >&2; exit 3; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$PY" - "$LATCH" "$PAIRS" <<'PY'
import os, statistics, subprocess, sys, time
latch, pairs = sys.argv[1], int(sys.argv[2])
cmds = {"latch run": [latch, "run", "--", "/bin/true"],
        "latch run --fed (cached)": [latch, "run", "--fed", "bench", "--", "/bin/true"],
        "/bin/true": ["/bin/true"]}
t = {k: [] for k in cmds}
order = list(cmds)
for i in range(pairs):
    for k in (order if i % 2 == 0 else order[::-1]):
        s = time.perf_counter()
        rc = subprocess.run(cmds[k]).returncode
        d = time.perf_counter() - s
        if rc != 0:
            sys.exit("bench: %s exited %d" % (k, rc))
        if i >= 20:
            t[k].append(d * 1000)
m = {k: statistics.median(v) for k, v in t.items()}
row = lambda a, b, c="": print("%-58s %8s ms  %s" % (a, b, c))
print("run by run, alternating (%d rounds after 20 of warm-up), medians:" % len(t["/bin/true"]))
row("/bin/true alone", "%.2f" % m["/bin/true"])
row("latch run -- /bin/true", "%.2f" % m["latch run"])
row("latch run --fed bench -- /bin/true, token cached", "%.2f" % m["latch run --fed (cached)"])
d = m["latch run --fed (cached)"] - m["latch run"]
row("what --fed adds (difference of medians)", "%+.2f" % d, "goal < 2 ms: %s" % ("met" if d < 2 else "MISSED"))
PY
if command -v hyperfine >/dev/null 2>&1; then
	hyperfine -N --runs "$COLD" --warmup 3 --prepare "$LATCH fed logout bench" \
		--export-json "$TMP/cold.json" "$LATCH fed token bench" >/dev/null 2>&1 ||
		{ echo "bench: timing the cold exchange failed" >&2; exit 3; }
	"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%-58s %8.2f ms  (sd %.2f; loads libcurl, one POST to 127.0.0.1, writes the cache)" % ("latch fed token, cold (cache removed before each run)", r["median"]*1e3, r["stddev"]*1e3))' "$TMP/cold.json"
else
	echo "cold exchange: skipped (hyperfine is not installed)"
fi
n=$(grep -c '"path": "/v1/oauth/token"' "$TMP/srv/requests.jsonl" 2>/dev/null || echo 0)
echo "token requests the server saw: $n (1 + the cold runs and their warm-up; none from the cached runs)"
