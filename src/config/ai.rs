//! `[ai]`: model providers, model aliases and prices, and the `ai` table of routes that serve
//! the unified (OpenAI-compatible) API.
//!
//! ```toml
//! [ai.providers.anthropic]
//! kind = "anthropic"                 # openai, azure, anthropic, gemini, mistral, compatible
//! keys_env = ["ANTHROPIC_API_KEY"]   # variables holding the keys (or keys_file: one per line)
//! # base_url = "https://api.anthropic.com" (each known kind has its default)
//! # [ai.providers.anthropic.upstream]: the fields of an [upstreams.NAME] table but targets
//!
//! [ai.models.fast]                   # what clients put in "model"
//! strategy = "ordered"               # or "weighted"
//! targets = [{ provider = "anthropic", model = "claude-haiku-4-5" },
//!            { provider = "openai", model = "gpt-4o-mini" }]
//!
//! [ai.prices."gpt-4o-mini"]          # USD per million tokens
//! input = 0.15
//! output = 0.60
//!
//! [[routes]]
//! path_prefix = "/ai"
//! ai = { models = ["fast"] }         # absent models: every alias
//! ```
//!
//! Each provider becomes an upstream (`ai.NAME`) whose one target is the base URL's host: pools,
//! TLS, breakers, outlier ejection and health checks all work as for any upstream. Keys are read
//! once, at load, and never printed (`Debug` shows how many there are).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::raw::{RawTarget, RawUpstream};
use super::validate::{check_header_value, check_path, range};
use super::validate_upstream::upstream_at;
use super::*;
use crate::ai::alias::{Alias, Candidate, Order};
pub use crate::ai::keys::{ProviderKey, ProviderKeys, hint, key_is_sendable};
use crate::ai::price::{Price, parse_usd};
use crate::ai::provider::Kind;
use crate::limit::budget::AiLimits;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAi {
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, RawAlias>,
    #[serde(default)]
    pub prices: BTreeMap<String, RawPrice>,
    /// Fallbacks to a model's next candidate are limited to this share of AI requests (per
    /// second and shard; default 20)...
    pub fallback_budget_percent: Option<u32>,
    /// ...but this many are always allowed (default 10 per second and shard).
    pub fallback_budget_min_per_sec: Option<u32>,
    /// Output tokens reserved on token and cost limits for a call that sets no `max_tokens`
    /// (default 4096).
    pub reserve_output_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: Option<String>,
    /// Scheme, host, optional port and path prefix (`https://api.openai.com`,
    /// `http://127.0.0.1:11434`, `https://example.openai.azure.com`).
    pub base_url: Option<String>,
    /// Environment variables that hold the provider's keys.
    pub keys_env: Option<Vec<String>>,
    /// A file with one key per line (blank lines and `#` comments skipped).
    pub keys_file: Option<String>,
    /// Azure OpenAI's `api-version`.
    pub api_version: Option<String>,
    /// An OpenAI-compatible server that takes `stream_options.include_usage` (default true).
    pub stream_usage: Option<bool>,
    /// Connection settings: an `[upstreams.NAME]` table without targets.
    pub upstream: Option<RawUpstream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlias {
    /// `ordered` (default) or `weighted`.
    pub strategy: Option<String>,
    #[serde(default)]
    pub targets: Vec<RawAliasTarget>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAliasTarget {
    pub provider: String,
    pub model: String,
    pub weight: Option<u32>,
}

/// A decimal amount, as a TOML number or a string (`0.15`, `"0.15"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Usd {
    Int(i64),
    Float(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: Usd,
    pub output: Usd,
    pub cached_input: Option<Usd>,
}

/// AI limits, as the config file and the admin API take them (each optional).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAiLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_month: Option<u64>,
    /// USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_day_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_month_usd: Option<f64>,
}

/// Validates AI limits found at `at`.
pub fn limits(at: &str, r: &RawAiLimits) -> Result<AiLimits, ConfigError> {
    use crate::limit::budget::{MAX_LIMIT, What};
    let mut out = AiLimits::default();
    let counts = [
        (What::RequestsPerMinute, r.requests_per_minute),
        (What::TokensPerMinute, r.tokens_per_minute),
        (What::TokensPerDay, r.tokens_per_day),
        (What::TokensPerMonth, r.tokens_per_month),
    ];
    for (w, v) in counts {
        if let Some(v) = v {
            if v == 0 || v > MAX_LIMIT {
                return Err(ConfigError::invalid(
                    format!("{at}.{}", w.name()),
                    format!("must be 1 to {MAX_LIMIT}"),
                ));
            }
            out.limits[w as usize] = Some(v);
        }
    }
    for (w, v) in [
        (What::CostPerDay, r.cost_per_day_usd),
        (What::CostPerMonth, r.cost_per_month_usd),
    ] {
        if let Some(usd) = v {
            let micros = (usd * 1e6).ceil();
            if !usd.is_finite() || usd <= 0.0 || micros > MAX_LIMIT as f64 {
                return Err(ConfigError::invalid(
                    format!("{at}.{}", w.name()),
                    "must be a positive amount of USD, at most 17000000",
                ));
            }
            out.limits[w as usize] = Some(micros as u64);
        }
    }
    if out.is_empty() {
        return Err(ConfigError::invalid(
            at,
            "set at least one of requests_per_minute, tokens_per_minute, tokens_per_day, tokens_per_month, cost_per_day_usd, cost_per_month_usd",
        ));
    }
    Ok(out)
}

/// The `ai` table of a route (and of a managed AI service).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAiRoute {
    /// Aliases served on the route; absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// A native pass-through route to this provider's own API (its SDKs work unmodified); the
    /// path after the route's prefix is the provider's (`/anthropic/v1/messages` →
    /// `/v1/messages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Limits of the route (or service) as a whole, whoever calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RawAiLimits>,
    /// A prompt published as a REST API (see [`crate::ai::prompt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<crate::ai::prompt::RawPrompt>,
}

