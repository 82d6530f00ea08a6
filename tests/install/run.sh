#!/usr/bin/env bash
# The packages a user installs, installed outside the checkout and used from there.
#
#  1. Copies the checkout (its git files, committed or not) to a temporary directory and
#     builds everything from that copy, with cargo's output in a temporary target
#     directory (seeded with the compiled dependencies of the checkout's own build, so
#     only the sfu crate is compiled: the copy is another path).
#  2. Installs, from the copy:
#       C:      make install PREFIX=<tmp>/prefix
#       Python: a venv, pip install <copy>/bindings/python (pip's isolated build: setuptools-rust from PyPI)
#       Node:   npm pack in <copy>/bindings/node; a new project npm-installs the tarball;
#               another project npm-installs the directory <copy>/bindings/node (a link)
#       and, as root with nothing of ours there yet, make install into /usr/local (ldconfig).
#  3. Deletes the temporary target directory (the build tree), runs the linked-directory
#     Node host, then moves the copied checkout away and runs, from a directory outside
#     everything and without SFU_LIBRARY_PATH / LD_LIBRARY_PATH / PYTHONPATH / NODE_PATH:
#     tests/install/host.{py,js} with the venv and the tarball project, host.c built with
#     `pkg-config --cflags --libs sfu` (temporary prefix: PKG_CONFIG_PATH, and
#     LD_LIBRARY_PATH for running; /usr/local: neither), host.c linked with libsfu.a, and
#     the README's C example built exactly as the README says. Each host creates a server
#     and a room, has alice and bob join through the callback and checks the answers, and
#     prints the file the libsfu code was mapped from; that file must be the installed one.
#  4. make uninstall (both prefixes) must leave no file of ours behind.
#
# Every step has a time limit. Env: SFU_INSTALL_SYSTEM=0 skips the /usr/local part;
# SFU_INSTALL_KEEP=1 keeps the temporary directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
started=$SECONDS

say() { printf '== install: %s (%ds)\n' "$*" $((SECONDS - started)); }
die() { echo "install test FAILED: $*" >&2; exit 1; }
for tool in git cargo python3 node npm cc pkg-config readelf make; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh)"
done
git -C "$root" rev-parse --git-dir >/dev/null 2>&1 || die "$root is not a git checkout (the test copies its git files)"

# Physical path: the hosts compare it with the paths in /proc/self/maps.
tmp="$(cd "$(mktemp -d "${TMPDIR:-/tmp}/sfu-install.XXXXXX")" && pwd -P)"
src="$tmp/src"            # the copied checkout
away="$tmp/src.moved-away"
target="$tmp/target"      # cargo's output for everything built from the copy
prefix="$tmp/prefix"      # make install
venv="$tmp/venv"          # pip install
outside="$tmp/elsewhere"  # the hosts' working directory
system_installed=0

cleanup() {
    local rc=$?
    if [ "$system_installed" = 1 ]; then
        # Whatever happened, take our files out of /usr/local again.
        PREFIX=/usr/local bash "$root/scripts/install.sh" uninstall >/dev/null 2>&1 || true
    fi
    if [ "${SFU_INSTALL_KEEP:-0}" = 1 ]; then
        echo "install: kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit $rc
}
trap cleanup EXIT

# A clean environment for building and running: nothing pointing into the checkout.
unset SFU_LIBRARY_PATH SFU_INCLUDE_PATH LD_LIBRARY_PATH PYTHONPATH NODE_PATH PKG_CONFIG_PATH
export CARGO_TARGET_DIR="$target"
mkdir -p "$outside"

# ------------------------------------------------------------------- 1. copy and seed
say "copying the checkout to $src"
mkdir -p "$src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard) \
    | (cd "$root" && while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) \
    | tar -C "$root" --null -T - -cf - | tar -C "$src" -xf -
