#!/usr/bin/env bash
# The end-to-end tests: the browser demo through the demo hosts, two peers in one room.
#   demo.test.js:         two headless Chromium pages through the Node and the Python host;
#   cross-engine.test.js: Chromium + Firefox ESR (each joining first) and Firefox + Firefox
#                         through the Node host, each pairing 3 times (SFU_E2E_REPEAT).
#   plain-rtp.test.js:    ffmpeg recording Chromium peers (createRtpStreamer), ffmpeg playing
#                         into a room (plain transports), audio levels and the active speaker.
# Needs target/release/libsfu.so and the Node binding (bindings/node/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/e2e/setup.sh
node --test --test-concurrency=1 tests/e2e/
