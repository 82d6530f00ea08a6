//! A producer that behaves like Firefox: its own header-extension ids, an audio producer
//! created before the video one on the same transport, and a video producer whose codecs
//! list `rtx` but whose encodings carry no RTX SSRC. Firefox still sends RTX on an SSRC
//! it never signalled — padding probes while it estimates bandwidth, and retransmissions
//! when it is NACKed — with the mid header extension.
//!
//! What must hold (docs/ARCHITECTURE.md, "Forwarding a producer's packets"):
//! * an RTX packet on an unsignalled SSRC is learnt as the producer's RTX stream and
//!   unwrapped, never forwarded as media;
//! * a packet without payload (padding) never reaches a consumer and never starts or
//!   breaks a consumer's numbering;
//! * retransmissions from such a producer repair losses for every consumer.
//!
//! Peers are str0m-based browser stand-ins over loopback UDP; every wait is bounded.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::harness::Harness;
use common::peer::{ext_ids_from_json, ext_refs, BrowserTransport, CodecSpec, Direction, ReceivedRtp, TransportParams};
use serde_json::{json, Value};

const R: &str = "firefox";
const LOCAL: &str = r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1"}"#;

/// Firefox's payload types and SSRCs of this fixture.
const OPUS_PT: u8 = 109;
const VP8_PT: u8 = 120;
const RTX_PT: u8 = 124;
const A_SSRC: u32 = 41_001;
const V_SSRC: u32 = 41_002;
/// Never signalled to the SFU.
const V_RTX: u32 = 41_003;
const AUDIO_PID: u64 = 1;
const VIDEO_PID: u64 = 2;

const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const URI_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
const URI_TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const URI_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const URI_TOFFSET: &str = "urn:ietf:params:rtp-hdrext:toffset";

/// Firefox 153's ids: audio-level 1, mid 3, abs-send-time 4, toffset 5, transport-cc 7,
/// rtp-stream-id 9 (one map for the whole PeerConnection).
const FIREFOX_EXTS: &[(u8, &str)] = &[
    (1, URI_AUDIO_LEVEL),
    (3, URI_MID),
    (4, URI_ABS_SEND_TIME),
    (5, URI_TOFFSET),
    (7, URI_TWCC),
    (9, URI_RID),
];

/// `createProducer.rtpParameters` as the Firefox65 handler sends them.
fn firefox_params(kind: &str) -> Value {
    if kind == "audio" {
        json!({
            "muxId": "0",
            "codecs": [{"name": "opus", "mimeType": "audio/opus", "clockRate": 48000, "payloadType": OPUS_PT,
                        "channels": 2, "rtcpFeedback": [{"type": "transport-cc"}],
                        "parameters": {"maxplaybackrate": 48000, "stereo": 1, "useinbandfec": 1}}],
            "headerExtensions": [{"uri": URI_AUDIO_LEVEL, "id": 1}, {"uri": URI_TWCC, "id": 7}, {"uri": URI_MID, "id": 3}],
            "encodings": [{"ssrc": A_SSRC}],
            "rtcp": {"cname": "{ff-cname}", "reducedSize": false, "mux": true},
        })
    } else {
        json!({
            "muxId": "1",
            "codecs": [
                {"name": "VP8", "mimeType": "video/VP8", "clockRate": 90000, "payloadType": VP8_PT,
                 "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"},
                                  {"type": "ccm", "parameter": "fir"}, {"type": "goog-remb"}, {"type": "transport-cc"}],
                 "parameters": {"max-fs": 12288, "max-fr": 60}},
                {"name": "rtx", "mimeType": "video/rtx", "clockRate": 90000, "payloadType": RTX_PT,
                 "parameters": {"apt": VP8_PT}},
            ],
            "headerExtensions": [{"uri": URI_ABS_SEND_TIME, "id": 4}, {"uri": URI_TWCC, "id": 7}, {"uri": URI_MID, "id": 3},
                                 {"uri": URI_RID, "id": 9}, {"uri": URI_TOFFSET, "id": 5}],
            // No `rtx` here: Firefox does not signal its RTX SSRC.
            "encodings": [{"ssrc": V_SSRC}],
            "rtcp": {"cname": "{ff-cname}", "reducedSize": false, "mux": true},
        })
    }
}

/// Payload of video packet `i`: a VP8 descriptor (S=1, PID=0), the keyframe bit for
/// `i == 1`, then bytes that depend on `i`.
fn vp8_payload(i: u64) -> Vec<u8> {
    let mut p = vec![0x10, if i == 1 { 0x00 } else { 0x01 }];
    p.extend_from_slice(&i.to_be_bytes());
    p.extend((0..600u64).map(|k| ((i * 31 + k * 7) % 251) as u8));
    p
}

fn index_of(payload: &[u8]) -> u64 {
    u64::from_be_bytes(payload[2..10].try_into().unwrap())
}

/// bob (Firefox) produces audio then video; alice (a Chrome-like receiver) consumes both.
struct Fx {
    /// The server lives as long as the fixture.
    _h: Harness,
    bob: BrowserTransport,
    alice: BrowserTransport,
    /// alice's consumer of bob's video: (ssrc, room PT).
    video: (u32, u8),
    /// Next sequence number of the RTX stream.
    rtx_seq: u64,
}

