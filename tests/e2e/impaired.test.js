// Media under loss, delay and jitter: two headless Chromium peers of the demo through the
// Node host, with the test kit's impairment proxy (target/release/sfu-netem, one process
// per impaired leg) between a browser and the SFU.
//
// alice (joins first) sends; what is measured is bob's decoding of alice's video. The two
// legs of that path:
//   - producer leg: alice's send transport (alice -> SFU media, SFU -> alice RTCP);
//   - consumer leg: bob's recv transport (SFU -> bob media, bob -> SFU NACK/PLI/RR).
// The host (test hooks, lib/host-hooks.js) gives the page of a proxied transport one UDP
// candidate, the proxy's address (127.0.0.2), instead of the library's candidates; the
// proxy relays to the library's UDP candidate from 127.0.0.3. Both directions of a proxied
// leg get the same link profile.
//
// Runs, in this order, in one process (each with a fresh host and room):
//   clean          both legs through proxies that impair nothing (the reference);
//   consumer 3%    consumer leg: 3 % random loss, 50 ms delay each way (100 ms RTT on the
//                  leg), 20 ms jitter (uniform +-20 ms; the proxy lets jitter reorder);
//   producer 3%    the same on the producer leg;
//   both 2%        2 % loss, same delay and jitter, on both legs.
// Each run: from bob's first decoded frame of alice, the SFU's producerStats/consumerStats
// are enabled (on behalf of alice and bob, 1 s interval), then MEDIA_SECONDS are measured.
// An impaired run passes if bob decodes frames at >= 80 % of the clean run's rate. Each run
// prints, and writes to tests/e2e/results/impaired-<time>.json (not committed), over the
// window: frames decoded per second and the ratio to clean, freezeCount and
// totalFreezesDuration, bob's nackCount/pliCount/retransmittedPacketsReceived, alice's
// retransmittedPacketsSent/nackCount, the SFU's NACK/PLI counters (consumerStats: received
// from bob; producerStats: sent to alice), the metrics' NACK/retransmission counters if the
// binding has server.metrics(), and the proxies' counters (loss applied, released_late).
//
// Env: SFU_E2E_IMPAIRED_SECONDS (window, default 15), SFU_E2E_IMPAIRED_RUNS=clean,"both 2%"
//      (a subset; clean always runs first), SFU_E2E_IMPAIRED_EXTRA (more runs, see below),
//      SFU_DEBUG=1.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { repo, sleep, hosts, startHost, stopHost } = require('./lib/host');
const { launch } = require('./lib/browsers');
const { startNetem, NETEM } = require('./lib/netem');
const { demoState, waitSending, waitUntil, videoInbound, videoOutbound, selectedPairs, diagnostics } =
  require('./lib/media');

const MEDIA_SECONDS = Number(process.env.SFU_E2E_IMPAIRED_SECONDS || 15);
const JOIN_TIMEOUT_MS = 20_000;
const FIRST_FRAME_TIMEOUT_MS = 30_000;
const STATS_TIMEOUT_MS = 5_000;
const MIN_RATIO = 0.8;

const LOSSY = (loss) => ({ loss, delay_ms: 50, jitter_ms: 20 });
const RUNS = [
  { name: 'clean', profile: 'no impairment (through the proxies)', consumer: {}, producer: {} },
  { name: 'consumer 3%', profile: '3 % loss, 50 ms +- 20 ms each way, consumer leg', consumer: LOSSY(0.03) },
  { name: 'producer 3%', profile: '3 % loss, 50 ms +- 20 ms each way, producer leg', producer: LOSSY(0.03) },
  { name: 'both 2%', profile: '2 % loss, 50 ms +- 20 ms each way, both legs', consumer: LOSSY(0.02), producer: LOSSY(0.02) },
];
// Extra runs for investigation: a JSON array of { name, consumer?, producer? } (link JSON
// of the proxy, both directions of the leg), appended to the selected runs.
for (const extra of JSON.parse(process.env.SFU_E2E_IMPAIRED_EXTRA || '[]')) {
  RUNS.push({ profile: JSON.stringify({ consumer: extra.consumer, producer: extra.producer }), ...extra, extra: true });
}
const SELECTED = (process.env.SFU_E2E_IMPAIRED_RUNS || RUNS.map((r) => r.name).join(','))
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const s of SELECTED) if (!RUNS.some((r) => r.name === s)) throw new Error(`SFU_E2E_IMPAIRED_RUNS: unknown run ${s}`);
if (!(MEDIA_SECONDS >= 3)) throw new Error('SFU_E2E_IMPAIRED_SECONDS must be >= 3');

