#!/usr/bin/env bats
# A grant's programs are pinned by the broker when the grant arrives: a
# program replaced (a new file renamed over it) or changed in place after
# the grant is refused at release, with the reason in the audit log; the
# unchanged program still runs (docs/agents.md, issue 12 item 2).

load helpers

setup() {
	br_setup
	PROG=$BATS_TEST_TMPDIR/bin/tool
	mkdir -p "$BATS_TEST_TMPDIR/bin"
	printf '#!/bin/sh\n[ "$(printf %%s "$X" | sha256sum | cut -d" " -f1)" = %s ] || exit 9\necho granted-tool-ran\n' \
		"$BR_CANARY_SHA" >"$PROG"
	chmod 755 "$PROG"
}

# pin_denied REASON: the last run exited 4 with REASON, the child did not
# run, and the denial with that reason is the newest release record.
pin_denied() {
	want_status 4
	[[ $err == *"$1"* ]] || { echo "no '$1' in: $err" >&2; return 1; }
	[[ $out != *granted-tool-ran* ]]
	lx audit --json --event release </dev/null
	[ "$(jq -r '.[-1].decision' <<<"$out")" = deny ]
	[[ "$(jq -r '.[-1].reason' <<<"$out")" == *"$1"* ]]
}

@test "the granted program runs; replaced by another file after the grant, it is refused and the refusal recorded" {
	br_grant canary --cmd "$PROG"
	br_run --env X=latch://canary -- "$PROG"
	want_status 0
	[[ $out == *granted-tool-ran* ]]
	# The agent swaps in its own program under the granted path.
	printf '#!/bin/sh\nenv >"%s/stolen"\n' "$BATS_TEST_TMPDIR" >"$PROG.new"
	chmod 755 "$PROG.new"
	mv "$PROG.new" "$PROG"
	br_run --env X=latch://canary -- "$PROG"
	pin_denied "was replaced since the grant"
	[ ! -e "$BATS_TEST_TMPDIR/stolen" ]
}

@test "changed in place after the grant (same inode, same size, mtime set back): refused" {
	br_grant canary --cmd "$PROG"
	local mtime
	mtime=$(stat -c %y "$PROG")
	# Same length, different content, and the old mtime put back: only
	# the ctime (which a process of the user cannot set) gives it away.
	sed -i.bak 's/granted-tool-ran/GRANTED-TOOL-RAN/' "$PROG"
	rm -f "$PROG.bak"
	touch -d "$mtime" "$PROG"
	[ "$(stat -c %y "$PROG")" = "$mtime" ]
	br_run --env X=latch://canary -- "$PROG"
	# sed -i renames a new file over the old: a new inode.
	pin_denied "since the grant"
	# Truly in place: same inode.
	lx revoke --all </dev/null
	want_status 0
	br_grant canary --cmd "$PROG"
	printf 'X' | dd of="$PROG" bs=1 seek=3 conv=notrunc 2>/dev/null
	touch -d "$mtime" "$PROG"
	br_run --env X=latch://canary -- "$PROG"
	pin_denied "was changed since the grant"
}

@test "a program removed after the grant, then put back byte for byte (a new file), is refused" {
	br_grant canary --cmd "$PROG"
	local ino
	ino=$(stat -c %i "$PROG")
	cp -p "$PROG" "$BATS_TEST_TMPDIR/keep"
	rm "$PROG"
	br_run --env X=latch://canary -- "$PROG"
	# latch run resolves the command first: a missing program is 127.
	want_status 127
	# Put back byte for byte (a copy is a new inode): still refused.
	cp -p "$BATS_TEST_TMPDIR/keep" "$PROG"
	br_run --env X=latch://canary -- "$PROG"
	# The filesystem may give the copy the freed inode number again: then
	# its ctime (which no process can set back) is what differs.
	if [ "$(stat -c %i "$PROG")" = "$ino" ]; then
		pin_denied "was changed since the grant"
	else
		pin_denied "was replaced since the grant"
	fi
}
