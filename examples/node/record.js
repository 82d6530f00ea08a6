'use strict';
// Records every producer of the host's rooms with ffmpeg: one file per producer, VP8 into
// WebM, Opus into Ogg. Used by the demo host (`node examples/node/server.js --record DIR`);
// the same class works in any host built on the Node binding.
//
// How (docs/PROTOCOL.md, "Host requests"):
//   1. when a peer's createProducer succeeds, the host calls recorder.addProducer(); it
//      picks a free UDP port pair (p for RTP, p + 1 for RTCP: ffmpeg binds both) and asks
//      the room for a streamer: room.hostRequest({method:'createRtpStreamer', peerName,
//      producerId, remoteIp:'127.0.0.1', remotePort:p});
//   2. it writes the answer's `sdp` next to the recording and runs
//      ffmpeg -protocol_whitelist file,udp,rtp -i X.sdp -c copy X.webm   (or X.ogg);
//      the streamer requests keyframes from the producer during its first seconds, so the
//      video starts with one even though ffmpeg binds its port a little after the answer;
//   3. the recording ends with the streamer: when the producer closes (its peer left,
//      closed it, or the room closed) the library sends an RTCP BYE and ffmpeg finishes
//      the file by itself (exit code 0); stop() closes the streamers that are left
//      (closeRtpStreamer: BYE too). Only a recorder that does not finish within a few
//      seconds gets one SIGINT (never two: a second one makes ffmpeg drop the trailer),
//      then SIGKILL.
// ffmpeg gives up after IDLE_S seconds without a packet (its -listen_timeout), e.g. a
// producer paused that long: that recording then ends and its streamer is closed.
const { spawn } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const path = require('node:path');

const IDLE_S = 60;
const FINISH_MS = 5000; // after the BYE: then SIGINT, then as long again SIGKILL

function safe(name) {
  return String(name).replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 64) || '_';
}

function bindUdp(port) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', (e) => {
      s.close();
      reject(e);
    });
    s.bind(port, '127.0.0.1', () => resolve(s));
  });
}

/** A port p such that p and p + 1 are free on 127.0.0.1 right now (ffmpeg binds both). */
async function freePortPair() {
  for (let i = 0; i < 50; i++) {
    const a = await bindUdp(0);
    const p = a.address().port;
    try {
      const b = await bindUdp(p + 1);
      b.close();
      a.close();
      return p;
    } catch (_) {
      a.close();
    }
  }
  throw new Error('no pair of free UDP ports');
}

class Recorder {
  /**
   * `dir`: where the files go (created). `ffmpeg`: the binary. `log`: a function taking a
   * line. `onFinished(rec)`: called when a recording's ffmpeg exited, with
   * { file, sdp, roomId, peerName, producerId, kind, code, signal }.
   */
  constructor({ dir, ffmpeg = 'ffmpeg', log = (line) => console.log(`[record] ${line}`), onFinished = () => {} }) {
    this.dir = path.resolve(dir);
    this.ffmpeg = ffmpeg;
    this.log = log;
    this.onFinished = onFinished;
    this.recordings = new Set(); // live ones
    this.stopping = false;
    fs.mkdirSync(this.dir, { recursive: true });
  }

