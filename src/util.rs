//! Small helpers: a fast non-cryptographic PRNG for ids and SSRCs.

use std::time::{SystemTime, UNIX_EPOCH};

/// SplitMix64: fast, good enough for consumer ids and SSRCs (not for secrets: ICE
/// credentials come from str0m, DTLS keys from aws-lc).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn from_entropy() -> Self {
        let mut seed = [0u8; 8];
        // Best effort OS entropy through std's RandomState, mixed with the clock.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        );
        seed.copy_from_slice(&h.finish().to_le_bytes());
        Rng(u64::from_le_bytes(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}
