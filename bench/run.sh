#!/bin/sh
# bench/run.sh: latch's benchmarks and its peers', measured in one run.
# `make bench` builds build/latch and build/bench/* first; this script builds
# nothing. Everything it makes lives in one temporary directory, removed on
# every exit path; everything it starts runs in its own process group and is
# stopped by the trap. See bench/README.md for what each figure means.
#
# Knobs (environment):
#   LATCH_BENCH_SECRETS=10000      secrets in the benchmark vaults
#   LATCH_BENCH_LS_RUNS=50         timed runs of `latch ls` / `ls --json`
#   LATCH_BENCH_SET_RUNS=10        timed runs of `latch set` per KDF level
#   LATCH_BENCH_KDF_RUNS=5         timed crypto_pwhash runs per level, before
#                                  and again after each level's `latch set`
#   LATCH_BENCH_DOTENVX_KEYS=100   encrypted keys in the larger dotenvx .env
#   LATCH_BENCH_DOTENVX_RUNS=3     timed runs per dotenvx figure
#   LATCH_BENCH_NO_PEERS=1         skip dotenvx
#   LATCH_BENCH_NO_HYPERFINE=1     use bench/timer.c even if hyperfine is there
set -u

ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd) || exit 3
B=$ROOT/build/bench
LATCH=$ROOT/build/latch
NPM_DIR=$B/npm
DOTENVX=$NPM_DIR/node_modules/.bin/dotenvx
PRIMITIVES=$NPM_DIR/node_modules/@dotenvx/primitives

N=${LATCH_BENCH_SECRETS:-10000}
LS_RUNS=${LATCH_BENCH_LS_RUNS:-50}
SET_RUNS=${LATCH_BENCH_SET_RUNS:-10}
KDF_RUNS=${LATCH_BENCH_KDF_RUNS:-5}
DX_KEYS=${LATCH_BENCH_DOTENVX_KEYS:-100}
DX_RUNS=${LATCH_BENCH_DOTENVX_RUNS:-3}
LS_GOAL_MS=20

for v in "$N" "$LS_RUNS" "$SET_RUNS" "$KDF_RUNS" "$DX_KEYS" "$DX_RUNS"; do
	case $v in '' | *[!0-9]*) echo "bench: LATCH_BENCH_* values must be whole numbers" >&2; exit 2 ;; esac
done
[ "$DX_KEYS" -ge 2 ] || { echo "bench: LATCH_BENCH_DOTENVX_KEYS must be at least 2" >&2; exit 2; }

for t in "$LATCH" "$B/populate" "$B/kdf" "$B/timer"; do
	if [ ! -x "$t" ]; then
		echo "bench: missing $t: run 'make bench'" >&2
		exit 3
	fi
done

# --- temporary directory, children, cleanup (bench/lib.sh) ------------------
. "$ROOT/bench/lib.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/latch-bench.XXXXXX") || exit 3
LOG=$TMP/log
: >"$LOG"

# q ARG: ARG quoted for sh (and for hyperfine's own word splitting).
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# field NAME LINE: the value of NAME=VALUE in LINE.
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
calc() { awk "BEGIN { printf \"%.1f\", $1 }"; }

# --- timing: hyperfine, else bench/timer.c -------------------------------
TIMER=timer
if [ "${LATCH_BENCH_NO_HYPERFINE:-}" != 1 ]; then
	if ! command -v hyperfine >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		note "bench: installing hyperfine (apt-get)"
		export DEBIAN_FRONTEND=noninteractive
		run apt-get install -y -qq hyperfine >>"$LOG" 2>&1 ||
			{ run apt-get update -qq >>"$LOG" 2>&1 && run apt-get install -y -qq hyperfine >>"$LOG" 2>&1; } ||
			note "bench: could not install hyperfine; using bench/timer.c"
	fi
	command -v hyperfine >/dev/null 2>&1 && TIMER=hyperfine
fi
if [ "$TIMER" = hyperfine ]; then
	TIMER_DESC="$(hyperfine --version) (shell start-up subtracted where a shell is needed)"
else
	TIMER_DESC="bench/timer.c (fork+exec+wait, CLOCK_MONOTONIC)"
fi

