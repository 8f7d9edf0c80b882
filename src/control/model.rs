//! The management plane's objects as the store holds them and the admin API shows them, and the
//! inputs that create them. Times are unix milliseconds in the store and RFC 3339 on the wire.

use serde::{Deserialize, Serialize, Serializer};
use sqlx::FromRow;
use utoipa::ToSchema;

use crate::config::managed::ServiceRoute;

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new id: a kind prefix and a lowercase ULID (sorts by creation time, so ids page in order).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
}

pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| format!("{s:?} is before 1970"))
}

fn ser_time<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

fn ser_opt_time<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Tenant {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    pub name: String,
    /// Where the tenant's services may route (set by the operator); `null`: anywhere free.
    #[serde(serialize_with = "ser_json")]
    #[schema(value_type = Option<Vec<RouteScope>>)]
    pub route_scope: Option<String>,
    /// The tenant's AI limits (all its apps' AI calls together).
    #[serde(serialize_with = "ser_json")]
    #[schema(value_type = Option<Object>)]
    pub ai_limits: Option<String>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub name: String,
}

/// A part of the route space a tenant may use: a path prefix, on some hosts (absent: any host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteScope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    pub path_prefix: String,
}

/// The body of `PUT /tenants/{id}/route-scope`: `null` lifts the restriction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteScopes {
    pub scopes: Option<Vec<RouteScope>>,
}

impl RouteScope {
    /// Whether a host pattern as a route writes it (`api.x.com`, `*.x.com`) falls in this scope.
    fn covers_host(&self, host: &str) -> bool {
        let Some(hosts) = &self.hosts else {
            return true;
        };
        let host = host.to_ascii_lowercase();
        hosts.iter().any(|h| {
            let h = h.to_ascii_lowercase();
            match h.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => h == host,
            }
        })
    }

    /// Whether a route (its hosts and path) falls in this scope.
    pub fn covers(&self, hosts: &[String], path: &str) -> bool {
        let host_ok = if hosts.is_empty() || hosts.iter().any(|h| h == "*") {
            self.hosts.is_none()
        } else {
            hosts.iter().all(|h| self.covers_host(h))
        };
        // At a segment boundary: scope `/team-a` covers `/team-a` and `/team-a/x`, not `/team-ab`.
        let p = self.path_prefix.as_str();
        let path_ok = path == p
            || (path.starts_with(p)
                && (p.ends_with('/') || path.as_bytes().get(p.len()) == Some(&b'/')));
        host_ok && path_ok
    }
}

/// What a service is made of besides its name and policies: stored as one JSON document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    #[schema(value_type = Vec<Object>)]
    pub routes: Vec<ServiceRoute>,
    /// The fields of a config file's `[upstreams.NAME]` table, as JSON (`null` for an AI
    /// service).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub upstream: serde_json::Value,
    /// An AI service: `{"models": [aliases]}` (the unified API over the config file's `[ai]`
    /// aliases; absent: all) or `{"provider": NAME}` (that provider's native API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ai: Option<crate::config::ai::RawAiRoute>,
    /// Credential kinds the service accepts.
    pub credentials: Vec<String>,
}

/// Requests an app may make to a service, per second, minute and day (each optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u64>,
}

impl Quota {
    /// Checks the values; `field` names the quota in errors.
    pub fn check(&self, field: &str) -> Result<(), (String, String)> {
        let all = [
            ("per_second", self.per_second),
            ("per_minute", self.per_minute),
            ("per_day", self.per_day),
        ];
        if all.iter().all(|(_, v)| v.is_none()) {
            return Err((field.into(), "set per_second, per_minute or per_day".into()));
        }
        for (name, v) in all {
            if let Some(v) = v {
                if v == 0 || v > 1_000_000_000 {
                    return Err((format!("{field}.{name}"), "must be 1 to 1000000000".into()));
                }
            }
        }
        Ok(())
    }

    pub fn parse(text: Option<&str>) -> Option<Quota> {
        serde_json::from_str(text?).ok()
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct ServiceRow {
    pub seq: i64,
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub visibility: String,
    pub approval: String,
    pub state: String,
    pub spec: String,
    pub openapi: Option<String>,
    pub sunset_at: Option<i64>,
    pub deprecation_link: Option<String>,
    pub deprecated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
    /// Default quota of the service's subscriptions (JSON of [`Quota`]).
    pub quota: Option<String>,
}

/// A service as the admin API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Service {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// `private` (the owning tenant's apps only) or `public` (every tenant's catalog).
    pub visibility: String,
    /// `auto` or `manual` approval of subscriptions.
    pub approval: String,
    /// `draft`, `published`, `deprecated` or `retired`.
    pub state: String,
    #[schema(value_type = Vec<Object>)]
    pub routes: Vec<ServiceRoute>,
    #[schema(value_type = Object)]
    pub upstream: serde_json::Value,
    /// An AI service's `ai` table.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ai: Option<crate::config::ai::RawAiRoute>,
    pub credentials: Vec<String>,
    /// Default quota of its subscriptions.
    pub quota: Option<Quota>,
    pub has_openapi: bool,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sunset_at: Option<i64>,
    pub deprecation_link: Option<String>,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deprecated_at: Option<i64>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    pub version: i64,
}

impl ServiceRow {
    pub fn spec(&self) -> Result<ServiceSpec, serde_json::Error> {
        serde_json::from_str(&self.spec)
    }

