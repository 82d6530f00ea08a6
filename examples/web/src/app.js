// Two-tab demo of the sfu library with the real mediasoup-client 2.4.12.
//
// The page talks to its host (examples/node/server.js or examples/python/host.py)
// over one WebSocket at /ws?room=R&peer=NAME. Frames are JSON:
//   page -> host  {type:'request', id, method, data}   (answered by a response)
//                 {type:'notification', method, data}
//   host -> page  {type:'response', id, ok, data | error}
//                 {type:'notification', method, data}
// `data` is always the mediasoup v2 message object itself.
//
// For tests the page exposes `window.demo` (see the bottom of this file).

import { Room } from 'mediasoup-client';

const params = new URLSearchParams(location.search);
const roomId = params.get('room') || 'demo';
const peerName = params.get('peer') || `peer-${Math.floor(1000 + Math.random() * 9000)}`;

// Options (the tests use them; the demo works without):
//   simulcast=1       send the camera as three simulcast streams from a 1280x720 camera:
//                     mediasoup-client's `simulcast` option with SIMULCAST_BITRATES, then
//                     the streams' RTCRtpSender parameters set to those bitrates and to
//                     1/4, 1/2 and full size (mediasoup-client 2.x's Chrome handlers ignore
//                     the bitrates: Chromium would send all three at 1280x720, at about
//                     3.9, 0.7 and 0.7 Mbit/s with its fake camera);
//   simulcast=raw     the same without setting the parameters: what an unmodified
//                     mediasoup-client 2.x app sends;
//   camera=WxH        ask the camera for this size (e.g. camera=1280x720; default: the
//                     browser's choice, 1280x720 with simulcast);
//   send=none         join receive-only: no camera, no microphone;
//   contentHint=H     the camera track's contentHint ("motion", "detail", "text"): how the
//                     browser trades resolution for frame rate when bandwidth is short
//                     ("detail" keeps the resolution).
const SIMULCAST_BITRATES = { low: 150000, medium: 500000, high: 1500000 };
const options = {
  simulcast: { 1: 'scaled', raw: 'raw' }[params.get('simulcast')] || null,
  camera: parseSize(params.get('camera')),
  send: params.get('send') === 'none' ? 'none' : 'all',
  contentHint: ['motion', 'detail', 'text'].includes(params.get('contentHint')) ? params.get('contentHint') : null,
};
if (options.simulcast && !options.camera) options.camera = { width: 1280, height: 720 };

function parseSize(text) {
  const m = /^(\d{2,4})x(\d{2,4})$/.exec(text || '');
  return m ? { width: Number(m[1]), height: Number(m[2]) } : null;
}

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------
// State shown on the page and exposed to tests.

let state = 'new'; // new -> connecting -> joining -> joined -> left | closed | failed
let lastError = null;

function setState(next, detail) {
  state = next;
  const el = $('status');
  el.textContent = detail ? `${next}: ${detail}` : next;
  el.className = `status ${next}`;
  $('leave').disabled = next !== 'joined' && next !== 'joining';
}

function fail(where, error) {
  lastError = `${where}: ${error && error.message ? error.message : error}`;
  console.error(`[demo] ${lastError}`, error);
  setState('failed', lastError);
}

// ---------------------------------------------------------------------------
// Signalling over the WebSocket.

const wsUrl =
  `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws` +
  `?room=${encodeURIComponent(roomId)}&peer=${encodeURIComponent(peerName)}`;

let socket = null;
let nextRequestId = 1;
const pending = new Map(); // request id -> { callback, errback }

