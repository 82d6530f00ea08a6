//! Self-test of the browser test peer (`crates/sfu-testkit/src/peer.rs`) without the SFU.
//!
//! A tiny in-test ICE-lite str0m "server" (one UDP socket on 127.0.0.1, rtp_mode, learning
//! the remote ufrag from the first authenticated STUN request: docs/ARCHITECTURE.md, "str0m
//! and the protocol") plays the SFU's transport, on its own thread, and talks to a
//! `BrowserTransport` in both DTLS roles.
//! Everything is bounded: each test runs in well under 5 s on loopback.
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sfu_testkit::peer::{
    codec_config, ext_ids_from_json, extension_map, peek_rtp, pump_all_until, BrowserTransport,
    CodecSpec, Direction, PeerOptions, TransportParams,
};
use serde_json::{json, Value};
use str0m::config::Fingerprint;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceCreds, Input, Output, Rtc, RtcConfig};

const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";
const TOFFSET: &str = "urn:ietf:params:rtp-hdrext:toffset";

/// Chrome-like ids (also str0m's `ExtensionMap::standard()`).
const EXTS: [(u8, &str); 6] = [
    (1, AUDIO_LEVEL),
    (2, ABS_SEND_TIME),
    (3, TWCC),
    (4, MID),
    (13, VIDEO_ORIENTATION),
    (14, TOFFSET),
];

/// Hard cap on a server thread's life, whatever the test does.
const SERVER_MAX_LIFE: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------------------------------
// The in-test ICE-lite server (stand-in for one SFU transport).
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct SrvRtp {
    ssrc: u32,
    seq: u16,
    pt: u8,
    timestamp: u32,
    marker: bool,
    payload: Vec<u8>,
    audio_level: Option<i8>,
}

struct LiteServer {
    rtc: Rtc,
    local: SocketAddr,
    socket: UdpSocket,
    remote_ufrag: Option<String>,
    learned_ufrags: Vec<String>,
    next_timeout: Instant,
    received: Vec<SrvRtp>,
    keyframes: Vec<KeyframeRequest>,
    connected: bool,
    closed_by_remote: bool,
    error: Option<String>,
}

impl LiteServer {
    fn new(codecs: &[CodecSpec], exts: &[(u8, &str)]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = socket.local_addr().unwrap();
        let mut cfg = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_extension_map(extension_map(exts));
        *cfg.codec_config() = codec_config(codecs);
        let now = Instant::now();
        let rtc = cfg.build(now);
        let mut s = LiteServer {
            rtc,
            local,
            socket,
            remote_ufrag: None,
            learned_ufrags: Vec::new(),
            next_timeout: now,
            received: Vec::new(),
            keyframes: Vec::new(),
            connected: false,
            closed_by_remote: false,
            error: None,
        };
        s.tick(now);
        s.rtc.direct_api().set_ice_controlling(false);
        s.drain();
        s.rtc
            .add_local_candidate(Candidate::host(local, "udp").unwrap())
            .expect("lite host candidate");
        s.drain();
        s
    }

    /// What the SFU answers to `createTransport`. A bogus sha-1 entry comes first: the client
    /// must use only the LAST fingerprint.
    fn create_transport_response(&mut self, role: &str) -> Value {
        let ice = self.rtc.direct_api().local_ice_credentials();
        let fp = self.rtc.direct_api().local_dtls_fingerprint().to_string();
        let (alg, value) = fp.split_once(' ').unwrap();
        json!({
            "iceParameters": { "usernameFragment": ice.ufrag, "password": ice.pass, "iceLite": true },
            "iceCandidates": [
                { "foundation": "tcpcandidate", "priority": 1078862078u32, "ip": "127.0.0.1", "port": 9,
                  "protocol": "tcp", "type": "host", "tcpType": "passive" },
                { "foundation": "udpcandidate", "priority": 1078862079u32, "ip": self.local.ip().to_string(),
                  "port": self.local.port(), "protocol": "udp", "type": "host", "family": "ipv4" }
            ],
            "dtlsParameters": {
                "role": role,
                "fingerprints": [
                    { "algorithm": "sha-1", "value": "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33" },
                    { "algorithm": alg, "value": value }
                ]
            }
        })
    }

