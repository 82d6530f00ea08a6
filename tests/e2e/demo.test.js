// End-to-end test of the browser demo (examples/web) with the real mediasoup-client
// 2.4.12 in headless Chromium, against each demo host:
//   - the Node host (examples/node/server.js, bindings/node)
//   - the Python host (examples/python/host.py, bindings/python), if present.
//
// For each host: two pages (alice, bob; separate browser contexts) join one room, each
// must decode the other's video and receive the other's audio; the host's /metrics must
// show the two peers, their connected transports and the RTP going through; then alice
// clicks Leave and bob must see her go.
//
// Env: SFU_SCREENSHOT=1 saves bob's page to docs/screenshot.png; SFU_DEBUG=1 makes the
// host log every signalling frame and prints all page console output.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { repo, sleep, hosts: hostsByName, startHost, stopHost } = require('./lib/host');
const { launch } = require('./lib/browsers');

const MEDIA_TIMEOUT_MS = 60_000;
const LEAVE_TIMEOUT_MS = 10_000;
const hosts = [hostsByName.node, hostsByName.python];

// ---------------------------------------------------------------------------
// Browser: one headless Chromium; each peer is a page in its own context.

let browser = null;

before(async () => {
  assert.ok(
    fs.existsSync(path.join(repo, 'examples', 'web', 'dist', 'app.js')),
    'examples/web/dist/app.js missing: run bash examples/web/setup.sh'
  );
  browser = await launch('chromium');
});

after(async () => {
  if (browser) await Promise.race([browser.close(), sleep(10_000)]);
});

function openPeer(base, roomId, peerName) {
  return browser.newPeer(base, roomId, peerName);
}

async function pageState(peer) {
  return peer.evaluate(() =>
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
        peer.evaluate(async () => !window.demo ? 'window.demo is not defined' : ({
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

/** GET `url`: { status, type, body }. */
function httpGet(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
  });
}

/** The host's /metrics as "name{labels}" -> number (the format is checked in detail
 * by the binding tests; here: what the demo's traffic did). */
async function hostMetrics(base) {
  const r = await httpGet(`${base}/metrics`);
  assert.equal(r.status, 200, r.body);
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  const out = new Map();
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
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
        aliceStats = await alice.evaluate(() => window.demo.stats());
        bobStats = await bob.evaluate(() => window.demo.stats());
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

      // The host's /metrics saw it: two peers, their transports connected, RTP both ways.
      const m = await hostMetrics(h.base);
      const connected = ['udp', 'tcp'].reduce((n, p) => n + (m.get(`sfu_transports{protocol="${p}",state="connected"}`) || 0), 0);
      assert.equal(m.get('sfu_peers'), 2);
      assert.ok(connected >= 2, `connected transports: ${connected}`);
      assert.ok(m.get('sfu_rtp_packets_received_total') > 0 && m.get('sfu_rtp_packets_sent_total') > 0);
      console.log(
        `${host.name} host /metrics: ${connected} transports connected, producers ${m.get('sfu_producers')}, ` +
          `consumers ${m.get('sfu_consumers')}, RTP in ${m.get('sfu_rtp_packets_received_total')} / out ` +
          `${m.get('sfu_rtp_packets_sent_total')}, NACK in/out ${m.get('sfu_rtcp_feedback_received_total{type="nack"}')}/` +
          `${m.get('sfu_rtcp_feedback_sent_total{type="nack"}')}, PLI in/out ${m.get('sfu_rtcp_feedback_received_total{type="pli"}')}/` +
          `${m.get('sfu_rtcp_feedback_sent_total{type="pli"}')}, worker busy ratio ${m.get('sfu_worker_busy_ratio{worker="0"}')}, ` +
          `batches ${m.get('sfu_worker_batch_latency_seconds_count{worker="0"}')} (mean ` +
          `${((1e6 * m.get('sfu_worker_batch_latency_seconds_sum{worker="0"}')) / m.get('sfu_worker_batch_latency_seconds_count{worker="0"}')).toFixed(0)} µs)`
      );

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
        const remote = await bob.evaluate(() => window.demo.remotePeers());
        const tiles = await bob.evaluate(() => document.querySelectorAll('.tile[data-peer]').length);
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
      for (const peer of peers) await peer.close();
      await stopHost(h);
    }
  });
}
