#!/bin/sh
# Rebuilds the seed vaults of tests/fuzz/corpus/fuzz_vault_file with the
# real build/latch and the sqlite3 shell: small real vaults (page size 512,
# VACUUMed) made with the passphrase fuzz_vault_file.c unlocks with, and
# damaged variants of them. The values are test strings, not secrets.
#
#   make build/latch && sh tests/fuzz/make-vault-seeds.sh
#
# schema1-two-secrets-p512 (a vault from before migration 2, kept to
# exercise the upgrade path) is not rebuilt: this latch cannot make it.
set -eu
cd "$(dirname "$0")/../.."
L=$PWD/build/latch
P=fuzz-vault-passphrase
out=$PWD/tests/fuzz/corpus/fuzz_vault_file
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$P" >"$work/pp"

mk() { # DIR [PASSPHRASE]
	printf '%s\n' "${2:-$P}" | LATCH_HOME=$work/$1 "$L" init --kdf interactive --passphrase-fd 0 >/dev/null
}
set_val() { # DIR NAME VALUE [PASSPHRASE-FILE]
	printf '%s' "$3" | LATCH_HOME=$work/$1 "$L" set "$2" --passphrase-fd 3 3<"${4:-$work/pp}" >/dev/null
}
small() { # DIR PAGESIZE SEED
	cp "$work/$1/vault.db" "$work/s.db"
	sqlite3 "$work/s.db" "PRAGMA page_size=$2; VACUUM;"
	cp "$work/s.db" "$out/$3"
}

mk empty
small empty 512 empty-p512
mk two
set_val two api-key "test-value-one"
set_val two team/db.password "test-value-two"
set_val two api-key "test-value-one-v2"
small two 512 two-secrets-p512
small two 4096 two-secrets-p4096
mk removed
set_val removed a "test-a"
set_val removed b "test-b"
LATCH_HOME=$work/removed "$L" rm b --passphrase-fd 3 3<"$work/pp" >/dev/null
small removed 512 after-rm-p512
mk other fuzz-other-passphrase
printf '%s\n' fuzz-other-passphrase >"$work/pp2"
set_val other k "x" "$work/pp2"
small other 512 wrong-passphrase-p512

# Variants of two-secrets-p512, edited with the sqlite3 shell.
base=$out/two-secrets-p512
cur=$(sqlite3 "$base" "PRAGMA user_version")
v() { # SQL SEED
	cp "$base" "$work/v.db"
	sqlite3 "$work/v.db" "$1" >/dev/null
	cp "$work/v.db" "$out/$2"
}
v "PRAGMA user_version=$((cur + 1));" user-version-raised
v "PRAGMA user_version=0;" user-version-0
v "PRAGMA journal_mode=WAL;" wal-mode
v "UPDATE secrets SET nonce = zeroblob(24) WHERE name = 'api-key';" tampered-nonce
v "UPDATE secrets SET ciphertext = x'00' WHERE name = 'api-key';" short-ciphertext
v "INSERT INTO secrets (name, version, created, updated, nonce, ciphertext) VALUES ('bad name', 1, 0, 0, zeroblob(24), zeroblob(32));" invalid-name-row
v "UPDATE secrets SET id = 99 WHERE name = 'api-key';" moved-row
v "UPDATE vault SET wrapped_key = zeroblob(48);" header-checksum-mismatch
v "UPDATE vault SET kdf_opslimit = 1;" kdf-below-floor
v "UPDATE keys SET wrapped = zeroblob(48);" tampered-named-keys
v "DROP TABLE secrets;" no-secrets-table
v "DELETE FROM vault;" no-header-row

# Byte-level damage: truncation and flips in sqlite's 100-byte header.
python3 - "$base" "$out" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
b = open(src, 'rb').read()
def put(name, data):
    open(out + '/' + name, 'wb').write(data)
def flip(off, bit):
    f = bytearray(b); f[off] ^= bit; return bytes(f)
put('truncated-half', b[:len(b) // 2])
put('truncated-100', b[:100])
put('flipped-magic', flip(0, 0x20))
put('flipped-page-size', flip(16, 0x01))
put('flipped-db-size', flip(28, 0x80))
put('flipped-schema-cookie', flip(43, 0x01))
PY
chmod 644 "$out"/*
