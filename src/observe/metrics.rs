//! What the shards count for the Prometheus endpoint, and the series they count into.
//!
//! Each shard owns one [`ShardMetrics`] and is its only writer: a count is a relaxed load and
//! store of an atomic only that shard writes (no locked instruction, no cache line shared with
//! another shard); the control plane sums the shards when scraped. Latencies go into fixed
//! Prometheus buckets ([`BUCKETS_US`]): a histogram per route and per upstream is a row of
//! counters, mergeable across shards by addition.
//!
//! Label cardinality is bounded: routes and upstreams get series slots by name when a snapshot
//! is published ([`SeriesNames`]), at most `metrics.max_series` of each; later ones share the
//! `_other` slot. Slot 0 is "no route" (requests refused before routing).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, in microseconds (`le` of the rendered histogram).
pub const BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Owner-only increment (see the module docs).
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

#[inline]
pub fn set(c: &AtomicU64, v: u64) {
    c.store(v, Ordering::Relaxed);
}

#[inline]
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A latency histogram: per-bucket counts (not cumulative; the last is +Inf) and the sum.
#[derive(Default)]
pub struct Hist {
    pub buckets: [AtomicU64; BUCKETS_US.len() + 1],
    pub sum_us: AtomicU64,
}

impl Hist {
    #[inline]
    pub fn record(&self, us: u64) {
        let i = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        add(&self.buckets[i], 1);
        add(&self.sum_us, us);
    }
}

/// A route's series.
#[derive(Default)]
pub struct RouteSeries {
    /// By status class sent: 0 = none, 1..=5.
    pub by_class: [AtomicU64; 6],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub latency: Hist,
    /// AI routes: tokens (input, output), cost in nano-USD, and time to first token.
    pub ai_input_tokens: AtomicU64,
    pub ai_output_tokens: AtomicU64,
    pub ai_cost_nanos: AtomicU64,
    pub ai_first_token: Hist,
}

/// An upstream's series. The pool figures are published by the shard at its tick.
#[derive(Default)]
pub struct UpstreamSeries {
    /// From the request sent to the first byte of the response head.
    pub first_byte: Hist,
    pub requests: AtomicU64,
    /// Tries after the first.
    pub retries: AtomicU64,
    /// Retries the budget refused.
    pub retries_denied: AtomicU64,
    /// Requests sent on a pooled connection / on a new one.
    pub reused: AtomicU64,
    pub connected: AtomicU64,
    /// Gauges: idle and open connections in the shard's pools.
    pub idle: AtomicU64,
    pub open: AtomicU64,
}

/// Error codes counted node-wide (the codes of [`crate::error::GatewayError::code`]).
pub const MAX_CODES: usize = 64;

/// Requests of one calling app by status class (`metrics.per_app`).
#[derive(Default)]
pub struct AppSeries {
    pub by_class: [AtomicU64; 6],
}

pub struct ShardMetrics {
    pub routes: Box<[RouteSeries]>,
    /// By app series slot ([`AppSlots`]).
    pub apps: Box<[AppSeries]>,
    pub upstreams: Box<[UpstreamSeries]>,
    /// By error code, as interned in [`codes`].
    pub errors: [AtomicU64; MAX_CODES],
    pub accepted: AtomicU64,
    pub tls_ok: AtomicU64,
    pub tls_failed: AtomicU64,
    pub ticks: AtomicU64,
    /// How late the shard's ticks ran (the event loop was busy): a loop-health histogram.
    pub tick_lag: Hist,
}

impl ShardMetrics {
    /// Room for `max_series` routes and upstreams (plus "no route" and `_other`).
    pub fn new(max_series: usize) -> ShardMetrics {
        let n = max_series + 2;
        ShardMetrics {
            routes: (0..n).map(|_| RouteSeries::default()).collect(),
            upstreams: (0..n).map(|_| UpstreamSeries::default()).collect(),
            apps: (0..n).map(|_| AppSeries::default()).collect(),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            accepted: AtomicU64::new(0),
            tls_ok: AtomicU64::new(0),
            tls_failed: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            tick_lag: Hist::default(),
        }
    }

    #[inline]
    pub fn route(&self, slot: u32) -> &RouteSeries {
        &self.routes[(slot as usize).min(self.routes.len() - 1)]
    }

    #[inline]
    pub fn app(&self, slot: u32) -> &AppSeries {
        &self.apps[(slot as usize).min(self.apps.len() - 1)]
    }

    #[inline]
    pub fn upstream(&self, slot: u32) -> &UpstreamSeries {
        &self.upstreams[(slot as usize).min(self.upstreams.len() - 1)]
    }
}

