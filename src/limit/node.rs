//! The node-global side of one limit: a fixed table of keyed atomic slots that shards lease from.
//!
//! The table is set-associative: a key hashes to one set of [`WAYS`] slots. A missing key claims
//! an empty slot, else the least recently leased idle one (a full token bucket, a sliding window
//! with nothing in the last two windows, no concurrency slots out), else, for rate limits, the
//! least recently leased one. So memory is bounded by `max_keys` × 32 bytes (and a claim flag per
//! set of 8) whatever the number of distinct keys, and only the pages keys have landed in are
//! resident; forgetting a busy key under key pressure starts it again with a full budget.
//! Concurrency slots that are out are never forgotten (their holder will return them); when every
//! slot of a set is held, the key is not tracked and the request is admitted.
//!
//! Every lease is one or a few compare-and-swaps on the slot, done once per batch of tokens, never
//! per request; a lease never waits. Claiming a slot for a missing key takes the set's claim flag
//! for the handful of stores it needs: claims in one set are serialised, so two shards racing on
//! the same new key both end up in one slot, and a key is only published once its slot's state is
//! cleared (a lease made through the new key is never wiped). A slot reused for another key while
//! a shard still leases the old one may credit that one lease to the new key.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};

/// Slots per set.
pub const WAYS: usize = 8;
/// Largest batch of tokens a shard leases at once.
pub const MAX_LEASE: u64 = 64;

/// Window epochs are stored in the top 24 bits of a window word, counts in the low 40.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const EPOCH_MASK: u64 = (1 << 24) - 1;

/// What a slot's state words mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GCRA form of a token bucket: `a` is the theoretical arrival time (ns); a token is worth
    /// `interval` ns and the bucket holds `span / interval` = burst tokens.
    Bucket { interval: u64, span: u64 },
    /// Two fixed windows of `width` ns: `a` counts even epochs, `b` odd ones.
    Window { width: u64, limit: u64 },
    /// `a` counts concurrency slots leased out to shards.
    Concurrency { max: u64 },
}

#[repr(C, align(32))]
struct Slot {
    key: AtomicU64,
    a: AtomicU64,
    b: AtomicU64,
    /// Last lease (ns): the eviction order.
    used: AtomicU64,
}

// SAFETY: four AtomicU64 with no padding (32 bytes, 32-aligned); all-zero bytes are a valid empty
// slot (key 0 = empty).
unsafe impl bytemuck::Zeroable for Slot {}

/// The outcome of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grant {
    /// Slot the key lives in (`usize::MAX` when untracked).
    pub slot: usize,
    /// Tokens (or concurrency slots) granted; 0 = refused.
    pub n: u64,
    /// What is left in the node budget after this grant.
    pub left: u64,
    /// Until the budget is whole again (bucket full, window over), ns.
    pub reset_ns: u64,
    /// When refused: until a token is available, ns.
    pub retry_ns: u64,
    /// Window epoch the grant belongs to (sliding window only).
    pub epoch: u64,
}

pub struct NodeLimit {
    pub kind: Kind,
    slots: Box<[Slot]>,
    /// One claim flag per set (see [`NodeLimit::slot`]).
    claiming: Box<[AtomicBool]>,
    set_mask: usize,
}

/// Holds a set's claim flag; dropping it lets the next claim in.
struct Claim<'a>(&'a AtomicBool);

impl<'a> Claim<'a> {
    /// Waits for the flag. The holder does a few stores and no I/O, so the wait is a few
    /// nanoseconds unless its thread was preempted in between; then this thread yields.
    fn take(flag: &'a AtomicBool) -> Claim<'a> {
        let mut spins = 0u32;
        while flag
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        Claim(flag)
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Release);
    }
}

/// How many tokens to lease out of `avail` when `shards` share them: a fair share that shrinks as
/// the budget empties, so no shard can sit on what another needs.
pub fn lease_size(avail: u64, shards: u64) -> u64 {
    (avail / (2 * shards.max(1))).clamp(1, MAX_LEASE).min(avail)
}

/// The set a key hashes to (shared with the shard tables).
pub fn set_of(key: u64, set_mask: usize) -> usize {
    ((key >> 20) as usize) & set_mask
}

