#!/bin/sh
# bats_bang.sh [FILE...]: find `! cmd` lines in the bats tests that assert
# nothing. bats runs a test under `set -e`, and bash's errexit ignores a
# pipeline negated with `!`: `! grep -q secret log` in the middle of a test
# goes on whatever grep found. (As the very last line of a test it does
# fail it, through the test's return status, but one line added below it
# turns it into a no-op without a word.) So every line whose first word is
# `!` must end in `|| false` (or `|| return N`, `|| exit N`); better still,
# write `refute cmd` (tests/cli/helpers.bash) or `run`.
#
# Default FILEs: tests/cli/*.bats and tests/cli/*.bash. Here-documents are
# skipped; a `!` line inside a multi-line quoted string would be flagged
# (none is). Prints TAP, one test per file, each finding as a "# " line;
# exits 1 if any file has a finding.
if [ $# -eq 0 ]; then
	cd "$(dirname "$0")/../.." || exit 2
	set -- tests/cli/*.bats tests/cli/*.bash
fi
echo "1..$#"
n=0
bad=0
for f in "$@"; do
	n=$((n + 1))
	if [ ! -r "$f" ]; then
		echo "not ok $n - $f: cannot read it"
		bad=1
		continue
	fi
	findings=$(awk '
		# Inside a here-document: skip up to its terminator.
		heredoc != "" {
			line = $0
			if (strip_tabs)
				sub(/^\t+/, "", line)
			if (line == heredoc)
				heredoc = ""
			next
		}
		# Join backslash-continued lines into one logical line.
		/\\$/ {
			if (acc == "")
				start = FNR
			acc = acc substr($0, 1, length($0) - 1) " "
			next
		}
		{
			if (acc == "")
				start = FNR
			line = acc $0
			acc = ""
			if (line ~ /^[ \t]*![ \t]+[^ \t]/) {
				end = line
				sub(/[ \t]+#[^"\047]*$/, "", end) # a trailing comment
				if (end !~ /\|\|[ \t]*(false|return|return[ \t]+[1-9][0-9]*|exit[ \t]+[1-9][0-9]*)[ \t]*;?[ \t]*$/)
					printf "%s:%d: %s\n", FILENAME, start, line
			}
			# A here-document starts on this line: remember its word
			# (here-strings, <<<, are not one).
			probe = line
			gsub(/<<</, "", probe)
			if (match(probe, /<<-?[ \t]*["\047]?[A-Za-z_][A-Za-z0-9_]*/)) {
				w = substr(probe, RSTART, RLENGTH)
				strip_tabs = (w ~ /^<<-/)
				sub(/^<<-?[ \t]*["\047]?/, "", w)
				heredoc = w
			}
		}
	' "$f")
	if [ -z "$findings" ]; then
		echo "ok $n - $f: every '! cmd' line can fail its test"
	else
		echo "not ok $n - $f: '! cmd' lines that assert nothing (end them in '|| false', or use refute):"
		printf '%s\n' "$findings" | sed 's/^/# /'
		bad=1
	fi
done
exit $bad
