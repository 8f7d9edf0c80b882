//! The admin API: resource-oriented JSON under `/api/v1`, on its own listener (`[admin] listen`,
//! loopback by default), served by axum on the control plane's tokio thread. One file per
//! resource; this one holds what they share: the principal every call is made as, the JSON body
//! reader, errors, paging, ETags.
//!
//! Errors use the gateway's JSON shape, `{"error":{"code","message","fields"?}}`; `fields` names
//! every invalid field of a body (`routes[0].path_prefix`). Another tenant's object is a 404,
//! never a 403, so its existence does not leak.
//!
//! Every call carries `Authorization: Bearer <token>`: the bootstrap token or a user's (see
//! [`auth`] for who may do what).

mod ai;
mod ai_limits;
mod analytics;
mod apps;
mod audit;
pub mod auth;
mod credentials;
mod error;
pub mod listener;
mod metrics;
mod openapi;
mod services;
mod session;
mod sessions;
mod subscriptions;
mod tenants;
mod tryit;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

pub use auth::{Need, Principal, Role};
pub use error::ApiError;

use super::catalog::Managed;
use super::store::{ListQuery, Store};

/// Largest admin request body (an OpenAPI document included).
pub const MAX_BODY: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<Store>,
    pub managed: Arc<Mutex<Managed>>,
    /// SHA-256 of the bootstrap admin token.
    pub token_hash: Arc<[u8; 32]>,
    pub throttle: Arc<auth::Throttle>,
    /// `[admin] session_ttl`, in milliseconds.
    pub session_ttl_ms: i64,
    /// `[admin] cookie_secure`.
    pub cookie_secure: bool,
    /// Publishes snapshots, and renders the node's metrics.
    pub publisher: crate::gateway::SnapshotPublisher,
    /// SHA-256 of the scrape token (`RINGWAY_METRICS_TOKEN`), when one is set.
    pub metrics_token: Option<Arc<[u8; 32]>>,
}

/// A JSON body, read with a size bound and deserialized so that every error names its field.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AdminState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &AdminState) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let essence = ct.split(';').next().unwrap_or("").trim();
            // curl -d sends application/x-www-form-urlencoded unless told otherwise: the body is
            // read as JSON all the same. Any other declared type is refused.
            let json = essence.eq_ignore_ascii_case("application/json")
                || essence.eq_ignore_ascii_case("application/x-www-form-urlencoded");
            if !json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("expected Content-Type: application/json, got {ct:?}"),
                ));
            }
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the request body is larger than {MAX_BODY} bytes"),
                )
            })?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            // An empty body is an empty object: actions such as /publish need no body.
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        // Syntax first (400), then shape (422): a body is one JSON object.
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(ApiError::bad_json)?;
        if !value.is_object() {
            return Err(ApiError::field("body", "must be a JSON object"));
        }
        match serde_path_to_error::deserialize(value) {
            Ok(v) => Ok(Body(v)),
            Err(e) => Err(ApiError::from_json(e)),
        }
    }
}

