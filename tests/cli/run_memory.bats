#!/usr/bin/env bats
# One plaintext path (issue 9): at the moment the runner spawns the child
# (for a one-shot release, a runner latch run forks), its memory holds
# exactly one copy of each value, the child's environment; once the child
# runs, it holds none, and latch run none at all. Under a
# grant (issue 12) latch run never holds a value at all: the broker's
# runner starts the child, and once it has, the runner holds none either. And argv is hashed as
# bytes: two commands whose arguments differ only in bytes that are not
# UTF-8 get different argv hashes in the audit log.
#
# The count at spawn time comes from inside latch: a small library,
# LD_PRELOADed into latch run (it never reaches the child: latch removes
# LD_* from the child's environment), wraps posix_spawn, waitpid and poll
# (which latch run waits in under a grant) and, before the first of each,
# counts the occurrences of the value in every readable
# region of the process (/proc/self/maps). It holds the value only XORed
# with 0xa5, so it adds no copy of its own.

load helpers

setup() {
	br_setup
}

teardown() {
	bg_cleanup
}

# rm_shim: build the counting library; RM_SHIM is its path.
rm_shim() {
	command -v cc >/dev/null || skip "no C compiler to build the counting library"
	RM_SHIM=$BATS_TEST_TMPDIR/count.so
	cat >"$BATS_TEST_TMPDIR/count.c" <<'CEOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define KEY 0xa5
static unsigned char enc[4096];
static size_t n_enc;
static int spawned, polled;

static void load_needle(void)
{
	const char *hex = getenv("RM_NEEDLE");
	n_enc = 0;
	for (; hex && hex[0] && hex[1] && n_enc < sizeof enc; hex += 2) {
		unsigned v;
		if (sscanf(hex, "%2x", &v) != 1)
			break;
		enc[n_enc++] = (unsigned char)v;
	}
}

/* Occurrences of the value in every readable region (not the huge
 * reserved ones, not read-only files: neither can hold a copy). */
static long count(void)
{
	if (!n_enc)
		load_needle();
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f || !n_enc)
		return -1;
	char line[4096];
	long found = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[8] = "", path[4096] = "";
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %4095[^\n]", &lo, &hi, perms, path) < 3)
			continue;
		if (perms[0] != 'r' || hi - lo > (1ul << 30) || strstr(path, "[vvar") || strstr(path, "[vsyscall]"))
			continue;
		if (path[0] == '/' && perms[1] != 'w')
			continue;
		const unsigned char *p = (const unsigned char *)lo;
		for (unsigned long i = 0; i + n_enc <= hi - lo; i++) {
			size_t k = 0;
			while (k < n_enc && p[i + k] == (unsigned char)(enc[k] ^ KEY))
				k++;
			if (k == n_enc)
				found++;
		}
	}
	fclose(f);
	return found;
}

static void report(const char *when, long n)
{
	const char *path = getenv("RM_REPORT");
	int fd = path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
	if (fd >= 0) {
		dprintf(fd, "%s %ld\n", when, n);
		close(fd);
	}
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
		char *const argv[], char *const envp[])
{
	int (*real)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
		    char *const[], char *const[]) = dlsym(RTLD_NEXT, "posix_spawn");
	report("spawn", count());
	spawned = 1;
	return real(pid, path, fa, attr, argv, envp);
}

pid_t waitpid(pid_t pid, int *status, int options)
{
	pid_t (*real)(pid_t, int *, int) = dlsym(RTLD_NEXT, "waitpid");
	if (spawned == 1) {
		spawned = 2;
		report("wait", count());
	}
	return real(pid, status, options);
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	int (*real)(struct pollfd *, nfds_t, int) = dlsym(RTLD_NEXT, "poll");
	if (!polled) {
		polled = 1;
		report("poll", count());
	}
	return real(fds, n, timeout);
}
CEOF
	cc -shared -fPIC -O1 -o "$RM_SHIM" "$BATS_TEST_TMPDIR/count.c" -ldl ||
		{ echo "cannot build the counting library" >&2; return 1; }
}

# rm_needle VALUE: VALUE XORed with 0xa5, in hex.
rm_needle() {
	"$PY" -c 'import sys; print(bytes(b ^ 0xa5 for b in sys.argv[1].encode()).hex())' "$1"
}

