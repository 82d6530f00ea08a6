"""The Python binding against the real libsfu: creating, messaging, receiving and
closing servers, with real library responses asserted."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import sfu
from conftest import LOCAL, REPO, WAIT, Inbox, client_caps, join

# --------------------------------------------------------------------- loading


def test_version_and_library():
    assert sfu.version() == "0.1.0"
    assert sfu.library_path().name == "libsfu.so"


@pytest.mark.skipif(not os.environ.get("SFU_BINDING_EXPECT_INSTALLED"), reason="run by test.sh")
def test_the_installed_package_is_under_test():
    # test.sh pip-installs bindings/python; the tests must import that copy.
    assert "site-packages" in sfu.__file__, sfu.__file__


def _probe(env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if k != "SFU_LIBRARY_PATH"}
    env.update(env_extra)
    code = "import sfu\ntry:\n    s = sfu.Server({'numWorkers': 1}); s.close(); print('OK', sfu.library_path())\nexcept OSError as e:\n    print('ERR', e)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_library_is_found_from_env_file_env_dir_package_and_repo(tmp_path):
    lib = REPO / "target" / "release" / "libsfu.so"
    assert _probe({"SFU_LIBRARY_PATH": str(lib)}, tmp_path) == f"OK {lib}"
    assert _probe({"SFU_LIBRARY_PATH": str(lib.parent)}, tmp_path) == f"OK {lib}"
    bundled = Path(sfu.__file__).resolve().parent / "libsfu.so"
    if os.environ.get("SFU_BINDING_EXPECT_INSTALLED"):
        assert bundled.is_file(), f"pip install did not bundle the library: {bundled}"
    if bundled.is_file():
        # No env: the library pip install built and put in the package, from any cwd.
        assert _probe({}, tmp_path) == f"OK {bundled}"
    else:
        # No env, package used from the source tree: walking up from the package finds
        # target/release when it lives in this repo; else from the cwd.
        inside = REPO in Path(sfu.__file__).resolve().parents
        assert _probe({}, tmp_path if inside else REPO) == f"OK {lib}"
    # An explicit setting that is wrong is an error, not a silent fallback.
    out = _probe({"SFU_LIBRARY_PATH": str(tmp_path / "nope.so")}, tmp_path)
    assert out.startswith("ERR libsfu not found") and "SFU_LIBRARY_PATH" in out, out


# -------------------------------------------------------------- server and room


@pytest.mark.parametrize(
    "config,key",
    [
        ({"numWorkers": 0}, "numWorkers"),
        ({"numWorkerz": 1}, "numWorkerz"),
        ({"logLevel": "loud"}, "logLevel"),
        ({"rtcIPv4": "1.2.3"}, "rtcIPv4"),
        ({"rtcMinPort": 5000, "rtcMaxPort": 4000}, "rtcMinPort"),
    ],
)
def test_bad_config_raises_sfu_error_naming_the_key(config, key):
    before = sfu.live_userdata()
    with pytest.raises(sfu.SfuError) as ei:
        sfu.Server(config)
    assert ei.value.code == sfu.Result.INVALID_CONFIG
    assert key in ei.value.message and key in str(ei.value)
    # On failure the library keeps no callback and the binding no userdata.
    assert sfu.live_userdata() == before


def test_config_must_be_a_dict():
    with pytest.raises(TypeError):
        sfu.Server(7)


def test_server_defaults_start_and_close():
    s = sfu.Server()
    assert not s.closed
    s.close()
    assert s.closed


def test_create_room_validation(server):
    bad = [
        {"mediaCodecs": [{"kind": "audio", "name": "nope", "clockRate": 48000}]},
        {"mediaCodecs": []},
        {"mediaCodecz": []},
        "not json",
    ]
    for i, opts in enumerate(bad):
        with pytest.raises(sfu.SfuError) as ei:
            server.create_room(f"r{i}", opts)
        assert ei.value.code == sfu.Result.INVALID_ARGUMENT, opts
        assert ei.value.message
    with pytest.raises(sfu.SfuError) as ei:
        server.create_room("", None)
    assert ei.value.code == sfu.Result.INVALID_ARGUMENT
    ok = server.create_room(
        "ok",
        {"mediaCodecs": [{"kind": "audio", "name": "opus", "clockRate": 48000, "channels": 2},
                         {"kind": "video", "name": "H264", "clockRate": 90000, "parameters": {"packetization-mode": 1}}]},
    )
    names = [c["name"] for c in ok.request("a", {"method": "queryRoom"})["rtpCapabilities"]["codecs"]]
    assert names == ["opus", "H264", "rtx"]
    # A duplicate id fails and does not disturb the live room's handlers.
    inbox = Inbox()
    ok.on_notification = inbox
    with pytest.raises(sfu.SfuError) as ei:
        server.create_room("ok")
    assert ei.value.code == sfu.Result.ROOM_EXISTS
    join(ok, "alice")
    join(ok, "bob")
    assert inbox.wait_method("alice", "newPeer")["name"] == "bob"


def test_query_room_and_join_round_trip(room):
    q = room.request("alice", {"method": "queryRoom", "target": "room"})
    assert q["mandatoryCodecPayloadTypes"] == []
    codecs = q["rtpCapabilities"]["codecs"]
    assert [c["name"] for c in codecs] == ["opus", "VP8", "rtx", "VP9", "rtx", "H264", "rtx"]
    assert codecs[0]["preferredPayloadType"] == 100 and codecs[0]["channels"] == 2
    j = room.request("alice", {"method": "join", "target": "room", "peerName": "alice",
                               "rtpCapabilities": client_caps(q["rtpCapabilities"]), "spy": False,
                               "appData": {"n": "alice"}})
    assert j["peers"] == []
    j = join(room, "bob")
    assert [p["name"] for p in j["peers"]] == ["alice"]
    assert j["peers"][0]["appData"] == {"n": "alice"}
    assert j["peers"][0]["consumers"] == []


def test_create_transport_answers_ice_lite_parameters(room, server):
    join(room, "alice")
    t = room.request("alice", {"method": "createTransport", "target": "peer", "id": 11, "direction": "recv",
                               "options": {}, "appData": {}})
    assert t["iceParameters"]["iceLite"] is True
    assert t["iceCandidates"][0]["ip"] == "127.0.0.1"
    assert t["dtlsParameters"]["role"] == "auto"


def test_request_errors_carry_the_library_reason(room):
    with pytest.raises(sfu.RequestError) as ei:
        room.request("ghost", {"method": "createTransport", "target": "peer", "id": 1})
    assert ei.value.reason == "peer not joined"
    join(room, "alice")
    with pytest.raises(sfu.RequestError) as ei:
        room.request("alice", {"method": "fly", "target": "peer"})
    assert "unknown method" in ei.value.reason and "fly" in ei.value.reason
    with pytest.raises(sfu.RequestError) as ei:
        room.request("alice", {"method": "restartTransport", "target": "peer", "id": 99})
    assert ei.value.reason == "transport not found"
    with pytest.raises(sfu.RequestError) as ei:
        room.request("alice", {"method": "enableConsumer", "id": 12345, "transportId": 2, "paused": False})
    assert ei.value.reason == "consumer not found"
    # Raw client text is passed verbatim (str or bytes).
    with pytest.raises(sfu.RequestError) as ei:
        room.request("alice", "{not json")
    assert "invalid JSON" in ei.value.reason
    with pytest.raises(sfu.RequestError) as ei:
        room.request("alice", b"[1,2]")
    assert "JSON object" in ei.value.reason
    assert isinstance(ei.value, sfu.Error)


def test_request_to_a_closed_room_says_room_not_found(server):
    r = server.create_room("gone")
    r.close()
    assert r.closed
    with pytest.raises(sfu.RequestError) as ei:
        r.request("alice", {"method": "queryRoom"})
    assert ei.value.reason == "room not found"


def test_arguments_are_checked_before_reaching_c(room):
    with pytest.raises(TypeError):
        room.request("alice", ["queryRoom"])
    with pytest.raises(ValueError):
        room.request("al\0ice", {"method": "queryRoom"})
    with pytest.raises(ValueError):
        room.notify("alice", "{\"method\":\"leave\"}\0")
    with pytest.raises(TypeError):
        room.close_peer(7)


# --------------------------------------------------------------- notifications


def test_notifications_arrive_on_a_library_thread(room):
    inbox = Inbox()
    room.on_notification = inbox
    join(room, "alice")
    join(room, "bob", app_data={"x": 1})
    n = inbox.wait_method("alice", "newPeer")
    assert n["name"] == "bob" and n["appData"] == {"x": 1} and n["consumers"] == []
    assert n["notification"] is True and n["target"] == "peer"
    threads = inbox.threads()
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert all(t is not threading.current_thread() for t in threads)


def test_notify_new_peer_and_peer_closed_flow(room):
    inbox = Inbox()
    room.on_notification = inbox
    join(room, "alice")
    join(room, "bob")
    join(room, "carol")
    assert inbox.wait_method("alice", "newPeer")["name"] == "bob"
    # bob leaves (a client notification): the others get peerClosed, bob nothing.
    room.notify("bob", {"method": "leave", "target": "peer", "notification": True, "appData": {}})
    assert inbox.wait_method("alice", "peerClosed")["name"] == "bob"
    assert inbox.wait_method("carol", "peerClosed")["name"] == "bob"
    # the host closes carol: carol gets closed, alice peerClosed.
    room.close_peer("carol")
    inbox.wait_method("carol", "closed")
    inbox.wait_for(lambda p, m: p == "alice" and m["method"] == "peerClosed" and m["name"] == "carol")
    assert "closed" not in inbox.methods("bob")
    with pytest.raises(sfu.SfuError) as ei:
        room.close_peer("carol")
    assert ei.value.code == sfu.Result.PEER_NOT_FOUND
    # a join after that sees only alice
    assert [p["name"] for p in join(room, "dave")["peers"]] == ["alice"]


def test_host_events_go_to_on_host_event(room):
    events, notes = Inbox(), Inbox()
    room.on_host_event = events
    room.on_notification = notes
    join(room, "alice")
    room.notify("alice", {"method": "pauseConsumer", "target": "peer", "notification": True})
    room.notify("alice", "garbage")
    peer, ev = events.wait_for(lambda p, m: m.get("event") == "notificationError" and "invalid JSON" in m["error"])
    assert peer == "alice"
    _, ev = events.wait_for(lambda p, m: m.get("method") == "pauseConsumer")
    assert "missing field `id`" in ev["error"]
    assert notes.methods() == []


def test_events_are_dispatched_to_their_room(server):
    r1, r2 = server.create_room("one"), server.create_room("two")
    i1, i2 = Inbox(), Inbox()
    r1.on_notification, r2.on_notification = i1, i2
    for r in (r1, r2):
        join(r, "alice")
    join(r2, "bob")
    i2.wait_method("alice", "newPeer")
    join(r1, "zed")
    i1.wait_method("alice", "newPeer")
    assert [m["name"] for _, m, _ in i1.items] == ["zed"]
    assert [m["name"] for _, m, _ in i2.items] == ["bob"]


def test_an_exception_in_a_handler_does_not_stop_delivery(room, monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    inbox = Inbox()
    calls = []

    def handler(peer, msg):
        calls.append(msg["method"])
        if len(calls) == 1:
            raise ValueError("boom from the host")
        inbox(peer, msg)

    room.on_notification = handler
    join(room, "alice")
    join(room, "bob")  # -> newPeer to alice: raises
    join(room, "carol")  # -> newPeer to alice and bob: delivered
    inbox.wait_for(lambda p, m: p == "alice" and m.get("name") == "carol")
    inbox.wait_for(lambda p, m: p == "bob" and m.get("name") == "carol")
    assert calls[0] == "newPeer"
    assert len(reported) == 1
    assert isinstance(reported[0].exc_value, ValueError)
    assert "on_notification" in reported[0].err_msg
    assert reported[0].object is handler
    # requests still work too
    assert room.request("alice", {"method": "queryRoom"})["mandatoryCodecPayloadTypes"] == []


def test_blocking_request_from_a_handler_raises_instead_of_deadlocking(room):
    seen = []
    done = threading.Event()

    def handler(peer, msg):
        if msg["method"] != "newPeer":
            return
        try:
            room.request(peer, {"method": "queryRoom"}, timeout=1)
        except BaseException as e:  # noqa: BLE001
            seen.append(e)
        room.notify(peer, {"method": "pauseConsumer", "notification": True})  # allowed
        done.set()

    errors = Inbox()
    room.on_host_event = errors
    room.on_notification = handler
    join(room, "alice")
    join(room, "bob")
    assert done.wait(WAIT)
    assert isinstance(seen[0], RuntimeError)
    errors.wait_for(lambda p, m: p == "alice" and m.get("method") == "pauseConsumer")


# ---------------------------------------------------------------------- timeouts


def _block_notifier(room):
    """Join alice with a handler that will block the notifier on the next newPeer."""
    release, blocked = threading.Event(), threading.Event()

    def handler(peer, msg):
        if msg.get("method") == "newPeer":
            blocked.set()
            release.wait(WAIT)

    room.on_notification = handler
    join(room, "alice")
    return release, blocked


def test_request_timeout_then_late_response_is_dropped(room):
    release, blocked = _block_notifier(room)
    join_done = threading.Thread(target=join, args=(room, "bob"))
    join_done.start()
    assert blocked.wait(WAIT)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        room.request("alice", {"method": "queryRoom"}, timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < 5
    release.set()
    join_done.join(WAIT)
    assert not join_done.is_alive()
    # the late answer to the timed-out request went nowhere; the next one works
    assert "rtpCapabilities" in room.request("alice", {"method": "queryRoom"})


def test_request_async_timeout(room):
    release, blocked = _block_notifier(room)
    t = threading.Thread(target=join, args=(room, "bob"))
    t.start()
    assert blocked.wait(WAIT)

    async def main():
        with pytest.raises(TimeoutError):
            await room.request_async("alice", {"method": "queryRoom"}, timeout=0.3)

    asyncio.run(main())
    release.set()
    t.join(WAIT)


# ----------------------------------------------------------------------- asyncio


def test_request_async_concurrently(room):
    async def main():
        loop_thread = threading.current_thread()
        resolved_on = []
        futs = [room.request_async(f"p{i}", {"method": "queryRoom", "target": "room"}) for i in range(20)]
        for f in futs:
            f.add_done_callback(lambda _f: resolved_on.append(threading.current_thread()))
        results = await asyncio.wait_for(asyncio.gather(*futs), WAIT)
        assert all(r["rtpCapabilities"]["codecs"][0]["name"] == "opus" for r in results)
        assert resolved_on and all(t is loop_thread for t in resolved_on)
        # several joins at once, and an error among them
        caps = client_caps(results[0]["rtpCapabilities"])
        joins = [room.request_async(n, {"method": "join", "target": "room", "peerName": n, "rtpCapabilities": caps,
                                         "spy": False}) for n in ("a", "b", "c")]
        bad = room.request_async("a", {"method": "fly"})
        got = await asyncio.wait_for(asyncio.gather(*joins, bad, return_exceptions=True), WAIT)
        assert sorted(len(g["peers"]) for g in got[:3]) == [0, 1, 2]
        assert isinstance(got[3], sfu.RequestError) and "unknown method" in got[3].reason

    asyncio.run(main())


def test_request_async_is_submitted_when_called(room):
    """The request reaches the library at call time: a notify() right after it,
    without awaiting, is applied after it (the host's frame order)."""
    errors = Inbox()
    room.on_host_event = errors
    q = room.request("x", {"method": "queryRoom"})

    async def main():
        fut = room.request_async("alice", {"method": "join", "target": "room", "peerName": "alice",
                                           "rtpCapabilities": client_caps(q["rtpCapabilities"]), "spy": False})
        room.notify("alice", {"method": "leave", "target": "peer", "notification": True})
        await asyncio.wait_for(fut, WAIT)

    asyncio.run(main())
    assert join(room, "bob")["peers"] == [], "alice joined, then left"
    assert errors.methods() == [], "leave was not applied before join"


def test_cancelled_request_async_is_forgotten(room):
    async def main():
        fut = room.request_async("alice", {"method": "queryRoom"})
        fut.cancel()
        await asyncio.sleep(0.2)
        return await room.request_async("alice", {"method": "queryRoom"})

    assert "rtpCapabilities" in asyncio.run(main())
    assert room.server._core.pending == {}


# ------------------------------------------------------------------------- close


def test_close_while_callbacks_are_queued():
    """Flood 200 requests (and 200 slow host events), close at once: no crash, every
    request resolved or failed, no handler after close() returned."""
    server = sfu.Server(LOCAL)
    uid = server.userdata_id
    room = server.create_room("flood")
    join(room, "alice")
    closed_returned = threading.Event()
    late = []
    handled = [0]
    handled_when_close_began = []

    def slow(peer, msg):
        handled[0] += 1
        if closed_returned.is_set():
            late.append(msg)
        time.sleep(0.002)

    room.on_host_event = slow
    room.on_notification = slow

    async def main():
        for _ in range(200):
            room.notify("alice", {"method": "pauseConsumer", "notification": True})  # -> host event
        # 8 peers x 25: within the library's per-peer pending-request limit (128).
        futs = [room.request_async(f"p{i % 8}", {"method": "queryRoom"}, timeout=None) for i in range(200)]
        handled_when_close_began.append(handled[0])
        closer = threading.Thread(target=server.close)
        closer.start()
        closer.join(30)
        assert not closer.is_alive(), "close() returned"
        closed_returned.set()
        results = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), WAIT)
        return results

    results = asyncio.run(main())
    assert len(results) == 200
    ok = [r for r in results if isinstance(r, dict)]
    failed = [r for r in results if isinstance(r, sfu.RequestError)]
    assert len(ok) + len(failed) == 200, [r for r in results if not isinstance(r, (dict, sfu.RequestError))]
    assert all(f.reason == "server closed" for f in failed), {f.reason for f in failed}
    assert all("rtpCapabilities" in r for r in ok)
    time.sleep(0.3)
    assert late == []
    # close() began with most of the 200 slow host events still queued, and they (and
    # alice's `closed`) were delivered before it returned.
    assert handled_when_close_began[0] < 150, handled_when_close_began
    assert handled[0] == 201, handled[0]
    assert server._core.pending == {}
    assert sfu.userdata_free_count(uid) == 1
    # alice got `closed` during close(), before it returned
    with pytest.raises(sfu.SfuError):
        room.request("alice", {"method": "queryRoom"})


