//! Circuit breaker of an upstream (`[upstreams.NAME.breaker]`): closed → open → half-open → closed.
//!
//! Request path (per request): one relaxed load of the node-global state word; while half-open, one
//! `fetch_sub` on the probe permits. Outcomes (success, failure, slow) are counted in shard-local
//! cells. Sync tick (per shard, `server.tick`): the shard adds its counts to node-global atomic
//! window buckets and then evaluates the trip rules on the global totals, so every shard's
//! failures count, and an open breaker is seen by every shard on its next request: the breaker
//! opens within one tick of the failures that trip it.
//!
//! Trip rules (any of them): `consecutive_failures` in a row across the node; `failure_ratio` of
//! the requests in the sliding `window` once it holds `min_requests`; `slow_call_ratio` of calls
//! slower than `slow_call_threshold`, likewise. Open lasts `open_duration`, doubled for each trip in
//! a row (up to `max_open_duration`); then `half_open_probes` requests are let through node-wide:
//! that many successes close the breaker, one failure opens it again.
//!
//! Accuracy: the window has 10 buckets; counts racing a bucket's rotation at a tick boundary may be
//! lost, and the node-wide consecutive count is assembled from per-tick shard reports (a success on
//! one shard resets it at that shard's next tick). Both err on the side of not tripping.
//!
//! `max_in_flight` is a node-wide concurrency cap: shards lease its slots in batches from a
//! node-global count, like rate-limit tokens (`crate::limit`), and return spare ones each tick, so
//! requests in flight never exceed it whatever the skew between shards, with no shared counter
//! touched per request.

use std::cell::Cell;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};

use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::limit::node::{Kind, NodeLimit};

use crate::config::BreakerConfig;

const BUCKETS: u64 = 10;
const OPEN: u64 = 1 << 63;
const HALF_OPEN: u64 = 1 << 62;
/// Half-open being set up: one shard resets the probe counts; the others refuse meanwhile.
const OPENING_PROBES: u64 = HALF_OPEN | 1;

#[derive(Default)]
struct Bucket {
    epoch: AtomicU64,
    total: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// Node-global breaker state of one upstream, shared by every shard.
pub struct Breaker {
    pub config: BreakerConfig,
    /// Node-wide `max_in_flight` slots (when set).
    pub in_flight: Option<Arc<NodeLimit>>,
    pub name: String,
    /// 0 = closed; OPEN | until_ms = open; HALF_OPEN = half-open; OPENING_PROBES = turning half-open.
    state: CachePadded<AtomicU64>,
    permits: AtomicI64,
    probe_successes: AtomicU32,
    trips_in_row: AtomicU32,
    trips: AtomicU64,
    consecutive: AtomicU64,
    buckets: Box<[Bucket]>,
    bucket_ms: u64,
}

/// Whether a request may go to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes {
        probe: bool,
    },
    /// Open (or no probe permit left): retry after this many milliseconds.
    No {
        retry_after_ms: u64,
    },
}

/// State for logs, tests and status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

/// One shard's counts since its last tick.
#[derive(Default)]
pub struct LocalCounts {
    total: Cell<u64>,
    slow: Cell<u64>,
    streak: super::streak::Streak,
}

impl LocalCounts {
    /// Counts one try's outcome.
    pub fn record(&self, failed: bool, slow: bool) {
        self.total.set(self.total.get() + 1);
        self.streak.record(failed);
        if slow {
            self.slow.set(self.slow.get() + 1);
        }
    }
}

impl Breaker {
    pub fn new(name: &str, config: BreakerConfig) -> Breaker {
        let bucket_ms = (config.window.as_millis() as u64 / BUCKETS).max(1);
        let in_flight = (config.max_in_flight > 0).then(|| {
            let max = u64::from(config.max_in_flight);
            Arc::new(NodeLimit::new(Kind::Concurrency { max }, 1))
        });
        Breaker {
            in_flight,
            config,
            name: name.to_string(),
            state: CachePadded::new(AtomicU64::new(0)),
            permits: AtomicI64::new(0),
            probe_successes: AtomicU32::new(0),
            trips_in_row: AtomicU32::new(0),
            trips: AtomicU64::new(0),
            consecutive: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
            bucket_ms,
        }
    }

