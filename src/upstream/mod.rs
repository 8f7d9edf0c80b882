//! Upstreams as a shard sees them: targets with their keep-alive pools and load-balancer state, all
//! shard-local (`Rc`/`Cell`, never locked).
//!
//! [`Upstream::checkout`] picks a target and lends a connection: an idle pooled one when there is
//! one, else a new one (bounded by `max_connections`, waiting up to `connect_timeout` for a free
//! slot). A failed connect moves on to another target once, since nothing was sent yet.
//!
//! Upstream objects survive a config reload when their config is unchanged, so their pools stay warm.

mod balance;
mod connect;
pub mod hash_ring;
pub mod health;
pub mod pool;
pub mod retry;

use std::cell::Cell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

pub use balance::{Balancer, request_key};
pub use health::Health;
pub use pool::{Lease, Pool, SlotGuard};

use crate::config::UpstreamConfig;
use crate::error::{ErrorKind, GatewayError};
use crate::runtime::watchdog::Watch;

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
}

/// One upstream, on one shard.
pub struct Upstream {
    pub config: UpstreamConfig,
    pub targets: Vec<Rc<Target>>,
    balancer: Balancer,
    /// Published by the health checker when the upstream has health checks.
    health: Option<Arc<Health>>,
    /// Retry budget of this upstream on this shard.
    pub retry_budget: retry::RetryBudget,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig, health: Option<Arc<Health>>) -> Rc<Upstream> {
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
                })
            })
            .collect::<Vec<_>>();
        let balancer = Balancer::new(config.balance.clone(), &targets);
        Rc::new(Upstream {
            config: config.clone(),
            targets,
            balancer,
            health,
            retry_budget: retry::RetryBudget::default(),
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
        let down = |i: usize| health.is_some_and(|h| !h.is_healthy(i));
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
        let deadline = std::time::Instant::now() + self.config.connect_timeout;
        loop {
            if let Some(s) = target.pool.take_idle() {
                return Ok(Lease::new(s, target.clone(), true));
            }
            if target.pool.try_reserve() {
                return match connect::connect(target.addr, watch, self.config.connect_timeout).await
                {
                    Ok(s) => Ok(Lease::new(s, target.clone(), false)),
                    Err(e) => {
                        target.pool.release_slot();
                        Err(e)
                    }
                };
            }
            // Saturated: wait for a returned connection or a free slot, until the connect deadline.
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(GatewayError::new(ErrorKind::UpstreamSaturated));
            }
            wait_for_slot(&target.pool, left).await;
        }
    }

    /// Tick: pool expiry and dead-connection checks.
    pub fn maintain(&self, now: u64) {
        for t in &self.targets {
            t.pool.maintain(now);
        }
    }

    /// Closes idle pooled connections (shutdown).
    pub fn close_idle(&self) {
        for t in &self.targets {
            t.pool.clear();
        }
    }
}

/// Waits until the pool signals a free slot or returned connection, or `timeout` passes. This is the
/// saturated path only, so a runtime timer is fine here.
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
    let _ = monoio::time::timeout(timeout, wait).await;
}
