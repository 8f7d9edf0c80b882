//! Active health checks: one checker thread probes every target of every upstream that has a
//! `[upstreams.NAME.health_check]` table and publishes the result as node-global atomics; shards
//! read them with relaxed loads when they pick a target (no lock, no read-modify-write on the
//! request path).
//!
//! A target leaves rotation after `unhealthy_threshold` consecutive failed probes and comes back
//! after `healthy_threshold` passes. Targets start healthy. When every target of an upstream is
//! unhealthy, `fail_open` decides: use them all anyway, or answer 503 `no_healthy_upstream`.
//!
//! Probes are blocking HTTP/1.1 GETs with `Connection: close`, run one after another on the checker
//! thread: a probe that hangs delays the others by at most `timeout`. Health state, and the streaks
//! counting toward the thresholds, survive a reload when the upstream's config is unchanged.
//!
//! The checker sees the gateway through a [`CheckerHandle`] only: the upstreams to check, the config
//! generation they belong to, and whether to stop.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::config::{HealthCheckConfig, TargetConfig, UpstreamConfig};

/// Health of one upstream's targets, shared by the checker and every shard.
#[derive(Debug)]
pub struct Health {
    healthy: Box<[CachePadded<AtomicBool>]>,
    healthy_count: CachePadded<AtomicUsize>,
    pub fail_open: bool,
}

impl Health {
    pub fn new(targets: usize, fail_open: bool) -> Health {
        Health {
            healthy: (0..targets)
                .map(|_| CachePadded::new(AtomicBool::new(true)))
                .collect(),
            healthy_count: CachePadded::new(AtomicUsize::new(targets)),
            fail_open,
        }
    }

    #[inline]
    pub fn is_healthy(&self, target: usize) -> bool {
        self.healthy
            .get(target)
            .is_none_or(|h| h.load(Ordering::Relaxed))
    }

    #[inline]
    pub fn any_healthy(&self) -> bool {
        self.healthy_count.load(Ordering::Relaxed) > 0
    }

