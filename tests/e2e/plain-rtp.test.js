// End-to-end tests of plain RTP with real ffmpeg and real Chromium (docs/PROTOCOL.md,
// "Host requests" and "Plain RTP transports"), through the demo hosts and their options:
//
// 1. Node host, `--record DIR --audio-levels -100` (examples/node/record.js): two Chromium
//    pages (alice, bob; the fake microphone beeps) join the demo room.
//    - audioLevels lists both producers above the threshold;
//    - alice mutes (pauses her audio producer through the page's hook): audioLevels lists
//      bob alone and activeSpeaker names bob; then alice unmutes and bob mutes: alice;
//    - every producer is recorded by ffmpeg through createRtpStreamer; when the pages
//      leave, the library's BYE ends each ffmpeg (exit code 0) and `ffprobe -count_frames`
//      shows, per peer, a VP8 stream of >= 3 s with >= 60 frames and an Opus stream.
// 2. Python host, `--play testsrc --record DIR` (examples/python/play.py, record.py):
//    ffmpeg publishes a generated test pattern and tone as VP8 + Opus over two plain
//    transports; a Chromium page decodes > 30 of its frames and receives its audio
//    (getStats); alice's own producers are recorded as in 1, and so is the played stream
//    (plain RTP in, plain RTP out) once the host shuts down.
//
// Every wait is bounded. A failure prints the pages' figures and the host's log.
// Env: SFU_DEBUG=1 (host logs every frame; page consoles are echoed).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { repo, sleep, hosts, startHost, stopHost } = require('./lib/host');
const { launch } = require('./lib/browsers');

const JOIN_TIMEOUT_MS = 20_000;
const MEDIA_TIMEOUT_MS = 30_000;
const EVENT_TIMEOUT_MS = 20_000;
const FINISH_TIMEOUT_MS = 20_000; // every ffmpeg recorder has exited after the peers left
const MIN_RECORDED_MS = 8_000; // peers stay at least this long: >= 3 s and >= 60 frames of video survive startup
const LEVEL_THRESHOLD = -100; // dBov; Chromium's fake microphone averages about -75, silence is -127
const POLL_MS = 250;

let browser = null;

before(async () => {
  if (!fs.existsSync(path.join(repo, 'examples', 'web', 'dist', 'app.js')))
    throw new Error('examples/web/dist/app.js missing: run bash examples/web/setup.sh');
  browser = await launch('chromium');
});

after(async () => {
  if (browser) await Promise.race([browser.close(), sleep(10_000)]);
});

// ---------------------------------------------------------------------------
// Helpers.

function hostWith(base, extra) {
  return { name: base.name, skip: base.skip, command: (port) => {
    const [cmd, args] = base.command(port);
    return [cmd, [...args, ...extra]];
  } };
}

async function until(what, ms, fn) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(POLL_MS);
  }
}

async function waitJoined(peer) {
  await until(`${peer.name} joined`, JOIN_TIMEOUT_MS, async () => {
    const s = await peer.evaluate(() => (window.demo ? { state: window.demo.state, error: window.demo.error } : {}));
    if (s.state === 'failed' || s.state === 'closed') throw new Error(`${peer.name}: page state ${s.state} (${s.error})`);
    return s.state === 'joined';
  });
}

/** The host's log lines so far (stdout and stderr, in arrival order per stream). */
function lines(h) {
  return h.output.join('').split('\n');
}

/** Host events of the room in the host's log, in order: [{ index, event }]. */
function hostEvents(h) {
  const out = [];
  lines(h).forEach((line, index) => {
    // Node host: `[host] demo/- host event {...}`; Python host: `room 'demo' host event {...}`.
    const m = /host event (\{.*\})\s*$/.exec(line);
    if (m) out.push({ index, event: JSON.parse(m[1]) });
  });
  return out;
}

/** `ffmpeg` exit lines of the recorders: [{ file, code }]. */
function finishedRecordings(h) {
  const out = [];
  for (const line of lines(h)) {
    // `finished FILE (exit code N)` (Python: a negative N for a signal) or `(signal SIG)`.
    const m = /finished (\S+) \((?:exit code (-?\d+|null)|signal (\w+))\)/.exec(line);
    if (m) out.push({ file: m[1], code: m[2] === undefined || m[2] === 'null' ? null : Number(m[2]), signal: m[3] });
  }
  return out;
}

