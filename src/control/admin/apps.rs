//! `/api/v1/apps`: consumers owned by a tenant, and their API keys. A key is shown once, in the
//! answer that made it; afterwards only its id and visible prefix. Several keys may be live at
//! once (rotation); each may expire and be revoked.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::tenants::check_name;
use super::{AdminState, ApiError, Body, ListParams, Need, Principal, etag, page};
use crate::catalog::ApiKey;
use crate::control::model::{
    App, KeyInfo, NewApp, NewKey, NewKeyShown, NoInput, Page, new_id, now_ms, parse_rfc3339,
};
use crate::control::store::Change;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/apps", get(list).post(create))
        .route("/api/v1/apps/{id}", get(one).delete(delete))
        .route("/api/v1/apps/{id}/keys", get(keys).post(create_key))
        .route("/api/v1/apps/{id}/keys/{key_id}/revoke", post(revoke_key))
}

async fn owned(st: &AdminState, p: &Principal, id: &str) -> Result<App, ApiError> {
    match st.store.app(id).await? {
        Some(a) if p.sees(&a.tenant_id) => Ok(a),
        _ => Err(ApiError::not_found(format!("no app {id:?}"))),
    }
}

#[utoipa::path(post, path = "/api/v1/apps", request_body = NewApp,
    responses((status = 201, body = App), (status = 404, description = "no such tenant"), (status = 409), (status = 422)))]
pub async fn create(
    State(st): State<AdminState>,
    p: Principal,
    Body(body): Body<NewApp>,
) -> Result<impl IntoResponse, ApiError> {
    check_name("name", &body.name)?;
    super::tenants::named_tenant(&st, &p, &body.tenant_id).await?;
    p.require(Need::Develop)?;
    let now = now_ms();
    let mut app = App {
        seq: 0,
        id: new_id("app"),
        tenant_id: body.tenant_id,
        name: body.name,
        ai_limits: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut managed = st.managed.lock().await;
    let change = Change {
        actor: &p.actor(),
        action: "app.create",
        kind: "app",
        id: &app.id,
        tenant_id: Some(&app.tenant_id),
        before: None,
        after: serde_json::to_string(&app).ok(),
        at: now,
    };
    app.seq = st.store.insert_app(&app, &change).await?;
    managed.app_added(&app);
    drop(managed);
    Ok((
        StatusCode::CREATED,
        [("etag", etag(app.version))],
        Json(app),
    ))
}

#[utoipa::path(get, path = "/api/v1/apps", params(ListParams),
    responses((status = 200, body = Page<App>)))]
pub async fn list(
    State(st): State<AdminState>,
    p: Principal,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<App>>, ApiError> {
    let q = params.query(&p, &["tenant_id", "q:name"])?;
    let rows = st.store.apps(&q).await?;
    Ok(Json(page(rows, &q, |a: &App| a.id.clone(), |a| a)))
}

#[utoipa::path(get, path = "/api/v1/apps/{id}", responses((status = 200, body = App), (status = 404)))]
pub async fn one(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let a = owned(&st, &p, &id).await?;
    Ok(([("etag", etag(a.version))], Json(a)))
}

#[utoipa::path(delete, path = "/api/v1/apps/{id}",
    responses((status = 204, description = "deleted, with its keys, credentials and subscriptions"), (status = 403), (status = 404), (status = 412)))]
pub async fn delete(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    let mut managed = st.managed.lock().await;
    let app = owned(&st, &p, &id).await?;
    p.require(Need::Develop)?;
    super::check_if_match(&headers, app.version)?;
    let change = Change {
        actor: &p.actor(),
        action: "app.delete",
        kind: "app",
        id: &app.id,
        tenant_id: Some(&app.tenant_id),
        before: serde_json::to_string(&app).ok(),
        after: None,
        at: now_ms(),
    };
    let Some(gone) = st.store.delete_app(&id, &change).await? else {
        return Err(ApiError::not_found(format!("no app {id:?}")));
    };
    let mut seqs = std::collections::HashMap::new();
    for s in &gone.subs {
        if let Some(svc) = st.store.service(&s.service_id).await? {
            seqs.insert(svc.id, svc.seq);
        }
    }
    managed.app_deleted(&id, &gone, &seqs)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/apps/{id}/keys", request_body = NewKey,
    responses((status = 201, body = NewKeyShown, description = "the key, shown this once"), (status = 404), (status = 422)))]
pub async fn create_key(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    Body(body): Body<NewKey>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(n) = &body.name {
        check_name("name", n)?;
    }
    let now = now_ms();
    let expires_at = body
        .expires_at
        .as_deref()
        .map(parse_rfc3339)
        .transpose()
        .map_err(|e| ApiError::field("expires_at", e))?;
    if expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::field("expires_at", "must be in the future"));
    }
    let mut managed = st.managed.lock().await;
    let app = owned(&st, &p, &id).await?;
    p.require(Need::Develop)?;
    let key = ApiKey::generate();
    let info = KeyInfo {
        id: new_id("key"),
        app_id: app.id.clone(),
        prefix: key.visible_prefix().to_string(),
        name: body.name,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    let change = Change {
        actor: &p.actor(),
        action: "key.create",
        kind: "key",
        id: &info.id,
        tenant_id: Some(&app.tenant_id),
        before: None,
        after: serde_json::to_string(&info).ok(),
        at: now,
    };
    st.store.insert_key(&info, &key.hash, &change).await?;
    managed.key_added(&app.id, key.hash, expires_at)?;
    drop(managed);
    Ok((
        StatusCode::CREATED,
        [("cache-control", "no-store")],
        Json(NewKeyShown { info, key: key.key }),
    ))
}

#[utoipa::path(get, path = "/api/v1/apps/{id}/keys", params(ListParams),
    responses((status = 200, body = Page<KeyInfo>), (status = 404)))]
pub async fn keys(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<KeyInfo>>, ApiError> {
    let app = owned(&st, &p, &id).await?;
    let mut q = params.query(&p, &[])?;
    q.tenants = None;
    q.filters.push(("app_id", app.id));
    let rows = st.store.keys(&q).await?;
    Ok(Json(page(rows, &q, |k: &KeyInfo| k.id.clone(), |k| k)))
}

#[utoipa::path(post, path = "/api/v1/apps/{id}/keys/{key_id}/revoke",
    responses((status = 200, body = KeyInfo), (status = 404), (status = 409, description = "revoked already")))]
pub async fn revoke_key(
    State(st): State<AdminState>,
    p: Principal,
    Path((id, key_id)): Path<(String, String)>,
    _body: Body<NoInput>,
) -> Result<Json<KeyInfo>, ApiError> {
    let mut managed = st.managed.lock().await;
    let app = owned(&st, &p, &id).await?;
    p.require(Need::Develop)?;
    let Some(before) = st.store.key(&key_id).await?.filter(|k| k.app_id == app.id) else {
        return Err(ApiError::not_found(format!(
            "app {id:?} has no key {key_id:?}"
        )));
    };
    let now = now_ms();
    let mut after = before.clone();
    after.revoked_at = Some(now);
    let change = Change {
        actor: &p.actor(),
        action: "key.revoke",
        kind: "key",
        id: &key_id,
        tenant_id: Some(&app.tenant_id),
        before: serde_json::to_string(&before).ok(),
        after: serde_json::to_string(&after).ok(),
        at: now,
    };
    match st.store.revoke_key(&key_id, now, &change).await? {
        Some(hash) => {
            managed.key_revoked(&hash)?;
            Ok(Json(after))
        }
        None => Err(ApiError::conflict("the key is revoked already")),
    }
}
