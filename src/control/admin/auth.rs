//! Who makes an admin call, and what they may do.
//!
//! - The bootstrap token (`RINGWAY_ADMIN_TOKEN` or `[admin] token_file`) acts as the node's
//!   operator: every tenant, every action. Only its SHA-256 is kept; it is compared in constant
//!   time.
//! - A user of a tenant acts through a token: a console session (from `/login`, 12 hours) or a
//!   personal API token (scopes `read` / `write`, up to a year). Tokens are `rwa_` and 256 random
//!   bits, stored as their SHA-256; a disabled user's tokens stop working.
//!
//! A user sees only its tenant: another tenant's objects are 404. Within its tenant, its role
//! decides ([`Need`]): viewers read; developers also build (services as drafts, apps, keys,
//! subscriptions); admins also govern (lifecycle, approvals) and manage users; owners also
//! manage owners. A token without the `write` scope only reads.
//!
//! Passwords are argon2id (the crate's defaults: 19 MiB, 2 passes), hashed and verified on the
//! blocking pool so the admin API keeps serving meanwhile. Failed logins are throttled per email
//! and per client address.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use super::{AdminState, ApiError};
use crate::control::model::now_ms;

/// What admin tokens start with (data-plane API keys start with `rw_`).
pub const TOKEN_PREFIX: &str = "rwa_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Developer,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "developer" => Role::Developer,
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// What an action needs, within a tenant the principal sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    /// Create and change services (as drafts), apps, keys; subscribe and cancel.
    Develop,
    /// Lifecycle transitions, approvals, rejections, revocations.
    Govern,
    /// Create and manage users.
    Users,
}

impl Need {
    fn role(self) -> Role {
        match self {
            Need::Read => Role::Viewer,
            Need::Develop => Role::Developer,
            Need::Govern | Need::Users => Role::Admin,
        }
    }
}

/// Who makes a call (see the module docs).
#[derive(Debug, Clone)]
pub enum Principal {
    Operator,
    User {
        user_id: String,
        tenant_id: String,
        role: Role,
        /// The token has the `write` scope.
        write: bool,
        token_id: String,
        /// A console session (from `/login`), not a personal token.
        session: bool,
    },
}

impl Principal {
    /// The tenants this principal sees; `None`: all.
    pub fn tenants(&self) -> Option<Vec<String>> {
        match self {
            Principal::Operator => None,
            Principal::User { tenant_id, .. } => Some(vec![tenant_id.clone()]),
        }
    }

    /// Whether it sees objects of `tenant` (another tenant's objects are 404 to it).
    pub fn sees(&self, tenant: &str) -> bool {
        match self {
            Principal::Operator => true,
            Principal::User { tenant_id, .. } => tenant_id == tenant,
        }
    }

    /// Refuses (403) what its role or token scope does not allow. Check [`Principal::sees`] first:
    /// an object it cannot see is a 404, not a 403.
    pub fn require(&self, need: Need) -> Result<(), ApiError> {
        let Principal::User { role, write, .. } = self else {
            return Ok(());
        };
        if need != Need::Read && !write {
            return Err(forbidden("this token has the read scope only"));
        }
        if *role < need.role() {
            return Err(forbidden(&format!(
                "the {} role cannot do this (needs {})",
                role.as_str(),
                need.role().as_str()
            )));
        }
        Ok(())
    }

    /// Refuses anything but the operator (creating tenants).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::User { .. } => {
                Err(forbidden("only the operator (bootstrap token) can do this"))
            }
        }
    }

    /// How the audit log names it.
    pub fn actor(&self) -> String {
        match self {
            Principal::Operator => "operator".to_string(),
            Principal::User { user_id, .. } => format!("user:{user_id}"),
        }
    }
}

pub fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The console's session cookie: a session token (a user's or the operator's), `HttpOnly`,
/// `SameSite=Strict`.
pub const SESSION_COOKIE: &str = "ringway_session";
/// The header a console call that changes something carries: [`csrf_token`] of its session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session token in the request's `Cookie` headers, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Ends the console session whose cookie the request carries, if any (a user's or the
/// operator's).
pub async fn end_cookie_session(
    state: &AdminState,
    headers: &axum::http::HeaderMap,
) -> Result<(), ApiError> {
    if let Some(t) = session_cookie(headers) {
        let hash = crate::catalog::hash_key(t.as_bytes());
        state.store.end_session(&hash, now_ms()).await?;
    }
    Ok(())
}

