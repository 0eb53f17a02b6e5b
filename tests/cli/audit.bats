#!/usr/bin/env bats
# The audit log end to end (docs/design.md P4, P7, section 5): every change and
# every reveal leaves exactly one record, failures leave none; the query
# filters; `audit verify` against flipped bytes, deleted, swapped and
# truncated records, rollback, foreign checkpoints; exports; and no value in
# any audit output or in the vault file.
# Crashes, locks, read-only vaults and full disks: audit_fail.bats.

load helpers

setup_file() {
	au_build_template
}

teardown() {
	bg_cleanup
}

# ---------------------------------------------------------------------------
# One record per change, none per failure

@test "init, set, rm, passwd and rekey each leave exactly one record with the right event and secret" {
	lxp init --kdf interactive </dev/null
	want_status 0
	au_want_new_record init - 0

	lxp set alpha --file - < <(printf 'v1')
	want_status 0
	au_want_new_record set alpha 1

	lxp set beta --file - < <(printf 'v1')
	want_status 0
	au_want_new_record set beta 2

	# Replacing a value is a set too, and the record carries the new version.
	lxp set alpha --file - < <(printf 'v2')
	want_status 0
	au_want_new_record set alpha 3
	lx audit --json --secret alpha
	"$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
assert [x["version"] for x in r] == [1, 2], r
assert all(x["secret_ids"] == [r[0]["secret_ids"][0]] for x in r), r
' "$out"

	lxp rm beta </dev/null
	want_status 0
	au_want_new_record rm beta 4

	printf '%s\n%s\n' "$PASS" "a new passphrase for the audit test" >"$BATS_TEST_TMPDIR/pw"
	lx passwd --passphrase-fd 3 3<"$BATS_TEST_TMPDIR/pw" </dev/null
	want_status 0
	au_want_new_record passwd - 5

	LX_PASS="a new passphrase for the audit test" lxp rekey </dev/null
	want_status 0
	au_want_new_record rekey - 6

	# Reading the log changes nothing: no record for ls, audit, checkpoint,
	# export or verify.
	"$LATCH" ls >/dev/null
	"$LATCH" audit >/dev/null
	"$LATCH" audit checkpoint >/dev/null
	"$LATCH" audit export >/dev/null
	LX_PASS="a new passphrase for the audit test" au_want_verified
	[[ "$out" == *"7 records verified"* ]] || { echo "verify said: $out"; false; }
	[ "$(au_count)" -eq 7 ]
}

@test "reveal leaves exactly one record (event reveal, decision allow)" {
	need_pty
	init_vault
	set_secret prod-token "$CANARY"
	local before
	before=$(au_count)
	lptyp reveal prod-token
	want_status 0
	[ "$(head -c -1 "$TTY_LOG")" = "$CANARY" ] # the reveal really happened
	au_want_new_record reveal prod-token "$before"
	lx audit --json --event reveal
	"$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
assert len(r) == 1 and r[0]["decision"] == "allow" and r[0]["secrets"] == ["prod-token"], r
' "$out"
	au_want_verified
}

