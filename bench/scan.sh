#!/bin/sh
# bench/scan.sh: `latch scan` and latch's pre-commit hook, beside
# git-secrets with the same values, measured in one run (issue 11,
# Performance). Four parts:
#   1. a typical commit: a 100 KB staged change (20 source-like files), a
#      vault of 50 values: `latch scan --staged`, and the whole `git commit`
#      with latch's pre-commit hook minus `git commit` with none, run by run
#      in alternating (ABBA) order. Goal: the hook under 50 ms.
#   2. a 50 MB staged change (source-like files and wrapped base64 blobs),
#      1,000 values: `latch scan --staged` wall time and max RSS, and git's
#      own share (rev-parse, diff-index, cat-file --batch alone, the same
#      requests latch makes). Goals: under 0.5 s and under 64 MiB.
#   3. git-secrets (the Debian package) with the same 1,000 values as
#      literal patterns in the repository's config, `git secrets --scan
#      --cached` over the same staged change.
#   4. build/bench/match_bench, if it was built: its lines as they are.
# Values are random 32-character tokens (letters and digits), every one
# fingerprinted; the vaults are filled by bench/populate --index (one
# unlock, interactive KDF level). Positive controls after the timings: the
# hook refuses a commit holding a value in base64, `latch scan` and
# git-secrets find a value planted in the large change. Nothing here is
# asserted about time: figures and goals are printed, never tested.
# `make bench` builds build/latch and build/bench/*. As root, installs the
# git-secrets and time packages if they are missing (apt-get).
#
# Knobs (environment):
#   LATCH_BENCH_SCAN_MB=50            size of the large staged change
#   LATCH_BENCH_SCAN_VALUES=1000      values in the large change's vault
#   LATCH_BENCH_SCAN_ROUNDS=100       rounds of the typical commit (the
#                                     first 10 are left out)
#   LATCH_BENCH_SCAN_RUNS=7           runs of each large-change figure
#   LATCH_BENCH_SCAN_PEER_RUNS=3      runs of git secrets --scan --cached
#   LATCH_BENCH_NO_PEERS=1            skip git-secrets
set -u
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd) || exit 3
B=$ROOT/build/bench
LATCH=$ROOT/build/latch
PY=/usr/bin/python3
MB=${LATCH_BENCH_SCAN_MB:-50}
NVAL=${LATCH_BENCH_SCAN_VALUES:-1000}
NSMALL=50
ROUNDS=${LATCH_BENCH_SCAN_ROUNDS:-100}
RUNS=${LATCH_BENCH_SCAN_RUNS:-7}
PEER_RUNS=${LATCH_BENCH_SCAN_PEER_RUNS:-3}
for v in "$MB" "$NVAL" "$ROUNDS" "$RUNS" "$PEER_RUNS"; do
	case $v in '' | 0 | *[!0-9]*) echo "bench: LATCH_BENCH_SCAN_* values must be whole numbers above 0" >&2; exit 2 ;; esac
done
[ "$ROUNDS" -gt 10 ] || { echo "bench: LATCH_BENCH_SCAN_ROUNDS must be above 10" >&2; exit 2; }
for t in "$LATCH" "$B/populate"; do
	[ -x "$t" ] || { echo "bench: missing $t: run 'make bench'" >&2; exit 3; }
done
command -v git >/dev/null 2>&1 || { echo "bench: git is needed" >&2; exit 3; }
[ -x "$PY" ] || { echo "bench: $PY is needed" >&2; exit 3; }

# --- temporary directory, children, cleanup (bench/lib.sh) ------------------
. "$ROOT/bench/lib.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/latch-bench-scan.XXXXXX") || exit 3
LOG=$TMP/log
: >"$LOG"

