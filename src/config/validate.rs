//! [`RawConfig`] → [`Config`]: defaults, range checks, name resolution, cross references.
//! Every error names the field it is about.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::raw::{RawConfig, RawHttp, RawLog, RawRespond, RawRoute, RawServer};
use super::units::Dur;
use super::validate_upstream::upstream;
use super::*;
use crate::route::Conflict;

pub(super) fn validate(raw: RawConfig, base: &std::path::Path) -> Result<Config, ConfigError> {
    let server = server(raw.server)?;
    let tls = raw.tls.map(|t| super::tls::tls(t, base)).transpose()?;
    if let Some(t) = &tls {
        if let Some(a) = t
            .listen
            .iter()
            .find(|a| a.port() != 0 && server.listen.contains(a))
        {
            return Err(ConfigError::invalid(
                "tls.listen",
                format!("{a} is also in server.listen: one address is either plain or TLS"),
            ));
        }
    }
    let http = http(raw.http)?;
    let log = log(raw.log)?;
    let control = raw.admin.is_some() || raw.store.is_some();
    let admin = raw
        .admin
        .map(|a| super::admin::admin(a, base))
        .transpose()?;
    let store = if control {
        Some(super::admin::store(raw.store, base)?)
    } else {
        None
    };
    if let Some(a) = &admin {
        if a.listen.port() != 0
            && (server.listen.contains(&a.listen)
                || tls.as_ref().is_some_and(|t| t.listen.contains(&a.listen)))
        {
            return Err(ConfigError::invalid(
                "admin.listen",
                format!("{} is also a proxy listener", a.listen),
            ));
        }
    }
    let call_log = match raw.call_log {
        Some(c) => super::observe::call_log(c, base)?,
        None => None,
    };
    let metrics = super::observe::metrics(raw.metrics)?;
    let analytics = super::observe::analytics(raw.analytics, store.is_some())?;
    let mut upstreams = Vec::with_capacity(raw.upstreams.len());
    for (name, u) in raw.upstreams {
        upstreams.push(upstream(name, u, base)?);
    }
    let ai = match raw.ai {
        Some(a) => super::ai::ai(a, &mut upstreams, base)?,
        None => super::ai::AiConfig::default(),
    };
    let mut routes = Vec::with_capacity(raw.routes.len());
    let mut names = HashSet::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let route = route(i, r, &upstreams, &http, &ai)?;
        if !names.insert(route.name.clone()) {
            return Err(ConfigError::invalid(
                format!("routes[{i}].name"),
                format!("duplicate route name {:?}", route.name),
            ));
        }
        routes.push(route);
    }
    // Without a control plane there is nothing else to serve; with one, managed services may be
    // all the routes there are.
    if routes.is_empty() && !control {
        return Err(ConfigError::invalid(
            "routes",
            "at least one [[routes]] entry is required (or an [admin] section for managed services)",
        ));
    }
    // Compiling the table finds ambiguous routes, so a bad file is rejected at load; the config
    // keeps the table for the snapshots built from it.
    let route_table = RouteTable::build(routes.iter().map(RouteConfig::matcher))
        .map_err(|c| conflict(&routes, c))?;
    Ok(Config {
        server,
        http,
        log,
        upstreams,
        routes,
        tls,
        admin,
        store,
        call_log,
        metrics,
        analytics,
        ai: Arc::new(ai),
        route_table: Arc::new(route_table),
    })
}

fn conflict(routes: &[RouteConfig], c: Conflict) -> ConfigError {
    ConfigError::invalid(
        format!("routes[{}]", c.route),
        format!(
            "route {:?} matches the same host, path and methods as route {:?}; one of them could never be used",
            routes[c.route].name, routes[c.other].name
        ),
    )
}

