//! `/api/v1/apps/{id}/credentials`: an app's JWT credentials (an issuer with a public key, an
//! HS256 secret or a JWKS URL). A secret is sealed with the store key before it is stored and is
//! never shown again; a JWKS document is fetched when the credential is made (so a wrong URL is
//! refused at once) and again every few minutes.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{AdminState, ApiError, Body, ListParams, Need, Principal, page};
use crate::control::jwt;
use crate::control::model::{
    App, Credential, CredentialRow, JwtConfig, NewCredential, NoInput, Page, new_id, now_ms,
};
use crate::control::store::Change;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/apps/{id}/credentials", get(list).post(create))
        .route("/api/v1/apps/{id}/credentials/{cid}/revoke", post(revoke))
}

async fn owned(st: &AdminState, p: &Principal, id: &str) -> Result<App, ApiError> {
    match st.store.app(id).await? {
        Some(a) if p.sees(&a.tenant_id) => Ok(a),
        _ => Err(ApiError::not_found(format!("no app {id:?}"))),
    }
}

#[utoipa::path(post, path = "/api/v1/apps/{id}/credentials", request_body = NewCredential,
    responses((status = 201, body = Credential), (status = 404), (status = 409, description = "the issuer belongs to a live credential"), (status = 422)))]
pub async fn create(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    Body(body): Body<NewCredential>,
) -> Result<impl IntoResponse, ApiError> {
    if body.kind == "basic" {
        return create_basic(st, p, id, body)
            .await
            .map(IntoResponse::into_response);
    }
    if body.kind == "hmac" {
        return create_hmac(st, p, id, body)
            .await
            .map(IntoResponse::into_response);
    }
    if body.kind != "jwt" {
        return Err(ApiError::field(
            "kind",
            "must be \"jwt\", \"basic\" or \"hmac\" (API keys are made at /api/v1/apps/{id}/keys)",
        ));
    }
    let issuer = body
        .issuer
        .clone()
        .ok_or_else(|| ApiError::field("issuer", "required for a jwt credential"))?;
    super::tenants::check_name("issuer", &issuer)?;
    if let Some(a) = &body.audience {
        super::tenants::check_name("audience", a)?;
    }
    if body.username.is_some() || body.password.is_some() {
        return Err(ApiError::field("username", "only for a basic credential"));
    }
    let sources = [
        body.public_key.is_some(),
        body.secret.is_some(),
        body.jwks_url.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(ApiError::field(
            "public_key",
            "give exactly one of public_key, secret and jwks_url",
        ));
    }
    let mut managed = st.managed.lock().await;
    let app = owned(&st, &p, &id).await?;
    p.require(Need::Develop)?;
    let mut config = JwtConfig {
        audience: body.audience,
        ..JwtConfig::default()
    };
    let mut doc = None;
    if let Some(url) = body.jwks_url {
        if body.algorithm.is_some() {
            return Err(ApiError::field(
                "algorithm",
                "comes from the JWKS with jwks_url",
            ));
        }
        if config.audience.is_none() {
            // A JWKS is usually an identity provider's, signing tokens for many clients: without an
            // audience any of them would pass as this app.
            return Err(ApiError::field(
                "audience",
                "required with jwks_url: the tokens' aud must name this API",
            ));
        }
        let (u, allow) = (url.clone(), managed.allow_loopback);
        tokio::task::spawn_blocking(move || jwt::check_jwks_url(&u, allow))
            .await
            .map_err(|_| ApiError::internal("URL check failed"))?
            .map_err(|e| ApiError::field("jwks_url", e))?;
        let fetched = jwt::fetch(&managed.http, &url)
            .await
            .map_err(|e| ApiError::field("jwks_url", e))?;
        crate::catalog::jwt::keys_from_jwks(&fetched)
            .map_err(|e| ApiError::field("jwks_url", e))?;
        doc = Some(fetched);
        config.jwks_url = Some(url);
    } else {
        let alg = body
            .algorithm
            .as_deref()
            .ok_or_else(|| ApiError::field("algorithm", "required with public_key or secret"))?;
        let parsed = jwt::algorithm(alg).map_err(|e| ApiError::field("algorithm", e))?;
        config.algorithm = Some(alg.to_string());
        match (body.public_key, body.secret) {
            (Some(pem), _) => {
                if parsed == jsonwebtoken::Algorithm::HS256 {
                    return Err(ApiError::field("public_key", "HS256 takes a secret"));
                }
                crate::catalog::jwt::key_from_pem(parsed, pem.as_bytes()).map_err(|e| {
                    ApiError::field("public_key", format!("not a usable {alg} public key: {e}"))
                })?;
                config.public_key = Some(pem);
            }
            (None, Some(secret)) => {
                if parsed != jsonwebtoken::Algorithm::HS256 {
                    return Err(ApiError::field("secret", "only HS256 takes a secret"));
                }
                if secret.len() < jwt::MIN_SECRET {
                    return Err(ApiError::field(
                        "secret",
                        format!("must be at least {} bytes", jwt::MIN_SECRET),
                    ));
                }
                config.secret_sealed = Some(managed.keyring.seal(secret.as_bytes()));
            }
            (None, None) => unreachable_source()?,
        }
    }
    let now = now_ms();
    let mut row = CredentialRow {
        seq: 0,
        id: new_id("crd"),
        app_id: app.id.clone(),
        kind: "jwt".into(),
        lookup: issuer,
        config: serde_json::to_string(&config).map_err(|_| ApiError::internal("cannot encode"))?,
        created_at: now,
        revoked_at: None,
    };
    let view = row.view();
    let change = Change {
        actor: &p.actor(),
        action: "credential.create",
        kind: "credential",
        id: &row.id,
        tenant_id: Some(&app.tenant_id),
        before: None,
        after: serde_json::to_string(&view).ok(),
        at: now,
    };
    row.seq = st.store.insert_credential(&row, &change).await?;
    managed.jwt_added(row, doc)?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// A basic credential just made; `password` is shown this once (when the gateway made it).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NewBasicShown {
    #[serde(flatten)]
    pub credential: Credential,
    pub password: Option<String>,
}

