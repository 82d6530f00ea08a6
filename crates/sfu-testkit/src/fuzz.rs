//! The cargo-fuzz targets' inputs (fuzz/fuzz_targets/*), shared with the corpus replay
//! of the test command (tests/hardening.rs): each input drives the production worker
//! core (`sfu::core::WorkerCore`) through [`crate::sim::CoreSim`], whose invariants are
//! checked after every step.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use sfu::core::{Limits, RoomCaps};

use crate::builders::{client_caps, fake_dtls, producer_params};
use crate::sim::CoreSim;

/// Peer names a fuzz input can speak as (the empty name is a host mistake to survive).
pub const PEERS: [&str; 4] = ["alice", "bob", "carol", ""];

/// Small limits so that inputs reach them.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_peers_per_room: 3,
        max_transports_per_peer: 3,
        max_producers_per_transport: 3,
        max_pending_requests_per_peer: 128,
        max_rtp_streamers_per_room: 3,
        max_plain_transports_per_peer: 2,
        plain_rtp_comedia: true,
    }
}

/// A simulated core plus what a fuzz input refers to symbolically.
pub struct Fx {
    pub sim: CoreSim,
}

impl Fx {
    pub fn new(caps: RoomCaps) -> Fx {
        Fx { sim: CoreSim::new(caps, fuzz_limits()) }
    }

    pub fn default_room() -> Fx {
        Fx { sim: CoreSim::default_room(fuzz_limits()) }
    }

    /// `@c0`..`@c9` -> the consumer ids learnt so far (0 when unknown).
    pub fn substitute(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'@' && bytes.get(i + 1) == Some(&b'c') {
                if let Some(d) = bytes.get(i + 2).filter(|d| d.is_ascii_digit()) {
                    let n = (d - b'0') as usize;
                    let id = self.sim.consumer_ids.get(n).copied().unwrap_or(0);
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

    pub fn request(&mut self, peer: &str, bytes: &[u8]) -> Value {
        let bytes = self.substitute(bytes);
        self.sim.request(peer, &bytes)
    }

    pub fn request_ok(&mut self, peer: &str, v: Value) -> Value {
        self.sim.request_ok(peer, v)
    }

    pub fn notify(&mut self, peer: &str, bytes: &[u8]) {
        let bytes = self.substitute(bytes);
        self.sim.notify(peer, &bytes)
    }

    pub fn finish(&mut self) {
        self.sim.finish(&PEERS);
    }
}

// ------------------------------------------------------------------ target: request

/// Input of the `request` target: lines (`\n`), each `<op><payload>`:
/// * `a`..`d`: a request (JSON payload) from alice, bob, carol, "";
/// * `A`..`D`: a notification from them;
/// * `t<ms>`: the clock moves (at most 60 s per line), timers run;
/// * `x<n>`: the host closes peer n % 4;
/// * `h`: a host request (JSON payload);
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
                fx.sim.tick(Duration::from_millis(ms.min(60_000)));
            }
            b'x' => {
                fx.sim.close_peer(PEERS[rest.first().copied().unwrap_or(0) as usize % 4]);
            }
            b'h' => {
                let bytes = fx.substitute(rest);
                fx.sim.host_request(&bytes);
            }
            b'X' => break,
            _ => {}
        }
        fx.sim.assert_nothing_left_if_empty();
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
    add(
        "host-requests",
        vec![
            join('a'),
            join('b'),
            send_t('a', 1),
            produce('a', 10, 1, "audio", 1111, None),
            produce('a', 11, 1, "video", 2222, Some(2223)),
            line('h', json!({"method": "createRtpStreamer", "producerId": 11, "remoteIp": "127.0.0.1", "remotePort": 5004})),
            line('h', json!({"method": "createRtpStreamer", "peerName": "alice", "producerId": 10, "remoteIp": "127.0.0.1", "remotePort": 5006, "rtcpMux": true})),
            line('h', json!({"method": "createRtpStreamer", "producerId": 11, "remoteIp": "127.0.0.1", "remotePort": 5004})),
            line('h', json!({"method": "enableAudioLevels", "intervalMs": 200, "thresholdDbov": -90})),
            line('h', json!({"method": "enableActiveSpeaker", "intervalMs": 200})),
            "t1500".into(),
            note('A', "pauseProducer", json!({"id": 11})),
            note('A', "resumeProducer", json!({"id": 11})),
            line('h', json!({"method": "closeRtpStreamer", "streamerId": 1})),
            note('A', "closeProducer", json!({"id": 10})),
            line('h', json!({"method": "disableAudioLevels"})),
            line('b', json!({"method": "createTransport", "id": 7, "direction": "send", "plainRtpParameters": {"ip": "127.0.0.1", "port": 6000}})),
            line('b', json!({"method": "createProducer", "id": 20, "kind": "video", "transportId": 7,
                "rtpParameters": producer_params("video", "1", 7777, None), "paused": false})),
            line('b', json!({"method": "createTransport", "id": 8, "direction": "send", "plainRtpParameters": {}})),
            note('B', "updateTransport", json!({"id": 7, "plainRtpParameters": {"ip": "127.0.0.1", "port": 6002}})),
            "t31000".into(),
        ],
    );
    seeds
}