# measure RUNS WARMUP STDIN FD3 CMD [ARG...]: time CMD; sets R to the
# line "runs=.. median_ms=.. p90_ms=.. mean_ms=.. min_ms=.. max_ms=..".
# STDIN and FD3 are files to open on fd 0 and fd 3 ('' for none).
R=
measure() {
	m_runs=$1 m_warm=$2 m_in=$3 m_fd3=$4
	shift 4
	if [ "$TIMER" = hyperfine ]; then
		m_cmd=
		for a in "$@"; do m_cmd="$m_cmd${m_cmd:+ }$(q "$a")"; done
		if [ -n "$m_in$m_fd3" ]; then
			set -- # redirections need a shell; hyperfine subtracts its cost
			[ -n "$m_in" ] && m_cmd="$m_cmd <$(q "$m_in")"
			[ -n "$m_fd3" ] && m_cmd="$m_cmd 3<$(q "$m_fd3")"
		else
			set -- -N
		fi
		run hyperfine "$@" --style none --runs "$m_runs" --warmup "$m_warm" \
			--export-json "$TMP/h.json" "$m_cmd" >>"$LOG" 2>&1 || return 1
		"$B/timer" --hyperfine-json "$TMP/h.json" >"$TMP/r" 2>>"$LOG" || return 1
	else
		m_opts=
		[ -n "$m_in" ] && m_opts="--fd 0=$m_in"
		[ -n "$m_fd3" ] && m_opts="$m_opts --fd 3=$m_fd3"
		# shellcheck disable=SC2086 # m_opts is split on purpose (paths are ours, no spaces: mktemp)
		run "$B/timer" -n "$m_runs" -w "$m_warm" -e "$LOG" $m_opts -- "$@" >"$TMP/r" || return 1
	fi
	R=$(cat "$TMP/r")
}

# --- the machine --------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -n "$cpu" ] || cpu=$(uname -p)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
fs=$(stat -f -c %T "$TMP" 2>/dev/null || echo '?')

# --- latch: the vaults ----------------------------------------------------------
PASS=$TMP/passphrase
VALUE=$TMP/value
printf '%s\n' "latch-bench-passphrase" >"$PASS"         # bench junk, not a secret
printf '%s\n' "bench-value-0123456789abcdef" >"$VALUE" # likewise
populate() { # DIR LEVEL
	note "bench: creating a $N-secret vault at KDF level $2 (one unlock, $N vault_set calls)"
	run "$B/populate" "$1" "$N" --kdf "$2" --passphrase-fd 3 3<"$PASS" >"$TMP/pop" 2>>"$LOG" ||
		fail "populate $2 failed"
	sed 's/^/  /' "$TMP/pop" >&2
}
VM=$TMP/vault-moderate
VI=$TMP/vault-interactive
populate "$VM" moderate
populate "$VI" interactive

export LATCH_HOME="$VM"
run "$LATCH" ls >"$TMP/ls" 2>>"$LOG" || fail "latch ls failed"
lines=$(wc -l <"$TMP/ls")
[ "$lines" -eq $((N + 1)) ] || fail "latch ls printed $lines lines, expected $((N + 1))"
run "$LATCH" ls --json >"$TMP/ls" 2>>"$LOG" || fail "latch ls --json failed"
names=$(grep -c '"name"' "$TMP/ls")
[ "$names" -eq "$N" ] || fail "latch ls --json listed $names names, expected $N"

note "bench: latch --version, latch ls, latch ls --json ($LS_RUNS runs each)"
measure "$LS_RUNS" 3 '' '' "$LATCH" --version || fail "timing latch --version failed"
r_version=$R
measure "$LS_RUNS" 3 '' '' "$LATCH" ls || fail "timing latch ls failed"
r_ls=$R
measure "$LS_RUNS" 3 '' '' "$LATCH" ls --json || fail "timing latch ls --json failed"
r_ls_json=$R

# bench_set LEVEL VAULT: `latch set` on VAULT, bracketed by runs of the KDF
# alone (bench/kdf) just before and just after, so that both see the same
# machine. Sets R (set), K (the KDF's pooled statistics), KL (its parameters).
bench_set() {
	note "bench: latch set at KDF level $1 ($SET_RUNS runs), crypto_pwhash alone ($KDF_RUNS runs) before and after"
	run "$B/kdf" -n "$KDF_RUNS" "$1" >"$TMP/kdf1" 2>>"$LOG" || fail "kdf $1 failed"
	export LATCH_HOME="$2"
	measure "$SET_RUNS" 1 "$VALUE" "$PASS" "$LATCH" set BENCH_SET --passphrase-fd 3 ||
		fail "timing latch set ($1) failed"
	unset LATCH_HOME
	run "$B/kdf" -n "$KDF_RUNS" "$1" >"$TMP/kdf2" 2>>"$LOG" || fail "kdf $1 failed"
	KL=$(cat "$TMP/kdf1")
	cat "$TMP/kdf1" "$TMP/kdf2" | sed -n 's/.*samples_ms=//p' | tr ',' '\n' |
		"$B/timer" --stats >"$TMP/kdfstats" 2>>"$LOG" || fail "kdf statistics failed"
	K=$(cat "$TMP/kdfstats")
}
bench_set interactive "$VI"
r_set_i=$R kdf_i=$K kdfp_i=$KL
bench_set moderate "$VM"
r_set_m=$R kdf_m=$K kdfp_m=$KL

