'use strict';
// A host using the *installed* Node package (tests/install/run.sh runs it from a project
// that installed it, with no SFU_LIBRARY_PATH). Creates a server and a room; through the
// library's callback: queryRoom answered ok:true with the room's rtpCapabilities; alice
// joins; bob joins and is told about alice; alice gets newPeer for bob. Prints where the
// package and the libsfu code were loaded from. Every wait is bounded (10 s).
const fs = require('fs');
const { Server, version } = require('sfu');

function within(promise, what, ms = 10000) {
  let timer;
  const limit = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// What mediasoup-client sends for a browser supporting every room codec.
function clientCaps(roomCaps) {
  const keep = ['name', 'mimeType', 'kind', 'clockRate', 'channels', 'preferredPayloadType', 'parameters', 'rtcpFeedback'];
  const codecs = roomCaps.codecs.map((c) => Object.fromEntries(keep.filter((k) => k in c).map((k) => [k, c[k]])));
  const headerExtensions = roomCaps.headerExtensions.map(({ kind, uri, preferredId }) => ({ kind, uri, preferredId }));
  return { codecs, headerExtensions, fecMechanisms: [] };
}

function assert(cond, what) {
  if (!cond) throw new Error(`host(node): ${what}`);
}

async function main() {
  const server = new Server({ numWorkers: 1, rtcIPv4: '127.0.0.1' });
  try {
    const room = server.createRoom('room1');
    const newPeer = new Promise((resolve) => room.on('notification', (peer, msg) => {
      if (peer === 'alice' && msg.method === 'newPeer') resolve(msg);
    }));
    const q = await within(room.request('alice', { method: 'queryRoom', target: 'room' }), 'queryRoom');
    const join = { method: 'join', target: 'room', rtpCapabilities: clientCaps(q.rtpCapabilities), spy: false, appData: {} };
    await within(room.request('alice', { ...join, peerName: 'alice' }), 'join alice');
    const b = await within(room.request('bob', { ...join, peerName: 'bob' }), 'join bob');
    assert(JSON.stringify(b.peers.map((p) => p.name)) === '["alice"]', `bob's join: ${JSON.stringify(b)}`);
    const np = await within(newPeer, 'newPeer to alice');
    assert(np.name === 'bob', `newPeer: ${JSON.stringify(np)}`);
  } finally {
    server.close();
  }
  const libs = new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\n')
    .map((l) => l.split(/\s+/)[5]).filter((p) => p && /\/libsfu\.so/.test(p)));
  console.log(`host(node): package ${require.resolve('sfu')}`);
  for (const p of libs) console.log(`host(node): libsfu code mapped from ${p}`);
  console.log(`host(node): sfu ${version}: queryRoom, join alice, join bob (peers [alice]), newPeer to alice: ok`);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
