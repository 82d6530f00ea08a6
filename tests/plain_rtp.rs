//! mediasoup v2's server-side features through real sockets: RTP streamers (a
//! producer's media as plain RTP to a recorder, played here by a UDP socket), plain RTP
//! transports (a non-browser publisher, played by a UDP socket, consumed by a str0m
//! browser stand-in), audio levels and the active speaker. ffmpeg and GStreamer run
//! against the same code in the end-to-end tests. Every wait is bounded.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::EventKind;
use sfu_testkit::builders::{producer_params, CHROME_AUDIO_EXTS, CHROME_VIDEO_EXTS};
use sfu_testkit::harness::Harness;
use sfu_testkit::peer::{ext_ids_from_json, ext_refs, BrowserTransport, CodecSpec, Direction, TransportParams};
use str0m::rtp::ExtensionValues;

const R: &str = "plain";
const V_SSRC: u32 = 71_000;
const A_SSRC: u32 = 71_010;

fn vp8(i: u64) -> Vec<u8> {
    let mut p = vec![0x10, if i == 1 { 0x00 } else { 0x01 }];
    p.extend_from_slice(&i.to_be_bytes());
    p.extend((0..300u64).map(|k| ((i * 17 + k) % 251) as u8));
    p
}

fn index_of(p: &[u8]) -> u64 {
    u64::from_be_bytes(p[2..10].try_into().unwrap())
}

/// A recorder's sockets: RTP on `port`, RTCP on `port + 1`.
struct Recorder {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Recorder {
    fn new() -> Recorder {
        for _ in 0..50 {
            let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = rtp.local_addr().unwrap().port();
            if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port.wrapping_add(1))) {
                rtp.set_nonblocking(true).unwrap();
                rtcp.set_nonblocking(true).unwrap();
                return Recorder { rtp, rtcp };
            }
        }
        panic!("no pair of free ports");
    }

    fn port(&self) -> u16 {
        self.rtp.local_addr().unwrap().port()
    }

    /// Everything waiting on (rtp, rtcp).
    fn read(&self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut buf = [0u8; 2048];
        let mut get = |s: &UdpSocket| {
            let mut v = Vec::new();
            while let Ok(n) = s.recv(&mut buf) {
                v.push(buf[..n].to_vec());
            }
            v
        };
        (get(&self.rtp), get(&self.rtcp))
    }
}

struct Fx {
    h: Harness,
    caps: Value,
    alice: BrowserTransport,
    next: u64,
}

impl Fx {
    /// alice produces audio (with levels) and VP8.
    fn new(config: &str) -> Fx {
        let h = Harness::new(Some(config));
        h.server.create_room(R, None).unwrap();
        let caps = h.join(R, "alice")["rtpCapabilities"].clone();
        let exts: Vec<(u8, &str)> = CHROME_VIDEO_EXTS.iter().chain(CHROME_AUDIO_EXTS).copied().collect();
        let mut alice = BrowserTransport::new(Direction::Send, &[CodecSpec::opus(111), CodecSpec::vp8(96, Some(97))], &exts);
        let r = h
            .request(R, "alice", json!({"method": "createTransport", "id": 1, "direction": "send", "options": {},
                "dtlsParameters": alice.dtls_parameters()}))
            .unwrap();
        alice.connect(&TransportParams::from_json(&r).unwrap());
        for (id, kind, mid, ssrc) in [(1, "audio", "0", A_SSRC), (2, "video", "1", V_SSRC)] {
            let rtx = (kind == "video").then_some(V_SSRC + 1);
            h.request(R, "alice", json!({"method": "createProducer", "id": id, "kind": kind, "transportId": 1,
                "rtpParameters": producer_params(kind, mid, ssrc, rtx), "paused": false}))
                .unwrap();
            alice.add_send_stream(mid, kind, ssrc, rtx);
        }
        let mut fx = Fx { h, caps, alice, next: 1 };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !fx.alice.is_connected() {
            assert!(Instant::now() < deadline, "alice connects");
            fx.alice.pump(Duration::from_millis(5));
        }
        fx
    }

