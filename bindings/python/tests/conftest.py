"""Fixtures and helpers shared by the binding tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

import sfu

REPO = Path(__file__).resolve().parents[3]
LOCAL = {"numWorkers": 1, "rtcIPv4": "127.0.0.1"}
WAIT = 10.0


class Inbox:
    """Thread-safe record of handler calls: (peer, message, thread)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.items: List[Tuple[str, Dict[str, Any], threading.Thread]] = []

    def __call__(self, peer: str, msg: Dict[str, Any]) -> None:
        with self.cond:
            self.items.append((peer, msg, threading.current_thread()))
            self.cond.notify_all()

    def wait_for(self, pred: Callable[[str, Dict[str, Any]], bool], timeout: float = WAIT):
        """The first recorded (peer, msg) matching pred, waiting up to timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for peer, msg, _ in self.items:
                    if pred(peer, msg):
                        return peer, msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing matching within {timeout}s; got {self.methods()}")
                self.cond.wait(left)

    def wait_method(self, peer: str, method: str, timeout: float = WAIT) -> Dict[str, Any]:
        return self.wait_for(lambda p, m: p == peer and m.get("method") == method, timeout)[1]

    def methods(self, peer: Optional[str] = None) -> List[str]:
        with self.cond:
            return [m.get("method") or m.get("event") for p, m, _ in self.items if peer is None or p == peer]

    def threads(self) -> List[threading.Thread]:
        with self.cond:
            return [t for _, _, t in self.items]


@pytest.fixture
def server():
    s = sfu.Server(LOCAL)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def room(server):
    return server.create_room("room1")


def client_caps(room_caps: Dict[str, Any]) -> Dict[str, Any]:
    """What mediasoup-client computes from the room caps for a browser supporting
    every room codec (same as client_caps in crates/sfu-testkit/src/builders.rs)."""
    codecs = []
    for c in room_caps["codecs"]:
        o = {k: c.get(k) for k in ("name", "mimeType", "kind", "clockRate", "preferredPayloadType", "parameters")}
        if c["name"] != "rtx":
            o["rtcpFeedback"] = c.get("rtcpFeedback")
        if c.get("channels") is not None:
            o["channels"] = c["channels"]
        codecs.append(o)
    exts = [{"kind": e.get("kind"), "uri": e["uri"], "preferredId": e["preferredId"]} for e in room_caps["headerExtensions"]]
    return {"codecs": codecs, "headerExtensions": exts, "fecMechanisms": []}


def join(room: "sfu.Room", peer: str, app_data: Any = None) -> Dict[str, Any]:
    q = room.request(peer, {"method": "queryRoom", "target": "room"})
    return room.request(
        peer,
        {
            "method": "join",
            "target": "room",
            "peerName": peer,
            "rtpCapabilities": client_caps(q["rtpCapabilities"]),
            "spy": False,
            "appData": app_data if app_data is not None else {"n": peer},
        },
    )
