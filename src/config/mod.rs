//! Configuration: `config.toml` → [`raw::RawConfig`] (serde) → validated, typed [`Config`].
//!
//! Every value a shard uses is checked here, once, off the hot path. Errors are [`ConfigError`]s that
//! name the field (`routes[2].upstream`) and the reason. Loading also resolves upstream host names
//! (blocking DNS happens here, on the control thread, never on an event loop).

pub mod admin;
pub mod ai;
pub mod limits;
pub mod managed;
pub mod observe;
mod raw;
pub mod tls;
pub mod units;
mod validate;
mod validate_upstream;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What a route matches is the route table's vocabulary; the config speaks it.
pub use crate::route::{HostPattern, PathMatch};
pub use limits::{
    ConcurrencyLimitConfig, LimitAlgorithm, LimitKey, RateLimitConfig, RouteLimitsConfig,
};
pub use raw::RawConfig;

use crate::http::Method;
use crate::route::{RouteMatch, RouteTable};

/// A validated configuration. Cheap to share (`Arc`) between shards; never mutated.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    /// Upstreams; a route refers to one by index.
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    /// TLS termination (`[tls]`), when configured.
    pub tls: Option<tls::TlsConfig>,
    /// `[admin]`: the admin API (with the control plane and its store).
    pub admin: Option<admin::AdminConfig>,
    /// `[store]` (or its default when `[admin]` is set): the control plane's store; `None` when
    /// neither section is present (no control plane).
    pub store: Option<admin::StoreConfig>,
    /// `[call_log]`: one record per finished request (`None`: no records are made).
    pub call_log: Option<observe::CallLogConfig>,
    /// `[metrics]`: label bounds of the Prometheus endpoint.
    pub metrics: observe::MetricsConfig,
    /// `[analytics]`: rollups in the store (on by default when there is a store).
    pub analytics: Option<observe::AnalyticsConfig>,
    /// `[ai]`: model providers (their upstreams are in `upstreams`), aliases and prices.
    pub ai: Arc<ai::AiConfig>,
    /// `routes` compiled. Validation has to compile them (that is how it finds two routes that
    /// match the same requests), so it keeps the table, and every snapshot of this config serves
    /// from it instead of compiling it again. Shared, so cloning a config does not copy it.
    route_table: Arc<RouteTable>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    Auto,
    IoUring,
    Epoll,
}

impl DriverChoice {
    pub fn parse(s: &str) -> Option<DriverChoice> {
        match s {
            "auto" => Some(DriverChoice::Auto),
            "io_uring" | "iouring" | "uring" => Some(DriverChoice::IoUring),
            "epoll" | "legacy" => Some(DriverChoice::Epoll),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    /// Shard count; `None` = one per CPU in `cpus`.
    pub workers: Option<usize>,
    /// CPUs to pin shards to; `None` = every CPU this process may run on.
    pub cpus: Option<Vec<usize>>,
    pub driver: DriverChoice,
    pub ring_entries: u32,
    pub ring_tuning: bool,
    pub backlog: u32,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    pub tick: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub buffer_size: usize,
    pub response_buffer_size: usize,
    pub max_head_size: usize,
    pub max_headers: usize,
    pub max_uri_size: usize,
    pub max_body_size: u64,
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub keepalive_requests: u64,
    pub body_timeout: Duration,
    pub idle_buffer_release: Duration,
    pub tunnel_idle_timeout: Duration,
    /// Pre-rendered `Via` value (`"1.1 ringway"`), or `None` when disabled.
    pub via: Option<String>,
    pub forwarded_headers: bool,
    pub normalize: NormalizeConfig,
}

/// Path normalization before routing (see `http::normalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormalizeConfig {
    pub options: crate::http::normalize::Options,
    /// Send the upstream the path as the client sent it rather than as routed. Routes with
    /// `rewrite_prefix` always forward the routed path (the prefix they replace was matched on it).
    pub forward_original: bool,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub json: bool,
    /// Lines the non-blocking log writer holds before it drops new ones.
    pub buffer_lines: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Fewest requests in flight relative to weight (power of two choices on large target sets).
    LeastInFlight,
    /// Weighted random.
    Random,
    /// Consistent hashing (ketama ring) on a request key.
    ConsistentHash(HashKey),
}

/// What a consistent-hash balancer hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    /// The path without the query.
    Path,
    /// A header value (name lower-cased).
    Header(String),
    /// A cookie value.
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// As written in the config (`"backend.internal:8080"`).
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub name: String,
    pub targets: Vec<TargetConfig>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub read_timeout: Duration,
    pub max_idle: usize,
    /// 0 = unlimited.
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub health_check: Option<HealthCheckConfig>,
    pub retry: Option<RetryConfig>,
    pub breaker: Option<BreakerConfig>,
    pub outlier: Option<OutlierConfig>,
    /// TLS towards the targets (`[upstreams.NAME.tls]`).
    pub tls: Option<tls::UpstreamTls>,
}

/// Passive outlier ejection of an upstream's targets (see `upstream::outlier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierConfig {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejected_percent: u32,
}

