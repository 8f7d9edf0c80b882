//! Managed services' routes and upstreams (from the store, through the admin API) validated with
//! the same rules as the config file's, and composed with the file's into one config and one
//! route table.
//!
//! A service's upstream takes every field of an `[upstreams.NAME]` table (targets, balancing,
//! health checks, retries, breaker, outlier ejection, TLS), except TLS file paths: a path on the
//! gateway's host is the operator's to name, not an API owner's. Errors name the field as the
//! admin API's body spells it (`routes[0].path_prefix`, `upstream.targets[1]`).
//!
//! Composition appends each service's upstream (named by the service's id) and routes after the
//! file's, then compiles the route table once over all of them: two routes matching the same
//! host, path and methods are refused with an error naming both and where each comes from.

use serde::{Deserialize, Serialize};

use super::raw::{RawRoute, RawUpstream};
use super::validate::route;
use super::validate_upstream::upstream;
use super::*;

/// A managed service's route, as the admin API takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_exact: Option<String>,
    /// Empty or absent: any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Empty or absent: any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_host: Option<String>,
    /// Bytes of each request and response body kept in the call record (at most 65536), for
    /// debugging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_body: Option<u64>,
}

/// A managed service's routes and upstream, validated. The routes' `ProxyAction::upstream` is 0
/// (the service's own upstream) until composed.
#[derive(Debug, Clone)]
pub struct ServiceRoutes {
    pub routes: Vec<RouteConfig>,
    /// The service's upstream; `None` for an AI service (its routes call the `[ai]` providers).
    pub upstream: Option<UpstreamConfig>,
}

/// Refuses a managed target (or JWKS host) address that reaches what an API owner must not: a
/// link-local address (cloud metadata services live there, and AWS's also at `fd00:ec2::254`), an
/// unspecified, broadcast or multicast one, and this host itself (loopback, or any address of its
/// own interfaces: a listener on `0.0.0.0` answers on all of them) unless `allow_loopback`
/// (`[admin] allow_loopback`, for development). An IPv6 address that carries an IPv4 one
/// (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) is judged by the
/// IPv4 address inside.
pub fn check_target_ip(ip: std::net::IpAddr, allow_loopback: bool) -> Result<(), String> {
    use std::net::{IpAddr, Ipv4Addr};
    let v4 = match ip {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(v) => {
            let s = v.segments();
            let low = Ipv4Addr::from(((u32::from(s[6])) << 16) | u32::from(s[7]));
            if let Some(m) = v.to_ipv4_mapped() {
                Some(m)
            } else if (s[..6] == [0; 6] && !v.is_loopback() && !v.is_unspecified())
                || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            {
                Some(low)
            } else {
                None
            }
        }
    };
    let own = || local_addrs::is_own(ip) || v4.is_some_and(|v| local_addrs::is_own(IpAddr::V4(v)));
    let refused = match (v4, ip) {
        (Some(v), _) => {
            if v.is_loopback() || own() {
                !allow_loopback
            } else {
                v.is_link_local() || v.is_unspecified() || v.is_broadcast() || v.is_multicast()
            }
        }
        (None, IpAddr::V6(v)) => {
            if v.is_loopback() || own() {
                !allow_loopback
            } else {
                v.is_unspecified()
                    || v.is_multicast()
                    || (v.segments()[0] & 0xffc0) == 0xfe80
                    || v.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]
            }
        }
        (None, IpAddr::V4(_)) => false,
    };
    if refused {
        return Err(format!(
            "{ip} is not a permitted target (this host's own addresses, loopback, link-local, metadata, unspecified and multicast addresses are refused; [admin] allow_loopback permits this host)"
        ));
    }
    Ok(())
}

/// The addresses of this host's interfaces, read with `getifaddrs(3)` and kept for a few seconds
/// (a catalog build checks every target of every service).
mod local_addrs {
    use std::net::IpAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use arc_swap::ArcSwapOption;

