//! `/api/v1/services`: APIs owned by a tenant, with routes, an upstream and a lifecycle
//! (draft → published → deprecated → retired), each transition an explicit, recorded action.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::tenants::check_name;
use super::{AdminState, ApiError, Body, ListParams, Need, Principal, check_if_match, etag, page};
use crate::control::catalog::service_parts_blocking;
use crate::control::model::{
    Deprecate, NewService, NoInput, Page, Service, ServiceRow, ServiceSpec, ServiceUpdate, new_id,
    now_ms, parse_rfc3339,
};
use crate::control::store::Change;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/services", get(list).post(create))
        .route("/api/v1/services/{id}", get(one).put(update).delete(delete))
        .route("/api/v1/services/{id}/openapi.json", get(openapi))
        .route("/api/v1/services/{id}/publish", post(publish))
        .route("/api/v1/services/{id}/deprecate", post(deprecate))
        .route("/api/v1/services/{id}/retire", post(retire))
}

/// Credential kinds a service may accept.
const CREDENTIALS: &[&str] = &["api_key", "jwt", "basic", "hmac"];

pub(super) fn validate(body: &ServiceUpdate) -> Result<(), ApiError> {
    check_name("name", &body.name)?;
    if let Some(v) = &body.visibility {
        if v != "private" && v != "public" {
            return Err(ApiError::field(
                "visibility",
                "must be \"private\" or \"public\"",
            ));
        }
    }
    if let Some(a) = &body.approval {
        if a != "auto" && a != "manual" {
            return Err(ApiError::field(
                "approval",
                "must be \"auto\" or \"manual\"",
            ));
        }
    }
    if let Some(cs) = &body.credentials {
        if cs.is_empty() {
            return Err(ApiError::field(
                "credentials",
                "at least one credential kind",
            ));
        }
        for (i, c) in cs.iter().enumerate() {
            if !CREDENTIALS.contains(&c.as_str()) {
                return Err(ApiError::field(
                    format!("credentials[{i}]"),
                    format!("unknown credential kind {c:?} (known: api_key, jwt, basic, hmac)"),
                ));
            }
        }
    }
    if let Some(q) = &body.quota {
        q.check("quota").map_err(|(f, r)| ApiError::field(f, r))?;
    }
    if let Some(doc) = &body.openapi {
        if !doc.is_object() {
            return Err(ApiError::field(
                "openapi",
                "must be a JSON object (an OpenAPI document)",
            ));
        }
    }
    Ok(())
}

/// Finds a service `p` may see: its tenant's, or a public one that is not a draft. Anything else
/// is a 404, as if it did not exist.
pub(super) async fn visible(
    st: &AdminState,
    p: &Principal,
    id: &str,
) -> Result<ServiceRow, ApiError> {
    match st.store.service(id).await? {
        Some(s) if p.sees(&s.tenant_id) || (s.visibility == "public" && s.state != "draft") => {
            Ok(s)
        }
        _ => Err(ApiError::not_found(format!("no service {id:?}"))),
    }
}

/// Finds a service `p` may change: its own tenant's.
async fn owned(st: &AdminState, p: &Principal, id: &str) -> Result<ServiceRow, ApiError> {
    match st.store.service(id).await? {
        Some(s) if p.sees(&s.tenant_id) => Ok(s),
        _ => Err(ApiError::not_found(format!("no service {id:?}"))),
    }
}

fn with_etag(version: i64) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = etag(version).parse() {
        h.insert("etag", v);
    }
    h
}

/// The view of a service for `p`: another tenant's public service without its upstream (where
/// the API owner's backends are is not the subscriber's business, and would let it bypass the
/// gateway).
fn view_for(p: &Principal, row: &ServiceRow) -> Service {
    let mut v = row.view();
    if !p.sees(&row.tenant_id) {
        v.upstream = serde_json::Value::Null;
    }
    v
}

