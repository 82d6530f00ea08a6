// Cross-engine end-to-end test: the browser demo (examples/web, the real mediasoup-client
// 2.4.12) in headless Chromium and headless Firefox ESR, two peers in one room of the
// Node host (examples/node/server.js, bindings/node), each consuming the other.
//
// Pairings (first joiner, second joiner): chromium + firefox, firefox + chromium,
// firefox + firefox; each repeated (3 times by default) because the failure this guards
// against was a race: a Firefox producer that starts sending while the other peer's
// consumer of it is being enabled (Firefox probes with RTX padding on an RTX SSRC it never
// signals).
//
// One run: alice joins and produces audio + video; then bob joins, consumes alice and
// produces. Then, each measured with getStats on the receiving side:
//   1. each decodes > 30 frames of the other's video and receives its audio;
//   2. bob, then alice, closes the camera producer and sends the same track in a new one
//      (mediasoup-client reuses the inactive transceiver): the other decodes > 30 frames
//      of the new consumer;
//   3. each pauses its consumer of the other's video: decoding stops; then resumes it:
//      > 30 more frames;
//   4. the audio kept flowing throughout (its packetsReceived grew).
// A failure prints the getStats figures of both sides, their consoles and the host's log.
//
// Env: SFU_E2E_PAIRINGS=chromium-firefox,firefox-firefox (a subset; default all three),
//      SFU_E2E_REPEAT=N (runs per pairing, default 3), SFU_DEBUG=1 (host logs every frame
//      and runs the library with logLevel "debug"; page consoles are echoed).
'use strict';

const { test, before, after } = require('node:test');
const fs = require('node:fs');
const path = require('node:path');
const { repo, debug, sleep, hosts, startHost, stopHost } = require('./lib/host');
const { launch } = require('./lib/browsers');

const ALL_PAIRINGS = ['chromium-firefox', 'firefox-chromium', 'firefox-firefox'];
const PAIRINGS = (process.env.SFU_E2E_PAIRINGS || ALL_PAIRINGS.join(','))
  .split(',')
  .map((p) => p.trim())
  .filter(Boolean);
const REPEAT = Number(process.env.SFU_E2E_REPEAT || 3);

const JOIN_TIMEOUT_MS = 20_000;
const MEDIA_TIMEOUT_MS = 20_000; // first media (ICE, DTLS, first keyframe)
const PHASE_TIMEOUT_MS = 15_000; // each later step
const FRAMES = 30; // "decodes more than 30 frames"
const PAUSED_SETTLE_MS = 1000; // frames in flight when the pause lands
const PAUSED_WINDOW_MS = 2000; // then decoding must (nearly) stop for this long
const PAUSED_MAX_FRAMES = 5; // at ~30 fps a live stream decodes ~60 frames in the window
const POLL_MS = 250;

for (const p of PAIRINGS) {
  if (!ALL_PAIRINGS.includes(p)) throw new Error(`SFU_E2E_PAIRINGS: unknown pairing ${p}`);
}
if (!Number.isInteger(REPEAT) || REPEAT < 1) throw new Error('SFU_E2E_REPEAT must be >= 1');

// ---------------------------------------------------------------------------
// Browsers: one of each engine needed, launched once; every peer gets its own context.

const browsers = {};

before(async () => {
  if (hosts.node.skip()) return;
  if (!fs.existsSync(path.join(repo, 'examples', 'web', 'dist', 'app.js')))
    throw new Error('examples/web/dist/app.js missing: run bash examples/web/setup.sh');
  const engines = new Set(PAIRINGS.flatMap((p) => p.split('-')));
  for (const engine of engines) {
    browsers[engine] = await launch(engine);
    console.log(`${engine}: ${browsers[engine].version}`);
  }
});

after(async () => {
  for (const b of Object.values(browsers)) await Promise.race([b.close().catch(() => {}), sleep(10_000)]);
});

// ---------------------------------------------------------------------------
// Reading the pages.

async function demoState(peer) {
  return peer.evaluate(() =>
    window.demo
      ? { state: window.demo.state, error: window.demo.error, producers: window.demo.producerIds() }
      : { state: 'loading', error: null, producers: {} }
  );
}

// Joined, and both producers accepted by the server.
async function waitSending(peer) {
  const deadline = Date.now() + JOIN_TIMEOUT_MS;
  for (;;) {
    const { state, error, producers } = await demoState(peer);
    if (state === 'joined' && producers.audio && producers.video) return producers;
    if (state === 'failed' || state === 'closed')
      throw new Error(`${peer.name} (${peer.engine}): page state "${state}" (${error})`);
    if (Date.now() > deadline)
      throw new Error(
        `${peer.name} (${peer.engine}): not joined and sending after ${JOIN_TIMEOUT_MS} ms ` +
          `(state "${state}", producers ${JSON.stringify(producers)})`
      );
    await sleep(POLL_MS);
  }
}