    /// Apply the client's `dtlsParameters` (createTransport for send, updateTransport for
    /// recv), with mediasoup's role rule: client "server" → we are client (active).
    fn apply_client_dtls(&mut self, dtls: &Value) {
        let role = dtls["role"].as_str().unwrap();
        let last = dtls["fingerprints"].as_array().unwrap().last().unwrap();
        let fp: Fingerprint = format!(
            "{} {}",
            last["algorithm"].as_str().unwrap(),
            last["value"].as_str().unwrap()
        )
        .parse()
        .unwrap();
        self.rtc.direct_api().set_remote_fingerprint(fp);
        self.drain();
        let active = role != "client";
        self.rtc.direct_api().start_dtls(active).unwrap();
        self.drain();
    }

    fn new_local_creds(&mut self) -> IceCreds {
        let c = IceCreds::new();
        self.rtc.direct_api().set_local_ice_credentials(c.clone());
        self.drain();
        c
    }

    fn expect_rx(&mut self, mid: &str, kind: MediaKind, ssrc: u32, rtx: Option<u32>) {
        let mid = Mid::from(mid);
        self.rtc.direct_api().declare_media(mid, kind);
        self.drain();
        self.rtc
            .direct_api()
            .expect_stream_rx(ssrc.into(), rtx.map(Ssrc::from), mid, None);
        self.drain();
    }

    fn declare_tx(&mut self, mid: &str, kind: MediaKind, ssrc: u32, rtx: Option<u32>) {
        let mid = Mid::from(mid);
        self.rtc.direct_api().declare_media(mid, kind);
        self.drain();
        self.rtc
            .direct_api()
            .declare_stream_tx(ssrc.into(), rtx.map(Ssrc::from), mid, None);
        self.drain();
    }

    fn write_rtp(&mut self, ssrc: u32, pt: u8, seq: u64, ts: u32, marker: bool, payload: &[u8]) {
        let now = Instant::now();
        self.rtc
            .direct_api()
            .stream_tx(&ssrc.into())
            .unwrap()
            .write_rtp(
                RtpWrite::new(
                    Pt::new_with_value(pt),
                    seq.into(),
                    ts,
                    now,
                    payload.to_vec(),
                )
                .marker(marker)
                .nackable(true),
            );
        self.drain();
        self.tick(now);
    }

    fn request_keyframe(&mut self, ssrc: u32) {
        self.rtc
            .direct_api()
            .stream_rx(&ssrc.into())
            .unwrap()
            .request_keyframe(KeyframeRequestKind::Pli);
        self.drain();
        self.tick(Instant::now());
    }

    fn tick(&mut self, now: Instant) {
        if self.error.is_none() {
            self.rtc.handle_input(Input::Timeout(now)).unwrap();
            self.drain();
        }
    }

    fn handle_datagram(&mut self, src: SocketAddr, buf: &[u8]) {
        if self.error.is_some() {
            return;
        }
        // ICE-lite: learn the remote ufrag from an authenticated binding request
        // (docs/ARCHITECTURE.md, "str0m and the protocol").
        if buf.len() >= 20 && buf[0] < 2 {
            if let Ok(msg) = str0m::ice::StunMessage::parse(buf) {
                if msg.is_binding_request() {
                    if let Some((local, remote)) = msg.split_username() {
                        let mine = self.rtc.direct_api().local_ice_credentials();
                        if local == mine.ufrag && self.remote_ufrag.as_deref() != Some(remote) {
                            let hmac = str0m::crypto::from_feature_flags().sha1_hmac_provider;
                            if msg.verify(mine.pass.as_bytes(), |k, p| hmac.sha1_hmac(k, p)) {
                                let remote = remote.to_string();
                                self.rtc.direct_api().set_remote_ice_credentials(IceCreds {
                                    ufrag: remote.clone(),
                                    pass: "unused-in-ice-lite".into(),
                                });
                                self.drain();
                                self.learned_ufrags.push(remote.clone());
                                self.remote_ufrag = Some(remote);
                            }
                        }
                    }
                }
            }
        }
        let Ok(r) = Receive::new(Protocol::Udp, src, self.local, buf) else {
            return;
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(Instant::now(), r)) {
            self.error = Some(e.to_string());
            return;
        }
        self.drain();
    }