# --- peers: dotenvx ---------------------------------------------------------------
peers=skip
peer_note=
if [ "${LATCH_BENCH_NO_PEERS:-}" = 1 ]; then
	peer_note="peers skipped (LATCH_BENCH_NO_PEERS=1)"
elif ! command -v node >/dev/null 2>&1; then
	peer_note="dotenvx skipped: node is not installed"
else
	if [ ! -x "$DOTENVX" ] || [ ! -d "$PRIMITIVES" ]; then
		if command -v npm >/dev/null 2>&1; then
			note "bench: npm install --prefix $NPM_DIR @dotenvx/dotenvx"
			run npm install --prefix "$NPM_DIR" --no-audit --no-fund @dotenvx/dotenvx >>"$LOG" 2>&1 ||
				note "bench: npm install failed"
		fi
	fi
	if [ -x "$DOTENVX" ] && [ -d "$PRIMITIVES" ]; then
		peers=dotenvx
	else
		peer_note="dotenvx skipped: not installed and 'npm install @dotenvx/dotenvx' failed (see npm's output above)"
	fi
fi

if [ "$peers" = dotenvx ]; then
	# HOME points into the temp dir so that nothing lands in the real one.
	export HOME="$TMP/home"
	mkdir "$HOME" || fail "mkdir failed"
	run "$DOTENVX" --version >"$TMP/v" 2>>"$LOG" || fail "dotenvx --version failed"
	dx_version=$(cat "$TMP/v")
	# Two files: one key (start-up and one ECIES operation) and DX_KEYS keys
	# (dotenvx decrypts every encrypted value in the file on each read).
	DX1=$TMP/dotenvx-1
	DXN=$TMP/dotenvx-$DX_KEYS
	mkdir "$DX1" "$DXN" || fail "mkdir failed"
	cd "$DX1" || fail "cd failed"
	run "$DOTENVX" set SEED_KEY seed-value -f .env >>"$LOG" 2>&1 || fail "dotenvx set (first key) failed"
	{ cp .env "$DXN/.env" && cp .env.keys "$DXN/.env.keys"; } || fail "cp failed"
	note "bench: encrypting $((DX_KEYS - 1)) more values into a dotenvx .env (dotenvx's own ECIES, one process)"
	t0=$(date +%s)
	run node "$ROOT/bench/dotenvx_fill.cjs" "$PRIMITIVES" "$DXN/.env" $((DX_KEYS - 1)) >>"$LOG" 2>&1 ||
		fail "dotenvx_fill.cjs failed"
	fill_s=$(($(date +%s) - t0))
	# A key from the middle of the file, named as dotenvx_fill.cjs names them.
	i=$((DX_KEYS - 2 < 42 ? DX_KEYS - 2 : 42))
	case $((i % 5)) in
	0) kind=API_TOKEN ;; 1) kind=DB_PASSWORD ;; 2) kind=WEBHOOK_SECRET ;; 3) kind=PRIVATE_KEY ;; *) kind=CLIENT_SECRET ;;
	esac
	KEY=$(printf 'SVC%03d_%s_%05d' $((i % 1000)) "$kind" "$i")
	cd "$DXN" || fail "cd failed"
	run "$DOTENVX" get "$KEY" -f .env >"$TMP/got" 2>>"$LOG" || fail "dotenvx get $KEY failed"
	[ "$(tr -d '\n' <"$TMP/got" | wc -c)" -eq 80 ] || fail "dotenvx get $KEY did not return the 80-character value"
	rm -f "$TMP/got"

	# Reads first, so that the files still hold exactly 1 and DX_KEYS keys.
	note "bench: dotenvx get / set ($DX_RUNS runs each, 1-key and $DX_KEYS-key files)"
	cd "$DX1" || fail "cd failed"
	measure "$DX_RUNS" 1 '' '' "$DOTENVX" get SEED_KEY -f .env || fail "timing dotenvx get failed"
	r_dx_get1=$R
	measure "$DX_RUNS" 1 '' '' "$DOTENVX" set BENCH_SET bench-value -f .env || fail "timing dotenvx set failed"
	r_dx_set1=$R
	cd "$DXN" || fail "cd failed"
	measure "$DX_RUNS" 1 '' '' "$DOTENVX" get "$KEY" -f .env || fail "timing dotenvx get failed"
	r_dx_getn=$R
	measure "$DX_RUNS" 1 '' '' "$DOTENVX" get -f .env || fail "timing dotenvx get (all) failed"
	r_dx_alln=$R
	measure "$DX_RUNS" 1 '' '' "$DOTENVX" set BENCH_SET bench-value -f .env || fail "timing dotenvx set failed"
	r_dx_setn=$R
	measure "$DX_RUNS" 1 '' '' node -e 0 || fail "timing node -e 0 failed"
	r_node=$R
	cd "$ROOT" || fail "cd failed"
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)

