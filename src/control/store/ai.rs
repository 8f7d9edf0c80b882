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