async fn create_basic(
    st: AdminState,
    p: Principal,
    id: String,
    body: NewCredential,
) -> Result<impl IntoResponse, ApiError> {
    let username = body
        .username
        .ok_or_else(|| ApiError::field("username", "required for a basic credential"))?;
    let ok = !username.is_empty()
        && username.len() <= 128
        && !username.contains(':')
        && !username
            .chars()
            .any(|c| c.is_control() || c.is_whitespace());
    if !ok {
        return Err(ApiError::field(
            "username",
            "1 to 128 characters, no colon, spaces or control characters",
        ));
    }
    for (set, f) in [
        (body.issuer.is_some(), "issuer"),
        (body.algorithm.is_some(), "algorithm"),
        (body.public_key.is_some(), "public_key"),
        (body.secret.is_some(), "secret"),
        (body.jwks_url.is_some(), "jwks_url"),
        (body.audience.is_some(), "audience"),
    ] {
        if set {
            return Err(ApiError::field(f, "only for a jwt credential"));
        }
    }
    let made = body.password.is_none();
    let password = match body.password {
        Some(pw) => {
            // 400 bytes at most: with the username it must fit the gateway's Authorization limit.
            if pw.chars().count() < 12 || pw.len() > 400 || pw.chars().any(char::is_control) {
                return Err(ApiError::field(
                    "password",
                    "must be 12 characters to 400 bytes, without control characters",
                ));
            }
            pw
        }
        None => {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
        }
    };
    // Who may make it is checked before the (costly, bounded) hash; hashed before the writer
    // lock is taken, and checked again under it.
    owned(&st, &p, &id).await?;
    p.require(Need::Develop)?;
    let phc = super::auth::hash_password(password.clone()).await?;
    let mut managed = st.managed.lock().await;
    let app = owned(&st, &p, &id).await?;
    p.require(Need::Develop)?;
    let now = now_ms();
    let mut row = CredentialRow {
        seq: 0,
        id: new_id("crd"),
        app_id: app.id.clone(),
        kind: "basic".into(),
        lookup: username,
        config: serde_json::json!({ "password_hash": phc }).to_string(),
        created_at: now,
        revoked_at: None,
    };
    let view = row.view();
    let change = Change {
        actor: &p.actor(),
        action: "credential.create",
        kind: "credential",
        id: &row.id,
        tenant_id: Some(&app.tenant_id),
        before: None,
        after: serde_json::to_string(&view).ok(),
        at: now,
    };
    row.seq = st.store.insert_credential(&row, &change).await?;
    managed.basic_added(row)?;
    Ok((
        StatusCode::CREATED,
        [("cache-control", "no-store")],
        Json(NewBasicShown {
            credential: view,
            password: made.then_some(password),
        }),
    ))
}