    fn drain(&mut self) {
        for _ in 0..100_000 {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(Event::RtpPacket(p))) => self.received.push(SrvRtp {
                    ssrc: *p.header.ssrc,
                    seq: p.header.sequence_number,
                    pt: *p.header.payload_type,
                    timestamp: p.header.timestamp,
                    marker: p.header.marker,
                    payload: p.payload.to_vec(),
                    audio_level: p.header.ext_vals.audio_level,
                }),
                Ok(Output::Event(Event::KeyframeRequest(k))) => self.keyframes.push(k),
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::Closed)) => self.closed_by_remote = true,
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    self.error = Some(e.to_string());
                    return;
                }
            }
        }
        panic!("lite server: drain did not reach a Timeout");
    }
}

/// The server on its own thread (like the SFU would be). Access it with `with`.
struct ServerHandle {
    inner: Arc<Mutex<LiteServer>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    fn start(codecs: &[CodecSpec], exts: &[(u8, &str)]) -> Self {
        let server = LiteServer::new(codecs, exts);
        let socket = server.socket.try_clone().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let inner = Arc::new(Mutex::new(server));
        let stop = Arc::new(AtomicBool::new(false));
        let (i2, s2) = (inner.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + SERVER_MAX_LIFE;
            let mut buf = vec![0u8; 2048];
            while !s2.load(Ordering::Relaxed) && Instant::now() < end {
                // Block on the socket without holding the lock.
                let got = socket.recv_from(&mut buf).ok();
                let mut s = i2.lock().unwrap();
                if let Some((n, src)) = got {
                    s.handle_datagram(src, &buf[..n]);
                }
                let now = Instant::now();
                if now >= s.next_timeout {
                    s.tick(now);
                }
            }
        });
        ServerHandle {
            inner,
            stop,
            thread: Some(thread),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut LiteServer) -> R) -> R {
        f(&mut self.inner.lock().unwrap())
    }

    fn connected(&self) -> bool {
        self.with(|s| s.connected && s.rtc.is_connected())
    }

    fn received_seqs(&self, ssrc: u32) -> BTreeMap<u16, SrvRtp> {
        self.with(|s| {
            s.received
                .iter()
                .filter(|r| r.ssrc == ssrc)
                .map(|r| (r.seq, r.clone()))
                .collect()
        })
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

fn room_codecs() -> Vec<CodecSpec> {
    vec![CodecSpec::opus(100), CodecSpec::vp8(101, Some(102))]
}

fn browser_codecs() -> Vec<CodecSpec> {
    vec![CodecSpec::opus(111), CodecSpec::vp8(96, Some(97))]
}

fn payload(ssrc: u32, seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 7 + seq * 13 + ssrc as u64) as u8)
        .collect()
}