# --- the table ------------------------------------------------------------------------
row() { # LABEL MEDIAN P90 RUNS NOTE
	printf '%-56s %10s %10s %5s  %s\n' "$1" "$2" "$3" "$4" "$5"
}
ms() { awk "BEGIN { printf \"%.1f ms\", $1 }"; }
row_r() { # LABEL RESULT NOTE
	row "$1" "$(ms "$(field median_ms "$2")")" "$(ms "$(field p90_ms "$2")")" "$(field runs "$2")" "$3"
}
ls_goal() {
	med=$(field median_ms "$1")
	p90=$(field p90_ms "$1")
	if awk "BEGIN { exit !($med < $LS_GOAL_MS) }"; then v="met"; else v="MISSED"; fi
	if awk "BEGIN { exit !($p90 < $LS_GOAL_MS) }"; then w="p90 under too"; else w="p90 over"; fi
	echo "goal < $LS_GOAL_MS ms: $v ($w)"
}
set_rows() { # LEVEL SET_RESULT KDF_STATS KDF_PARAMS
	k_med=$(field median_ms "$3")
	s_med=$(field median_ms "$2")
	rest=$(calc "$s_med - $k_med")
	rest_min=$(calc "$(field min_ms "$2") - $(field min_ms "$3")")
	share=$(calc "100 * $k_med / $s_med")
	what="start-up, passphrase, AEAD, audit record, sqlite txn + fsync; by minima: $rest_min ms"
	if awk "BEGIN { exit !($rest < 0) }"; then
		what="NEGATIVE: the load changed between runs, rerun on a quieter machine; by minima: $rest_min ms"
	fi
	row_r "latch set, $1 vault ($N secrets)" "$2" "total wall time; goal: KDF-dominated"
	row_r "  KDF alone: Argon2id $1 ($(field opslimit "$4") passes, $(field memlimit_mib "$4") MiB)" \
		"$3" "bench/kdf, runs before + after the sets; $share% of set"
	row "  rest: set minus KDF (medians)" "$(ms "$rest")" "-" "" "$what"
}