@test "failing commands leave no record and do not change the vault" {
	init_vault
	set_secret keep "$CANARY"
	local n sha
	n=$(au_count)
	sha=$(sha256sum "$VAULT")

	# Wrong passphrase: exit 4, for every command that changes the vault.
	LX_PASS="wrong passphrase" lxp set wrong1 --file - < <(printf 'x')
	want_status 4
	LX_PASS="wrong passphrase" lxp rm keep </dev/null
	want_status 4
	printf '%s\n%s\n' "wrong passphrase" "another new passphrase" >"$BATS_TEST_TMPDIR/pw"
	lx passwd --passphrase-fd 3 3<"$BATS_TEST_TMPDIR/pw" </dev/null
	want_status 4
	LX_PASS="wrong passphrase" lxp rekey </dev/null
	want_status 4
	# Empty value and invalid name: exit 2.
	lxp set empty1 --file - < <(printf '')
	want_status 2
	lxp set empty2 </dev/null
	want_status 2
	lxp set '.bad' --file - < <(printf 'x')
	want_status 2
	# rm of a secret that does not exist: refused, nothing recorded.
	lxp rm nosuch </dev/null
	want_status 3
	# reveal without a terminal: denied before anything is read.
	status=0
	setsid -w "$LATCH" reveal keep --passphrase-fd 3 3<<<"$PASS" </dev/null >"$BATS_TEST_TMPDIR/rv.out" \
		2>"$BATS_TEST_TMPDIR/rv.err" || status=$?
	[ "$status" -eq 4 ]
	[ ! -s "$BATS_TEST_TMPDIR/rv.out" ]

	[ "$(au_count)" -eq "$n" ]
	[ "$(sha256sum "$VAULT")" = "$sha" ]
	for s in wrong1 empty1 empty2 nosuch; do
		au_no_record_for "$s"
	done
	au_want_seqs "2" --secret keep
	au_want_verified
}

@test "reveal with a wrong passphrase or of a missing secret leaves no record" {
	need_pty
	init_vault
	set_secret keep "$CANARY"
	local n
	n=$(au_count)
	LX_PASS="wrong passphrase" lptyp reveal keep
	want_status 4
	lptyp reveal nosuch
	[ "$status" -ne 0 ]
	! grep -qaF "$CANARY" "$TTY_LOG" || false
	[ "$(au_count)" -eq "$n" ]
	au_no_record_for nosuch
	au_want_seqs "2" --secret keep
}

# ---------------------------------------------------------------------------
# Queries

@test "audit --secret, --event, --since and --json return exactly the expected records" {
	au_build_log
	# 1 init, 2 set a, 3 set b, 4 set c, 5 set a, 6 rm b, 7 set d, 8 set e
	au_want_seqs "1 2 3 4 5 6 7 8"
	au_want_seqs "2 5" --secret a
	au_want_seqs "3 6" --secret b
	au_want_seqs "8" --secret e
	au_want_seqs "" --secret nosuch
	au_want_seqs "2 3 4 5 7 8" --event set
	au_want_seqs "6" --event rm
	au_want_seqs "1" --event init
	au_want_seqs "" --event reveal
	au_want_seqs "2 5" --secret a --event set
	au_want_seqs "6" --secret b --event rm
	au_want_seqs "" --secret a --event rm
	au_want_seqs "" --grant no-such-grant
	au_want_seqs "1 2 3 4 5 6 7 8" --since 1h
	au_want_seqs "1 2 3 4 5 6 7 8" --since 2000-01-01
	au_want_seqs "1 2 3 4 5 6 7 8" --since 2000-01-01T00:00:00Z
	au_want_seqs "2 5" --secret a --since 2000-01-01
	au_want_seqs "" --since "$(date -u -d '+2 days' +%F)"
	au_want_seqs "" --secret a --since "$(date -u -d '+2 days' +%F)"

	# The JSON is valid for json.tool too, and the records carry the names.
	"$LATCH" audit --json | "$PY" -m json.tool >/dev/null
	"$LATCH" audit --json --secret a --event set | "$PY" -m json.tool >/dev/null
	au_records --secret a
	[ "$AU_RECS" = $'2 set a\n5 set a' ]
	au_records --event rm
	[ "$AU_RECS" = "6 rm b" ]

	# The text listing: a header and one line per matching record.
	lx audit --secret a
	want_status 0
	[ "$(printf '%s\n' "$out" | wc -l)" -eq 3 ]
	[ "$(printf '%s\n' "$out" | awk 'NR > 1 {print $1, $3, $4}')" = $'2 set a\n5 set a' ]
	lx audit
	[ "$(printf '%s\n' "$out" | wc -l)" -eq 9 ]
}

