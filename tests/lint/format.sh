#!/bin/sh
# format.sh: every C file git tracks is laid out as .clang-format says, so
# `make format` changes nothing. Prints TAP (one test; each file that is
# not formatted as a "# " line); exits 1 if any is not.
cd "$(dirname "$0")/../.." || exit 2
echo "1..1"
command -v clang-format >/dev/null 2>&1 || { echo "not ok 1 - clang-format is not installed (scripts/deps.sh installs it)"; exit 1; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || { echo "not ok 1 - no C file found (not a git checkout?)"; exit 1; }
bad=""
for f in $files; do
	out=$(clang-format --dry-run --Werror "$f" 2>&1) && [ -z "$out" ] || bad="$bad $f"
done
if [ -z "$bad" ]; then
	echo "ok 1 - $(printf '%s\n' "$files" | wc -l) C files laid out as .clang-format says"
	exit 0
fi
echo "not ok 1 - not laid out as .clang-format says (run make format):"
for f in $bad; do
	echo "# $f"
done
exit 1
