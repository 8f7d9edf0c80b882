//! `[call_log]` (one record per finished request, its sinks and what is redacted), `[metrics]`
//! (the Prometheus endpoint's label bounds) and `[analytics]` (rollups in the store, and how long
//! each resolution is kept).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::units::{Dur, Size};
use super::validate::{dur, range, size};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Query parameters whose values are always replaced in the call log (compared case-insensitively).
pub const REDACTED_QUERY: &[&str] = &[
    "access_token",
    "api_key",
    "api-key",
    "apikey",
    "auth",
    "client_secret",
    "code",
    "id_token",
    "key",
    "password",
    "passwd",
    "refresh_token",
    "secret",
    "session",
    "sig",
    "signature",
    "token",
    "x-amz-signature",
];

/// Request headers whose values are never recorded, whatever `call_log.headers` asks for.
pub const REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "set-cookie",
    "x-api-key",
];

/// JSON fields whose values are always replaced in captured bodies.
pub const REDACTED_FIELDS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "authorization",
    "client_secret",
    "password",
    "refresh_token",
    "secret",
    "token",
];

/// The text that stands in for a redacted value.
pub const REDACTED: &str = "[REDACTED]";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCallLog {
    /// Record calls (default true when the section is present).
    pub enabled: Option<bool>,
    /// Per-shard record buffer (read at start).
    pub buffer: Option<Size>,
    /// `redact` (default), `keep` or `drop` query strings.
    pub query: Option<String>,
    /// More query parameters to redact (added to the built-in list).
    pub redact_query: Option<Vec<String>>,
    /// Request headers to record.
    pub headers: Option<Vec<String>>,
    /// More headers whose values are redacted (added to the built-in list).
    pub redact_headers: Option<Vec<String>>,
    /// More JSON fields redacted in captured bodies (added to the built-in list).
    pub redact_fields: Option<Vec<String>>,
    /// Forward or create W3C `traceparent` (default true).
    pub trace: Option<bool>,
    /// Also write records as JSON lines to standard output.
    pub stdout: Option<bool>,
    /// Records a sink may fall behind by before it drops (per sink).
    pub sink_queue: Option<usize>,
    pub file: Option<RawFileSink>,
    pub otlp: Option<RawOtlp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSink {
    /// JSON-lines file; relative paths are relative to the config file.
    pub path: Option<String>,
    /// Rotate when the file reaches this size.
    pub max_size: Option<Size>,
    /// Rotate when the file is this old.
    pub max_age: Option<Dur>,
    /// Rotated files kept (older ones are deleted).
    pub keep: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    /// OTLP/HTTP logs endpoint, e.g. `http://127.0.0.1:4318/v1/logs`.
    pub endpoint: Option<String>,
    /// Extra request headers (e.g. an authorization the collector wants).
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Records per export request.
    pub batch: Option<usize>,
    /// Longest wait before a partial batch is sent.
    pub flush: Option<Dur>,
    /// Per-request timeout.
    pub timeout: Option<Dur>,
    /// `service.name` resource attribute.
    pub service_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Label requests by calling app too (`ringway_app_requests_total`; off by default: one
    /// series per app, up to `max_series` apps).
    pub per_app: Option<bool>,
    /// Routes and upstreams with series of their own (read at start); the rest are counted
    /// under `_other`.
    pub max_series: Option<usize>,
    /// Serve `/metrics` without a token (default false: the admin token or
    /// `RINGWAY_METRICS_TOKEN`).
    pub public: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnalytics {
    pub enabled: Option<bool>,
    /// How long per-minute rollups are kept (then merged into hours).
    pub minutes: Option<Dur>,
    /// How long per-hour rollups are kept (then merged into days).
    pub hours: Option<Dur>,
    /// How long per-day rollups are kept.
    pub days: Option<Dur>,
}

/// What a query string becomes in the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryMode {
    Keep,
    Redact,
    Drop,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallLogConfig {
    pub buffer: usize,
    pub query: QueryMode,
    /// Lower-cased; the built-in list plus the configured one.
    pub redact_query: Vec<String>,
    /// Lower-cased header names to record, in order.
    pub headers: Vec<String>,
    /// Lower-cased; built-in plus configured.
    pub redact_headers: Vec<String>,
    pub redact_fields: Vec<String>,
    pub trace: bool,
    pub stdout: bool,
    pub sink_queue: usize,
    pub file: Option<FileSinkConfig>,
    pub otlp: Option<OtlpConfig>,
}

impl CallLogConfig {
    /// Whether header `name` (lower-case) is one whose value must not be recorded.
    pub fn header_redacted(&self, name: &str) -> bool {
        self.redact_headers.iter().any(|h| h == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    pub max_size: u64,
    pub max_age: Duration,
    pub keep: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub batch: usize,
    pub flush: Duration,
    pub timeout: Duration,
    pub service_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub max_series: usize,
    pub public: bool,
    pub per_app: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            max_series: 1000,
            public: false,
            per_app: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsConfig {
    pub minutes: Duration,
    pub hours: Duration,
    pub days: Duration,
}

fn names(
    list: Option<Vec<String>>,
    builtin: &[&str],
    field: &str,
    header: bool,
) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = builtin.iter().map(|s| s.to_string()).collect();
    for (i, n) in list.unwrap_or_default().into_iter().enumerate() {
        let ok = !n.is_empty()
            && n.len() <= 128
            && n.bytes().all(|b| {
                if header {
                    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
                } else {
                    b.is_ascii_graphic() && b != b'&' && b != b'='
                }
            });
        if !ok {
            return Err(ConfigError::invalid(
                format!("{field}[{i}]"),
                format!("{n:?} is not a valid name"),
            ));
        }
        let n = n.to_ascii_lowercase();
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

pub(super) fn call_log(c: RawCallLog, base: &Path) -> Result<Option<CallLogConfig>, ConfigError> {
    if c.enabled == Some(false) {
        return Ok(None);
    }
    let query = match c.query.as_deref() {
        None | Some("redact") => QueryMode::Redact,
        Some("keep") => QueryMode::Keep,
        Some("drop") => QueryMode::Drop,
        Some(q) => {
            return Err(ConfigError::invalid(
                "call_log.query",
                format!("{q:?} is not one of redact, keep, drop"),
            ));
        }
    };
    let redact_headers = names(
        c.redact_headers,
        REDACTED_HEADERS,
        "call_log.redact_headers",
        true,
    )?;
    let headers = names(c.headers, &[], "call_log.headers", true)?;
    if headers.len() > 32 {
        return Err(ConfigError::invalid(
            "call_log.headers",
            "at most 32 headers can be recorded",
        ));
    }
    let file = c.file.map(|f| file_sink(f, base)).transpose()?;
    let otlp = c.otlp.map(otlp).transpose()?;
    Ok(Some(CallLogConfig {
        buffer: size(c.buffer, 4 * MIB, "call_log.buffer", 64 * KIB, 1024 * MIB)? as usize,
        query,
        redact_query: names(
            c.redact_query,
            REDACTED_QUERY,
            "call_log.redact_query",
            false,
        )?,
        headers,
        redact_headers,
        redact_fields: names(
            c.redact_fields,
            REDACTED_FIELDS,
            "call_log.redact_fields",
            false,
        )?,
        trace: c.trace.unwrap_or(true),
        stdout: c.stdout.unwrap_or(false),
        sink_queue: range(c.sink_queue, 65_536, "call_log.sink_queue", 16, 1 << 24)?,
        file,
        otlp,
    }))
}

fn file_sink(f: RawFileSink, base: &Path) -> Result<FileSinkConfig, ConfigError> {
    let path = match f.path {
        Some(p) if p.is_empty() => {
            return Err(ConfigError::invalid(
                "call_log.file.path",
                "must not be empty",
            ));
        }
        Some(p) => base.join(p),
        None => base.join("logs/calls.jsonl"),
    };
    if path.file_name().is_none() {
        return Err(ConfigError::invalid(
            "call_log.file.path",
            format!("{} names no file", path.display()),
        ));
    }
    Ok(FileSinkConfig {
        path,
        max_size: size(
            f.max_size,
            100 * MIB,
            "call_log.file.max_size",
            KIB,
            1 << 40,
        )?,
        max_age: dur(
            f.max_age,
            DAY,
            "call_log.file.max_age",
            Duration::from_secs(1),
            365 * DAY,
        )?,
        keep: range(f.keep, 10, "call_log.file.keep", 0, 100_000)?,
    })
}

fn otlp(o: RawOtlp) -> Result<OtlpConfig, ConfigError> {
    let Some(endpoint) = o.endpoint else {
        return Err(ConfigError::invalid(
            "call_log.otlp.endpoint",
            "is required (e.g. \"http://127.0.0.1:4318/v1/logs\")",
        ));
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        || reqwest::Url::parse(&endpoint).is_err()
    {
        return Err(ConfigError::invalid(
            "call_log.otlp.endpoint",
            format!("{endpoint:?} is not an http:// or https:// URL"),
        ));
    }
    let mut headers = Vec::new();
    for (k, v) in o.headers.unwrap_or_default() {
        let ok_name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_ok();
        let ok_value = reqwest::header::HeaderValue::from_str(&v).is_ok();
        if !ok_name || !ok_value {
            return Err(ConfigError::invalid(
                format!("call_log.otlp.headers.{k}"),
                "is not a valid header name and value",
            ));
        }
        headers.push((k, v));
    }
    Ok(OtlpConfig {
        endpoint,
        headers,
        batch: range(o.batch, 512, "call_log.otlp.batch", 1, 100_000)?,
        flush: dur(
            o.flush,
            Duration::from_secs(1),
            "call_log.otlp.flush",
            Duration::from_millis(10),
            Duration::from_secs(60),
        )?,
        timeout: dur(
            o.timeout,
            Duration::from_secs(10),
            "call_log.otlp.timeout",
            Duration::from_millis(100),
            Duration::from_secs(300),
        )?,
        service_name: o.service_name.unwrap_or_else(|| "ringway".to_string()),
    })
}

pub(super) fn metrics(m: Option<RawMetrics>) -> Result<MetricsConfig, ConfigError> {
    let m = m.unwrap_or_default();
    let d = MetricsConfig::default();
    Ok(MetricsConfig {
        max_series: range(m.max_series, d.max_series, "metrics.max_series", 1, 100_000)?,
        public: m.public.unwrap_or(d.public),
        per_app: m.per_app.unwrap_or(d.per_app),
    })
}

/// `store`: whether the config has a store (analytics live there).
pub(super) fn analytics(
    a: Option<RawAnalytics>,
    store: bool,
) -> Result<Option<AnalyticsConfig>, ConfigError> {
    let explicit = a.as_ref().and_then(|a| a.enabled);
    let a = a.unwrap_or_default();
    if explicit == Some(false) || (!store && explicit.is_none()) {
        return Ok(None);
    }
    if !store {
        return Err(ConfigError::invalid(
            "analytics.enabled",
            "analytics are kept in the store: add an [admin] or [store] section",
        ));
    }
    let minutes = dur(a.minutes, 2 * DAY, "analytics.minutes", HOUR, 90 * DAY)?;
    let hours = dur(a.hours, 35 * DAY, "analytics.hours", DAY, 3 * 365 * DAY)?;
    let days = dur(a.days, 400 * DAY, "analytics.days", DAY, 20 * 365 * DAY)?;
    if hours < minutes || days < hours {
        return Err(ConfigError::invalid(
            "analytics.hours",
            "retention must grow with the resolution: minutes <= hours <= days",
        ));
    }
    Ok(Some(AnalyticsConfig {
        minutes,
        hours,
        days,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// Every new field refuses a bad value with an error that names it.
    #[test]
    fn bad_values_name_the_field() {
        let base = "[[routes]]\npath_prefix = \"/\"\nrespond = { status = 200 }\n";
        for (extra, field) in [
            ("[call_log]\nquery = \"hide\"", "call_log.query"),
            ("[call_log]\nbuffer = \"1KiB\"", "call_log.buffer"),
            (
                "[call_log]\nheaders = [\"bad header\"]",
                "call_log.headers[0]",
            ),
            (
                "[call_log]\nredact_query = [\"a&b\"]",
                "call_log.redact_query[0]",
            ),
            ("[call_log]\nsink_queue = 1", "call_log.sink_queue"),
            ("[call_log.file]\npath = \"\"", "call_log.file.path"),
            ("[call_log.file]\nmax_size = 10", "call_log.file.max_size"),
            ("[call_log.file]\nmax_age = \"0s\"", "call_log.file.max_age"),
            ("[call_log.otlp]\nflush = \"1s\"", "call_log.otlp.endpoint"),
            (
                "[call_log.otlp]\nendpoint = \"ftp://x\"",
                "call_log.otlp.endpoint",
            ),
            (
                "[call_log.otlp]\nendpoint = \"http://c/v1/logs\"\nheaders = { \"bad name\" = \"v\" }",
                "call_log.otlp.headers.bad name",
            ),
            (
                "[call_log.otlp]\nendpoint = \"http://c/v1/logs\"\nbatch = 0",
                "call_log.otlp.batch",
            ),
            ("[metrics]\nmax_series = 0", "metrics.max_series"),
            ("[analytics]\nenabled = true", "analytics.enabled"),
            (
                "[store]\n[analytics]\nminutes = \"10m\"",
                "analytics.minutes",
            ),
            (
                "[store]\n[analytics]\nminutes = \"3d\"\nhours = \"2d\"",
                "analytics.hours",
            ),
        ] {
            let text = format!("{base}{extra}\n").replace("[call_log.", "[call_log]\n[call_log.");
            let e = Config::from_toml(&text).expect_err(extra).to_string();
            assert!(e.starts_with(field), "{extra}: {e}");
        }
        let route = "[[routes]]\npath_prefix = \"/\"\nrespond = { status = 200 }\ncapture_body = \"1MiB\"\n";
        let e = Config::from_toml(route).unwrap_err().to_string();
        assert!(e.starts_with("routes[0].capture_body"), "{e}");
    }
}
