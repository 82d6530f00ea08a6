#!/usr/bin/env bash
# Installs the Node demo host's npm packages (ws). Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.sfu-installed
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ]; then
    echo "examples/node: npm install"
    npm install --no-audit --no-fund --no-package-lock --loglevel=error
    touch "$stamp"
fi
