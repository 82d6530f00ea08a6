//! The media plane through real sockets: str0m-based browser stand-ins (full ICE,
//! DTLS, SRTP) produce and consume through the SFU over loopback UDP.

use std::time::Duration;

use sfu_testkit::builders::{producer_params, CHROME_AUDIO_EXTS, CHROME_VIDEO_EXTS};
use sfu_testkit::harness::{Harness};
use sfu_testkit::peer::{ext_ids_from_json, ext_refs, pump_all_until, BrowserTransport, CodecSpec, Direction, TransportParams};
use serde_json::{json, Value};

const R: &str = "media";
const A_SSRC: u32 = 11_110;
const V_SSRC: u32 = 22_220;
const V_RTX: u32 = 22_221;

/// A VP8 payload: descriptor (S=1, PID=0) + payload header with the key/delta bit.
fn vp8_payload(i: u64, key: bool) -> Vec<u8> {
    let mut p = vec![0x10, if key { 0x00 } else { 0x01 }];
    p.extend((0..1100).map(|k| ((i * 31 + k) % 251) as u8));
    p
}

fn opus_payload(i: u64) -> Vec<u8> {
    (0..120).map(|k| ((i * 7 + k) % 253) as u8).collect()
}

struct Sender {
    t: BrowserTransport,
    audio_pid: u64,
    video_pid: u64,
}

struct Receiver {
    name: String,
    t: BrowserTransport,
    /// (consumer id, ssrc, rtx ssrc, room PT, kind)
    consumers: Vec<(u64, u32, Option<u32>, u8, String)>,
}

fn new_sender(h: &Harness, peer: &str) -> Sender {
    let all_exts: Vec<(u8, &str)> = CHROME_VIDEO_EXTS.iter().chain(CHROME_AUDIO_EXTS).copied().collect();
    let mut t = BrowserTransport::new(Direction::Send, &[CodecSpec::opus(111), CodecSpec::vp8(96, Some(97))], &all_exts);
    let resp = h
        .request(R, peer, json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "send",
            "options": {}, "dtlsParameters": t.dtls_parameters(), "appData": {}}))
        .unwrap();
    t.connect(&TransportParams::from_json(&resp).unwrap());
    h.request(R, peer, json!({"method": "createProducer", "target": "peer", "id": 501, "kind": "audio", "transportId": 1,
        "rtpParameters": producer_params("audio", "0", A_SSRC, None), "paused": false, "appData": {}}))
        .unwrap();
    h.request(R, peer, json!({"method": "createProducer", "target": "peer", "id": 502, "kind": "video", "transportId": 1,
        "rtpParameters": producer_params("video", "1", V_SSRC, Some(V_RTX)), "paused": false, "appData": {}}))
        .unwrap();
    t.add_send_stream("0", "audio", A_SSRC, None);
    t.add_send_stream("1", "video", V_SSRC, Some(V_RTX));
    Sender { t, audio_pid: 501, video_pid: 502 }
}

fn new_receiver(h: &Harness, peer: &str, room_caps: &Value, new_consumers: &[Value]) -> Receiver {
    let exts = ext_ids_from_json(room_caps);
    let mut t = BrowserTransport::new(Direction::Recv, &CodecSpec::list_from_json(room_caps), &ext_refs(&exts));
    let resp = h
        .request(R, peer, json!({"method": "createTransport", "target": "peer", "id": 2, "direction": "recv", "options": {}, "appData": {}}))
        .unwrap();
    t.connect(&TransportParams::from_json(&resp).unwrap());
    h.notify(R, peer, json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2, "dtlsParameters": t.dtls_parameters()}));
    let mut consumers = Vec::new();
    for nc in new_consumers {
        let ssrc = t.add_recv_stream_from_consumer(nc).unwrap();
        let rtx = nc.pointer("/rtpParameters/encodings/0/rtx/ssrc").and_then(Value::as_u64).map(|v| v as u32);
        let pt = nc.pointer("/rtpParameters/codecs/0/payloadType").unwrap().as_u64().unwrap() as u8;
        let id = nc["id"].as_u64().unwrap();
        let r = h
            .request(R, peer, json!({"method": "enableConsumer", "target": "peer", "id": id, "transportId": 2, "paused": false, "preferredProfile": "default"}))
            .unwrap();
        assert_eq!(r["paused"], false);
        consumers.push((id, ssrc, rtx, pt, nc["kind"].as_str().unwrap().to_string()));
    }
    Receiver { name: peer.to_string(), t, consumers }
}

