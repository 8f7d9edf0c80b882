//! An immutable, validated view of the config that shards serve from, built off the hot path (at
//! start and on reload) and shared as `Arc<Snapshot>`. Shards swap to a new snapshot at their next
//! tick; requests in flight keep the one they started with.

use std::rc::Rc;
use std::sync::Arc;

use crate::config::{Config, ConfigError, RouteAction};
use crate::http::respond::RenderedStatic;
use crate::route::RouteTable;
use crate::upstream::Upstream;

pub struct Snapshot {
    pub config: Config,
    pub routes: RouteTable,
    /// Pre-rendered static responses, by route index.
    pub statics: Vec<Option<RenderedStatic>>,
    pub generation: u64,
}

impl Snapshot {
    pub fn build(config: Config, generation: u64) -> Result<Snapshot, ConfigError> {
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
            .map(|u| {
                prev.and_then(|p| p.upstreams.iter().find(|old| old.config == *u))
                    .cloned()
                    .unwrap_or_else(|| Upstream::new(u))
            })
            .collect();
        ShardState { snap, upstreams }
    }
}
