//! The terminal stage of an AI route: the unified, OpenAI-compatible API over `[ai]`'s providers.
//!
//! ```text
//! endpoint (…/chat/completions, …/embeddings, …/models) → body (read whole, bounded) → parse
//! → alias → plan (ordered / weighted candidates)
//! → for each candidate: call (breaker, key, translate, send, answer) → fallback?
//! → account (tokens, cost, time to first token) → the call record
//! ```
//!
//! The endpoints are found by the path's end, whatever the route's prefix: `/ai/v1/chat/
//! completions` and `/v1/chat/completions` both reach the chat endpoint.
//!
//! Fallback: a candidate that fails in a way another could serve (connect errors, timeouts,
//! resets, 429, 5xx, an open breaker, its keys all cooling) hands the call to the next one, while
//! this shard's fallback budget allows (`[ai] fallback_budget_percent`). The answer of the last
//! candidate tried is the client's.

mod body;
mod budget;
mod call;
mod native;
mod reply;
mod stream;
mod translate;

use serde_json::Value;

use crate::ai::embeddings::EmbedRequest;
use crate::ai::openai::ChatRequest;
use crate::ai::price::{Nanos, Tokens};
use crate::ai::prompt::Prompt;
use crate::ai::tokens;
use crate::config::ai::AiAction;
use crate::error::ErrorKind;
use crate::http::Method;

use super::answer::Answer;
use super::chain::Cx;
use super::ctx::AiCall;
use call::Job;
pub use call::unix_ms;

/// How one candidate's try ended.
pub enum Served {
    /// Answered (or failed in a way no other candidate would change).
    Done(Answer),
    /// This candidate could not serve it; the next one may.
    Failed(Answer),
}

enum Endpoint<'p> {
    Chat,
    Embeddings,
    Models,
    Model(&'p str),
}

/// Which endpoint the path (without its query) names.
fn endpoint(path: &[u8]) -> Option<Endpoint<'_>> {
    let path = path.split(|&b| b == b'?').next().unwrap_or(path);
    let path = path.strip_suffix(b"/").unwrap_or(path);
    if path.ends_with(b"/chat/completions") {
        return Some(Endpoint::Chat);
    }
    if path.ends_with(b"/embeddings") {
        return Some(Endpoint::Embeddings);
    }
    if path.ends_with(b"/models") {
        return Some(Endpoint::Models);
    }
    let at = path.windows(8).rposition(|w| w == b"/models/")?;
    let id = std::str::from_utf8(&path[at + 8..]).ok()?;
    (!id.is_empty()).then_some(Endpoint::Model(id))
}

/// Serves a request of an AI route (`limit`: its `max_body_size`).
pub async fn serve(cx: &mut Cx<'_>, action: &AiAction, limit: u64) -> Answer {
    if let Some(p) = action.native {
        return native::serve(cx, p, limit).await;
    }
    if let Some(p) = &action.prompt {
        if cx.ctx.head.method != Method::Post {
            return Answer::kind(ErrorKind::MethodNotAllowed);
        }
        return prompt(cx, action, p, limit).await;
    }
    let method = cx.ctx.head.method;
    let path = cx.path().to_vec();
    match endpoint(&path) {
        Some(Endpoint::Chat) if method == Method::Post => call(cx, action, limit, Kind::Chat).await,
        Some(Endpoint::Embeddings) if method == Method::Post => {
            call(cx, action, limit, Kind::Embed).await
        }
        Some(Endpoint::Models) if matches!(method, Method::Get | Method::Head) => {
            let body = models(cx, action, None);
            finish_get(cx, body, limit).await
        }
        Some(Endpoint::Model(id)) if matches!(method, Method::Get | Method::Head) => {
            match models(cx, action, Some(id)) {
                Some(body) => finish_get(cx, Some(body), limit).await,
                None => Answer::detailed(
                    ErrorKind::ModelNotFound,
                    format!("The model `{id}` does not exist or you do not have access to it."),
                ),
            }
        }
        Some(_) => Answer::kind(ErrorKind::MethodNotAllowed),
        None => Answer::kind(ErrorKind::RouteNotFound),
    }
}

async fn finish_get(cx: &mut Cx<'_>, body: Option<Vec<u8>>, limit: u64) -> Answer {
    // A GET's body (if any) is read and dropped, so the connection can stay open.
    if let Err(a) = body::request(cx, limit).await {
        return a;
    }
    reply::json(cx, 200, &body.unwrap_or_default()).await
}