/// alice produces audio + video; each name in `receivers` consumes both.
fn setup(receivers: &[&str]) -> (Harness, Sender, Vec<Receiver>) {
    let h = Harness::local();
    h.server.create_room(R, None).unwrap();
    let caps = h.join(R, "alice")["rtpCapabilities"].clone();
    for r in receivers {
        h.join(R, r);
    }
    let mut s = new_sender(&h, "alice");
    let mut rs = Vec::new();
    for r in receivers {
        let ncs: Vec<Value> = h.notifications(r).into_iter().filter(|n| n["method"] == "newConsumer").collect();
        assert_eq!(ncs.len(), 2, "{r} got newConsumer for audio and video");
        rs.push(new_receiver(&h, r, &caps, &ncs));
    }
    {
        let mut all: Vec<&mut BrowserTransport> = vec![&mut s.t];
        all.extend(rs.iter_mut().map(|r| &mut r.t));
        assert!(
            pump_all_until(&mut all, Duration::from_secs(15), |ps| ps.iter().all(|p| p.is_connected())),
            "all transports connect (ICE + DTLS)"
        );
    }
    (h, s, rs)
}

fn pump(s: &mut Sender, rs: &mut [Receiver], d: Duration) {
    let mut all: Vec<&mut BrowserTransport> = vec![&mut s.t];
    all.extend(rs.iter_mut().map(|r| &mut r.t));
    sfu_testkit::peer::pump_all(&mut all, d);
}

/// Send `n` packets of each kind, 10 ms apart, first video packet a keyframe.
fn send_burst(s: &mut Sender, rs: &mut [Receiver], first: u64, n: u64) {
    for i in first..first + n {
        s.t.send_rtp(A_SSRC, 111, i, (i * 960) as u32, false, &opus_payload(i));
        s.t.send_rtp(V_SSRC, 96, i, (i * 3000) as u32, true, &vp8_payload(i, i == first));
        pump(s, rs, Duration::from_millis(10));
    }
}

fn received(r: &Receiver, kind: &str) -> Vec<(u16, u8, Vec<u8>, u32)> {
    let c = r.consumers.iter().find(|c| c.4 == kind).unwrap();
    r.t.received_for(c.1).into_iter().map(|p| (p.seq, p.pt, p.payload.clone(), p.ssrc)).collect()
}

#[test]
fn media_flows_intact_to_every_consumer_with_its_ssrc_pt_and_continuous_seq() {
    let (_h, mut s, mut rs) = setup(&["bob", "carol"]);
    send_burst(&mut s, &mut rs, 1, 60);
    let mut all: Vec<&mut BrowserTransport> = rs.iter_mut().map(|r| &mut r.t).collect();
    pump_all_until(&mut all, Duration::from_secs(5), |ps| {
        ps.iter().all(|p| p.received().len() >= 120)
    });
    for r in &rs {
        for (kind, pt) in [("audio", 100u8), ("video", 101u8)] {
            let got = received(r, kind);
            assert_eq!(got.len(), 60, "{} got every {kind} packet: {:?}", r.name, got.iter().map(|g| g.0).collect::<Vec<_>>());
            let c = r.consumers.iter().find(|c| c.4 == kind).unwrap();
            for (i, (seq, gpt, payload, ssrc)) in got.iter().enumerate() {
                assert_eq!(*ssrc, c.1, "consumer's announced SSRC");
                assert_eq!(*gpt, pt, "room payload type");
                assert_eq!(*gpt, c.3);
                let n = i as u64 + 1;
                let want = if kind == "audio" { opus_payload(n) } else { vp8_payload(n, n == 1) };
                assert_eq!(payload, &want, "{} {kind} payload {n} intact", r.name);
                if i > 0 {
                    assert_eq!(*seq, got[i - 1].0.wrapping_add(1), "continuous sequence numbers");
                }
            }
        }
    }
    let _ = (s.audio_pid, s.video_pid);
}
