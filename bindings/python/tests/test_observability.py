"""Logs and metrics of the Python binding against the real libsfu: the library's
records reach ``logging.getLogger("sfu")`` with mapped levels, on the thread of the
handlers and in order with them, per server; ``Server.metrics()`` is parsed by
``prometheus_client``'s own text parser and its counters move with the traffic."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Dict, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

import sfu
from conftest import LOCAL, WAIT, Inbox, join

QUERY = {"method": "queryRoom", "target": "room"}


class Capture(logging.Handler):
    """Records of the "sfu" logger, with the thread each was emitted on."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.cond = threading.Condition()
        self.records: List[Tuple[logging.LogRecord, threading.Thread]] = []

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            self.records.append((record, threading.current_thread()))
            self.cond.notify_all()

    def wait_for(self, pred, timeout: float = WAIT) -> logging.LogRecord:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r, _ in self.records:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such record within {timeout}s: {[r.getMessage() for r, _ in self.records]}")
                self.cond.wait(left)


@pytest.fixture
def capture():
    logger = logging.getLogger("sfu")
    h = Capture()
    old = logger.level
    logger.addHandler(h)
    logger.setLevel(logging.DEBUG)
    try:
        yield h
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)


def test_debug_records_reach_logging_on_the_handler_thread_before_the_response(capture):
    with sfu.Server({**LOCAL, "logLevel": "debug"}) as server:
        room = server.create_room("logs")
        inbox = Inbox()
        room.on_notification = inbox
        join(room, "alice")
        join(room, "bob")  # alice gets newPeer: records the notifier thread
        inbox.wait_method("alice", "newPeer")
        rec = capture.wait_for(lambda r: "request" in r.getMessage() and "from bob" in r.getMessage())
        assert rec.levelno == logging.DEBUG and rec.name == "sfu"
        assert rec.sfu_target == "sfu::room"
        assert rec.sfu_server == server.userdata_id
        assert rec.getMessage().startswith("room logs: request ")
        notifier = inbox.threads()[0].ident
        threads = {t.ident for r, t in capture.records if getattr(r, "sfu_server", None) == server.userdata_id}
        assert threads == {notifier}, "records are emitted on the library's notifier thread"
        assert notifier != threading.get_ident()


def test_a_transport_closed_for_silence_is_a_warning(capture):
    with sfu.Server({**LOCAL, "logLevel": "warn", "transportTimeout": 1}) as server:
        room = server.create_room("quiet")
        join(room, "alice")
        room.request("alice", {"method": "createTransport", "target": "peer", "id": 5, "direction": "recv", "options": {}, "appData": {}})
        rec = capture.wait_for(lambda r: "closing transport 5 of peer alice" in r.getMessage(), timeout=WAIT)
        assert rec.levelno == logging.WARNING
        assert "never connected" in rec.getMessage()
        assert not [r for r, _ in capture.records if hasattr(r, "sfu_target") and r.levelno == logging.DEBUG], "warn level: no debug records"


def test_each_server_has_its_own_level(capture):
    with sfu.Server({**LOCAL, "logLevel": "debug"}) as chatty, sfu.Server({**LOCAL, "logLevel": "error"}) as quiet:
        # The quiet server was created last: a process-wide level would silence both.
        for s in (chatty, quiet):
            s.create_room("r").request("alice", QUERY)
        capture.wait_for(lambda r: getattr(r, "sfu_server", None) == chatty.userdata_id and "request" in r.getMessage())
        assert not [r for r, _ in capture.records if getattr(r, "sfu_server", None) == quiet.userdata_id]


# ------------------------------------------------------------------------- metrics