def test_close_with_blocking_requests_in_flight_from_threads():
    server = sfu.Server(LOCAL)
    room = server.create_room("threads")
    outcomes = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(i):
        while not stop.is_set():
            try:
                r = room.request(f"p{i}", {"method": "queryRoom"}, timeout=WAIT)
                out = "ok" if "rtpCapabilities" in r else "bad"
            except sfu.RequestError as e:
                out = f"request:{e.reason}"
            except sfu.SfuError as e:
                out = f"sfu:{e.code.name}"
            with lock:
                outcomes.append(out)
            if out != "ok":
                return

    with ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(client, i) for i in range(8)]
        time.sleep(0.2)
        server.close()
        stop.set()
        for f in futs:
            f.result(timeout=WAIT)
    assert outcomes.count("ok") > 0
    assert set(outcomes) <= {"ok", "request:server closed", "sfu:SERVER_CLOSED"}, set(outcomes)
    assert server._core.pending == {}


def test_close_is_idempotent_and_later_calls_fail(server):
    room = server.create_room("r")
    inbox = Inbox()
    room.on_notification = inbox
    join(room, "alice")
    server.close()
    server.close()
    assert server.closed and room.closed
    assert inbox.methods("alice")[-1] == "closed", "delivered before close() returned"
    for call in (
        lambda: server.create_room("x"),
        lambda: room.request("alice", {"method": "queryRoom"}),
        lambda: room.notify("alice", {"method": "leave"}),
        lambda: room.close_peer("alice"),
    ):
        with pytest.raises(sfu.SfuError) as ei:
            call()
        assert ei.value.code == sfu.Result.SERVER_CLOSED

    async def later():
        room.request_async("alice", {"method": "queryRoom"})

    with pytest.raises(sfu.SfuError):
        asyncio.run(later())
    room.close()
    room.close()


