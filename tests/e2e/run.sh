#!/usr/bin/env bash
# The end-to-end test: two headless Chromium pages (alice, bob) in one room through each
# demo host. Needs target/release/libsfu.so and the Node binding (bindings/node/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/e2e/setup.sh
node --test --test-concurrency=1 tests/e2e/
