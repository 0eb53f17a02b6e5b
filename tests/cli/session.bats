#!/usr/bin/env bats
# latch session (docs/agents.md, P8): the agent runs in a Landlock domain
# from which processes outside it (the broker, a granted child) cannot be
# signalled, traced or read through /proc; the broker is started outside,
# never inside; exit statuses pass through; refusals are one line, exit 3.
#
# Landlock does not hold root back, so every test that needs the sandbox
# runs latch as uid 65534 (setpriv), with HOME, the vault and
# XDG_RUNTIME_DIR in a directory of its own under /tmp (bats' temporary
# directory is root's, 0700) and a copy of the binary there. Every process
# started here is stopped by pid in bg_cleanup (brokers through their lock
# files, the rest through bg_track).

load helpers
load session_helpers

setup_file() {
	session_setup_file
}

setup() {
	session_setup
}

teardown() {
	bg_cleanup
}

# ---------------------------------------------------------------------------
# Refusals

@test "as root: exit 3, one line saying Landlock does not hold root back, nothing run or started" {
	[ "$(id -u)" -eq 0 ] || skip "not running as root"
	lx session -- touch "$S/pub/ran" </dev/null
	want_status 3
	want_err_line "cannot start a session" "Landlock does not hold root back"
	want_no_stdout
	[ ! -e "$S/pub/ran" ]
	refute broker_running
}

@test "Landlock ABI 5 or none (LATCH_LANDLOCK_ABI_MAX): exit 3, says why, nothing started or run" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	nobody_vault
	SX_ENV=(LATCH_LANDLOCK_ABI_MAX=5)
	sxp session --passphrase-fd 3 -- touch "$S/pub/ran"
	want_status 3
	want_err_line "cannot start a session" "Landlock ABI 5 cannot scope signals" "ABI 6"
	[ ! -e "$S/pub/ran" ]
	refute broker_running
	SX_ENV=(LATCH_LANDLOCK_ABI_MAX=0)
	sxp session --passphrase-fd 3 -- touch "$S/pub/ran"
	want_status 3
	want_err_line "cannot start a session" "Landlock is missing or disabled"
	[ ! -e "$S/pub/ran" ]
	refute broker_running
	# The control: with the real ABI (7 on the machines this runs on),
	# the same command runs.
	SX_ENV=()
	sxp session --passphrase-fd 3 -- touch "$S/pub/ran"
	want_status 0
	[ -e "$S/pub/ran" ]
}

@test "a session inside a session is refused (exit 3), and the inner command does not run" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	sx session -- "$SL" session -- touch "$S/pub/ran"
	want_status 3
	[[ $err == *"cannot start a session inside a session"* ]]
	[ ! -e "$S/pub/ran" ]
}

# ---------------------------------------------------------------------------
# What the sandbox stops

@test "inside: signals, /proc/PID/environ, mem, fd and ptrace of a process outside all fail; outside they work" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	start_victim
	# Outside the session, as the same uid: every attack works (N1).
	run as_nobody "$PY" "$S/probe.py" "$VICTIM" all
	[ "$status" -eq 0 ]
	[ "$output" = $'kill0=ok\nenviron=ok\nmem=ok\nfd=ok\nptrace=ok' ] || { echo "outside: $output" >&2; false; }
	# Inside: every one refused.
	sx session -- "$PY" "$S/probe.py" "$VICTIM" all
	want_status 0
	[ "$out" = $'kill0=EPERM\nenviron=EACCES\nmem=EACCES\nfd=EACCES\nptrace=EPERM' ] || { echo "inside: $out" >&2; false; }
	# kill -TERM and cat, as an agent would type them.
	sx session -- sh -c "kill -TERM $VICTIM; echo kill=\$?; cat /proc/$VICTIM/environ >/dev/null; echo environ=\$?"
	want_status 0
	[[ $out == *"kill=1"* && $out == *"environ=1"* ]] || { echo "inside: $out" >&2; false; }
	refute proc_gone "$VICTIM"
	# The same kill from outside ends it.
	run as_nobody kill -TERM "$VICTIM"
	[ "$status" -eq 0 ]
	wait_gone "$VICTIM"
}

