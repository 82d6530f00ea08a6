//! A deadline heap: one armed deadline per key, lazily deleted.
//!
//! `set` records the key's deadline and pushes it on a binary heap; an entry whose time
//! is no longer the key's armed deadline is stale and skipped when it reaches the top.
//! Costs: `set` O(log n), `pop_due` O(log n) per entry (stale ones included), `next`
//! amortised O(1). The heap is rebuilt from the armed deadlines when stale entries
//! outnumber live ones, so its size stays O(keys).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Instant;

#[derive(Debug)]
pub struct Timers<K> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    armed: HashMap<K, Instant>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            armed: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> Timers<K> {
    /// Arm `key` at `at`, or disarm it (`None`).
    pub fn set(&mut self, key: K, at: Option<Instant>) {
        match at {
            None => {
                self.armed.remove(&key);
            }
            Some(t) => {
                if self.armed.insert(key, t) == Some(t) {
                    return;
                }
                self.heap.push(Reverse((t, key)));
                if self.heap.len() > 64 + 4 * self.armed.len() {
                    self.rebuild();
                }
            }
        }
    }

    /// The deadline armed for `key`.
    pub fn get(&self, key: K) -> Option<Instant> {
        self.armed.get(&key).copied()
    }

    /// The earliest armed deadline.
    pub fn next(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// A key whose deadline is due at `now` (disarmed as it is returned), earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        self.drop_stale();
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= now => {
                let Reverse((_, k)) = self.heap.pop().expect("peeked");
                self.armed.remove(&k);
                Some(k)
            }
            _ => None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.armed.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse((t, k))) = self.heap.peek() {
            if self.armed.get(k) == Some(t) {
                return;
            }
            self.heap.pop();
        }
    }

    fn rebuild(&mut self) {
        self.heap = self.armed.iter().map(|(k, t)| Reverse((*t, *k))).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_first_rearm_and_disarm() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = Timers::default();
        t.set(1u32, Some(ms(30)));
        t.set(2, Some(ms(10)));
        t.set(3, Some(ms(20)));
        t.set(2, Some(ms(40))); // moved later: the old entry is stale
        t.set(3, None);
        assert_eq!(t.next(), Some(ms(30)));
        assert_eq!(t.pop_due(ms(25)), None);
        assert_eq!(t.pop_due(ms(50)), Some(1));
        assert_eq!(t.pop_due(ms(50)), Some(2));
        assert_eq!(t.pop_due(ms(50)), None);
        assert!(t.is_empty());
    }

    #[test]
    fn the_heap_stays_bounded_under_constant_rescheduling() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        for i in 0..100_000u64 {
            t.set(i % 10, Some(t0 + Duration::from_micros(i)));
        }
        assert_eq!(t.len(), 10);
        assert!(t.heap.len() <= 64 + 40, "{}", t.heap.len());
        let mut order = Vec::new();
        while let Some(k) = t.pop_due(t0 + Duration::from_secs(1)) {
            order.push(k);
        }
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }
}
