'use strict';
// Host requests through the binding: room.hostRequest(), its answers and errors, and the
// room's host events ('hostEvent' with peerName '').
//
// The producer is a fake plain-RTP client (docs/PROTOCOL.md, "Plain RTP transports"): a
// peer joins, creates a plain transport declaring a local UDP socket and a VP8 producer
// on it; the test sends its RTP from that socket. A streamer of it (createRtpStreamer)
// sends to two other local sockets (RTP, RTCP), like a recorder. No browser, no Rust
// peer. Every wait is bounded.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const dgram = require('node:dgram');

const { Server } = require('..');
const { CONFIG, waitEvent, within, join } = require('../test-support/harness');

const T = { timeout: 20000 };
const VIDEO_PT = 101; // the default room's VP8 payload type
const SSRC = 4000002;

function server(t) {
  const s = new Server(CONFIG);
  t.after(() => s.close());
  return s;
}

function bind(port) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', (e) => {
      s.close();
      reject(e);
    });
    s.bind(port, '127.0.0.1', () => resolve(s));
  });
}

/** Two sockets on ports p and p + 1 (a recorder's RTP and RTCP), each collecting datagrams. */
async function udpPair(t) {
  for (let i = 0; i < 50; i++) {
    const a = await bind(0);
    let b;
    try {
      b = await bind(a.address().port + 1);
    } catch (_) {
      a.close();
      continue;
    }
    const pair = { rtp: a, rtcp: b, port: a.address().port, got: { rtp: [], rtcp: [] } };
    a.on('message', (m) => pair.got.rtp.push(m));
    b.on('message', (m) => pair.got.rtcp.push(m));
    t.after(() => {
      a.close();
      b.close();
    });
    return pair;
  }
  throw new Error('no pair of free UDP ports');
}

/** The packet types of a compound RTCP datagram (200 SR, 203 BYE, ...). */
function rtcpTypes(d) {
  const types = [];
  for (let off = 0; off + 4 <= d.length; off += 4 * (d.readUInt16BE(off + 2) + 1)) types.push(d[off + 1]);
  return types;
}

