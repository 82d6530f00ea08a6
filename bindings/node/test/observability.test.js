'use strict';
// Logs and metrics of the Node binding against the real library: the 'log' event
// (level, target, message) in the library's order with the events, per server; stderr
// without a listener; server.metrics() and counters that move with traffic.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const dgram = require('node:dgram');

const { Server } = require('..');
const { CONFIG, join, runChild, within } = require('../test-support/harness');

const T = { timeout: 20000 };
const QUERY = { method: 'queryRoom', target: 'room' };

function server(t, config) {
  const s = new Server({ ...CONFIG, ...config });
  t.after(() => s.close());
  return s;
}

/** Parse the exposition text: "name{labels}" -> value; checks every line's shape. */
function samples(text) {
  const out = new Map();
  const types = new Map();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line);
    if (type) {
      assert.ok(!types.has(type[1]), `${type[1]} declared twice`);
      types.set(type[1], type[2]);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `bad line: ${line}`);
    assert.ok(!out.has(m[1]), `duplicate series ${m[1]}`);
    out.set(m[1], m[2] === '+Inf' ? Infinity : Number(m[2]));
  }
  return { out, types };
}

test("library log records are 'log' events, before the response they precede", T, async (t) => {
  const s = server(t, { logLevel: 'debug' });
  const seen = [];
  s.on('log', (level, target, message) => seen.push({ level, target, message }));
  const room = s.createRoom('r');
  await room.request('alice', QUERY);
  const before = seen.slice(); // what was emitted by the time the promise resolved
  const rec = before.find((r) => r.message.startsWith('room r: request ') && r.message.includes('from alice'));
  assert.ok(rec, `the request's record came before its response: ${JSON.stringify(seen)}`);
  assert.equal(rec.level, 'debug');
  assert.equal(rec.target, 'sfu::room');
});

test('each server logs at its own level', T, async (t) => {
  const chatty = server(t, { logLevel: 'debug' });
  const quiet = server(t, { logLevel: 'error' }); // created last: a global level would win
  const got = { chatty: 0, quiet: 0 };
  chatty.on('log', () => got.chatty++);
  quiet.on('log', () => got.quiet++);
  await chatty.createRoom('r').request('a', QUERY);
  await quiet.createRoom('r').request('a', QUERY);
  assert.ok(got.chatty >= 1);
  assert.equal(got.quiet, 0);
});

test("without a 'log' listener records go to stderr", T, async () => {
  const code = `
    const { Server } = require('.');
    const s = new Server({ numWorkers: 1, rtcIPv4: '127.0.0.1', logLevel: 'debug' });
    s.createRoom('r').request('alice', { method: 'queryRoom', target: 'room' })
      .then(() => { s.close(); console.log('done'); });`;
  const r = await runChild(code);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /done/);
  assert.match(r.stderr, /^sfu \[debug\] sfu::room: room r: request \d+ from alice/m);
});

test('metrics(): gauges and counters follow rooms, peers, transports and unknown datagrams', T, async (t) => {
  const s = server(t);
  const m0 = samples(s.metrics());
  assert.equal(m0.types.get('sfu_datagrams_dropped_total'), 'counter');
  assert.equal(m0.types.get('sfu_worker_batch_latency_seconds'), 'histogram');
  assert.equal(m0.out.get('sfu_rooms'), 0);
  const room = s.createRoom('m');
  await join(room, 'alice');
  const tr = await room.request('alice', { method: 'createTransport', target: 'peer', id: 1, direction: 'recv', options: {}, appData: {} });
  // Gauges are published at the end of the worker's loop iteration that ran the
  // request: the response may overtake them by a moment.
  let m1;
  await within((async () => {
    for (;;) {
      m1 = samples(s.metrics());
      if (m1.out.get('sfu_transports{protocol="none",state="new"}') === 1) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  })(), 5000, 'the transport gauge');
  assert.equal(m1.out.get('sfu_rooms'), 1);
  assert.equal(m1.out.get('sfu_peers'), 1);
  const key = 'sfu_datagrams_dropped_total{protocol="udp",reason="unknown_source"}';
  const before = m1.out.get(key);

  const sock = dgram.createSocket('udp4');
  t.after(() => sock.close());
  const n = 30;
  for (let i = 0; i < n; i++) {
    await new Promise((res, rej) => sock.send(Buffer.from([0x80, 96, 0, i, 1, 2, 3, 4]), tr.iceCandidates.find((c) => c.protocol === 'udp').port, '127.0.0.1', (e) => (e ? rej(e) : res())));
  }
  let last;
  await within((async () => {
    for (;;) {
      last = samples(s.metrics());
      if (last.out.get(key) - before >= n) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  })(), 10000, 'the unknown-source drops to be counted');
  assert.equal(last.out.get(key) - before, n);
  assert.ok(last.out.get('sfu_worker_batch_latency_seconds_count{worker="0"}') >= 1);

  s.close();
  assert.throws(() => s.metrics(), (e) => e.code === 'SFU_RESULT_SERVER_CLOSED');
});