    /// The API view; a spec that no longer parses (a bug, or a hand-edited store) shows empty.
    pub fn view(&self) -> Service {
        let spec = self.spec().unwrap_or(ServiceSpec {
            routes: Vec::new(),
            upstream: serde_json::Value::Null,
            ai: None,
            credentials: Vec::new(),
        });
        Service {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            name: self.name.clone(),
            visibility: self.visibility.clone(),
            approval: self.approval.clone(),
            state: self.state.clone(),
            routes: spec.routes,
            upstream: spec.upstream,
            ai: spec.ai,
            credentials: spec.credentials,
            quota: Quota::parse(self.quota.as_deref()),
            has_openapi: self.openapi.is_some(),
            sunset_at: self.sunset_at,
            deprecation_link: self.deprecation_link.clone(),
            deprecated_at: self.deprecated_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    pub tenant_id: String,
    pub name: String,
    /// Default `private`.
    pub visibility: Option<String>,
    /// Default `manual`.
    pub approval: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub routes: Vec<ServiceRoute>,
    /// Absent for an AI service.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub upstream: serde_json::Value,
    /// An AI service (instead of an upstream): `{"models": [...]}` or `{"provider": NAME}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub ai: Option<crate::config::ai::RawAiRoute>,
    /// Default `["api_key"]`.
    pub credentials: Option<Vec<String>>,
    /// The service's OpenAPI document (any JSON object).
    #[schema(value_type = Option<Object>)]
    pub openapi: Option<serde_json::Value>,
    /// Default quota of the service's subscriptions (per app).
    pub quota: Option<Quota>,
}

impl NewService {
    /// Its tenant, and the rest as a definition.
    pub fn split(self) -> (String, ServiceUpdate) {
        (
            self.tenant_id,
            ServiceUpdate {
                name: self.name,
                visibility: self.visibility,
                approval: self.approval,
                routes: self.routes,
                upstream: self.upstream,
                ai: self.ai,
                credentials: self.credentials,
                openapi: self.openapi,
                quota: self.quota,
            },
        )
    }
}

/// A service's new definition (`PUT`): everything but its tenant and lifecycle, replaced whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceUpdate {
    pub name: String,
    pub visibility: Option<String>,
    pub approval: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub routes: Vec<ServiceRoute>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub upstream: serde_json::Value,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub ai: Option<crate::config::ai::RawAiRoute>,
    pub credentials: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub openapi: Option<serde_json::Value>,
    pub quota: Option<Quota>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deprecate {
    /// When the service will be retired (RFC 3339), sent as `Sunset`.
    pub sunset: Option<String>,
    /// Where callers read about the deprecation, sent as `Link: <...>; rel="deprecation"`.
    pub link: Option<String>,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct App {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The app's AI limits.
    #[serde(serialize_with = "ser_json")]
    #[schema(value_type = Option<Object>)]
    pub ai_limits: Option<String>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    pub tenant_id: String,
    pub name: String,
}

/// An API key as listed: never the key itself, only its visible prefix.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub app_id: String,
    pub prefix: String,
    pub name: Option<String>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
}

/// A key just made: the only time `key` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyShown {
    #[serde(flatten)]
    pub info: KeyInfo,
    pub key: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: Option<String>,
    /// RFC 3339; absent: never expires.
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Subscription {
    pub id: String,
    pub app_id: String,
    pub service_id: String,
    /// `pending`, `approved`, `rejected`, `revoked` or `cancelled`.
    pub state: String,
    pub reason: Option<String>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    pub version: i64,
    /// The subscription's own quota (else the service's applies).
    #[serde(serialize_with = "ser_quota")]
    #[schema(value_type = Option<Quota>)]
    pub quota: Option<String>,
    /// In lists: the app's name and tenant, and the service's name (for an inbox that cannot
    /// open another tenant's app).
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_tenant_id: Option<String>,
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_tenant_name: Option<String>,
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tenant_id: Option<String>,
}

fn ser_quota<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    Quota::parse(v.as_deref()).serialize(s)
}

/// The body of `/approve`: optionally the subscription's own quota.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    pub quota: Option<Quota>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    pub app_id: String,
    pub service_id: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    pub tenant_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    #[serde(serialize_with = "ser_json")]
    pub before: Option<String>,
    #[schema(value_type = Option<Object>)]
    #[serde(serialize_with = "ser_json")]
    pub after: Option<String>,
}

fn ser_json<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v.as_deref().map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(v)) => v.serialize(s),
        _ => s.serialize_none(),
    }
}