# The same dependency versions as the checkout's build (the lock file is not committed).
if [ -f "$root/Cargo.lock" ]; then cp "$root/Cargo.lock" "$src/"; fi

root_target="$(cd "$root" && env -u CARGO_TARGET_DIR cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
if [ -d "$root_target/release/deps" ]; then
    say "seeding $target with the compiled dependencies of $root_target/release"
    mkdir -p "$target/release/deps"
    cp -a "$root_target/release/.fingerprint" "$root_target/release/build" "$target/release/"
    find "$root_target/release/deps" -maxdepth 1 -type f -name 'lib*' ! -name 'libsfu*' \
        -exec cp -a -t "$target/release/deps" {} +
fi

# ---------------------------------------------------------------------- 2. install
say "C: make install PREFIX=$prefix (builds the library from the copy)"
(cd "$src" && timeout 1800 nice make install PREFIX="$prefix") >"$tmp/make-install.log" 2>&1 \
    || { tail -30 "$tmp/make-install.log"; die "make install"; }

say "Python: pip install $src/bindings/python into a new venv"
timeout 120 python3 -m venv "$venv"
timeout 1800 "$venv/bin/python" -m pip install --disable-pip-version-check --no-input \
    "$src/bindings/python" >"$tmp/pip.log" 2>&1 || { tail -30 "$tmp/pip.log"; die "pip install"; }
wheel_tag="$(sed -n 's/^Tag: //p' "$venv"/lib/python3*/site-packages/sfu-*.dist-info/WHEEL)"
[[ "$wheel_tag" == py3-none-linux_* ]] || die "wheel tag '$wheel_tag', expected py3-none-linux_*"
grep -q '^sfu/libsfu.so,' "$venv"/lib/python3*/site-packages/sfu-*.dist-info/RECORD \
    || die "the wheel does not contain sfu/libsfu.so"

say "Node: npm pack, then npm install of the tarball in a new project"
tgz="$(cd "$src/bindings/node" && timeout 1800 npm pack --pack-destination "$tmp" --loglevel=warn 2>"$tmp/npm-pack.log" | tail -1)" \
    || { tail -30 "$tmp/npm-pack.log"; die "npm pack"; }
tgz="$tmp/$tgz"
[ -f "$tgz" ] || die "npm pack made no tarball ($tgz)"
listing="$(tar -tzf "$tgz")"
grep -qx 'package/lib/libsfu\.so\.0\.[0-9]*' <<<"$listing" || die "the tarball has no lib/libsfu.so.0.*"
grep -qx 'package/include/sfu\.h' <<<"$listing" || die "the tarball has no include/sfu.h"
# The project approves the package's install script (npm 11's allowScripts).
mkdir -p "$tmp/app"
printf '{ "name": "app", "version": "1.0.0", "private": true, "allowScripts": { "file:%s": true } }\n' "$tgz" >"$tmp/app/package.json"
(cd "$tmp/app" && timeout 900 npm install --no-audit --no-fund --loglevel=warn "$tgz") >"$tmp/npm-app.log" 2>&1 \
    || { tail -30 "$tmp/npm-app.log"; die "npm install $tgz"; }
[ -f "$tmp/app/node_modules/sfu/build/Release/sfu.node" ] || { tail -30 "$tmp/npm-app.log"; die "the install script built no addon"; }
cp "$here/host.js" "$tmp/app/"

say "Node: npm install of the directory $src/bindings/node in another project"
mkdir -p "$tmp/app-link"
printf '{ "name": "app-link", "version": "1.0.0", "private": true, "allowScripts": { "sfu": true } }\n' >"$tmp/app-link/package.json"
(cd "$tmp/app-link" && timeout 900 npm install --no-audit --no-fund --loglevel=warn "$src/bindings/node") >"$tmp/npm-link.log" 2>&1 \
    || { tail -30 "$tmp/npm-link.log"; die "npm install $src/bindings/node"; }
cp "$here/host.js" "$tmp/app-link/"

