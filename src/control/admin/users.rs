//! `/api/v1/users`, `/api/v1/login`, `/api/v1/logout`, `/api/v1/me`, `/api/v1/tokens`: the people
//! of a tenant, their console sessions and their personal API tokens (see [`super::auth`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::{self, Need, Principal, Role, new_token};
use super::listener::Peer;
use super::{AdminState, ApiError, Body, ListParams, etag, page};
use crate::control::model::{
    Login, NewPassword, NewToken, NewTokenShown, NewUser, NoInput, Page, TokenInfo, User,
    UserUpdate, new_id, now_ms,
};
use crate::control::store::Change;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/users", get(list).post(create))
        .route("/api/v1/users/{id}", get(one).patch(update))
        .route("/api/v1/users/{id}/disable", post(disable))
        .route("/api/v1/users/{id}/password", post(password))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/tokens", get(tokens).post(create_token))
        .route("/api/v1/tokens/{id}/revoke", post(revoke_token))
}

const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 1024;

fn check_email(e: &str) -> Result<(), ApiError> {
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ApiError::field("email", "not an email address"))
    }
}

#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser,
    responses((status = 201, body = User), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn create(
    State(st): State<AdminState>,
    p: Principal,
    Body(body): Body<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    let email = body.email.trim().to_lowercase();
    check_email(&email)?;
    let n = body.password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(ApiError::field(
            "password",
            format!("must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::field("role", "must be owner, admin, developer or viewer"))?;
    super::tenants::named_tenant(&st, &p, &body.tenant_id).await?;
    p.require(Need::Users)?;
    if role == Role::Owner {
        if let Principal::User { role, .. } = &p {
            if *role != Role::Owner {
                return Err(auth::forbidden(
                    "only an owner (or the operator) makes owners",
                ));
            }
        }
    }
    let password_hash = auth::hash_password(body.password).await?;
    let now = now_ms();
    let mut u = User {
        seq: 0,
        id: new_id("usr"),
        tenant_id: body.tenant_id,
        email,
        password_hash,
        role: role.as_str().into(),
        created_at: now,
        updated_at: now,
        version: 1,
        disabled_at: None,
    };
    let change = Change {
        actor: &p.actor(),
        action: "user.create",
        kind: "user",
        id: &u.id,
        tenant_id: Some(&u.tenant_id),
        before: None,
        // The view has no password hash (serde skips it).
        after: serde_json::to_string(&u).ok(),
        at: now,
    };
    u.seq = st.store.insert_user(&u, &change).await?;
    Ok((StatusCode::CREATED, [("etag", etag(u.version))], Json(u)))
}

#[utoipa::path(get, path = "/api/v1/users", params(ListParams), responses((status = 200, body = Page<User>)))]
pub async fn list(
    State(st): State<AdminState>,
    p: Principal,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<User>>, ApiError> {
    let q = params.query(&p, &["tenant_id", "q:email"])?;
    let rows = st.store.users(&q).await?;
    Ok(Json(page(rows, &q, |u: &User| u.id.clone(), |u| u)))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", responses((status = 200, body = User), (status = 404)))]
pub async fn one(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    match st.store.user(&id).await? {
        Some(u) if p.sees(&u.tenant_id) => Ok(([("etag", etag(u.version))], Json(u))),
        _ => Err(ApiError::not_found(format!("no user {id:?}"))),
    }
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", request_body = UserUpdate,
    responses((status = 200, body = User), (status = 403), (status = 404), (status = 412), (status = 422)))]
pub async fn update(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    Body(body): Body<UserUpdate>,
) -> Result<impl IntoResponse, ApiError> {
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::field("role", "must be owner, admin, developer or viewer"))?;
    let Some(before) = st.store.user(&id).await?.filter(|u| p.sees(&u.tenant_id)) else {
        return Err(ApiError::not_found(format!("no user {id:?}")));
    };
    p.require(Need::Users)?;
    may_manage(&p, &before, "changes this user's role")?;
    if let Principal::User { role: mine, .. } = &p {
        // Owners are made by owners.
        if role == Role::Owner && *mine != Role::Owner {
            return Err(auth::forbidden(
                "only an owner (or the operator) grants the owner role",
            ));
        }
    }
    super::check_if_match(&headers, before.version)?;
    // Owner counts and changes are serialised with every other admin write.
    let _writer = st.managed.lock().await;
    if before.role == "owner"
        && role != Role::Owner
        && st.store.owners(&before.tenant_id).await? <= 1
    {
        return Err(ApiError::conflict(
            "the tenant's last owner keeps the role: make another owner first",
        ));
    }
    let mut after = before.clone();
    after.role = role.as_str().into();
    after.updated_at = now_ms();
    after.version += 1;
    let change = Change {
        actor: &p.actor(),
        action: "user.update",
        kind: "user",
        id: &id,
        tenant_id: Some(&before.tenant_id),
        before: serde_json::to_string(&before).ok(),
        after: serde_json::to_string(&after).ok(),
        at: after.updated_at,
    };
    if !st.store.update_user_role(&after, &change).await? {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the user changed meanwhile; read it again",
        ));
    }
    Ok(([("etag", etag(after.version))], Json(after)))
}

/// Changing another user's role, disabling them or resetting their password is power over their
/// account, so it goes only downwards: owners (and the operator) manage anyone, an admin only
/// developers and viewers. (Otherwise an admin could demote a fellow admin, reset the password
/// and promote the account back: a takeover.)
fn may_manage(p: &Principal, target: &User, what: &str) -> Result<(), ApiError> {
    if let Principal::User { role, .. } = p {
        let theirs = Role::parse(&target.role).unwrap_or(Role::Owner);
        if *role != Role::Owner && theirs >= *role {
            return Err(auth::forbidden(&format!(
                "only a higher role (or the operator) {what}"
            )));
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/users/{id}/disable",
    responses((status = 200, body = User, description = "disabled; its sessions and tokens are revoked"), (status = 403), (status = 404), (status = 409), (status = 412)))]
pub async fn disable(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    _body: Body<NoInput>,
) -> Result<Json<User>, ApiError> {
    let Some(before) = st.store.user(&id).await?.filter(|u| p.sees(&u.tenant_id)) else {
        return Err(ApiError::not_found(format!("no user {id:?}")));
    };
    p.require(Need::Users)?;
    may_manage(&p, &before, "disables this user")?;
    let _writer = st.managed.lock().await;
    let Some(before) = st.store.user(&id).await? else {
        return Err(ApiError::not_found(format!("no user {id:?}")));
    };
    super::check_if_match(&headers, before.version)?;
    if before.role == "owner"
        && before.disabled_at.is_none()
        && st.store.owners(&before.tenant_id).await? <= 1
    {
        return Err(ApiError::conflict(
            "the tenant's last owner cannot be disabled: make another owner first",
        ));
    }
    let now = now_ms();
    let mut after = before.clone();
    after.disabled_at = Some(now);
    after.updated_at = now;
    after.version += 1;
    let change = Change {
        actor: &p.actor(),
        action: "user.disable",
        kind: "user",
        id: &id,
        tenant_id: Some(&before.tenant_id),
        before: serde_json::to_string(&before).ok(),
        after: serde_json::to_string(&after).ok(),
        at: now,
    };
    if st.store.disable_user(&id, now, &change).await? {
        Ok(Json(after))
    } else {
        Err(ApiError::conflict("the user is disabled already"))
    }
}

#[utoipa::path(post, path = "/api/v1/users/{id}/password", request_body = NewPassword,
    responses((status = 204, description = "changed; the user's console sessions end"), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn password(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    Body(body): Body<NewPassword>,
) -> Result<StatusCode, ApiError> {
    let Some(user) = st.store.user(&id).await?.filter(|u| p.sees(&u.tenant_id)) else {
        return Err(ApiError::not_found(format!("no user {id:?}")));
    };
    let own = matches!(&p, Principal::User { user_id, .. } if *user_id == user.id);
    let throttle_key = format!("password:{}", user.id);
    if own {
        if let Principal::User { write: false, .. } = &p {
            return Err(auth::forbidden("this token has the read scope only"));
        }
        // Users changing their own password prove they know the current one.
        let current = body
            .current
            .clone()
            .ok_or_else(|| ApiError::field("current", "required to change your own password"))?;
        // Guessing the current password is throttled like logins.
        if let Some(wait) = st.throttle.blocked(&throttle_key, auth::PER_EMAIL).await {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many wrong passwords; try again in {wait} s"),
            ));
        }
        st.throttle.failed(&throttle_key).await;
        if !auth::verify_password(current, Some(user.password_hash.clone())).await {
            return Err(ApiError::field("current", "not the current password"));
        }
        st.throttle.clear(&throttle_key).await;
    } else {
        p.require(Need::Users)?;
        may_manage(&p, &user, "resets this user's password")?;
    }
    let n = body.password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(ApiError::field(
            "password",
            format!("must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    let phc = auth::hash_password(body.password).await?;
    let now = now_ms();
    let change = Change {
        actor: &p.actor(),
        action: "user.password",
        kind: "user",
        id: &id,
        tenant_id: Some(&user.tenant_id),
        before: None,
        after: None,
        at: now,
    };
    st.store.set_password(&id, &phc, now, &change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A session token, shown once, with the user it acts for.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Session {
    pub token: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: String,
    pub user: User,
}

#[utoipa::path(post, path = "/api/v1/login", request_body = Login,
    responses((status = 201, body = Session), (status = 401), (status = 429, description = "too many failed logins")),
    security(()))]
pub async fn login(
    State(st): State<AdminState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: axum::http::HeaderMap,
    Body(body): Body<Login>,
) -> Result<impl IntoResponse, ApiError> {
    let user = authenticate(&st, peer, &body.email, body.password).await?;
    let (token, info) = new_session(&st, &user, peer, &headers).await?;
    Ok((
        StatusCode::CREATED,
        [("cache-control", "no-store")],
        Json(Session {
            token,
            expires_at: crate::control::model::rfc3339(info.expires_at),
            user,
        }),
    ))
}

/// The refusal of a throttled sign-in (429 with `retry_after`).
pub(super) fn throttled(wait: u64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed logins; try again in {wait} s"),
    );
    e.fields.insert("retry_after".into(), wait.to_string());
    e
}

/// The user with this email and password, throttled per email and per client address.
pub(super) async fn authenticate(
    st: &AdminState,
    peer: SocketAddr,
    email: &str,
    password: String,
) -> Result<User, ApiError> {
    let email = email.trim().to_lowercase();
    // Per account from this client, per client, and per account from everywhere: guessing one
    // account from one address locks that address out of it, not its owner (who signs in from
    // elsewhere) unless the guesses come from many addresses.
    let by_client = auth::client_key("ip", peer.ip());
    let by_email = format!("email:{email}:{by_client}");
    let by_email_all = format!("email:{email}");
    for (key, limit) in [
        (&by_email, auth::PER_EMAIL),
        (&by_client, auth::PER_CLIENT),
        (&by_email_all, auth::PER_EMAIL_ALL),
    ] {
        if let Some(wait) = st.throttle.blocked(key, limit).await {
            return Err(throttled(wait));
        }
    }
    // The attempt counts before the password is checked, so concurrent guesses cannot all pass
    // the throttle; a success takes it back.
    st.throttle.failed(&by_email).await;
    st.throttle.failed(&by_client).await;
    st.throttle.failed(&by_email_all).await;
    let user = st.store.user_by_email(&email).await?;
    let ok = auth::verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let user = match user {
        Some(u) if ok && u.disabled_at.is_none() => u,
        _ => {
            tracing::info!(client = %peer.ip(), "admin login failed");
            return Err(ApiError::unauthorized("wrong email or password"));
        }
    };
    st.throttle.clear(&by_email).await;
    st.throttle.forgive(&by_client).await;
    st.throttle.forgive(&by_email_all).await;
    Ok(user)
}

/// A new session token of `user` (`[admin] session_ttl`), recorded by its hash.
pub(super) async fn new_session(
    st: &AdminState,
    user: &User,
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
) -> Result<(String, TokenInfo), ApiError> {
    let (token, hash) = new_token();
    let now = now_ms();
    let info = TokenInfo {
        id: new_id("tok"),
        user_id: user.id.clone(),
        kind: "session".into(),
        prefix: token[..12].to_string(),
        name: None,
        scopes: r#"["read","write"]"#.into(),
        created_at: now,
        expires_at: now + st.session_ttl_ms,
        revoked_at: None,
        client: Some(peer.ip().to_string()),
        user_agent: auth::user_agent(headers),
        current: false,
    };
    st.store.insert_token(&info, &hash, None).await?;
    Ok((token, info))
}

#[utoipa::path(post, path = "/api/v1/logout", responses((status = 204), (status = 401)))]
pub async fn logout(
    State(st): State<AdminState>,
    p: Principal,
    headers: axum::http::HeaderMap,
    _body: Body<NoInput>,
) -> Result<StatusCode, ApiError> {
    if let Principal::User { token_id, .. } = &p {
        st.store.revoke_token(token_id, now_ms(), None).await?;
    }
    // A console session (the operator's too) ends by its cookie.
    auth::end_cookie_session(&st, &headers).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling principal.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Me {
    /// `operator` or `user`.
    pub kind: &'static str,
    pub user: Option<User>,
    pub write: bool,
}

#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = 401)))]
pub async fn me(State(st): State<AdminState>, p: Principal) -> Result<Json<Me>, ApiError> {
    Ok(Json(me_of(&st, &p).await?))
}

/// Who `p` is, as `/me` answers.
pub(super) async fn me_of(st: &AdminState, p: &Principal) -> Result<Me, ApiError> {
    Ok(match p {
        Principal::Operator => Me {
            kind: "operator",
            user: None,
            write: true,
        },
        Principal::User { user_id, write, .. } => Me {
            kind: "user",
            user: st.store.user(user_id).await?,
            write: *write,
        },
    })
}

/// The calling user, for token endpoints (the operator has no tokens of its own).
fn user_of(p: &Principal) -> Result<(&str, bool), ApiError> {
    match p {
        Principal::User { user_id, write, .. } => Ok((user_id, *write)),
        Principal::Operator => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_user",
            "the bootstrap token acts for no user; log in as a user to make personal tokens",
        )),
    }
}

/// The id of the session or token this call was made with.
fn own_token(p: &Principal) -> Option<&str> {
    match p {
        Principal::User { token_id, .. } => Some(token_id),
        Principal::Operator => None,
    }
}

#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken,
    responses((status = 201, body = NewTokenShown, description = "the token, shown this once"), (status = 403), (status = 422)))]
pub async fn create_token(
    State(st): State<AdminState>,
    p: Principal,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: axum::http::HeaderMap,
    Body(body): Body<NewToken>,
) -> Result<impl IntoResponse, ApiError> {
    let (user_id, write) = user_of(&p)?;
    if let Principal::User { session: false, .. } = &p {
        // A token cannot extend its own life by minting a successor: tokens come from a login.
        return Err(auth::forbidden(
            "personal tokens are made from a console session (/login)",
        ));
    }
    super::tenants::check_name("name", &body.name)?;
    let mut scopes = Vec::new();
    for (i, s) in body.scopes.iter().enumerate() {
        if s != "read" && s != "write" {
            return Err(ApiError::field(
                format!("scopes[{i}]"),
                "must be \"read\" or \"write\"",
            ));
        }
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    if !scopes.iter().any(|s| s == "read") {
        return Err(ApiError::field("scopes", "must include \"read\""));
    }
    if scopes.iter().any(|s| s == "write") && !write {
        return Err(auth::forbidden(
            "a read-only token cannot make a write token",
        ));
    }
    let days = body.expires_in_days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(ApiError::field("expires_in_days", "must be 1 to 365"));
    }
    let (token, hash) = new_token();
    let now = now_ms();
    let info = TokenInfo {
        id: new_id("tok"),
        user_id: user_id.to_string(),
        kind: "personal".into(),
        prefix: token[..12].to_string(),
        name: Some(body.name),
        scopes: serde_json::to_string(&scopes).unwrap_or_else(|_| "[\"read\"]".into()),
        created_at: now,
        expires_at: now + i64::from(days) * 86_400_000,
        revoked_at: None,
        client: Some(peer.ip().to_string()),
        user_agent: auth::user_agent(&headers),
        current: false,
    };
    let tenant = p.tenants().and_then(|t| t.into_iter().next());
    let change = Change {
        actor: &p.actor(),
        action: "token.create",
        kind: "token",
        id: &info.id,
        tenant_id: tenant.as_deref(),
        before: None,
        after: serde_json::to_string(&info).ok(),
        at: now,
    };
    st.store.insert_token(&info, &hash, Some(&change)).await?;
    Ok((
        StatusCode::CREATED,
        [("cache-control", "no-store")],
        Json(NewTokenShown { info, token }),
    ))
}

#[utoipa::path(get, path = "/api/v1/tokens", params(ListParams),
    responses((status = 200, body = Page<TokenInfo>)))]
