//! The control plane's side of the catalog: the managed state in memory (what the store holds,
//! compiled), kept in step with every committed write, and published to the shards.
//!
//! One writer: the admin API holds [`Managed`] behind one async mutex across validate → store write
//! → apply → publish, so the published catalog always follows the store's commit order.
//!
//! Quota tables are shared by the subscriptions with the same quota and counted; one that no live
//! subscription uses is emptied and its slot reused.
//!
//! What a change costs (bounds measured in `perf/RESULTS.md`):
//! - a key or a subscription: one of the index's 256 parts copied, the rest shared; the config and
//!   route table are shared with the previous snapshot;
//! - a service's lifecycle state: the service entries rebuilt (one per service), nothing else;
//! - a service created (new routes and upstream): the config composed and the route table compiled
//!   again; shards keep the pools and balancers of every upstream whose config did not change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::limit::NodeRouteLimits;

use crate::catalog::{
    Accepts, AppEntry, Catalog, KeyEntry, KeyHash, KeyIndex, Lifecycle, ServiceEntry, Services,
    SubEntry, SubIndex, SubState,
};
use crate::config::managed::{
    Managed as Composed, ServiceRoutes, is_fallback as overlaps_allowed, managed_service, overlaps,
};
use crate::config::{
    Config, ConfigError, LimitAlgorithm, LimitKey, RateLimitConfig, RouteLimitsConfig,
};
use crate::gateway::SnapshotPublisher;
use crate::observe::metrics::AppSlots;
use std::time::Duration;

mod ai;
mod credentials;

pub use ai::StoredKey;
use ai::{ai_budgets, seed_budgets, stored_keys, stored_prices};

use super::keyring::Keyring;
use super::model::{App, CredentialRow, Quota, ServiceRow, Subscription};
use super::store::{Store, StoreError};

/// A managed service as the control plane holds it: its row and its validated routes.
struct ManagedService {
    row: ServiceRow,
    parts: ServiceRoutes,
    accepts: Accepts,
}

fn accepts(row: &ServiceRow) -> Accepts {
    let kinds = row.spec().map(|s| s.credentials).unwrap_or_default();
    Accepts {
        api_key: kinds.iter().any(|k| k == "api_key"),
        jwt: kinds.iter().any(|k| k == "jwt"),
        basic: kinds.iter().any(|k| k == "basic"),
        hmac: kinds.iter().any(|k| k == "hmac"),
    }
}

/// A quota table's use: its quota, the live subscriptions using it, and since when none has
/// (unix ms). An unused table keeps its counters for [`QUOTA_KEEP_MS`], so cancelling and
/// subscribing again does not reset a day's budget; after that its slot may be reused.
struct QuotaUse {
    quota: Option<Quota>,
    uses: u32,
    unused_since: Option<i64>,
}

const QUOTA_KEEP_MS: i64 = 86_400_000;

/// A new service composed with the others, waiting for the store to take it.
pub struct Prepared {
    config: Arc<Config>,
    by_route: Vec<Option<u32>>,
    parts: ServiceRoutes,
}