if [ "${SFU_INSTALL_SYSTEM:-1}" != 0 ] && [ "$(id -u)" = 0 ] && ! ls /usr/local/lib/libsfu.* >/dev/null 2>&1 \
    && [ ! -e /usr/local/include/sfu.h ] && [ ! -e /usr/local/lib/pkgconfig/sfu.pc ]; then
    say "C: make install into /usr/local (root)"
    system_installed=1
    (cd "$src" && timeout 600 make install) >"$tmp/make-install-system.log" 2>&1 \
        || { tail -30 "$tmp/make-install-system.log"; die "make install (/usr/local)"; }
    grep -q '^install.sh: ldconfig$' "$tmp/make-install-system.log" || die "make install did not run ldconfig"
else
    system_installed=0
    say "C: /usr/local part skipped (not root, SFU_INSTALL_SYSTEM=0, or a libsfu is already there)"
fi

# ------------------------------------------------------- 3. without the build tree
say "removing the build tree $target"
rm -rf "$target"
unset CARGO_TARGET_DIR

# $1 = label, $2 = expected file (or directory prefix) of the libsfu mapping, rest = command.
run_host() {
    local label="$1" expect="$2"; shift 2
    local out
    out="$("$@" 2>&1)" || { printf '%s\n' "$out"; die "$label host"; }
    printf '%s\n' "$out" | sed 's/^/    /'
    local mapped
    mapped="$(printf '%s\n' "$out" | sed -n 's/.*libsfu code mapped from \(.*\)$/\1/p')"
    [ -n "$mapped" ] || die "$label: the host did not say where libsfu was loaded from"
    while IFS= read -r m; do
        case "$m" in "$expect"*) ;; *) die "$label: libsfu loaded from $m, expected $expect" ;; esac
    done <<<"$mapped"
}

say "Node host, linked directory install (needs its directory, not the build tree)"
(cd "$tmp/app-link" && run_host "node (linked directory)" "$src/bindings/node/lib/" timeout 60 node host.js)

say "moving the copied checkout away ($src -> $away)"
mv "$src" "$away"

say "Python host (venv, cwd $outside)"
(cd "$outside" && run_host python "$venv/lib/" timeout 60 "$venv/bin/python" "$here/host.py")

say "Node host (project with the tarball installed)"
(cd "$tmp/app" && run_host "node (tarball)" "$tmp/app/node_modules/sfu/lib/" timeout 60 node host.js)

say "C: installed files in $prefix"
real="$(cd "$prefix/lib" && ls libsfu.so.*.*.*)"
[ "$(readlink "$prefix/lib/libsfu.so.0.1")" = "$real" ] || die "libsfu.so.0.1 does not point at $real"
[ "$(readlink "$prefix/lib/libsfu.so")" = libsfu.so.0.1 ] || die "libsfu.so does not point at libsfu.so.0.1"
grep -q 'Library soname: \[libsfu.so.0.1\]' <<<"$(readelf -d "$prefix/lib/$real")" || die "$real has no soname libsfu.so.0.1"
for f in lib/libsfu.a include/sfu.h lib/pkgconfig/sfu.pc; do [ -f "$prefix/$f" ] || die "$prefix/$f missing"; done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --variable=prefix sfu)" = "$prefix" ] || die "sfu.pc prefix is not $prefix"
[ "$(pkg-config --modversion sfu)" = "${real#libsfu.so.}" ] || die "sfu.pc version is not ${real#libsfu.so.}"

say "C host: cc host.c \$(pkg-config --cflags --libs sfu), run with LD_LIBRARY_PATH"
# shellcheck disable=SC2046 # word splitting of pkg-config's output is intended
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/host-c" "$here/host.c" $(pkg-config --cflags --libs sfu) -lpthread
if grep -Eq 'RPATH|RUNPATH' <<<"$(readelf -d "$tmp/host-c")"; then die "host-c has an rpath: sfu.pc must not add one"; fi
grep -q 'Shared library: \[libsfu.so.0.1\]' <<<"$(readelf -d "$tmp/host-c")" || die "host-c does not need libsfu.so.0.1"
(cd "$outside" && run_host "c (prefix)" "$prefix/lib/$real" env LD_LIBRARY_PATH="$prefix/lib" timeout 60 "$tmp/host-c")

