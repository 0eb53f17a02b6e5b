#!/usr/bin/env bats
# grant --allow-env VAR: a variable latch removes from every child (LD_*,
# PYTHONPATH, ...; docs/environment.md) is kept for the children of that
# grant only; the grant's audit record names it; a name latch does not
# remove is refused as a likely mistake.

load helpers

setup() {
	br_setup
	SH=$(br_real sh)
}

@test "PYTHONPATH reaches the child only under a grant that allows it; the grant record names it" {
	export PYTHONPATH=/opt/human-chosen
	# Without --allow-env: removed, as always.
	br_grant canary --cmd "$SH"
	br_run --env X=latch://canary -- sh -c "$(br_check_canary); printf '[%s]' \"\${PYTHONPATH-unset}\""
	want_status 0
	[ "$out" = "[unset]" ]
	lx revoke --all </dev/null
	# With it: kept, and only it (LD_LIBRARY_PATH still goes).
	export LD_LIBRARY_PATH=/opt/evil
	br_grant canary --cmd "$SH" --allow-env PYTHONPATH
	br_run --env X=latch://canary -- sh -c "$(br_check_canary); printf '[%s][%s]' \"\${PYTHONPATH-unset}\" \"\${LD_LIBRARY_PATH-unset}\""
	want_status 0
	[ "$out" = "[/opt/human-chosen][unset]" ]
	lx audit --json --event grant </dev/null
	[ "$(jq -r '.[-1].allow_env | join(",")' <<<"$out")" = PYTHONPATH ]
	# --keep under --pristine cannot name it for a grant that does not allow it.
	lx revoke --all </dev/null
	br_grant canary --cmd "$SH"
	br_run --pristine --env X=latch://canary -- "$SH" -c "$(br_check_canary); printf '[%s]' \"\${PYTHONPATH-unset}\""
	want_status 0
	[ "$out" = "[unset]" ]
}

@test "--allow-env refuses a variable latch does not remove, and a malformed one, before anything is read" {
	lx grant canary --allow-env HOME --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 2
	[[ $err == *"--allow-env names a variable latch removes"* ]]
	lx grant canary --allow-env 'LD_PRELOAD=/x' --passphrase-fd 3 3<<<"$PASS" </dev/null
	want_status 2
	lx audit --json --event grant </dev/null
	[ "$(jq length <<<"$out")" = 0 ]
}
