//! `/api/v1/subscriptions`: an app's access to a service. pending → approved | rejected (with a
//! reason); approved → revoked (by the service's tenant) or cancelled (by the app's). A service
//! with `approval = "auto"` approves at once. Approving, rejecting and revoking belong to the
//! service's tenant; cancelling to the app's.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{
    AdminState, ApiError, Body, ListParams, Need, Principal, auth, check_if_match, etag, page,
};
use crate::control::model::{
    Approve, NewSubscription, NoInput, Page, Quota, Reason, ServiceRow, Subscription, new_id,
    now_ms,
};
use crate::control::store::Change;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/subscriptions", get(list).post(create))
        .route("/api/v1/subscriptions/{id}", get(one))
        .route("/api/v1/subscriptions/{id}/approve", post(approve))
        .route("/api/v1/subscriptions/{id}/reject", post(reject))
        .route("/api/v1/subscriptions/{id}/revoke", post(revoke))
        .route("/api/v1/subscriptions/{id}/cancel", post(cancel))
}

fn not_found_field(field: &str, what: &str, id: &str) -> ApiError {
    let mut e = ApiError::not_found(format!("no {what} {id:?}"));
    e.fields.insert(field.into(), format!("no such {what}"));
    e
}

#[utoipa::path(post, path = "/api/v1/subscriptions", request_body = NewSubscription,
    responses((status = 201, body = Subscription), (status = 404), (status = 409), (status = 422)))]
pub async fn create(
    State(st): State<AdminState>,
    p: Principal,
    Body(body): Body<NewSubscription>,
) -> Result<impl IntoResponse, ApiError> {
    let mut managed = st.managed.lock().await;
    let app = match st.store.app(&body.app_id).await? {
        Some(a) if p.sees(&a.tenant_id) => a,
        _ => return Err(not_found_field("app_id", "app", &body.app_id)),
    };
    p.require(Need::Develop)?;
    // A private service is subscribable by its own tenant's apps, a public one by every tenant's
    // once it is published; a draft only by its own tenant's (for testing).
    let svc = match st.store.service(&body.service_id).await? {
        Some(s)
            if s.tenant_id == app.tenant_id || (s.visibility == "public" && s.state != "draft") =>
        {
            s
        }
        _ => return Err(not_found_field("service_id", "service", &body.service_id)),
    };
    if svc.state == "retired" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "service_retired",
            "the service is retired",
        ));
    }
    let now = now_ms();
    let sub = Subscription {
        id: new_id("sub"),
        app_id: app.id.clone(),
        service_id: svc.id.clone(),
        state: if svc.approval == "auto" {
            "approved"
        } else {
            "pending"
        }
        .into(),
        reason: None,
        created_at: now,
        updated_at: now,
        version: 1,
        quota: None,
        app_name: Some(app.name.clone()),
        app_tenant_id: Some(app.tenant_id.clone()),
        app_tenant_name: None,
        service_name: Some(svc.name.clone()),
        service_tenant_id: Some(svc.tenant_id.clone()),
    };
    let change = Change {
        actor: &p.actor(),
        action: "subscription.create",
        kind: "subscription",
        id: &sub.id,
        tenant_id: Some(&app.tenant_id),
        before: None,
        after: serde_json::to_string(&sub).ok(),
        at: now,
    };
    st.store
        .insert_subscription(&sub, &change, &svc.tenant_id)
        .await?;
    managed.subscription_changed(&sub, svc.seq)?;
    drop(managed);
    Ok((
        StatusCode::CREATED,
        [("etag", etag(sub.version))],
        Json(sub),
    ))
}

#[utoipa::path(get, path = "/api/v1/subscriptions", params(ListParams),
    responses((status = 200, body = Page<Subscription>)))]
pub async fn list(
    State(st): State<AdminState>,
    p: Principal,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Subscription>>, ApiError> {
    // The store qualifies the filter columns with the subscriptions table itself.
    let q = params.query(&p, &["state", "app_id", "service_id", "side"])?;
    let rows = st.store.subscriptions(&q).await?;
    Ok(Json(page(rows, &q, |s: &Subscription| s.id.clone(), |s| s)))
}

/// The subscription, its service, and whether `p` may see it (as the app's or service's tenant).
async fn find(
    st: &AdminState,
    p: &Principal,
    id: &str,
) -> Result<(Subscription, ServiceRow, String), ApiError> {
    let missing = || ApiError::not_found(format!("no subscription {id:?}"));
    let sub = st.store.subscription(id).await?.ok_or_else(missing)?;
    let svc = st
        .store
        .service(&sub.service_id)
        .await?
        .ok_or_else(missing)?;
    let app = st.store.app(&sub.app_id).await?.ok_or_else(missing)?;
    if !p.sees(&app.tenant_id) && !p.sees(&svc.tenant_id) {
        return Err(missing());
    }
    Ok((sub, svc, app.tenant_id))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{id}",
    responses((status = 200, body = Subscription), (status = 404)))]
