'use strict';
// `npm install` runs this: builds build/Release/sfu.node with node-gyp, offline, against
// the installed Node headers (--nodedir), linking libsfu as tools/paths.js says: the
// library bundled in the package (lib/<soname>, rpath $ORIGIN/../../lib), staged from the
// crate first when this package is a checkout's bindings/node (tools/stage.js), or the
// one in $SFU_LIBRARY_PATH.
//
// Env: SFU_NODEDIR (a prefix with include/node/node_api.h; also npm_config_nodedir),
//      SFU_LIBRARY_PATH (directory of libsfu.so), SFU_INCLUDE_PATH (directory of sfu.h).
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { checkout, override, libDir, libName, includeDir } = require('./paths');
const { stage } = require('./stage');

function fail(msg) {
  process.stderr.write(`sfu: ${msg}\n`);
  process.exit(1);
}

function hasHeaders(prefix) {
  return !!prefix && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'));
}

// The installed headers of the running Node: <prefix>/include/node, where <prefix> is
// the directory above bin/node (e.g. /usr or /usr/local).
function findNodeDir() {
  const explicit = process.env.SFU_NODEDIR || process.env.npm_config_nodedir;
  if (explicit) {
    if (!hasHeaders(explicit)) fail(`no include/node/node_api.h under ${explicit} (SFU_NODEDIR / npm_config_nodedir)`);
    return path.resolve(explicit);
  }
  const candidates = [
    path.resolve(path.dirname(process.execPath), '..'),
    path.resolve(path.dirname(fs.realpathSync(process.execPath)), '..'),
    '/usr/local',
    '/usr',
  ];
  const found = candidates.find(hasHeaders);
  if (!found) fail(`Node headers not found (looked for include/node/node_api.h under ${candidates.join(', ')}); set SFU_NODEDIR`);
  return found;
}

// node-gyp: the pinned devDependency if installed, else the copy npm ships with.
function findNodeGyp() {
  try {
    return require.resolve('node-gyp/bin/node-gyp.js', { paths: [path.join(__dirname, '..')] });
  } catch (_) { /* not installed as a devDependency */ }
  const bundled = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter(Boolean);
  const found = bundled.find((p) => fs.existsSync(p));
  if (!found) fail('node-gyp not found: run `npm install` (it is a devDependency) or install npm');
  return found;
}

// In a checkout, (re)stage the library from the crate: the package then carries what it
// links, like a packed one. An installed package uses what `npm pack` put in it.
if (!override() && checkout()) stage();
const lib = path.join(libDir(), libName());
if (!fs.existsSync(lib)) {
  fail(override()
    ? `${lib} not found (SFU_LIBRARY_PATH)`
    : `${lib} not found: this package was packed without its library (npm pack runs tools/stage.js), or set SFU_LIBRARY_PATH`);
}
const header = path.join(includeDir(), 'sfu.h');
if (!fs.existsSync(header)) fail(`${header} not found (set SFU_INCLUDE_PATH)`);

const nodedir = findNodeDir();
const gyp = findNodeGyp();
const args = [gyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs=2'];
process.stdout.write(`sfu: node-gyp rebuild --nodedir=${nodedir} (library ${lib})\n`);
const r = spawnSync(process.execPath, args, {
  cwd: path.join(__dirname, '..'),
  stdio: 'inherit',
  // Never reach for the network: headers come from --nodedir.
  env: { ...process.env, npm_config_nodedir: nodedir },
  timeout: 10 * 60 * 1000,
});
if (r.error) fail(`node-gyp failed to run: ${r.error.message}`);
if (r.status !== 0) fail(`node-gyp exited with ${r.status === null ? r.signal : r.status}`);