function ffprobe(file) {
  return new Promise((resolve, reject) => {
    execFile('ffprobe', ['-v', 'error', '-count_frames', '-show_entries',
      'stream=codec_type,codec_name,nb_read_frames,start_time:format=duration', '-of', 'json', file],
    { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`ffprobe ${file}: ${error.message} ${stderr}`));
      const j = JSON.parse(stdout);
      resolve({
        file: path.basename(file),
        duration: Number(j.format && j.format.duration),
        streams: (j.streams || []).map((s) => ({ type: s.codec_type, codec: s.codec_name, frames: Number(s.nb_read_frames) })),
      });
    });
  });
}

/** The recordings of `peer` in `dir`: { video: probe, audio: probe }. */
async function probePeer(dir, room, peer) {
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(`${room}-${peer}-`));
  const video = files.filter((f) => f.endsWith('.webm'));
  const audio = files.filter((f) => f.endsWith('.ogg'));
  assert.equal(video.length, 1, `one video recording of ${peer}: ${files}`);
  assert.equal(audio.length, 1, `one audio recording of ${peer}: ${files}`);
  return { video: await ffprobe(path.join(dir, video[0])), audio: await ffprobe(path.join(dir, audio[0])) };
}

function assertRecording(peer, r) {
  const v = r.video.streams.find((s) => s.type === 'video');
  assert.ok(v && v.codec === 'vp8', `${peer}: a VP8 stream in ${JSON.stringify(r.video)}`);
  assert.ok(r.video.duration >= 3, `${peer}: video of >= 3 s: ${JSON.stringify(r.video)}`);
  assert.ok(v.frames >= 60, `${peer}: >= 60 video frames: ${JSON.stringify(r.video)}`);
  const a = r.audio.streams.find((s) => s.type === 'audio');
  assert.ok(a && a.codec === 'opus' && a.frames > 0, `${peer}: an Opus stream in ${JSON.stringify(r.audio)}`);
}

async function diagnostics(peers, h) {
  const parts = [];
  for (const peer of peers) {
    let s;
    try {
      s = await Promise.race([peer.evaluate(() => window.demo && window.demo.stats()), sleep(5000).then(() => 'timeout')]);
    } catch (e) {
      s = `evaluate failed: ${e.message}`;
    }
    parts.push(`----- ${peer.name}: stats ${JSON.stringify(s)}`, peer.logs.join('\n'));
  }
  if (h) parts.push('----- host output -----', h.output.join(''));
  return parts.join('\n');
}