@test "audit --json never passes off a damaged stored record as records (the text listing refuses it)" {
	au_build_log
	# Record 5 rewritten (no passphrase needed) into two JSON objects: spliced
	# raw into the array, it would add a forged reveal of 'c'.
	sqlite3 "$VAULT" "UPDATE audit_log SET record = CAST('{\"seq\":5,\"event\":\"set\",\"secrets\":[\"a\"]},{\"seq\":9,\"event\":\"reveal\",\"secrets\":[\"c\"]}' AS BLOB) WHERE seq = 5"
	lx audit </dev/null
	want_status 3
	lx audit --json </dev/null
	if [ "$status" -eq 0 ]; then
		"$PY" -c '
import json, sys
recs = json.load(open(sys.argv[1]))
assert isinstance(recs, list) and len(recs) == 8 and all(isinstance(r, dict) for r in recs), \
    "exit 0 with %d entries for 8 stored records: %r" % (len(recs), recs[4:6])
' "$LX_OUT" || { echo "latch audit --json exited 0 and listed a record the log does not hold" >&2; false; }
	fi
	# Not JSON at all.
	sqlite3 "$VAULT" "UPDATE audit_log SET record = CAST('not json' AS BLOB) WHERE seq = 5"
	lx audit </dev/null
	want_status 3
	lx audit --json </dev/null
	if [ "$status" -eq 0 ]; then
		"$PY" -m json.tool "$LX_OUT" >/dev/null ||
			{ echo "latch audit --json exited 0 with output that is not JSON" >&2; false; }
	fi
	au_want_tampered 5
}

@test "audit --since cuts by record time (records 1-3 moved two hours back)" {
	au_build_log
	local t
	# Move the first three records' indexed times two hours back (this is
	# tampering, so verify must notice it afterwards).
	sqlite3 "$VAULT" "UPDATE audit_log SET time = time - 7200 WHERE seq <= 3;
		UPDATE audit_secret SET time = time - 7200 WHERE seq <= 3;"
	au_want_seqs "4 5 6 7 8" --since 1h
	au_want_seqs "4 5 6 7 8" --since 90m
	au_want_seqs "1 2 3 4 5 6 7 8" --since 3h
	au_want_seqs "1 2 3 4 5 6 7 8" --since 1d
	t=$(date -u -d '-90 min' +%Y-%m-%dT%H:%M:%SZ)
	au_want_seqs "4 5 6 7 8" --since "$t"
	au_want_seqs "5" --secret a --since 1h
	au_want_seqs "2 5" --secret a --since 3h
	au_want_seqs "6" --secret b --since 1h
	au_want_seqs "4 5 7 8" --event set --since 1h
	au_want_seqs "1 2 3 4 5 6 7 8" --since 2000-01-01
	# The indexed time is covered by the MAC: the first moved record is named.
	au_want_tampered 1
}

# ---------------------------------------------------------------------------
# verify

@test "audit verify: a clean log verifies (text and --json)" {
	au_build_log
	au_want_verified
	[ "$out" = "audit log verified: 8 records verified" ]
	au_verify --json
	want_status 0
	"$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["verdict"] == "verified" and d["records"] == 8, d
assert "first_bad_seq" not in d, d
' "$out"
	au_checkpoint "$BATS_TEST_TMPDIR/cp"
	au_want_verified --checkpoint "$BATS_TEST_TMPDIR/cp"
	[[ "$out" == *"checkpoint found"* ]]
	# A checkpoint stays valid while the log grows.
	set_secret f "value-f"
	au_want_verified --checkpoint "$BATS_TEST_TMPDIR/cp"
	[[ "$out" == *"9 records verified"* ]]
}

@test "audit verify: a flipped byte in a record is tampering, named by seq" {
	au_build_log
	au_checkpoint "$BATS_TEST_TMPDIR/cp"
	flip_blob audit_log record "seq = 4" 20
	au_want_tampered_json 4
	au_want_tampered 4 --checkpoint "$BATS_TEST_TMPDIR/cp"
	[[ "$err" == *"record 4 does not match its MAC"* ]]
}

