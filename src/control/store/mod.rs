//! The embedded store: SQLite in WAL mode through sqlx, schema migrations from `migrations/`
//! (compiled in, applied at open, versioned by sqlx's `_sqlx_migrations` table).
//!
//! Durability: `synchronous = FULL`, so a commit is on disk (WAL fsynced) before the admin API
//! answers 2xx; an acknowledged write survives `kill -9` and power loss. Every change is one
//! transaction together with its audit row, so the audit log never misses a change that
//! happened, nor records one that did not.
//!
//! The queries are plain SQL with `$N` placeholders, which SQLite and Postgres both read, over
//! portable types (TEXT, INTEGER, BLOB), so a Postgres backend can follow without a rewrite.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

mod ai;
mod analytics;
mod people;

pub use ai::{AiKeyRow, AiPriceRow, LimitsOf};
pub use analytics::{DAY, HOUR, MINUTE, Rollup, RollupFilter};
pub use people::NewOperatorSession;

use super::model::{App, AuditEntry, KeyInfo, ServiceRow, Subscription, Tenant};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique constraint refused the write (a name taken, a live subscription already there).
    #[error("conflict: {0}")]
    Conflict(String),
}

impl StoreError {
    fn from_write(e: sqlx::Error, what: &str) -> StoreError {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(what.to_string())
            }
            _ => StoreError::Db(e),
        }
    }
}

/// One change for the audit log: who did what to which object, with the object before and
/// after (JSON, never holding a secret).
pub struct Change<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub kind: &'a str,
    pub id: &'a str,
    pub tenant_id: Option<&'a str>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub at: i64,
}

/// A list query: page after `cursor` (an id), at most `limit` items, optional filters.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub limit: i64,
    /// Only objects of these tenants (`None`: all). An empty list matches nothing.
    pub tenants: Option<Vec<String>>,
    pub filters: Vec<(&'static str, String)>,
    /// Only objects whose `search.0` column contains `search.1` (case-insensitive for ASCII).
    pub search: Option<(&'static str, String)>,
    /// Newest first (the audit log only).
    pub descending: bool,
    /// Subscriptions only: those to the tenants' services, or those of the tenants' apps
    /// (`None`: both).
    pub side: Option<Side>,
}

/// Which side of a subscription a tenant is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Its service is subscribed to (the inbox).
    Provider,
    /// Its app subscribes (its access requests).
    Consumer,
}

pub struct Store {
    pool: SqlitePool,
}

/// What deleting an app took with it (for the catalog).
pub struct Deleted {
    pub keys: Vec<Vec<u8>>,
    pub creds: Vec<String>,
    pub subs: Vec<Subscription>,
}

type Tx = Transaction<'static, Sqlite>;

impl Store {
    /// Opens (creating if needed) the store at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Records `c` and commits: every change ends this way, so no write lands without its
    /// audit row.
    async fn commit_with(mut tx: Tx, c: &Change<'_>) -> Result<(), StoreError> {
        Store::record(&mut tx, c).await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`Store::commit_with`] when the write `changed` a row (else rolls back): whether it did.
    async fn commit_if(tx: Tx, changed: bool, c: &Change<'_>) -> Result<bool, StoreError> {
        if changed {
            Store::commit_with(tx, c).await?;
        }
        Ok(changed)
    }

    async fn record(tx: &mut Tx, c: &Change<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (at, actor, action, object_kind, object_id, tenant_id, before, after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.at)
        .bind(c.actor)
        .bind(c.action)
        .bind(c.kind)
        .bind(c.id)
        .bind(c.tenant_id)
        .bind(&c.before)
        .bind(&c.after)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    // Tenants.

    pub async fn insert_tenant(&self, t: &Tenant, c: &Change<'_>) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let seq = sqlx::query_scalar::<_, i64>(
            "INSERT INTO tenants (id, name, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, 1) RETURNING seq",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(t.created_at)
        .bind(t.updated_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "a tenant with this name exists"))?;
        Store::commit_with(tx, c).await?;
        Ok(seq)
    }