pub(super) fn dur(
    v: Option<Dur>,
    default: Duration,
    field: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let d = v.map(|d| d.0).unwrap_or(default);
    if d < min || d > max {
        return Err(ConfigError::invalid(
            field,
            format!(
                "{} is out of range ({} to {})",
                humantime::format_duration(d),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

pub(super) fn range<T: PartialOrd + std::fmt::Display + Copy>(
    v: Option<T>,
    default: T,
    field: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let x = v.unwrap_or(default);
    if x < min || x > max {
        return Err(ConfigError::invalid(
            field,
            format!("{x} is out of range ({min} to {max})"),
        ));
    }
    Ok(x)
}

const KIB: u64 = 1024;
/// Largest request body an AI route buffers.
pub(super) const AI_MAX_BODY: u64 = 32 * MIB;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * 1024 * 1024;

fn server(s: RawServer) -> Result<ServerConfig, ConfigError> {
    let listen_raw = s.listen.unwrap_or_else(|| vec!["0.0.0.0:8080".to_string()]);
    if listen_raw.is_empty() {
        return Err(ConfigError::invalid(
            "server.listen",
            "at least one address is required",
        ));
    }
    let mut listen = Vec::new();
    for (i, a) in listen_raw.iter().enumerate() {
        let addr: SocketAddr = a.parse().map_err(|_| {
            ConfigError::invalid(
                format!("server.listen[{i}]"),
                format!("{a:?} is not an IP:port address"),
            )
        })?;
        if listen.contains(&addr) && addr.port() != 0 {
            return Err(ConfigError::invalid(
                format!("server.listen[{i}]"),
                format!("{a} is listed twice"),
            ));
        }
        listen.push(addr);
    }
    let workers = match s.workers {
        None | Some(0) => None,
        Some(n) if n > 1024 => {
            return Err(ConfigError::invalid(
                "server.workers",
                format!("{n} is more than 1024"),
            ));
        }
        Some(n) => Some(n),
    };
    let cpus = match s.cpus {
        None => None,
        Some(c) => Some(parse_cpu_list(&c).map_err(|e| ConfigError::invalid("server.cpus", e))?),
    };
    let driver = match s.driver.as_deref() {
        None => DriverChoice::Auto,
        Some(d) => DriverChoice::parse(d).ok_or_else(|| {
            ConfigError::invalid(
                "server.driver",
                format!("{d:?} is not one of auto, io_uring, epoll"),
            )
        })?,
    };
    let ring_entries = range(s.ring_entries, 4096, "server.ring_entries", 256, 32768)?;
    if !ring_entries.is_power_of_two() {
        return Err(ConfigError::invalid(
            "server.ring_entries",
            format!("{ring_entries} is not a power of two"),
        ));
    }
    Ok(ServerConfig {
        listen,
        workers,
        cpus,
        driver,
        ring_entries,
        ring_tuning: s.ring_tuning.unwrap_or(true),
        backlog: range(s.backlog, 4096, "server.backlog", 1, 1 << 20)?,
        max_connections: range(
            s.max_connections,
            100_000,
            "server.max_connections",
            1,
            10_000_000,
        )?,
        shutdown_timeout: dur(
            s.shutdown_timeout,
            Duration::from_secs(30),
            "server.shutdown_timeout",
            Duration::ZERO,
            Duration::from_secs(3600),
        )?,
        tick: dur(
            s.tick,
            Duration::from_millis(100),
            "server.tick",
            Duration::from_millis(5),
            Duration::from_secs(1),
        )?,
    })
}

pub(super) fn size(
    v: Option<super::units::Size>,
    default: u64,
    field: &str,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    range(v.map(|s| s.0), default, field, min, max)
}

fn http(h: RawHttp) -> Result<HttpConfig, ConfigError> {
    let buffer_size = size(h.buffer_size, 16 * KIB, "http.buffer_size", KIB, 16 * MIB)? as usize;
    let max_head_size = size(
        h.max_head_size,
        16 * KIB,
        "http.max_head_size",
        256,
        16 * MIB,
    )? as usize;
    let max_uri_size = size(h.max_uri_size, 8 * KIB, "http.max_uri_size", 16, 16 * MIB)? as usize;
    if max_uri_size >= max_head_size {
        return Err(ConfigError::invalid(
            "http.max_uri_size",
            format!("{max_uri_size} must be smaller than http.max_head_size ({max_head_size})"),
        ));
    }
    let via = match h.via {
        None => Some("1.1 ringway".to_string()),
        Some(v) if v.is_empty() => None,
        Some(v) => {
            check_header_value(&v).map_err(|e| ConfigError::invalid("http.via", e))?;
            Some(v)
        }
    };
    Ok(HttpConfig {
        buffer_size,
        response_buffer_size: size(
            h.response_buffer_size,
            32 * KIB,
            "http.response_buffer_size",
            KIB,
            16 * MIB,
        )? as usize,
        max_head_size,
        max_headers: range(
            h.max_headers,
            100,
            "http.max_headers",
            1,
            crate::http::MAX_HEADERS_LIMIT,
        )?,
        max_uri_size,
        max_body_size: size(
            h.max_body_size,
            32 * MIB,
            "http.max_body_size",
            0,
            1024 * GIB,
        )?,
        header_timeout: dur(
            h.header_timeout,
            Duration::from_secs(10),
            "http.header_timeout",
            Duration::from_millis(10),
            Duration::from_secs(3600),
        )?,
        keepalive_timeout: dur(
            h.keepalive_timeout,
            Duration::from_secs(60),
            "http.keepalive_timeout",
            Duration::ZERO,
            Duration::from_secs(24 * 3600),
        )?,
        keepalive_requests: h.keepalive_requests.unwrap_or(0),
        body_timeout: dur(
            h.body_timeout,
            Duration::from_secs(60),
            "http.body_timeout",
            Duration::from_millis(10),
            Duration::from_secs(24 * 3600),
        )?,
        idle_buffer_release: dur(
            h.idle_buffer_release,
            Duration::from_secs(1),
            "http.idle_buffer_release",
            Duration::ZERO,
            Duration::from_secs(3600),
        )?,
        tunnel_idle_timeout: dur(
            h.tunnel_idle_timeout,
            Duration::from_secs(3600),
            "http.tunnel_idle_timeout",
            Duration::from_millis(10),
            Duration::from_secs(7 * 24 * 3600),
        )?,
        via,
        forwarded_headers: h.forwarded_headers.unwrap_or(true),
        normalize: normalize(h.normalize.unwrap_or_default())?,
    })
}

fn normalize(n: super::raw::RawNormalize) -> Result<super::NormalizeConfig, ConfigError> {
    let d = crate::http::normalize::Options::default();
    let forward_original = match n.forward.as_deref() {
        None | Some("normalized") => false,
        Some("original") => true,
        Some(f) => {
            return Err(ConfigError::invalid(
                "http.normalize.forward",
                format!("{f:?} is not one of normalized, original"),
            ));
        }
    };
    Ok(super::NormalizeConfig {
        options: crate::http::normalize::Options {
            merge_slashes: n.merge_slashes.unwrap_or(d.merge_slashes),
            dot_segments: n.dot_segments.unwrap_or(d.dot_segments),
            encoded_separators: n.encoded_separators.unwrap_or(d.encoded_separators),
        },
        forward_original,
    })
}

fn log(l: RawLog) -> Result<LogConfig, ConfigError> {
    let level = l.level.unwrap_or_else(|| "info".to_string());
    if !matches!(
        level.as_str(),
        "error" | "warn" | "info" | "debug" | "trace" | "off"
    ) {
        return Err(ConfigError::invalid(
            "log.level",
            format!("{level:?} is not one of error, warn, info, debug, trace, off"),
        ));
    }
    let json = match l.format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(f) => {
            return Err(ConfigError::invalid(
                "log.format",
                format!("{f:?} is not one of text, json"),
            ));
        }
    };
    let buffer_lines = range(l.buffer_lines, 16_384, "log.buffer_lines", 16, 1 << 24)?;
    Ok(LogConfig {
        level,
        json,
        buffer_lines,
    })
}

pub(super) fn route(
    i: usize,
    r: RawRoute,
    upstreams: &[UpstreamConfig],
    http: &HttpConfig,
    ai: &super::ai::AiConfig,
) -> Result<RouteConfig, ConfigError> {
    let f = |k: &str| format!("routes[{i}].{k}");
    let name = r.name.unwrap_or_else(|| format!("route-{i}"));
    let mut hosts = Vec::new();
    for (j, h) in r.hosts.unwrap_or_default().iter().enumerate() {
        match host_pattern(h) {
            Ok(None) => {
                hosts.clear();
                break;
            }
            Ok(Some(p)) => hosts.push(p),
            Err(e) => return Err(ConfigError::invalid(format!("routes[{i}].hosts[{j}]"), e)),
        }
    }
    let path = match (r.path_prefix, r.path_exact) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                f("path_exact"),
                "set either path_prefix or path_exact, not both",
            ));
        }
        (Some(p), None) => PathMatch::Prefix(
            check_path(&p).map_err(|e| ConfigError::invalid(f("path_prefix"), e))?,
        ),
        (None, Some(p)) => {
            PathMatch::Exact(check_path(&p).map_err(|e| ConfigError::invalid(f("path_exact"), e))?)
        }
        (None, None) => PathMatch::Prefix("/".to_string()),
    };
    let mut methods = Vec::new();
    for (j, m) in r.methods.unwrap_or_default().iter().enumerate() {
        let method = Method::from_config(m).ok_or_else(|| {
            ConfigError::invalid(
                format!("routes[{i}].methods[{j}]"),
                format!("{m:?} is not a known HTTP method"),
            )
        })?;
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    let max_body_size = match (r.max_body_size, &r.ai) {
        (Some(s), _) => s.0,
        // An AI route buffers the request body whole.
        (None, Some(_)) => http.max_body_size.min(AI_MAX_BODY),
        (None, None) => http.max_body_size,
    };
    let capture_body = size(r.capture_body, 0, &f("capture_body"), 0, 64 * KIB)? as usize;
    let retry_non_idempotent = r.retry_non_idempotent.unwrap_or(false);
    if retry_non_idempotent && r.upstream.is_none() {
        return Err(ConfigError::invalid(
            f("retry_non_idempotent"),
            "only applies to proxy routes",
        ));
    }
    let limits = limits::route_limits(
        &f,
        r.rate_limits,
        r.concurrency_limits,
        r.rate_limit_headers,
    )?;
    if let Some(a) = r.ai {
        if r.upstream.is_some()
            || r.respond.is_some()
            || r.strip_prefix.is_some()
            || r.rewrite_prefix.is_some()
            || r.upstream_host.is_some()
            || r.fallback_upstream.is_some()
            || r.fallback_respond.is_some()
            || r.retry_non_idempotent.is_some()
        {
            return Err(ConfigError::invalid(
                f("ai"),
                "an AI route calls its models' providers: upstream, respond, prefix rewrites and fallbacks do not apply",
            ));
        }
        if max_body_size > AI_MAX_BODY {
            return Err(ConfigError::invalid(
                f("max_body_size"),
                format!("an AI route buffers the request body: at most {AI_MAX_BODY} bytes"),
            ));
        }
        let action = RouteAction::Ai(super::ai::route(&f("ai"), a, ai)?);
        return Ok(RouteConfig {
            name,
            hosts,
            path,
            methods,
            max_body_size,
            capture_body,
            retry_non_idempotent: false,
            limits,
            action,
        });
    }
    let action = match (r.upstream, r.respond) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                f("respond"),
                "a route either proxies (upstream) or responds (respond), not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::invalid(
                f("upstream"),
                "set upstream = \"name\", a [routes.respond] table or an ai table",
            ));
        }
        (Some(u), None) => {
            let upstream = upstreams.iter().position(|x| x.name == u).ok_or_else(|| {
                ConfigError::invalid(
                    f("upstream"),
                    format!("unknown upstream {u:?} (define it under [upstreams.{u}])"),
                )
            })?;
            let rewrite_prefix = match (r.strip_prefix.unwrap_or(false), r.rewrite_prefix) {
                (true, Some(_)) => {
                    return Err(ConfigError::invalid(
                        f("rewrite_prefix"),
                        "set either strip_prefix or rewrite_prefix, not both",
                    ));
                }
                (true, None) => Some(String::new()),
                (false, Some(p)) => {
                    Some(check_path(&p).map_err(|e| ConfigError::invalid(f("rewrite_prefix"), e))?)
                }
                (false, None) => None,
            };
            let upstream_host = match r.upstream_host {
                None => None,
                Some(h) => {
                    if h.is_empty() {
                        return Err(ConfigError::invalid(
                            f("upstream_host"),
                            "must not be empty",
                        ));
                    }
                    check_header_value(&h)
                        .map_err(|e| ConfigError::invalid(f("upstream_host"), e))?;
                    Some(h)
                }
            };
            let fallback_upstream = match r.fallback_upstream {
                None => None,
                Some(name) => Some(upstreams.iter().position(|x| x.name == name).ok_or_else(
                    || {
                        ConfigError::invalid(
                            f("fallback_upstream"),
                            format!("unknown upstream {name:?}"),
                        )
                    },
                )?),
            };
            let fallback_respond = match r.fallback_respond {
                None => None,
                Some(_) if fallback_upstream.is_some() => {
                    return Err(ConfigError::invalid(
                        f("fallback_respond"),
                        "set either fallback_upstream or fallback_respond, not both",
                    ));
                }
                Some(resp) => Some(respond_at(&f("fallback_respond"), resp)?),
            };
            RouteAction::Proxy(ProxyAction {
                fallback_upstream,
                fallback_respond,
                upstream,
                rewrite_prefix,
                upstream_host,
            })
        }
        (None, Some(resp)) => {
            if r.strip_prefix.is_some()
                || r.rewrite_prefix.is_some()
                || r.upstream_host.is_some()
                || r.fallback_upstream.is_some()
                || r.fallback_respond.is_some()
            {
                return Err(ConfigError::invalid(
                    f("respond"),
                    "strip_prefix, rewrite_prefix, upstream_host and fallbacks only apply to proxy routes",
                ));
            }
            RouteAction::Respond(respond(i, resp)?)
        }
    };
    Ok(RouteConfig {
        name,
        hosts,
        path,
        methods,
        max_body_size,
        capture_body,
        retry_non_idempotent,
        limits,
        action,
    })
}

