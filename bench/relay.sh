#!/bin/sh
# bench/relay.sh: what the redaction relay costs (issue 13). Two figures,
# each beside its baseline measured in the same run:
#   - `latch run -- cat FILE >/dev/null` of a 1 GiB file (random bytes, no
#     value in it) with redaction on, against `cat FILE | cat >/dev/null`
#     (the same two processes and one pipe, without the relay); goal: at
#     most 1.3x;
#   - `latch run` of a short command with 20 references and a live grant,
#     redaction on against --no-redact; goal: at most 0.5 ms more.
# `make bench` builds build/latch. Needs hyperfine for the second figure.
# Knobs: LATCH_BENCH_RELAY_MIB (1024), LATCH_BENCH_RELAY_RUNS (3),
# LATCH_BENCH_RUN_RUNS (200).
set -u
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd) || exit 3
LATCH=$ROOT/build/latch
MIB=${LATCH_BENCH_RELAY_MIB:-1024}
RUNS=${LATCH_BENCH_RELAY_RUNS:-3}
SHORT_RUNS=${LATCH_BENCH_RUN_RUNS:-200}
TMP=$(mktemp -d)
export HOME=$TMP/home LATCH_HOME=$TMP/home/vault XDG_RUNTIME_DIR=$TMP/run LATCH_BROKER_IDLE=120
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cleanup() {
	for f in "$XDG_RUNTIME_DIR"/latch/broker-*.lock; do
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
: >"$TMP/refs.env"
for i in $(seq 1 20); do
	head -c 24 /dev/urandom | base64 | p set "s$i" >/dev/null 2>&1 || exit 3
	echo "V$i=latch://s$i" >>"$TMP/refs.env"
done
p grant $(seq -f 's%g' 1 20 | tr '\n' ' ') --ttl 1h >/dev/null || exit 3

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
head -c $((MIB * 1048576)) /dev/zero |
	openssl enc -aes-128-ctr -K 0123456789abcdef0123456789abcdef -iv 00000000000000000000000000000000 -nosalt \
		>"$TMP/data" 2>/dev/null
cat "$TMP/data" >/dev/null # in the page cache for both

# secs CMD...: wall seconds of one run.
secs() {
	t0=$(date +%s%N)
	"$@"
	t1=$(date +%s%N)
	echo "$(((t1 - t0) / 1000000))"
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
plain() { cat "$TMP/data" | cat >/dev/null; }
relay() { "$LATCH" run --env-file "$TMP/refs.env" -- cat "$TMP/data" </dev/null >/dev/null; }
norelay() { "$LATCH" run --no-redact --env-file "$TMP/refs.env" -- cat "$TMP/data" </dev/null >/dev/null; }
: >"$TMP/a"
: >"$TMP/b"
: >"$TMP/c"
for r in $(seq 1 "$RUNS"); do
	secs plain >>"$TMP/a"
	secs relay >>"$TMP/b"
	secs norelay >>"$TMP/c"
done
a=$(median <"$TMP/a")
b=$(median <"$TMP/b")
c=$(median <"$TMP/c")
printf 'cat %d MiB | cat >/dev/null, median of %d              %6d ms\n' "$MIB" "$RUNS" "$a"
printf 'latch run (20 values, redaction on) -- cat, median        %6d ms  (%s x; goal <= 1.3 x)\n' "$b" \
	"$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')"
printf 'latch run --no-redact -- cat, median                      %6d ms  (%s x)\n' "$c" \
	"$(awk -v a="$a" -v c="$c" 'BEGIN {printf "%.2f", c / a}')"
printf '  (relay throughput: %s MB/s)\n' "$(awk -v b="$b" -v m="$MIB" 'BEGIN {printf "%.0f", m * 1.048576 / (b / 1000)}')"

if command -v hyperfine >/dev/null 2>&1; then
	hyperfine -N -w 20 -r "$SHORT_RUNS" --export-json "$TMP/h.json" \
		"$LATCH run --env-file $TMP/refs.env -- /bin/true" \
		"$LATCH run --no-redact --env-file $TMP/refs.env -- /bin/true" >/dev/null 2>&1
	/usr/bin/python3 - "$TMP/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
on, off = (x["median"] * 1000 for x in r)
print("latch run, 20 references, short command, redaction on   %6.2f ms median" % on)
print("latch run, 20 references, short command, --no-redact     %6.2f ms median  (difference %+.2f ms; goal <= 0.5)" % (off, on - off))
PY
else
	echo "hyperfine: not installed, the short-command figure is skipped"
fi
