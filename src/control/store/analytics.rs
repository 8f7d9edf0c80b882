//! The analytics rollups in the store (`rollups`, migrations 0006 and 0007): adding a closed period (merged
//! into what the store has for it, so a late period or a restart within a minute adds up),
//! downsampling minutes into hours and hours into days, expiry, and range reads.

use std::collections::HashMap;

use super::{Store, StoreError};
use crate::observe::rollup::{Agg, Key, decode_histogram, encode_histogram};

/// Period lengths, in seconds.
pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// A stored rollup row.
#[derive(Debug, Clone)]
pub struct Rollup {
    pub res: i64,
    pub bucket: i64,
    pub key: Key,
    pub agg: Agg,
}

/// What a range read keeps.
#[derive(Debug, Default, Clone)]
pub struct RollupFilter {
    /// Only calls to these tenants' services or by these tenants' apps (`None`: every call, the
    /// config file's routes included).
    pub tenants: Option<Vec<String>>,
    pub service: Option<String>,
    pub app: Option<String>,
    pub route: Option<String>,
    /// An AI model alias.
    pub model: Option<String>,
}

/// A row as read: the period, the key's text columns, class, and the sums.
#[derive(sqlx::FromRow)]
struct Row {
    res: i64,
    bucket: i64,
    tenant: String,
    service: String,
    route: String,
    app: String,
    model: String,
    class: i64,
    code: String,
    count: i64,
    errors: i64,
    bytes_in: i64,
    bytes_out: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost_nanos: i64,
    latency: Vec<u8>,
}

fn from_row(r: Row) -> Rollup {
    // A negative figure (a damaged row) reads as 0, never as a huge one.
    let n = |v: i64| v.max(0) as u64;
    Rollup {
        res: r.res,
        bucket: r.bucket,
        key: Key {
            tenant: r.tenant,
            service: r.service,
            route: r.route,
            app: r.app,
            model: r.model,
            class: r.class as u8,
            code: r.code,
        },
        agg: Agg {
            count: n(r.count),
            errors: n(r.errors),
            bytes_in: n(r.bytes_in),
            bytes_out: n(r.bytes_out),
            input_tokens: n(r.input_tokens),
            output_tokens: n(r.output_tokens),
            cost_nanos: n(r.cost_nanos),
            latency: decode_histogram(&r.latency),
        },
    }
}

const COLUMNS: &str = "res, bucket, tenant, service, route, app, model, class, code, count, errors, \
                       bytes_in, bytes_out, input_tokens, output_tokens, cost_nanos, latency";

