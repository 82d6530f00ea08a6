// ICE over TCP end to end: browsers whose pages receive only the passive TCP candidates
// of every transport, as behind a network that blocks UDP.
//
// The Node host runs with the test hooks (lib/host-hooks.js): every createTransport answer
// of the library (one UDP and one passive TCP host candidate) reaches the page without its
// UDP candidates; the library is not told. Two peers join one room (alice first), each
// produces audio + video and consumes the other. Then:
//   1. each decodes > 30 frames of the other's video and receives its audio;
//   2. getStats of each page shows, on both its transports (send and recv), a selected
//      candidate pair that succeeded whose local and remote candidates are TCP, the remote
//      one being the library's TCP candidate.
// Pairings: chromium + chromium, and chromium + firefox (Firefox connects with its active
// TCP candidates).
//
// Env: SFU_E2E_TCP_PAIRINGS=chromium-chromium (a subset; default both), SFU_DEBUG=1.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { repo, sleep, hosts, startHost, stopHost } = require('./lib/host');
const { launch } = require('./lib/browsers');
const { waitSending, waitMedia, selectedPairs, diagnostics } = require('./lib/media');

const ALL_PAIRINGS = ['chromium-chromium', 'chromium-firefox'];
const PAIRINGS = (process.env.SFU_E2E_TCP_PAIRINGS || ALL_PAIRINGS.join(','))
  .split(',')
  .map((p) => p.trim())
  .filter(Boolean);
for (const p of PAIRINGS) {
  if (!ALL_PAIRINGS.includes(p)) throw new Error(`SFU_E2E_TCP_PAIRINGS: unknown pairing ${p}`);
}

const JOIN_TIMEOUT_MS = 20_000;
const MEDIA_TIMEOUT_MS = 30_000;
const PAIR_TIMEOUT_MS = 10_000;

const browsers = {};

before(async () => {
  if (hosts.node.skip()) return;
  if (!fs.existsSync(path.join(repo, 'examples', 'web', 'dist', 'app.js')))
    throw new Error('examples/web/dist/app.js missing: run bash examples/web/setup.sh');
  for (const engine of new Set(PAIRINGS.flatMap((p) => p.split('-')))) {
    browsers[engine] = await launch(engine);
    console.log(`${engine}: ${browsers[engine].version}`);
  }
});

after(async () => {
  for (const b of Object.values(browsers)) await Promise.race([b.close().catch(() => {}), sleep(10_000)]);
});

// The library's answer without its UDP candidates; records what each transport offered.
function stripUdp(offered) {
  return ({ peerName, direction, data }) => {
    const all = data.iceCandidates || [];
    const tcp = all.filter((c) => c.protocol === 'tcp');
    offered.push({ peerName, direction, candidates: all.map((c) => `${c.protocol} ${c.ip}:${c.port} ${c.tcpType || ''}`.trim()) });
    if (!tcp.length) throw new Error(`the library offered no TCP candidate: ${JSON.stringify(all)}`);
    return { ...data, iceCandidates: tcp };
  };
}

// Both transports of `peer` connected over TCP: the selected pair succeeded, its local and
// remote candidates are TCP, the remote one is a TCP candidate the library offered.
async function waitTcpPairs(peer, tcpCandidates) {
  const deadline = Date.now() + PAIR_TIMEOUT_MS;
  let pairs;
  for (;;) {
    pairs = await selectedPairs(peer);
    const ok = ['send', 'recv'].every((d) => pairs[d] && pairs[d].selected && pairs[d].selected.state === 'succeeded');
    if (ok || Date.now() > deadline) break;
    await sleep(250);
  }
  for (const direction of ['send', 'recv']) {
    const t = pairs[direction];
    const where = `${peer.name} (${peer.engine}) ${direction} transport: ${JSON.stringify(t)}`;
    assert.ok(t && t.selected, `no selected candidate pair on ${where}`);
    const { selected } = t;
    assert.equal(selected.state, 'succeeded', where);
    assert.equal(selected.local.protocol, 'tcp', `local candidate not TCP on ${where}`);
    assert.equal(selected.remote.protocol, 'tcp', `remote candidate not TCP on ${where}`);
    assert.ok(
      tcpCandidates.has(`${selected.remote.address}:${selected.remote.port}`),
      `remote candidate is not the library's TCP candidate on ${where}`
    );
    // No other path exists: every pair that succeeded is TCP. (Chromium opens two TCP
    // connections per transport and nominates both, the library being ICE-lite; for the
    // first seconds the library may send on the other one: both are TCP.)
    for (const p of t.pairs) {
      assert.equal(p.local.protocol, 'tcp', `a non-TCP pair succeeded on ${where}`);
      assert.equal(p.remote.protocol, 'tcp', `a non-TCP pair succeeded on ${where}`);
    }
  }
  return pairs;
}

