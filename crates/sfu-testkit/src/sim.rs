//! One `sfu::core::WorkerCore` with one room, driven in simulated time: no thread, no
//! socket, a clock that moves only when told. What the core outputs is checked as it
//! comes out (the invariants below); a violation panics, which a fuzzer reports as a
//! crash and a test as a failure.
//!
//! Invariants:
//! * every request gets exactly one response, for that request id and that peer, and a
//!   notification, a datagram or a timer never produces a response;
//! * everything for the host is JSON; notifications carry `method` and
//!   `notification: true`; host events carry `event`;
//! * the core never sends a datagram to an address that has not proven, by a STUN
//!   binding request signed with a transport's ICE password, that it is a peer (no
//!   reflection or amplification toward a spoofed source);
//! * a datagram from an address that has not proven itself creates no route;
//! * when the room has no peer left, nothing is left: no engine, no route, no timer.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use sfu::core::tcp::{ConnClose, ConnState, FrameFate};
use sfu::core::{
    AnnouncedCandidate, Command, CommandResult, EventKind, Limits, MediaEnv, Output, Proto, RoomCaps, RoomSettings,
    WorkerCore,
};

/// The SFU's (announced) addresses in the simulation: UDP, and TCP (ICE-TCP passive).
pub const SFU_ADDR: &str = "127.0.0.1:40000";
pub const SFU_TCP_ADDR: &str = "127.0.0.1:40001";
/// Largest datagram a worker reads.
pub const MAX_DATAGRAM: usize = 2048;

pub fn sfu_addr() -> SocketAddr {
    SFU_ADDR.parse().unwrap()
}

pub fn sfu_tcp_addr() -> SocketAddr {
    SFU_TCP_ADDR.parse().unwrap()
}

/// One `MediaEnv` per process: generating the certificate per run would dominate.
pub fn env() -> Arc<MediaEnv> {
    static CERT: OnceLock<(str0m::config::DtlsCert, String)> = OnceLock::new();
    let (cert, fingerprint) = CERT
        .get_or_init(|| {
            let c = sfu::core::generate_certificate().expect("certificate");
            let f = sfu::core::certificate_fingerprint(&c);
            (c, f)
        })
        .clone();
    Arc::new(MediaEnv {
        ice_addr: sfu_addr(),
        tcp_addr: Some(sfu_tcp_addr()),
        candidates: vec![
            AnnouncedCandidate { addr: sfu_addr(), proto: Proto::Udp },
            AnnouncedCandidate { addr: sfu_tcp_addr(), proto: Proto::Tcp },
        ],
        cert,
        fingerprint,
        transport_timeout: Duration::from_secs(30),
        bwe_initial: None,
    })
}

/// What the host got for one peer.
#[derive(Debug, Clone)]
pub struct HostOut {
    pub kind: EventKind,
    pub peer: String,
    pub request_id: u64,
    pub json: Value,
}

pub struct CoreSim {
    pub core: WorkerCore,
    pub now: Instant,
    pub room: String,
    /// Server-chosen consumer ids, in the order they were announced.
    pub consumer_ids: Vec<u64>,
    /// ICE passwords of the transports, by local ufrag (from the answers).
    pub passwords: HashMap<String, String>,
    /// Sources that sent a correctly signed binding request to some transport.
    pub verified: HashSet<(Proto, SocketAddr)>,
    /// Datagrams the core sent, and how many of them were DTLS records.
    pub sent: u64,
    pub sent_dtls: u64,
    /// Everything for the host that was not a response, in order.
    pub log: Vec<HostOut>,
    next_request_id: u64,
}

impl CoreSim {
    pub fn new(caps: RoomCaps, limits: Limits) -> CoreSim {
        let mut core = WorkerCore::new(0, env(), RoomSettings { limits, max_message_size: 64 * 1024, adapt: Default::default() });
        let now = Instant::now();
        let r = core.handle_command(now, Command::CreateRoom { id: "sim".into(), caps });
        assert_eq!(r, CommandResult::RoomCreated(Ok(())));
        CoreSim {
            core,
            now,
            room: "sim".into(),
            consumer_ids: Vec::new(),
            passwords: HashMap::new(),
            verified: HashSet::new(),
            sent: 0,
            sent_dtls: 0,
            log: Vec::new(),
            next_request_id: 1,
        }
    }

    pub fn default_room(limits: Limits) -> CoreSim {
        CoreSim::new(RoomCaps::from_options(None).expect("default caps"), limits)
    }