# --- tools: /usr/bin/time (max RSS), git-secrets ------------------------------
apt_install() { # PACKAGE
	[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
	note "bench: installing $1 (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	run apt-get install -y -qq "$1" >>"$LOG" 2>&1 ||
		{ run apt-get update -qq >>"$LOG" 2>&1 && run apt-get install -y -qq "$1" >>"$LOG" 2>&1; }
}
[ -x /usr/bin/time ] || apt_install time || true
[ -x /usr/bin/time ] || fail "/usr/bin/time is needed for the max RSS (apt-get install time)"
peer=git-secrets peer_note=
if [ "${LATCH_BENCH_NO_PEERS:-}" = 1 ]; then
	peer='' peer_note="git-secrets skipped (LATCH_BENCH_NO_PEERS=1)"
elif ! command -v git-secrets >/dev/null 2>&1 && ! apt_install git-secrets; then
	peer='' peer_note="git-secrets skipped: not installed, and not root to install it"
fi
if [ -n "$peer" ] && ! command -v git-secrets >/dev/null 2>&1; then
	peer='' peer_note="git-secrets skipped: 'apt-get install git-secrets' failed (see the log)"
fi

# --- an environment of our own: no user or system git config, no hooks ---------
export HOME="$TMP/home" XDG_CONFIG_HOME="$TMP/home/.config" GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES LATCH_HOME
mkdir -p "$HOME" || fail "mkdir failed"
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)

# --- the values and the vaults ---------------------------------------------------
PASS=$TMP/passphrase
printf '%s\n' "latch-bench-passphrase" >"$PASS" # bench junk, not a secret
# values N FILE: N random 32-character tokens of letters and digits (about
# 190 bits each by latch's estimate: all fingerprinted). Bench junk.
values() {
	"$PY" -c 'import secrets, string, sys
a = string.ascii_letters + string.digits
for _ in range(int(sys.argv[1])): print("".join(secrets.choice(a) for _ in range(32)))' "$1" >"$2" ||
		fail "making values failed"
}
VS=$TMP/values-small VB=$TMP/values-big
values "$NSMALL" "$VS"
values "$NVAL" "$VB"
vault() { # DIR N VALUES
	note "bench: a $2-value vault, interactive KDF, scan index on (bench/populate --index)"
	run "$B/populate" "$1" "$2" --kdf interactive --passphrase-fd 3 --index --values "$3" 3<"$PASS" \
		>"$TMP/pop" 2>>"$LOG" || fail "populate failed"
	sed 's/^/  /' "$TMP/pop" >&2
	LATCH_HOME=$1 run "$LATCH" status >"$TMP/status" 2>>"$LOG" || fail "latch status failed"
	grep -q "^scan: *$2 fingerprinted\$" "$TMP/status" ||
		fail "not every value is fingerprinted: $(grep '^scan:' "$TMP/status")"
}
VAULT_S=$TMP/vault-small VAULT_B=$TMP/vault-big
vault "$VAULT_S" "$NSMALL" "$VS"
vault "$VAULT_B" "$NVAL" "$VB"

# --- content: source-like text (this tree's and /usr/include's C), base64 ------
GEN=$TMP/gen.py
cat >"$GEN" <<'PY'
# gen.py SEED DIR KIND ROOT [MB]: write files into DIR, the same bytes for the
# same SEED. Source-like text is cut from C sources at random line starts,
# each file headed by a line of its own so that no two are the same blob.
import base64, os, random, sys

seed, out, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rnd = random.Random(seed)

def corpus(roots, limit=16 << 20):
    parts, size = [], 0
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x not in (".git", "build"))
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    try:
                        with open(os.path.join(d, f), "rb") as fh:
                            b = fh.read()
                    except OSError:
                        continue
                    parts.append(b)
                    size += len(b)
                    if size >= limit:
                        return b"".join(parts)
    return b"".join(parts)

text = corpus([sys.argv[4], "/usr/include"])
if len(text) < 1 << 20:
    sys.exit("gen.py: less than 1 MiB of C source to cut from")

def source(tag, size):
    start = text.find(b"\n", rnd.randrange(len(text) - size - 1)) + 1
    body = b"/* bench file %s */\n" % tag.encode() + text[start:start + size]
    return body[:size]

def write(path, data):
    path = os.path.join(out, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)

if kind == "small-base":      # 40 files of 5 KB
    for i in range(40):
        write("src/mod_%02d.c" % i, source("base %d" % i, 5000))
elif kind == "small-change":  # 10 of them changed, 10 new: 100 KB
    for i in range(10):
        write("src/mod_%02d.c" % i, source("changed %d" % i, 5000))
        write("src/new_%02d.c" % i, source("new %d" % i, 5000))
