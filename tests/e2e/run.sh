#!/usr/bin/env bash
# The end-to-end tests: the browser demo through the demo hosts, two peers in one room.
#   demo.test.js:         two headless Chromium pages through the Node and the Python host;
#   cross-engine.test.js: Chromium + Firefox ESR (each joining first) and Firefox + Firefox
#                         through the Node host, each pairing 3 times (SFU_E2E_REPEAT);
#   plain-rtp.test.js:    ffmpeg recording Chromium peers (createRtpStreamer), ffmpeg playing
#                         into a room (plain transports), audio levels and the active speaker;
#   ice-tcp.test.js:      pages given only the TCP candidates (Chromium + Chromium,
#                         Chromium + Firefox): media both ways over ICE-TCP;
#   impaired.test.js:     two Chromium pages with loss, delay and jitter on a leg, through
#                         the impairment proxy target/release/sfu-netem;
#   bwe.test.js:          bandwidth adaptation: a simulcast (and a single-layer) Chromium
#                         sender, one receiver behind a 400 / 300 kbit/s link (sfu-netem).
# Needs target/release/libsfu.so and the Node binding (bindings/node/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/e2e/setup.sh
[ -x target/release/sfu-netem ] || cargo build --release -p sfu-testkit --bin sfu-netem
node --test --test-concurrency=1 tests/e2e/