@test "audit verify: a flipped byte in the first, middle or last record's MAC is named by seq" {
	local seq
	for seq in 1 5 8; do
		au_build_log
		au_checkpoint "$BATS_TEST_TMPDIR/cp"
		flip_blob audit_log mac "seq = $seq" -1
		au_want_tampered "$seq"
		[ "$seq" -ne 8 ] || au_want_tampered "$seq" --checkpoint "$BATS_TEST_TMPDIR/cp"
	done
}

@test "audit verify: a flipped byte at the end of the last record is named" {
	au_build_log
	flip_blob audit_log record "seq = 8" -2
	au_want_tampered 8
}

@test "audit verify: altered index rows (event, secret name, secret time, a missing secret row) are named" {
	au_build_log
	sqlite3 "$VAULT" "UPDATE audit_log SET event = 'sat' WHERE seq = 3"
	au_want_tampered 3
	sqlite3 "$VAULT" "UPDATE audit_log SET event = 'set' WHERE seq = 3"
	au_want_verified

	# Renaming the secret in the index would hide record 5 from --secret a.
	sqlite3 "$VAULT" "UPDATE audit_secret SET secret = 'z' WHERE seq = 5"
	au_want_seqs "2" --secret a
	au_want_tampered 5
	sqlite3 "$VAULT" "UPDATE audit_secret SET secret = 'a' WHERE seq = 5"
	au_want_verified

	# Moving a secret's indexed time back would hide record 7 from
	# --secret d --since 1h.
	sqlite3 "$VAULT" "UPDATE audit_secret SET time = time - 86400 WHERE seq = 7"
	au_want_seqs "" --secret d --since 1h
	au_want_tampered 7
	sqlite3 "$VAULT" "UPDATE audit_secret SET time = time + 86400 WHERE seq = 7"
	au_want_verified

	sqlite3 "$VAULT" "DELETE FROM audit_secret WHERE seq = 4"
	au_want_seqs "" --secret c
	au_want_tampered 4
}

@test "audit verify: deleting a middle record is detected, with and without a checkpoint" {
	au_build_log
	au_checkpoint "$BATS_TEST_TMPDIR/cp"
	sqlite3 "$VAULT" "DELETE FROM audit_log WHERE seq = 4; DELETE FROM audit_secret WHERE seq = 4;"
	au_want_tampered_json 4
	[[ "$err" == *"record 4 is missing"* ]]
	au_want_tampered 4 --checkpoint "$BATS_TEST_TMPDIR/cp"
}

@test "audit verify: swapping two records is detected, with and without a checkpoint" {
	au_build_log
	au_checkpoint "$BATS_TEST_TMPDIR/cp"
	# Swap records 3 and 5 whole (seq in both tables), so each seq still
	# exists exactly once.
	sqlite3 "$VAULT" "
		UPDATE audit_log SET seq = -3 WHERE seq = 3;
		UPDATE audit_log SET seq = 3 WHERE seq = 5;
		UPDATE audit_log SET seq = 5 WHERE seq = -3;
		UPDATE audit_secret SET seq = -3 WHERE seq = 3;
		UPDATE audit_secret SET seq = 3 WHERE seq = 5;
		UPDATE audit_secret SET seq = 5 WHERE seq = -3;"
	[ "$(sqlite3 "$VAULT" "SELECT group_concat(seq) FROM (SELECT seq FROM audit_log ORDER BY seq)")" = "1,2,3,4,5,6,7,8" ]
	au_want_tampered 3
	au_want_tampered 3 --checkpoint "$BATS_TEST_TMPDIR/cp"

	# Swapping only the payloads (record and MAC) of 6 and 7 is caught too.
	au_build_log
	sqlite3 "$VAULT" "
		CREATE TEMP TABLE t AS SELECT seq, record, mac FROM audit_log WHERE seq IN (6, 7);
		UPDATE audit_log SET record = (SELECT record FROM t WHERE seq = 7), mac = (SELECT mac FROM t WHERE seq = 7) WHERE seq = 6;
		UPDATE audit_log SET record = (SELECT record FROM t WHERE seq = 6), mac = (SELECT mac FROM t WHERE seq = 6) WHERE seq = 7;"
	au_want_tampered 6
}