    /// Take and check the core's output; returns the responses.
    fn drain(&mut self) -> Vec<HostOut> {
        let mut responses = Vec::new();
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let ours = match t.proto {
                        Proto::Udp => sfu_addr(),
                        Proto::Tcp => sfu_tcp_addr(),
                    };
                    assert_eq!(t.local, ours, "a packet from an address that is not the SFU's");
                    assert!(
                        self.verified.contains(&(t.proto, t.remote)),
                        "the SFU sent {} bytes to {}, which never proved it is a peer (reflection)",
                        t.data.len(),
                        t.remote
                    );
                    assert!(!t.data.is_empty() && t.data.len() <= MAX_DATAGRAM, "datagram of {} bytes", t.data.len());
                    self.sent += 1;
                    if (20..=63).contains(&t.data[0]) {
                        self.sent_dtls += 1;
                    }
                }
                Output::Message(m) => {
                    let v: Value =
                        serde_json::from_str(&m.json).unwrap_or_else(|e| panic!("output is not JSON ({e}): {}", m.json));
                    match m.kind {
                        EventKind::Response | EventKind::HostResponse => {
                            assert!(v["ok"].is_boolean(), "response without ok: {}", m.json)
                        }
                        EventKind::Notification => {
                            assert_eq!(v["notification"], true, "{}", m.json);
                            assert!(v["method"].is_string(), "{}", m.json);
                            if v["method"] == "newConsumer" {
                                self.learn_consumer(&v["id"]);
                            }
                        }
                        EventKind::Host => assert!(v["event"].is_string(), "host event without event: {}", m.json),
                    }
                    if m.kind == EventKind::Response {
                        self.learn_from_response(&v);
                    }
                    let out = HostOut { kind: m.kind, peer: m.peer.to_string(), request_id: m.request_id, json: v };
                    if matches!(out.kind, EventKind::Response | EventKind::HostResponse) {
                        responses.push(out);
                    } else {
                        self.log.push(out);
                    }
                }
                Output::RoomFailed(id) => panic!("room {id} failed (a panic inside the library)"),
                Output::Log(_) => {}
                Output::Cross { worker, .. } => panic!("a lone core sent items to worker {worker}"),
            }
        }
        responses
    }

    fn learn_from_response(&mut self, v: &Value) {
        if let Some(peers) = v.pointer("/data/peers").and_then(Value::as_array) {
            for p in peers {
                for c in p["consumers"].as_array().into_iter().flatten() {
                    self.learn_consumer(&c["id"]);
                }
            }
        }
        if let Some(ice) = v.pointer("/data/iceParameters") {
            if let (Some(u), Some(p)) = (ice["usernameFragment"].as_str(), ice["password"].as_str()) {
                self.passwords.insert(u.to_string(), p.to_string());
            }
        }
    }

    fn learn_consumer(&mut self, id: &Value) {
        if let Some(id) = id.as_u64() {
            if !self.consumer_ids.contains(&id) {
                self.consumer_ids.push(id);
            }
        }
    }

    /// A client request: exactly one response, for this id and peer. Returns it.
    pub fn request(&mut self, peer: &str, bytes: &[u8]) -> Value {
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.core.handle_command(
            self.now,
            Command::Request { room: self.room.clone(), peer: peer.into(), request_id: id, bytes: bytes.to_vec() },
        );
        let responses = self.drain();
        assert_eq!(
            responses.len(),
            1,
            "request {} got {} responses: {responses:?}",
            String::from_utf8_lossy(bytes),
            responses.len()
        );
        let r = &responses[0];
        assert_eq!((r.peer.as_str(), r.request_id), (peer, id), "response for the wrong request");
        r.json.clone()
    }

    /// A host request: exactly one host response, for this id. Returns it.
    pub fn host_request(&mut self, bytes: &[u8]) -> Value {
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.core
            .handle_command(self.now, Command::HostRequest { room: self.room.clone(), request_id: id, bytes: bytes.to_vec() });
        let responses = self.drain();
        assert_eq!(responses.len(), 1, "host request {} got {responses:?}", String::from_utf8_lossy(bytes));
        let r = &responses[0];
        assert_eq!((r.kind, r.peer.as_str(), r.request_id), (EventKind::HostResponse, "", id));
        r.json.clone()
    }

    /// A request that must succeed (fixture set-up); returns `data`.
    pub fn request_ok(&mut self, peer: &str, v: Value) -> Value {
        let r = self.request(peer, v.to_string().as_bytes());
        assert_eq!(r["ok"], true, "{v} -> {r}");
        r["data"].clone()
    }

    /// A client notification: never a response.
    pub fn notify(&mut self, peer: &str, bytes: &[u8]) {
        self.core.handle_command(
            self.now,
            Command::Notify { room: self.room.clone(), peer: peer.into(), bytes: bytes.to_vec() },
        );
        let r = self.drain();
        assert!(r.is_empty(), "a notification was answered: {r:?}");
    }

    /// The host closes a peer.
    pub fn close_peer(&mut self, peer: &str) -> bool {
        let r = self.core.handle_command(self.now, Command::ClosePeer { room: self.room.clone(), peer: peer.into() });
        assert!(self.drain().is_empty());
        r == CommandResult::PeerClosed(true)
    }

    /// Move the clock and run what is due, like the worker loop.
    pub fn tick(&mut self, d: Duration) {
        self.now += d;
        if self.core.poll_timeout(self.now).is_some_and(|t| t <= self.now) {
            self.core.handle_timeout(self.now);
        }
        let r = self.drain();
        assert!(r.is_empty(), "a timer produced a response: {r:?}");
    }

    /// A UDP datagram from the network, then the deadlines it made due (the worker runs
    /// them at the end of each batch). A source that never proved itself gets no route.
    pub fn datagram(&mut self, src: SocketAddr, data: &[u8]) {
        let data = &data[..data.len().min(MAX_DATAGRAM)];
        self.packet(Proto::Udp, src, data);
    }

    /// One packet (a datagram, or a frame of a TCP connection); whether it was routed.
    fn packet(&mut self, proto: Proto, src: SocketAddr, data: &[u8]) -> bool {
        let before = self.core.counts();
        let routed = self.core.handle_datagram(self.now, proto, src, data);
        if self.core.poll_timeout(self.now).is_some_and(|t| t <= self.now) {
            self.core.handle_timeout(self.now);
        }
        let after = self.core.counts();
        if !self.verified.contains(&(proto, src)) {
            assert!(after.addr_routes <= before.addr_routes, "a route for {proto:?} {src}, which never sent a signed binding request");
        }
        let r = self.drain();
        assert!(r.is_empty(), "a packet produced a response: {r:?}");
        routed
    }

    /// Bytes of a TCP connection from `src` (its state in `conn`), framed as the worker
    /// frames them; `Err` when the connection must be closed. An unauthenticated
    /// connection never holds more than one frame's worth of bytes.
    pub fn tcp_bytes(&mut self, conn: &mut ConnState, src: SocketAddr, bytes: &[u8]) -> Result<(), ConnClose> {
        let r = conn.on_bytes(bytes, |f| {
            if self.packet(Proto::Tcp, src, f) {
                FrameFate::Routed
            } else {
                FrameFate::Unrouted
            }
        });
        assert!(conn.room() <= 2 + sfu::core::tcp::MAX_FRAME);
        r.map(|_| ())
    }

    /// A binding request to the transport with local ufrag `local_ufrag`, signed with its
    /// ICE password (`None` if the ufrag is unknown).
    pub fn signed_binding_request(
        &self,
        local_ufrag: &str,
        remote_ufrag: &str,
        prio: u32,
        use_candidate: bool,
        controlling: bool,
    ) -> Option<Vec<u8>> {
        let pass = self.passwords.get(local_ufrag)?;
        let username = format!("{local_ufrag}:{remote_ufrag}");
        let msg = str0m::ice::StunMessage::binding_request(
            &username,
            str0m::ice::TransId::new(),
            controlling,
            0x1234_5678,
            prio,
            use_candidate,
        );
        let mut buf = vec![0u8; 1500];
        let n = msg.to_bytes(Some(pass.as_bytes()), &mut buf, |k, p| sfu::core::hmac_sha1(k, p)).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// Send a signed binding request from `src` over UDP: `src` becomes a verified peer.
    pub fn stun_from(&mut self, src: SocketAddr, local_ufrag: &str, remote_ufrag: &str, prio: u32, use_candidate: bool, controlling: bool) -> bool {
        let Some(req) = self.signed_binding_request(local_ufrag, remote_ufrag, prio, use_candidate, controlling) else {
            return false;
        };
        self.verified.insert((Proto::Udp, src));
        self.datagram(src, &req);
        true
    }

    /// The same over a TCP connection from `src` (framed); `src` becomes a verified peer.
    pub fn stun_over_tcp(&mut self, conn: &mut ConnState, src: SocketAddr, local_ufrag: &str, remote_ufrag: &str) -> Result<(), ConnClose> {
        let Some(req) = self.signed_binding_request(local_ufrag, remote_ufrag, 0x6e7f_00ff, true, true) else {
            return Err(ConnClose::Unrouted);
        };
        self.verified.insert((Proto::Tcp, src));
        let mut framed = (req.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&req);
        self.tcp_bytes(conn, src, &framed)
    }

    /// Nothing is left once every peer is gone.
    pub fn assert_nothing_left_if_empty(&mut self) {
        let (peers, transports) = self.core.room_counts(&self.room).unwrap_or((0, 0));
        if peers == 0 {
            assert_eq!(transports, 0, "transports are left with no peer in the room");
            let c = self.core.counts();
            assert_eq!((c.engines, c.ufrag_routes, c.addr_routes), (0, 0, 0), "engines or routes are left: {c:?}");
            assert_eq!(self.core.poll_timeout(self.now), None, "a timer is left with no peer in the room");
        }
    }

    /// Close every peer named in `peers`, then the room; nothing may be left.
    pub fn finish(&mut self, peers: &[&str]) {
        for p in peers {
            self.close_peer(p);
        }
        self.assert_nothing_left_if_empty();
        self.core.handle_command(self.now, Command::CloseRoom { id: self.room.clone() });
        self.drain();
        let c = self.core.counts();
        assert_eq!((c.rooms, c.engines, c.ufrag_routes, c.addr_routes), (0, 0, 0, 0), "{c:?}");
        assert_eq!(self.core.poll_timeout(self.now), None);
    }
}