async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Peer 'cam': a plain transport from a local socket and a VP8 producer (id 7). */
async function fakePublisher(t, room) {
  const sock = await udpPair(t);
  await join(room, 'cam');
  const tr = await room.request('cam', {
    method: 'createTransport', id: 1, direction: 'send',
    plainRtpParameters: { ip: '127.0.0.1', port: sock.port },
  });
  await room.request('cam', {
    method: 'createProducer', id: 7, kind: 'video', transportId: 1, paused: false,
    rtpParameters: {
      muxId: 'v',
      codecs: [{ name: 'VP8', mimeType: 'video/VP8', clockRate: 90000, payloadType: VIDEO_PT, parameters: {} }],
      headerExtensions: [], encodings: [{ ssrc: SSRC }], rtcp: { cname: 'cam', reducedSize: true, mux: false },
    },
  });
  const sfu = tr.plainRtpParameters;
  let seq = 65530;
  let i = 0;
  return {
    sfu,
    async send(n) {
      for (let k = 0; k < n; k++, i++, seq = (seq + 1) & 0xffff) {
        const p = Buffer.alloc(12 + 6 + 200);
        p[0] = 0x80;
        p[1] = 0x80 | VIDEO_PT;
        p.writeUInt16BE(seq, 2);
        p.writeUInt32BE((i * 3000) >>> 0, 4);
        p.writeUInt32BE(SSRC, 8);
        p[12] = 0x10;
        p[13] = i === 0 ? 0 : 1;
        p.writeUInt32BE(i, 14);
        await new Promise((r) => sock.rtp.send(p, sfu.port, sfu.ip, r));
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

test('hostRequest resolves with the answer data', T, async (t) => {
  const room = server(t).createRoom('r');
  const cam = await fakePublisher(t, room);
  assert.deepEqual(await room.hostRequest({ method: 'enableAudioLevels', intervalMs: 500, thresholdDbov: -60 }), {});
  assert.deepEqual(await room.hostRequest('{"method":"disableAudioLevels"}'), {}); // JSON text too
  const rec = await udpPair(t);
  const a = await room.hostRequest({
    method: 'createRtpStreamer', peerName: 'cam', producerId: 7, remoteIp: '127.0.0.1', remotePort: rec.port,
  });
  assert.equal(typeof a.streamerId, 'number');
  assert.deepEqual([a.localIp, a.localPort], [cam.sfu.ip, cam.sfu.port]);
  assert.equal(a.rtpParameters.codecs[0].payloadType, VIDEO_PT);
  assert.ok(a.sdp.includes(`m=video ${rec.port} RTP/AVP ${VIDEO_PT}`), a.sdp);
  assert.ok(a.sdp.includes(`a=rtpmap:${VIDEO_PT} VP8/90000`), a.sdp);
  assert.deepEqual(await room.hostRequest({ method: 'closeRtpStreamer', streamerId: a.streamerId }), {});
});

test('hostRequest rejects with the library reason', T, async (t) => {
  const room = server(t).createRoom('r');
  await fakePublisher(t, room);
  const cases = [
    [{ method: 'dance' }, 'unknown host method'],
    [{ method: 'createRtpStreamer', producerId: 99, remoteIp: '127.0.0.1', remotePort: 5000 }, 'producer not found'],
    [{ method: 'createRtpStreamer', producerId: 7, remoteIp: 'nope', remotePort: 5000 }, 'remoteIp'],
    [{ method: 'closeRtpStreamer', streamerId: 12345 }, 'streamer not found'],
    [{ method: 'enableActiveSpeaker', consecutive: 0 }, 'consecutive'],
    ['{not json', 'invalid JSON'],
  ];
  for (const [request, reason] of cases) {
    await assert.rejects(room.hostRequest(request), (e) => {
      assert.ok(e.message.includes(reason), `${JSON.stringify(request)}: ${e.message}`);
      return true;
    });
  }
  await assert.rejects(room.hostRequest({ big: 1n }), TypeError);
  await assert.rejects(room.hostRequest('{"method":"disableAudioLevels"}\0'), (e) => e.code === 'ERR_INVALID_ARG_VALUE');
});

test('hostRequest about a closed room rejects with room not found', T, async (t) => {
  const s = server(t);
  const live = s.createRoom('live');
  const gone = s.createRoom('gone');
  gone.close();
  // The binding refuses a closed Room before the library (its id may name a new room).
  await assert.rejects(gone.hostRequest({ method: 'disableAudioLevels' }), (e) => {
    assert.equal(e.code, 'SFU_RESULT_ROOM_NOT_FOUND');
    assert.match(e.message, /room closed: gone/);
    return true;
  });
  assert.deepEqual(await live.hostRequest({ method: 'disableActiveSpeaker' }), {});
});

test('a streamer forwards the publisher; its close is a hostEvent with an empty peer name', T, async (t) => {
  const room = server(t).createRoom('r');
  const cam = await fakePublisher(t, room);
  const rec = await udpPair(t);
  const a = await room.hostRequest({ method: 'createRtpStreamer', producerId: 7, remoteIp: '127.0.0.1', remotePort: rec.port });
  const ssrc = a.rtpParameters.encodings[0].ssrc;
  await cam.send(30);
  await until(() => rec.got.rtp.length >= 30, 10000, '30 packets at the recorder');
  assert.equal(rec.got.rtp.length, 30);
  const seqs = rec.got.rtp.map((p) => {
    assert.equal(p[1] & 0x7f, VIDEO_PT);
    assert.equal(p.readUInt32BE(8), ssrc);
    return p.readUInt16BE(2);
  });
  for (let k = 1; k < seqs.length; k++) assert.equal((seqs[k] - seqs[k - 1]) & 0xffff, 1, 'contiguous numbering');
  assert.deepEqual(rec.got.rtp.map((p) => p.readUInt32BE(14)), [...Array(30).keys()], 'payloads in order');
  await until(() => rec.got.rtcp.length > 0, 5000, 'RTCP at the recorder');
  assert.equal(rtcpTypes(rec.got.rtcp[0])[0], 200, 'a sender report first');

  const closed = waitEvent(room, 'hostEvent', (p, e) => e && e.event === 'rtpStreamerClosed', 5000);
  room.notify('cam', { method: 'closeProducer', notification: true, id: 7 });
  const [peer, ev] = await within(closed, 6000, 'rtpStreamerClosed');
  assert.equal(peer, '');
  assert.equal(ev.streamerId, a.streamerId);
  assert.ok(typeof ev.reason === 'string' && ev.reason.length > 0);
  await until(() => rec.got.rtcp.some((d) => rtcpTypes(d).includes(203)), 5000, 'a BYE at the recorder');
  await assert.rejects(room.hostRequest({ method: 'closeRtpStreamer', streamerId: a.streamerId }), /streamer not found/);
});

test('a pending hostRequest rejects with server closed when the server closes', T, async () => {
  const s = new Server(CONFIG);
  const room = s.createRoom('r');
  const p = room.hostRequest({ method: 'disableAudioLevels' });
  s.close();
  await assert.rejects(p, /server closed/);
  await assert.rejects(room.hostRequest({ method: 'disableAudioLevels' }), (e) => e.code === 'SFU_RESULT_SERVER_CLOSED');
});
