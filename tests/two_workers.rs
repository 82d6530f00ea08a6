//! One room on two workers (docs/ARCHITECTURE.md, "A room on several workers"): the
//! media-plane reliability cases of `common/reliability.rs` again, with the receive
//! transports placed on the worker that does not own the room (the first one) or
//! spread over both (from the second on), so every packet, NACK, RTX resend, keyframe
//! request, pause, resume and close crosses between workers.

/// Workers of the server the cases run against.
const WORKERS: usize = 2;

#[path = "common/reliability.rs"]
mod cases;

use std::time::Duration;

use cases::{assert_intact, setup, Fx, AUDIO_PID, R, VIDEO_PID};

/// Transports the server's engines run, over both workers and every state.
fn engines(fx: &Fx) -> f64 {
    let m = sfu_testkit::prom::Metrics::parse(&fx.h.server.metrics().unwrap());
    m.series("sfu_transports").iter().map(|(_, v)| v).sum()
}

/// Three receivers: the first and third on the worker that does not own the room, the
/// second on the room's (which counts one more); every packet reaches all three intact,
/// in order of sequence, on their own SSRCs.
#[test]
fn receivers_spread_over_both_workers_get_every_packet_intact() {
    let mut fx = setup(&["bob", "carol", "dave"]);
    let home = fx.s.sfu_addr;
    let at = |fx: &Fx, n: &str| fx.rx(n).sfu_addr;
    assert_ne!(at(&fx, "bob"), home, "bob: the other worker");
    assert_eq!(at(&fx, "carol"), home, "carol: the room's worker (a tie goes home)");
    assert_eq!(at(&fx, "dave"), at(&fx, "bob"), "dave: the other worker again");
    let sent = fx.send(200);
    assert!(fx.wait_all_have(VIDEO_PID, 200, Duration::from_secs(10)), "every receiver has every video packet");
    assert!(fx.wait_all_have(AUDIO_PID, 200, Duration::from_secs(10)), "and every audio packet");
    for r in &fx.rs {
        assert_intact(r, VIDEO_PID, 2);
        assert_intact(r, AUDIO_PID, 1);
        let got: Vec<u64> = r.indices(VIDEO_PID);
        assert!(got.iter().all(|i| sent.contains(i)), "{}: only what alice sent", r.name);
        assert_eq!(got.len(), 200, "{}: no duplicate", r.name);
    }
}

/// A peer leaving closes its engine on the other worker; closing the room closes every
/// engine on both.
#[test]
fn leaving_and_closing_the_room_close_the_engines_on_both_workers() {
    let mut fx = setup(&["bob", "carol"]);
    assert!(fx.wait(Duration::from_secs(3), |fx| engines(fx) == 3.0), "alice's, bob's, carol's: {}", engines(&fx));
    fx.h.server.close_peer(R, "bob").unwrap();
    assert!(fx.wait(Duration::from_secs(3), |fx| engines(fx) == 2.0), "bob's engine (other worker) is gone: {}", engines(&fx));
    fx.h.server.close_room(R).unwrap();
    assert!(fx.wait(Duration::from_secs(3), |fx| engines(fx) == 0.0), "every engine is gone: {}", engines(&fx));
}
