//! Rate limits and per-key concurrency limits of a route (`[[routes.rate_limits]]`,
//! `[[routes.concurrency_limits]]`), global across shards by token leasing.
//!
//! Each limit has a node-global table of keyed atomic budgets ([`node::NodeLimit`]) and, on each
//! shard, a table of leases ([`shard::ShardLimit`]). A request spends a token of its key's lease with
//! plain integers; only when the lease is spent does the shard lease a new batch from the node
//! (one compare-and-swap). Batches are a fair share of what is left, `left / (2 × shards)`, at
//! least 1 and at most [`node::MAX_LEASE`], so they shrink to single tokens as the budget runs out.
//! Unspent leases go back to the node at every sync tick (`server.tick`).
//!
//! Bounds, whatever the skew between shards:
//! - Token bucket (`limit` per `per`, holding `burst`): every admitted request spent a token taken
//!   from the node bucket at most one tick earlier, so over any interval `t` the route admits at most
//!   `burst + limit × (t + tick) / per` per key, where a single bucket would admit
//!   `burst + limit × t / per`.
//! - Sliding window: a lease is only spent in the fixed window it was taken in, so no fixed window
//!   admits more than `limit`; the sliding estimate weights the previous window by its overlap.
//! - Concurrency: slots are leased like tokens and returned when idle, so requests in flight per
//!   key never exceed `max`. A shard may hold spare slots until its next tick (other shards see
//!   fewer, never more).
//!
//! Memory is bounded when the route is loaded: per limit, `max_keys` × 32 bytes (and a claim flag
//! per 8 keys) on the node plus at most [`shard::LOCAL_KEYS`] × 72 bytes per shard, whatever the
//! number of distinct keys (see `node` for eviction). The tables come zeroed from the allocator, so
//! only pages that keys have landed in become resident: an idle limit costs a few KiB. The clock is
//! the coarse monotonic clock (a few ms resolution).
//!
//! Responses of a limited route carry `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` (draft-ietf-httpapi-ratelimit-headers) for the limit closest to running
//! out, unless the route sets `rate_limit_headers = false`; a refusal is 429 with `Retry-After`.

pub mod budget;
pub mod node;
pub mod shard;

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use crate::config::{LimitAlgorithm, LimitKey, RouteLimitsConfig};
use crate::error::ErrorKind;
use crate::http::RequestHead;
use crate::http::headers::trim_ows;

use node::{Kind, NodeLimit};
use shard::{Quota, ShardLimit};

/// Most limits of each sort on one route (they are checked on every request).
pub const MAX_PER_ROUTE: usize = 8;

/// Nanoseconds of the coarse monotonic clock.
pub fn clock_ns() -> u64 {
    crate::runtime::watchdog::now_ms() * 1_000_000
}

/// Node-global state of a route's limits, shared by every shard and kept across reloads while the
/// route's limits are unchanged.
pub struct NodeRouteLimits {
    pub config: RouteLimitsConfig,
    rate: Vec<Arc<NodeLimit>>,
    concurrency: Vec<Arc<NodeLimit>>,
}

impl NodeRouteLimits {
    pub fn new(config: &RouteLimitsConfig) -> NodeRouteLimits {
        let rate = config
            .rate
            .iter()
            .map(|r| {
                let period = r.period.as_nanos().min(u128::from(u64::MAX)) as u64;
                let kind = match r.algorithm {
                    LimitAlgorithm::TokenBucket { burst } => {
                        let interval = (period / r.limit).max(1);
                        Kind::Bucket {
                            interval,
                            span: interval.saturating_mul(burst),
                        }
                    }
                    LimitAlgorithm::SlidingWindow => Kind::Window {
                        width: period,
                        limit: r.limit,
                    },
                };
                Arc::new(NodeLimit::new(kind, r.max_keys))
            })
            .collect();
        let concurrency = config
            .concurrency
            .iter()
            .map(|c| {
                let kind = Kind::Concurrency {
                    max: u64::from(c.max),
                };
                Arc::new(NodeLimit::new(kind, c.max_keys))
            })
            .collect();
        NodeRouteLimits {
            config: config.clone(),
            rate,
            concurrency,
        }
    }
}

/// A route's limits on one shard.
pub struct RouteLimits {
    pub node: Arc<NodeRouteLimits>,
    rate: Vec<ShardLimit>,
    concurrency: Vec<ShardLimit>,
}

/// Why a request was refused, with what the client is told.
pub struct Refused {
    pub kind: ErrorKind,
    pub retry_after_s: u64,
}

/// Concurrency slots a request holds; dropping it ends the request for the limits.
pub struct LimitGuard {
    limits: Rc<RouteLimits>,
    held: [(u8, u32); MAX_PER_ROUTE],
    n: u8,
}

impl Drop for LimitGuard {
    fn drop(&mut self) {
        for &(j, entry) in &self.held[..usize::from(self.n)] {
            self.limits.concurrency[usize::from(j)].release(entry as usize);
        }
    }
}

impl RouteLimits {
    pub fn new(node: Arc<NodeRouteLimits>, shards: usize) -> RouteLimits {
        let shard = |n: &Arc<NodeLimit>| ShardLimit::new(n.clone(), shards);
        let rate = node.rate.iter().map(shard).collect();
        let concurrency = node.concurrency.iter().map(shard).collect();
        RouteLimits {
            node,
            rate,
            concurrency,
        }
    }