#[utoipa::path(post, path = "/api/v1/services", request_body = NewService,
    responses((status = 201, body = Service), (status = 404, description = "no such tenant"),
        (status = 409, description = "name taken, or routes conflict with another service's or the config file's"),
        (status = 422)))]
pub async fn create(
    State(st): State<AdminState>,
    p: Principal,
    Body(body): Body<NewService>,
) -> Result<impl IntoResponse, ApiError> {
    let (tenant_id, body) = body.split();
    validate(&body)?;
    let tenant = super::tenants::named_tenant(&st, &p, &tenant_id).await?;
    p.require(Need::Develop)?;
    super::tenants::check_scope(&tenant, &body.routes)?;
    let now = now_ms();
    let spec = ServiceSpec {
        routes: body.routes,
        upstream: body.upstream,
        ai: body.ai,
        credentials: body.credentials.unwrap_or_else(|| vec!["api_key".into()]),
    };
    let mut row = ServiceRow {
        seq: 0,
        id: new_id("svc"),
        tenant_id,
        name: body.name,
        visibility: body.visibility.unwrap_or_else(|| "private".into()),
        approval: body.approval.unwrap_or_else(|| "manual".into()),
        state: "draft".into(),
        spec: serde_json::to_string(&spec)
            .map_err(|_| ApiError::internal("cannot encode the spec"))?,
        openapi: body.openapi.map(|d| d.to_string()),
        sunset_at: None,
        deprecation_link: None,
        deprecated_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
        quota: body.quota.and_then(|q| serde_json::to_string(&q).ok()),
    };
    let mut managed = st.managed.lock().await;
    // Host names resolve on the blocking pool; the writer lock is held (writers wait, readers
    // and the runtime do not).
    let parts = service_parts_blocking(
        row.clone(),
        managed.http().clone(),
        managed.base_ai(),
        managed.allow_loopback,
    )
    .await?;
    let prepared = managed.prepare_service(&row, parts).map_err(|e| {
        let mut a = ApiError::from(e);
        a.status = StatusCode::CONFLICT;
        a.code = "route_conflict";
        a
    })?;
    let view = row.view();
    let change = Change {
        actor: &p.actor(),
        action: "service.create",
        kind: "service",
        id: &row.id,
        tenant_id: Some(&row.tenant_id),
        before: None,
        after: serde_json::to_string(&view).ok(),
        at: now,
    };
    row.seq = st.store.insert_service(&row, &change).await?;
    managed.service_added(row, prepared)?;
    drop(managed);
    Ok((StatusCode::CREATED, with_etag(view.version), Json(view)))
}

#[utoipa::path(put, path = "/api/v1/services/{id}", request_body = ServiceUpdate,
    responses((status = 200, body = Service), (status = 403), (status = 404),
        (status = 409, description = "name taken, or routes conflict"), (status = 412), (status = 422)))]
