//! Bursts of loss and reordering, with exact assertions: what is lost within the
//! retransmission budget is recovered, byte for byte, in its place; what the producer
//! never repairs makes the SFU ask it for a keyframe, and the consumer keeps getting
//! what follows (no stall). str0m browser stand-ins over loopback UDP; the losses are
//! chosen packets, so every run sees the same ones. Every wait is bounded.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use sfu_testkit::builders::{producer_params, CHROME_VIDEO_EXTS};
use sfu_testkit::harness::Harness;
use sfu_testkit::peer::{ext_ids_from_json, ext_refs, peek_rtp, BrowserTransport, CodecSpec, Direction, TransportParams};

const R: &str = "loss";
const V_SSRC: u32 = 61_000;
const V_RTX: u32 = 61_001;

fn payload(i: u64) -> Vec<u8> {
    let mut p = vec![0x10, if i == 1 { 0x00 } else { 0x01 }];
    p.extend_from_slice(&i.to_be_bytes());
    p.extend((0..700u64).map(|k| ((i * 31 + k * 7) % 251) as u8));
    p
}

fn index_of(p: &[u8]) -> u64 {
    u64::from_be_bytes(p[2..10].try_into().unwrap())
}

struct Fx {
    /// Keeps the server running for the peers.
    _h: Harness,
    alice: BrowserTransport,
    bob: BrowserTransport,
    /// bob's consumer: (ssrc, rtx ssrc)
    cons: (u32, u32),
    next: u64,
}