/// The error codes, in the order of their counters (a code's index is its place here; codes not
/// listed count under the last, `other`).
pub fn codes() -> &'static [&'static str] {
    &[
        "header_too_large",
        "too_many_headers",
        "uri_too_long",
        "bad_request",
        "bad_framing",
        "missing_host",
        "bad_host",
        "http_version_not_supported",
        "expectation_failed",
        "method_not_allowed",
        "bad_chunked_body",
        "bad_path",
        "body_too_large",
        "header_timeout",
        "body_timeout",
        "route_not_found",
        "client_closed",
        "upstream_connect_failed",
        "upstream_connect_timeout",
        "upstream_reset",
        "upstream_bad_response",
        "upstream_timeout",
        "upstream_saturated",
        "no_healthy_upstream",
        "circuit_open",
        "concurrency_limit",
        "pending_limit",
        "shutting_down",
        "rate_limited",
        "too_many_concurrent_requests",
        "credential_missing",
        "credential_invalid",
        "subscription_required",
        "subscription_pending",
        "service_retired",
        "too_many_credential_checks",
        "length_required",
        "other",
    ]
}

/// The counter index of error code `code`.
pub fn code_index(code: &str) -> usize {
    let c = codes();
    c.iter().position(|x| *x == code).unwrap_or(c.len() - 1)
}

/// Labels of one route series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteLabels {
    pub route: String,
    pub service: String,
    pub tenant: String,
}

/// Series slots handed out by label, node-wide: slot 0 is "none" and slot 1 `_other`, where
/// labels go once `max` have slots of their own; a slot is never reused before a restart. The
/// labels equal to the reserved ones map to those slots, so no two series share their labels.
/// The list of labels by slot is shared (for the scrape) until a slot is added.
pub struct Slots<K> {
    max: usize,
    slot: HashMap<K, u32>,
    labels: Vec<K>,
    shared: Arc<Vec<K>>,
}

impl<K: Clone + Eq + std::hash::Hash> Slots<K> {
    pub fn new(max: usize, none: K, other: K) -> Slots<K> {
        Slots {
            max,
            slot: HashMap::from([(none.clone(), 0), (other.clone(), 1)]),
            labels: vec![none, other],
            shared: Arc::default(),
        }
    }

    /// The slot of `k`, given one if there is room.
    pub fn slot(&mut self, k: &K) -> u32 {
        if let Some(&s) = self.slot.get(k) {
            return s;
        }
        if self.labels.len() >= self.max + 2 {
            return 1;
        }
        let s = self.labels.len() as u32;
        self.labels.push(k.clone());
        self.slot.insert(k.clone(), s);
        s
    }

    /// Every slot's labels.
    pub fn labels(&mut self) -> Arc<Vec<K>> {
        if self.shared.len() != self.labels.len() {
            self.shared = Arc::new(self.labels.clone());
        }
        self.shared.clone()
    }
}

/// The route and upstream series slots (changed only by the snapshot publisher, under its lock).
pub struct SeriesNames {
    routes: Slots<RouteLabels>,
    upstreams: Slots<String>,
}

/// What a snapshot knows of the series: the slot of each of its routes and upstreams, and every
/// slot's labels so far (for the scrape).
#[derive(Debug, Default)]
pub struct Series {
    /// By route index.
    pub routes: Vec<u32>,
    /// By upstream index.
    pub upstreams: Vec<u32>,
    /// By slot.
    pub route_labels: Arc<Vec<RouteLabels>>,
    pub upstream_labels: Arc<Vec<String>>,
}

impl SeriesNames {
    pub fn new(max: usize) -> SeriesNames {
        let none = RouteLabels {
            route: String::new(),
            service: String::new(),
            tenant: String::new(),
        };
        let other = RouteLabels {
            route: "_other".into(),
            ..none.clone()
        };
        SeriesNames {
            routes: Slots::new(max, none, other),
            upstreams: Slots::new(max, String::new(), "_other".into()),
        }
    }

    /// Slots for `routes` (labels by route index) and `upstreams` (names by index).
    pub fn assign(&mut self, routes: Vec<RouteLabels>, upstreams: &[&str]) -> Series {
        Series {
            routes: routes.iter().map(|l| self.routes.slot(l)).collect(),
            upstreams: upstreams
                .iter()
                .map(|&n| self.upstreams.slot(&n.to_string()))
                .collect(),
            route_labels: self.routes.labels(),
            upstream_labels: self.upstreams.labels(),
        }
    }
}

/// The series of a snapshot of `config` and `catalog` (route labels name the managed service and
/// its tenant).
pub fn assign(
    names: &mut SeriesNames,
    config: &crate::config::Config,
    catalog: &crate::catalog::Catalog,
) -> Series {
    let routes = config
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let svc = catalog.services.of_route(i);
            RouteLabels {
                route: r.name.clone(),
                service: svc.map(|s| s.id.to_string()).unwrap_or_default(),
                tenant: svc.map(|s| s.tenant_id.to_string()).unwrap_or_default(),
            }
        })
        .collect();
    let upstreams: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    names.assign(routes, &upstreams)
}

/// App series slots (`metrics.per_app`), handed out by the control plane as apps enter the
/// catalog, labelled (app id, tenant id).
pub type AppSlots = Slots<(Box<str>, Box<str>)>;

/// Slots for at most `max` apps.
pub fn app_slots(max: usize) -> AppSlots {
    Slots::new(max, ("".into(), "".into()), ("_other".into(), "".into()))
}
