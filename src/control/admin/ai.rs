//! `/api/v1/ai/...`: the AI gateway's providers (with their keys' state), their keys added
//! through the API (sealed in the store, never shown again: a view has the id, label and last
//! four characters), and the price table. Operator only: provider keys and prices are the
//! node's, not a tenant's.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{AdminState, ApiError, Body, Principal};
use crate::ai::price::{Price, parse_usd};
use crate::config::ai::{Usd, hint, key_is_sendable};
use crate::control::model::{new_id, now_ms};
use crate::control::store::{AiKeyRow, AiPriceRow, Change};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/ai/providers", get(providers))
        .route("/api/v1/ai/providers/{name}/keys", post(add_key))
        .route("/api/v1/ai/providers/{name}/keys/{id}", delete(delete_key))
        .route("/api/v1/ai/models", get(models))
        .route("/api/v1/ai/prices", get(prices))
        .route(
            "/api/v1/ai/prices/{model}",
            put(set_price).delete(delete_price),
        )
}

/// A provider key as the API shows it (never the key).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    /// `config` (the config file's) or `store` (added through this API).
    pub source: &'static str,
    pub label: String,
    /// The key's last four characters.
    pub last4: String,
    /// `active`, `cooling` (the provider answered 429; usable again after `retry_after_ms`)
    /// or `disabled` (the provider refused it as invalid).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderView {
    pub name: String,
    pub kind: String,
    pub host: String,
    pub base_path: String,
    pub keys: Vec<KeyView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderList {
    pub items: Vec<ProviderView>,
}

fn kind_name(k: &crate::ai::provider::Kind) -> &'static str {
    use crate::ai::provider::Kind;
    match k {
        Kind::OpenAi => "openai",
        Kind::Compatible { .. } => "compatible",
        Kind::Azure { .. } => "azure",
        Kind::Anthropic => "anthropic",
        Kind::Gemini => "gemini",
    }
}

#[utoipa::path(get, path = "/api/v1/ai/providers",
    responses((status = 200, body = ProviderList), (status = 403)))]
pub async fn providers(
    State(st): State<AdminState>,
    p: Principal,
) -> Result<Json<ProviderList>, ApiError> {
    p.require_operator()?;
    let ai = st.managed.lock().await.ai();
    let now = crate::proxy::ai::unix_ms();
    let items = ai
        .providers
        .iter()
        .map(|pr| ProviderView {
            name: pr.name.clone(),
            kind: kind_name(&pr.kind).to_string(),
            host: pr.host.clone(),
            base_path: pr.base_path.clone(),
            keys: pr
                .keys
                .keys()
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let (state, retry_after_ms) = pr.keys.pool.state(i, now);
                    KeyView {
                        id: k.id.clone(),
                        source: k.source,
                        label: k.label.clone(),
                        last4: k.hint.clone(),
                        state,
                        retry_after_ms,
                    }
                })
                .collect(),
        })
        .collect();
    Ok(Json(ProviderList { items }))
}

/// One place a model alias is served.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TargetView {
    pub provider: String,
    pub model: String,
    pub weight: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AliasView {
    pub name: String,
    /// `ordered` (fallbacks in order) or `weighted`.
    pub order: &'static str,
    pub targets: Vec<TargetView>,
}

/// A route of the config file that serves the AI gateway.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AiRouteView {
    pub route: String,
    pub path: String,
    /// `unified` (the OpenAI-compatible API), `native` (a provider's own API) or `prompt`.
    pub kind: &'static str,
    /// The aliases it serves (empty: all); a prompt route's alias.
    pub models: Vec<String>,
    /// A native route's provider.
    pub provider: Option<String>,
    /// A prompt route's variables.
    pub variables: Option<Vec<crate::ai::prompt::VariableView>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    pub aliases: Vec<AliasView>,
    pub routes: Vec<AiRouteView>,
}

#[utoipa::path(get, path = "/api/v1/ai/models",
    responses((status = 200, body = ModelList, description = "model aliases, and the config file's AI routes (prompt APIs among them)")))]
