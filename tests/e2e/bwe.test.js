// Bandwidth adaptation per consumer, in real browsers: headless Chromium pages of the demo
// through the Node host, one receiver behind a rate-limited link (the test kit's impairment
// proxy, target/release/sfu-netem, on his receive transport).
//
// Runs (each with a fresh host and room; names are "<simulcast|single> <kbit/s>"):
//   simulcast 400   alice sends her 1280x720 fake camera in simulcast (demo page option
//                   simulcast=1: mediasoup-client's low/medium/high at 150/500/1500 kbit/s);
//                   bob and carol join receive-only. bob's receive transport goes through
//                   the proxy, carol's does not. On the clean link: every layer flowing,
//                   then both receivers on the best layer (at most 20 s, else a miss), then
//                   WARM_S seconds over which each layer's bitrate is measured from alice's
//                   outbound-rtp per SSRC. Then the link toward bob is limited to 400 kbit/s
//                   (drop-tail queue 200 ms, 28 bytes of IP+UDP header per packet counted)
//                   for WINDOW_S seconds, then lifted. The SFU's profile names are read as
//                   it defines them: a layer's measured rank ("low" the lowest-rate layer,
//                   then "medium", "high"; "none": video stopped). Asserted (the figures of
//                   the issue, and the rules of the design):
//                     - bob moves to a lower-bitrate layer within 5 s of the limit (the
//                       SFU's consumerEffectiveProfileChanged to bob, seen by the host hooks,
//                       naming a layer whose measured bitrate is below his previous one's),
//                       if his layer does not fit the link (fits() below; at 400 and 300
//                       kbit/s the best layer, ~750 kbit/s, never does);
//                     - bob's video is not stopped while the lowest layer fits;
//                     - over the WINDOW_S seconds from the limit bob decodes >= 10 frames/s
//                       and is frozen <= 2 s (totalFreezesDuration + totalPausesDuration,
//                       as Chromium counts a gap of > 5 s as a pause, plus a stall still
//                       open at the end of the window: both are counted when they end);
//                     - carol stays on the best layer (through the window her effective
//                       profile is a layer within 10 % of the highest measured bitrate, and
//                       what she receives is >= 80 % of that layer's bitrate);
//                     - within 15 s of lifting the limit bob is back on the best layer (the
//                       SFU says so, and his received bitrate reaches 75 % of that layer's).
//                   The page sets the three streams' RTCRtpSender parameters to 1/4, 1/2 and
//                   full size at those bitrates (mediasoup-client 2.x's Chrome handlers
//                   ignore the bitrates); the test does not rely on it: it measures each
//                   SSRC's bitrate and ranks the layers by it, not by position or profile.
//   simulcast 300   the same at 300 kbit/s.
//   simulcast-raw N (not run by default) the same with what an unmodified mediasoup-client
//                   2.x app sends from Chromium: three streams all at 1280x720, at about
//                   3.9, 0.7 and 0.7 Mbit/s (low, medium, high), out of layer order. No
//                   layer fits below ~800 kbit/s, so bob cannot keep decoding at 400.
//                   SFU_E2E_BWE_RUNS="simulcast-raw 1000" shows a switch between them.
//   single 400      alice sends one 1280x720 stream (no simulcast), bob alone receives it
//                   through the proxy. On the clean link: until alice's targetBitrate is
//                   >= 1.5 x the limit (at most 20 s; Chromium's estimate sometimes takes
//                   ~10 s to grow), then CLEAN_S seconds; then 400 kbit/s for WINDOW_S.
//                   Asserted: over the second half of the limited window alice's encoder
//                   target (outbound-rtp targetBitrate, mean) and her video sending rate
//                   (bytesSent) fit the link (<= 400 kbit/s), where over the second half of
//                   the clean seconds the target was >= 1.5 x that and the rate above it
//                   (else the run cannot show a reduction and fails as such). This needs the
//                   SFU to tell alice (REMB) what her consumers can take. Her track has
//                   contentHint "detail" (demo option): Chromium then sends 1280x720 from
//                   the first second, where its default ("balanced") starts at 320x180 and
//                   takes ~20 s to climb back while its estimate, application-limited, stays
//                   low; the SFU's part does not depend on it. bob's decoding is reported.
// Reported for every run (stdout, one table line per run; every second's figures in
// tests/e2e/results/bwe-<time>.json, not committed): per second, alice's bitrate, size,
// targetBitrate and qualityLimitationReason per SSRC and her send transport's estimate;
// bob's and carol's frames decoded, freezes, received bitrate, frame size, inbound SSRC,
// effective profile (page and SFU), the layer their bitrate matches, audio packets; the
// SFU's estimate toward bob (transportStats availableOutgoingBitrate); the SFU's
// consumerEffectiveProfileChanged notifications per peer; /metrics deltas (NACK, PLI,
// retransmissions, RTP) and the proxy's counters over the limited window; bob's NACKs,
// retransmitted packets received and their share of his video bytes.
//
// Env: SFU_E2E_BWE_SECONDS (the limited window, default 15, >= 6),
//      SFU_E2E_BWE_RUNS="simulcast 400,single 400" (a subset, or other rates and kinds:
//      "simulcast 600", "simulcast-raw 1000", "single 1000"),
//      SFU_E2E_BWE_VERBOSE=1 (print every second's line), SFU_DEBUG=1,
//      SFU_E2E_BWE_EMULATE=1 (the pages adapt by themselves: a check of the measurement).
'use strict';

const { test, before, after } = require('node:test');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { repo, sleep, hosts, startHost, stopHost } = require('./lib/host');
const { launch } = require('./lib/browsers');
const { startNetem, NETEM } = require('./lib/netem');
const { demoState, waitSending, waitUntil, inboundFrom, outboundStreams, selectedPairs, diagnostics } =
  require('./lib/media');