let browser = null;
let clean = null; // the clean run's figures
const results = [];
const resultsFile = path.join(
  repo, 'tests', 'e2e', 'results', `impaired-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
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
    fs.writeFileSync(resultsFile, `${JSON.stringify({ mediaSeconds: MEDIA_SECONDS, runs: results }, null, 2)}\n`);
    console.log(`results: ${path.relative(repo, resultsFile)}`);
    console.log(table(results));
  }
});

// ---------------------------------------------------------------------------
// Figures.

// The latest stats notification of `method` about `id` (its `stats[0]`), with its time.
function latestStats(control, method, id) {
  for (let i = control.notifications.length - 1; i >= 0; i--) {
    const n = control.notifications[i];
    if (n.message.method === method && n.message.id === id) return { at: n.at, ...n.message.stats[0] };
  }
  return null;
}

async function waitStats(control, method, id, after) {
  const deadline = Date.now() + STATS_TIMEOUT_MS;
  for (;;) {
    const s = latestStats(control, method, id);
    if (s && s.at > after) return s;
    if (Date.now() > deadline) throw new Error(`no ${method} for ${id} within ${STATS_TIMEOUT_MS} ms`);
    await sleep(100);
  }
}

// The NACK / retransmission / RTX series of a Prometheus text, by series name with labels.
function metricCounters(text) {
  if (typeof text !== 'string') return null;
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(\S+)/.exec(line);
    if (m && /nack|retrans|rtx/i.test(m[1])) out[m[1]] = Number(m[2]);
  }
  return out;
}

const delta = (a, b, f) => (b && a && typeof b[f] === 'number' && typeof a[f] === 'number' ? b[f] - a[f] : null);
const deltas = (a, b, fields) => Object.fromEntries(fields.map((f) => [f, delta(a, b, f)]));

function linkCounters(c) {
  if (!c) return null;
  const pick = (d) => ({
    in: d.packets_in, delivered: d.delivered, lost: d.dropped_loss, queueDrops: d.dropped_queue,
    reordered: d.reordered, releasedLate: d.released_late,
  });
  return { up: pick(c.up), down: pick(c.down) };
}

function table(rows) {
  const lines = [
    '| run | profile | frames/s (clean) | ratio | freezes (total ms) | NACKs bob sent | RTX bob received | RTX alice sent | SFU NACKs from bob / to alice | SFU PLIs from bob / to alice |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const w = r.window;
    const s = (v) => (v === null || v === undefined ? '–' : String(v));
    lines.push(
      `| ${r.name} | ${r.profile} | ${w.fps.toFixed(1)} (${r.cleanFps === null ? '–' : r.cleanFps.toFixed(1)}) | ` +
        `${r.ratio === null ? '–' : r.ratio.toFixed(2)} | ${s(w.bob.freezeCount)} (${w.bob.totalFreezesDuration === null ? '–' : Math.round(w.bob.totalFreezesDuration * 1000)}) | ` +
        `${s(w.bob.nackCount)} | ${s(w.bob.retransmittedPacketsReceived)} | ${s(w.alice.retransmittedPacketsSent)} | ` +
        `${s(w.sfu.consumerNacks)} / ${s(w.sfu.producerNacks)} | ${s(w.sfu.consumerPlis)} / ${s(w.sfu.producerPlis)} |`
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// One run.

async function measure(run) {
  const t0 = Date.now();
  const h = await startHost(hosts.node, { hooks: true });
  const peers = [];
  const proxies = {}; // leg -> proxy
  const roomId = `impaired-${run.name.replace(/\W+/g, '-')}`;
  const legOf = (peerName, direction) =>
    peerName === 'bob' && direction === 'recv' ? 'consumer' : peerName === 'alice' && direction === 'send' ? 'producer' : null;
  h.control.onTransport(async ({ peerName, direction, data }) => {
    const leg = legOf(peerName, direction);
    if (!leg || !run[leg]) return data;
    const udp = data.iceCandidates.find((c) => c.protocol === 'udp');
    if (!udp) throw new Error(`no UDP candidate to proxy: ${JSON.stringify(data.iceCandidates)}`);
    const proxy = await startNetem({
      upstreamUdp: `${udp.ip}:${udp.port}`,
      up: run[leg],
      down: run[leg],
      seed: leg === 'consumer' ? 11 : 22,
    });
    proxies[leg] = proxy;
    const [ip, port] = proxy.udp.split(':');
    // Only the proxy: no candidate that bypasses it (the TCP one is dropped).
    return { ...data, iceCandidates: [{ ...udp, ip, port: Number(port) }] };
  });
  await h.control.watch(['consumerStats', 'producerStats']);
  try {
    const alice = await browser.newPeer(h.base, roomId, 'alice');
    peers.push(alice);
    await waitSending(alice, JOIN_TIMEOUT_MS);
    const bob = await browser.newPeer(h.base, roomId, 'bob');
    peers.push(bob);
    await waitSending(bob, JOIN_TIMEOUT_MS);

    // bob's first decoded frame of alice.
    const first = await waitUntil('bob decodes alice', FIRST_FRAME_TIMEOUT_MS, peers, async () => {
      const v = await videoInbound(bob, 'alice');
      return { done: Boolean(v && v.framesDecoded > 0), detail: v };
    });
    const firstFrameS = (Date.now() - t0) / 1000;
    const producer = await videoOutbound(alice);
    assert.ok(producer, 'alice has no video producer');
    for (const leg of ['consumer', 'producer'])
      if (run[leg]) assert.ok(proxies[leg], `the ${leg} leg was not proxied (no createTransport seen for it)`);

    // The SFU's stats, requested on behalf of the peers that own the consumer / producer.
    const enabledAt = Date.now();
    await h.control.notify(roomId, 'bob', {
      method: 'enableConsumerStats', target: 'peer', notification: true, id: first.consumerId, interval: 1000,
    });
    await h.control.notify(roomId, 'alice', {
      method: 'enableProducerStats', target: 'peer', notification: true, id: producer.producerId, interval: 1000,
    });
    await waitStats(h.control, 'consumerStats', first.consumerId, enabledAt);
    await waitStats(h.control, 'producerStats', producer.producerId, enabledAt);

    // The window.
    const snap = async () => ({
      wall: Date.now(),
      bob: await videoInbound(bob, 'alice'),
      alice: await videoOutbound(alice),
      consumerStats: latestStats(h.control, 'consumerStats', first.consumerId),
      producerStats: latestStats(h.control, 'producerStats', producer.producerId),
      metrics: metricCounters(await h.control.metrics()),
      links: Object.fromEntries(
        await Promise.all(Object.entries(proxies).map(async ([leg, p]) => [leg, await p.counters()]))
      ),
    });
    const s0 = await snap();
    const perSecond = [];
    const freezesPerSecond = [];
    let last = s0.bob.framesDecoded;
    let lastFreezes = s0.bob.freezeCount;
    for (let i = 0; i < MEDIA_SECONDS; i++) {
      await sleep(1000);
      const v = await videoInbound(bob, 'alice');
      assert.ok(v && v.consumerId === first.consumerId, `bob's consumer of alice's video changed or went: ${JSON.stringify(v)}`);
      perSecond.push(v.framesDecoded - last);
      freezesPerSecond.push(v.freezeCount - lastFreezes);
      last = v.framesDecoded;
      lastFreezes = v.freezeCount;
      for (const peer of peers) {
        const { state, error } = await demoState(peer);
        if (state !== 'joined') throw new Error(`${peer.name} page state "${state}" (${error})`);
      }
    }
    const s1Time = Date.now();
    const s1 = await snap();
    // The SFU's counters up to the end of the window (stats come every second).
    s1.consumerStats = await waitStats(h.control, 'consumerStats', first.consumerId, s1Time).catch(() => s1.consumerStats);
    s1.producerStats = await waitStats(h.control, 'producerStats', producer.producerId, s1Time).catch(() => s1.producerStats);
    const pairs = { alice: await selectedPairs(alice), bob: await selectedPairs(bob) };

    // Chromium omits retransmittedPacketsReceived until the first retransmission arrives.
    for (const s of [s0, s1]) if (s.bob.retransmittedPacketsReceived === undefined) s.bob.retransmittedPacketsReceived = 0;
    const seconds = (s1.bob.at - s0.bob.at) / 1000;
    const frames = s1.bob.framesDecoded - s0.bob.framesDecoded;
    const window = {
      seconds: Math.round(seconds * 10) / 10,
      frames,
      fps: frames / seconds,
      framesPerSecond: perSecond,
      freezesPerSecond,
      bob: deltas(s0.bob, s1.bob, [
        'framesDecoded', 'framesDropped', 'freezeCount', 'totalFreezesDuration', 'nackCount', 'pliCount', 'firCount',
        'packetsReceived', 'packetsLost', 'retransmittedPacketsReceived', 'keyFramesDecoded',
      ]),
      alice: deltas(s0.alice, s1.alice, ['framesEncoded', 'packetsSent', 'retransmittedPacketsSent', 'nackCount', 'pliCount']),
      sfu: {
        consumerNacks: delta(s0.consumerStats, s1.consumerStats, 'nackCount'),
        consumerPlis: delta(s0.consumerStats, s1.consumerStats, 'pliCount'),
        producerNacks: delta(s0.producerStats, s1.producerStats, 'nackCount'),
        producerPlis: delta(s0.producerStats, s1.producerStats, 'pliCount'),
        metrics: s0.metrics && s1.metrics ? Object.fromEntries(Object.keys(s1.metrics).map((k) => [k, s1.metrics[k] - (s0.metrics[k] || 0)])) : null,
      },
      links: Object.fromEntries(Object.keys(s1.links).map((leg) => [leg, { start: linkCounters(s0.links[leg]), end: linkCounters(s1.links[leg]) }])),
    };
    if (window.bob.totalFreezesDuration !== null) window.bob.totalFreezesDuration = Math.round(window.bob.totalFreezesDuration * 1000) / 1000;
    const result = {
      name: run.name,
      profile: run.profile,
      links: { consumer: run.consumer || null, producer: run.producer || null },
      firstFrameSeconds: Math.round(firstFrameS * 10) / 10,
      window,
      end: { bob: s1.bob, alice: s1.alice },
      candidatePairs: {
        aliceSend: pairs.alice.send && pairs.alice.send.selected,
        bobRecv: pairs.bob.recv && pairs.bob.recv.selected,
      },
      seconds: 0,
    };
    // The proxied transports really used the proxy, and it really impaired them.
    for (const [leg, peerName, direction] of [['consumer', 'bob', 'recv'], ['producer', 'alice', 'send']]) {
      if (!run[leg]) continue;
      const sel = pairs[peerName][direction] && pairs[peerName][direction].selected;
      assert.ok(sel && `${sel.remote.address}:${sel.remote.port}` === proxies[leg].udp,
        `${peerName}'s ${direction} transport does not use the ${leg} proxy ${proxies[leg].udp}: ${JSON.stringify(sel)}`);
      const end = s1.links[leg];
      const media = leg === 'consumer' ? end.down : end.up;
      assert.ok(media.delivered > 0, `nothing relayed on the ${leg} leg: ${JSON.stringify(end)}`);
      if (run[leg].loss > 0) assert.ok(media.dropped_loss > 0, `no loss applied on the ${leg} leg: ${JSON.stringify(end)}`);
    }
    result.seconds = Math.round((Date.now() - t0) / 100) / 10;
    return result;
  } catch (error) {
    console.log(await diagnostics(peers, h));
    for (const [leg, p] of Object.entries(proxies)) {
      const c = await p.counters().catch((e) => e.message);
      console.log(`----- ${leg} proxy ${p.udp}: ${JSON.stringify(c)}`);
    }
    throw error;
  } finally {
    for (const peer of peers) await peer.close();
    await stopHost(h);
    for (const p of Object.values(proxies)) await p.stop();
  }
}

