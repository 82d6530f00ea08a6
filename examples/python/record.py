"""Record every producer of the host's rooms with ffmpeg: one file per producer, VP8 into
WebM, Opus into Ogg. Used by the demo host (``python examples/python/host.py --record
DIR``); the same class works in any asyncio host built on the Python binding.

How (docs/PROTOCOL.md, "Host requests"):

1. when a peer's ``createProducer`` succeeds, the host calls
   :meth:`Recorder.add_producer`; it picks a free UDP port pair (p for RTP, p + 1 for
   RTCP: ffmpeg binds both) and asks the room for a streamer,
   ``room.host_request_async({"method": "createRtpStreamer", "peerName", "producerId",
   "remoteIp": "127.0.0.1", "remotePort": p})``;
2. it writes the answer's ``sdp`` next to the recording and runs
   ``ffmpeg -protocol_whitelist file,udp,rtp -i X.sdp -c copy X.webm`` (or ``X.ogg``);
   the streamer requests keyframes from the producer during its first seconds, so the
   video starts with one although ffmpeg binds its port a little after the answer;
3. the recording ends with the streamer: when the producer closes (its peer left,
   closed it, or the room closed) the library sends an RTCP BYE and ffmpeg finishes the
   file by itself (exit code 0); :meth:`Recorder.stop` closes the streamers that are
   left (``closeRtpStreamer``: BYE too). Only an ffmpeg that does not finish within a
   few seconds gets one SIGINT (never two: a second one makes it drop the trailer), then
   SIGKILL.

ffmpeg gives up after ``IDLE_S`` seconds without a packet (its ``-listen_timeout``),
e.g. a producer paused that long: that recording then ends and its streamer is closed.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Set

try:
    import sfu
except ImportError:  # run from a checkout without `pip install ./bindings/python`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import sfu

log = logging.getLogger("sfu.record")

IDLE_S = 60
FINISH_S = 5.0  # after the BYE: then SIGINT, then as long again SIGKILL


def _safe(name: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))[:64] or "_"


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port p such that p and p + 1 are free on ``host`` right now (ffmpeg binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind((host, 0))
            p = a.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                try:
                    b.bind((host, p + 1))
                except OSError:
                    continue
                return p
    raise OSError("no pair of free UDP ports")


@dataclass(eq=False)
class Recording:
    room: sfu.Room
    peer_name: str
    producer_id: int
    kind: str
    streamer_id: int
    sdp: Path
    file: Path
    proc: Optional[asyncio.subprocess.Process] = None
    streamer_open: bool = True
    watched: bool = False
    stderr: bytes = b""
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Recorder:
    """Records producers into ``directory``; ``on_finished(recording)`` runs (on the
    loop) when a recording's ffmpeg exited (``recording.proc.returncode``)."""

    def __init__(self, directory: Path, ffmpeg: str = "ffmpeg",
                 on_finished: Optional[Callable[[Recording], None]] = None) -> None:
        self.dir = Path(directory).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ffmpeg = ffmpeg
        self.on_finished = on_finished
        self.recordings: Set[Recording] = set()
        self.stopping = False

    async def add_producer(self, room: sfu.Room, peer_name: str, producer_id: int, kind: str) -> Optional[Recording]:
        """Start recording producer ``producer_id`` (``kind`` "audio" | "video") of
        ``peer_name`` in ``room``. Raises ``sfu.RequestError`` if the room refuses."""
        if self.stopping:
            return None
        port = free_port_pair()
        s = await room.host_request_async({"method": "createRtpStreamer", "peerName": peer_name,
                                           "producerId": producer_id, "remoteIp": "127.0.0.1", "remotePort": port})
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S-%fZ")
        base = self.dir / f"{_safe(room.id)}-{_safe(peer_name)}-{kind}-{producer_id}-{stamp}"
        rec = Recording(room, peer_name, producer_id, kind, s["streamerId"], base.with_suffix(".sdp"),
                        base.with_suffix(".webm" if kind == "video" else ".ogg"))
        rec.sdp.write_text(s["sdp"])
        self.recordings.add(rec)
        try:
            rec.proc = await asyncio.create_subprocess_exec(
                self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-protocol_whitelist", "file,udp,rtp",
                "-listen_timeout", str(IDLE_S), "-i", str(rec.sdp), "-c", "copy", "-y", str(rec.file),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                # Its own session: a Ctrl-C in the host's terminal does not reach it; the
                # recorder ends it (BYE), or it ends after IDLE_S s without packets.
                start_new_session=True)
        except OSError as e:
            rec.stderr = f"cannot run {self.ffmpeg}: {e}".encode()
            await self._finished(rec)
            raise
        log.info("%s/%s %s producer %s -> %s (streamer %s, port %d)", room.id, peer_name, kind, producer_id,
                 rec.file, rec.streamer_id, port)
        asyncio.create_task(self._wait(rec))
        return rec

    def on_host_event(self, room_id: str, event: Dict[str, Any]) -> None:
        """A room host event (call it on the loop): ``rtpStreamerClosed`` means that
        recording's BYE is on its way."""
        if event.get("event") != "rtpStreamerClosed":
            return
        for rec in list(self.recordings):
            if rec.room.id == room_id and rec.streamer_id == event.get("streamerId"):
                rec.streamer_open = False
                self._watch(rec)

    def room_closed(self, room_id: str) -> None:
        """The room closed (its streamers sent BYE): its recordings finish by themselves."""
        for rec in list(self.recordings):
            if rec.room.id == room_id:
                rec.streamer_open = False
                self._watch(rec)

    async def stop(self) -> None:
        """Close every streamer left (BYE) and wait until every ffmpeg exited (bounded)."""
        self.stopping = True
        recs = list(self.recordings)
        for rec in recs:
            if rec.streamer_open:
                await self._close_streamer(rec)
            self._watch(rec)
        for rec in recs:
            await rec.done.wait()

    async def _close_streamer(self, rec: Recording) -> None:
        rec.streamer_open = False
        if rec.room.closed:
            return
        try:
            await rec.room.host_request_async({"method": "closeRtpStreamer", "streamerId": rec.streamer_id})
        except (sfu.Error, TimeoutError) as e:
            log.warning("closeRtpStreamer %s: %s", rec.streamer_id, e)

    def _watch(self, rec: Recording) -> None:
        """After the BYE ffmpeg should exit at once: a bounded wait, one SIGINT, SIGKILL."""
        if rec.watched or rec.done.is_set():
            return
        rec.watched = True

        async def watchdog() -> None:
            for sig in (signal.SIGINT, signal.SIGKILL):
                try:
                    await asyncio.wait_for(rec.done.wait(), FINISH_S)
                    return
                except asyncio.TimeoutError:
                    if rec.proc is not None and rec.proc.returncode is None:
                        log.warning("%s: ffmpeg still running, %s", rec.file, sig.name)
                        try:
                            rec.proc.send_signal(sig)
                        except ProcessLookupError:
                            pass  # exited meanwhile

        asyncio.create_task(watchdog())

    async def _wait(self, rec: Recording) -> None:
        assert rec.proc is not None and rec.proc.stderr is not None
        rec.stderr = (await rec.proc.stderr.read())[-16384:]
        await rec.proc.wait()
        await self._finished(rec)

    async def _finished(self, rec: Recording) -> None:
        self.recordings.discard(rec)
        code = rec.proc.returncode if rec.proc else None
        tail = " | ".join(rec.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
        log.info("finished %s (exit code %s)%s", rec.file, code, f": {tail}" if tail else "")
        if rec.streamer_open:  # ffmpeg gave up (idle) or failed: the streamer is useless
            await self._close_streamer(rec)
        rec.done.set()
        if self.on_finished is not None:
            self.on_finished(rec)


if __name__ == "__main__":
    # `python examples/python/record.py DIR [host.py options]`: the demo host, recording
    # every producer into DIR (the same as `host.py --record DIR`).
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python examples/python/record.py DIR [host.py options, e.g. --port 8080]")
    import host  # examples/python/host.py

    host.main(["--record", sys.argv[1], *sys.argv[2:]])
