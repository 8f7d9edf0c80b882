//! The AI side of the catalog: the config file's `[ai]` with the store's provider keys (opened
//! with the store key) and prices merged in, and the AI budgets of apps and tenants (charged at
//! start with what the store's rollups recorded this day and month).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{App, AppEntry, ConfigError, Keyring, Managed, Store, StoreError};

/// A provider key from the store, opened.
pub struct StoredKey {
    pub id: String,
    pub provider: String,
    pub label: String,
    secret: String,
}

impl Managed {
    /// Sets (`None`: clears) the AI limits of the app or tenant with store sequence `seq`, and
    /// publishes. A budget whose limits are unchanged keeps what it spent.
    pub fn set_ai_limits(
        &mut self,
        of: crate::control::store::LimitsOf,
        seq: i64,
        limits: Option<crate::limit::budget::AiLimits>,
    ) -> Result<u64, ConfigError> {
        let old = &self.catalog.ai;
        let mut apps = old.apps.clone();
        let mut tenants = old.tenants.clone();
        let map = match of {
            crate::control::store::LimitsOf::App => &mut apps,
            crate::control::store::LimitsOf::Tenant => &mut tenants,
        };
        match limits {
            None => {
                map.remove(&seq);
            }
            Some(l) if map.get(&seq).is_some_and(|b| b.limits == l) => {}
            Some(l) => {
                let b = match map.get(&seq) {
                    Some(old) => old.relimited(l),
                    None => crate::limit::budget::Budget::new(l),
                };
                map.insert(seq, Arc::new(b));
            }
        }
        self.catalog.ai = Arc::new(crate::catalog::AiBudgets { apps, tenants });
        self.publish()
    }

    /// The config file's `[ai]` with the store's provider keys and prices merged in.
    pub(super) fn ai_config(&mut self) -> Arc<crate::config::ai::AiConfig> {
        use crate::config::ai::{ProviderKey, ProviderKeys};
        if self.ai_keys.is_empty() && self.ai_prices.is_empty() {
            self.key_sets.clear();
            return self.base.ai.clone();
        }
        let mut ai = (*self.base.ai).clone();
        for p in &mut ai.providers {
            let stored: Vec<&StoredKey> = self
                .ai_keys
                .iter()
                .filter(|k| k.provider == p.name)
                .collect();
            if stored.is_empty() {
                self.key_sets.remove(&p.name);
                continue;
            }
            let ids: Vec<&str> = p
                .keys
                .keys()
                .iter()
                .map(|k| k.id.as_str())
                .chain(stored.iter().map(|k| k.id.as_str()))
                .collect();
            let same = self.key_sets.get(&p.name).filter(|set| {
                set.keys().len() == ids.len()
                    && set.keys().iter().zip(&ids).all(|(k, id)| k.id == *id)
            });
            let set = match same {
                Some(set) => set.clone(),
                None => {
                    let mut keys: Vec<ProviderKey> = p
                        .keys
                        .keys()
                        .iter()
                        .enumerate()
                        .map(|(i, k)| {
                            ProviderKey::new(
                                k.id.clone(),
                                k.source,
                                k.label.clone(),
                                p.keys.secret(i).to_string(),
                            )
                        })
                        .collect();
                    keys.extend(stored.iter().map(|k| {
                        ProviderKey::new(k.id.clone(), "store", k.label.clone(), k.secret.clone())
                    }));
                    let set = Arc::new(ProviderKeys::new(keys));
                    self.key_sets.insert(p.name.clone(), set.clone());
                    set
                }
            };
            p.keys = set;
        }
        for (model, price) in &self.ai_prices {
            ai.prices.insert(model.clone(), *price);
        }
        Arc::new(ai)
    }

    /// The config file's config (without the managed services).
    pub fn base_config(&self) -> Arc<crate::Config> {
        self.base.clone()
    }

    /// The composed config's `[ai]`: providers with every key, prices with the store's.
    pub fn ai(&self) -> Arc<crate::config::ai::AiConfig> {
        self.composed.ai.clone()
    }

