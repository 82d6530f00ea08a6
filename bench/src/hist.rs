//! Log-linear latency histogram (32 sub-buckets per power of two: ≈3 % precision)
//! with the exact maximum.

const SUB: usize = 32;
const BUCKETS: usize = SUB + 40 * SUB;

#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    pub n: u64,
    pub max: u64,
    pub sum: u128,
}

impl Default for Hist {
    fn default() -> Self {
        Hist { counts: vec![0; BUCKETS], n: 0, max: 0, sum: 0 }
    }
}

fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // >= 5
    let m = ((v >> (e - 5)) as usize) & (SUB - 1);
    (SUB + (e - 5) * SUB + m).min(BUCKETS - 1)
}

/// Middle of a bucket.
fn value(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let e = (i - SUB) / SUB + 5;
    let m = ((i - SUB) % SUB) as u64;
    let lo = (SUB as u64 + m) << (e - 5);
    lo + (1u64 << (e - 5)) / 2
}

impl Hist {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.n += 1;
        self.sum += v as u128;
        if v > self.max {
            self.max = v;
        }
    }

    /// The q-quantile (0..=1); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let want = ((self.n as f64 * q).ceil() as u64).clamp(1, self.n);
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= want {
                return value(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn quantiles_are_within_a_few_percent() {
        let mut h = Hist::default();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.04, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.04, "{p99}");
        assert_eq!(h.max, 1_000_000);
    }
}
