//! An immutable, validated view of the config that shards serve from, built off the hot path (at
//! start and on reload) and shared as `Arc<Snapshot>`. Shards swap to a new snapshot at their next
//! tick; requests in flight keep the one they started with.

use std::rc::Rc;
use std::sync::Arc;

use crate::config::{Config, ConfigError, RouteAction};
use crate::http::respond::RenderedStatic;
use crate::route::RouteTable;
use crate::upstream::Upstream;
use crate::upstream::health::{Health, health_for};

pub struct Snapshot {
    pub config: Config,
    pub routes: RouteTable,
    /// Pre-rendered static responses, by route index.
    pub statics: Vec<Option<RenderedStatic>>,
    /// Health state by upstream index (for upstreams with health checks), shared with the checker.
    pub health: Vec<Option<Arc<Health>>>,
    pub generation: u64,
}

impl Snapshot {
    /// Builds a snapshot; health state of upstreams unchanged since `prev` carries over.
    pub fn build(
        config: Config,
        generation: u64,
        prev: Option<&Snapshot>,
    ) -> Result<Snapshot, ConfigError> {
        let carried: Vec<_> = prev
            .map(|p| {
                p.config
                    .upstreams
                    .iter()
                    .cloned()
                    .zip(p.health.iter().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let health = health_for(&config.upstreams, &carried);
        let routes = RouteTable::build(&config)?;
        let statics = config
            .routes
            .iter()
            .map(|r| match &r.action {
                RouteAction::Respond(s) => Some(RenderedStatic::new(s)),
                RouteAction::Proxy(_) => None,
            })
            .collect();
        Ok(Snapshot {
            config,
            routes,
            statics,
            health,
            generation,
        })
    }
}

/// What one shard serves from: a snapshot plus the shard's runtime objects for its upstreams.
pub struct ShardState {
    pub snap: Arc<Snapshot>,
    /// By upstream index of `snap.config.upstreams`.
    pub upstreams: Vec<Rc<Upstream>>,
}

impl ShardState {
    /// Builds the shard state for `snap`, keeping the upstream objects (and their warm pools and
    /// balancer positions) of `prev` whose config did not change.
    pub fn new(snap: Arc<Snapshot>, prev: Option<&ShardState>) -> ShardState {
        let upstreams = snap
            .config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                prev.and_then(|p| p.upstreams.iter().find(|old| old.config == *u))
                    .cloned()
                    .unwrap_or_else(|| Upstream::new(u, snap.health.get(i).cloned().flatten()))
            })
            .collect();
        ShardState { snap, upstreams }
    }
}