/// A validated `[ai]` section.
#[derive(Debug, Clone)]
pub struct AiConfig {
    pub providers: Vec<ProviderConfig>,
    pub aliases: Vec<Alias>,
    /// By the provider's model name.
    pub prices: BTreeMap<String, Price>,
    pub fallback_budget_percent: u32,
    pub fallback_budget_min_per_sec: u32,
    /// Output tokens a call without `max_tokens` reserves on token and cost limits.
    pub reserve_output_tokens: u64,
}

impl Default for AiConfig {
    fn default() -> AiConfig {
        AiConfig {
            providers: Vec::new(),
            aliases: Vec::new(),
            prices: BTreeMap::new(),
            fallback_budget_percent: 20,
            fallback_budget_min_per_sec: 10,
            reserve_output_tokens: 4096,
        }
    }
}

impl AiConfig {
    pub fn alias(&self, name: &str) -> Option<usize> {
        self.aliases.iter().position(|a| a.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: Kind,
    /// Path prefix of the provider's API (`""`: the host's root).
    pub base_path: String,
    /// `Host` sent to the provider.
    pub host: String,
    /// The provider's upstream (index in `Config::upstreams`).
    pub upstream: usize,
    pub keys: Arc<ProviderKeys>,
}

/// What an AI route serves.
#[derive(Debug, Clone)]
pub struct AiAction {
    /// Aliases clients may call here (indexes in `AiConfig::aliases`); empty: all.
    pub models: Vec<usize>,
    /// A native pass-through route to this provider (index in `AiConfig::providers`).
    pub native: Option<usize>,
    /// Limits of the route as a whole.
    pub limits: Option<AiLimits>,
    /// A prompt route: its prompt (and `models` holds its alias).
    pub prompt: Option<Arc<crate::ai::prompt::Prompt>>,
}

impl AiAction {
    pub fn allows(&self, alias: usize) -> bool {
        self.models.is_empty() || self.models.contains(&alias)
    }
}

/// The known kinds and their default base URLs.
fn kind(s: &str, p: &RawProvider) -> Option<(Kind, Option<&'static str>)> {
    Some(match s {
        "openai" => (Kind::OpenAi, Some("https://api.openai.com")),
        "anthropic" => (Kind::Anthropic, Some("https://api.anthropic.com")),
        "gemini" => (
            Kind::Gemini,
            Some("https://generativelanguage.googleapis.com"),
        ),
        "mistral" => (
            Kind::Compatible {
                stream_usage: p.stream_usage.unwrap_or(false),
            },
            Some("https://api.mistral.ai"),
        ),
        "azure" => (
            Kind::Azure {
                api_version: p.api_version.clone().unwrap_or_default(),
            },
            None,
        ),
        "compatible" => (
            Kind::Compatible {
                stream_usage: p.stream_usage.unwrap_or(true),
            },
            None,
        ),
        _ => return None,
    })
}

/// A base URL's parts.
struct BaseUrl {
    tls: bool,
    /// `host:port` to connect to.
    authority: String,
    /// What `Host` says (the port only when not the scheme's default).
    host: String,
    path: String,
}

fn base_url(s: &str) -> Result<BaseUrl, String> {
    let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{s:?} must start with https:// or http://"));
    };
    let (auth, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if auth.is_empty() || auth.contains('@') || path.contains(['?', '#']) {
        return Err(format!(
            "{s:?} must be scheme://host[:port][/path], without user info, query or fragment"
        ));
    }
    check_header_value(auth).map_err(|e| format!("{s:?}: {e}"))?;
    let default_port: u16 = if tls { 443 } else { 80 };
    let bad_port = |p: &str| format!("{s:?}: {p:?} is not a port");
    let (name, port) = if let Some(r) = auth.strip_prefix('[') {
        let (v6, after) = r
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed [ in the host"))?;
        let port = match after {
            "" => None,
            a => Some(a.strip_prefix(':').ok_or_else(|| bad_port(a))?),
        };
        (format!("[{v6}]"), port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (auth.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad_port(p))?,
        None => default_port,
    };
    if name.is_empty() || port == 0 {
        return Err(format!("{s:?} names no host and port"));
    }
    let host = if port == default_port {
        name.clone()
    } else {
        format!("{name}:{port}")
    };
    let authority = format!("{name}:{port}");
    let path = path.trim_end_matches('/').to_string();
    if !path.is_empty() {
        check_path(&path).map_err(|e| format!("{s:?}: {e}"))?;
    }
    Ok(BaseUrl {
        tls,
        authority,
        host,
        path,
    })
}

/// The config file's keys of a provider: (label, secret).
fn keys(
    at: &str,
    p: &RawProvider,
    base: &std::path::Path,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut keys = Vec::new();
    for (i, var) in p.keys_env.iter().flatten().enumerate() {
        let field = format!("{at}.keys_env[{i}]");
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => keys.push((format!("${var}"), v.trim().to_string())),
            _ => {
                return Err(ConfigError::invalid(
                    field,
                    format!("the environment variable {var} is not set"),
                ));
            }
        }
    }
    if let Some(file) = &p.keys_file {
        let path = base.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError::invalid(
                format!("{at}.keys_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .enumerate()
                .map(|(i, k)| (format!("{file}:{}", i + 1), k.to_string())),
        );
    }
    for (_, k) in &keys {
        if !key_is_sendable(k) {
            // Never print the key itself.
            return Err(ConfigError::invalid(
                format!("{at}.keys"),
                "a key holds a space or a character a header cannot carry",
            ));
        }
    }
    Ok(keys)
}

fn usd(v: &Usd, field: &str) -> Result<u64, ConfigError> {
    let text = match v {
        Usd::Int(i) if *i >= 0 => i.to_string(),
        Usd::Float(f) if f.is_finite() && *f >= 0.0 => format!("{f}"),
        Usd::Text(s) => s.clone(),
        _ => String::from("-"),
    };
    parse_usd(&text).ok_or_else(|| {
        ConfigError::invalid(
            field,
            format!("{text:?} is not a USD amount per million tokens (at most six decimals)"),
        )
    })
}

/// Validates `[ai]`, appending each provider's upstream to `upstreams`.
pub(super) fn ai(
    raw: RawAi,
    upstreams: &mut Vec<UpstreamConfig>,
    base: &std::path::Path,
) -> Result<AiConfig, ConfigError> {
    let mut providers = Vec::new();
    for (name, p) in raw.providers {
        let at = format!("ai.providers.{name}");
        let kind_name = p.kind.as_deref().unwrap_or("");
        let (kind, default_url) = kind(kind_name, &p).ok_or_else(|| {
            ConfigError::invalid(
                format!("{at}.kind"),
                format!(
                    "{kind_name:?} is not one of openai, azure, anthropic, gemini, mistral, compatible"
                ),
            )
        })?;
        if p.api_version.is_some() && !matches!(kind, Kind::Azure { .. }) {
            return Err(ConfigError::invalid(
                format!("{at}.api_version"),
                "only applies to kind = \"azure\"",
            ));
        }
        if p.stream_usage.is_some() && !matches!(kind, Kind::Compatible { .. }) {
            return Err(ConfigError::invalid(
                format!("{at}.stream_usage"),
                "only applies to kind = \"compatible\" or \"mistral\"",
            ));
        }
        let url = match (&p.base_url, default_url) {
            (Some(u), _) => u.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(ConfigError::invalid(
                    format!("{at}.base_url"),
                    format!("is required for kind = \"{kind_name}\""),
                ));
            }
        };
        let url = base_url(&url).map_err(|e| ConfigError::invalid(format!("{at}.base_url"), e))?;
        let keys = keys(&at, &p, base)?;
        let mut raw_up = p.upstream.unwrap_or_default();
        let up_at = format!("{at}.upstream");
        if !raw_up.targets.is_empty() {
            return Err(ConfigError::invalid(
                format!("{up_at}.targets"),
                "a provider's target is its base_url",
            ));
        }
        raw_up.targets = vec![RawTarget::Addr(url.authority.clone())];
        if url.tls && raw_up.tls.is_none() {
            raw_up.tls = Some(Default::default());
        } else if !url.tls && raw_up.tls.is_some() {
            return Err(ConfigError::invalid(
                format!("{up_at}.tls"),
                "the base_url is http://: use https:// for TLS",
            ));
        }
        let up_name = format!("ai.{name}");
        if upstreams.iter().any(|u| u.name == up_name) {
            return Err(ConfigError::invalid(
                format!("upstreams.{up_name:?}"),
                format!("the name is taken by the AI provider {name:?}"),
            ));
        }
        let up = upstream_at(&up_at, up_name, raw_up, base).map_err(|e| match e {
            ConfigError::Invalid { field, reason }
                if field.starts_with(&format!("{up_at}.targets")) =>
            {
                ConfigError::invalid(format!("{at}.base_url"), reason)
            }
            e => e,
        })?;
        upstreams.push(up);
        providers.push(ProviderConfig {
            name,
            kind,
            base_path: url.path,
            host: url.host,
            upstream: upstreams.len() - 1,
            keys: Arc::new(ProviderKeys::from_config(keys)),
        });
    }
    let mut aliases = Vec::new();
    for (name, a) in raw.models {
        let at = format!("ai.models.{name}");
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                at,
                "a model alias is 1 to 256 printable characters",
            ));
        }
        let order = match a.strategy.as_deref() {
            None | Some("ordered") => Order::Ordered,
            Some("weighted") => Order::Weighted,
            Some(s) => {
                return Err(ConfigError::invalid(
                    format!("{at}.strategy"),
                    format!("{s:?} is not one of ordered, weighted"),
                ));
            }
        };
        if a.targets.is_empty() {
            return Err(ConfigError::invalid(
                format!("{at}.targets"),
                "at least one { provider, model } is required",
            ));
        }
        let mut candidates = Vec::new();
        for (i, t) in a.targets.into_iter().enumerate() {
            let f = |k: &str| format!("{at}.targets[{i}].{k}");
            let provider = providers
                .iter()
                .position(|p| p.name == t.provider)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        f("provider"),
                        format!(
                            "unknown provider {:?} (define it under [ai.providers.{}])",
                            t.provider, t.provider
                        ),
                    )
                })?;
            if t.model.is_empty() || t.model.chars().any(char::is_control) {
                return Err(ConfigError::invalid(f("model"), "must be a model name"));
            }
            let weight = range(t.weight, 1, &f("weight"), 0, 10_000)?;
            candidates.push(Candidate {
                provider,
                model: t.model,
                weight,
            });
        }
        aliases.push(Alias {
            name,
            order,
            candidates,
        });
    }
    let mut prices = BTreeMap::new();
    for (model, p) in raw.prices {
        let at = format!("ai.prices.{model:?}");
        let input = usd(&p.input, &format!("{at}.input"))?;
        let output = usd(&p.output, &format!("{at}.output"))?;
        let cached_input = match &p.cached_input {
            Some(v) => usd(v, &format!("{at}.cached_input"))?,
            None => input,
        };
        prices.insert(
            model,
            Price {
                input,
                output,
                cached_input,
            },
        );
    }
    Ok(AiConfig {
        providers,
        aliases,
        prices,
        fallback_budget_percent: range(
            raw.fallback_budget_percent,
            20,
            "ai.fallback_budget_percent",
            0,
            100,
        )?,
        fallback_budget_min_per_sec: range(
            raw.fallback_budget_min_per_sec,
            10,
            "ai.fallback_budget_min_per_sec",
            0,
            1_000_000,
        )?,
        reserve_output_tokens: range(
            raw.reserve_output_tokens,
            4096,
            "ai.reserve_output_tokens",
            1,
            10_000_000,
        )?,
    })
}

