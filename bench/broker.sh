#!/bin/sh
# bench/broker.sh: what `latch run` adds to running a command, with a live
# grant and 20 references (goal: under 3 ms median), beside `dotenvx run`
# with 20 encrypted keys, measured in the same run. Redaction is not built,
# so this is the "redaction off" figure. `make bench` builds build/latch.
# Needs hyperfine (apt-get install hyperfine); dotenvx is skipped if
# build/bench/npm has none (bench/run.sh installs it).
set -u
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd) || exit 3
LATCH=$ROOT/build/latch
DOTENVX=$ROOT/build/bench/npm/node_modules/.bin/dotenvx
RUNS=${LATCH_BENCH_RUN_RUNS:-200}
command -v hyperfine >/dev/null 2>&1 || { echo "bench: hyperfine is needed (apt-get install hyperfine)" >&2; exit 3; }
TMP=$(mktemp -d)
export HOME=$TMP/home LATCH_HOME=$TMP/home/vault XDG_RUNTIME_DIR=$TMP/run LATCH_AGENT_IDLE=60
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cleanup() {
	for f in "$XDG_RUNTIME_DIR"/latch/agent-*.lock; do
		[ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
PASS="bench passphrase, not a secret"
p() { "$LATCH" "$@" --passphrase-fd 3 3<<EOF_P
$PASS
EOF_P
}
p init --kdf interactive >/dev/null || exit 3
names=""
: >"$TMP/refs.env"
for i in $(seq 1 20); do
	head -c 24 /dev/urandom | base64 | p set "s$i" >/dev/null || exit 3
	echo "V$i=latch://s$i" >>"$TMP/refs.env"
	names="$names s$i"
done
# shellcheck disable=SC2086
p grant $names --ttl 30m --cmd /bin/true >/dev/null || exit 3

median() { /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.2f %.2f" % (r["median"]*1e3, r["stddev"]*1e3))' "$1"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$TMP/true.json" /bin/true >/dev/null 2>&1
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$TMP/run.json" \
	"$LATCH run --env-file $TMP/refs.env -- /bin/true" >/dev/null 2>&1
set -- $(median "$TMP/true.json")
t_true=$1
set -- $(median "$TMP/run.json")
t_run=$1 sd_run=$2
over=$(/usr/bin/python3 -c "print('%.2f' % ($t_run - $t_true))")
printf '%-52s %8s ms  (sd %s)\n' "/bin/true alone, median" "$t_true" ""
printf '%-52s %8s ms  (sd %s)\n' "latch run, 20 references, live grant, median" "$t_run" "$sd_run"
printf '%-52s %8s ms  goal < 3 ms\n' "latch run overhead" "$over"
echo "  (each release is an audit record made durable (fsync) before the child starts, and"
echo "   an exit record after it ends; the release log grows by 2 records per run)"

if [ -x "$DOTENVX" ]; then
	cd "$TMP" || exit 3
	for i in $(seq 1 20); do
		"$DOTENVX" set "V$i" "$(head -c 24 /dev/urandom | base64)" -f "$TMP/.env" >/dev/null 2>&1
	done
	hyperfine -N --warmup 2 --runs 20 --export-json "$TMP/dx.json" \
		"$DOTENVX run -f $TMP/.env -- /bin/true" >/dev/null 2>&1
	set -- $(median "$TMP/dx.json")
	printf '%-52s %8s ms  (sd %s)\n' "dotenvx run, 20 encrypted keys, median" "$1" "$2"
else
	echo "dotenvx: not installed in build/bench/npm (bench/run.sh installs it): skipped"
fi