// What `peer` receives from `from`: its live consumer of each kind (see stats() in
// examples/web/src/app.js) with that consumer's own inbound-rtp figures.
async function receiving(peer, from) {
  const all = await peer.evaluate(() => window.demo.stats());
  const s = all[from] || { consumers: [] };
  const pick = (kind) => s.consumers.find((c) => c.kind === kind) || null;
  return { video: pick('video'), audio: pick('audio') };
}

// The transceivers of the page's send RTCPeerConnection, as "mid:direction".
function sendTransceivers(peer) {
  return peer.evaluate(() => {
    const t = window.demo.room.transports.find((x) => x.direction === 'send' && !x.closed);
    const pc = t && t.handler && t.handler._pc;
    return pc ? pc.getTransceivers().map((x) => `${x.mid}:${x.direction}`) : [];
  });
}

// Polls `probe()` (which returns { done, detail }) until done, for at most `timeoutMs`;
// fails at once if a page leaves the "joined" state.
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

// Waits until `peer` decodes > FRAMES frames of `from`'s video beyond `sinceFrames` in a
// consumer other than `notConsumer`, and receives audio packets beyond `sinceAudio`.
function waitVideo(what, peers, peer, from, { notConsumer = null, sinceFrames = 0, sinceAudio = 0 } = {}) {
  return waitUntil(what, notConsumer || sinceFrames ? PHASE_TIMEOUT_MS : MEDIA_TIMEOUT_MS, peers, async () => {
    const r = await receiving(peer, from);
    const videoOk =
      r.video && r.video.id !== notConsumer && r.video.framesDecoded > sinceFrames + FRAMES;
    const audioOk = r.audio && r.audio.packetsReceived > sinceAudio;
    return { done: Boolean(videoOk && audioOk), detail: { receiver: peer.name, from, ...r } };
  });
}

// ---------------------------------------------------------------------------
// Diagnostics: what each page receives and sends, from getStats.

const RTP_FIELDS = [
  'kind', 'ssrc', 'mid', 'packetsReceived', 'packetsLost', 'bytesReceived', 'framesDecoded',
  'framesReceived', 'framesDropped', 'keyFramesDecoded', 'freezeCount', 'nackCount', 'pliCount',
  'firCount', 'packetsSent', 'bytesSent', 'framesEncoded', 'framesSent', 'keyFramesEncoded',
  'retransmittedPacketsSent', 'qualityLimitationReason', 'frameWidth', 'frameHeight', 'jitter',
];

function summarizeTransports(dump) {
  if (!dump || typeof dump !== 'object') return dump;
  const out = {};
  for (const [direction, t] of Object.entries(dump)) {
    const byId = new Map(t.stats.map((r) => [r.id, r]));
    const rtp = t.stats
      .filter((r) => ['inbound-rtp', 'outbound-rtp', 'remote-inbound-rtp'].includes(r.type))
      .map((r) => {
        const o = { type: r.type };
        for (const f of RTP_FIELDS) if (r[f] !== undefined) o[f] = r[f];
        const codec = r.codecId && byId.get(r.codecId);
        if (codec) o.codec = `${codec.mimeType}/${codec.payloadType}`;
        return o;
      });
    const pairs = t.stats
      .filter((r) => r.type === 'candidate-pair' && (r.selected || r.nominated || r.state === 'succeeded'))
      .map((r) => {
        const l = byId.get(r.localCandidateId) || {};
        const rc = byId.get(r.remoteCandidateId) || {};
        return `${l.address || l.ip}:${l.port} -> ${rc.address || rc.ip}:${rc.port} ${r.state}` +
          ` sent ${r.bytesSent} B, received ${r.bytesReceived} B`;
      });
    out[direction] = {
      iceConnectionState: t.iceConnectionState,
      connectionState: t.connectionState,
      candidatePairs: pairs,
      rtp,
    };
    if (debug) {
      out[direction].localDescription = t.localDescription;
      out[direction].remoteDescription = t.remoteDescription;
    }
  }
  return out;
}