const WINDOW_S = Number(process.env.SFU_E2E_BWE_SECONDS || 15);
const VERBOSE = process.env.SFU_E2E_BWE_VERBOSE === '1';
// A check of the measurement itself, not of the SFU: the pages adapt by themselves (see
// emulate() below), so every figure can be seen passing before the SFU does the work.
const EMULATE = process.env.SFU_E2E_BWE_EMULATE === '1';
const SWITCH_DOWN_S = 5; // bob on a lower-bitrate layer within this many seconds of the limit
const SWITCH_UP_S = 15; // and back on the best one within this many seconds of lifting it
const MIN_FPS = 10;
const MAX_FREEZE_S = 2;
const SAME_LAYER = 0.9; // a layer within 10 % of the best one's bitrate counts as the best
const CAROL_MIN_RATIO = 0.8; // carol's received bitrate / her layer's sent bitrate
const UP_MIN_RATIO = 0.75; // bob's received bitrate / the best layer's, after the lift
const SINGLE_CLEAN_MIN = 1.5; // single: the clean targetBitrate must exceed 1.5 x the limit
// Whether a video layer of `kbps` (payload) fits a link of `limitKbps`: on the wire it takes
// about 10 % more (RTP, SRTP, UDP and IP headers), and the audio beside it ~60 kbit/s.
const fits = (kbps, limitKbps) => kbps * 1.1 + 60 <= limitKbps;
const WARM_S = 4; // simulcast: clean seconds with every layer flowing, before the limit
const CLEAN_S = 6; // single: clean seconds before the limit (the rate over the last half)
const QUEUE_MS = 200;
const OVERHEAD_BYTES = 28; // IPv4 + UDP: the limit is on IP packets
const JOIN_TIMEOUT_MS = 20_000;
const FIRST_FRAME_TIMEOUT_MS = 30_000;
const LAYERS_TIMEOUT_MS = 20_000;
const BEST_TIMEOUT_MS = 20_000; // simulcast: receivers on the best layer of a clean link
const RAMP_TIMEOUT_MS = 20_000; // single: alice's target above 1.5 x the limit on the clean link

const DEFAULT_RUNS = 'simulcast 400,simulcast 300,single 400';
const RUNS = (process.env.SFU_E2E_BWE_RUNS || DEFAULT_RUNS)
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
  .map((name) => {
    const m = /^(simulcast|simulcast-raw|single) (\d+)$/.exec(name);
    if (!m) throw new Error(`SFU_E2E_BWE_RUNS: "${name}" is not "<simulcast|simulcast-raw|single> <kbit/s>"`);
    const simulcast = { simulcast: 'scaled', 'simulcast-raw': 'raw', single: null }[m[1]];
    return { name, simulcast, limitKbps: Number(m[2]) };
  });
if (!(WINDOW_S >= 6)) throw new Error('SFU_E2E_BWE_SECONDS must be >= 6');