@test "a process the session started itself stays within reach of the session (the domain scopes outward only)" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	sx session -- sh -c "VICTIM_MARK=here $PY -c 'import time; time.sleep(60)' & v=\$!; sleep 0.3; $PY $S/probe.py \$v kill0; $PY $S/probe.py \$v environ; kill \$v"
	want_status 0
	[ "$out" = $'kill0=ok\nenviron=ok' ] || { echo "inside, own child: $out" >&2; false; }
}

@test "the broker the session started lives outside: inside, kill -0 of its pid fails; outside it works" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	nobody_vault
	refute broker_running
	sxp session --passphrase-fd 3 -- sh -c 'b=$(cat "$XDG_RUNTIME_DIR"/latch/broker-*.lock); kill -0 "$b"; echo "kill=$?"; echo "broker=$b"'
	want_status 0
	broker_running
	local b
	b=$(grep -o 'broker=[0-9]*' <<<"$out" | cut -d= -f2)
	br_is_broker "$b"
	[[ $out == *"kill=1"* ]] || { echo "inside: $out" >&2; false; }
	[[ $err == *"Operation not permitted"* ]]
	run as_nobody kill -0 "$b"
	[ "$status" -eq 0 ]
}

# ---------------------------------------------------------------------------
# The command: statuses, environment, descriptors

@test "CMD's exit status passes through: 0, 3, 42, 128+N; a missing CMD is 127, one that cannot run 126" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	local want
	for want in 0 3 42; do
		sx session -- sh -c "exit $want"
		want_status "$want"
	done
	sx session -- sh -c 'kill -TERM $$'
	want_status 143
	sx session -- sh -c 'kill -KILL $$'
	want_status 137
	sx session -- no-such-command-here
	want_status 127
	[[ $err == *"no-such-command-here"* ]]
	printf 'not a program\n' >"$S/pub/plain"
	chmod 0644 "$S/pub/plain"
	sx session -- "$S/pub/plain"
	want_status 126
}

@test "CMD defaults to \$SHELL, else /bin/sh; it gets LATCH_SESSION, the caller's umask and the arguments as given" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	printf '#!/bin/sh\necho "shell ran: $*"\n' >"$S/pub/myshell"
	chmod 0755 "$S/pub/myshell"
	SX_ENV=(SHELL="$S/pub/myshell")
	sx session
	want_status 0
	[ "$out" = "shell ran: " ]
	SX_ENV=()
	sx session -- sh -c 'echo "session=$LATCH_SESSION umask=$(umask)" "$@"' zero 'a b' -c
	want_status 0
	[[ $out =~ ^session=[0-9]+\ umask=0022\ a\ b\ -c$ ]] || { echo "got: $out" >&2; false; }
}

@test "latch status: inside says inside (launcher = LATCH_SESSION); outside says not, even with LATCH_SESSION faked" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	start_victim
	# (No vault here: status itself exits 3; the session's status is sh's.)
	sx session -- sh -c "echo \"L=\$LATCH_SESSION\"; \"$SL\" status --json; exit 0"
	want_status 0
	local l json
	l=$(head -n 1 <<<"$out" | cut -d= -f2)
	json=$(tail -n +2 <<<"$out")
	[ "$(jq -r .session.inside <<<"$json")" = true ]
	[ "$(jq -r .session.launcher <<<"$json")" = "$l" ]
	[ "$(jq -r '.session | .ptrace and .signals and .abstract_unix' <<<"$json")" = true ]
	[ "$(jq -r .session.abi <<<"$json")" -ge 6 ]
	sx session -- "$SL" status
	[[ $out == *"session:  inside a latch session (launcher pid "* ]] || { echo "got: $out" >&2; false; }
	# Outside: not; and a variable naming a process is not trusted: not
	# root's shell ($$), not a process of the same uid (kill works).
	local fake
	for fake in "" "$$" "$VICTIM"; do
		SX_ENV=(LATCH_SESSION="$fake")
		sx status --json
		[ "$(jq -r .session.inside <<<"$out")" = false ] || { echo "LATCH_SESSION=$fake: $out" >&2; false; }
		[ "$(jq -r .session.available <<<"$out")" = true ]
		sx status
		[[ $out == *"session:  not in a latch session; this machine can run one"* ]] || { echo "got: $out" >&2; false; }
	done
	# Inside, with the variable removed, the ancestors still tell.
	SX_ENV=()
	sx session -- env -u LATCH_SESSION "$SL" status --json
	[ "$(jq -r .session.inside <<<"$out")" = true ]
}

