#!/usr/bin/env node
// Demo host for the sfu library: serves the browser demo (examples/web/dist) and
// carries mediasoup v2 signalling between each browser and the library over one
// WebSocket per browser peer at /ws?room=ROOM&peer=NAME.
//
//   node examples/node/server.js [--host 127.0.0.1] [--port 8080]
//                                [--rtc-ip IPv4] [--announced-ip IPv4]
//                                [--record DIR] [--audio-levels [THRESHOLD_DBOV]]
//
// --record DIR: record every producer with ffmpeg into DIR (record.js: WebM for video,
// Ogg for audio, through createRtpStreamer). --audio-levels: every room reports its
// audio levels (each second) and its active speaker as host events, logged here as
// `[host] ROOM/- host event {...}` lines (above THRESHOLD_DBOV, default the library's -80).
//
// Frames (JSON text):
//   browser -> host  {type:'request', id, method, data}  -> room.request(peer, data)
//                    {type:'notification', method, data} -> room.notify(peer, data)
//   host -> browser  {type:'response', id, ok:true, data} | {type:'response', id, ok:false, error}
//                    {type:'notification', method, data}  (from room.on('notification'))
//
// The peer's name is the one in the WebSocket URL: the host decides who is who, and the
// library ignores `join.peerName`. SFU_DEBUG=1 logs every frame and runs the library at
// logLevel "debug" (else "warn"); the library's records are printed as `[host] sfu ...`.
// GET /metrics serves the library's metrics (Prometheus text exposition format).
//
// SFU_HOST_HOOKS=<module> (tests only, unset in the demo) loads a module that may rewrite
// the library's answers before they go to the browser and watch its notifications; the
// end-to-end tests use tests/e2e/lib/host-hooks.js.
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const { WebSocketServer } = require('ws');
const { Server } = require('../../bindings/node');

// ---------------------------------------------------------------------------
// Arguments.

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8080, rtcIp: null, announcedIp: null, record: null, audioLevels: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--host') opts.host = value();
    else if (arg === '--port') opts.port = Number(value());
    else if (arg === '--rtc-ip') opts.rtcIp = value();
    else if (arg === '--announced-ip') opts.announcedIp = value();
    else if (arg === '--record') opts.record = value();
    else if (arg === '--audio-levels') {
      // An optional threshold follows (a number, e.g. -70).
      opts.audioLevels = i + 1 < argv.length && /^-?\d+(\.\d+)?$/.test(argv[i + 1]) ? Number(argv[++i]) : true;
    }
    else if (arg === '-h' || arg === '--help') usage();
    else usage(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('bad --port');
  return opts;
}

function usage(error) {
  const text =
    'usage: node examples/node/server.js [--host 127.0.0.1] [--port 8080] ' +
    '[--rtc-ip IPv4] [--announced-ip IPv4] [--record DIR] [--audio-levels [THRESHOLD_DBOV]]';
  if (error) {
    console.error(`${error}\n${text}`);
    process.exit(2);
  }
  console.log(text);
  process.exit(0);
}

const opts = parseArgs(process.argv.slice(2));
const debug = process.env.SFU_DEBUG === '1';
const log = (...args) => console.log('[host]', ...args);

// ---------------------------------------------------------------------------
// The SFU.

const config = {};
if (opts.rtcIp) config.rtcIPv4 = opts.rtcIp;
if (opts.announcedIp) config.rtcAnnouncedIPv4 = opts.announcedIp;
config.logLevel = debug ? 'debug' : 'warn';
const server = new Server(config);
server.on('log', (level, target, message) => log(`sfu ${level} ${target}: ${message}`));

// --record: one ffmpeg per producer (examples/node/record.js).
const recorder = opts.record ? new (require('./record').Recorder)({ dir: opts.record, log: (l) => log(`record: ${l}`) }) : null;
if (recorder) log(`recording every producer into ${recorder.dir}`);
const hooks = process.env.SFU_HOST_HOOKS
  ? require(path.resolve(process.env.SFU_HOST_HOOKS))({ server, room: (id) => rooms.get(id)?.room, log })
  : null;

