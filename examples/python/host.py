#!/usr/bin/env python3
"""Example host: WebSocket signalling between mediasoup-client 2.x pages and libsfu.

One WebSocket per browser peer, at ``ws://HOST:PORT/ws?room=ROOM&peer=NAME``. The
host decides who a socket is from the URL (``join.peerName`` is not trusted), creates
the room on first use (default codecs) and closes the peer when its socket closes.

Frames (JSON text):

* page -> host ``{type:"request", id, method, data}``: ``data`` is the request object
  mediasoup-client emitted (with ``method``/``target``) -> host -> page
  ``{type:"response", id, ok:true, data}`` or ``{type:"response", id, ok:false, error}``.
* page -> host ``{type:"notification", method, data}``: passed to the room as is.
* host -> page ``{type:"notification", method, data}``: ``data`` is the mediasoup
  notification verbatim, for ``room.receiveNotification(data)``.

``GET /metrics`` serves the library's metrics (Prometheus text exposition format); every
other path is served from ``examples/web/dist`` (``--static``) when it exists. The
library's log records go to the ``sfu`` logger (``--sfu-log-level``, default "warn";
SFU_DEBUG=1 makes it "debug").

    python examples/python/host.py --host 127.0.0.1 --port 8080

Options beyond the signalling (each uses host requests, docs/PROTOCOL.md):
``--record DIR`` records every producer with ffmpeg (``record.py``: WebM for video,
Ogg for audio); ``--play SOURCE`` plays ``testsrc`` (a test pattern and a tone) or a
media file into room ``--play-room`` as peer ``--play-name`` (``play.py``: VP8 + Opus
over plain RTP); ``--audio-levels [DBOV]`` makes every room report audio levels and
the active speaker, logged as host events.

Needs the ``websockets`` package (>= 13) and the ``sfu`` binding (``pip install
./bindings/python``; from a checkout it is also found without installing).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import mimetypes
import os
import signal
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

try:
    import sfu
except ImportError:  # running from a checkout without `pip install ./bindings/python`
    sys.path.insert(0, str(REPO / "bindings" / "python"))
    import sfu

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

log = logging.getLogger("sfu.host")

WS_PATH = "/ws"
METRICS_PATH = "/metrics"
REQUEST_TIMEOUT = 30.0  # mediasoup-client's own default request timeout


class Peer:
    """One connected browser: its socket and an ordered outgoing queue."""

    def __init__(self, ws: ServerConnection, room_id: str, name: str) -> None:
        self.ws = ws
        self.room_id = room_id
        self.name = name
        self.out: asyncio.Queue[str] = asyncio.Queue()

    def send(self, frame: Dict[str, Any]) -> None:
        self.out.put_nowait(json.dumps(frame))

    async def pump(self) -> None:
        """Write queued frames in order until the socket closes."""
        try:
            while True:
                await self.ws.send(await self.out.get())
        except ConnectionClosed:
            pass


class Host:
    def __init__(self, server: sfu.Server, loop: asyncio.AbstractEventLoop, static_dir: Optional[Path]) -> None:
        self.server = server
        self.loop = loop
        self.static_dir = static_dir.resolve() if static_dir else None
        self.rooms: Dict[str, sfu.Room] = {}
        self.peers: Dict[Tuple[str, str], Peer] = {}
        # Options (main() sets them): --record, --audio-levels; rooms kept open without
        # browsers (the room a --play peer is in).
        self.recorder: Optional[Any] = None
        self.audio_levels: Any = None  # True (the library's threshold) or a threshold in dBov
        self.pinned: set = set()

    # -- rooms and library callbacks ------------------------------------------------

    def room(self, room_id: str) -> sfu.Room:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.server.create_room(room_id)  # default codecs
            room.on_notification = functools.partial(self._from_library, room_id)
            room.on_host_event = functools.partial(self._host_event, room_id)
            self.rooms[room_id] = room
            log.info("room %r created", room_id)
            if self.audio_levels is not None:
                self._enable_audio_levels(room)
        return room

    # -- host requests (--audio-levels, --record) ---------------------------------------

    def _enable_audio_levels(self, room: sfu.Room) -> None:
        """Levels each second and the active speaker; the events come to _host_event."""
        threshold = {} if self.audio_levels is True else {"thresholdDbov": self.audio_levels}
        for request in ({"method": "enableAudioLevels", "intervalMs": 1000, **threshold},
                        {"method": "enableActiveSpeaker", "intervalMs": 300, **threshold}):
            fut = room.host_request_async(request)
            fut.add_done_callback(functools.partial(self._host_answer, room.id, request["method"]))

    @staticmethod
    def _host_answer(room_id: str, method: str, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("room %r: %s failed: %s", room_id, method, fut.exception())

    def _answered(self, room: sfu.Room, peer_name: str, request: Dict[str, Any], fut: asyncio.Future) -> None:
        """A page's request was answered: a new producer is recorded (--record)."""
        if self.recorder is None or fut.cancelled() or fut.exception() is not None:
            return
        if request.get("method") != "createProducer":
            return

        async def record() -> None:
            try:
                await self.recorder.add_producer(room, peer_name, request.get("id"), request.get("kind"))
            except (sfu.Error, OSError, TimeoutError) as e:
                log.warning("record: %s/%s producer %s: %s", room.id, peer_name, request.get("id"), e)

        asyncio.ensure_future(record())

    def _from_library(self, room_id: str, peer_name: str, msg: Dict[str, Any]) -> None:
        # On the library's thread. Two hops onto the loop, on purpose: a response
        # reaches the page through the binding's hop (call_soon_threadsafe) plus its
        # future's done-callback hop, so a notification taking two hops too keeps the
        # order in which the library produced both (e.g. a `join` answer before a
        # `newPeer` that follows it).
        try:
            self.loop.call_soon_threadsafe(self.loop.call_soon, self._deliver, room_id, peer_name, msg)
        except RuntimeError:
            pass  # the loop is closed: shutting down

    def _deliver(self, room_id: str, peer_name: str, msg: Dict[str, Any]) -> None:
        peer = self.peers.get((room_id, peer_name))
        if peer is not None:
            peer.send({"type": "notification", "method": msg.get("method"), "data": msg})

    def _host_event(self, room_id: str, peer_name: str, event: Dict[str, Any]) -> None:
        # On the library's thread. The room's own events (peer "") are routine.
        if peer_name == "" and event.get("event") in ("audioLevels", "activeSpeaker", "rtpStreamerClosed"):
            log.info("room %r host event %s", room_id, json.dumps(event))
        else:
            log.warning("room %r peer %r: %s", room_id, peer_name, json.dumps(event))
        if self.recorder is not None:
            try:
                self.loop.call_soon_threadsafe(self.recorder.on_host_event, room_id, event)
            except RuntimeError:
                pass  # the loop is closed: shutting down

    # -- frames from a page -----------------------------------------------------------

    def on_frame(self, room: sfu.Room, peer: Peer, raw: Any) -> None:
        try:
            frame = json.loads(raw)
            if not isinstance(frame, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            log.warning("peer %r: bad frame (%s) ignored", peer.name, e)
            return
        kind, method, data = frame.get("type"), frame.get("method"), frame.get("data")
        if kind == "request":
            fid = frame.get("id")
            if not isinstance(data, dict):
                data = {"method": method}
            if data.get("method") == "join":
                data = {**data, "peerName": peer.name}  # the library ignores it anyway
            try:
                # Submitted now, so later frames (notifications) keep their order.
                fut = room.request_async(peer.name, data, timeout=REQUEST_TIMEOUT)
            except (sfu.SfuError, TypeError, ValueError) as e:
                peer.send({"type": "response", "id": fid, "ok": False, "error": str(e)})
                return
            fut.add_done_callback(functools.partial(self._answer, peer, fid))
            fut.add_done_callback(functools.partial(self._answered, room, peer.name, data))
        elif kind == "notification":
            if not isinstance(data, dict):
                data = {"method": method, "target": "peer", "notification": True}
            try:
                room.notify(peer.name, data)
            except (sfu.SfuError, TypeError, ValueError) as e:
                log.warning("peer %r: notification %r not passed: %s", peer.name, method, e)
        else:
            log.warning("peer %r: frame of unknown type %r ignored", peer.name, kind)

    @staticmethod
    def _answer(peer: Peer, fid: Any, fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            peer.send({"type": "response", "id": fid, "ok": True, "data": fut.result()})
        elif isinstance(exc, sfu.RequestError):
            peer.send({"type": "response", "id": fid, "ok": False, "error": exc.reason})
        elif isinstance(exc, TimeoutError):
            peer.send({"type": "response", "id": fid, "ok": False, "error": "request timed out"})
        else:
            peer.send({"type": "response", "id": fid, "ok": False, "error": str(exc)})

    # -- connections ------------------------------------------------------------------

    async def handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        room_id = (query.get("room") or [""])[0]
        name = (query.get("peer") or [""])[0]
        if not room_id or not name:
            await ws.close(1008, "query parameters `room` and `peer` are required")
            return
        key = (room_id, name)
        if key in self.peers:
            await ws.close(1008, f"peer {name!r} is already connected to room {room_id!r}")
            return
        try:
            room = self.room(room_id)
        except sfu.SfuError as e:
            await ws.close(1011, f"cannot create room: {e.message}"[:120])
            return
        peer = Peer(ws, room_id, name)
        self.peers[key] = peer
        pump = asyncio.create_task(peer.pump())
        log.info("peer %r connected to room %r", name, room_id)
        try:
            async for raw in ws:
                self.on_frame(room, peer, raw)
        except ConnectionClosed:
            pass
        finally:
            del self.peers[key]
            pump.cancel()
            log.info("peer %r left room %r", name, room_id)
            try:
                room.close_peer(name)  # `closed` to it (dropped), `peerClosed` to others
            except sfu.SfuError as e:
                if e.code not in (sfu.Result.PEER_NOT_FOUND, sfu.Result.ROOM_NOT_FOUND, sfu.Result.SERVER_CLOSED):
                    log.warning("close_peer(%r): %s", name, e)
            if (not any(p.room_id == room_id for p in self.peers.values()) and self.rooms.get(room_id) is room
                    and room_id not in self.pinned):
                del self.rooms[room_id]
                room.close()
                if self.recorder is not None:
                    self.recorder.room_closed(room_id)
                log.info("room %r closed (empty)", room_id)

    # -- static files -----------------------------------------------------------------

    def process_request(self, connection: ServerConnection, request: Request) -> Optional[Response]:
        path = urlsplit(request.path).path
        if path == WS_PATH:
            return None  # go on with the WebSocket handshake
        if path == METRICS_PATH:
            return self.metrics(connection)
        return self.static(connection, unquote(path))

    def metrics(self, connection: ServerConnection) -> Response:
        """What Prometheus scrapes: sfu_server_metrics' text (names in the README)."""
        try:
            body = self.server.metrics().encode("utf-8")
        except sfu.SfuError as e:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, f"{e}\n")
        headers = Headers(
            [
                ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("Connection", "close"),
            ]
        )
        return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, body)

    def static(self, connection: ServerConnection, path: str) -> Response:
        root = self.static_dir
        if root is None or not root.is_dir():
            return connection.respond(HTTPStatus.NOT_FOUND, f"no web page here (build examples/web/dist); signalling is at {WS_PATH}?room=R&peer=NAME\n")
        target = (root / path.lstrip("/")).resolve()
        if target != root and root not in target.parents:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        body = target.read_bytes()
        ctype = {".js": "text/javascript", ".mjs": "text/javascript"}.get(target.suffix) or (
            mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        )
        if ctype.startswith("text/") or ctype in ("application/json", "image/svg+xml"):
            ctype += "; charset=utf-8"
        headers = Headers(
            [
                ("Content-Type", ctype),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("Connection", "close"),
            ]
        )
        return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, body)


