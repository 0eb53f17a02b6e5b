#!/bin/sh
# bench/audit.sh: the audit log's figures on a real vault file.
#   durable append to the main chain (one transaction, synchronous=FULL)
#   durable release record in a broker's stream file (one write, one
#   fdatasync): goal median <= 0.25 ms, beside a raw write + fdatasync
#   fill: LATCH_BENCH_AUDIT_RECORDS (default 1,000,000) broker stream
#   records, folded into the index; verify of all of them: goal < 1 s
#   (every MAC, the files against the index, the secrets rows and
#   integrity_check)
#   "which grants touched secret X in the last 24 h" over them: goal < 20 ms,
#   including the fold of 10,000 new stream records
# `make bench` builds build/latch and build/bench/audit_bench. No peer keeps
# a comparable log; git-secrets, dotenvx and secretlint have none.
set -u
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd) || exit 3
LATCH=$ROOT/build/latch
AB=$ROOT/build/bench/audit_bench
N=${LATCH_BENCH_AUDIT_RECORDS:-1000000}
case $N in '' | *[!0-9]*) echo "bench: LATCH_BENCH_AUDIT_RECORDS must be a number" >&2; exit 2 ;; esac
[ -x "$AB" ] || { echo "bench: missing $AB: run 'make bench'" >&2; exit 3; }
# On the work disk, not a tmpfs: durability is what is measured.
TMP=$(mktemp -d "$ROOT/build/bench/audit.XXXXXX") || exit 3
chmod 700 "$TMP"
trap 'rm -rf "$TMP"' EXIT INT TERM
echo "disk: $(df -h "$TMP" | awk 'NR==2 {print $1, $2}'), $(nproc) cores"
"$AB" "$TMP/v" append 300 || exit 3
"$AB" "$TMP/v" stream-append 300 || exit 3
"$AB" "$TMP/v" fill "$N" || exit 3
"$AB" "$TMP/v" verify || exit 3
export LATCH_HOME=$TMP/v
if command -v hyperfine >/dev/null 2>&1; then
	pyfmt='import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; t=sorted(r["times"]); print("%s: median %.2f ms (min %.2f, max %.2f, %d runs)" % (sys.argv[2], r["median"]*1e3, t[0]*1e3, t[-1]*1e3, len(t)))'
	# Each timed run first finds 10,000 new stream records to fold: a
	# broker's records since the last reader (--prepare writes them).
	hyperfine -N --runs 7 --prepare "$AB $TMP/v stream-fill 10000" --export-json "$TMP/qf.json" \
		"$LATCH audit --secret secret-7 --since 24h --event release" >/dev/null 2>&1 &&
		/usr/bin/python3 -c "$pyfmt" "$TMP/qf.json" "query with a fold of 10,000 new stream records (whole process)"
	hyperfine -N --warmup 3 --runs 30 --export-json "$TMP/q.json" \
		"$LATCH audit --secret secret-7 --since 24h --event release" >/dev/null 2>&1 &&
		/usr/bin/python3 -c "$pyfmt" "$TMP/q.json" "query, nothing to fold (whole process)"
else
	echo "query: hyperfine missing, skipped"
fi
echo "rows returned by that query: $("$LATCH" audit --secret secret-7 --since 24h --event release | tail -n +2 | wc -l)"
echo "vault file with $N records: $(du -h "$TMP/v/vault.db" | cut -f1)"
