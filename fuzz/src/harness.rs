//! The fuzz harness: drives one `sfu::room::Room` through its public, sans-IO API
//! (no thread, no socket, a clock that only moves when the input says so), exactly as
//! a worker thread does (`src/server/worker.rs`: outputs, routing table, datagram
//! routing, flushing), and checks invariants after every step.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, through `fuzz/src/lib.rs`)
//! and by the corpus replay of the test command (`tests/hardening.rs` includes this file
//! with `#[path]`), so it only uses `sfu`, `serde_json`, `str0m` and std.
//!
//! Invariants checked (a violation panics, which libFuzzer reports as a crash):
//! * every request gets exactly one response, for that request id and that peer, and a
//!   notification never gets a response;
//! * everything the room emits is JSON; notifications carry `method` and
//!   `notification: true`; host events carry `event`;
//! * the room never sends a datagram to an address that has not proven, by a STUN
//!   binding request signed with the transport's ICE password, that it is the peer
//!   (no reflection or amplification toward a spoofed source);
//! * a datagram that no route accepts creates no route (no per-address state);
//! * when the last peer is gone, nothing is left: no timer, no route;
//! * after `close`, nothing is left either.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::config::Limits;
use sfu::media::{AnnouncedCandidate, MediaEnv};
use sfu::net::routes::Routes;
use sfu::net::stun;
use sfu::room::codecs::RoomCaps;
use sfu::room::{Demux, Output, Room, TKey};

/// The SFU's (announced) address in the fixture.
pub const SFU_ADDR: &str = "127.0.0.1:40000";
/// Peer names a fuzz input can speak as (the empty name is a host mistake to survive).
pub const PEERS: [&str; 4] = ["alice", "bob", "carol", ""];
/// The room slot of the fixture in its routing table (a worker's first room).
const SLOT: usize = 0;
/// Largest datagram the worker reads (`MAX_DATAGRAM` in worker.rs).
pub const MAX_DATAGRAM: usize = 2048;

fn sfu_addr() -> SocketAddr {
    SFU_ADDR.parse().unwrap()
}

/// One `MediaEnv` per process: generating the certificate per input would dominate.
fn env_with(limits: Limits) -> Arc<MediaEnv> {
    static CERT: OnceLock<(str0m::config::DtlsCert, String)> = OnceLock::new();
    let (cert, fingerprint) = CERT
        .get_or_init(|| {
            let c = sfu::media::cert::generate().expect("certificate");
            let f = sfu::media::cert::fingerprint(&c);
            (c, f)
        })
        .clone();
    Arc::new(MediaEnv {
        ice_addr: sfu_addr(),
        candidates: vec![AnnouncedCandidate { addr: sfu_addr(), priority: 1_078_862_079 }],
        cert,
        fingerprint,
        max_message_size: 64 * 1024,
        transport_timeout: Duration::from_secs(30),
        limits,
    })
}

/// Small limits so that inputs reach them.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_peers_per_room: 3,
        max_transports_per_peer: 3,
        max_producers_per_transport: 3,
        max_pending_requests_per_peer: 128,
    }
}

/// A room driven like a worker drives it.
pub struct Fx {
    pub room: Room,
    pub now: Instant,
    pub routes: Routes,
    /// Server-chosen consumer ids, in the order they were announced: `@c0`..`@c9` in a
    /// fuzz input stand for them (they are random per room).
    pub consumer_ids: Vec<u64>,
    /// Addresses that sent a correctly signed binding request to some transport.
    pub verified: HashSet<SocketAddr>,
    /// Datagrams the room sent, and how many of them were DTLS records.
    pub sent: u64,
    pub sent_dtls: u64,
    next_request_id: u64,
    /// Set while an output may legitimately go to an unverified address (never).
    closed: bool,
}

impl Fx {
    pub fn new(caps: RoomCaps, limits: Limits) -> Fx {
        Fx {
            room: Room::new("fuzz".into(), caps, env_with(limits), 1 << 32),
            now: Instant::now(),
            routes: Routes::default(),
            consumer_ids: Vec::new(),
            verified: HashSet::new(),
            sent: 0,
            sent_dtls: 0,
            next_request_id: 1,
            closed: false,
        }
    }

    pub fn default_room() -> Fx {
        Fx::new(RoomCaps::from_options(None).expect("default caps"), fuzz_limits())
    }

    /// Run `f` with a datagram sink, flush like the worker does, apply the outputs.
    fn with_tx<R>(&mut self, f: impl FnOnce(&mut Room, Instant, &mut dyn FnMut(SocketAddr, SocketAddr, &[u8])) -> R) -> R {
        let verified = &self.verified;
        let sent = &mut self.sent;
        let sent_dtls = &mut self.sent_dtls;
        let now = self.now;
        let mut tx = |src: SocketAddr, dst: SocketAddr, data: &[u8]| {
            assert_eq!(src, sfu_addr(), "a datagram from an address that is not the SFU's");
            assert!(
                verified.contains(&dst),
                "the SFU sent {} bytes to {dst}, which never proved it is a peer (reflection)",
                data.len()
            );
            assert!(!data.is_empty() && data.len() <= MAX_DATAGRAM, "datagram of {} bytes", data.len());
            *sent += 1;
            if (20..=63).contains(&data[0]) {
                *sent_dtls += 1;
            }
        };
        let r = f(&mut self.room, now, &mut tx);
        self.room.flush(&mut tx);
        r
    }

