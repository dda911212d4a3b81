#!/usr/bin/env bash
# Builds libenvol.a and bench/c/abi_compare.c and runs it: envol through its
# C ABI next to OpenSSL's EVP AES-XTS in one process.
#
#   bench/c/run.sh [--quick]
#
# OpenSSL: the copy the Rust benchmarks vendor (built by `cargo build -p
# envol-bench`), so both harnesses compare against the same version; with
# ENVOL_SYSTEM_OPENSSL=1, the system's libcrypto (libssl-dev) instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p envol-ffi
out=target/abi_compare
mkdir -p "$out"
if [ "${ENVOL_SYSTEM_OPENSSL:-0}" = 1 ]; then
    ossl_cflags=""
    ossl_libs="-lcrypto"
else
    cargo build --release -q -p envol-bench --bin compare
    inst=$(ls -d target/release/build/openssl-sys-*/out/openssl-build/install | head -1)
    [ -n "$inst" ] || { echo "vendored OpenSSL not found under target/release/build" >&2; exit 1; }
    ossl_cflags="-I$inst/include"
    ossl_libs="$inst/lib/libcrypto.a"
    [ -f "$ossl_libs" ] || ossl_libs="$inst/lib64/libcrypto.a"
fi
# shellcheck disable=SC2086
cc -std=c11 -O2 -Wall -Wextra -Werror $ossl_cflags -Iffi/include bench/c/abi_compare.c \
    target/release/libenvol.a $ossl_libs -lpthread -ldl -lm -o "$out/abi_compare"
"$out/abi_compare" "$@"