    pub fn state(&self) -> State {
        match self.state.load(Relaxed) {
            0 => State::Closed,
            s if s & OPEN != 0 => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// Trips so far (for status and logs).
    pub fn trips(&self) -> u64 {
        self.trips.load(Relaxed)
    }

    /// Request path: may this request go upstream?
    #[inline]
    pub fn admit(&self, now: u64) -> Admit {
        // Acquire: a shard that sees HALF_OPEN also sees the permits set before it was published.
        let s = self.state.load(Acquire);
        if s == 0 {
            return Admit::Yes { probe: false };
        }
        if s & OPEN != 0 {
            let until = s & !OPEN;
            if now < until {
                return Admit::No {
                    retry_after_ms: until - now,
                };
            }
            // Open time is over: the first shard to notice resets the probe counts and only then
            // publishes half-open, so no shard spends a permit that a late reset would hand out
            // again.
            if self
                .state
                .compare_exchange(s, OPENING_PROBES, Relaxed, Relaxed)
                .is_ok()
            {
                self.probe_successes.store(0, Relaxed);
                self.permits
                    .store(i64::from(self.config.half_open_probes), Relaxed);
                self.state.store(HALF_OPEN, Release);
                tracing::info!(upstream = %self.name, "circuit breaker half-open: letting probes through");
            } else if self.state.load(Acquire) != HALF_OPEN {
                return Admit::No { retry_after_ms: 1 };
            }
        } else if s == OPENING_PROBES {
            return Admit::No { retry_after_ms: 1 };
        }
        if self.permits.fetch_sub(1, Relaxed) > 0 {
            Admit::Yes { probe: true }
        } else {
            Admit::No {
                retry_after_ms: 1000,
            }
        }
    }

    /// Returns an unused probe permit.
    pub fn release_probe(&self) {
        self.permits.fetch_add(1, Relaxed);
    }

    /// The outcome of a probe admitted while half-open.
    pub fn probe_result(&self, ok: bool, now: u64) {
        if self.state.load(Relaxed) != HALF_OPEN {
            return;
        }
        if ok {
            let n = self.probe_successes.fetch_add(1, Relaxed) + 1;
            if n >= self.config.half_open_probes
                && self
                    .state
                    .compare_exchange(HALF_OPEN, 0, Relaxed, Relaxed)
                    .is_ok()
            {
                self.trips_in_row.store(0, Relaxed);
                self.clear_window();
                tracing::info!(upstream = %self.name, "circuit breaker closed: probes succeeded");
            }
        } else {
            self.open(HALF_OPEN, now, "a half-open probe failed");
        }
    }

    fn open(&self, from: u64, now: u64, why: &str) {
        let n = self.trips_in_row.load(Relaxed).min(16);
        let base = self.config.open_duration.as_millis() as u64;
        let d = base
            .saturating_mul(1 << n)
            .min(self.config.max_open_duration.as_millis() as u64);
        if self
            .state
            .compare_exchange(from, OPEN | (now + d), Relaxed, Relaxed)
            .is_ok()
        {
            self.trips_in_row.fetch_add(1, Relaxed);
            self.trips.fetch_add(1, Relaxed);
            self.clear_window();
            tracing::warn!(upstream = %self.name, reason = why, open_ms = d, trips = self.trips(), "circuit breaker open");
        }
    }

    fn clear_window(&self) {
        for b in self.buckets.iter() {
            b.epoch.store(0, Relaxed);
            b.total.store(0, Relaxed);
            b.failures.store(0, Relaxed);
            b.slow.store(0, Relaxed);
        }
        self.consecutive.store(0, Relaxed);
    }

    /// Sync tick of one shard: publish its counts, then evaluate the trip rules on the node totals.
    pub fn tick(&self, local: &LocalCounts, now: u64) {
        let (total, slow) = (local.total.take(), local.slow.take());
        let failures = local.streak.publish(&self.consecutive);
        if total > 0 {
            let epoch = now / self.bucket_ms + 1;
            let b = &self.buckets[(epoch % BUCKETS) as usize];
            let old = b.epoch.load(Relaxed);
            if old != epoch
                && b.epoch
                    .compare_exchange(old, epoch, Relaxed, Relaxed)
                    .is_ok()
            {
                b.total.store(0, Relaxed);
                b.failures.store(0, Relaxed);
                b.slow.store(0, Relaxed);
            }
            b.total.fetch_add(total, Relaxed);
            b.failures.fetch_add(failures, Relaxed);
            b.slow.fetch_add(slow, Relaxed);
        }
        if self.state.load(Relaxed) != 0 {
            return;
        }
        let c = &self.config;
        if c.consecutive_failures > 0
            && self.consecutive.load(Relaxed) >= u64::from(c.consecutive_failures)
        {
            return self.open(0, now, "consecutive failures");
        }
        let current = now / self.bucket_ms + 1;
        let (mut t, mut f, mut s) = (0u64, 0u64, 0u64);
        for b in self.buckets.iter() {
            let e = b.epoch.load(Relaxed);
            if e != 0 && e + BUCKETS > current {
                t += b.total.load(Relaxed);
                f += b.failures.load(Relaxed);
                s += b.slow.load(Relaxed);
            }
        }
        if t < u64::from(c.min_requests) {
            return;
        }
        if c.failure_ratio_permille > 0 && f * 1000 >= t * u64::from(c.failure_ratio_permille) {
            return self.open(0, now, "failure ratio");
        }
        if c.slow_call_ratio_permille > 0 && s * 1000 >= t * u64::from(c.slow_call_ratio_permille) {
            self.open(0, now, "slow call ratio");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_ratio_permille: 500,
            slow_call_ratio_permille: 0,
            slow_call_threshold: Duration::from_secs(1),
            window: Duration::from_secs(10),
            min_requests: 10,
            failure_statuses: vec![503],
            open_duration: Duration::from_millis(100),
            max_open_duration: Duration::from_millis(300),
            half_open_probes: 2,
            max_in_flight: 0,
            max_pending: None,
        }
    }

    #[test]
    fn consecutive_failures_over_two_shards_trip_it() {
        let b = Breaker::new("u", cfg());
        let (s1, s2) = (LocalCounts::default(), LocalCounts::default());
        s1.record(true, false);
        s2.record(true, false);
        b.tick(&s1, 1000);
        b.tick(&s2, 1000);
        assert_eq!(b.state(), State::Closed);
        s2.record(true, false);
        b.tick(&s2, 1010);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.admit(1050), Admit::No { retry_after_ms: 60 });
    }

    #[test]
    fn failure_ratio_needs_volume() {
        let b = Breaker::new(
            "u",
            BreakerConfig {
                consecutive_failures: 0,
                ..cfg()
            },
        );
        let s = LocalCounts::default();
        for i in 0..9 {
            s.record(i % 2 == 0, false);
        }
        b.tick(&s, 1000);
        assert_eq!(b.state(), State::Closed, "below min_requests");
        s.record(true, false);
        s.record(false, false);
        b.tick(&s, 1020);
        assert_eq!(b.state(), State::Open);
    }

    #[test]
    fn half_open_probes_close_or_reopen_with_backoff() {
        let b = Breaker::new("u", cfg());
        b.open(0, 1000, "test");
        assert_eq!(b.admit(1099), Admit::No { retry_after_ms: 1 });
        // Two permits node-wide, whichever shard asks.
        assert_eq!(b.admit(1100), Admit::Yes { probe: true });
        assert_eq!(b.admit(1100), Admit::Yes { probe: true });
        assert!(matches!(b.admit(1100), Admit::No { .. }));
        b.probe_result(false, 1110);
        // Second trip in a row: open twice as long.
        assert_eq!(
            b.admit(1111),
            Admit::No {
                retry_after_ms: 199
            }
        );
        assert_eq!(b.admit(1310), Admit::Yes { probe: true });
        b.probe_result(true, 1311);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.admit(1312), Admit::Yes { probe: true });
        b.probe_result(true, 1313);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(1314), Admit::Yes { probe: false });
        assert_eq!(b.trips(), 2);
    }
    /// Two shards notice the end of the open time at once: the probes are let through once
    /// node-wide, not once per shard.
    #[test]
    fn racing_shards_let_half_open_probes_through_once() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
        const ROUNDS: usize = 3000;
        let breakers: Arc<Vec<Breaker>> = Arc::new(
            (0..ROUNDS)
                .map(|_| {
                    let b = Breaker::new("u", cfg());
                    b.open(0, 1000, "test");
                    b
                })
                .collect(),
        );
        let arrived = Arc::new(AtomicU64::new(0));
        let probes: Arc<Vec<AtomicU64>> =
            Arc::new((0..ROUNDS).map(|_| AtomicU64::new(0)).collect());
        let shards: Vec<_> = (0..2)
            .map(|_| {
                let (breakers, arrived, probes) =
                    (breakers.clone(), arrived.clone(), probes.clone());
                std::thread::spawn(move || {
                    for (r, b) in breakers.iter().enumerate() {
                        crate::testutil::start_together(&arrived, 2, r as u64);
                        for _ in 0..4 {
                            if b.admit(1100) == (Admit::Yes { probe: true }) {
                                probes[r].fetch_add(1, SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        for s in shards {
            s.join().unwrap();
        }
        for (r, p) in probes.iter().enumerate() {
            assert_eq!(p.load(SeqCst), 2, "round {r}: probes let through");
        }
    }
}
