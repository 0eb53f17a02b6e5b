#!/bin/sh
# daemon_name.sh: in latch, "agent" is the coding agent (the adversary of
# the threat model) and the daemon is the broker, everywhere. This finds
# the daemon called an agent again: an agent/ directory, a `latch agent`
# command, agent_* / AGENT_* identifiers, agent-*.sock / .lock files, or
# "agent" as a command word in a C string. Prints TAP, one test per
# pattern, each finding as a "# " line; exits 1 if any pattern is found.
# (bench/broker.sh names agent-*.lock on purpose: it stops a baseline
# binary built before the rename.)
cd "$(dirname "$0")/../.." || exit 2
files=$(git ls-files 2>/dev/null | grep -v '^tests/fuzz/corpus/\|^tests/data/.*\.db$\|^bench/broker\.sh$\|^tests/lint/daemon_name\.sh$')
[ -n "$files" ] || files=$(find . -type f \( -name '*.[ch]' -o -name '*.md' -o -name '*.1' -o -name '*.sh' -o -name '*.bash' -o -name '*.bats' -o -name '*.py' -o -name Makefile \) -not -path './build/*' -not -path './tests/fuzz/corpus/*' -not -name daemon_name.sh -not -name broker.sh)
n=0
bad=0
check() {
	n=$((n + 1))
	desc=$1
	shift
	found=$(printf '%s\n' "$files" | xargs grep -nE "$@" 2>/dev/null)
	if [ -z "$found" ]; then
		echo "ok $n - no $desc"
	else
		echo "not ok $n - $desc (the daemon is the broker):"
		printf '%s\n' "$found" | sed 's/^/# /'
		bad=1
	fi
}
n=$((n + 1))
if [ -e agent ]; then
	echo "not ok $n - an agent/ directory exists"
	bad=1
else
	echo "ok $n - no agent/ directory"
fi
check "'latch agent' command" 'latch agent\b'
check "agent_ or AGENT_ identifiers" '\b(agent|AGENT)_[A-Za-z]'
check "agent-*.sock or agent-*.lock files" 'agent-[^ ]*\.(sock|lock)'
check "\"agent\" as a word of a C string" '"agent"|"agent |\\0agent\\0'
check "agent/ paths" '(^|[^a-z])agent/[a-z]'
check "daemon called an agent" -i 'agent daemon|the agent process|agent socket|agent lock|start(s|ed)? (the|an) agent'
echo "1..$n"
exit $bad
