//! Bandwidth adaptation, the pure part (docs/ARCHITECTURE.md, "Bandwidth adaptation"):
//! what each layer of a producer measures, how a receive transport's estimate is shared
//! among its video consumers, and which layer each consumer should get. Times are passed
//! in; nothing here touches a clock, so the tests drive it with a simulated one.

use std::time::{Duration, Instant};

/// Width of one bucket of a layer's rate window.
const BUCKET: Duration = Duration::from_millis(250);
/// Buckets in the window: a layer's bitrate is its bytes over the last 2 s.
const BUCKETS: usize = 8;
/// A layer is active when a packet arrived this recently.
pub const ACTIVE_WITHIN: Duration = Duration::from_millis(1000);
/// A layer's rate is trusted once it has been measured this long.
const MIN_MEASURED: Duration = Duration::from_millis(500);
/// Bytes a packet costs on the wire beyond its payload (RTP header, extensions, SRTP tag).
pub const PACKET_OVERHEAD: usize = 40;

/// A switch up (or a restart after a stop) needs the target's rate × this to fit...
pub const UP_MARGIN: f64 = 1.15;
/// ...continuously for this long.
pub const UP_HOLD: Duration = Duration::from_secs(3);
/// The video stops only when not even the lowest layer has fitted for this long: an
/// estimate can dip while the link is underused (the estimator has nothing to measure
/// until it probes), and a consumer that starts is given the lowest layer meanwhile.
pub const STOP_HOLD: Duration = Duration::from_secs(3);

/// A rate with the up-switch margin (rounded up: what a share must reach).
pub fn with_margin(bps: u64) -> u64 {
    (bps as f64 * UP_MARGIN).ceil() as u64
}

/// The measured rate of one layer (encoding) of a producer.
#[derive(Debug, Clone, Default)]
struct LayerRate {
    /// (bucket number, bytes) ring.
    buckets: [(u64, u64); BUCKETS],
    first: Option<Instant>,
    last: Option<Instant>,
}

/// The layers of one producer: bytes per layer over a sliding window.
#[derive(Debug, Clone)]
pub struct LayerMeter {
    epoch: Instant,
    layers: Vec<LayerRate>,
}

impl LayerMeter {
    pub fn new(now: Instant) -> LayerMeter {
        LayerMeter { epoch: now, layers: Vec::new() }
    }

    fn bucket(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_millis() / BUCKET.as_millis()) as u64
    }

    /// A packet of `layer` with `payload` bytes arrived.
    pub fn packet(&mut self, layer: u32, payload: usize, now: Instant) {
        let n = self.bucket(now);
        let l = layer as usize;
        if self.layers.len() <= l {
            self.layers.resize_with(l + 1, LayerRate::default);
        }
        let r = &mut self.layers[l];
        let slot = &mut r.buckets[n as usize % BUCKETS];
        if slot.0 != n {
            *slot = (n, 0);
        }
        slot.1 += (payload + PACKET_OVERHEAD) as u64;
        r.first.get_or_insert(now);
        r.last = Some(now);
    }

    /// A layer's bitrate in bits per second over the window (0 if never seen).
    pub fn bitrate(&self, layer: u32, now: Instant) -> u64 {
        let Some(r) = self.layers.get(layer as usize) else { return 0 };
        let Some(first) = r.first else { return 0 };
        let n = self.bucket(now);
        let lo = n.saturating_sub(BUCKETS as u64 - 1);
        let bytes: u64 = r.buckets.iter().filter(|(b, _)| *b >= lo && *b <= n).map(|(_, v)| v).sum();
        // From the start of the oldest bucket counted (or the first packet) to now.
        let start = (self.epoch + BUCKET * lo as u32).max(first);
        let span = now.saturating_duration_since(start).max(BUCKET);
        (bytes as f64 * 8.0 / span.as_secs_f64()) as u64
    }

    /// Whether a layer sends now and has been measured long enough to be chosen.
    pub fn active(&self, layer: u32, now: Instant) -> bool {
        let Some(r) = self.layers.get(layer as usize) else { return false };
        match (r.first, r.last) {
            (Some(f), Some(l)) => {
                now.saturating_duration_since(l) <= ACTIVE_WITHIN && now.saturating_duration_since(f) >= MIN_MEASURED
            }
            _ => false,
        }
    }

    /// The active layers of `count` as (layer, bits per second), lowest rate first: a
    /// layer is "low" by what it measures, not by its position (browsers send layers
    /// whose rates do not follow their order).
    pub fn ranked(&self, count: usize, now: Instant) -> Vec<(u32, u64)> {
        let mut v: Vec<(u32, u64)> =
            (0..count as u32).filter(|l| self.active(*l, now)).map(|l| (l, self.bitrate(l, now))).collect();
        v.sort_by_key(|(l, r)| (*r, *l));
        v
    }
}

