//! `/api/v1/sessions`: the operator's console sessions, listed and ended one by one (rotating the
//! bootstrap token ends them all). Users see and revoke their own sessions and tokens under
//! `/api/v1/tokens`.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::{self, Principal, session_cookie};
use super::{AdminState, ApiError, Body, ListParams, page};
use crate::control::model::{NoInput, OperatorSessionInfo, Page, now_ms};
use crate::control::store::Change;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/sessions", get(list))
        .route("/api/v1/sessions/{id}/revoke", post(revoke))
}

/// The hash of the session cookie this request is authenticated by: none for a bearer call
/// (a bearer token is used before a cookie).
fn cookie_hash(headers: &HeaderMap) -> Option<[u8; 32]> {
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        return None;
    }
    session_cookie(headers).map(|t| crate::catalog::hash_key(t.as_bytes()))
}

#[utoipa::path(get, path = "/api/v1/sessions", params(ListParams),
    responses((status = 200, body = Page<OperatorSessionInfo>), (status = 403, description = "not the operator")))]
pub async fn list(
    State(st): State<AdminState>,
    p: Principal,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<OperatorSessionInfo>>, ApiError> {
    p.require_operator()?;
    let q = params.query(&p, &[])?;
    let current = cookie_hash(&headers);
    let rows = st
        .store
        .operator_sessions(&auth::operator_fp(&st), current.as_ref(), now_ms(), &q)
        .await?;
    Ok(Json(page(rows, &q, |s| s.id.clone(), |s| s)))
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/revoke",
    responses((status = 204, description = "the session has ended"), (status = 403), (status = 404)))]
pub async fn revoke(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    _body: Body<NoInput>,
) -> Result<axum::http::StatusCode, ApiError> {
    p.require_operator()?;
    let now = now_ms();
    let change = Change {
        actor: &p.actor(),
        action: "session.revoke",
        kind: "session",
        id: &id,
        tenant_id: None,
        before: None,
        after: None,
        at: now,
    };
    let fp = auth::operator_fp(&st);
    if st
        .store
        .revoke_operator_session(&id, &fp, now, &change)
        .await?
    {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no live session {id:?}")))
    }
}
