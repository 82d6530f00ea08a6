//! Hardening: hostile input and unauthenticated traffic (README.md, "Reliability").
//!
//! * The fuzz corpora (fuzz/corpus/{request,datagram,config}) replayed through the
//!   same inputs the cargo-fuzz targets use (the test kit's `fuzz` module, on the
//!   production worker core), so every input the fuzzers kept is re-checked by the test
//!   command without libFuzzer.
//! * A flood of datagrams from unknown addresses against established transports:
//!   media keeps flowing, byte for byte, and the latency figures before / during /
//!   after the flood are printed.
//! * Authorization across rooms (the in-room cases are in tests/control_plane.rs).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfu_testkit::builders::{producer_params, CHROME_VIDEO_EXTS};
use sfu_testkit::fuzz as harness;
use sfu_testkit::harness::Harness;
use sfu_testkit::peer::{ext_ids_from_json, ext_refs, BrowserTransport, CodecSpec, Direction, TransportParams};
use serde_json::json;

/// The flood test measures the process's RSS, which the other tests of this binary
/// (run on parallel threads by default) would grow: every test holds this lock.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target)
}

/// Replay a corpus (and the built-in seeds) through a harness entry point; returns
/// the number of inputs. A panic names the input that caused it.
fn replay(target: &str, seeds: Vec<(String, Vec<u8>)>, run: fn(&[u8])) -> usize {
    let files = harness::corpus_files(&corpus_dir(target));
    let n = files.len() + seeds.len();
    let t0 = Instant::now();
    let inputs = seeds.into_iter().map(|(n, b)| (PathBuf::from(format!("<seed {n}>")), b)).chain(files);
    for (path, bytes) in inputs {
        let r = std::panic::catch_unwind(|| run(&bytes));
        if let Err(e) = r {
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("fuzz target `{target}`: input {} fails: {what}", path.display());
        }
    }
    println!("{target}: {n} inputs replayed in {:?}", t0.elapsed());
    n
}

#[test]
fn fuzz_corpus_replay_request() {
    let _serial = one_at_a_time();
    let n = replay("request", harness::request_seeds(), harness::run_request_input);
    assert!(n > 5);
}

#[test]
fn fuzz_corpus_replay_datagram() {
    let _serial = one_at_a_time();
    let n = replay("datagram", harness::datagram_seeds(), harness::run_datagram_input);
    assert!(n > 5);
}

#[test]
fn fuzz_corpus_replay_tcp() {
    let _serial = one_at_a_time();
    let n = replay("tcp", harness::tcp_seeds(), harness::run_tcp_input);
    assert!(n > 3);
}

#[test]
fn fuzz_corpus_replay_config() {
    let _serial = one_at_a_time();
    let n = replay("config", harness::config_seeds(), harness::run_config_input);
    assert!(n > 5);
}

/// Writes the built-in seeds into fuzz/corpus/<target>/seed-* (scripts/fuzz.sh runs it).
#[test]
#[ignore = "writes files: run by scripts/fuzz.sh to (re)create the seed inputs"]
fn write_fuzz_seeds() {
    let _serial = one_at_a_time();
    for (target, seeds) in [
        ("request", harness::request_seeds()),
        ("datagram", harness::datagram_seeds()),
        ("tcp", harness::tcp_seeds()),
        ("config", harness::config_seeds()),
    ] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}