    const FRESH: Duration = Duration::from_secs(5);

    static CACHE: ArcSwapOption<(Instant, Vec<IpAddr>)> = ArcSwapOption::const_empty();

    pub fn is_own(ip: IpAddr) -> bool {
        let cur = CACHE.load();
        if let Some(c) = cur.as_ref().filter(|c| c.0.elapsed() < FRESH) {
            return c.1.contains(&ip);
        }
        let addrs = read();
        let own = addrs.contains(&ip);
        CACHE.store(Some(Arc::new((Instant::now(), addrs))));
        own
    }

    fn read() -> Vec<IpAddr> {
        let mut out = Vec::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // Safety: getifaddrs fills `head` with a list that freeifaddrs releases below; each
        // entry's `ifa_addr` is null or points at a sockaddr of the family it names.
        unsafe {
            if libc::getifaddrs(&mut head) != 0 {
                return out;
            }
            let mut p = head;
            while !p.is_null() {
                let a = (*p).ifa_addr;
                if !a.is_null() {
                    match i32::from((*a).sa_family) {
                        libc::AF_INET => {
                            let sin = &*(a as *const libc::sockaddr_in);
                            out.push(IpAddr::from(
                                u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                            ));
                        }
                        libc::AF_INET6 => {
                            let sin6 = &*(a as *const libc::sockaddr_in6);
                            out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                        }
                        _ => {}
                    }
                }
                p = (*p).ifa_next;
            }
            libc::freeifaddrs(head);
        }
        out
    }
}

/// What a managed service is besides its routes.
pub struct ServiceBackend<'a> {
    /// The fields of an `[upstreams.NAME]` table (`null` for an AI service).
    pub upstream: &'a serde_json::Value,
    /// An AI service's `ai` table: the aliases it serves, or the provider of a native route.
    pub ai: Option<&'a super::ai::RawAiRoute>,
    /// The config file's `[ai]`, which an AI service's aliases and provider come from.
    pub ai_config: &'a super::ai::AiConfig,
}

/// Validates a service's routes and upstream (or, for an AI service, its `ai` table). `id` names
/// the upstream (the service's id).
pub fn managed_service(
    id: &str,
    routes: &[ServiceRoute],
    backend: ServiceBackend<'_>,
    http: &HttpConfig,
    allow_loopback: bool,
) -> Result<ServiceRoutes, ConfigError> {
    if routes.is_empty() {
        return Err(ConfigError::invalid(
            "routes",
            "at least one route is required",
        ));
    }
    if let Some(ai) = backend.ai {
        return ai_service(id, routes, backend.upstream, ai, backend.ai_config, http);
    }
    let upstream_spec = backend.upstream;
    let raw: RawUpstream = serde_path_to_error::deserialize(upstream_spec).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "upstream".to_string()
        } else {
            format!("upstream.{path}")
        };
        ConfigError::invalid(field, e.into_inner().to_string())
    })?;
    if let Some(t) = &raw.tls {
        for (set, name) in [
            (t.ca.is_some(), "ca"),
            (t.client_cert.is_some(), "client_cert"),
            (t.client_key.is_some(), "client_key"),
        ] {
            if set {
                return Err(ConfigError::invalid(
                    format!("upstream.tls.{name}"),
                    "file paths are not accepted for managed services (the gateway host's files are the operator's); use a config-file upstream",
                ));
            }
        }
    }
    let prefix = format!("upstreams.{id}");
    let rename = |e: ConfigError| match e {
        ConfigError::Invalid { field, reason } => {
            let field = match field.strip_prefix(&prefix) {
                Some(rest) => format!("upstream{rest}"),
                None => field,
            };
            ConfigError::Invalid { field, reason }
        }
        other => other,
    };
    let up = upstream(id.to_string(), raw, std::path::Path::new(".")).map_err(rename)?;
    for (i, t) in up.targets.iter().enumerate() {
        check_target_ip(t.addr.ip(), allow_loopback)
            .map_err(|e| ConfigError::invalid(format!("upstream.targets[{i}]"), e))?;
    }
    let ups = std::slice::from_ref(&up);
    let mut out = Vec::with_capacity(routes.len());
    for (i, r) in routes.iter().enumerate() {
        let raw = raw_route(id, i, r, Some(id), None)?;
        out.push(route(i, raw, ups, http, &super::ai::AiConfig::default())?);
    }
    no_conflicts(&out)?;
    Ok(ServiceRoutes {
        routes: out,
        upstream: Some(up),
    })
}