    /// Sets where a tenant's services may route (`None`: anywhere free).
    pub async fn set_route_scope(
        &self,
        id: &str,
        scope: Option<&str>,
        at: i64,
        c: &Change<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE tenants SET route_scope = $1, updated_at = $2, version = version + 1 WHERE id = $3",
        )
        .bind(scope)
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Store::commit_if(tx, n == 1, c).await
    }

    pub async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn tenants(&self, q: &ListQuery) -> Result<Vec<Tenant>, StoreError> {
        list(&self.pool, "SELECT * FROM tenants", "id", "id", q).await
    }

    pub async fn all_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM tenants")
            .fetch_all(&self.pool)
            .await?)
    }

    // Services.

    pub async fn insert_service(&self, s: &ServiceRow, c: &Change<'_>) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let seq = sqlx::query_scalar::<_, i64>(
            "INSERT INTO services (id, tenant_id, name, visibility, approval, state, spec, openapi, \
             created_at, updated_at, version, quota) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11) RETURNING seq",
        )
        .bind(&s.id)
        .bind(&s.tenant_id)
        .bind(&s.name)
        .bind(&s.visibility)
        .bind(&s.approval)
        .bind(&s.state)
        .bind(&s.spec)
        .bind(&s.openapi)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(&s.quota)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "the tenant has a service with this name"))?;
        Store::commit_with(tx, c).await?;
        Ok(seq)
    }

    /// Writes a service's lifecycle fields if its version is still `s.version - 1`; false when
    /// another write got there first.
    pub async fn update_service_state(
        &self,
        s: &ServiceRow,
        c: &Change<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE services SET state = $1, sunset_at = $2, deprecation_link = $3, \
             deprecated_at = $4, updated_at = $5, version = $6 WHERE id = $7 AND version = $8",
        )
        .bind(&s.state)
        .bind(s.sunset_at)
        .bind(&s.deprecation_link)
        .bind(s.deprecated_at)
        .bind(s.updated_at)
        .bind(s.version)
        .bind(&s.id)
        .bind(s.version - 1)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Store::commit_if(tx, n == 1, c).await
    }

    /// Replaces a service's definition if its version is still `s.version - 1`.
    pub async fn update_service(&self, s: &ServiceRow, c: &Change<'_>) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE services SET name = $1, visibility = $2, approval = $3, spec = $4, openapi = $5, \
             quota = $6, updated_at = $7, version = $8 WHERE id = $9 AND version = $10",
        )
        .bind(&s.name)
        .bind(&s.visibility)
        .bind(&s.approval)
        .bind(&s.spec)
        .bind(&s.openapi)
        .bind(&s.quota)
        .bind(s.updated_at)
        .bind(s.version)
        .bind(&s.id)
        .bind(s.version - 1)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "the tenant has a service with this name"))?
        .rows_affected();
        Store::commit_if(tx, n == 1, c).await
    }

    /// The live subscriptions of a service.
    pub async fn service_subscriptions(
        &self,
        service_id: &str,
    ) -> Result<Vec<Subscription>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, app_id, service_id, state, reason, created_at, updated_at, version, quota \
             FROM subscriptions WHERE service_id = $1 AND state IN ('pending', 'approved')",
        )
        .bind(service_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn service(&self, id: &str) -> Result<Option<ServiceRow>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM services WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Services of `q.tenants`, plus (with `public`) every public service.
    pub async fn services(
        &self,
        q: &ListQuery,
        public: bool,
    ) -> Result<Vec<ServiceRow>, StoreError> {
        let sql = if public {
            "SELECT * FROM services WHERE ((visibility = 'public' AND state != 'draft') OR tenant_id IN (SELECT value FROM json_each($0)))"
        } else {
            "SELECT * FROM services"
        };
        if public {
            let mut q2 = q.clone();
            let tenants = serde_json::to_string(&q2.tenants.take().unwrap_or_default())
                .unwrap_or_else(|_| "[]".into());
            return list_with(&self.pool, sql, Some(tenants), "id", "tenant_id", &q2).await;
        }
        list(&self.pool, sql, "id", "tenant_id", q).await
    }

    pub async fn all_services(&self) -> Result<Vec<ServiceRow>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM services ORDER BY seq")
            .fetch_all(&self.pool)
            .await?)
    }

    // Apps and keys.

    pub async fn insert_app(&self, a: &App, c: &Change<'_>) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let seq = sqlx::query_scalar::<_, i64>(
            "INSERT INTO apps (id, tenant_id, name, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, 1) RETURNING seq",
        )
        .bind(&a.id)
        .bind(&a.tenant_id)
        .bind(&a.name)
        .bind(a.created_at)
        .bind(a.updated_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "the tenant has an app with this name"))?;
        Store::commit_with(tx, c).await?;
        Ok(seq)
    }

    pub async fn app(&self, id: &str) -> Result<Option<App>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM apps WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn apps(&self, q: &ListQuery) -> Result<Vec<App>, StoreError> {
        list(&self.pool, "SELECT * FROM apps", "id", "tenant_id", q).await
    }

    pub async fn all_apps(&self) -> Result<Vec<App>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM apps")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn insert_key(
        &self,
        k: &KeyInfo,
        hash: &[u8; 32],
        c: &Change<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, app_id, prefix, hash, name, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.id)
        .bind(&k.app_id)
        .bind(&k.prefix)
        .bind(&hash[..])
        .bind(&k.name)
        .bind(k.created_at)
        .bind(k.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "key collision"))?;
        Store::commit_with(tx, c).await?;
        Ok(())
    }

    /// Marks a key revoked; returns its hash, or `None` if it was revoked already.
    pub async fn revoke_key(
        &self,
        id: &str,
        at: i64,
        c: &Change<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut tx = self.begin().await?;
        let hash: Option<Vec<u8>> = sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING hash",
        )
        .bind(at)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        Store::commit_if(tx, hash.is_some(), c).await?;
        Ok(hash)
    }

    pub async fn key(&self, id: &str) -> Result<Option<KeyInfo>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, app_id, prefix, name, created_at, expires_at, revoked_at FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn keys(&self, q: &ListQuery) -> Result<Vec<KeyInfo>, StoreError> {
        list(
            &self.pool,
            "SELECT id, app_id, prefix, name, created_at, expires_at, revoked_at FROM api_keys",
            "id",
            "",
            q,
        )
        .await
    }

    /// Every key not revoked (start-up): app id, hash, expiry.
    pub async fn live_keys(&self) -> Result<Vec<(String, Vec<u8>, Option<i64>)>, StoreError> {
        Ok(
            sqlx::query_as(
                "SELECT app_id, hash, expires_at FROM api_keys WHERE revoked_at IS NULL",
            )
            .fetch_all(&self.pool)
            .await?,
        )
    }

    // Deletions: the object and what hangs off it, in one transaction with the audit row. Each
    // returns what the catalog must drop.

    /// Deletes an app with its keys, credentials and subscriptions: returns the hashes of its
    /// live keys, its live credentials' ids, and its live subscriptions.
    pub async fn delete_app(
        &self,
        id: &str,
        c: &Change<'_>,
    ) -> Result<Option<Deleted>, StoreError> {
        let mut tx = self.begin().await?;
        let keys: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT hash FROM api_keys WHERE app_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let creds: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM credentials WHERE app_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let subs: Vec<Subscription> = sqlx::query_as(
            "SELECT id, app_id, service_id, state, reason, created_at, updated_at, version, quota \
             FROM subscriptions WHERE app_id = $1 AND state IN ('pending', 'approved')",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for table in ["api_keys", "credentials", "subscriptions"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Ok(None);
        }
        Store::commit_with(tx, c).await?;
        Ok(Some(Deleted { keys, creds, subs }))
    }

    /// Deletes a service and its subscriptions: returns its live subscriptions.
    pub async fn delete_service(
        &self,
        id: &str,
        c: &Change<'_>,
    ) -> Result<Option<Vec<Subscription>>, StoreError> {
        let mut tx = self.begin().await?;
        let subs: Vec<Subscription> = sqlx::query_as(
            "SELECT id, app_id, service_id, state, reason, created_at, updated_at, version, quota \
             FROM subscriptions WHERE service_id = $1 AND state IN ('pending', 'approved')",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM subscriptions WHERE service_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM services WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Ok(None);
        }
        Store::commit_with(tx, c).await?;
        Ok(Some(subs))
    }

    /// Deletes a tenant that owns nothing (no services, apps or users); false when it does.
    pub async fn delete_tenant(&self, id: &str, c: &Change<'_>) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let owned: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM services WHERE tenant_id = $1) \
             + (SELECT count(*) FROM apps WHERE tenant_id = $1) \
             + (SELECT count(*) FROM users WHERE tenant_id = $1)",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if owned > 0 {
            return Ok(false);
        }
        let n = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        Store::commit_if(tx, n == 1, c).await
    }

    // Subscriptions.

    /// A subscription involves two tenants (the app's and the service's): `c` is recorded for
    /// `c.tenant_id` (the acting side) and, when it is another one, for `other_tenant` too (with
    /// the actor withheld), so that each sees it in its audit log.
    pub async fn insert_subscription(
        &self,
        s: &Subscription,
        c: &Change<'_>,
        other_tenant: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO subscriptions (id, app_id, service_id, state, reason, created_at, updated_at, version, quota) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)",
        )
        .bind(&s.id)
        .bind(&s.app_id)
        .bind(&s.service_id)
        .bind(&s.state)
        .bind(&s.reason)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(&s.quota)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::from_write(e, "the app has a live subscription to this service")
        })?;
        Store::record_both(&mut tx, c, other_tenant).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_both(
        tx: &mut Tx,
        c: &Change<'_>,
        other_tenant: &str,
    ) -> Result<(), StoreError> {
        Store::record(tx, c).await?;
        if c.tenant_id != Some(other_tenant) {
            // The other tenant learns what happened, not who of the acting tenant did it.
            let twin = Change {
                actor: "another tenant",
                tenant_id: Some(other_tenant),
                before: c.before.clone(),
                after: c.after.clone(),
                ..*c
            };
            Store::record(tx, &twin).await?;
        }
        Ok(())
    }

    /// Writes a subscription's state if its version is still `s.version - 1`.
    pub async fn update_subscription(
        &self,
        s: &Subscription,
        c: &Change<'_>,
        other_tenant: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE subscriptions SET state = $1, reason = $2, updated_at = $3, version = $4, \
             quota = $7 WHERE id = $5 AND version = $6",
        )
        .bind(&s.state)
        .bind(&s.reason)
        .bind(s.updated_at)
        .bind(s.version)
        .bind(&s.id)
        .bind(s.version - 1)
        .bind(&s.quota)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        Store::record_both(&mut tx, c, other_tenant).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        Ok(sqlx::query_as("SELECT id, app_id, service_id, state, reason, created_at, updated_at, version, quota FROM subscriptions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Subscriptions whose app or service belongs to one of `q.tenants`.
    pub async fn subscriptions(&self, q: &ListQuery) -> Result<Vec<Subscription>, StoreError> {
        let sql = "SELECT s.id, s.app_id, s.service_id, s.state, s.reason, s.created_at, s.updated_at, s.version, s.quota, \
                   a.name AS app_name, a.tenant_id AS app_tenant_id, t.name AS app_tenant_name, v.name AS service_name, \
                   v.tenant_id AS service_tenant_id \
                   FROM subscriptions s JOIN apps a ON a.id = s.app_id JOIN services v ON v.id = s.service_id \
                   JOIN tenants t ON t.id = a.tenant_id WHERE ";
        let scope = match q.side {
            None => {
                "(a.tenant_id IN (SELECT value FROM json_each($0)) OR v.tenant_id IN (SELECT value FROM json_each($0)) OR $0 IS NULL)"
            }
            Some(Side::Provider) => {
                "(v.tenant_id IN (SELECT value FROM json_each($0)) OR $0 IS NULL)"
            }
            Some(Side::Consumer) => {
                "(a.tenant_id IN (SELECT value FROM json_each($0)) OR $0 IS NULL)"
            }
        };
        let sql = format!("{sql}{scope}");
        let mut q2 = q.clone();
        let tenants = q2
            .tenants
            .take()
            .map(|t| serde_json::to_string(&t).unwrap_or_else(|_| "[]".into()));
        list_with(&self.pool, &sql, tenants, "s.id", "", &q2).await
    }

    /// Every live (pending or approved) subscription (start-up).
    pub async fn live_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, app_id, service_id, state, reason, created_at, updated_at, version, quota \
             FROM subscriptions WHERE state IN ('pending', 'approved')",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    // Audit.

    pub async fn audit(&self, q: &ListQuery) -> Result<Vec<AuditEntry>, StoreError> {
        // The audit log pages by its sequence (a cursor is a decimal seq).
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT seq, at, actor, action, object_kind, object_id, tenant_id, before, after FROM audit WHERE 1=1",
        );
        if let Some(c) = q.cursor.as_deref() {
            // A cursor that is not a sequence matches nothing rather than restarting the list.
            b.push(if q.descending {
                " AND seq < "
            } else {
                " AND seq > "
            })
            .push_bind(
                c.parse::<i64>()
                    .unwrap_or(if q.descending { i64::MIN } else { i64::MAX }),
            );
        }
        push_tenants(&mut b, "tenant_id", q.tenants.as_deref());
        for (col, v) in &q.filters {
            b.push(format!(" AND {col} = ")).push_bind(v.clone());
        }
        b.push(if q.descending {
            " ORDER BY seq DESC LIMIT "
        } else {
            " ORDER BY seq LIMIT "
        })
        .push_bind(q.limit);
        Ok(b.build_query_as().fetch_all(&self.pool).await?)
    }
}

