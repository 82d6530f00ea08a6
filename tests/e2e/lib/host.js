// The demo hosts the end-to-end tests run the browser demo against, each in its own
// process on a free port:
//   - node:   examples/node/server.js (bindings/node)
//   - python: examples/python/host.py (bindings/python), if present.
// SFU_DEBUG=1 makes a host log every signalling frame and run the library with
// logLevel "debug"; its output is echoed to stderr as it comes.
// startHost(hosts.node, { hooks: true }) loads lib/host-hooks.js into the Node host and
// gives the result a `control` (lib/host-control.js): rewrite createTransport answers,
// notify on behalf of a peer, watch notifications, read metrics.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { HostControl } = require('./host-control');

const repo = path.resolve(__dirname, '..', '..', '..');
const debug = process.env.SFU_DEBUG === '1';

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function pythonInterpreter() {
  // The venv of bindings/python/setup.sh, where bindings/python is pip-installed.
  const venv = process.env.SFU_PY_VENV || path.join(repo, 'target', 'py-venv');
  for (const candidate of [process.env.SFU_PYTHON, path.join(venv, 'bin', 'python')]) {
    if (candidate && fs.existsSync(candidate)) return candidate;
  }
  return 'python3';
}

const hosts = {
  node: {
    name: 'node',
    skip: () => {
      if (!fs.existsSync(path.join(repo, 'bindings', 'node', 'package.json')))
        return 'bindings/node does not exist yet';
      return null;
    },
    command: (port) => [
      process.execPath,
      [path.join(repo, 'examples', 'node', 'server.js'), '--host', '127.0.0.1', '--port', String(port)],
    ],
  },
  python: {
    name: 'python',
    skip: () =>
      fs.existsSync(path.join(repo, 'examples', 'python', 'host.py'))
        ? null
        : 'examples/python/host.py does not exist (no Python host to test)',
    command: (port) => [
      pythonInterpreter(),
      [path.join(repo, 'examples', 'python', 'host.py'), '--host', '127.0.0.1', '--port', String(port)],
    ],
  },
};

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function httpOk(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

// Starts `host` and resolves once it serves the page (at most 20 s).
async function startHost(host, { hooks = false } = {}) {
  if (hooks && host.name !== 'node') throw new Error('host hooks exist only in the Node host');
  const port = await freePort();
  const [cmd, args] = host.command(port);
  const env = { ...process.env, PYTHONUNBUFFERED: '1' };
  if (hooks) env.SFU_HOST_HOOKS = path.join(__dirname, 'host-hooks.js');
  else delete env.SFU_HOST_HOOKS;
  const child = spawn(cmd, args, {
    cwd: repo,
    env,
    stdio: hooks ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  const control = hooks ? new HostControl(child) : null;
  const output = [];
  const collect = (stream) => (chunk) => {
    const text = chunk.toString();
    output.push(text);
    if (debug) process.stderr.write(`[${host.name} host ${stream}] ${text}`);
  };
  child.stdout.on('data', collect('out'));
  child.stderr.on('data', collect('err'));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let exitInfo = null;
  exited.then((info) => (exitInfo = info));

  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exitInfo) {
      throw new Error(
        `${host.name} host exited early (${JSON.stringify(exitInfo)}):\n${output.join('')}`
      );
    }
    if (await httpOk(`${base}/`)) break;
    if (Date.now() > deadline) {
      await stopHost({ child, exited });
      throw new Error(`${host.name} host did not serve ${base}/ within 20 s:\n${output.join('')}`);
    }
    await sleep(200);
  }
  return { name: host.name, child, exited, base, output, port, control };
}

async function stopHost(h) {
  if (!h || h.child.exitCode !== null || h.child.signalCode !== null) return;
  if (h.control && h.child.connected) h.child.disconnect();
  h.child.kill('SIGTERM');
  const done = await Promise.race([h.exited.then(() => true), sleep(5000).then(() => false)]);
  if (!done) {
    h.child.kill('SIGKILL');
    await Promise.race([h.exited, sleep(5000)]);
  }
}

module.exports = { repo, debug, sleep, hosts, startHost, stopHost };
