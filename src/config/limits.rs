//! Typed rate and concurrency limits of a route (`[[routes.rate_limits]]`,
//! `[[routes.concurrency_limits]]`) and their validation. The algorithms live in `crate::limit`.

use std::time::Duration;

use super::ConfigError;
use super::raw::{RawConcurrencyLimit, RawRateLimit};
use super::validate::is_token;

/// Keys tracked per limit unless `max_keys` says otherwise.
pub const DEFAULT_MAX_KEYS: usize = 65_536;
/// Upper bound of `max_keys` (16 Mi keys: 512 MiB of node table at 32 bytes a key).
pub const MAX_MAX_KEYS: usize = 1 << 24;

/// What a limit counts requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    ClientIp,
    /// The path without the query.
    Path,
    /// One counter for the whole route.
    Route,
    /// A header value (name lower-cased), e.g. an API key. Requests without it are counted by client
    /// IP instead, so leaving the header out does not escape the limit.
    Header(String),
    /// The calling app of a managed service (identified by the auth stage); requests without
    /// one are counted by client IP. Used by subscription quotas.
    App,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAlgorithm {
    /// Refills `limit` tokens per period continuously; holds at most `burst`.
    TokenBucket { burst: u64 },
    /// At most `limit` per period, estimated over the current and the previous fixed window.
    SlidingWindow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub key: LimitKey,
    pub algorithm: LimitAlgorithm,
    pub limit: u64,
    pub period: Duration,
    pub max_keys: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyLimitConfig {
    pub key: LimitKey,
    pub max: u32,
    pub max_keys: usize,
}

/// Everything a route limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteLimitsConfig {
    pub rate: Vec<RateLimitConfig>,
    pub concurrency: Vec<ConcurrencyLimitConfig>,
    /// Send RateLimit-* headers on the route's responses.
    pub headers: bool,
}

impl RouteLimitsConfig {
    pub fn is_empty(&self) -> bool {
        self.rate.is_empty() && self.concurrency.is_empty()
    }
}

/// Validates a route's limits; `f` names a field of route `i`.
pub(super) fn route_limits(
    f: &dyn Fn(&str) -> String,
    rate: Option<Vec<RawRateLimit>>,
    concurrency: Option<Vec<RawConcurrencyLimit>>,
    headers: Option<bool>,
) -> Result<RouteLimitsConfig, ConfigError> {
    let mut out = RouteLimitsConfig {
        headers: headers.unwrap_or(true),
        ..Default::default()
    };
    let (rate, concurrency) = (rate.unwrap_or_default(), concurrency.unwrap_or_default());
    let most = crate::limit::MAX_PER_ROUTE;
    if rate.len() > most {
        return Err(ConfigError::invalid(
            f("rate_limits"),
            format!("at most {most} rate limits per route"),
        ));
    }
    if concurrency.len() > most {
        return Err(ConfigError::invalid(
            f("concurrency_limits"),
            format!("at most {most} concurrency limits per route"),
        ));
    }
    for (j, r) in rate.into_iter().enumerate() {
        let g = |k: &str| f(&format!("rate_limits[{j}].{k}"));
        out.rate.push(rate_limit(&g, r)?);
    }
    for (j, c) in concurrency.into_iter().enumerate() {
        let g = |k: &str| f(&format!("concurrency_limits[{j}].{k}"));
        let key = limit_key(c.key.as_deref()).map_err(|e| ConfigError::invalid(g("key"), e))?;
        let max = match c.max {
            Some(m) if m >= 1 => m,
            Some(_) => return Err(ConfigError::invalid(g("max"), "must be at least 1")),
            None => return Err(ConfigError::invalid(g("max"), "is required")),
        };
        out.concurrency.push(ConcurrencyLimitConfig {
            key,
            max,
            max_keys: max_keys(&g, c.max_keys)?,
        });
    }
    Ok(out)
}

fn rate_limit(g: &dyn Fn(&str) -> String, r: RawRateLimit) -> Result<RateLimitConfig, ConfigError> {
    let key = limit_key(r.key.as_deref()).map_err(|e| ConfigError::invalid(g("key"), e))?;
    let limit = match r.limit {
        Some(n) if (1..=1_000_000_000).contains(&n) => n,
        Some(n) => {
            return Err(ConfigError::invalid(
                g("limit"),
                format!("{n} is out of range (1 to 1000000000)"),
            ));
        }
        None => return Err(ConfigError::invalid(g("limit"), "is required")),
    };
    let period = match r.per.as_deref() {
        None => return Err(ConfigError::invalid(g("per"), "is required")),
        Some(p) => period(p).map_err(|e| ConfigError::invalid(g("per"), e))?,
    };
    let algorithm = match r.algorithm.as_deref().unwrap_or("token_bucket") {
        "token_bucket" => {
            let burst = r.burst.unwrap_or(limit);
            if !(1..=1_000_000_000).contains(&burst) {
                return Err(ConfigError::invalid(
                    g("burst"),
                    format!("{burst} is out of range (1 to 1000000000)"),
                ));
            }
            // The bucket is kept as a time in nanoseconds: burst × period / limit must fit.
            let span = u128::from(burst) * period.as_nanos() / u128::from(limit);
            if span >= 1 << 62 {
                return Err(ConfigError::invalid(
                    g("burst"),
                    "burst × per / limit is longer than a century; lower burst or per",
                ));
            }
            LimitAlgorithm::TokenBucket { burst }
        }
        "sliding_window" => {
            if r.burst.is_some() {
                return Err(ConfigError::invalid(
                    g("burst"),
                    "only applies to algorithm = \"token_bucket\"",
                ));
            }
            if period < Duration::from_secs(1) {
                return Err(ConfigError::invalid(
                    g("per"),
                    "a sliding window is at least 1s",
                ));
            }
            LimitAlgorithm::SlidingWindow
        }
        other => {
            return Err(ConfigError::invalid(
                g("algorithm"),
                format!("{other:?} is not one of token_bucket, sliding_window"),
            ));
        }
    };
    Ok(RateLimitConfig {
        key,
        algorithm,
        limit,
        period,
        max_keys: max_keys(g, r.max_keys)?,
    })
}

