//! Limiter tests: several shards (plain objects here) sharing node tables on a virtual clock, each
//! ticking every `TICK` as a shard does. Property tests check the bounds documented in the module.

use std::sync::Arc;

use proptest::prelude::*;

use super::node::{Kind, NodeLimit};
use super::shard::ShardLimit;

const S: u64 = 1_000_000_000;
const TICK: u64 = 100_000_000;

struct Sim {
    shards: Vec<ShardLimit>,
    next_tick: Vec<u64>,
}

impl Sim {
    fn new(kind: Kind, shards: usize, max_keys: usize) -> Sim {
        let node = Arc::new(NodeLimit::new(kind, max_keys));
        Sim {
            shards: (0..shards)
                .map(|_| ShardLimit::new(node.clone(), shards))
                .collect(),
            next_tick: (0..shards as u64).map(|s| TICK + s * TICK / 3).collect(),
        }
    }

    /// Runs every shard tick due by `now`.
    fn advance(&mut self, now: u64) {
        for (s, next) in self.next_tick.iter_mut().enumerate() {
            while *next <= now {
                self.shards[s].tick(*next);
                *next += TICK;
            }
        }
    }
}

/// One step: which shard gets a request, after how long.
fn steps() -> impl Strategy<Value = Vec<(usize, u64)>> {
    prop::collection::vec((0usize..4, 0u64..40_000_000), 1..600)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Over any interval t a key is admitted at most burst + rate × (t + tick) times.
    #[test]
    fn token_bucket_bound_holds_under_any_skew(
        steps in steps(),
        shards in 1usize..4,
        limit in 1u64..200,
        burst in 1u64..50,
    ) {
        let interval = S / limit;
        let mut sim = Sim::new(Kind::Bucket { interval, span: interval * burst }, shards, 64);
        let mut now = 10 * S;
        let mut admitted = Vec::new();
        for (shard, dt) in steps {
            now += dt;
            sim.advance(now);
            if sim.shards[shard % shards].take(42, now).is_ok() {
                admitted.push(now);
            }
        }
        for i in 0..admitted.len() {
            for j in i..admitted.len() {
                let count = (j - i + 1) as u64;
                let bound = burst + (admitted[j] - admitted[i] + TICK) / interval + 1;
                prop_assert!(count <= bound, "{count} admitted in {} ns, bound {bound}", admitted[j] - admitted[i]);
            }
        }
    }

    /// No fixed window admits more than the limit.
    #[test]
    fn sliding_window_never_exceeds_a_window(
        steps in steps(),
        shards in 1usize..4,
        limit in 1u64..100,
    ) {
        let width = S;
        let mut sim = Sim::new(Kind::Window { width, limit }, shards, 64);
        let mut now = 10 * S;
        let mut per_window = std::collections::HashMap::<u64, u64>::new();
        for (shard, dt) in steps {
            now += dt;
            sim.advance(now);
            if sim.shards[shard % shards].take(7, now).is_ok() {
                *per_window.entry(now / width).or_default() += 1;
            }
        }
        for (w, n) in per_window {
            prop_assert!(n <= limit, "window {w}: {n} > {limit}");
        }
    }

    /// Requests in flight for a key never exceed max, and slots come back.
    #[test]
    fn concurrency_never_exceeds_max(
        ops in prop::collection::vec((0usize..4, any::<bool>(), 0u64..50_000_000), 1..400),
        shards in 1usize..4,
        max in 1u64..10,
    ) {
        let mut sim = Sim::new(Kind::Concurrency { max }, shards, 16);
        let mut now = S;
        let mut held: Vec<Vec<usize>> = vec![Vec::new(); shards];
        for (shard, start, dt) in ops {
            now += dt;
            sim.advance(now);
            let s = shard % shards;
            if start {
                if let Ok(Some(e)) = sim.shards[s].acquire(9, now) {
                    held[s].push(e);
                }
            } else if let Some(e) = held[s].pop() {
                sim.shards[s].release(e);
            }
            let in_flight: usize = held.iter().map(Vec::len).sum();
            prop_assert!(in_flight as u64 <= max);
        }
        for (s, h) in held.iter_mut().enumerate() {
            for e in h.drain(..) {
                sim.shards[s].release(e);
            }
        }
        sim.advance(now + 2 * TICK);
        for s in 0..shards {
            let mut got = Vec::new();
            while let Ok(Some(e)) = sim.shards[s].acquire(9, now + 2 * TICK) {
                got.push(e);
                prop_assert!(got.len() as u64 <= max);
            }
            prop_assert_eq!(got.len() as u64, max, "shard {} after everything was returned", s);
            for e in got {
                sim.shards[s].release(e);
            }
            sim.advance(now + 2 * TICK + (s as u64 + 1) * TICK);
        }
    }
}

