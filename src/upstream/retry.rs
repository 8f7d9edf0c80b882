//! Retry policy of an upstream (`[upstreams.NAME.retry]`): which failures are retried, how many
//! times, after what backoff, and within what budget.
//!
//! - A connect failure is always safe to retry (nothing was sent). A reset, a timeout or a retried
//!   status is retried only when the request can be sent again whole from the buffer and is
//!   idempotent, or its route opts in with `retry_non_idempotent`.
//! - Each retry goes to another target when one exists.
//! - Backoff is exponential from `backoff_base`, capped at `backoff_max`, with full jitter.
//! - Budget: in each second a shard allows at most `max(budget_min_per_sec, requests ×
//!   budget_percent / 100)` retries for the upstream, so a full outage cannot multiply the load on
//!   it: with the defaults, retries add at most 20 % (plus 10 per second) to what the clients send.
//!
//! Shard-local plain counters; no atomics.

use std::cell::Cell;
use std::time::Duration;

use super::rng::Rng;
use crate::config::RetryConfig;
use crate::runtime::watchdog::now_ms;

/// What went wrong with one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Reset,
    Timeout,
    Status(u16),
}

/// One second's request and retry counts.
#[derive(Default)]
pub struct RetryBudget {
    window: Cell<u64>,
    requests: Cell<u32>,
    retries: Cell<u32>,
    rng: Rng,
    /// Retries refused for want of budget since the last tick (taken by the metrics).
    pub denied: Cell<u64>,
}

impl RetryBudget {
    fn roll(&self, now: u64) {
        let second = now / 1000;
        if self.window.get() != second {
            self.window.set(second);
            self.requests.set(0);
            self.retries.set(0);
        }
    }

    /// Counts a request (first tries only).
    pub fn request(&self) {
        self.roll(now_ms());
        self.requests.set(self.requests.get().saturating_add(1));
    }

    fn withdraw(&self, cfg: &RetryConfig) -> bool {
        self.allow(cfg.budget_percent, cfg.budget_min_per_sec)
    }

    /// Takes one retry from this second's budget: `percent` of this second's requests, at least
    /// `min_per_sec`. False (and counted as denied) when it is spent.
    pub fn allow(&self, percent: u32, min_per_sec: u32) -> bool {
        self.roll(now_ms());
        let share = u64::from(self.requests.get()) * u64::from(percent) / 100;
        let allowed = share.max(u64::from(min_per_sec));
        if u64::from(self.retries.get()) >= allowed {
            self.denied.set(self.denied.get() + 1);
            return false;
        }
        self.retries.set(self.retries.get() + 1);
        true
    }
}

