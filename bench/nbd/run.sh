#!/usr/bin/env bash
# The whole I/O path, measured: envol's nbdkit plugin against nbdkit's own
# `file` plugin serving the same bytes of the same file (the volume's data
# area, through nbdkit's offset filter), in one run, interleaved, median of
# REPS runs each. Both go through the blocksize filter.
#
#   bench/nbd/run.sh [SIZE_MIB (512)] [REPS (3)]
#
# Prints a markdown table: nbdcopy throughput (1, 2, 4 connections, write
# and read) and qemu-img bench 4 KiB requests at queue depth 1 (latency)
# and 16 (IOPS), with envol's ratio to the unencrypted path. The files sit
# in target/nbd-bench (page cache: the worst case for envol's ratio, since
# the disk hides nothing). Needs nbdkit, nbdkit-plugin-dev, libnbd-bin,
# qemu-utils.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-512}
reps=${2:-3}
dir=target/nbd-bench
rm -rf "$dir"
mkdir -p "$dir"
integrations/nbdkit/build.sh >/dev/null
cargo run -q --release -p envol-nbdkit --example make_volume -- "$dir" "$size_mib" 4096 >/dev/null
plugin=target/nbdkit/nbdkit-envol-plugin.so
head -c $((size_mib << 20)) /dev/urandom > "$dir/src.img"
sock="$dir/nbd.sock"
uri="nbd+unix:///?socket=$sock"

serve() { # envol|file
    rm -f "$sock"
    if [ "$1" = envol ]; then
        nbdkit -f --exit-with-parent -U "$sock" --filter=blocksize "$plugin" \
            volume="$dir/disk.envol" principal=hypervisor store="$dir/kms.store" \
            root-key-file="$dir/root.key" minblock=4096 2>>"$dir/nbdkit.log" &
    else
        nbdkit -f --exit-with-parent -U "$sock" --filter=blocksize --filter=offset \
            file file="$dir/disk.envol" offset=1048576 range=$((size_mib << 20)) \
            2>>"$dir/nbdkit.log" &
    fi
    server=$!
    for _ in $(seq 1 500); do [ -S "$sock" ] && return; sleep 0.01; done
    echo "nbdkit did not start"; cat "$dir/nbdkit.log"; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; }
now() { date +%s.%N; }

# One measurement on server $1: prints a number (MB/s, or µs, or IOPS).
measure() { # kind server
    local kind=$1 t0 t1 out
    serve "$2"
    case $kind in
    write-*)
        t0=$(now); nbdcopy --connections="${kind#write-}" --flush "$dir/src.img" "$uri"; t1=$(now)
        echo "$size_mib $t0 $t1" | awk '{printf "%.0f", $1 * 1.048576 / ($3 - $2)}' ;;
    read-*)
        t0=$(now); nbdcopy --connections="${kind#read-}" "$uri" null:; t1=$(now)
        echo "$size_mib $t0 $t1" | awk '{printf "%.0f", $1 * 1.048576 / ($3 - $2)}' ;;
    qd1-read | qd1-write | qd16-read | qd16-write)
        local depth=${kind%%-*}; depth=${depth#qd} w=""
        [ "${kind#*-}" = write ] && w=-w
        out=$(qemu-img bench -f raw -t none -c 40000 -d "$depth" -s 4096 $w "$uri" | \
            sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p')
        if [ "$depth" = 1 ]; then
            echo "$out" | awk '{printf "%.1f", $1 * 1e6 / 40000}'      # µs per request
        else
            echo "$out" | awk '{printf "%.0f", 40000 / $1}'            # IOPS
        fi ;;
    esac
    stop
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
echo "CPU: $cpu ($(nproc) cores); nbdkit $(nbdkit --version | cut -d' ' -f2); $size_mib MiB, median of $reps"
echo
echo "| what | unencrypted (file plugin) | envol plugin | envol / unencrypted |"
echo "| --- | ---: | ---: | ---: |"
for kind in write-1 write-2 write-4 read-1 read-2 read-4 qd1-read qd1-write qd16-read qd16-write; do
    f=(); e=()
    for _ in $(seq 1 "$reps"); do
        f+=("$(measure "$kind" file)")
        e+=("$(measure "$kind" envol)")
    done
    fm=$(printf '%s\n' "${f[@]}" | median)
    em=$(printf '%s\n' "${e[@]}" | median)
    case $kind in
    write-*) label="nbdcopy write, ${kind#write-} conn (MB/s)" ;;
    read-*) label="nbdcopy read, ${kind#read-} conn (MB/s)" ;;
    qd1-*) label="4 KiB ${kind#qd1-}, QD1 latency (µs)" ;;
    qd16-*) label="4 KiB ${kind#qd16-}, QD16 (IOPS)" ;;
    esac
    ratio=$(awk -v a="$em" -v b="$fm" 'BEGIN {printf "%.2f", a / b}')
    echo "| $label | $fm | $em | $ratio |"
done