    /// `n` video packets, 10 ms apart (`level`: also an audio packet at that level).
    fn send(&mut self, n: u64, level: Option<i8>) {
        for _ in 0..n {
            let i = self.next;
            self.next += 1;
            self.alice.send_rtp(V_SSRC, 96, i, (i * 3000) as u32, true, &vp8(i));
            if let Some(l) = level {
                let ext = ExtensionValues { audio_level: Some(l), voice_activity: Some(true), ..Default::default() };
                self.alice.send_rtp_ext(A_SSRC, 111, i, (i * 960) as u32, false, &[0xAB; 60], ext);
            }
            self.alice.pump(Duration::from_millis(10));
        }
    }
}

fn rtp_of(p: &[u8]) -> (u8, u16, u32, u32) {
    (p[1] & 0x7f, u16::from_be_bytes([p[2], p[3]]), u32::from_be_bytes([p[4], p[5], p[6], p[7]]), u32::from_be_bytes([p[8], p[9], p[10], p[11]]))
}

const LOCAL: &str = r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1"}"#;

#[test]
fn a_streamer_sends_a_report_first_then_contiguous_rtp_and_a_bye_at_the_end() {
    let mut fx = Fx::new(LOCAL);
    let rec = Recorder::new();
    let plis0 = fx.alice.keyframe_requests_for("1");
    let r = fx
        .h
        .host_request(R, json!({"method": "createRtpStreamer", "peerName": "alice", "producerId": 2,
            "remoteIp": "127.0.0.1", "remotePort": rec.port()}))
        .unwrap();
    let ssrc = r["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
    let pt = r["rtpParameters"]["codecs"][0]["payloadType"].as_u64().unwrap() as u8;
    assert!(r["rtpParameters"]["encodings"][0]["rtx"].is_null(), "no RTX toward a recorder");
    let sdp = r["sdp"].as_str().unwrap();
    assert!(sdp.contains(&format!("m=video {} RTP/AVP {pt}", rec.port())), "{sdp}");
    assert!(sdp.contains(&format!("a=rtpmap:{pt} VP8/90000")), "{sdp}");
    assert!(sdp.contains("c=IN IP4 127.0.0.1"), "{sdp}");
    assert_eq!(r["localIp"], "127.0.0.1");
    fx.send(40, None);
    fx.alice.pump(Duration::from_millis(100));
    assert!(fx.alice.keyframe_requests_for("1") > plis0, "a keyframe is requested when the streamer starts");
    let (rtp, rtcp) = rec.read();
    assert_eq!(rtp.len(), 40, "every packet");
    assert_eq!(rtcp.first().map(|p| p[1]), Some(200), "a sender report first");
    let mut seqs = Vec::new();
    for p in &rtp {
        let (ppt, seq, _, s) = rtp_of(p);
        assert_eq!((ppt, s), (pt, ssrc));
        let i = index_of(&p[12..]);
        assert_eq!(&p[12..], &vp8(i)[..], "payload {i} intact");
        seqs.push(seq);
    }
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "contiguous numbering");
    }
    // Reports go on every second.
    fx.send(150, None);
    let (_, rtcp) = rec.read();
    assert!(rtcp.iter().filter(|p| p[1] == 200).count() >= 1, "periodic sender reports");
    // A PLI from the recorder reaches alice.
    let plis = fx.alice.keyframe_requests_for("1");
    let mut pli = vec![0x81, 206, 0, 2, 0, 0, 0, 1];
    pli.extend_from_slice(&ssrc.to_be_bytes());
    let sfu_port = fx.caps_port();
    rec.rtcp.send_to(&pli, ("127.0.0.1", sfu_port)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while fx.alice.keyframe_requests_for("1") == plis && Instant::now() < deadline {
        fx.send(1, None);
    }
    assert!(fx.alice.keyframe_requests_for("1") > plis, "the recorder's PLI reached the producer");
    let id = r["streamerId"].as_u64().unwrap();
    fx.h.host_request(R, json!({"method": "closeRtpStreamer", "streamerId": id})).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (_, rtcp) = rec.read();
    assert!(rtcp.iter().any(|p| p.len() >= 12 && p[9] == 203), "a BYE at the end");
    fx.send(10, None);
    assert!(rec.read().0.is_empty(), "nothing after the BYE");
    let e = fx.h.host_request(R, json!({"method": "closeRtpStreamer", "streamerId": id})).unwrap_err();
    assert!(e.contains("not found"), "{e}");
}