pub async fn models(
    State(st): State<AdminState>,
    p: Principal,
) -> Result<Json<ModelList>, ApiError> {
    p.require_operator()?;
    let (ai, base) = {
        let m = st.managed.lock().await;
        (m.ai(), m.base_config())
    };
    let alias_name = |i: &usize| ai.aliases.get(*i).map(|a| a.name.clone());
    let aliases = ai
        .aliases
        .iter()
        .map(|a| AliasView {
            name: a.name.clone(),
            order: match a.order {
                crate::ai::alias::Order::Ordered => "ordered",
                crate::ai::alias::Order::Weighted => "weighted",
            },
            targets: a
                .candidates
                .iter()
                .map(|c| TargetView {
                    provider: ai
                        .providers
                        .get(c.provider)
                        .map(|p| p.name.clone())
                        .unwrap_or_default(),
                    model: c.model.clone(),
                    weight: c.weight,
                })
                .collect(),
        })
        .collect();
    let routes = base
        .routes
        .iter()
        .filter_map(|r| {
            let crate::config::RouteAction::Ai(a) = &r.action else {
                return None;
            };
            let kind = if a.prompt.is_some() {
                "prompt"
            } else if a.native.is_some() {
                "native"
            } else {
                "unified"
            };
            Some(AiRouteView {
                route: r.name.clone(),
                path: r.path.as_str().to_string(),
                kind,
                models: a.models.iter().filter_map(alias_name).collect(),
                provider: a
                    .native
                    .and_then(|i| ai.providers.get(i))
                    .map(|p| p.name.clone()),
                variables: a.prompt.as_ref().map(|p| p.variables()),
            })
        })
        .collect();
    Ok(Json(ModelList { aliases, routes }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProviderKey {
    pub key: String,
    #[serde(default)]
    pub label: Option<String>,
}

/// What adding a key answers: its view (the key itself is not repeated).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AddedKey {
    pub id: String,
    pub provider: String,
    pub label: String,
    pub last4: String,
}

async fn reload(st: &AdminState) -> Result<(), ApiError> {
    let keys = st.store.ai_keys().await?;
    let prices = st.store.ai_prices().await?;
    st.managed.lock().await.set_ai_store(keys, prices)?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/ai/providers/{name}/keys", request_body = NewProviderKey,
    responses((status = 201, body = AddedKey), (status = 403), (status = 404), (status = 422)))]
pub async fn add_key(
    State(st): State<AdminState>,
    p: Principal,
    Path(name): Path<String>,
    Body(body): Body<NewProviderKey>,
) -> Result<(StatusCode, Json<AddedKey>), ApiError> {
    p.require_operator()?;
    let key = body.key.trim().to_string();
    if !key_is_sendable(&key) {
        return Err(ApiError::field(
            "key",
            "1 to 4096 visible ASCII characters, no spaces",
        ));
    }
    let label = body.label.unwrap_or_default();
    if label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(ApiError::field("label", "at most 100 printable characters"));
    }
    let managed = st.managed.lock().await;
    if !managed.ai().providers.iter().any(|pr| pr.name == name) {
        return Err(ApiError::not_found(format!("no provider {name:?}")));
    }
    let row = AiKeyRow {
        id: new_id("aik"),
        provider: name.clone(),
        label,
        hint: hint(&key),
        sealed: managed.keyring.seal(key.as_bytes()),
        created_at: now_ms(),
    };
    drop(managed);
    let view = AddedKey {
        id: row.id.clone(),
        provider: name,
        label: row.label.clone(),
        last4: row.hint.clone(),
    };
    let change = Change {
        actor: &p.actor(),
        action: "ai.key.create",
        kind: "ai_key",
        id: &row.id,
        tenant_id: None,
        before: None,
        after: serde_json::to_string(&view).ok(),
        at: row.created_at,
    };
    st.store.insert_ai_key(&row, &change).await?;
    reload(&st).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(delete, path = "/api/v1/ai/providers/{name}/keys/{id}",
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete_key(
    State(st): State<AdminState>,
    p: Principal,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    p.require_operator()?;
    let change = Change {
        actor: &p.actor(),
        action: "ai.key.delete",
        kind: "ai_key",
        id: &id,
        tenant_id: None,
        before: None,
        after: None,
        at: now_ms(),
    };
    if !st.store.delete_ai_key(&name, &id, &change).await? {
        return Err(ApiError::not_found(format!(
            "no key {id:?} added to provider {name:?} (keys of the config file are changed there)"
        )));
    }
    reload(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A price (USD per million tokens) as the API shows and takes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceView {
    pub input: f64,
    pub output: f64,
    pub cached_input: f64,
    /// `config` or `store`.
    pub source: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceList {
    /// By model name (`provider/model` or `model`).
    pub items: BTreeMap<String, PriceView>,
}

fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

#[utoipa::path(get, path = "/api/v1/ai/prices", responses((status = 200, body = PriceList), (status = 403)))]
pub async fn prices(
    State(st): State<AdminState>,
    p: Principal,
) -> Result<Json<PriceList>, ApiError> {
    p.require_operator()?;
    let ai = st.managed.lock().await.ai();
    let stored: Vec<String> = st
        .store
        .ai_prices()
        .await?
        .into_iter()
        .map(|r| r.model)
        .collect();
    let items = ai
        .prices
        .iter()
        .map(|(m, pr)| {
            (
                m.clone(),
                PriceView {
                    input: usd(pr.input),
                    output: usd(pr.output),
                    cached_input: usd(pr.cached_input),
                    source: if stored.contains(m) {
                        "store"
                    } else {
                        "config"
                    },
                },
            )
        })
        .collect();
    Ok(Json(PriceList { items }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrice {
    #[schema(value_type = f64)]
    pub input: Usd,
    #[schema(value_type = f64)]
    pub output: Usd,
    #[schema(value_type = Option<f64>)]
    pub cached_input: Option<Usd>,
}

fn micros(field: &str, v: &Usd) -> Result<u64, ApiError> {
    let text = match v {
        Usd::Int(i) if *i >= 0 => i.to_string(),
        Usd::Float(f) if f.is_finite() && *f >= 0.0 => format!("{f}"),
        Usd::Text(s) => s.clone(),
        _ => String::new(),
    };
    parse_usd(&text).ok_or_else(|| {
        ApiError::field(
            field,
            "USD per million tokens: a number at least 0 with at most six decimals",
        )
    })
}

#[utoipa::path(put, path = "/api/v1/ai/prices/{model}", request_body = NewPrice,
    responses((status = 200, body = PriceView), (status = 403), (status = 422)))]
pub async fn set_price(
    State(st): State<AdminState>,
    p: Principal,
    Path(model): Path<String>,
    Body(body): Body<NewPrice>,
) -> Result<Json<PriceView>, ApiError> {
    p.require_operator()?;
    if model.is_empty() || model.len() > 256 || model.chars().any(char::is_control) {
        return Err(ApiError::field("model", "1 to 256 printable characters"));
    }
    let input = micros("input", &body.input)?;
    let price = Price {
        input,
        output: micros("output", &body.output)?,
        cached_input: match &body.cached_input {
            Some(c) => micros("cached_input", c)?,
            None => input,
        },
    };
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let row = AiPriceRow {
        model: model.clone(),
        input: as_i64(price.input),
        output: as_i64(price.output),
        cached_input: as_i64(price.cached_input),
        updated_at: now_ms(),
    };
    let view = PriceView {
        input: usd(price.input),
        output: usd(price.output),
        cached_input: usd(price.cached_input),
        source: "store",
    };
    let change = Change {
        actor: &p.actor(),
        action: "ai.price.set",
        kind: "ai_price",
        id: &model,
        tenant_id: None,
        before: None,
        after: serde_json::to_string(&view).ok(),
        at: row.updated_at,
    };
    st.store.set_ai_price(&row, &change).await?;
    reload(&st).await?;
    Ok(Json(view))
}

#[utoipa::path(delete, path = "/api/v1/ai/prices/{model}",
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete_price(
    State(st): State<AdminState>,
    p: Principal,
    Path(model): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.require_operator()?;
    let change = Change {
        actor: &p.actor(),
        action: "ai.price.delete",
        kind: "ai_price",
        id: &model,
        tenant_id: None,
        before: None,
        after: None,
        at: now_ms(),
    };
    if !st.store.delete_ai_price(&model, &change).await? {
        return Err(ApiError::not_found(format!(
            "no price of {model:?} set through the API"
        )));
    }
    reload(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}
