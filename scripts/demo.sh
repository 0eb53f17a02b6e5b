#!/bin/sh
# `make demo`: latch doing its job, end to end, in a throw-away vault.
# Each capability adds its step here, so a newcomer sees the whole flow.
set -eu
cd "$(dirname "$0")/.."
LATCH=$(pwd)/build/latch
work=$(mktemp -d)
export HOME="$work/home" LATCH_HOME="$work/home/.local/share/latch"
export XDG_RUNTIME_DIR="$work/run" LATCH_BROKER_IDLE=30
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
# The broker daemon this demo starts is stopped, by pid, on every exit.
stop_broker() {
	for f in "$XDG_RUNTIME_DIR"/latch/broker-*.lock ${sess:+"$sess"/run/latch/broker-*.lock}; do
		[ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
	done
	return 0
}
fake="" tokensrv="" sess=""
trap 'stop_broker; for pid in $fake $tokensrv; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work" ${sess:+"$sess"}' EXIT INT TERM
# A human types the passphrase at a no-echo prompt on /dev/tty. The demo has
# no human, so it hands the passphrase over on file descriptor 3 instead;
# never argv, never an environment variable.
PASS="demo passphrase, long enough"
if [ -t 1 ]; then bold=$(printf '\033[1m') plain=$(printf '\033[0m'); else bold='' plain=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ %s\n' "$*"; }
p() { "$LATCH" "$@" --passphrase-fd 3 3<<EOF_PASS
$PASS
EOF_PASS
}

step "1. Create a vault (Argon2id; 'interactive' cost to keep the demo quick)"
show "latch init --kdf interactive"
p init --kdf interactive

step "2. Store secrets: values come from stdin or a file, never from argv"
show "printf '%s' 'postgres://app:s3cr3t-Demo-Value@db/prod' | latch set prod-db"
printf '%s' 'postgres://app:s3cr3t-Demo-Value@db/prod' | p set prod-db
printf 'sk-demo-%s' 'Zq7vX2mK9pL4wE1r' >"$work/key.txt"
show "latch set stripe/api-key --file key.txt"
p set stripe/api-key --file "$work/key.txt"
rm -f "$work/key.txt"

step "3. What anyone (an agent included) can see: names, versions, times"
show "latch ls"
"$LATCH" ls
show "latch status"
"$LATCH" status

step "4. The vault file holds no plaintext"
show "grep -c 's3cr3t-Demo-Value' vault.db"
n=$(grep -c 's3cr3t-Demo-Value' "$LATCH_HOME/vault.db" || true)
echo "$n occurrences"
[ "$n" = 0 ]
ls -l "$LATCH_HOME"

step "5. An agent with no terminal and no passphrase gets nothing"
show "latch reveal prod-db   (no terminal)"
set +e
setsid -w "$LATCH" reveal prod-db </dev/null
echo "exit status $? (4 = denied)"
show "latch rm prod-db   (wrong passphrase)"
"$LATCH" rm prod-db --passphrase-fd 3 3<<EOF_PASS
a guess from the agent
EOF_PASS
echo "exit status $? (4 = denied); the vault is unchanged:"
set -e
"$LATCH" ls

step "6. Change the passphrase (one key re-wrapped) and rotate the data key"
show "latch passwd"
NEWPASS="a new demo passphrase"
"$LATCH" passwd --passphrase-fd 3 3<<EOF_PASS
$PASS
$NEWPASS
EOF_PASS
PASS=$NEWPASS
show "latch rekey"
p rekey

step "7. Remove a secret"
show "latch rm stripe/api-key"
p rm stripe/api-key
"$LATCH" ls

step "8. The audit log: every change and release, recorded before it happens"
show "latch audit"
"$LATCH" audit
show "latch audit --secret prod-db --since 1h"
"$LATCH" audit --secret prod-db --since 1h
show "latch audit checkpoint > checkpoint.json   (keep it where the agent cannot write)"
"$LATCH" audit checkpoint >"$work/checkpoint.json"
cat "$work/checkpoint.json"
show "latch audit verify --checkpoint checkpoint.json"
p audit verify --checkpoint "$work/checkpoint.json"

step "9. The main job: an agent runs a command that needs prod-db, and never sees it"
show "latch run --env DATABASE_URL=latch://prod-db -- sh -c '...'   (no grant yet, no terminal)"
set +e
setsid -w "$LATCH" run --env DATABASE_URL=latch://prod-db -- sh -c 'echo "connecting with ${#DATABASE_URL} bytes"' </dev/null
echo "exit status $? (4 = denied: only a human can grant)"
set -e
show "latch grant prod-db --cmd sh --ttl 2m --uses 3     (the human, with the passphrase)"
p grant prod-db --cmd sh --ttl 2m --uses 3
show "latch grants"
"$LATCH" grants
show "latch run --env DATABASE_URL=latch://prod-db -- sh -c 'echo \"connecting with \${#DATABASE_URL} bytes\"'"
setsid -w "$LATCH" run --env DATABASE_URL=latch://prod-db -- sh -c 'echo "connecting with ${#DATABASE_URL} bytes"' </dev/null
show "latch run --env DATABASE_URL=latch://prod-db -- sh -c 'echo \"\$DATABASE_URL\"; echo \"\$DATABASE_URL\" | base64'   (printed: redacted)"
setsid -w "$LATCH" run --env DATABASE_URL=latch://prod-db -- sh -c 'echo "$DATABASE_URL"; echo "$DATABASE_URL" | base64' </dev/null
show "latch run --env DATABASE_URL=latch://prod-db -- sh -c 'exit 42'   (the exit status passes through)"
set +e
setsid -w "$LATCH" run --env DATABASE_URL=latch://prod-db -- sh -c 'exit 42' </dev/null
echo "exit status $?"
show "latch run --env DATABASE_URL=latch://prod-db -- sh -c true   (the 3 uses are spent)"
setsid -w "$LATCH" run --env DATABASE_URL=latch://prod-db -- sh -c true </dev/null
echo "exit status $?"
set -e
show "cut -c1-160 \$LATCH_HOME/audit/stream-1   (the broker's own file: a line per record, MAC then record; each release synced before its child starts)"
cut -c1-160 "$LATCH_HOME/audit/stream-1"
show "latch audit --since 1h --event release   (folds the broker's new lines into the vault's index first)"
"$LATCH" audit --since 1h --event release
show "latch revoke --all"
"$LATCH" revoke --all

step "10. A git hook stops the value from being committed, in any common encoding"
export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.invalid \
	GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.invalid
git init -q -b main "$work/repo"
cd "$work/repo"
echo "# app" >README.md
git add README.md
git -c core.hooksPath=/dev/null commit -qm init
show "latch hook install        (pre-commit, commit-msg, pre-push; no passphrase needed to run them)"
"$LATCH" hook install
show "(the agent writes the value, base64-encoded, into a Kubernetes manifest)"
printf 'apiVersion: v1\nkind: Secret\ndata:\n  url: %s\n' \
	"$(printf '%s' 'postgres://app:s3cr3t-Demo-Value@db/prod' | base64 -w0)" >secret.yaml
show "git add secret.yaml && git commit -m 'add db secret'"
git add secret.yaml
set +e
setsid -w git commit -qm "add db secret" </dev/null
echo "exit status $? (the commit was refused)"
set -e
show "git commit --no-verify ... && git push   (the pre-push hook scans every object new to the remote)"
git init -q --bare "$work/remote.git"
git remote add origin "$work/remote.git"
git commit -q --no-verify -m "add db secret"
set +e
setsid -w git push -q origin main </dev/null
echo "exit status $? (the push was refused)"
set -e
cd - >/dev/null
show "latch audit --event scan_block          (the running broker recorded both: names and paths, never the value)"
"$LATCH" audit --event scan_block

step "11. The model token: minted from workload identity, never a stored key"
echo "(a token server on 127.0.0.1 plays Anthropic's token endpoint, and checks the"
echo " request and the identity token's signature; the identity token is signed the way"
echo " a CI platform or a Kubernetes cluster signs the one it gives a workload)"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/issuer.pem" 2>/dev/null
/usr/bin/python3 tests/fed/jwt.py jwks "$work/issuer.pem:demo" >"$work/jwks.json"
/usr/bin/python3 tests/fed/jwt.py sign --key "$work/issuer.pem" --kid demo --alg ES256 \
	--iss https://ci.example --sub repo:demo/app:ref:refs/heads/main >"$work/identity-token"
mkdir "$work/tokensrv"
/usr/bin/python3 tests/fed/tokenserver.py --dir "$work/tokensrv" --jwks "$work/jwks.json" </dev/null >/dev/null 2>&1 &
tokensrv=$!
while [ ! -s "$work/tokensrv/port" ]; do sleep 0.05; done
cat >"$work/profile.json" <<EOF_PROFILE
{"version": "1.0",
 "authentication": {"type": "oidc_federation", "federation_rule_id": "fdrl_demo",
                    "identity_token": {"source": "file", "path": "$work/identity-token"}},
 "organization_id": "org_demo", "base_url": "http://127.0.0.1:$(cat "$work/tokensrv/port")"}
EOF_PROFILE
show "latch fed add ci --from profile.json      (Anthropic's profile-file format)"
"$LATCH" fed add ci --from "$work/profile.json"
show "latch fed status ci                       (what would be sent; sends nothing)"
"$LATCH" fed status ci
show "ANTHROPIC_API_KEY='' latch run --fed ci -- sh -c '...'   (a leftover empty key would win in the SDKs)"
ANTHROPIC_API_KEY='' "$LATCH" run --fed ci -- sh -c 'echo "child: ANTHROPIC_AUTH_TOKEN=$(printf %.16s "$ANTHROPIC_AUTH_TOKEN")... ANTHROPIC_API_KEY ${ANTHROPIC_API_KEY+is set}${ANTHROPIC_API_KEY-is gone}"'
show "latch run --fed ci -- true; latch run --fed ci -- true   (cached: no new exchange)"
"$LATCH" run --fed ci -- true
"$LATCH" run --fed ci -- true
echo "token requests the server saw: $(grep -c oauth/token "$work/tokensrv/requests.jsonl")"
show "latch audit --event fed_mint              (the broker recorded the mint: never the token)"
"$LATCH" audit --event fed_mint
kill "$tokensrv" 2>/dev/null || true
wait "$tokensrv" 2>/dev/null || true
tokensrv=""

step "12. An agent poses as the broker: grant gives it nothing and names it"
show "latch broker stop"
"$LATCH" broker stop
sock=$(ls "$XDG_RUNTIME_DIR"/latch/broker-*.sock 2>/dev/null || true)
sock=${sock:-$XDG_RUNTIME_DIR/latch/broker-$(/usr/bin/python3 -c 'import hashlib, sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=8).hexdigest())' "$(readlink -f "$LATCH_HOME")").sock}
show "(the agent listens at the broker's socket, answering like a broker would)"
/usr/bin/python3 -c '
import base64, json, os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
open(sys.argv[2], "w").close()
b = lambda: base64.b64encode(os.urandom(32)).decode()
while True:
    c, _ = s.accept(); f = c.makefile("rwb")
    while f.readline():
        f.write(json.dumps({"ok": True, "pid": os.getpid(), "instance": os.urandom(16).hex(), "nonce": b(), "proof": b()}).encode() + b"\n"); f.flush()
' "$sock" "$work/fake.ready" </dev/null >/dev/null 2>&1 &
fake=$!
while [ ! -e "$work/fake.ready" ]; do sleep 0.05; done
show "latch grant prod-db --ttl 24h     (the human)"
set +e
p grant prod-db --ttl 24h
echo "exit status $? (3: refused, nothing read, nothing recorded, no value sent)"
set -e
kill "$fake" 2>/dev/null
wait "$fake" 2>/dev/null || true
rm -f "$sock"

step "13. An agent rewrites history: verification names the first bad record"
show "sed -i '2s/\"exit\":0/\"exit\":1/' \$LATCH_HOME/audit/stream-1   (a broker's record, edited in its file)"
cp "$LATCH_HOME/audit/stream-1" "$work/stream-1.kept"
sed -i '2s/"exit":0/"exit":1/' "$LATCH_HOME/audit/stream-1"
show "latch audit verify"
set +e
p audit verify
echo "exit status $? (1 = tampered)"
set -e
cp "$work/stream-1.kept" "$LATCH_HOME/audit/stream-1"
show "sqlite3 vault.db \"UPDATE audit_log SET record = replace(record, 'stripe', 'STRIPE') WHERE event = 'rm'\""
sqlite3 "$LATCH_HOME/vault.db" "UPDATE audit_log SET record = replace(record, 'stripe', 'STRIPE') WHERE event = 'rm'"
show "latch audit verify"
set +e
p audit verify
echo "exit status $? (1 = tampered)"
set -e

step "14. A session: the agent, sandboxed, cannot reach the child the broker started"
# Landlock does not hold root back, so as root the demo plays the agent's
# user as uid 65534, with a vault of its own; as anyone else, as you.
sess=$(mktemp -d /tmp/latch-demo-session.XXXXXX)
chmod 755 "$sess"
install -m 0755 "$LATCH" "$sess/latch"
mkdir -p "$sess/home" "$sess/run"
chmod 700 "$sess/home" "$sess/run"
as=""
if [ "$(id -u)" -eq 0 ]; then
	chown 65534:65534 "$sess/home" "$sess/run"
	as="setpriv --reuid 65534 --regid 65534 --clear-groups"
fi
sl() { env HOME="$sess/home" LATCH_HOME="$sess/home/vault" XDG_RUNTIME_DIR="$sess/run" $as "$sess/latch" "$@"; }
slp() { sl "$@" --passphrase-fd 3 3<<EOF_PASS
$PASS
EOF_PASS
}
if ! sl status 2>/dev/null | grep -q "this machine can run one"; then
	sl status 2>/dev/null | grep '^session:' || true
	echo "(skipped: this machine cannot run a session)"
else
	slp init --kdf interactive >/dev/null
	printf 'postgres://app:s3cr3t-session@db.internal/prod' | slp set prod-db --file - 2>/dev/null
	show "latch grant prod-db --cmd sleep --ttl 2m     (the human, outside the session: the broker starts here)"
	slp grant prod-db --cmd sleep --ttl 2m
	show "latch session -- sh agent.sh     (the agent, inside: a granted run, then attacks on its child)"
	cat >"$sess/agent.sh" <<'EOF_AGENT'
latch=$1
"$latch" run --env DATABASE_URL=latch://prod-db -- sleep 30 </dev/null &
run=$!
child=""
while [ -z "$child" ]; do sleep 0.1; child=$(pgrep -u "$(id -u)" -f '^sleep 30$' | head -n 1); done
echo "the granted child is pid $child, started by the broker's runner $(awk '/^PPid:/ {print $2}' /proc/$child/status)"
printf '$ cat /proc/%s/environ\n' "$child"
cat "/proc/$child/environ" >/dev/null || true
printf '$ kill %s\n' "$child"
kill "$child" || true
"$latch" status | grep '^session:'
kill "$run"     # its own latch run: the runner ends the child
wait "$run" 2>/dev/null
echo "latch run ended; the child is gone: $(ps -p "$child" >/dev/null && echo no || echo yes)"
EOF_AGENT
	sl session -- sh "$sess/agent.sh" "$sess/latch" </dev/null
	show "latch audit --event release --json     (the release names the runner and the session)"
	sl audit --event release --json | grep -o '"runner":[0-9]*,"session":[a-z]*'
fi

printf '\nDone.\n'
