# The C library: build, install with its soname and pkg-config file, uninstall.
#
#   make                                   # cargo build --release (target/release/libsfu.so, .a)
#   make install [PREFIX=/usr/local]       # as root into a system prefix: runs ldconfig
#   make install PREFIX=$HOME/.local       # then PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
#   make install-strip ...                 # the same, without debug information
#   make uninstall PREFIX=...              # removes exactly the installed files
#
# Variables: PREFIX, LIBDIR, INCLUDEDIR, PKGCONFIGDIR, DESTDIR (staging root), CARGO.
# What is installed, and where, is described in scripts/install.sh.

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR      ?=
CARGO        ?= cargo

INSTALL_ENV = PREFIX="$(PREFIX)" LIBDIR="$(LIBDIR)" INCLUDEDIR="$(INCLUDEDIR)" \
              PKGCONFIGDIR="$(PKGCONFIGDIR)" DESTDIR="$(DESTDIR)" CARGO="$(CARGO)"

.PHONY: all build install install-strip uninstall

all: build

build:
	$(CARGO) build --release --lib

install: build
	$(INSTALL_ENV) bash scripts/install.sh install

install-strip: build
	$(INSTALL_ENV) STRIP=1 bash scripts/install.sh install

uninstall:
	$(INSTALL_ENV) bash scripts/install.sh uninstall
