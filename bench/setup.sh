#!/usr/bin/env bash
# What the full benchmark needs besides Rust: gnuplot for the plot (idempotent).
# The smoke mode (bench/smoke.sh) needs nothing from here.
set -euo pipefail
if command -v gnuplot >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
else
    echo "bench/setup.sh: gnuplot is missing (Debian: apt-get install gnuplot-nox); the plot will be skipped" >&2
fi
