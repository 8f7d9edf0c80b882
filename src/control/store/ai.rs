//! AI limits of apps and tenants (migration 0008).

use super::{Change, Store, StoreError};

/// Whose AI limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsOf {
    App,
    Tenant,
}

impl Store {
    /// Sets (`None`: clears) the AI limits (JSON) of an app or tenant. False when it is gone.
    pub async fn set_ai_limits(
        &self,
        of: LimitsOf,
        id: &str,
        limits: Option<&str>,
        at: i64,
        c: &Change<'_>,
    ) -> Result<bool, StoreError> {
        let table = match of {
            LimitsOf::App => "apps",
            LimitsOf::Tenant => "tenants",
        };
        let mut tx = self.begin().await?;
        let n = sqlx::query(&format!(
            "UPDATE {table} SET ai_limits = $1, updated_at = $2, version = version + 1 WHERE id = $3"
        ))
        .bind(limits)
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Store::commit_if(tx, n == 1, c).await
    }
}

/// A provider key as stored: sealed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AiKeyRow {
    pub id: String,
    pub provider: String,
    pub label: String,
    pub hint: String,
    pub sealed: String,
    pub created_at: i64,
}

/// A price as stored (micro-USD per million tokens).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AiPriceRow {
    pub model: String,
    pub input: i64,
    pub output: i64,
    pub cached_input: i64,
    pub updated_at: i64,
}

impl Store {
    pub async fn insert_ai_key(&self, k: &AiKeyRow, c: &Change<'_>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO ai_keys (id, provider, label, hint, sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.id)
        .bind(&k.provider)
        .bind(&k.label)
        .bind(&k.hint)
        .bind(&k.sealed)
        .bind(k.created_at)
        .execute(&mut *tx)
        .await?;
        Store::commit_with(tx, c).await
    }

    /// Deletes a provider's key; false when there is no such key.
    pub async fn delete_ai_key(
        &self,
        provider: &str,
        id: &str,
        c: &Change<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM ai_keys WHERE id = $1 AND provider = $2")
            .bind(id)
            .bind(provider)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        Store::commit_if(tx, n == 1, c).await
    }

    /// Every stored provider key, oldest first.
    pub async fn ai_keys(&self) -> Result<Vec<AiKeyRow>, StoreError> {
        Ok(
            sqlx::query_as("SELECT * FROM ai_keys ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn set_ai_price(&self, p: &AiPriceRow, c: &Change<'_>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO ai_prices (model, input, output, cached_input, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (model) DO UPDATE SET \
             input = excluded.input, output = excluded.output, \
             cached_input = excluded.cached_input, updated_at = excluded.updated_at",
        )
        .bind(&p.model)
        .bind(p.input)
        .bind(p.output)
        .bind(p.cached_input)
        .bind(p.updated_at)
        .execute(&mut *tx)
        .await?;
        Store::commit_with(tx, c).await
    }

    pub async fn delete_ai_price(&self, model: &str, c: &Change<'_>) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM ai_prices WHERE model = $1")
            .bind(model)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        Store::commit_if(tx, n == 1, c).await
    }

    pub async fn ai_prices(&self) -> Result<Vec<AiPriceRow>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM ai_prices ORDER BY model")
            .fetch_all(&self.pool)
            .await?)
    }
}