/// Decodes `bytes` as every admin input type the way [`Body`] does, and validates what decodes
/// (without resolving host names): for the fuzz target `admin_json`, which checks that no input
/// panics and every refusal is a 4xx that names a field.
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8]) -> Vec<ApiError> {
    use super::model::*;
    fn one<T: DeserializeOwned>(bytes: &[u8], out: &mut Vec<ApiError>) -> Option<T> {
        let r = serde_json::from_slice::<serde_json::Value>(bytes)
            .map_err(ApiError::bad_json)
            .and_then(|v| {
                if v.is_object() {
                    serde_path_to_error::deserialize(v).map_err(ApiError::from_json)
                } else {
                    Err(ApiError::field("body", "must be a JSON object"))
                }
            });
        match r {
            Ok(t) => Some(t),
            Err(e) => {
                out.push(e);
                None
            }
        }
    }
    let mut out = Vec::new();
    if let Some(t) = one::<NewTenant>(bytes, &mut out) {
        if let Err(e) = tenants::check_name("name", &t.name) {
            out.push(e);
        }
    }
    if let Some(s) = one::<NewService>(bytes, &mut out) {
        let (_, s) = s.split();
        if let Err(e) = services::validate(&s) {
            out.push(e);
        }
        let addrs_only = s.upstream["targets"].as_array().is_some_and(|t| {
            t.iter().all(|x| {
                x.as_str()
                    .is_some_and(|a| a.parse::<std::net::SocketAddr>().is_ok())
            })
        });
        if addrs_only && s.upstream.get("tls").is_none() && s.upstream.get("health_check").is_none()
        {
            let http = crate::Config::single_proxy("127.0.0.1:0", "127.0.0.1:1")
                .map(|c| c.http)
                .ok();
            if let Some(http) = http {
                let ai = crate::config::ai::AiConfig::default();
                let backend = crate::config::managed::ServiceBackend {
                    upstream: &s.upstream,
                    ai: s.ai.as_ref(),
                    ai_config: &ai,
                };
                if let Err(e) = crate::config::managed::managed_service(
                    "svc_fuzz", &s.routes, backend, &http, true,
                ) {
                    out.push(e.into());
                }
            }
        }
    }
    let _ = one::<ServiceUpdate>(bytes, &mut out);
    let _ = one::<Deprecate>(bytes, &mut out);
    let _ = one::<NewApp>(bytes, &mut out);
    let _ = one::<NewKey>(bytes, &mut out);
    let _ = one::<NewCredential>(bytes, &mut out);
    let _ = one::<NewSubscription>(bytes, &mut out);
    if let Some(a) = one::<Approve>(bytes, &mut out) {
        if let Some(q) = a.quota {
            if let Err((f, r)) = q.check("quota") {
                out.push(ApiError::field(f, r));
            }
        }
    }
    let _ = one::<Reason>(bytes, &mut out);
    let _ = one::<NewUser>(bytes, &mut out);
    let _ = one::<Login>(bytes, &mut out);
    let _ = one::<NewToken>(bytes, &mut out);
    let _ = one::<NoInput>(bytes, &mut out);
    let _ = one::<session::SignIn>(bytes, &mut out);
    if let Some(t) = one::<tryit::TryRequest>(bytes, &mut out) {
        let routes = [crate::config::managed::ServiceRoute {
            path_prefix: Some("/orders".into()),
            ..Default::default()
        }];
        if let Err(e) = tryit::check(&t) {
            out.push(e);
        }
        let path = crate::route::PathMatch::Prefix("/orders".into());
        let one = crate::route::RouteMatch {
            hosts: &[],
            path: &path,
            methods: &[],
        };
        if let Ok(table) = crate::route::RouteTable::build([one]) {
            let services = crate::catalog::Services::default();
            let opts = crate::http::normalize::Options::default();
            if let Err(e) =
                tryit::reaching(&t, "svc", &routes, &table, &services, &opts, "127.0.0.1")
            {
                out.push(e);
            }
        }
    }
    // The same bytes as a Cookie header, and as an Accept-Encoding header of an asset request.
    if let Ok(v) = axum::http::HeaderValue::from_bytes(bytes) {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, v.clone());
        let _ = auth::session_cookie(&h);
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, v);
        let _ = super::console::accepts_gzip(&h);
    }
    out
}

/// `?cursor=&limit=` and the filters a list takes.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<i64>,
    pub tenant_id: Option<String>,
    pub state: Option<String>,
    pub app_id: Option<String>,
    pub service_id: Option<String>,
    pub object_id: Option<String>,
    /// Services: `public` or `private`.
    pub visibility: Option<String>,
    /// Text the name (a user's email) contains, 1 to 100 characters.
    pub q: Option<String>,
    /// The audit log: `desc` for newest first (default `asc`).
    pub order: Option<String>,
    /// Subscriptions: `provider` (to the caller's services: the inbox) or `consumer` (of the
    /// caller's apps); default both.
    pub side: Option<String>,
}

