#!/usr/bin/env bash
# Runs fuzz targets for a bounded time each, with AddressSanitizer.
#   fuzz/run.sh SECONDS [TARGET...]   (default: every target)
# New inputs go to fuzz/work/<target> (not committed); seeds are read from
# fuzz/corpus/<target>. A crash stops the run, prints the input path and
# exits non-zero; copy the input to fuzz/regressions/<target>/ to keep it.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "corpus/$t"
    echo "=== fuzz $t for ${secs}s"
    cargo fuzz run -O "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -dict=dict/envol.dict -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | tee "work/$t.log" | grep -E '^(#[0-9]+.*(DONE|pulse)|stat::|==|SUMMARY|Test unit written|artifact)' || true
    if grep -qE 'SUMMARY|Test unit written|deadly signal|panicked' "work/$t.log"; then
        echo "FUZZ FINDING in $t: see fuzz/work/$t.log"
        grep -E 'Test unit written|SUMMARY|panicked' "work/$t.log" || true
        exit 1
    fi
    if ! grep -qE '^Done [0-9]+ runs' "work/$t.log"; then
        echo "fuzz run of $t did not complete:"
        tail -20 "work/$t.log"
        exit 1
    fi
done
