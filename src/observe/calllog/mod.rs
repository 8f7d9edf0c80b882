//! The call log: every finished request's record, written off the shards.
//!
//! ```text
//! shard 0 ─ ring ─┐                          ┌─ queue ─ file sink thread (JSON lines, rotation)
//! shard 1 ─ ring ─┼─ writer thread ─ format ─┼─ queue ─ stdout sink thread
//!     ...         │   (rollups for analytics)└─ queue ─ OTLP sink thread (HTTP, batches)
//! ```
//!
//! - A shard pushes a record into its own bounded ring and never waits: when the ring is full the
//!   record is dropped and counted on the shard ([`crate::observe::ShardRequests::log_dropped`]).
//! - The writer drains every ring every [`DRAIN_EVERY`] (backing off to [`DRAIN_IDLE`] while
//!   there is nothing to drain), feeds the analytics rollups (so they
//!   count every record the writer saw, whatever the sinks do), formats each record once and hands
//!   each sink its batch. A sink that falls more than `call_log.sink_queue` records behind loses
//!   the batches that do not fit (counted per sink); the writer and the other sinks go on.
//! - Drops reach the log itself: a `{"dropped": N, "reason": ...}` line in the sinks that still
//!   write, and a warning at most every 10 s.
//!
//! Reloads: sinks and redaction follow the config the shards serve; the rings (their size, and
//! whether there are any) are made at start.

mod file;
pub mod json;
pub mod otlp;
mod sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::config::Config;
use crate::config::observe::CallLogConfig;
use crate::observe::ShardRequests;
use crate::observe::record::{self, Record};

pub use file::rotated;
use json::{Facts, WallClock};
use sink::{Batch, SinkKind, Sinks};

/// How often the writer drains the rings while records come in.
pub const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// The longest wait between drains: with nothing to drain the wait doubles up to it, so an idle
/// gateway's writer wakes 10 times a second rather than 100. Smaller rings back off less (see
/// [`idle_wait`]), so that the first drain of a burst still finds room.
pub const DRAIN_IDLE: Duration = Duration::from_millis(100);

/// The longest idle wait for rings of `capacity` bytes: 10 ms per 256 KiB, from [`DRAIN_EVERY`]
/// to [`DRAIN_IDLE`] (the default 4 MiB ring: 100 ms; the smallest, 64 KiB: no back-off).
pub fn idle_wait(capacity: usize) -> Duration {
    let steps = (capacity / (256 * 1024)).max(1) as u32;
    (DRAIN_EVERY * steps).min(DRAIN_IDLE)
}

/// Counters of the call log, read by the metrics endpoint and tests.
#[derive(Default)]
pub struct Stats {
    /// Records the writer took from the rings.
    pub records: AtomicU64,
    /// By sink ([`SinkKind`] index): records written.
    pub written: [AtomicU64; 3],
    /// By sink: records dropped because the sink fell behind or failed.
    pub dropped: [AtomicU64; 3],
    /// By sink: write or export errors.
    pub errors: [AtomicU64; 3],
    /// File rotations.
    pub rotations: AtomicU64,
}

impl Stats {
    pub fn written(&self, k: SinkKind) -> u64 {
        self.written[k as usize].load(Ordering::Relaxed)
    }

    pub fn dropped(&self, k: SinkKind) -> u64 {
        self.dropped[k as usize].load(Ordering::Relaxed)
    }
}

pub use sink::SinkKind as Sink;

/// Something that wants every record the writer drains (the analytics rollups).
pub trait Tap: Send {
    fn record(&mut self, r: &Record<'_>, f: &Facts);
    /// Called after every drain (to close finished periods), and once more at shutdown
    /// (`last`).
    fn drained(&mut self, last: bool);
}

/// The running call log: the writer thread and its sinks.
pub struct CallLog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl CallLog {
    /// Starts the writer over `rings` (one per shard, `rows` their shards' counters). `config`
    /// reads the config being served (sinks and redaction follow reloads); `tap` gets every
    /// record.
    pub fn start(
        rings: Vec<rtrb::Consumer<u8>>,
        rows: Arc<[CachePadded<ShardRequests>]>,
        config: Box<dyn Fn() -> Arc<Config> + Send>,
        tap: Option<Box<dyn Tap>>,
    ) -> std::io::Result<CallLog> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let w = Writer {
            rings,
            rows,
            config,
            tap,
            stats: stats.clone(),
            sinks: Sinks::default(),
            buf: Vec::new(),
            ring_dropped: 0,
            last_warn: None,
            times: json::TimeText::default(),
            line_capacity: 0,
            sent: Vec::new(),
        };
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ringway-calllog".into())
            .spawn(move || w.run(&s))?;
        Ok(CallLog {
            stop,
            thread: Some(thread),
            stats,
        })
    }

    /// Drains what the shards recorded, flushes every sink and stops. Call after the shards
    /// stopped, so no record is left behind.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for CallLog {
    fn drop(&mut self) {
        self.stop_now();
    }
}

