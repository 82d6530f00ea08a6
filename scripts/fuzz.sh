#!/usr/bin/env bash
# Long fuzz runs of the cargo-fuzz targets in fuzz/ (README.md, "Reliability").
#
#   scripts/fuzz.sh [seconds per target (600)] [target ...]   (targets: request datagram tcp config)
#   JOBS=3 scripts/fuzz.sh 1200        # the targets in parallel
#
# cargo-fuzz (libFuzzer, AddressSanitizer, coverage instrumentation) needs nightly
# rustc flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP=1. Each run
# starts from the committed corpus (fuzz/corpus/<target>) plus the harness's seeds,
# adds what it finds there, then minimises the corpus (cargo fuzz cmin). A crash
# stops the run and leaves the input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O --debug-assertions <target> <file>
# The corpora are replayed by the test command (tests/hardening.rs) without libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(request datagram tcp config)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
FLAGS=(-O --debug-assertions)
# Only for the fuzz builds (fuzz/target): set for the main target directory it would
# change rustc's fingerprint and rebuild everything there.
fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }

echo "== seeds =="
cargo test --release --test hardening write_fuzz_seeds -- --ignored --quiet
cd fuzz
echo "== build =="
fuzz build "${FLAGS[@]}"
mkdir -p artifacts logs

max_len() {
    case "$1" in request) echo 16384 ;; datagram | tcp) echo 8192 ;; *) echo 4096 ;; esac
}

run_one() {
    local t=$1 dict=()
    [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
    echo "== fuzz $t for ${SECS}s =="
    # -timeout: an input slower than 10 s is a bug (a room must never spin).
    fuzz run "${FLAGS[@]}" "$t" "corpus/$t" -- -max_total_time="$SECS" -timeout=10 \
        -rss_limit_mb=4096 -max_len="$(max_len "$t")" -print_final_stats=1 "${dict[@]}" \
        >"logs/$t.log" 2>&1 || { tail -50 "logs/$t.log"; echo "fuzz $t FAILED (see fuzz/logs/$t.log, fuzz/artifacts/$t/)"; return 1; }
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE" "logs/$t.log" || true
    local before after
    before=$(ls "corpus/$t" | wc -l)
    fuzz cmin "${FLAGS[@]}" "$t" "corpus/$t" -- -max_len="$(max_len "$t")" >"logs/$t.cmin.log" 2>&1
    after=$(ls "corpus/$t" | wc -l)
    echo "$t: corpus $before -> $after inputs after cmin"
}

if [ "${JOBS:-1}" -gt 1 ]; then
    pids=()
    for t in "${TARGETS[@]}"; do run_one "$t" & pids+=($!); done
    rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    exit $rc
fi
for t in "${TARGETS[@]}"; do run_one "$t"; done