# rm_counted ARGS...: latch ARGS with the counting library; RM_REPORT
# holds its lines ("spawn N", "wait N", "poll N").
rm_counted() {
	RM_REPORT=$BATS_TEST_TMPDIR/report.$((${LX_N:-0} + 1))
	local BR_ENV=("LD_PRELOAD=$RM_SHIM" "RM_NEEDLE=$RM_NEEDLE" "RM_REPORT=$RM_REPORT"
		"ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
	br_nt "$@"
}

rm_want_report() {
	local got
	got=$(cat "$RM_REPORT" 2>/dev/null)
	if [ "$got" != "$1" ]; then
		echo "expected the counts '$1', got '$got'" >&2
		return 1
	fi
}

@test "under a grant latch run never holds a value: it starts nothing, and while it waits its memory has no copy" {
	rm_shim
	RM_NEEDLE=$(rm_needle "$CANARY")
	br_grant canary --ttl 5m --cmd sh
	rm_counted run --env X=latch://canary -- sh -c "$(br_check_canary)"
	want_status 0
	rm_want_report 'poll 0'
	rm_counted run --env X=latch://canary --file F=latch://canary -- sh -c "$(br_check_canary)"' && [ "$(cat "$F")" = "$X" ]'
	want_status 0
	rm_want_report 'poll 0'
}

@test "20 references under a grant: latch run holds no copy of any value while it waits" {
	rm_shim
	local i refs=() names=()
	for i in $(seq 1 20); do
		set_secret "s$i" "value-$i-$CANARY-end"
		refs+=(--env "V$i=latch://s$i")
		names+=("s$i")
	done
	br_grant "${names[@]}" --ttl 5m
	for i in 1 7 20; do
		RM_NEEDLE=$(rm_needle "value-$i-$CANARY-end")
		rm_counted run "${refs[@]}" -- /bin/true
		want_status 0
		rm_want_report 'poll 0'
	done
}

@test "a one-shot release (passphrase, no grant): latch run wipes its copy once the runner it forks has one; the runner has one copy at spawn, none after" {
	rm_shim
	RM_NEEDLE=$(rm_needle "$CANARY")
	rm_counted run --passphrase-fd 3 --env X=latch://canary -- sh -c "$(br_check_canary)" 3<<<"$PASS"
	want_status 0
	# Two processes write the report: latch run (its first poll, while it
	# waits) and the runner (at spawn, its first poll and wait after).
	local got
	got=$(sort "$RM_REPORT")
	[ "$got" = $'poll 0\npoll 0\nspawn 1\nwait 0' ] || { echo "the counts: $(cat "$RM_REPORT")" >&2; false; }
}

@test "while the child runs, neither latch run's memory nor the runner's holds the value in any form with --no-redact (read from outside, as root)" {
	[ "$(id -u)" -eq 0 ] || skip "reading the non-dumpable latch run's memory needs root"
	# With redaction on, the runner keeps the value's forms, compiled into
	# the relay's matcher in secure memory, for as long as the child can
	# print (docs/redaction.md); without it, it wipes its copy at spawn.
	br_grant canary --ttl 5m --cmd sh
	local d=$BATS_TEST_TMPDIR/hold child runner latchpid forms
	mkdir "$d"
	setsid -w "$LATCH" run --no-redact --env X=latch://canary -- sh -c "$(br_check_canary)"'
		echo $$ $PPID >"$0/pids.tmp" && mv "$0/pids.tmp" "$0/pids"
		while [ ! -e "$0/go" ]; do sleep 0.05; done' "$d" \
		</dev/null >"$BATS_TEST_TMPDIR/hold.out" 2>"$BATS_TEST_TMPDIR/hold.err" &
	local bg=$!
	bg_track "$bg"
	wait_file "$d/pids" "$bg" || { echo "the child never started: $(cat "$BATS_TEST_TMPDIR/hold.err")" >&2; false; }
	read -r child runner <"$d/pids"
	latchpid=$bg
	bg_track "$child"
	bg_track "$runner"
	forms=$(br_forms_file "$CANARY")
	# Positive control: the scan finds the value where it is, in the
	# child's memory.
	br_memscan "$child" "$forms" >"$BATS_TEST_TMPDIR/scan.child"
	"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["found"] and r["scanned"] > 0, r' \
		"$BATS_TEST_TMPDIR/scan.child"
	br_memscan "$latchpid" "$forms" >"$BATS_TEST_TMPDIR/scan.latch"
	br_memscan "$runner" "$forms" >"$BATS_TEST_TMPDIR/scan.runner"
	touch "$d/go"
	wait "$bg" || { echo "latch run failed: $(cat "$BATS_TEST_TMPDIR/hold.err")" >&2; false; }
	"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["regions"] > 0 and not r["found"], r' \
		"$BATS_TEST_TMPDIR/scan.latch"
	"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["regions"] > 0 and not r["found"], r' \
		"$BATS_TEST_TMPDIR/scan.runner"
}

@test "argv is hashed as bytes: arguments that differ only in bytes that are not UTF-8 hash differently" {
	br_grant canary --ttl 5m --cmd true
	local a b
	for a in $'x\xff' $'x\xfe' $'x\xfe'; do
		br_run --env X=latch://canary -- true "$a"
		want_status 0
	done
	br_audit '
rel = [x for x in r if x["event"] == "release"][-3:]
assert len(rel) == 3 and all(x.get("argv_hash") for x in rel), rel
# The same argv hashes alike (positive control); one byte apart, not.
assert rel[1]["argv_hash"] == rel[2]["argv_hash"], rel
assert rel[0]["argv_hash"] != rel[1]["argv_hash"], "argv differing only in non-UTF-8 bytes hashed alike"
'
}
