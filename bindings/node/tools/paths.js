'use strict';
// Where the addon's build finds libsfu and sfu.h, and how the addon finds libsfu at run
// time. Printed for binding.gyp (`<!(node tools/paths.js <what>)`) and used by build.js
// and stage.js.
//
// Two ways to get the library:
//   bundled (default): the package carries lib/<soname> and include/sfu.h. `npm pack`
//     puts them there (prepack: tools/stage.js); in a checkout of the repository,
//     `npm install` stages them from the crate first (build.js). The addon links
//     lib/<soname> with the rpath $ORIGIN/../../lib (build/Release/sfu.node -> lib/), so
//     an installed package depends on nothing outside itself.
//   SFU_LIBRARY_PATH (a directory holding libsfu.so, at install time): the addon links
//     that library, with that directory as its rpath (e.g. /usr/local/lib after
//     `make install`, or a checkout's target/release). SFU_INCLUDE_PATH: sfu.h's directory.
//
//   node tools/paths.js lib|libname|rpath|include
const fs = require('fs');
const path = require('path');

const pkg = path.resolve(__dirname, '..');
const bundledLibDir = path.join(pkg, 'lib');
const bundledIncludeDir = path.join(pkg, 'include');

// The repository, when this package is its bindings/node directory (a checkout), else null.
// An installed copy (node_modules/sfu) is never one, whatever lies two levels above it.
function checkout() {
  const repo = path.resolve(pkg, '..', '..');
  const isCheckout =
    path.basename(pkg) === 'node' &&
    path.basename(path.dirname(pkg)) === 'bindings' &&
    fs.existsSync(path.join(repo, 'Cargo.toml')) &&
    fs.existsSync(path.join(repo, 'src', 'ffi'));
  return isCheckout ? repo : null;
}

function override() {
  return process.env.SFU_LIBRARY_PATH ? path.resolve(process.env.SFU_LIBRARY_PATH) : null;
}

function includeDir() {
  if (process.env.SFU_INCLUDE_PATH) return path.resolve(process.env.SFU_INCLUDE_PATH);
  if (fs.existsSync(path.join(bundledIncludeDir, 'sfu.h'))) return bundledIncludeDir;
  const repo = checkout();
  return repo ? path.join(repo, 'include') : bundledIncludeDir;
}

// The soname the library was linked with (build.rs): libsfu.so.0.MINOR before 1.0, then
// libsfu.so.MAJOR. A program linked against libsfu looks for a file of that name.
function soname(header = path.join(includeDir(), 'sfu.h')) {
  const text = fs.readFileSync(header, 'utf8');
  const num = (what) => {
    const m = text.match(new RegExp(`^#define SFU_VERSION_${what} (\\d+)$`, 'm'));
    if (!m) throw new Error(`no SFU_VERSION_${what} in ${header}`);
    return m[1];
  };
  const major = num('MAJOR');
  return major === '0' ? `libsfu.so.0.${num('MINOR')}` : `libsfu.so.${major}`;
}

// The directory and file name the addon is linked against (-L<dir> -l:<name>).
function libDir() {
  return override() || bundledLibDir;
}

function libName() {
  return override() ? 'libsfu.so' : soname();
}

// The addon's rpath. `$$` survives the Makefile node-gyp generates (make turns it into
// `$`); the single quotes keep the shell from expanding $ORIGIN. The loader then reads
// $ORIGIN as the directory of sfu.node.
function rpath() {
  const dir = override();
  if (dir) return dir;
  return `'$$ORIGIN/${path.relative(path.join(pkg, 'build', 'Release'), bundledLibDir)}'`;
}

module.exports = { pkg, bundledLibDir, bundledIncludeDir, checkout, override, includeDir, soname, libDir, libName, rpath };

if (require.main === module) {
  const what = process.argv[2];
  const out = { lib: libDir, libname: libName, rpath, include: includeDir }[what];
  if (!out) {
    process.stderr.write('usage: node tools/paths.js lib|libname|rpath|include\n');
    process.exit(2);
  }
  process.stdout.write(out());
}