    /// Checks every limit of the route for one request. On success the guard holds its
    /// concurrency slots; the RateLimit-* fields (when the route sends them) are appended to
    /// `headers`, on refusal too.
    /// `path`: the request's path as routed (normalized), query included.
    #[allow(clippy::too_many_arguments)]
    /// `app`: the calling app, when the auth stage identified one (for [`LimitKey::App`]).
    pub fn check(
        self: &Rc<Self>,
        req: &RequestHead,
        data: &[u8],
        path: &[u8],
        (client, app): (IpAddr, Option<i64>),
        now: u64,
        headers: &mut Vec<u8>,
    ) -> Result<LimitGuard, Refused> {
        let cfg = &self.node.config;
        // Stacked limits usually share their key: hash it once.
        let mut last = None;
        let mut key = |k| cached_key(&mut last, k, req, data, path, (client, app));
        let mut guard = LimitGuard {
            limits: self.clone(),
            held: [(0, 0); MAX_PER_ROUTE],
            n: 0,
        };
        for (j, (c, l)) in cfg.concurrency.iter().zip(&self.concurrency).enumerate() {
            match l.acquire(key(&c.key), now) {
                Ok(Some(entry)) => {
                    guard.held[usize::from(guard.n)] = (j as u8, entry as u32);
                    guard.n += 1;
                }
                Ok(None) => {}
                Err(retry_ns) => {
                    return Err(Refused {
                        kind: ErrorKind::TooManyConcurrent,
                        retry_after_s: secs(retry_ns),
                    });
                }
            }
        }
        // Tokens taken so far, refunded if a later limit refuses.
        let mut taken = [Quota {
            entry: usize::MAX,
            remaining: 0,
            reset_ns: 0,
            retry_ns: 0,
        }; MAX_PER_ROUTE];
        let mut closest: Option<(usize, Quota)> = None;
        for (j, (c, l)) in cfg.rate.iter().zip(&self.rate).enumerate() {
            match l.take(key(&c.key), now) {
                Ok(q) => {
                    taken[j] = q;
                    if q.entry != usize::MAX
                        && closest.is_none_or(|(_, best)| q.remaining < best.remaining)
                    {
                        closest = Some((j, q));
                    }
                }
                Err(q) => {
                    for (k, t) in taken[..j].iter().enumerate() {
                        self.rate[k].refund(t);
                    }
                    if cfg.headers {
                        self.write_headers(headers, j, &q);
                    }
                    return Err(Refused {
                        kind: ErrorKind::RateLimited,
                        retry_after_s: secs(q.retry_ns),
                    });
                }
            }
        }
        if let (true, Some((j, q))) = (cfg.headers, closest) {
            self.write_headers(headers, j, &q);
        }
        Ok(guard)
    }

    fn write_headers(&self, out: &mut Vec<u8>, j: usize, q: &Quota) {
        let c = &self.node.config.rate[j];
        let limit = match c.algorithm {
            LimitAlgorithm::TokenBucket { burst } => burst,
            LimitAlgorithm::SlidingWindow => c.limit,
        };
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b"RateLimit-Limit: ");
        out.extend_from_slice(b.format(limit).as_bytes());
        out.extend_from_slice(b"\r\nRateLimit-Remaining: ");
        out.extend_from_slice(b.format(q.remaining.min(limit)).as_bytes());
        out.extend_from_slice(b"\r\nRateLimit-Reset: ");
        out.extend_from_slice(b.format(q.reset_ns.div_ceil(1_000_000_000)).as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// Sync tick: unspent leases go back to the node tables.
    pub fn tick(&self, now: u64) {
        for l in self.rate.iter().chain(&self.concurrency) {
            l.tick(now);
        }
    }
}

/// [`key_of`], reusing the previous limit's hash when it has the same key.
fn cached_key<'a>(
    last: &mut Option<(&'a LimitKey, u64)>,
    k: &'a LimitKey,
    req: &RequestHead,
    data: &[u8],
    path: &[u8],
    who: (IpAddr, Option<i64>),
) -> u64 {
    match *last {
        Some((lk, h)) if lk == k => h,
        _ => {
            let h = key_of(k, req, data, path, who);
            *last = Some((k, h));
            h
        }
    }
}

/// Whole seconds for Retry-After, at least 1.
fn secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000).max(1)
}

/// The hashed key of a request for a limit (never 0: 0 marks an empty slot). A missing header
/// falls back to the client IP.
/// `path`: as routed (normalized), so `/a` and `/%61` share a key.
/// `who`: the client's address and the calling app (when identified).
pub fn key_of(
    key: &LimitKey,
    req: &RequestHead,
    data: &[u8],
    path: &[u8],
    (client, app): (IpAddr, Option<i64>),
) -> u64 {
    let h = match key {
        LimitKey::ClientIp => hash_ip(client),
        LimitKey::App => match app {
            Some(a) => hash(b'a', &a.to_le_bytes()),
            None => hash_ip(client),
        },
        LimitKey::Route => 1,
        LimitKey::Path => {
            let end = path.iter().position(|&b| b == b'?').unwrap_or(path.len());
            hash(b'p', &path[..end])
        }
        LimitKey::Header(name) => req
            .headers
            .iter()
            .find(|h| h.name.of(data).eq_ignore_ascii_case(name.as_bytes()))
            .map_or_else(
                || hash_ip(client),
                |h| hash(b'h', trim_ows(h.value.of(data))),
            ),
    };
    h.max(1)
}

fn hash_ip(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => hash(b'4', &v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hash(b'4', &v4.octets()),
            None => hash(b'6', &v6.octets()),
        },
    }
}

/// Keys are hashed with a per-process random seed so clients cannot aim collisions at a key.
fn hash(tag: u8, bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SEED: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    let mut h = SEED
        .get_or_init(foldhash::fast::RandomState::default)
        .build_hasher();
    h.write_u8(tag);
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests;
