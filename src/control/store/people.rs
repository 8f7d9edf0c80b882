//! The store's queries for people and their secrets' records: users, admin tokens, and app
//! credentials (JWT, basic, HMAC). Nothing here holds a secret in the clear: passwords are
//! argon2id strings, tokens SHA-256 hashes, credential secrets sealed by the keyring.

use super::{Change, ListQuery, Store, StoreError, list};
use crate::control::model::{CredentialRow, OperatorSessionInfo, TokenInfo, User};

/// An operator console session to record (its token's hash only).
pub struct NewOperatorSession<'a> {
    pub id: &'a str,
    pub hash: &'a [u8; 32],
    /// Fingerprint of the bootstrap token it was made with.
    pub token_fp: &'a [u8; 32],
    pub created_at: i64,
    pub expires_at: i64,
    pub client: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl Store {
    pub async fn insert_user(&self, u: &User, c: &Change<'_>) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let seq = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (id, tenant_id, email, password_hash, role, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1) RETURNING seq",
        )
        .bind(&u.id)
        .bind(&u.tenant_id)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(&u.role)
        .bind(u.created_at)
        .bind(u.updated_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "a user with this email exists"))?;
        Store::commit_with(tx, c).await?;
        Ok(seq)
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Sets a user's password hash and revokes every token it has (sessions and personal tokens:
    /// a password changes because it may be known, and tokens made with it may be too).
    pub async fn set_password(
        &self,
        id: &str,
        phc: &str,
        at: i64,
        c: &Change<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2, version = version + 1 WHERE id = $3",
        )
        .bind(phc)
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Store::commit_with(tx, c).await?;
        Ok(true)
    }

    /// Enabled owners of a tenant.
    pub async fn owners(&self, tenant: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'owner' AND disabled_at IS NULL",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn users(&self, q: &ListQuery) -> Result<Vec<User>, StoreError> {
        list(&self.pool, "SELECT * FROM users", "id", "tenant_id", q).await
    }

    /// Writes a user's role if its version is still `u.version - 1`.
    pub async fn update_user_role(&self, u: &User, c: &Change<'_>) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE users SET role = $1, updated_at = $2, version = $3 WHERE id = $4 AND version = $5",
        )
        .bind(&u.role)
        .bind(u.updated_at)
        .bind(u.version)
        .bind(&u.id)
        .bind(u.version - 1)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Store::commit_if(tx, n == 1, c).await
    }

    /// Disables a user and revokes every token it has.
    pub async fn disable_user(
        &self,
        id: &str,
        at: i64,
        c: &Change<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE users SET disabled_at = $1, updated_at = $1, version = version + 1 \
             WHERE id = $2 AND disabled_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Store::commit_with(tx, c).await?;
        Ok(true)
    }

    /// Stores a token; `c` is recorded for personal tokens (sessions are not changes).
    pub async fn insert_token(
        &self,
        t: &TokenInfo,
        hash: &[u8; 32],
        c: Option<&Change<'_>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO tokens (id, user_id, kind, prefix, hash, name, scopes, created_at, expires_at, client, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&t.id)
        .bind(&t.user_id)
        .bind(&t.kind)
        .bind(&t.prefix)
        .bind(&hash[..])
        .bind(&t.name)
        .bind(&t.scopes)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(&t.client)
        .bind(&t.user_agent)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "token collision"))?;
        if let Some(c) = c {
            Store::record(&mut tx, c).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The live token with this hash and its (enabled) user.
    pub async fn token_user(
        &self,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(TokenInfo, User)>, StoreError> {
        let t: Option<TokenInfo> = sqlx::query_as(
            "SELECT id, user_id, kind, prefix, name, scopes, created_at, expires_at, revoked_at, client, user_agent \
             FROM tokens WHERE hash = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(&hash[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(t) = t else { return Ok(None) };
        let u = self.user(&t.user_id).await?;
        Ok(u.filter(|u| u.disabled_at.is_none()).map(|u| (t, u)))
    }

    /// Records a console session of the operator (its token's hash only).
    pub async fn insert_operator_session(
        &self,
        s: &NewOperatorSession<'_>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO operator_sessions (id, hash, token_fp, created_at, expires_at, client, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.id)
        .bind(&s.hash[..])
        .bind(&s.token_fp[..])
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.client)
        .bind(s.user_agent)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_write(e, "session collision"))?;
        Ok(())
    }

    /// The id and expiry of the live operator session whose token hashes to `hash`, made with
    /// the bootstrap token whose fingerprint is `token_fp`.
    pub async fn operator_session(
        &self,
        hash: &[u8; 32],
        token_fp: &[u8; 32],
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, expires_at FROM operator_sessions \
             WHERE hash = $1 AND token_fp = $2 AND revoked_at IS NULL AND expires_at > $3",
        )
        .bind(&hash[..])
        .bind(&token_fp[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The live operator sessions of the bootstrap token whose fingerprint is `token_fp`, oldest
    /// first by id (they sort by creation), a page of `q`; `current` marks the one whose token
    /// hashes to `current`.
    pub async fn operator_sessions(
        &self,
        token_fp: &[u8; 32],
        current: Option<&[u8; 32]>,
        now: i64,
        q: &ListQuery,
    ) -> Result<Vec<OperatorSessionInfo>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, created_at, expires_at, client, user_agent, hash = $1 AS current \
             FROM operator_sessions \
             WHERE revoked_at IS NULL AND expires_at > $2 AND token_fp = $3 AND id > $4 \
             ORDER BY id LIMIT $5",
        )
        .bind(current.map(|h| h.to_vec()).unwrap_or_default())
        .bind(now)
        .bind(&token_fp[..])
        .bind(q.cursor.as_deref().unwrap_or(""))
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ends the live operator session `id` of the bootstrap token `token_fp`; false when there
    /// is none.
    pub async fn revoke_operator_session(
        &self,
        id: &str,
        token_fp: &[u8; 32],
        at: i64,
        c: &Change<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE operator_sessions SET revoked_at = $1 \
             WHERE id = $2 AND token_fp = $3 AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(at)
        .bind(id)
        .bind(&token_fp[..])
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            Store::record(&mut tx, c).await?;
            tx.commit().await?;
        }
        Ok(n == 1)
    }

    /// Ends the session (a user's or the operator's) whose token hashes to `hash`; expired
    /// operator sessions are deleted on the way.
    pub async fn end_session(&self, hash: &[u8; 32], at: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE hash = $2 AND kind = 'session' AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(&hash[..])
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM operator_sessions WHERE hash = $1 OR expires_at <= $2")
            .bind(&hash[..])
            .bind(at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenInfo>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, kind, prefix, name, scopes, created_at, expires_at, revoked_at, client, user_agent FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn tokens(&self, q: &ListQuery) -> Result<Vec<TokenInfo>, StoreError> {
        list(
            &self.pool,
            "SELECT id, user_id, kind, prefix, name, scopes, created_at, expires_at, revoked_at, client, user_agent FROM tokens",
            "id",
            "",
            q,
        )
        .await
    }

    /// Revokes a token; false when it was revoked already.
    pub async fn revoke_token(
        &self,
        id: &str,
        at: i64,
        c: Option<&Change<'_>>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 1 {
            if let Some(c) = c {
                Store::record(&mut tx, c).await?;
            }
            tx.commit().await?;
        }
        Ok(n == 1)
    }

    // Credentials.

    pub async fn insert_credential(
        &self,
        r: &CredentialRow,
        c: &Change<'_>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let seq = sqlx::query_scalar::<_, i64>(
            "INSERT INTO credentials (id, app_id, kind, lookup, config, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
        )
        .bind(&r.id)
        .bind(&r.app_id)
        .bind(&r.kind)
        .bind(&r.lookup)
        .bind(&r.config)
        .bind(r.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_write(e, "a live credential of this kind has this issuer"))?;
        Store::commit_with(tx, c).await?;
        Ok(seq)
    }

    pub async fn credential(&self, id: &str) -> Result<Option<CredentialRow>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM credentials WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn credentials(&self, q: &ListQuery) -> Result<Vec<CredentialRow>, StoreError> {
        list(&self.pool, "SELECT * FROM credentials", "id", "", q).await
    }

    pub async fn live_credentials(&self) -> Result<Vec<CredentialRow>, StoreError> {
        Ok(
            sqlx::query_as("SELECT * FROM credentials WHERE revoked_at IS NULL ORDER BY seq")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn revoke_credential(
        &self,
        id: &str,
        at: i64,
        c: &Change<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Store::commit_if(tx, n == 1, c).await
    }
}