echo
echo "latch benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $cpu; nproc $(nproc); $mem RAM; $(uname -srm)"
echo "load:    $load_start at start, $load_end at end (1/5/15-min load averages; other work skews figures)"
echo "libs:    libsodium $(pkg-config --modversion libsodium 2>/dev/null || echo '?'), sqlite $(pkg-config --modversion sqlite3 2>/dev/null || echo '?'); vaults on $fs ($TMP)"
echo "timer:   $TIMER_DESC"
echo
row "figure" "median" "p90" "runs" "goal / note"
row "------" "------" "---" "----" "-----------"
row_r "latch --version" "$r_version" "process start-up floor"
row_r "latch ls ($N secrets)" "$r_ls" "$(ls_goal "$r_ls")"
row_r "latch ls --json ($N secrets)" "$r_ls_json" "$(ls_goal "$r_ls_json")"
set_rows interactive "$r_set_i" "$kdf_i" "$kdfp_i"
set_rows moderate "$r_set_m" "$kdf_m" "$kdfp_m"
echo
if [ "$peers" = dotenvx ]; then
	g1=$(field median_ms "$r_dx_get1")
	gn=$(field median_ms "$r_dx_getn")
	per_key=$(calc "($gn - $g1) / ($DX_KEYS - 1)")
	est=$(calc "($g1 + ($N - 1) * ($gn - $g1) / ($DX_KEYS - 1)) / 1000")
	echo "peers, same run: dotenvx $dx_version (Node.js $(node --version)); its .env was filled in ${fill_s} s"
	row_r "node -e 0" "$r_node" "Node.js start-up floor inside every dotenvx figure"
	row_r "dotenvx set KEY value -f .env (1 key)" "$r_dx_set1" "vs latch set, interactive (see note 1)"
	row_r "dotenvx set KEY value -f .env ($DX_KEYS keys)" "$r_dx_setn" "same, larger file"
	row_r "dotenvx get KEY -f .env (1 key)" "$r_dx_get1" "read one value (see note 2)"
	row_r "dotenvx get KEY -f .env ($DX_KEYS keys)" "$r_dx_getn" "same, larger file"
	row_r "dotenvx get -f .env ($DX_KEYS keys, all)" "$r_dx_alln" "closest to a listing, vs latch ls (note 3)"
	[ "$DX_KEYS" -lt "$N" ] &&
		row "dotenvx get KEY at $N keys (extrapolated)" "~$est s" "-" "" "not measured: ${per_key} ms per extra key, linear fit of the two gets"
	echo
	echo "note 1: dotenvx set seals one value to the file's secp256k1 public key (ECIES); it stretches no"
	echo "        passphrase (the private key sits in plain text in .env.keys) and takes the value on argv,"
	echo "        so its cost is not comparable security work: latch set pays for one Argon2id run on purpose."
	echo "note 2: dotenvx get reads .env.keys and decrypts every encrypted value in the file, then prints"
	echo "        the one asked for, so its cost grows with the file. latch reads one row per secret asked."
	echo "note 3: latch ls prints names, versions and times and needs no key; dotenvx has no names-only"
	echo "        listing of a file's keys (dotenvx ls lists .env files), so its nearest is get-all, which"
	echo "        decrypts and prints every value."
	if [ "$DX_KEYS" -lt "$N" ]; then
		echo "note 4: dotenvx was measured at $DX_KEYS keys, not $N: each read decrypts the whole file, and"
		echo "        filling a $N-key file alone takes a long time (see bench/README.md), so the $N-key"
		echo "        read is a linear extrapolation. LATCH_BENCH_DOTENVX_KEYS=$N measures it, slowly."
	fi
else
	echo "peers: $peer_note"
fi

echo
echo "== broker: what latch run adds to a command (bench/broker.sh)"
sh "$ROOT/bench/broker.sh"
echo
echo "== issue 14: latch run with 20 references, back to back and after 300 ms idle (bench/release.sh)"
# Beside the previous design (a sqlite commit per release, 165131a), built
# from this repository's history into TMP, unless LATCH_BASELINE names a
# binary already (or LATCH_BENCH_PREVIOUS=none skips it).
prev=${LATCH_BENCH_PREVIOUS:-165131a}
if [ -z "${LATCH_BASELINE:-}" ] && [ "$prev" != none ] && git -C "$ROOT" cat-file -e "$prev^{commit}" 2>/dev/null; then
	mkdir -p "$TMP/previous"
	if git -C "$ROOT" archive "$prev" | tar -x -C "$TMP/previous" &&
		make -C "$TMP/previous" build/latch >"$TMP/previous.log" 2>&1; then
		LATCH_BASELINE=$TMP/previous/build/latch sh "$ROOT/bench/release.sh"
	else
		echo "bench: could not build the previous design ($prev): $TMP/previous.log" >&2
		sh "$ROOT/bench/release.sh"
	fi
else
	sh "$ROOT/bench/release.sh"
fi
echo
echo "== audit log (bench/audit.sh)"
sh "$ROOT/bench/audit.sh"
echo
echo "== federation: what latch run --fed adds (bench/fed.sh)"
sh "$ROOT/bench/fed.sh"
echo
echo "== latch scan and its git hooks, beside git-secrets (bench/scan.sh)"
sh "$ROOT/bench/scan.sh"
echo
echo "== the redaction relay: latch run -- cat of 1 GiB, and a short command (bench/relay.sh)"
sh "$ROOT/bench/relay.sh"
echo
if [ -x "$B/redact_bench" ]; then
	echo "== the redactor (build/bench/redact_bench)"
	run "$B/redact_bench" 2>>"$LOG" || fail "redact_bench failed"
else
	echo "== the redactor: build/bench/redact_bench is not built here; skipped"
fi