/// Send transport up: createTransport(send, dtls role server) → answer role client.
fn connect_send(opts: PeerOptions) -> (ServerHandle, BrowserTransport) {
    let codecs = browser_codecs();
    let server = ServerHandle::start(&codecs, &EXTS);
    let mut peer = BrowserTransport::with_options(Direction::Send, &codecs, &EXTS, opts);
    let dtls = peer.dtls_parameters();
    assert_eq!(dtls["role"], "server");
    let resp = server.with(|s| {
        s.apply_client_dtls(&dtls);
        s.create_transport_response("client")
    });
    let params = TransportParams::from_json(&resp).unwrap();
    assert_eq!(params.server_role, "client");
    assert_eq!(
        params.fingerprint_algorithm, "sha-256",
        "must take the LAST fingerprint"
    );
    assert_eq!(
        params.candidates,
        vec![server.with(|s| s.local)],
        "tcp candidate must be skipped"
    );
    peer.connect(&params);
    assert!(
        peer.pump_until(Duration::from_secs(3), |p| p.is_connected()),
        "send peer not connected: {:?} {:?}",
        peer,
        peer.events_seen()
    );
    assert!(
        peer.pump_until(Duration::from_secs(1), |_| server.connected()),
        "server not connected"
    );
    (server, peer)
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[test]
fn send_transport_delivers_rtp_and_answers_nack_and_pli() {
    let t0 = Instant::now();
    let (server, mut peer) = connect_send(PeerOptions::default());
    assert!(
        peer.was_connected() && peer.is_alive(),
        "{:?}",
        peer.events_seen()
    );
    assert!(server.with(|s| s.learned_ufrags.len()) == 1);
    assert_eq!(
        server.with(|s| s.remote_ufrag.clone()).unwrap(),
        peer.local_ice_credentials().ufrag
    );

    // Producers: audio mid "0", video mid "1" (Chrome transceiver mids). Server mids differ.
    let (a_ssrc, v_ssrc, v_rtx) = (1111u32, 2222u32, 2223u32);
    peer.add_send_stream("0", "audio", a_ssrc, None);
    peer.add_send_stream("1", "video", v_ssrc, Some(v_rtx));
    server.with(|s| {
        s.expect_rx("pa", MediaKind::Audio, a_ssrc, None);
        s.expect_rx("pv", MediaKind::Video, v_ssrc, Some(v_rtx));
    });

    // Lose video seq 20 on the way to the server: the server NACKs, our RTX repairs it.
    peer.drop_next_outgoing_rtp_with_seq(v_ssrc, 20);
    for i in 1..=40u64 {
        peer.send_rtp(
            v_ssrc,
            96,
            i,
            (i * 3000) as u32,
            i.is_multiple_of(5),
            &payload(v_ssrc, i, 1000),
        );
        if i <= 20 {
            let ext = ExtensionValues {
                audio_level: Some(-30),
                voice_activity: Some(true),
                ..Default::default()
            };
            peer.send_rtp_ext(
                a_ssrc,
                111,
                i,
                (i * 960) as u32,
                i == 1,
                &payload(a_ssrc, i, 80),
                ext,
            );
        }
        peer.pump(Duration::from_millis(2));
    }
    let ok = peer.pump_until(Duration::from_secs(2), |_| {
        server.received_seqs(v_ssrc).len() == 40
    });
    let video = server.received_seqs(v_ssrc);
    assert!(
        ok,
        "server got video seqs {:?}",
        video.keys().collect::<Vec<_>>()
    );
    for (seq, r) in &video {
        let i = *seq as u64;
        assert_eq!(r.pt, 96);
        assert_eq!(r.timestamp, (i * 3000) as u32);
        assert_eq!(r.marker, i.is_multiple_of(5));
        assert_eq!(
            r.payload,
            payload(v_ssrc, i, 1000),
            "video payload seq {seq}"
        );
    }
    assert_eq!(
        peer.datagram_counters().3,
        1,
        "exactly one outgoing datagram dropped"
    );
    let audio = server.received_seqs(a_ssrc);
    assert_eq!(audio.len(), 20);
    for (seq, r) in &audio {
        assert_eq!(r.pt, 111);
        assert_eq!(r.payload, payload(a_ssrc, *seq as u64, 80));
        assert_eq!(
            r.audio_level,
            Some(-30),
            "audio-level ext (id 1) must survive"
        );
    }

    // SFU asks the producer for a key frame.
    server.with(|s| s.request_keyframe(v_ssrc));
    assert!(
        peer.pump_until(Duration::from_secs(1), |p| p.keyframe_requests_for("1")
            >= 1),
        "{:?}",
        peer.events_seen()
    );
    assert_eq!(peer.keyframe_requests_for("0"), 0);

    // Killed tab: nothing reaches the server any more.
    let before = server.with(|s| s.received.len());
    let (_, sent_before, _, _) = peer.datagram_counters();
    peer.go_silent();
    for i in 41..=50u64 {
        peer.send_rtp(
            v_ssrc,
            96,
            i,
            (i * 3000) as u32,
            false,
            &payload(v_ssrc, i, 500),
        );
    }
    peer.pump(Duration::from_millis(100));
    assert_eq!(server.with(|s| s.received.len()), before);
    assert_eq!(
        peer.datagram_counters().1,
        sent_before,
        "silent peer sent datagrams"
    );
    assert!(server.with(|s| s.error.clone()).is_none());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn recv_transport_receives_rtp_repairs_loss_and_sends_pli() {
    let t0 = Instant::now();
    let codecs = room_codecs();
    let server = ServerHandle::start(&codecs, &EXTS);
    let mut peer = BrowserTransport::new(Direction::Recv, &codecs, &EXTS);

    // createTransport(recv) without dtlsParameters → answer role "auto".
    let resp = server.with(|s| s.create_transport_response("auto"));
    // The ABI may wrap responses; the parser accepts that too.
    let params = TransportParams::from_json(&json!({"ok": true, "data": resp})).unwrap();
    assert_eq!(params.server_role, "auto");
    peer.connect(&params);
    // updateTransport with the browser's role "client".
    let dtls = peer.dtls_parameters();
    assert_eq!(dtls["role"], "client");
    server.with(|s| s.apply_client_dtls(&dtls));

    // Consumers (server-chosen ssrcs), declared on the peer before the server sends.
    let (v_ssrc, v_rtx, a_ssrc) = (5001u32, 5002u32, 6001u32);
    let consumer = json!({"id": 12345678, "kind": "video",
        "rtpParameters": {"encodings": [{"ssrc": v_ssrc, "rtx": {"ssrc": v_rtx}}]}});
    assert_eq!(
        peer.add_recv_stream_from_consumer(&consumer).unwrap(),
        v_ssrc
    );
    peer.add_recv_stream("a87654321", "audio", a_ssrc, None);
    server.with(|s| {
        s.declare_tx("c1", MediaKind::Video, v_ssrc, Some(v_rtx));
        s.declare_tx("c2", MediaKind::Audio, a_ssrc, None);
    });

    assert!(
        peer.pump_until(Duration::from_secs(3), |p| p.is_connected()),
        "recv peer not connected: {:?} {:?}",
        peer,
        peer.events_seen()
    );
    assert!(
        peer.pump_until(Duration::from_secs(1), |_| server.connected()),
        "server not connected"
    );

    // Loss on the way to the browser: seq 10 dropped once; str0m NACKs, server RTX repairs.
    peer.drop_next_rtp_with_seq(v_ssrc, 10);
    for i in 1..=30u64 {
        server.with(|s| {
            s.write_rtp(
                v_ssrc,
                101,
                i,
                (i * 3000) as u32,
                i.is_multiple_of(3),
                &payload(v_ssrc, i, 1100),
            );
            if i <= 20 {
                s.write_rtp(
                    a_ssrc,
                    100,
                    1000 + i,
                    (i * 960) as u32,
                    false,
                    &payload(a_ssrc, i, 60),
                );
            }
        });
        peer.pump(Duration::from_millis(2));
    }
    let ok = peer.pump_until(Duration::from_secs(2), |p| {
        let mut v: Vec<u16> = p.received_for(v_ssrc).iter().map(|r| r.seq).collect();
        v.sort();
        v.dedup();
        v.len() == 30 && p.received_for(a_ssrc).len() == 20
    });
    assert!(
        ok,
        "peer got {:?}",
        peer.received()
            .iter()
            .map(|r| (r.ssrc, r.seq))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        peer.datagram_counters().2,
        1,
        "exactly one incoming datagram dropped"
    );
    for r in peer.received_for(v_ssrc) {
        let i = r.seq as u64;
        assert_eq!(r.pt, 101);
        assert_eq!(r.ext_seq, i);
        assert_eq!(r.timestamp, (i * 3000) as u32);
        assert_eq!(r.marker, i.is_multiple_of(3));
        assert_eq!(
            r.payload,
            payload(v_ssrc, i, 1100),
            "video payload seq {}",
            r.seq
        );
    }
    // The repaired packet arrives after its successors.
    let order: Vec<u16> = peer.received_for(v_ssrc).iter().map(|r| r.seq).collect();
    assert!(
        order.iter().position(|s| *s == 10) > order.iter().position(|s| *s == 11),
        "{order:?}"
    );
    for r in peer.received_for(a_ssrc) {
        let i = r.seq as u64 - 1000;
        assert_eq!(r.pt, 100);
        assert_eq!(r.payload, payload(a_ssrc, i, 60));
    }

    // The browser consumer asks for a key frame.
    peer.request_keyframe(v_ssrc);
    let ok = peer.pump_until(Duration::from_secs(1), |_| {
        server.with(|s| !s.keyframes.is_empty())
    });
    assert!(ok, "server saw no PLI");
    let kf = server.with(|s| s.keyframes[0]);
    assert_eq!(kf.mid, Mid::from("c1"));
    assert_eq!(kf.kind, KeyframeRequestKind::Pli);
    assert!(peer.is_alive(), "{:?}", peer.error());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn ice_restart_switches_credentials_and_keeps_media() {
    let t0 = Instant::now();
    // Keepalive checks every 300 ms so the new credentials are used quickly.
    let opts = PeerOptions {
        max_stun_rto: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let (server, mut peer) = connect_send(opts);
    peer.add_send_stream("0", "video", 3333, Some(3334));
    server.with(|s| s.expect_rx("pv", MediaKind::Video, 3333, Some(3334)));

    let old_ufrag = peer.local_ice_credentials().ufrag;
    // restartTransport: the SFU makes new credentials and returns {iceParameters}.
    let new = server.with(|s| s.new_local_creds());
    let resp = json!({"iceParameters": {"usernameFragment": new.ufrag, "password": new.pass, "iceLite": true}});
    peer.restart_ice_from_json(&resp).unwrap();
    let new_ufrag = peer.local_ice_credentials().ufrag;
    assert_ne!(old_ufrag, new_ufrag);
    assert_eq!(peer.remote_params().unwrap().ufrag, new.ufrag);

    let ok = peer.pump_until(Duration::from_secs(3), |_| {
        server.with(|s| s.remote_ufrag.as_deref() == Some(new_ufrag.as_str()))
    });
    assert!(
        ok,
        "server never saw the new ufrag: {:?}",
        server.with(|s| s.learned_ufrags.clone())
    );
    for i in 1..=10u64 {
        peer.send_rtp(
            3333,
            96,
            i,
            (i * 3000) as u32,
            false,
            &payload(3333, i, 300),
        );
    }
    assert!(
        peer.pump_until(Duration::from_secs(1), |_| server.received_seqs(3333).len()
            == 10)
    );
    assert!(peer.is_connected() && server.connected());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn wrong_fingerprint_fails_dtls() {
    let codecs = browser_codecs();
    let server = ServerHandle::start(&codecs, &EXTS);
    let other = ServerHandle::start(&codecs, &EXTS);
    let mut peer = BrowserTransport::new(Direction::Send, &codecs, &EXTS);
    let dtls = peer.dtls_parameters();
    let mut resp = server.with(|s| {
        s.apply_client_dtls(&dtls);
        s.create_transport_response("client")
    });
    // Announce somebody else's certificate.
    resp["dtlsParameters"] =
        other.with(|s| s.create_transport_response("client"))["dtlsParameters"].clone();
    peer.connect(&TransportParams::from_json(&resp).unwrap());
    let failed = peer.pump_until(Duration::from_secs(3), |p| !p.is_alive());
    assert!(
        failed,
        "peer accepted a wrong fingerprint: {:?}",
        peer.events_seen()
    );
    assert!(!peer.is_connected());
    assert!(peer.error().is_some());
}

#[test]
fn parsing_and_dtls_parameters() {
    // dtls_parameters: sha-256, 32 upper-case hex bytes, colon separated.
    let peer = BrowserTransport::new(Direction::Send, &browser_codecs(), &EXTS);
    let d = peer.dtls_parameters();
    assert_eq!(d["role"], "server");
    assert_eq!(d["fingerprints"].as_array().unwrap().len(), 1);
    assert_eq!(d["fingerprints"][0]["algorithm"], "sha-256");
    let v = d["fingerprints"][0]["value"].as_str().unwrap();
    let parts: Vec<&str> = v.split(':').collect();
    assert_eq!(parts.len(), 32, "{v}");
    assert!(parts.iter().all(|p| p.len() == 2
        && p.chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))));
    assert_eq!(peer.local_addr().ip().to_string(), "127.0.0.1");
    let recv = BrowserTransport::new(Direction::Recv, &room_codecs(), &[]);
    assert_eq!(recv.dtls_parameters()["role"], "client");

    // TransportParams errors.
    let good = json!({
        "iceParameters": {"usernameFragment": "uf", "password": "pw", "iceLite": true},
        "iceCandidates": [{"ip": "127.0.0.1", "port": 40000, "protocol": "udp"}],
        "dtlsParameters": {"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": "AB:CD"}]}
    });
    let p = TransportParams::from_json(&good).unwrap();
    assert_eq!(
        (p.ufrag.as_str(), p.pwd.as_str(), p.ice_lite),
        ("uf", "pw", true)
    );
    assert_eq!(p.candidates, vec!["127.0.0.1:40000".parse().unwrap()]);
    assert_eq!(
        (
            p.fingerprint_algorithm.as_str(),
            p.fingerprint_value.as_str()
        ),
        ("sha-256", "AB:CD")
    );
    for broken in [
        "/iceParameters",
        "/iceCandidates",
        "/dtlsParameters",
        "/dtlsParameters/role",
    ] {
        let mut b = good.clone();
        let (parent, key) = broken.rsplit_once('/').unwrap();
        let obj = if parent.is_empty() {
            &mut b
        } else {
            b.pointer_mut(parent).unwrap()
        };
        obj.as_object_mut().unwrap().remove(key);
        assert!(
            TransportParams::from_json(&b).is_err(),
            "missing {broken} accepted"
        );
    }
    let mut b = good.clone();
    b["iceCandidates"][0]["protocol"] = json!("tcp");
    let tcp_only = TransportParams::from_json(&b).expect("a TCP candidate is usable (ICE-TCP mode)");
    assert!(tcp_only.candidates.is_empty() && tcp_only.tcp_candidates.len() == 1);
    let mut b = good.clone();
    b["iceCandidates"][0]["protocol"] = json!("sctp");
    assert!(TransportParams::from_json(&b).is_err(), "no usable candidate accepted");
    let mut b = good.clone();
    b["dtlsParameters"]["fingerprints"][0]["value"] = json!("XY:ZZ");
    assert!(TransportParams::from_json(&b).is_err(), "bad hex accepted");

    // JSON helpers: room capabilities → PT table / ext ids.
    let caps = json!({
        "codecs": [
            {"kind": "audio", "name": "opus", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2, "preferredPayloadType": 100},
            {"kind": "video", "name": "VP8", "mimeType": "video/VP8", "clockRate": 90000, "preferredPayloadType": 101},
            {"kind": "video", "name": "rtx", "mimeType": "video/rtx", "clockRate": 90000, "preferredPayloadType": 102, "parameters": {"apt": 101}},
            {"kind": "video", "name": "H264", "mimeType": "video/H264", "clockRate": 90000, "preferredPayloadType": 103,
             "parameters": {"packetization-mode": 1}},
            {"kind": "video", "name": "rtx", "mimeType": "video/rtx", "clockRate": 90000, "preferredPayloadType": 104, "parameters": {"apt": 103}}
        ],
        "headerExtensions": [
            {"kind": "audio", "uri": AUDIO_LEVEL, "preferredId": 1},
            {"kind": "audio", "uri": ABS_SEND_TIME, "preferredId": 3},
            {"kind": "video", "uri": ABS_SEND_TIME, "preferredId": 3},
            {"kind": "video", "uri": "urn:example:unknown", "preferredId": 9}
        ]
    });
    let c = CodecSpec::list_from_json(&caps);
    let summary: Vec<(u8, Option<u8>, &str, String)> = c
        .iter()
        .map(|c| (c.pt, c.rtx_pt, c.kind, c.name.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (100, None, "audio", "opus".to_string()),
            (101, Some(102), "video", "VP8".to_string()),
            (103, Some(104), "video", "H264".to_string())
        ]
    );
    let e = ext_ids_from_json(&caps);
    assert_eq!(e.len(), 3); // abs-send-time listed once
                            // Builds an Rtc with H264 and an unknown URI (skipped) without trouble.
    let _p = BrowserTransport::new(Direction::Recv, &c, &sfu_testkit::peer::ext_refs(&e));

    assert_eq!(
        peek_rtp(&[0x80, 96, 0, 7, 0, 0, 0, 0, 0, 0, 0x08, 0xAE]),
        Some((2222, 7, 96))
    );
    assert_eq!(
        peek_rtp(&[0x80, 200, 0, 7, 0, 0, 0, 0, 0, 0, 0x08, 0xAE]),
        None,
        "RTCP SR"
    );
    assert_eq!(
        peek_rtp(&[0x00, 0x01, 0, 7, 0, 0, 0, 0, 0, 0, 0x08, 0xAE]),
        None,
        "STUN"
    );
}

#[test]
fn two_peers_pumped_together_then_graceful_close() {
    let t0 = Instant::now();
    let (bc, rc) = (browser_codecs(), room_codecs());
    let send_srv = ServerHandle::start(&bc, &EXTS);
    let recv_srv = ServerHandle::start(&rc, &EXTS);
    let mut send = BrowserTransport::new(Direction::Send, &bc, &EXTS);
    let mut recv = BrowserTransport::new(Direction::Recv, &rc, &EXTS);

    let d = send.dtls_parameters();
    let resp = send_srv.with(|s| {
        s.apply_client_dtls(&d);
        s.create_transport_response("client")
    });
    send.connect(&TransportParams::from_json(&resp).unwrap());
    let resp = recv_srv.with(|s| s.create_transport_response("auto"));
    recv.connect(&TransportParams::from_json(&resp).unwrap());
    let d = recv.dtls_parameters();
    recv_srv.with(|s| s.apply_client_dtls(&d));

    let ok = pump_all_until(&mut [&mut send, &mut recv], Duration::from_secs(3), |ps| {
        ps.iter().all(|p| p.is_connected()) && send_srv.connected() && recv_srv.connected()
    });
    assert!(ok, "{:?} / {:?}", send.events_seen(), recv.events_seen());

    // pc.close(): the server sees the DTLS close_notify.
    send.close_graceful();
    assert!(!send.is_alive());
    let ok = recv.pump_until(Duration::from_secs(1), |_| {
        send_srv.with(|s| s.closed_by_remote)
    });
    assert!(ok, "server did not see the close");
    assert!(recv.is_connected() && !recv_srv.with(|s| s.closed_by_remote));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
}