function summary(r) {
  const w = r.window;
  const late = Object.entries(w.links)
    .map(([leg, l]) => `${leg} proxy released_late up ${l.end.up.releasedLate} down ${l.end.down.releasedLate}`)
    .join(', ');
  return (
    `${r.name}: ${w.fps.toFixed(1)} frames/s over ${w.seconds} s` +
    (r.ratio === null ? '' : ` = ${r.ratio.toFixed(2)} x clean`) +
    `; bob: ${JSON.stringify(w.bob)}; alice: ${JSON.stringify(w.alice)}; SFU: ${JSON.stringify(w.sfu)}; ` +
    `frames per second ${JSON.stringify(w.framesPerSecond)}, freezes ${JSON.stringify(w.freezesPerSecond)}; first frame after ${r.firstFrameSeconds} s; ${late}; run ${r.seconds} s`
  );
}

for (const run of RUNS) {
  if (run.name !== 'clean' && !run.extra && !SELECTED.includes(run.name)) continue;
  test(`two Chromium peers, ${run.name}: ${run.profile}`, { timeout: 120_000 }, async (t) => {
    const why = hosts.node.skip();
    if (why) return t.skip(why);
    if (run.name !== 'clean' && !clean) throw new Error('the clean run failed: nothing to compare with');
    const r = await measure(run);
    r.cleanFps = clean ? clean.window.fps : r.window.fps;
    r.ratio = run.name === 'clean' ? null : r.window.fps / clean.window.fps;
    results.push(r);
    console.log(summary(r));
    if (run.name === 'clean') {
      assert.ok(r.window.frames > 30, `clean run: bob decoded only ${r.window.frames} frames of alice in ${r.window.seconds} s`);
      clean = r;
    } else {
      assert.ok(
        r.ratio >= MIN_RATIO,
        `${run.name}: bob decoded ${r.window.fps.toFixed(1)} frames/s, ${r.ratio.toFixed(2)} of the clean run's ` +
          `${clean.window.fps.toFixed(1)} (need ${MIN_RATIO}); per second ${JSON.stringify(r.window.framesPerSecond)}, ` +
          `clean ${JSON.stringify(clean.window.framesPerSecond)}; proxies ${JSON.stringify(r.window.links)}`
      );
    }
  });
}