pub async fn update(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<ServiceUpdate>,
) -> Result<(HeaderMap, Json<Service>), ApiError> {
    validate(&body)?;
    let mut managed = st.managed.lock().await;
    let before = owned(&st, &p, &id).await?;
    if let Some(t) = st.store.tenant(&before.tenant_id).await? {
        super::tenants::check_scope(&t, &body.routes)?;
    }
    // A draft is its developers' to change; what consumers already call is governed.
    p.require(if before.state == "draft" {
        Need::Develop
    } else {
        Need::Govern
    })?;
    check_if_match(&headers, before.version)?;
    if before.state == "retired" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "service_retired",
            "a retired service cannot be changed",
        ));
    }
    let spec = ServiceSpec {
        routes: body.routes,
        upstream: body.upstream,
        ai: body.ai,
        credentials: body.credentials.unwrap_or_else(|| vec!["api_key".into()]),
    };
    let mut row = before.clone();
    row.name = body.name;
    // Omitted: kept as it is (a PUT that leaves visibility out must not make a service private).
    if let Some(v) = body.visibility {
        row.visibility = v;
    }
    if let Some(a) = body.approval {
        row.approval = a;
    }
    if row.visibility == "private" && before.visibility == "public" {
        let live = st.store.service_subscriptions(&id).await?;
        let mut others = 0;
        for s in &live {
            if let Some(app) = st.store.app(&s.app_id).await? {
                if app.tenant_id != before.tenant_id {
                    others += 1;
                }
            }
        }
        if others > 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "subscribed_by_other_tenants",
                format!(
                    "{others} live subscription(s) of other tenants' apps: revoke them before making the service private"
                ),
            ));
        }
    }
    row.spec =
        serde_json::to_string(&spec).map_err(|_| ApiError::internal("cannot encode the spec"))?;
    row.openapi = body.openapi.map(|d| d.to_string());
    row.quota = body.quota.and_then(|q| serde_json::to_string(&q).ok());
    row.updated_at = now_ms();
    row.version += 1;
    // Host names resolve on the blocking pool; the writer lock is held (writers wait, readers
    // and the runtime do not).
    let parts = service_parts_blocking(
        row.clone(),
        managed.http().clone(),
        managed.base_ai(),
        managed.allow_loopback,
    )
    .await?;
    let prepared = managed.prepare_service(&row, parts).map_err(|e| {
        let mut a = ApiError::from(e);
        a.status = StatusCode::CONFLICT;
        a.code = "route_conflict";
        a
    })?;
    let view = row.view();
    let change = Change {
        actor: &p.actor(),
        action: "service.update",
        kind: "service",
        id: &row.id,
        tenant_id: Some(&row.tenant_id),
        before: serde_json::to_string(&before.view()).ok(),
        after: serde_json::to_string(&view).ok(),
        at: row.updated_at,
    };
    if !st.store.update_service(&row, &change).await? {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the service changed meanwhile; read it again",
        ));
    }
    let quota_changed = row.quota != before.quota;
    let seq = row.seq;
    managed.service_added(row, prepared)?;
    if quota_changed {
        let live = st.store.service_subscriptions(&id).await?;
        managed.service_quota_changed(seq, &live)?;
    }
    Ok((with_etag(view.version), Json(view)))
}

#[utoipa::path(delete, path = "/api/v1/services/{id}",
    responses((status = 204, description = "deleted, with its subscriptions"), (status = 403), (status = 404),
        (status = 409, description = "not retired"), (status = 412)))]
pub async fn delete(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let mut managed = st.managed.lock().await;
    let svc = owned(&st, &p, &id).await?;
    p.require(Need::Govern)?;
    check_if_match(&headers, svc.version)?;
    if svc.state != "retired" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_retired",
            "retire the service first (its callers get 410 meanwhile), then delete it",
        ));
    }
    let change = Change {
        actor: &p.actor(),
        action: "service.delete",
        kind: "service",
        id: &svc.id,
        tenant_id: Some(&svc.tenant_id),
        before: serde_json::to_string(&svc.view()).ok(),
        after: None,
        at: now_ms(),
    };
    let Some(subs) = st.store.delete_service(&id, &change).await? else {
        return Err(ApiError::not_found(format!("no service {id:?}")));
    };
    managed.service_deleted(svc.seq, &subs)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/services", params(ListParams),
    responses((status = 200, body = Page<Service>)))]
pub async fn list(
    State(st): State<AdminState>,
    p: Principal,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Service>>, ApiError> {
    let q = params.query(&p, &["tenant_id", "state", "visibility", "q:name"])?;
    let public = q.tenants.is_some();
    let rows = st.store.services(&q, public).await?;
    Ok(Json(page(
        rows,
        &q,
        |s: &ServiceRow| s.id.clone(),
        |s| view_for(&p, &s),
    )))
}

#[utoipa::path(get, path = "/api/v1/services/{id}",
    responses((status = 200, body = Service), (status = 404)))]
