#!/usr/bin/env bash
# Builds the no_std static library for a Cortex-M4, links the firmware
# self-test against it, runs it on qemu-system-arm (mps2-an386) and prints
# the sizes. Needs the Debian toolchain described in docs/firmware.md (rustc-web with
# rust-web-src, gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm).
#   ffi/firmware/build.sh [out-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/target/firmware}
mkdir -p "$out"
target=thumbv7em-none-eabihf
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$root/target/bare
export CARGO_PROFILE_RELEASE_PANIC=abort CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
cd "$root"
/usr/bin/cargo rustc --release -Zbuild-std=core -Zbuild-std-features=panic_immediate_abort \
    --target $target -p envol-ffi --no-default-features --crate-type staticlib -q 2>/dev/null \
  || /usr/bin/cargo rustc --release -Zbuild-std=core \
    --target $target -p envol-ffi --no-default-features --crate-type staticlib -q
lib=$CARGO_TARGET_DIR/$target/release/libenvol.a
cflags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os -g
        -std=c99 -Wall -Wextra -Werror -ffunction-sections -fdata-sections
        -I"$root/ffi/include" -I"$root/ffi/firmware")
arm-none-eabi-gcc "${cflags[@]}" -ffreestanding -c "$root/ffi/firmware/startup.c" -o "$out/startup.o"
arm-none-eabi-gcc "${cflags[@]}" -c "$root/ffi/firmware/selftest.c" -o "$out/selftest.o"
arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 \
    -nostartfiles --specs=rdimon.specs -T "$root/ffi/firmware/link.ld" -Wl,--gc-sections \
    "$out/startup.o" "$out/selftest.o" "$lib" -o "$out/selftest.elf"
echo "== sizes (arm-none-eabi-size)"
arm-none-eabi-size "$out/selftest.elf"
# envol's own footprint: the same tiny program linked with nothing of envol,
# with the engine only, and with engine + envelope + header + volume.
for p in 0 1 2; do
    arm-none-eabi-gcc "${cflags[@]}" -DPROBE=$p -c "$root/ffi/firmware/size_probe.c" -o "$out/probe$p.o"
    arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 \
        -nostartfiles --specs=rdimon.specs -T "$root/ffi/firmware/link.ld" -Wl,--gc-sections \
        "$out/startup.o" "$out/probe$p.o" "$lib" -o "$out/probe$p.elf" 2>/dev/null
done
read -r t0 d0 b0 _ < <(arm-none-eabi-size "$out/probe0.elf" | tail -1)
for p in 1 2; do
    read -r t d b _ < <(arm-none-eabi-size "$out/probe$p.elf" | tail -1)
    what=$([ $p = 1 ] && echo "engine alone" || echo "engine + envelope + header + volume")
    echo "envol footprint, $what: .text $((t - t0)) .data $((d - d0)) .bss $((b - b0)) bytes (contexts in .bss of the probe: envol_xts 2048$([ $p = 2 ] && echo ', envol_volume 81920'))"
done
echo "== qemu-system-arm -M mps2-an386"
timeout 120 qemu-system-arm -M mps2-an386 -nographic -semihosting-config enable=on,target=native \
    -kernel "$out/selftest.elf"