/// The CSRF token of a session: derived from its secret token, so only a page that was given
/// it (at sign-in, or by `GET /api/v1/session`) knows it; another site's page cannot read it.
pub fn csrf_token(session_token: &str) -> String {
    let mut b = Vec::with_capacity(session_token.len() + 13);
    b.extend_from_slice(b"ringway-csrf\0");
    b.extend_from_slice(session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(crate::catalog::hash_key(&b))
}

/// Refuses a request the browser marks as sent from another site (or another port of this
/// host). A request without the header (not a browser, or an old one) passes.
pub fn same_origin(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    match headers.get("sec-fetch-site") {
        Some(site) if !matches!(site.as_bytes(), b"same-origin" | b"none") => Err(csrf_refused(
            "a cross-site request cannot use the console session",
        )),
        _ => Ok(()),
    }
}

/// A cookie-authenticated call that changes state must come from the console's own page: the
/// CSRF header matches the session, and the browser does not call it cross-site.
fn check_csrf(parts: &Parts, session_token: &str) -> Result<(), ApiError> {
    if let Some(site) = parts.headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(csrf_refused(
                "a cross-site request cannot use the console session",
            ));
        }
    }
    let given = parts
        .headers
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let want = csrf_token(session_token);
    if given.is_empty() || !bool::from(given.ct_eq(want.as_bytes())) {
        return Err(csrf_refused(
            "missing or wrong X-CSRF-Token (reload the console, or use a Bearer token)",
        ));
    }
    Ok(())
}

fn csrf_refused(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", message)
}

impl FromRequestParts<AdminState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ApiError> {
        let (token, from_cookie) = match parts.headers.get(header::AUTHORIZATION) {
            Some(v) => {
                let token = bearer(v).ok_or_else(|| {
                    ApiError::unauthorized("expected Authorization: Bearer <token>")
                })?;
                (token, false)
            }
            None => match session_cookie(&parts.headers) {
                Some(t) => (t, true),
                None => {
                    return Err(ApiError::unauthorized(
                        "missing Authorization: Bearer <token> (or a console session)",
                    ));
                }
            },
        };
        if from_cookie && !parts.method.is_safe() {
            check_csrf(parts, token)?;
        }
        let hash = crate::catalog::hash_key(token.as_bytes());
        // The bootstrap token itself is never a cookie: the console trades it for a session.
        // Anything presented that is not a user token is a try at it, and throttled as such.
        if !from_cookie {
            let operator = if token.starts_with(TOKEN_PREFIX) {
                bool::from(hash.ct_eq(&*state.token_hash))
            } else {
                is_operator_token(state, peer_of(parts), &hash).await?
            };
            if operator {
                return Ok(Principal::Operator);
            }
        }
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(ApiError::unauthorized("the token is not valid"));
        }
        if from_cookie {
            return match session_of(state, &hash).await? {
                Some((p, _)) => Ok(p),
                None => Err(session_ended()),
            };
        }
        let Some((t, user)) = state.store.token_user(&hash, now_ms()).await? else {
            return Err(ApiError::unauthorized(
                "the token is not valid (unknown, expired or revoked)",
            ));
        };
        Ok(user_principal(t, user))
    }
}

/// The principal a user's live token stands for.
pub fn user_principal(
    t: crate::control::model::TokenInfo,
    user: crate::control::model::User,
) -> Principal {
    let scopes: Vec<String> = serde_json::from_str(&t.scopes).unwrap_or_default();
    Principal::User {
        role: Role::parse(&user.role).unwrap_or(Role::Viewer),
        user_id: user.id,
        tenant_id: user.tenant_id,
        write: scopes.iter().any(|s| s == "write"),
        session: t.kind == "session",
        token_id: t.id,
    }
}

/// Who the live console session whose token hashes to `hash` is (the operator's or a user's),
/// and when it expires; `None` when there is no such session any more.
pub async fn session_of(
    state: &AdminState,
    hash: &[u8; 32],
) -> Result<Option<(Principal, i64)>, ApiError> {
    let now = now_ms();
    if let Some((_, exp)) = state
        .store
        .operator_session(hash, &operator_fp(state), now)
        .await?
    {
        return Ok(Some((Principal::Operator, exp)));
    }
    Ok(match state.store.token_user(hash, now).await? {
        Some((t, u)) if t.kind == "session" => {
            let exp = t.expires_at;
            Some((user_principal(t, u), exp))
        }
        _ => None,
    })
}

/// What ties an operator session to the bootstrap token it was made with.
pub fn operator_fp(state: &AdminState) -> [u8; 32] {
    crate::catalog::hash_key(&state.token_hash[..])
}

/// A console call whose session expired or was ended.
pub fn session_ended() -> ApiError {
    let mut e =
        ApiError::unauthorized("the session has ended (expired or signed out): sign in again");
    e.code = "session_ended";
    e
}

/// A new admin token and its hash.
pub fn new_token() -> (String, [u8; 32]) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = crate::catalog::hash_key(token.as_bytes());
    (token, hash)
}

