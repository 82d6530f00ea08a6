#!/usr/bin/env bash
# The Node binding's tests: makes sure libsfu is built (cargo build --release, a no-op
# when fresh; skipped when SFU_LIBRARY_PATH is set), builds the addon if needed
# (setup.sh), then runs node --test on bindings/node/test/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
if [ -z "${SFU_LIBRARY_PATH:-}" ]; then
    (cd "$repo" && cargo build --release --quiet)
fi
bash "$here/setup.sh"
cd "$repo"
# Every test has its own timeout; this bounds the whole run.
timeout --kill-after=10 300 node --test bindings/node/test/