/// `None` = matches any host (`"*"`).
fn host_pattern(h: &str) -> Result<Option<HostPattern>, String> {
    let h = h.trim().to_ascii_lowercase();
    if h == "*" {
        return Ok(None);
    }
    let (wild, rest) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h.as_str()),
    };
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    let ip6 = rest.starts_with('[') && rest.ends_with(']');
    if rest.is_empty()
        || rest.len() > 253
        || (!ip6 && !rest.bytes().all(ok_char))
        || rest.starts_with('.')
    {
        return Err(format!(
            "{h:?} is not a host name (write \"api.example.com\" or \"*.example.com\", no port)"
        ));
    }
    Ok(Some(if wild {
        HostPattern::Suffix(format!(".{rest}"))
    } else {
        HostPattern::Exact(rest.to_string())
    }))
}

pub(super) fn check_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with '/'"));
    }
    if let Some(b) = p
        .bytes()
        .find(|b| !(b.is_ascii_graphic()) || *b == b'?' || *b == b'#')
    {
        return Err(format!(
            "{p:?} contains {:?}, which is not allowed in a path",
            b as char
        ));
    }
    Ok(p.to_string())
}

pub(crate) fn check_header_value(v: &str) -> Result<(), String> {
    if v.bytes()
        .any(|b| b == b'\r' || b == b'\n' || b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(format!("{v:?} contains control characters"));
    }
    Ok(())
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn respond(i: usize, r: RawRespond) -> Result<StaticResponse, ConfigError> {
    respond_at(&format!("routes[{i}].respond"), r)
}

/// A static response table at `at` (`routes[0].respond`, `routes[0].fallback_respond`).
fn respond_at(at: &str, r: RawRespond) -> Result<StaticResponse, ConfigError> {
    let f = |k: &str| format!("{at}.{k}");
    let status = r.status.unwrap_or(200);
    if !(200..=599).contains(&status) {
        return Err(ConfigError::invalid(
            f("status"),
            format!("{status} is not a final status (200 to 599)"),
        ));
    }
    let body = r.body.unwrap_or_default();
    if (status == 204 || status == 304) && !body.is_empty() {
        return Err(ConfigError::invalid(
            f("body"),
            format!("a {status} response has no body"),
        ));
    }
    let mut headers = Vec::new();
    if let Some(ct) = r.content_type {
        check_header_value(&ct).map_err(|e| ConfigError::invalid(f("content_type"), e))?;
        headers.push(("content-type".to_string(), ct));
    } else if !body.is_empty() {
        headers.push((
            "content-type".to_string(),
            "text/plain; charset=utf-8".to_string(),
        ));
    }
    for (k, v) in r.headers {
        let field = format!("{at}.headers.{k}");
        if !is_token(&k) {
            return Err(ConfigError::invalid(field, "is not a valid header name"));
        }
        let lower = k.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "content-length"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "upgrade"
                | "te"
                | "trailer"
        ) {
            return Err(ConfigError::invalid(
                field,
                "is set by the gateway and cannot be configured",
            ));
        }
        if lower == "content-type" && headers.iter().any(|(n, _)| n == "content-type") {
            return Err(ConfigError::invalid(
                field,
                "content-type is already set by respond.content_type",
            ));
        }
        check_header_value(&v).map_err(|e| ConfigError::invalid(&field, e))?;
        headers.push((k, v));
    }
    Ok(StaticResponse {
        status,
        headers,
        body,
    })
}
