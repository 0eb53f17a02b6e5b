#!/bin/sh
# Install what building and testing latch needs, and only what is missing.
# Debian 12 package names; run as root (CI and `make test` on a fresh
# machine), or it prints the apt-get line for a human to run.
set -u
need=""
want() { need="$need $1"; }

command -v pkg-config >/dev/null 2>&1 || want pkg-config
command -v cc >/dev/null 2>&1 || want gcc
pkg-config --exists libsodium 2>/dev/null || want libsodium-dev
pkg-config --exists sqlite3 2>/dev/null || want libsqlite3-dev
pkg-config --exists jansson 2>/dev/null || want libjansson-dev
pkg-config --exists libcurl 2>/dev/null || want libcurl4-openssl-dev
pkg-config --exists libcrypto 2>/dev/null || want libssl-dev
pkg-config --exists cmocka 2>/dev/null || want libcmocka-dev
command -v bats >/dev/null 2>&1 || want bats
command -v sqlite3 >/dev/null 2>&1 || want sqlite3
command -v git >/dev/null 2>&1 || want git
command -v pre-commit >/dev/null 2>&1 || want pre-commit
command -v openssl >/dev/null 2>&1 || want openssl
command -v jq >/dev/null 2>&1 || want jq
command -v ps >/dev/null 2>&1 || want procps
command -v setpriv >/dev/null 2>&1 || want util-linux
[ -x /usr/bin/python3 ] || want python3
# The federation suites' token server and JWT minting (tests/fed/).
/usr/bin/python3 -c 'import cryptography' >/dev/null 2>&1 || want python3-cryptography
command -v clang >/dev/null 2>&1 || want clang
command -v clang-format >/dev/null 2>&1 || want clang-format
# The sanitizer and libFuzzer runtimes are a separate package on Debian 12.
probe=$(mktemp -d)
if ! printf 'int main(void){return 0;}\n' >"$probe/p.c" ||
   ! clang -fsanitize=address,undefined -o "$probe/p" "$probe/p.c" >/dev/null 2>&1; then
	want libclang-rt-14-dev
fi
rm -rf "$probe"

[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "latch: missing build dependencies:$need" >&2
	echo "latch: install them with: sudo apt-get install$need" >&2
	exit 1
fi
echo "deps: installing$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq $need >/dev/null
