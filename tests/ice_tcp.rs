//! ICE over TCP (RFC 6544 passive candidates, RFC 4571 framing): media through real TCP
//! connections with str0m browser stand-ins, mediasoup v2's transport options, and the
//! hostile cases: garbage, bad frame lengths, silence, too many unauthenticated
//! connections, a receiver that stops reading. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu_testkit::builders::{producer_params, CHROME_AUDIO_EXTS, CHROME_VIDEO_EXTS};
use sfu_testkit::harness::Harness;
use sfu_testkit::peer::{ext_ids_from_json, ext_refs, BrowserTransport, CodecSpec, Direction, PeerOptions, TransportParams};

const R: &str = "tcp";
const V_SSRC: u32 = 51_000;
const V_RTX: u32 = 51_001;

fn payload(i: u64) -> Vec<u8> {
    let mut p = vec![0x10, if i == 1 { 0x00 } else { 0x01 }];
    p.extend_from_slice(&i.to_be_bytes());
    p.extend((0..1000u64).map(|k| ((i * 31 + k * 7) % 251) as u8));
    p
}

fn index_of(p: &[u8]) -> u64 {
    u64::from_be_bytes(p[2..10].try_into().unwrap())
}

fn tcp_opts() -> PeerOptions {
    PeerOptions { tcp: true, ..PeerOptions::default() }
}

/// alice produces one VP8 stream; each receiver consumes it.
struct Fx {
    h: Harness,
    alice: BrowserTransport,
    /// (name, transport, consumer ssrc)
    rx: Vec<(String, BrowserTransport, u32)>,
}

fn setup(config: &str, alice_tcp: bool, receivers: &[(&str, bool)]) -> Fx {
    let h = Harness::new(Some(config));
    h.server.create_room(R, None).unwrap();
    let caps = h.join(R, "alice")["rtpCapabilities"].clone();
    for (r, _) in receivers {
        h.join(R, r);
    }
    let exts: Vec<(u8, &str)> = CHROME_VIDEO_EXTS.iter().chain(CHROME_AUDIO_EXTS).copied().collect();
    let opts = if alice_tcp { tcp_opts() } else { PeerOptions::default() };
    let mut alice = BrowserTransport::with_options(Direction::Send, &[CodecSpec::vp8(96, Some(97))], &exts, opts);
    let resp = h
        .request(R, "alice", json!({"method": "createTransport", "id": 1, "direction": "send", "options": {},
            "dtlsParameters": alice.dtls_parameters()}))
        .unwrap();
    alice.connect(&TransportParams::from_json(&resp).unwrap());
    h.request(R, "alice", json!({"method": "createProducer", "id": 7, "kind": "video", "transportId": 1,
        "rtpParameters": producer_params("video", "0", V_SSRC, Some(V_RTX)), "paused": false}))
        .unwrap();
    alice.add_send_stream("0", "video", V_SSRC, Some(V_RTX));
    let mut rx = Vec::new();
    for (name, tcp) in receivers {
        let nc = h.notifications(name).into_iter().find(|n| n["method"] == "newConsumer").expect("newConsumer");
        let e = ext_ids_from_json(&caps);
        let opts = if *tcp { tcp_opts() } else { PeerOptions::default() };
        let mut t = BrowserTransport::with_options(Direction::Recv, &CodecSpec::list_from_json(&caps), &ext_refs(&e), opts);
        let resp = h.request(R, name, json!({"method": "createTransport", "id": 2, "direction": "recv", "options": {}})).unwrap();
        t.connect(&TransportParams::from_json(&resp).unwrap());
        h.notify(R, name, json!({"method": "updateTransport", "notification": true, "id": 2, "dtlsParameters": t.dtls_parameters()}));
        let ssrc = t.add_recv_stream_from_consumer(&nc).unwrap();
        h.request(R, name, json!({"method": "enableConsumer", "id": nc["id"], "transportId": 2, "paused": false})).unwrap();
        rx.push((name.to_string(), t, ssrc));
    }
    let mut fx = Fx { h, alice, rx };
    assert!(fx.wait(Duration::from_secs(15), |fx| fx.alice.is_connected() && fx.rx.iter().all(|r| r.1.is_connected())), "all connect");
    fx
}