def test_concurrent_close_from_two_threads(server):
    room = server.create_room("r")
    join(room, "alice")
    ts = [threading.Thread(target=server.close) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT)
    assert not any(t.is_alive() for t in ts)
    assert sfu.userdata_free_count(server.userdata_id) == 1


def test_room_close_delivers_closed_then_drops_its_handlers(server):
    room = server.create_room("r")
    inbox = Inbox()
    room.on_notification = inbox
    join(room, "alice")
    join(room, "bob")
    room.close()
    room.close()
    # Already delivered when close() returned, no waiting:
    assert inbox.methods("alice")[-1] == "closed" and inbox.methods("bob")[-1] == "closed"
    assert "r" not in server._core.rooms
    # The id can be reused; the new room has its own handlers.
    again = server.create_room("r")
    inbox2 = Inbox()
    again.on_notification = inbox2
    assert join(again, "alice")["peers"] == []
    join(again, "carol")
    inbox2.wait_method("alice", "newPeer")
    n = len(inbox.items)
    time.sleep(0.1)
    assert len(inbox.items) == n


def test_close_from_inside_a_handler(server):
    uid = server.userdata_id
    room = server.create_room("r")
    join(room, "alice")
    returned = threading.Event()
    after = []

    def handler(peer, msg):
        if returned.is_set():
            after.append(msg)
            return
        server.close()  # on the notifier thread: returns without waiting
        returned.set()

    room.on_notification = handler
    outcome = []

    def bob():
        q = room.request("bob", {"method": "queryRoom"})
        # join -> newPeer to alice -> the handler closes the server before the join
        # response is delivered: the pending join must fail, not hang.
        fut_err = None
        try:
            room.request("bob", {"method": "join", "target": "room", "peerName": "bob",
                                 "rtpCapabilities": client_caps(q["rtpCapabilities"]), "spy": False})
        except sfu.RequestError as e:
            fut_err = e
        outcome.append(fut_err)

    t = threading.Thread(target=bob)
    t.start()
    assert returned.wait(WAIT)
    t.join(WAIT)
    assert not t.is_alive()
    assert isinstance(outcome[0], sfu.RequestError) and outcome[0].reason == "server closed"
    assert server.closed
    deadline = time.monotonic() + WAIT
    while sfu.userdata_free_count(uid) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sfu.userdata_free_count(uid) == 1
    assert after == []
    assert server._core.pending == {}