// ------------------------------------------------------------------ target: datagram

/// The `datagram` fixture: transports in every state a datagram can find them in.
pub struct DatagramFx {
    pub fx: Fx,
    /// Local ufrags of: alice's send transport (DTLS parameters given, producers: its
    /// Rtc is built, we are the DTLS client); bob's receive transport (DTLS role known,
    /// consumers enabled: we are the DTLS server); carol's receive transport (no
    /// updateTransport yet: early DTLS is kept); carol's send transport without producer
    /// (no Rtc yet: everything is kept).
    pub transports: Vec<String>,
    /// The address that last proved itself to each transport.
    pub proven: Vec<Option<SocketAddr>>,
    /// Browser-side addresses an input can send from.
    pub addrs: [SocketAddr; 4],
}

impl DatagramFx {
    pub fn new() -> DatagramFx {
        let mut fx = Fx::default_room();
        let caps = client_caps(&RoomCaps::from_options(None).expect("default caps").to_json());
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
            transports.push(r["iceParameters"]["usernameFragment"].as_str().unwrap().to_string());
        };
        create(&mut fx, "alice", 1, true);
        fx.request_ok("alice", json!({"method": "createProducer", "target": "peer", "id": 10, "kind": "audio", "transportId": 1, "rtpParameters": producer_params("audio", "0", 1111, None), "paused": false}));
        fx.request_ok("alice", json!({"method": "createProducer", "target": "peer", "id": 11, "kind": "video", "transportId": 1, "rtpParameters": producer_params("video", "1", 2222, Some(2223)), "paused": false}));
        create(&mut fx, "bob", 2, false);
        fx.notify("bob", json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2, "dtlsParameters": fake_dtls("client")}).to_string().as_bytes());
        create(&mut fx, "carol", 3, false);
        create(&mut fx, "carol", 4, true);
        // bob's and carol's consumers of alice's two producers, enabled on their recv transports.
        let ids = fx.sim.consumer_ids.clone();
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
        DatagramFx { fx, transports, proven: vec![None; 4], addrs }
    }

    fn stun(&mut self, t: usize, src: SocketAddr, remote: &str, prio: u32, use_candidate: bool, controlling: bool) {
        let ufrag = self.transports[t].clone();
        if self.fx.sim.stun_from(src, &ufrag, remote, prio, use_candidate, controlling) {
            self.proven[t] = Some(src);
        }
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
/// * `o & 7 == 0`: a datagram (u16 LE length + bytes) from s;
/// * `1`: the same datagram from the address that last proved itself to transport t
///   (reaches its ICE/DTLS/SRTP stack), or from s if none has;
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
        match o & 7 {
            0 => {
                let dg = c.chunk();
                d.fx.sim.datagram(src, dg);
            }
            1 => {
                let dg = c.chunk();
                let from = d.proven[t].unwrap_or(src);
                d.fx.sim.datagram(from, dg);
            }
            2 => {
                let flags = c.u8().unwrap_or(0);
                let prio = c.u32().unwrap_or(0x6e7f_00ff);
                let remote = String::from_utf8_lossy(c.chunk()).into_owned();
                let remote = if remote.is_empty() || remote.contains(':') { "browser".to_string() } else { remote };
                d.stun(t, src, &remote, prio, flags & 1 != 0, flags & 2 != 0);
            }
            3 => {
                let n = c.u8().unwrap_or(0) as u64;
                d.fx.sim.tick(Duration::from_millis(n * 10));
            }
            4 => {
                d.stun(t, src, "browser", 0x6e7f_00ff, true, true);
                let dg = c.chunk();
                d.fx.sim.datagram(src, dg);
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
                    d.fx.sim.datagram(src, &v);
                }
            }
        }
        d.fx.sim.assert_nothing_left_if_empty();
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
                d.transports[t as usize] = u.to_string();
            }
        }
        1 => fx.notify("alice", &n("closeTransport", json!({"id": 1}))),
        2 => fx.notify("bob", &n("closeTransport", json!({"id": 2}))),
        3 => fx.notify("alice", &n("closeProducer", json!({"id": 11}))),
        4 => fx.notify("alice", &n("pauseProducer", json!({"id": 11}))),
        5 => fx.notify("alice", &n("resumeProducer", json!({"id": 11}))),
        6 => fx.notify("carol", &n("updateTransport", json!({"id": 3, "dtlsParameters": fake_dtls("client")}))),
        7 => fx.notify("bob", &n("leave", json!({}))),
        8 => {
            fx.sim.close_peer("carol");
        }
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