    /// The store's provider keys and prices changed: compose and publish.
    pub fn set_ai_store(
        &mut self,
        keys: Vec<crate::control::store::AiKeyRow>,
        prices: Vec<crate::control::store::AiPriceRow>,
    ) -> Result<u64, ConfigError> {
        self.ai_keys = stored_keys(&self.keyring, keys);
        self.ai_prices = stored_prices(prices);
        self.compose()?;
        self.publish()
    }
}

/// The AI limits stored on `apps` and `tenants` (a stored value that no longer validates is
/// logged and left out).
pub(super) fn ai_budgets(
    apps: &[App],
    tenants: &[crate::control::model::Tenant],
) -> crate::catalog::AiBudgets {
    let budget = |text: Option<&str>, what: &str, id: &str| {
        let raw: crate::config::ai::RawAiLimits = serde_json::from_str(text?).ok()?;
        match crate::config::ai::limits("ai_limits", &raw) {
            Ok(l) => Some(Arc::new(crate::limit::budget::Budget::new(l))),
            Err(e) => {
                tracing::error!(%what, %id, error = %e, "stored AI limits do not validate; not applied");
                None
            }
        }
    };
    crate::catalog::AiBudgets {
        apps: apps
            .iter()
            .filter_map(|a| Some((a.seq, budget(a.ai_limits.as_deref(), "app", &a.id)?)))
            .collect(),
        tenants: tenants
            .iter()
            .filter_map(|t| Some((t.seq, budget(t.ai_limits.as_deref(), "tenant", &t.id)?)))
            .collect(),
    }
}

/// The store's provider keys, opened with the store key (one that does not open is logged and
/// left out: it was sealed with another key).
pub(super) fn stored_keys(
    keyring: &Keyring,
    rows: Vec<crate::control::store::AiKeyRow>,
) -> Vec<StoredKey> {
    rows.into_iter()
        .filter_map(|r| {
            let secret = keyring
                .open(&r.sealed)
                .and_then(|b| String::from_utf8(b).ok());
            match secret {
                Some(secret) => Some(StoredKey {
                    id: r.id,
                    provider: r.provider,
                    label: r.label,
                    secret,
                }),
                None => {
                    tracing::error!(key = %r.id, provider = %r.provider, "a stored provider key does not open with this store key; not used");
                    None
                }
            }
        })
        .collect()
}

pub(super) fn stored_prices(
    rows: Vec<crate::control::store::AiPriceRow>,
) -> BTreeMap<String, crate::ai::price::Price> {
    rows.into_iter()
        .map(|r| {
            let n = |v: i64| v.max(0) as u64;
            (
                r.model,
                crate::ai::price::Price {
                    input: n(r.input),
                    output: n(r.output),
                    cached_input: n(r.cached_input),
                },
            )
        })
        .collect()
}

/// After a start, charges the apps' and tenants' day and month budgets with what the store's
/// rollups say they used this UTC day and month (the writer stores its last minute on the way
/// down, so a stop loses nothing; a crash, up to a minute).
pub(super) async fn seed_budgets(
    ai: &crate::catalog::AiBudgets,
    apps: &HashMap<String, Arc<AppEntry>>,
    tenants: &HashMap<String, i64>,
    store: &Store,
) -> Result<(), StoreError> {
    use crate::limit::budget::{Budget, Windows};
    if ai.apps.is_empty() && ai.tenants.is_empty() {
        return Ok(());
    }
    let win = Windows::now();
    let (day, month) = Budget::starts(&win);
    let rows = store
        .rollups(
            month as i64,
            i64::MAX,
            &crate::control::store::RollupFilter::default(),
        )
        .await?;
    for r in rows.iter().filter(|r| !r.key.model.is_empty()) {
        let tokens = r.agg.input_tokens.saturating_add(r.agg.output_tokens);
        let cost = r.agg.cost_nanos.div_ceil(1000);
        let today = r.bucket >= day as i64;
        let app = apps.get(&r.key.app).and_then(|a| ai.apps.get(&a.seq));
        let tenant = tenants.get(&r.key.tenant).and_then(|s| ai.tenants.get(s));
        for b in app.into_iter().chain(tenant) {
            b.preload(tokens, cost, today, &win);
        }
    }
    Ok(())
}