/// A bucket of 100 per hour shared by `shards`: practically no refill during a test.
fn hundred_per_hour(shards: usize) -> Sim {
    let interval = 3600 * S / 100;
    Sim::new(
        Kind::Bucket {
            interval,
            span: interval * 100,
        },
        shards,
        64,
    )
}

#[test]
fn one_shard_spends_the_whole_budget_others_hold_nothing() {
    let mut sim = hundred_per_hour(2);
    let now = 10 * S;
    sim.advance(now);
    let ok = (0..300)
        .filter(|_| sim.shards[0].take(1, now).is_ok())
        .count();
    assert_eq!(ok, 100);
    assert!(sim.shards[1].take(1, now).is_err());
}

#[test]
fn spread_load_admits_the_budget_once_leases_return() {
    let mut sim = hundred_per_hour(2);
    let mut now = 10 * S;
    let mut ok = 0;
    for i in 0..300 {
        now += 1_000_000;
        sim.advance(now);
        ok += usize::from(sim.shards[i % 2].take(1, now).is_ok());
    }
    sim.advance(now + TICK);
    ok += (0..10)
        .filter(|i| sim.shards[i % 2].take(1, now + TICK).is_ok())
        .count();
    assert_eq!(ok, 100);
}

#[test]
fn remaining_counts_down_exactly_on_one_shard() {
    let interval = 60 * S / 5;
    let sim = Sim::new(
        Kind::Bucket {
            interval,
            span: interval * 5,
        },
        1,
        64,
    );
    let now = 100 * S;
    let rem: Vec<u64> = (0..5)
        .map(|_| {
            sim.shards[0]
                .take(3, now)
                .map(|q| q.remaining)
                .unwrap_or(99)
        })
        .collect();
    assert_eq!(rem, vec![4, 3, 2, 1, 0]);
    let refused = sim.shards[0].take(3, now).unwrap_err();
    assert_eq!(refused.retry_ns, interval);
}

#[test]
fn a_million_keys_keep_memory_fixed() {
    let sim = Sim::new(
        Kind::Bucket {
            interval: S,
            span: S,
        },
        2,
        4096,
    );
    let caps = (sim.shards[0].capacity(), sim.shards[0].node.capacity());
    let rss = || {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
            * 4
    };
    let before = rss();
    for k in 1..=1_000_000u64 {
        let key = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        assert!(sim.shards[(k % 2) as usize].take(key, k * 1000).is_ok());
    }
    let grown = rss().saturating_sub(before);
    assert_eq!(
        (sim.shards[0].capacity(), sim.shards[0].node.capacity()),
        caps
    );
    // Other tests run in parallel threads of this process, so allow them some growth.
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB over 1M keys");
}

/// Two threads race to claim and drain each of many new keys at once: a key's budget is granted
/// once in all, whether its slot was empty or taken over from an evicted key.
#[test]
fn racing_claims_grant_a_budget_once() {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    const LIMIT: u64 = 150;
    const ROUNDS: u64 = 4000;
    for max_keys in [1 << 16, 16] {
        let node = Arc::new(NodeLimit::new(
            Kind::Window {
                width: 3600 * S,
                limit: LIMIT,
            },
            max_keys,
        ));
        let arrived = Arc::new(AtomicU64::new(0));
        let granted: Arc<Vec<AtomicU64>> =
            Arc::new((0..ROUNDS).map(|_| AtomicU64::new(0)).collect());
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (node, arrived, granted) = (node.clone(), arrived.clone(), granted.clone());
                std::thread::spawn(move || {
                    for r in 0..ROUNDS {
                        crate::testutil::start_together(&arrived, 2, r);
                        let key = (r + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                        let mut hint = usize::MAX;
                        loop {
                            let g = node.lease(key, hint, 2, 10 * S);
                            if g.n == 0 {
                                break;
                            }
                            hint = g.slot;
                            granted[r as usize].fetch_add(g.n, SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in racers {
            t.join().unwrap();
        }
        for (r, g) in granted.iter().enumerate() {
            let g = g.load(SeqCst);
            assert_eq!(
                g, LIMIT,
                "key {r} (max_keys {max_keys}) was granted {g} of {LIMIT}"
            );
        }
    }
}
