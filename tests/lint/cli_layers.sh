#!/bin/sh
# cli_layers.sh: cli/ parses, calls and prints. The broker's protocol is
# owned by broker/, the audit records' format by audit/, and --json output
# goes through common/'s jout: no file under cli/ includes jansson, calls
# a json_* function, or speaks to sqlite. Prints TAP; exits 1 on a finding.
cd "$(dirname "$0")/../.." || exit 2
n=0
bad=0
check() {
	n=$((n + 1))
	desc=$1
	shift
	found=$(grep -nE "$@" cli/*.c cli/*.h 2>/dev/null)
	if [ -z "$found" ]; then
		echo "ok $n - cli/ has no $desc"
	else
		echo "not ok $n - cli/ has $desc:"
		printf '%s\n' "$found" | sed 's/^/# /'
		bad=1
	fi
}
check "jansson include" '#include[[:space:]]*[<"]jansson'
check "json_* call or type" '\bjson_[a-z_]+\b'
check "sqlite include or call" '#include[[:space:]]*[<"]sqlite3|\bsqlite3_[a-z_]+\('
echo "1..$n"
exit $bad
