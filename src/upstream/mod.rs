//! Upstreams as a shard sees them: targets with their keep-alive pools and load-balancer state, all
//! shard-local (`Rc`/`Cell`, never locked).
//!
//! [`Upstream::checkout`] picks a target and lends a connection: an idle pooled one when there is
//! one, else a new one (bounded by `max_connections`, waiting up to `connect_timeout` for a free
//! slot). A failed connect moves on to another target once, since nothing was sent yet.
//!
//! Targets leave rotation when health checks fail ([`health`]) or passive outlier detection ejects
//! them ([`outlier`]). Upstream objects survive a config reload when their config is unchanged, so
//! their pools stay warm.

mod balance;
pub mod breaker;
mod connect;
pub mod hash_ring;
pub mod health;
pub mod outlier;
pub mod pool;
pub mod retry;
pub mod rng;
mod streak;

use std::cell::Cell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

pub use balance::{Balancer, request_key};
pub use breaker::Breaker;
pub use health::Health;
pub use outlier::Outlier;
pub use pool::{Lease, Pool, SlotGuard};

use crate::config::UpstreamConfig;
use crate::error::{ErrorKind, GatewayError};
use crate::limit::shard::ShardLimit;
use crate::runtime::watchdog::{Watch, now_ms};

/// One target of an upstream, on one shard.
pub struct Target {
    /// Position in the upstream's target list.
    pub index: usize,
    pub addr: SocketAddr,
    /// As written in the config; sent as Host when the client sent none.
    pub name: String,
    pub weight: u32,
    pub pool: Pool,
    /// Requests currently using a connection to this target (least-in-flight balancing).
    pub in_flight: Cell<u32>,
    /// Outcomes since the last tick, for outlier ejection.
    pub outcomes: outlier::LocalOutcomes,
    /// For a TLS upstream: the name sent as SNI and verified (the `sni` setting, else the host as
    /// written).
    pub tls_name: Option<rustls_pki_types::ServerName<'static>>,
}

/// One upstream, on one shard.
pub struct Upstream {
    pub config: UpstreamConfig,
    pub targets: Vec<Rc<Target>>,
    /// For a TLS upstream: this shard's client config (a copy of the config's, with a session
    /// store of its own, so resuming a session never touches another shard's).
    tls: Option<Arc<rustls::ClientConfig>>,
    balancer: Balancer,
    /// Published by the health checker when the upstream has health checks.
    health: Option<Arc<Health>>,
    /// Retry budget of this upstream on this shard.
    pub retry_budget: retry::RetryBudget,
    /// Node-global circuit breaker, when configured.
    pub breaker: Option<Arc<Breaker>>,
    /// Node-global outlier ejection state, when configured.
    pub outlier: Option<Arc<Outlier>>,
    /// This shard's breaker counts since its last tick.
    local: breaker::LocalCounts,
    /// This shard's leases of the node-wide `max_in_flight` slots.
    in_flight_cap: Option<ShardLimit>,
    /// Requests on this shard waiting for a connection slot, and this shard's share of
    /// `max_pending` (`u32::MAX` = unlimited).
    pending: Cell<u32>,
    pending_cap: u32,
}

/// How a try ended, for the breaker and outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Connect error, timeout or reset: no usable response.
    Failed,
    /// A response head with this status.
    Status(u16),
}

/// A request admitted by the breaker and the concurrency cap. Dropping it ends the request.
pub struct Permit {
    up: Rc<Upstream>,
    probe: Cell<bool>,
    /// The `max_in_flight` slot this request holds.
    slot: Option<usize>,
}

impl Permit {
    /// Start time of a try, for slow-call accounting (0, and no clock read, without a breaker).
    pub fn try_started(&self) -> u64 {
        if self.up.breaker.is_some() {
            now_ms()
        } else {
            0
        }
    }