/// Share `budget` bits per second among consumers that each want `demands[i]`: nobody
/// gets more than it wants, the rest is split evenly (water-filling).
pub fn shares(budget: u64, demands: &[u64]) -> Vec<u64> {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|i| demands[*i]);
    let mut out = vec![0; demands.len()];
    let mut left = budget;
    for (k, i) in order.iter().enumerate() {
        let fair = left / (demands.len() - k) as u64;
        let give = demands[*i].min(fair);
        out[*i] = give;
        left -= give;
    }
    out
}

/// What one consumer forwards, decided from its share of the estimate.
#[derive(Debug, Clone, Default)]
pub struct LayerChoice {
    /// The layer the consumer should forward (it switches at that layer's keyframe);
    /// `None` before the first decision or while stopped.
    pub target: Option<u32>,
    /// Even the lowest layer did not fit: the consumer's video is stopped.
    pub stopped: bool,
    /// Since when a better layer (or, stopped, the lowest) has fitted with the margin,
    /// and which.
    fits: Option<(u32, Instant)>,
    /// Since when not even the lowest layer has fitted.
    starving: Option<Instant>,
}

/// A change of a consumer's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Forward this layer from its next keyframe on.
    Switch(u32),
    /// Stop the video: nothing fits.
    Stop,
}

impl LayerChoice {
    /// Decide with the active layers (`ranked`, lowest rate first), the best rank the
    /// consumer's preferred profile allows (`cap`) and its share of the estimate (bps).
    /// Down is at once, up (and a restart) only after the better layer fitted with
    /// `UP_MARGIN` for `UP_HOLD`; a stop only after nothing fitted for `STOP_HOLD` (the
    /// lowest layer meanwhile).
    pub fn decide(&mut self, now: Instant, ranked: &[(u32, u64)], cap: usize, share: u64) -> Option<Change> {
        if ranked.is_empty() {
            return None; // nothing measured: keep what is forwarded
        }
        let lowest = ranked[0].0;
        if ranked[0].1 <= share {
            self.starving = None;
        } else if !self.stopped {
            let since = *self.starving.get_or_insert(now);
            if now.saturating_duration_since(since) < STOP_HOLD {
                // Nothing fits, not for long yet: the lowest layer meanwhile.
                if self.target == Some(lowest) {
                    return None;
                }
                self.target = Some(lowest);
                self.fits = None;
                return Some(Change::Switch(lowest));
            }
        }
        let allowed = &ranked[..ranked.len().min(cap + 1)];
        let fits = |r: u64| r <= share;
        let fits_up = |r: u64| with_margin(r) <= share;
        let best_fit = allowed.iter().rev().find(|(_, r)| fits(*r)).map(|(l, _)| *l);
        let best_up = allowed.iter().rev().find(|(_, r)| fits_up(*r)).map(|(l, _)| *l);
        let rank_of = |l: u32| allowed.iter().position(|(x, _)| *x == l);
        let current = self.target.and_then(rank_of);
        let change = match (self.stopped, self.target, current) {
            // Stopped: restart at the best layer that fits with the margin, once it has
            // for long enough.
            (true, _, _) => self.hold(now, best_up).map(Change::Switch),
            // First decision: what fits now.
            (false, None, _) => Some(best_fit.map_or(Change::Stop, Change::Switch)),
            // The target went inactive or is above the cap: move at once.
            (false, Some(_), None) => Some(best_fit.map_or(Change::Stop, Change::Switch)),
            (false, Some(t), Some(rank)) => {
                if !fits(allowed[rank].1) {
                    // Down from a layer the link no longer carries: its estimate is
                    // falling, so to a layer that fits with the margin where one does
                    // (a layer that only just fits would be left again a second later,
                    // the link overloaded meanwhile).
                    Some(best_up.or(best_fit).map_or(Change::Stop, Change::Switch))
                } else {
                    let better = best_up.filter(|l| rank_of(*l).is_some_and(|r| r > rank));
                    self.hold(now, better).filter(|l| *l != t).map(Change::Switch)
                }
            }
        };
        match change {
            Some(Change::Switch(l)) => {
                self.target = Some(l);
                self.stopped = false;
                self.fits = None;
            }
            Some(Change::Stop) => {
                self.target = None;
                self.stopped = true;
                self.fits = None;
                self.starving = None;
            }
            None => {}
        }
        change
    }

