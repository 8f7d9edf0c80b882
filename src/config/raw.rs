//! The config file as written: serde types mirroring `config.toml`, with defaults and
//! `deny_unknown_fields` so a misspelt key is an error, not a silently ignored line.
//!
//! Nothing here is trusted; [`super::validate`] turns a [`RawConfig`] into the typed
//! [`super::Config`] and names the field in every error.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::units::{Dur, Size};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub tls: Option<super::tls::RawTls>,
    pub admin: Option<super::admin::RawAdmin>,
    pub store: Option<super::admin::RawStore>,
    pub call_log: Option<super::observe::RawCallLog>,
    pub metrics: Option<super::observe::RawMetrics>,
    pub analytics: Option<super::observe::RawAnalytics>,
    pub ai: Option<super::ai::RawAi>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Addresses to listen on; every shard binds each one with SO_REUSEPORT.
    pub listen: Option<Vec<String>>,
    /// Number of shards (threads); 0 or absent = one per CPU in `cpus` (or per available CPU).
    pub workers: Option<usize>,
    /// CPU list to pin shards to, e.g. `"0-3,8"`.
    pub cpus: Option<String>,
    /// `auto`, `io_uring` or `epoll`.
    pub driver: Option<String>,
    /// io_uring submission queue size (power of two, 256..=32768).
    pub ring_entries: Option<u32>,
    /// Set IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN when the kernel has them.
    pub ring_tuning: Option<bool>,
    /// listen(2) backlog.
    pub backlog: Option<u32>,
    /// Connections a shard accepts at once; further ones wait in the kernel backlog.
    pub max_connections: Option<usize>,
    /// How long in-flight requests may run after SIGTERM/SIGINT before connections are closed.
    pub shutdown_timeout: Option<Dur>,
    /// Housekeeping tick of each shard: timeouts, pool expiry, config reload pick-up.
    pub tick: Option<Dur>,
}

/// `[http.normalize]`: how request paths are normalized before routing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNormalize {
    /// Merge runs of `/` (default true).
    pub merge_slashes: Option<bool>,
    /// `reject` (default) or `resolve` `.` and `..` segments.
    pub dot_segments: Option<crate::http::normalize::DotSegments>,
    /// `reject` (default), `keep` or `decode` `%2F`, `%5C` and `\`.
    pub encoded_separators: Option<crate::http::normalize::EncodedSeparators>,
    /// `normalized` (default): the upstream gets the path as routed; `original`: as sent.
    pub forward: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Per-connection read buffer for client requests.
    pub buffer_size: Option<Size>,
    /// Read buffer for upstream responses (per in-flight request).
    pub response_buffer_size: Option<Size>,
    /// Largest request head (request line + headers) accepted; larger → 431.
    pub max_head_size: Option<Size>,
    /// Most header fields in a request; more → 431.
    pub max_headers: Option<usize>,
    /// Longest request-target; longer → 414.
    pub max_uri_size: Option<Size>,
    /// Default request body limit for routes that do not set one; larger → 413.
    pub max_body_size: Option<Size>,
    /// Time a client has to send a complete request head; exceeded → 408.
    pub header_timeout: Option<Dur>,
    /// Time an idle keep-alive client connection is kept open.
    pub keepalive_timeout: Option<Dur>,
    /// Requests served on one client connection before it is closed (0 = unlimited).
    pub keepalive_requests: Option<u64>,
    /// Time a client may stall while sending a request body.
    pub body_timeout: Option<Dur>,
    /// An idle keep-alive connection gives its read buffer back after this long.
    pub idle_buffer_release: Option<Dur>,
    /// Longest silence in both directions of an upgraded (WebSocket) connection.
    pub tunnel_idle_timeout: Option<Dur>,
    /// Value of the `Via` header added in both directions; `""` disables it.
    pub via: Option<String>,
    /// Add X-Forwarded-For/-Proto/-Host to upstream requests.
    pub forwarded_headers: Option<bool>,
    /// Path normalization before routing (`[http.normalize]`).
    pub normalize: Option<RawNormalize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `error`, `warn`, `info`, `debug`, `trace` (overridden by RUST_LOG).
    pub level: Option<String>,
    /// `text` or `json`.
    pub format: Option<String>,
    /// Lines held for a slow log output before new ones are dropped (and counted).
    pub buffer_lines: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    /// `round_robin` (smooth weighted), `least_in_flight`, `random` or `consistent_hash`.
    pub balance: Option<String>,
    /// For `consistent_hash`: `client_ip`, `path`, `header:NAME` or `cookie:NAME`.
    pub hash_key: Option<String>,
    pub connect_timeout: Option<Dur>,
    /// Time from the request being sent to the response head being complete; exceeded → 504.
    pub response_timeout: Option<Dur>,
    /// Longest silence while reading a response body.
    pub read_timeout: Option<Dur>,
    /// Idle keep-alive connections kept per target per shard.
    pub max_idle: Option<usize>,
    /// Connections per target per shard, idle and busy (0 = unlimited).
    pub max_connections: Option<usize>,
    /// Idle pooled connections are closed after this long.
    pub idle_timeout: Option<Dur>,
    /// Active HTTP health checks.
    pub health_check: Option<RawHealthCheck>,
    /// Retry policy.
    pub retry: Option<RawRetry>,
    /// Circuit breaker and concurrency caps.
    pub breaker: Option<RawBreaker>,
    /// Passive outlier ejection of failing targets.
    pub outlier: Option<RawOutlier>,
    /// The targets speak TLS.
    pub tls: Option<super::tls::RawUpstreamTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlier {
    /// Failures in a row (connect errors, timeouts, resets, 5xx) that eject a target.
    pub consecutive_failures: Option<u32>,
    /// First ejection lasts this long; the n-th in a row n times as long...
    pub base_ejection: Option<Dur>,
    /// ...up to this.
    pub max_ejection: Option<Dur>,
    /// At most this share of the targets is ejected at once (at least one target may be).
    pub max_ejected_percent: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    /// Trip after this many failures in a row (0 = rule off).
    pub consecutive_failures: Option<u32>,
    /// Trip when failures / requests over `window` reach this (0 = rule off)...
    pub failure_ratio: Option<f64>,
    /// ...or calls slower than `slow_call_threshold` reach this share (0 = rule off)...
    pub slow_call_ratio: Option<f64>,
    pub slow_call_threshold: Option<Dur>,
    /// ...over this sliding window...
    pub window: Option<Dur>,
    /// ...once it holds at least this many requests.
    pub min_requests: Option<u32>,
    /// Statuses that count as failures (connect errors, timeouts and resets always do).
    pub failure_statuses: Option<Vec<u16>>,
    /// Open time after the first trip; doubles with each trip in a row, up to `max_open_duration`.
    pub open_duration: Option<Dur>,
    pub max_open_duration: Option<Dur>,
    /// Probe requests let through, node-wide, when half-open; this many successes close it.
    pub half_open_probes: Option<u32>,
    /// Requests in flight to the upstream at once (0 = unlimited); over it -> 503.
    pub max_in_flight: Option<u32>,
    /// Requests waiting for a connection (targets at max_connections); over it -> 503 at once.
    pub max_pending: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Retries after the first try.
    pub attempts: Option<u32>,
    /// Failures retried: connect_failure, reset, timeout, status.
    pub on: Option<Vec<String>>,
    /// Statuses retried when `on` has "status".
    pub statuses: Option<Vec<u16>>,
    pub backoff_base: Option<Dur>,
    pub backoff_max: Option<Dur>,
    /// Retries may be at most this percentage of requests (per shard, per second)...
    pub budget_percent: Option<u32>,
    /// ...but this many per second are always allowed.
    pub budget_min_per_sec: Option<u32>,
    /// Response timeout of one try (default: the upstream's response_timeout).
    pub per_try_timeout: Option<Dur>,
    /// Deadline for all tries together.
    pub total_timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// Path probed with GET.
    pub path: Option<String>,
    /// Host header of the probe (default: the target's address).
    pub host: Option<String>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    /// Statuses that count as healthy (default 200-399).
    pub expected_statuses: Option<Vec<u16>>,
    /// Consecutive passes that bring an unhealthy target back.
    pub healthy_threshold: Option<u32>,
    /// Consecutive failures that take a target out of rotation.
    pub unhealthy_threshold: Option<u32>,
    /// When every target is unhealthy: true = use them all anyway, false = answer 503.
    pub fail_open: Option<bool>,
}

