"""A host using the *installed* Python package (tests/install/run.sh runs it with a
venv's python, from a directory outside the checkout, with no SFU_LIBRARY_PATH).
Creates a server and a room; through the library's callback: queryRoom answered ok:true
with the room's rtpCapabilities; alice joins; bob joins and is told about alice; alice
gets newPeer for bob. Prints where the package and the libsfu code were loaded from.
Every wait is bounded (10 s)."""

import ctypes
import queue
import sys

import sfu


def mapped_from(address: int) -> str:
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, *rest = line.split()
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= address < hi:
                return rest[-1] if len(rest) >= 5 else "(anonymous)"
    return "(not mapped)"


def client_caps(room_caps):
    """What mediasoup-client sends for a browser supporting every room codec."""
    keep = ("name", "mimeType", "kind", "clockRate", "channels", "preferredPayloadType", "parameters", "rtcpFeedback")
    codecs = [{k: c[k] for k in keep if k in c} for c in room_caps["codecs"]]
    exts = [{k: e[k] for k in ("kind", "uri", "preferredId")} for e in room_caps["headerExtensions"]]
    return {"codecs": codecs, "headerExtensions": exts, "fecMechanisms": []}


def main() -> int:
    notes = queue.Queue()
    with sfu.Server({"numWorkers": 1, "rtcIPv4": "127.0.0.1"}) as server:
        room = server.create_room("room1")
        room.on_notification = lambda peer, msg: notes.put((peer, msg))  # library thread
        q = room.request("alice", {"method": "queryRoom", "target": "room"}, timeout=10)
        caps = client_caps(q["rtpCapabilities"])
        join = {"method": "join", "target": "room", "rtpCapabilities": caps, "spy": False, "appData": {}}
        room.request("alice", {**join, "peerName": "alice"}, timeout=10)
        b = room.request("bob", {**join, "peerName": "bob"}, timeout=10)
        assert [p["name"] for p in b["peers"]] == ["alice"], b
        peer, msg = notes.get(timeout=10)
        assert peer == "alice" and msg["method"] == "newPeer" and msg["name"] == "bob", (peer, msg)
        lib = sfu.library_path()
        code = mapped_from(ctypes.cast(sfu._lib.lib().sfu_version, ctypes.c_void_p).value)
        print(f"host(python): package {sfu.__file__}")
        print(f"host(python): library_path {lib}")
        print(f"host(python): libsfu code mapped from {code}")
        print(f"host(python): sfu {sfu.version()}: queryRoom, join alice, join bob (peers [alice]), newPeer to alice: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