@test "audit verify: truncating the tail is detected, and 'latch set' refuses to append after the cut" {
	au_build_log
	au_checkpoint "$BATS_TEST_TMPDIR/cp"
	sqlite3 "$VAULT" "DELETE FROM audit_log WHERE seq > 5; DELETE FROM audit_secret WHERE seq > 5;"
	# The sealed state still says 8.
	au_want_tampered 6
	au_want_tampered 6 --checkpoint "$BATS_TEST_TMPDIR/cp"
	# The sealed state names a last record the log no longer has: nothing
	# more is written on top of the cut, and nothing is stored.
	lxp set f --file - < <(printf 'value-f')
	[ "$status" -eq 3 ]
	[[ "$err" == *"state is not the one its last record left"* ]]
	[ "$(sqlite3 "$VAULT" "SELECT group_concat(seq) FROM (SELECT seq FROM audit_log ORDER BY seq)")" = "1,2,3,4,5" ]
	[ "$(sqlite3 "$VAULT" "SELECT count(*) FROM secrets WHERE name = 'f'")" -eq 0 ]
	au_want_tampered_json 6
	au_want_tampered 6 --checkpoint "$BATS_TEST_TMPDIR/cp"
}

@test "audit verify: deleting the sealed state row with records left is tampering" {
	au_build_log
	sqlite3 "$VAULT" "DELETE FROM audit_state"
	au_want_tampered 1
	# And no command starts a second chain over the orphaned records.
	lxp set f --file - < <(printf 'value-f')
	[ "$status" -ne 0 ]
	[ "$(au_count)" -eq 8 ]
	! au_has_secret f || false
}

@test "audit verify: removing the whole log is unverifiable without a checkpoint, tampered with one" {
	au_build_log
	au_checkpoint "$BATS_TEST_TMPDIR/cp"
	sqlite3 "$VAULT" "DELETE FROM audit_log; DELETE FROM audit_secret; DELETE FROM audit_state;"
	au_want_unverifiable
	au_want_tampered 1 --checkpoint "$BATS_TEST_TMPDIR/cp"
	# A set starts a new log; the checkpoint exposes it as a replacement.
	set_secret f "value-f"
	au_want_tampered 1 --checkpoint "$BATS_TEST_TMPDIR/cp"
	[[ "$err" == *"replaced"* ]]
}

@test "audit verify: restoring an older copy of vault.db is caught by a later checkpoint" {
	au_build_log
	cp "$VAULT" "$BATS_TEST_TMPDIR/old.db"
	set_secret f "value-f"
	set_secret g "value-g"
	au_checkpoint "$BATS_TEST_TMPDIR/cp" # head: record 10
	cp "$BATS_TEST_TMPDIR/old.db" "$VAULT"
	rm -f "$VAULT-journal"
	au_want_tampered_json 9 --checkpoint "$BATS_TEST_TMPDIR/cp"
	[[ "$err" == *"truncated or rolled back"* ]]
	# Growing the old copy past the checkpoint's seq does not hide it: the
	# record at the checkpoint's seq is not the one checkpointed.
	set_secret x "value-x"
	set_secret y "value-y"
	set_secret z "value-z"
	au_want_tampered 10 --checkpoint "$BATS_TEST_TMPDIR/cp"
	[[ "$err" == *"differs from the checkpoint"* ]]
}