  /** Start recording producer `producerId` (`kind` 'audio' | 'video') of `peerName` in `room`. */
  async addProducer(room, peerName, producerId, kind) {
    if (this.stopping) return null;
    const port = await freePortPair();
    const s = await room.hostRequest({
      method: 'createRtpStreamer', peerName, producerId, remoteIp: '127.0.0.1', remotePort: port,
    });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const base = path.join(this.dir, `${safe(room.id)}-${safe(peerName)}-${kind}-${producerId}-${stamp}`);
    const rec = {
      room, roomId: room.id, peerName, producerId, kind, streamerId: s.streamerId,
      sdp: `${base}.sdp`, file: `${base}.${kind === 'video' ? 'webm' : 'ogg'}`,
      streamerOpen: true, child: null, exited: null, code: null, signal: null, stderr: '',
    };
    fs.writeFileSync(rec.sdp, s.sdp);
    const args = ['-hide_banner', '-nostdin', '-loglevel', 'warning', '-protocol_whitelist', 'file,udp,rtp',
      '-listen_timeout', String(IDLE_S), '-i', rec.sdp, '-c', 'copy', '-y', rec.file];
    // Its own process group: a Ctrl-C in the host's terminal does not reach it; the
    // recorder ends it (BYE), or it ends after IDLE_S s without packets.
    rec.child = spawn(this.ffmpeg, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    rec.child.stderr.on('data', (d) => {
      if (rec.stderr.length < 16384) rec.stderr += d;
    });
    rec.exited = new Promise((resolve) => {
      rec.child.on('error', (e) => {
        rec.stderr += `spawn ${this.ffmpeg}: ${e.message}\n`;
        resolve();
      });
      rec.child.on('exit', (code, signal) => {
        rec.code = code;
        rec.signal = signal;
        resolve();
      });
    });
    this.recordings.add(rec);
    this.log(`${rec.roomId}/${peerName} ${kind} producer ${producerId} -> ${rec.file} (streamer ${rec.streamerId}, port ${port})`);
    rec.exited.then(() => this.#finished(rec));
    return rec;
  }

  /** A room host event: `rtpStreamerClosed` means that recording's BYE is on its way. */
  onHostEvent(roomId, event) {
    if (!event || event.event !== 'rtpStreamerClosed') return;
    for (const rec of this.recordings) {
      if (rec.roomId === roomId && rec.streamerId === event.streamerId) {
        rec.streamerOpen = false;
        this.#watch(rec);
      }
    }
  }

  /** The room closed (its streamers sent BYE): its recordings finish by themselves. */
  roomClosed(roomId) {
    for (const rec of this.recordings) {
      if (rec.roomId === roomId) {
        rec.streamerOpen = false;
        this.#watch(rec);
      }
    }
  }

  /** Close every streamer left (BYE) and wait until every ffmpeg exited (bounded). */
  async stop() {
    this.stopping = true;
    const all = [...this.recordings];
    for (const rec of all) {
      if (rec.streamerOpen) await this.#closeStreamer(rec);
      this.#watch(rec);
    }
    await Promise.all(all.map((r) => r.exited));
  }

  async #closeStreamer(rec) {
    rec.streamerOpen = false;
    if (rec.room.closed) return;
    try {
      await rec.room.hostRequest({ method: 'closeRtpStreamer', streamerId: rec.streamerId });
    } catch (e) {
      this.log(`closeRtpStreamer ${rec.streamerId}: ${e.message}`);
    }
  }

  // After the BYE, ffmpeg should exit at once; a bounded wait, then one SIGINT, then SIGKILL.
  #watch(rec) {
    if (rec.watched || rec.code !== null || rec.signal !== null) return;
    rec.watched = true;
    const kill = (sig) => {
      if (rec.code === null && rec.signal === null) {
        this.log(`${rec.file}: ffmpeg still running, ${sig}`);
        rec.child.kill(sig);
      }
    };
    const t1 = setTimeout(() => kill('SIGINT'), FINISH_MS);
    const t2 = setTimeout(() => kill('SIGKILL'), 2 * FINISH_MS);
    rec.exited.then(() => {
      clearTimeout(t1);
      clearTimeout(t2);
    });
  }

  #finished(rec) {
    this.recordings.delete(rec);
    const how = rec.signal ? `signal ${rec.signal}` : `exit code ${rec.code}`;
    const tail = rec.stderr.trim().split('\n').slice(-3).join(' | ');
    this.log(`finished ${rec.file} (${how})${tail ? `: ${tail}` : ''}`);
    // ffmpeg gave up (no packets for IDLE_S s) while the streamer still runs: close it.
    if (rec.streamerOpen) this.#closeStreamer(rec);
    this.onFinished({
      file: rec.file, sdp: rec.sdp, roomId: rec.roomId, peerName: rec.peerName,
      producerId: rec.producerId, kind: rec.kind, code: rec.code, signal: rec.signal,
    });
  }
}

module.exports = { Recorder, freePortPair };

// `node examples/node/record.js DIR [server.js options]`: the demo host, recording every
// producer into DIR (the same as `server.js --record DIR`).
if (require.main === module) {
  const [dir, ...rest] = process.argv.slice(2);
  if (!dir || dir.startsWith('-')) {
    console.error('usage: node examples/node/record.js DIR [server.js options, e.g. --port 8080]');
    process.exit(2);
  }
  process.argv = [process.argv[0], path.join(__dirname, 'server.js'), '--record', dir, ...rest];
  require('./server.js');
}