function tmpDir(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sfu-e2e-${tag}-`));
}

// ---------------------------------------------------------------------------
// 1. Recording, audio levels and the active speaker (Node host).

test('node host: ffmpeg records two Chromium peers; audio levels and the active speaker follow who is muted',
  { timeout: 240_000 }, async (t) => {
    const why = hosts.node.skip();
    if (why) return t.skip(why);
    const dir = tmpDir('rec-node');
    const peers = [];
    let h = null;
    try {
      h = await startHost(hostWith(hosts.node, ['--record', dir, '--audio-levels', String(LEVEL_THRESHOLD)]));
      const alice = await browser.newPeer(h.base, 'demo', 'alice');
      peers.push(alice);
      await waitJoined(alice);
      const bob = await browser.newPeer(h.base, 'demo', 'bob');
      peers.push(bob);
      await waitJoined(bob);
      const joinedAt = Date.now();

      // Both producers in one audioLevels report, above the threshold.
      const both = await until('audioLevels listing alice and bob', EVENT_TIMEOUT_MS, () =>
        hostEvents(h).find(({ event: e }) => e.event === 'audioLevels' &&
          ['alice', 'bob'].every((p) => e.levels.some((l) => l.peerName === p && l.dBov > LEVEL_THRESHOLD))));
      console.log(`levels of both: ${JSON.stringify(both.event.levels)}`);

      // Mute one, the other must be the only one reported and become the active speaker.
      for (const [muted, speaker] of [['alice', 'bob'], ['bob', 'alice']]) {
        const mutedPeer = peers.find((p) => p.name === muted);
        const speakerPeer = peers.find((p) => p.name === speaker);
        await speakerPeer.evaluate(() => window.demo.pauseProducer('audio', false));
        await mutedPeer.evaluate(() => window.demo.pauseProducer('audio', true));
        const from = lines(h).length;
        const alone = await until(`audioLevels with ${speaker} alone after ${muted} muted`, EVENT_TIMEOUT_MS, () =>
          hostEvents(h).find(({ index, event: e }) => index >= from && e.event === 'audioLevels' &&
            e.levels.length === 1 && e.levels[0].peerName === speaker && e.levels[0].dBov > LEVEL_THRESHOLD));
        // The speaker is decided every 300 ms: by now the latest decision names `speaker`.
        await until(`activeSpeaker ${speaker} after ${muted} muted`, EVENT_TIMEOUT_MS, () => {
          const s = hostEvents(h).filter(({ event: e }) => e.event === 'activeSpeaker');
          const last = s[s.length - 1];
          return last && last.event.peerName === speaker;
        });
        const s = hostEvents(h).filter(({ event: e }) => e.event === 'activeSpeaker');
        assert.equal(s[s.length - 1].event.peerName, speaker);
        console.log(`${muted} muted: ${JSON.stringify(alone.event)}, active speaker ${speaker}`);
      }
      await bob.evaluate(() => window.demo.pauseProducer('audio', false));

      // Media flowed to the pages too (the recording is not the only consumer).
      await until('alice decodes bob', MEDIA_TIMEOUT_MS, async () => {
        const s = await alice.evaluate(() => window.demo.stats());
        return s.bob && s.bob.videoFramesDecoded > 30;
      });
      const left = MIN_RECORDED_MS - (Date.now() - joinedAt);
      if (left > 0) await sleep(left);

      // The pages leave: their producers close, each streamer says BYE, ffmpeg finishes.
      for (const p of peers) await p.evaluate(() => window.demo.leave());
      const done = await until('4 recordings finished', FINISH_TIMEOUT_MS, () => {
        const f = finishedRecordings(h);
        return f.length >= 4 && f;
      });
      for (const f of done) assert.equal(f.code, 0, `ffmpeg ended by the BYE with exit code 0: ${JSON.stringify(f)}`);
      for (const name of ['alice', 'bob']) {
        const r = await probePeer(dir, 'demo', name);
        console.log(`ffprobe ${name}: ${JSON.stringify(r)}`);
        assertRecording(name, r);
      }
    } catch (error) {
      console.log(await diagnostics(peers, h));
      throw error;
    } finally {
      for (const p of peers) await p.close();
      await stopHost(h);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

// ---------------------------------------------------------------------------
// 2. Playing into a room, and recording (Python host).

test('python host: ffmpeg plays a test pattern into the room for a Chromium peer; the peer is recorded',
  { timeout: 180_000 }, async (t) => {
    const why = hosts.python.skip();
    if (why) return t.skip(why);
    const dir = tmpDir('rec-py');
    const peers = [];
    let h = null;
    try {
      h = await startHost(hostWith(hosts.python, ['--record', dir, '--play', 'testsrc', '--play-room', 'demo',
        '--play-name', 'ffmpeg']));
      const alice = await browser.newPeer(h.base, 'demo', 'alice');
      peers.push(alice);
      await waitJoined(alice);
      const joinedAt = Date.now();
      const stats = await until('alice decodes > 30 frames of ffmpeg and receives its audio', MEDIA_TIMEOUT_MS,
        async () => {
          const s = await alice.evaluate(() => window.demo.stats());
          const f = s.ffmpeg;
          return f && f.videoFramesDecoded > 30 && f.audioBytesReceived > 0 && f.audioPacketsReceived > 0 && f;
        });
      console.log(`alice receives from ffmpeg: ${JSON.stringify({ ...stats, consumers: undefined })}`);
      const left = MIN_RECORDED_MS - (Date.now() - joinedAt);
      if (left > 0) await sleep(left);

      await alice.evaluate(() => window.demo.leave());
      // alice's two recordings end with her producers; the player's two with the host.
      await until("alice's recordings finished", FINISH_TIMEOUT_MS, () =>
        finishedRecordings(h).filter((f) => path.basename(f.file).startsWith('demo-alice-')).length >= 2);
      const r = await probePeer(dir, 'demo', 'alice');
      console.log(`ffprobe alice: ${JSON.stringify(r)}`);
      assertRecording('alice', r);

      await stopHost(h);
      const done = finishedRecordings(h);
      assert.equal(done.length, 4, `4 recordings finished: ${JSON.stringify(done)}`);
      for (const f of done) assert.equal(f.code, 0, `ffmpeg ended by the BYE with exit code 0: ${JSON.stringify(f)}`);
      const played = await probePeer(dir, 'demo', 'ffmpeg');
      console.log(`ffprobe of the played stream: ${JSON.stringify(played)}`);
      const v = played.video.streams.find((s) => s.type === 'video');
      assert.ok(v && v.codec === 'vp8' && v.frames > 30, `the played video recorded: ${JSON.stringify(played.video)}`);
      assert.ok(played.audio.streams.some((s) => s.codec === 'opus' && s.frames > 0), JSON.stringify(played.audio));
    } catch (error) {
      console.log(await diagnostics(peers, h));
      throw error;
    } finally {
      for (const p of peers) await p.close();
      await stopHost(h);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