fn max_keys(g: &dyn Fn(&str) -> String, v: Option<usize>) -> Result<usize, ConfigError> {
    let n = v.unwrap_or(DEFAULT_MAX_KEYS);
    if !(1..=MAX_MAX_KEYS).contains(&n) {
        return Err(ConfigError::invalid(
            g("max_keys"),
            format!("{n} is out of range (1 to {MAX_MAX_KEYS})"),
        ));
    }
    Ok(n)
}

fn limit_key(k: Option<&str>) -> Result<LimitKey, String> {
    match k.unwrap_or("client_ip") {
        "client_ip" => Ok(LimitKey::ClientIp),
        "path" => Ok(LimitKey::Path),
        "route" => Ok(LimitKey::Route),
        k => match k.split_once(':') {
            Some(("header", name)) if is_token(name) => {
                Ok(LimitKey::Header(name.to_ascii_lowercase()))
            }
            _ => Err(format!(
                "{k:?} is not one of client_ip, path, route, header:NAME"
            )),
        },
    }
}

/// `second`, `minute`, `hour`, `day`, or a duration from 1ms to 366 days.
fn period(p: &str) -> Result<Duration, String> {
    let d = match p.trim() {
        "second" | "s" => Duration::from_secs(1),
        "minute" | "m" => Duration::from_secs(60),
        "hour" | "h" => Duration::from_secs(3600),
        "day" | "d" => Duration::from_secs(86_400),
        other => humantime::parse_duration(other).map_err(|e| {
            format!("{other:?} is not second, minute, hour, day or a duration: {e}")
        })?,
    };
    if d < Duration::from_millis(1) || d > Duration::from_secs(366 * 86_400) {
        return Err(format!("{p:?} is out of range (1ms to 366 days)"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn route_with(limits: &str) -> String {
        format!(
            "[upstreams.u]\ntargets = [\"127.0.0.1:9\"]\n[[routes]]\nupstream = \"u\"\n{limits}"
        )
    }

    #[test]
    fn limits_parse_and_errors_name_the_field() {
        let ok = route_with(
            "[[routes.rate_limits]]\nkey = \"header:X-Api-Key\"\nlimit = 10\nper = \"second\"\nburst = 20\n\
             [[routes.rate_limits]]\nalgorithm = \"sliding_window\"\nlimit = 1000\nper = \"hour\"\n\
             [[routes.concurrency_limits]]\nmax = 4\n",
        );
        let c = Config::from_toml(&ok).unwrap();
        let l = &c.routes[0].limits;
        assert_eq!(l.rate.len(), 2);
        assert_eq!(l.rate[0].key, super::LimitKey::Header("x-api-key".into()));
        assert_eq!(l.concurrency[0].max, 4);
        for (bad, field) in [
            (
                "[[routes.rate_limits]]\nper = \"second\"\n",
                "routes[0].rate_limits[0].limit",
            ),
            (
                "[[routes.rate_limits]]\nlimit = 1\nper = \"fortnight\"\n",
                "routes[0].rate_limits[0].per",
            ),
            (
                "[[routes.rate_limits]]\nlimit = 1\nper = \"1s\"\nkey = \"cookie:x\"\n",
                "routes[0].rate_limits[0].key",
            ),
            (
                "[[routes.rate_limits]]\nlimit = 1\nper = \"1s\"\nalgorithm = \"leaky\"\n",
                "routes[0].rate_limits[0].algorithm",
            ),
            (
                "[[routes.rate_limits]]\nlimit = 1\nper = \"1s\"\nalgorithm = \"sliding_window\"\nburst = 2\n",
                "routes[0].rate_limits[0].burst",
            ),
            (
                "[[routes.rate_limits]]\nlimit = 1\nper = \"1s\"\nmax_keys = 0\n",
                "routes[0].rate_limits[0].max_keys",
            ),
            (
                "[[routes.concurrency_limits]]\nmax = 0\n",
                "routes[0].concurrency_limits[0].max",
            ),
        ] {
            let e = Config::from_toml(&route_with(bad)).unwrap_err().to_string();
            assert!(e.starts_with(field), "{bad}: {e}");
        }
    }
}