function openSocket() {
  return new Promise((resolve, reject) => {
    socket = new WebSocket(wsUrl);
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot connect to ${wsUrl}`)), {
      once: true,
    });
    socket.addEventListener('message', (event) => onFrame(event.data));
    socket.addEventListener('close', (event) => onSocketClose(event));
  });
}

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  else console.warn('[demo] socket not open, dropping frame', frame);
}

function onFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch (error) {
    console.error('[demo] bad frame from host', text);
    return;
  }
  if (frame.type === 'response') {
    const p = pending.get(frame.id);
    if (!p) return; // late answer to a request the client already gave up on
    pending.delete(frame.id);
    if (frame.ok) p.callback(frame.data);
    else p.errback(new Error(frame.error || 'request failed'));
  } else if (frame.type === 'notification') {
    if (room.closed) return;
    room.receiveNotification(frame.data).catch((error) =>
      console.error('[demo] notification rejected by mediasoup-client', frame.data, error)
    );
  } else {
    console.warn('[demo] unknown frame from host', frame);
  }
}

function onSocketClose(event) {
  const why = event.reason || `code ${event.code}`;
  for (const p of pending.values()) p.errback(new Error(`signalling connection closed (${why})`));
  pending.clear();
  if (state === 'left' || state === 'failed') return;
  // The host closes our peer when the socket goes: mirror that locally.
  if (!room.closed) room.remoteClose();
  setState('closed', `connection to the server closed (${why})`);
}

// ---------------------------------------------------------------------------
// The mediasoup-client Room.

const room = new Room({ requestTimeout: 15000 });
let sendTransport = null;
let recvTransport = null;
let localStream = null;
const producers = new Map(); // kind -> our Producer of that kind (camera, microphone)

room.on('request', (request, callback, errback) => {
  const id = nextRequestId++;
  pending.set(id, { callback, errback });
  send({ type: 'request', id, method: request.method, data: request });
});

room.on('notify', (notification) => {
  send({ type: 'notification', method: notification.method, data: notification });
});

room.on('newpeer', (peer) => handlePeer(peer));

room.on('close', (originator) => {
  for (const name of Array.from(tiles.keys())) removeTile(name);
  if (localStream) localStream.getTracks().forEach((t) => t.stop());
  if (originator === 'local') setState('left');
  else if (state !== 'failed') setState('closed', 'the server closed the room');
});

// ---------------------------------------------------------------------------
// Remote peers: one tile each, with a <video> and an <audio>.

const tiles = new Map(); // peer name -> { el, video, audio, consumers: Set }

function tileFor(name) {
  let tile = tiles.get(name);
  if (tile) return tile;
  const el = document.createElement('div');
  el.className = 'tile';
  el.dataset.peer = name;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // sound goes through the <audio> element
  const audio = document.createElement('audio');
  audio.autoplay = true;
  const label = document.createElement('div');
  label.className = 'name';
  label.textContent = name;
  const info = document.createElement('div');
  info.className = 'info';
  info.textContent = 'waiting for media…';
  el.append(video, audio, label, info);
  $('peers').append(el);
  tile = { el, video, audio, info, consumers: new Set() };
  tiles.set(name, tile);
  updateEmpty();
  return tile;
}

function removeTile(name) {
  const tile = tiles.get(name);
  if (!tile) return;
  tile.video.srcObject = null;
  tile.audio.srcObject = null;
  tile.el.remove();
  tiles.delete(name);
  updateEmpty();
}

function updateEmpty() {
  $('empty').hidden = tiles.size > 0;
}

function handlePeer(peer) {
  tileFor(peer.name);
  for (const consumer of peer.consumers) handleConsumer(consumer);
  peer.on('newconsumer', (consumer) => handleConsumer(consumer));
  peer.on('close', () => removeTile(peer.name));
}

function handleConsumer(consumer) {
  const name = consumer.peer.name;
  const tile = tileFor(name);
  tile.consumers.add(consumer);
  consumer.on('close', () => {
    tile.consumers.delete(consumer);
    const el = consumer.kind === 'video' ? tile.video : tile.audio;
    if (el.srcObject && el.srcObject.getTracks().some((t) => t === consumer.track))
      el.srcObject = null;
  });
  if (!consumer.supported) {
    console.warn(`[demo] cannot receive ${consumer.kind} of ${name}: unsupported codec`);
    return;
  }
  consumer
    .receive(recvTransport)
    .then((track) => {
      const el = consumer.kind === 'video' ? tile.video : tile.audio;
      el.srcObject = new MediaStream([track]);
      el.play().catch(() => {
        // Autoplay with sound needs a user gesture; the first click starts it.
        if (consumer.kind === 'audio') $('unmute').hidden = false;
      });
    })
    .catch((error) => console.error(`[demo] receiving ${consumer.kind} of ${name} failed`, error));
}

$('unmute').addEventListener('click', () => {
  for (const tile of tiles.values()) tile.audio.play().catch(() => {});
  $('unmute').hidden = true;
});

// ---------------------------------------------------------------------------
// Statistics from the receive RTCPeerConnection.

function recvPc() {
  return recvTransport && recvTransport.handler ? recvTransport.handler._pc : null;
}

// Per remote peer: totals over its live consumers, and `consumers`, one entry per live
// consumer with the figures of its own inbound-rtp stream (found by the consumer's SSRC,
// so a receiver whose transceiver was reused never mixes an earlier stream in).
async function stats() {
  const result = {};
  const pc = recvPc();
  for (const [name, tile] of tiles) {
    const s = {
      videoFramesDecoded: 0,
      videoBytesReceived: 0,
      audioBytesReceived: 0,
      audioPacketsReceived: 0,
      consumers: [],
    };
    result[name] = s;
    if (!pc || pc.signalingState === 'closed') continue;
    for (const consumer of tile.consumers) {
      const c = {
        id: consumer.id,
        kind: consumer.kind,
        paused: consumer.paused,
        ssrc: consumerSsrc(consumer),
        packetsReceived: 0,
        bytesReceived: 0,
        framesDecoded: 0,
      };
      s.consumers.push(c);
      if (!consumer.track) continue;
      const receiver = pc.getReceivers().find((r) => r.track === consumer.track);
      if (!receiver) continue;
      const report = await receiver.getStats();
      report.forEach((r) => {
        if (r.type !== 'inbound-rtp' || (c.ssrc !== null && r.ssrc !== c.ssrc)) return;
        c.packetsReceived += r.packetsReceived || 0;
        c.bytesReceived += r.bytesReceived || 0;
        c.framesDecoded += r.framesDecoded || 0;
        if (r.freezeCount !== undefined) c.freezeCount = (c.freezeCount || 0) + r.freezeCount;
        if (r.frameWidth) c.size = `${r.frameWidth}x${r.frameHeight}`;
      });
      if (consumer.kind === 'video') {
        s.videoFramesDecoded += c.framesDecoded;
        s.videoBytesReceived += c.bytesReceived;
        if (c.size) s.videoSize = c.size;
      } else {
        s.audioBytesReceived += c.bytesReceived;
        s.audioPacketsReceived += c.packetsReceived;
      }
    }
  }
  return result;
}

function consumerSsrc(consumer) {
  const encoding = consumer.rtpParameters && (consumer.rtpParameters.encodings || [])[0];
  return encoding && typeof encoding.ssrc === 'number' ? encoding.ssrc : null;
}

// Full getStats() dumps of both transports, for debugging a failure.
async function dump() {
  const out = {};
  for (const transport of room.transports) {
    const pc = transport.handler && transport.handler._pc;
    if (!pc) continue;
    const reports = [];
    (await pc.getStats()).forEach((r) => reports.push(r));
    out[transport.direction] = {
      iceConnectionState: pc.iceConnectionState,
      connectionState: pc.connectionState,
      localDescription: pc.localDescription && pc.localDescription.sdp,
      remoteDescription: pc.remoteDescription && pc.remoteDescription.sdp,
      stats: reports,
    };
  }
  return out;
}

setInterval(async () => {
  if (state !== 'joined') return;
  const all = await stats().catch(() => ({}));
  for (const [name, s] of Object.entries(all)) {
    const tile = tiles.get(name);
    if (!tile) continue;
    const kb = Math.round(s.audioBytesReceived / 1024);
    tile.info.textContent =
      `video ${s.videoSize || '–'} · ${s.videoFramesDecoded} frames · audio ${kb} kB`;
  }
}, 1000);

// ---------------------------------------------------------------------------
// Join, send camera and microphone, receive everybody.

async function start() {
  $('me').textContent = peerName;
  $('local-name').textContent = `${peerName} (you)`;
  $('room').textContent = roomId;
  setState('connecting');

  if (options.send === 'none') {
    $('local-info').textContent = 'receive-only (send=none)';
  } else {
    try {
      const video = options.camera
        ? { width: { ideal: options.camera.width }, height: { ideal: options.camera.height } }
        : true;
      localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
      if (options.contentHint) for (const t of localStream.getVideoTracks()) t.contentHint = options.contentHint;
      $('local').srcObject = localStream;
    } catch (error) {
      console.warn('[demo] no camera/microphone, joining receive-only:', error);
      $('local-info').textContent = `no camera/microphone (${error.name})`;
    }
  }

  try {
    await openSocket();
  } catch (error) {
    return fail('signalling', error);
  }

  setState('joining');
  let peers;
  try {
    peers = await room.join(peerName);
  } catch (error) {
    return fail('join', error);
  }
  if (room.closed) return;

  recvTransport = room.createTransport('recv');
  for (const peer of peers) handlePeer(peer);
  setState('joined');

  if (!localStream) return;
  sendTransport = room.createTransport('send');
  for (const track of localStream.getTracks()) {
    if (!room.canSend(track.kind)) {
      console.warn(`[demo] the room cannot receive ${track.kind} from this browser`);
      continue;
    }
    try {
      await produce(track);
    } catch (error) {
      return fail(`sending ${track.kind}`, error);
    }
  }
}

// Sends `track` in a new producer (video in simulcast with the simulcast option); `producers` lists
// it once the server accepted it.
async function produce(track) {
  const simulcast = track.kind === 'video' && options.simulcast ? SIMULCAST_BITRATES : undefined;
  const producer = room.createProducer(track, simulcast && { simulcast }, { source: track.kind });
  producer.on('close', () => {
    if (producers.get(track.kind) === producer) producers.delete(track.kind);
  });
  await producer.send(sendTransport);
  if (simulcast && options.simulcast === 'scaled' && !producer.closed) await scaleSimulcast(producer);
  if (!producer.closed) producers.set(track.kind, producer);
  return producer;
}

// Sets the sizes and bitrates of a simulcast producer's streams on its RTCRtpSender. Its
// encodings are in the order of the SIM group mediasoup-client wrote, which is also the
// order of the profiles it gave them (low, medium, high).
async function scaleSimulcast(producer) {
  const pc = sendTransport.handler._pc;
  const sender = pc.getSenders().find((s) => s.track === producer.track);
  if (!sender) throw new Error('no RTCRtpSender for the simulcast producer');
  const parameters = sender.getParameters();
  const layers = [
    { scaleResolutionDownBy: 4, maxBitrate: SIMULCAST_BITRATES.low },
    { scaleResolutionDownBy: 2, maxBitrate: SIMULCAST_BITRATES.medium },
    { scaleResolutionDownBy: 1, maxBitrate: SIMULCAST_BITRATES.high },
  ];
  if (parameters.encodings.length !== layers.length)
    throw new Error(`${parameters.encodings.length} simulcast encodings, expected ${layers.length}`);
  parameters.encodings.forEach((e, i) => Object.assign(e, layers[i]));
  await sender.setParameters(parameters);
}

// ---------------------------------------------------------------------------
// Test hooks (used by tests/e2e, harmless in the demo): re-create a producer, pause and
// resume the consumer of a remote peer's track, pause and resume our own producer.

// Closes our producer of `kind` and sends the same local track again in a new producer
// (mediasoup-client reuses the inactive transceiver). Resolves to the new producer's id.
async function restartProducer(kind) {
  const track = localStream && localStream.getTracks().find((t) => t.kind === kind);
  if (!track || !sendTransport) throw new Error(`no local ${kind} track to send`);
  const old = producers.get(kind);
  if (old && !old.closed) old.close();
  const producer = await produce(track);
  return producer.id;
}

function remoteConsumer(peer, kind) {
  const tile = tiles.get(peer);
  const consumer = tile && Array.from(tile.consumers).find((c) => c.kind === kind && !c.closed);
  if (!consumer) throw new Error(`no ${kind} consumer of ${peer}`);
  return consumer;
}

// Pauses (`pause` true) or resumes our consumer of `peer`'s `kind`; mediasoup-client
// tells the server (pauseConsumer / resumeConsumer). Returns the consumer's id.
function pauseConsumer(peer, kind, pause) {
  const consumer = remoteConsumer(peer, kind);
  if (pause) consumer.pause();
  else consumer.resume();
  return consumer.id;
}

// Pauses (`pause` true) or resumes our producer of `kind` (a mute button would do this);
// mediasoup-client tells the server (pauseProducer / resumeProducer). Returns its id.
function pauseProducer(kind, pause) {
  const producer = producers.get(kind);
  if (!producer || producer.closed) throw new Error(`no ${kind} producer`);
  if (pause) producer.pause();
  else producer.resume();
  return producer.id;
}

function leave() {
  if (room.closed) return;
  setState('left');
  room.leave();
  if (socket) socket.close(1000, 'left');
}

$('leave').addEventListener('click', leave);

window.demo = {
  room,
  peerName,
  roomId,
  options,
  get state() {
    return state;
  },
  get error() {
    return lastError;
  },
  remotePeers() {
    return room.peers.filter((p) => !p.closed).map((p) => p.name);
  },
  stats,
  dump,
  leave,
  // test hooks
  producerIds() {
    return Object.fromEntries(Array.from(producers, ([kind, p]) => [kind, p.id]));
  },
  restartProducer,
  pauseConsumer,
  pauseProducer,
  // The camera track's settings (its real width, height, frame rate), or null.
  cameraSettings() {
    const track = localStream && localStream.getVideoTracks()[0];
    return track ? track.getSettings() : null;
  },
  // The encodings of our video RTCRtpSender (simulcast: one per stream), or null.
  videoSenderEncodings() {
    const producer = producers.get('video');
    const pc = sendTransport && sendTransport.handler && sendTransport.handler._pc;
    const sender = producer && pc && pc.getSenders().find((s) => s.track === producer.track);
    return sender ? sender.getParameters().encodings : null;
  },
};

// Invite link: same room, a new random peer name.
const link = $('other');
link.href = `${location.origin}${location.pathname}?room=${encodeURIComponent(roomId)}`;
link.textContent = link.href;

start();