/// The raw form of a service's route `i`, calling `upstream` or serving `ai`.
fn raw_route(
    id: &str,
    i: usize,
    r: &ServiceRoute,
    upstream: Option<&str>,
    ai: Option<&super::ai::RawAiRoute>,
) -> Result<RawRoute, ConfigError> {
    if r.path_prefix.is_none() && r.path_exact.is_none() {
        return Err(ConfigError::invalid(
            format!("routes[{i}].path_prefix"),
            "set path_prefix or path_exact",
        ));
    }
    Ok(RawRoute {
        name: Some(format!("{id}#{i}")),
        hosts: r.hosts.clone(),
        path_prefix: r.path_prefix.clone(),
        path_exact: r.path_exact.clone(),
        methods: r.methods.clone(),
        upstream: upstream.map(str::to_string),
        strip_prefix: r.strip_prefix,
        rewrite_prefix: r.rewrite_prefix.clone(),
        upstream_host: r.upstream_host.clone(),
        capture_body: r.capture_body.map(super::units::Size),
        ai: ai.cloned(),
        ..Default::default()
    })
}

/// An AI service: its routes serve the unified API over the config file's aliases (or a
/// provider's native API); it has no upstream of its own.
fn ai_service(
    id: &str,
    routes: &[ServiceRoute],
    upstream: &serde_json::Value,
    ai: &super::ai::RawAiRoute,
    ai_config: &super::ai::AiConfig,
    http: &HttpConfig,
) -> Result<ServiceRoutes, ConfigError> {
    if !upstream.is_null() {
        return Err(ConfigError::invalid(
            "upstream",
            "an AI service calls the gateway's model providers: leave upstream out",
        ));
    }
    let mut out = Vec::with_capacity(routes.len());
    for (i, r) in routes.iter().enumerate() {
        let raw = raw_route(id, i, r, None, Some(ai))?;
        let route = route(i, raw, &[], http, ai_config).map_err(|e| match e {
            // The service's `ai` table is one, whichever route found it wrong.
            ConfigError::Invalid { field, reason } => ConfigError::Invalid {
                field: match field.strip_prefix(&format!("routes[{i}].ai")) {
                    Some(rest) => format!("ai{rest}"),
                    None => field,
                },
                reason,
            },
            other => other,
        })?;
        out.push(route);
    }
    no_conflicts(&out)?;
    Ok(ServiceRoutes {
        routes: out,
        upstream: None,
    })
}

/// Two routes of one service that match the same requests are the caller's mistake: say so now,
/// not when the service is composed.
fn no_conflicts(out: &[RouteConfig]) -> Result<(), ConfigError> {
    RouteTable::build(out.iter().map(RouteConfig::matcher)).map_err(|c| {
        ConfigError::invalid(
            format!("routes[{}]", c.route),
            format!(
                "matches the same host, path and methods as routes[{}]",
                c.other
            ),
        )
    })?;
    Ok(())
}

/// Whether two routes can match the same request (hosts, paths and methods all intersect).
pub fn overlaps(a: &RouteConfig, b: &RouteConfig) -> bool {
    hosts_overlap(&a.hosts, &b.hosts)
        && paths_overlap(&a.path, &b.path)
        && (a.methods.is_empty()
            || b.methods.is_empty()
            || a.methods.iter().any(|m| b.methods.contains(m)))
}

