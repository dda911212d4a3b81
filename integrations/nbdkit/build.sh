#!/bin/sh
# Builds the nbdkit plugin: target/nbdkit/nbdkit-envol-plugin.so, libenvol
# (with the AWS KMS and PKCS#11 key services) linked in, only the plugin's
# entry point exported. Needs nbdkit-plugin-dev. Shares its Rust build with
# the C ABI's remote-service test (target/ctest-remote).
set -eu
cd "$(dirname "$0")/../.."
CARGO_TARGET_DIR=target/ctest-remote "${CARGO:-cargo}" build --release -p envol-ffi --features remote
mkdir -p target/nbdkit
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -O2 -fPIC -shared -fvisibility=hidden \
    -Iffi/include integrations/nbdkit/envol.c target/ctest-remote/release/libenvol.a \
    -Wl,--exclude-libs,ALL -lpthread -ldl -lm \
    -o target/nbdkit/nbdkit-envol-plugin.so
echo "built target/nbdkit/nbdkit-envol-plugin.so"
