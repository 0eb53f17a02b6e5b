# Shared set-up for the end-to-end tests: each test gets a fresh HOME and
# vault directory under bats' own temporary directory, and drives the real
# binary ($LATCH_BIN, default build/latch).

LATCH=${LATCH_BIN:-$BATS_TEST_DIRNAME/../../build/latch}
PASS="correct horse battery staple"
CANARY="CANARY$(printf '%s' "$BATS_TEST_NAME" | cksum | cut -d' ' -f1)Zq7vX2mK9pL4"

setup() {
	export HOME="$BATS_TEST_TMPDIR/home"
	export LATCH_HOME="$HOME/.local/share/latch"
	unset XDG_DATA_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR
	mkdir -p "$HOME"
	VAULT="$LATCH_HOME/vault.db"
}

# latch_p ARGS...: run latch with the passphrase $PASS on fd 3.
latch_p() {
	"$LATCH" "$@" --passphrase-fd 3 3<<<"$PASS"
}

# init_vault: a vault with the cheap KDF level the tests use.
init_vault() {
	latch_p init --kdf interactive >/dev/null
}

# set_secret NAME VALUE: store VALUE (exact bytes, via --file -).
set_secret() {
	printf '%s' "$2" | latch_p set "$1" --file - >/dev/null
}

# sql STATEMENT: run SQL against the vault file directly.
sql() {
	sqlite3 "$VAULT" "$1"
}