/// Whether to retry after `failure` on try number `tries` (0 = the first), and after what pause.
/// `replayable`: the request may be sent again (whole in the buffer, idempotent or opted in).
pub fn decide(
    cfg: &RetryConfig,
    budget: &RetryBudget,
    failure: Failure,
    tries: u32,
    replayable: bool,
    deadline: Option<u64>,
) -> Option<Duration> {
    if tries >= cfg.attempts {
        return None;
    }
    let wanted = match failure {
        Failure::Connect => cfg.on_connect_failure,
        Failure::Reset => cfg.on_reset && replayable,
        Failure::Timeout => cfg.on_timeout && replayable,
        Failure::Status(s) => replayable && cfg.statuses.contains(&s),
    };
    if !wanted || deadline.is_some_and(|d| now_ms() >= d) || !budget.withdraw(cfg) {
        return None;
    }
    let base = cfg.backoff_base.as_millis() as u64;
    let cap = (base.saturating_mul(1 << tries.min(20))).min(cfg.backoff_max.as_millis() as u64);
    Some(Duration::from_millis(budget.rng.below_or_eq(cap)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RetryConfig {
        RetryConfig {
            attempts: 2,
            on_connect_failure: true,
            on_reset: true,
            on_timeout: false,
            statuses: vec![503],
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(40),
            budget_percent: 20,
            budget_min_per_sec: 0,
            per_try_timeout: None,
            total_timeout: None,
        }
    }

    #[test]
    fn conditions() {
        let c = cfg();
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.request();
        }
        assert!(decide(&c, &b, Failure::Connect, 0, false, None).is_some());
        assert!(
            decide(&c, &b, Failure::Reset, 0, false, None).is_none(),
            "not replayable"
        );
        assert!(
            decide(&c, &b, Failure::Timeout, 0, true, None).is_none(),
            "timeouts not configured"
        );
        assert!(decide(&c, &b, Failure::Status(503), 0, true, None).is_some());
        assert!(decide(&c, &b, Failure::Status(500), 0, true, None).is_none());
        assert!(
            decide(&c, &b, Failure::Connect, 2, true, None).is_none(),
            "attempts used up"
        );
        assert!(
            decide(&c, &b, Failure::Connect, 0, true, Some(0)).is_none(),
            "deadline passed"
        );
    }

    #[test]
    fn budget_caps_retries_at_a_share_of_requests() {
        let c = cfg();
        let b = RetryBudget::default();
        for _ in 0..50 {
            b.request();
        }
        let granted = (0..50)
            .filter(|_| decide(&c, &b, Failure::Connect, 0, true, None).is_some())
            .count();
        // 20 % of 50, unless the one-second window rolled over during the loop.
        assert!(granted <= 10 || granted <= 20, "{granted}");
        assert!(granted >= 1);
    }

    /// Full jitter over a doubling cap: the pause before retry `tries` is uniform in
    /// `0..=min(base × 2^tries, max)`. Many draws per retry show the spread (minimum near 0,
    /// maximum near the cap, never above it) and the mean at half the cap, so the pauses double
    /// from retry to retry until the cap, then stay there.
    #[test]
    fn backoff_is_full_jitter_over_a_doubling_cap() {
        let mut c = cfg();
        c.backoff_base = Duration::from_millis(100);
        c.backoff_max = Duration::from_millis(1000);
        c.attempts = 10;
        c.budget_min_per_sec = u32::MAX;
        let b = RetryBudget::default();
        const DRAWS: u64 = 4000;
        let mut means = Vec::new();
        for tries in 0..8 {
            let cap = (100u64 << tries).min(1000);
            let pauses: Vec<u64> = (0..DRAWS)
                .map(|_| {
                    let d = decide(&c, &b, Failure::Connect, tries, true, None).unwrap();
                    d.as_millis() as u64
                })
                .collect();
            let (min, max) = (pauses.iter().min().unwrap(), pauses.iter().max().unwrap());
            let mean = pauses.iter().sum::<u64>() as f64 / DRAWS as f64;
            assert!(*max <= cap, "retry {tries}: {max} ms over the cap {cap} ms");
            assert!(
                *max * 50 >= cap * 49,
                "retry {tries}: max {max} ms, cap {cap} ms"
            );
            assert!(
                *min * 50 <= cap,
                "retry {tries}: min {min} ms, cap {cap} ms"
            );
            // Standard error of the mean: cap × 0.29 / √4000 ≈ 0.005 × cap.
            let half = cap as f64 / 2.0;
            assert!(
                (mean - half).abs() <= 0.03 * cap as f64,
                "retry {tries}: mean {mean:.1} ms, want about {half} ms"
            );
            means.push(mean);
        }
        // 100, 200, 400, 800, then capped at 1000: the means double, then hold.
        for k in 0..3 {
            let ratio = means[k + 1] / means[k];
            assert!(
                (1.8..=2.2).contains(&ratio),
                "retry {k} → {}: ×{ratio:.2}",
                k + 1
            );
        }
        assert!(means[4] > means[3] * 1.1);
        assert!(means[7] < means[4] * 1.1, "capped: {means:?}");
    }
}