/// Sets needed for `keys` keys (a power of two).
pub fn sets_for(keys: usize) -> usize {
    keys.div_ceil(WAYS).next_power_of_two()
}

impl NodeLimit {
    pub fn new(kind: Kind, max_keys: usize) -> NodeLimit {
        let sets = sets_for(max_keys);
        NodeLimit {
            kind,
            // Zeroed memory straight from the allocator: pages are only committed once a key
            // lands in them, so an idle limit costs next to nothing whatever its max_keys.
            slots: bytemuck::zeroed_slice_box(sets * WAYS),
            claiming: bytemuck::zeroed_slice_box(sets),
            set_mask: sets - 1,
        }
    }

    /// Keys the table can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot of `key`: `hint` if it still holds the key, else found or claimed in its set.
    /// `None` when every slot of the set is pinned (concurrency slots out).
    ///
    /// Only a claim takes the set's flag; finding a key never waits. Under the flag the set is
    /// searched again (another shard may have just claimed the key), the victim is unpublished,
    /// its state cleared, and the key published last (Release, paired with the Acquire loads of
    /// lookups), so whoever finds the key leases from clean state.
    pub fn slot(&self, key: u64, hint: usize, now: u64) -> Option<usize> {
        if self
            .slots
            .get(hint)
            .is_some_and(|s| s.key.load(Acquire) == key)
        {
            return Some(hint);
        }
        let set_index = set_of(key, self.set_mask);
        let base = set_index * WAYS;
        let set = &self.slots[base..base + WAYS];
        let find = || set.iter().position(|s| s.key.load(Acquire) == key);
        if let Some(w) = find() {
            return Some(base + w);
        }
        let _claim = Claim::take(&self.claiming[set_index]);
        if let Some(w) = find() {
            return Some(base + w);
        }
        let w = self.victim(set, now)?;
        let s = &set[w];
        // Leases of the evicted key that already passed their key check may still land here;
        // they only debit the new key (or, a give-back, credit it one lease).
        s.key.store(0, Relaxed);
        s.a.store(0, Relaxed);
        s.b.store(0, Relaxed);
        s.used.store(now, Relaxed);
        s.key.store(key, Release);
        Some(base + w)
    }

    /// The way to give to a new key: empty, else the least recently used idle one, else (rate
    /// limits only) the least recently used.
    fn victim(&self, set: &[Slot], now: u64) -> Option<usize> {
        if let Some(w) = set.iter().position(|s| s.key.load(Relaxed) == 0) {
            return Some(w);
        }
        let lru = |idle_only: bool| {
            (0..set.len())
                .filter(|&w| !idle_only || self.idle(&set[w], now))
                .min_by_key(|&w| set[w].used.load(Relaxed))
        };
        match self.kind {
            Kind::Concurrency { .. } => lru(true),
            _ => lru(true).or_else(|| lru(false)),
        }
    }

    fn idle(&self, s: &Slot, now: u64) -> bool {
        match self.kind {
            Kind::Bucket { .. } => s.a.load(Relaxed) <= now,
            Kind::Window { width, .. } => {
                let e = now / width;
                let live = |w: u64| {
                    let ep = w >> COUNT_BITS;
                    w & COUNT_MASK != 0
                        && (ep == e & EPOCH_MASK || ep == e.wrapping_sub(1) & EPOCH_MASK)
                };
                !live(s.a.load(Relaxed)) && !live(s.b.load(Relaxed))
            }
            Kind::Concurrency { .. } => s.a.load(Relaxed) == 0,
        }
    }

    /// Leases a batch for `key` (see [`lease_size`]); `hint` is the slot it was in last time.
    pub fn lease(&self, key: u64, hint: usize, shards: u64, now: u64) -> Grant {
        let Some(i) = self.slot(key, hint, now) else {
            return Grant {
                slot: usize::MAX,
                ..Grant::default()
            };
        };
        let s = &self.slots[i];
        s.used.store(now, Relaxed);
        let mut g = match self.kind {
            Kind::Bucket { interval, span } => lease_bucket(&s.a, interval, span, shards, now),
            Kind::Window { width, limit } => lease_window(s, width, limit, shards, now),
            Kind::Concurrency { max } => lease_concurrency(&s.a, max, shards),
        };
        g.slot = i;
        g
    }

