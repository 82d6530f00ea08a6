#!/usr/bin/env bash
# Builds everything the browser demo needs and starts the Node demo host in the
# foreground (Ctrl-C stops it). Then open the two printed URLs in two browser tabs.
#
#   bash scripts/demo.sh            # http://127.0.0.1:8080
#   PORT=9000 bash scripts/demo.sh
#   HOST=0.0.0.0 ANNOUNCED_IP=192.0.2.10 bash scripts/demo.sh   # other machines
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-8080}"
HOST="${HOST:-127.0.0.1}"

echo "== cargo build --release =="
cargo build --release
echo "== Node binding =="
bash bindings/node/setup.sh
echo "== demo host and web page =="
bash examples/node/setup.sh
bash examples/web/setup.sh

args=(--host "$HOST" --port "$PORT")
if [ -n "${RTC_IP:-}" ]; then args+=(--rtc-ip "$RTC_IP"); fi
if [ -n "${ANNOUNCED_IP:-}" ]; then args+=(--announced-ip "$ANNOUNCED_IP"); fi

echo "== starting the demo host (Ctrl-C to stop) =="
exec node examples/node/server.js "${args[@]}"
