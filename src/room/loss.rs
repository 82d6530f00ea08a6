//! Losses a producer's stream could not recover. The engine NACKs what is missing and
//! the browser retransmits (RTX); what is still missing after [`RECOVERY_WINDOW`] never
//! will be, and every consumer is stuck on a broken picture until the next keyframe, so
//! the room asks the producer for one instead of letting the consumers stall
//! (docs/ARCHITECTURE.md, "Forwarding a producer's packets").
//!
//! Cost: O(1) per packet in order, O(holes) for a packet that fills a hole; at most
//! [`MAX_HOLES`] are tracked (a larger burst is beyond repair at once).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a hole may wait for its retransmission (several NACK rounds at the RTTs
/// where interactive video is usable; libwebrtc's receivers give up on NACK after
/// about as long).
pub const RECOVERY_WINDOW: Duration = Duration::from_millis(1000);
/// Holes tracked per stream; a burst larger than this asks for a keyframe at once.
pub const MAX_HOLES: usize = 512;

/// The holes of one incoming stream.
#[derive(Debug, Default, Clone)]
pub struct LossWatch {
    highest: Option<u64>,
    /// (sequence number, when it was found missing), oldest first.
    holes: VecDeque<(u64, Instant)>,
    /// A burst too large to track was seen at this time: beyond repair now.
    beyond: Option<Instant>,
}

impl LossWatch {
    /// A packet with extended sequence number `seq` arrived (media, padding or repair).
    pub fn packet(&mut self, seq: u64, now: Instant) {
        let Some(h) = self.highest else {
            self.highest = Some(seq);
            return;
        };
        if seq > h {
            self.highest = Some(seq);
            if (seq - h - 1) as usize > MAX_HOLES - self.holes.len() {
                self.holes.clear();
                self.beyond = Some(now);
                return;
            }
            self.holes.extend((h + 1..seq).map(|s| (s, now)));
        } else if let Some(i) = self.holes.iter().position(|(s, _)| *s == seq) {
            self.holes.remove(i);
        }
    }

    /// When the oldest hole expires (now, after a burst beyond repair).
    pub fn deadline(&self) -> Option<Instant> {
        let hole = self.holes.front().map(|(_, at)| *at + RECOVERY_WINDOW);
        match (self.beyond, hole) {
            (Some(b), Some(h)) => Some(b.min(h)),
            (b, h) => b.or(h),
        }
    }

    /// Forget what is beyond repair at `now`; whether anything was.
    pub fn expire(&mut self, now: Instant) -> bool {
        let mut any = self.beyond.take().is_some();
        while self.holes.front().is_some_and(|(_, at)| *at + RECOVERY_WINDOW <= now) {
            self.holes.pop_front();
            any = true;
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_filled_in_time_are_forgotten_the_others_expire() {
        let t0 = Instant::now();
        let mut w = LossWatch::default();
        for s in [10, 11, 14, 15] {
            w.packet(s, t0);
        }
        assert_eq!(w.deadline(), Some(t0 + RECOVERY_WINDOW), "12 and 13 are missing");
        w.packet(12, t0 + Duration::from_millis(100)); // a retransmission
        assert!(!w.expire(t0 + Duration::from_millis(999)));
        assert!(w.expire(t0 + RECOVERY_WINDOW), "13 never came");
        assert_eq!(w.deadline(), None);
        // Late or duplicate packets change nothing.
        w.packet(11, t0);
        assert_eq!(w.deadline(), None);
    }

    #[test]
    fn a_burst_beyond_the_tracked_holes_is_beyond_repair_at_once() {
        let t0 = Instant::now();
        let mut w = LossWatch::default();
        w.packet(1, t0);
        w.packet(2 + MAX_HOLES as u64 + 1, t0);
        assert_eq!(w.deadline(), Some(t0), "beyond repair now");
        assert!(w.expire(t0));
        assert_eq!(w.deadline(), None);
    }
}
