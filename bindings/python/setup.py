"""Builds libsfu into the wheel: ``pip install ./bindings/python`` runs cargo on the
repository's crate (``../../Cargo.toml``) through setuptools-rust and ships the shared
library as ``sfu/libsfu.so``, next to the ctypes code that loads it (``sfu/_lib.py``).
The project's metadata is in pyproject.toml; this file only declares the library.

The package builds from a checkout of the repository (pip builds a local directory in
place); it has no stand-alone source distribution, since the crate lives two levels up.

Why these settings:

* ``Binding.NoBinding``: libsfu is a plain C-ABI cdylib, not a Python extension module;
  setuptools-rust builds it with ``cargo rustc --lib`` and copies it into the package.
* ``--crate-type cdylib,staticlib,rlib``: the crate types of Cargo.toml. setuptools-rust
  would otherwise ask for ``cdylib`` alone, a different cargo unit writing the same
  ``target/release/libsfu.so``: ``pip install`` and ``cargo build --release`` would then
  rebuild the crate after each other. With the same list, a fresh build is reused.
* the file is named ``libsfu.so`` (not ``libsfu.cpython-311-x86_64-linux-gnu.so``): it
  is loaded with ctypes by that name, by any Python 3, so the wheel is tagged
  ``py3-none-<platform>`` rather than for one CPython ABI.
* ``Strip.Debug``: the release profile keeps line tables (debug = 1) for backtraces in
  the repository; the installed copy drops them (90 MB -> 8 MB).

Env: CARGO_TARGET_DIR and the other cargo settings apply as usual; the built file is
taken from cargo's own report of what it produced.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools_rust import Binding, RustExtension, Strip

try:
    from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1
except ImportError:  # pragma: no cover - older setuptools with the wheel package
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.normpath(os.path.join(HERE, "..", "..", "Cargo.toml"))
LIBRARY = {"darwin": "libsfu.dylib", "win32": "sfu.dll"}.get(sys.platform, "libsfu.so")

if not os.path.isfile(MANIFEST):
    sys.exit(
        f"sfu: {MANIFEST} not found. The Python package is built from a checkout of the "
        "sfu repository: pip install <checkout>/bindings/python"
    )


class build_ext_named(build_ext):
    """Names the library file as the C toolchain would (``libsfu.so``)."""

    def get_ext_filename(self, fullname):
        parts = fullname.split(".")
        if parts[-1] == "libsfu":
            return os.path.join(*parts[:-1], LIBRARY)
        return super().get_ext_filename(fullname)


class bdist_wheel_any_python(bdist_wheel):
    """Platform-specific (a native library inside) but not tied to a Python ABI."""

    def get_tag(self):
        _python, _abi, plat = super().get_tag()
        return "py3", "none", plat


setup(
    rust_extensions=[
        RustExtension(
            "sfu.libsfu",
            path=MANIFEST,
            binding=Binding.NoBinding,
            args=["--crate-type", "cdylib,staticlib,rlib"],
            strip=Strip.Debug,
            py_limited_api=False,
        )
    ],
    cmdclass={"build_ext": build_ext_named, "bdist_wheel": bdist_wheel_any_python},
    zip_safe=False,
)
