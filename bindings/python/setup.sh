#!/usr/bin/env bash
# Installs what bindings/python/test.sh needs, idempotently: a Python venv under
# target/py-venv (override with SFU_PY_VENV) with pytest, pytest-timeout, websockets,
# prometheus_client (its text parser checks Server.metrics()) and the build backend of bindings/python (setuptools, setuptools-rust, wheel: test.sh
# installs the binding without build isolation), from PyPI. Fast when already set up.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${SFU_PY_VENV:-$root/target/py-venv}"
deps=(pytest pytest-timeout "websockets>=13" "prometheus_client>=0.20" "setuptools>=70.1" "setuptools-rust>=1.9,<2" wheel)

pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
    for p in python3.11 python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null; then
            echo "$p"; return
        fi
    done
    echo "bindings/python: no Python >= 3.9 found (set PYTHON)" >&2
    exit 1
}

if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    py="$(pick_python)"
    echo "bindings/python: creating venv $venv with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv"
fi

stamp="$venv/.sfu-deps"
want="${deps[*]}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
    || ! "$venv/bin/python" -c 'import pytest, pytest_timeout, websockets.asyncio.server, prometheus_client.parser, wheel, setuptools_rust' >/dev/null 2>&1; then
    echo "bindings/python: installing ${deps[*]}"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${deps[@]}"
    printf '%s' "$want" >"$stamp"
fi