elif kind == "big-change":    # MB megabytes: 90 % source, 10 % wrapped base64
    total = int(sys.argv[5]) * 1000 * 1000
    b64, blob = total // 10, 256 * 1000
    n = 0
    while b64 > 0:
        raw = os.urandom(min(blob, b64) * 3 // 4)
        data = b"# fixture %d\n" % n + base64.encodebytes(raw)
        write("fixtures/blob_%03d.b64" % n, data)
        b64 -= len(data)
        total -= len(data)
        n += 1
    n = 0
    while total > 0:
        size = min(total, rnd.randrange(20000, 180000))
        write("src/d%02d/file_%04d.c" % (n % 50, n), source("big %d" % n, size))
        total -= size
        n += 1
else:
    sys.exit("gen.py: unknown kind")
PY
gen() { # SEED DIR KIND [MB]
	g_seed=$1 g_dir=$2 g_kind=$3
	shift 3
	run "$PY" "$GEN" "$g_seed" "$g_dir" "$g_kind" "$ROOT" "$@" >>"$LOG" 2>&1 || fail "gen.py $g_kind failed"
}
# repo DIR: an empty repository that never runs gc on its own.
repo() {
	{ run git init -q "$1" >>"$LOG" 2>&1 && git -C "$1" config gc.auto 0 && git -C "$1" config commit.gpgSign false; } ||
		fail "git init failed"
}
commit_all() { # DIR
	{ git -C "$1" add -A && git -C "$1" commit -q -m base && git -C "$1" rev-parse HEAD; } 2>>"$LOG" ||
		fail "git commit in $1 failed"
}

# 1. Typical commit: the same content in two repositories, one with latch's
# pre-commit hook, one with none (git-secrets' patterns sit in its config
# but its hook is not installed: its hook is timed on its own).
note "bench: the typical commit's repositories"
RH=$TMP/commit-hook RP=$TMP/commit-plain
for r in "$RH" "$RP"; do
	repo "$r"
	gen 1 "$r" small-base
	commit_all "$r" >"$r.base"
	gen 2 "$r" small-change
	git -C "$r" add -A 2>>"$LOG" || fail "git add failed"
done
(cd "$RH" && LATCH_HOME=$VAULT_S "$LATCH" hook install --pre-commit) >>"$LOG" 2>&1 || fail "latch hook install failed"
staged_small=$(git -C "$RH" diff --cached --numstat | wc -l)
bytes_small=$(cd "$RH" && git diff --cached --name-only -z | xargs -0 cat | wc -c)
[ "$(git -C "$RH" write-tree)" = "$(git -C "$RP" write-tree)" ] || fail "the two repositories differ"

# 2. The large change.
note "bench: a $MB MB staged change"
RB=$TMP/big
repo "$RB"
echo "bench repository" >"$RB/README"
commit_all "$RB" >/dev/null
gen 3 "$RB" big-change "$MB"
run git -C "$RB" add -A >>"$LOG" 2>&1 || fail "git add failed"
files_big=$(git -C "$RB" diff --cached --name-only | wc -l)
bytes_big=$(du -sb --exclude=.git "$RB" | cut -f1)

# 3. git-secrets: the same values as literal patterns, in the repositories'
# config (never --global: HOME is ours anyway).
if [ -n "$peer" ]; then
	note "bench: registering $NVAL + $NSMALL literal patterns with git secrets --add --literal"
	register() { # REPO VALUES
		while IFS= read -r v; do
			(cd "$1" && git secrets --add --literal "$v") || return 1
		done <"$2"
	}
	register "$RB" "$VB" 2>>"$LOG" || fail "git secrets --add failed"
	register "$RP" "$VS" 2>>"$LOG" || fail "git secrets --add failed"
	n=$(git -C "$RB" config --get-all secrets.patterns | wc -l)
	[ "$n" -eq "$NVAL" ] || fail "git-secrets holds $n patterns, expected $NVAL"
	gs_version="$(dpkg-query -W -f '${Version}' git-secrets 2>/dev/null || echo '?')"
fi

# --- the timings -------------------------------------------------------------------
BENCH=$TMP/bench.py
cat >"$BENCH" <<'PY'
import os, statistics, subprocess, sys, time

mode = sys.argv[1]
DEVNULL = subprocess.DEVNULL

def row(label, value, note=""):
    print("%-60s %12s  %s" % (label, value, note))

def timed(argv, cwd, env=None, ok=(0,), stdin=None):
    s = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, env=env, stdin=stdin if stdin else DEVNULL, stdout=DEVNULL,
                       stderr=subprocess.PIPE)
    d = (time.perf_counter() - s) * 1000
    if r.returncode not in ok:
        sys.exit("bench: %s exited %d: %s" % (" ".join(argv[:3]), r.returncode, r.stderr.decode()[-300:]))
    return d, r.stderr