@test "audit verify: another vault's checkpoint is unverifiable (3); a forged or damaged one is rejected" {
	au_build_log
	au_checkpoint "$BATS_TEST_TMPDIR/mine"
	# A second vault elsewhere.
	(
		export LATCH_HOME=$BATS_TEST_TMPDIR/other
		VAULT=$LATCH_HOME/vault.db
		init_vault
		set_secret a "other-a"
		au_checkpoint "$BATS_TEST_TMPDIR/theirs"
	)
	au_want_unverifiable --checkpoint "$BATS_TEST_TMPDIR/theirs"
	[[ "$err" == *"another vault"* ]]

	# Same vault, the MAC changed: the checkpointed record differs.
	"$PY" -c '
import json, sys
cp = json.load(open(sys.argv[1]))
cp["mac"] = ("0" if cp["mac"][0] != "0" else "1") + cp["mac"][1:]
print(json.dumps(cp, separators=(",", ":")))
' "$BATS_TEST_TMPDIR/mine" >"$BATS_TEST_TMPDIR/forged"
	! cmp -s "$BATS_TEST_TMPDIR/mine" "$BATS_TEST_TMPDIR/forged" || false
	au_want_tampered 8 --checkpoint "$BATS_TEST_TMPDIR/forged"

	# A checkpoint claiming a record the log never had.
	sed 's/"seq":8/"seq":99/' "$BATS_TEST_TMPDIR/mine" >"$BATS_TEST_TMPDIR/ahead"
	au_want_tampered 9 --checkpoint "$BATS_TEST_TMPDIR/ahead"

	# Not a checkpoint at all: usage error.
	echo '{"hello":1}' >"$BATS_TEST_TMPDIR/junk"
	au_verify --checkpoint "$BATS_TEST_TMPDIR/junk"
	want_status 2
	want_err_line
	au_want_verified --checkpoint "$BATS_TEST_TMPDIR/mine"
}

@test "audit verify: a wrong passphrase is denied (4)" {
	au_build_log
	LX_PASS="wrong passphrase" au_verify
	want_status 4
	want_err_line
	[ ! -s "$LX_OUT" ]
	"$LATCH" audit export >"$BATS_TEST_TMPDIR/exp"
	LX_PASS="wrong passphrase" au_verify --export "$BATS_TEST_TMPDIR/exp"
	want_status 4
	want_err_line
	# Without a terminal and without --passphrase-fd: denied too.
	status=0
	setsid -w "$LATCH" audit verify </dev/null >/dev/null 2>&1 || status=$?
	[ "$status" -eq 4 ]
}

# ---------------------------------------------------------------------------
# export

@test "audit export: verifies on its own, record for record what the vault holds" {
	au_build_log
	"$LATCH" audit export >"$BATS_TEST_TMPDIR/exp"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/exp")" -eq 9 ]
	# Every line is JSON; records 1..8 in order, byte for byte the stored ones.
	"$LATCH" audit --json >"$BATS_TEST_TMPDIR/list.json"
	"$PY" - "$BATS_TEST_TMPDIR/exp" "$BATS_TEST_TMPDIR/list.json" <<'EOF'
import json, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
assert lines[-1] == b"", "export does not end in a newline"
head = json.loads(lines[0])
assert head["latch_audit_export"] == 1, head
recs = [json.loads(l) for l in lines[1:-1]]
assert [r["seq"] for r in recs] == list(range(1, 9)), recs
listed = json.load(open(sys.argv[2]))
assert [json.loads(r["record"]) for r in recs] == listed
for r in recs:
    assert len(r["mac"]) == 64
EOF
	au_want_verified --export "$BATS_TEST_TMPDIR/exp"
	[ "$out" = "audit log verified: 8 records verified" ]
	lxp audit verify --export - <"$BATS_TEST_TMPDIR/exp"
	want_status 0
	au_checkpoint "$BATS_TEST_TMPDIR/cp"
	au_want_verified --export "$BATS_TEST_TMPDIR/exp" --checkpoint "$BATS_TEST_TMPDIR/cp"
	# No vault needed: move it away.
	mv "$LATCH_HOME" "$BATS_TEST_TMPDIR/away"
	au_want_verified --export "$BATS_TEST_TMPDIR/exp"
	au_want_verified --export "$BATS_TEST_TMPDIR/exp" --checkpoint "$BATS_TEST_TMPDIR/cp"
}