impl ListParams {
    /// The store query for `principal`, with the filters `allowed` for this list; `"q:COLUMN"`
    /// in `allowed` lets `q` search that column.
    pub fn query(
        &self,
        principal: &Principal,
        allowed: &[&'static str],
    ) -> Result<ListQuery, ApiError> {
        if let Some(c) = &self.cursor {
            let ok = !c.is_empty()
                && c.len() <= 64
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(ApiError::field("cursor", "not a cursor this API gave out"));
            }
        }
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::field("limit", "must be 1 to 500"));
        }
        let mut filters = Vec::new();
        for (name, v) in [
            ("tenant_id", &self.tenant_id),
            ("state", &self.state),
            ("app_id", &self.app_id),
            ("service_id", &self.service_id),
            ("object_id", &self.object_id),
            ("visibility", &self.visibility),
        ] {
            if let Some(v) = v {
                if !allowed.contains(&name) {
                    return Err(ApiError::field(name, "this list cannot be filtered by it"));
                }
                filters.push((name, v.clone()));
            }
        }
        let search = match &self.q {
            None => None,
            Some(text) => {
                let Some(col) = allowed.iter().find_map(|a| a.strip_prefix("q:")) else {
                    return Err(ApiError::field("q", "this list cannot be searched"));
                };
                let n = text.chars().count();
                if !(1..=100).contains(&n) || text.chars().any(char::is_control) {
                    return Err(ApiError::field("q", "must be 1 to 100 characters"));
                }
                Some((col, text.clone()))
            }
        };
        let descending = match self.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") if allowed.contains(&"order") => true,
            Some("desc") => return Err(ApiError::field("order", "this list has one order")),
            Some(_) => return Err(ApiError::field("order", "\"asc\" or \"desc\"")),
        };
        let side = match self.side.as_deref() {
            None => None,
            Some(_) if !allowed.contains(&"side") => {
                return Err(ApiError::field(
                    "side",
                    "this list cannot be filtered by it",
                ));
            }
            Some("provider") => Some(super::store::Side::Provider),
            Some("consumer") => Some(super::store::Side::Consumer),
            Some(_) => return Err(ApiError::field("side", "\"provider\" or \"consumer\"")),
        };
        Ok(ListQuery {
            side,
            descending,
            search,
            cursor: self.cursor.clone(),
            // One more than asked, to know whether there is a next page.
            limit: limit + 1,
            tenants: principal.tenants(),
            filters,
        })
    }
}

/// Cuts the extra item a list query fetched and makes the page.
pub fn page<T, V: serde::Serialize>(
    mut rows: Vec<T>,
    q: &ListQuery,
    cursor: impl Fn(&T) -> String,
    view: impl Fn(T) -> V,
) -> super::model::Page<V> {
    let want = (q.limit - 1) as usize;
    let next_cursor = if rows.len() > want {
        rows.truncate(want);
        rows.last().map(&cursor)
    } else {
        None
    };
    super::model::Page {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}

/// The ETag of an object at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Refuses the change when the request's `If-Match` names another version (412).
pub fn check_if_match(headers: &HeaderMap, version: i64) -> Result<(), ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("");
    let ok = v
        .split(',')
        .map(str::trim)
        // If-Match compares strongly (RFC 9110 §13.1.1): a weak tag never matches.
        .any(|t| t == "*" || t == etag(version));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!(
                "If-Match does not match the current version (ETag {})",
                etag(version)
            ),
        ))
    }
}

/// The admin API's routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .merge(tenants::routes())
        .merge(services::routes())
        .merge(apps::routes())
        .merge(subscriptions::routes())
        .merge(audit::routes())
        .merge(users::routes())
        .merge(session::routes())
        .merge(sessions::routes())
        .merge(tryit::routes())
        .merge(super::console::routes())
        .merge(credentials::routes())
        .merge(openapi::routes())
        .merge(metrics::routes())
        .merge(analytics::routes())
        .merge(ai_limits::routes())
        .merge(ai::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the endpoint does not allow this method",
            )
        })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "admin API handler panicked");
                axum::response::IntoResponse::into_response(ApiError::internal(
                    "internal error (logged)",
                ))
            },
        ))
        .layer(axum::middleware::from_fn(super::console::harden))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(30),
        ))
        .with_state(state)
}