    /// Returns `n` unused tokens of a lease made in `epoch`.
    pub fn give_back(&self, key: u64, slot: usize, n: u64, epoch: u64, now: u64) {
        let Some(s) = self.slots.get(slot).filter(|s| s.key.load(Acquire) == key) else {
            return; // forgotten meanwhile: nothing to return to
        };
        if n == 0 {
            return;
        }
        match self.kind {
            Kind::Bucket { interval, .. } => {
                let _ = s.a.fetch_update(Relaxed, Relaxed, |tat| {
                    Some(tat.saturating_sub(n.saturating_mul(interval)))
                });
            }
            Kind::Window { width, .. } => {
                // Tokens of a past window were counted there; only the current window takes them back.
                if now / width != epoch {
                    return;
                }
                let word = if epoch & 1 == 0 { &s.a } else { &s.b };
                let _ = word.fetch_update(Relaxed, Relaxed, |w| {
                    (w >> COUNT_BITS == epoch & EPOCH_MASK)
                        .then(|| (w & !COUNT_MASK) | (w & COUNT_MASK).saturating_sub(n))
                });
            }
            Kind::Concurrency { .. } => {
                let _ =
                    s.a.fetch_update(Relaxed, Relaxed, |u| Some(u.saturating_sub(n)));
            }
        }
    }
}

fn lease_bucket(tat: &AtomicU64, interval: u64, span: u64, shards: u64, now: u64) -> Grant {
    let mut cur = tat.load(Relaxed);
    loop {
        let base = cur.max(now);
        let room = (now + span).saturating_sub(base);
        let avail = room / interval;
        if avail == 0 {
            return Grant {
                reset_ns: base - now,
                retry_ns: interval - room,
                ..Grant::default()
            };
        }
        let n = lease_size(avail, shards);
        let next = base + n * interval;
        match tat.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
            Ok(_) => {
                return Grant {
                    n,
                    left: avail - n,
                    reset_ns: next - now,
                    ..Grant::default()
                };
            }
            Err(actual) => cur = actual,
        }
    }
}

fn lease_window(s: &Slot, width: u64, limit: u64, shards: u64, now: u64) -> Grant {
    let e = now / width;
    let elapsed = now % width;
    let (cur_word, prev_word) = if e & 1 == 0 {
        (&s.a, &s.b)
    } else {
        (&s.b, &s.a)
    };
    let count_in = |w: u64, epoch: u64| {
        if w >> COUNT_BITS == epoch & EPOCH_MASK {
            w & COUNT_MASK
        } else {
            0
        }
    };
    let mut cw = cur_word.load(Relaxed);
    loop {
        let cur = count_in(cw, e);
        let prev = count_in(prev_word.load(Relaxed), e.wrapping_sub(1));
        // The previous window counts for the part of it still inside the sliding window.
        let carried = (u128::from(prev) * u128::from(width - elapsed)).div_ceil(u128::from(width));
        let estimate = u64::try_from(carried)
            .unwrap_or(u64::MAX)
            .saturating_add(cur);
        let avail = limit.saturating_sub(estimate);
        if avail == 0 {
            return Grant {
                reset_ns: width - elapsed,
                retry_ns: window_retry(width, elapsed, limit, cur, prev),
                epoch: e,
                ..Grant::default()
            };
        }
        let n = lease_size(avail, shards);
        let next = ((e & EPOCH_MASK) << COUNT_BITS) | (cur + n).min(COUNT_MASK);
        match cur_word.compare_exchange_weak(cw, next, Relaxed, Relaxed) {
            Ok(_) => {
                return Grant {
                    n,
                    left: avail - n,
                    reset_ns: width - elapsed,
                    epoch: e,
                    ..Grant::default()
                };
            }
            Err(actual) => cw = actual,
        }
    }
}