impl Fx {
    fn pump(&mut self, d: Duration) {
        let mut all: Vec<&mut BrowserTransport> = vec![&mut self.alice];
        all.extend(self.rx.iter_mut().map(|r| &mut r.1));
        sfu_testkit::peer::pump_all(&mut all, d);
    }

    fn wait(&mut self, timeout: Duration, mut cond: impl FnMut(&Fx) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.pump(Duration::from_millis(5));
        }
    }

    fn indices(&self, i: usize) -> std::collections::BTreeSet<u64> {
        let (_, t, ssrc) = &self.rx[i];
        t.received_for(*ssrc).iter().map(|p| index_of(&p.payload)).collect()
    }
}

#[test]
fn media_flows_over_ice_tcp_on_both_legs_and_stats_say_tcp() {
    let mut fx = setup(r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1"}"#, true, &[("bob", true)]);
    fx.h.notify(R, "bob", json!({"method": "enableTransportStats", "notification": true, "id": 2, "interval": 1000}));
    for i in 1..=100 {
        fx.alice.send_rtp(V_SSRC, 96, i, (i * 3000) as u32, true, &payload(i));
        fx.pump(Duration::from_millis(3));
    }
    assert!(fx.wait(Duration::from_secs(5), |fx| fx.indices(0).len() == 100), "bob got {} of 100", fx.indices(0).len());
    for p in fx.rx[0].1.received_for(fx.rx[0].2) {
        assert_eq!(p.payload, payload(index_of(&p.payload)), "byte-identical");
    }
    let stats = fx.h.wait_notification("bob", "transportStats", Duration::from_secs(3)).expect("transportStats");
    assert_eq!(stats["stats"][0]["iceSelectedTuple"]["protocol"], "tcp", "{stats}");
    // The metrics see both transports on TCP and the frames both ways.
    let m = sfu_testkit::prom::Metrics::parse(&fx.h.server.metrics().unwrap());
    let tcp = [("protocol", "tcp")];
    assert_eq!(m.value("sfu_transports", &[("protocol", "tcp"), ("state", "connected")]), 2.0, "{:?}", m.series("sfu_transports"));
    assert!(m.value("sfu_datagrams_received_total", &tcp) >= 100.0, "{:?}", m.series("sfu_datagrams_received_total"));
    assert!(m.value("sfu_datagrams_sent_total", &tcp) >= 100.0, "{:?}", m.series("sfu_datagrams_sent_total"));
    assert!(m.value("sfu_rtp_packets_received_total", &[]) >= 100.0);
    assert_eq!(m.value("sfu_datagrams_received_total", &[("protocol", "udp")]), 0.0, "nothing over UDP");
}

/// One leg over UDP, the other over TCP, on the same port number: each transport's stats
/// and the metrics name the protocol of its own selected pair.
#[test]
fn udp_and_tcp_legs_on_one_port_are_each_reported_with_their_protocol() {
    let mut fx = setup(r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1"}"#, false, &[("bob", true)]);
    fx.h.notify(R, "alice", json!({"method": "enableTransportStats", "notification": true, "id": 1, "interval": 1000}));
    fx.h.notify(R, "bob", json!({"method": "enableTransportStats", "notification": true, "id": 2, "interval": 1000}));
    let mut i = 0;
    let reported = fx.wait(Duration::from_secs(6), |fx| {
        let m = sfu_testkit::prom::Metrics::parse(&fx.h.server.metrics().unwrap());
        m.value("sfu_transports", &[("protocol", "udp"), ("state", "connected")]) == 1.0
            && m.value("sfu_transports", &[("protocol", "tcp"), ("state", "connected")]) == 1.0
    });
    let m = sfu_testkit::prom::Metrics::parse(&fx.h.server.metrics().unwrap());
    assert!(reported, "one connected transport per protocol: {:?}", m.series("sfu_transports"));
    // Media keeps the stats coming; the latest of each names its leg's protocol.
    let mut last = |fx: &mut Fx, peer: &str| {
        for _ in 0..50 {
            i += 1;
            fx.alice.send_rtp(V_SSRC, 96, i, (i * 3000) as u32, true, &payload(i));
            fx.pump(Duration::from_millis(20));
        }
        fx.h.notifications(peer).into_iter().filter(|n| n["method"] == "transportStats").last().expect("transportStats")
    };
    let a = last(&mut fx, "alice");
    let b = last(&mut fx, "bob");
    assert_eq!(a["stats"][0]["iceSelectedTuple"]["protocol"], "udp", "{a}");
    assert_eq!(b["stats"][0]["iceSelectedTuple"]["protocol"], "tcp", "{b}");
    assert_eq!(a["stats"][0]["iceSelectedTuple"]["localPort"], b["stats"][0]["iceSelectedTuple"]["localPort"], "one port number");
}

#[test]
fn create_transport_honours_the_udp_tcp_and_preference_options() {
    let h = Harness::new(Some(r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1"}"#));
    h.server.create_room(R, None).unwrap();
    h.join(R, "alice");
    let create = |id: u64, options: Value| h.request(R, "alice", json!({"method": "createTransport", "id": id, "direction": "recv", "options": options}));
    let protos = |r: &Value| -> Vec<(String, u64)> {
        r["iceCandidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["protocol"].as_str().unwrap().to_string(), c["priority"].as_u64().unwrap()))
            .collect()
    };
    let both = create(1, json!({})).unwrap();
    let p = protos(&both);
    assert_eq!(p.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["udp", "tcp"]);
    assert!(p[0].1 > p[1].1, "UDP first by default: {p:?}");
    let tcp = both["iceCandidates"][1].clone();
    assert_eq!(tcp["tcpType"], "passive");
    assert_eq!(tcp["type"], "host");
    let prefer_tcp = protos(&create(2, json!({"preferTcp": true})).unwrap());
    assert!(prefer_tcp[1].1 > prefer_tcp[0].1, "preferTcp: {prefer_tcp:?}");
    let only_tcp = protos(&create(3, json!({"udp": false})).unwrap());
    assert_eq!(only_tcp.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["tcp"]);
    let only_udp = protos(&create(4, json!({"tcp": false})).unwrap());
    assert_eq!(only_udp.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), ["udp"]);
    let e = create(5, json!({"udp": false, "tcp": false})).unwrap_err();
    assert!(e.contains("cannot both be false"), "{e}");
    // A server without TCP has no TCP candidate to offer.
    let h2 = Harness::new(Some(r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1","enableTcp":false}"#));
    h2.server.create_room(R, None).unwrap();
    h2.join(R, "alice");
    let r = h2.request(R, "alice", json!({"method": "createTransport", "id": 1, "direction": "recv", "options": {}})).unwrap();
    assert_eq!(protos(&r).len(), 1);
    let e = h2.request(R, "alice", json!({"method": "createTransport", "id": 2, "direction": "recv", "options": {"udp": false}})).unwrap_err();
    assert!(e.contains("TCP is disabled"), "{e}");
}

/// The SFU's TCP port, from a createTransport answer.
fn tcp_port(h: &Harness) -> SocketAddr {
    h.server.create_room("probe", None).unwrap();
    h.join("probe", "p");
    let r = h.request("probe", "p", json!({"method": "createTransport", "id": 1, "direction": "recv", "options": {"udp": false}})).unwrap();
    let c = &r["iceCandidates"][0];
    format!("{}:{}", c["ip"].as_str().unwrap(), c["port"]).parse().unwrap()
}

/// Whether the server closed `s` (read returns 0 or an error) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn hostile_connections_are_closed_garbage_bad_lengths_and_silence() {
    let h = Harness::new(Some(r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1","tcpAuthTimeout":0.5}"#));
    let addr = tcp_port(&h);
    // A frame that is not a valid binding request: closed at once.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(&[0, 5, 1, 2, 3, 4, 5]).unwrap();
    assert!(closed_within(&mut garbage, Duration::from_secs(2)), "garbage frame: closed");
    // ... and counted as a frame from an unknown source (published at the end of the
    // worker's loop iteration, which may come just after the close).
    let dropped = || {
        let m = sfu_testkit::prom::Metrics::parse(&h.server.metrics().unwrap());
        m.value("sfu_datagrams_dropped_total", &[("protocol", "tcp"), ("reason", "unknown_source")])
    };
    let t0 = Instant::now();
    while dropped() < 1.0 && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(dropped(), 1.0);
    // A zero length and an oversized length: closed at once.
    for header in [[0u8, 0], [0xff, 0xff]] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&header).unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(2)), "bad frame length {header:?}: closed");
    }
    // Nothing at all, or half a frame: closed after tcpAuthTimeout (0.5 s), not before.
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&[0x01, 0x00, 0xAB]).unwrap();
    let t0 = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(4)), "silent connection closed");
    assert!(closed_within(&mut half, Duration::from_secs(4)), "half a frame: closed");
    assert!(t0.elapsed() >= Duration::from_millis(300), "not before the authentication timeout");
    // The server still answers.
    assert!(h.request("probe", "p", json!({"method": "queryRoom"})).is_ok());
}

