#!/usr/bin/env bash
# Smoke mode of the forwarding benchmark (run by scripts/test.sh): a 1 -> 5 fan-out for
# 3 s on 2 workers (the room's receive transports spread over both, so packets cross
# from the room's worker to the other) plus the bare data-path loop. Asserts only that
# media flowed end to end (every consumer received, decrypted samples were intact) and
# that numbers were produced; sfu-load exits non-zero otherwise. No time or rate is
# asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p sfu-load
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
./target/release/sfu-load run --scenario smoke --workers 2 --measure 3 --bare 1 --out "$out/smoke.json"
test -s "$out/smoke.json"
echo "bench smoke: ok"
