#!/usr/bin/env bash
# The 10,000-cycle churn of tests/c/churn.c (join -> produce -> consume -> leave through
# the C API), twice (README.md, "Reliability"):
#   1. without sanitizers: heap bytes in use (mallinfo2) and RSS after the warm-up
#      (10% of the cycles) vs at the end; fails beyond +2% + 256 KiB heap, +5% + 1 MiB RSS;
#   2. under AddressSanitizer + LeakSanitizer: LSan checks while the server runs (after
#      the cycles) and at exit; any leaked byte fails.
#   VALGRIND=N also runs N cycles (one lane, N >= 100) under valgrind memcheck (slow: ~0.5 s a cycle).
#
#   scripts/churn.sh [cycles (10000)] [lanes (2)]
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-10000}
LANES=${2:-2}
cargo build --release
LIB="$PWD/target/release"
OUT="$PWD/target/c-tests/churn-script"
mkdir -p "$OUT"
CFLAGS=(-std=c11 -Wall -Wextra -Werror -g -Iinclude)
LINK=(-L"$LIB" -lsfu -Wl,-rpath,"$LIB" -lpthread -lm)

echo "== churn: $CYCLES cycles, no sanitizer (heap and RSS) =="
gcc "${CFLAGS[@]}" -O2 tests/c/churn.c -o "$OUT/churn" "${LINK[@]}"
"$OUT/churn" "$CYCLES" "$LANES"

echo "== churn: $CYCLES cycles under ASan/UBSan/LSan =="
gcc "${CFLAGS[@]}" -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
    tests/c/churn.c -o "$OUT/churn-asan" "${LINK[@]}"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 LSAN_OPTIONS=report_objects=1 UBSAN_OPTIONS=halt_on_error=1 \
    "$OUT/churn-asan" "$CYCLES" "$LANES"

if [ -n "${VALGRIND:-}" ]; then
    echo "== churn: $VALGRIND cycles under valgrind memcheck =="
    # --undef-value-errors=no: memcheck flags optimised Rust iterators over Option<u32>
    # (an uninitialised None payload compared, then discarded): known false positives.
    valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --undef-value-errors=no --error-exitcode=1 "$OUT/churn" "$VALGRIND" 1
fi