pub async fn tokens(
    State(st): State<AdminState>,
    p: Principal,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<TokenInfo>>, ApiError> {
    let (user_id, _) = user_of(&p)?;
    let mut q = params.query(&p, &[])?;
    q.tenants = None;
    q.filters.push(("user_id", user_id.to_string()));
    let rows = st.store.tokens(&q).await?;
    let own = own_token(&p);
    Ok(Json(page(
        rows,
        &q,
        |t: &TokenInfo| t.id.clone(),
        |mut t| {
            t.current = own == Some(t.id.as_str());
            t
        },
    )))
}

#[utoipa::path(post, path = "/api/v1/tokens/{id}/revoke",
    responses((status = 200, body = TokenInfo), (status = 404), (status = 409)))]
pub async fn revoke_token(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    _body: Body<NoInput>,
) -> Result<Json<TokenInfo>, ApiError> {
    let (user_id, write) = user_of(&p)?;
    // Revoking is a change: a read-only token may end itself, nothing else.
    if !write && own_token(&p) != Some(id.as_str()) {
        return Err(auth::forbidden(
            "this token has the read scope only; it may revoke itself, not others",
        ));
    }
    let Some(mut t) = st.store.token(&id).await?.filter(|t| t.user_id == user_id) else {
        return Err(ApiError::not_found(format!("no token {id:?}")));
    };
    let now = now_ms();
    let before = serde_json::to_string(&t).ok();
    t.revoked_at = Some(now);
    let tenant = p.tenants().and_then(|t| t.into_iter().next());
    let change = Change {
        actor: &p.actor(),
        action: "token.revoke",
        kind: "token",
        id: &t.id,
        tenant_id: tenant.as_deref(),
        before,
        after: serde_json::to_string(&t).ok(),
        at: now,
    };
    if st.store.revoke_token(&id, now, Some(&change)).await? {
        t.current = own_token(&p) == Some(t.id.as_str());
        Ok(Json(t))
    } else {
        Err(ApiError::conflict("the token is revoked already"))
    }
}