pub async fn one(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (sub, _, _) = find(&st, &p, &id).await?;
    Ok(([("etag", etag(sub.version))], Json(sub)))
}

/// Who may make a transition.
#[derive(Clone, Copy)]
enum Side {
    /// The service's tenant.
    Service,
    /// The app's tenant.
    App,
}

async fn transition(
    st: &AdminState,
    p: &Principal,
    id: &str,
    headers: &HeaderMap,
    m: Move,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let Move {
        side,
        from,
        to,
        reason,
        quota,
    } = m;
    let mut managed = st.managed.lock().await;
    let (before, svc, app_tenant) = find(st, p, id).await?;
    let allowed = match side {
        Side::Service => p.sees(&svc.tenant_id),
        Side::App => p.sees(&app_tenant),
    };
    if !allowed {
        return Err(auth::forbidden(match side {
            Side::Service => "only the service's tenant may do this",
            Side::App => "only the app's tenant may do this",
        }));
    }
    p.require(match side {
        Side::Service => Need::Govern,
        Side::App => Need::Develop,
    })?;
    check_if_match(headers, before.version)?;
    if !from.contains(&before.state.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            format!("a {} subscription cannot become {to}", before.state),
        ));
    }
    let mut sub = before.clone();
    sub.state = to.to_string();
    sub.reason = reason;
    if let Some(q) = quota {
        sub.quota = serde_json::to_string(&q).ok();
    }
    sub.updated_at = now_ms();
    sub.version += 1;
    let action = format!("subscription.{to}");
    let change = Change {
        actor: &p.actor(),
        action: &action,
        kind: "subscription",
        id: &sub.id,
        tenant_id: Some(match side {
            Side::Service => &svc.tenant_id,
            Side::App => &app_tenant,
        }),
        before: serde_json::to_string(&before).ok(),
        after: serde_json::to_string(&sub).ok(),
        at: sub.updated_at,
    };
    let other = match side {
        Side::Service => &app_tenant,
        Side::App => &svc.tenant_id,
    };
    if !st.store.update_subscription(&sub, &change, other).await? {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the subscription changed meanwhile; read it again",
        ));
    }
    managed.subscription_changed(&sub, svc.seq)?;
    Ok(([("etag", etag(sub.version))], Json(sub)))
}

fn check_reason(r: &Reason) -> Result<Option<String>, ApiError> {
    match &r.reason {
        Some(s) if s.chars().count() > 1000 => {
            Err(ApiError::field("reason", "at most 1000 characters"))
        }
        Some(s) if s.chars().any(|c| c.is_control() && c != '\n') => Err(ApiError::field(
            "reason",
            "must not contain control characters",
        )),
        other => Ok(other.clone()),
    }
}

/// A transition: who may make it, from which states, to which, with what reason and quota.
struct Move {
    side: Side,
    from: &'static [&'static str],
    to: &'static str,
    reason: Option<String>,
    quota: Option<Quota>,
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/approve", request_body = Approve,
    responses((status = 200, body = Subscription), (status = 403), (status = 404), (status = 409), (status = 412), (status = 422)))]
pub async fn approve(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<Approve>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(q) = &body.quota {
        q.check("quota").map_err(|(f, r)| ApiError::field(f, r))?;
    }
    let m = Move {
        side: Side::Service,
        from: &["pending"],
        to: "approved",
        reason: None,
        quota: body.quota,
    };
    transition(&st, &p, &id, &headers, m).await
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/reject", request_body = Reason,
    responses((status = 200, body = Subscription), (status = 403), (status = 404), (status = 409), (status = 412)))]
pub async fn reject(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<Reason>,
) -> Result<impl IntoResponse, ApiError> {
    let m = Move {
        side: Side::Service,
        from: &["pending"],
        to: "rejected",
        reason: check_reason(&body)?,
        quota: None,
    };
    transition(&st, &p, &id, &headers, m).await
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/revoke", request_body = Reason,
    responses((status = 200, body = Subscription), (status = 403), (status = 404), (status = 409), (status = 412)))]
pub async fn revoke(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<Reason>,
) -> Result<impl IntoResponse, ApiError> {
    let m = Move {
        side: Side::Service,
        from: &["approved"],
        to: "revoked",
        reason: check_reason(&body)?,
        quota: None,
    };
    transition(&st, &p, &id, &headers, m).await
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/cancel",
    responses((status = 200, body = Subscription), (status = 403), (status = 404), (status = 409), (status = 412)))]
pub async fn cancel(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    _body: Body<NoInput>,
) -> Result<impl IntoResponse, ApiError> {
    let m = Move {
        side: Side::App,
        from: &["pending", "approved"],
        to: "cancelled",
        reason: None,
        quota: None,
    };
    transition(&st, &p, &id, &headers, m).await
}
