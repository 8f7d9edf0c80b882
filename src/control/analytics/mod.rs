//! Analytics on the control plane: storing the minutes the call-log writer closes, ageing them
//! (minutes → hours → days, then gone, per `[analytics]`), and answering range queries from the
//! stored rollups with percentiles computed from merged histograms.

pub mod search;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::control::store::{DAY, HOUR, MINUTE, Rollup, RollupFilter, Store, StoreError};
use crate::gateway::{RollupReceiver, SnapshotPublisher};
use crate::observe::rollup::Agg;

/// How often stored rollups are aged.
pub const MAINTAIN_EVERY: Duration = Duration::from_secs(300);

/// Stores what is still queued (at shutdown, after the gateway's call log stopped).
pub async fn drain(store: &Store, rx: &mut RollupReceiver) {
    while let Ok(p) = rx.try_recv() {
        store_period(store, p).await;
    }
}

/// Stores one closed minute, trying three times (the store may be busy with another writer).
pub async fn store_period(store: &Store, p: crate::observe::rollup::Period) {
    let mut last = None;
    for wait_ms in [0u64, 100, 1000] {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        match store.add_rollups(MINUTE, p.minute * MINUTE, &p.rows).await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        tracing::warn!(minute = p.minute, error = %e, "analytics: cannot store a minute of rollups; it is lost");
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Ages the stored rollups once: minutes older than `analytics.minutes` into hours, hours older
/// than `analytics.hours` into days, days older than `analytics.days` deleted.
pub async fn maintain_once(
    store: &Store,
    cfg: &crate::config::observe::AnalyticsConfig,
    now: i64,
) -> Result<(u64, u64, u64), StoreError> {
    let secs = |d: Duration| d.as_secs() as i64;
    let m = store
        .downsample(MINUTE, HOUR, now - secs(cfg.minutes))
        .await?;
    let h = store.downsample(HOUR, DAY, now - secs(cfg.hours)).await?;
    let d = store.expire_rollups(DAY, now - secs(cfg.days)).await?;
    Ok((m, h, d))
}

/// Ages the rollups every [`MAINTAIN_EVERY`], with the retention of the config being served.
pub async fn maintain(store: Arc<Store>, publisher: SnapshotPublisher) {
    let mut every = tokio::time::interval(MAINTAIN_EVERY);
    loop {
        every.tick().await;
        let Some(cfg) = publisher.current().config.analytics.clone() else {
            continue;
        };
        match maintain_once(&store, &cfg, unix_now()).await {
            Ok((m, h, d)) if m + h + d > 0 => {
                tracing::debug!(
                    minutes_merged = m,
                    hours_merged = h,
                    days_deleted = d,
                    "analytics aged"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "analytics: ageing the rollups failed"),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct Latency {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

fn latency(h: &Histogram<u32>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    Latency {
        p50: h.value_at_quantile(0.50),
        p95: h.value_at_quantile(0.95),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
    }
}

/// Totals over a set of rollups.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub count: u64,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// AI calls' input and output tokens.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// AI calls' cost in USD, exactly (nano-dollars)...
    pub cost_nano_usd: u64,
    /// ...and as a number for display.
    pub cost_usd: f64,
    pub latency_us: Latency,
    /// Calls by status class ("2xx", ..., "none" when no status was sent).
    pub by_class: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Acc {
    agg: Agg,
    by_class: BTreeMap<String, u64>,
}

impl Acc {
    fn add(&mut self, r: &Rollup) {
        self.agg.merge(&r.agg);
        let c = self.by_class.entry(class_name(r.key.class)).or_default();
        *c = c.saturating_add(r.agg.count);
    }

    fn totals(&self) -> Totals {
        Totals {
            count: self.agg.count,
            errors: self.agg.errors,
            bytes_in: self.agg.bytes_in,
            bytes_out: self.agg.bytes_out,
            input_tokens: self.agg.input_tokens,
            output_tokens: self.agg.output_tokens,
            cost_nano_usd: self.agg.cost_nanos,
            cost_usd: self.agg.cost_nanos as f64 / 1e9,
            latency_us: latency(&self.agg.latency),
            by_class: self.by_class.clone(),
        }
    }
}

pub fn class_name(c: u8) -> String {
    match c {
        1..=5 => format!("{c}xx"),
        _ => "none".into(),
    }
}

/// One point of a time series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// Start of the step (RFC 3339).
    pub time: String,
    #[serde(flatten)]
    pub totals: Totals,
}

fn rfc3339(t: i64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64))
        .to_string()
}

/// The series over `[from, to)` in steps of `step` seconds (steps without calls included, at 0).
pub async fn series(
    store: &Store,
    from: i64,
    to: i64,
    step: i64,
    f: &RollupFilter,
) -> Result<Vec<Point>, StoreError> {
    let rows = store.rollups(from, to, f).await?;
    let mut steps: BTreeMap<i64, Acc> = BTreeMap::new();
    let first = from - from.rem_euclid(step);
    let mut t = first;
    while t < to {
        steps.insert(t, Acc::default());
        t += step;
    }
    for r in &rows {
        let s = r.bucket - (r.bucket - first).rem_euclid(step);
        steps.entry(s).or_default().add(r);
    }
    Ok(steps
        .into_iter()
        .map(|(t, a)| Point {
            time: rfc3339(t),
            totals: a.totals(),
        })
        .collect())
}

/// What a top list ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Calls,
    Errors,
    LatencyP99,
    /// Input plus output tokens.
    Tokens,
    Cost,
}

/// What a top list groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Service,
    App,
    Route,
    Tenant,
    /// AI model alias.
    Model,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopItem {
    /// The service, app, route, tenant id or model alias ("" for calls without one).
    pub id: String,
    pub tenant: String,
    #[serde(flatten)]
    pub totals: Totals,
}

pub async fn top(
    store: &Store,
    from: i64,
    to: i64,
    by: By,
    metric: Metric,
    limit: usize,
    f: &RollupFilter,
) -> Result<Vec<TopItem>, StoreError> {
    let rows = store.rollups(from, to, f).await?;
    let mut groups: HashMap<(String, String), Acc> = HashMap::new();
    for r in &rows {
        let id = match by {
            By::Service => &r.key.service,
            By::App => &r.key.app,
            By::Route => &r.key.route,
            By::Tenant => &r.key.tenant,
            By::Model => &r.key.model,
        };
        if by == By::Model && id.is_empty() {
            continue;
        }
        groups
            .entry((id.clone(), r.key.tenant.clone()))
            .or_default()
            .add(r);
    }
    let mut items: Vec<TopItem> = groups
        .into_iter()
        .map(|((id, tenant), a)| TopItem {
            id,
            tenant,
            totals: a.totals(),
        })
        .collect();
    let rank = |t: &Totals| match metric {
        Metric::Calls => t.count,
        Metric::Errors => t.errors,
        Metric::LatencyP99 => t.latency_us.p99,
        Metric::Tokens => t.input_tokens.saturating_add(t.output_tokens),
        Metric::Cost => t.cost_nano_usd,
    };
    items.sort_by(|a, b| rank(&b.totals).cmp(&rank(&a.totals)).then(a.id.cmp(&b.id)));
    items.truncate(limit);
    Ok(items)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorItem {
    pub code: String,
    pub class: String,
    pub count: u64,
}

/// Calls that ended in an error over the range, by error code (most frequent first).
pub async fn errors(
    store: &Store,
    from: i64,
    to: i64,
    f: &RollupFilter,
) -> Result<Vec<ErrorItem>, StoreError> {
    let rows = store.rollups(from, to, f).await?;
    let mut by: HashMap<(String, u8), u64> = HashMap::new();
    for r in rows.iter().filter(|r| !r.key.code.is_empty()) {
        let c = by.entry((r.key.code.clone(), r.key.class)).or_default();
        *c = c.saturating_add(r.agg.count);
    }
    let mut items: Vec<ErrorItem> = by
        .into_iter()
        .map(|((code, class), count)| ErrorItem {
            code,
            class: class_name(class),
            count,
        })
        .collect();
    items.sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
    Ok(items)
}
