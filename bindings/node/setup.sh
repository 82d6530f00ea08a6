#!/usr/bin/env bash
# Builds the Node addon (build/Release/sfu.node) if it is missing or older than the
# library, the header or the addon's sources. Idempotent; offline apart from the npm
# registry (node-gyp, a pinned devDependency). Node headers come from the installed
# Node (--nodedir), never downloaded.
#
# Env: SFU_LIBRARY_PATH (directory of libsfu.so; default <repo>/target/release),
#      SFU_NODEDIR (prefix holding include/node/node_api.h; found automatically).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

command -v node >/dev/null || { echo "setup(node): node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup(node): npm is not installed" >&2; exit 1; }

libdir="${SFU_LIBRARY_PATH:-$repo/target/release}"
lib="$libdir/libsfu.so"
if [ ! -f "$lib" ]; then
    if [ -n "${SFU_LIBRARY_PATH:-}" ]; then
        echo "setup(node): $lib not found (SFU_LIBRARY_PATH)" >&2
        exit 1
    fi
    echo "setup(node): $lib missing: cargo build --release"
    (cd "$repo" && cargo build --release)
fi

# Node headers for node-gyp --nodedir: <prefix>/include/node next to the node binary.
if [ -z "${SFU_NODEDIR:-}" ]; then
    node_bin="$(command -v node)"
    for prefix in "$(dirname "$(dirname "$node_bin")")" \
                  "$(dirname "$(dirname "$(readlink -f "$node_bin")")")" /usr/local /usr; do
        if [ -f "$prefix/include/node/node_api.h" ]; then SFU_NODEDIR="$prefix"; break; fi
    done
fi
if [ -z "${SFU_NODEDIR:-}" ] || [ ! -f "$SFU_NODEDIR/include/node/node_api.h" ]; then
    echo "setup(node): Node headers (include/node/node_api.h) not found; set SFU_NODEDIR" >&2
    exit 1
fi
export SFU_NODEDIR

addon="$here/build/Release/sfu.node"
stale=""
if [ ! -f "$addon" ]; then
    stale="addon missing"
elif [ ! -d "$here/node_modules/node-gyp" ]; then
    stale="node_modules missing"
else
    for dep in "$lib" "$repo/include/sfu.h" "$here/src/addon.c" "$here/binding.gyp" \
               "$here/package.json" "$here/tools/build.js" "$here/tools/paths.js" "$here/tools/stage.js"; do
        if [ "$dep" -nt "$addon" ]; then stale="$dep is newer"; break; fi
    done
fi

if [ -n "$stale" ]; then
    echo "setup(node): building the addon ($stale; nodedir $SFU_NODEDIR)"
    (cd "$here" && npm install --no-audit --no-fund --loglevel=warn)
    [ -f "$addon" ] || { echo "setup(node): npm install did not produce $addon" >&2; exit 1; }
    touch "$addon"
else
    echo "setup(node): addon up to date"
fi