    fn set(&self, target: usize, healthy: bool) {
        if let Some(h) = self.healthy.get(target) {
            if h.swap(healthy, Ordering::Relaxed) != healthy {
                if healthy {
                    self.healthy_count.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.healthy_count.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// What the checker reads of the gateway, and nothing more. The gateway implements it over its
/// control state; the checker thread is unparked when [`CheckerHandle::stopping`] turns true.
pub trait CheckerHandle {
    /// The config generation being served. Read on every pass, so it should be a load.
    fn generation(&self) -> u64;

    /// The health-checked upstreams of the config being served, and its generation. Called when
    /// [`CheckerHandle::generation`] moved.
    fn upstreams(&self) -> (u64, Vec<HealthChecked>);

    /// Whether the gateway drains; the checker then returns.
    fn stopping(&self) -> bool;
}

/// An upstream to check: what the probes need of its config, and the [`Health`] they publish to.
pub struct HealthChecked {
    /// The upstream's name (for log lines).
    pub upstream: String,
    pub targets: Vec<TargetConfig>,
    pub check: HealthCheckConfig,
    pub health: Arc<Health>,
    /// The upstream speaks TLS: probes do too, with its client config and server names.
    pub tls: Option<crate::config::tls::UpstreamTls>,
}

impl HealthChecked {
    /// `upstream` publishing to `health`, if it has health checks.
    pub fn new(upstream: &UpstreamConfig, health: &Arc<Health>) -> Option<HealthChecked> {
        Some(HealthChecked {
            upstream: upstream.name.clone(),
            targets: upstream.targets.clone(),
            check: upstream.health_check.clone()?,
            health: health.clone(),
            tls: upstream.tls.clone(),
        })
    }
}

/// Consecutive results of one target.
#[derive(Default)]
struct Streak {
    passes: u32,
    failures: u32,
    next: Option<Instant>,
}

/// The checker's record of one health-checked upstream: the [`Health`] it publishes to and the
/// streaks of its targets.
struct Checked {
    /// Held so that the address this entry is keyed by cannot be reused by another upstream's
    /// `Health` while the entry lives.
    health: Arc<Health>,
    streaks: Vec<Streak>,
}

/// Body of the checker thread: runs until the gateway drains.
pub fn run_checker(gateway: &impl CheckerHandle) {
    // Keyed by the address of the upstream's `Health`. A reload carries the `Health` of an
    // unchanged upstream over, and its streaks (and probe times) go with it: a target one failure
    // from going down still goes down at the next one. A new generation only drops the upstreams
    // that left or changed.
    let mut checked: HashMap<usize, Checked> = HashMap::new();
    let mut generation = 0;
    let mut upstreams = Vec::new();
    while !gateway.stopping() {
        if gateway.generation() != generation {
            (generation, upstreams) = gateway.upstreams();
            checked.retain(|_, c| upstreams.iter().any(|u| Arc::ptr_eq(&u.health, &c.health)));
        }
        let now = Instant::now();
        let mut next_wake = now + Duration::from_millis(200);
        for u in &upstreams {
            let (hc, health) = (&u.check, &u.health);
            let c = checked
                .entry(Arc::as_ptr(health) as usize)
                .or_insert_with(|| Checked {
                    health: health.clone(),
                    streaks: Vec::new(),
                });
            // Same `Health`, same config, same targets; sized here all the same.
            c.streaks.resize_with(u.targets.len(), Streak::default);
            for (ti, (target, s)) in u.targets.iter().zip(c.streaks.iter_mut()).enumerate() {
                let due = *s.next.get_or_insert(now);
                if due > Instant::now() {
                    next_wake = next_wake.min(due);
                    continue;
                }
                let result = probe(target.addr, &target.name, hc, u.tls.as_ref());
                s.next = Some(Instant::now() + hc.interval);
                next_wake = next_wake.min(Instant::now() + hc.interval);
                record(health, ti, s, hc, result, &u.upstream, target.addr);
                if gateway.stopping() {
                    return;
                }
            }
        }
        let sleep = next_wake
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        // Parked, not slept: shutdown unparks the checker so it exits at once.
        std::thread::park_timeout(sleep);
    }
}

fn record(
    health: &Health,
    target: usize,
    s: &mut Streak,
    hc: &HealthCheckConfig,
    result: Result<u16, String>,
    upstream: &str,
    addr: SocketAddr,
) {
    match result {
        Ok(status) if hc.expects(status) => {
            s.passes += 1;
            s.failures = 0;
            if !health.is_healthy(target) && s.passes >= hc.healthy_threshold {
                health.set(target, true);
                tracing::info!(upstream, target = %addr, status, "target healthy again, back in rotation");
            }
        }
        other => {
            s.failures += 1;
            s.passes = 0;
            if health.is_healthy(target) && s.failures >= hc.unhealthy_threshold {
                health.set(target, false);
                let why = match other {
                    Ok(status) => format!("status {status}"),
                    Err(e) => e,
                };
                tracing::warn!(upstream, target = %addr, reason = %why, "target unhealthy, out of rotation");
            }
        }
    }
}

/// One probe: GET the path, return the status code.
fn probe(
    addr: SocketAddr,
    name: &str,
    hc: &HealthCheckConfig,
    tls: Option<&crate::config::tls::UpstreamTls>,
) -> Result<u16, String> {
    let deadline = Instant::now() + hc.timeout;
    let s = TcpStream::connect_timeout(&addr, hc.timeout).map_err(|e| format!("connect: {e}"))?;
    // The timeouts are the socket's: set through a second handle, they bound the TLS layer too.
    let sock = s.try_clone().map_err(|e| e.to_string())?;
    let host = hc.host.as_deref().unwrap_or(name);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringway-health-check\r\nConnection: close\r\n\r\n",
        hc.path
    );
    match tls {
        None => exchange(s, &sock, req.as_bytes(), deadline),
        Some(t) => {
            let server = t.sni.clone().unwrap_or_else(|| super::host_of(name));
            let server = rustls_pki_types::ServerName::try_from(server)
                .map_err(|e| format!("TLS server name: {e}"))?;
            let conn = rustls::ClientConnection::new(t.client.clone(), server)
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(
                rustls::StreamOwned::new(conn, s),
                &sock,
                req.as_bytes(),
                deadline,
            )
        }
    }
}

/// Sends the probe request over `s` and reads the status code, before `deadline`.
fn exchange<S: Read + Write>(
    mut s: S,
    sock: &TcpStream,
    req: &[u8],
    deadline: Instant,
) -> Result<u16, String> {
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    sock.set_write_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    s.write_all(req).map_err(|e| format!("send: {e}"))?;
    s.flush().map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 512];
    let mut have = 0;
    loop {
        sock.set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        if Instant::now() >= deadline {
            return Err("timed out".into());
        }
        let n = s.read(&mut buf[have..]).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before a status line".into());
        }
        have += n;
        if let Some(status) = status_code(&buf[..have]) {
            return Ok(status);
        }
        if have == buf.len() {
            return Err("no status line".into());
        }
    }
}

/// The status code of a status line once its first 12 bytes are in (`HTTP/1.1 200`).
fn status_code(b: &[u8]) -> Option<u16> {
    if b.len() < 12 {
        return None;
    }
    if !b.starts_with(b"HTTP/1.") || b[8] != b' ' {
        return Some(0);
    }
    std::str::from_utf8(&b[9..12])
        .ok()?
        .parse()
        .ok()
        .or(Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Service"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 2"), None);
        assert_eq!(status_code(b"garbage garbage"), Some(0));
    }

    #[test]
    fn counts_follow_flips() {
        let h = Health::new(3, false);
        assert!(h.any_healthy());
        h.set(0, false);
        h.set(0, false);
        h.set(1, false);
        h.set(2, false);
        assert!(!h.any_healthy());
        h.set(1, true);
        assert!(h.any_healthy() && h.is_healthy(1) && !h.is_healthy(0));
    }
}