// ------------------------------------------------------------------ target: tcp

/// Input of the `tcp` target: ICE-TCP connections to the `datagram` fixture's
/// transports, fed a byte stream. Operations, each an op byte `o` then its arguments;
/// `k = (o >> 3) & 3` picks a connection (from source 127.0.0.1:6000+k), `t = (o >> 5) & 3`
/// a transport:
/// * `o & 3 == 0`: bytes (u16 LE length + bytes) on connection k, split at a byte of
///   the input (so frames arrive in pieces);
/// * `1`: a signed binding request for transport t, framed, on connection k (it
///   authenticates the connection);
/// * `2`: the clock moves by (byte * 10 ms);
/// * `3`: connection k is closed and reopened.
///
/// A connection the server would close (a bad frame length, a frame that routes nowhere)
/// is reopened empty; the invariants of [`CoreSim`] hold throughout.
pub fn run_tcp_input(data: &[u8]) {
    use sfu::core::tcp::ConnState;
    let mut d = DatagramFx::new();
    let mut conns: Vec<ConnState> = (0..4).map(|_| ConnState::default()).collect();
    let src = |k: usize| -> SocketAddr { format!("127.0.0.1:{}", 6000 + k).parse().unwrap() };
    let mut c = Cursor(data);
    for _ in 0..512 {
        let Some(o) = c.u8() else { break };
        let k = ((o >> 3) & 3) as usize;
        let t = ((o >> 5) & 3) as usize;
        match o & 3 {
            0 => {
                let bytes = c.chunk();
                let split = c.u8().unwrap_or(0) as usize % (bytes.len() + 1);
                for piece in [&bytes[..split], &bytes[split..]] {
                    if d.fx.sim.tcp_bytes(&mut conns[k], src(k), piece).is_err() {
                        conns[k] = ConnState::default();
                        break;
                    }
                }
            }
            1 => {
                let ufrag = d.transports[t].clone();
                if d.fx.sim.stun_over_tcp(&mut conns[k], src(k), &ufrag, "browser").is_err() {
                    conns[k] = ConnState::default();
                }
            }
            2 => {
                let n = c.u8().unwrap_or(0) as u64;
                d.fx.sim.tick(Duration::from_millis(n * 10));
            }
            _ => conns[k] = ConnState::default(),
        }
        d.fx.sim.assert_nothing_left_if_empty();
    }
    d.fx.finish();
}

/// Seed inputs for the `tcp` target.
pub fn tcp_seeds() -> Vec<(String, Vec<u8>)> {
    let with_len = |b: &[u8]| {
        let mut v = (b.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(b);
        v
    };
    let framed = |b: &[u8]| {
        let mut v = (b.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    };
    let mut seeds = Vec::new();
    // Authenticate every connection to a transport, then frames of every family.
    let mut all = Vec::new();
    for k in 0..4u8 {
        all.push(1 | (k << 3) | (k << 5));
    }
    let samples: [Vec<u8>; 5] = [
        vec![22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        {
            let mut v = vec![0x90, 96, 0x12, 0x34, 0, 0, 0x0B, 0xB8, 0, 0, 0x08, 0xAE];
            v.extend_from_slice(&[0x42; 40]);
            v
        },
        vec![0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0x08, 0xAE],
        vec![0xFF; 30],
        vec![0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    ];
    for (i, s) in samples.iter().enumerate() {
        let k = (i % 4) as u8;
        all.push(k << 3);
        all.extend(with_len(&framed(s)));
        all.push(3);
    }
    all.extend([2, 100, 2, 200]);
    seeds.push(("session".into(), all));
    // Unauthenticated: garbage, zero and huge lengths, a frame in two pieces.
    seeds.push(("zero-length".into(), [vec![0], with_len(&[0, 0]), vec![0]].concat()));
    seeds.push(("huge-length".into(), [vec![0], with_len(&[0xff, 0xff, 1, 2]), vec![1]].concat()));
    seeds.push(("garbage-frame".into(), [vec![0], with_len(&framed(b"hello there")), vec![3]].concat()));
    seeds.push(("auth-then-reopen".into(), vec![1, 3, 1, 2, 255]));
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
    let mut fx = Fx::new(caps);
    let r = fx.request("alice", json!({"method": "join", "target": "room", "rtpCapabilities": client_caps(&room_caps)}).to_string().as_bytes());
    assert_eq!(r["ok"], true, "a client using the room's own capabilities can join: {r}");
    fx.request_ok("alice", json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "recv", "options": {}}));
    fx.request("bob", json!({"method": "join", "target": "room"}).to_string().as_bytes());
    fx.request_ok("bob", json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "recv", "options": {}}));
    fx.sim.tick(Duration::from_secs(1));
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
