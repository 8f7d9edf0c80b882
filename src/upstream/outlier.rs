//! Passive outlier ejection (`[upstreams.NAME.outlier]`): the per-target circuit breaker. A target
//! whose requests fail `consecutive_failures` times in a row across the node (connect errors,
//! timeouts, resets, 5xx responses) leaves load-balancer rotation for `base_ejection × n`, where n
//! counts its ejections in a row (capped at `max_ejection`); n starts again at 1 once the target
//! has gone `max_ejection` without being ejected. At most `max_ejected_percent` of the targets are
//! out at once, but always at least one may be. Should every target be out anyway (one target, or
//! health checks took the rest), the balancer uses them rather than fail.
//!
//! Request path: outcomes go to shard-local cells of the target; choosing a target costs one
//! relaxed load while nothing is ejected. Each shard's sync tick publishes its counts to the
//! node-global atomics here and evaluates ejection and return (the same reconciliation as the
//! upstream breaker: a success on one shard resets the count at that shard's tick).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

use crate::config::OutlierConfig;

#[derive(Default)]
struct TargetState {
    consecutive: AtomicU64,
    /// Ejected until (ms); 0 = in rotation.
    until: AtomicU64,
    /// Ejections in a row.
    times: AtomicU32,
    /// When the last ejection ended (ms).
    ended: AtomicU64,
}

/// Node-global ejection state of one upstream's targets.
pub struct Outlier {
    pub config: OutlierConfig,
    name: String,
    targets: Box<[TargetState]>,
    ejected: CachePadded<AtomicU32>,
    max_ejected: u32,
    /// Ejections since the upstream's config was last changed.
    ejections: AtomicU64,
}

/// One shard's outcomes for one target since its last tick.
pub use super::streak::Streak as LocalOutcomes;

impl Outlier {
    pub fn new(name: &str, config: OutlierConfig, targets: usize) -> Outlier {
        let max_ejected = ((targets as u64 * u64::from(config.max_ejected_percent)) / 100).max(1);
        Outlier {
            config,
            name: name.to_string(),
            targets: (0..targets).map(|_| TargetState::default()).collect(),
            ejected: CachePadded::new(AtomicU32::new(0)),
            max_ejected: max_ejected as u32,
            ejections: AtomicU64::new(0),
        }
    }

    /// Whether any target is out (one relaxed load; the request path asks this first).
    #[inline]
    pub fn any_ejected(&self) -> bool {
        self.ejected.load(Relaxed) > 0
    }

    #[inline]
    pub fn is_ejected(&self, target: usize, now: u64) -> bool {
        self.targets
            .get(target)
            .is_some_and(|t| t.until.load(Relaxed) > now)
    }

    /// Targets out of rotation now.
    /// Ejections so far.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }

    pub fn ejected(&self) -> u32 {
        self.ejected.load(Relaxed)
    }

    /// Sync tick of one shard for target `i`: publish its outcomes, eject or bring back.
    pub fn tick(&self, i: usize, local: &LocalOutcomes, addr: &dyn std::fmt::Display, now: u64) {
        let Some(t) = self.targets.get(i) else {
            return;
        };
        local.publish(&t.consecutive);
        let until = t.until.load(Relaxed);
        if until != 0 {
            if until <= now && t.until.compare_exchange(until, 0, Relaxed, Relaxed).is_ok() {
                t.ended.store(now, Relaxed);
                t.consecutive.store(0, Relaxed);
                self.ejected.fetch_sub(1, Relaxed);
                tracing::info!(upstream = %self.name, target = %addr, "outlier target back in rotation");
            }
            return;
        }
        if t.consecutive.load(Relaxed) < u64::from(self.config.consecutive_failures) {
            return;
        }
        // Take an ejection slot first, so racing shards cannot exceed max_ejected_percent.
        let max = self.max_ejected;
        if self
            .ejected
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_err()
        {
            return;
        }
        let max_ms = self.config.max_ejection.as_millis() as u64;
        let ended = t.ended.load(Relaxed);
        let times = if ended != 0 && now.saturating_sub(ended) >= max_ms {
            1
        } else {
            t.times.load(Relaxed).saturating_add(1)
        };
        let d = (self.config.base_ejection.as_millis() as u64)
            .saturating_mul(u64::from(times))
            .min(max_ms);
        if t.until
            .compare_exchange(0, now + d, Relaxed, Relaxed)
            .is_ok()
        {
            t.times.store(times, Relaxed);
            self.ejections.fetch_add(1, Relaxed);
            let n = t.consecutive.swap(0, Relaxed);
            tracing::warn!(upstream = %self.name, target = %addr, failures = n, ejection_ms = d, times, "outlier target ejected");
        } else {
            self.ejected.fetch_sub(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outlier(targets: usize) -> Outlier {
        Outlier::new(
            "u",
            OutlierConfig {
                consecutive_failures: 3,
                base_ejection: Duration::from_millis(100),
                max_ejection: Duration::from_millis(250),
                max_ejected_percent: 50,
            },
            targets,
        )
    }

    #[test]
    fn ejects_after_consecutive_failures_across_shards_and_returns() {
        let o = outlier(2);
        let (a, b) = (LocalOutcomes::default(), LocalOutcomes::default());
        a.record(true);
        a.record(true);
        b.record(true);
        o.tick(0, &a, &"t0", 1000);
        assert!(!o.any_ejected());
        o.tick(0, &b, &"t0", 1000);
        assert!(o.is_ejected(0, 1001) && o.any_ejected());
        assert!(!o.is_ejected(0, 1100), "ejected for base × 1");
        o.tick(0, &a, &"t0", 1100);
        assert!(!o.any_ejected());
        // Ejected again soon after: twice as long, then capped.
        for _ in 0..3 {
            a.record(true);
        }
        o.tick(0, &a, &"t0", 1200);
        assert!(o.is_ejected(0, 1399) && !o.is_ejected(0, 1400));
        o.tick(0, &a, &"t0", 1400);
        for _ in 0..3 {
            a.record(true);
        }
        o.tick(0, &a, &"t0", 1410);
        assert!(
            o.is_ejected(0, 1659) && !o.is_ejected(0, 1660),
            "capped at max_ejection"
        );
    }

    #[test]
    fn a_success_resets_and_the_percentage_caps_ejections() {
        let o = outlier(2);
        let a = LocalOutcomes::default();
        a.record(true);
        a.record(true);
        a.record(false);
        a.record(true);
        o.tick(0, &a, &"t0", 10);
        assert!(!o.any_ejected(), "only one failure since the last success");
        for i in 0..2 {
            for _ in 0..3 {
                a.record(true);
            }
            o.tick(i, &a, &"t", 20);
        }
        // 50% of 2 targets: only the first goes.
        assert!(o.is_ejected(0, 21) && !o.is_ejected(1, 21));
        assert_eq!(o.ejected(), 1);
    }
}