impl Fx {
    fn new() -> Fx {
        let h = Harness::new(Some(LOCAL));
        h.server.create_room(R, None).unwrap();
        let caps = h.join(R, "alice")["rtpCapabilities"].clone();
        h.join(R, "bob");

        // The stand-in writes its RTX packets itself, so its own table knows the RTX
        // payload type as a plain one (str0m sends nothing on an unknown PT).
        let codecs = [CodecSpec::opus(OPUS_PT), CodecSpec::vp8(VP8_PT, None), CodecSpec::vp8(RTX_PT, None)];
        let mut bob = BrowserTransport::new(Direction::Send, &codecs, FIREFOX_EXTS);
        let resp = h
            .request(R, "bob", json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "send",
                "options": {}, "dtlsParameters": bob.dtls_parameters(), "appData": {}}))
            .unwrap();
        bob.connect(&TransportParams::from_json(&resp).unwrap());
        // Audio first, as the demo does: the SFU's send-side tables are built from it.
        for (pid, kind) in [(AUDIO_PID, "audio"), (VIDEO_PID, "video")] {
            h.request(R, "bob", json!({"method": "createProducer", "target": "peer", "id": pid, "kind": kind,
                "transportId": 1, "rtpParameters": firefox_params(kind), "paused": false, "appData": {"pid": pid}}))
                .unwrap();
        }
        bob.add_send_stream("0", "audio", A_SSRC, None);
        // The RTX stream is written by the test itself, as RFC 4588 packets: padding
        // probes without payload, and retransmissions (original sequence number, then
        // the original payload), all in one sequence space, as a browser does. (The
        // stand-in's str0m tells two streams of one mid apart by rid only, so both carry
        // an rtp-stream-id the SFU has no use for.)
        bob.add_send_stream_rid("1", "video", V_SSRC, None, Some("v"));
        bob.add_send_stream_rid("1", "video", V_RTX, None, Some("x"));

        let exts = ext_ids_from_json(&caps);
        let mut alice = BrowserTransport::new(Direction::Recv, &CodecSpec::list_from_json(&caps), &ext_refs(&exts));
        let resp = h
            .request(R, "alice", json!({"method": "createTransport", "target": "peer", "id": 2, "direction": "recv",
                "options": {}, "appData": {}}))
            .unwrap();
        alice.connect(&TransportParams::from_json(&resp).unwrap());
        h.notify(R, "alice", json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2,
            "dtlsParameters": alice.dtls_parameters()}));
        let mut video = None;
        for nc in h.notifications("alice").into_iter().filter(|n| n["method"] == "newConsumer") {
            let ssrc = alice.add_recv_stream_from_consumer(&nc).unwrap();
            let pt = nc.pointer("/rtpParameters/codecs/0/payloadType").unwrap().as_u64().unwrap() as u8;
            if nc["kind"] == "video" {
                video = Some((ssrc, pt));
            }
            h.request(R, "alice", json!({"method": "enableConsumer", "target": "peer", "id": nc["id"],
                "transportId": 2, "paused": false, "preferredProfile": "default"}))
                .unwrap();
        }
        let mut fx = Fx { _h: h, bob, alice, video: video.expect("a video consumer"), rtx_seq: 12_069 };
        assert!(fx.wait(Duration::from_secs(15), |fx| fx.bob.is_connected() && fx.alice.is_connected()), "both connect");
        fx
    }

    fn pump(&mut self, d: Duration) {
        common::peer::pump_all(&mut [&mut self.bob, &mut self.alice], d);
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

    /// `n` padding probes on the unsignalled RTX SSRC (RTX payload type, no payload).
    fn probes(&mut self, n: usize) {
        for _ in 0..n {
            self.bob.send_rtp(V_RTX, RTX_PT, self.rtx_seq, 0, false, &[]);
            self.rtx_seq += 1;
            self.pump(Duration::from_millis(2));
        }
    }

    /// Retransmit video packet `i` on the RTX SSRC (RFC 4588: original sequence number,
    /// then the original payload).
    fn retransmit(&mut self, i: u64) {
        let mut p = (i as u16).to_be_bytes().to_vec();
        p.extend(vp8_payload(i));
        self.bob.send_rtp(V_RTX, RTX_PT, self.rtx_seq, (i * 3000) as u32, true, &p);
        self.rtx_seq += 1;
        self.pump(Duration::from_millis(5));
    }

    /// Video packet `i` with sequence number `i`.
    fn video_packet(&mut self, i: u64) {
        self.bob.send_rtp(V_SSRC, VP8_PT, i, (i * 3000) as u32, true, &vp8_payload(i));
        self.pump(Duration::from_millis(5));
    }

    fn alice_video(&self) -> Vec<&ReceivedRtp> {
        self.alice.received_for(self.video.0)
    }

    fn indices(&self) -> BTreeSet<u64> {
        self.alice_video().iter().map(|p| index_of(&p.payload)).collect()
    }
}

