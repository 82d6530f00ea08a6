//! The link model of one direction, sans-IO: given a packet's arrival time and size it decides
//! whether the packet is lost, how many copies leave, and when each copy is released. It owns
//! no socket and reads no clock, so it is tested in virtual time.
//!
//! Order of the stages for a datagram: loss (random, then the Gilbert–Elliott chain) →
//! duplication → per copy: the rate limiter's drop-tail queue (serialisation at the rate) →
//! delay + jitter → explicit reordering → `keep_order` clamp.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{Direction, JitterDist, LinkConfig};
use super::counters::{add, bump, LinkStats, Stats};
use super::rng::Rng;

/// When one copy of a packet leaves the link, and the packet's arrival sequence number (used to
/// count reordering at delivery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Release {
    pub at: Instant,
    pub seq: u64,
}

pub(crate) struct Link {
    cfg: LinkConfig,
    loss_rng: Rng,
    burst_rng: Rng,
    dup_rng: Rng,
    jitter_rng: Rng,
    reorder_rng: Rng,
    /// Gilbert–Elliott state.
    bad: bool,
    /// When the bottleneck finishes sending what is queued (rate limit only).
    busy_until: Option<Instant>,
    /// Latest release of a datagram that was not explicitly held back (`keep_order`).
    last_release: Option<Instant>,
    next_seq: u64,
    max_delivered_seq: Option<u64>,
    stats: Arc<Stats>,
    dir: Direction,
}

fn tx_time(bytes: u64, rate_bps: u64) -> Duration {
    Duration::from_nanos((bytes as u128 * 8 * 1_000_000_000 / rate_bps as u128) as u64)
}

impl Link {
    pub fn new(cfg: LinkConfig, seed: u64, dir: Direction, stats: Arc<Stats>) -> Link {
        let stream = |k: u64| Rng::new(seed, dir.index() as u64 * 16 + k);
        Link {
            cfg,
            loss_rng: stream(1),
            burst_rng: stream(2),
            dup_rng: stream(3),
            jitter_rng: stream(4),
            reorder_rng: stream(5),
            bad: false,
            busy_until: None,
            last_release: None,
            next_seq: 0,
            max_delivered_seq: None,
            stats,
            dir,
        }
    }

    fn s(&self) -> &LinkStats {
        &self.stats.links[self.dir.index()]
    }

    /// Replaces the impairments. Packets already scheduled keep their release times; the queue
    /// backlog they represent still delays later packets; random streams continue.
    pub fn set_config(&mut self, cfg: LinkConfig) {
        if cfg.rate_bps.is_none() {
            self.busy_until = None;
        }
        if cfg.burst.is_none() {
            self.bad = false;
        }
        self.cfg = cfg;
    }

    /// The departure time from the rate limiter of `len` bytes arriving at `now`, or `None` when
    /// the drop-tail queue is full.
    fn enqueue(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let Some(rate) = self.cfg.rate_bps else {
            return Some(now);
        };
        let limit = self.cfg.queue_limit().expect("rate set");
        let start = self.busy_until.map_or(now, |b| b.max(now));
        let backlog = start - now;
        let tx = tx_time(len as u64 + self.cfg.overhead_bytes as u64, rate);
        if !backlog.is_zero() && backlog + tx > limit {
            return None;
        }
        self.busy_until = Some(start + tx);
        Some(start + tx)
    }

    /// Departure + delay + jitter, never before the departure.
    fn delayed(&mut self, departure: Instant) -> Instant {
        let jitter_ns = self.cfg.jitter.as_nanos() as f64;
        let offset = match self.cfg.jitter_dist {
            JitterDist::Uniform => (2.0 * self.jitter_rng.unit() - 1.0) * jitter_ns,
            JitterDist::Normal => self.jitter_rng.normal() * jitter_ns,
        };
        let total = (self.cfg.delay.as_nanos() as f64 + offset).max(0.0);
        departure + Duration::from_nanos(total.round() as u64)
    }

