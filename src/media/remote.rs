//! What crosses between workers when a room's transports run on several workers
//! (docs/ARCHITECTURE.md, "A room on several workers"): the owner's operations on an
//! engine that runs elsewhere, the packets it forwards to that engine's consumers, and
//! the engine's events back to the owner. Each worker's inbox is one FIFO channel, and
//! one worker's items for another leave in the order they were made, so each direction
//! between two workers is in order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use str0m::config::Fingerprint;
use str0m::rtp::{ExtensionValues, Vp8Patch};
use str0m::IceCreds;

use super::{MediaEnv, MediaEvent};
use crate::ids::{RoomSlot, TransportKey};
use crate::ortc::{Kind, RoomCaps};
use crate::protocol::request::Direction;

/// What the workers of one server share to spread rooms: every worker's environment
/// (its sockets' addresses, for the candidates of a transport placed there) and how
/// many receive transports each one runs (the placement's measure of load).
pub struct Spread {
    pub envs: Vec<Arc<MediaEnv>>,
    load: Vec<AtomicUsize>,
}

impl Spread {
    pub fn new(envs: Vec<Arc<MediaEnv>>) -> Spread {
        let load = envs.iter().map(|_| AtomicUsize::new(0)).collect();
        Spread { envs, load }
    }

    pub fn workers(&self) -> usize {
        self.envs.len()
    }

    /// The worker with the fewest receive transports, counted as taken. The room's own
    /// worker (`home`) counts one more (it also receives the producers and runs the
    /// room) and wins a tie (its consumers need no hand-off). Placement is a hint: two
    /// workers placing at once may both pick the same.
    pub fn place(&self, home: usize) -> usize {
        let load = |w: usize| self.load[w].load(Ordering::Relaxed) + usize::from(w == home);
        let mut best = home;
        for w in 0..self.load.len() {
            if load(w) < load(best) {
                best = w;
            }
        }
        self.load[best].fetch_add(1, Ordering::Relaxed);
        best
    }

    /// A placed transport on `worker` closed.
    pub fn release(&self, worker: usize) {
        let _ = self.load[worker].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Receive transports per worker (for tests and the benchmark).
    pub fn loads(&self) -> Vec<usize> {
        self.load.iter().map(|l| l.load(Ordering::Relaxed)).collect()
    }
}

/// An operation of a room on an engine another worker runs.
#[derive(Debug)]
pub enum EngineOp {
    Create { key: TransportKey, slot: RoomSlot, dir: Direction, caps: Arc<RoomCaps>, creds: IceCreds },
    Close { key: TransportKey },
    RestartIce { key: TransportKey, creds: IceCreds },
    StartDtls { key: TransportKey, fp: Fingerprint, active: bool },
    AddConsumer { key: TransportKey, mid: String, kind: Kind, ssrc: u32, rtx: Option<u32>, clock_rate: u32 },
    RemoveConsumer { key: TransportKey, mid: String, ssrc: u32 },
    /// Send the owner a `Snapshot` of the engine's statistics now (for `transportStats`).
    Snapshot { key: TransportKey },
    /// What the engine's bandwidth estimator keeps up and probes for (bits per second).
    SetBitrate { key: TransportKey, minimum: u64, desired: u64 },
    ForgetQueued { key: TransportKey, mid: String },
    RestartBwe { key: TransportKey, estimate: u64 },
    /// Every engine of a room (worker `home`, slot `slot`) that failed.
    CloseOwner { home: usize, slot: RoomSlot },
}

/// One packet to write on a consumer's stream of an engine another worker runs
/// (rewritten by the room already).
#[derive(Debug)]
pub struct RemoteWrite {
    pub key: TransportKey,
    pub ssrc: u32,
    pub pt: u8,
    pub seq: u64,
    pub ts: u32,
    pub wallclock: Instant,
    pub marker: bool,
    pub ext: ExtensionValues,
    /// Shared with every other consumer of the packet: never copied.
    pub payload: Arc<[u8]>,
    /// VP8 descriptor bytes of this consumer's numbering (`vp8_ids.rs`).
    pub vp8: Option<Vp8Patch>,
}

/// One item from a worker to another.
#[derive(Debug)]
pub enum CrossItem {
    /// To the engine's worker: an operation of its owner.
    Op(EngineOp),
    /// To the engine's worker: a packet for one of its consumers.
    Write(RemoteWrite),
    /// To the owner's worker: what an engine reported.
    Events { slot: RoomSlot, key: TransportKey, evs: Vec<MediaEvent> },
}

/// Drop the packets of a batch whose receiver is too far behind (operations and events
/// are kept: losing one would lose state). Returns how many were dropped.
pub fn drop_writes(items: &mut Vec<CrossItem>) -> usize {
    let before = items.len();
    items.retain(|i| !matches!(i, CrossItem::Write(_)));
    before - items.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{cert, AnnouncedCandidate};
    use crate::output::Proto;

    fn spread(n: usize) -> Spread {
        let c = cert::generate().unwrap();
        let envs = (0..n)
            .map(|i| {
                let addr = format!("127.0.0.1:{}", 40000 + i).parse().unwrap();
                Arc::new(MediaEnv {
                    ice_addr: addr,
                    tcp_addr: None,
                    candidates: vec![AnnouncedCandidate { addr, proto: Proto::Udp }],
                    fingerprint: cert::fingerprint(&c),
                    cert: c.clone(),
                    transport_timeout: std::time::Duration::from_secs(30),
                    bwe_initial: None,
                })
            })
            .collect();
        Spread::new(envs)
    }

    #[test]
    fn placement_alternates_with_the_home_worker_counting_one_more() {
        let s = spread(2);
        let picks: Vec<usize> = (0..6).map(|_| s.place(0)).collect();
        assert_eq!(picks, [1, 0, 1, 0, 1, 0]);
        assert_eq!(s.loads(), [3, 3]);
        // A room of worker 1 now goes to worker 0 first (a tie would go home).
        assert_eq!(s.place(1), 0);
        s.release(0);
        s.release(0);
        assert_eq!(s.loads(), [2, 3]);
        assert_eq!(s.place(1), 0, "the lighter worker");
        // Releasing more than was placed never wraps.
        for _ in 0..10 {
            s.release(1);
        }
        assert_eq!(s.loads(), [3, 0]);
    }

    #[test]
    fn placement_over_four_workers_fills_the_least_loaded() {
        let s = spread(4);
        for _ in 0..39 {
            s.place(2);
        }
        // Home carries one more: it trails the others by one until a tie brings it level.
        assert_eq!(s.loads(), [10, 10, 9, 10]);
        assert_eq!(s.place(2), 2, "a tie goes home");
        assert_eq!(s.loads(), [10, 10, 10, 10]);
    }

    #[test]
    fn a_full_inbox_drops_packets_never_operations_or_events() {
        let key = TransportKey(1 << 56);
        let mut items = vec![
            CrossItem::Op(EngineOp::Close { key }),
            CrossItem::Write(RemoteWrite {
                key,
                ssrc: 1,
                pt: 96,
                seq: 1,
                ts: 0,
                wallclock: Instant::now(),
                marker: false,
                ext: ExtensionValues::default(),
                payload: Arc::from(&[1u8, 2, 3][..]),
                vp8: None,
            }),
            CrossItem::Events { slot: RoomSlot(0), key, evs: vec![MediaEvent::Connected] },
        ];
        assert_eq!(drop_writes(&mut items), 1);
        assert!(matches!(items[..], [CrossItem::Op(_), CrossItem::Events { .. }]));
    }
}