/// Every video packet alice got is bob's media, byte for byte, with the consumer's PT and
/// one constant offset between bob's index and alice's sequence number (continuous
/// numbering, no gap where padding was dropped).
fn assert_continuous(fx: &Fx) {
    let mut offset: Option<u16> = None;
    for p in fx.alice_video() {
        assert!(!p.payload.is_empty(), "a packet without payload reached alice: {p:?}");
        assert_eq!(p.pt, fx.video.1, "consumer payload type");
        let i = index_of(&p.payload);
        assert_eq!(p.payload, vp8_payload(i), "payload of index {i} byte-identical");
        let off = p.seq.wrapping_sub(i as u16);
        assert_eq!(*offset.get_or_insert(off), off, "seq {} for index {i}: numbering broke", p.seq);
    }
}

/// The failure seen with Firefox: RTX padding probes reach the SFU before the first media
/// packet of a consumer; they used to start the consumer's numbering in the RTX sequence
/// space, after which every media packet was "older" and dropped for good.
#[test]
fn video_reaches_a_consumer_enabled_while_the_producer_probes_on_an_unsignalled_rtx_ssrc() {
    let mut fx = Fx::new();
    fx.probes(5);
    for i in 1..=20 {
        fx.video_packet(i);
        if i % 5 == 0 {
            fx.probes(2); // probing goes on while media flows
        }
    }
    let ok = fx.wait(Duration::from_secs(5), |fx| fx.indices().len() == 20);
    assert!(ok, "alice got video indices {:?} of 1..=20; bob sent {} datagrams", fx.indices(), fx.bob.datagram_counters().1);
    assert_continuous(&fx);
    assert_eq!(fx.alice_video().len(), 20, "nothing but the media reached alice");
}

/// A retransmission on the unsignalled RTX SSRC repairs a loss on bob's leg: the SFU
/// NACKs bob, bob resends on its RTX SSRC (between padding probes), and alice gets the
/// original packet (unwrapped: original sequence number, original payload) in its place.
#[test]
fn retransmissions_on_the_unsignalled_rtx_ssrc_repair_a_loss_for_the_consumer() {
    let mut fx = Fx::new();
    fx.probes(3);
    for i in 1..=10 {
        fx.video_packet(i);
    }
    assert!(fx.wait(Duration::from_secs(5), |fx| fx.indices().len() == 10), "{:?}", fx.indices());
    fx.bob.drop_next_outgoing_rtp_with_seq(V_SSRC, 15);
    for i in 11..=30 {
        fx.video_packet(i);
    }
    // The SFU notices the hole and NACKs bob; bob answers on its RTX SSRC.
    let nacked = fx.wait(Duration::from_secs(4), |fx| fx.bob.egress_stats("1").is_some_and(|s| s.nacks >= 1));
    assert!(nacked, "the SFU NACKed the lost packet: {:?}", fx.bob.egress_stats("1"));
    fx.probes(2);
    fx.retransmit(15);
    let ok = fx.wait(Duration::from_secs(5), |fx| fx.indices().len() == 30);
    assert!(ok, "alice got video indices {:?} of 1..=30 (15 was lost on bob's leg)", fx.indices());
    assert_eq!(fx.bob.datagram_counters().3, 1, "exactly one datagram was dropped on bob's leg");
    assert_continuous(&fx);
    let order: Vec<u64> = fx.alice_video().iter().map(|p| index_of(&p.payload)).collect();
    let pos = |i: u64| order.iter().position(|x| *x == i).unwrap();
    assert!(pos(15) > pos(16), "15 arrived after its successor, as a repair: {order:?}");
}

/// Padding on the media SSRC itself (a producer without RTX pads there) is not forwarded
/// and leaves no hole in the consumer's numbering.
#[test]
fn padding_on_the_media_ssrc_is_dropped_without_a_gap() {
    let mut fx = Fx::new();
    for i in 1..=10 {
        fx.video_packet(i);
    }
    fx.bob.send_rtp(V_SSRC, VP8_PT, 11, 30_000, false, &[]);
    fx.bob.send_rtp(V_SSRC, VP8_PT, 12, 30_000, false, &[]);
    fx.pump(Duration::from_millis(5));
    // Media continues after the padding; its indices skip 11 and 12.
    for i in 13..=20 {
        fx.bob.send_rtp(V_SSRC, VP8_PT, i, (i * 3000) as u32, true, &vp8_payload(i));
        fx.pump(Duration::from_millis(5));
    }
    let ok = fx.wait(Duration::from_secs(5), |fx| fx.alice_video().len() >= 18);
    assert!(ok, "alice got {} video packets", fx.alice_video().len());
    fx.pump(Duration::from_millis(300));
    let seqs: Vec<u16> = fx.alice_video().iter().map(|p| p.seq).collect();
    assert_eq!(seqs.len(), 18, "18 media packets, no padding: {seqs:?}");
    assert!(fx.alice_video().iter().all(|p| !p.payload.is_empty()));
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "consecutive numbering across the dropped padding: {seqs:?}");
    }
}
