#!/usr/bin/env bash
# Runs the Python binding's tests: sets up the venv (setup.sh), makes sure libsfu is
# built (cargo build --release, a no-op when fresh; skipped when SFU_LIBRARY_PATH is
# set), pip-installs bindings/python into the venv (which bundles the library cargo
# built) when its sources or the library changed, then runs pytest on
# bindings/python/tests. Extra arguments go to pytest. Installing outside the checkout
# is tested by tests/install/run.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${SFU_PY_VENV:-$root/target/py-venv}"
export SFU_PY_VENV="$venv"

bash "$here/setup.sh"

if [ -z "${SFU_LIBRARY_PATH:-}" ]; then
    (cd "$root" && cargo build --release --quiet)
fi

# Reinstall the binding only when its files or the library changed (pip builds a wheel
# with setuptools-rust: cargo finds the build fresh, the library is copied: seconds).
lib="$root/target/release/libsfu.so"
sum="$( (cd "$here" && cat pyproject.toml setup.py README.md sfu/*.py sfu/py.typed
         stat -c '%s %y' "$lib" 2>/dev/null || true) | sha256sum | cut -d' ' -f1)"
stamp="$venv/.sfu-binding"
if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ] || ! "$venv/bin/python" -c 'import sfu' >/dev/null 2>&1; then
    echo "bindings/python: pip install ./bindings/python"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-deps --no-build-isolation --force-reinstall "$here"
    printf '%s' "$sum" >"$stamp"
fi

# From the repo root with the venv's pytest script: the *installed* package is the
# one imported (the tests check that), not bindings/python/sfu.
cd "$root"
export SFU_BINDING_EXPECT_INSTALLED=1
exec "$venv/bin/pytest" -p no:cacheprovider -q "$here/tests" "$@"