    /// A datagram of `len` bytes arrived at `now`: pushes 0, 1 or 2 releases onto `out`.
    pub fn datagram(&mut self, now: Instant, len: usize, out: &mut Vec<Release>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        bump(&self.s().packets_in);
        add(&self.s().bytes_in, len as u64);

        // Draw every random number each time, so one impairment's decisions do not depend on
        // whether another is enabled.
        let random_loss = self.loss_rng.chance(self.cfg.loss);
        let burst_loss = match self.cfg.burst {
            Some(b) => {
                let flip = self.burst_rng.chance(if self.bad { b.p_bg } else { b.p_gb });
                if flip {
                    self.bad = !self.bad;
                }
                self.burst_rng.chance(if self.bad { b.loss_bad } else { b.loss_good })
            }
            None => false,
        };
        let dup = self.dup_rng.chance(self.cfg.duplicate);
        if random_loss || burst_loss {
            bump(&self.s().dropped_loss);
            return;
        }
        let copies = if dup {
            bump(&self.s().duplicated);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let Some(departure) = self.enqueue(now, len) else {
                bump(&self.s().dropped_queue);
                continue;
            };
            let mut at = self.delayed(departure);
            let held = self.reorder_rng.chance(self.cfg.reorder);
            if held {
                at += self.cfg.reorder_delay;
            } else {
                if self.cfg.keep_order {
                    if let Some(last) = self.last_release {
                        at = at.max(last);
                    }
                }
                self.last_release = Some(self.last_release.map_or(at, |l| l.max(at)));
            }
            out.push(Release { at, seq });
        }
    }

    /// Whether a stream chunk of up to `len` bytes fits the rate limiter's queue now; if not,
    /// the time at which it will.
    pub fn stream_fits(&self, now: Instant, len: usize) -> Result<(), Instant> {
        let (Some(rate), Some(busy)) = (self.cfg.rate_bps, self.busy_until) else {
            return Ok(());
        };
        let limit = self.cfg.queue_limit().expect("rate set");
        let backlog = busy.saturating_duration_since(now);
        let tx = tx_time(len as u64 + self.cfg.overhead_bytes as u64, rate);
        if backlog.is_zero() || backlog + tx <= limit {
            return Ok(());
        }
        Err(now + (backlog + tx - limit))
    }

    /// A stream chunk of `len` bytes read at `now` (after [`Link::stream_fits`] said yes): its
    /// release time, never before `not_before` (the previous chunk of the same connection), so
    /// a byte stream is never reordered. No loss, duplication or explicit reordering.
    pub fn stream_chunk(&mut self, now: Instant, len: usize, not_before: Option<Instant>) -> Instant {
        bump(&self.s().packets_in);
        add(&self.s().bytes_in, len as u64);
        let departure = match self.cfg.rate_bps {
            Some(rate) => {
                let start = self.busy_until.map_or(now, |b| b.max(now));
                let end = start + tx_time(len as u64 + self.cfg.overhead_bytes as u64, rate);
                self.busy_until = Some(end);
                end
            }
            None => now,
        };
        let at = self.delayed(departure);
        not_before.map_or(at, |n| at.max(n))
    }

    /// A datagram copy with sequence `seq` was sent.
    pub fn delivered(&mut self, seq: u64, len: usize) {
        bump(&self.s().delivered);
        add(&self.s().bytes_delivered, len as u64);
        match self.max_delivered_seq {
            Some(max) if seq < max => bump(&self.s().reordered),
            _ => self.max_delivered_seq = Some(seq),
        }
    }

    /// A datagram due at its release time was sent late (more than 1 ms).
    pub fn released_late(&self) {
        bump(&self.s().released_late);
    }

    /// A stream chunk was released toward its destination.
    pub fn stream_delivered(&self, len: usize) {
        bump(&self.s().delivered);
        add(&self.s().bytes_delivered, len as u64);
    }

    /// A scheduled copy was dropped by the relay's own bound on delayed packets.
    pub fn drop_queue(&self) {
        bump(&self.s().dropped_queue);
    }

