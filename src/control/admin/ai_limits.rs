//! `/api/v1/apps/{id}/ai-limits` and `/api/v1/tenants/{id}/ai-limits`: the AI limits of an app
//! (set by its tenant's governors) and of a tenant (set by an operator): requests and tokens per
//! minute, token and cost budgets per day and month. They apply from the next call, node-wide; a
//! budget whose limits are unchanged keeps what it spent.

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};

use super::{AdminState, ApiError, Body, Need, Principal};
use crate::config::ai::{RawAiLimits, limits};
use crate::control::model::{App, Tenant, now_ms};
use crate::control::store::{Change, LimitsOf};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route(
            "/api/v1/apps/{id}/ai-limits",
            put(set_app).delete(clear_app),
        )
        .route(
            "/api/v1/tenants/{id}/ai-limits",
            put(set_tenant).delete(clear_tenant),
        )
}

/// The limits as stored (JSON), validated; errors name the field.
fn checked(body: &RawAiLimits) -> Result<(crate::limit::budget::AiLimits, String), ApiError> {
    let l = limits("ai_limits", body).map_err(|e| match e {
        crate::config::ConfigError::Invalid { field, reason } => {
            ApiError::field(field.trim_start_matches("ai_limits.").to_string(), reason)
        }
        other => ApiError::field("ai_limits", other.to_string()),
    })?;
    let text = serde_json::to_string(body).map_err(|_| ApiError::internal("cannot encode"))?;
    Ok((l, text))
}

async fn app(st: &AdminState, p: &Principal, id: &str) -> Result<App, ApiError> {
    match st.store.app(id).await? {
        Some(a) if p.sees(&a.tenant_id) => Ok(a),
        _ => Err(ApiError::not_found(format!("no app {id:?}"))),
    }
}

async fn tenant(st: &AdminState, p: &Principal, id: &str) -> Result<Tenant, ApiError> {
    match st.store.tenant(id).await? {
        Some(t) if p.sees(&t.id) => Ok(t),
        _ => Err(ApiError::not_found(format!("no tenant {id:?}"))),
    }
}

/// Whose limits a change is about: what the audit log and the store call it.
struct Subject<'a> {
    of: LimitsOf,
    kind: &'static str,
    id: &'a str,
    seq: i64,
    tenant_id: &'a str,
}

/// Sets (`body`) or clears (`None`) the limits of `who`, whose view before the change is
/// `before` and after it `after` (both for the audit log): the store, then the catalog.
async fn apply<T: serde::Serialize>(
    st: &AdminState,
    p: &Principal,
    who: Subject<'_>,
    before: &T,
    after: impl FnOnce(Option<String>) -> T,
    body: Option<&RawAiLimits>,
) -> Result<(), ApiError> {
    let parsed = body.map(checked).transpose()?;
    let text = parsed.as_ref().map(|(_, t)| t.clone());
    let now = now_ms();
    let mut managed = st.managed.lock().await;
    let action = match (who.of, body.is_some()) {
        (LimitsOf::App, true) => "app.ai_limits",
        (LimitsOf::App, false) => "app.ai_limits.clear",
        (LimitsOf::Tenant, true) => "tenant.ai_limits",
        (LimitsOf::Tenant, false) => "tenant.ai_limits.clear",
    };
    let change = Change {
        actor: &p.actor(),
        action,
        kind: who.kind,
        id: who.id,
        tenant_id: Some(who.tenant_id),
        before: serde_json::to_string(before).ok(),
        after: serde_json::to_string(&after(text.clone())).ok(),
        at: now,
    };
    if !st
        .store
        .set_ai_limits(who.of, who.id, text.as_deref(), now, &change)
        .await?
    {
        return Err(ApiError::not_found(format!("no {} {:?}", who.kind, who.id)));
    }
    managed.set_ai_limits(who.of, who.seq, parsed.map(|(l, _)| l))?;
    Ok(())
}

async fn apply_app(
    st: &AdminState,
    p: &Principal,
    id: &str,
    body: Option<&RawAiLimits>,
) -> Result<Json<App>, ApiError> {
    let before = app(st, p, id).await?;
    p.require(Need::Govern)?;
    let who = Subject {
        of: LimitsOf::App,
        kind: "app",
        id,
        seq: before.seq,
        tenant_id: &before.tenant_id,
    };
    let after = |ai_limits| App {
        ai_limits,
        ..before.clone()
    };
    apply(st, p, who, &before, after, body).await?;
    Ok(Json(app(st, p, id).await?))
}

async fn apply_tenant(
    st: &AdminState,
    p: &Principal,
    id: &str,
    body: Option<&RawAiLimits>,
) -> Result<Json<Tenant>, ApiError> {
    let before = tenant(st, p, id).await?;
    p.require_operator()?;
    let who = Subject {
        of: LimitsOf::Tenant,
        kind: "tenant",
        id,
        seq: before.seq,
        tenant_id: id,
    };
    let after = |ai_limits| Tenant {
        ai_limits,
        ..before.clone()
    };
    apply(st, p, who, &before, after, body).await?;
    Ok(Json(tenant(st, p, id).await?))
}

#[utoipa::path(put, path = "/api/v1/apps/{id}/ai-limits", request_body = Object,
    responses((status = 200, body = App), (status = 403), (status = 404), (status = 422)))]
pub async fn set_app(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    Body(body): Body<RawAiLimits>,
) -> Result<Json<App>, ApiError> {
    apply_app(&st, &p, &id, Some(&body)).await
}

#[utoipa::path(delete, path = "/api/v1/apps/{id}/ai-limits",
    responses((status = 200, body = App), (status = 403), (status = 404)))]
pub async fn clear_app(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<App>, ApiError> {
    apply_app(&st, &p, &id, None).await
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/ai-limits", request_body = Object,
    responses((status = 200, body = Tenant), (status = 403), (status = 404), (status = 422)))]
pub async fn set_tenant(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    Body(body): Body<RawAiLimits>,
) -> Result<Json<Tenant>, ApiError> {
    apply_tenant(&st, &p, &id, Some(&body)).await
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/ai-limits",
    responses((status = 200, body = Tenant), (status = 403), (status = 404)))]
pub async fn clear_tenant(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    apply_tenant(&st, &p, &id, None).await
}