/// The datagram harness is not shallow: a signed binding request gets a STUN answer
/// and a route for its source; the transport whose DTLS role is client then sends a
/// ClientHello; an unsigned one from elsewhere is dropped without a route.
#[test]
fn datagram_harness_reaches_ice_and_dtls() {
    let _serial = one_at_a_time();
    let mut d = harness::DatagramFx::new();
    let ufrag = d.transports[0].clone();
    let src = d.addrs[0];
    assert_eq!(d.fx.sim.core.counts().addr_routes, 0);
    assert!(d.fx.sim.stun_from(src, &ufrag, "browser", 0x6e7f_00ff, true, true));
    assert!(d.fx.sim.sent >= 1, "binding response sent");
    assert_eq!(d.fx.sim.core.counts().addr_routes, 1, "a route for the verified address");
    for _ in 0..30 {
        d.fx.sim.tick(Duration::from_millis(100));
    }
    assert!(d.fx.sim.sent_dtls >= 1, "DTLS ClientHello sent to the verified address");
    let bogus = d.fx.sim.signed_binding_request(&ufrag, "x", 1, true, true).unwrap();
    let mut forged = bogus.clone();
    let n = forged.len();
    forged[n - 10] ^= 0xFF; // breaks MESSAGE-INTEGRITY / FINGERPRINT
    let sent = d.fx.sim.sent;
    d.fx.sim.datagram(d.addrs[2], &forged);
    assert_eq!(d.fx.sim.sent, sent, "nothing answers a forged request");
    assert_eq!(d.fx.sim.core.counts().addr_routes, 1, "no route for a forged request");
    d.fx.finish();
}

/// The TCP harness reaches the transports: a signed binding request framed on a
/// connection authenticates it (answered over TCP, a route for the connection), a
/// garbage frame on a new connection closes it, and a bad length too.
#[test]
fn tcp_harness_reaches_ice_over_tcp() {
    let _serial = one_at_a_time();
    use sfu::core::tcp::{ConnClose, ConnState};
    let mut d = harness::DatagramFx::new();
    let ufrag = d.transports[1].clone();
    let src: std::net::SocketAddr = "127.0.0.1:6001".parse().unwrap();
    let mut conn = ConnState::default();
    let sent = d.fx.sim.sent;
    d.fx.sim.stun_over_tcp(&mut conn, src, &ufrag, "browser").expect("authenticated");
    assert!(conn.authenticated());
    assert!(d.fx.sim.sent > sent, "binding response sent over TCP");
    assert_eq!(d.fx.sim.core.counts().addr_routes, 1, "a route for the connection");
    let mut other = ConnState::default();
    let garbage = [0u8, 4, 1, 2, 3, 4];
    assert_eq!(d.fx.sim.tcp_bytes(&mut other, "127.0.0.1:6002".parse().unwrap(), &garbage), Err(ConnClose::Unrouted));
    let mut third = ConnState::default();
    assert_eq!(d.fx.sim.tcp_bytes(&mut third, "127.0.0.1:6003".parse().unwrap(), &[0xff, 0xff]), Err(ConnClose::BadFrame));
    assert_eq!(d.fx.sim.core.counts().addr_routes, 1, "no route for the hostile connections");
    d.fx.finish();
}

// ------------------------------------------------------------------ flood

const R: &str = "hardening";
const V_SSRC: u32 = 33_330;
const V_RTX: u32 = 33_331;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

/// VP8 payload of packet `i`: descriptor, the index, a pattern that depends on it.
fn payload(i: u64) -> Vec<u8> {
    let mut p = vec![0x10, if i == 1 { 0x00 } else { 0x01 }];
    p.extend_from_slice(&i.to_be_bytes());
    p.extend((0..600u64).map(|k| ((i * 31 + k * 7) % 251) as u8));
    p
}

fn index_of(p: &[u8]) -> u64 {
    u64::from_be_bytes(p[2..10].try_into().unwrap())
}

