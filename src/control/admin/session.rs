//! `/api/v1/session`: the console's sign-in. A browser never holds a bearer token: signing in
//! (a user's email and password, or the operator's bootstrap token) sets a session cookie,
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it), `Secure`
//! when `[admin] cookie_secure`. Calls that change something also carry `X-CSRF-Token`, which
//! the page gets here (see [`auth::csrf_token`]). Sessions last `[admin] session_ttl`.

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{self, Principal, SESSION_COOKIE, new_token, session_cookie};
use super::listener::Peer;
use super::users::{Me, authenticate, me_of, new_session};
use super::{AdminState, ApiError, Body};
use crate::control::model::{new_id, now_ms, rfc3339};
use crate::control::store::NewOperatorSession;

pub fn routes() -> Router<AdminState> {
    Router::new().route(
        "/api/v1/session",
        post(sign_in).get(current).delete(sign_out),
    )
}

/// A sign-in: `email` and `password` of a user, or `token`, the bootstrap admin token.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

/// The console's session as the page sees it (the session token itself is in the cookie only).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsoleSession {
    /// Send it as `X-CSRF-Token` with every call that changes something.
    pub csrf_token: String,
    pub expires_at: String,
    pub me: Me,
}

fn cookie(st: &AdminState, token: &str, max_age_s: i64) -> Option<HeaderValue> {
    let secure = if st.cookie_secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/api/v1; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .ok()
}

fn reply(
    status: StatusCode,
    set_cookie: Option<HeaderValue>,
    body: Option<ConsoleSession>,
) -> Response {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = set_cookie {
        h.insert(header::SET_COOKIE, c);
    }
    match body {
        Some(b) => (status, h, Json(b)).into_response(),
        None => (status, h).into_response(),
    }
}

#[utoipa::path(post, path = "/api/v1/session", request_body = SignIn,
    responses((status = 201, body = ConsoleSession, description = "signed in; the session cookie is set"),
        (status = 401), (status = 422), (status = 429, description = "too many failed sign-ins")),
    security(()))]
pub async fn sign_in(
    State(st): State<AdminState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    Body(body): Body<SignIn>,
) -> Result<Response, ApiError> {
    // Another site's page must not sign a browser in (login CSRF) nor spend the throttle.
    auth::same_origin(&headers)?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "sign in with Content-Type: application/json",
        ));
    }
    // Signing in again replaces the browser's session: the old one ends.
    auth::end_cookie_session(&st, &headers).await?;
    let now = now_ms();
    let (token, expires_at, principal) = match (body.token, body.email, body.password) {
        (Some(t), None, None) => {
            let hash = crate::catalog::hash_key(t.as_bytes());
            if !auth::is_operator_token(&st, Some(peer.ip()), &hash).await? {
                tracing::info!(client = %peer.ip(), "console operator sign-in failed");
                return Err(ApiError::unauthorized("wrong admin token"));
            }
            let (token, hash) = new_token();
            let expires_at = now + st.session_ttl_ms;
            let client = peer.ip().to_string();
            let agent = auth::user_agent(&headers);
            st.store
                .insert_operator_session(&NewOperatorSession {
                    id: &new_id("ses"),
                    hash: &hash,
                    token_fp: &auth::operator_fp(&st),
                    created_at: now,
                    expires_at,
                    client: Some(&client),
                    user_agent: agent.as_deref(),
                })
                .await?;
            (token, expires_at, Principal::Operator)
        }
        (None, Some(email), Some(password)) => {
            let user = authenticate(&st, peer, &email, password).await?;
            let (token, info) = new_session(&st, &user, peer, &headers).await?;
            let expires_at = info.expires_at;
            (token, expires_at, auth::user_principal(info, user))
        }
        (Some(_), _, _) => {
            return Err(ApiError::field(
                "token",
                "give either token, or email and password",
            ));
        }
        (None, None, _) => return Err(ApiError::field("email", "required")),
        (None, Some(_), None) => return Err(ApiError::field("password", "required")),
    };
    let body = ConsoleSession {
        csrf_token: auth::csrf_token(&token),
        expires_at: rfc3339(expires_at),
        me: me_of(&st, &principal).await?,
    };
    let max_age = (expires_at - now) / 1000;
    Ok(reply(
        StatusCode::CREATED,
        cookie(&st, &token, max_age),
        Some(body),
    ))
}

#[utoipa::path(get, path = "/api/v1/session",
    responses((status = 200, body = ConsoleSession), (status = 401, description = "no session, or it ended")))]
pub async fn current(
    State(st): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(token) = session_cookie(&headers) else {
        return Err(ApiError::unauthorized("not signed in"));
    };
    let hash = crate::catalog::hash_key(token.as_bytes());
    let Some((principal, expires_at)) = auth::session_of(&st, &hash).await? else {
        return Err(auth::session_ended());
    };
    let body = ConsoleSession {
        csrf_token: auth::csrf_token(token),
        expires_at: rfc3339(expires_at),
        me: me_of(&st, &principal).await?,
    };
    Ok(reply(StatusCode::OK, None, Some(body)))
}

#[utoipa::path(delete, path = "/api/v1/session",
    responses((status = 204, description = "signed out; the cookie is cleared"), (status = 401), (status = 403, description = "CSRF check failed")))]
pub async fn sign_out(
    State(st): State<AdminState>,
    _p: Principal,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::end_cookie_session(&st, &headers).await?;
    Ok(reply(StatusCode::NO_CONTENT, cookie(&st, "", 0), None))
}