/// Validates a route's `ai` table.
pub(super) fn route(at: &str, r: RawAiRoute, ai: &AiConfig) -> Result<AiAction, ConfigError> {
    let route_limits = match &r.limits {
        Some(l) => Some(limits(&format!("{at}.limits"), l)?),
        None => None,
    };
    if let Some(raw) = &r.prompt {
        if r.models.is_some() || r.provider.is_some() {
            return Err(ConfigError::invalid(
                format!("{at}.prompt"),
                "a prompt route calls its prompt's model: models and provider do not apply",
            ));
        }
        let p = crate::ai::prompt::Prompt::new(raw)
            .map_err(|e| ConfigError::invalid(format!("{at}.{}", e.field), e.reason))?;
        let alias = ai.alias(&p.model).ok_or_else(|| {
            ConfigError::invalid(
                format!("{at}.prompt.model"),
                format!(
                    "unknown model alias {:?} (define it under [ai.models])",
                    p.model
                ),
            )
        })?;
        return Ok(AiAction {
            models: vec![alias],
            native: None,
            limits: route_limits,
            prompt: Some(Arc::new(p)),
        });
    }
    if let Some(name) = r.provider {
        if r.models.is_some() {
            return Err(ConfigError::invalid(
                format!("{at}.models"),
                "a native route (provider) serves the provider's own API, not aliases",
            ));
        }
        let i = ai
            .providers
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                ConfigError::invalid(
                    format!("{at}.provider"),
                    format!("unknown provider {name:?} (define it under [ai.providers.{name}])"),
                )
            })?;
        return Ok(AiAction {
            models: Vec::new(),
            native: Some(i),
            limits: route_limits,
            prompt: None,
        });
    }
    let mut models = Vec::new();
    for (j, m) in r.models.unwrap_or_default().iter().enumerate() {
        let i = ai.alias(m).ok_or_else(|| {
            ConfigError::invalid(
                format!("{at}.models[{j}]"),
                format!("unknown model alias {m:?} (define it under [ai.models])"),
            )
        })?;
        if !models.contains(&i) {
            models.push(i);
        }
    }
    if ai.aliases.is_empty() {
        return Err(ConfigError::invalid(
            at,
            "an AI route needs at least one [ai.models.NAME] alias",
        ));
    }
    Ok(AiAction {
        models,
        native: None,
        limits: route_limits,
        prompt: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_split_into_connect_address_host_and_path() {
        let u = base_url("https://api.openai.com").unwrap();
        assert!(u.tls);
        assert_eq!(u.authority, "api.openai.com:443");
        assert_eq!(u.host, "api.openai.com");
        assert_eq!(u.path, "");
        let u = base_url("http://127.0.0.1:11434/ollama/").unwrap();
        assert!(!u.tls);
        assert_eq!(u.authority, "127.0.0.1:11434");
        assert_eq!(u.host, "127.0.0.1:11434");
        assert_eq!(u.path, "/ollama");
        let u = base_url("https://h.example:443/x").unwrap();
        assert_eq!(u.host, "h.example");
        for bad in [
            "ftp://x",
            "https://",
            "https://u@h",
            "https://h/p?q",
            "https://h:99999",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }
}
