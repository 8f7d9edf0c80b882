//! `/api/v1/analytics/...`: time series, top lists and error breakdowns from the stored rollups,
//! and call-log search, scoped like the rest of the admin API: a tenant's users see the calls to
//! their tenant's services and the calls their tenant's apps make (to another tenant's service
//! too: their own usage; such a call record is shown without the service's upstream target).
//! The config file's own routes are the operator's.
//!
//! Times are RFC 3339 or unix seconds; `to` defaults to now and `from` to an hour before `to`.
//! Steps are `60s`-multiples (`1m`, `5m`, `1h`, `1d`, ...); a range holds at most
//! [`MAX_POINTS`] steps. Older data has the resolution it was aged to (hours, then days).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{AdminState, ApiError, Principal};
use crate::control::analytics::{self, By, ErrorItem, Metric, Point, TopItem, search};
use crate::control::store::RollupFilter;

/// Most steps one series answers.
pub const MAX_POINTS: i64 = 10_000;
/// Longest range one query covers.
const MAX_RANGE: i64 = 400 * 86_400;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/analytics/series", get(series))
        .route("/api/v1/analytics/top", get(top))
        .route("/api/v1/analytics/errors", get(errors))
        .route("/api/v1/analytics/calls", get(calls))
}

/// The query parameters of every analytics endpoint (each reads the ones it needs).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct Params {
    /// Start of the range (RFC 3339 or unix seconds); default an hour before `to`.
    pub from: Option<String>,
    /// End of the range (exclusive); default now.
    pub to: Option<String>,
    /// Series step (`1m`, `5m`, `1h`, `1d`, ...); default from the range.
    pub step: Option<String>,
    pub tenant_id: Option<String>,
    pub service_id: Option<String>,
    pub app_id: Option<String>,
    pub route: Option<String>,
    /// An AI model alias.
    pub model: Option<String>,
    /// Top lists: `service` (default), `app`, `route`, `tenant`, `model`.
    pub by: Option<String>,
    /// Top lists: `calls` (default), `errors`, `latency_p99`, `tokens`, `cost`.
    pub metric: Option<String>,
    /// Top lists 1-100 (default 10); call search 1-1000 (default 100).
    pub limit: Option<String>,
    /// Call search: the response status.
    pub status: Option<String>,
    /// Call search: one request id.
    pub request_id: Option<String>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn time(field: &str, v: &str) -> Result<i64, ApiError> {
    if let Ok(n) = v.parse::<i64>() {
        if (0..=253_402_300_799).contains(&n) {
            return Ok(n);
        }
    }
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .ok_or_else(|| {
            ApiError::field(
                field,
                "not a time (RFC 3339, e.g. 2026-12-01T10:00:00Z, or unix seconds)",
            )
        })
}

struct Range {
    from: i64,
    to: i64,
}

impl Params {
    fn range(&self) -> Result<Range, ApiError> {
        let to = match &self.to {
            Some(t) => time("to", t)?,
            None => now() + 1,
        };
        let from = match &self.from {
            Some(f) => time("from", f)?,
            None => to - 3600,
        };
        if from >= to {
            return Err(ApiError::field("from", "must be before to"));
        }
        if to - from > MAX_RANGE {
            return Err(ApiError::field("from", "the range is longer than 400 days"));
        }
        Ok(Range { from, to })
    }

    /// The rollups `p` may see that these parameters ask for.
    fn filter(&self, p: &Principal) -> Result<RollupFilter, ApiError> {
        let tenants = match (&self.tenant_id, p.tenants()) {
            (Some(t), _) if !p.sees(t) => return Err(ApiError::not_found("no such tenant")),
            (Some(t), _) => Some(vec![t.clone()]),
            (None, visible) => visible,
        };
        for (field, v) in [
            ("service_id", &self.service_id),
            ("app_id", &self.app_id),
            ("route", &self.route),
            ("model", &self.model),
        ] {
            if v.as_ref().is_some_and(|v| v.is_empty() || v.len() > 200) {
                return Err(ApiError::field(field, "must be 1 to 200 characters"));
            }
        }
        Ok(RollupFilter {
            tenants,
            service: self.service_id.clone(),
            app: self.app_id.clone(),
            route: self.route.clone(),
            model: self.model.clone(),
        })
    }

    fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match &self.limit {
            None => Ok(default),
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::field("limit", format!("must be 1 to {max}"))),
        }
    }
}

fn step(v: Option<&str>, r: &Range) -> Result<i64, ApiError> {
    let s = match v {
        Some(s) => {
            let d = humantime::parse_duration(s)
                .map_err(|_| ApiError::field("step", "not a duration such as 1m, 5m, 1h, 1d"))?;
            let secs = d.as_secs() as i64;
            if secs < 60 || secs % 60 != 0 {
                return Err(ApiError::field("step", "must be a whole number of minutes"));
            }
            secs
        }
        None => {
            let span = r.to - r.from;
            match span {
                s if s <= 6 * 3600 => 60,
                s if s <= 7 * 86_400 => 3600,
                _ => 86_400,
            }
        }
    };
    if (r.to - r.from) / s > MAX_POINTS {
        return Err(ApiError::field(
            "step",
            format!("the range would have more than {MAX_POINTS} steps"),
        ));
    }
    Ok(s)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SeriesOut {
    pub from: String,
    pub to: String,
    pub step_seconds: i64,
    pub points: Vec<Point>,
}

fn rfc3339(t: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
    )
    .to_string()
}