fn hosts_overlap(a: &[HostPattern], b: &[HostPattern]) -> bool {
    if a.is_empty() || b.is_empty() {
        return true;
    }
    let one = |x: &HostPattern, y: &HostPattern| match (x, y) {
        (HostPattern::Exact(p), HostPattern::Exact(q)) => p == q,
        (HostPattern::Exact(h), HostPattern::Suffix(s))
        | (HostPattern::Suffix(s), HostPattern::Exact(h)) => h.ends_with(s.as_str()),
        (HostPattern::Suffix(p), HostPattern::Suffix(q)) => {
            p.ends_with(q.as_str()) || q.ends_with(p.as_str())
        }
    };
    a.iter().any(|x| b.iter().any(|y| one(x, y)))
}

fn paths_overlap(a: &PathMatch, b: &PathMatch) -> bool {
    match (a, b) {
        (PathMatch::Exact(x), PathMatch::Exact(y)) => x == y,
        (PathMatch::Exact(x), PathMatch::Prefix(p))
        | (PathMatch::Prefix(p), PathMatch::Exact(x)) => x.starts_with(p.as_str()),
        (PathMatch::Prefix(p), PathMatch::Prefix(q)) => {
            p.starts_with(q.as_str()) || q.starts_with(p.as_str())
        }
    }
}

/// A route of the config file that managed routes may sit under: a catch-all (`path_prefix =
/// "/"` on any host), which by design gets what no other route matches.
pub fn is_fallback(r: &RouteConfig) -> bool {
    r.hosts.is_empty() && r.path == PathMatch::Prefix("/".into())
}

/// One managed service to compose: its id and name (for error messages) and validated parts.
pub struct Managed<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub parts: &'a ServiceRoutes,
}

impl Config {
    /// The file's config with managed services' upstreams and routes appended, and the route
    /// table compiled over all. Also returns, by route index, which of `services` each route
    /// belongs to (`None`: the file's).
    pub fn compose(
        base: &Config,
        services: &[Managed<'_>],
    ) -> Result<(Config, Vec<Option<u32>>), ConfigError> {
        let mut config = base.clone();
        let mut owners: Vec<Option<u32>> = vec![None; base.routes.len()];
        for (si, s) in services.iter().enumerate() {
            if config.upstreams.iter().any(|u| u.name == s.id) {
                return Err(ConfigError::invalid(
                    format!("upstreams.{}", s.id),
                    format!(
                        "the config file's upstream {:?} has the name of managed service {:?}",
                        s.id, s.name
                    ),
                ));
            }
            let up = config.upstreams.len();
            if let Some(u) = &s.parts.upstream {
                config.upstreams.push(u.clone());
            }
            for r in &s.parts.routes {
                let mut r = r.clone();
                if let RouteAction::Proxy(p) = &mut r.action {
                    p.upstream = up;
                }
                config.routes.push(r);
                owners.push(Some(si as u32));
            }
        }
        let table =
            RouteTable::build(config.routes.iter().map(RouteConfig::matcher)).map_err(|c| {
                let side = |i: usize| match owners[i] {
                    None => format!("route {:?} of the config file", config.routes[i].name),
                    Some(s) => format!(
                        "a route of service {:?} ({})",
                        services[s as usize].name, services[s as usize].id
                    ),
                };
                let (a, b) = (c.route.max(c.other), c.route.min(c.other));
                let field = match owners[a] {
                    Some(s) => format!("services.{}.routes", services[s as usize].id),
                    None => format!("routes[{a}]"),
                };
                ConfigError::invalid(
                    field,
                    format!(
                        "{} matches the same host, path and methods as {}",
                        side(a),
                        side(b)
                    ),
                )
            })?;
        config.route_table = Arc::new(table);
        Ok((config, owners))
    }
}
