// End-to-end test of the browser demo (examples/web) with the real mediasoup-client
// 2.4.12 in headless Chromium, against each demo host:
//   - the Node host (examples/node/server.js, bindings/node)
//   - the Python host (examples/python/host.py, bindings/python), if present.
//
// For each host: two pages (alice, bob; separate browser contexts) join one room, each
// must decode the other's video and receive the other's audio; then alice clicks Leave
// and bob must see her go.
//
// Env: SFU_SCREENSHOT=1 saves bob's page to docs/screenshot.png; SFU_DEBUG=1 makes the
// host log every signalling frame and prints all page console output.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { chromium } = require('playwright-core');

const repo = path.resolve(__dirname, '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
];
const MEDIA_TIMEOUT_MS = 60_000;
const LEAVE_TIMEOUT_MS = 10_000;
const debug = process.env.SFU_DEBUG === '1';

// ---------------------------------------------------------------------------
// Hosts.

function pythonInterpreter() {
  // The venv of bindings/python/setup.sh, where bindings/python is pip-installed.
  const venv = process.env.SFU_PY_VENV || path.join(repo, 'target', 'py-venv');
  for (const candidate of [process.env.SFU_PYTHON, path.join(venv, 'bin', 'python')]) {
    if (candidate && fs.existsSync(candidate)) return candidate;
  }
  return 'python3';
}