pub async fn one(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<(HeaderMap, Json<Service>), ApiError> {
    let s = visible(&st, &p, &id).await?;
    Ok((with_etag(s.version), Json(view_for(&p, &s))))
}

#[utoipa::path(get, path = "/api/v1/services/{id}/openapi.json",
    responses((status = 200, description = "the service's OpenAPI document"), (status = 404)))]
pub async fn openapi(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let s = visible(&st, &p, &id).await?;
    match s.openapi {
        Some(doc) => Ok(([("content-type", "application/json")], doc)),
        None => Err(ApiError::not_found("the service has no OpenAPI document")),
    }
}

/// Moves a service to `to` if its state is one of `from`, writes and publishes it.
async fn transition(
    st: &AdminState,
    p: &Principal,
    id: &str,
    headers: &HeaderMap,
    from: &[&str],
    to: &str,
    edit: impl FnOnce(&mut ServiceRow),
) -> Result<(HeaderMap, Json<Service>), ApiError> {
    let mut managed = st.managed.lock().await;
    let before = owned(st, p, id).await?;
    p.require(Need::Govern)?;
    check_if_match(headers, before.version)?;
    if !from.contains(&before.state.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            format!(
                "a {} service cannot be moved to {to} (from: {})",
                before.state,
                from.join(", ")
            ),
        ));
    }
    let mut row = before.clone();
    row.state = to.to_string();
    row.updated_at = now_ms();
    row.version += 1;
    edit(&mut row);
    let view = row.view();
    let change = Change {
        actor: &p.actor(),
        action: match to {
            "published" => "service.publish",
            "deprecated" => "service.deprecate",
            _ => "service.retire",
        },
        kind: "service",
        id: &row.id,
        tenant_id: Some(&row.tenant_id),
        before: serde_json::to_string(&before.view()).ok(),
        after: serde_json::to_string(&view).ok(),
        at: row.updated_at,
    };
    if !st.store.update_service_state(&row, &change).await? {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the service changed meanwhile; read it again",
        ));
    }
    managed.service_changed(row)?;
    Ok((with_etag(view.version), Json(view)))
}

#[utoipa::path(post, path = "/api/v1/services/{id}/publish",
    responses((status = 200, body = Service), (status = 404), (status = 409), (status = 412)))]
pub async fn publish(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    _body: Body<NoInput>,
) -> Result<(HeaderMap, Json<Service>), ApiError> {
    transition(
        &st,
        &p,
        &id,
        &headers,
        &["draft", "deprecated"],
        "published",
        |r| {
            r.sunset_at = None;
            r.deprecation_link = None;
            r.deprecated_at = None;
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/services/{id}/deprecate", request_body = Deprecate,
    responses((status = 200, body = Service), (status = 404), (status = 409), (status = 412), (status = 422)))]
pub async fn deprecate(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<Deprecate>,
) -> Result<(HeaderMap, Json<Service>), ApiError> {
    let sunset = body
        .sunset
        .as_deref()
        .map(parse_rfc3339)
        .transpose()
        .map_err(|e| ApiError::field("sunset", e))?;
    if let Some(l) = &body.link {
        if l.is_empty() || l.len() > 2048 || l.bytes().any(|b| b <= b' ' || b == b'>' || b == 0x7f)
        {
            return Err(ApiError::field(
                "link",
                "must be a URI reference without spaces, '>' or control characters",
            ));
        }
    }
    transition(&st, &p, &id, &headers, &["published"], "deprecated", |r| {
        r.sunset_at = sunset;
        r.deprecation_link = body.link;
        r.deprecated_at = Some(r.updated_at);
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/services/{id}/retire",
    responses((status = 200, body = Service), (status = 404), (status = 409), (status = 412)))]
pub async fn retire(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    _body: Body<NoInput>,
) -> Result<(HeaderMap, Json<Service>), ApiError> {
    transition(
        &st,
        &p,
        &id,
        &headers,
        &["draft", "published", "deprecated"],
        "retired",
        |_| {},
    )
    .await
}