let browser = null;
const results = [];
const resultsFile = path.join(
  repo, 'tests', 'e2e', 'results', `bwe-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
);

before(async () => {
  if (hosts.node.skip()) return;
  if (!fs.existsSync(NETEM)) throw new Error(`${NETEM} missing: cargo build --release`);
  if (!fs.existsSync(path.join(repo, 'examples', 'web', 'dist', 'app.js')))
    throw new Error('examples/web/dist/app.js missing: run bash examples/web/setup.sh');
  browser = await launch('chromium');
  console.log(`chromium: ${browser.version}`);
});

after(async () => {
  if (browser) await Promise.race([browser.close().catch(() => {}), sleep(10_000)]);
  if (results.length) {
    fs.mkdirSync(path.dirname(resultsFile), { recursive: true });
    fs.writeFileSync(
      resultsFile,
      `${JSON.stringify({ windowSeconds: WINDOW_S, chromium: browser && browser.version, runs: results }, null, 1)}\n`
    );
    console.log(`results: ${path.relative(repo, resultsFile)}`);
    console.log(table(results));
  }
});

// ---------------------------------------------------------------------------
// Figures.

const round = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 10 ** d) / 10 ** d);
const kbps = (bytes, ms) => (ms > 0 ? (bytes * 8) / ms : null); // bytes over ms -> kbit/s

// Bitrate (kbit/s) of each of alice's SSRCs between two samples of her outbound streams.
function streamRates(a, b) {
  const out = {};
  if (!a || !b) return out;
  for (const s of b.streams) {
    const p = a.streams.find((x) => x.ssrc === s.ssrc);
    if (p) out[s.ssrc] = kbps(s.bytesSent - p.bytesSent, s.ts - p.ts);
  }
  return out;
}

// Per profile, the bitrate (kbit/s) of its SSRC, from streamRates.
function profileRates(encodings, rates) {
  const out = {};
  for (const e of encodings) if (e.profile && rates[e.ssrc] !== undefined) out[e.profile] = rates[e.ssrc];
  return out;
}

// The SFU names what a consumer receives by the layer's measured rank among the producer's
// layers: the lowest-rate one "low", then "medium", "high" (whatever the encodings' own
// profiles), and "none" when it stopped the video. The rates of `byProfile` (keyed by the
// encodings' profiles, as profileRates gives them) keyed by those names; "none" is 0.
const PROFILE_ORDER = ['low', 'medium', 'high'];
function byRank(byProfile) {
  const names = Object.keys(byProfile);
  const labels = [...names].sort((a, b) => PROFILE_ORDER.indexOf(a) - PROFILE_ORDER.indexOf(b));
  const ranked = [...names].sort((a, b) => (byProfile[a] || 0) - (byProfile[b] || 0));
  const out = { none: 0 };
  labels.forEach((label, i) => (out[label] = byProfile[ranked[i]]));
  return out;
}
// Which encoding (by its own profile) each rank name stands for, e.g. { low: 'medium', ... }.
function rankToEncoding(byProfile) {
  const names = Object.keys(byProfile);
  const labels = [...names].sort((a, b) => PROFILE_ORDER.indexOf(a) - PROFILE_ORDER.indexOf(b));
  const ranked = [...names].sort((a, b) => (byProfile[a] || 0) - (byProfile[b] || 0));
  return Object.fromEntries(labels.map((label, i) => [label, ranked[i]]));
}

const bestRate = (rates) => Math.max(0, ...Object.values(rates).filter((x) => x !== null));
// The profiles within SAME_LAYER of the best bitrate.
const bestProfiles = (rates) => Object.keys(rates).filter((p) => p !== 'none' && rates[p] >= SAME_LAYER * bestRate(rates));

// The layer whose bitrate `rate` matches within +-25 %, the closest one; else null.
function matchLayer(rate, rates) {
  let best = null;
  for (const [p, r] of Object.entries(rates)) {
    if (!r || rate === null) continue;
    const q = rate / r;
    if (q >= 0.75 && q <= 1.25 && (!best || Math.abs(1 - q) < best.d)) best = { p, d: Math.abs(1 - q) };
  }
  return best && best.p;
}

// The receiver's video between two samples: frames/s, kbit/s, freezes.
function videoBetween(a, b) {
  if (!a || !b || !a.video || !b.video) return null;
  const ms = b.video.ts - a.video.ts;
  return {
    fps: ((b.video.framesDecoded || 0) - (a.video.framesDecoded || 0)) / (ms / 1000),
    kbps: kbps((b.video.bytesReceived || 0) - (a.video.bytesReceived || 0), ms),
    freezes: (b.video.freezeCount || 0) - (a.video.freezeCount || 0),
    freezeS: (b.video.totalFreezesDuration || 0) - (a.video.totalFreezesDuration || 0),
    // A gap of more than 5 s is a pause, not a freeze, for Chromium (webrtc-stats).
    pauses: (b.video.pauseCount || 0) - (a.video.pauseCount || 0),
    pauseS: (b.video.totalPausesDuration || 0) - (a.video.totalPausesDuration || 0),
  };
}

// Frames/s and frozen seconds of `who` over samples[i0..i1]: totalFreezesDuration plus
// totalPausesDuration (Chromium counts a gap of more than 5 s as a pause), and as both are
// added only when the gap ends, a stall still open at samples[i1] (no frame decoded since
// sample k) adds the time since sample k.
function decoding(samples, who, i0, i1) {
  const a = samples[i0][who];
  const b = samples[i1][who];
  const w = videoBetween(a, b);
  if (!w) return { fps: 0, freezeS: null, pauseS: null, openStallS: null, freezeTotalS: (samples[i1].t - samples[i0].t), kbps: null };
  let lastProgress = i0;
  for (let i = i0 + 1; i <= i1; i++) {
    const p = samples[i - 1][who];
    const c = samples[i][who];
    if (c && c.video && p && p.video && c.video.framesDecoded > p.video.framesDecoded) lastProgress = i;
  }
  const openStallS = lastProgress === i1 ? 0 : (b.video.ts - samples[lastProgress][who].video.ts) / 1000;
  return { ...w, openStallS, freezeTotalS: w.freezeS + w.pauseS + openStallS };
}

// The NACK / PLI / retransmission / RTP / estimate series of a Prometheus text.
function metricSeries(text) {
  const out = {};
  if (typeof text !== 'string') return out;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(\S+)/.exec(line);
    if (m && /nack|pli|fir|retrans|rtx|rtp_|remb|bwe|estimate|layer|bitrate|profile/i.test(m[1])) out[m[1]] = Number(m[2]);
  }
  return out;
}

function metricDeltas(a, b) {
  const out = {};
  for (const k of Object.keys(b)) if (b[k] !== (a[k] || 0)) out[k] = b[k] - (a[k] || 0);
  return out;
}

function httpGet(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
  });
}

function linkDelta(a, b) {
  if (!a || !b) return null;
  const d = (f) => b.down[f] - a.down[f];
  return {
    packetsIn: d('packets_in'), delivered: d('delivered'), queueDrops: d('dropped_queue'),
    kbpsIn: null, bytesIn: d('bytes_in'), bytesDelivered: d('bytes_delivered'),
  };
}

function table(rows) {
  const s = (v, d = 1) => (v === null || v === undefined ? '–' : typeof v === 'number' ? String(round(v, d)) : String(v));
  const lines = [
    '| run | bob down (s) | bob fps | bob freezes (s) | bob kbit/s | carol on best | bob up (s) | alice kbit/s clean → limited | NACKs bob / RTX rcvd (share) / SFU resends | link drops | result |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const f = r.figures || { simulcast: r.simulcast };
    const b = f.bobWindow || {};
    const rt = f.retransmissions || {};
    lines.push(
      `| ${r.name}${r.emulated ? ' (emulated)' : ''} | ${f.simulcast ? (f.switchDownNeeded === false && f.switchDownS === null ? 'not needed' : s(f.switchDownS)) : 'n/a'} | ${s(b.fps)} | ${s(b.freezeTotalS)} | ${s(b.kbps, 0)} | ` +
        `${f.simulcast ? (f.carolOnBest === undefined ? '–' : f.carolOnBest ? 'yes' : 'no') : 'n/a'} | ${f.simulcast ? `${s(f.switchUpS)}${f.switchDownS === null && f.switchUpS !== null ? ' (never down)' : ''}` : 'n/a'} | ` +
        `${s(f.aliceCleanKbps, 0)} → ${s(f.aliceLimitedKbps, 0)}${f.simulcast ? '' : ` (target ${s(f.aliceCleanTargetKbps, 0)} → ${s(f.aliceLimitedTargetKbps, 0)})`} | ` +
        `${s(rt.bobNacks, 0)} / ${s(rt.bobRtxPackets, 0)} (${rt.rtxShare === null || rt.rtxShare === undefined ? '–' : `${round(rt.rtxShare * 100)} %`}) / ${s(rt.sfuRetransmissions, 0)} | ` +
        `${s(f.link && f.link.queueDrops, 0)} | ${r.error ? 'ERROR' : r.misses.length ? `FAIL (${r.misses.length})` : 'pass'} |`
    );
  }
  return lines.join('\n');
}

// The jitter buffer's mean delay (ms) of the frames it emitted between two samples.
function jitterBufferMs(a, b) {
  if (!a || !b || b.jitterBufferEmittedCount === undefined || a.jitterBufferEmittedCount === undefined) return null;
  const n = b.jitterBufferEmittedCount - a.jitterBufferEmittedCount;
  return n > 0 ? round(((b.jitterBufferDelay - a.jitterBufferDelay) / n) * 1000, 0) : null;
}

// One line of the per-second timeline.
function describeSecond(sample, prev, encodings) {
  const rates = streamRates(prev && prev.alice, sample.alice);
  const prates = byRank(profileRates(encodings, rates)); // by the SFU's names
  const who = (k) => {
    const v = videoBetween(prev && prev[k], sample[k]);
    if (!v) return null;
    const cur = sample[k].video;
    const audio = prev && prev[k].audio && sample[k].audio ? sample[k].audio.packetsReceived - prev[k].audio.packetsReceived : null;
    return {
      fps: round(v.fps), kbps: round(v.kbps, 0), freezeCount: cur.freezeCount, freezeS: round(cur.totalFreezesDuration, 2),
      pauseS: round(cur.totalPausesDuration, 2),
      size: cur.frameWidth ? `${cur.frameWidth}x${cur.frameHeight}` : null, ssrc: cur.ssrc,
      profile: cur.effectiveProfile, sfuProfile: sample.sfuProfile && sample.sfuProfile[k], mediaLayer: matchLayer(v.kbps, prates),
      nacks: cur.nackCount, rtx: cur.retransmittedPacketsReceived || 0, audioPackets: audio,
      // Where a stall comes from: frames that arrived whole, dropped, keyframes, PLIs,
      // packets lost, and the jitter buffer's mean delay (ms) over the second.
      framesReceived: cur.framesReceived, framesDropped: cur.framesDropped, keyFrames: cur.keyFramesDecoded,
      plis: cur.pliCount, lost: cur.packetsLost, jbMs: jitterBufferMs(prev && prev[k].video, cur),
    };
  };
  const alice = {};
  for (const s of (sample.alice && sample.alice.streams) || []) {
    const e = encodings.find((x) => x.ssrc === s.ssrc);
    alice[e && e.profile ? e.profile : s.ssrc] = {
      kbps: round(rates[s.ssrc], 0), size: s.frameWidth ? `${s.frameWidth}x${s.frameHeight}` : null,
      fps: s.framesPerSecond, target: s.targetBitrate ? round(s.targetBitrate / 1000, 0) : null, qlr: s.qualityLimitationReason,
    };
  }
  return {
    t: round(sample.t), phase: sample.phase, alice,
    aliceEstimateKbps: sample.alice && sample.alice.availableOutgoingBitrate ? round(sample.alice.availableOutgoingBitrate / 1000, 0) : null,
    sfuEstimateToBobKbps: sample.sfuEstimate === null || sample.sfuEstimate === undefined ? null : round(sample.sfuEstimate / 1000, 0),
    sfuSendQueueMs: sample.sfuQueueMs === undefined ? null : sample.sfuQueueMs, // the SFU's pacer toward bob
    bob: who('bob'), carol: sample.carol ? who('carol') : null,
  };
}

function secondLine(d) {
  const a = Object.entries(d.alice).map(([k, v]) => `${k}=${v.kbps}k${v.size ? `@${v.size}` : ''}${v.qlr && v.qlr !== 'none' ? `(${v.qlr})` : ''}`).join(' ');
  const r = (n, v) => (v ? `${n} ${v.fps}fps ${v.kbps}k ${v.size || '-'} prof=${v.profile}/${v.sfuProfile || '-'} media=${v.mediaLayer || '-'} frz=${v.freezeCount}/${v.freezeS}s pause=${v.pauseS}s aud=${v.audioPackets}` : `${n} -`);
  return `  t=${d.t} ${d.phase} | alice ${a} est=${d.aliceEstimateKbps}k | sfu->bob est=${d.sfuEstimateToBobKbps}k | ${r('bob', d.bob)}${d.carol ? ` | ${r('carol', d.carol)}` : ''}`;
}

// ---------------------------------------------------------------------------
// SFU_E2E_BWE_EMULATE=1: what the SFU should do, done by the pages through the protocol
// and the browser, to show that the assertions can pass. At the limit: simulcast, bob
// prefers the lowest-bitrate layer (setConsumerPreferredProfile, then a pause and resume
// of his consumer, which makes the SFU ask alice for a keyframe); single, alice caps her
// sender at 3/4 of the limit (as a REMB would). At the lift: bob prefers the best layer
// again; alice's cap is removed.

async function emulate(run, byName, phase, { lowest, best }) {
  if (run.simulcast) {
    const profile = phase === 'limited' ? lowest : best;
    await byName.bob.evaluate((profile) => {
      const alice = window.demo.room.peers.find((p) => p.name === 'alice' && !p.closed);
      const consumer = alice.consumers.find((c) => c.kind === 'video' && !c.closed);
      consumer.setPreferredProfile(profile);
      // The SFU switches at the new layer's next keyframe; resuming a consumer asks alice
      // for one.
      consumer.pause();
      consumer.resume();
    }, profile);
  } else {
    const maxBitrate = phase === 'limited' ? Math.round(run.limitKbps * 750) : null;
    await byName.alice.evaluate(async (maxBitrate) => {
      const producer = window.demo.room.producers.find((p) => p.kind === 'video' && !p.closed);
      const t = window.demo.room.transports.find((x) => x.direction === 'send' && !x.closed);
      const sender = t.handler._pc.getSenders().find((x) => x.track === producer.track);
      const parameters = sender.getParameters();
      if (maxBitrate) parameters.encodings[0].maxBitrate = maxBitrate;
      else delete parameters.encodings[0].maxBitrate;
      await sender.setParameters(parameters);
    }, maxBitrate);
  }
}

// ---------------------------------------------------------------------------
// One run.

async function measure(run) {
  const t0 = Date.now();
  const now = () => (Date.now() - t0) / 1000;
  const h = await startHost(hosts.node, { hooks: true });
  const peers = [];
  let proxy = null;
  const transports = {}; // "peer/direction" -> transport id
  const roomId = `bwe-${run.name.replace(/\W+/g, '-')}`;
  const receivers = run.simulcast ? ['bob', 'carol'] : ['bob'];
  h.control.onTransport(async ({ peerName, direction, request, data }) => {
    transports[`${peerName}/${direction}`] = request.id;
    if (!(peerName === 'bob' && direction === 'recv')) return data;
    const udp = data.iceCandidates.find((c) => c.protocol === 'udp');
    if (!udp) throw new Error(`no UDP candidate to proxy: ${JSON.stringify(data.iceCandidates)}`);
    proxy = await startNetem({ upstreamUdp: `${udp.ip}:${udp.port}`, up: {}, down: {}, seed: 7 });
    const [ip, port] = proxy.udp.split(':');
    return { ...data, iceCandidates: [{ ...udp, ip, port: Number(port) }] };
  });
  await h.control.watch(['consumerEffectiveProfileChanged', 'transportStats', 'consumerStats']);
  const result = { name: run.name, simulcast: run.simulcast, limitKbps: run.limitKbps, emulated: EMULATE, misses: [], figures: null };
  const samples = [];
  try {
    // ----- Join: alice sends, the others receive only.
    const alice = await browser.newPeer(h.base, roomId, 'alice', run.simulcast ? { simulcast: run.simulcast === 'scaled' ? 1 : 'raw' } : { camera: '1280x720', contentHint: 'detail' });
    peers.push(alice);
    await waitSending(alice, JOIN_TIMEOUT_MS);
    const camera = await alice.evaluate(() => window.demo.cameraSettings());
    if (!camera || camera.width !== 1280 || camera.height !== 720)
      throw new Error(`alice's camera is not 1280x720: ${JSON.stringify(camera)}`);
    for (const name of receivers) {
      const peer = await browser.newPeer(h.base, roomId, name, { send: 'none' });
      peers.push(peer);
    }
    const byName = Object.fromEntries(peers.map((p) => [p.name, p]));
    for (const name of receivers) {
      await waitUntil(`${name} joins`, JOIN_TIMEOUT_MS, [], async () => {
        const s = await demoState(byName[name]);
        if (s.state === 'failed' || s.state === 'closed') throw new Error(`${name}: page state "${s.state}" (${s.error})`);
        return { done: s.state === 'joined', detail: s };
      });
    }
    for (const name of receivers) {
      await waitUntil(`${name} decodes alice`, FIRST_FRAME_TIMEOUT_MS, peers, async () => {
        const r = await inboundFrom(byName[name], 'alice');
        return { done: Boolean(r.video && r.video.framesDecoded > 0), detail: r };
      });
    }
    if (!proxy) throw new Error("bob's receive transport was not proxied (no createTransport seen for it)");
    const out0 = await outboundStreams(alice);
    const encodings = out0.encodings;
    if (run.simulcast && (encodings.length !== 3 || encodings.some((e) => !e.profile)))
      throw new Error(`alice's producer is not a 3-layer simulcast one: ${JSON.stringify(encodings)}`);
    if (!run.simulcast && encodings.length !== 1) throw new Error(`alice's producer has ${encodings.length} encodings`);
    const senderEncodings = await alice.evaluate(() => window.demo.videoSenderEncodings());
    result.senderEncodings = senderEncodings;
    if (run.simulcast === 'scaled' && (!senderEncodings || senderEncodings.map((e) => e.scaleResolutionDownBy).join() !== '4,2,1'))
      throw new Error(`alice's simulcast streams are not scaled 4, 2, 1: ${JSON.stringify(senderEncodings)}`);

    // The SFU's figures toward bob (its estimate) and per consumer.
    const bobRecvId = transports['bob/recv'];
    await h.control.notify(roomId, 'bob', { method: 'enableTransportStats', target: 'peer', notification: true, id: bobRecvId, interval: 1000 });

    // ----- Sampling, once a second.
    let phase = 'warm';
    const consumerIds = {};
    const sfuProfile = {}; // receiver -> profile per the SFU (initial: the page's, from enableConsumer)
    const profileNotes = () =>
      h.control.notifications.filter((n) => n.message.method === 'consumerEffectiveProfileChanged');
    // The newest transportStats of bob's receive transport (the SFU's estimate and pacer).
    const latestBobStats = () => {
      for (let i = h.control.notifications.length - 1; i >= 0; i--) {
        const n = h.control.notifications[i];
        if (n.message.method === 'transportStats' && n.message.id === bobRecvId) return n.message.stats[0];
      }
      return null;
    };
    const sample = async () => {
      const [a, ...rs] = await Promise.all([outboundStreams(alice), ...receivers.map((n) => inboundFrom(byName[n], 'alice'))]);
      const s = { t: now(), wall: Date.now(), phase, alice: a };
      receivers.forEach((n, i) => {
        s[n] = rs[i];
        if (rs[i].video && consumerIds[n] === undefined) {
          consumerIds[n] = rs[i].video.consumerId;
          sfuProfile[n] = rs[i].video.effectiveProfile;
        }
      });
      // Every notification so far, also those that came before the page knew its consumer's
      // id (the SFU may switch a consumer before its page's first getStats shows it).
      const latest = {};
      for (const n of profileNotes()) {
        if (consumerIds[n.peerName] === n.message.id) latest[n.peerName] = n.message.profile;
      }
      Object.assign(sfuProfile, latest);
      s.sfuProfile = { ...sfuProfile };
      const bobStats = latestBobStats();
      s.sfuEstimate = bobStats ? bobStats.availableOutgoingBitrate : null;
      s.sfuQueueMs = bobStats ? bobStats.sendQueueDelay : null;
      for (const peer of peers) {
        const { state, error } = await demoState(peer);
        if (state !== 'joined') throw new Error(`${peer.name} page state "${state}" (${error})`);
      }
      samples.push(s);
      if (VERBOSE && samples.length > 1) console.log(secondLine(describeSecond(s, samples[samples.length - 2], encodings)));
      return s;
    };
    // Samples every second until `seconds` passed or `stop(sample)` is true.
    const sampleFor = async (seconds, stop = () => false) => {
      const start = Date.now();
      for (let k = 1; ; k++) {
        await sleep(Math.max(0, start + k * 1000 - Date.now()));
        const s = await sample();
        if (stop(s) || Date.now() - start >= seconds * 1000 - 50) return s;
      }
    };

    await sample();
    if (run.simulcast) {
      // Every layer flowing (Chromium adds layers as its estimate toward the SFU grows).
      const deadline = Date.now() + LAYERS_TIMEOUT_MS;
      for (;;) {
        const s = await sampleFor(1);
        const rates = streamRates(samples[samples.length - 2].alice, s.alice);
        if (encodings.every((e) => rates[e.ssrc] > 20)) break;
        if (Date.now() > deadline)
          throw new Error(`alice does not send all 3 layers within ${LAYERS_TIMEOUT_MS} ms: ${JSON.stringify(rates)}`);
      }
    }
    let bestWaitS = null;
    if (run.simulcast) {
      // Both receivers on the best layer (the SFU's estimates grow from their start) before
      // the limit, at most BEST_TIMEOUT_MS; else a miss, and the run goes on.
      const start = Date.now();
      for (;;) {
        const s = await sampleFor(1);
        const rates = byRank(profileRates(encodings, streamRates(samples[Math.max(0, samples.length - 3)].alice, s.alice)));
        const best = bestProfiles(rates);
        if (receivers.every((n) => best.includes(s.sfuProfile[n]))) {
          bestWaitS = round((Date.now() - start) / 1000);
          break;
        }
        if (Date.now() - start > BEST_TIMEOUT_MS) {
          result.misses.push(
            `on the clean link, not every receiver reached the best layer within ${BEST_TIMEOUT_MS / 1000} s ` +
              `(SFU: ${receivers.map((n) => `${n} "${s.sfuProfile[n]}"`).join(', ')}; best "${best.join('" or "')}", rates ${JSON.stringify(Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, round(v, 0)])))} kbit/s)`
          );
          break;
        }
      }
    }
    let rampS = null;
    if (!run.simulcast) {
      // Chromium's estimate toward the SFU starts low and sometimes takes ~10 s to grow:
      // wait (at most RAMP_TIMEOUT_MS) until alice's target is well above the limit, so that
      // the clean figures are those of a ramped-up sender. A sender held down on the clean
      // link (by the SFU's REMB, say) times out and misses below.
      const start = Date.now();
      const target = (x) => x.alice.streams.reduce((a, st) => a + (st.targetBitrate || 0), 0) / 1000;
      await sampleFor(RAMP_TIMEOUT_MS / 1000, (x) => target(x) >= SINGLE_CLEAN_MIN * run.limitKbps);
      rampS = round((Date.now() - start) / 1000);
    }
    const warmFrom = samples.length - 1;
    await sampleFor(run.simulcast ? WARM_S : CLEAN_S);
    const iLimit = samples.length - 1;
    const warmByProfile = profileRates(encodings, streamRates(samples[warmFrom].alice, samples[iLimit].alice));
    const warmRates = byRank(warmByProfile); // by the SFU's names

    // ----- The limit.
    const metrics0 = metricSeries(await httpGet(`${h.base}/metrics`));
    const link0 = await proxy.counters();
    await proxy.set('down', { rate_bps: run.limitKbps * 1000, queue_ms: QUEUE_MS, overhead_bytes: OVERHEAD_BYTES });
    const limitAt = Date.now();
    phase = 'limited';
    const ranked = Object.keys(warmRates).filter((k) => k !== 'none').sort((x, y) => warmRates[x] - warmRates[y]);
    const emulated = { lowest: ranked[0], best: ranked[ranked.length - 1] };
    if (EMULATE) await emulate(run, byName, phase, emulated);
    await sampleFor(WINDOW_S);
    const iLift = samples.length - 1;
    const metrics1 = metricSeries(await httpGet(`${h.base}/metrics`));
    const link1 = await proxy.counters();
    const pairs = await selectedPairs(byName.bob);

    // ----- Lifted (simulcast: until bob is back on the best layer, at most SWITCH_UP_S).
    await proxy.set('down', {});
    const liftAt = Date.now();
    phase = 'lifted';
    if (EMULATE) await emulate(run, byName, phase, emulated);
    let upAt = null;
    if (run.simulcast) {
      const best = bestProfiles(warmRates);
      await sampleFor(SWITCH_UP_S + 1, (s) => {
        const prev = samples[samples.length - 2];
        const v = videoBetween(prev.bob, s.bob);
        const layerRate = byRank(profileRates(encodings, streamRates(prev.alice, s.alice)))[s.sfuProfile.bob];
        if (upAt === null && best.includes(s.sfuProfile.bob) && v && layerRate && v.kbps >= UP_MIN_RATIO * layerRate)
          upAt = s.wall;
        return upAt !== null && s.wall - upAt >= 1000;
      });
    }

    // ----- Figures.
    const sel = pairs.recv && pairs.recv.selected;
    if (!sel || `${sel.remote.address}:${sel.remote.port}` !== proxy.udp)
      throw new Error(`bob's receive transport does not use the proxy ${proxy.udp}: ${JSON.stringify(sel)}`);
    const f = { simulcast: run.simulcast, limitKbps: run.limitKbps, warmLayerKbps: null };
    const bobWin = decoding(samples, 'bob', iLimit, iLift);
    f.bobWindow = {
      seconds: round((samples[iLift].bob.video.ts - samples[iLimit].bob.video.ts) / 1000),
      fps: round(bobWin.fps), kbps: round(bobWin.kbps, 0), freezes: bobWin.freezes,
      freezeS: round(bobWin.freezeS, 2), pauses: bobWin.pauses, pauseS: round(bobWin.pauseS, 2),
      openStallS: round(bobWin.openStallS, 2), freezeTotalS: round(bobWin.freezeTotalS, 2),
    };
    const bv0 = samples[iLimit].bob.video;
    const bv1 = samples[iLift].bob.video;
    const rtxBytes = (bv1.retransmittedBytesReceived || 0) - (bv0.retransmittedBytesReceived || 0);
    const videoBytes = (bv1.bytesReceived || 0) - (bv0.bytesReceived || 0);
    const md = metricDeltas(metrics0, metrics1);
    f.link = linkDelta(link0, link1);
    f.retransmissions = {
      bobNacks: (bv1.nackCount || 0) - (bv0.nackCount || 0),
      bobPlis: (bv1.pliCount || 0) - (bv0.pliCount || 0),
      bobRtxPackets: (bv1.retransmittedPacketsReceived || 0) - (bv0.retransmittedPacketsReceived || 0),
      bobRtxBytes: rtxBytes,
      rtxShare: videoBytes > 0 ? rtxBytes / videoBytes : null,
      sfuRetransmissions: md.sfu_rtp_retransmissions_total || 0,
    };
    // Resends (counted over all consumers; carol's clean link needs next to none) among the
    // packets offered to bob's saturated link.
    f.retransmissions.sfuResendShareOfLink =
      f.link && f.link.packetsIn ? round(f.retransmissions.sfuRetransmissions / f.link.packetsIn, 3) : null;
    f.metrics = md;
    if (f.link) f.link.kbpsIn = round(kbps(f.link.bytesIn, samples[iLift].wall - limitAt), 0);
    const aliceRate = (i, j) => {
      const r = streamRates(samples[i].alice, samples[j].alice);
      return Object.values(r).reduce((x, y) => x + (y || 0), 0);
    };
    const iHalf = samples.findIndex((s, i) => i > iLimit && s.wall - limitAt >= (WINDOW_S / 2) * 1000);
    const iCleanHalf = samples.findIndex((s, i) => i >= warmFrom && s.t >= samples[iLimit].t - (run.simulcast ? WARM_S : CLEAN_S) / 2);
    f.aliceCleanKbps = round(aliceRate(iCleanHalf, iLimit), 0);
    f.aliceLimitedKbps = round(aliceRate(iHalf, iLift), 0);
    const lastOut = (i) => samples[i].alice.streams.map((s) => ({ ssrc: s.ssrc, target: s.targetBitrate, qlr: s.qualityLimitationReason, size: `${s.frameWidth}x${s.frameHeight}` }));
    f.aliceAtLimit = lastOut(iLimit);
    f.aliceAtLift = lastOut(iLift);
    f.aliceEstimateKbps = { atLimit: samples[iLimit].alice.availableOutgoingBitrate, atLift: samples[iLift].alice.availableOutgoingBitrate };
    // The SFU's estimate toward bob over the window (transportStats; null: not measured).
    f.sfuEstimateToBob = samples.slice(iLimit, iLift + 1).map((s) => s.sfuEstimate);
    f.transportStatsReceived = h.control.notifications.filter((n) => n.message.method === 'transportStats').length;
    const notes = profileNotes().map((n) => ({ at: round((n.at - limitAt) / 1000, 2), to: n.peerName, ...n.message }));
    f.profileNotifications = notes; // `at`: seconds from the limit
    const misses = result.misses;

    if (run.simulcast) {
      f.warmLayerKbps = Object.fromEntries(Object.entries(warmRates).filter(([k]) => k !== 'none').map(([k, v]) => [k, round(v, 0)]));
      f.layerSsrcs = encodings;
      f.rankToEncoding = rankToEncoding(warmByProfile);
      f.bestWaitS = bestWaitS;
      const best = bestProfiles(warmRates);
      f.bestProfiles = best;
      // Down: the first notification to bob after the limit naming a lower-bitrate layer.
      const before = samples[iLimit].sfuProfile.bob;
      f.bobProfileAtLimit = before;
      const down = notes.find((n) => n.to === 'bob' && n.id === consumerIds.bob && n.at >= 0 && n.profile !== 'none' && warmRates[n.profile] < warmRates[before]);
      f.switchDownS = down ? down.at : null;
      f.switchDownTo = down ? down.profile : null;
      // Only a layer that does not fit the link must be left (e.g. not 700 kbit/s at 1000).
      f.switchDownNeeded = !fits(warmRates[before], run.limitKbps);
      if (!f.switchDownNeeded) {
        // nothing to require
      } else if (!down)
        misses.push(`bob: no move to a lower-bitrate layer within ${WINDOW_S} s of the ${run.limitKbps} kbit/s limit (needed within ${SWITCH_DOWN_S} s; he stayed on "${before}", ${round(warmRates[before], 0)} kbit/s)`);
      else if (down.at > SWITCH_DOWN_S)
        misses.push(`bob: moved down to "${down.profile}" after ${round(down.at)} s (needed within ${SWITCH_DOWN_S} s; ${round(down.at - SWITCH_DOWN_S)} s late)`);
      // Stopped ("none") while the lowest layer fits: the rule is to stop only when nothing fits.
      const windowSamples = samples.slice(iLimit + 1, iLift + 1);
      const stopped = notes.find((n) => n.to === 'bob' && n.id === consumerIds.bob && n.at >= 0 && n.profile === 'none');
      f.bobStoppedS = windowSamples.filter((x) => x.sfuProfile.bob === 'none').length; // ~seconds
      f.bobStoppedFirstAt = stopped ? stopped.at : null;
      const lowest = Math.min(...Object.entries(warmRates).filter(([k]) => k !== 'none').map(([, v]) => v));
      if (stopped && fits(lowest, run.limitKbps))
        misses.push(`bob: video stopped ("none") from ${round(stopped.at)} s after the limit, for ~${f.bobStoppedS} s of ${WINDOW_S}, although the lowest layer (${round(lowest, 0)} kbit/s) fits ${run.limitKbps} kbit/s`);
      // Carol: on a best layer all through the window, and receiving it.
      const carolProfiles = [...new Set(samples.slice(iLimit, iLift + 1).map((x) => x.sfuProfile.carol))];
      const carolWin = decoding(samples, 'carol', iLimit, iLift);
      const layerWin = byRank(profileRates(encodings, streamRates(samples[iLimit].alice, samples[iLift].alice)));
      const carolLayer = samples[iLift].sfuProfile.carol;
      f.carol = {
        profiles: carolProfiles, fps: round(carolWin.fps), kbps: round(carolWin.kbps, 0),
        layerKbps: round(layerWin[carolLayer], 0), ratio: layerWin[carolLayer] ? round(carolWin.kbps / layerWin[carolLayer], 2) : null,
        freezeTotalS: round(carolWin.freezeTotalS, 2),
      };
      const notBest = carolProfiles.filter((p) => !best.includes(p));
      f.carolOnBest = notBest.length === 0 && f.carol.ratio !== null && f.carol.ratio >= CAROL_MIN_RATIO;
      if (notBest.length)
        misses.push(`carol: on "${notBest.join('", "')}" (${notBest.map((p) => `${round(warmRates[p], 0)} kbit/s`).join(', ')}) during the window, not the best layer ("${best.join('" or "')}", ${round(bestRate(warmRates), 0)} kbit/s)`);
      if (f.carol.ratio === null || f.carol.ratio < CAROL_MIN_RATIO)
        misses.push(`carol: received ${f.carol.kbps} kbit/s of her layer's ${f.carol.layerKbps} kbit/s (ratio ${f.carol.ratio}, needed >= ${CAROL_MIN_RATIO})`);
      // Up.
      f.switchUpS = upAt === null ? null : round((upAt - liftAt) / 1000);
      f.bobProfileAtEnd = samples[samples.length - 1].sfuProfile.bob;
      if (upAt === null)
        misses.push(`bob: not back on the best layer within ${SWITCH_UP_S} s of lifting the limit (SFU says "${f.bobProfileAtEnd}", ${round(warmRates[f.bobProfileAtEnd], 0)} kbit/s; needed "${best.join('" or "')}", ${round(bestRate(warmRates), 0)} kbit/s, and >= ${UP_MIN_RATIO * 100} % of its bitrate received)`);
      else if (f.switchUpS > SWITCH_UP_S)
        misses.push(`bob: back on the best layer after ${f.switchUpS} s (needed within ${SWITCH_UP_S} s)`);
    } else {
      // The encoder's target (what alice's estimate allows) and what she really sends.
      const target = (i) => samples[i].alice.streams.reduce((x, st) => x + (st.targetBitrate || 0), 0) / 1000;
      const meanTarget = (i, j) => {
        const xs = samples.slice(i, j + 1).map((_, k) => target(i + k));
        return xs.reduce((x, y) => x + y, 0) / xs.length;
      };
      f.aliceCleanTargetKbps = round(meanTarget(iCleanHalf, iLimit), 0);
      f.aliceRampS = rampS;
      f.aliceLimitedTargetKbps = round(meanTarget(iHalf, iLift), 0);
      f.aliceQualityLimitation = samples.slice(iLimit, iLift + 1).map((x) => x.alice.streams[0].qualityLimitationReason);
      if (f.aliceCleanTargetKbps < SINGLE_CLEAN_MIN * run.limitKbps)
        misses.push(`alice: targetBitrate only ${f.aliceCleanTargetKbps} kbit/s on the clean link (needed >= ${SINGLE_CLEAN_MIN * run.limitKbps} for the run to show a reduction)`);
      if (f.aliceCleanKbps <= run.limitKbps)
        misses.push(`alice: sent only ${f.aliceCleanKbps} kbit/s on the clean link (needed > ${run.limitKbps}, the limit, for the run to show a reduction)`);
      if (f.aliceLimitedTargetKbps > run.limitKbps)
        misses.push(`alice: targetBitrate ${f.aliceLimitedTargetKbps} kbit/s over the last ${round(WINDOW_S / 2)} s under bob's ${run.limitKbps} kbit/s link (needed <= ${run.limitKbps}; ${round(f.aliceLimitedTargetKbps / run.limitKbps, 2)} x over; clean ${f.aliceCleanTargetKbps})`);
      if (f.aliceLimitedKbps > run.limitKbps)
        misses.push(`alice: sent ${f.aliceLimitedKbps} kbit/s of video over the last ${round(WINDOW_S / 2)} s under bob's ${run.limitKbps} kbit/s link (needed <= ${run.limitKbps}; ${round(f.aliceLimitedKbps / run.limitKbps, 2)} x over; clean ${f.aliceCleanKbps})`);
    }
    if (run.simulcast) {
      // The decoding figures of the issue (single layer: reported only).
      if (bobWin.fps < MIN_FPS)
        misses.push(`bob: decoded ${round(bobWin.fps)} frames/s over the ${f.bobWindow.seconds} s from the limit (needed >= ${MIN_FPS}; short by ${round(MIN_FPS - bobWin.fps)})` +
          (f.bobStoppedS ? `; the SFU had stopped his video for ~${f.bobStoppedS} s` : ''));
      if (bobWin.freezeTotalS > MAX_FREEZE_S)
        misses.push(`bob: frozen ${round(bobWin.freezeTotalS)} s over the ${f.bobWindow.seconds} s from the limit (${round(bobWin.freezeS)} s in ${bobWin.freezes} freezes + ${round(bobWin.pauseS)} s in ${bobWin.pauses} pauses of > 5 s + ${round(bobWin.openStallS)} s still frozen; allowed <= ${MAX_FREEZE_S}, over by ${round(bobWin.freezeTotalS - MAX_FREEZE_S)})`);
    }
    result.figures = f;
    result.timeline = samples.map((s, i) => describeSecond(s, samples[i - 1], encodings));
    result.seconds = round(now());
    return { result, peers, h };
  } catch (error) {
    result.error = error.message;
    result.timeline = samples.map((s, i) => describeSecond(s, samples[i - 1], (s.alice && s.alice.encodings) || []));
    error.diagnostics = await diagnostics(peers, h).catch((e) => `diagnostics failed: ${e.message}`);
    throw error;
  } finally {
    results.push(result);
    for (const peer of peers) await peer.close();
    await stopHost(h);
    if (proxy) await proxy.stop();
  }
}

