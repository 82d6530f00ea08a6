//! Per-consumer rewriting of sequence numbers and timestamps: a consumer's stream is
//! numbered continuously whatever happens to its source (pause and resume, a new SSRC,
//! a simulcast layer switch, padding that is not forwarded, a stray packet).

use std::collections::VecDeque;
use std::time::Instant;

/// A sequence number this far ahead of the last one (RFC 3550 A.1's MAX_DROPOUT) or this
/// far behind it (a generous MAX_MISORDER: retransmissions arrive up to a second late) is
/// not part of the numbering in use.
const MAX_DROPOUT: u64 = 3000;
const MAX_MISORDER: u64 = 1000;
/// Padding packets remembered for late packets' numbering (see `skip`).
const MAX_SKIPPED: usize = 64;

/// Per-consumer rewriting of sequence numbers and timestamps: continuous across
/// pause/resume, producer changes and layer switches, and across input packets that are
/// not forwarded (padding).
#[derive(Debug, Clone, Default)]
pub struct ConsumerForwarding {
    started: bool,
    /// out_seq = in_seq + seq_delta (extended numbers), for packets after the last skip.
    seq_delta: i64,
    /// out_ts = in_ts + ts_delta (wrapping).
    ts_delta: u32,
    last_out_seq: u64,
    last_out_ts: u32,
    last_wallclock: Option<Instant>,
    /// The next packet re-bases the offsets to continue after the last one sent.
    resync: bool,
    /// Extended input sequence number the current offsets were based on.
    base_in_seq: u64,
    /// The highest input sequence number of the current numbering.
    last_in_seq: u64,
    /// Input numbers skipped (not forwarded) after which `seq_delta` was lowered by one.
    skipped: VecDeque<u64>,
    /// A packet far outside the numbering was seen; the numbering moves there if the next
    /// packet is this one (two in a row, as RFC 3550 A.1 does).
    probation: Option<u64>,
    /// Simulcast: the encoding currently forwarded.
    pub layer: Option<u32>,
    /// Simulcast VP8: picture numbering continuous across layer switches.
    pub vp8: super::vp8_ids::Vp8Continuity,
}

impl ConsumerForwarding {
    /// The source's numbering changes (new SSRCs, layer switch): re-base.
    pub fn source_changed(&mut self) {
        if self.started {
            self.resync = true;
        }
    }

    /// After a pause: re-base so the browser sees no gap.
    pub fn resumed(&mut self) {
        self.source_changed();
    }

    /// Where `in_seq` stands against the numbering in use.
    fn place(&self, in_seq: u64) -> Place {
        if in_seq > self.last_in_seq {
            if in_seq - self.last_in_seq <= MAX_DROPOUT {
                return Place::Ahead;
            }
        } else if self.last_in_seq - in_seq <= MAX_MISORDER {
            return if in_seq < self.base_in_seq { Place::BeforeBase } else { Place::Behind };
        }
        Place::Far
    }

    /// An input packet that will not be forwarded (padding): the packets after it are
    /// numbered one lower, so the consumer sees no gap. A skipped packet that is late (the
    /// packets after it went out already) cannot be hidden and is ignored.
    pub fn skip(&mut self, in_seq: u64) {
        if !self.started || self.resync || self.place(in_seq) != Place::Ahead {
            return;
        }
        self.seq_delta -= 1;
        self.last_in_seq = in_seq;
        if self.skipped.len() == MAX_SKIPPED {
            self.skipped.pop_front();
        }
        self.skipped.push_back(in_seq);
    }

