"""Play a file (or a generated test pattern and tone) into a room with ffmpeg, as a peer
that publishes VP8 + Opus over plain RTP transports. Used by the demo host (``python
examples/python/host.py --play testsrc`` or ``--play movie.mp4``); the same class
works in any asyncio host built on the Python binding. Browsers in the room see the peer
(``--play-name``, default "ffmpeg") like any other and receive its video and audio.

How (docs/PROTOCOL.md, "Plain RTP transports"):

1. the player joins the room as a peer (``queryRoom``, ``join``), through the same
   ``room.request_async`` calls a host makes for a browser;
2. for each stream it picks a free local port pair (p for RTP, p + 1 for RTCP: ffmpeg
   sends its RTP from ``localrtpport`` and its RTCP from the next port) and creates a
   plain transport declaring it, ``createTransport {plainRtpParameters: {ip, port: p}}``;
   the answer's ``plainRtpParameters`` is where to send (the SFU's UDP port). The SFU
   accepts the stream's RTP from 127.0.0.1:p only and its RTCP from p + 1;
3. it creates a producer on each transport (``createProducer``, the room's payload
   types, an SSRC of its choosing) and starts ffmpeg with one ``-f rtp`` output per
   stream carrying that payload type and SSRC (ffmpeg's ``-ssrc`` is a signed 32-bit
   option: SSRCs are drawn below 2^31);
4. :meth:`Player.stop` gives ffmpeg one SIGINT (it stops at once while sending) and the
   peer leaves; if ffmpeg ends by itself (a file played with ``loop=False``) the peer
   leaves too.

ffmpeg never answers keyframe requests (it does not read its sockets): the video has a
keyframe every second (``-g`` = the frame rate), the longest a browser joining later
waits for a picture. The audio carries no level extension, so a played stream is not
part of ``audioLevels``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

try:
    import sfu
except ImportError:  # run from a checkout without `pip install ./bindings/python`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import sfu

try:  # as a module of the host (examples/python on sys.path) or imported from elsewhere
    from record import free_port_pair
except ImportError:  # pragma: no cover
    from .record import free_port_pair  # type: ignore

log = logging.getLogger("sfu.play")

TESTSRC = "testsrc"
STOP_S = 5.0


def _room_pt(caps: Dict[str, Any], name: str) -> int:
    for c in caps["codecs"]:
        if c["name"].lower() == name.lower():
            return int(c["preferredPayloadType"])
    raise ValueError(f"the room has no {name} codec")


async def _probe(ffprobe: str, path: str) -> List[str]:
    """The kinds ("video", "audio") of the streams in a media file."""
    p = await asyncio.create_subprocess_exec(
        ffprobe, "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 30)
    if p.returncode != 0:
        raise ValueError(f"ffprobe {path}: {err.decode(errors='replace').strip()}")
    return [s.get("codec_type") for s in json.loads(out).get("streams", [])]


class Player:
    """Publishes ``source`` (``"testsrc"``: a test pattern and a 440 Hz tone; else a
    media file, looped) into a room as peer ``peer_name``."""

    def __init__(self, source: str, peer_name: str = "ffmpeg", ffmpeg: str = "ffmpeg",
                 ffprobe: str = "ffprobe", loop: bool = True) -> None:
        self.source = source
        self.peer_name = peer_name
        self.ffmpeg = ffmpeg
        self.ffprobe = ffprobe
        self.loop = loop
        self.room: Optional[sfu.Room] = None
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.finished = asyncio.Event()
        self.stderr = b""
        #: (producer id, kind) of the player's producers, once started.
        self.producers: List[tuple] = []

    async def start(self, room: sfu.Room) -> None:
        """Join ``room``, create the plain transports and producers, start ffmpeg."""
        if self.source == TESTSRC:
            kinds = ["video", "audio"]
            inputs = ["-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
                      "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
            maps = {"video": "0:v:0", "audio": "1:a:0"}
        else:
            found = await _probe(self.ffprobe, self.source)
            kinds = [k for k in ("video", "audio") if k in found]
            if not kinds:
                raise ValueError(f"{self.source}: no video or audio stream")
            inputs = ["-re"] + (["-stream_loop", "-1"] if self.loop else []) + ["-i", self.source]
            maps = {"video": "0:v:0", "audio": "0:a:0"}
        self.room = room
        me = self.peer_name
        q = await room.request_async(me, {"method": "queryRoom", "target": "room"})
        caps = q["rtpCapabilities"]
        # A publisher only: it receives nothing, so it declares no codec of its own.
        await room.request_async(me, {"method": "join", "target": "room", "peerName": me, "spy": False,
                                      "rtpCapabilities": {"codecs": [], "headerExtensions": [], "fecMechanisms": []},
                                      "appData": {"player": self.source}})
        outputs: List[str] = []
        for n, kind in enumerate(kinds, start=1):
            port = free_port_pair()
            t = await room.request_async(me, {"method": "createTransport", "target": "peer", "id": n,
                                              "direction": "send",
                                              "plainRtpParameters": {"ip": "127.0.0.1", "port": port}})
            sfu_ip, sfu_port = t["plainRtpParameters"]["ip"], t["plainRtpParameters"]["port"]
            ssrc = random.randint(1, 2**31 - 1)
            if kind == "video":
                pt = _room_pt(caps, "VP8")
                codec = {"name": "VP8", "mimeType": "video/VP8", "clockRate": 90000, "payloadType": pt, "parameters": {}}
                encode = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-g", "30",
                          "-r", "30", "-pix_fmt", "yuv420p"]
                url = f"rtp://{sfu_ip}:{sfu_port}?localrtpport={port}&pkt_size=1200"
            else:
                pt = _room_pt(caps, "opus")
                codec = {"name": "opus", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2,
                         "payloadType": pt, "parameters": {}}
                encode = ["-c:a", "libopus", "-ac", "2", "-ar", "48000", "-b:a", "64k"]
                url = f"rtp://{sfu_ip}:{sfu_port}?localrtpport={port}"
            await room.request_async(me, {"method": "createProducer", "target": "peer", "id": n, "kind": kind,
                                          "transportId": n, "paused": False, "appData": {"source": "ffmpeg"},
                                          "rtpParameters": {"muxId": str(n), "codecs": [codec], "headerExtensions": [],
                                                            "encodings": [{"ssrc": ssrc}],
                                                            "rtcp": {"cname": f"ffmpeg-{me}", "reducedSize": False,
                                                                     "mux": False}}})
            self.producers.append((n, kind))
            outputs += ["-map", maps[kind], *encode, "-payload_type", str(pt), "-ssrc", str(ssrc), "-f", "rtp", url]
            log.info("%s/%s: %s from 127.0.0.1:%d to %s:%d (pt %d, ssrc %d)", room.id, me, kind, port, sfu_ip,
                     sfu_port, pt, ssrc)
        self.proc = await asyncio.create_subprocess_exec(
            self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", *inputs, *outputs,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        log.info("%s/%s: playing %s (ffmpeg pid %d)", room.id, me, self.source, self.proc.pid)
        asyncio.create_task(self._wait())

    async def _wait(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self.stderr = (await self.proc.stderr.read())[-16384:]
        await self.proc.wait()
        tail = " | ".join(self.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
        log.info("ffmpeg (player %s) exited with %s%s", self.peer_name, self.proc.returncode, f": {tail}" if tail else "")
        self._leave()
        self.finished.set()

    def _leave(self) -> None:
        room = self.room
        if room is None or room.closed:
            return
        try:
            room.close_peer(self.peer_name)
        except sfu.SfuError:
            pass  # already gone (the room closed, or the host closed the peer)

    async def stop(self) -> None:
        """One SIGINT to ffmpeg (bounded wait, then SIGKILL); the peer leaves the room."""
        if self.proc is None:
            self._leave()
            return
        for sig in (signal.SIGINT, signal.SIGKILL):
            if self.proc.returncode is None:
                try:
                    self.proc.send_signal(sig)
                except ProcessLookupError:
                    pass  # exited meanwhile (a Ctrl-C reaches it too: same process group)
            try:
                await asyncio.wait_for(self.finished.wait(), STOP_S)
                return
            except asyncio.TimeoutError:
                log.warning("ffmpeg (player %s) did not stop after %s", self.peer_name, sig.name)


if __name__ == "__main__":
    # `python examples/python/play.py SOURCE [host.py options]`: the demo host with a peer
    # playing SOURCE (testsrc or a media file) into room "demo" (`host.py --play SOURCE`).
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python examples/python/play.py testsrc|FILE [host.py options, e.g. --play-room demo]")
    import host  # examples/python/host.py

    host.main(["--play", sys.argv[1], *sys.argv[2:]])