TIME_OUT = os.path.join(os.environ["TMP"], "rusage")
TIME = ["/usr/bin/time", "-f", "%M %U %S", "-o", TIME_OUT]

def rusage():
    """/usr/bin/time's max RSS (KiB: of the largest process of the tree,
    not a sum) and CPU time (ms, user + system, children included)."""
    with open(TIME_OUT) as f:
        m, u, s = f.read().split()[-3:]
    return int(m), (float(u) + float(s)) * 1000

def under_time(argv, cwd, env=None, ok=(0,)):
    """Wall ms (perf_counter around /usr/bin/time), max RSS, CPU ms."""
    s = time.perf_counter()
    r = subprocess.run(TIME + argv, cwd=cwd, env=env, stdin=DEVNULL, stdout=DEVNULL, stderr=subprocess.PIPE)
    d = (time.perf_counter() - s) * 1000
    if r.returncode not in ok:
        sys.exit("bench: %s exited %d: %s" % (" ".join(argv[:3]), r.returncode, r.stderr.decode()[-300:]))
    rss, cpu = rusage()
    return d, rss, cpu, r.stderr

def med(v):
    return statistics.median(v)

def p90(v):
    v = sorted(v)
    return v[max(0, -(-len(v) * 9 // 10) - 1)]

def verdict(ok):
    return "met" if ok else "MISSED"

latch = os.environ["LATCH"]

if mode == "commit":
    rounds = int(os.environ["ROUNDS"])
    rh, rp = os.environ["RH"], os.environ["RP"]
    bh, bp = open(rh + ".base").read().strip(), open(rp + ".base").read().strip()
    env = dict(os.environ, LATCH_HOME=os.environ["VAULT_S"])
    peer = os.environ.get("PEER")
    t = {k: [] for k in ("hook", "plain", "scan", "paths", "version", "gs")}
    commit = ["git", "commit", "-q", "-m", "bench commit"]
    staged = subprocess.run(["git", "diff", "--cached", "--name-only", "-z"], cwd=rh, capture_output=True,
                            check=True).stdout.decode().split("\0")[:-1]
    for i in range(rounds):
        for repo, base in ((rh, bh), (rp, bp)):
            subprocess.run(["git", "reset", "-q", "--soft", base], cwd=repo, check=True)
        d = {}
        d["version"], _ = timed([latch, "--version"], rh, env)
        d["scan"], err = timed([latch, "scan", "--staged"], rh, env)
        if err:
            sys.exit("bench: latch scan --staged wrote: %s" % err.decode()[:300])
        d["paths"], _ = timed([latch, "scan"] + staged, rh, env)
        if peer:
            d["gs"], _ = timed(["git", "secrets", "--pre_commit_hook"], rp, env)
        pair = [("hook", rh), ("plain", rp)]
        for k, repo in (pair if i % 2 == 0 else pair[::-1]):
            d[k], _ = timed(commit, repo, env)
        if i >= 10:
            for k, v in d.items():
                t[k].append(v)
    n = len(t["hook"])
    print("run by run, %d rounds after 10 of warm-up, hook and plain commits in alternating order;"
          " medians (p90):" % n)
    f = lambda k: "%.1f ms" % med(t[k])
    g = lambda k: "(p90 %.1f)" % p90(t[k])
    row("latch --version (process start-up)", f("version"), g("version"))
    row("latch scan --staged (%s files, %s bytes, %s values)" % (os.environ["STAGED_SMALL"],
        os.environ["BYTES_SMALL"], os.environ["NSMALL"]), f("scan"), g("scan"))
    row("latch scan FILES (the same files from disk: no git)", f("paths"), g("paths"))
    row("git commit, no hook", f("plain"), g("plain"))
    row("git commit, latch's pre-commit hook", f("hook"), g("hook"))
    added = med(t["hook"]) - med(t["plain"])
    row("what the hook adds (difference of medians)", "%+.1f ms" % added,
        "goal < 50 ms: %s" % verdict(added < 50))
    pairs = sorted(h - p for h, p in zip(t["hook"], t["plain"]))
    row("  the same, median of the per-round differences", "%+.1f ms" % med(pairs), "")
    if peer:
        row("git secrets --pre_commit_hook (same change, %s literals)" % os.environ["NSMALL"], f("gs"),
            g("gs") + " peer: its hook's work, run alone")

elif mode == "big":
    runs, peer_runs = int(os.environ["RUNS"]), int(os.environ["PEER_RUNS"])
    rb = os.environ["RB"]
    env = dict(os.environ, LATCH_HOME=os.environ["VAULT_B"])
    peer = os.environ.get("PEER")
    # What latch asks git, alone: the same three commands, the same requests.
    tree = subprocess.run(["git", "--no-replace-objects", "rev-parse", "-q", "--verify", "HEAD^{tree}"],
                          cwd=rb, capture_output=True, check=True).stdout.strip().decode()
    diff = ["git", "--no-replace-objects", "diff-index", "--cached", "-z", "--raw", "--no-renames", tree, "--"]
    raw = subprocess.run(diff, cwd=rb, capture_output=True, check=True).stdout.split(b"\0")
    req = os.path.join(os.environ["TMP"], "requests")
    with open(req, "w") as f:
        k = 0
        for i in range(0, len(raw) - 1, 2):
            fields = raw[i].split(b" ")
            f.write("%s %d\n" % (fields[3].decode(), k))
            k += 1
    batch = ["git", "--no-replace-objects", "cat-file",
             "--batch=%(objectname) %(objecttype) %(objectsize) %(rest)"]
    files = sorted(os.listdir(rb))
    files = [x for x in files if x != ".git"]
    t = {}
    def keep(i, **kw):
        if i:  # the first run of each warms the page cache
            for k, v in kw.items():
                t.setdefault(k, []).append(v)
    for i in range(runs + 1):
        d, rss, cpu, err = under_time([latch, "scan", "--staged"], rb, env)
        if err:
            sys.exit("bench: latch scan --staged wrote: %s" % err.decode()[:300])
        keep(i, scan=d, scan_rss=rss, scan_cpu=cpu)
        d, rss, cpu, _ = under_time([latch, "scan"] + files, rb, env)
        keep(i, paths=d, paths_rss=rss, paths_cpu=cpu)
        d1, _ = timed(["git", "--no-replace-objects", "rev-parse", "-q", "--verify", "HEAD^{tree}"], rb)
        d2, _ = timed(diff, rb)
        with open(req) as f:
            # Into a pipe read and thrown away, as latch reads it.
            s = time.perf_counter()
            p = subprocess.Popen(TIME + batch, cwd=rb, stdin=f, stdout=subprocess.PIPE)
            while p.stdout.read(1 << 16):
                pass
            p.wait()
            d3 = (time.perf_counter() - s) * 1000
            if p.returncode != 0:
                sys.exit("bench: git cat-file failed")
            cat_rss, cat_cpu = rusage()
        keep(i, revparse=d1, diff=d2, cat=d3, cat_rss=cat_rss, cat_cpu=cat_cpu)
    if peer:
        for i in range(peer_runs + 1):
            d, rss, cpu, _ = under_time(["git", "secrets", "--scan", "--cached"], rb, env)
            keep(i, gs=d, gs_rss=rss, gs_cpu=cpu)
    mib = lambda k: "%.1f MiB" % (max(t[k]) / 1024)
    print("%s staged files, %.1f MB, %s values (%s runs each after one warm-up; medians, max RSS the"
          " largest of the runs):" % (os.environ["FILES_BIG"], int(os.environ["BYTES_BIG"]) / 1e6,
                                      os.environ["NVAL"], runs))
    scan = med(t["scan"])
    row("latch scan --staged, wall", "%.0f ms" % scan, "goal < 500 ms: %s (p90 %.0f, min %.0f)"
        % (verdict(scan < 500), p90(t["scan"]), min(t["scan"])))
    row("latch scan --staged, max RSS (latch or one of its gits)", mib("scan_rss"),
        "goal < 64 MiB: %s" % verdict(max(t["scan_rss"]) < 64 * 1024))
    cpu = med(t["scan_cpu"])
    row("latch scan --staged, CPU (user + system, latch and its gits)", "%.0f ms" % cpu,
        "more than the wall: latch matches one object while cat-file inflates the next" if cpu > scan else "")
    gitsum = med(t["revparse"]) + med(t["diff"]) + med(t["cat"])
    row("  git alone, wall: rev-parse + diff-index + cat-file --batch", "%.0f ms" % gitsum,
        "%.0f%% of the scan's wall (%.1f + %.1f + %.1f ms)" % (100 * gitsum / scan, med(t["revparse"]),
                                                                med(t["diff"]), med(t["cat"])))
    row("  git cat-file --batch alone, CPU", "%.0f ms" % med(t["cat_cpu"]),
        "%.0f%% of the scan's CPU; max RSS %s" % (100 * med(t["cat_cpu"]) / cpu, mib("cat_rss")))
    row("  latch scan FILES (the same files from disk, no git), wall", "%.0f ms" % med(t["paths"]),
        "CPU %.0f ms, max RSS %s: the matching alone" % (med(t["paths_cpu"]), mib("paths_rss")))
    if peer:
        gs = med(t["gs"])
        row("git secrets --scan --cached (%s literals), wall" % os.environ["NVAL"], "%.0f ms" % gs,
            "peer, %s runs after one warm-up (min %.0f, max %.0f); %.1fx latch" % (peer_runs, min(t["gs"]),
                                                                               max(t["gs"]), gs / scan))
        row("git secrets --scan --cached, CPU and max RSS", "%.0f ms" % med(t["gs_cpu"]), mib("gs_rss"))
PY

export LATCH TMP RH RP RB VAULT_S VAULT_B ROUNDS RUNS PEER_RUNS NSMALL NVAL
export STAGED_SMALL="$staged_small" BYTES_SMALL="$bytes_small" FILES_BIG="$files_big" BYTES_BIG="$bytes_big"
export PEER="$peer"

echo
echo "latch scan benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1); nproc $(nproc); $(uname -sr)"
echo "tools:   $(git --version)${peer:+; git-secrets $gs_version}; filesystem $(stat -f -c %T "$TMP")"
echo
echo "== 1. a typical commit ($staged_small staged files, $bytes_small bytes; $NSMALL values)"
note "bench: typical commit, $ROUNDS rounds"
run "$PY" "$BENCH" commit 2>>"$LOG" || fail "the typical commit's timing failed"
echo
echo "== 2, 3. a $MB MB staged change, $NVAL values${peer:+, beside git-secrets}"
note "bench: the large change, $RUNS runs${peer:+; git-secrets, $PEER_RUNS runs}"
run "$PY" "$BENCH" big 2>>"$LOG" || fail "the large change's timing failed"
[ -n "$peer" ] || echo "peer: $peer_note"

# --- positive controls: the figures above are of scans that do find things -----
note "bench: positive controls"
for r in "$RH" "$RP"; do git -C "$r" reset -q --soft "$(cat "$r.base")"; done
v=$(head -n 1 "$VS")
printf 'const char *k = "%s";\n' "$(printf '%s' "$v" | base64)" >"$RH/src/leak.c"
git -C "$RH" add src/leak.c
before=$(git -C "$RH" rev-parse HEAD)
if (cd "$RH" && LATCH_HOME=$VAULT_S git commit -q -m leak) >>"$LOG" 2>&1; then
	fail "control: the pre-commit hook let a commit holding a value (base64) through"
fi
[ "$(git -C "$RH" rev-parse HEAD)" = "$before" ] || fail "control: a commit was made"
v=$(sed -n "$((NVAL / 2 + 1))p" "$VB")
printf 'token: %s\n' "$v" >"$RB/src/leak.yaml"
git -C "$RB" add src/leak.yaml
(cd "$RB" && LATCH_HOME=$VAULT_B "$LATCH" scan --staged) >>"$LOG" 2>&1
[ $? -eq 1 ] || fail "control: latch scan did not find the value planted in the large change"
if [ -n "$peer" ]; then
	# Its report quotes the line (bench junk): kept out of the log.
	if (cd "$RB" && git secrets --scan --cached) >"$TMP/gs-control" 2>&1 ||
		! grep -q 'leak\.yaml' "$TMP/gs-control"; then
		fail "control: git secrets did not find the value planted in the large change"
	fi
fi
echo
echo "controls: the hook refused a commit holding a value in base64; latch scan${peer:+ and git-secrets} found a value planted in the large change"

# --- 4. the matcher alone -----------------------------------------------------------
echo
if [ -x "$B/match_bench" ]; then
	echo "== 4. the matcher alone (build/bench/match_bench)"
	run "$B/match_bench" 2>>"$LOG" || fail "match_bench failed"
else
	echo "== 4. the matcher alone: build/bench/match_bench is not built here; skipped"
fi
echo
echo "load: $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end (1/5/15-min averages; other work skews figures)"
