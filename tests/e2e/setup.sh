#!/usr/bin/env bash
# Installs what the end-to-end test needs. Idempotent; never downloads a browser:
# Debian's chromium, firefox-esr and ffmpeg (apt), playwright-core (npm, drives Chromium over CDP),
# puppeteer-core (npm, drives Firefox over WebDriver BiDi), the demo's npm packages.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/firefox-esr ] || need_apt+=(firefox-esr)
# ffmpeg + ffprobe: plain-rtp.test.js (the recording and playback examples use them).
{ command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; } || need_apt+=(ffmpeg)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "tests/e2e: installing ${need_apt[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

stamp=tests/e2e/node_modules/.sfu-installed
if [ ! -f "$stamp" ] || [ tests/e2e/package.json -nt "$stamp" ]; then
    echo "tests/e2e: npm install"
    (cd tests/e2e && npm install --no-audit --no-fund --no-package-lock --loglevel=error)
    touch "$stamp"
fi

# The Node binding, rebuilt (and the library restaged into it) when the library changed.
bash bindings/node/setup.sh
bash examples/node/setup.sh
bash examples/web/setup.sh
# The Python host runs in the venv of the Python binding (websockets; it finds the
# binding in the checkout if it is not pip-installed).
if [ -f examples/python/host.py ] && [ -f bindings/python/setup.sh ]; then
    bash bindings/python/setup.sh
fi
