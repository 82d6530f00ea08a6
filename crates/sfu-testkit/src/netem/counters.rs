//! Counters: written by the relay thread (relaxed atomics), read at any time from the handle.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{json, Value};

/// What one direction of the link did so far.
///
/// Once nothing is in flight, `packets_in + duplicated == delivered + dropped_loss +
/// dropped_queue + dropped_other`. TCP chunks (reads of at most 1500 bytes) count as packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Packets that entered the link.
    pub packets_in: u64,
    /// Bytes that entered the link.
    pub bytes_in: u64,
    /// Packets sent out of the link (duplicates included).
    pub delivered: u64,
    /// Bytes sent out of the link (duplicates included).
    pub bytes_delivered: u64,
    /// Packets dropped by the random or the bursty loss model.
    pub dropped_loss: u64,
    /// Packets (or duplicate copies) dropped because the rate limiter's queue was full, or
    /// because the relay's own bound on delayed packets was reached.
    pub dropped_queue: u64,
    /// Packets dropped for other reasons: a send failed, or the client mapping was gone.
    pub dropped_other: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Delivered packets that left after a packet which entered the link later than them
    /// (measured at delivery, whatever the cause: jitter or explicit reordering).
    pub reordered: u64,
    /// Datagrams sent more than 1 ms after their release time: the relay thread was late
    /// (starved of CPU, or overloaded), so the link was worse than configured.
    pub released_late: u64,
}

impl LinkCounters {
    /// Packets accepted but not yet delivered or dropped.
    pub fn in_flight(&self) -> u64 {
        (self.packets_in + self.duplicated)
            .saturating_sub(self.delivered + self.dropped_loss + self.dropped_queue + self.dropped_other)
    }

    /// The JSON object printed by the CLI.
    pub fn to_json(&self) -> Value {
        json!({
            "packets_in": self.packets_in,
            "bytes_in": self.bytes_in,
            "delivered": self.delivered,
            "bytes_delivered": self.bytes_delivered,
            "dropped_loss": self.dropped_loss,
            "dropped_queue": self.dropped_queue,
            "dropped_other": self.dropped_other,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "released_late": self.released_late,
        })
    }
}

/// Counters of both directions and of the relays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Client → upstream.
    pub up: LinkCounters,
    /// Upstream → client.
    pub down: LinkCounters,
    /// UDP client mappings open now.
    pub udp_mappings: u64,
    /// Packets from new clients dropped because `max_udp_mappings` mappings were open (or the
    /// upstream socket could not be opened).
    pub udp_rejected: u64,
    /// TCP connections open now.
    pub tcp_connections: u64,
    /// TCP connections accepted so far.
    pub tcp_accepted: u64,
    /// TCP connections closed at once because `max_tcp_connections` were open or the upstream
    /// connection failed.
    pub tcp_rejected: u64,
}

impl Counters {
    /// The counters of one direction.
    pub fn link(&self, dir: super::Direction) -> &LinkCounters {
        match dir {
            super::Direction::Up => &self.up,
            super::Direction::Down => &self.down,
        }
    }

    /// The JSON object printed by the CLI.
    pub fn to_json(&self) -> Value {
        json!({
            "up": self.up.to_json(),
            "down": self.down.to_json(),
            "udp_mappings": self.udp_mappings,
            "udp_rejected": self.udp_rejected,
            "tcp_connections": self.tcp_connections,
            "tcp_accepted": self.tcp_accepted,
            "tcp_rejected": self.tcp_rejected,
        })
    }
}

/// The atomic counters of one direction.
#[derive(Debug, Default)]
pub(crate) struct LinkStats {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub delivered: AtomicU64,
    pub bytes_delivered: AtomicU64,
    pub dropped_loss: AtomicU64,
    pub dropped_queue: AtomicU64,
    pub dropped_other: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
    pub released_late: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

impl LinkStats {
    pub fn snapshot(&self) -> LinkCounters {
        LinkCounters {
            packets_in: self.packets_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            bytes_delivered: self.bytes_delivered.load(Relaxed),
            dropped_loss: self.dropped_loss.load(Relaxed),
            dropped_queue: self.dropped_queue.load(Relaxed),
            dropped_other: self.dropped_other.load(Relaxed),
            duplicated: self.duplicated.load(Relaxed),
            reordered: self.reordered.load(Relaxed),
            released_late: self.released_late.load(Relaxed),
        }
    }
}

/// Every counter, shared between the relay thread and the handle.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub links: [LinkStats; 2],
    pub udp_mappings: AtomicU64,
    pub udp_rejected: AtomicU64,
    pub tcp_connections: AtomicU64,
    pub tcp_accepted: AtomicU64,
    pub tcp_rejected: AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> Counters {
        Counters {
            up: self.links[0].snapshot(),
            down: self.links[1].snapshot(),
            udp_mappings: self.udp_mappings.load(Relaxed),
            udp_rejected: self.udp_rejected.load(Relaxed),
            tcp_connections: self.tcp_connections.load(Relaxed),
            tcp_accepted: self.tcp_accepted.load(Relaxed),
            tcp_rejected: self.tcp_rejected.load(Relaxed),
        }
    }
}