    /// Take the room's outputs and routing changes, check them; returns the outputs.
    pub fn outputs(&mut self) -> Vec<(String, u64, Value, u8)> {
        let mut got = Vec::new();
        for o in self.room.take_outputs() {
            let (peer, id, json, kind) = match o {
                Output::Response { peer, request_id, json } => (peer, request_id, json, 0u8),
                Output::Notification { peer, json } => (peer, 0, json, 1),
                Output::Host { peer, json } => (peer, 0, json, 2),
            };
            let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("output is not JSON ({e}): {json}"));
            match kind {
                0 => assert!(v["ok"].is_boolean(), "response without ok: {json}"),
                1 => {
                    assert_eq!(v["notification"], true, "{json}");
                    assert!(v["method"].is_string(), "{json}");
                    if v["method"] == "newConsumer" {
                        self.learn_consumer(&v["id"]);
                    }
                }
                _ => assert!(v["event"].is_string(), "host event without event: {json}"),
            }
            if kind == 0 {
                if let Some(peers) = v.pointer("/data/peers").and_then(Value::as_array) {
                    for p in peers {
                        for c in p["consumers"].as_array().into_iter().flatten() {
                            self.learn_consumer(&c["id"]);
                        }
                    }
                }
            }
            got.push((peer, id, v, kind));
        }
        for d in self.room.take_demux() {
            match d {
                Demux::AddUfrag(u, k) => self.routes.add_ufrag(u, (SLOT, k)),
                Demux::RemoveUfrag(u) => self.routes.remove_ufrag(&u),
                Demux::AddAddr(a, k) => {
                    assert!(self.verified.contains(&a), "a route for {a}, which never sent a signed binding request");
                    self.routes.add_addr(a, (SLOT, k))
                }
                Demux::RemoveTransport(k) => self.routes.remove_transport((SLOT, k)),
            }
        }
        got
    }

    fn learn_consumer(&mut self, id: &Value) {
        if let Some(id) = id.as_u64() {
            if !self.consumer_ids.contains(&id) {
                self.consumer_ids.push(id);
            }
        }
    }

    /// `@c0`..`@c9` -> the consumer ids learnt so far (0 when unknown).
    pub fn substitute(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'@' && bytes.get(i + 1) == Some(&b'c') {
                if let Some(d) = bytes.get(i + 2).filter(|d| d.is_ascii_digit()) {
                    let n = (d - b'0') as usize;
                    let id = self.consumer_ids.get(n).copied().unwrap_or(0);
                    out.extend_from_slice(id.to_string().as_bytes());
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }

    /// A client request: exactly one response, for this id and peer. Returns it.
    pub fn request(&mut self, peer: &str, bytes: &[u8]) -> Value {
        let id = self.next_request_id;
        self.next_request_id += 1;
        let bytes = self.substitute(bytes);
        self.with_tx(|room, now, _| room.handle_request(now, peer, id, &bytes));
        let outs = self.outputs();
        let responses: Vec<&(String, u64, Value, u8)> = outs.iter().filter(|o| o.3 == 0).collect();
        assert_eq!(responses.len(), 1, "request {} got {} responses: {outs:?}", String::from_utf8_lossy(&bytes), responses.len());
        let (p, rid, v, _) = responses[0];
        assert_eq!((p.as_str(), *rid), (peer, id), "response for the wrong request");
        v.clone()
    }

    /// A request that must succeed (fixture set-up); returns `data`.
    pub fn request_ok(&mut self, peer: &str, v: Value) -> Value {
        let r = self.request(peer, v.to_string().as_bytes());
        assert_eq!(r["ok"], true, "{v} -> {r}");
        r["data"].clone()
    }

    /// A client notification: never a response.
    pub fn notify(&mut self, peer: &str, bytes: &[u8]) {
        let bytes = self.substitute(bytes);
        self.with_tx(|room, now, _| room.handle_notification(now, peer, &bytes));
        let outs = self.outputs();
        assert!(outs.iter().all(|o| o.3 != 0), "a notification was answered: {outs:?}");
    }

    /// Move the clock and run the timers if due, like the worker loop.
    pub fn tick(&mut self, d: Duration) {
        self.now += d;
        let due = self.room.poll_timeout().is_some_and(|t| t <= self.now);
        if due {
            self.with_tx(|room, now, tx| room.handle_timeout(now, tx));
        }
        let outs = self.outputs();
        assert!(outs.iter().all(|o| o.3 != 0), "a timer produced a response: {outs:?}");
    }

    /// The worker's routing rule (`Worker::route`).
    pub fn route(&self, src: SocketAddr, data: &[u8]) -> Option<TKey> {
        if stun::looks_like_stun(data) {
            if let Some(r) = stun::with_binding_request_local_ufrag(data, |u| self.routes.by_ufrag(u)) {
                let pass = self.room.transport_password(r.1)?;
                return stun::verify(data, &pass).then_some(r.1);
            }
        }
        self.routes.by_addr(&src).map(|r| r.1)
    }

    /// A datagram from the network, routed as the worker routes it. Unrouted ones are
    /// dropped and must leave no trace. Returns whether it was routed.
    pub fn datagram_routed(&mut self, src: SocketAddr, data: &[u8]) -> bool {
        let data = &data[..data.len().min(MAX_DATAGRAM)];
        let before = self.routes.len();
        match self.route(src, data) {
            Some(k) => {
                self.datagram_to(k, src, data);
                true
            }
            None => {
                assert_eq!(self.routes.len(), before);
                false
            }
        }
    }

    /// A datagram handed straight to a transport, skipping the routing (stricter than
    /// the worker: anything reaches the transport's ICE/DTLS/SRTP stack).
    pub fn datagram_to(&mut self, k: TKey, src: SocketAddr, data: &[u8]) {
        let data = &data[..data.len().min(MAX_DATAGRAM)];
        let dst = sfu_addr();
        self.with_tx(|room, now, tx| room.handle_datagram(now, k, src, dst, data, tx));
        let outs = self.outputs();
        assert!(outs.iter().all(|o| o.3 != 0), "a datagram produced a response: {outs:?}");
    }

    /// A binding request for transport `k` signed with its ICE password, from `src`.
    pub fn signed_binding_request(&mut self, local_ufrag: &str, remote_ufrag: &str, prio: u32, use_candidate: bool, controlling: bool, tie: u64) -> Option<Vec<u8>> {
        let (_, tkey) = self.routes.by_ufrag(local_ufrag)?;
        let pass = self.room.transport_password(tkey)?;
        let username = format!("{local_ufrag}:{remote_ufrag}");
        let msg = str0m::ice::StunMessage::binding_request(
            &username,
            str0m::ice::TransId::new(),
            controlling,
            tie,
            prio,
            use_candidate,
        );
        let mut buf = vec![0u8; 1500];
        let hmac = stun::hmac_provider();
        let n = msg.to_bytes(Some(pass.as_bytes()), &mut buf, |k, p| hmac.sha1_hmac(k, p)).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// Send a signed binding request from `src`: it must be routed to its transport,
    /// and `src` becomes a verified peer address.
    pub fn stun_from(&mut self, src: SocketAddr, local_ufrag: &str, remote_ufrag: &str, prio: u32, use_candidate: bool, controlling: bool) -> bool {
        let Some(req) = self.signed_binding_request(local_ufrag, remote_ufrag, prio, use_candidate, controlling, 0x1234_5678) else {
            return false;
        };
        let want = self.routes.by_ufrag(local_ufrag).map(|r| r.1);
        assert_eq!(self.route(src, &req), want, "a correctly signed binding request is routed to its transport");
        self.verified.insert(src);
        self.datagram_routed(src, &req)
    }

    /// The host closes a peer.
    pub fn close_peer(&mut self, peer: &str) {
        self.with_tx(|room, now, _| room.close_peer(now, peer));
        let outs = self.outputs();
        assert!(outs.iter().all(|o| o.3 != 0));
    }

    /// Nothing is left once every peer is gone.
    pub fn assert_nothing_left_if_empty(&self) {
        if self.room.peer_count() == 0 {
            assert_eq!(self.room.poll_timeout(), None, "a timer is left with no peer in the room");
            assert_eq!(self.routes.len(), (0, 0), "routes are left with no peer in the room");
        }
    }

    /// Close every peer, then the room; nothing may be left.
    pub fn finish(&mut self) {
        for p in PEERS {
            self.close_peer(p);
        }
        assert_eq!(self.room.peer_count(), 0);
        self.assert_nothing_left_if_empty();
        self.with_tx(|room, now, _| room.close(now));
        self.outputs();
        assert_eq!(self.room.poll_timeout(), None);
        assert_eq!(self.routes.len(), (0, 0));
        self.closed = true;
    }
}

// ------------------------------------------------------------------ message builders

/// What mediasoup-client computes from the room caps for a Chrome supporting them all.
pub fn client_caps(room: &Value) -> Value {
    let codecs: Vec<Value> = room["codecs"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|c| {
            let mut o = json!({
                "name": c["name"], "mimeType": c["mimeType"], "kind": c["kind"],
                "clockRate": c["clockRate"], "preferredPayloadType": c["preferredPayloadType"],
                "parameters": c["parameters"],
            });
            if c["name"] != "rtx" {
                o["rtcpFeedback"] = c["rtcpFeedback"].clone();
            }
            if !c["channels"].is_null() {
                o["channels"] = c["channels"].clone();
            }
            o
        })
        .collect();
    let exts: Vec<Value> = room["headerExtensions"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|e| json!({"kind": e["kind"], "uri": e["uri"], "preferredId": e["preferredId"]}))
        .collect();
    json!({"codecs": codecs, "headerExtensions": exts, "fecMechanisms": []})
}

/// A syntactically valid browser DTLS fingerprint.
pub fn fake_dtls(role: &str) -> Value {
    let value = (0..32).map(|i| format!("{:02X}", i * 7 % 256)).collect::<Vec<_>>().join(":");
    json!({"role": role, "fingerprints": [{"algorithm": "sha-256", "value": value}]})
}

/// createProducer.rtpParameters as Chrome sends them (opus 111; VP8 96 + RTX 97).
pub fn producer_params(kind: &str, mid: &str, ssrc: u32, rtx_ssrc: Option<u32>) -> Value {
    if kind == "audio" {
        json!({
            "muxId": mid,
            "codecs": [{"name": "opus", "mimeType": "audio/opus", "clockRate": 48000, "payloadType": 111,
                        "channels": 2, "rtcpFeedback": [{"type": "transport-cc"}], "parameters": {"useinbandfec": 1}}],
            "headerExtensions": [
                {"uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 1},
                {"uri": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", "id": 3},
                {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4}],
            "encodings": [{"ssrc": ssrc}],
            "rtcp": {"cname": format!("cname-{ssrc}"), "reducedSize": true, "mux": true},
        })
    } else {
        let mut codecs = vec![json!({"name": "VP8", "mimeType": "video/VP8", "clockRate": 90000, "payloadType": 96,
            "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"},
                             {"type": "goog-remb"}, {"type": "transport-cc"}], "parameters": {}})];
        let mut enc = json!({"ssrc": ssrc});
        if let Some(r) = rtx_ssrc {
            codecs.push(json!({"name": "rtx", "mimeType": "video/rtx", "clockRate": 90000, "payloadType": 97, "parameters": {"apt": 96}}));
            enc["rtx"] = json!({"ssrc": r});
        }
        json!({
            "muxId": mid,
            "codecs": codecs,
            "headerExtensions": [
                {"uri": "urn:ietf:params:rtp-hdrext:toffset", "id": 14},
                {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2},
                {"uri": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", "id": 3},
                {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4},
                {"uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "id": 10}],
            "encodings": [enc],
            "rtcp": {"cname": format!("cname-{ssrc}"), "reducedSize": true, "mux": true},
        })
    }
}

// ------------------------------------------------------------------ target: request

/// Input of the `request` target: lines (`\n`), each `<op><payload>`:
/// * `a`..`d`: a request (JSON payload) from alice, bob, carol, "";
/// * `A`..`D`: a notification from them;
/// * `t<ms>`: the clock moves (at most 60 s per line), timers run;
/// * `x<n>`: the host closes peer n % 4;
/// * `X`: the host closes the room (the input ends there).
///
/// `@c0`..`@c9` in a payload stand for the consumer ids the room announced so far.
/// At the end every peer is closed and nothing may be left; then the room is closed.
pub fn run_request_input(data: &[u8]) {
    let mut fx = Fx::default_room();
    for line in data.split(|b| *b == b'\n').take(256) {
        let Some((&op, rest)) = line.split_first() else { continue };
        match op {
            b'a'..=b'd' => {
                fx.request(PEERS[(op - b'a') as usize], rest);
            }
            b'A'..=b'D' => fx.notify(PEERS[(op - b'A') as usize], rest),
            b't' => {
                let ms: u64 = std::str::from_utf8(rest).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
                fx.tick(Duration::from_millis(ms.min(60_000)));
            }
            b'x' => fx.close_peer(PEERS[rest.first().copied().unwrap_or(0) as usize % 4]),
            b'X' => break,
            _ => {}
        }
        fx.assert_nothing_left_if_empty();
    }
    fx.finish();
}

/// Seed inputs for the `request` target: complete, valid sessions.
pub fn request_seeds() -> Vec<(String, Vec<u8>)> {
    let caps = client_caps(&RoomCaps::from_options(None).unwrap().to_json());
    let line = |op: char, v: Value| format!("{op}{v}");
    let join = |op: char| line(op, json!({"method": "join", "target": "room", "peerName": "x", "rtpCapabilities": caps, "spy": false, "appData": {"a": 1}}));
    let send_t = |op: char, id: u64| line(op, json!({"method": "createTransport", "target": "peer", "id": id, "direction": "send", "options": {}, "dtlsParameters": fake_dtls("server"), "appData": {}}));
    let recv_t = |op: char, id: u64| line(op, json!({"method": "createTransport", "target": "peer", "id": id, "direction": "recv", "options": {}, "appData": {}}));
    let produce = |op: char, id: u64, tid: u64, kind: &str, ssrc: u32, rtx: Option<u32>| {
        let mid = if kind == "audio" { "0" } else { "1" };
        line(op, json!({"method": "createProducer", "target": "peer", "id": id, "kind": kind, "transportId": tid,
            "rtpParameters": producer_params(kind, mid, ssrc, rtx), "paused": false, "appData": {"p": id}}))
    };
    let note = |op: char, m: &str, extra: Value| {
        let mut v = json!({"method": m, "target": "peer", "notification": true});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        line(op, v)
    };
    let enable = |op: char, c: usize, tid: u64| format!(r#"{op}{{"method":"enableConsumer","target":"peer","id":@c{c},"transportId":{tid},"paused":false,"preferredProfile":"default"}}"#);
    let mut seeds = Vec::new();
    let mut add = |name: &str, lines: Vec<String>| seeds.push((name.to_string(), lines.join("\n").into_bytes()));
    add("query", vec![line('a', json!({"method": "queryRoom", "target": "room"}))]);
    add("join-leave", vec![join('a'), note('A', "leave", json!({}))]);
    add("seed-join", vec!["a{\"method\":\"join\",\"target\":\"room\",\"peerName\":\"a\"}".into(), "b{\"method\":\"join\"}".into()]);
    add(
        "full-session",
        vec![
            join('a'),
            join('b'),
            send_t('a', 1),
            produce('a', 10, 1, "audio", 1111, None),
            produce('a', 11, 1, "video", 2222, Some(2223)),
            recv_t('b', 2),
            note('B', "updateTransport", json!({"id": 2, "dtlsParameters": fake_dtls("client")})),
            enable('b', 0, 2),
            enable('b', 1, 2),
            note('A', "pauseProducer", json!({"id": 11})),
            note('A', "resumeProducer", json!({"id": 11})),
            note('B', "pauseConsumer", json!({"id": 0})).replace("\"id\":0", "\"id\":@c1"),
            note('B', "resumeConsumer", json!({"id": 0})).replace("\"id\":0", "\"id\":@c1"),
            note('B', "setConsumerPreferredProfile", json!({"id": 0, "profile": "low"})).replace("\"id\":0", "\"id\":@c1"),
            note('A', "enableTransportStats", json!({"id": 1, "interval": 1000})),
            note('B', "enableConsumerStats", json!({"id": 0, "interval": 1000})).replace("\"id\":0", "\"id\":@c0"),
            "t1500".into(),
            line('a', json!({"method": "restartTransport", "target": "peer", "id": 1})),
            note('A', "updateProducer", json!({"id": 11, "rtpParameters": producer_params("video", "1", 3333, Some(3334))})),
            note('A', "closeProducer", json!({"id": 10})),
            note('A', "closeTransport", json!({"id": 1})),
            "t31000".into(),
            note('B', "leave", json!({})),
        ],
    );
    add(
        "three-peers-limits",
        vec![
            join('a'),
            join('b'),
            join('c'),
            join('d'),
            send_t('c', 5),
            send_t('c', 6),
            recv_t('c', 7),
            recv_t('c', 8),
            produce('c', 20, 5, "audio", 5000, None),
            produce('c', 21, 5, "video", 5001, Some(5002)),
            produce('c', 22, 5, "video", 5003, None),
            produce('c', 23, 5, "video", 5005, None),
            recv_t('a', 9),
            enable('a', 0, 9),
            enable('a', 1, 9),
            "x2".into(),
            "t30001".into(),
        ],
    );
    add(
        "simulcast",
        vec![
            join('a'),
            join('b'),
            send_t('a', 1),
            line('a', json!({"method": "createProducer", "target": "peer", "id": 12, "kind": "video", "transportId": 1,
                "rtpParameters": {"muxId": "1", "codecs": producer_params("video", "1", 1, Some(2))["codecs"],
                    "headerExtensions": producer_params("video", "1", 1, None)["headerExtensions"],
                    "encodings": [{"ssrc": 100, "rtx": {"ssrc": 101}, "profile": "low"}, {"ssrc": 200, "rtx": {"ssrc": 201}, "profile": "medium"}, {"ssrc": 300, "rtx": {"ssrc": 301}, "profile": "high"}],
                    "rtcp": {"cname": "c", "reducedSize": true, "mux": true}}, "paused": true})),
            recv_t('b', 2),
            enable('b', 0, 2),
            note('B', "setConsumerPreferredProfile", json!({"id": 0, "profile": "medium"})).replace("\"id\":0", "\"id\":@c0"),
            note('A', "resumeProducer", json!({"id": 12})),
            "X".into(),
        ],
    );
    add("garbage", vec!["a{".into(), "A[]".into(), "b{\"method\":7}".into(), "t".into(), "x".into()]);
    seeds
}

// ------------------------------------------------------------------ target: datagram

/// The `datagram` fixture: transports in every state a datagram can find them in.
pub struct DatagramFx {
    pub fx: Fx,
    /// (local ufrag, transport key) of: alice's send transport (DTLS parameters given,
    /// producers: its Rtc is built, we are the DTLS client); bob's receive transport
    /// (DTLS role known, consumers enabled: we are the DTLS server); carol's receive
    /// transport (no updateTransport yet: early DTLS is kept); carol's send transport
    /// without producer (no Rtc yet: everything is kept).
    pub transports: Vec<(String, TKey)>,
    /// Browser-side addresses an input can send from.
    pub addrs: [SocketAddr; 4],
}

impl DatagramFx {
    pub fn new() -> DatagramFx {
        let mut fx = Fx::default_room();
        let caps = client_caps(&fx.room.caps().to_json());
        for p in ["alice", "bob", "carol"] {
            fx.request_ok(p, json!({"method": "join", "target": "room", "peerName": p, "rtpCapabilities": caps, "spy": false}));
        }
        let mut transports = Vec::new();
        let mut create = |fx: &mut Fx, peer: &str, id: u64, send: bool| {
            let mut req = json!({"method": "createTransport", "target": "peer", "id": id, "direction": if send { "send" } else { "recv" }, "options": {}});
            if send {
                req["dtlsParameters"] = fake_dtls("server");
            }
            let r = fx.request_ok(peer, req);
            let ufrag = r["iceParameters"]["usernameFragment"].as_str().unwrap().to_string();
            let key = fx.routes.by_ufrag(&ufrag).expect("routed by ufrag").1;
            transports.push((ufrag, key));
        };
        create(&mut fx, "alice", 1, true);
        fx.request_ok("alice", json!({"method": "createProducer", "target": "peer", "id": 10, "kind": "audio", "transportId": 1, "rtpParameters": producer_params("audio", "0", 1111, None), "paused": false}));
        fx.request_ok("alice", json!({"method": "createProducer", "target": "peer", "id": 11, "kind": "video", "transportId": 1, "rtpParameters": producer_params("video", "1", 2222, Some(2223)), "paused": false}));
        create(&mut fx, "bob", 2, false);
        fx.notify("bob", json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2, "dtlsParameters": fake_dtls("client")}).to_string().as_bytes());
        create(&mut fx, "carol", 3, false);
        create(&mut fx, "carol", 4, true);
        // bob's and carol's consumers of alice's two producers, enabled on their recv transports.
        let ids = fx.consumer_ids.clone();
        for (i, cid) in ids.iter().enumerate() {
            let (peer, tid) = if i % 2 == 0 { ("bob", 2) } else { ("carol", 3) };
            let r = fx.request(peer, json!({"method": "enableConsumer", "target": "peer", "id": cid, "transportId": tid, "paused": false}).to_string().as_bytes());
            if r["ok"] != true {
                // The consumer belongs to the other peer.
                let (peer, tid) = if peer == "bob" { ("carol", 3) } else { ("bob", 2) };
                fx.request_ok(peer, json!({"method": "enableConsumer", "target": "peer", "id": cid, "transportId": tid, "paused": false}));
            }
        }
        let addrs = ["127.0.0.1:50001", "127.0.0.1:50002", "10.9.8.7:50003", "127.0.0.1:50004"].map(|a| a.parse().unwrap());
        DatagramFx { fx, transports, addrs }
    }
}

impl Default for DatagramFx {
    fn default() -> Self {
        DatagramFx::new()
    }
}

/// A tiny reader over the fuzz input.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }
    /// A length-prefixed (u16 LE) chunk, cut to what is left.
    fn chunk(&mut self) -> &'a [u8] {
        let n = self.u16().unwrap_or(0) as usize;
        let n = n.min(self.0.len());
        let (c, rest) = self.0.split_at(n);
        self.0 = rest;
        c
    }
}

/// Input of the `datagram` target: a sequence of operations, each an op byte
/// `o` then its arguments. `t = (o >> 3) & 3` picks a transport, `s = (o >> 5) & 3` a
/// source address.
/// * `o & 7 == 0`: a datagram (u16 LE length + bytes) routed like the worker routes it;
/// * `1`: the same datagram handed to transport t directly (skips the routing);
/// * `2`: a binding request signed with t's password from s: flags byte (bit 0
///   USE-CANDIDATE, bit 1 ICE-CONTROLLING), u32 priority, remote ufrag (length-prefixed);
///   then s is a verified peer address;
/// * `3`: the clock moves by (byte * 10 ms), timers run;
/// * `4`: a signed binding request from s to t, then the datagram that follows is sent
///   routed from s (reaches the transport's DTLS/SRTP stack through a real route);
/// * `5`: a control-plane event interleaved with the traffic (byte selects it:
///   restartTransport, closeTransport, closeProducer, pause/resume, leave, host close);
/// * `6`, `7`: a datagram routed from s, its first byte forced into the DTLS (20..=63)
///   or RTP/RTCP (128..=191) range.
pub fn run_datagram_input(data: &[u8]) {
    let mut d = DatagramFx::new();
    let mut c = Cursor(data);
    let mut steps = 0;
    while let Some(o) = c.u8() {
        steps += 1;
        if steps > 512 {
            break;
        }
        let t = ((o >> 3) & 3) as usize;
        let src = d.addrs[((o >> 5) & 3) as usize];
        let (ufrag, key) = d.transports[t].clone();
        match o & 7 {
            0 => {
                let dg = c.chunk();
                d.fx.datagram_routed(src, dg);
            }
            1 => {
                let dg = c.chunk();
                d.fx.datagram_to(key, src, dg);
            }
            2 => {
                let flags = c.u8().unwrap_or(0);
                let prio = c.u32().unwrap_or(0x6e7f_00ff);
                let remote = String::from_utf8_lossy(c.chunk()).into_owned();
                let remote = if remote.is_empty() || remote.contains(':') { "browser".to_string() } else { remote };
                d.fx.stun_from(src, &ufrag, &remote, prio, flags & 1 != 0, flags & 2 != 0);
            }
            3 => {
                let n = c.u8().unwrap_or(0) as u64;
                d.fx.tick(Duration::from_millis(n * 10));
            }
            4 => {
                d.fx.stun_from(src, &ufrag, "browser", 0x6e7f_00ff, true, true);
                let dg = c.chunk();
                d.fx.datagram_routed(src, dg);
            }
            5 => {
                let which = c.u8().unwrap_or(0);
                control(&mut d, which);
            }
            k => {
                let dg = c.chunk();
                if let Some((first, rest)) = dg.split_first() {
                    let first = if k == 6 { 20 + first % 44 } else { 128 + first % 64 };
                    let mut v = Vec::with_capacity(dg.len());
                    v.push(first);
                    v.extend_from_slice(rest);
                    d.fx.datagram_routed(src, &v);
                }
            }
        }
        d.fx.assert_nothing_left_if_empty();
    }
    d.fx.finish();
}

fn control(d: &mut DatagramFx, which: u8) {
    let fx = &mut d.fx;
    let n = |m: &str, extra: Value| {
        let mut v = json!({"method": m, "target": "peer", "notification": true});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string().into_bytes()
    };
    match which % 10 {
        0 => {
            let t = (which / 10) % 4;
            let (peer, id) = [("alice", 1), ("bob", 2), ("carol", 3), ("carol", 4)][t as usize];
            let r = fx.request(peer, json!({"method": "restartTransport", "target": "peer", "id": id}).to_string().as_bytes());
            if let Some(u) = r.pointer("/data/iceParameters/usernameFragment").and_then(Value::as_str) {
                d.transports[t as usize].0 = u.to_string();
            }
        }
        1 => fx.notify("alice", &n("closeTransport", json!({"id": 1}))),
        2 => fx.notify("bob", &n("closeTransport", json!({"id": 2}))),
        3 => fx.notify("alice", &n("closeProducer", json!({"id": 11}))),
        4 => fx.notify("alice", &n("pauseProducer", json!({"id": 11}))),
        5 => fx.notify("alice", &n("resumeProducer", json!({"id": 11}))),
        6 => fx.notify("carol", &n("updateTransport", json!({"id": 3, "dtlsParameters": fake_dtls("client")}))),
        7 => fx.notify("bob", &n("leave", json!({}))),
        8 => fx.close_peer("carol"),
        _ => fx.notify("alice", &n("enableTransportStats", json!({"id": 1, "interval": 1000}))),
    }
}

/// Seed inputs for the `datagram` target.
pub fn datagram_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let op = |kind: u8, t: u8, s: u8| kind | (t << 3) | (s << 5);
    let with_len = |b: &[u8]| {
        let mut v = (b.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(b);
        v
    };
    // Samples of every datagram family (RFC 7983 first-byte ranges).
    let stun_req = {
        // Binding request, unsigned, USERNAME "x:y".
        let mut v = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
        v.extend_from_slice(&[7; 12]);
        v.extend_from_slice(&[0x00, 0x06, 0x00, 0x03, b'x', b':', b'y', 0]);
        v
    };
    let stun_truncated = stun_req[..23].to_vec();
    let dtls_client_hello = {
        let mut v = vec![22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60];
        v.extend_from_slice(&[1, 0, 0, 48, 0, 0, 0, 0, 0, 0, 0, 48, 0xFE, 0xFD]);
        v.extend_from_slice(&[0x5A; 32]);
        v.extend_from_slice(&[0, 0, 0, 2, 0xC0, 0x2B, 1, 0]);
        v
    };
    let dtls_alert = vec![21, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 5, 0, 2, 2, 40];
    let dtls_app = {
        let mut v = vec![23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 32];
        v.extend_from_slice(&[0xAB; 32]);
        v
    };
    let rtp = {
        let mut v = vec![0x90, 96, 0x12, 0x34, 0, 0, 0x0B, 0xB8, 0, 0, 0x08, 0xAE];
        v.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x31, 0, 0]); // one-byte ext: mid "1"
        v.extend_from_slice(&[0x10, 0x00, 0x9D, 0x01, 0x2A]);
        v.extend_from_slice(&[0x42; 20]);
        v
    };
    let rtcp_rr = vec![0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0x08, 0xAE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let rtcp_pli = vec![0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0x08, 0xAE];
    let rtcp_nack = vec![0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0x08, 0xAE, 0x12, 0x34, 0, 0];
    let samples: Vec<(&str, Vec<u8>)> = vec![
        ("stun", stun_req),
        ("stun-truncated", stun_truncated),
        ("dtls-hello", dtls_client_hello),
        ("dtls-alert", dtls_alert),
        ("dtls-app", dtls_app),
        ("rtp", rtp),
        ("rtcp-rr", rtcp_rr),
        ("rtcp-pli", rtcp_pli),
        ("rtcp-nack", rtcp_nack),
        ("garbage", vec![0xFF; 40]),
        ("empty", vec![]),
    ];
    for (name, s) in &samples {
        for t in 0..4u8 {
            // Unrouted, direct, and after a signed binding request.
            let mut v = vec![op(0, t, 2)];
            v.extend(with_len(s));
            v.push(op(1, t, 0));
            v.extend(with_len(s));
            v.push(op(4, t, 1));
            v.extend(with_len(s));
            v.push(op(3, 0, 0));
            v.push(50);
            seeds.push((format!("{name}-t{t}"), v));
        }
    }
    // ICE up on every transport, then every sample routed, timers, control changes.
    let mut all = Vec::new();
    for t in 0..4u8 {
        all.push(op(2, t, 0));
        all.push(3);
        all.extend(0x6e7f_00ffu32.to_le_bytes());
        all.extend(with_len(b"brw1"));
    }
    for (_, s) in &samples {
        for t in 0..4u8 {
            all.push(op(0, t, 0));
            all.extend(with_len(s));
        }
    }
    for w in [0u8, 10, 20, 30, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
        all.push(op(5, 0, 0));
        all.push(w);
        all.push(op(3, 0, 0));
        all.push(200);
    }
    seeds.push(("session".into(), all));
    seeds
}

// ------------------------------------------------------------------ target: config

/// Input of the `config` target: `<server config JSON>\0<room options JSON>`. The
/// server configuration is parsed and validated (no server is started); room options
/// that are accepted build a room, in which a peer joins with the capabilities a client
/// derives from them and creates a receive transport (str0m gets the codec table).
pub fn run_config_input(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == 0);
    let cfg = parts.next().unwrap_or(&[]);
    let opts = parts.next().unwrap_or(&[]);
    if let Ok(s) = std::str::from_utf8(cfg) {
        if let Ok(c) = sfu::ServerConfig::from_json(Some(s)) {
            assert!(c.num_workers >= 1 && c.rtc_min_port <= c.rtc_max_port);
            assert!(c.transport_timeout_secs >= 1.0);
        }
    }
    let Ok(s) = std::str::from_utf8(opts) else { return };
    let Ok(caps) = RoomCaps::from_options(Some(s)) else { return };
    let room_caps = caps.to_json();
    let mut fx = Fx::new(caps, fuzz_limits());
    let r = fx.request("alice", json!({"method": "join", "target": "room", "rtpCapabilities": client_caps(&room_caps)}).to_string().as_bytes());
    assert_eq!(r["ok"], true, "a client using the room's own capabilities can join: {r}");
    fx.request_ok("alice", json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "recv", "options": {}}));
    fx.request("bob", json!({"method": "join", "target": "room"}).to_string().as_bytes());
    fx.request_ok("bob", json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "recv", "options": {}}));
    fx.tick(Duration::from_secs(1));
    fx.finish();
}