impl Fx {
    /// The SFU's UDP port (from a candidate).
    fn caps_port(&self) -> u16 {
        self.h.server.ports()[0]
    }
}

#[test]
fn closing_the_producer_closes_its_streamers_with_a_bye_and_a_host_event() {
    let mut fx = Fx::new(LOCAL);
    let rec = Recorder::new();
    let r = fx
        .h
        .host_request(R, json!({"method": "createRtpStreamer", "producerId": 2, "remoteIp": "127.0.0.1",
            "remotePort": rec.port(), "remoteRtcpPort": rec.port() + 1}))
        .unwrap();
    fx.send(5, None);
    fx.h.notify(R, "alice", json!({"method": "closeProducer", "notification": true, "id": 2}));
    let ev = fx.h.wait_host_event("rtpStreamerClosed", Duration::from_secs(3)).expect("rtpStreamerClosed");
    assert_eq!(ev.json["streamerId"], r["streamerId"]);
    assert_eq!(ev.peer, "");
    std::thread::sleep(Duration::from_millis(100));
    assert!(rec.read().1.iter().any(|p| p.len() >= 12 && p[9] == 203), "BYE");
}

#[test]
fn host_request_errors_are_clear_and_leave_nothing_behind() {
    let fx = Fx::new(r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1","maxRtpStreamersPerRoom":1}"#);
    let rec = Recorder::new();
    let req = |v: Value| fx.h.host_request(R, v);
    let cases = [
        (json!({"method": "createRtpStreamer", "producerId": 99, "remoteIp": "127.0.0.1", "remotePort": 5000}), "producer not found"),
        (json!({"method": "createRtpStreamer", "peerName": "bob", "producerId": 2, "remoteIp": "127.0.0.1", "remotePort": 5000}), "producer not found"),
        (json!({"method": "createRtpStreamer", "producerId": 2, "remoteIp": "300.1.2.3", "remotePort": 5000}), "remoteIp"),
        (json!({"method": "createRtpStreamer", "producerId": 2, "remoteIp": "127.0.0.1", "remotePort": 0}), "remotePort"),
        (json!({"method": "createRtpStreamer", "producerId": 2, "remoteIp": "127.0.0.1", "remotePort": 65536}), "remotePort"),
        (json!({"method": "createRtpStreamer", "producerId": 2, "remoteIp": "127.0.0.1"}), "missing field `remotePort`"),
        (json!({"method": "enableAudioLevels", "thresholdDbov": 3}), "thresholdDbov"),
        (json!({"method": "dance"}), "unknown host method"),
    ];
    for (r, want) in cases {
        let e = req(r.clone()).unwrap_err();
        assert!(e.contains(want), "{r}: {e}");
    }
    let ok = json!({"method": "createRtpStreamer", "producerId": 2, "remoteIp": "127.0.0.1", "remotePort": rec.port()});
    req(ok.clone()).unwrap();
    let e = req(ok).unwrap_err();
    assert!(e.contains("exists"), "duplicate: {e}");
    let e = req(json!({"method": "createRtpStreamer", "producerId": 1, "remoteIp": "127.0.0.1", "remotePort": 6000})).unwrap_err();
    assert!(e.contains("too many RTP streamers"), "{e}");
    let e = fx.h.host_request("no-such-room", json!({"method": "disableAudioLevels"})).unwrap_err();
    assert_eq!(e, "room not found");
    assert!(fx.h.host_events().is_empty(), "no host event from bad requests");
}

#[test]
fn a_plain_rtp_publisher_reaches_a_browser_and_nothing_else_gets_in() {
    let fx = Fx::new(LOCAL);
    let h = &fx.h;
    let caps = fx.caps.clone();
    // bob is a non-browser publisher: RTP from one port, RTCP from the next.
    h.join(R, "bob");
    let pub_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = pub_rtp.local_addr().unwrap().port();
    let pub_rtcp = UdpSocket::bind(("127.0.0.1", port + 1)).unwrap();
    pub_rtcp.set_nonblocking(true).unwrap();
    let r = h
        .request(R, "bob", json!({"method": "createTransport", "id": 5, "direction": "send",
            "plainRtpParameters": {"ip": "127.0.0.1", "port": port}}))
        .unwrap();
    let sfu: SocketAddr = format!("{}:{}", r["plainRtpParameters"]["ip"].as_str().unwrap(), r["plainRtpParameters"]["port"]).parse().unwrap();
    let mut params = producer_params("video", "v", 9000, None);
    params["codecs"][0]["payloadType"] = json!(101);
    params["headerExtensions"] = json!([]);
    h.request(R, "bob", json!({"method": "createProducer", "id": 7, "kind": "video", "transportId": 5, "rtpParameters": params}))
        .unwrap();
    // carol (a browser) consumes it.
    let joined = h.join(R, "carol");
    let bob_peer = joined["peers"].as_array().unwrap().iter().find(|p| p["name"] == "bob").unwrap().clone();
    let nc = bob_peer["consumers"][0].clone();
    let e = ext_ids_from_json(&caps);
    let mut carol = BrowserTransport::new(Direction::Recv, &CodecSpec::list_from_json(&caps), &ext_refs(&e));
    let r = h.request(R, "carol", json!({"method": "createTransport", "id": 2, "direction": "recv", "options": {}})).unwrap();
    carol.connect(&TransportParams::from_json(&r).unwrap());
    h.notify(R, "carol", json!({"method": "updateTransport", "notification": true, "id": 2, "dtlsParameters": carol.dtls_parameters()}));
    let cssrc = carol.add_recv_stream_from_consumer(&nc).unwrap();
    h.request(R, "carol", json!({"method": "enableConsumer", "id": nc["id"], "transportId": 2, "paused": false})).unwrap();
    assert!(carol.pump_until(Duration::from_secs(15), |c| c.is_connected()));
    let packet = |seq: u16, ssrc: u32, i: u64| {
        let mut p = vec![0x80, 0x80 | 101];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&((i * 3000) as u32).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend(vp8(i));
        p
    };
    let intruder = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 1..=50u64 {
        // The sequence numbers wrap in the middle.
        pub_rtp.send_to(&packet(65_510u16.wrapping_add(i as u16), 9000, i), sfu).unwrap();
        // The same SSRC from an address the client did not declare: dropped.
        intruder.send_to(&packet(i as u16, 9000, 1000 + i), sfu).unwrap();
        carol.pump(Duration::from_millis(8));
    }
    assert!(carol.pump_until(Duration::from_secs(5), |c| c.received_for(cssrc).len() >= 50));
    carol.pump(Duration::from_millis(200));
    let got: BTreeSet<u64> = carol.received_for(cssrc).iter().map(|p| index_of(&p.payload)).collect();
    assert_eq!(got, (1..=50).collect::<BTreeSet<u64>>(), "exactly the publisher's packets, none of the intruder's");
    // The metrics count the plain leg too: 50 in, 50 out, the intruder's 50 not routed.
    let m = sfu_testkit::prom::Metrics::parse(&h.server.metrics().unwrap());
    assert_eq!(m.value("sfu_rtp_packets_received_total", &[]), 50.0);
    assert_eq!(m.value("sfu_rtp_packets_sent_total", &[]), 50.0);
    assert_eq!(m.value("sfu_datagrams_dropped_total", &[("protocol", "udp"), ("reason", "unknown_source")]), 50.0);
    // Connected over either protocol: the label comes from the selected ICE pair, which
    // transport.rs tells apart by the local address (UDP and TCP may share a port number).
    let connected = m.value("sfu_transports", &[("protocol", "udp"), ("state", "connected")])
        + m.value("sfu_transports", &[("protocol", "tcp"), ("state", "connected")]);
    assert_eq!(connected, 3.0, "alice's, the plain one, carol's: {:?}", m.series("sfu_transports"));
    // carol's PLI reaches the publisher as RTCP on its RTCP port.
    carol.request_keyframe(cssrc);
    carol.pump(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 1500];
    let mut saw_pli = false;
    while !saw_pli && Instant::now() < deadline {
        match pub_rtcp.recv(&mut buf) {
            Ok(n) => saw_pli = n >= 12 && buf[1] == 206 && buf[0] & 0x1f == 1 && buf[8..12] == 9000u32.to_be_bytes(),
            Err(_) => carol.pump(Duration::from_millis(10)),
        }
    }
    assert!(saw_pli, "the publisher got a PLI");
    // Limits and bad input.
    for (bad, want) in [
        (json!({"ip": "127.0.0.1", "port": 0}), "port"),
        (json!({"ip": "x", "port": 5}), "ip"),
        (json!({}), "needs `ip` and `port`"),
    ] {
        let e = h.request(R, "bob", json!({"method": "createTransport", "id": 9, "plainRtpParameters": bad})).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
    drop(fx);
}

#[test]
fn audio_levels_list_producers_loudest_first_and_the_active_speaker_follows_who_stays_unmuted() {
    let mut fx = Fx::new(LOCAL);
    // bob produces audio too, quieter.
    fx.h.join(R, "bob");
    let mut bob = BrowserTransport::new(Direction::Send, &[CodecSpec::opus(111)], CHROME_AUDIO_EXTS);
    let r = fx
        .h
        .request(R, "bob", json!({"method": "createTransport", "id": 1, "direction": "send", "options": {},
            "dtlsParameters": bob.dtls_parameters()}))
        .unwrap();
    bob.connect(&TransportParams::from_json(&r).unwrap());
    fx.h.request(R, "bob", json!({"method": "createProducer", "id": 1, "kind": "audio", "transportId": 1,
        "rtpParameters": producer_params("audio", "0", 72_000, None), "paused": false}))
        .unwrap();
    bob.add_send_stream("0", "audio", 72_000, None);
    assert!(bob.pump_until(Duration::from_secs(15), |b| b.is_connected()));
    fx.h.host_request(R, json!({"method": "enableAudioLevels", "intervalMs": 200, "thresholdDbov": -70})).unwrap();
    fx.h.host_request(R, json!({"method": "enableActiveSpeaker", "intervalMs": 200, "thresholdDbov": -70})).unwrap();
    let mut bob_seq = 1u64;
    let mut tick = |fx: &mut Fx, bob: &mut BrowserTransport, alice_level: Option<i8>, bob_level: i8| {
        fx.send(1, alice_level);
        let ext = ExtensionValues { audio_level: Some(bob_level), voice_activity: Some(true), ..Default::default() };
        bob.send_rtp_ext(72_000, 111, bob_seq, (bob_seq * 960) as u32, false, &[0xCD; 60], ext);
        bob_seq += 1;
        bob.pump(Duration::from_millis(2));
    };
    // alice at -20 dBov, bob at -40: alice is loudest, and speaks.
    for _ in 0..80 {
        tick(&mut fx, &mut bob, Some(-20), -40);
    }
    let levels = fx.h.wait_host_event("audioLevels", Duration::from_secs(3)).expect("audioLevels");
    let l = levels.json["levels"].as_array().unwrap();
    assert_eq!(l.len(), 2, "{}", levels.json);
    assert_eq!((l[0]["peerName"].as_str(), l[1]["peerName"].as_str()), (Some("alice"), Some("bob")));
    assert!(l[0]["dBov"].as_f64().unwrap() > l[1]["dBov"].as_f64().unwrap());
    assert!((l[0]["dBov"].as_f64().unwrap() + 20.0).abs() < 1.0, "{}", levels.json);
    let s = fx.h.wait_host_event("activeSpeaker", Duration::from_secs(3)).expect("activeSpeaker");
    assert_eq!((s.json["peerName"].as_str(), s.json["producerId"].as_u64()), (Some("alice"), Some(1)));
    assert_eq!(s.kind, EventKind::Host);
    // alice mutes (her producer is paused): bob becomes the active speaker.
    fx.h.notify(R, "alice", json!({"method": "pauseProducer", "notification": true, "id": 1}));
    for _ in 0..120 {
        tick(&mut fx, &mut bob, Some(-20), -40);
    }
    let s = fx.h.wait_host_event("activeSpeaker", Duration::from_secs(3)).expect("a new active speaker");
    assert_eq!(s.json["peerName"], "bob", "{}", s.json);
    // Levels list only bob now.
    let mut last = None;
    while let Some(e) = fx.h.wait_host_event("audioLevels", Duration::from_millis(10)) {
        last = Some(e);
    }
    let l = last.expect("levels").json["levels"].as_array().unwrap().clone();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["peerName"], "bob");
    fx.h.host_request(R, json!({"method": "disableAudioLevels"})).unwrap();
    fx.h.host_request(R, json!({"method": "disableActiveSpeaker"})).unwrap();
}