fn push_tenants(b: &mut QueryBuilder<'_, Sqlite>, col: &str, tenants: Option<&[String]>) {
    if let Some(ts) = tenants {
        if ts.is_empty() {
            b.push(" AND 0");
            return;
        }
        b.push(format!(" AND {col} IN ("));
        let mut sep = b.separated(", ");
        for t in ts {
            sep.push_bind(t.clone());
        }
        b.push(")");
    }
}

/// Runs `base` (a SELECT, with or without WHERE) with the cursor, tenant scope, filters and limit
/// of `q`, ordered by `order` (the id column).
async fn list<T>(
    pool: &SqlitePool,
    base: &str,
    order: &str,
    tenant_col: &str,
    q: &ListQuery,
) -> Result<Vec<T>, StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    list_with(pool, base, None, order, tenant_col, q).await
}

/// [`list`] where `base` may reference one extra bound text value as `$0` (every occurrence).
/// `tenant_col`: the column `q.tenants` scopes (empty: the caller scoped the query itself).
async fn list_with<T>(
    pool: &SqlitePool,
    base: &str,
    extra: Option<String>,
    order: &str,
    tenant_col: &str,
    q: &ListQuery,
) -> Result<Vec<T>, StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new("");
    let mut parts = base.split("$0").peekable();
    while let Some(p) = parts.next() {
        b.push(p);
        if parts.peek().is_some() {
            b.push_bind(extra.clone());
        }
    }
    b.push(if base.contains(" WHERE ") {
        ""
    } else {
        " WHERE 1=1"
    });
    let prefix = order.strip_suffix("id").unwrap_or("");
    if let Some(c) = &q.cursor {
        b.push(format!(" AND {order} > ")).push_bind(c.clone());
    }
    if !tenant_col.is_empty() {
        push_tenants(
            &mut b,
            &format!("{prefix}{tenant_col}"),
            q.tenants.as_deref(),
        );
    }
    for (col, v) in &q.filters {
        b.push(format!(" AND {prefix}{col} = "))
            .push_bind(v.clone());
    }
    if let Some((col, text)) = &q.search {
        let mut pattern = String::with_capacity(text.len() + 2);
        pattern.push('%');
        for c in text.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        b.push(format!(" AND {prefix}{col} LIKE "))
            .push_bind(pattern)
            .push(" ESCAPE '\\'");
    }
    b.push(format!(" ORDER BY {order} LIMIT "))
        .push_bind(q.limit);
    Ok(b.build_query_as().fetch_all(pool).await?)
}