#[test]
fn unauthenticated_connections_are_limited_per_source_address() {
    let h = Harness::new(Some(r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1","tcpMaxUnauthenticatedPerIp":3,"tcpAuthTimeout":10}"#));
    let addr = tcp_port(&h);
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(TcpStream::connect(addr).unwrap());
    }
    // Let the worker accept them.
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(addr).unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(2)), "a 4th unauthenticated connection from one address is refused");
    for s in kept.iter_mut() {
        assert!(!closed_within(s, Duration::from_millis(100)), "the first three stay open until their timeout");
    }
    drop(kept);
}

#[test]
fn a_tcp_consumer_that_stops_reading_does_not_block_the_worker_or_other_consumers() {
    // alice sends ~40 Mbit/s here, far above any estimate of carol's link: with the
    // estimator on, the adaptation would rightly drop the video that waits in carol's
    // pacer. This test is about the worker not blocking, so the estimator is off.
    let mut fx = setup(
        r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1","tcpSendBufferSize":65536,"enableBwe":false}"#,
        false,
        &[("bob", true), ("carol", false)],
    );
    // bob's browser hangs: it is never pumped again, so its TCP connection fills up.
    let (bob_name, bob, bob_ssrc) = fx.rx.remove(0);
    const N: u64 = 3000;
    let t0 = Instant::now();
    for i in 1..=N {
        fx.alice.send_rtp(V_SSRC, 96, i, (i * 3000) as u32, true, &payload(i));
        if i % 10 == 0 {
            fx.pump(Duration::from_millis(2));
        }
    }
    let ok = fx.wait(Duration::from_secs(20), |fx| fx.indices(0).len() as u64 == N);
    assert!(ok, "carol (UDP) got {} of {N} while bob's TCP connection was full", fx.indices(0).len());
    println!("{N} packets of 1 kB to carol in {:?} with bob's TCP connection full", t0.elapsed());
    // The worker still answers requests promptly.
    let t = Instant::now();
    fx.h.request(R, "carol", json!({"method": "queryRoom"})).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(bob.received_for(bob_ssrc).len() < N as usize, "{bob_name} got less than everything (its link was full)");
}
