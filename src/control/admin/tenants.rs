//! `/api/v1/tenants`: teams that own services and apps. Creating one is the operator's.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::{AdminState, ApiError, Body, ListParams, Principal, etag, page};
use crate::control::model::{NewTenant, Page, RouteScope, RouteScopes, Tenant, new_id, now_ms};
use crate::control::store::Change;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/tenants", get(list).post(create))
        .route("/api/v1/tenants/{id}", get(one).delete(delete))
        .route(
            "/api/v1/tenants/{id}/route-scope",
            axum::routing::put(route_scope),
        )
}

/// The tenant a body's `tenant_id` names, if `p` sees it; else 404 naming the field.
pub async fn named_tenant(st: &AdminState, p: &Principal, id: &str) -> Result<Tenant, ApiError> {
    match st.store.tenant(id).await? {
        Some(t) if p.sees(&t.id) => Ok(t),
        _ => {
            let mut e = ApiError::not_found(format!("no tenant {id:?}"));
            e.fields.insert("tenant_id".into(), "no such tenant".into());
            Err(e)
        }
    }
}

/// A name: 1 to 100 characters, no control characters.
pub fn check_name(field: &str, s: &str) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n == 0 || n > 100 || s.trim() != s {
        return Err(ApiError::field(
            field,
            "must be 1 to 100 characters without leading or trailing spaces",
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/tenants", request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 409, description = "name taken"), (status = 422)))]
pub async fn create(
    State(st): State<AdminState>,
    p: Principal,
    Body(body): Body<NewTenant>,
) -> Result<impl IntoResponse, ApiError> {
    p.require_operator()?;
    check_name("name", &body.name)?;
    let now = now_ms();
    let mut t = Tenant {
        seq: 0,
        id: new_id("ten"),
        name: body.name,
        route_scope: None,
        ai_limits: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut managed = st.managed.lock().await;
    let after = serde_json::to_string(&t).ok();
    let change = Change {
        actor: &p.actor(),
        action: "tenant.create",
        kind: "tenant",
        id: &t.id,
        tenant_id: Some(&t.id),
        before: None,
        after,
        at: now,
    };
    t.seq = st.store.insert_tenant(&t, &change).await?;
    managed.tenant_added(&t.id, t.seq);
    drop(managed);
    Ok((StatusCode::CREATED, [("etag", etag(t.version))], Json(t)))
}

#[utoipa::path(get, path = "/api/v1/tenants", params(ListParams),
    responses((status = 200, body = Page<Tenant>)))]
pub async fn list(
    State(st): State<AdminState>,
    p: Principal,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Tenant>>, ApiError> {
    let q = params.query(&p, &["q:name"])?;
    let rows = st.store.tenants(&q).await?;
    Ok(Json(page(rows, &q, |t: &Tenant| t.id.clone(), |t| t)))
}

/// The routes of a service that fall outside its tenant's scope, as field errors.
pub fn check_scope(
    tenant: &Tenant,
    routes: &[crate::config::managed::ServiceRoute],
) -> Result<(), ApiError> {
    let Some(text) = &tenant.route_scope else {
        return Ok(());
    };
    let scopes: Vec<RouteScope> = serde_json::from_str(text).unwrap_or_default();
    for (i, r) in routes.iter().enumerate() {
        let (field, path) = match (&r.path_prefix, &r.path_exact) {
            (Some(p), _) => ("path_prefix", p.as_str()),
            (None, Some(p)) => ("path_exact", p.as_str()),
            (None, None) => ("path_prefix", "/"),
        };
        let hosts = r.hosts.clone().unwrap_or_default();
        if !scopes.iter().any(|s| s.covers(&hosts, path)) {
            return Err(ApiError::field(
                format!("routes[{i}].{field}"),
                "outside the tenant's route scope (set by the operator)",
            ));
        }
    }
    Ok(())
}

#[utoipa::path(put, path = "/api/v1/tenants/{id}/route-scope", request_body = RouteScopes,
    responses((status = 200, body = Tenant), (status = 403), (status = 404), (status = 412), (status = 422)))]
pub async fn route_scope(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<RouteScopes>,
) -> Result<Json<Tenant>, ApiError> {
    if st
        .store
        .tenant(&id)
        .await?
        .filter(|t| p.sees(&t.id))
        .is_none()
    {
        return Err(ApiError::not_found(format!("no tenant {id:?}")));
    }
    p.require_operator()?;
    if let Some(scopes) = &body.scopes {
        for (i, s) in scopes.iter().enumerate() {
            if !s.path_prefix.starts_with('/') {
                return Err(ApiError::field(
                    format!("scopes[{i}].path_prefix"),
                    "must start with /",
                ));
            }
            for (j, h) in s.hosts.iter().flatten().enumerate() {
                if h.is_empty() || h == "*" || h.contains(|c: char| c.is_whitespace() || c == '/') {
                    return Err(ApiError::field(
                        format!("scopes[{i}].hosts[{j}]"),
                        "a host name or *.domain",
                    ));
                }
            }
        }
    }
    let text = body
        .scopes
        .as_ref()
        .and_then(|s| serde_json::to_string(s).ok());
    let now = now_ms();
    let _writer = st.managed.lock().await;
    // Read again under the writer lock, so that If-Match compares with what is changed.
    let Some(t) = st.store.tenant(&id).await? else {
        return Err(ApiError::not_found(format!("no tenant {id:?}")));
    };
    super::check_if_match(&headers, t.version)?;
    let mut after = t.clone();
    after.route_scope = text.clone();
    let change = Change {
        actor: &p.actor(),
        action: "tenant.route_scope",
        kind: "tenant",
        id: &t.id,
        tenant_id: Some(&t.id),
        before: serde_json::to_string(&t).ok(),
        after: serde_json::to_string(&after).ok(),
        at: now,
    };
    st.store
        .set_route_scope(&id, text.as_deref(), now, &change)
        .await?;
    match st.store.tenant(&id).await? {
        Some(t) => Ok(Json(t)),
        None => Err(ApiError::not_found(format!("no tenant {id:?}"))),
    }
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}",
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "it still owns services, apps or users"), (status = 412)))]
pub async fn delete(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let Some(t) = st.store.tenant(&id).await?.filter(|t| p.sees(&t.id)) else {
        return Err(ApiError::not_found(format!("no tenant {id:?}")));
    };
    p.require_operator()?;
    let _writer = st.managed.lock().await;
    let Some(t) = st.store.tenant(&t.id).await? else {
        return Err(ApiError::not_found(format!("no tenant {id:?}")));
    };
    super::check_if_match(&headers, t.version)?;
    let change = Change {
        actor: &p.actor(),
        action: "tenant.delete",
        kind: "tenant",
        id: &t.id,
        tenant_id: Some(&t.id),
        before: serde_json::to_string(&t).ok(),
        after: None,
        at: now_ms(),
    };
    if st.store.delete_tenant(&id, &change).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::conflict(
            "the tenant still owns services, apps or users: delete them first",
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}",
    responses((status = 200, body = Tenant), (status = 404)))]
pub async fn one(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<(HeaderMap, Json<Tenant>), ApiError> {
    match st.store.tenant(&id).await? {
        Some(t) if p.sees(&t.id) => {
            let mut h = HeaderMap::new();
            if let Ok(v) = etag(t.version).parse() {
                h.insert("etag", v);
            }
            Ok((h, Json(t)))
        }
        _ => Err(ApiError::not_found(format!("no tenant {id:?}"))),
    }
}