@test "no descriptor of latch's (passphrase, vault, broker socket) reaches CMD: only 0, 1 and 2" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	nobody_vault
	# The session reads the passphrase on fd 3, opens the vault and
	# starts the broker; fd 5 is the caller's own, closed for CMD too.
	sx session --passphrase-fd 3 -- sh -c 'ls /proc/$$/fd' 3<<<"$PASS" 5<"$S/probe.py"
	want_status 0
	broker_running
	[ "$(tr '\n' ' ' <<<"$out")" = "0 1 2 " ] || { echo "CMD's descriptors: $out" >&2; false; }
	# The control: the same listing shows a descriptor that is there.
	sx session -- sh -c 'exec 7</dev/null; ls /proc/$$/fd'
	[ "$(tr '\n' ' ' <<<"$out")" = "0 1 2 7 " ] || { echo "control: $out" >&2; false; }
}

# ---------------------------------------------------------------------------
# The broker: started outside by the session, never inside

@test "a wrong passphrase: exit 4, CMD does not run, no broker starts" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	nobody_vault
	LX_PASS="not the passphrase" sxp session --passphrase-fd 3 -- touch "$S/pub/ran"
	want_status 4
	want_err_line "wrong passphrase"
	[ ! -e "$S/pub/ran" ]
	refute broker_running
	# The control: the right one starts the broker and runs CMD.
	sxp session --passphrase-fd 3 -- touch "$S/pub/ran"
	want_status 0
	[ -e "$S/pub/ran" ]
	broker_running
}

@test "with a broker running, the session asks no passphrase; with no vault, it runs with a note and no broker" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	sx session -- touch "$S/pub/novault"
	want_status 0
	[ -e "$S/pub/novault" ]
	want_err_line "no vault at" "run 'latch grant' in a terminal outside this session"
	refute broker_running
	nobody_vault
	# No passphrase and no terminal: exit 4, nothing run.
	sx session -- touch "$S/pub/ran"
	want_status 4
	[ ! -e "$S/pub/ran" ]
	as_nobody "$SL" broker --passphrase-fd 3 3<<<"$PASS" </dev/null >/dev/null
	broker_running
	sx session -- touch "$S/pub/ran"
	want_status 0
	[ -e "$S/pub/ran" ]
	[ ! -s "$LX_ERR" ]
}

@test "inside, latch grant with no broker refuses (exit 3) and starts none; latch broker too; with one started outside, grant works" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	nobody_vault
	# The session starts a broker; inside it is stopped (narrowing needs
	# no proof), and then a grant finds none.
	SX_ENV=(P="$PASS")
	sxp session --passphrase-fd 3 -- bash -c '
		"'"$SL"'" broker stop >/dev/null || exit 90
		"'"$SL"'" grant canary --passphrase-fd 3 3<<<"$P"; echo "grant=$?"
		"'"$SL"'" broker --passphrase-fd 3 3<<<"$P"; echo "broker=$?"'
	want_status 0
	[[ $out == *"grant=3"* && $out == *"broker=3"* ]] || { echo "inside: $out $err" >&2; false; }
	[[ $err == *"cannot start a broker inside a latch session"*"run 'latch grant' in a terminal outside the session"* ]]
	refute broker_running
	[ "$(nobody_brokers)" -eq 0 ]
	# A broker started outside: the grant inside uses it.
	as_nobody "$SL" broker --passphrase-fd 3 3<<<"$PASS" </dev/null >/dev/null
	broker_running
	sx session -- bash -c '"'"$SL"'" grant canary --passphrase-fd 3 3<<<"$P"; echo "grant=$?"'
	want_status 0
	[[ $out == *"Granted canary"*"grant=0"* ]] || { echo "inside: $out $err" >&2; false; }
	[ "$(nobody_brokers)" -eq 1 ]
	run as_nobody "$SL" grants
	[[ $output == *canary* ]]
}