    /// A scheduled copy could not be sent.
    pub fn drop_other(&self) {
        bump(&self.s().dropped_other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netem::config::BurstLoss;

    fn link(cfg: LinkConfig, seed: u64) -> (Link, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        (Link::new(cfg, seed, Direction::Up, stats.clone()), stats)
    }

    /// Feeds `n` packets of `len` bytes every `gap`; returns (arrival, releases) per packet.
    fn feed(l: &mut Link, t0: Instant, n: usize, len: usize, gap: Duration) -> Vec<(Instant, Vec<Release>)> {
        (0..n)
            .map(|i| {
                let now = t0 + gap * i as u32;
                let mut out = Vec::new();
                l.datagram(now, len, &mut out);
                (now, out)
            })
            .collect()
    }

    #[test]
    fn clean_link_releases_at_once_and_delay_is_exact() {
        let t0 = Instant::now();
        let (mut l, _) = link(LinkConfig::default(), 1);
        for (at, rel) in feed(&mut l, t0, 100, 100, Duration::from_millis(1)) {
            assert_eq!(rel.len(), 1);
            assert_eq!(rel[0].at, at);
        }
        let (mut l, _) = link(LinkConfig { delay: Duration::from_millis(50), ..Default::default() }, 1);
        for (at, rel) in feed(&mut l, t0, 100, 100, Duration::from_millis(1)) {
            assert_eq!(rel[0].at - at, Duration::from_millis(50));
        }
    }

    #[test]
    fn random_loss_and_duplication_rates() {
        let t0 = Instant::now();
        let cfg = LinkConfig { loss: 0.1, duplicate: 0.05, ..Default::default() };
        let (mut l, stats) = link(cfg, 3);
        let out = feed(&mut l, t0, 100_000, 100, Duration::from_micros(10));
        let lost = out.iter().filter(|(_, r)| r.is_empty()).count() as f64 / 1e5;
        let dup = out.iter().filter(|(_, r)| r.len() == 2).count() as f64 / 1e5;
        assert!((lost - 0.1).abs() < 0.005, "lost {lost}");
        // Duplication applies to the packets that were not lost.
        assert!((dup - 0.045).abs() < 0.004, "dup {dup}");
        let c = stats.links[0].snapshot();
        assert_eq!(c.packets_in, 100_000);
        assert_eq!(c.dropped_loss as f64, (lost * 1e5).round());
    }

    fn loss_runs(out: &[(Instant, Vec<Release>)]) -> (f64, f64) {
        let mut runs = Vec::new();
        let mut cur = 0;
        for (_, r) in out {
            if r.is_empty() {
                cur += 1;
            } else if cur > 0 {
                runs.push(cur);
                cur = 0;
            }
        }
        let lost: usize = runs.iter().sum();
        (lost as f64 / out.len() as f64, lost as f64 / runs.len() as f64)
    }

    #[test]
    fn gilbert_elliott_bursts_have_the_expected_length() {
        let t0 = Instant::now();
        let b = BurstLoss { p_gb: 0.02, p_bg: 0.2, loss_bad: 1.0, loss_good: 0.0 };
        let (mut l, _) = link(LinkConfig { burst: Some(b), ..Default::default() }, 5);
        let (rate, run) = loss_runs(&feed(&mut l, t0, 200_000, 100, Duration::from_micros(10)));
        assert!((rate - b.mean_loss()).abs() < 0.01, "rate {rate}");
        assert!((run - 5.0).abs() < 0.3, "mean run {run}");
        let (mut l, _) = link(LinkConfig { loss: b.mean_loss(), ..Default::default() }, 5);
        let (rate2, run2) = loss_runs(&feed(&mut l, t0, 200_000, 100, Duration::from_micros(10)));
        assert!((rate2 - b.mean_loss()).abs() < 0.005, "rate {rate2}");
        assert!(run2 < 1.2, "random loss mean run {run2}");
    }

    #[test]
    fn rate_limit_serialises_and_drops_at_the_tail() {
        let t0 = Instant::now();
        let cfg = LinkConfig { rate_bps: Some(1_000_000), queue: Some(Duration::from_millis(200)), ..Default::default() };
        let (mut l, stats) = link(cfg, 1);
        // 1200-byte packets every 4.8 ms = 2 Mbit/s for 10 s.
        let out = feed(&mut l, t0, 2084, 1200, Duration::from_micros(4800));
        let rel: Vec<(Instant, Instant)> =
            out.iter().filter_map(|(a, r)| r.first().map(|r| (*a, r.at))).collect();
        let tx = Duration::from_micros(9600);
        for w in rel.windows(2) {
            assert!(w[1].1 - w[0].1 >= tx, "two packets closer than their serialisation time");
        }
        for (a, r) in &rel {
            assert!(*r - *a <= Duration::from_millis(200) + tx, "queued longer than the limit");
        }
        let span = (rel.last().unwrap().1 - rel[0].1).as_secs_f64();
        let bps = (rel.len() - 1) as f64 * 1200.0 * 8.0 / span;
        assert!((bps - 1e6).abs() < 1e4, "rate {bps}");
        let c = stats.links[0].snapshot();
        assert_eq!(c.dropped_queue as usize, 2084 - rel.len());
        assert!(c.dropped_queue > 900, "dropped {}", c.dropped_queue);
    }

    #[test]
    fn keep_order_never_reorders_jitter_otherwise_does() {
        let t0 = Instant::now();
        let jitter = LinkConfig {
            delay: Duration::from_millis(30),
            jitter: Duration::from_millis(20),
            ..Default::default()
        };
        for (keep, dist) in [(true, JitterDist::Uniform), (true, JitterDist::Normal), (false, JitterDist::Uniform)] {
            let (mut l, _) = link(LinkConfig { keep_order: keep, jitter_dist: dist, ..jitter.clone() }, 9);
            let out = feed(&mut l, t0, 5000, 100, Duration::from_millis(2));
            let inversions = out.windows(2).filter(|w| w[1].1[0].at < w[0].1[0].at).count();
            for (a, r) in &out {
                let d = r[0].at - *a;
                assert!(d >= Duration::from_millis(10) || dist == JitterDist::Normal, "{d:?}");
            }
            if keep {
                assert_eq!(inversions, 0);
            } else {
                assert!(inversions > 500, "{inversions} inversions");
            }
        }
    }

    #[test]
    fn explicit_reordering_holds_packets_back() {
        let t0 = Instant::now();
        let cfg = LinkConfig { reorder: 0.1, reorder_delay: Duration::from_millis(10), keep_order: true, ..Default::default() };
        let (mut l, _) = link(cfg, 11);
        let out = feed(&mut l, t0, 10_000, 100, Duration::from_millis(1));
        let held = out.iter().filter(|(a, r)| r[0].at - *a == Duration::from_millis(10)).count();
        assert!((held as f64 / 1e4 - 0.1).abs() < 0.01, "held {held}");
        // The others keep their order and are not delayed by the held ones.
        let others: Vec<Instant> = out.iter().filter(|(a, r)| r[0].at == *a).map(|(_, r)| r[0].at).collect();
        assert_eq!(others.len() + held, 10_000);
    }

    #[test]
    fn delivery_counts_reordering() {
        let (mut l, stats) = link(LinkConfig::default(), 1);
        for seq in [0, 1, 3, 2, 4, 4, 5] {
            l.delivered(seq, 10);
        }
        let c = stats.links[0].snapshot();
        assert_eq!(c.reordered, 1);
        assert_eq!(c.delivered, 7);
        assert_eq!(c.bytes_delivered, 70);
    }

    #[test]
    fn same_seed_same_decisions() {
        let t0 = Instant::now();
        let cfg = LinkConfig { loss: 0.2, duplicate: 0.1, jitter: Duration::from_millis(5), ..Default::default() };
        let (mut a, _) = link(cfg.clone(), 77);
        let (mut b, _) = link(cfg.clone(), 77);
        let (mut c, _) = link(cfg, 78);
        let fa = feed(&mut a, t0, 1000, 100, Duration::from_millis(1));
        let fb = feed(&mut b, t0, 1000, 100, Duration::from_millis(1));
        let fc = feed(&mut c, t0, 1000, 100, Duration::from_millis(1));
        assert_eq!(fa, fb);
        assert_ne!(fa, fc);
    }

    #[test]
    fn loss_pattern_does_not_depend_on_other_impairments() {
        let t0 = Instant::now();
        let (mut a, _) = link(LinkConfig { loss: 0.3, ..Default::default() }, 4);
        let (mut b, _) = link(LinkConfig { loss: 0.3, jitter: Duration::from_millis(3), duplicate: 0.2, ..Default::default() }, 4);
        let la: Vec<bool> = feed(&mut a, t0, 1000, 100, Duration::from_millis(1)).iter().map(|(_, r)| r.is_empty()).collect();
        let lb: Vec<bool> = feed(&mut b, t0, 1000, 100, Duration::from_millis(1)).iter().map(|(_, r)| r.is_empty()).collect();
        assert_eq!(la, lb);
    }

    #[test]
    fn stream_waits_for_room_and_keeps_order() {
        let t0 = Instant::now();
        let cfg = LinkConfig {
            rate_bps: Some(1_000_000),
            queue: Some(Duration::from_millis(100)),
            jitter: Duration::from_millis(20),
            delay: Duration::from_millis(20),
            ..Default::default()
        };
        let (mut l, _) = link(cfg, 2);
        let mut now = t0;
        let mut last = None;
        let mut bytes = 0;
        for _ in 0..2000 {
            match l.stream_fits(now, 1500) {
                Ok(()) => {
                    let at = l.stream_chunk(now, 1500, last);
                    assert!(last.is_none_or(|p| at >= p));
                    last = Some(at);
                    bytes += 1500;
                }
                Err(wake) => {
                    assert!(wake > now);
                    now = wake;
                }
            }
        }
        // Read as fast as allowed: the link carries 1 Mbit/s, plus the 100 ms queue at the start.
        let secs = (now - t0).as_secs_f64();
        let bps = (bytes as f64 * 8.0 - 100_000.0) / secs;
        assert!((bps - 1e6).abs() < 2e4, "stream rate {bps}");
    }
}