# edit_export FILE LINE PYEXPR: rewrite line LINE (1-based) of an export, with
# `r` the parsed line; PYEXPR mutates it.
edit_export() {
	"$PY" - "$1" "$2" "$3" <<'EOF'
import json, sys
path, n, expr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(path, "rb").read().split(b"\n")
r = json.loads(lines[n - 1])
old = dict(r)
exec(expr)
assert r != old, "edit changed nothing"
lines[n - 1] = json.dumps(r, separators=(",", ":")).encode()
open(path, "wb").write(b"\n".join(lines))
EOF
}

@test "audit export: a flipped byte in a record line, a flipped MAC, a removed line are tampering" {
	au_build_log
	"$LATCH" audit export >"$BATS_TEST_TMPDIR/exp"
	au_checkpoint "$BATS_TEST_TMPDIR/cp"
	local f=$BATS_TEST_TMPDIR/bad

	# Line 4 holds record 3: flip one byte in the middle of its record text.
	cp "$BATS_TEST_TMPDIR/exp" "$f"
	edit_export "$f" 4 'i = len(r["record"]) // 2; r["record"] = r["record"][:i] + chr(ord(r["record"][i]) ^ 1) + r["record"][i+1:]'
	au_want_tampered_json 3 --export "$f"

	# The same with a plain byte edit of the file: record 5 (line 6) says
	# "sat" where it said "set".
	cp "$BATS_TEST_TMPDIR/exp" "$f"
	sed -i '6s/\\"event\\":\\"set\\"/\\"event\\":\\"sat\\"/' "$f"
	! cmp -s "$f" "$BATS_TEST_TMPDIR/exp" || false
	au_want_tampered 5 --export "$f"

	cp "$BATS_TEST_TMPDIR/exp" "$f"
	edit_export "$f" 8 'r["mac"] = ("0" if r["mac"][0] != "0" else "1") + r["mac"][1:]'
	au_want_tampered 7 --export "$f"

	# Record 4 (line 5) removed.
	sed '5d' "$BATS_TEST_TMPDIR/exp" >"$f"
	au_want_tampered 4 --export "$f"

	# Lines 3 and 4 (records 2 and 3) swapped.
	awk 'NR == 3 {held = $0; next} NR == 4 {print; print held; next} {print}' "$BATS_TEST_TMPDIR/exp" >"$f"
	[ "$(sed -n 3p "$f")" = "$(sed -n 4p "$BATS_TEST_TMPDIR/exp")" ]
	au_want_tampered 2 --export "$f"

	# Cut short at the end: only a checkpoint can tell.
	head -n 6 "$BATS_TEST_TMPDIR/exp" >"$f"
	au_want_tampered 6 --export "$f" --checkpoint "$BATS_TEST_TMPDIR/cp"

	# An export of a tampered vault carries the damage.
	flip_blob audit_log record "seq = 2" 30
	"$LATCH" audit export >"$f"
	au_want_tampered 2 --export "$f"
}

@test "audit export: not an export, a damaged header, a missing file" {
	init_vault
	echo '{"hello":1}' >"$BATS_TEST_TMPDIR/junk"
	au_verify --export "$BATS_TEST_TMPDIR/junk"
	want_status 2
	want_err_line
	au_verify --export "$BATS_TEST_TMPDIR/nonexistent"
	want_status 2
	want_err_line "nonexistent"
}

# ---------------------------------------------------------------------------
# No value anywhere

