"""examples/python/host.py end to end: a real host process, real WebSocket clients
speaking the page <-> host frames, the real library behind it."""

from __future__ import annotations

import asyncio
import http.client
import json
import queue
import re
import signal
import subprocess
import sys
import threading

import pytest

from conftest import REPO, client_caps

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

HOST_PY = REPO / "examples" / "python" / "host.py"
T = 10.0


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    (d / "index.html").write_text("<!doctype html><title>sfu demo</title>")
    (d / "assets").mkdir()
    (d / "assets" / "app.js").write_text("console.log('hi')")
    return d


@pytest.fixture(scope="module")
def host(static_dir):
    """Start host.py on a free port (--port 0; the port is read from its banner)."""
    proc = subprocess.Popen(
        [sys.executable, str(HOST_PY), "--host", "127.0.0.1", "--port", "0", "--static", str(static_dir),
         "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: "queue.Queue[str]" = queue.Queue()
    stderr_lines = []
    readers = [
        threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True),
        threading.Thread(target=lambda: [stderr_lines.append(l) for l in proc.stderr], daemon=True),
    ]
    for r in readers:
        r.start()

    def reap():
        for r in readers:
            r.join(10)  # EOF once the process is gone
        proc.stdout.close()
        proc.stderr.close()

    try:
        banner = lines.get(timeout=30)
    except queue.Empty:
        proc.kill()
        proc.wait(10)
        reap()
        pytest.fail(f"host.py printed no URL; stderr: {''.join(stderr_lines)}")
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
    assert m, banner
    assert "ws://127.0.0.1:" in banner
    yield int(m.group(1))
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        reap()
        pytest.fail("host.py did not stop on SIGTERM")
    reap()
    assert rc == 0, "".join(stderr_lines)
    assert not any("Traceback" in l for l in stderr_lines), "".join(stderr_lines)


class Client:
    """A page's side of the signalling socket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.notifications = []

    async def frame(self, timeout=T):
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def request(self, method, **fields):
        self.next_id += 1
        rid = self.next_id
        data = {"method": method, "target": "room" if method in ("queryRoom", "join") else "peer", **fields}
        await self.ws.send(json.dumps({"type": "request", "id": rid, "method": method, "data": data}))
        while True:
            f = await self.frame()
            if f["type"] == "response" and f["id"] == rid:
                return f
            assert f["type"] == "notification", f
            self.notifications.append(f)

    async def notification(self, method, timeout=T):
        for i, f in enumerate(self.notifications):
            if f["method"] == method:
                return self.notifications.pop(i)
        while True:
            f = await self.frame(timeout)
            assert f["type"] == "notification", f
            if f["method"] == method:
                return f
            self.notifications.append(f)

    async def join(self, claimed_name="someone-else"):
        q = await self.request("queryRoom")
        assert q["ok"] is True, q
        caps = client_caps(q["data"]["rtpCapabilities"])
        j = await self.request("join", peerName=claimed_name, rtpCapabilities=caps, spy=False, appData={})
        assert j["ok"] is True, j
        return j["data"]


def url(port, room, peer):
    return f"ws://127.0.0.1:{port}/ws?room={room}&peer={peer}"


def test_two_peers_join_see_new_peer_and_peer_closed(host):
    async def main():
        async with connect(url(host, "demo", "alice"), open_timeout=T) as wa:
            alice = Client(wa)
            assert (await alice.join())["peers"] == []
            async with connect(url(host, "demo", "bob"), open_timeout=T) as wb:
                bob = Client(wb)
                j = await bob.join(claimed_name="mallory")
                # The host names peers from the URL, not from join.peerName.
                assert [p["name"] for p in j["peers"]] == ["alice"]
                n = await alice.notification("newPeer")
                assert n["data"]["name"] == "bob"
                assert n["data"]["method"] == "newPeer" and n["data"]["notification"] is True
                assert n["data"]["target"] == "peer" and n["data"]["consumers"] == []
                # an error answer carries the library's reason
                e = await bob.request("fly")
                assert e["ok"] is False and "unknown method" in e["error"]
                e = await bob.request("restartTransport", id=99)
                assert e == {"type": "response", "id": e["id"], "ok": False, "error": "transport not found"}
                t = await bob.request("createTransport", id=5, direction="recv", options={}, appData={})
                assert t["ok"] is True and t["data"]["iceParameters"]["iceLite"] is True
            # bob's socket is closed: alice hears peerClosed
            pc = await alice.notification("peerClosed")
            assert pc["data"]["name"] == "bob"
            # bob may come back under the same name
            async with connect(url(host, "demo", "bob"), open_timeout=T) as wb2:
                bob2 = Client(wb2)
                assert [p["name"] for p in (await bob2.join())["peers"]] == ["alice"]
                assert (await alice.notification("newPeer"))["data"]["name"] == "bob"

    asyncio.run(main())


def test_client_notifications_are_passed_on_in_frame_order(host):
    async def main():
        async with connect(url(host, "r2", "alice"), open_timeout=T) as wa, \
                connect(url(host, "r2", "bob"), open_timeout=T) as wb:
            alice, bob = Client(wa), Client(wb)
            await alice.join()
            q = await bob.request("queryRoom")
            caps = client_caps(q["data"]["rtpCapabilities"])
            # join then leave in back-to-back frames, without waiting in between:
            await wb.send(json.dumps({"type": "request", "id": 50, "method": "join",
                                      "data": {"method": "join", "target": "room", "peerName": "bob",
                                               "rtpCapabilities": caps, "spy": False}}))
            await wb.send(json.dumps({"type": "notification", "method": "leave",
                                      "data": {"method": "leave", "target": "peer", "notification": True}}))
            r = await bob.frame()
            assert r["type"] == "response" and r["id"] == 50 and r["ok"] is True, r
            assert (await alice.notification("newPeer"))["data"]["name"] == "bob"
            assert (await alice.notification("peerClosed"))["data"]["name"] == "bob"

    asyncio.run(main())


def test_rooms_are_separate(host):
    async def main():
        async with connect(url(host, "x1", "alice"), open_timeout=T) as a, \
                connect(url(host, "x2", "alice"), open_timeout=T) as b:
            assert (await Client(a).join())["peers"] == []
            assert (await Client(b).join())["peers"] == []

    asyncio.run(main())


def test_sockets_without_identity_or_duplicates_are_refused(host):
    async def main():
        async with connect(f"ws://127.0.0.1:{host}/ws?room=only", open_timeout=T) as ws:
            with pytest.raises(ConnectionClosed) as ei:
                await asyncio.wait_for(ws.recv(), T)
            assert ei.value.rcvd.code == 1008
        async with connect(url(host, "dup", "alice"), open_timeout=T) as first:
            await Client(first).join()
            async with connect(url(host, "dup", "alice"), open_timeout=T) as second:
                with pytest.raises(ConnectionClosed) as ei:
                    await asyncio.wait_for(second.recv(), T)
                assert ei.value.rcvd.code == 1008 and "already connected" in ei.value.rcvd.reason
            # the first connection is unaffected
            assert (await Client(first).request("queryRoom"))["ok"] is True

    asyncio.run(main())


def _get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=T)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        c.close()


def test_static_files_are_served(host, static_dir):
    status, ctype, body = _get(host, "/")
    assert status == 200 and ctype.startswith("text/html") and b"sfu demo" in body
    status, ctype, body = _get(host, "/assets/app.js")
    assert status == 200 and ctype.startswith("text/javascript") and body == b"console.log('hi')"
    assert _get(host, "/missing.css")[0] == 404
    assert _get(host, "/../../../../etc/passwd")[0] == 404
    assert _get(host, "/%2e%2e/%2e%2e/etc/passwd")[0] == 404


def test_metrics_are_served_in_the_prometheus_format(host):
    from prometheus_client.parser import text_string_to_metric_families

    async def main():
        async with connect(url(host, "metrics", "alice"), open_timeout=T) as wa:
            await Client(wa).join()
            # alice joined (the gauges may lag the answer by a moment: bounded retries).
            for _ in range(100):
                status, ctype, body = _get(host, "/metrics")
                assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
                fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
                if fams["sfu_peers"].samples[0].value >= 1:
                    break
                await asyncio.sleep(0.02)
            assert fams["sfu_peers"].samples[0].value >= 1
            assert fams["sfu_rooms"].samples[0].value >= 1
            assert fams["sfu_datagrams_dropped"].type == "counter"

    asyncio.run(main())
