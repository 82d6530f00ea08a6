#!/usr/bin/env bash
# tests/c/concurrency.c under ThreadSanitizer, with the library built with
# -Zsanitizer=thread (README.md, "Reliability").
#
#   scripts/tsan.sh [rounds (5)]
#
# Stable Rust has no rust-src here, so no -Zbuild-std: the sfu crate and all its
# dependencies are instrumented (RUSTC_BOOTSTRAP=1, separate target dir target/tsan,
# ~15 min the first time on 2 cores), std is not. gcc 12's libtsan is too old for
# LLVM 22's instrumentation (__tsan_memcpy...), so the program is compiled with gcc
# -fsanitize=thread and linked with Rust's own TSan runtime. Known false positives from
# the uninstrumented std are suppressed in tests/c/tsan.supp (each one explained there).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
TRIPLE=x86_64-unknown-linux-gnu
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer" \
    cargo build --release --lib --target "$TRIPLE" --target-dir target/tsan
LIB="$PWD/target/tsan/$TRIPLE/release"
RT="$(rustc --print sysroot)/lib/rustlib/$TRIPLE/lib/librustc-stable_rt.tsan.a"
OUT=target/c-tests/tsan
mkdir -p "$OUT"
gcc -std=c11 -g -O1 -fsanitize=thread -Wall -Wextra -Werror -Iinclude -c tests/c/concurrency.c -o "$OUT/concurrency.o"
gcc "$OUT/concurrency.o" -o "$OUT/concurrency" -Wl,--whole-archive "$RT" -Wl,--no-whole-archive \
    -L"$LIB" -lsfu -Wl,-rpath,"$LIB" -lpthread -ldl -lrt -lm -rdynamic
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 print_suppressions=1 suppressions=$PWD/tests/c/tsan.supp" \
    "$OUT/concurrency" "$ROUNDS"