/// Circuit breaker of an upstream (see `upstream::breaker`). Ratios are in per mille.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    pub consecutive_failures: u32,
    pub failure_ratio_permille: u32,
    pub slow_call_ratio_permille: u32,
    pub slow_call_threshold: Duration,
    pub window: Duration,
    pub min_requests: u32,
    pub failure_statuses: Vec<u16>,
    pub open_duration: Duration,
    pub max_open_duration: Duration,
    pub half_open_probes: u32,
    pub max_in_flight: u32,
    /// `None` = unlimited.
    pub max_pending: Option<u32>,
}

/// When and how a failed try is repeated on another target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    pub attempts: u32,
    pub on_connect_failure: bool,
    pub on_reset: bool,
    pub on_timeout: bool,
    /// Statuses retried (empty = none).
    pub statuses: Vec<u16>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub budget_percent: u32,
    pub budget_min_per_sec: u32,
    pub per_try_timeout: Option<Duration>,
    pub total_timeout: Option<Duration>,
}

/// Active health checking of an upstream's targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    pub path: String,
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Empty = any status from 200 to 399.
    pub expected_statuses: Vec<u16>,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub fail_open: bool,
}

impl HealthCheckConfig {
    pub fn expects(&self, status: u16) -> bool {
        if self.expected_statuses.is_empty() {
            (200..400).contains(&status)
        } else {
            self.expected_statuses.contains(&status)
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// Empty = any host.
    pub hosts: Vec<HostPattern>,
    pub path: PathMatch,
    /// Empty = any method.
    pub methods: Vec<Method>,
    pub max_body_size: u64,
    /// Body bytes kept in the call record (0: none).
    pub capture_body: usize,
    pub retry_non_idempotent: bool,
    /// Rate and concurrency limits (empty = none).
    pub limits: RouteLimitsConfig,
    pub action: RouteAction,
}

impl RouteConfig {
    /// What the route table is compiled from.
    pub fn matcher(&self) -> RouteMatch<'_> {
        RouteMatch {
            hosts: &self.hosts,
            path: &self.path,
            methods: &self.methods,
        }
    }
}

#[derive(Debug, Clone)]
pub enum RouteAction {
    Proxy(ProxyAction),
    Respond(StaticResponse),
    /// The unified AI API (chat completions, embeddings, models) over `[ai]`'s providers.
    Ai(ai::AiAction),
}

#[derive(Debug, Clone)]
pub struct ProxyAction {
    pub upstream: usize,
    /// Used while `upstream`'s breaker is open...
    pub fallback_upstream: Option<usize>,
    /// ...or this response is served.
    pub fallback_respond: Option<StaticResponse>,
    /// Replacement for the matched path prefix (`Some("")` strips it).
    pub rewrite_prefix: Option<String>,
    pub upstream_host: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StaticResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A config problem, naming the field it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The I/O error is part of the message (not a `source`), so that logs, which print only the
    /// message, still say why.
    #[error("cannot read config file {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{0}")]
    Parse(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.display().to_string(),
            err,
        })?;
        Config::from_toml_in(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses and validates config text; relative file paths in it are relative to the current
    /// directory.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_in(text, Path::new("."))
    }

    /// Parses and validates config text whose relative file paths are relative to `base`.
    pub fn from_toml_in(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        validate::validate(raw, base)
    }

    /// The config `ringway proxy --listen A --upstream B` runs: one catch-all route to one upstream.
    pub fn single_proxy(listen: &str, upstream: &str) -> Result<Config, ConfigError> {
        let raw = RawConfig {
            server: raw::RawServer {
                listen: Some(vec![listen.to_string()]),
                ..Default::default()
            },
            upstreams: [(
                "upstream".to_string(),
                raw::RawUpstream {
                    targets: vec![raw::RawTarget::Addr(upstream.to_string())],
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
            routes: vec![raw::RawRoute {
                name: Some("proxy".to_string()),
                path_prefix: Some("/".to_string()),
                upstream: Some("upstream".to_string()),
                ..Default::default()
            }],
            ..Default::default()
        };
        validate::validate(raw, Path::new("."))
    }

    pub fn upstream_index(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u.name == name)
    }

    /// The compiled [`Config::routes`], built once at validation.
    pub fn route_table(&self) -> &Arc<RouteTable> {
        &self.route_table
    }
}

/// Parses a CPU list such as `"0-3,8"`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: usize = lo
            .parse()
            .map_err(|_| format!("invalid CPU number {lo:?} in {s:?}"))?;
        let hi: usize = hi
            .parse()
            .map_err(|_| format!("invalid CPU number {hi:?} in {s:?}"))?;
        if hi < lo {
            return Err(format!(
                "invalid CPU range {part:?} in {s:?}: end before start"
            ));
        }
        if hi > 4095 {
            return Err(format!("CPU {hi} in {s:?} is out of range"));
        }
        for c in lo..=hi {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("empty CPU list {s:?}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8"), Ok(vec![0, 1, 2, 3, 8]));
        assert_eq!(parse_cpu_list("1"), Ok(vec![1]));
        assert_eq!(parse_cpu_list("2,2,1"), Ok(vec![2, 1]));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("").is_err());
    }
}