    /// Counts one try's outcome for the breaker and, when the target is known, outlier detection;
    /// `started` from [`Permit::try_started`].
    pub fn record(&self, target: Option<usize>, outcome: Outcome, started: u64) {
        if self.up.outlier.is_some() {
            if let Some(t) = target.and_then(|i| self.up.targets.get(i)) {
                t.outcomes
                    .record(matches!(outcome, Outcome::Failed | Outcome::Status(500..)));
            }
        }
        let Some(b) = self.up.breaker.as_deref() else {
            return;
        };
        let failed = match outcome {
            Outcome::Failed => true,
            Outcome::Status(s) => b.config.failure_statuses.contains(&s),
        };
        let now = now_ms();
        let slow = now.saturating_sub(started) >= b.config.slow_call_threshold.as_millis() as u64;
        self.up.local.record(failed, slow);
        if self.probe.replace(false) {
            b.probe_result(!failed, now);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let (Some(cap), Some(slot)) = (&self.up.in_flight_cap, self.slot) {
            cap.release(slot);
        }
        // A probe that ended without an upstream outcome (the client left, a bad request body)
        // gives its permit back so the breaker does not wait for it forever.
        if self.probe.get() {
            b_release_probe(self.up.breaker.as_deref());
        }
    }
}

/// Why a request was refused before reaching the upstream.
pub struct Refusal {
    pub error: GatewayError,
    pub retry_after_ms: u64,
}

impl Upstream {
    pub fn new(
        config: &UpstreamConfig,
        health: Option<Arc<Health>>,
        breaker: Option<Arc<Breaker>>,
        outlier: Option<Arc<Outlier>>,
        shards: usize,
    ) -> Rc<Upstream> {
        let targets = config
            .targets
            .iter()
            .enumerate()
            .map(|(index, t)| {
                Rc::new(Target {
                    index,
                    addr: t.addr,
                    name: t.name.clone(),
                    weight: t.weight,
                    pool: Pool::new(
                        config.max_idle,
                        config.max_connections,
                        config.idle_timeout.as_millis() as u64,
                    ),
                    in_flight: Cell::new(0),
                    outcomes: outlier::LocalOutcomes::default(),
                    tls_name: config.tls.as_ref().and_then(|tls| {
                        let host = tls.sni.clone().unwrap_or_else(|| host_of(&t.name));
                        rustls_pki_types::ServerName::try_from(host).ok()
                    }),
                })
            })
            .collect::<Vec<_>>();
        let balancer = Balancer::new(config.balance.clone(), &targets);
        let tls = config.tls.as_ref().map(|t| {
            let mut c = (*t.client).clone();
            c.resumption = rustls::client::Resumption::in_memory_sessions(256);
            Arc::new(c)
        });
        Rc::new(Upstream {
            config: config.clone(),
            targets,
            tls,
            balancer,
            health,
            retry_budget: retry::RetryBudget::default(),
            in_flight_cap: breaker
                .as_ref()
                .and_then(|b| b.in_flight.clone())
                .map(|node| ShardLimit::new(node, shards)),
            pending: Cell::new(0),
            pending_cap: config
                .breaker
                .as_ref()
                .and_then(|b| b.max_pending)
                .map_or(u32::MAX, |p| p.div_ceil(shards.max(1) as u32)),
            breaker,
            outlier,
            local: breaker::LocalCounts::default(),
        })
    }