const hosts = [
  {
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
  {
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
];

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

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
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

async function startHost(host) {
  const port = await freePort();
  const [cmd, args] = host.command(port);
  const child = spawn(cmd, args, {
    cwd: repo,
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
  return { child, exited, base, output, port };
}

async function stopHost(h) {
  if (!h || h.child.exitCode !== null || h.child.signalCode !== null) return;
  h.child.kill('SIGTERM');
  const done = await Promise.race([h.exited.then(() => true), sleep(5000).then(() => false)]);
  if (!done) {
    h.child.kill('SIGKILL');
    await Promise.race([h.exited, sleep(5000)]);
  }
}

// ---------------------------------------------------------------------------
// Browser.

let browser = null;

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} missing: run bash tests/e2e/setup.sh`);
  assert.ok(
    fs.existsSync(path.join(repo, 'examples', 'web', 'dist', 'app.js')),
    'examples/web/dist/app.js missing: run bash examples/web/setup.sh'
  );
  // launch() gives the browser a fresh temporary --user-data-dir and --headless.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
});

after(async () => {
  if (browser) await Promise.race([browser.close(), sleep(10_000)]);
});

async function openPeer(base, roomId, peerName) {
  const context = await browser.newContext({ viewport: { width: 960, height: 480 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const logs = [];
  page.on('console', (msg) => {
    const line = `[${peerName} console.${msg.type()}] ${msg.text()}`;
    logs.push(line);
    if (debug) console.log(line);
  });
  page.on('pageerror', (error) => logs.push(`[${peerName} pageerror] ${error.stack || error}`));
  page.on('crash', () => logs.push(`[${peerName}] page crashed`));
  await page.goto(`${base}/?room=${encodeURIComponent(roomId)}&peer=${peerName}`, {
    timeout: 15_000,
  });
  return { name: peerName, context, page, logs };
}

async function pageState(peer) {
  return peer.page.evaluate(() =>
    window.demo ? { state: window.demo.state, error: window.demo.error } : { state: 'loading', error: null }
  );
}

async function waitJoined(peer, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { state, error } = await pageState(peer);
    if (state === 'joined') return;
    if (state === 'failed' || state === 'closed')
      throw new Error(`${peer.name}: page state "${state}" (${error})`);
    if (Date.now() > deadline)
      throw new Error(`${peer.name}: not joined after ${timeoutMs} ms (state "${state}")`);
    await sleep(200);
  }
}

function mediaOk(stats, from) {
  const s = stats[from];
  return Boolean(s && s.videoFramesDecoded > 30 && s.audioBytesReceived > 0);
}

async function diagnostics(peers, h) {
  const parts = [];
  for (const peer of peers) {
    let dump = null;
    try {
      dump = await Promise.race([
        peer.page.evaluate(async () => !window.demo ? 'window.demo is not defined' : ({
          state: window.demo.state,
          error: window.demo.error,
          remotePeers: window.demo.remotePeers(),
          stats: await window.demo.stats(),
          transports: await window.demo.dump(),
        })),
        sleep(5000).then(() => 'evaluate timed out'),
      ]);
    } catch (error) {
      dump = `evaluate failed: ${error.message}`;
    }
    parts.push(`----- ${peer.name}: page state and getStats dump -----`);
    parts.push(JSON.stringify(dump, null, 1));
    parts.push(`----- ${peer.name}: console -----`);
    parts.push(peer.logs.join('\n') || '(empty)');
  }
  if (h) {
    parts.push('----- host output -----');
    parts.push(h.output.join('') || '(empty)');
  }
  return parts.join('\n');
}

// ---------------------------------------------------------------------------
// The scenario.

for (const host of hosts) {
  test(`two browsers exchange audio and video through the ${host.name} host`, { timeout: 180_000 }, async (t) => {
    const why = host.skip();
    if (why) {
      t.skip(why);
      console.log(`skipped ${host.name} host: ${why}`);
      return;
    }
    let h = null;
    const peers = [];
    try {
      h = await startHost(host);
      const roomId = 'demo'; // each host runs in its own process: rooms do not collide
      const alice = await openPeer(h.base, roomId, 'alice');
      peers.push(alice);
      await waitJoined(alice, 20_000);
      const bob = await openPeer(h.base, roomId, 'bob');
      peers.push(bob);
      await waitJoined(bob, 20_000);

      // Media: each decodes the other's video and receives the other's audio.
      const deadline = Date.now() + MEDIA_TIMEOUT_MS;
      let aliceStats = {};
      let bobStats = {};
      for (;;) {
        aliceStats = await alice.page.evaluate(() => window.demo.stats());
        bobStats = await bob.page.evaluate(() => window.demo.stats());
        if (mediaOk(aliceStats, 'bob') && mediaOk(bobStats, 'alice')) break;
        for (const peer of peers) {
          const { state, error } = await pageState(peer);
          if (state !== 'joined') throw new Error(`${peer.name}: page state "${state}" (${error})`);
        }
        if (Date.now() > deadline) {
          throw new Error(
            `no media within ${MEDIA_TIMEOUT_MS} ms: alice sees ${JSON.stringify(aliceStats)}, ` +
              `bob sees ${JSON.stringify(bobStats)}`
          );
        }
        await sleep(500);
      }
      console.log(`${host.name} host: alice receives from bob ${JSON.stringify(aliceStats.bob)}`);
      console.log(`${host.name} host: bob receives from alice ${JSON.stringify(bobStats.alice)}`);

      if (process.env.SFU_SCREENSHOT === '1' && host.name === 'node') {
        await sleep(1500); // let the tiles' stats line refresh
        const file = path.join(repo, 'docs', 'screenshot.png');
        fs.mkdirSync(path.dirname(file), { recursive: true });
        await bob.page.screenshot({ path: file });
        console.log(`saved ${file}`);
      }

      // alice leaves; bob sees her go.
      await alice.page.click('#leave');
      assert.equal((await pageState(alice)).state, 'left');
      const leaveDeadline = Date.now() + LEAVE_TIMEOUT_MS;
      for (;;) {
        const remote = await bob.page.evaluate(() => window.demo.remotePeers());
        const tiles = await bob.page.evaluate(() => document.querySelectorAll('.tile[data-peer]').length);
        if (!remote.includes('alice') && tiles === 0) break;
        if (Date.now() > leaveDeadline)
          throw new Error(`bob still sees ${JSON.stringify(remote)} (${tiles} tiles) ${LEAVE_TIMEOUT_MS} ms after alice left`);
        await sleep(200);
      }
      assert.equal((await pageState(bob)).state, 'joined');
    } catch (error) {
      if (peers.length || h) console.log(await diagnostics(peers, h));
      throw error;
    } finally {
      for (const peer of peers) await Promise.race([peer.context.close().catch(() => {}), sleep(5000)]);
      await stopHost(h);
    }
  });
}