#[utoipa::path(get, path = "/api/v1/analytics/series", params(Params),
    responses((status = 200, body = SeriesOut)))]
pub async fn series(
    State(st): State<AdminState>,
    p: Principal,
    Query(q): Query<Params>,
) -> Result<Json<SeriesOut>, ApiError> {
    let r = q.range()?;
    let step = step(q.step.as_deref(), &r)?;
    let f = q.filter(&p)?;
    let points = analytics::series(&st.store, r.from, r.to, step, &f).await?;
    Ok(Json(SeriesOut {
        from: rfc3339(r.from),
        to: rfc3339(r.to),
        step_seconds: step,
        points,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TopOut {
    pub items: Vec<TopItem>,
}

#[utoipa::path(get, path = "/api/v1/analytics/top", params(Params),
    responses((status = 200, body = TopOut)))]
pub async fn top(
    State(st): State<AdminState>,
    p: Principal,
    Query(q): Query<Params>,
) -> Result<Json<TopOut>, ApiError> {
    let r = q.range()?;
    let f = q.filter(&p)?;
    let by = match q.by.as_deref() {
        None | Some("service") => By::Service,
        Some("app") => By::App,
        Some("route") => By::Route,
        Some("tenant") => By::Tenant,
        Some("model") => By::Model,
        Some(_) => {
            return Err(ApiError::field(
                "by",
                "one of service, app, route, tenant, model",
            ));
        }
    };
    let metric = match q.metric.as_deref() {
        None | Some("calls") => Metric::Calls,
        Some("errors") => Metric::Errors,
        Some("latency_p99") => Metric::LatencyP99,
        Some("tokens") => Metric::Tokens,
        Some("cost") => Metric::Cost,
        Some(_) => {
            return Err(ApiError::field(
                "metric",
                "one of calls, errors, latency_p99, tokens, cost",
            ));
        }
    };
    let limit = q.limit(10, 100)?;
    let items = analytics::top(&st.store, r.from, r.to, by, metric, limit, &f).await?;
    Ok(Json(TopOut { items }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorsOut {
    pub items: Vec<ErrorItem>,
}

#[utoipa::path(get, path = "/api/v1/analytics/errors", params(Params),
    responses((status = 200, body = ErrorsOut)))]
pub async fn errors(
    State(st): State<AdminState>,
    p: Principal,
    Query(q): Query<Params>,
) -> Result<Json<ErrorsOut>, ApiError> {
    let r = q.range()?;
    let f = q.filter(&p)?;
    let items = analytics::errors(&st.store, r.from, r.to, &f).await?;
    Ok(Json(ErrorsOut { items }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CallsOut {
    /// Call records (the call log's JSON lines), newest first.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    pub scanned_bytes: u64,
    /// The search stopped at its byte bound before it covered the range.
    pub truncated: bool,
}

#[utoipa::path(get, path = "/api/v1/analytics/calls", params(Params),
    responses((status = 200, body = CallsOut), (status = 409, description = "no call-log file to search")))]
pub async fn calls(
    State(st): State<AdminState>,
    p: Principal,
    Query(q): Query<Params>,
) -> Result<Json<CallsOut>, ApiError> {
    let r = q.range()?;
    let f = q.filter(&p)?;
    let limit = q.limit(100, 1000)?;
    let status = match &q.status {
        None => None,
        Some(s) => Some(
            s.parse::<u16>()
                .ok()
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| ApiError::field("status", "a status code, 100 to 599"))?,
        ),
    };
    if q.request_id
        .as_ref()
        .is_some_and(|v| v.is_empty() || v.len() > 200)
    {
        return Err(ApiError::field("request_id", "must be 1 to 200 characters"));
    }
    let Some(path) = st
        .publisher
        .current()
        .config
        .call_log
        .as_ref()
        .and_then(|c| c.file.as_ref())
        .map(|f| f.path.clone())
    else {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "no_call_log_file",
            "call search reads the call log's file: configure [call_log.file]",
        ));
    };
    let apps = match &f.tenants {
        Some(ts) => st.store.app_ids_of(ts).await?.into_iter().collect(),
        None => Default::default(),
    };
    let query = search::Query {
        from_us: r.from * 1_000_000,
        to_us: r.to * 1_000_000,
        apps,
        tenants: f.tenants,
        service: f.service,
        app: f.app,
        status,
        request_id: q.request_id.clone(),
        limit,
    };
    let found = tokio::task::spawn_blocking(move || search::search(&path, &query))
        .await
        .map_err(|_| ApiError::internal("the call search failed (logged)"))?;
    Ok(Json(CallsOut {
        items: found.items,
        scanned_bytes: found.scanned_bytes,
        truncated: found.truncated,
    }))
}
