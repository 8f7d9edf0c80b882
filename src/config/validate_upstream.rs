//! Validation of `[upstreams.NAME]` tables: targets (resolved here, at load), balancing, health
//! checks, retry policy and circuit breaker. Errors name the field.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::raw::{RawTarget, RawUpstream};
use super::units::Dur;
use super::validate::{check_header_value, check_path, dur, is_token, range};
use super::*;

pub(super) fn upstream(
    name: String,
    u: RawUpstream,
    base: &std::path::Path,
) -> Result<UpstreamConfig, ConfigError> {
    let at = format!("upstreams.{name}");
    upstream_at(&at, name, u, base)
}

/// An upstream table found at `at` (`upstreams.NAME`, or an AI provider's `upstream` table):
/// errors name their field under it.
pub(super) fn upstream_at(
    at: &str,
    name: String,
    u: RawUpstream,
    base: &std::path::Path,
) -> Result<UpstreamConfig, ConfigError> {
    let f = |k: &str| format!("{at}.{k}");
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(ConfigError::invalid(
            format!("{at:?}"),
            "upstream names use letters, digits, '-', '_' and '.'",
        ));
    }
    if u.targets.is_empty() {
        return Err(ConfigError::invalid(
            f("targets"),
            "at least one target is required",
        ));
    }
    let mut targets = Vec::new();
    for (i, t) in u.targets.into_iter().enumerate() {
        let field = format!("{at}.targets[{i}]");
        let (addr, weight) = match t {
            RawTarget::Addr(a) => (a, 1),
            RawTarget::Weighted(w) => (w.addr, w.weight.unwrap_or(1)),
        };
        if weight == 0 || weight > 10_000 {
            return Err(ConfigError::invalid(
                format!("{field}.weight"),
                format!("{weight} is out of range (1 to 10000)"),
            ));
        }
        for resolved in resolve(&addr).map_err(|e| ConfigError::invalid(&field, e))? {
            if targets.iter().any(|t: &TargetConfig| t.addr == resolved) {
                return Err(ConfigError::invalid(
                    &field,
                    format!("{addr} ({resolved}) is listed twice"),
                ));
            }
            targets.push(TargetConfig {
                name: addr.clone(),
                addr: resolved,
                weight,
            });
        }
    }
    let balance = match (u.balance.as_deref(), u.hash_key.as_deref()) {
        (Some("consistent_hash"), None) => {
            return Err(ConfigError::invalid(
                f("hash_key"),
                "balance = \"consistent_hash\" needs a hash_key: client_ip, path, header:NAME or cookie:NAME",
            ));
        }
        (Some("consistent_hash"), Some(k)) => Balance::ConsistentHash(
            hash_key(k).map_err(|e| ConfigError::invalid(f("hash_key"), e))?,
        ),
        (_, Some(_)) => {
            return Err(ConfigError::invalid(
                f("hash_key"),
                "only applies to balance = \"consistent_hash\"",
            ));
        }
        (None | Some("round_robin"), None) => Balance::RoundRobin,
        (Some("least_in_flight"), None) => Balance::LeastInFlight,
        (Some("random"), None) => Balance::Random,
        (Some(b), None) => {
            return Err(ConfigError::invalid(
                f("balance"),
                format!(
                    "{b:?} is not one of round_robin, least_in_flight, random, consistent_hash"
                ),
            ));
        }
    };
    let ms = Duration::from_millis;
    let day = Duration::from_secs(24 * 3600);
    Ok(UpstreamConfig {
        targets,
        balance,
        connect_timeout: dur(
            u.connect_timeout,
            Duration::from_secs(5),
            &f("connect_timeout"),
            ms(1),
            day,
        )?,
        response_timeout: dur(
            u.response_timeout,
            Duration::from_secs(60),
            &f("response_timeout"),
            ms(1),
            day,
        )?,
        read_timeout: dur(
            u.read_timeout,
            Duration::from_secs(60),
            &f("read_timeout"),
            ms(1),
            day,
        )?,
        max_idle: range(u.max_idle, 1024, &f("max_idle"), 0, 100_000)?,
        max_connections: range(u.max_connections, 0, &f("max_connections"), 0, 1_000_000)?,
        idle_timeout: dur(
            u.idle_timeout,
            Duration::from_secs(30),
            &f("idle_timeout"),
            ms(1),
            day,
        )?,
        health_check: match u.health_check {
            None => None,
            Some(h) => Some(health_check(at, h)?),
        },
        retry: match u.retry {
            None => None,
            Some(r) => Some(retry(at, r)?),
        },
        breaker: match u.breaker {
            None => None,
            Some(b) => Some(breaker(at, b)?),
        },
        tls: u
            .tls
            .map(|t| super::tls::upstream_tls(t, &f("tls"), base))
            .transpose()?,
        outlier: match u.outlier {
            None => None,
            Some(o) => Some(outlier(at, o)?),
        },
        name,
    })
}

