#!/usr/bin/env bash
# Installs or uninstalls the C library (called by the top-level Makefile):
#
#   bash scripts/install.sh install     # after `cargo build --release`
#   bash scripts/install.sh uninstall
#
# Installed, and removed again by `uninstall` (exactly these files, no directories):
#   $LIBDIR/libsfu.so.X.Y.Z                   the shared library (soname libsfu.so.0.Y before 1.0)
#   $LIBDIR/libsfu.so.0.Y -> libsfu.so.X.Y.Z  the soname link the dynamic loader looks for
#   $LIBDIR/libsfu.so -> libsfu.so.0.Y        the link `cc ... -lsfu` finds
#   $LIBDIR/libsfu.a                          the static library
#   $INCLUDEDIR/sfu.h
#   $PKGCONFIGDIR/sfu.pc                      prefix/libdir/includedir of this install
#
# Env (the Makefile passes its variables): PREFIX (default /usr/local, absolute),
# LIBDIR ($PREFIX/lib), INCLUDEDIR ($PREFIX/include), PKGCONFIGDIR ($LIBDIR/pkgconfig),
# DESTDIR (staging root for packagers; not written into sfu.pc), STRIP=1 (strip debug
# information from the installed copies; the build keeps line tables for backtraces),
# CARGO (default cargo; used to find the build output, which honours CARGO_TARGET_DIR).
#
# As root without DESTDIR, `ldconfig` runs when LIBDIR is one of the dynamic loader's
# directories (/usr/local/lib on Debian), so programs find the library without an rpath.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
action="${1:-}"

die() { echo "install.sh: $*" >&2; exit 1; }

prefix="${PREFIX:-/usr/local}"
prefix="${prefix%/}"
[ -n "$prefix" ] || prefix=/
case "$prefix" in /*) ;; *) die "PREFIX must be an absolute path (got '$prefix')" ;; esac
libdir="${LIBDIR:-$prefix/lib}"
includedir="${INCLUDEDIR:-$prefix/include}"
pkgconfigdir="${PKGCONFIGDIR:-$libdir/pkgconfig}"
destdir="${DESTDIR:-}"
destdir="${destdir%/}"

# The version of the library in this checkout, from the generated header.
header="$root/include/sfu.h"
[ -f "$header" ] || die "$header missing (cargo build --release generates it)"
ver_part() { sed -n "s/^#define SFU_VERSION_$1 \([0-9][0-9]*\)$/\1/p" "$header"; }
major="$(ver_part MAJOR)"; minor="$(ver_part MINOR)"; patch="$(ver_part PATCH)"
[ -n "$major" ] && [ -n "$minor" ] && [ -n "$patch" ] || die "no SFU_VERSION_MAJOR/MINOR/PATCH in $header"
# Same rule as build.rs: before 1.0 every minor release may change the C ABI.
if [ "$major" = 0 ]; then soname="libsfu.so.0.$minor"; else soname="libsfu.so.$major"; fi
real="libsfu.so.$major.$minor.$patch"

# "${prefix}/..." in sfu.pc when the directory is under the prefix (relocatable by
# pkg-config --define-prefix), else the absolute path.
pc_path() {
    case "$1" in
        "$prefix") printf '${prefix}' ;;
        "$prefix"/*) printf '${prefix}/%s' "${1#"$prefix"/}" ;;
        *) printf '%s' "$1" ;;
    esac
}

# Whether the dynamic loader searches $1 (a directory in /etc/ld.so.conf or built in).
loader_dir() {
    local want have
    want="$(readlink -f "$1" 2>/dev/null || echo "$1")"
    while IFS= read -r have; do
        [ "$(readlink -f "$have" 2>/dev/null || echo "$have")" = "$want" ] && return 0
    done < <(ldconfig -v -N -X 2>/dev/null | sed -n 's/^\(\/[^:]*\):.*/\1/p')
    return 1
}

refresh_loader_cache() {
    if [ -n "$destdir" ] || ! command -v ldconfig >/dev/null 2>&1; then return; fi
    if ! loader_dir "$libdir"; then
        if [ "$action" = install ]; then
            echo "install.sh: $libdir is not searched by the dynamic loader: run programs with" \
                 "LD_LIBRARY_PATH=$libdir, or link them with -Wl,-rpath,$libdir"
        fi
        return
    fi
    if [ "$(id -u)" = 0 ]; then
        echo "install.sh: ldconfig"
        ldconfig
    else
        echo "install.sh: run ldconfig as root so that the loader's cache knows $soname"
    fi
}

files=(
    "$libdir/$real"
    "$libdir/$soname"
    "$libdir/libsfu.so"
    "$libdir/libsfu.a"
    "$includedir/sfu.h"
    "$pkgconfigdir/sfu.pc"
)

case "$action" in
install)
    # The build output: cargo's target directory (CARGO_TARGET_DIR, .cargo/config...).
    meta="$(cd "$root" && "${CARGO:-cargo}" metadata --format-version 1 --no-deps)"
    target_dir="$(printf '%s' "$meta" | grep -o '"target_directory":"[^"]*"' | head -1 | sed 's/.*:"\(.*\)"/\1/')"
    [ -n "$target_dir" ] || die "cannot find cargo's target directory (cargo metadata)"
    out="$target_dir/release"
    for f in libsfu.so libsfu.a; do
        [ -f "$out/$f" ] || die "$out/$f missing: run cargo build --release (make does)"
    done
    if command -v readelf >/dev/null 2>&1; then
        have="$(readelf -d "$out/libsfu.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')"
        [ "$have" = "$soname" ] || die "$out/libsfu.so has soname '${have:-none}', expected $soname (stale build?)"
    fi

    install -d "$destdir$libdir" "$destdir$includedir" "$destdir$pkgconfigdir"
    install -m 0755 "$out/libsfu.so" "$destdir$libdir/$real"
    install -m 0644 "$out/libsfu.a" "$destdir$libdir/libsfu.a"
    if [ "${STRIP:-0}" = 1 ]; then
        strip --strip-debug "$destdir$libdir/$real" "$destdir$libdir/libsfu.a"
    fi
    ln -sfn "$real" "$destdir$libdir/$soname"
    ln -sfn "$soname" "$destdir$libdir/libsfu.so"
    install -m 0644 "$header" "$destdir$includedir/sfu.h"

    pc_tmp="$(mktemp)"
    trap 'rm -f "$pc_tmp"' EXIT
    sed -e "s|@PREFIX@|$prefix|g" \
        -e "s|@LIBDIR@|$(pc_path "$libdir")|g" \
        -e "s|@INCLUDEDIR@|$(pc_path "$includedir")|g" \
        -e "s|@VERSION@|$major.$minor.$patch|g" \
        "$root/sfu.pc.in" >"$pc_tmp"
    install -m 0644 "$pc_tmp" "$destdir$pkgconfigdir/sfu.pc"

    for f in "${files[@]}"; do echo "installed $destdir$f"; done
    refresh_loader_cache
    ;;
uninstall)
    for f in "${files[@]}"; do
        if [ -e "$destdir$f" ] || [ -L "$destdir$f" ]; then
            rm -f "$destdir$f"
            echo "removed $destdir$f"
        fi
    done
    refresh_loader_cache
    ;;
*)
    die "usage: install.sh install|uninstall (PREFIX=... LIBDIR=... INCLUDEDIR=... PKGCONFIGDIR=... DESTDIR=...)"
    ;;
esac
