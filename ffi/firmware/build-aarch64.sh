#!/usr/bin/env bash
# Builds the no_std static library for aarch64-unknown-none with
# -C target-feature=+aes,+neon (the armv8 AES + PMULL kernel, selected at
# compile time, no run-time detection), links the firmware self-test against
# it with aarch64-linux-gnu-gcc as a freestanding compiler (Debian has no
# bare-metal AArch64 libc: aarch64/start.S and aarch64/start.c are the
# start-up, printf/exit over semihosting and the mem*/str* functions), runs it
# on qemu-system-aarch64 -M virt -cpu max and prints the sizes. Needs the
# Debian toolchain described in docs/firmware.md (rustc-web with rust-web-src,
# gcc-aarch64-linux-gnu, qemu-system-arm, which provides qemu-system-aarch64).
#   ffi/firmware/build-aarch64.sh [out-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
fw=$root/ffi/firmware
out=${1:-$root/target/firmware-aarch64}
mkdir -p "$out"
target=aarch64-unknown-none
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$root/target/bare-a64fw
export RUSTFLAGS="-C target-feature=+aes,+neon"
export CARGO_PROFILE_RELEASE_PANIC=abort CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
cd "$root"
/usr/bin/cargo rustc --release -Zbuild-std=core -Zbuild-std-features=panic_immediate_abort \
    --target $target -p envol-ffi --no-default-features --crate-type staticlib -q 2>/dev/null \
  || /usr/bin/cargo rustc --release -Zbuild-std=core \
    --target $target -p envol-ffi --no-default-features --crate-type staticlib -q
lib=$CARGO_TARGET_DIR/$target/release/libenvol.a
cc=aarch64-linux-gnu-gcc
# Freestanding: no glibc headers or libraries; the C code keeps to the
# general registers (-mgeneral-regs-only) and, as the MMU stays off (all
# memory is Device memory), to aligned accesses (-mstrict-align).
cflags=(-Os -g -std=c99 -Wall -Wextra -Werror -ffunction-sections -fdata-sections
        -ffreestanding -fno-builtin -nostdinc -isystem "$($cc -print-file-name=include)"
        -mgeneral-regs-only -mstrict-align -mno-outline-atomics -fno-pie -fno-stack-protector
        -fno-asynchronous-unwind-tables -fno-unwind-tables
        -I"$fw/aarch64/include" -I"$root/ffi/include" -I"$fw")
ldflags=(-nostdlib -static -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments -T "$fw/aarch64/link.ld" -Wl,--gc-sections)
$cc "${cflags[@]}" -c "$fw/aarch64/start.S" -o "$out/start_s.o"
$cc "${cflags[@]}" -fno-tree-loop-distribute-patterns -c "$fw/aarch64/start.c" -o "$out/start.o"
$cc "${cflags[@]}" -DFW_EXPECT_BACKEND=ENVOL_BACKEND_ARMV8 -c "$fw/selftest.c" -o "$out/selftest.o"
$cc "${ldflags[@]}" "$out/start_s.o" "$out/start.o" "$out/selftest.o" "$lib" -lgcc -o "$out/selftest.elf"
echo "== sizes (aarch64-linux-gnu-size)"
aarch64-linux-gnu-size "$out/selftest.elf"
# envol's own footprint: the same tiny program linked with nothing of envol,
# with the engine only, and with engine + envelope + header + volume.
for p in 0 1 2; do
    $cc "${cflags[@]}" -DPROBE=$p -c "$fw/size_probe.c" -o "$out/probe$p.o"
    $cc "${ldflags[@]}" "$out/start_s.o" "$out/start.o" "$out/probe$p.o" "$lib" -lgcc -o "$out/probe$p.elf"
done
read -r t0 d0 b0 _ < <(aarch64-linux-gnu-size "$out/probe0.elf" | tail -1)
for p in 1 2; do
    read -r t d b _ < <(aarch64-linux-gnu-size "$out/probe$p.elf" | tail -1)
    what=$([ $p = 1 ] && echo "engine alone" || echo "engine + envelope + header + volume")
    echo "envol footprint, $what: .text $((t - t0)) .data $((d - d0)) .bss $((b - b0)) bytes (contexts in .bss of the probe: envol_xts 2048$([ $p = 2 ] && echo ', envol_volume 81920'))"
done
echo "== qemu-system-aarch64 -M virt -cpu max"
timeout 120 qemu-system-aarch64 -M virt -cpu max -m 128M -nographic \
    -semihosting-config enable=on,target=native -kernel "$out/selftest.elf"