/// `GET /v1/models` (`one`: `GET /v1/models/{id}`): the aliases this route serves.
fn models(cx: &Cx<'_>, action: &AiAction, one: Option<&str>) -> Option<Vec<u8>> {
    let ai = &cx.state.snap.config.ai;
    let entry = |name: &str| serde_json::json!({"id": name, "object": "model", "created": 0, "owned_by": "ringway"});
    let allowed = ai
        .aliases
        .iter()
        .enumerate()
        .filter(|(i, _)| action.allows(*i));
    let v = match one {
        Some(id) => entry(&allowed.map(|(_, a)| a).find(|a| a.name == id)?.name),
        None => {
            let data: Vec<Value> = allowed.map(|(_, a)| entry(&a.name)).collect();
            serde_json::json!({"object": "list", "data": data})
        }
    };
    serde_json::to_vec(&v).ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Embed,
}

/// The request parsed into `T`, or the 400 naming the field it got wrong.
fn parse<T: serde::de::DeserializeOwned>(raw: &Value) -> Result<T, Answer> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        bad(format!("{path}: {}", e.into_inner()))
    })
}

/// `POST /v1/chat/completions` and `POST /v1/embeddings`.
async fn call(cx: &mut Cx<'_>, action: &AiAction, limit: u64, kind: Kind) -> Answer {
    let text = match body::request(cx, limit).await {
        Ok(t) => t,
        Err(a) => return a,
    };
    let raw: Value = match serde_json::from_slice(&text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad("the body must be a JSON object"),
        Err(e) => return bad(format!("the body is not valid JSON: {e}")),
    };
    let (chat, embed): (Option<ChatRequest>, Option<EmbedRequest>) = match kind {
        Kind::Chat => match parse(&raw) {
            Ok(r) => (Some(r), None),
            Err(a) => return a,
        },
        Kind::Embed => match parse(&raw) {
            Ok(r) => (None, Some(r)),
            Err(a) => return a,
        },
    };
    let (job, model, streamed) = match (&chat, &embed) {
        (Some(c), _) => (Job::Chat(c, &raw, None), c.model.as_str(), c.stream),
        (_, Some(e)) => (Job::Embed(e, &raw), e.model.as_str(), false),
        _ => return Answer::kind(ErrorKind::AiBadRequest),
    };
    dispatch(cx, action, job, model, streamed).await
}

/// A prompt route's call: the body is the prompt's variables.
async fn prompt(cx: &mut Cx<'_>, action: &AiAction, p: &Prompt, limit: u64) -> Answer {
    let text = match body::request(cx, limit).await {
        Ok(t) => t,
        Err(a) => return a,
    };
    let input: Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => return bad(format!("the body is not valid JSON: {e}")),
    };
    let rendered = match p.render(&input) {
        Ok(r) => r,
        Err(e) if e.field.is_empty() => return bad(e.reason),
        Err(e) => return bad(e.to_string()),
    };
    let req: ChatRequest = match parse(&rendered.body) {
        Ok(r) => r,
        Err(a) => return a,
    };
    let job = Job::Chat(&req, &rendered.body, Some(p));
    dispatch(cx, action, job, &p.model, rendered.stream).await
}

/// A parsed call to alias `model`: admitted under the AI limits, tried on the alias's
/// candidates, settled.
async fn dispatch(
    cx: &mut Cx<'_>,
    action: &AiAction,
    job: Job<'_>,
    model: &str,
    streamed: bool,
) -> Answer {
    let state = cx.state;
    let ai = &state.snap.config.ai;
    let Some(alias) = ai.alias(model).filter(|&i| action.allows(i)) else {
        return Answer::detailed(
            ErrorKind::ModelNotFound,
            format!("The model `{model}` does not exist or you do not have access to it."),
        );
    };
    let alias = &ai.aliases[alias];
    cx.ctx.ai = Some(Box::new(AiCall {
        alias: alias.name.clone(),
        streamed,
        ..AiCall::default()
    }));
    let prices = alias
        .candidates
        .iter()
        .filter_map(|c| price_of(ai, &ai.providers[c.provider].name, &c.model))
        .collect();
    let held = {
        let (prompt, output): (Box<dyn Fn() -> u64 + '_>, u64) = match job {
            Job::Chat(r, _, _) => (
                Box::new(|| tokens::prompt(r)),
                r.max_output()
                    .unwrap_or(ai.reserve_output_tokens)
                    .saturating_mul(r.choices()),
            ),
            Job::Embed(r, _) => (Box::new(|| r.tokens()), 0),
            Job::Native(_) => (Box::new(|| 0), 0),
        };
        let e = budget::Estimate {
            prompt: &*prompt,
            output,
            prices,
        };
        match budget::admit(cx, e) {
            Ok(h) => h,
            Err(a) => return a,
        }
    };
    let answer = try_plan(cx, alias, job).await;
    budget::settle(cx, held);
    answer
}

