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

async fn apply_app(
    st: &AdminState,
    p: &Principal,
    id: &str,
    body: Option<&RawAiLimits>,
) -> Result<Json<App>, ApiError> {
    let before = app(st, p, id).await?;
    p.require(Need::Govern)?;
    let parsed = body.map(checked).transpose()?;
    let now = now_ms();
    let mut managed = st.managed.lock().await;
    let mut after = before.clone();
    after.ai_limits = parsed.as_ref().map(|(_, t)| t.clone());
    let change = Change {
        actor: &p.actor(),
        action: if body.is_some() {
            "app.ai_limits"
        } else {
            "app.ai_limits.clear"
        },
        kind: "app",
        id,
        tenant_id: Some(&before.tenant_id),
        before: serde_json::to_string(&before).ok(),
        after: serde_json::to_string(&after).ok(),
        at: now,
    };
    let text = after.ai_limits.as_deref();
    if !st
        .store
        .set_ai_limits(LimitsOf::App, id, text, now, &change)
        .await?
    {
        return Err(ApiError::not_found(format!("no app {id:?}")));
    }
    managed.set_ai_limits(LimitsOf::App, before.seq, parsed.map(|(l, _)| l))?;
    drop(managed);
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
    let parsed = body.map(checked).transpose()?;
    let now = now_ms();
    let mut managed = st.managed.lock().await;
    let mut after = before.clone();
    after.ai_limits = parsed.as_ref().map(|(_, t)| t.clone());
    let change = Change {
        actor: &p.actor(),
        action: if body.is_some() {
            "tenant.ai_limits"
        } else {
            "tenant.ai_limits.clear"
        },
        kind: "tenant",
        id,
        tenant_id: Some(id),
        before: serde_json::to_string(&before).ok(),
        after: serde_json::to_string(&after).ok(),
        at: now,
    };
    let text = after.ai_limits.as_deref();
    if !st
        .store
        .set_ai_limits(LimitsOf::Tenant, id, text, now, &change)
        .await?
    {
        return Err(ApiError::not_found(format!("no tenant {id:?}")));
    }
    managed.set_ai_limits(LimitsOf::Tenant, before.seq, parsed.map(|(l, _)| l))?;
    drop(managed);
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
