'use strict';
// The binding in-process: construction, errors, the request/response round trip,
// notifications, concurrency and close semantics.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('node:events');

const { Server, Room, version, counters } = require('..');
const { CONFIG, waitEvent, waitNotification, within, join } = require('../test-support/harness');

const T = { timeout: 20000 };

/** A server closed when the test ends, whatever happens. */
function server(t, config = CONFIG) {
  const s = new Server(config);
  t.after(() => s.close());
  return s;
}

test('version and a server that starts and closes', T, async (t) => {
  assert.match(version, /^\d+\.\d+\.\d+/);
  const before = counters();
  const s = new Server(CONFIG);
  assert.equal(s.closed, false);
  const closed = once(s, 'close');
  s.close();
  assert.equal(s.closed, true);
  // sfu_server_free returned: the library has run the userdata finalizer.
  assert.equal(counters().userdataFreed, before.userdataFreed + 1);
  await within(closed, 5000, "'close' event");
  assert.deepEqual(s._debugState(), { closed: true, drained: true, pending: 0, rooms: 0, unmatchedResponses: 0 });
});

test('default config (no argument) works', T, (t) => {
  const s = new Server();
  t.after(() => s.close());
  s.createRoom('r');
});

test('bad config throws an Error naming the key, with the result name as code', T, () => {
  const before = counters();
  const cases = [
    [{ numWorkers: 0 }, 'numWorkers'],
    [{ logLevel: 'loud' }, 'logLevel'],
    [{ rtcIPv4: 'not an ip' }, 'rtcIPv4'],
    [{ bogusKey: 1 }, 'bogusKey'],
    ['not json', 'JSON'],
  ];
  for (const [config, key] of cases) {
    assert.throws(
      () => new Server(config),
      (e) => {
        assert.ok(e instanceof Error);
        assert.equal(e.code, 'SFU_RESULT_INVALID_CONFIG', e.message);
        assert.equal(e.result, 3);
        assert.ok(e.message.includes(key), `message names ${key}: ${e.message}`);
        return true;
      },
    );
  }
  assert.throws(() => new Server({ big: 1n }), TypeError, 'a config JSON cannot encode');
  // A failed sfu_server_new leaves the userdata to the caller: the library never frees it.
  assert.equal(counters().userdataFreed, before.userdataFreed);
  assert.equal(counters().serversCreated, before.serversCreated);
});

test('createRoom: options, and errors thrown with their result name', T, (t) => {
  const s = server(t);
  const room = s.createRoom('plain');
  assert.ok(room instanceof Room);
  assert.equal(room.id, 'plain');
  assert.equal(room.server, s);
  s.createRoom('custom', {
    mediaCodecs: [
      { kind: 'audio', name: 'opus', clockRate: 48000, channels: 2 },
      { kind: 'video', name: 'H264', clockRate: 90000, parameters: { 'packetization-mode': 1 } },
    ],
  });
  const code = (c) => (e) => {
    assert.equal(e.code, c, e.message);
    assert.ok(e.message.length > 0);
    return true;
  };
  assert.throws(() => s.createRoom('plain'), code('SFU_RESULT_ROOM_EXISTS'));
  assert.throws(() => s.createRoom(''), code('SFU_RESULT_INVALID_ARGUMENT'));
  assert.throws(() => s.createRoom('bad1', { mediaCodecs: [] }), code('SFU_RESULT_INVALID_ARGUMENT'));
  assert.throws(
    () => s.createRoom('bad2', { mediaCodecs: [{ kind: 'audio', name: 'nope', clockRate: 48000 }] }),
    (e) => code('SFU_RESULT_INVALID_ARGUMENT')(e) && /nope/.test(e.message),
  );
  assert.throws(() => s.createRoom('bad3', { mediaCodecz: [] }), code('SFU_RESULT_INVALID_ARGUMENT'));
  assert.throws(() => s.createRoom(42), TypeError);
  assert.throws(() => s.createRoom('a\0b'), TypeError);
  assert.throws(() => new Room(), TypeError, 'rooms only come from createRoom');
  // A failed create leaves no room behind: the id is free.
  s.createRoom('bad1');
});

test('queryRoom and join round trip', T, async (t) => {
  const s = server(t);
  const room = s.createRoom('r1');
  const q = await room.request('alice', { method: 'queryRoom', target: 'room' });
  assert.deepEqual(q.mandatoryCodecPayloadTypes, []);
  assert.deepEqual(q.rtpCapabilities.codecs.map((c) => c.name), ['opus', 'VP8', 'rtx', 'VP9', 'rtx', 'H264', 'rtx']);
  const a = await join(room, 'alice');
  assert.deepEqual(a.peers, []);
  const b = await join(room, 'bob');
  assert.equal(b.peers.length, 1);
  assert.equal(b.peers[0].name, 'alice');
  assert.deepEqual(b.peers[0].appData, { n: 'alice' });
  // A request may also be passed as JSON text, as received from the client.
  const q2 = await room.request('carol', JSON.stringify({ method: 'queryRoom', target: 'room' }));
  assert.deepEqual(q2, q);
  assert.equal(s._debugState().pending, 0);
});