/// What a hostile host on the network sends: garbage; binding requests naming a real
/// transport's ufrag with a wrong MESSAGE-INTEGRITY (the costliest path: parse + HMAC);
/// DTLS records; RTP "from" alice's SSRC (media injection). From thousands of source
/// addresses (127.0.0.2-254, a fresh socket every 256 datagrams).
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    sources: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(target: SocketAddr, ufrags: Vec<String>, rate_per_thread: u64, threads: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let sources = Arc::new(AtomicU64::new(0));
        let mut hs = Vec::new();
        for t in 0..threads {
            let (stop, sent, sources, ufrags) = (stop.clone(), sent.clone(), sources.clone(), ufrags.clone());
            hs.push(std::thread::spawn(move || {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut rnd = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let t0 = Instant::now();
                let mut sock: Option<UdpSocket> = None;
                let mut n: u64 = 0;
                // Bounded: at most 2 million datagrams or 60 s per thread.
                while !stop.load(Ordering::Relaxed) && n < 2_000_000 && t0.elapsed() < Duration::from_secs(60) {
                    if n % 256 == 0 {
                        let ip = Ipv4Addr::new(127, 0, 0, 2 + (rnd() % 253) as u8);
                        sock = UdpSocket::bind((ip, 0)).ok();
                        sources.fetch_add(1, Ordering::Relaxed);
                    }
                    let Some(s) = sock.as_ref() else { break };
                    let mut buf = vec![0u8; 20 + (rnd() % 1000) as usize];
                    for b in buf.iter_mut() {
                        *b = rnd() as u8;
                    }
                    match n % 4 {
                        0 => {
                            // A binding request with a known ufrag, signed with a wrong password.
                            let u = &ufrags[(n / 4) as usize % ufrags.len()];
                            let username = format!("{u}:evil");
                            let msg = str0m::ice::StunMessage::binding_request(&username, str0m::ice::TransId::new(), true, 1, 1, true);

                            let mut out = vec![0u8; 1500];
                            let len = msg.to_bytes(Some(b"not-the-password"), &mut out, |k, p| sfu::core::hmac_sha1(k, p)).unwrap();
                            buf = out[..len].to_vec();
                        }
                        1 => buf[0] = 22,
                        2 => {
                            buf[0] = 0x80;
                            buf[1] = 96;
                            buf[8..12].copy_from_slice(&V_SSRC.to_be_bytes());
                        }
                        _ => {}
                    }
                    if s.send_to(&buf, target).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                    // Pace: rate_per_thread datagrams per second.
                    let due = t0 + Duration::from_secs_f64(n as f64 / rate_per_thread as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
            }));
        }
        Flood { stop, sent, sources, threads: hs }
    }

    /// Stop; returns (datagrams sent, distinct source sockets).
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads {
            h.join().unwrap();
        }
        (self.sent.load(Ordering::Relaxed), self.sources.load(Ordering::Relaxed))
    }
}

struct Phase {
    name: &'static str,
    latencies_us: Vec<u64>,
    lost: usize,
}

