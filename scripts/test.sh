#!/usr/bin/env bash
# The project's single test command: builds everything, checks the committed C header
# is fresh, and runs every test suite. Installs what the tests need (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== build (release) =="
cargo build --release

echo "== header freshness =="
if ! git diff --quiet -- include/sfu.h; then
    git --no-pager diff --stat -- include/sfu.h
    echo "include/sfu.h is stale: the build regenerated it; commit the new header" >&2
    exit 1
fi

echo "== Rust tests (unit, integration, C programs) =="
cargo test --release

echo "(${SECONDS} s so far)"
for suite in bindings/python/test.sh bindings/node/test.sh tests/install/run.sh tests/e2e/run.sh bench/smoke.sh; do
    if [ -f "$suite" ]; then
        echo "== $suite =="
        start=$SECONDS
        bash "$suite"
        echo "($suite: $((SECONDS - start)) s)"
    fi
done
echo "== all test suites passed in ${SECONDS} s =="