say "C host linked with libsfu.a (pkg-config --static for its dependencies)"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/host-c-static" "$here/host.c" $(pkg-config --cflags sfu) \
    "$prefix/lib/libsfu.a" $(pkg-config --static --libs-only-l sfu | sed 's/\(^\| \)-lsfu\( \|$\)/ /')
if grep -q 'libsfu' <<<"$(readelf -d "$tmp/host-c-static")"; then die "host-c-static needs a shared libsfu"; fi
(cd "$outside" && run_host "c (static)" "$tmp/host-c-static" timeout 60 "$tmp/host-c-static")

say "the README's C example, built as the README says"
awk '/^## A host in C/{f=1} f&&/^```c$/{g=1;next} g&&/^```$/{exit} g{print}' "$away/README.md" >"$outside/host.c"
grep -q 'sfu_server_new' "$outside/host.c" || die "no C example found in README.md"
readme_build="$(sed -n 's/.*`\(cc host.c \$(pkg-config --cflags --libs sfu)\)`.*/\1/p' "$away/README.md" | head -1)"
[ -n "$readme_build" ] || die "README.md does not show 'cc host.c \$(pkg-config --cflags --libs sfu)'"
(cd "$outside" && rm -f a.out && eval "$readme_build" && [ -x a.out ]) || die "the README's build line failed"
readme_out="$(cd "$outside" && LD_LIBRARY_PATH="$prefix/lib" timeout 30 ./a.out)" || die "the README's example failed"
printf '%s\n' "$readme_out" | sed 's/^/    /' | cut -c1-120
grep -q '^response room1/alice #1 {.*}$' <<<"$readme_out" || die "the README's example printed no response"

if [ "$system_installed" = 1 ]; then
    say "C host against /usr/local: no PKG_CONFIG_PATH, no LD_LIBRARY_PATH, no rpath"
    unset PKG_CONFIG_PATH
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror -o "$tmp/host-c-system" "$here/host.c" $(pkg-config --cflags --libs sfu) -lpthread
    if grep -Eq 'RPATH|RUNPATH' <<<"$(readelf -d "$tmp/host-c-system")"; then die "host-c-system has an rpath"; fi
    (cd "$outside" && run_host "c (/usr/local)" "/usr/local/lib/$real" timeout 60 "$tmp/host-c-system")
    system_out="$(cd "$outside" && rm -f a.out && eval "$readme_build" && timeout 30 ./a.out)" \
        || die "the README's example against /usr/local"
    grep -q '^response room1/alice #1 {.*}$' <<<"$system_out" || die "the README's example against /usr/local printed no response"
fi

# --------------------------------------------------------------------- 4. uninstall
say "make uninstall"
mv "$away" "$src"
(cd "$src" && timeout 120 make -s uninstall PREFIX="$prefix") >/dev/null
left="$(find "$prefix" \( -type f -o -type l \) -print)"
[ -z "$left" ] || die "make uninstall left: $left"
if [ "$system_installed" = 1 ]; then
    (cd "$src" && timeout 120 make -s uninstall) >/dev/null
    system_installed=0
    if ls /usr/local/lib/libsfu.* /usr/local/include/sfu.h /usr/local/lib/pkgconfig/sfu.pc >/dev/null 2>&1; then
        die "make uninstall left files in /usr/local"
    fi
    if grep -q 'libsfu\.so' <<<"$(ldconfig -p)"; then die "the loader cache still lists libsfu after uninstall"; fi
fi

say "all packages installed and used outside the checkout: ok"