@test "no value (raw, hex, base64) in vault.db, an export, a checkpoint or any audit output" {
	need_pty
	init_vault
	local canary2="${CANARY}second-value"
	set_secret prod-token "$CANARY"
	set_secret other "$canary2"
	set_secret prod-token "$canary2"
	lptyp reveal prod-token
	want_status 0
	set_secret prod-token "$CANARY"
	latch_p rekey >/dev/null
	latch_p rm other >/dev/null

	local d=$BATS_TEST_TMPDIR/outs
	mkdir -p "$d"
	"$LATCH" audit >"$d/list" 2>&1
	"$LATCH" audit --json >"$d/list.json" 2>&1
	"$LATCH" audit --secret prod-token >"$d/secret" 2>&1
	"$LATCH" audit --secret prod-token --json >"$d/secret.json" 2>&1
	"$LATCH" audit --event set --json >"$d/event.json" 2>&1
	"$LATCH" audit --event reveal >"$d/event-reveal" 2>&1
	"$LATCH" audit --since 1h --json >"$d/since.json" 2>&1
	"$LATCH" audit --since 2000-01-01 >"$d/since2" 2>&1
	"$LATCH" audit checkpoint >"$d/checkpoint" 2>&1
	"$LATCH" audit export >"$d/export" 2>&1
	latch_p audit verify >"$d/verify" 2>&1
	latch_p audit verify --json >"$d/verify.json" 2>&1
	latch_p audit verify --export "$d/export" --checkpoint "$d/checkpoint" >"$d/verify-export" 2>&1
	"$LATCH" audit --help >"$d/help" 2>&1
	# Tampered: the error message must not quote the record either.
	cp "$VAULT" "$BATS_TEST_TMPDIR/clean.db"
	flip_blob audit_log record "seq = 3" 10
	latch_p audit verify >"$d/verify-bad" 2>&1 || true
	cp "$BATS_TEST_TMPDIR/clean.db" "$VAULT"

	# The outputs really are what they claim (a failed command would
	# trivially hold no value).
	grep -q '"latch_audit_export":1' "$d/export"
	grep -q '"latch_audit_checkpoint":1' "$d/checkpoint"
	grep -q "records verified" "$d/verify"
	grep -q "first bad record 3" "$d/verify-bad"
	[ "$(au_parse <"$d/list.json" | grep -c .)" -eq 8 ]

	local files=("$d"/* "$VAULT" "$LX_OUT" "$LX_ERR")
	assert_absent "$CANARY" "${files[@]}"
	assert_absent "$canary2" "${files[@]}"
	# Nor the passphrase.
	assert_absent "$PASS" "${files[@]}"
	# The check itself works: the forms are found where the value is.
	printf 'xx%sxx' "$CANARY" | base64 >"$BATS_TEST_TMPDIR/probe"
	! assert_absent "$CANARY" "$BATS_TEST_TMPDIR/probe" 2>/dev/null || false
}

# ---------------------------------------------------------------------------
# Usage

@test "audit --help and audit verify --help exit 0; bad --since and a missing checkpoint exit 2" {
	local h
	for h in --help -h; do
		lx audit "$h" </dev/null
		want_status 0
		[[ "$out" == "usage: latch audit"* ]]
		[ ! -s "$LX_ERR" ]
		lx audit verify "$h" </dev/null
		want_status 0
		[[ "$out" == "usage: latch audit"*"verify"*"--checkpoint"* ]]
		[ ! -s "$LX_ERR" ]
	done
	lx audit checkpoint --help
	want_status 0
	lx audit export --help
	want_status 0

	init_vault
	local bad
	for bad in bogus 5x 1.5h -3h 2026-13-01 2026-02-30 2025-02-29 2026-11-23T25:00:00Z 1h2 ""; do
		lx audit --since "$bad" </dev/null
		want_status 2
		want_err_line "--since"
		[ ! -s "$LX_OUT" ]
	done
	lx audit --since
	want_status 2
	want_err_line

	au_verify --checkpoint /nonexistent
	want_status 2
	want_err_line "/nonexistent"
	[ ! -s "$LX_OUT" ]
	au_verify --bogus
	want_status 2
	want_err_line
	lx audit verify extra --passphrase-fd 3 3<<<"$PASS"
	want_status 2
	lx audit checkpoint extra
	want_status 2
	lx audit export extra
	want_status 2
	lx audit --secret '../bad name'
	want_status 2
	want_err_line
}