async def run(args: argparse.Namespace) -> None:
    config: Dict[str, Any] = {"rtcIPv4": args.rtc_ip, "logLevel": args.sfu_log_level}
    if args.announced_ip:
        config["rtcAnnouncedIPv4"] = args.announced_ip
    if args.workers:
        config["numWorkers"] = args.workers
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    with sfu.Server(config) as server:
        host = Host(server, loop, args.static)
        host.audio_levels = args.audio_levels
        if args.record:
            import record  # examples/python/record.py

            host.recorder = record.Recorder(args.record)
            log.info("recording every producer into %s", host.recorder.dir)
        player = None
        if args.play:
            import play  # examples/python/play.py

            player = play.Player(args.play, peer_name=args.play_name)
            host.pinned.add(args.play_room)
            await player.start(host.room(args.play_room))
            if host.recorder is not None:  # the played streams are recorded like any producer
                for producer_id, kind in player.producers:
                    await host.recorder.add_producer(host.room(args.play_room), player.peer_name, producer_id, kind)
        async with serve(host.handle, args.host, args.port, process_request=host.process_request) as ws_server:
            port = next(iter(ws_server.sockets)).getsockname()[1]
            static = host.static_dir if host.static_dir and host.static_dir.is_dir() else "(none)"
            print(f"sfu host: http://{args.host}:{port}/  signalling ws://{args.host}:{port}{WS_PATH}?room=ROOM&peer=NAME"
                  f"  (sfu {sfu.version()}, static {static})", flush=True)
            await stop.wait()
            log.info("shutting down")
        # The WebSocket server is closed (every handler finished); then the player and
        # the recordings (their streamers say BYE, ffmpeg finishes the files); then the SFU.
        if player is not None:
            await player.stop()
        if host.recorder is not None:
            await host.recorder.stop()
    log.info("stopped")


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    ap.add_argument("--static", type=Path, default=REPO / "examples" / "web" / "dist", help="web page directory")
    ap.add_argument("--rtc-ip", default="127.0.0.1", help="IPv4 the SFU's UDP sockets bind to")
    ap.add_argument("--announced-ip", default=None, help="IPv4 put in ICE candidates (NAT); default --rtc-ip")
    ap.add_argument("--workers", type=int, default=1, help="SFU worker threads (default 1)")
    ap.add_argument("--log-level", default="INFO", help="the host's logging level (default INFO)")
    ap.add_argument(
        "--sfu-log-level",
        default="debug" if os.environ.get("SFU_DEBUG") == "1" else "warn",
        choices=["debug", "warn", "error", "none"],
        help="the library's logLevel; its records go to the 'sfu' logger (default warn; debug if SFU_DEBUG=1)",
    )
    ap.add_argument("--record", type=Path, default=None, metavar="DIR",
                    help="record every producer with ffmpeg into DIR (WebM video, Ogg audio)")
    ap.add_argument("--play", default=None, metavar="SOURCE",
                    help="play 'testsrc' (test pattern + tone) or a media file into --play-room with ffmpeg")
    ap.add_argument("--play-room", default="demo", help="room of the --play peer (default demo)")
    ap.add_argument("--play-name", default="ffmpeg", help="peer name of the --play peer (default ffmpeg)")
    ap.add_argument("--audio-levels", type=float, nargs="?", const=True, default=None, metavar="DBOV",
                    help="report audio levels and the active speaker (above DBOV, default the library's -80) as host events")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