/// Password hashes computed at once at most: each takes 19 MiB and a core for ~20 ms, so
/// concurrent logins queue here instead of exhausting memory.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// argon2id PHC string of `password` (on the blocking pool).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|_| ApiError::internal("password hashing unavailable"))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|_| ApiError::internal("password hashing failed"))?
    .map_err(|_| ApiError::internal("password hashing failed"))
}

/// Whether `password` matches `phc` (on the blocking pool). With `None` (no such user) it
/// verifies against a hash of a random password, so that an unknown email takes as long.
pub async fn verify_password(password: String, phc: Option<String>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let phc = phc.unwrap_or_else(|| {
            DUMMY
                .get_or_init(|| {
                    let random: [u8; 16] = rand::random();
                    match SaltString::encode_b64(&rand::random::<[u8; 16]>()) {
                        Ok(salt) => argon2::Argon2::default()
                            .hash_password(&random, &salt)
                            .map(|h| h.to_string())
                            .unwrap_or_default(),
                        Err(_) => String::new(),
                    }
                })
                .clone()
        });
        match PasswordHash::new(&phc) {
            Ok(h) => argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok(),
            Err(_) => false,
        }
    })
    .await
    .unwrap_or(false)
}

/// The token of an `Authorization: Bearer <token>` value.
pub fn bearer(v: &axum::http::HeaderValue) -> Option<&str> {
    let (scheme, rest) = v.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// The throttle key of a client address: the address itself for IPv4, its /64 for IPv6 (one
/// host holds a whole /64, and could otherwise rotate through it to escape the limit).
pub fn client_key(kind: &str, ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => format!("{kind}:{v4}"),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("{kind}:{v4}"),
            None => {
                let s = v6.segments();
                format!("{kind}:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Whether `hash` is the bootstrap token's, with guesses throttled per client address
/// ([`PER_CLIENT`] wrong ones per [`PERIOD`], shared by the console's token sign-in, Bearer calls
/// and `/metrics`): once over, even the right token is refused with 429 until the period ends.
/// Without an address (never the case behind the admin listener) nothing is counted.
pub async fn is_operator_token(
    state: &AdminState,
    peer: Option<std::net::IpAddr>,
    hash: &[u8; 32],
) -> Result<bool, ApiError> {
    let key = peer.map(|ip| client_key("op", ip));
    if let Some(key) = &key {
        if let Some(wait) = state.throttle.blocked(key, PER_CLIENT).await {
            return Err(super::users::throttled(wait));
        }
        // Counted before the comparison, so that concurrent guesses cannot all pass; a match
        // takes it back.
        state.throttle.failed(key).await;
    }
    let ok = bool::from(hash.ct_eq(&*state.token_hash));
    if let (true, Some(key)) = (ok, &key) {
        state.throttle.forgive(key).await;
    }
    Ok(ok)
}

/// The client address of a request to the admin listener.
pub fn peer_of(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<super::listener::Peer>>()
        .map(|c| c.0.0.ip())
}

/// Failed logins per email and per client address, in a sliding period.
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Failed logins allowed in [`PERIOD`] per email from one client address, per client address
/// (IPv6: per /64), and per email from all addresses together.
pub const PER_EMAIL: u32 = 5;
pub const PER_CLIENT: u32 = 20;
pub const PER_EMAIL_ALL: u32 = 100;
pub const PERIOD: Duration = Duration::from_secs(15 * 60);
/// Entries kept at most (oldest dropped first): the map cannot grow without bound.
const MAX_ENTRIES: usize = 100_000;

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl Throttle {
    /// Seconds to wait when `key` is over `limit`, else `None`.
    pub async fn blocked(&self, key: &str, limit: u32) -> Option<u64> {
        let map = self.failures.lock().await;
        let (n, since) = map.get(key)?;
        let left = PERIOD.checked_sub(since.elapsed())?;
        (*n >= limit).then(|| left.as_secs().max(1))
    }

    pub async fn failed(&self, key: &str) {
        let mut map = self.failures.lock().await;
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, since)| since.elapsed() < PERIOD);
            if map.len() >= MAX_ENTRIES {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        let e = map.entry(key.to_string()).or_insert((0, Instant::now()));
        if e.1.elapsed() >= PERIOD {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    pub async fn clear(&self, key: &str) {
        self.failures.lock().await.remove(key);
    }

    /// Takes back one counted attempt (a login that succeeded).
    pub async fn forgive(&self, key: &str) {
        if let Some(e) = self.failures.lock().await.get_mut(key) {
            e.0 = e.0.saturating_sub(1);
        }
    }
}

/// The browser's `User-Agent`, as kept with a session or token: printable ASCII only, at most
/// 256 characters.
pub fn user_agent(headers: &axum::http::HeaderMap) -> Option<String> {
    let v = headers.get(header::USER_AGENT)?.to_str().ok()?;
    let v: String = v
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(256)
        .collect();
    (!v.is_empty()).then_some(v)
}
