'use strict';
// Helpers for the Node tests (kept outside test/: `node --test test/` runs every .js
// file under test/). Every wait is bounded.
const path = require('path');
const { spawn } = require('child_process');

const BINDING = path.resolve(__dirname, '..');
const CONFIG = { numWorkers: 1, rtcIPv4: '127.0.0.1', logLevel: 'none' };

/** Resolve with the args of the first `event` on `emitter` that passes `filter`. */
function waitEvent(emitter, event, filter = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    function on(...args) {
      if (!filter(...args)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(args);
    }
    emitter.on(event, on);
  });
}

/** Wait for a notification `method` to `peer` on `room`. Resolves with the message. */
async function waitNotification(room, peer, method, ms = 5000) {
  const [, msg] = await waitEvent(room, 'notification', (p, m) => p === peer && m && m.method === method, ms);
  return msg;
}

/** Reject if `promise` does not settle within `ms`. */
function within(promise, ms, what = 'operation') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** What mediasoup-client computes from the room caps (crates/sfu-testkit/src/builders.rs client_caps). */
function clientCaps(room) {
  const codecs = room.codecs.map((c) => {
    const o = {
      name: c.name, mimeType: c.mimeType, kind: c.kind, clockRate: c.clockRate,
      preferredPayloadType: c.preferredPayloadType, parameters: c.parameters,
    };
    if (c.name !== 'rtx') o.rtcpFeedback = c.rtcpFeedback;
    if (c.channels != null) o.channels = c.channels;
    return o;
  });
  const headerExtensions = room.headerExtensions.map((e) => ({ kind: e.kind, uri: e.uri, preferredId: e.preferredId }));
  return { codecs, headerExtensions, fecMechanisms: [] };
}

/** queryRoom + join like a client does. Resolves with the join response data. */
async function join(room, peer) {
  const q = await room.request(peer, { method: 'queryRoom', target: 'room' });
  return room.request(peer, {
    method: 'join', target: 'room', peerName: peer, rtpCapabilities: clientCaps(q.rtpCapabilities),
    spy: false, appData: { n: peer },
  });
}

/**
 * Run `code` in a child node process (cwd: the binding). Resolves with
 * { code, signal, stdout, stderr, timedOut, ms }; after `timeoutMs` the child is
 * killed (SIGKILL) and timedOut is true.
 */
function runChild(code, { args = [], timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [...args, '-e', code], { cwd: BINDING, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - t0 });
    });
  });
}

module.exports = { BINDING, CONFIG, waitEvent, waitNotification, within, clientCaps, join, runChild };