test('request rejects with the library reason', T, async (t) => {
  {
    // A config limit surfaces as the reason too. The limit counts requests the worker
    // has not taken yet, and a worker may take one before the next is submitted: 200
    // submitted back to back cannot all be taken one by one in between.
    const s1 = server(t, { ...CONFIG, maxPendingRequestsPerPeer: 1 });
    const r1 = s1.createRoom('r1');
    const all = await Promise.allSettled(
      Array.from({ length: 200 }, () => r1.request('x', { method: 'queryRoom', target: 'room' }))
    );
    assert.equal(all[0].status, 'fulfilled', 'the first is always taken');
    const rejected = all.filter((r) => r.status === 'rejected');
    assert.ok(rejected.length >= 1, 'some request found another one pending');
    for (const r of rejected) assert.match(r.reason.message, /too many pending requests for this peer \(limit 1\)/);
  }
  const s = server(t);
  const room = s.createRoom('r1');
  await assert.rejects(room.request('ghost', { method: 'createTransport', target: 'peer', id: 1 }), { message: 'peer not joined' });
  await join(room, 'alice');
  await assert.rejects(room.request('alice', { method: 'bogus', target: 'peer' }), { message: 'unknown method `bogus`' });
  await assert.rejects(room.request('alice', { method: 'restartTransport', target: 'peer', id: 99 }), {
    message: 'transport not found',
  });
  await assert.rejects(room.request('alice', 'not json'), (e) => e instanceof Error && e.message.length > 0);
  // Argument errors reject too (request() never throws synchronously).
  await assert.rejects(room.request(7, {}), TypeError);
  await assert.rejects(room.request('alice', { big: 1n }), TypeError);
  assert.equal(s._debugState().pending, 0);
});

test('notifications: newPeer, peerClosed and closed between peers', T, async (t) => {
  const s = server(t);
  const room = s.createRoom('r1');
  await join(room, 'alice');
  const newPeer = waitNotification(room, 'alice', 'newPeer');
  await join(room, 'bob');
  const np = await newPeer;
  assert.equal(np.name, 'bob');
  assert.equal(np.notification, true);
  assert.equal(np.target, 'peer');
  assert.deepEqual(np.consumers, []);

  // The client's own `leave` notification.
  await join(room, 'carol');
  const left = waitNotification(room, 'alice', 'peerClosed');
  room.notify('carol', { method: 'leave', target: 'peer', notification: true, appData: {} });
  assert.equal((await left).name, 'carol');

  // The host closes a peer: it gets `closed`, the others `peerClosed`.
  const bobClosed = waitNotification(room, 'bob', 'closed');
  const alicePeerClosed = waitNotification(room, 'alice', 'peerClosed');
  room.closePeer('bob');
  await bobClosed;
  assert.equal((await alicePeerClosed).name, 'bob');
  assert.throws(() => room.closePeer('bob'), { code: 'SFU_RESULT_PEER_NOT_FOUND' });
});

test('host events: a notification that cannot be applied', T, async (t) => {
  const s = server(t);
  const room = s.createRoom('r1');
  await join(room, 'alice');
  const ev = waitEvent(room, 'hostEvent', (p, e) => e.event === 'notificationError');
  room.notify('alice', { method: 'updateTransport', target: 'peer', notification: true, id: 404, dtlsParameters: {} });
  const [peer, e] = await ev;
  assert.equal(peer, 'alice');
  assert.equal(e.method, 'updateTransport');
  assert.equal(typeof e.error, 'string');
});

test('many concurrent requests all settle with their own answer', T, async (t) => {
  const s = server(t, { ...CONFIG, numWorkers: 2 });
  const rooms = [s.createRoom('a'), s.createRoom('b')];
  // Spread over peers: the library limits pending requests per peer (128 by default).
  const PEERS = 10;
  for (const r of rooms) for (let p = 0; p < PEERS; p++) await join(r, `p${p}`);
  const N = 1000;
  const all = [];
  for (let i = 0; i < N; i++) {
    const r = rooms[i % 2];
    if (i % 3 === 0) {
      // Alternate ids and methods so a mixed-up answer would show.
      all.push(r.request(`p${i % PEERS}`, { method: 'restartTransport', target: 'peer', id: i }).then(
        () => assert.fail('no transport'),
        (e) => assert.equal(e.message, 'transport not found'),
      ));
    } else {
      all.push(r.request(`q${i}`, { method: 'queryRoom', target: 'room' }).then((d) => assert.ok(d.rtpCapabilities)));
    }
  }
  await within(Promise.all(all), 15000, `${N} requests`);
  assert.equal(s._debugState().pending, 0);
});