/// The managed state in memory; see the module docs.
pub struct Managed {
    base: Arc<Config>,
    composed: Arc<Config>,
    /// By route index of `composed`: the service's index in the catalog's entries.
    by_route: Vec<Option<u32>>,
    catalog: Catalog,
    /// By store sequence, which is creation order: the order services compose in.
    services: BTreeMap<i64, ManagedService>,
    apps: HashMap<String, Arc<AppEntry>>,
    tenants: HashMap<String, i64>,
    /// Each distinct quota's index in the catalog's quota tables.
    quota_tables: HashMap<Quota, u32>,
    /// Per quota table: its quota and how many live subscriptions use it; tables no one uses are
    /// emptied and their index reused.
    quota_uses: Vec<QuotaUse>,
    /// Live credentials (JWT, basic) by id, and the JWKS documents fetched for JWTs with a URL.
    creds: HashMap<String, CredentialRow>,
    jwks_docs: HashMap<String, Vec<u8>>,
    pub keyring: Arc<Keyring>,
    pub http: reqwest::Client,
    /// `[admin] allow_loopback`.
    pub allow_loopback: bool,
    publisher: SnapshotPublisher,
    /// Metric series slots of the apps (`metrics.per_app`).
    app_slots: AppSlots,
    /// Model provider keys added through the admin API (opened), oldest first.
    ai_keys: Vec<StoredKey>,
    /// Model prices set through the admin API (they override the config file's).
    ai_prices: BTreeMap<String, crate::ai::price::Price>,
    /// The key set each provider was last composed with: kept (with its cooldowns and disabled
    /// keys) while the same keys serve.
    key_sets: HashMap<String, Arc<crate::config::ai::ProviderKeys>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn key_hash(v: &[u8]) -> Option<KeyHash> {
    v.try_into().ok()
}

fn sub_entry(s: &Subscription, quota: Option<u32>) -> Option<SubEntry> {
    let state = match s.state.as_str() {
        "pending" => SubState::Pending,
        "approved" => SubState::Approved,
        _ => return None,
    };
    Some(SubEntry {
        id: s.id.as_str().into(),
        state,
        quota,
    })
}

/// The validated routes of a stored service (as at creation; re-validated at every start). May
/// resolve host names: call it off the async runtime ([`service_parts_blocking`]).
pub fn service_parts(
    row: &ServiceRow,
    http: &crate::config::HttpConfig,
    ai: &crate::config::ai::AiConfig,
    allow_loopback: bool,
) -> Result<ServiceRoutes, ConfigError> {
    let spec = row
        .spec()
        .map_err(|e| ConfigError::invalid("spec", e.to_string()))?;
    let backend = crate::config::managed::ServiceBackend {
        upstream: &spec.upstream,
        ai: spec.ai.as_ref(),
        ai_config: ai,
    };
    managed_service(&row.id, &spec.routes, backend, http, allow_loopback)
}

/// [`service_parts`] on the blocking pool, so that slow DNS stalls neither the admin API nor
/// the writer lock.
pub async fn service_parts_blocking(
    row: ServiceRow,
    http: crate::config::HttpConfig,
    ai: Arc<crate::config::ai::AiConfig>,
    allow_loopback: bool,
) -> Result<ServiceRoutes, ConfigError> {
    tokio::task::spawn_blocking(move || service_parts(&row, &http, &ai, allow_loopback))
        .await
        .map_err(|_| ConfigError::invalid("upstream", "validation failed"))?
}

/// Header lines a deprecated service's responses carry: `Deprecation` (RFC 9745, the time it
/// was deprecated), `Sunset` (RFC 8594) when a retirement date is set, and a `Link` to its
/// documentation.
fn deprecation_headers(row: &ServiceRow) -> Vec<u8> {
    if row.state != "deprecated" {
        return Vec::new();
    }
    let mut out = Vec::new();
    let at = row.deprecated_at.unwrap_or(row.updated_at).max(0) / 1000;
    out.extend_from_slice(format!("deprecation: @{at}\r\n").as_bytes());
    if let Some(s) = row.sunset_at {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(s.max(0) as u64);
        out.extend_from_slice(format!("sunset: {}\r\n", httpdate::fmt_http_date(t)).as_bytes());
    }
    let link = row
        .deprecation_link
        .clone()
        .unwrap_or_else(|| format!("/portal/services/{}", row.id));
    out.extend_from_slice(format!("link: <{link}>; rel=\"deprecation\"\r\n").as_bytes());
    out
}

impl Managed {
    /// Loads everything from the store, composes it with `base` and publishes it. A stored service
    /// that no longer validates (a target's name stopped resolving, say) is left out and logged:
    /// its routes answer 404 until it is fixed, and the rest is served.
    pub async fn load(
        store: &Store,
        base: Arc<Config>,
        publisher: SnapshotPublisher,
        keyring: Arc<Keyring>,
    ) -> Result<Managed, CatalogError> {
        let tenants: HashMap<String, i64> = store
            .all_tenants()
            .await?
            .into_iter()
            .map(|t| (t.id, t.seq))
            .collect();
        let mut apps = HashMap::new();
        let mut app_slots = crate::observe::metrics::app_slots(base.metrics.max_series);
        for a in store.all_apps().await? {
            let entry = app_entry(&a, &tenants, &mut app_slots);
            apps.insert(a.id, entry);
        }
        let mut services = BTreeMap::new();
        for row in store.all_services().await? {
            let allow = base.admin.as_ref().is_some_and(|a| a.allow_loopback);
            match service_parts_blocking(row.clone(), base.http.clone(), base.ai.clone(), allow)
                .await
            {
                Ok(parts) => {
                    let accepts = accepts(&row);
                    services.insert(
                        row.seq,
                        ManagedService {
                            row,
                            parts,
                            accepts,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(service = %row.id, name = %row.name, error = %e, "stored service does not validate; not served")
                }
            }
        }
        let keys = store.live_keys().await?;
        let keys = KeyIndex::from_entries(keys.into_iter().filter_map(|(app, hash, exp)| {
            Some((
                key_hash(&hash)?,
                KeyEntry {
                    app: apps.get(&app)?.clone(),
                    expires_at_ms: exp.map(|e| e.max(0) as u64),
                },
            ))
        }));
        let base_allow = base.admin.as_ref().is_some_and(|a| a.allow_loopback);
        let mut m = Managed {
            composed: base.clone(),
            base,
            by_route: Vec::new(),
            catalog: Catalog {
                services: Arc::default(),
                keys,
                subs: SubIndex::default(),
                quotas: Arc::default(),
                jwt: Arc::default(),
                basic: Arc::default(),
                hmac: Arc::default(),
                replays: Arc::default(),
                app_series: app_slots.labels(),
                ai: Arc::new(ai_budgets(
                    &store.all_apps().await?,
                    &store.all_tenants().await?,
                )),
            },
            services,
            apps,
            app_slots,
            tenants,
            quota_tables: HashMap::new(),
            quota_uses: Vec::new(),
            creds: HashMap::new(),
            jwks_docs: HashMap::new(),
            keyring,
            http: super::jwt::client(base_allow),
            allow_loopback: base_allow,
            publisher,
            ai_keys: Vec::new(),
            ai_prices: BTreeMap::new(),
            key_sets: HashMap::new(),
        };
        seed_budgets(&m.catalog.ai, &m.apps, &m.tenants, store).await?;
        m.ai_keys = stored_keys(&m.keyring, store.ai_keys().await?);
        m.ai_prices = stored_prices(store.ai_prices().await?);
        for row in store.live_credentials().await? {
            if row.kind == "basic" {
                if let Err(e) = m.basic_set(row) {
                    tracing::error!(error = %e, "stored basic credential is unusable; not served");
                }
                continue;
            }
            if row.kind == "hmac" {
                if let Err(e) = m.hmac_set(row) {
                    tracing::error!(error = %e, "stored HMAC credential is unusable; not served");
                }
                continue;
            }
            if row.kind != "jwt" {
                continue;
            }
            let doc = match &row.jwt().jwks_url {
                Some(url) => match super::jwt::fetch(&m.http, url).await {
                    Ok(d) => Some(d),
                    Err(e) => {
                        tracing::warn!(credential = %row.id, error = %e, "JWKS not fetched; its tokens are refused until a refresh succeeds");
                        None
                    }
                },
                None => None,
            };
            if let Err(e) = m.jwt_set(row, doc) {
                tracing::error!(error = %e, "stored JWT credential is unusable; not served");
            }
        }
        let seq_of_service: HashMap<String, i64> = m
            .services
            .values()
            .map(|s| (s.row.id.clone(), s.row.seq))
            .collect();
        let mut entries = Vec::new();
        for s in store.live_subscriptions().await? {
            let (Some(app), Some(&svc)) =
                (m.apps.get(&s.app_id), seq_of_service.get(&s.service_id))
            else {
                continue;
            };
            let app = app.seq;
            let quota = m.quota_of(&s, svc);
            if let Some(e) = sub_entry(&s, quota) {
                entries.push(((app, svc), e));
            }
        }
        for (_, e) in &entries {
            if let Some(q) = e.quota {
                m.quota_use(q, 1);
            }
        }
        m.catalog.subs = SubIndex::from_entries(entries);
        // A stored service that now conflicts (the config file changed under it) is left out and
        // logged, one at a time; the rest is served.
        loop {
            let e = match m.compose() {
                Ok(()) => break,
                Err(e) => e,
            };
            let offender = match &e {
                ConfigError::Invalid { field, .. } => field
                    .strip_prefix("services.")
                    .and_then(|r| r.split('.').next())
                    .and_then(|id| m.services.iter().find(|(_, s)| s.row.id == id))
                    .map(|(seq, _)| *seq),
                _ => None,
            };
            match offender {
                Some(seq) => {
                    tracing::error!(error = %e, "stored service conflicts; not served until fixed");
                    m.services.remove(&seq);
                }
                None => {
                    tracing::error!(error = %e, "managed services do not compose; serving the config file's routes only");
                    m.services.clear();
                    m.compose()?;
                    break;
                }
            }
        }
        m.publish()?;
        Ok(m)
    }

    /// Composes the base config with every service and rebuilds the service entries.
    fn compose(&mut self) -> Result<(), ConfigError> {
        let list: Vec<Composed<'_>> = self
            .services
            .values()
            .map(|s| Composed {
                id: &s.row.id,
                name: &s.row.name,
                parts: &s.parts,
            })
            .collect();
        let (mut config, by_route) = Config::compose(&self.base, &list)?;
        config.ai = self.ai_config();
        self.composed = Arc::new(config);
        self.by_route = by_route;
        self.rebuild_entries();
        Ok(())
    }

    /// Rebuilds the service entries (lifecycle, headers) in composition order.
    fn rebuild_entries(&mut self) {
        let entries = self
            .services
            .values()
            .map(|s| ServiceEntry {
                seq: s.row.seq,
                id: s.row.id.as_str().into(),
                tenant_seq: self.tenants.get(&s.row.tenant_id).copied().unwrap_or(-1),
                tenant_id: s.row.tenant_id.as_str().into(),
                state: Lifecycle::parse(&s.row.state).unwrap_or(Lifecycle::Retired),
                accepts: s.accepts,
                response_headers: deprecation_headers(&s.row).into(),
            })
            .collect();
        self.catalog.services = Arc::new(Services {
            entries,
            by_route: self.by_route.clone(),
        });
    }

    /// Publishes the current config and catalog; returns the generation.
    fn publish(&self) -> Result<u64, ConfigError> {
        let config = self.composed.clone();
        let catalog = self.catalog.clone();
        self.publisher.publish(move |_| Ok((config, catalog)))
    }

    pub fn http(&self) -> &crate::config::HttpConfig {
        &self.base.http
    }

    /// The config file's `[ai]` (what AI services are validated against).
    pub fn base_ai(&self) -> Arc<crate::config::ai::AiConfig> {
        self.base.ai.clone()
    }

    /// A new config file: composed with the managed services and published. On error (a route of
    /// the file now conflicts with a service's) nothing changes.
    pub fn set_base(&mut self, base: Arc<Config>) -> Result<u64, ConfigError> {
        let old = std::mem::replace(&mut self.base, base);
        if let Err(e) = self.compose() {
            self.base = old;
            self.compose()?;
            return Err(e);
        }
        self.publish()
    }

    pub fn tenant_added(&mut self, id: &str, seq: i64) {
        self.tenants.insert(id.to_string(), seq);
    }

    pub fn app_added(&mut self, app: &App) {
        let entry = app_entry(app, &self.tenants, &mut self.app_slots);
        self.apps.insert(app.id.clone(), entry);
        self.catalog.app_series = self.app_slots.labels();
    }

    /// Composes a new service (`row.seq` 0) or a changed one with the others (its routes must
    /// conflict with nobody's) without keeping it: [`Managed::service_added`] takes the result
    /// once the store has the service.
    ///
    /// A tenant's routes may not overlap another tenant's, nor the config file's (a catch-all
    /// `/` excepted): otherwise a more specific route (a host, a longer prefix, a method) would
    /// take another owner's traffic.
    pub fn prepare_service(
        &self,
        row: &ServiceRow,
        parts: ServiceRoutes,
    ) -> Result<Prepared, ConfigError> {
        for (i, r) in parts.routes.iter().enumerate() {
            if let Some(other) = self
                .base
                .routes
                .iter()
                .find(|o| !overlaps_allowed(o) && overlaps(r, o))
            {
                return Err(ConfigError::invalid(
                    format!("routes[{i}]"),
                    format!(
                        "overlaps route {:?} of the config file: requests it matches would be taken from it",
                        other.name
                    ),
                ));
            }
            let foreign = self.services.values().find(|s| {
                s.row.seq != row.seq
                    && s.row.tenant_id != row.tenant_id
                    && s.parts.routes.iter().any(|o| overlaps(r, o))
            });
            if let Some(s) = foreign {
                return Err(ConfigError::invalid(
                    format!("routes[{i}]"),
                    format!(
                        "overlaps a route of another tenant's service {:?} ({})",
                        s.row.name, s.row.id
                    ),
                ));
            }
        }
        let mut list: Vec<Composed<'_>> = self
            .services
            .values()
            .map(|s| {
                if row.seq != 0 && s.row.seq == row.seq {
                    Composed {
                        id: &row.id,
                        name: &row.name,
                        parts: &parts,
                    }
                } else {
                    Composed {
                        id: &s.row.id,
                        name: &s.row.name,
                        parts: &s.parts,
                    }
                }
            })
            .collect();
        if row.seq == 0 || !self.services.contains_key(&row.seq) {
            list.push(Composed {
                id: &row.id,
                name: &row.name,
                parts: &parts,
            });
        }
        let (config, by_route) = Config::compose(&self.base, &list)?;
        Ok(Prepared {
            config: Arc::new(config),
            by_route,
            parts,
        })
    }

    /// A service the store now has, new or changed (with its sequence), composed by
    /// [`Managed::prepare_service`].
    pub fn service_added(&mut self, row: ServiceRow, p: Prepared) -> Result<u64, ConfigError> {
        let accepts = accepts(&row);
        self.services.insert(
            row.seq,
            ManagedService {
                row,
                parts: p.parts,
                accepts,
            },
        );
        self.composed = p.config;
        self.by_route = p.by_route;
        self.rebuild_entries();
        self.publish()
    }

    /// A service's default quota changed: its live subscriptions without their own quota move to
    /// the new one.
    pub fn service_quota_changed(
        &mut self,
        service_seq: i64,
        live: &[Subscription],
    ) -> Result<u64, ConfigError> {
        for s in live {
            if let Some(app) = self.apps.get(&s.app_id).map(|a| a.seq) {
                let quota = self.quota_of(s, service_seq);
                self.set_sub(app, service_seq, sub_entry(s, quota));
            }
        }
        self.publish()
    }

    /// A service's lifecycle changed: its entry is rebuilt, the routes stay.
    pub fn service_changed(&mut self, row: ServiceRow) -> Result<u64, ConfigError> {
        if let Some(s) = self.services.get_mut(&row.seq) {
            s.row = row;
        }
        self.rebuild_entries();
        self.publish()
    }

    pub fn key_added(
        &mut self,
        app_id: &str,
        hash: KeyHash,
        expires_at: Option<i64>,
    ) -> Result<u64, ConfigError> {
        if let Some(app) = self.apps.get(app_id) {
            self.catalog.keys.insert(
                hash,
                KeyEntry {
                    app: app.clone(),
                    expires_at_ms: expires_at.map(|e| e.max(0) as u64),
                },
            );
        }
        self.publish()
    }

    pub fn key_revoked(&mut self, hash: &[u8]) -> Result<u64, ConfigError> {
        if let Some(h) = key_hash(hash) {
            self.catalog.keys.remove(&h);
        }
        self.publish()
    }

    /// A subscription was created or changed state.
    pub fn subscription_changed(
        &mut self,
        s: &Subscription,
        service_seq: i64,
    ) -> Result<u64, ConfigError> {
        if let Some(app) = self.apps.get(&s.app_id).map(|a| a.seq) {
            // Only a live subscription holds a quota table (a table made for none would never be
            // freed).
            let live = matches!(s.state.as_str(), "pending" | "approved");
            let quota = if live {
                self.quota_of(s, service_seq)
            } else {
                None
            };
            self.set_sub(app, service_seq, sub_entry(s, quota));
        }
        self.publish()
    }

    /// The quota table of a subscription: its own quota, else its service's; made on first use
    /// (in a freed slot when there is one). Tables are shared by every subscription with the same
    /// quota; one that no live subscription uses any more is emptied ([`Managed::set_sub`]).
    fn quota_of(&mut self, s: &Subscription, service_seq: i64) -> Option<u32> {
        let q = Quota::parse(s.quota.as_deref()).or_else(|| {
            let svc = self.services.get(&service_seq)?;
            Quota::parse(svc.row.quota.as_deref())
        })?;
        if let Some(&i) = self.quota_tables.get(&q) {
            return Some(i);
        }
        let table = Arc::new(NodeRouteLimits::new(&quota_limits(&q)));
        let now = super::model::now_ms();
        let free = self
            .quota_uses
            .iter()
            .position(|u| u.uses == 0 && u.unused_since.is_some_and(|t| now - t >= QUOTA_KEEP_MS));
        let tables = Arc::make_mut(&mut self.catalog.quotas);
        let i = match free {
            Some(i) => {
                if let Some(old) = self.quota_uses[i].quota.take() {
                    self.quota_tables.remove(&old);
                }
                tables[i] = table;
                self.quota_uses[i] = QuotaUse {
                    quota: Some(q),
                    uses: 0,
                    unused_since: None,
                };
                i as u32
            }
            None => {
                tables.push(table);
                self.quota_uses.push(QuotaUse {
                    quota: Some(q),
                    uses: 0,
                    unused_since: None,
                });
                (tables.len() - 1) as u32
            }
        };
        self.quota_tables.insert(q, i);
        Some(i)
    }

    /// Counts `delta` uses of quota table `i`. A table left unused keeps its counters for a
    /// day (the longest window), then its slot may go to a new quota (see `quota_of`).
    fn quota_use(&mut self, i: u32, delta: i32) {
        let Some(u) = self.quota_uses.get_mut(i as usize) else {
            return;
        };
        u.uses = u.uses.saturating_add_signed(delta);
        u.unused_since = if u.uses == 0 {
            Some(super::model::now_ms())
        } else {
            None
        };
    }

    /// Sets (or with `None` removes) the live subscription of `app` to `service`, keeping the
    /// quota tables' use counts.
    fn set_sub(&mut self, app: i64, service: i64, entry: Option<SubEntry>) {
        let old = self.catalog.subs.get(app, service).and_then(|e| e.quota);
        let new = entry.as_ref().and_then(|e| e.quota);
        self.catalog.subs.set(app, service, entry);
        if let Some(n) = new {
            self.quota_use(n, 1);
        }
        if let Some(o) = old {
            self.quota_use(o, -1);
        }
    }

    /// An app was deleted with its keys, credentials and subscriptions: all out of the catalog,
    /// in one publication.
    pub fn app_deleted(
        &mut self,
        app_id: &str,
        d: &super::store::Deleted,
        service_seqs: &HashMap<String, i64>,
    ) -> Result<u64, ConfigError> {
        for h in &d.keys {
            if let Some(h) = key_hash(h) {
                self.catalog.keys.remove(&h);
            }
        }
        for id in &d.creds {
            if let Some(row) = self.creds.remove(id) {
                match row.kind.as_str() {
                    "basic" => {
                        Arc::make_mut(&mut self.catalog.basic).remove(row.lookup.as_str());
                    }
                    "hmac" => {
                        Arc::make_mut(&mut self.catalog.hmac).remove(row.lookup.as_str());
                    }
                    _ => {
                        Arc::make_mut(&mut self.catalog.jwt).remove(row.lookup.as_str());
                        self.jwks_docs.remove(id);
                    }
                }
            }
        }
        if let Some(app) = self.apps.remove(app_id) {
            for s in &d.subs {
                if let Some(&svc) = service_seqs.get(&s.service_id) {
                    self.set_sub(app.seq, svc, None);
                }
            }
            if self.catalog.ai.apps.contains_key(&app.seq) {
                let mut ai = crate::catalog::AiBudgets {
                    apps: self.catalog.ai.apps.clone(),
                    tenants: self.catalog.ai.tenants.clone(),
                };
                ai.apps.remove(&app.seq);
                self.catalog.ai = Arc::new(ai);
            }
        }
        self.publish()
    }

    /// A (retired) service was deleted with its subscriptions: its routes leave the table.
    pub fn service_deleted(&mut self, seq: i64, subs: &[Subscription]) -> Result<u64, ConfigError> {
        for s in subs {
            if let Some(app) = self.apps.get(&s.app_id) {
                let app = app.seq;
                self.set_sub(app, seq, None);
            }
        }
        if self.services.remove(&seq).is_some() {
            self.compose()?;
        }
        self.publish()
    }

    /// What a shard would see now (tests and measurements).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

/// A quota as rate limits keyed by app: a token bucket per second (burst = the limit), sliding
/// windows per minute and per day.
fn quota_limits(q: &Quota) -> RouteLimitsConfig {
    let rate = |limit: u64, secs: u64, algorithm| RateLimitConfig {
        key: LimitKey::App,
        algorithm,
        limit,
        period: Duration::from_secs(secs),
        max_keys: crate::config::limits::DEFAULT_MAX_KEYS,
    };
    let mut rates = Vec::new();
    if let Some(n) = q.per_second {
        rates.push(rate(n, 1, LimitAlgorithm::TokenBucket { burst: n }));
    }
    if let Some(n) = q.per_minute {
        rates.push(rate(n, 60, LimitAlgorithm::SlidingWindow));
    }
    if let Some(n) = q.per_day {
        rates.push(rate(n, 86_400, LimitAlgorithm::SlidingWindow));
    }
    RouteLimitsConfig {
        rate: rates,
        concurrency: Vec::new(),
        headers: true,
    }
}

fn app_entry(a: &App, tenants: &HashMap<String, i64>, slots: &mut AppSlots) -> Arc<AppEntry> {
    Arc::new(AppEntry {
        seq: a.seq,
        id: a.id.as_str().into(),
        tenant_seq: tenants.get(&a.tenant_id).copied().unwrap_or(-1),
        tenant_id: a.tenant_id.as_str().into(),
        series: slots.slot(&(a.id.as_str().into(), a.tenant_id.as_str().into())),
    })
}
