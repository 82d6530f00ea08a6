//! Logs and metrics through the public Rust API: each server's records reach its own
//! sink at its own level, on the notifier thread, ordered with the events; replacing
//! or closing runs a sink's finalizer once, after its last record; the metrics text
//! parses and its counters and gauges follow what happened (requests, transports,
//! datagrams from unknown addresses). Media counters (RTP, NACK, retransmissions,
//! PLI) are checked with real peers in tests/media_reliability.rs.
//!
//! Every wait is bounded.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use serde_json::json;
use sfu::{EventKind, LogRecord, Server, SfuError};
use sfu_testkit::harness::Harness;
use sfu_testkit::prom::Metrics;

/// What a server's callbacks saw, in the order they ran: ("event"|"log:<tag>", text, thread).
type Seen = Arc<Mutex<Vec<(String, String, ThreadId)>>>;

/// Runs `on_drop` when the sink holding it is dropped (the finalizer's stand-in).
struct DropGuard(Arc<AtomicUsize>, Seen, &'static str);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1.lock().unwrap().push((format!("drop:{}", self.2), String::new(), std::thread::current().id()));
    }
}

fn server(level: &str, seen: &Seen) -> Server {
    let s2 = seen.clone();
    Server::new(
        Some(&json!({"numWorkers": 1, "rtcIPv4": "127.0.0.1", "logLevel": level}).to_string()),
        Box::new(move |ev| {
            let tag = if ev.kind == EventKind::Response { format!("response {}", ev.request_id) } else { ev.json.to_string() };
            s2.lock().unwrap().push(("event".into(), tag, std::thread::current().id()));
        }),
    )
    .unwrap()
}

