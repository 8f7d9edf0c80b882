//! The compiled catalog of managed services: what the auth and access stages read to decide, with
//! no store, no lock and no allocation, who is calling and whether they may.
//!
//! The control plane ([`crate::control`]) builds it from the store and publishes it inside the
//! snapshot; shards read it. It is split so that a single change rebuilds only the part it touches:
//!
//! - [`Services`]: one entry per managed service (state, tenant, pre-rendered deprecation headers)
//!   and which route belongs to which; rebuilt when a service changes, together with the routes.
//! - [`KeyIndex`]: API key hash → app, in [`SHARDS`] independently shared parts; adding or revoking
//!   a key copies one part (1/256 of the keys), not the index.
//! - [`SubIndex`]: (app, service) → live subscription, sharded the same way.
//!
//! Every part is behind an `Arc`, so a new catalog that changes one part shares the others with the
//! one before (the control plane changes a part with `Arc::make_mut`, which copies it only while a
//! published snapshot still holds it).

pub mod basic;
pub mod hmac;
pub mod jwt;
mod keys;
mod subs;

use std::collections::HashMap;
use std::sync::Arc;

use crate::limit::NodeRouteLimits;

pub use keys::{ApiKey, KeyEntry, KeyHash, KeyIndex, hash_key, looks_like_key};
pub use subs::{SubEntry, SubIndex, SubState};

/// Number of independently shared parts of the key and subscription indexes.
pub const SHARDS: usize = 256;

/// A managed service's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Only the owning tenant's apps may call it (for testing); others get 404.
    Draft,
    Published,
    /// Still served; responses carry `Deprecation`, `Sunset` and `Link`.
    Deprecated,
    /// 410 `service_retired`.
    Retired,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Draft => "draft",
            Lifecycle::Published => "published",
            Lifecycle::Deprecated => "deprecated",
            Lifecycle::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Lifecycle> {
        Some(match s {
            "draft" => Lifecycle::Draft,
            "published" => Lifecycle::Published,
            "deprecated" => Lifecycle::Deprecated,
            "retired" => Lifecycle::Retired,
            _ => return None,
        })
    }
}

/// What the data plane knows of one managed service.
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    /// The store's number for the service (stable across rebuilds).
    pub seq: i64,
    pub id: Box<str>,
    pub tenant_seq: i64,
    pub tenant_id: Box<str>,
    pub state: Lifecycle,
    /// The credential kinds it accepts.
    pub accepts: Accepts,
    /// Response header lines added while deprecated (`Deprecation`, `Sunset`, `Link`), CRLF-ended.
    pub response_headers: Box<[u8]>,
}

/// Credential kinds a service accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepts {
    pub api_key: bool,
    pub jwt: bool,
    pub basic: bool,
    pub hmac: bool,
}

/// The calling app, as a credential resolves to it.
#[derive(Debug)]
pub struct AppEntry {
    pub seq: i64,
    pub id: Box<str>,
    pub tenant_seq: i64,
    pub tenant_id: Box<str>,
    /// Its metric series slot (`metrics.per_app`; see [`crate::observe::metrics::AppSlots`]).
    pub series: u32,
}

/// The managed services and which route of the snapshot's table belongs to which.
#[derive(Debug, Default)]
pub struct Services {
    pub entries: Vec<ServiceEntry>,
    /// By route index of the snapshot's config: the service's index in `entries`, `None` for the
    /// config file's own routes.
    pub by_route: Vec<Option<u32>>,
}

impl Services {
    /// The service a route belongs to, if it is a managed one.
    #[inline]
    pub fn of_route(&self, route: usize) -> Option<&ServiceEntry> {
        let i = (*self.by_route.get(route)?)?;
        self.entries.get(i as usize)
    }
}

/// The compiled catalog (see the module docs).
#[derive(Clone, Default)]
pub struct Catalog {
    pub services: Arc<Services>,
    pub keys: KeyIndex,
    pub subs: SubIndex,
    /// Quota tables (node-global rate limits keyed by app), one per distinct quota; a live
    /// subscription names its table ([`SubEntry::quota`]).
    pub quotas: Arc<Vec<Arc<NodeRouteLimits>>>,
    /// JWT issuers and their keys.
    pub jwt: Arc<jwt::JwtIndex>,
    /// Basic credentials by username.
    pub basic: Arc<basic::BasicIndex>,
    /// HMAC signing credentials by access key, and the node's signatures seen (one table for the
    /// node's life: every catalog shares it).
    pub hmac: Arc<hmac::HmacIndex>,
    pub replays: Arc<hmac::Replays>,
    /// By app series slot: the app's id and its tenant's (for the metrics endpoint).
    pub app_series: Arc<Vec<(Box<str>, Box<str>)>>,
    /// AI limits of apps and tenants, with what they spent (node-global).
    pub ai: Arc<AiBudgets>,
}

/// The AI budgets of the apps and tenants that have AI limits, by store sequence number. A
/// budget is kept (with what it spent) across catalog changes while its limits stay the same.
#[derive(Debug, Default)]
pub struct AiBudgets {
    pub apps: HashMap<i64, Arc<crate::limit::budget::Budget>>,
    pub tenants: HashMap<i64, Arc<crate::limit::budget::Budget>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("services", &self.services.entries.len())
            .field("keys", &self.keys.len())
            .field("subs", &self.subs.len())
            .field("quotas", &self.quotas.len())
            .field("jwt_issuers", &self.jwt.len())
            .finish()
    }
}

impl Catalog {
    /// A catalog with nothing managed: every route is the config file's.
    pub fn empty() -> Catalog {
        Catalog::default()
    }
}

/// Spreads a 64-bit number over the shards (Fibonacci hashing).
#[inline]
pub(crate) fn shard_of(x: u64) -> usize {
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}