impl Fx {
    fn new() -> Fx {
        let h = Harness::new(Some(r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1"}"#));
        h.server.create_room(R, None).unwrap();
        let caps = h.join(R, "alice")["rtpCapabilities"].clone();
        h.join(R, "bob");
        let mut alice = BrowserTransport::new(Direction::Send, &[CodecSpec::vp8(96, Some(97))], CHROME_VIDEO_EXTS);
        let r = h
            .request(R, "alice", json!({"method": "createTransport", "id": 1, "direction": "send", "options": {},
                "dtlsParameters": alice.dtls_parameters()}))
            .unwrap();
        alice.connect(&TransportParams::from_json(&r).unwrap());
        h.request(R, "alice", json!({"method": "createProducer", "id": 7, "kind": "video", "transportId": 1,
            "rtpParameters": producer_params("video", "0", V_SSRC, Some(V_RTX)), "paused": false}))
            .unwrap();
        alice.add_send_stream("0", "video", V_SSRC, Some(V_RTX));
        let nc = h.notifications("bob").into_iter().find(|n| n["method"] == "newConsumer").unwrap();
        let e = ext_ids_from_json(&caps);
        let mut bob = BrowserTransport::new(Direction::Recv, &CodecSpec::list_from_json(&caps), &ext_refs(&e));
        let r = h.request(R, "bob", json!({"method": "createTransport", "id": 2, "direction": "recv", "options": {}})).unwrap();
        bob.connect(&TransportParams::from_json(&r).unwrap());
        h.notify(R, "bob", json!({"method": "updateTransport", "notification": true, "id": 2, "dtlsParameters": bob.dtls_parameters()}));
        let ssrc = bob.add_recv_stream_from_consumer(&nc).unwrap();
        let rtx = nc.pointer("/rtpParameters/encodings/0/rtx/ssrc").unwrap().as_u64().unwrap() as u32;
        h.request(R, "bob", json!({"method": "enableConsumer", "id": nc["id"], "transportId": 2, "paused": false})).unwrap();
        let mut fx = Fx { _h: h, alice, bob, cons: (ssrc, rtx), next: 1 };
        assert!(fx.wait(Duration::from_secs(15), |fx| fx.alice.is_connected() && fx.bob.is_connected()));
        // A first keyframe, and the keyframe requests of the start (bob's transport
        // connecting, throttled ones after it) out of the way.
        fx.send(20);
        assert!(fx.wait(Duration::from_secs(5), |fx| fx.indices().len() == 20));
        for _ in 0..5 {
            let before = fx.plis_at_alice();
            fx.pump(Duration::from_millis(1200));
            if fx.plis_at_alice() == before {
                break;
            }
        }
        fx
    }

    fn pump(&mut self, d: Duration) {
        sfu_testkit::peer::pump_all(&mut [&mut self.alice, &mut self.bob], d);
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

    /// The next `n` packets, 5 ms apart; returns their indices.
    fn send(&mut self, n: u64) -> std::ops::Range<u64> {
        let first = self.next;
        for i in first..first + n {
            self.alice.send_rtp(V_SSRC, 96, i, (i * 3000) as u32, true, &payload(i));
            self.pump(Duration::from_millis(5));
        }
        self.next = first + n;
        first..first + n
    }

    fn indices(&self) -> BTreeSet<u64> {
        self.bob.received_for(self.cons.0).iter().map(|p| index_of(&p.payload)).collect()
    }

    /// Every packet bob got is alice's, byte for byte, with one constant offset between
    /// index and sequence number (a repaired packet lands in its place).
    fn assert_intact(&self) {
        let mut offset = None;
        for p in self.bob.received_for(self.cons.0) {
            let i = index_of(&p.payload);
            assert_eq!(p.payload, payload(i), "packet {i} byte-identical");
            let off = p.seq.wrapping_sub(i as u16);
            assert_eq!(*offset.get_or_insert(off), off, "packet {i} at seq {}: out of place", p.seq);
        }
    }

    fn plis_at_alice(&self) -> usize {
        self.alice.keyframe_requests_for("0")
    }
}

#[test]
fn a_burst_lost_on_the_consumer_leg_is_recovered_exactly() {
    let mut fx = Fx::new();
    let last = fx.bob.received_for(fx.cons.0).last().unwrap().seq;
    // The next 10 packets bob would receive are lost.
    for k in 1..=10u16 {
        fx.bob.drop_next_rtp_with_seq(fx.cons.0, last.wrapping_add(5 + k));
    }
    let sent = fx.send(40);
    let ok = fx.wait(Duration::from_secs(5), |fx| sent.clone().all(|i| fx.indices().contains(&i)));
    assert!(ok, "bob is missing {:?}", sent.clone().filter(|i| !fx.indices().contains(i)).collect::<Vec<_>>());
    assert_eq!(fx.bob.datagram_counters().2, 10, "exactly the burst was lost");
    fx.assert_intact();
}

#[test]
fn a_burst_lost_on_the_producer_leg_is_recovered_exactly() {
    let mut fx = Fx::new();
    let plis = fx.plis_at_alice();
    let first = fx.next;
    for i in first + 5..first + 15 {
        fx.alice.drop_next_outgoing_rtp_with_seq(V_SSRC, i as u16);
    }
    let sent = fx.send(40);
    let ok = fx.wait(Duration::from_secs(5), |fx| sent.clone().all(|i| fx.indices().contains(&i)));
    assert!(ok, "bob is missing {:?}", sent.clone().filter(|i| !fx.indices().contains(i)).collect::<Vec<_>>());
    assert_eq!(fx.alice.datagram_counters().3, 10, "exactly the burst was lost");
    fx.assert_intact();
    fx.pump(Duration::from_millis(1500));
    assert_eq!(fx.plis_at_alice(), plis, "a repaired loss asks for no keyframe");
}

#[test]
fn reordered_packets_on_the_producer_leg_reach_the_consumer_in_their_places() {
    let mut fx = Fx::new();
    let first = fx.next;
    for i in [first + 3, first + 10, first + 11, first + 20] {
        fx.alice.swap_next_outgoing_rtp_with_seq(V_SSRC, i as u16);
    }
    let sent = fx.send(30);
    assert!(fx.wait(Duration::from_secs(5), |fx| sent.clone().all(|i| fx.indices().contains(&i))));
    fx.assert_intact();
    let order: Vec<u64> = fx.bob.received_for(fx.cons.0).iter().map(|p| index_of(&p.payload)).collect();
    let pos = |i: u64| order.iter().position(|x| *x == i).unwrap();
    assert!(pos(first + 3) > pos(first + 4), "forwarded as they arrived, not held back: {order:?}");
    assert_eq!(order.len(), order.iter().collect::<BTreeSet<_>>().len(), "no duplicates");
}

#[test]
fn a_loss_the_producer_never_repairs_asks_it_for_a_keyframe_and_nothing_stalls() {
    let mut fx = Fx::new();
    // alice's retransmissions never arrive, and one of her packets is lost.
    fx.alice.set_send_drop_filter(Some(Box::new(|b: &[u8]| peek_rtp(b).is_some_and(|(s, _, _)| s == V_RTX))));
    let lost = fx.next + 5;
    fx.alice.drop_next_outgoing_rtp_with_seq(V_SSRC, lost as u16);
    let plis = fx.plis_at_alice();
    let t0 = Instant::now();
    let sent = fx.send(30);
    // Everything after the hole still reaches bob, at once.
    let after: Vec<u64> = sent.clone().filter(|i| *i != lost).collect();
    assert!(fx.wait(Duration::from_secs(3), |fx| after.iter().all(|i| fx.indices().contains(i))), "no stall after the hole");
    assert!(!fx.indices().contains(&lost));
    // Once the loss is beyond repair (~1 s), alice is asked for a keyframe.
    let asked = fx.wait(Duration::from_secs(4), |fx| fx.plis_at_alice() > plis);
    assert!(asked, "no keyframe request after an unrepaired loss");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(900), "not before the repair window: {waited:?}");
    println!("keyframe requested {waited:?} after the loss");
    fx.assert_intact();
}
