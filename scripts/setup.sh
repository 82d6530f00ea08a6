#!/usr/bin/env bash
# Installs what the build and the tests need, idempotently. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v gcc >/dev/null || need_apt+=(build-essential)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)   # make install / tests/install
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

for s in bindings/python/setup.sh bindings/node/setup.sh examples/web/setup.sh tests/e2e/setup.sh; do
    if [ -f "$s" ]; then bash "$s"; fi
done