for (const run of RUNS) {
  test(`bandwidth adaptation: ${run.name} kbit/s toward bob (${run.simulcast ? 'alice simulcast, carol clean' : 'alice single-layer'})`, async (t) => {
    const skip = hosts.node.skip();
    if (skip) return t.skip(skip);
    let outcome;
    try {
      outcome = await measure(run);
    } catch (error) {
      if (error.diagnostics) console.log(error.diagnostics);
      throw error;
    }
    const { result } = outcome;
    const f = result.figures;
    console.log(
      `${run.name}: bob ${f.bobWindow.fps} fps, frozen ${f.bobWindow.freezeTotalS} s, ${f.bobWindow.kbps} kbit/s over ${f.bobWindow.seconds} s; ` +
        (run.simulcast
          ? `layers ${JSON.stringify(f.warmLayerKbps)} kbit/s; down ${f.switchDownS === null ? 'never' : `${f.switchDownS} s`}, ` +
            `up ${f.switchUpS === null ? 'never' : `${f.switchUpS} s`}${f.switchDownS === null ? ' (he never went down)' : ''}; carol ${JSON.stringify(f.carol)}; `
          : '') +
        `alice ${f.aliceCleanKbps} -> ${f.aliceLimitedKbps} kbit/s; NACKs ${f.retransmissions.bobNacks}, RTX ${f.retransmissions.bobRtxPackets}, SFU resends ${f.retransmissions.sfuRetransmissions} (${f.retransmissions.sfuResendShareOfLink === null ? '–' : `${round(f.retransmissions.sfuResendShareOfLink * 100)} %`} of the packets offered to bob's link), link drops ${f.link && f.link.queueDrops}`
    );
    if (VERBOSE) for (const d of result.timeline) console.log(secondLine(d));
    if (result.misses.length)
      throw new Error(`${run.name} kbit/s: ${result.misses.length} figure(s) missed:\n  - ${result.misses.join('\n  - ')}`);
  });
}