    /// `candidate` has fitted since when? Returns it once it has for `UP_HOLD`.
    fn hold(&mut self, now: Instant, candidate: Option<u32>) -> Option<u32> {
        let Some(c) = candidate else {
            self.fits = None;
            return None;
        };
        match self.fits {
            Some((l, since)) if l == c || self.target.is_some() => {
                // A steady better fit (even if which layer is best moved up further).
                self.fits = Some((c, since));
                (now.saturating_duration_since(since) >= UP_HOLD).then_some(c)
            }
            _ => {
                self.fits = Some((c, now));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Feed `meter` `secs` seconds of each (layer, bps) at 50 packets per second.
    fn feed(meter: &mut LayerMeter, t0: Instant, from_ms: u64, secs: u64, layers: &[(u32, u64)]) {
        for k in 0..secs * 50 {
            let t = ms(t0, from_ms + k * 20);
            for (l, bps) in layers {
                let bytes = (*bps / 8 / 50) as usize;
                meter.packet(*l, bytes.saturating_sub(PACKET_OVERHEAD), t);
            }
        }
    }

    #[test]
    fn a_layers_rate_is_measured_over_the_window_and_it_goes_inactive_when_silent() {
        let t0 = Instant::now();
        let mut m = LayerMeter::new(t0);
        feed(&mut m, t0, 0, 3, &[(0, 150_000), (1, 2_900_000), (2, 480_000)]);
        let now = ms(t0, 3000);
        let within = |got: u64, want: u64| (got as f64 - want as f64).abs() / (want as f64) < 0.05;
        assert!(within(m.bitrate(0, now), 150_000), "{}", m.bitrate(0, now));
        assert!(within(m.bitrate(1, now), 2_900_000), "{}", m.bitrate(1, now));
        // Ranked by rate, not by position: layer 2 is the middle one.
        let r = m.ranked(3, now);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 2, 1]);
        // Layer 1 stops: inactive a second later, and its rate drains.
        feed(&mut m, t0, 3000, 2, &[(0, 150_000), (2, 480_000)]);
        let later = ms(t0, 5000);
        assert!(!m.active(1, later));
        assert_eq!(m.ranked(3, later).len(), 2);
        assert_eq!(m.bitrate(1, ms(t0, 5100)), 0, "out of the window");
        // A layer seen for less than MIN_MEASURED is not offered yet.
        m.packet(4, 1000, later);
        assert!(!m.active(4, ms(t0, 5200)));
    }

    #[test]
    fn down_from_a_layer_that_no_longer_fits_goes_where_the_margin_fits() {
        let t0 = Instant::now();
        let ranked = [(1, 150_000), (2, 480_000), (0, 1_400_000)];
        let mut c = LayerChoice::default();
        assert_eq!(c.decide(t0, &ranked, 2, 3_000_000), Some(Change::Switch(0)));
        // 500k carries the medium layer, but not with the margin: the low one.
        assert_eq!(c.decide(ms(t0, 500), &ranked, 2, 500_000), Some(Change::Switch(1)));
        let mut c = LayerChoice::default();
        c.decide(t0, &ranked, 2, 3_000_000);
        // 560k carries it with the margin.
        assert_eq!(c.decide(ms(t0, 500), &ranked, 2, 560_000), Some(Change::Switch(2)));
        // Only the lowest, without the margin: still the lowest (not a stop).
        assert_eq!(c.decide(ms(t0, 1000), &ranked, 2, 160_000), Some(Change::Switch(1)));
    }

    #[test]
    fn shares_fill_small_demands_and_split_the_rest_evenly() {
        assert_eq!(shares(1000, &[100, 900, 900]), [100, 450, 450]);
        assert_eq!(shares(1000, &[100, 200]), [100, 200], "nobody gets more than asked");
        assert_eq!(shares(300, &[500, 500, 500]), [100, 100, 100]);
        assert!(shares(0, &[1, 2]).iter().all(|s| *s == 0));
        assert!(shares(1000, &[]).is_empty());
    }

    const LAYERS: [(u32, u64); 3] = [(0, 150_000), (2, 480_000), (1, 1_400_000)];

    #[test]
    fn first_decision_takes_the_best_that_fits_capped_by_the_profile() {
        let t = Instant::now();
        let mut c = LayerChoice::default();
        assert_eq!(c.decide(t, &LAYERS, 2, 2_000_000), Some(Change::Switch(1)));
        let mut c = LayerChoice::default();
        assert_eq!(c.decide(t, &LAYERS, 2, 600_000), Some(Change::Switch(2)));
        let mut c = LayerChoice::default();
        assert_eq!(c.decide(t, &LAYERS, 0, 5_000_000), Some(Change::Switch(0)), "low: the lowest-rate layer");
        let mut c = LayerChoice::default();
        assert_eq!(c.decide(t, &LAYERS, 2, 100_000), Some(Change::Switch(0)), "nothing fits: the lowest, not a stop yet");
        assert!(!c.stopped);
        let mut c = LayerChoice::default();
        assert_eq!(c.decide(t, &[], 2, 100_000), None, "nothing measured: nothing decided");
    }

    #[test]
    fn down_is_immediate_up_waits_for_a_steady_fit() {
        let t0 = Instant::now();
        let mut c = LayerChoice::default();
        assert_eq!(c.decide(t0, &LAYERS, 2, 2_000_000), Some(Change::Switch(1)));
        // The estimate falls: down at once, to the best that fits.
        assert_eq!(c.decide(ms(t0, 500), &LAYERS, 2, 400_000), Some(Change::Switch(0)));
        // It recovers: the middle layer fits with the margin, but only for 2.5 s.
        for k in 1..=5 {
            assert_eq!(c.decide(ms(t0, 500 + k * 500), &LAYERS, 2, 600_000), None, "step {k}");
        }
        // A dip resets the wait.
        assert_eq!(c.decide(ms(t0, 3500), &LAYERS, 2, 500_000), None);
        for k in 1..=5 {
            assert_eq!(c.decide(ms(t0, 3500 + k * 500), &LAYERS, 2, 600_000), None);
        }
        assert_eq!(c.decide(ms(t0, 6500), &LAYERS, 2, 600_000), None, "2.5 s after the dip");
        assert_eq!(c.decide(ms(t0, 7000), &LAYERS, 2, 600_000), Some(Change::Switch(2)), "3 s steady: up");
        // Without the margin, a layer that merely fits is not worth going up to.
        assert_eq!(c.decide(ms(t0, 20_000), &LAYERS, 2, 1_450_000), None);
        assert_eq!(c.decide(ms(t0, 30_000), &LAYERS, 2, 1_450_000), None);
    }

    #[test]
    fn stop_when_nothing_fits_and_restart_after_a_steady_fit() {
        let t0 = Instant::now();
        let mut c = LayerChoice::default();
        c.decide(t0, &LAYERS, 2, 600_000);
        assert_eq!(c.decide(ms(t0, 100), &LAYERS, 2, 120_000), Some(Change::Switch(0)), "down to the lowest at once");
        assert_eq!(c.decide(ms(t0, 2000), &LAYERS, 2, 120_000), None, "which is kept a while");
        // A moment when it fits starts the wait again.
        assert_eq!(c.decide(ms(t0, 2500), &LAYERS, 2, 150_000), None);
        assert_eq!(c.decide(ms(t0, 3000), &LAYERS, 2, 120_000), None);
        assert_eq!(c.decide(ms(t0, 5900), &LAYERS, 2, 120_000), None);
        assert_eq!(c.decide(ms(t0, 6000), &LAYERS, 2, 120_000), Some(Change::Stop), "3 s of nothing fitting");
        assert_eq!(c.decide(ms(t0, 6100), &LAYERS, 2, 120_000), None, "stays stopped");
        // 150 kbit/s fits, but not with the margin: still stopped.
        assert_eq!(c.decide(ms(t0, 7000), &LAYERS, 2, 160_000), None);
        assert_eq!(c.decide(ms(t0, 11_000), &LAYERS, 2, 160_000), None);
        assert_eq!(c.decide(ms(t0, 11_500), &LAYERS, 2, 200_000), None, "the wait starts");
        assert_eq!(c.decide(ms(t0, 14_400), &LAYERS, 2, 200_000), None);
        assert_eq!(c.decide(ms(t0, 14_500), &LAYERS, 2, 200_000), Some(Change::Switch(0)));
        assert!(!c.stopped);
    }

    #[test]
    fn a_target_that_goes_inactive_or_above_the_cap_is_left_at_once() {
        let t0 = Instant::now();
        let mut c = LayerChoice::default();
        c.decide(t0, &LAYERS, 2, 5_000_000);
        assert_eq!(c.target, Some(1));
        // Layer 1 stops sending (the browser's own estimate fell).
        let two = [(0u32, 150_000u64), (2, 480_000)];
        assert_eq!(c.decide(ms(t0, 100), &two, 2, 5_000_000), Some(Change::Switch(2)));
        // The preferred profile becomes low.
        assert_eq!(c.decide(ms(t0, 200), &LAYERS, 0, 5_000_000), Some(Change::Switch(0)));
        // Only one layer left and it fits: kept.
        assert_eq!(c.decide(ms(t0, 300), &[(0, 150_000)], 2, 5_000_000), None);
    }
}
