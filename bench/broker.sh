#!/bin/sh
# bench/broker.sh: what `latch run` adds to running a command, with a live
# grant and 20 references (goal: under 3 ms median), beside `dotenvx run`
# with 20 encrypted keys, measured in the same run. Redaction is not built,
# so this is the "redaction off" figure. For scale it also times `env` (the
# cost of any exec wrapper) and `latch run` with no and with 1 reference.
# `make bench` builds build/latch. Needs hyperfine (apt-get install
# hyperfine); dotenvx is skipped if build/bench/npm has none (bench/run.sh
# installs it).
set -u
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd) || exit 3
LATCH=$ROOT/build/latch
DOTENVX=$ROOT/build/bench/npm/node_modules/.bin/dotenvx
RUNS=${LATCH_BENCH_RUN_RUNS:-200}
command -v hyperfine >/dev/null 2>&1 || { echo "bench: hyperfine is needed (apt-get install hyperfine)" >&2; exit 3; }
TMP=$(mktemp -d)
export HOME=$TMP/home LATCH_HOME=$TMP/home/vault XDG_RUNTIME_DIR=$TMP/run LATCH_BROKER_IDLE=60
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cleanup() {
	for f in "$XDG_RUNTIME_DIR"/latch/broker-*.lock "$TMP"/base/run/latch/agent-*.lock "$TMP"/base/run/latch/broker-*.lock; do
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
# hf NAME CMD...: median and sd (ms) of CMD over $RUNS runs.
hf() {
	local name=$1
	shift
	hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$TMP/$name.json" "$*" >/dev/null 2>&1 ||
		{ echo "bench: '$*' failed" >&2; exit 3; }
	median "$TMP/$name.json"
}
set -- $(hf true /bin/true)
t_true=$1
set -- $(hf env env /bin/true)
t_env=$1
set -- $(hf noref "$LATCH" run -- /bin/true)
t_noref=$1
set -- $(hf one "$LATCH" run --env V1=latch://s1 -- /bin/true)
t_one=$1
set -- $(hf run "$LATCH" run --env-file "$TMP/refs.env" -- /bin/true)
t_run=$1 sd_run=$2
over() { /usr/bin/python3 -c "print('%.2f' % ($1 - $t_true))"; }
row() { printf '%-58s %8s ms  %s\n' "$1" "$2" "${3:-}"; }
row "/bin/true alone, median" "$t_true"
row "env /bin/true (any exec wrapper), median" "$t_env" "(+$(over "$t_env"))"
row "latch run, no reference, median" "$t_noref" "(+$(over "$t_noref"))"
row "latch run, 1 reference, live grant, median" "$t_one" "(+$(over "$t_one"))"
row "latch run, 20 references, live grant, median" "$t_run" "(+$(over "$t_run"), sd $sd_run)"
row "latch run overhead, 20 references" "$(over "$t_run")" "goal < 3 ms"
echo "  (each release is a durable sqlite commit (rollback journal, synchronous=FULL) made"
echo "   before the child starts; bench/audit.sh times that commit on its own. Exit records"
echo "   are queued and ride on the next release's commit.)"

# LATCH_BASELINE=/path/to/an/older/latch: the same 20-reference run with
# that binary (its own vault, made by it), in blocks alternating with this
# build's so both see the same machine: what a change costs the release
# path, as a difference of medians.
if [ -n "${LATCH_BASELINE:-}" ]; then
	[ -x "$LATCH_BASELINE" ] || { echo "bench: LATCH_BASELINE '$LATCH_BASELINE' is not executable" >&2; exit 3; }
	NEW_HOME=$LATCH_HOME NEW_RT=$XDG_RUNTIME_DIR
	BASE_HOME=$TMP/base/vault BASE_RT=$TMP/base/run
	mkdir -p "$BASE_RT" && chmod 700 "$TMP/base" "$BASE_RT"
	(
		export LATCH_HOME=$BASE_HOME XDG_RUNTIME_DIR=$BASE_RT
		LATCH=$LATCH_BASELINE
		p init --kdf interactive >/dev/null || exit 3
		for i in $(seq 1 20); do
			head -c 24 /dev/urandom | base64 | p set "s$i" >/dev/null || exit 3
		done
		# shellcheck disable=SC2086
		p grant $names --ttl 30m --cmd /bin/true >/dev/null || exit 3
	) || { echo "bench: the baseline's vault could not be made" >&2; exit 3; }
	new_t="" base_t=""
	for round in $(seq 1 "${LATCH_BENCH_ROUNDS:-3}"); do
		set -- $(hf "new$round" "$LATCH" run --env-file "$TMP/refs.env" -- /bin/true)
		new_t="$new_t $1"
		set -- $(export LATCH_HOME="$BASE_HOME" XDG_RUNTIME_DIR="$BASE_RT"; hf "base$round" "$LATCH_BASELINE" run --env-file "$TMP/refs.env" -- /bin/true)
		base_t="$base_t $1"
	done
	/usr/bin/python3 - "$new_t" "$base_t" <<'PY'
import statistics, sys
new = [float(x) for x in sys.argv[1].split()]
base = [float(x) for x in sys.argv[2].split()]
print("release path, 20 references, blocks alternating (medians, ms):")
print("  this build: %s   baseline: %s" % (" ".join("%.2f" % x for x in new), " ".join("%.2f" % x for x in base)))
print("  median of blocks: this build %.2f, baseline %.2f, difference %+.2f ms" %
      (statistics.median(new), statistics.median(base), statistics.median(new) - statistics.median(base)))
PY
	# Blocks of hyperfine runs drift with the machine (a shared 2-core
	# box moves by more than the change being measured): the same two
	# vaults again, alternating run by run in ABBA order, LATCH_BENCH_PAIRS
	# pairs (default 500), the first 20 left out as warm-up.
	/usr/bin/python3 - "$LATCH" "$NEW_HOME" "$NEW_RT" "$LATCH_BASELINE" "$BASE_HOME" "$BASE_RT" \
		"$TMP/refs.env" "${LATCH_BENCH_PAIRS:-500}" <<'PY'
import os, statistics, subprocess, sys, time
new, new_home, new_rt, base, base_home, base_rt, refs, pairs = sys.argv[1:]
runs = {"this build": (new, new_home, new_rt), "baseline": (base, base_home, base_rt)}
t = {k: [] for k in runs}
for i in range(int(pairs)):
    for k in (("this build", "baseline") if i % 2 == 0 else ("baseline", "this build")):
        exe, home, rt = runs[k]
        env = dict(os.environ, LATCH_HOME=home, XDG_RUNTIME_DIR=rt)
        s = time.perf_counter()
        rc = subprocess.run([exe, "run", "--env-file", refs, "--", "/bin/true"], env=env).returncode
        d = time.perf_counter() - s
        if rc != 0:
            sys.exit("bench: %s exited %d" % (k, rc))
        if i >= 20:
            t[k].append(d * 1000)
m = {k: statistics.median(v) for k, v in t.items()}
print("release path, 20 references, run by run alternating (%d pairs): this build %.3f ms, baseline %.3f ms, difference %+.3f ms"
      % (len(t["baseline"]), m["this build"], m["baseline"], m["this build"] - m["baseline"]))
PY
	for f in "$BASE_RT"/latch/agent-*.lock "$BASE_RT"/latch/broker-*.lock; do
		[ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	export LATCH_HOME=$NEW_HOME XDG_RUNTIME_DIR=$NEW_RT
fi

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
