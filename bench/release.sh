#!/bin/sh
# bench/release.sh: what `latch run` with 20 references and a live grant adds
# to /bin/true, back to back and after a 300 ms idle pause (issue 14's goal:
# at most 1.5 ms over /bin/true in both), beside `env /bin/true` (what any exec
# wrapper costs) and, with LATCH_BASELINE, an older latch binary, all in the
# same run. Every overhead is against /bin/true timed the same way (back to
# back, or after the same pause). Figures are medians with min–max of all the
# runs of every block. A missed goal is reported, never an exit status; set-up
# failures exit 3 with one line.
#
# `make build/latch` builds build/latch. Needs hyperfine (apt-get install
# hyperfine) and python3 (to read hyperfine's JSON).
#
# Knobs (environment):
#   LATCH_BENCH_RUN_RUNS=200   runs per block, back to back (after 10 warm-up runs)
#   LATCH_BENCH_IDLE_RUNS=60   runs per block after idle (hyperfine --prepare 'sleep 0.3')
#   LATCH_BENCH_ROUNDS=2       rounds of blocks; the order of the commands is
#                              reversed every other round (ABBA), so that each
#                              command sees the same machine on average
#   LATCH_BASELINE=PATH        an older latch: the same latch run figures with
#                              its own vault (made by it: the same 20 values,
#                              its own broker and grant), in the same rounds
set -u
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd) || exit 3
LATCH=$ROOT/build/latch
BASELINE=${LATCH_BASELINE:-}
RUNS=${LATCH_BENCH_RUN_RUNS:-200}
IDLE_RUNS=${LATCH_BENCH_IDLE_RUNS:-60}
ROUNDS=${LATCH_BENCH_ROUNDS:-2}
NREFS=20
GOAL_MS=1.5
IDLE=0.3

die() {
	echo "bench: $*" >&2
	exit 3
}
for v in "$RUNS" "$IDLE_RUNS" "$ROUNDS"; do
	case $v in '' | *[!0-9]* | 0) die "LATCH_BENCH_RUN_RUNS, LATCH_BENCH_IDLE_RUNS and LATCH_BENCH_ROUNDS must be whole numbers above 0" ;; esac
done
[ -x "$LATCH" ] || die "missing $LATCH: run 'make build/latch'"
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || die "LATCH_BASELINE '$BASELINE' is not an executable file"
command -v hyperfine >/dev/null 2>&1 || die "hyperfine is needed (apt-get install hyperfine)"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to read hyperfine's JSON"