impl Phase {
    fn pct(&self, p: f64) -> u64 {
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        if v.is_empty() {
            return 0;
        }
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

/// Unauthenticated traffic: a flood of datagrams from thousands of unknown addresses
/// against a worker with established transports. Media keeps flowing byte for byte
/// (nothing injected, nothing lost), the transports stay up, the process does not grow,
/// and the forwarding latency before / during / after the flood is printed.
#[test]
fn datagram_flood_from_unknown_addresses_does_not_disturb_established_transports() {
    let _serial = one_at_a_time();
    let h = Harness::local();
    h.server.create_room(R, None).unwrap();
    let caps = h.join(R, "alice")["rtpCapabilities"].clone();
    h.join(R, "bob");
    // alice: send transport, one VP8 producer with RTX.
    let mut alice = BrowserTransport::new(Direction::Send, &[CodecSpec::vp8(96, Some(97))], CHROME_VIDEO_EXTS);
    let resp = h
        .request(R, "alice", json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "send",
            "options": {}, "dtlsParameters": alice.dtls_parameters()}))
        .unwrap();
    let a_ufrag = resp["iceParameters"]["usernameFragment"].as_str().unwrap().to_string();
    let port = resp["iceCandidates"][0]["port"].as_u64().unwrap() as u16;
    alice.connect(&TransportParams::from_json(&resp).unwrap());
    h.request(R, "alice", json!({"method": "createProducer", "target": "peer", "id": 7, "kind": "video", "transportId": 1,
        "rtpParameters": producer_params("video", "0", V_SSRC, Some(V_RTX)), "paused": false}))
        .unwrap();
    alice.add_send_stream("0", "video", V_SSRC, Some(V_RTX));
    // bob: recv transport, the consumer enabled.
    let nc = h.notifications("bob").into_iter().find(|n| n["method"] == "newConsumer").expect("newConsumer");
    let exts = ext_ids_from_json(&caps);
    let mut bob = BrowserTransport::new(Direction::Recv, &CodecSpec::list_from_json(&caps), &ext_refs(&exts));
    let resp = h
        .request(R, "bob", json!({"method": "createTransport", "target": "peer", "id": 2, "direction": "recv", "options": {}}))
        .unwrap();
    let b_ufrag = resp["iceParameters"]["usernameFragment"].as_str().unwrap().to_string();
    bob.connect(&TransportParams::from_json(&resp).unwrap());
    h.notify(R, "bob", json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2,
        "dtlsParameters": bob.dtls_parameters()}));
    let b_ssrc = bob.add_recv_stream_from_consumer(&nc).unwrap();
    h.request(R, "bob", json!({"method": "enableConsumer", "target": "peer", "id": nc["id"], "transportId": 2, "paused": false}))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(alice.is_connected() && bob.is_connected()) {
        assert!(Instant::now() < deadline, "transports connect");
        sfu_testkit::peer::pump_all(&mut [&mut alice, &mut bob], Duration::from_millis(5));
    }
    // bob is pumped on his own thread, so arrival times are precise.
    let stop_bob = Arc::new(AtomicBool::new(false));
    let bob_thread = {
        let stop = stop_bob.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(120) {
                bob.pump(Duration::from_millis(20));
            }
            bob
        })
    };
    let mut sent_at: Vec<Instant> = vec![Instant::now()]; // index 0 unused
    let mut send = |alice: &mut BrowserTransport, n: u64| -> std::ops::Range<u64> {
        let first = sent_at.len() as u64;
        for i in first..first + n {
            sent_at.push(Instant::now());
            alice.send_rtp(V_SSRC, 96, i, (i * 3000) as u32, true, &payload(i));
            alice.pump(Duration::from_millis(4));
        }
        first..first + n
    };
    const PER_PHASE: u64 = 400;
    // warm-up (keyframe request, TWCC settle), then the three phases
    send(&mut alice, 50);
    alice.pump(Duration::from_millis(200));
    let rss0 = rss_kib();
    let base = send(&mut alice, PER_PHASE);
    let flood = Flood::start(SocketAddr::from(([127, 0, 0, 1], port)), vec![a_ufrag, b_ufrag], 10_000, 2);
    let t_flood = Instant::now();
    let during = send(&mut alice, PER_PHASE);
    let (flood_sent, sources) = flood.stop();
    let flood_secs = t_flood.elapsed().as_secs_f64();
    let rss1 = rss_kib();
    let after = send(&mut alice, PER_PHASE);
    alice.pump(Duration::from_millis(300));
    stop_bob.store(true, Ordering::Relaxed);
    let bob = bob_thread.join().unwrap();
    // Everything bob got is exactly what alice sent (no injected packet), once per index.
    let got = bob.received_for(b_ssrc);
    let mut first_at: std::collections::HashMap<u64, Instant> = Default::default();
    for p in &got {
        let i = index_of(&p.payload);
        assert!(i >= 1 && (i as usize) < sent_at.len(), "a packet alice never sent reached bob (index {i})");
        assert_eq!(p.payload, payload(i), "packet {i} byte-identical");
        first_at.entry(i).or_insert(p.at);
    }
    let phase = |name, r: std::ops::Range<u64>| {
        let mut lat = Vec::new();
        let mut lost = 0;
        for i in r {
            match first_at.get(&i) {
                Some(at) => lat.push(at.saturating_duration_since(sent_at[i as usize]).as_micros() as u64),
                None => lost += 1,
            }
        }
        Phase { name, latencies_us: lat, lost }
    };
    let phases = [phase("before", base), phase("during flood", during), phase("after", after)];
    println!(
        "flood: {flood_sent} datagrams in {flood_secs:.2} s ({:.0}/s) from {sources} source sockets on 127.0.0.2-254 \
         (1/4 each: garbage, bad-integrity binding requests naming real ufrags, DTLS, RTP with alice's SSRC)",
        flood_sent as f64 / flood_secs
    );
    for p in &phases {
        println!(
            "{:>13}: {} packets, lost {}, alice->SFU->bob latency p50 {} us, p99 {} us, max {} us",
            p.name,
            p.latencies_us.len() + p.lost,
            p.lost,
            p.pct(0.5),
            p.pct(0.99),
            p.pct(1.0)
        );
    }
    println!("test process RSS: {rss0} KiB before the flood, {rss1} KiB after ({:+} KiB)", rss1 as i64 - rss0 as i64);
    for p in &phases {
        assert_eq!(p.lost, 0, "{}: packets lost", p.name);
    }
    // A generous bound (2 shared cores): the flood must not make forwarding slow.
    let (b, d) = (phases[0].pct(0.5), phases[1].pct(0.5));
    assert!(d <= 3 * b + 3_000, "median latency {b} us before, {d} us during the flood");
    assert!(rss1 <= rss0 + 16 * 1024, "RSS grew from {rss0} to {rss1} KiB during the flood");
    assert!(alice.is_connected() && bob.is_connected());
    let closed: Vec<_> = h.host_events().into_iter().filter(|g| g.json["event"] == "transportClosed").collect();
    assert!(closed.is_empty(), "no transport closed: {closed:?}");
}