    /// Breaker and concurrency-cap check for one request (a relaxed load when closed).
    pub fn admit(self: &Rc<Self>) -> Result<Permit, Refusal> {
        let Some(b) = self.breaker.as_deref() else {
            return Ok(Permit {
                up: self.clone(),
                probe: Cell::new(false),
                slot: None,
            });
        };
        let now = now_ms();
        let probe = match b.admit(now) {
            breaker::Admit::Yes { probe } => probe,
            breaker::Admit::No { retry_after_ms } => {
                return Err(Refusal {
                    error: GatewayError::new(ErrorKind::CircuitOpen),
                    retry_after_ms,
                });
            }
        };
        // One key: the upstream. Slots are leased node-wide like rate-limit tokens.
        let slot = match self
            .in_flight_cap
            .as_ref()
            .map(|c| c.acquire(1, now * 1_000_000))
        {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(slot))) => Some(slot),
            Some(Err(_)) => {
                if probe {
                    b.release_probe();
                }
                return Err(Refusal {
                    error: GatewayError::new(ErrorKind::ConcurrencyLimit),
                    retry_after_ms: 1000,
                });
            }
        };
        Ok(Permit {
            up: self.clone(),
            probe: Cell::new(probe),
            slot,
        })
    }

    /// What consistent hashing needs from the request (`None` for other balancers).
    pub fn hash_key(&self) -> Option<&crate::config::HashKey> {
        self.balancer.hash_key()
    }

    /// Lends a connection to a target chosen by the balancer; `key` is the request's hash for
    /// consistent hashing, `exclude` a target that just failed. Unhealthy targets are left out; when
    /// all are unhealthy the upstream's `fail_open` decides between using them anyway and 503.
    /// Without a retry policy a failed connect moves on to one other target here; with one, the
    /// policy decides. The error carries the target that failed.
    pub async fn checkout(
        &self,
        watch: &Watch,
        key: Option<u64>,
        exclude: Option<usize>,
    ) -> Result<Lease, (GatewayError, Option<usize>)> {
        let health = match self.health.as_deref() {
            Some(h) if !h.any_healthy() && h.fail_open => None,
            Some(h) if !h.any_healthy() => {
                return Err((GatewayError::new(ErrorKind::NoHealthyUpstream), None));
            }
            other => other,
        };
        let ejected = self.outlier.as_deref().filter(|o| o.any_ejected());
        let now = if ejected.is_some() { now_ms() } else { 0 };
        let down = |i: usize| {
            health.is_some_and(|h| !h.is_healthy(i))
                || ejected.is_some_and(|o| o.is_ejected(i, now))
        };
        let first = self
            .balancer
            .pick(&self.targets, key, &|i| Some(i) == exclude || down(i));
        match self.lease(&self.targets[first], watch).await {
            Ok(l) => Ok(l),
            Err(e)
                if self.config.retry.is_none()
                    && self.targets.len() > 1
                    && e.kind == ErrorKind::UpstreamConnect =>
            {
                let addr = self.targets[first].addr;
                if self.outlier.is_some() {
                    self.targets[first].outcomes.record(true);
                }
                tracing::warn!(upstream = %self.config.name, target = %addr, error = %e, "connect failed, trying another target");
                let next = self
                    .balancer
                    .pick(&self.targets, key, &|i| i == first || down(i));
                self.lease(&self.targets[next], watch)
                    .await
                    .map_err(|e| (e, Some(next)))
            }
            Err(e) => Err((e, Some(first))),
        }
    }

    /// A connection to `target`: pooled, new, or (at `max_connections`) the first one freed.
    async fn lease(&self, target: &Rc<Target>, watch: &Watch) -> Result<Lease, GatewayError> {
        // Set when the pool is first found saturated: the common path (an idle pooled connection)
        // reads no clock.
        let mut deadline = None;
        loop {
            if let Some(s) = target.pool.take_idle() {
                target.pool.reused.set(target.pool.reused.get() + 1);
                return Ok(Lease::new(s, target.clone(), true));
            }
            if target.pool.try_reserve() {
                // The slot is held by a guard while the connect is awaited: a request future
                // dropped mid-connect (its connection task ended) gives it back.
                let slot = SlotGuard::new(target.clone());
                let tls = self.tls.as_ref().zip(target.tls_name.as_ref());
                if self.tls.is_some() && tls.is_none() {
                    return Err(GatewayError::new(ErrorKind::UpstreamConnect)
                        .context("no usable TLS server name for the target")
                        .retry(crate::error::Retry::Safe));
                }
                let s =
                    connect::connect_stream(target.addr, watch, self.config.connect_timeout, tls)
                        .await?;
                slot.forget();
                target.pool.connected.set(target.pool.connected.get() + 1);
                return Ok(Lease::new(s, target.clone(), false));
            }
            // Saturated: wait for a returned connection or a free slot, until the connect deadline,
            // unless `max_pending` requests are waiting already.
            let now = std::time::Instant::now();
            let left = deadline
                .get_or_insert(now + self.config.connect_timeout)
                .saturating_duration_since(now);
            if left.is_zero() {
                return Err(GatewayError::new(ErrorKind::UpstreamSaturated));
            }
            let waiting = self.pending.get();
            if waiting >= self.pending_cap {
                return Err(GatewayError::new(ErrorKind::PendingLimit));
            }
            let _pending = Pending::enter(&self.pending);
            wait_for_slot(&target.pool, left).await;
        }
    }

    /// Tick: pool expiry and dead-connection checks, breaker counts published and rules evaluated.
    pub fn maintain(&self, now: u64) {
        if let Some(b) = self.breaker.as_deref() {
            b.tick(&self.local, now);
        }
        if let Some(cap) = &self.in_flight_cap {
            cap.tick(now * 1_000_000);
        }
        for t in &self.targets {
            t.pool.maintain(now);
            if let Some(o) = self.outlier.as_deref() {
                o.tick(t.index, &t.outcomes, &t.addr, now);
            }
        }
    }

    /// Adds what this upstream's pools and retry budget counted since the last tick to its metric
    /// series. Returns its idle and open connections (the shard sets the gauges per series, which
    /// upstreams may share).
    pub fn publish_metrics(&self, m: &crate::observe::metrics::UpstreamSeries) -> (u64, u64) {
        use crate::observe::metrics::add;
        let (mut idle, mut open) = (0, 0);
        for t in &self.targets {
            idle += t.pool.idle() as u64;
            open += t.pool.open() as u64;
            add(&m.reused, t.pool.reused.take());
            add(&m.connected, t.pool.connected.take());
        }
        add(&m.retries_denied, self.retry_budget.denied.take());
        (idle, open)
    }

    /// Requests on this shard waiting for a connection slot.
    pub fn pending(&self) -> u32 {
        self.pending.get()
    }

    /// Closes idle pooled connections (shutdown).
    pub fn close_idle(&self) {
        for t in &self.targets {
            t.pool.clear();
        }
    }
}

