//! A shard-local pseudo-random generator (xorshift64*) for load balancing and retry jitter: no
//! cryptographic quality needed, no shared state, no syscall.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::hash_ring::hash64;
use crate::runtime::watchdog::now_ms;

pub struct Rng(Cell<u64>);

impl Default for Rng {
    /// Seeded from the clock and a process-wide count of generators, so shards (and upstreams) do
    /// not walk the same sequence. Created with a config, never per request.
    fn default() -> Rng {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        Rng(Cell::new(
            hash64(&(n ^ now_ms().rotate_left(32)).to_le_bytes()) | 1,
        ))
    }
}

impl Rng {
    /// A generator starting from `seed` (made non-zero).
    pub fn seeded(seed: u64) -> Rng {
        Rng(Cell::new(seed | 1))
    }

    pub fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..=max`.
    pub fn below_or_eq(&self, max: u64) -> u64 {
        if max == 0 { 0 } else { self.next() % (max + 1) }
    }
}
