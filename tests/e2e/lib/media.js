// Reading a demo page (examples/web) from a test: its state, what it receives from each
// remote peer, the selected ICE candidate pair of each transport and the RTP figures of a
// video stream, all from getStats. Every wait is bounded.
'use strict';

const { sleep } = require('./host');

const POLL_MS = 250;

async function demoState(peer) {
  return peer.evaluate(() =>
    window.demo
      ? { state: window.demo.state, error: window.demo.error, producers: window.demo.producerIds() }
      : { state: 'loading', error: null, producers: {} }
  );
}

// Polls `probe()` (returning { done, detail }) until done, for at most `timeoutMs`; fails
// at once if a page leaves the "joined" state.
async function waitUntil(what, timeoutMs, peers, probe) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  for (;;) {
    last = await probe();
    if (last.done) return last.detail;
    for (const peer of peers) {
      const { state, error } = await demoState(peer);
      if (state !== 'joined') throw new Error(`${what}: ${peer.name} page state "${state}" (${error})`);
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms; last seen ${JSON.stringify(last.detail)}`);
    await sleep(POLL_MS);
  }
}

// Joined, and both producers (audio, video) accepted by the server.
function waitSending(peer, timeoutMs) {
  return waitUntil(`${peer.name} joins and sends`, timeoutMs, [], async () => {
    const s = await demoState(peer);
    if (s.state === 'failed' || s.state === 'closed')
      throw new Error(`${peer.name} (${peer.engine}): page state "${s.state}" (${s.error})`);
    return { done: s.state === 'joined' && Boolean(s.producers.audio && s.producers.video), detail: s };
  });
}

// What `peer` receives from `from`: its live consumer of each kind with that consumer's
// own inbound-rtp figures (window.demo.stats() in examples/web/src/app.js).
async function receiving(peer, from) {
  const all = await peer.evaluate(() => window.demo.stats());
  const s = all[from] || { consumers: [] };
  const pick = (kind) => s.consumers.find((c) => c.kind === kind) || null;
  return { video: pick('video'), audio: pick('audio') };
}

// Waits until `peer` decodes more than `frames` frames of `from`'s video and received
// audio packets.
function waitMedia(peers, peer, from, { frames = 30, timeoutMs }) {
  return waitUntil(`${peer.name} receives ${from}`, timeoutMs, peers, async () => {
    const r = await receiving(peer, from);
    const done = Boolean(r.video && r.video.framesDecoded > frames && r.audio && r.audio.packetsReceived > 0);
    return { done, detail: { receiver: peer.name, from, ...r } };
  });
}

// Per transport of the page ("send", "recv"): ICE state, and the selected candidate pair
// (the transport's selectedCandidatePairId, else a candidate-pair that is selected or
// nominated and succeeded) with its local and remote candidates; `pairs` lists every
// pair that succeeded.
function selectedPairs(peer) {
  return peer.evaluate(async () => {
    const cand = (r) =>
      r && {
        protocol: r.protocol,
        address: r.address || r.ip,
        port: r.port,
        candidateType: r.candidateType,
        tcpType: r.tcpType,
      };
    const out = {};
    for (const t of window.demo.room.transports) {
      const pc = t.handler && t.handler._pc;
      if (!pc || t.closed) continue;
      const byId = new Map();
      (await pc.getStats()).forEach((r) => byId.set(r.id, r));
      const all = [...byId.values()];
      const viaTransport = all.find((r) => r.type === 'transport' && r.selectedCandidatePairId);
      let pair = viaTransport ? byId.get(viaTransport.selectedCandidatePairId) : null;
      if (!pair)
        pair = all.find((r) => r.type === 'candidate-pair' && (r.selected || r.nominated) && r.state === 'succeeded');
      const describe = (p) =>
        p && {
          id: p.id,
          state: p.state,
          nominated: p.nominated,
          selected: p.selected,
          bytesSent: p.bytesSent,
          bytesReceived: p.bytesReceived,
          local: cand(byId.get(p.localCandidateId)),
          remote: cand(byId.get(p.remoteCandidateId)),
        };
      out[t.direction] = {
        iceConnectionState: pc.iceConnectionState,
        selectedBy: viaTransport ? 'transport.selectedCandidatePairId' : pair ? 'candidate-pair' : null,
        selected: describe(pair),
        pairs: all.filter((r) => r.type === 'candidate-pair' && r.state === 'succeeded').map(describe),
      };
    }
    return out;
  });
}

const INBOUND_FIELDS = [
  'ssrc', 'packetsReceived', 'packetsLost', 'bytesReceived', 'framesReceived', 'framesDecoded',
  'framesDropped', 'keyFramesDecoded', 'freezeCount', 'totalFreezesDuration', 'pauseCount',
  'totalPausesDuration', 'nackCount', 'pliCount', 'firCount', 'retransmittedPacketsReceived',
  'retransmittedBytesReceived', 'jitter', 'jitterBufferDelay', 'jitterBufferEmittedCount',
  'frameWidth', 'frameHeight', 'framesPerSecond', 'totalProcessingDelay',
];
const OUTBOUND_FIELDS = [
  'ssrc', 'packetsSent', 'bytesSent', 'retransmittedPacketsSent', 'retransmittedBytesSent',
  'nackCount', 'pliCount', 'firCount', 'framesEncoded', 'framesSent', 'keyFramesEncoded',
  'frameWidth', 'frameHeight', 'framesPerSecond', 'targetBitrate', 'qualityLimitationReason',
];

// The inbound-rtp figures of `peer`'s consumer of `from`'s video (by the consumer's SSRC),
// and its consumer id.
function videoInbound(peer, from) {
  return peer.evaluate(
    async ({ from, fields }) => {
      const remote = window.demo.room.peers.find((p) => p.name === from && !p.closed);
      const consumer = remote && remote.consumers.find((c) => c.kind === 'video' && !c.closed);
      if (!consumer || !consumer.track) return null;
      const t = window.demo.room.transports.find((x) => x.direction === 'recv' && !x.closed);
      const pc = t && t.handler && t.handler._pc;
      const receiver = pc && pc.getReceivers().find((r) => r.track === consumer.track);
      if (!receiver) return null;
      const enc = (consumer.rtpParameters.encodings || [])[0] || {};
      let found = null;
      (await receiver.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && (enc.ssrc === undefined || r.ssrc === enc.ssrc)) found = r;
      });
      if (!found) return null;
      const o = { consumerId: consumer.id, at: performance.now() };
      for (const f of fields) if (found[f] !== undefined) o[f] = found[f];
      return o;
    },
    { from, fields: INBOUND_FIELDS }
  );
}

// The outbound-rtp figures of `peer`'s video producer (summed over its video streams: one
// without simulcast), and the producer's id.
function videoOutbound(peer) {
  return peer.evaluate(
    async ({ fields }) => {
      const producer = window.demo.room.producers.find((p) => p.kind === 'video' && !p.closed);
      const t = window.demo.room.transports.find((x) => x.direction === 'send' && !x.closed);
      const pc = t && t.handler && t.handler._pc;
      if (!producer || !pc) return null;
      const o = { producerId: producer.id, at: performance.now() };
      (await pc.getStats()).forEach((r) => {
        if (r.type !== 'outbound-rtp' || r.kind !== 'video') return;
        for (const f of fields) {
          if (typeof r[f] === 'number' && f !== 'ssrc') o[f] = (o[f] || 0) + r[f];
          else if (r[f] !== undefined) o[f] = r[f];
        }
      });
      return o;
    },
    { fields: OUTBOUND_FIELDS }
  );
}

// Everything `peer` receives from `from`, in one getStats round: the live video consumer's
// inbound-rtp figures (INBOUND_FIELDS, by the consumer's SSRC) with the consumer's id and
// its effective simulcast profile as mediasoup-client knows it (consumerEffectiveProfileChanged
// updates it), and the audio consumer's packets and bytes. `ts` is the stats' timestamp (ms,
// the page's clock): rates are computed between two samples of the same page.
function inboundFrom(peer, from) {
  return peer.evaluate(
    async ({ from, fields }) => {
      const out = { video: null, audio: null };
      const remote = window.demo.room.peers.find((p) => p.name === from && !p.closed);
      const t = window.demo.room.transports.find((x) => x.direction === 'recv' && !x.closed);
      const pc = t && t.handler && t.handler._pc;
      if (!remote || !pc) return out;
      for (const consumer of remote.consumers) {
        if (consumer.closed || !consumer.track || out[consumer.kind]) continue;
        const receiver = pc.getReceivers().find((r) => r.track === consumer.track);
        if (!receiver) continue;
        const enc = (consumer.rtpParameters.encodings || [])[0] || {};
        let found = null;
        (await receiver.getStats()).forEach((r) => {
          if (r.type === 'inbound-rtp' && (enc.ssrc === undefined || r.ssrc === enc.ssrc)) found = r;
        });
        if (!found) continue;
        const o = {
          consumerId: consumer.id,
          paused: consumer.paused,
          effectiveProfile: consumer.effectiveProfile,
          preferredProfile: consumer.preferredProfile,
          ts: found.timestamp,
        };
        for (const f of consumer.kind === 'video' ? fields : ['ssrc', 'packetsReceived', 'bytesReceived', 'packetsLost'])
          if (found[f] !== undefined) o[f] = found[f];
        out[consumer.kind] = o;
      }
      return out;
    },
    { from, fields: INBOUND_FIELDS }
  );
}

// `peer`'s video producer, stream by stream (a simulcast producer has one outbound-rtp per
// SSRC): { producerId, encodings: [{ ssrc, profile }] as sent to the server, streams:
// [{ ssrc, ts, ...OUTBOUND_FIELDS }], availableOutgoingBitrate: the send transport's
// estimate (bit/s) or null }, or null without a video producer.
function outboundStreams(peer) {
  return peer.evaluate(
    async ({ fields }) => {
      const producer = window.demo.room.producers.find((p) => p.kind === 'video' && !p.closed);
      const t = window.demo.room.transports.find((x) => x.direction === 'send' && !x.closed);
      const pc = t && t.handler && t.handler._pc;
      if (!producer || !pc) return null;
      const encodings = ((producer.rtpParameters && producer.rtpParameters.encodings) || []).map((e) => ({
        ssrc: e.ssrc,
        profile: e.profile || null,
      }));
      const streams = [];
      const report = await pc.getStats();
      // The send transport's bandwidth estimate (it follows REMB / transport-cc feedback).
      let availableOutgoingBitrate = null;
      report.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) {
          const pair = report.get(r.selectedCandidatePairId);
          if (pair && typeof pair.availableOutgoingBitrate === 'number') availableOutgoingBitrate = pair.availableOutgoingBitrate;
        }
      });
      report.forEach((r) => {
        if (r.type !== 'outbound-rtp' || r.kind !== 'video') return;
        const o = { ts: r.timestamp };
        for (const f of [...fields, 'rid', 'active', 'encoderImplementation', 'scalabilityMode'])
          if (r[f] !== undefined) o[f] = r[f];
        streams.push(o);
      });
      return { producerId: producer.id, encodings, streams, availableOutgoingBitrate };
    },
    { fields: OUTBOUND_FIELDS }
  );
}

// Diagnostics for a failure: each page's state, what it receives, its transports' pairs,
// its console; the host's output (last lines).
async function diagnostics(peers, h) {
  const parts = [];
  for (const peer of peers) {
    let dump;
    try {
      dump = await Promise.race([
        (async () => ({
          state: await demoState(peer),
          receiving: await peer.evaluate(() => window.demo.stats()),
          transports: await selectedPairs(peer),
        }))(),
        sleep(5000).then(() => 'evaluate timed out'),
      ]);
    } catch (error) {
      dump = `evaluate failed: ${error.message}`;
    }
    parts.push(`----- ${peer.name} (${peer.engine}): page state and getStats -----`);
    parts.push(JSON.stringify(dump, null, 1));
    parts.push(`----- ${peer.name} (${peer.engine}): console -----`);
    parts.push(peer.logs.slice(-100).join('\n') || '(empty)');
  }
  if (h) {
    const lines = h.output.join('').split('\n');
    parts.push(`----- host output (last ${Math.min(lines.length, 300)} of ${lines.length} lines) -----`);
    parts.push(lines.slice(-300).join('\n') || '(empty)');
    if (h.control && h.control.transportErrors.length)
      parts.push(`----- test hook errors -----\n${h.control.transportErrors.join('\n')}`);
  }
  return parts.join('\n');
}

module.exports = {
  demoState,
  waitUntil,
  waitSending,
  receiving,
  waitMedia,
  selectedPairs,
  videoInbound,
  videoOutbound,
  inboundFrom,
  outboundStreams,
  diagnostics,
};