/// A page of a list: `next_cursor` is given back as `?cursor=` for the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The body of an action that takes no input: empty, or `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct User {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    #[serde(skip)]
    pub password_hash: String,
    /// `owner`, `admin`, `developer` or `viewer`.
    pub role: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    pub version: i64,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub tenant_id: String,
    pub email: String,
    /// At least 12 characters.
    pub password: String,
    pub role: String,
}

/// A new password: `current` is required when users change their own.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    pub current: Option<String>,
    pub password: String,
}

/// A user's changed fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

/// An admin API token as listed (a console session or a personal token), never the token.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub user_id: String,
    /// `session` or `personal`.
    pub kind: String,
    pub prefix: String,
    pub name: Option<String>,
    /// JSON array of scopes: `read`, `write`.
    #[serde(serialize_with = "ser_json_str")]
    #[schema(value_type = Vec<String>)]
    pub scopes: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    /// The client address it was made from.
    pub client: Option<String>,
    /// The browser's `User-Agent` when it was made (at most 256 characters).
    pub user_agent: Option<String>,
    /// Whether this is the session or token the call was made with (signing out when revoked).
    #[sqlx(skip)]
    pub current: bool,
}

/// An operator console session as listed (never its token).
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct OperatorSessionInfo {
    pub id: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    /// The client address it signed in from.
    pub client: Option<String>,
    /// The browser's `User-Agent` at sign-in (at most 256 characters).
    pub user_agent: Option<String>,
    /// It is the session this request came with.
    pub current: bool,
}

fn ser_json_str<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(v) => v.serialize(s),
        Err(_) => s.serialize_none(),
    }
}

/// A token just made: the only time `token` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenShown {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// `["read"]` or `["read", "write"]`.
    pub scopes: Vec<String>,
    /// Days until it expires: 1 to 365, default 90.
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Clone, FromRow)]
pub struct CredentialRow {
    pub seq: i64,
    pub id: String,
    pub app_id: String,
    pub kind: String,
    pub lookup: String,
    pub config: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A JWT credential's stored configuration (its secret, if any, sealed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JwtConfig {
    pub algorithm: Option<String>,
    pub public_key: Option<String>,
    pub secret_sealed: Option<String>,
    pub jwks_url: Option<String>,
    pub audience: Option<String>,
}

/// A credential as the admin API shows it: never a secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Credential {
    pub id: String,
    pub app_id: String,
    /// `jwt` or `basic`.
    pub kind: String,
    /// The JWT issuer (`iss`) it accepts.
    pub issuer: Option<String>,
    /// The basic credential's username.
    pub username: Option<String>,
    /// The HMAC credential's access key.
    pub access_key: Option<String>,
    pub algorithm: Option<String>,
    pub jwks_url: Option<String>,
    pub audience: Option<String>,
    pub has_public_key: bool,
    pub has_secret: bool,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
}

impl CredentialRow {
    pub fn jwt(&self) -> JwtConfig {
        serde_json::from_str(&self.config).unwrap_or_default()
    }

    pub fn view(&self) -> Credential {
        let c = self.jwt();
        Credential {
            id: self.id.clone(),
            app_id: self.app_id.clone(),
            kind: self.kind.clone(),
            issuer: (self.kind == "jwt").then(|| self.lookup.clone()),
            username: (self.kind == "basic").then(|| self.lookup.clone()),
            access_key: (self.kind == "hmac").then(|| self.lookup.clone()),
            algorithm: c.algorithm,
            jwks_url: c.jwks_url,
            audience: c.audience,
            has_public_key: c.public_key.is_some(),
            has_secret: c.secret_sealed.is_some(),
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// A JWT credential (an issuer and one of a public key (RS256/ES256), a secret (HS256, at least
/// 32 bytes) or a JWKS URL), or a basic one (a username and a password, made if not given).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// `jwt`, `basic` or `hmac`.
    pub kind: String,
    pub issuer: Option<String>,
    pub username: Option<String>,
    /// At least 12 characters; absent: one is made and shown once.
    pub password: Option<String>,
    /// `RS256`, `ES256` or `HS256` (with `public_key` or `secret`).
    pub algorithm: Option<String>,
    /// PEM of the public key.
    pub public_key: Option<String>,
    pub secret: Option<String>,
    pub jwks_url: Option<String>,
    /// The `aud` tokens must name.
    pub audience: Option<String>,
}
