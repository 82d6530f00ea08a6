"""Host requests through the binding: Room.host_request / host_request_async, their
answers and errors, and the room's host events.

The producer is a fake plain-RTP client (docs/PROTOCOL.md, "Plain RTP transports"): a
peer joins, creates a plain transport declaring a local UDP socket, and creates a VP8
producer on it; this test sends its RTP from that socket. A streamer of it
(``createRtpStreamer``) sends to two other local sockets (RTP, RTCP), like a recorder.
No browser, no Rust peer. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from typing import List, Tuple

import pytest

import sfu

from conftest import WAIT, Inbox, join

VIDEO_PT = 101  # the default room's VP8 payload type
SSRC = 4_000_001


def udp_pair() -> Tuple[socket.socket, socket.socket]:
    """Two bound UDP sockets on 127.0.0.1, ports p and p + 1 (a recorder's RTP/RTCP)."""
    for _ in range(50):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            b.bind(("127.0.0.1", a.getsockname()[1] + 1))
        except OSError:
            a.close()
            b.close()
            continue
        for s in (a, b):
            s.settimeout(0.2)
        return a, b
    raise AssertionError("no pair of free UDP ports")


def vp8_packet(seq: int, i: int) -> bytes:
    """An RTP packet of the fake publisher: VP8 descriptor (S=1), frame ``i``."""
    header = struct.pack("!BBHII", 0x80, 0x80 | VIDEO_PT, seq & 0xFFFF, (i * 3000) & 0xFFFFFFFF, SSRC)
    payload = bytes([0x10, 0x00 if i == 0 else 0x01]) + i.to_bytes(4, "big") + bytes(200)
    return header + payload


def rtcp_types(datagram: bytes) -> List[int]:
    """The packet types of a compound RTCP datagram (200 SR, 201 RR, 203 BYE, ...)."""
    types, off = [], 0
    while off + 4 <= len(datagram):
        types.append(datagram[off + 1])
        off += 4 * (int.from_bytes(datagram[off + 2:off + 4], "big") + 1)
    return types


def drain(sock: socket.socket, until: float) -> List[bytes]:
    out = []
    while time.monotonic() < until:
        try:
            out.append(sock.recv(2048))
        except socket.timeout:
            if out:
                break
    return out


class FakePublisher:
    """A peer `cam` with a plain transport from a local socket and a VP8 producer (id 7)."""

    def __init__(self, room: sfu.Room) -> None:
        self.rtp, self.rtcp = udp_pair()
        join(room, "cam")
        port = self.rtp.getsockname()[1]
        t = room.request("cam", {"method": "createTransport", "id": 1, "direction": "send",
                                 "plainRtpParameters": {"ip": "127.0.0.1", "port": port}})
        self.sfu = (t["plainRtpParameters"]["ip"], t["plainRtpParameters"]["port"])
        room.request("cam", {"method": "createProducer", "id": 7, "kind": "video", "transportId": 1, "paused": False,
                             "rtpParameters": {"muxId": "v",
                                               "codecs": [{"name": "VP8", "mimeType": "video/VP8", "clockRate": 90000,
                                                           "payloadType": VIDEO_PT, "parameters": {}}],
                                               "headerExtensions": [], "encodings": [{"ssrc": SSRC}],
                                               "rtcp": {"cname": "cam", "reducedSize": True, "mux": False}}})
        self.seq = 65_530  # wraps while sending
        self.i = 0

    def send(self, n: int) -> None:
        for _ in range(n):
            self.rtp.sendto(vp8_packet(self.seq, self.i), self.sfu)
            self.seq, self.i = (self.seq + 1) & 0xFFFF, self.i + 1
            time.sleep(0.005)

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


@pytest.fixture
def cam(room):
    p = FakePublisher(room)
    try:
        yield p
    finally:
        p.close()


def test_host_request_is_answered_with_data(room, cam):
    assert room.host_request({"method": "enableAudioLevels", "intervalMs": 500, "thresholdDbov": -60}) == {}
    assert room.host_request('{"method":"disableAudioLevels"}') == {}  # raw JSON text works too
    rec, rec_rtcp = udp_pair()
    try:
        port = rec.getsockname()[1]
        a = room.host_request({"method": "createRtpStreamer", "peerName": "cam", "producerId": 7,
                               "remoteIp": "127.0.0.1", "remotePort": port}, timeout=WAIT)
        assert isinstance(a["streamerId"], int)
        assert (a["localIp"], a["localPort"]) == cam.sfu
        assert a["rtpParameters"]["codecs"][0]["payloadType"] == VIDEO_PT
        assert f"m=video {port} RTP/AVP {VIDEO_PT}" in a["sdp"]
        assert f"a=rtpmap:{VIDEO_PT} VP8/90000" in a["sdp"]
        assert room.host_request({"method": "closeRtpStreamer", "streamerId": a["streamerId"]}) == {}
    finally:
        rec.close()
        rec_rtcp.close()


def test_host_request_errors_carry_the_library_reason(room, cam):
    cases = [
        ({"method": "dance"}, "unknown host method"),
        ({"method": "createRtpStreamer", "producerId": 99, "remoteIp": "127.0.0.1", "remotePort": 5000}, "producer not found"),
        ({"method": "createRtpStreamer", "producerId": 7, "remoteIp": "nope", "remotePort": 5000}, "remoteIp"),
        ({"method": "closeRtpStreamer", "streamerId": 12345}, "streamer not found"),
        ({"method": "enableActiveSpeaker", "consecutive": 0}, "consecutive"),
        ("{not json", "invalid JSON"),
    ]
    for request, reason in cases:
        with pytest.raises(sfu.RequestError) as ei:
            room.host_request(request)
        assert reason in ei.value.reason, (request, ei.value.reason)
    with pytest.raises(TypeError):
        room.host_request(["enableAudioLevels"])
    with pytest.raises(ValueError):
        room.host_request('{"method":"disableAudioLevels"}\0')


def test_host_request_to_an_unknown_room_says_room_not_found(server):
    r = server.create_room("gone")
    r.close()
    with pytest.raises(sfu.RequestError) as ei:
        r.host_request({"method": "disableAudioLevels"})
    assert ei.value.reason == "room not found"

    async def go():
        with pytest.raises(sfu.RequestError) as ei:
            await r.host_request_async({"method": "disableAudioLevels"})
        return ei.value.reason

    assert asyncio.run(go()) == "room not found"


def test_host_request_async_answers_and_fails_on_the_loop(room, cam):
    async def go():
        ok, bad = await asyncio.gather(
            room.host_request_async({"method": "enableActiveSpeaker", "intervalMs": 300}),
            room.host_request_async({"method": "closeRtpStreamer", "streamerId": 1}),
            return_exceptions=True,
        )
        return ok, bad

    ok, bad = asyncio.run(go())
    assert ok == {}
    assert isinstance(bad, sfu.RequestError) and bad.reason == "streamer not found"


def test_blocking_host_request_from_a_handler_raises_the_async_one_works(room):
    result = {}
    done = threading.Event()

    def handler(peer, msg):
        if msg.get("method") != "newPeer":
            return
        try:
            room.host_request({"method": "disableAudioLevels"})
        except RuntimeError as e:
            result["error"] = str(e)
        done.set()

    room.on_notification = handler
    join(room, "alice")
    join(room, "bob")
    assert done.wait(WAIT)
    assert "deadlock" in result["error"]


def test_a_streamer_forwards_the_publisher_and_its_close_is_a_host_event(room, cam):
    """createRtpStreamer of the fake publisher's producer: RTP reaches the recorder's
    socket (a sender report first on its RTCP socket); closing the producer ends the
    streamer: a BYE to the recorder and an `rtpStreamerClosed` host event with an empty
    peer name through on_host_event."""
    events = Inbox()
    room.on_host_event = events
    rec, rec_rtcp = udp_pair()
    try:
        a = room.host_request({"method": "createRtpStreamer", "producerId": 7, "remoteIp": "127.0.0.1",
                               "remotePort": rec.getsockname()[1]})
        ssrc = a["rtpParameters"]["encodings"][0]["ssrc"]
        cam.send(30)
        got = drain(rec, time.monotonic() + WAIT)
        deadline = time.monotonic() + WAIT
        while len(got) < 30 and time.monotonic() < deadline:
            got += drain(rec, time.monotonic() + 0.5)
        assert len(got) == 30, f"{len(got)} of 30 packets reached the recorder"
        seqs = []
        for p in got:
            _, pt, seq, _, s = struct.unpack("!BBHII", p[:12])
            assert (pt & 0x7F, s) == (VIDEO_PT, ssrc)
            seqs.append(seq)
        assert [(b - a_) & 0xFFFF for a_, b in zip(seqs, seqs[1:])] == [1] * 29, "contiguous numbering"
        assert [int.from_bytes(p[14:18], "big") for p in got] == list(range(30)), "payloads in order"
        rtcp = drain(rec_rtcp, time.monotonic() + WAIT)
        assert rtcp and rtcp_types(rtcp[0])[0] == 200, "a sender report first"

        room.notify("cam", {"method": "closeProducer", "notification": True, "id": 7})
        peer, ev = events.wait_for(lambda p, m: m.get("event") == "rtpStreamerClosed")
        assert peer == ""
        assert ev["streamerId"] == a["streamerId"] and isinstance(ev["reason"], str) and ev["reason"]
        deadline = time.monotonic() + WAIT
        bye = False
        while not bye and time.monotonic() < deadline:
            bye = any(203 in rtcp_types(p) for p in drain(rec_rtcp, time.monotonic() + 0.5))
        assert bye, "the recorder got a BYE"
        with pytest.raises(sfu.RequestError) as ei:
            room.host_request({"method": "closeRtpStreamer", "streamerId": a["streamerId"]})
        assert ei.value.reason == "streamer not found"
    finally:
        rec.close()
        rec_rtcp.close()