// room id -> { room, sockets: Map<peer name, WebSocket> }
const rooms = new Map();

function getRoom(roomId) {
  let entry = rooms.get(roomId);
  if (entry) return entry;
  const room = server.createRoom(roomId); // default codecs
  entry = { room, sockets: new Map() };
  rooms.set(roomId, entry);
  room.on('notification', (peerName, message) => {
    const ws = entry.sockets.get(peerName);
    if (debug) log(`${roomId}/${peerName} <= notification ${JSON.stringify(message)}`);
    if (hooks) hooks.notification(roomId, peerName, message);
    if (ws && ws.readyState === ws.OPEN) {
      ws.send(JSON.stringify({ type: 'notification', method: message.method, data: message }));
    }
  });
  // Events for the host, not for clients (notificationError, transportClosed with a
  // reason, roomClosed after an internal error): log them.
  room.on('hostEvent', (peerName, event) => {
    log(`${roomId}/${peerName || '-'} host event ${JSON.stringify(event)}`);
    if (recorder) recorder.onHostEvent(roomId, event);
    if (event && event.event === 'roomClosed' && rooms.get(roomId) === entry) {
      // The library closed the room itself; its peers got `closed`. Start afresh.
      rooms.delete(roomId);
      for (const ws of entry.sockets.values()) ws.close(1011, 'room closed by the server');
      entry.sockets.clear();
    }
  });
  log(`room "${roomId}" created`);
  if (opts.audioLevels !== null) enableAudioLevels(room, opts.audioLevels);
  return entry;
}

// --audio-levels: host requests about the room; the events arrive as 'hostEvent'.
// `threshold`: true for the library's default (-80 dBov), or a level in dBov.
function enableAudioLevels(room, threshold) {
  const t = threshold === true ? {} : { thresholdDbov: threshold };
  const requests = [
    { method: 'enableAudioLevels', intervalMs: 1000, ...t },
    { method: 'enableActiveSpeaker', intervalMs: 300, ...t },
  ];
  for (const r of requests) {
    room.hostRequest(r).catch((error) => log(`${room.id}: ${r.method} failed: ${error.message}`));
  }
}

// A request a page sent was answered: a new producer is recorded (--record).
function onAnswered(entry, peerName, request, data) {
  if (!recorder || !request || request.method !== 'createProducer') return;
  recorder
    .addProducer(entry.room, peerName, request.id, request.kind)
    .catch((error) => log(`record: ${entry.room.id}/${peerName} producer ${request.id}: ${error.message}`));
}

function dropPeer(roomId, peerName, ws) {
  const entry = rooms.get(roomId);
  if (!entry || entry.sockets.get(peerName) !== ws) return;
  entry.sockets.delete(peerName);
  try {
    entry.room.closePeer(peerName);
  } catch (error) {
    // The peer never joined, or already left: nothing to close.
  }
  log(`${roomId}/${peerName} disconnected`);
  if (entry.sockets.size === 0) {
    rooms.delete(roomId);
    try {
      entry.room.close();
    } catch (error) {
      log(`closing room "${roomId}": ${error.message}`);
    }
    if (recorder) recorder.roomClosed(roomId);
    log(`room "${roomId}" closed (empty)`);
  }
}

// ---------------------------------------------------------------------------
// One WebSocket per browser peer.