fn breaker(at: &str, b: super::raw::RawBreaker) -> Result<BreakerConfig, ConfigError> {
    let f = |k: &str| format!("{at}.breaker.{k}");
    let ratio = |v: Option<f64>, default: f64, k: &str| -> Result<u32, ConfigError> {
        let r = v.unwrap_or(default);
        if !(0.0..=1.0).contains(&r) {
            return Err(ConfigError::invalid(
                f(k),
                format!("{r} is not a ratio between 0 and 1"),
            ));
        }
        Ok((r * 1000.0).round() as u32)
    };
    let ms = Duration::from_millis;
    let hour = Duration::from_secs(3600);
    let open_duration = dur(
        b.open_duration,
        Duration::from_secs(5),
        &f("open_duration"),
        ms(1),
        hour,
    )?;
    let max_open_duration = dur(
        b.max_open_duration,
        Duration::from_secs(60),
        &f("max_open_duration"),
        ms(1),
        hour,
    )?;
    if max_open_duration < open_duration {
        return Err(ConfigError::invalid(
            f("max_open_duration"),
            "must not be shorter than open_duration",
        ));
    }
    let failure_statuses = b.failure_statuses.unwrap_or_else(|| vec![502, 503, 504]);
    if let Some(bad) = failure_statuses.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(ConfigError::invalid(
            f("failure_statuses"),
            format!("{bad} is not an HTTP status"),
        ));
    }
    Ok(BreakerConfig {
        consecutive_failures: range(
            b.consecutive_failures,
            5,
            &f("consecutive_failures"),
            0,
            1_000_000,
        )?,
        failure_ratio_permille: ratio(b.failure_ratio, 0.5, "failure_ratio")?,
        slow_call_ratio_permille: ratio(b.slow_call_ratio, 0.0, "slow_call_ratio")?,
        slow_call_threshold: dur(
            b.slow_call_threshold,
            Duration::from_secs(1),
            &f("slow_call_threshold"),
            ms(1),
            hour,
        )?,
        window: dur(
            b.window,
            Duration::from_secs(10),
            &f("window"),
            ms(100),
            hour,
        )?,
        min_requests: range(b.min_requests, 20, &f("min_requests"), 1, 1_000_000)?,
        failure_statuses,
        open_duration,
        max_open_duration,
        half_open_probes: range(b.half_open_probes, 3, &f("half_open_probes"), 1, 10_000)?,
        max_in_flight: range(b.max_in_flight, 0, &f("max_in_flight"), 0, 10_000_000)?,
        max_pending: match b.max_pending {
            None => None,
            Some(n) => Some(range(Some(n), 0, &f("max_pending"), 0, 10_000_000)?),
        },
    })
}

fn outlier(at: &str, o: super::raw::RawOutlier) -> Result<OutlierConfig, ConfigError> {
    let f = |k: &str| format!("{at}.outlier.{k}");
    let base_ejection = dur(
        o.base_ejection,
        Duration::from_secs(30),
        &f("base_ejection"),
        Duration::from_millis(10),
        Duration::from_secs(86_400),
    )?;
    let max_ejection = dur(
        o.max_ejection,
        Duration::from_secs(300).max(base_ejection),
        &f("max_ejection"),
        Duration::from_millis(10),
        Duration::from_secs(86_400),
    )?;
    if max_ejection < base_ejection {
        return Err(ConfigError::invalid(
            f("max_ejection"),
            "must not be shorter than base_ejection",
        ));
    }
    Ok(OutlierConfig {
        consecutive_failures: range(
            o.consecutive_failures,
            5,
            &f("consecutive_failures"),
            1,
            1_000_000,
        )?,
        base_ejection,
        max_ejection,
        max_ejected_percent: range(o.max_ejected_percent, 50, &f("max_ejected_percent"), 0, 100)?,
    })
}