# --- temporary directory, brokers, cleanup on every exit path (bench/lib.sh) ---
# stop_brokers: every broker started under TMP, by the pid in its lock file,
# then up to 2 s for each to be gone. Called by lib.sh's cleanup.
# shellcheck disable=SC2317 # called from the EXIT trap only
stop_brokers() {
	pids=
	for f in "$TMP"/*/run/latch/broker-*.lock; do
		[ -s "$f" ] || continue
		pid=$(cat "$f" 2>/dev/null)
		case $pid in '' | *[!0-9]*) continue ;; esac
		kill "$pid" 2>/dev/null && pids="$pids $pid"
	done
	for pid in $pids; do
		n=0
		while [ "$n" -lt 20 ] && kill -0 "$pid" 2>/dev/null &&
			[ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
			sleep 0.1
			n=$((n + 1))
		done
	done
}
BENCH_BEFORE_RM=stop_brokers
. "$ROOT/bench/lib.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/latch-release.XXXXXX") || die "mktemp failed"
LOG=$TMP/log
: >"$LOG"

# q ARG: ARG quoted for hyperfine's own word splitting (-N runs no shell).
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
# lastlog: the log's last line, for a one-line failure message.
lastlog() { tail -n 1 "$LOG" | cut -c1-200; }

export HOME="$TMP/home" LATCH_BROKER_IDLE=3600
mkdir -p "$HOME" "$TMP/values" || die "mkdir failed"
PASS=$TMP/passphrase
printf '%s\n' "bench passphrase, not a secret" >"$PASS"
REFS=$TMP/refs.env
: >"$REFS"
names=
i=1
while [ "$i" -le "$NREFS" ]; do
	head -c 24 /dev/urandom | base64 >"$TMP/values/s$i" || die "cannot make value $i"
	echo "V$i=latch://s$i" >>"$REFS"
	names="$names s$i"
	i=$((i + 1))
done

# make_vault KEY BINARY: a vault in TMP/KEY made by BINARY (init --kdf
# interactive, the 20 values, a grant of all 20 for /bin/true), its own
# runtime directory and so its own broker; then one run to check the release.
make_vault() {
	mv_key=$1 mv_bin=$2 mv_home=$TMP/$1/vault mv_rt=$TMP/$1/run
	{ mkdir -p "$mv_rt" && chmod 700 "$TMP/$mv_key" "$mv_rt"; } || die "mkdir failed"
	LATCH_HOME=$mv_home XDG_RUNTIME_DIR=$mv_rt "$mv_bin" init --kdf interactive --passphrase-fd 3 \
		3<"$PASS" >>"$LOG" 2>&1 || die "latch init ($mv_bin) failed: $(lastlog)"
	for n in $names; do
		LATCH_HOME=$mv_home XDG_RUNTIME_DIR=$mv_rt "$mv_bin" set "$n" --passphrase-fd 3 \
			3<"$PASS" <"$TMP/values/$n" >>"$LOG" 2>&1 || die "latch set $n ($mv_bin) failed: $(lastlog)"
	done
	# shellcheck disable=SC2086 # one name per word
	LATCH_HOME=$mv_home XDG_RUNTIME_DIR=$mv_rt "$mv_bin" grant $names --ttl 30m --cmd /bin/true \
		--passphrase-fd 3 3<"$PASS" >>"$LOG" 2>&1 || die "latch grant ($mv_bin) failed: $(lastlog)"
	mv_locked=
	for f in "$mv_rt"/latch/broker-*.lock; do
		[ -s "$f" ] && mv_locked=1
	done
	[ -n "$mv_locked" ] || die "latch grant ($mv_bin) left no broker lock file under $mv_rt/latch"
	LATCH_HOME=$mv_home XDG_RUNTIME_DIR=$mv_rt "$mv_bin" run --env-file "$REFS" -- /bin/true \
		</dev/null >>"$LOG" 2>&1 || die "latch run with the grant failed ($mv_bin): $(lastlog)"
}
make_vault new "$LATCH"
[ -z "$BASELINE" ] || make_vault base "$BASELINE"

# --- timing ----------------------------------------------------------------------
# The commands, by key: a label, the binary and the vault it runs with.
keys="true env new"
[ -z "$BASELINE" ] || keys="$keys base"
label() {
	case $1 in
	true) echo "/bin/true" ;;
	env) echo "env /bin/true" ;;
	new) echo "latch run, $NREFS refs, live grant (this build)" ;;
	base) echo "latch run, $NREFS refs, live grant (baseline)" ;;
	esac
}
# hf KEY MODE ROUND: one hyperfine block of KEY in MODE (b2b or idle),
# its JSON in TMP/json/KEY-MODE-ROUND.json.
mkdir "$TMP/json" || die "mkdir failed"
hf() {
	case $1 in
	true) hf_cmd=/bin/true hf_dir=new hf_bin= ;;
	env) hf_cmd="env /bin/true" hf_dir=new hf_bin= ;;
	new) hf_bin=$LATCH hf_dir=new ;;
	base) hf_bin=$BASELINE hf_dir=base ;;
	esac
	[ -z "$hf_bin" ] || hf_cmd="$(q "$hf_bin") run --env-file $(q "$REFS") -- /bin/true"
	if [ "$2" = b2b ]; then
		set -- "$1" "$2" "$3" --warmup 10 --runs "$RUNS"
	else
		set -- "$1" "$2" "$3" --warmup 2 --runs "$IDLE_RUNS" --prepare "sleep $IDLE"
	fi
	hf_out=$TMP/json/$1-$2-$3.json
	hf_key=$1
	shift 3
	echo "== $hf_key: $hf_cmd $*" >>"$LOG"
	run env LATCH_HOME="$TMP/$hf_dir/vault" XDG_RUNTIME_DIR="$TMP/$hf_dir/run" \
		hyperfine -N --style none "$@" --export-json "$hf_out" "$hf_cmd" >>"$LOG" 2>&1 ||
		die "hyperfine failed on '$hf_cmd': $(lastlog)"
}

# The release path waits on the disk (fdatasync): I/O pressure is printed beside the load.
iop() { sed -n 's/^some avg10=[^ ]* avg60=\([^ ]*\).*/\1 %/p' /proc/pressure/io 2>/dev/null; }
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) iop_start=$(iop)
echo "bench: $ROUNDS rounds; each: $RUNS runs back to back, $IDLE_RUNS after ${IDLE} s idle, of: $keys" >&2
r=1
while [ "$r" -le "$ROUNDS" ]; do
	# shellcheck disable=SC2086 # one key per word
	if [ $((r % 2)) -eq 1 ]; then order=$keys; else order=$(printf '%s\n' $keys | sed -n '1!G;h;$p'); fi
	for mode in b2b idle; do
		for k in $order; do hf "$k" "$mode" "$r"; done
	done
	r=$((r + 1))
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) iop_end=$(iop)

