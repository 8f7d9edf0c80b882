//! Consistent hashing (ketama-style ring) for `balance = "consistent_hash"`.
//!
//! Each target owns `POINTS_PER_WEIGHT × weight` points on a 64-bit ring, placed by hashing the
//! target's address with the point number; a key goes to the first point at or after its hash. When
//! a target is added or removed, only the keys between its points and their predecessors move:
//! about 1/N of the keys for N targets (tested below, property-tested in `tests/`).
//!
//! The hash is FNV-1a with a splitmix64 finaliser: stable across processes and versions, so every
//! shard and every gateway node maps a key to the same target. Lookup is a binary search.

use std::net::SocketAddr;

/// Points per unit of weight (ketama uses 160 per server).
const POINTS_PER_WEIGHT: u64 = 160;
/// Upper bound on the ring size; heavy weights are scaled down to fit.
const MAX_POINTS: u64 = 200_000;

/// A stable 64-bit hash of `bytes`.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser: FNV alone clusters similar inputs.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[derive(Debug, Clone)]
pub struct HashRing {
    /// (position, target index), sorted by position.
    points: Vec<(u64, u32)>,
}

impl HashRing {
    /// Builds the ring for targets given as (address, weight).
    pub fn new(targets: &[(SocketAddr, u32)]) -> HashRing {
        let total: u64 = targets
            .iter()
            .map(|(_, w)| u64::from(*w) * POINTS_PER_WEIGHT)
            .sum();
        let scale = if total > MAX_POINTS {
            MAX_POINTS as f64 / total as f64
        } else {
            1.0
        };
        let mut points = Vec::new();
        for (i, (addr, weight)) in targets.iter().enumerate() {
            let n = ((u64::from(*weight) * POINTS_PER_WEIGHT) as f64 * scale).max(1.0) as u64;
            let id = addr.to_string();
            for p in 0..n {
                let mut key = Vec::with_capacity(id.len() + 8);
                key.extend_from_slice(id.as_bytes());
                key.push(b'#');
                key.extend_from_slice(p.to_string().as_bytes());
                points.push((hash64(&key), i as u32));
            }
        }
        points.sort_unstable();
        HashRing { points }
    }

    /// The target for `key`: the first point at or after it, skipping targets `skip` rejects (a
    /// target that just failed); falls back to the owner when every target is skipped.
    pub fn pick(&self, key: u64, skip: impl Fn(usize) -> bool) -> usize {
        if self.points.is_empty() {
            return 0;
        }
        let start = self.points.partition_point(|(p, _)| *p < key);
        let n = self.points.len();
        let owner = self.points[start % n].1 as usize;
        if !skip(owner) {
            return owner;
        }
        (1..n)
            .map(|k| self.points[(start + k) % n].1 as usize)
            .find(|&t| !skip(t))
            .unwrap_or(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<(SocketAddr, u32)> {
        (0..n)
            .map(|i| (SocketAddr::from(([10, 0, 0, 1], 8000 + i)), 1))
            .collect()
    }

    #[test]
    fn same_key_same_target_and_even_spread() {
        let ring = HashRing::new(&addrs(4));
        let mut counts = [0u32; 4];
        for k in 0..40_000u32 {
            let h = hash64(&k.to_le_bytes());
            let t = ring.pick(h, |_| false);
            assert_eq!(t, ring.pick(h, |_| false));
            counts[t] += 1;
        }
        for c in counts {
            assert!((7_000..13_000).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn weights_shift_share() {
        let mut t = addrs(2);
        t[0].1 = 3;
        let ring = HashRing::new(&t);
        let heavy = (0..20_000u32)
            .filter(|k| ring.pick(hash64(&k.to_le_bytes()), |_| false) == 0)
            .count();
        assert!((13_000..17_000).contains(&heavy), "{heavy}");
    }

    #[test]
    fn adding_a_target_moves_about_one_nth() {
        let before = HashRing::new(&addrs(5));
        let after = HashRing::new(&addrs(6));
        let keys = 30_000u32;
        let moved = (0..keys)
            .filter(|k| {
                let h = hash64(&k.to_le_bytes());
                before.pick(h, |_| false) != after.pick(h, |_| false)
            })
            .count();
        // Ideal: 1/6 of the keys, all of them to the new target.
        let frac = moved as f64 / f64::from(keys);
        assert!(frac < 0.25, "{frac}");
        for k in 0..keys {
            let h = hash64(&k.to_le_bytes());
            let (b, a) = (before.pick(h, |_| false), after.pick(h, |_| false));
            assert!(a == b || a == 5, "a key moved between old targets");
        }
    }

    #[test]
    fn skipping_a_failed_target_uses_the_next_one() {
        let ring = HashRing::new(&addrs(3));
        for k in 0..1000u32 {
            let h = hash64(&k.to_le_bytes());
            let owner = ring.pick(h, |_| false);
            let alt = ring.pick(h, |t| t == owner);
            assert_ne!(alt, owner);
            assert_eq!(ring.pick(h, |_| true), owner);
        }
    }
}
