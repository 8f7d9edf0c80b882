//! An immutable, validated view of the config that shards serve from, built off the hot path (at
//! start and on reload) and shared as `Arc<Snapshot>`. Shards swap to a new snapshot at their next
//! tick; requests in flight keep the one they started with.
//!
//! A snapshot is the config (the file's routes and upstreams composed with the managed services')
//! plus the compiled [`Catalog`]. When only the catalog changed (a key, a subscription), the new
//! snapshot shares the config and everything derived from it with the one it replaces.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::config::{Config, ConfigError, RouteAction, UpstreamConfig};
use crate::http::respond::RenderedStatic;
use crate::limit::NodeRouteLimits;
use crate::route::RouteTable;
use crate::upstream::breaker::Breaker;
use crate::upstream::health::Health;
use crate::upstream::outlier::Outlier;

pub struct Snapshot {
    pub config: Arc<Config>,
    /// Managed services, credentials and subscriptions (empty without a control plane).
    pub catalog: Catalog,
    /// The config's route table (compiled once, when the config was validated).
    pub routes: Arc<RouteTable>,
    /// Pre-rendered static responses, by route index.
    pub statics: Arc<[Option<RenderedStatic>]>,
    /// Pre-rendered `fallback_respond` responses (served while the breaker is open), by route.
    pub fallbacks: Arc<[Option<RenderedStatic>]>,
    /// Health state by upstream index (for upstreams with health checks), shared with the checker.
    pub health: Arc<[Option<Arc<Health>>]>,
    /// Circuit breakers by upstream index (node-global, shared by every shard).
    pub breakers: Arc<[Option<Arc<Breaker>>]>,
    /// Outlier ejection state by upstream index (node-global).
    pub outliers: Arc<[Option<Arc<Outlier>>]>,
    /// Rate and concurrency limit tables by route index (node-global).
    pub limits: Arc<[Option<Arc<NodeRouteLimits>>]>,
    /// AI routes' own limits (`ai.limits`) by route index (node-global).
    pub ai_budgets: Arc<[Option<Arc<crate::limit::budget::Budget>>]>,
    pub generation: u64,
    /// Metric series slots of the routes and upstreams (set by the publisher).
    pub series: Arc<crate::observe::metrics::Series>,
}

/// Node-global per-upstream state for a new config: reused from `prev` for each upstream whose
/// config is unchanged (so a reload neither resets health nor closes an open breaker), else made.
fn carry<T>(
    config: &Config,
    prev: Option<&Snapshot>,
    field: impl Fn(&Snapshot) -> &[Option<Arc<T>>],
    make: impl Fn(&UpstreamConfig) -> Option<T>,
) -> Arc<[Option<Arc<T>>]> {
    // By name, so that thousands of managed upstreams carry over in linear time.
    let by_name: std::collections::HashMap<&str, usize> = prev
        .map(|p| {
            p.config
                .upstreams
                .iter()
                .enumerate()
                .map(|(i, u)| (u.name.as_str(), i))
                .collect()
        })
        .unwrap_or_default();
    config
        .upstreams
        .iter()
        .map(|u| {
            let old = prev.and_then(|p| {
                let i = *by_name.get(u.name.as_str())?;
                if p.config.upstreams[i] != *u {
                    return None;
                }
                field(p).get(i).cloned().flatten()
            });
            old.or_else(|| make(u).map(Arc::new))
        })
        .collect()
}

impl Snapshot {
    /// Builds a snapshot; node-global state of upstreams unchanged since `prev` carries over.
    ///
    /// The config is validated already (its route table compiled with it), so nothing here fails
    /// today; the error is the reload path's, kept for parts that can only fail when built.
    pub fn build(
        config: Arc<Config>,
        catalog: Catalog,
        generation: u64,
        prev: Option<&Snapshot>,
    ) -> Result<Snapshot, ConfigError> {
        if let Some(p) = prev.filter(|p| Arc::ptr_eq(&p.config, &config)) {
            return Ok(Snapshot {
                config,
                catalog,
                routes: p.routes.clone(),
                statics: p.statics.clone(),
                fallbacks: p.fallbacks.clone(),
                health: p.health.clone(),
                breakers: p.breakers.clone(),
                outliers: p.outliers.clone(),
                limits: p.limits.clone(),
                ai_budgets: p.ai_budgets.clone(),
                generation,
                series: p.series.clone(),
            });
        }
        let health = carry(
            &config,
            prev,
            |p| &p.health,
            |u| {
                u.health_check
                    .as_ref()
                    .map(|h| Health::new(u.targets.len(), h.fail_open))
            },
        );
        let breakers = carry(
            &config,
            prev,
            |p| &p.breakers,
            |u| u.breaker.clone().map(|b| Breaker::new(&u.name, b)),
        );
        let outliers = carry(
            &config,
            prev,
            |p| &p.outliers,
            |u| {
                u.outlier
                    .clone()
                    .map(|o| Outlier::new(&u.name, o, u.targets.len()))
            },
        );
        // A route keeps its limit tables (and what callers have spent) across a reload while its
        // name and limits are unchanged.
        let route_by_name: std::collections::HashMap<&str, usize> = prev
            .map(|p| {
                p.config
                    .routes
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.name.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        let limits = config
            .routes
            .iter()
            .map(|r| {
                if r.limits.is_empty() {
                    return None;
                }
                let old = prev.and_then(|p| {
                    let i = *route_by_name.get(r.name.as_str())?;
                    p.limits[i].clone().filter(|l| l.config == r.limits)
                });
                Some(old.unwrap_or_else(|| Arc::new(NodeRouteLimits::new(&r.limits))))
            })
            .collect();
        // Likewise an AI route's budget (what it spent this minute, day and month).
        let ai_budgets = config
            .routes
            .iter()
            .map(|r| {
                let RouteAction::Ai(a) = &r.action else {
                    return None;
                };
                let l = a.limits?;
                let old = prev.and_then(|p| {
                    let i = *route_by_name.get(r.name.as_str())?;
                    p.ai_budgets.get(i)?.clone()
                });
                Some(match old {
                    Some(b) if b.limits == l => b,
                    // New limits keep what the old ones counted.
                    Some(b) => Arc::new(b.relimited(l)),
                    None => Arc::new(crate::limit::budget::Budget::new(l)),
                })
            })
            .collect();
        let routes = config.route_table().clone();
        let statics = config
            .routes
            .iter()
            .map(|r| match &r.action {
                RouteAction::Respond(s) => Some(RenderedStatic::new(s)),
                RouteAction::Proxy(_) | RouteAction::Ai(_) => None,
            })
            .collect();
        let fallbacks = config
            .routes
            .iter()
            .map(|r| match &r.action {
                RouteAction::Proxy(p) => p.fallback_respond.as_ref().map(RenderedStatic::new),
                RouteAction::Respond(_) | RouteAction::Ai(_) => None,
            })
            .collect();
        Ok(Snapshot {
            config,
            catalog,
            routes,
            statics,
            fallbacks,
            health,
            breakers,
            outliers,
            limits,
            ai_budgets,
            generation,
            series: Arc::default(),
        })
    }
}
