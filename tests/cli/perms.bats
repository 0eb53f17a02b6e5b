#!/usr/bin/env bats
# P3: the vault directory is 0700 and the file 0600, owned by the user, and
# neither is a symlink; latch refuses anything else (exit 3) with a message
# that names the path and says how to fix it.

load helpers

teardown() {
	bg_cleanup
}

# refused_by_all [SUBSTRING]...: ls, status, set, rm and reveal all exit 3
# with one line mentioning each SUBSTRING, and the vault file is unchanged.
refused_by_all() {
	local sha=""
	if [ -f "$VAULT" ] && [ ! -L "$VAULT" ]; then
		sha=$(vault_sha)
	fi
	lx ls || return 1
	want_status 3 || return 1
	want_err_line "$@" || return 1
	lx status --json || return 1
	want_status 3 || return 1
	want_err_line "$@" || return 1
	[ "$(jq -r .state <<<"$out")" = unusable ] || return 1
	lx set x --passphrase-fd 3 3<<<"$PASS" <<<"value" || return 1
	want_status 3 || return 1
	want_err_line "$@" || return 1
	lx rm a --passphrase-fd 3 3<<<"$PASS" || return 1
	want_status 3 || return 1
	want_err_line "$@" || return 1
	lpty --raw -- reveal a --passphrase-fd 3 3<<<"$PASS" || return 1
	want_status 3 || return 1
	want_err_line "$@" || return 1
	[ ! -s "$TTY_LOG" ] || return 1
	if [ -n "$sha" ]; then
		[ "$(vault_sha)" = "$sha" ] || return 1
	fi
}

@test "init creates missing directories 0700 and the vault 0600, whatever the umask" {
	export LATCH_HOME=$HOME/deep/er/vault
	VAULT=$LATCH_HOME/vault.db
	umask 000
	lx init --kdf interactive --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	umask 022
	[ "$(stat -c %a "$LATCH_HOME")" = 700 ]
	[ "$(stat -c %a "$HOME/deep/er")" = 700 ]
	[ "$(stat -c %a "$HOME/deep")" = 700 ]
	[ "$(stat -c %a "$VAULT")" = 600 ]
	[ "$(stat -c %u "$VAULT")" = "$(id -u)" ]
	# Nothing else is left in the directory (no temporary file).
	[ "$(ls -A "$LATCH_HOME")" = vault.db ]
	umask 000
	set_secret a "value"
	umask 022
	[ "$(stat -c %a "$VAULT")" = 600 ]
	[ "$(ls -A "$LATCH_HOME")" = vault.db ]
}

@test "the vault is found in LATCH_HOME, else XDG_DATA_HOME/latch, else ~/.local/share/latch" {
	unset LATCH_HOME
	lx init --kdf interactive --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[ -f "$HOME/.local/share/latch/vault.db" ]
	export XDG_DATA_HOME=$HOME/xdg
	lx init --kdf interactive --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[ -f "$HOME/xdg/latch/vault.db" ]
	lx status --json
	[ "$(jq -r .vault <<<"$out")" = "$HOME/xdg/latch/vault.db" ]
	export LATCH_HOME=$HOME/explicit
	lx init --kdf interactive --passphrase-fd 3 3<<<"$PASS"
	want_status 0
	[ -f "$HOME/explicit/vault.db" ]
	lx status --json
	[ "$(jq -r .vault <<<"$out")" = "$HOME/explicit/vault.db" ]
}

@test "a vault file readable by group or others is refused, naming the file and 'chmod 600'" {
	init_vault
	set_secret a "value"
	local mode
	for mode in 644 640 604 620 602 660; do
		chmod "$mode" "$VAULT"
		refused_by_all "$VAULT" "chmod 600" || { echo "(mode $mode)"; return 1; }
		[ "$(stat -c %a "$VAULT")" = "$mode" ] # latch does not "fix" it silently
	done
	chmod 600 "$VAULT"
	lx ls
	want_status 0
}

@test "a vault directory open to group or others is refused, naming it and 'chmod 700'" {
	init_vault
	set_secret a "value"
	local mode
	for mode in 755 750 705 701 710 770; do
		chmod "$mode" "$LATCH_HOME"
		refused_by_all "$LATCH_HOME" "chmod 700" || { echo "(mode $mode)"; return 1; }
	done
	chmod 700 "$LATCH_HOME"
	lx ls
	want_status 0
	# init into an existing loose directory is refused too, creating nothing.
	export LATCH_HOME=$HOME/loose
	VAULT=$LATCH_HOME/vault.db
	mkdir -m 755 "$LATCH_HOME"
	lx init --kdf interactive --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	want_err_line "$LATCH_HOME" "chmod 700"
	[ -z "$(ls -A "$LATCH_HOME")" ]
}

@test "LATCH_HOME or vault.db as a symlink to a real vault is refused" {
	init_vault
	set_secret a "value"
	local real=$LATCH_HOME
	ln -s "$real" "$HOME/link"
	export LATCH_HOME=$HOME/link
	VAULT=$real/vault.db
	refused_by_all "symbolic link" "$HOME/link"
	export LATCH_HOME=$HOME/link/
	refused_by_all "symbolic link"
	# init through the symlink is refused and creates nothing behind it.
	mkdir -m 700 "$HOME/empty"
	ln -s "$HOME/empty" "$HOME/link2"
	export LATCH_HOME=$HOME/link2
	lx init --kdf interactive --passphrase-fd 3 3<<<"$PASS"
	want_status 3
	want_err_line "symbolic link"
	[ -z "$(ls -A "$HOME/empty")" ]

	# The file itself a symlink to a vault in another private directory.
	export LATCH_HOME=$HOME/other
	mkdir -m 700 "$LATCH_HOME"
	ln -s "$real/vault.db" "$LATCH_HOME/vault.db"
	VAULT=$real/vault.db
	refused_by_all "symbolic link"
}

@test "a stray journal open to others is refused" {
	init_vault
	set_secret a "value"
	: >"$VAULT-journal"
	chmod 644 "$VAULT-journal"
	lx ls
	want_status 3
	want_err_line "$VAULT-journal" "chmod 600"
	chmod 600 "$VAULT-journal"
	lx ls
	want_status 0
}

@test "a vault directory or file owned by another user is refused" {
	if [ "$(id -u)" -ne 0 ]; then
		skip "needs root to chown to another user (runs as root in CI)"
	fi
	init_vault
	set_secret a "value"
	chown 65534 "$LATCH_HOME"
	refused_by_all "$LATCH_HOME" "65534"
	chown 0 "$LATCH_HOME"
	lx ls
	want_status 0
	chown 65534 "$VAULT"
	refused_by_all "$VAULT" "65534"
	chown 65534:65534 "$VAULT"
	refused_by_all "$VAULT" "65534"
	chown 0:0 "$VAULT"
	lx ls
	want_status 0
}