/// A target as `"host:port"` or `{ addr = "host:port", weight = 3 }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawTarget {
    Addr(String),
    Weighted(RawWeightedTarget),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeightedTarget {
    pub addr: String,
    pub weight: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    /// Exact hosts and `*.example.com` wildcards; absent = any host.
    pub hosts: Option<Vec<String>>,
    pub path_prefix: Option<String>,
    pub path_exact: Option<String>,
    /// Methods this route serves; absent = all.
    pub methods: Option<Vec<String>>,
    /// Upstream name for a proxy route.
    pub upstream: Option<String>,
    /// Remove the matched prefix before forwarding.
    pub strip_prefix: Option<bool>,
    /// Replace the matched prefix with this before forwarding.
    pub rewrite_prefix: Option<String>,
    /// Host header sent upstream; absent = the client's Host is preserved.
    pub upstream_host: Option<String>,
    pub max_body_size: Option<Size>,
    /// Bytes of each request and response body kept in the call record (0 / absent: none), for
    /// debugging; JSON fields in `call_log.redact_fields` are redacted.
    pub capture_body: Option<Size>,
    /// Let the upstream's retry policy retry non-idempotent requests (POST, PATCH) too.
    pub retry_non_idempotent: Option<bool>,
    /// Upstream used while the route's upstream has an open circuit breaker...
    pub fallback_upstream: Option<String>,
    /// ...or a fixed response served then.
    pub fallback_respond: Option<RawRespond>,
    /// Fixed response for a static route.
    pub respond: Option<RawRespond>,
    /// Request-rate limits; all must admit a request (e.g. 10/s and 1000/h).
    pub rate_limits: Option<Vec<RawRateLimit>>,
    /// Limits on requests in flight per key.
    pub concurrency_limits: Option<Vec<RawConcurrencyLimit>>,
    /// Send RateLimit-Limit/-Remaining/-Reset on the route's responses (default true).
    pub rate_limit_headers: Option<bool>,
    /// Serve the unified AI API (`[ai]` providers and aliases).
    pub ai: Option<super::ai::RawAiRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// `client_ip` (default), `path`, `route` or `header:NAME`.
    pub key: Option<String>,
    /// `token_bucket` (default) or `sliding_window`.
    pub algorithm: Option<String>,
    /// Requests allowed per `per`.
    pub limit: Option<u64>,
    /// `second`, `minute`, `hour`, `day` or a duration such as `"10s"`.
    pub per: Option<String>,
    /// Token bucket only: most requests at once (default `limit`).
    pub burst: Option<u64>,
    /// Keys tracked at once; beyond, the least recently used idle key is forgotten.
    pub max_keys: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConcurrencyLimit {
    /// As for rate limits.
    pub key: Option<String>,
    /// Requests in flight per key.
    pub max: Option<u32>,
    pub max_keys: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRespond {
    pub status: Option<u16>,
    pub body: Option<String>,
    pub content_type: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