/// The host part of a target as written (`api.example.com:443` → `api.example.com`, `[::1]:443` →
/// `::1`).
pub(crate) fn host_of(name: &str) -> String {
    let host = match name.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => name,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// A request counted in an upstream's `pending` while it waits for a slot; leaves the count when
/// dropped, also when the request future is dropped mid-wait.
struct Pending<'a>(&'a Cell<u32>);

impl<'a> Pending<'a> {
    fn enter(count: &'a Cell<u32>) -> Pending<'a> {
        count.set(count.get() + 1);
        Pending(count)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// A probe permit taken but not used (the request was refused by the concurrency cap) goes back.
fn b_release_probe(b: Option<&Breaker>) {
    if let Some(b) = b {
        b.release_probe();
    }
}

/// Waits until the pool signals a free slot or returned connection, or `timeout` passes. This is the
/// saturated path only, so a runtime timer is fine here. The timer is boxed: monoio's timer entry is
/// 768 bytes with 128-byte alignment, and held inline it would make every future that can reach
/// this one (the whole request path) 128-byte aligned, which sends the per-request allocation of
/// the request future down mimalloc's slow over-aligned path.
async fn wait_for_slot(pool: &Pool, timeout: Duration) {
    let mut registered = false;
    let wait = poll_fn(|cx| {
        if registered {
            return Poll::Ready(());
        }
        registered = true;
        pool.wait(cx.waker());
        Poll::Pending
    });
    let _ = Box::pin(monoio::time::timeout(timeout, wait)).await;
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::runtime::watchdog::Watchdog;

    /// An upstream of one target at `addr`, from the config text of a real gateway.
    fn upstream(addr: SocketAddr, extra: &str) -> Rc<Upstream> {
        let text = format!(
            "[upstreams.be]\ntargets = [\"{addr}\"]\nconnect_timeout = \"5s\"\n{extra}\n\
             [[routes]]\nupstream = \"be\"\n"
        );
        let config = crate::Config::from_toml(&text).unwrap();
        Upstream::new(&config.upstreams[0], None, None, None, 1)
    }

    /// Polls `fut` once; it must still be waiting.
    fn poll_once(fut: impl Future) {
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Pending));
    }

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
    }

    /// A listener whose accept queue is full: a further connect waits (the SYN is dropped).
    fn unanswering_listener() -> (socket2::Socket, Vec<std::net::TcpStream>, SocketAddr) {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        s.listen(0).unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        let mut filled = Vec::new();
        for _ in 0..4 {
            if let Ok(c) =
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
            {
                filled.push(c);
            }
        }
        (s, filled, addr)
    }

    #[test]
    fn a_request_dropped_mid_connect_gives_its_slot_back() {
        runtime().block_on(async {
            let (_l, _filled, addr) = unanswering_listener();
            let up = upstream(addr, "max_connections = 1");
            let dog = Rc::new(Watchdog::default());
            let guard = dog.register(-1);
            poll_once(up.lease(&up.targets[0], &guard.watch));
            assert_eq!(up.targets[0].pool.open(), 0, "the reserved slot leaked");
        });
    }

    #[test]
    fn a_request_dropped_while_waiting_for_a_slot_leaves_the_pending_count() {
        runtime().block_on(async {
            let (_l, _filled, addr) = unanswering_listener();
            let up = upstream(addr, "max_connections = 1");
            assert!(up.targets[0].pool.try_reserve());
            let dog = Rc::new(Watchdog::default());
            let guard = dog.register(-1);
            poll_once(up.lease(&up.targets[0], &guard.watch));
            assert_eq!(up.pending(), 0, "the pending count leaked");
        });
    }
}
