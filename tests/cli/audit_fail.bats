#!/usr/bin/env bats
# The audit log when things go wrong (docs/design.md P7: "if it cannot be
# recorded, nothing is released"; a change and its record commit together):
# kill -9 in the middle of appends, a write lock held by another process, a
# read-only vault, a full disk. In each case nothing is recorded as done that
# did not happen, nothing done goes unrecorded, and the log still verifies.

load helpers

teardown() {
	bg_cleanup
}

# ---------------------------------------------------------------------------
# kill -9

# check_crash_log OPS_FILE: compare the log with `latch ls` and with the
# commands that exited 0 (OPS_FILE: one "set NAME" or "rm NAME" per line).
check_crash_log() {
	"$LATCH" ls --json </dev/null >"$BATS_TEST_TMPDIR/ls.json"
	"$LATCH" audit --json </dev/null >"$BATS_TEST_TMPDIR/audit.json"
	"$PY" - "$1" "$BATS_TEST_TMPDIR/ls.json" "$BATS_TEST_TMPDIR/audit.json" <<'EOF'
import json, sys
ops = [l.split() for l in open(sys.argv[1]) if l.strip()]
ls = json.load(open(sys.argv[2]))
ls = ls if isinstance(ls, list) else ls["secrets"]
present = {s["name"]: s for s in ls}
recs = json.load(open(sys.argv[3]))
bad = []
if not recs or recs[0]["event"] != "init":
    bad.append("the first record is not init")
if [r["seq"] for r in recs] != list(range(1, len(recs) + 1)):
    bad.append("seqs are not 1..%d" % len(recs))
last = {}
for r in recs[1:]:
    if r["event"] not in ("set", "rm") or len(r.get("secrets", [])) != 1:
        bad.append("unexpected record %r" % r)
        continue
    last[r["secrets"][0]] = r
# Every command that exited 0 has its record.
for op, name in ops:
    if not any(r["event"] == op and r.get("secrets") == [name] for r in recs):
        bad.append("'%s %s' exited 0 but has no record" % (op, name))
    if op == "rm" and name in present:
        bad.append("'rm %s' exited 0 but the secret is still listed" % name)
# A record and its change commit together: a secret is listed exactly when
# the last record naming it is a set (a later rm explains a missing one),
# and every set record's version is the one ls shows.
for name in set(last) | set(present):
    want = name in last and last[name]["event"] == "set"
    if want != (name in present):
        bad.append("'%s': last record %s, but %s by ls" % (
            name, last[name]["event"] if name in last else "none",
            "listed" if name in present else "not listed"))
    elif want and last[name].get("version") != present[name]["version"]:
        bad.append("'%s': record says version %r, ls %r" % (
            name, last[name].get("version"), present[name]["version"]))
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

@test "kill -9 during set (30 times at 0-150 ms) and set/rm (30 more, aimed at the commit): the log verifies and matches the vault" {
	init_vault
	local pass=$BATS_TEST_TMPDIR/pass val=$BATS_TEST_TMPDIR/val ops=$BATS_TEST_TMPDIR/ops
	printf '%s\n' "$PASS" >"$pass"
	printf '%s' "$CANARY" >"$val"
	: >"$ops"
	# One uninterrupted set, timed, to aim the second half of the kills at
	# the end of a command, where its transaction runs; the aim then follows
	# the boundary between killed and completed runs. Timing only picks kill
	# points; it decides nothing.
	local t0 t1 calib
	t0=$(date +%s%N)
	set_secret calib "$CANARY"
	t1=$(date +%s%N)
	calib=$(((t1 - t0) / 1000000))
	echo "set calib" >>"$ops"

	local i delay pid rc op name done_sets=() completed=0 killed=0 victim hot=0 aim
	aim=$((calib > 100 ? calib - 100 : 0))
	for i in $(seq 1 60); do
		if [ "$i" -le 30 ]; then
			delay=$((RANDOM % 151)) # 0-150 ms after start
		else
			delay=$((aim + RANDOM % 151))
		fi
		op=set
		name=k$i
		# The first 30: sets of fresh names. Then every fifth is an rm of a
		# secret known to exist (set completed, no rm tried since).
		if [ "$i" -gt 30 ] && [ $((i % 5)) -eq 0 ] && [ ${#done_sets[@]} -gt 0 ]; then
			op=rm
			victim=$((RANDOM % ${#done_sets[@]}))
			name=${done_sets[$victim]}
		fi
		# As in crash.bats: a process killed at a random point runs without
		# LeakSanitizer's exit-time check (ASan builds only), whose helper
		# task, killed mid-check, leaves an empty or "Unable to get
		# registers" sanitizer log about the kill, not about latch.
		if [ "$op" = set ]; then
			ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
				"$LATCH" set "$name" --file "$val" --passphrase-fd 3 3<"$pass" </dev/null \
				>/dev/null 2>"$BATS_TEST_TMPDIR/kill.$i.err" &
		else
			ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
				"$LATCH" rm "$name" --passphrase-fd 3 3<"$pass" </dev/null \
				>/dev/null 2>"$BATS_TEST_TMPDIR/kill.$i.err" &
		fi
		pid=$!
		bg_track "$pid"
		sleep "$((delay / 1000)).$(printf '%03d' $((delay % 1000)))"
		kill -9 "$pid" 2>/dev/null || true
		rc=0
		wait "$pid" 2>/dev/null || rc=$?
		[ ! -e "$VAULT-journal" ] || hot=$((hot + 1)) # killed inside a transaction
		if [ "$i" -gt 30 ]; then
			[ "$rc" -eq 0 ] && aim=$((aim > 25 ? aim - 25 : 0)) || aim=$((aim + 25))
		fi
		case $rc in
		0)
			completed=$((completed + 1))
			echo "$op $name" >>"$ops"
			[ "$op" = rm ] || done_sets+=("$name")
			;;
		137) killed=$((killed + 1)) ;;
		*)
			echo "iteration $i: latch $op $name exited $rc (not 0, not killed):" >&2
			cat "$BATS_TEST_TMPDIR/kill.$i.err" >&2
			return 1
			;;
		esac
		if [ "$op" = rm ]; then # done or maybe done: never the victim again
			unset "done_sets[$victim]"
			done_sets=("${done_sets[@]}")
		fi
	done
	echo "# kill -9 loop: $completed completed, $killed killed, $hot left a hot journal (calibration set: ${calib} ms)" >&3

	au_want_verified
	check_crash_log "$ops"
	# The vault is still usable, and the log still verifies afterwards.
	set_secret after-crash "$CANARY"
	echo "set after-crash" >>"$ops"
	au_want_verified
	check_crash_log "$ops"
	assert_absent "$CANARY" "$VAULT" "$BATS_TEST_TMPDIR/audit.json"
}

# ---------------------------------------------------------------------------
# A write lock held by another process

@test "a write lock held past LATCH_LOCK_TIMEOUT_MS: set, rm, passwd, rekey fail (3) and nothing is recorded" {
	init_vault
	set_secret keep "$CANARY"
	local n sha
	n=$(au_count)
	sha=$(sha256sum "$VAULT")
	au_lock_hold

	# Reading is not blocked by a writer.
	lx ls </dev/null
	want_status 0
	au_records
	[ "$AU_SEQS" = "1 2" ]

	LATCH_LOCK_TIMEOUT_MS=300 lxp set x --file - < <(printf 'new value')
	want_status 3
	want_err_line "locked"
	LATCH_LOCK_TIMEOUT_MS=300 lxp set keep --file - < <(printf 'replacement')
	want_status 3
	LATCH_LOCK_TIMEOUT_MS=300 lxp rm keep </dev/null
	want_status 3
	printf '%s\n%s\n' "$PASS" "another passphrase for the lock test" >"$BATS_TEST_TMPDIR/pw"
	LATCH_LOCK_TIMEOUT_MS=300 lx passwd --passphrase-fd 3 3<"$BATS_TEST_TMPDIR/pw" </dev/null
	want_status 3
	LATCH_LOCK_TIMEOUT_MS=300 lxp rekey </dev/null
	want_status 3

	au_lock_release
	[ "$(au_count)" -eq "$n" ]
	[ "$(sha256sum "$VAULT")" = "$sha" ]
	! au_has_secret x || false
	au_has_secret keep
	au_no_record_for x
	au_want_seqs "2" --secret keep
	au_want_verified
	# Without the lock the same command works: the lock was the reason.
	LATCH_LOCK_TIMEOUT_MS=300 lxp set x --file - < <(printf 'new value')
	want_status 0
	au_want_new_record set x "$n"
}

@test "a write lock held past LATCH_LOCK_TIMEOUT_MS: reveal fails (3), releases nothing, records nothing" {
	need_pty
	init_vault
	set_secret keep "$CANARY"
	local n
	n=$(au_count)
	au_lock_hold
	LATCH_LOCK_TIMEOUT_MS=300 lptyp reveal keep
	want_status 3
	! grep -qaF "$CANARY" "$TTY_LOG" "$LX_OUT" "$LX_ERR" || false
	au_lock_release
	[ "$(au_count)" -eq "$n" ]
	au_want_seqs "" --event reveal
	au_want_verified
}

# ---------------------------------------------------------------------------
# A damaged log: the append fails, so the change or release does not happen

@test "a damaged audit state: set, rm and reveal fail (3), nothing changes or is released" {
	init_vault
	set_secret keep "$CANARY"
	flip_blob audit_state state "id = 1" 40
	local n sha
	n=$(au_count)
	sha=$(sha256sum "$VAULT")
	lxp set x --file - < <(printf 'new value')
	want_status 3
	want_err_line "audit"
	lxp rm keep </dev/null
	want_status 3
	if [ -f "$PTY_RUN" ]; then
		lptyp reveal keep
		want_status 3
		! grep -qaF "$CANARY" "$TTY_LOG" "$LX_OUT" "$LX_ERR" || false
	fi
	[ "$(au_count)" -eq "$n" ]
	[ "$(sha256sum "$VAULT")" = "$sha" ]
	! au_has_secret x || false
	au_has_secret keep
	au_want_tampered 3
}

@test "a missing audit writer key: set and reveal fail, nothing changes or is released; verify is unverifiable (3)" {
	init_vault
	set_secret keep "$CANARY"
	sqlite3 "$VAULT" "DELETE FROM keys WHERE purpose = 'audit-writer'"
	local n sha
	n=$(au_count)
	sha=$(sha256sum "$VAULT")
	lxp set x --file - < <(printf 'new value')
	want_status 3
	if [ -f "$PTY_RUN" ]; then
		lptyp reveal keep
		want_status 3
		! grep -qaF "$CANARY" "$TTY_LOG" "$LX_OUT" "$LX_ERR" || false
	fi
	[ "$(au_count)" -eq "$n" ]
	[ "$(sha256sum "$VAULT")" = "$sha" ]
	! au_has_secret x || false
	au_want_unverifiable
}

# ---------------------------------------------------------------------------
# A read-only vault

# as_nobody CMD...: run CMD as uid/gid 65534 with no supplementary groups.
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# ro_vault: a vault with one secret, owned by 65534, file 0400, dir 0700,
# in a directory outside $BATS_TEST_TMPDIR that 65534 can reach.
ro_vault() {
	[ "$(id -u)" -eq 0 ] || skip "needs root: as the owner, file permissions do not stop root's writes, so latch runs as uid 65534"
	command -v setpriv >/dev/null || skip "setpriv is not installed"
	local d
	d=$(mktemp -d /tmp/latch-audit-ro.XXXXXX)
	track_dir "$d"
	chmod 0711 "$d"
	export LATCH_HOME=$d/vault
	VAULT=$LATCH_HOME/vault.db
	init_vault
	set_secret keep "$CANARY"
	chown -R 65534:65534 "$LATCH_HOME"
	chmod 0700 "$LATCH_HOME"
	chmod 0400 "$VAULT"
	# From here on lx (and the au_* checks built on it) run latch as the
	# vault's owner; root's checks use sqlite3.
	LX_WRAP=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	# uid 65534 must be able to run latch and read the vault, or the test
	# would pass for the wrong reason.
	if ! as_nobody "$LATCH" ls </dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/ro.err"; then
		if ! as_nobody test -x "$LATCH"; then
			skip "uid 65534 cannot run $LATCH (a parent directory is not searchable)"
		fi
		echo "uid 65534 cannot read the read-only vault:" >&2
		cat "$BATS_TEST_TMPDIR/ro.err" >&2
		return 1
	fi
}

@test "a read-only vault (uid 65534, 0400): set, rm, rekey fail, nothing is written or recorded" {
	ro_vault
	local n sha
	n=$(au_count)
	sha=$(sha256sum "$VAULT")
	status=0
	as_nobody "$LATCH" set x --file - --passphrase-fd 3 3<<<"$PASS" < <(printf 'new value') \
		>"$BATS_TEST_TMPDIR/o" 2>"$BATS_TEST_TMPDIR/e" || status=$?
	[ "$status" -ne 0 ] && [ "$status" -le 4 ] || { echo "set exited $status: $(cat "$BATS_TEST_TMPDIR/e")"; false; }
	status=0
	as_nobody "$LATCH" rm keep --passphrase-fd 3 3<<<"$PASS" </dev/null >/dev/null 2>&1 || status=$?
	[ "$status" -ne 0 ] && [ "$status" -le 4 ]
	status=0
	as_nobody "$LATCH" rekey --passphrase-fd 3 3<<<"$PASS" </dev/null >/dev/null 2>&1 || status=$?
	[ "$status" -ne 0 ] && [ "$status" -le 4 ]

	# Checked as root, with sqlite3: nothing changed.
	[ "$(sha256sum "$VAULT")" = "$sha" ]
	[ "$(au_count)" -eq "$n" ]
	! au_has_secret x || false
	au_has_secret keep
	[ "$(sqlite3 "$VAULT" "SELECT count(*) FROM audit_secret WHERE secret = 'x'")" -eq 0 ]
	au_no_record_for x
	au_want_seqs "2" --secret keep
	# The read-only vault still verifies (au_* run latch as uid 65534).
	au_want_verified
}

@test "a read-only vault (uid 65534, 0400): reveal cannot record, so it releases nothing" {
	need_pty
	ro_vault
	local n
	n=$(au_count)
	local tty=$BATS_TEST_TMPDIR/ro.tty o=$BATS_TEST_TMPDIR/ro.out e=$BATS_TEST_TMPDIR/ro.err rc=0
	"$PY" "$PTY_RUN" --raw --timeout 30 --log "$tty" --stdin /dev/null --stdout "$o" --stderr "$e" -- \
		setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$LATCH" reveal keep --passphrase-fd 3 3<<<"$PASS" || rc=$?
	[ "$rc" -ne 0 ] && [ "$rc" -le 4 ] || { echo "reveal exited $rc: $(cat "$e")"; false; }
	! grep -qaF "$CANARY" "$tty" "$o" "$e" || false
	[ "$(au_count)" -eq "$n" ]
	au_want_seqs "" --event reveal
	# The refusal was about writing, not about the terminal: the same reveal
	# works once the file is writable again.
	chmod 0600 "$VAULT"
	rc=0
	"$PY" "$PTY_RUN" --raw --timeout 30 --log "$tty" --stdin /dev/null --stdout "$o" --stderr "$e" -- \
		setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$LATCH" reveal keep --passphrase-fd 3 3<<<"$PASS" || rc=$?
	[ "$rc" -eq 0 ] || { echo "writable reveal exited $rc: $(cat "$e")"; false; }
	grep -qaF "$CANARY" "$tty"
	au_want_seqs "$((n + 1))" --event reveal
}

# ---------------------------------------------------------------------------
# A full disk

# full_disk_vault: a 1 MiB tmpfs as the vault's parent, a vault with one
# secret in it. Skips when mounting is not permitted.
full_disk_vault() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
	MNT=$BATS_TEST_TMPDIR/mnt
	mkdir -p "$MNT"
	mount -t tmpfs -o size=1m,mode=0700 tmpfs "$MNT" 2>/dev/null ||
		skip "mounting a tmpfs is not permitted here"
	track_mount "$MNT"
	export LATCH_HOME=$MNT/latch
	VAULT=$LATCH_HOME/vault.db
	init_vault
	set_secret keep "$CANARY"
}

# fill_disk: fill the tmpfs with another file until ENOSPC; the vault is
# left as it is. Fails unless not even one more byte fits.
fill_disk() {
	dd if=/dev/zero of="$MNT/fill" bs=4096 2>/dev/null || true
	dd if=/dev/zero of="$MNT/fill2" bs=1 2>/dev/null || true
	if printf 'x' >>"$MNT/probe" 2>/dev/null && [ -s "$MNT/probe" ]; then
		echo "fill_disk: the filesystem is not full" >&2
		return 1
	fi
}

@test "a full disk: set of a large value fails (3); after freeing space the vault verifies, no secret, no record" {
	full_disk_vault
	local n sha big=$BATS_TEST_TMPDIR/big
	head -c 300000 /dev/urandom >"$big"
	n=$(au_count)
	sha=$(sha256sum "$VAULT")
	fill_disk
	lxp set big --file "$big" </dev/null
	want_status 3
	want_err_line
	lxp set keep --file "$big" </dev/null
	want_status 3
	rm -f "$MNT/fill" "$MNT/fill2" "$MNT/probe"

	[ "$(au_count)" -eq "$n" ]
	[ "$(sha256sum "$VAULT")" = "$sha" ]
	! au_has_secret big || false
	au_no_record_for big
	au_want_seqs "2" --secret keep
	au_want_verified
	# With space, the same command works: the full disk was the reason.
	lxp set big --file "$big" </dev/null
	want_status 0
	au_want_new_record set big "$n"
	au_want_verified
}

@test "a full disk: reveal cannot record, so it releases nothing" {
	need_pty
	full_disk_vault
	local n
	n=$(au_count)
	fill_disk
	lptyp reveal keep
	[ "$status" -ne 0 ]
	! grep -qaF "$CANARY" "$TTY_LOG" "$LX_OUT" "$LX_ERR" || false
	rm -f "$MNT/fill" "$MNT/fill2" "$MNT/probe"
	[ "$(au_count)" -eq "$n" ]
	au_want_seqs "" --event reveal
	au_want_verified
}