/// Until a sliding window admits one more request, assuming no other traffic.
fn window_retry(width: u64, elapsed: u64, limit: u64, cur: u64, prev: u64) -> u64 {
    let w = u128::from(width);
    // Admitted again once ceil(p × (width − t) / width) ≤ limit − c − 1 for window counts (p, c).
    let at = |p: u64, room: u64| -> u128 {
        if p == 0 {
            return 0;
        }
        w.saturating_sub(u128::from(room) * w / u128::from(p))
    };
    let t = if cur < limit {
        at(prev, limit - cur - 1).saturating_sub(u128::from(elapsed))
    } else {
        // Only the next window can admit: its previous window is this one.
        u128::from(width - elapsed) + at(cur, limit - 1)
    };
    u64::try_from(t).unwrap_or(u64::MAX).max(1_000_000)
}

fn lease_concurrency(out: &AtomicU64, max: u64, shards: u64) -> Grant {
    let mut cur = out.load(Relaxed);
    loop {
        let avail = max.saturating_sub(cur);
        if avail == 0 {
            return Grant {
                retry_ns: 1_000_000_000,
                ..Grant::default()
            };
        }
        let n = lease_size(avail, shards);
        match out.compare_exchange_weak(cur, cur + n, Relaxed, Relaxed) {
            Ok(_) => {
                return Grant {
                    n,
                    left: avail - n,
                    ..Grant::default()
                };
            }
            Err(actual) => cur = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn bucket_grants_shrink_and_refill() {
        // 10 per second, burst 10.
        let n = NodeLimit::new(
            Kind::Bucket {
                interval: S / 10,
                span: S,
            },
            16,
        );
        let now = 100 * S;
        let g = n.lease(7, usize::MAX, 1, now);
        assert_eq!((g.n, g.left), (5, 5));
        let g2 = n.lease(7, g.slot, 1, now);
        assert_eq!((g2.n, g2.left), (2, 3));
        let mut total = g.n + g2.n;
        loop {
            let g = n.lease(7, g.slot, 1, now);
            if g.n == 0 {
                assert_eq!(g.retry_ns, S / 10);
                assert_eq!(g.reset_ns, S);
                break;
            }
            total += g.n;
        }
        assert_eq!(total, 10);
        n.give_back(7, g.slot, 3, 0, now);
        assert_eq!(n.lease(7, g.slot, 1, now).n, 1);
        // A quarter second later: 2.5 tokens refilled on top of the 2 left.
        assert_eq!(n.lease(7, g.slot, 100, now + S / 4).n, 1);
    }

    #[test]
    fn window_counts_previous_window_by_overlap() {
        let n = NodeLimit::new(
            Kind::Window {
                width: 10 * S,
                limit: 100,
            },
            16,
        );
        let start = 1000 * S;
        let mut got = 0;
        loop {
            let g = n.lease(1, usize::MAX, 2, start);
            if g.n == 0 {
                break;
            }
            got += g.n;
        }
        assert_eq!(got, 100);
        // Halfway through the next window half of the previous one still counts.
        let half = start + 15 * S;
        let mut again = 0;
        loop {
            let g = n.lease(1, usize::MAX, 1, half);
            if g.n == 0 {
                assert!(g.retry_ns > 0 && g.retry_ns <= 5 * S, "{}", g.retry_ns);
                break;
            }
            again += g.n;
        }
        assert_eq!(again, 50);
    }

    #[test]
    fn concurrency_slots_are_pinned_until_returned() {
        let n = NodeLimit::new(Kind::Concurrency { max: 2 }, 1);
        // One set of WAYS slots; fill every way with a key holding a slot.
        for k in 1..=WAYS as u64 {
            assert_eq!(n.lease(k << 20, usize::MAX, 1, 1).n, 1);
        }
        assert_eq!(n.lease(99 << 20, usize::MAX, 1, 1).slot, usize::MAX);
        let s = n.slot(1 << 20, usize::MAX, 1).unwrap();
        n.give_back(1 << 20, s, 1, 0, 1);
        assert_eq!(n.lease(99 << 20, usize::MAX, 1, 1).n, 1);
    }

    #[test]
    fn a_million_keys_fit_in_a_fixed_table() {
        let n = NodeLimit::new(
            Kind::Bucket {
                interval: S,
                span: S,
            },
            1024,
        );
        let cap = n.capacity();
        for k in 1..=1_000_000u64 {
            let key = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            assert_eq!(n.lease(key, usize::MAX, 2, k).n, 1);
        }
        assert_eq!(n.capacity(), cap);
    }
}