for (const pairing of PAIRINGS) {
  const [firstEngine, secondEngine] = pairing.split('-');
  test(`${firstEngine} (joins first) + ${secondEngine}, TCP candidates only: media both ways over ICE-TCP`, { timeout: 120_000 }, async (t) => {
    const why = hosts.node.skip();
    if (why) return t.skip(why);
    const t0 = Date.now();
    const h = await startHost(hosts.node, { hooks: true });
    const peers = [];
    const offered = [];
    h.control.onTransport(stripUdp(offered));
    try {
      const roomId = `tcp-${pairing}`;
      const alice = await browsers[firstEngine].newPeer(h.base, roomId, 'alice');
      peers.push(alice);
      await waitSending(alice, JOIN_TIMEOUT_MS);
      const bob = await browsers[secondEngine].newPeer(h.base, roomId, 'bob');
      peers.push(bob);
      await waitSending(bob, JOIN_TIMEOUT_MS);

      const got = await Promise.all([
        waitMedia(peers, alice, 'bob', { timeoutMs: MEDIA_TIMEOUT_MS }),
        waitMedia(peers, bob, 'alice', { timeoutMs: MEDIA_TIMEOUT_MS }),
      ]);
      // Every transport was answered (2 per peer), each with a UDP and a TCP candidate.
      assert.equal(offered.length, 4, `createTransport answers: ${JSON.stringify(offered)}`);
      for (const o of offered) {
        assert.ok(o.candidates.some((c) => c.startsWith('udp ')), `no UDP candidate offered: ${JSON.stringify(o)}`);
        assert.ok(o.candidates.some((c) => c.startsWith('tcp ') && c.endsWith(' passive')), `no passive TCP candidate: ${JSON.stringify(o)}`);
      }
      const tcpCandidates = new Set(
        offered.flatMap((o) => o.candidates.filter((c) => c.startsWith('tcp ')).map((c) => c.split(' ')[1]))
      );
      const pairs = {};
      for (const peer of peers) pairs[peer.name] = await waitTcpPairs(peer, tcpCandidates);
      const describe = (p) =>
        `${p.selected.local.protocol}/${p.selected.local.tcpType || '-'} ${p.selected.local.address}:${p.selected.local.port}` +
        ` -> ${p.selected.remote.protocol}/${p.selected.remote.tcpType || '-'} ${p.selected.remote.address}:${p.selected.remote.port}`;
      for (const [i, peer] of peers.entries()) {
        const r = got[i];
        console.log(
          `${pairing} TCP-only: ${peer.name} (${peer.engine}) decoded ${r.video.framesDecoded} frames, ` +
            `${r.audio.packetsReceived} audio packets; send ${describe(pairs[peer.name].send)} ` +
            `(${pairs[peer.name].send.selectedBy}); recv ${describe(pairs[peer.name].recv)}`
        );
      }
      console.log(`${pairing} TCP-only: ${Math.round((Date.now() - t0) / 100) / 10} s`);
    } catch (error) {
      console.log(`createTransport answers: ${JSON.stringify(offered)}`);
      console.log(await diagnostics(peers, h));
      throw error;
    } finally {
      for (const peer of peers) await peer.close();
      await stopHost(h);
    }
  });
}