impl Store {
    /// A write transaction that takes SQLite's write lock at once: its read-then-write of a
    /// rollup cannot meet another writer's commit in between (a deferred one would fail with
    /// `SQLITE_BUSY_SNAPSHOT` then, which the busy timeout does not wait out).
    async fn begin_write(&self) -> Result<super::Tx, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Adds `rows` to the period (`res`, `bucket`), merging with what is stored for each key.
    pub async fn add_rollups(
        &self,
        res: i64,
        bucket: i64,
        rows: &[(Key, Agg)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (k, a) in rows {
            merge_into(&mut tx, res, bucket, k, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Merges every `from`-long period that starts before `before` into `to`-long ones, and
    /// deletes the merged rows; one transaction per target period, so an interruption loses
    /// nothing and counts nothing twice. Returns the rows merged.
    pub async fn downsample(&self, from: i64, to: i64, before: i64) -> Result<u64, StoreError> {
        let before = before - before.rem_euclid(to);
        let targets: Vec<(i64,)> = sqlx::query_as(
            "SELECT DISTINCT (bucket / $3) * $3 FROM rollups WHERE res = $1 AND bucket < $2",
        )
        .bind(from)
        .bind(before)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut merged = 0;
        for (target,) in targets {
            let mut tx = self.begin_write().await?;
            let rows: Vec<Row> = sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM rollups WHERE res = $1 AND bucket >= $2 AND bucket < $3"
            ))
            .bind(from)
            .bind(target)
            .bind(target + to)
            .fetch_all(&mut *tx)
            .await?;
            let mut sum: HashMap<Key, Agg> = HashMap::new();
            for r in rows.into_iter().map(from_row) {
                merged += 1;
                sum.entry(r.key).or_default().merge(&r.agg);
            }
            for (k, a) in &sum {
                merge_into(&mut tx, to, target, k, a).await?;
            }
            sqlx::query("DELETE FROM rollups WHERE res = $1 AND bucket >= $2 AND bucket < $3")
                .bind(from)
                .bind(target)
                .bind(target + to)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(merged)
    }

    /// Deletes `res`-long periods that start before `before`. Returns the rows deleted.
    pub async fn expire_rollups(&self, res: i64, before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM rollups WHERE res = $1 AND bucket < $2")
            .bind(res)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Every stored period that starts in `[from, to)`, whatever its resolution, that `f` keeps.
    /// The ids of these tenants' apps.
    pub async fn app_ids_of(&self, tenants: &[String]) -> Result<Vec<String>, StoreError> {
        let list = serde_json::to_string(tenants).unwrap_or_else(|_| "[]".into());
        Ok(sqlx::query_scalar(
            "SELECT id FROM apps WHERE tenant_id IN (SELECT value FROM json_each($1))",
        )
        .bind(list)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn rollups(
        &self,
        from: i64,
        to: i64,
        f: &RollupFilter,
    ) -> Result<Vec<Rollup>, StoreError> {
        let mut q =
            sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM rollups WHERE bucket >= "));
        q.push_bind(from).push(" AND bucket < ").push_bind(to);
        if let Some(ts) = &f.tenants {
            if ts.is_empty() {
                return Ok(Vec::new());
            }
            let list = serde_json::to_string(ts).unwrap_or_else(|_| "[]".into());
            q.push(" AND (tenant IN (SELECT value FROM json_each(")
                .push_bind(list.clone())
                .push(")) OR (app != '' AND app IN (SELECT id FROM apps WHERE tenant_id IN (SELECT value FROM json_each(")
                .push_bind(list)
                .push(")))))");
        }
        for (col, v) in [
            ("service", &f.service),
            ("app", &f.app),
            ("route", &f.route),
            ("model", &f.model),
        ] {
            if let Some(v) = v {
                q.push(format!(" AND {col} = ")).push_bind(v.clone());
            }
        }
        let rows: Vec<Row> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(from_row).collect())
    }
}

async fn merge_into(
    tx: &mut super::Tx,
    res: i64,
    bucket: i64,
    k: &Key,
    a: &Agg,
) -> Result<(), StoreError> {
    let old: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rollups WHERE res = $1 AND bucket = $2 AND tenant = $3 \
         AND service = $4 AND route = $5 AND app = $6 AND model = $7 AND class = $8 AND code = $9"
    ))
    .bind(res)
    .bind(bucket)
    .bind(&k.tenant)
    .bind(&k.service)
    .bind(&k.route)
    .bind(&k.app)
    .bind(&k.model)
    .bind(i64::from(k.class))
    .bind(&k.code)
    .fetch_optional(&mut **tx)
    .await?;
    let mut sum = a.clone();
    if let Some(o) = old {
        sum.merge(&from_row(o).agg);
    }
    sqlx::query(&format!(
        "INSERT INTO rollups ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (res, bucket, tenant, service, route, app, model, class, code) DO UPDATE SET \
         count = excluded.count, errors = excluded.errors, bytes_in = excluded.bytes_in, \
         bytes_out = excluded.bytes_out, input_tokens = excluded.input_tokens, \
         output_tokens = excluded.output_tokens, cost_nanos = excluded.cost_nanos, \
         latency = excluded.latency"
    ))
    .bind(res)
    .bind(bucket)
    .bind(&k.tenant)
    .bind(&k.service)
    .bind(&k.route)
    .bind(&k.app)
    .bind(&k.model)
    .bind(i64::from(k.class))
    .bind(&k.code)
    .bind(sum.count as i64)
    .bind(sum.errors as i64)
    .bind(sum.bytes_in as i64)
    .bind(sum.bytes_out as i64)
    .bind(sum.input_tokens.min(i64::MAX as u64) as i64)
    .bind(sum.output_tokens.min(i64::MAX as u64) as i64)
    .bind(sum.cost_nanos.min(i64::MAX as u64) as i64)
    .bind(encode_histogram(&sum.latency))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