// ------------------------------------------------------------------ authorization

/// Ids are per peer and per room: a peer of another room naming the same ids, or
/// the same peer name in another room, reaches nothing of this room.
#[test]
fn authorization_across_rooms_and_same_names() {
    let _serial = one_at_a_time();
    let h = Harness::local();
    h.server.create_room("r1", None).unwrap();
    h.server.create_room("r2", None).unwrap();
    for r in ["r1", "r2"] {
        h.join(r, "alice");
    }
    h.join("r1", "bob");
    h.request("r1", "alice", json!({"method": "createTransport", "id": 1, "direction": "send", "options": {},
        "dtlsParameters": sfu_testkit::builders::fake_dtls("server")}))
        .unwrap();
    h.request("r1", "alice", json!({"method": "createProducer", "id": 10, "kind": "audio", "transportId": 1,
        "rtpParameters": producer_params("audio", "0", 4000, None), "paused": false}))
        .unwrap();
    let cid = h.notifications("bob").into_iter().find(|n| n["method"] == "newConsumer").unwrap()["id"].clone();
    h.request("r1", "bob", json!({"method": "createTransport", "id": 2, "direction": "recv", "options": {}})).unwrap();
    // "alice" of r2 names r1-alice's transport and producer; "bob" of r2 (not joined) and
    // a joined r2 peer name bob's consumer.
    let e = h.request("r2", "alice", json!({"method": "restartTransport", "id": 1})).unwrap_err();
    assert_eq!(e, "transport not found");
    let e = h.request("r2", "alice", json!({"method": "createProducer", "id": 11, "kind": "audio", "transportId": 1,
        "rtpParameters": producer_params("audio", "0", 4002, None)}))
        .unwrap_err();
    assert_eq!(e, "transport not found");
    let e = h.request("r2", "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 2})).unwrap_err();
    assert_eq!(e, "peer not joined");
    h.join("r2", "bob");
    h.request("r2", "bob", json!({"method": "createTransport", "id": 2, "direction": "recv", "options": {}})).unwrap();
    let e = h.request("r2", "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 2})).unwrap_err();
    assert_eq!(e, "consumer not found");
    h.notifications("alice"); // r2-alice heard of r2-bob
    h.notifications("bob");
    for (m, id) in [("pauseProducer", json!(10)), ("closeProducer", json!(10)), ("closeTransport", json!(1)),
                    ("pauseConsumer", cid.clone()), ("setConsumerPreferredProfile", cid.clone()),
                    ("enableProducerStats", json!(10)), ("enableConsumerStats", cid.clone())] {
        h.notify("r2", "alice", json!({"method": m, "notification": true, "id": id, "profile": "low"}));
        h.notify("r2", "bob", json!({"method": m, "notification": true, "id": id, "profile": "low"}));
    }
    h.sync("r2");
    h.sync("r1");
    // Nothing happened in either room: nobody heard anything; bob's consumer is intact
    // and can be enabled by bob.
    assert!(h.notifications("bob").is_empty(), "bob heard nothing");
    assert!(h.notifications("alice").is_empty(), "alice heard nothing");
    let errs = h.host_events();
    // 7 notifications x 2 peers, less closeProducer (unknown ids are ignored:
    // docs/PROTOCOL.md, "Notifications").
    assert_eq!(errs.len(), 12, "every notification from r2 was refused: {errs:?}");
    assert!(errs.iter().all(|g| g.room == "r2" && g.json["event"] == "notificationError"));
    let r = h.request("r1", "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 2, "paused": false})).unwrap();
    assert_eq!(r["paused"], false, "alice's producer was not paused from r2");
    h.request("r1", "alice", json!({"method": "restartTransport", "id": 1})).unwrap();
}

// ------------------------------------------------------------------ vanishing peers

/// Peers whose browsers vanish after ICE came up: once `transportTimeout` (30 s in
/// the harness) passes without a datagram, every transport is closed by the server
/// (`transportClosed` to its peer, a host event with the reason, the producers'
/// consumers closed for the others) and nothing is left behind: no route to the
/// vanished addresses, no ufrag route, no timer.
#[test]
fn vanished_peers_leave_no_route_and_no_timer() {
    let _serial = one_at_a_time();
    let mut d = harness::DatagramFx::new();
    for t in 0..4 {
        let ufrag = d.transports[t].clone();
        assert!(d.fx.sim.stun_from(d.addrs[t], &ufrag, "browser", 0x6e7f_00ff, true, true));
    }
    let c = d.fx.sim.core.counts();
    assert_eq!((c.ufrag_routes, c.addr_routes), (4, 4), "4 ufrag routes, 4 validated addresses");
    assert!(d.fx.sim.core.poll_timeout(d.fx.sim.now).is_some());
    // Silence, in 1 s steps; each tick runs what is due like the worker loop.
    for _ in 0..40 {
        d.fx.sim.tick(Duration::from_secs(1));
    }
    let mut closed = Vec::new();
    let mut host_events = 0;
    for o in &d.fx.sim.log {
        if o.kind == sfu::EventKind::Notification && o.json["method"] == "transportClosed" {
            closed.push((o.peer.clone(), o.json["id"].as_u64().unwrap()));
        } else if o.kind == sfu::EventKind::Host && o.json["event"] == "transportClosed" {
            assert!(o.json["reason"].as_str().is_some_and(|r| r.contains("no traffic")), "{}", o.json);
            host_events += 1;
        }
    }
    closed.sort();
    let want = vec![("alice".to_string(), 1), ("bob".to_string(), 2), ("carol".to_string(), 3), ("carol".to_string(), 4)];
    assert_eq!(closed, want, "every transport closed by the server");
    assert_eq!(host_events, 4);
    let c = d.fx.sim.core.counts();
    assert_eq!((c.engines, c.ufrag_routes, c.addr_routes), (0, 0, 0), "no engine or route left");
    assert_eq!(d.fx.sim.core.poll_timeout(d.fx.sim.now), None, "no timer left");
    assert_eq!(
        d.fx.sim.core.room_counts(&d.fx.sim.room).map(|c| c.0),
        Some(3),
        "the peers themselves stay until they leave or the host closes them"
    );
    d.fx.finish();
}
