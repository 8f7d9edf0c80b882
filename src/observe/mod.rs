//! What the request path reports about finished requests, for tests and operators today and for
//! the metrics endpoint of the management plane.
//!
//! Each shard owns one [`ShardRequests`] row and is its only writer: it bumps a counter with a
//! relaxed load and store on its own cache line (no locked instruction, no sharing), and readers on
//! other threads sum the rows whenever they like. A reader may see a count a few nanoseconds old;
//! it never sees one go backwards.

pub mod calllog;
pub mod clock;
pub mod metrics;
pub mod record;
pub mod recorder;
pub mod rollup;

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// Finished requests of one shard, by how they ended.
#[derive(Default)]
pub struct ShardRequests {
    /// Every request that reached [`crate::proxy::finish`].
    pub finished: AtomicU64,
    /// By status class sent: index 0 = no status sent at all, 1..=5 = 1xx..5xx.
    pub by_class: [AtomicU64; 6],
    /// Requests that ended with an error (a refusal, an upstream failure, the client gone, ...).
    pub errors: AtomicU64,
    /// Call records dropped because the shard's ring was full.
    pub log_dropped: AtomicU64,
}

/// Owner-only increment: one writer per row, so a load and a store are enough.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// The class of a status sent (1..=5 for 1xx..5xx), 0 when none was sent.
#[inline]
pub fn status_class(status: u16) -> usize {
    match status {
        100..=599 => (status / 100) as usize,
        _ => 0,
    }
}

impl ShardRequests {
    /// Counts a finished request. Only the owning shard calls this.
    #[inline]
    pub fn record(&self, status: u16, error: bool) {
        bump(&self.finished);
        bump(&self.by_class[status_class(status)]);
        if error {
            bump(&self.errors);
        }
    }

    /// Counts a call record the shard's ring had no room for. Only the owning shard calls this.
    #[inline]
    pub fn log_drop(&self) {
        bump(&self.log_dropped);
    }
}

/// Totals over every shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTotals {
    pub finished: u64,
    pub by_class: [u64; 6],
    pub errors: u64,
    pub log_dropped: u64,
}

/// Sums the shards' rows.
pub fn totals(rows: &[CachePadded<ShardRequests>]) -> RequestTotals {
    let mut t = RequestTotals::default();
    for r in rows {
        t.finished += r.finished.load(Ordering::Relaxed);
        for (i, c) in r.by_class.iter().enumerate() {
            t.by_class[i] += c.load(Ordering::Relaxed);
        }
        t.errors += r.errors.load(Ordering::Relaxed);
        t.log_dropped += r.log_dropped.load(Ordering::Relaxed);
    }
    t
}