/// Tries the alias's candidates in its plan's order until one serves (or fails for good).
async fn try_plan(cx: &mut Cx<'_>, alias: &crate::ai::alias::Alias, job: Job<'_>) -> Answer {
    let state = cx.state;
    let ai = &state.snap.config.ai;
    let fallbacks = &state.ai.fallbacks;
    fallbacks.request();
    let plan = alias.plan(cx.conn.shard.ids.next());
    let mut last = None;
    for (n, &c) in plan.iter().enumerate() {
        if n > 0 && !fallbacks.allow(ai.fallback_budget_percent, ai.fallback_budget_min_per_sec) {
            tracing::debug!(alias = %alias.name, "fallback budget spent: not trying the next candidate");
            break;
        }
        match call::run(cx, &alias.candidates[c], job).await {
            Served::Done(a) => return a,
            Served::Failed(a) => last = Some(a),
        }
    }
    last.unwrap_or_else(|| Answer::kind(ErrorKind::NoHealthyUpstream))
}

/// The price of `model` at `provider`: `[ai.prices."provider/model"]`, else
/// `[ai.prices."model"]`.
pub fn price_of(
    ai: &crate::config::ai::AiConfig,
    provider: &str,
    model: &str,
) -> Option<crate::ai::price::Price> {
    ai.prices
        .get(&format!("{provider}/{model}"))
        .or_else(|| ai.prices.get(model))
        .copied()
}

fn bad(message: impl Into<String>) -> Answer {
    Answer::detailed(ErrorKind::AiBadRequest, message)
}

/// Unix time in seconds (`created` of the answers the gateway makes).
pub fn unix_secs() -> u64 {
    call::unix_ms() / 1000
}

/// Puts a finished chat call's tokens and cost in the request's context: the provider's counts
/// when it gave them, else the gateway's own (`known_input`: what the provider reported of the
/// input before the stream ended; `generated`: the output so far).
pub fn account_chat(
    cx: &mut Cx<'_>,
    req: &ChatRequest,
    usage: Option<Tokens>,
    known_input: Option<u64>,
    generated: Option<&str>,
) {
    match usage {
        Some(t) => account(cx, t, false),
        None => {
            let t = Tokens {
                input: known_input.unwrap_or_else(|| tokens::prompt(req)),
                cached_input: 0,
                output: generated.map_or(0, tokens::count),
            };
            account(cx, t, true);
        }
    }
}

/// Puts a finished call's tokens (`estimated`: counted by the gateway) and their cost in the
/// request's context.
pub fn account(cx: &mut Cx<'_>, tokens: Tokens, estimated: bool) {
    let ai = &cx.state.snap.config.ai;
    let Some(call) = cx.ctx.ai.as_mut() else {
        return;
    };
    call.tokens = tokens;
    call.estimated = estimated;
    call.cost = price_of(ai, &call.provider, &call.model).map_or(Nanos(0), |p| p.cost(tokens));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_found_by_the_end_of_the_path() {
        assert!(matches!(
            endpoint(b"/ai/v1/chat/completions"),
            Some(Endpoint::Chat)
        ));
        assert!(matches!(
            endpoint(b"/v1/chat/completions/?x=1"),
            Some(Endpoint::Chat)
        ));
        assert!(matches!(endpoint(b"/v1/models"), Some(Endpoint::Models)));
        assert!(matches!(
            endpoint(b"/v1/models/fast"),
            Some(Endpoint::Model("fast"))
        ));
        assert!(endpoint(b"/v1/completions").is_none());
        assert!(endpoint(b"/v1/models/").is_some_and(|e| matches!(e, Endpoint::Models)));
    }
}
