#!/usr/bin/env bash
# Builds the browser demo into examples/web/dist/ (index.html + app.js bundle).
# Idempotent: installs npm packages only when package.json changed, and rebundles.
set -euo pipefail
cd "$(dirname "$0")"

stamp=node_modules/.sfu-installed
if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ]; then
    echo "examples/web: npm install"
    npm install --no-audit --no-fund --no-package-lock --loglevel=error
    touch "$stamp"
fi

mkdir -p dist
node_modules/.bin/esbuild src/app.js --bundle --format=iife --target=es2019 --define:global=globalThis \
    --log-level=warning --outfile=dist/app.js
cp index.html dist/index.html
echo "examples/web: built $(pwd)/dist"