# stats: one line per KEY-MODE: "KEY MODE median min max runs blockmedians",
# in ms, over all the runs of its blocks.
python3 - "$TMP/json" >"$TMP/stats" 2>>"$LOG" <<'PY' || die "reading hyperfine's JSON failed: $(lastlog)"
import glob, json, os, statistics, sys
pooled, blocks = {}, {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json")), key=lambda p: int(p.rsplit("-", 1)[1][:-5])):
    key, mode, _ = os.path.basename(f)[:-5].split("-")
    t = [x * 1e3 for x in json.load(open(f))["results"][0]["times"]]
    pooled.setdefault((key, mode), []).extend(t)
    blocks.setdefault((key, mode), []).append(statistics.median(t))
for (key, mode), t in pooled.items():
    print(key, mode, "%.3f %.3f %.3f %d" % (statistics.median(t), min(t), max(t), len(t)),
          ",".join("%.2f" % b for b in blocks[(key, mode)]))
PY
stat_of() { # KEY MODE FIELD (median min max runs blocks)
	awk -v k="$1" -v m="$2" -v f="$3" '$1 == k && $2 == m {
		print $(f == "median" ? 3 : f == "min" ? 4 : f == "max" ? 5 : f == "runs" ? 6 : 7) }' "$TMP/stats"
}
over() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", a - b }'; }

# --- the table ----------------------------------------------------------------------
echo "latch run with $NREFS references and a live grant, back to back and after ${IDLE} s idle (bench/release.sh)"
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1); $(uname -sr)"
echo "load:    $load_start at start, $load_end at end (1/5/15-min load averages)"
[ -z "$iop_start$iop_end" ] || echo "io:      ${iop_start:-?} at start, ${iop_end:-?} at end (/proc/pressure/io, some, avg60)"
echo "timer:   $(hyperfine --version) -N; $ROUNDS rounds (order reversed every other round), each of"
echo "         $RUNS runs back to back (--warmup 10) and $IDLE_RUNS runs after --prepare 'sleep $IDLE' (--warmup 2)"
echo "this build: $LATCH"
[ -z "$BASELINE" ] || echo "baseline:   $BASELINE (its own vault and broker)"
# (every min–max holds one en dash, 3 bytes that printf counts as 3 columns)
printf '%-12s %-44s %9s  %-19s  %-22s %s\n' "mode" "name" "median" "min–max" "over /bin/true" "block medians"
for mode in b2b idle; do
	if [ "$mode" = b2b ]; then mname="back to back"; else mname="after idle"; fi
	t0=$(stat_of true "$mode" median)
	for k in $keys; do
		med=$(stat_of "$k" "$mode" median)
		if [ "$k" = true ]; then o=; else o="$(over "$med" "$t0") over /bin/true"; fi
		mm=$(awk -v a="$(stat_of "$k" "$mode" min)" -v b="$(stat_of "$k" "$mode" max)" 'BEGIN { printf "%.2f–%.2f ms", a, b }')
		printf '%-12s %-44s %6.2f ms  %-19s  %-22s %s\n' "$mname" "$(label "$k")" "$med" "$mm" "$o" \
			"$(stat_of "$k" "$mode" blocks | sed 's/,/ /g') ($(stat_of "$k" "$mode" runs) runs)"
	done
done
verdict() { # MODE
	o=$(over "$(stat_of new "$1" median)" "$(stat_of true "$1" median)")
	if awk -v o="$o" -v g="$GOAL_MS" 'BEGIN { exit !(o <= g) }'; then echo "met ($o)"; else echo "missed ($o)"; fi
}
echo "goal: latch run $NREFS refs <= $GOAL_MS ms over /bin/true (back to back and after 300 ms idle):" \
	"back to back $(verdict b2b), after idle $(verdict idle)"
exit 0