fn retry(at: &str, r: super::raw::RawRetry) -> Result<RetryConfig, ConfigError> {
    let f = |k: &str| format!("{at}.retry.{k}");
    let on =
        r.on.unwrap_or_else(|| vec!["connect_failure".into(), "reset".into()]);
    let (mut c, mut rs, mut t, mut st) = (false, false, false, false);
    for (i, o) in on.iter().enumerate() {
        match o.as_str() {
            "connect_failure" => c = true,
            "reset" => rs = true,
            "timeout" => t = true,
            "status" => st = true,
            other => {
                return Err(ConfigError::invalid(
                    format!("{at}.retry.on[{i}]"),
                    format!("{other:?} is not one of connect_failure, reset, timeout, status"),
                ));
            }
        }
    }
    if r.statuses.is_some() && !st {
        return Err(ConfigError::invalid(
            f("statuses"),
            "only applies when `on` includes \"status\"",
        ));
    }
    let statuses = if st {
        r.statuses.unwrap_or_else(|| vec![502, 503, 504])
    } else {
        Vec::new()
    };
    if let Some(bad) = statuses.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(ConfigError::invalid(
            f("statuses"),
            format!("{bad} is not an HTTP status"),
        ));
    }
    let ms = Duration::from_millis;
    let backoff_base = dur(
        r.backoff_base,
        ms(25),
        &f("backoff_base"),
        Duration::ZERO,
        Duration::from_secs(60),
    )?;
    let backoff_max = dur(
        r.backoff_max,
        ms(250),
        &f("backoff_max"),
        Duration::ZERO,
        Duration::from_secs(600),
    )?;
    if backoff_max < backoff_base {
        return Err(ConfigError::invalid(
            f("backoff_max"),
            "must not be shorter than backoff_base",
        ));
    }
    let day = Duration::from_secs(24 * 3600);
    let opt = |v: Option<Dur>, k: &str| v.map(|d| dur(Some(d), d.0, &f(k), ms(1), day)).transpose();
    Ok(RetryConfig {
        attempts: range(r.attempts, 2, &f("attempts"), 0, 10)?,
        on_connect_failure: c,
        on_reset: rs,
        on_timeout: t,
        statuses,
        backoff_base,
        backoff_max,
        budget_percent: range(r.budget_percent, 20, &f("budget_percent"), 0, 100)?,
        budget_min_per_sec: range(
            r.budget_min_per_sec,
            10,
            &f("budget_min_per_sec"),
            0,
            100_000,
        )?,
        per_try_timeout: opt(r.per_try_timeout, "per_try_timeout")?,
        total_timeout: opt(r.total_timeout, "total_timeout")?,
    })
}

fn health_check(at: &str, h: super::raw::RawHealthCheck) -> Result<HealthCheckConfig, ConfigError> {
    let f = |k: &str| format!("{at}.health_check.{k}");
    let path = h.path.unwrap_or_else(|| "/".to_string());
    check_path(&path).map_err(|e| ConfigError::invalid(f("path"), e))?;
    if let Some(host) = &h.host {
        check_header_value(host).map_err(|e| ConfigError::invalid(f("host"), e))?;
    }
    let interval = dur(
        h.interval,
        Duration::from_secs(5),
        &f("interval"),
        Duration::from_millis(10),
        Duration::from_secs(3600),
    )?;
    let timeout = dur(
        h.timeout,
        Duration::from_secs(1),
        &f("timeout"),
        Duration::from_millis(1),
        Duration::from_secs(600),
    )?;
    if timeout > interval {
        return Err(ConfigError::invalid(
            f("timeout"),
            "must not be longer than the interval",
        ));
    }
    let expected_statuses = h.expected_statuses.unwrap_or_default();
    if let Some(bad) = expected_statuses.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(ConfigError::invalid(
            f("expected_statuses"),
            format!("{bad} is not an HTTP status"),
        ));
    }
    Ok(HealthCheckConfig {
        path,
        host: h.host,
        interval,
        timeout,
        expected_statuses,
        healthy_threshold: range(h.healthy_threshold, 2, &f("healthy_threshold"), 1, 1000)?,
        unhealthy_threshold: range(h.unhealthy_threshold, 3, &f("unhealthy_threshold"), 1, 1000)?,
        fail_open: h.fail_open.unwrap_or(true),
    })
}

fn hash_key(k: &str) -> Result<HashKey, String> {
    match k.split_once(':') {
        None if k == "client_ip" => Ok(HashKey::ClientIp),
        None if k == "path" => Ok(HashKey::Path),
        Some(("header", name)) if is_token(name) => Ok(HashKey::Header(name.to_ascii_lowercase())),
        Some(("cookie", name)) if is_token(name) => Ok(HashKey::Cookie(name.to_string())),
        _ => Err(format!(
            "{k:?} is not one of client_ip, path, header:NAME, cookie:NAME"
        )),
    }
}

/// Resolves `host:port` to addresses (blocking; called at load on the control thread only).
fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    if !addr.contains(':') {
        return Err(format!("{addr:?} has no port (write host:port)"));
    }
    let mut out: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr:?}: {e}"))?
        .collect();
    out.dedup();
    if out.is_empty() {
        return Err(format!("{addr:?} resolved to no address"));
    }
    Ok(out)
}
