//! `ringway check`: the compiled route table, the upstreams as resolved, and what the host offers
//! (io_uring, file and memory limits, CPUs, socket sysctls), with advice where something will limit
//! the gateway.

use std::fmt::Write;

use crate::config::{Config, DriverChoice, HostPattern, LimitAlgorithm, PathMatch, RouteAction};
use crate::runtime::driver;

/// Renders the report. Returns it with the number of warnings.
pub fn report(config: &Config) -> (String, usize) {
    let mut out = String::new();
    let mut warnings = 0;
    let _ = writeln!(
        out,
        "config: ok ({} routes, {} upstreams)",
        config.routes.len(),
        config.upstreams.len()
    );
    if let Some(t) = &config.tls {
        let listen: Vec<String> = t.listen.iter().map(|a| a.to_string()).collect();
        let mut versions = Vec::new();
        if t.versions.tls12 {
            versions.push("TLS 1.2");
        }
        if t.versions.tls13 {
            versions.push("TLS 1.3");
        }
        let _ = writeln!(
            out,
            "\ntls: {} ({}, ALPN http/1.1; the first certificate serves clients without a known SNI name)",
            listen.join(", "),
            versions.join(", ")
        );
        for (i, c) in t.certificates.iter().enumerate() {
            let days = c.info.expires_in_s.div_euclid(86_400);
            let state = if c.info.expires_in_s < 0 {
                warnings += 1;
                format!("EXPIRED {} days ago", -days)
            } else if days < 14 {
                warnings += 1;
                format!("expires in {days} days")
            } else {
                format!("{days} days left")
            };
            let _ = writeln!(
                out,
                "  [{i}] {} names={} not_after={} ({state})",
                c.cert.display(),
                c.info.names.join(","),
                c.info.not_after
            );
        }
    }
    if let Some(store) = &config.store {
        let _ = writeln!(
            out,
            "\ncontrol plane: store {} (sealing key {}){}",
            store.path.display(),
            crate::control::keyring::key_file(&store.path).display(),
            match &config.admin {
                Some(a) => format!(
                    ", admin API on {}{}{}",
                    a.listen,
                    if a.listen.ip().is_loopback() {
                        " (loopback)"
                    } else {
                        " (NOT loopback: reachable from the network)"
                    },
                    if a.allow_loopback {
                        "; managed targets may point at this host"
                    } else {
                        ""
                    }
                ),
                None => ", no admin API".to_string(),
            }
        );
        if config
            .admin
            .as_ref()
            .is_some_and(|a| !a.listen.ip().is_loopback())
        {
            warnings += 1;
        }
        if config.admin.is_some()
            && std::env::var("RINGWAY_ADMIN_TOKEN").is_err()
            && config
                .admin
                .as_ref()
                .and_then(|a| a.token_file.as_ref())
                .is_none()
        {
            warnings += 1;
            let _ = writeln!(
                out,
                "  ! no bootstrap token: set RINGWAY_ADMIN_TOKEN or [admin] token_file, or the gateway will not start"
            );
        }
    }
    observe_report(&mut out, config);
    ai_report(&mut out, config);
    let _ = writeln!(out, "\nroutes (most specific match wins):");
    for (i, r) in config.routes.iter().enumerate() {
        let hosts = if r.hosts.is_empty() {
            "*".to_string()
        } else {
            r.hosts
                .iter()
                .map(|h| match h {
                    HostPattern::Exact(x) => x.clone(),
                    HostPattern::Suffix(x) => format!("*{x}"),
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let path = match &r.path {
            PathMatch::Exact(p) => format!("= {p}"),
            PathMatch::Prefix(p) => format!("{p}*"),
        };
        let methods = if r.methods.is_empty() {
            "ANY".to_string()
        } else {
            r.methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let action = match &r.action {
            RouteAction::Proxy(p) => {
                let mut a = format!("proxy → {}", config.upstreams[p.upstream].name);
                if let Some(rw) = &p.rewrite_prefix {
                    let _ = write!(a, " (prefix → {:?})", rw);
                }
                if let Some(h) = &p.upstream_host {
                    let _ = write!(a, " (Host: {h})");
                }
                a
            }
            RouteAction::Respond(s) => format!("respond {} ({} bytes)", s.status, s.body.len()),
            RouteAction::Ai(a) if a.prompt.is_some() => {
                let m = a.prompt.as_ref().map_or("", |p| p.model.as_str());
                format!("ai → prompt on model {m}")
            }
            RouteAction::Ai(a) if a.native.is_some() => {
                let p = a
                    .native
                    .map_or("", |i| config.ai.providers[i].name.as_str());
                format!("ai → native API of provider {p}")
            }
            RouteAction::Ai(a) => {
                let names: Vec<&str> = if a.models.is_empty() {
                    config.ai.aliases.iter().map(|a| a.name.as_str()).collect()
                } else {
                    a.models
                        .iter()
                        .map(|&i| config.ai.aliases[i].name.as_str())
                        .collect()
                };
                format!("ai → models {}", names.join(", "))
            }
        };
        let _ = writeln!(
            out,
            "  [{i}] {:<16} host={hosts:<20} path={path:<16} methods={methods:<10} {action}",
            r.name
        );
        for l in &r.limits.rate {
            let algo = match l.algorithm {
                LimitAlgorithm::TokenBucket { burst } => format!("token bucket, burst {burst}"),
                LimitAlgorithm::SlidingWindow => "sliding window".to_string(),
            };
            let _ = writeln!(
                out,
                "        rate limit {} per {} by {:?} ({algo}, {} keys)",
                l.limit,
                humantime::format_duration(l.period),
                l.key,
                l.max_keys
            );
        }
        for l in &r.limits.concurrency {
            let _ = writeln!(
                out,
                "        concurrency limit {} in flight by {:?} ({} keys)",
                l.max, l.key, l.max_keys
            );
        }
    }
    let _ = writeln!(out, "\nupstreams:");
    for u in &config.upstreams {
        let targets = u
            .targets
            .iter()
            .map(|t| format!("{} ({}, weight {})", t.addr, t.name, t.weight))
            .collect::<Vec<_>>()
            .join(", ");
        let balance = match &u.balance {
            crate::config::Balance::RoundRobin => "round_robin".to_string(),
            crate::config::Balance::LeastInFlight => "least_in_flight".to_string(),
            crate::config::Balance::Random => "random".to_string(),
            crate::config::Balance::ConsistentHash(k) => format!("consistent_hash({k:?})"),
        };
        let _ = writeln!(out, "  {:<16} {balance}: {targets}", u.name);
        if let Some(b) = &u.breaker {
            let _ = writeln!(
                out,
                "        breaker: {} failures in a row, failure ratio {}‰ / slow ratio {}‰ over {} (min {}), open {}..{}, {} probes, max in flight {}, max pending {}",
                b.consecutive_failures,
                b.failure_ratio_permille,
                b.slow_call_ratio_permille,
                humantime::format_duration(b.window),
                b.min_requests,
                humantime::format_duration(b.open_duration),
                humantime::format_duration(b.max_open_duration),
                b.half_open_probes,
                b.max_in_flight,
                b.max_pending
                    .map_or("unlimited".to_string(), |p| p.to_string()),
            );
        }
        if let Some(o) = &u.outlier {
            let _ = writeln!(
                out,
                "        outlier ejection: {} failures in a row, {} × n up to {}, at most {}% of targets",
                o.consecutive_failures,
                humantime::format_duration(o.base_ejection),
                humantime::format_duration(o.max_ejection),
                o.max_ejected_percent
            );
        }
    }

    let _ = writeln!(out, "\nhost:");
    let _ = writeln!(out, "  kernel: {}", kernel_release());
    match driver::uring_usable() {
        Ok(()) => {
            let tuned = driver::uring_tuning_supported();
            let _ = writeln!(
                out,
                "  io_uring: usable{}",
                if tuned {
                    ", single-issuer/defer-taskrun ring supported"
                } else {
                    " (no DEFER_TASKRUN: kernel < 6.1; expect more CPU per request)"
                }
            );
            if !tuned {
                warnings += 1;
            }
        }
        Err(why) => {
            warnings += 1;
            let fallback = if config.server.driver == DriverChoice::IoUring {
                "driver = \"io_uring\" will fail to start"
            } else {
                "shards will use epoll"
            };
            let _ = writeln!(out, "  io_uring: NOT usable: {why}; {fallback}");
        }
    }
    let cpus = crate::runtime::available_cpus().unwrap_or_default();
    let chosen = config.server.cpus.clone().unwrap_or_else(|| cpus.clone());
    let workers = config.server.workers.unwrap_or(chosen.len());
    let _ = writeln!(
        out,
        "  cpus available: {cpus:?}; shards: {workers} on {chosen:?}"
    );
    if let Some(bad) = chosen.iter().find(|c| !cpus.contains(c)) {
        warnings += 1;
        let _ = writeln!(
            out,
            "  ! CPU {bad} is not in this process's affinity mask; that shard will run unpinned"
        );
    }
    if workers > chosen.len() {
        warnings += 1;
        let _ = writeln!(
            out,
            "  ! {workers} shards on {} CPUs: shards will share cores",
            chosen.len()
        );
    }
    let (soft, hard) = rlimit(libc::RLIMIT_NOFILE);
    let need = (workers as u64) * (config.server.max_connections as u64).min(100_000) * 2;
    let _ = writeln!(out, "  RLIMIT_NOFILE: soft {soft}, hard {hard}");
    if soft < 65_536 || soft < need.min(1 << 20) {
        warnings += 1;
        let _ = writeln!(
            out,
            "  ! raise the open-file limit (each proxied connection uses 2 fds): `ulimit -n 1048576` or LimitNOFILE= in the systemd unit"
        );
    }
    let (msoft, _) = rlimit(libc::RLIMIT_MEMLOCK);
    let _ = writeln!(
        out,
        "  RLIMIT_MEMLOCK: {}",
        if msoft == u64::MAX {
            "unlimited".to_string()
        } else {
            format!("{} KiB", msoft / 1024)
        }
    );
    if msoft < 64 * 1024 * 1024 && kernel_older_than(5, 12) {
        warnings += 1;
        let _ = writeln!(
            out,
            "  ! kernels before 5.12 charge io_uring rings to RLIMIT_MEMLOCK: set LimitMEMLOCK=infinity"
        );
    }
    if let Some(somax) = read_sysctl("net/core/somaxconn") {
        let _ = writeln!(out, "  net.core.somaxconn: {somax}");
        if somax < u64::from(config.server.backlog) {
            warnings += 1;
            let _ = writeln!(
                out,
                "  ! backlog {} is capped by somaxconn {somax}: sysctl -w net.core.somaxconn={}",
                config.server.backlog, config.server.backlog
            );
        }
    }
    if let Ok(range) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") {
        let parts: Vec<u64> = range
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if let [lo, hi] = parts[..] {
            let _ = writeln!(
                out,
                "  net.ipv4.ip_local_port_range: {lo}-{hi} ({} ports per upstream address)",
                hi.saturating_sub(lo) + 1
            );
            if hi.saturating_sub(lo) < 20_000 {
                warnings += 1;
                let _ = writeln!(
                    out,
                    "  ! few ephemeral ports for upstream connections: sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\""
                );
            }
        }
    }
    let _ = writeln!(out, "\n{warnings} warning(s)");
    (out, warnings)
}

fn rlimit(res: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Safety: valid pointer to an rlimit struct.
    if unsafe { libc::getrlimit(res, &mut r) } != 0 {
        return (0, 0);
    }
    (r.rlim_cur, r.rlim_max)
}

fn read_sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn kernel_older_than(major: u32, minor: u32) -> bool {
    let rel = kernel_release();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => (a, b) < (major, minor),
        _ => false,
    }
}

/// The call log's sinks, the metrics endpoint and the analytics retention, one line each.
/// The AI gateway's providers (with how many keys the file gives each), aliases and prices.
fn ai_report(out: &mut String, config: &Config) {
    let ai = &config.ai;
    if ai.providers.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nAI providers:");
    for p in &ai.providers {
        let scheme = if config.upstreams[p.upstream].tls.is_some() {
            "https"
        } else {
            "http"
        };
        let keys = match p.keys.len() {
            0 => "no keys in the file (the admin API may add some)".to_string(),
            1 => "1 key".to_string(),
            n => format!("{n} keys"),
        };
        let _ = writeln!(
            out,
            "  {:<16} {:?} at {scheme}://{}{} ({keys})",
            p.name, p.kind, p.host, p.base_path
        );
    }
    let _ = writeln!(out, "AI models:");
    for a in &ai.aliases {
        let targets: Vec<String> = a
            .candidates
            .iter()
            .map(|c| format!("{}/{}", ai.providers[c.provider].name, c.model))
            .collect();
        let _ = writeln!(
            out,
            "  {:<16} {:?}: {}",
            a.name,
            a.order,
            targets.join(" → ")
        );
    }
    if !ai.prices.is_empty() {
        let _ = writeln!(out, "AI prices: {} models priced", ai.prices.len());
    }
}

fn observe_report(out: &mut String, config: &Config) {
    let _ = match &config.call_log {
        None => writeln!(out, "\ncall log: off"),
        Some(c) => {
            let mut sinks = Vec::new();
            if let Some(f) = &c.file {
                sinks.push(format!(
                    "file {} (rotated at {} MiB or {}, {} kept)",
                    f.path.display(),
                    f.max_size / (1024 * 1024),
                    span(f.max_age),
                    f.keep
                ));
            }
            if c.stdout {
                sinks.push("stdout".to_string());
            }
            if let Some(o) = &c.otlp {
                sinks.push(format!("OTLP {}", o.endpoint));
            }
            if sinks.is_empty() {
                sinks.push("no sink (records feed analytics only)".to_string());
            }
            writeln!(
                out,
                "\ncall log: {}; query strings {}, trace context {}, {} bytes of ring per shard",
                sinks.join(", "),
                match c.query {
                    crate::config::observe::QueryMode::Keep => "kept",
                    crate::config::observe::QueryMode::Redact => "redacted",
                    crate::config::observe::QueryMode::Drop => "dropped",
                },
                if c.trace { "on" } else { "off" },
                c.buffer
            )
        }
    };
    if config.admin.is_some() {
        let m = &config.metrics;
        let _ = writeln!(
            out,
            "metrics: GET /metrics on the admin listener ({}), up to {} series per kind{}",
            if m.public {
                "no token"
            } else {
                "admin token or RINGWAY_METRICS_TOKEN"
            },
            m.max_series,
            if m.per_app { ", per app" } else { "" }
        );
    }
    if let Some(a) = &config.analytics {
        let _ = writeln!(
            out,
            "analytics: per-minute rollups kept {}, per-hour {}, per-day {}",
            span(a.minutes),
            span(a.hours),
            span(a.days)
        );
    }
}

/// A retention as whole days when it is one (`35d`), else as humantime writes it.
fn span(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}
