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
        self.roll(now_ms());
        let share = u64::from(self.requests.get()) * u64::from(cfg.budget_percent) / 100;
        let allowed = share.max(u64::from(cfg.budget_min_per_sec));
        if u64::from(self.retries.get()) >= allowed {
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

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut c = cfg();
        c.budget_min_per_sec = 1000;
        c.attempts = 10;
        let b = RetryBudget::default();
        for tries in 0..8 {
            let d = decide(&c, &b, Failure::Connect, tries, true, None).unwrap();
            assert!(d <= Duration::from_millis((10u64 << tries).min(40)));
        }
    }
}