# ------------------------------------------------------------ context managers


def test_context_managers():
    inbox = Inbox()
    with sfu.Server(LOCAL) as server:
        uid = server.userdata_id
        with server.create_room("r") as room:
            room.on_notification = inbox
            join(room, "alice")
            assert not room.closed
        assert room.closed and not server.closed
        assert inbox.methods("alice") == ["closed"]
        assert sfu.userdata_free_count(uid) == 0 and uid in sfu.live_userdata()
    assert server.closed
    assert sfu.userdata_free_count(uid) == 1 and uid not in sfu.live_userdata()


def test_context_manager_closes_on_exception():
    with pytest.raises(KeyError):
        with sfu.Server(LOCAL) as server:
            raise KeyError("x")
    assert server.closed and sfu.userdata_free_count(server.userdata_id) == 1


# --------------------------------------------------------------------- no leaks


def test_server_room_and_callbacks_are_released_after_close():
    server = sfu.Server(LOCAL)
    uid = server.userdata_id
    room = server.create_room("r")
    inbox = Inbox()
    room.on_notification = inbox
    room.on_host_event = lambda p, m, r=room: r.id  # a handler referencing the room (a cycle)
    join(room, "alice")
    join(room, "bob")
    inbox.wait_method("alice", "newPeer")
    refs = [weakref.ref(o) for o in (server, room, inbox)]
    assert uid in sfu.live_userdata()
    server.close()
    assert sfu.userdata_free_count(uid) == 1, "userdata_free ran exactly once"
    assert uid not in sfu.live_userdata()
    del server, room, inbox
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
    time.sleep(0.1)
    assert sfu.userdata_free_count(uid) == 1, "and never again"


def test_a_forgotten_server_is_closed_by_the_gc():
    server = sfu.Server(LOCAL)
    uid = server.userdata_id
    room = server.create_room("r")
    join(room, "alice")
    ref = weakref.ref(server)
    with pytest.warns(ResourceWarning, match="unclosed"):
        del server, room
        gc.collect()
    assert ref() is None
    assert sfu.userdata_free_count(uid) == 1
    assert uid not in sfu.live_userdata()


def test_many_servers_release_everything():
    uids = []
    for _ in range(5):
        with sfu.Server(LOCAL) as s:
            uids.append(s.userdata_id)
            join(s.create_room("r"), "alice")
    assert [sfu.userdata_free_count(u) for u in uids] == [1] * 5
    assert not (set(uids) & sfu.live_userdata())