function onConnection(ws, roomId, peerName) {
  const entry = getRoom(roomId);
  if (entry.sockets.has(peerName)) {
    log(`${roomId}/${peerName} refused: name already connected`);
    ws.close(4409, 'peer name already in use in this room');
    return;
  }
  entry.sockets.set(peerName, ws);
  log(`${roomId}/${peerName} connected`);

  const reply = (frame) => {
    if (debug) log(`${roomId}/${peerName} <= ${JSON.stringify(frame)}`);
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
  };

  ws.on('message', (raw) => {
    let frame;
    try {
      frame = JSON.parse(raw.toString());
    } catch (error) {
      log(`${roomId}/${peerName}: bad JSON frame dropped`);
      return;
    }
    if (debug) log(`${roomId}/${peerName} => ${JSON.stringify(frame)}`);
    if (frame.type === 'request') {
      entry.room
        .request(peerName, frame.data)
        .then((data) => (hooks ? hooks.response(roomId, peerName, frame.data, data) : data))
        .then(
          (data) => {
            reply({ type: 'response', id: frame.id, ok: true, data });
            onAnswered(entry, peerName, frame.data, data);
          },
          (error) => reply({ type: 'response', id: frame.id, ok: false, error: error.message })
        );
    } else if (frame.type === 'notification') {
      try {
        entry.room.notify(peerName, frame.data);
      } catch (error) {
        log(`${roomId}/${peerName} notification ${frame.method} failed: ${error.message}`);
      }
    } else {
      log(`${roomId}/${peerName}: unknown frame type ${frame.type}`);
    }
  });
  ws.on('close', () => dropPeer(roomId, peerName, ws));
  ws.on('error', (error) => log(`${roomId}/${peerName} socket error: ${error.message}`));
}

const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });

// ---------------------------------------------------------------------------
// Static files from examples/web/dist.

const distDir = path.resolve(__dirname, '..', 'web', 'dist');
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

function serveStatic(req, res) {
  const url = new URL(req.url, 'http://localhost');
  let rel;
  try {
    rel = decodeURIComponent(url.pathname);
  } catch (error) {
    rel = '/';
  }
  if (rel.endsWith('/')) rel += 'index.html';
  const file = path.join(distDir, path.normalize(rel));
  if (!file.startsWith(distDir + path.sep) || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404).end('not found');
    return;
  }
  fs.readFile(file, (error, body) => {
    if (error) {
      const hint =
        error.code === 'ENOENT' && rel === '/index.html'
          ? 'demo not built: run bash examples/web/setup.sh'
          : 'not found';
      res.writeHead(404, { 'content-type': 'text/plain' }).end(hint);
      return;
    }
    res.writeHead(200, {
      'content-type': types[path.extname(file)] || 'application/octet-stream',
      'cache-control': 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
}

// Prometheus scrapes this (sfu_server_metrics: rooms, peers, transports, traffic, drops,
// worker busy time and latency; the names are in the README, "Metrics").
function serveMetrics(req, res) {
  let body;
  try {
    body = server.metrics();
  } catch (error) {
    res.writeHead(503, { 'content-type': 'text/plain' }).end(`${error.message}\n`);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-cache' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const httpServer = http.createServer((req, res) => {
  if (new URL(req.url, 'http://localhost').pathname === '/metrics') serveMetrics(req, res);
  else serveStatic(req, res);
});

httpServer.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost');
  const roomId = url.searchParams.get('room') || '';
  const peerName = url.searchParams.get('peer') || '';
  if (url.pathname !== '/ws' || !roomId || !peerName) {
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, roomId, peerName));
});

httpServer.listen(opts.port, opts.host, () => {
  const { port } = httpServer.address();
  const base = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  console.log(`sfu demo listening on ${base}`);
  console.log(`Open ${base}/?room=demo&peer=alice and ${base}/?room=demo&peer=bob`);
});

// ---------------------------------------------------------------------------
// Shutdown.

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping`);
  for (const ws of wss.clients) ws.terminate();
  // Recordings first: their streamers say BYE and ffmpeg finishes each file.
  if (recorder) await recorder.stop().catch((error) => log(`record: ${error.message}`));
  for (const entry of rooms.values()) {
    try {
      entry.room.close();
    } catch (error) {}
  }
  rooms.clear();
  try {
    server.close();
  } catch (error) {}
  httpServer.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
