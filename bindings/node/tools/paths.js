'use strict';
// Paths the build needs, printed for binding.gyp (`<!(node tools/paths.js lib|include)`).
// lib:     the directory holding libsfu.so: $SFU_LIBRARY_PATH, else <repo>/target/release.
// include: the directory holding sfu.h:     $SFU_INCLUDE_PATH, else <repo>/include.
const path = require('path');

const repo = path.resolve(__dirname, '..', '..', '..');

function libDir() {
  return path.resolve(process.env.SFU_LIBRARY_PATH || path.join(repo, 'target', 'release'));
}

function includeDir() {
  return path.resolve(process.env.SFU_INCLUDE_PATH || path.join(repo, 'include'));
}

module.exports = { repo, libDir, includeDir };

if (require.main === module) {
  const what = process.argv[2];
  if (what === 'lib') process.stdout.write(libDir());
  else if (what === 'include') process.stdout.write(includeDir());
  else {
    process.stderr.write('usage: node tools/paths.js lib|include\n');
    process.exit(2);
  }
}