async function diagnostics(peers, h) {
  const parts = [];
  for (const peer of peers) {
    let dump;
    try {
      dump = await Promise.race([
        peer.evaluate(async () =>
          !window.demo
            ? 'window.demo is not defined'
            : {
                state: window.demo.state,
                error: window.demo.error,
                producers: window.demo.producerIds(),
                remotePeers: window.demo.remotePeers(),
                receiving: await window.demo.stats(),
                transports: await window.demo.dump(),
              }
        ),
        sleep(5000).then(() => 'evaluate timed out'),
      ]);
      if (dump && dump.transports) dump.transports = summarizeTransports(dump.transports);
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
  }
  return parts.join('\n');
}

// ---------------------------------------------------------------------------
// One run of one pairing.

async function runPairing(firstEngine, secondEngine, run) {
  const t0 = Date.now();
  const h = await startHost(hosts.node);
  const peers = [];
  const figures = {};
  try {
    const roomId = `x-${firstEngine}-${secondEngine}-${run}`;
    const alice = await browsers[firstEngine].newPeer(h.base, roomId, 'alice');
    peers.push(alice);
    await waitSending(alice);
    const bob = await browsers[secondEngine].newPeer(h.base, roomId, 'bob');
    peers.push(bob);
    await waitSending(bob);
    const sides = [
      [alice, bob],
      [bob, alice],
    ];

    // 1. Media both ways.
    const first = {};
    await Promise.all(
      sides.map(async ([rx, tx]) => {
        first[rx.name] = await waitVideo(`${rx.name} receives ${tx.name}`, peers, rx, tx.name);
      })
    );
    figures.joined = Object.fromEntries(
      sides.map(([rx]) => [rx.name, { frames: first[rx.name].video.framesDecoded, audioPackets: first[rx.name].audio.packetsReceived }])
    );

    // 2. The second joiner, then the first, re-creates its camera producer.
    figures.restarted = {};
    for (const [tx, rx] of [
      [bob, alice],
      [alice, bob],
    ]) {
      const before = await receiving(rx, tx.name);
      const transceiversBefore = await sendTransceivers(tx);
      await tx.evaluate((kind) => window.demo.restartProducer(kind), 'video');
      const after = await waitVideo(
        `${rx.name} receives ${tx.name}'s re-created video producer`,
        peers,
        rx,
        tx.name,
        { notConsumer: before.video && before.video.id }
      );
      // The sender's transceivers before and after (the same list: the inactive one reused).
      figures.restarted[rx.name] = {
        frames: after.video.framesDecoded,
        senderTransceivers: `${transceiversBefore} -> ${await sendTransceivers(tx)}`,
      };
    }

    // 3. Each pauses its consumer of the other's video, then resumes it.
    figures.paused = {};
    await Promise.all(sides.map(([rx, tx]) => rx.evaluate((p) => window.demo.pauseConsumer(p, 'video', true), tx.name)));
    await sleep(PAUSED_SETTLE_MS);
    const pausedFrom = {};
    for (const [rx, tx] of sides) pausedFrom[rx.name] = await receiving(rx, tx.name);
    await sleep(PAUSED_WINDOW_MS);
    for (const [rx, tx] of sides) {
      const now = await receiving(rx, tx.name);
      const grew = now.video.framesDecoded - pausedFrom[rx.name].video.framesDecoded;
      figures.paused[rx.name] = { framesWhilePaused: grew };
      if (!now.video.paused || grew > PAUSED_MAX_FRAMES)
        throw new Error(
          `${rx.name} paused its consumer of ${tx.name}'s video but decoded ${grew} frames in ` +
            `${PAUSED_WINDOW_MS} ms (consumer ${JSON.stringify(now.video)})`
        );
    }
    await Promise.all(sides.map(([rx, tx]) => rx.evaluate((p) => window.demo.pauseConsumer(p, 'video', false), tx.name)));
    await Promise.all(
      sides.map(async ([rx, tx]) => {
        const since = pausedFrom[rx.name].video;
        const after = await waitVideo(`${rx.name} receives ${tx.name}'s video after resume`, peers, rx, tx.name, {
          sinceFrames: since.framesDecoded + figures.paused[rx.name].framesWhilePaused,
        });
        figures.paused[rx.name].framesAfterResume = after.video.framesDecoded;
      })
    );

    // 4. The audio flowed all along.
    for (const [rx, tx] of sides) {
      const now = await receiving(rx, tx.name);
      const before = figures.joined[rx.name].audioPackets;
      if (!(now.audio && now.audio.packetsReceived > before + 50))
        throw new Error(`${rx.name}: audio of ${tx.name} stopped (${before} packets, then ${JSON.stringify(now.audio)})`);
      figures.end = figures.end || {};
      figures.end[rx.name] = {
        audioPackets: now.audio.packetsReceived,
        videoFrames: now.video.framesDecoded,
        videoFreezes: now.video.freezeCount, // the pause itself is one
      };
    }
    figures.seconds = Math.round((Date.now() - t0) / 100) / 10;
    return figures;
  } catch (error) {
    console.log(await diagnostics(peers, h));
    throw error;
  } finally {
    for (const peer of peers) await peer.close();
    await stopHost(h);
  }
}

for (const pairing of PAIRINGS) {
  const [firstEngine, secondEngine] = pairing.split('-');
  for (let run = 1; run <= REPEAT; run++) {
    const name =
      `${firstEngine} (joins first) + ${secondEngine}: media both ways, producer re-created, ` +
      `consumer paused and resumed [run ${run}/${REPEAT}]`;
    test(name, { timeout: 120_000 }, async (t) => {
      const why = hosts.node.skip();
      if (why) return t.skip(why);
      const figures = await runPairing(firstEngine, secondEngine, run);
      console.log(`${pairing} run ${run}: ${JSON.stringify(figures)}`);
    });
  }
}
