'use strict';
// Puts the library into the package: builds the crate of the checkout this package sits
// in (`cargo build --release --lib`, a no-op when fresh), then copies
// <cargo target dir>/release/libsfu.so to lib/<soname> and include/sfu.h to include/.
// `npm pack` runs it (prepack, with --strip: debug information dropped, 90 MB -> 8 MB);
// `npm install` in a checkout runs it through build.js. The cargo target directory is
// asked from cargo (honours CARGO_TARGET_DIR).
//
//   node tools/stage.js [--strip]
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { checkout, soname, bundledLibDir, bundledIncludeDir } = require('./paths');

function fail(msg) {
  process.stderr.write(`sfu: ${msg}\n`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: 30 * 60 * 1000, ...opts });
  if (r.error) fail(`${cmd} failed to run: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited with ${r.status === null ? r.signal : r.status}`);
  return r.stdout;
}

function stage({ strip = false } = {}) {
  const repo = checkout();
  if (!repo) fail('not in a checkout of the sfu repository (bindings/node): nothing to stage from');
  const manifest = path.join(repo, 'Cargo.toml');
  const cargo = process.env.CARGO || 'cargo';
  process.stdout.write(`sfu: cargo build --release --lib (${repo})\n`);
  run(cargo, ['build', '--release', '--lib', '--manifest-path', manifest], { stdio: ['ignore', 'inherit', 'inherit'] });
  const meta = JSON.parse(run(cargo, ['metadata', '--format-version', '1', '--no-deps', '--manifest-path', manifest]));
  const built = path.join(meta.target_directory, 'release', 'libsfu.so');
  const header = path.join(repo, 'include', 'sfu.h');
  for (const f of [built, header]) if (!fs.existsSync(f)) fail(`${f} missing after cargo build`);

  const name = soname(header);
  fs.rmSync(bundledLibDir, { recursive: true, force: true });
  fs.mkdirSync(bundledLibDir, { recursive: true });
  fs.mkdirSync(bundledIncludeDir, { recursive: true });
  const lib = path.join(bundledLibDir, name);
  fs.copyFileSync(built, lib);
  fs.chmodSync(lib, 0o755);
  fs.copyFileSync(header, path.join(bundledIncludeDir, 'sfu.h'));
  if (strip) {
    const r = spawnSync('strip', ['--strip-debug', lib], { stdio: 'inherit' });
    if (r.error || r.status !== 0) process.stdout.write('sfu: strip unavailable, the library keeps its debug information\n');
  }
  process.stdout.write(`sfu: staged ${path.relative(process.cwd(), lib) || lib} and include/sfu.h\n`);
  return lib;
}

module.exports = { stage };

if (require.main === module) stage({ strip: process.argv.includes('--strip') });