    /// Output (seq, ts) for an input packet; `None` drops it: older than the start of
    /// this consumer's numbering, or a first packet far outside the numbering in use.
    pub fn rewrite(
        &mut self,
        in_seq: u64,
        in_ts: u32,
        wallclock: Instant,
        clock_rate: u32,
    ) -> Option<(u64, u32)> {
        if self.started && !self.resync {
            match self.place(in_seq) {
                Place::Ahead => {}
                Place::Behind => {}
                Place::BeforeBase => return None,
                Place::Far if self.probation == Some(in_seq) => self.resync = true,
                Place::Far => {
                    self.probation = Some(in_seq + 1);
                    return None;
                }
            }
        }
        if !self.started || self.resync {
            let (out_seq, out_ts) = if !self.started {
                // The first packet must be below 65536 (SRTP ROC 0: docs/ARCHITECTURE.md,
                // "str0m and the protocol").
                (1000 + (in_seq % 1000), in_ts)
            } else {
                let elapsed = self
                    .last_wallclock
                    .map(|w| wallclock.saturating_duration_since(w))
                    .unwrap_or_default();
                let step = ((elapsed.as_secs_f64() * clock_rate as f64) as u32).max(1);
                (self.last_out_seq + 1, self.last_out_ts.wrapping_add(step))
            };
            self.seq_delta = out_seq as i64 - in_seq as i64;
            self.ts_delta = out_ts.wrapping_sub(in_ts);
            self.base_in_seq = in_seq;
            self.last_in_seq = in_seq;
            self.skipped.clear();
            self.started = true;
            self.resync = false;
        }
        self.probation = None;
        let delta = if in_seq > self.last_in_seq {
            self.last_in_seq = in_seq;
            self.seq_delta
        } else {
            // A late packet was numbered before the skips that came after it.
            let later_skips = self.skipped.iter().filter(|s| **s > in_seq).count();
            self.seq_delta + later_skips as i64
        };
        let out_seq = (in_seq as i64 + delta) as u64;
        let out_ts = in_ts.wrapping_add(self.ts_delta);
        if out_seq > self.last_out_seq || self.last_wallclock.is_none() {
            self.last_out_seq = out_seq;
            self.last_out_ts = out_ts;
            self.last_wallclock = Some(wallclock);
        }
        Some((out_seq, out_ts))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Newer than any packet of the numbering, within the dropout bound.
    Ahead,
    /// Older than the newest, within the misorder bound (late or retransmitted).
    Behind,
    /// Within the misorder bound but older than the first packet of this numbering.
    BeforeBase,
    /// Outside both bounds.
    Far,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rewrite_starts_below_65536_and_stays_continuous_across_resync() {
        let t0 = Instant::now();
        let mut f = ConsumerForwarding::default();
        let (s1, ts1) = f.rewrite(70_000, 5000, t0, 90000).unwrap();
        assert!(s1 < 65536);
        assert_eq!(ts1, 5000);
        let (s2, _) = f.rewrite(70_001, 8000, t0, 90000).unwrap();
        assert_eq!(s2, s1 + 1);
        // older than the base: dropped
        assert!(f.rewrite(69_999, 1, t0, 90000).is_none());
        // pause, the source jumps, resume: continuous output
        f.resumed();
        let (s3, ts3) = f
            .rewrite(90_000, 123, t0 + Duration::from_millis(500), 90000)
            .unwrap();
        assert_eq!(s3, s2 + 1);
        assert_eq!(ts3, 8000 + 45000);
        let (s4, ts4) = f.rewrite(90_001, 3123, t0, 90000).unwrap();
        assert_eq!((s4, ts4), (s3 + 1, ts3 + 3000));
    }

    #[test]
    fn skipped_padding_leaves_no_gap_and_late_packets_keep_their_numbers() {
        let t0 = Instant::now();
        let mut f = ConsumerForwarding::default();
        let out = |f: &mut ConsumerForwarding, s: u64| f.rewrite(s, 0, t0, 90000).unwrap().0;
        let a = out(&mut f, 100);
        assert_eq!(out(&mut f, 101), a + 1);
        // 103 is lost for now; 102 and 104 are padding.
        f.skip(102);
        f.skip(104);
        assert_eq!(out(&mut f, 105), a + 3, "101, (103), 105: no hole for the padding");
        // 103 arrives late (a retransmission): it keeps the number it would have had.
        assert_eq!(out(&mut f, 103), a + 2);
        assert_eq!(out(&mut f, 106), a + 4);
        // Padding before the first packet does not start the numbering.
        let mut g = ConsumerForwarding::default();
        g.skip(50_000);
        assert_eq!(g.rewrite(7, 0, t0, 90000).unwrap().0, 1007);
    }

    #[test]
    fn one_packet_far_off_is_dropped_and_a_new_numbering_is_taken_after_two_in_a_row() {
        let t0 = Instant::now();
        let mut f = ConsumerForwarding::default();
        let a = f.rewrite(12_069, 0, t0, 90000).unwrap().0; // a stray base (RTX space)
        // The media's own numbering is far behind: the first packet is held back...
        assert!(f.rewrite(1746, 0, t0, 90000).is_none());
        // ...the second in a row re-bases, continuing after the last output.
        assert_eq!(f.rewrite(1747, 0, t0, 90000).unwrap().0, a + 1);
        assert_eq!(f.rewrite(1748, 0, t0, 90000).unwrap().0, a + 2);
        // A single stray packet far ahead is dropped and changes nothing.
        assert!(f.rewrite(40_000, 0, t0, 90000).is_none());
        assert_eq!(f.rewrite(1749, 0, t0, 90000).unwrap().0, a + 3);
        // Retransmissions before this numbering's base are still dropped.
        assert!(f.rewrite(1740, 0, t0, 90000).is_none());
    }
}