fn sink(tag: &'static str, seen: &Seen, drops: &Arc<AtomicUsize>) -> sfu::LogSink {
    let s2 = seen.clone();
    let guard = DropGuard(drops.clone(), seen.clone(), tag);
    Box::new(move |r: &LogRecord| {
        let _ = &guard;
        let text = format!("{} {} {}", r.level.name(), r.target, r.message);
        s2.lock().unwrap().push((format!("log:{tag}"), text, std::thread::current().id()));
    })
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

fn count(seen: &Seen, pred: impl Fn(&(String, String, ThreadId)) -> bool) -> usize {
    seen.lock().unwrap().iter().filter(|e| pred(e)).count()
}

#[test]
fn each_server_logs_to_its_own_sink_at_its_own_level_ordered_with_its_events() {
    let (seen_a, seen_b): (Seen, Seen) = Default::default();
    let drops = Arc::new(AtomicUsize::new(0));
    // Created in this order, the last one at "error": with a process-wide level the
    // first server would lose its debug records.
    let a = server("debug", &seen_a);
    let b = server("error", &seen_b);
    a.set_log_sink(Some(sink("a1", &seen_a, &drops))).unwrap();
    b.set_log_sink(Some(sink("b", &seen_b, &drops))).unwrap();
    for s in [&a, &b] {
        s.create_room("r", None).unwrap();
        s.request("r", "alice", 7, br#"{"method":"queryRoom","target":"room"}"#).unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || {
        count(&seen_a, |e| e.1 == "response 7") == 1 && count(&seen_b, |e| e.1 == "response 7") == 1
    }));
    {
        let v = seen_a.lock().unwrap();
        let rec = v.iter().position(|e| e.0 == "log:a1" && e.1.starts_with("debug sfu::room room r: request 7 from alice"));
        let resp = v.iter().position(|e| e.1 == "response 7");
        assert!(rec.is_some() && rec < resp, "the request's record precedes its response: {v:?}");
        let threads: std::collections::HashSet<ThreadId> = v.iter().map(|e| e.2).collect();
        assert_eq!(threads.len(), 1, "records and events on one thread (the notifier): {v:?}");
        assert_ne!(v[0].2, std::thread::current().id());
    }
    assert_eq!(count(&seen_b, |e| e.0.starts_with("log:")), 0, "server b is at error level");

    // A new sink: the old one is dropped on the notifier thread, after its records;
    // what is produced from now on goes to the new one.
    a.set_log_sink(Some(sink("a2", &seen_a, &drops))).unwrap();
    a.request("r", "bob", 8, br#"{"method":"queryRoom","target":"room"}"#).unwrap();
    assert!(wait_until(Duration::from_secs(10), || count(&seen_a, |e| e.1 == "response 8") == 1));
    {
        let v = seen_a.lock().unwrap();
        let dropped = v.iter().position(|e| e.0 == "drop:a1").expect("a1 dropped");
        assert!(v[..dropped].iter().all(|e| e.0 != "log:a2"), "{v:?}");
        assert!(v[dropped..].iter().all(|e| e.0 != "log:a1"), "nothing reaches a1 after it was dropped: {v:?}");
        assert!(v.iter().any(|e| e.0 == "log:a2" && e.1.contains("request 8 from bob")), "{v:?}");
        assert_eq!(v[dropped].2, v[0].2, "dropped on the notifier thread");
    }
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    a.close();
    assert_eq!(drops.load(Ordering::SeqCst), 2, "a2 dropped once, before close returned");
    assert!(matches!(a.set_log_sink(None), Err(SfuError::ServerClosed)));
    b.close();
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn a_refused_sink_is_dropped_and_none_goes_back_to_stderr() {
    let seen: Seen = Default::default();
    let drops = Arc::new(AtomicUsize::new(0));
    let s = server("debug", &seen);
    s.set_log_sink(Some(sink("x", &seen, &drops))).unwrap();
    s.set_log_sink(None).unwrap();
    s.create_room("r", None).unwrap();
    s.request("r", "alice", 1, br#"{"method":"queryRoom","target":"room"}"#).unwrap();
    assert!(wait_until(Duration::from_secs(10), || count(&seen, |e| e.1 == "response 1") == 1));
    assert_eq!(drops.load(Ordering::SeqCst), 1, "replaced by None: dropped");
    assert_eq!(count(&seen, |e| e.0 == "log:x"), 0, "records went to stderr");
    s.close();
    assert!(s.set_log_sink(Some(sink("late", &seen, &drops))).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 2, "the refused sink was dropped at once");
}

fn metrics(h: &Harness) -> Metrics {
    Metrics::parse(&h.server.metrics().expect("metrics"))
}

#[test]
fn metrics_follow_rooms_peers_transports_and_datagrams_from_unknown_addresses() {
    let h = Harness::local();
    let m0 = metrics(&h);
    assert_eq!(m0.value("sfu_workers", &[]), 1.0);
    assert_eq!(m0.value("sfu_rooms", &[]), 0.0);
    assert_eq!(m0.types["sfu_datagrams_dropped_total"], "counter");
    assert_eq!(m0.types["sfu_worker_batch_latency_seconds"], "histogram");
    assert_eq!(m0.value("sfu_build_info", &[("version", sfu::VERSION)]), 1.0);

    h.server.create_room("m", None).unwrap();
    h.join("m", "alice");
    h.join("m", "bob");
    h.request("m", "alice", json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "recv", "options": {}, "appData": {}}))
        .unwrap();
    // The gauges are published at the end of the worker's loop iteration that ran the
    // command: the response may overtake them by a moment.
    let mut m1 = metrics(&h);
    assert!(wait_until(Duration::from_secs(2), || {
        m1 = metrics(&h);
        m1.value("sfu_peers", &[]) == 2.0 && m1.value("sfu_transports", &[("protocol", "none"), ("state", "new")]) == 1.0
    }));
    assert_eq!(m1.value("sfu_rooms", &[]), 1.0);
    assert_eq!(m1.value("sfu_peers", &[]), 2.0);
    assert_eq!(m1.value("sfu_transports", &[("protocol", "none"), ("state", "new")]), 1.0);
    assert_eq!(m1.value("sfu_transports", &[("protocol", "udp"), ("state", "connected")]), 0.0);
    assert_eq!(m1.value("sfu_producers", &[]), 0.0);

    // Datagrams from an address no transport knows: read, counted, dropped.
    let port = h.server.ports()[0];
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let unknown = [("protocol", "udp"), ("reason", "unknown_source")];
    let before = m1.value("sfu_datagrams_dropped_total", &unknown);
    let rx_before = m1.value("sfu_datagrams_received_total", &[("protocol", "udp")]);
    let batches_before = m1.value("sfu_worker_batch_latency_seconds_count", &[("worker", "0")]);
    for i in 0..25u8 {
        sock.send_to(&[0x80, 96, 0, i, 0, 0, 0, 0, 1, 2, 3, 4, i], ("127.0.0.1", port)).unwrap();
    }
    let mut last = m1.clone();
    let got = wait_until(Duration::from_secs(10), || {
        last = metrics(&h);
        last.value("sfu_datagrams_dropped_total", &unknown) - before >= 25.0
    });
    assert!(got, "25 unknown-source drops counted: {:?}", last.series("sfu_datagrams_dropped_total"));
    assert_eq!(last.value("sfu_datagrams_dropped_total", &unknown) - before, 25.0, "exactly those");
    assert_eq!(last.value("sfu_datagrams_received_total", &[("protocol", "udp")]) - rx_before, 25.0);
    assert!(last.value("sfu_received_bytes_total", &[("protocol", "udp")]) >= 25.0 * 13.0);
    assert!(last.value("sfu_worker_batch_latency_seconds_count", &[("worker", "0")]) > batches_before);
    let inf = last.value("sfu_worker_batch_latency_seconds_bucket", &[("worker", "0"), ("le", "+Inf")]);
    assert_eq!(inf, last.value("sfu_worker_batch_latency_seconds_count", &[("worker", "0")]));
    let ratio = last.value("sfu_worker_busy_ratio", &[("worker", "0")]);
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    assert!(last.value("sfu_worker_busy_seconds_total", &[("worker", "0")]) > 0.0);
    assert!(last.value("sfu_worker_idle_seconds_total", &[("worker", "0")]) > 0.0);
    if let Some(overflow) = last.get("sfu_datagrams_dropped_total", &[("protocol", "udp"), ("reason", "socket_queue_overflow")]) {
        assert_eq!(overflow, 0.0, "25 datagrams do not fill a socket");
    }
    // Every counter only grew.
    for (name, kind) in &last.types {
        if kind == "counter" {
            for (labels, v) in m0.series(name) {
                let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                assert!(last.value(name, &l) >= v, "{name}{labels:?} went down");
            }
        }
    }

    // A peer leaves: its transport goes.
    h.notify("m", "alice", json!({"method": "leave", "target": "peer", "notification": true, "appData": {}}));
    h.sync("m");
    let mut m2 = metrics(&h);
    assert!(wait_until(Duration::from_secs(2), || {
        m2 = metrics(&h);
        m2.value("sfu_peers", &[]) == 1.0
    }));
    assert_eq!(m2.value("sfu_transports", &[("protocol", "none"), ("state", "new")]), 0.0);
    h.server.close();
    assert!(matches!(h.server.metrics(), Err(SfuError::ServerClosed)));
}
