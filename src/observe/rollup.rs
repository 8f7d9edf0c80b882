//! Per-minute rollups of the call records, for analytics: per (tenant, service, route, app, AI
//! model, status class, error code) the count, errors, bytes, AI tokens and cost, and a latency
//! histogram (mergeable, so percentiles over any
//! range come from the merged counts, never from averaged percentiles).
//!
//! Built on the call-log writer's thread from every record it drains ([`Tap`]); a minute is the
//! one a call *finished* in. A minute closes [`GRACE`] after it ends and goes to the control plane
//! as a [`Period`]; a record that arrives later (the writer was held up) goes out as a period of
//! its own for its minute, and the store adds it to what it has.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use tokio::sync::mpsc::{Receiver, Sender, channel, error::TrySendError};

use super::calllog::Tap;
use super::calllog::json::Facts;
use super::record::{Field, Record};

/// Ring size per shard when analytics run without a call log.
pub const RING_WITHOUT_LOG: usize = 1 << 20;

/// How long after its end a minute stays open for records still on their way.
pub const GRACE: Duration = Duration::from_secs(2);

/// Most distinct keys one minute holds; calls past it are counted under app `_other`.
pub const MAX_KEYS: usize = 10_000;

/// Closed periods the control plane may fall behind by before new ones are dropped (and counted).
const QUEUE: usize = 120;

/// Latency histograms: microseconds from 1 µs to 1 h, 1 significant digit (buckets ~6 % wide).
pub fn histogram() -> Histogram<u32> {
    // The bounds are constants that `new_with_bounds` accepts.
    Histogram::new_with_bounds(1, 3_600_000_000, 1).unwrap_or_else(|_| {
        Histogram::new(1).unwrap_or_else(|_| unreachable!("1 significant digit is valid"))
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub tenant: String,
    pub service: String,
    pub route: String,
    pub app: String,
    /// The model alias of an AI call ("" for other calls).
    pub model: String,
    /// Status class: 0 (no status sent), 1..=5.
    pub class: u8,
    /// The error code the call ended with ("" when it did not end in an error).
    pub code: String,
}

#[derive(Debug, Clone)]
pub struct Agg {
    pub count: u64,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// AI calls' tokens and cost (nano-USD).
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_nanos: u64,
    pub latency: Histogram<u32>,
}

impl Agg {
    pub fn new() -> Agg {
        Agg {
            count: 0,
            errors: 0,
            bytes_in: 0,
            bytes_out: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_nanos: 0,
            latency: histogram(),
        }
    }

    pub fn merge(&mut self, o: &Agg) {
        self.count = self.count.saturating_add(o.count);
        self.errors = self.errors.saturating_add(o.errors);
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cost_nanos = self.cost_nanos.saturating_add(o.cost_nanos);
        // Same bounds on both sides; a value out of them was already saturated when recorded.
        let _ = self.latency.add(&o.latency);
    }
}

impl Default for Agg {
    fn default() -> Self {
        Agg::new()
    }
}

/// One closed minute (unix time / 60) and its rows.
#[derive(Debug)]
pub struct Period {
    pub minute: i64,
    pub rows: Vec<(Key, Agg)>,
}

/// The rollups being built (the writer's side).
pub struct Rollups {
    open: HashMap<i64, HashMap<Key, Agg>>,
    tx: Sender<Period>,
    /// Periods the control plane did not take in time.
    pub dropped: u64,
}

impl Rollups {
    pub fn new() -> (Rollups, Receiver<Period>) {
        let (tx, rx) = channel(QUEUE);
        (
            Rollups {
                open: HashMap::new(),
                tx,
                dropped: 0,
            },
            rx,
        )
    }

    fn send(&mut self, p: Period) {
        match self.tx.try_send(p) {
            Ok(()) => {}
            Err(TrySendError::Full(p)) => {
                self.dropped += 1;
                tracing::warn!(
                    minute = p.minute,
                    "analytics: the store is behind; a minute of rollups is dropped"
                );
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Sends every minute that ended more than [`GRACE`] before `now` (all of them when `all`).
    fn close(&mut self, now: SystemTime, all: bool) {
        let now_min = unix_secs(now.checked_sub(GRACE).unwrap_or(UNIX_EPOCH)) / 60;
        let mut done: Vec<i64> = self
            .open
            .keys()
            .copied()
            .filter(|&m| all || m < now_min)
            .collect();
        done.sort_unstable();
        for m in done {
            if let Some(rows) = self.open.remove(&m) {
                self.send(Period {
                    minute: m,
                    rows: rows.into_iter().collect(),
                });
            }
        }
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Tap for Rollups {
    fn record(&mut self, r: &Record<'_>, f: &Facts) {
        let end = f.start + Duration::from_micros(f.latency_us);
        let minute = unix_secs(end) / 60;
        let rows = self.open.entry(minute).or_default();
        let text = |f: Field| r.text(f).into_owned();
        let mut key = Key {
            tenant: text(Field::Tenant),
            service: text(Field::Service),
            route: text(Field::Route),
            app: text(Field::App),
            model: text(Field::AiModel),
            class: super::status_class(r.fixed.status) as u8,
            code: text(Field::ErrorCode),
        };
        if rows.len() >= MAX_KEYS && !rows.contains_key(&key) {
            key.app = "_other".into();
        }
        let a = rows.entry(key).or_default();
        a.count += 1;
        if !r.field(Field::ErrorCode).is_empty() {
            a.errors += 1;
        }
        a.bytes_in += r.fixed.bytes_in;
        a.bytes_out += r.fixed.bytes_out;
        if let Some(u) = r.ai() {
            a.input_tokens += u.input_tokens;
            a.output_tokens += u.output_tokens;
            a.cost_nanos += u.cost;
        }
        a.latency.saturating_record(f.latency_us.max(1));
    }

    fn drained(&mut self, last: bool) {
        self.close(SystemTime::now(), last);
    }
}

/// The latency histogram as stored (hdrhistogram's V2 serialization).
pub fn encode_histogram(h: &Histogram<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = hdrhistogram::serialization::Serializer::serialize(
        &mut hdrhistogram::serialization::V2Serializer::new(),
        h,
        &mut out,
    );
    out
}

/// A stored latency histogram; an unreadable one reads as empty (and is logged).
pub fn decode_histogram(b: &[u8]) -> Histogram<u32> {
    match hdrhistogram::serialization::Deserializer::new()
        .deserialize::<u32, _>(&mut std::io::Cursor::new(b))
    {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = ?e, "analytics: a stored latency histogram is unreadable; counted as empty");
            histogram()
        }
    }
}
