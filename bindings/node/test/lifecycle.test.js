'use strict';
// Process-level behaviour, each in a child node process: a closed server lets Node
// exit, an open one keeps it alive, close during a flood, worker teardown with an
// open server, and no leak over 50 create/close cycles.
const { test } = require('node:test');
const assert = require('node:assert/strict');

const { BINDING, CONFIG, runChild } = require('../test-support/harness');

const T = { timeout: 30000 };
const PRELUDE = `
const { Server, counters } = require(${JSON.stringify(BINDING)});
const CONFIG = ${JSON.stringify(CONFIG)};
`;

function show(r) {
  return `code=${r.code} signal=${r.signal} timedOut=${r.timedOut} ms=${r.ms}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

test('the process exits on its own after server.close()', T, async () => {
  const r = await runChild(`${PRELUDE}
    (async () => {
      const s = new Server(CONFIG);
      const room = s.createRoom('r1');
      const q = await room.request('alice', { method: 'queryRoom', target: 'room' });
      s.close();
      console.log('done', q.rtpCapabilities.codecs.length);
    })();
  `, { timeoutMs: 5000 });
  assert.equal(r.timedOut, false, show(r));
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /^done \d+/, show(r));
});

test('an open server keeps the process alive (killed at the 3 s timeout)', T, async () => {
  const r = await runChild(`${PRELUDE}
    (async () => {
      const s = new Server(CONFIG);
      const room = s.createRoom('r1');
      await room.request('alice', { method: 'queryRoom', target: 'room' });
      console.log('ready');
      // no close(): the ref'd threadsafe function holds the event loop open
    })();
  `, { timeoutMs: 3000 });
  assert.equal(r.timedOut, true, show(r));
  assert.equal(r.signal, 'SIGKILL', show(r));
  assert.match(r.stdout, /ready/, show(r));
});

test('flood 200 requests then close: every promise settles and the process exits', T, async () => {
  const r = await runChild(`${PRELUDE}
    const s = new Server(CONFIG);
    const room = s.createRoom('r1');
    const ps = [];
    for (let i = 0; i < 200; i++) ps.push(room.request('p' + (i % 7), { method: 'queryRoom', target: 'room' }));
    s.close();
    Promise.allSettled(ps).then((rs) => {
      const fulfilled = rs.filter((x) => x.status === 'fulfilled').length;
      const reasons = [...new Set(rs.filter((x) => x.status === 'rejected').map((x) => x.reason.message))];
      s.on('close', () => console.log(JSON.stringify({ fulfilled, reasons, state: s._debugState() })));
    });
  `, { timeoutMs: 5000 });
  assert.equal(r.timedOut, false, show(r));
  assert.equal(r.code, 0, show(r));
  const out = JSON.parse(r.stdout);
  assert.equal(out.fulfilled, 0, 'close() ran before the loop could dispatch any answer');
  assert.deepEqual(out.reasons, ['server closed']);
  assert.equal(out.state.pending, 0);
  assert.equal(out.state.unmatchedResponses, 200, 'the library still answered each request once');
});

test('a worker terminated with an open server: the cleanup hook frees it', T, async () => {
  const r = await runChild(`${PRELUDE}
    const { Worker } = require('worker_threads');
    const w = new Worker(\`
      const { parentPort } = require('worker_threads');
      const { Server } = require(${JSON.stringify(BINDING)});
      const s = new Server(${JSON.stringify(CONFIG)});
      const room = s.createRoom('r1');
      room.request('a', { method: 'queryRoom', target: 'room' }).then(() => {
        // callbacks still in flight when the worker goes away
        // never settled: the worker goes away first
        for (let i = 0; i < 500; i++) room.request('a' + (i % 10), { method: 'queryRoom', target: 'room' });
        parentPort.postMessage('ready');
      });
      // Joined peers: the shutdown sends them "closed" while the environment goes away.
      for (let i = 0; i < 20; i++) room.request('p' + i, { method: 'join', target: 'room', peerName: 'p' + i, spy: false });
    \`, { eval: true });
    w.once('message', async () => {
      await w.terminate();
      console.log(JSON.stringify(counters()));
    });
  `, { timeoutMs: 8000 });
  assert.equal(r.timedOut, false, show(r));
  assert.equal(r.code, 0, show(r));
  const c = JSON.parse(r.stdout);
  assert.equal(c.serversCreated, 1);
  assert.equal(c.userdataFreed, 1, 'sfu_server_free ran at environment teardown');
  assert.equal(c.tsfnFinalized, 1);
  // The library had stopped before the tsfn was deleted (no push into a dead tsfn).
  assert.equal(c.tsfnFinalizedEarly, 0);
});

test('process.exit() with an open server exits cleanly', T, async () => {
  const r = await runChild(`${PRELUDE}
    const s = new Server(CONFIG);
    const room = s.createRoom('r1');
    for (let i = 0; i < 100; i++) room.request('a', { method: 'queryRoom', target: 'room' }).catch(() => {});
    setTimeout(() => process.exit(7), 20);
  `, { timeoutMs: 5000 });
  assert.equal(r.timedOut, false, show(r));
  assert.equal(r.code, 7, show(r));
});

test('no leak: 50 servers created and closed are all finalized', T, async () => {
  const r = await runChild(`${PRELUDE}
    const fs = require('fs');
    const { once } = require('events');
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    const tick = () => new Promise((r) => setImmediate(r));
    async function round(n) {
      for (let i = 0; i < n; i++) {
        const s = new Server(CONFIG);
        const room = s.createRoom('r');
        await room.request('a', { method: 'queryRoom', target: 'room' });
        const drained = once(s, 'close');
        s.close();
        await drained;
      }
    }
    // Collect until every handle's finalizer ran (bounded).
    async function collect(want) {
      for (let i = 0; i < 200 && counters().handlesFinalized < want; i++) { global.gc(); await tick(); }
      for (let i = 0; i < 5; i++) { global.gc(); await tick(); }
    }
    (async () => {
      await round(10); // warm-up: lazy allocations, code caches
      await collect(10);
      const c0 = counters(), rss0 = process.memoryUsage().rss, fd0 = fds();
      await round(50);
      await collect(c0.handlesFinalized + 50);
      const c1 = counters(), rss1 = process.memoryUsage().rss, fd1 = fds();
      const d = {};
      for (const k of Object.keys(c1)) d[k] = c1[k] - c0[k];
      console.log(JSON.stringify({ d, rssGrowth: rss1 - rss0, fdGrowth: fd1 - fd0 }));
    })();
  `, { args: ['--expose-gc'], timeoutMs: 20000 });
  assert.equal(r.timedOut, false, show(r));
  assert.equal(r.code, 0, show(r));
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.d, {
    serversCreated: 50,
    userdataFreed: 50, // the library's userdata finalizer
    tsfnFinalized: 50,
    tsfnFinalizedEarly: 0,
    handlesFinalized: 50, // the JS handle's GC finalizer
    itemsDropped: 0,
  });
  assert.ok(out.fdGrowth <= 0, `file descriptors leaked: ${out.fdGrowth}`);
  assert.ok(out.rssGrowth < 32 * 1024 * 1024, `rss grew by ${(out.rssGrowth / 1048576).toFixed(1)} MiB`);
});
