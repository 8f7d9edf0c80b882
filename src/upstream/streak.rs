//! The shard-local half of a node-wide "failures in a row" count, shared by the circuit breaker
//! and outlier ejection: a shard counts its outcomes with plain cells and folds them into the
//! node-global count at its sync tick.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One shard's outcomes since its last tick.
#[derive(Default)]
pub struct Streak {
    failures: Cell<u64>,
    /// Failures since this shard's last success.
    tail: Cell<u64>,
    saw_success: Cell<bool>,
}

impl Streak {
    #[inline]
    pub fn record(&self, failed: bool) {
        if failed {
            self.failures.set(self.failures.get() + 1);
            self.tail.set(self.tail.get() + 1);
        } else {
            self.saw_success.set(true);
            self.tail.set(0);
        }
    }

    /// Tick: folds this shard's outcomes into the node-wide `consecutive` count (a success here
    /// restarts it from the failures since; otherwise they add up) and returns the failures seen
    /// since the last tick. A success on one shard thus resets the count at that shard's tick.
    pub fn publish(&self, consecutive: &AtomicU64) -> u64 {
        let failures = self.failures.take();
        if self.saw_success.take() {
            consecutive.store(self.tail.get(), Relaxed);
        } else if failures > 0 {
            consecutive.fetch_add(failures, Relaxed);
        }
        failures
    }
}