/// Seed inputs for the `config` target.
pub fn config_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let cfgs = [
        "",
        "{}",
        r#"{"numWorkers":2,"logLevel":"none","rtcIPv4":"127.0.0.1","rtcMinPort":40000,"rtcMaxPort":40100,"maxMessageSize":65536,"transportTimeout":2.5}"#,
        r#"{"rtcIPv4":"0.0.0.0","rtcAnnouncedIPv4":"192.0.2.1","maxPeersPerRoom":1,"maxTransportsPerPeer":1,"maxProducersPerTransport":1,"maxPendingRequestsPerPeer":1}"#,
        r#"{"dtlsCertificateFile":"/nonexistent","dtlsPrivateKeyFile":"/nonexistent"}"#,
    ];
    let opts = [
        "",
        r#"{"mediaCodecs":null}"#,
        r#"{"mediaCodecs":[{"kind":"audio","name":"opus","clockRate":48000,"channels":2}]}"#,
        r#"{"mediaCodecs":[{"kind":"video","name":"VP8","clockRate":90000},{"kind":"video","name":"H264","clockRate":90000,"parameters":{"packetization-mode":1,"profile-level-id":"42e01f"}}]}"#,
        r#"{"mediaCodecs":[{"kind":"audio","name":"PCMU","clockRate":8000},{"kind":"audio","name":"opus","clockRate":48000,"channels":2},{"kind":"video","name":"VP9","clockRate":90000,"parameters":{"profile-id":2}}]}"#,
    ];
    for (i, c) in cfgs.iter().enumerate() {
        for (j, o) in opts.iter().enumerate() {
            let mut v = c.as_bytes().to_vec();
            v.push(0);
            v.extend_from_slice(o.as_bytes());
            seeds.push((format!("c{i}-o{j}"), v));
        }
    }
    seeds
}

/// Every file of a corpus directory (sorted), for replays.
pub fn corpus_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    v.sort();
    v.into_iter().filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b))).collect()
}

/// Keep the unused-import lint quiet in builds that use only part of the harness.
#[allow(unused)]
fn _unused(_: HashMap<u8, u8>) {}