test('close while callbacks are queued: every promise settles exactly once', T, async (t) => {
  const before = counters();
  const s = new Server(CONFIG);
  const room = s.createRoom('r1');
  await join(room, 'alice');
  const closedNotifs = [];
  room.on('notification', (p, m) => { if (m.method === 'closed') closedNotifs.push(p); });
  const N = 200;
  const ps = [];
  // Spread over peers: the library limits pending requests per peer (128 by default).
  const flood = (n) => {
    for (let i = 0; i < n; i++) ps.push(room.request(`q${i % 10}`, { method: 'queryRoom', target: 'room' }));
  };
  flood(N / 2);
  await ps[0]; // some answers delivered...
  flood(N / 2); // ...and these still queued in the library or in the tsfn
  const drained = once(s, 'close');
  s.close();
  assert.equal(counters().userdataFreed, before.userdataFreed + 1);
  const results = await within(Promise.allSettled(ps), 5000, 'settling');
  const rejected = results.filter((r) => r.status === 'rejected');
  for (const r of rejected) assert.equal(r.reason.message, 'server closed');
  assert.equal(results.length, N);
  await within(drained, 5000, "'close' event");
  const st = s._debugState();
  assert.equal(st.pending, 0);
  // The library answered every request exactly once; the ones close() had already
  // rejected arrived afterwards and were ignored.
  assert.equal(st.unmatchedResponses, rejected.length);
  assert.ok(rejected.length >= N / 2, `close() rejected the queued requests (${rejected.length})`);
  assert.ok(results[0].status === 'fulfilled');
  // The shutdown's `closed` notification to the joined peer is still emitted.
  assert.deepEqual(closedNotifs, ['alice']);
});

test('close is idempotent; a closed server refuses work', T, async () => {
  const before = counters();
  const s = new Server(CONFIG);
  const room = s.createRoom('r1');
  s.close();
  s.close();
  assert.equal(counters().userdataFreed, before.userdataFreed + 1, 'userdata freed once');
  assert.equal(room.closed, true);
  room.close(); // no-op
  assert.throws(() => s.createRoom('r2'), { code: 'SFU_RESULT_SERVER_CLOSED', message: 'server closed' });
  assert.throws(() => room.notify('a', {}), { code: 'SFU_RESULT_SERVER_CLOSED' });
  assert.throws(() => room.closePeer('a'), { code: 'SFU_RESULT_SERVER_CLOSED' });
  await assert.rejects(room.request('a', { method: 'queryRoom' }), { message: 'server closed' });
});

test('room.close: peers get closed (emitted on the room), then the id can be reused', T, async (t) => {
  const s = server(t);
  const room = s.createRoom('r1');
  await join(room, 'alice');
  await join(room, 'bob');
  const got = [];
  room.on('notification', (p, m) => got.push([p, m.method]));
  const bobClosed = waitNotification(room, 'bob', 'closed');
  room.close();
  room.close(); // idempotent
  assert.equal(room.closed, true);
  // Reuse the id at once: the old room's notifications still go to the old Room.
  const again = s.createRoom('r1');
  const seenByNew = [];
  again.on('notification', (p, m) => seenByNew.push([p, m.method]));
  await bobClosed;
  await join(again, 'carol');
  await within((async () => { while (s._debugState().pending !== 0) await new Promise((r) => setTimeout(r, 10)); })(), 5000, 'marker');
  assert.deepEqual(got.filter(([, m]) => m === 'closed').map(([p]) => p).sort(), ['alice', 'bob']);
  assert.deepEqual(seenByNew, []);
  // The closed Room object refuses work (its id now names another room).
  await assert.rejects(room.request('alice', { method: 'queryRoom', target: 'room' }), {
    code: 'SFU_RESULT_ROOM_NOT_FOUND', message: 'room closed: r1',
  });
  assert.throws(() => room.notify('alice', {}), { code: 'SFU_RESULT_ROOM_NOT_FOUND' });
  assert.throws(() => room.closePeer('alice'), { code: 'SFU_RESULT_ROOM_NOT_FOUND' });
  assert.throws(() => s.createRoom('r1'), { code: 'SFU_RESULT_ROOM_EXISTS' });
});