struct Writer {
    rings: Vec<rtrb::Consumer<u8>>,
    rows: Arc<[CachePadded<ShardRequests>]>,
    config: Box<dyn Fn() -> Arc<Config> + Send>,
    tap: Option<Box<dyn Tap>>,
    stats: Arc<Stats>,
    sinks: Sinks,
    /// Drained bytes of one ring (records may wrap around the ring's end).
    buf: Vec<u8>,
    /// Ring drops already reported.
    ring_dropped: u64,
    last_warn: Option<Instant>,
    times: json::TimeText,
    /// Size of the last batch of lines: a new buffer starts that large.
    line_capacity: usize,
    /// Batches handed to the sinks; a buffer is reused once every sink is done with it, so a
    /// steady load formats into the same few buffers (no allocation, no page faults per drain).
    sent: Vec<Arc<Vec<u8>>>,
}

impl Writer {
    fn run(mut self, stop: &AtomicBool) {
        let capacity = self.rings.iter().map(|r| r.buffer().capacity()).min();
        let longest = idle_wait(capacity.unwrap_or(0));
        let mut wait = DRAIN_EVERY;
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let config = (self.config)();
            let cfg = config.call_log.as_ref();
            self.sinks.configure(cfg, &self.stats);
            let mut lines = self.line_buffer();
            let mut count = 0u64;
            let mut otlp = Vec::new();
            let clock_pair = WallClock::now();
            // Records feed the rollups only while the config served has analytics on.
            let roll = config.analytics.is_some();
            for i in 0..self.rings.len() {
                count += self.drain_ring(i, cfg, roll, &clock_pair, &mut lines, &mut otlp);
            }
            self.report_ring_drops(cfg, &mut lines);
            self.line_capacity = lines.len();
            if count > 0 || !lines.is_empty() {
                let lines = Arc::new(lines);
                self.sent.push(lines.clone());
                self.sinks.send(
                    Batch {
                        lines,
                        records: count,
                        otlp,
                    },
                    &self.stats,
                );
            }
            if let Some(t) = self.tap.as_mut() {
                t.drained(false);
            }
            if stopping {
                break;
            }
            wait = if count > 0 {
                DRAIN_EVERY
            } else {
                (wait * 2).min(longest)
            };
            std::thread::park_timeout(wait);
        }
        if let Some(t) = self.tap.as_mut() {
            t.drained(true);
        }
        self.sinks.close();
    }

    fn drain_ring(
        &mut self,
        i: usize,
        cfg: Option<&CallLogConfig>,
        roll: bool,
        clock_pair: &WallClock,
        lines: &mut Vec<u8>,
        otlp: &mut Vec<otlp::Entry>,
    ) -> u64 {
        let ring = &mut self.rings[i];
        let n = ring.slots();
        if n == 0 {
            return 0;
        }
        let Ok(chunk) = ring.read_chunk(n) else {
            return 0;
        };
        self.buf.clear();
        let (a, b) = chunk.as_slices();
        self.buf.extend_from_slice(a);
        self.buf.extend_from_slice(b);
        chunk.commit_all();
        let want_lines = self.sinks.wants_lines();
        let want_otlp = self.sinks.wants_otlp();
        let mut count = 0;
        for r in record::decode(&self.buf) {
            count += 1;
            let facts = Facts::of(&r, clock_pair);
            if let Some(t) = self.tap.as_mut().filter(|_| roll) {
                t.record(&r, &facts);
            }
            if let Some(cfg) = cfg {
                if want_lines {
                    json::write_line(lines, &r, &facts, cfg, &mut self.times);
                }
                if want_otlp {
                    otlp.push(otlp::Entry::of(&r, &facts, cfg));
                }
            }
        }
        self.stats.records.fetch_add(count, Ordering::Relaxed);
        count
    }

    /// An empty buffer for a batch of lines: one the sinks are done with, else a new one.
    fn line_buffer(&mut self) -> Vec<u8> {
        if let Some(i) = self.sent.iter().position(|b| Arc::strong_count(b) == 1) {
            let b = self.sent.swap_remove(i);
            if let Ok(mut v) = Arc::try_unwrap(b) {
                v.clear();
                return v;
            }
        }
        // Bounded: a stalled sink holds its queue's buffers, the rest are reused.
        if self.sent.len() > 64 {
            self.sent.retain(|b| Arc::strong_count(b) > 1);
        }
        Vec::with_capacity(self.line_capacity)
    }

    /// Says so (in the sinks and the log) when shards dropped records since the last drain.
    fn report_ring_drops(&mut self, cfg: Option<&CallLogConfig>, lines: &mut Vec<u8>) {
        let total: u64 = self
            .rows
            .iter()
            .map(|r| r.log_dropped.load(Ordering::Relaxed))
            .sum();
        let new = total.saturating_sub(self.ring_dropped);
        if new == 0 {
            return;
        }
        self.ring_dropped = total;
        if cfg.is_some() && self.sinks.wants_lines() {
            json::write_dropped(
                lines,
                std::time::SystemTime::now(),
                new,
                "shard buffer full",
            );
        }
        if self
            .last_warn
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.last_warn = Some(Instant::now());
            tracing::warn!(
                dropped = new,
                total,
                "call log: records dropped because a shard's buffer was full (raise call_log.buffer, or a sink is too slow)"
            );
        }
    }
}

#[cfg(test)]
mod idle_tests {
    use super::*;

    #[test]
    fn small_rings_back_off_less() {
        assert_eq!(idle_wait(64 * 1024), DRAIN_EVERY);
        assert_eq!(idle_wait(1024 * 1024), Duration::from_millis(40));
        assert_eq!(idle_wait(4 * 1024 * 1024), DRAIN_IDLE);
        assert_eq!(idle_wait(1024 * 1024 * 1024), DRAIN_IDLE);
    }
}