# ---------------------------------------------------------------------------
# --fed: the session's model token, as a file the launcher keeps fresh

@test "--fed: CMD gets a private configuration directory, no API key or token variable; refreshed from outside before expiry; removed at the end" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run latch as uid $NOBODY"
	unset ANTHROPIC_AUTH_TOKEN ANTHROPIC_BASE_URL ANTHROPIC_PROFILE ANTHROPIC_CONFIG_DIR \
		ANTHROPIC_FEDERATION_RULE_ID ANTHROPIC_ORGANIZATION_ID ANTHROPIC_SERVICE_ACCOUNT_ID \
		ANTHROPIC_WORKSPACE_ID ANTHROPIC_SCOPE ANTHROPIC_IDENTITY_TOKEN ANTHROPIC_IDENTITY_TOKEN_FILE \
		ACTIONS_ID_TOKEN_REQUEST_URL ACTIONS_ID_TOKEN_REQUEST_TOKEN LATCH_FED_PROFILE
	fed_server
	echo 125 >"$FED_DIR/expires_in"
	# The identity tokens and the profile where uid 65534 can read them.
	local id=$S/pub/idtoken o=$S/pub/out
	fed_idtoken "$id"
	fed_jwt >"$id.next"
	chmod 0644 "$id" "$id.next"
	fed_profile_json p ".authentication.identity_token.path = \"$id\""
	install -m 0644 "$FED_PROFILE_FILE" "$S/pub/profile.json"
	as_nobody "$SL" fed add p --from "$S/pub/profile.json" </dev/null >/dev/null
	mkdir "$o"
	chown "$NOBODY" "$o"
	# CMD records what it got, swaps in the next identity token for the
	# refresh, then waits (at most 30 s) for the credentials to change.
	cat >"$S/pub/child.sh" <<'EOF'
o=$1
d=$ANTHROPIC_CONFIG_DIR
printf '%s\n' "$d" >"$o/dir"
printf '%s\n' "${ANTHROPIC_PROFILE-unset}" >"$o/profile"
for v in ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN ANTHROPIC_FEDERATION_RULE_ID; do
	eval "[ \"\${$v+set}\" = set ]" && echo "$v" >>"$o/leaked"
done
cred=$d/credentials/$ANTHROPIC_PROFILE.json
cp "$cred" "$o/cred1.json"
mv "$2" "$3"
first=$(jq -r .access_token "$o/cred1.json")
i=0
while [ $i -lt 300 ]; do
	if t=$(jq -er .access_token "$cred" 2>/dev/null) && [ "$t" != "$first" ]; then
		cp "$cred" "$o/cred2.json"
		exit 0
	fi
	sleep 0.1
	i=$((i + 1))
done
exit 7
EOF
	chmod 0644 "$S/pub/child.sh"
	SX_ENV=(ANTHROPIC_API_KEY=sk-ant-api03-parent ANTHROPIC_AUTH_TOKEN=sk-ant-oat01-parent
		ANTHROPIC_FEDERATION_RULE_ID=fdrl_x)
	sx session --fed p -- sh "$S/pub/child.sh" "$o" "$id.next" "$id"
	want_status 0
	[ ! -e "$o/leaked" ] || { echo "CMD got: $(cat "$o/leaked")" >&2; false; }
	[ "$(cat "$o/profile")" = p ]
	local d
	d=$(cat "$o/dir")
	[[ $d == "$XDG_RUNTIME_DIR"/latch/fed/* ]] || { echo "the directory is $d" >&2; false; }
	[ ! -e "$d" ]
	fed_want_requests 2
	jq -e --arg t "$(fed_tokens_issued | head -n 1)" '.access_token == $t' "$o/cred1.json" >/dev/null
	jq -e --arg t "$(fed_tokens_issued | tail -n 1)" '.access_token == $t' "$o/cred2.json" >/dev/null
}