def families(text: str) -> Dict[str, object]:
    """prometheus_client's parser; family names without the counters' ``_total``."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, family: str, sample: str, **labels) -> float:
    f = fams[family]
    for s in f.samples:
        if s.name == sample and s.labels == labels:
            return s.value
    raise AssertionError(f"no sample {sample}{labels} in {[(s.name, s.labels) for s in f.samples]}")


def test_metrics_parse_with_prometheus_client_and_counters_move_with_traffic():
    with sfu.Server(LOCAL) as server:
        fams = families(server.metrics())
        types = {name: f.type for name, f in fams.items()}
        for name, kind in {
            "sfu_rooms": "gauge",
            "sfu_peers": "gauge",
            "sfu_transports": "gauge",
            "sfu_producers": "gauge",
            "sfu_consumers": "gauge",
            "sfu_datagrams_received": "counter",
            "sfu_datagrams_dropped": "counter",
            "sfu_rtp_packets_received": "counter",
            "sfu_rtp_packets_sent": "counter",
            "sfu_rtp_retransmissions": "counter",
            "sfu_rtcp_feedback_received": "counter",
            "sfu_rtcp_feedback_sent": "counter",
            "sfu_worker_busy_seconds": "counter",
            "sfu_worker_busy_ratio": "gauge",
            "sfu_worker_batch_latency_seconds": "histogram",
            "sfu_log_records_dropped": "counter",
        }.items():
            assert types.get(name) == kind, (name, types.get(name))
        assert value(fams, "sfu_rooms", "sfu_rooms") == 0

        room = server.create_room("m")
        join(room, "alice")
        join(room, "bob")
        t = room.request("alice", {"method": "createTransport", "target": "peer", "id": 1, "direction": "recv", "options": {}, "appData": {}})
        port = next(c["port"] for c in t["iceCandidates"] if c["protocol"] == "udp")
        # Gauges are published at the end of the worker's loop iteration that ran the
        # request: the response may overtake them by a moment.
        deadline = time.monotonic() + WAIT
        while True:
            m1 = families(server.metrics())
            if value(m1, "sfu_transports", "sfu_transports", protocol="none", state="new") == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert value(m1, "sfu_rooms", "sfu_rooms") == 1
        assert value(m1, "sfu_peers", "sfu_peers") == 2
        assert value(m1, "sfu_transports", "sfu_transports", protocol="none", state="new") == 1
        assert value(m1, "sfu_transports", "sfu_transports", protocol="tcp", state="connected") == 0
        drops0 = value(m1, "sfu_datagrams_dropped", "sfu_datagrams_dropped_total", protocol="udp", reason="unknown_source")
        rx0 = value(m1, "sfu_datagrams_received", "sfu_datagrams_received_total", protocol="udp")

        # Datagrams from an address no transport validated: counted, dropped.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(40):
                s.sendto(bytes([0x80, 96, 0, i]) + b"\0" * 20, ("127.0.0.1", port))
        deadline = time.monotonic() + WAIT
        while True:
            m2 = families(server.metrics())
            drops = value(m2, "sfu_datagrams_dropped", "sfu_datagrams_dropped_total", protocol="udp", reason="unknown_source")
            if drops - drops0 >= 40 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert drops - drops0 == 40
        assert value(m2, "sfu_datagrams_received", "sfu_datagrams_received_total", protocol="udp") - rx0 == 40
        assert value(m2, "sfu_received_bytes", "sfu_received_bytes_total", protocol="udp") >= 40 * 24
        hist = m2["sfu_worker_batch_latency_seconds"]
        buckets = [(float(s.labels["le"]), s.value) for s in hist.samples if s.name.endswith("_bucket")]
        assert buckets == sorted(buckets) and buckets[-1][0] == float("inf"), "cumulative buckets up to +Inf"
        count = value(m2, "sfu_worker_batch_latency_seconds", "sfu_worker_batch_latency_seconds_count", worker="0")
        assert count >= 1 and buckets[-1][1] == count, hist
        assert 0 <= value(m2, "sfu_worker_busy_ratio", "sfu_worker_busy_ratio", worker="0") <= 1

        # Counters never go down.
        for name, f in m2.items():
            if f.type == "counter":
                for s in f.samples:
                    if s.name.endswith("_total"):
                        before = [x.value for x in m1[name].samples if x.name == s.name and x.labels == s.labels]
                        assert not before or s.value >= before[0], (s.name, s.labels)
    with pytest.raises(sfu.SfuError) as e:
        server.metrics()
    assert e.value.code == sfu.Result.SERVER_CLOSED