/// An HMAC credential just made: the access key and the secret, shown this once.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NewHmacShown {
    #[serde(flatten)]
    pub credential: Credential,
    pub access_key: String,
    /// 43 characters (base64url of 32 random bytes); the HMAC-SHA256 key is this text as given,
    /// not its decoded bytes.
    pub secret: String,
}

async fn create_hmac(
    st: AdminState,
    p: Principal,
    id: String,
    body: NewCredential,
) -> Result<impl IntoResponse, ApiError> {
    use base64::Engine;
    for (set, f) in [
        (body.issuer.is_some(), "issuer"),
        (body.username.is_some(), "username"),
        (body.password.is_some(), "password"),
        (body.algorithm.is_some(), "algorithm"),
        (body.public_key.is_some(), "public_key"),
        (body.secret.is_some(), "secret"),
        (body.jwks_url.is_some(), "jwks_url"),
        (body.audience.is_some(), "audience"),
    ] {
        if set {
            return Err(ApiError::field(
                f,
                "an hmac credential is made by the gateway: give only kind",
            ));
        }
    }
    let mut managed = st.managed.lock().await;
    let app = owned(&st, &p, &id).await?;
    p.require(Need::Develop)?;
    let b32 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let access_key = format!("rwh_{}", b32(&rand::random::<[u8; 15]>()));
    let raw: [u8; 32] = rand::random();
    let secret = b32(&raw);
    let now = now_ms();
    let mut row = CredentialRow {
        seq: 0,
        id: new_id("crd"),
        app_id: app.id.clone(),
        kind: "hmac".into(),
        lookup: access_key.clone(),
        config: serde_json::json!({ "secret_sealed": managed.keyring.seal(secret.as_bytes()) })
            .to_string(),
        created_at: now,
        revoked_at: None,
    };
    let view = row.view();
    let change = Change {
        actor: &p.actor(),
        action: "credential.create",
        kind: "credential",
        id: &row.id,
        tenant_id: Some(&app.tenant_id),
        before: None,
        after: serde_json::to_string(&view).ok(),
        at: now,
    };
    row.seq = st.store.insert_credential(&row, &change).await?;
    managed.hmac_added(row)?;
    Ok((
        StatusCode::CREATED,
        [("cache-control", "no-store")],
        Json(NewHmacShown {
            credential: view,
            access_key,
            secret,
        }),
    ))
}

/// The one-source check above makes this unreachable; an error rather than a panic all the same.
fn unreachable_source() -> Result<(), ApiError> {
    Err(ApiError::field(
        "public_key",
        "give one of public_key, secret and jwks_url",
    ))
}

#[utoipa::path(get, path = "/api/v1/apps/{id}/credentials", params(ListParams),
    responses((status = 200, body = Page<Credential>), (status = 404)))]
pub async fn list(
    State(st): State<AdminState>,
    p: Principal,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Credential>>, ApiError> {
    let app = owned(&st, &p, &id).await?;
    let mut q = params.query(&p, &[])?;
    q.tenants = None;
    q.filters.push(("app_id", app.id));
    let rows = st.store.credentials(&q).await?;
    Ok(Json(page(
        rows,
        &q,
        |c: &CredentialRow| c.id.clone(),
        |c| c.view(),
    )))
}

#[utoipa::path(post, path = "/api/v1/apps/{id}/credentials/{cid}/revoke",
    responses((status = 200, body = Credential), (status = 404), (status = 409)))]
pub async fn revoke(
    State(st): State<AdminState>,
    p: Principal,
    Path((id, cid)): Path<(String, String)>,
    _body: Body<NoInput>,
) -> Result<Json<Credential>, ApiError> {
    let mut managed = st.managed.lock().await;
    let app = owned(&st, &p, &id).await?;
    p.require(Need::Develop)?;
    let Some(mut row) = st
        .store
        .credential(&cid)
        .await?
        .filter(|c| c.app_id == app.id)
    else {
        return Err(ApiError::not_found(format!(
            "app {id:?} has no credential {cid:?}"
        )));
    };
    let before = serde_json::to_string(&row.view()).ok();
    let now = now_ms();
    row.revoked_at = Some(now);
    let view = row.view();
    let change = Change {
        actor: &p.actor(),
        action: "credential.revoke",
        kind: "credential",
        id: &cid,
        tenant_id: Some(&app.tenant_id),
        before,
        after: serde_json::to_string(&view).ok(),
        at: now,
    };
    if !st.store.revoke_credential(&cid, now, &change).await? {
        return Err(ApiError::conflict("the credential is revoked already"));
    }
    managed.credential_revoked(&cid)?;
    Ok(Json(view))
}
