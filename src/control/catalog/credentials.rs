//! The credentials of the catalog (JWT issuers with their keys and JWKS documents, basic
//! usernames, HMAC access keys): added, revoked and refreshed on the control plane.

use std::sync::Arc;

use super::{CatalogError, Managed};
use crate::config::ConfigError;
use crate::control::model::CredentialRow;

impl Managed {
    /// Sets (adds or replaces) a JWT credential in the catalog; `jwks` is its fetched document.
    /// Does not publish.
    pub(super) fn jwt_set(
        &mut self,
        row: CredentialRow,
        jwks: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let app = self
            .apps
            .get(&row.app_id)
            .cloned()
            .ok_or("the credential's app is gone")?;
        let keys = crate::control::jwt::keys(&row, &self.keyring, jwks.as_deref())?;
        let cred = crate::control::jwt::cred(&row, app, keys);
        Arc::make_mut(&mut self.catalog.jwt).insert(row.lookup.as_str().into(), cred);
        match jwks {
            Some(d) => self.jwks_docs.insert(row.id.clone(), d),
            None => self.jwks_docs.remove(&row.id),
        };
        self.creds.insert(row.id.clone(), row);
        Ok(())
    }

    /// A JWT credential the store now has (validated by the caller): served from now on.
    pub fn jwt_added(
        &mut self,
        row: CredentialRow,
        jwks: Option<Vec<u8>>,
    ) -> Result<u64, CatalogError> {
        self.jwt_set(row, jwks)
            .map_err(|e| CatalogError::Config(ConfigError::invalid("credential", e)))?;
        Ok(self.publish()?)
    }

    /// A credential of any kind revoked: out of the catalog.
    pub fn credential_revoked(&mut self, id: &str) -> Result<u64, ConfigError> {
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
        self.publish()
    }

    /// Sets a basic credential (username → app, argon2id hash). Does not publish.
    pub(super) fn basic_set(&mut self, row: CredentialRow) -> Result<(), String> {
        let app = self
            .apps
            .get(&row.app_id)
            .cloned()
            .ok_or("the credential's app is gone")?;
        let phc = serde_json::from_str::<serde_json::Value>(&row.config)
            .ok()
            .and_then(|v| v["password_hash"].as_str().map(str::to_string))
            .ok_or("no password hash")?;
        let cred = Arc::new(crate::catalog::basic::BasicCred {
            username: row.lookup.as_str().into(),
            app,
            phc: phc.into(),
        });
        Arc::make_mut(&mut self.catalog.basic).insert(row.lookup.as_str().into(), cred);
        self.creds.insert(row.id.clone(), row);
        Ok(())
    }

    /// Sets an HMAC credential (access key → app, its secret opened from the store's seal).
    /// Does not publish.
    pub(super) fn hmac_set(&mut self, row: CredentialRow) -> Result<(), String> {
        let app = self
            .apps
            .get(&row.app_id)
            .cloned()
            .ok_or("the credential's app is gone")?;
        let sealed = serde_json::from_str::<serde_json::Value>(&row.config)
            .ok()
            .and_then(|v| v["secret_sealed"].as_str().map(str::to_string))
            .ok_or("no secret")?;
        let secret = self
            .keyring
            .open(&sealed)
            .ok_or("the secret does not open with the store key")?;
        let cred = Arc::new(crate::catalog::hmac::HmacCred {
            access_key: row.lookup.as_str().into(),
            app,
            secret: secret.into(),
        });
        Arc::make_mut(&mut self.catalog.hmac).insert(row.lookup.as_str().into(), cred);
        self.creds.insert(row.id.clone(), row);
        Ok(())
    }

    /// An HMAC credential the store now has: served from now on.
    pub fn hmac_added(&mut self, row: CredentialRow) -> Result<u64, CatalogError> {
        self.hmac_set(row)
            .map_err(|e| CatalogError::Config(ConfigError::invalid("credential", e)))?;
        Ok(self.publish()?)
    }

    /// A basic credential the store now has: served from now on.
    pub fn basic_added(&mut self, row: CredentialRow) -> Result<u64, CatalogError> {
        self.basic_set(row)
            .map_err(|e| CatalogError::Config(ConfigError::invalid("credential", e)))?;
        Ok(self.publish()?)
    }

    /// The JWT credentials with a JWKS URL: (id, url).
    pub fn jwks_sources(&self) -> Vec<(String, String)> {
        self.creds
            .values()
            .filter(|r| r.kind == "jwt")
            .filter_map(|r| Some((r.id.clone(), r.jwt().jwks_url?)))
            .collect()
    }

    /// A JWKS document fetched again: applied and published if it changed.
    pub fn jwks_fetched(&mut self, id: &str, doc: Vec<u8>) {
        if self.jwks_docs.get(id) == Some(&doc) {
            return;
        }
        let Some(row) = self.creds.get(id).cloned() else {
            return;
        };
        match self.jwt_set(row, Some(doc)) {
            Ok(()) => {
                if let Err(e) = self.publish() {
                    tracing::error!(error = %e, "cannot publish the refreshed JWKS");
                }
                tracing::info!(credential = id, "JWKS changed; new keys in use");
            }
            Err(e) => {
                tracing::warn!(credential = id, error = %e, "refreshed JWKS unusable; keeping the previous keys")
            }
        }
    }
}
