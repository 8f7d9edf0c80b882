//! Native pass-through routes (`ai = { provider = "NAME" }`): a provider's own API through the
//! gateway, so that the provider's SDKs work unmodified (`/anthropic/v1/messages` →
//! the provider's `/v1/messages`), with the gateway's auth, keys, limits and accounting.
//!
//! The client's body goes out as it is; of its headers only the provider's API-version and beta
//! headers pass ([`PASSED`]); its credential (the gateway's) never does, the provider's key is
//! added. Answers come back as the provider sent them; their usage is peeked at on the way
//! (Anthropic's `message_start`/`message_delta`, OpenAI's `usage`, Gemini's `usageMetadata`),
//! and where it is missing the gateway counts.

use serde_json::Value;

use crate::ai::alias::Candidate;
use crate::ai::provider::{Kind, Outgoing, key_header};
use crate::config::ai::ProviderConfig;
use crate::http::buf::Buf;
use crate::upstream::{Lease, Upstream};

use super::super::answer::Answer;
use super::super::chain::Cx;
use super::super::ctx::AiCall;
use super::call::{self, Job};
use super::{Served, account, body, reply, stream, translate};

/// Client headers a native call passes to the provider.
const PASSED: [&str; 4] = [
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
    "openai-organization",
];

/// A native call, ready to go out.
pub struct NativeCall {
    /// The client's method (`GET /v1/models` stays a GET).
    pub method: &'static str,
    /// Path and query after the route's prefix.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub stream: bool,
    pub model: String,
}

impl NativeCall {
    pub fn outgoing(&self, p: &ProviderConfig, key: &str) -> Outgoing {
        let mut headers: Vec<(&'static str, String)> =
            key_header(&p.kind, key).into_iter().collect();
        headers.extend(self.headers.iter().cloned());
        if p.kind == Kind::Anthropic && !self.headers.iter().any(|(n, _)| *n == "anthropic-version")
        {
            headers.push((
                "anthropic-version",
                crate::ai::provider::ANTHROPIC_VERSION.to_string(),
            ));
        }
        Outgoing {
            target: format!("{}{}", p.base_path, self.path),
            headers,
            body: self.body.clone(),
        }
    }
}

/// The model a native call names: the body's `model`, or (Gemini) the path's `models/NAME:`.
fn model_of(kind: &Kind, body: &Value, path: &str) -> String {
    if let Some(m) = body.get("model").and_then(Value::as_str) {
        return m.to_string();
    }
    if *kind == Kind::Gemini {
        if let Some(rest) = path.split("models/").nth(1) {
            return rest.split([':', '?', '/']).next().unwrap_or("").to_string();
        }
    }
    String::new()
}

/// Serves a request of a native route to provider `provider` (`limit`: the route's body bound).
pub async fn serve(cx: &mut Cx<'_>, provider: usize, limit: u64) -> Answer {
    let state = cx.state;
    let p = &state.snap.config.ai.providers[provider];
    let full = cx.path();
    let rest = &full[cx.ctx.matched.min(full.len())..];
    let mut path = String::from_utf8_lossy(rest).into_owned();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    // Headers are read before the body: reading the body consumes the head.
    let data = cx.kit.buf.data();
    let headers: Vec<(&'static str, String)> = cx
        .kit
        .req
        .headers
        .iter()
        .filter_map(|h| {
            let name = h.name.of(data);
            let keep = PASSED
                .iter()
                .find(|n| name.eq_ignore_ascii_case(n.as_bytes()))?;
            Some((
                *keep,
                String::from_utf8_lossy(h.value.of(data)).into_owned(),
            ))
        })
        .collect();
    let text = match body::request(cx, limit).await {
        Ok(t) => t,
        Err(a) => return a,
    };
    let json: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
    let stream = json.get("stream").and_then(Value::as_bool) == Some(true)
        || path.contains(":streamGenerateContent");
    let model = model_of(&p.kind, &json, &path);
    cx.ctx.ai = Some(Box::new(AiCall {
        streamed: stream,
        ..AiCall::default()
    }));
    let n = NativeCall {
        method: cx.ctx.head.method.as_str(),
        path,
        headers,
        body: text,
        stream,
        model: model.clone(),
    };
    // The output bound, in each provider's own field.
    let output = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| json.get(*k).and_then(Value::as_u64))
        .or_else(|| json["generationConfig"]["maxOutputTokens"].as_u64())
        .unwrap_or(state.snap.config.ai.reserve_output_tokens);
    // The prompt, counted over the whole body (a little over: it includes the JSON).
    let body_text = String::from_utf8_lossy(&n.body).into_owned();
    let prompt = || crate::ai::tokens::count(&body_text);
    let e = super::budget::Estimate {
        prompt: &prompt,
        output,
        prices: super::price_of(&state.snap.config.ai, &p.name, &model)
            .into_iter()
            .collect(),
    };
    let held = match super::budget::admit(cx, e) {
        Ok(h) => h,
        Err(a) => return a,
    };
    let cand = Candidate {
        provider,
        model,
        weight: 1,
    };
    let answer = match call::run(cx, &cand, Job::Native(&n)).await {
        Served::Done(a) | Served::Failed(a) => a,
    };
    super::budget::settle(cx, held);
    answer
}

/// Serves a native call's 2xx answer as the provider sent it, peeking at its usage.
pub async fn success(
    cx: &mut Cx<'_>,
    p: &ProviderConfig,
    n: &NativeCall,
    lease: Lease,
    ubuf: Buf,
    up: &Upstream,
) -> Answer {
    let status = cx.kit.resp.status;
    let data = ubuf.data();
    let content_type = cx
        .kit
        .resp
        .headers
        .iter()
        .find(|h| h.name.of(data).eq_ignore_ascii_case(b"content-type"))
        .map(|h| h.value.of(data).to_vec())
        .unwrap_or_else(|| b"application/json".to_vec());
    if content_type.starts_with(b"text/event-stream") {
        return stream::native(cx, p, n, lease, ubuf, up, status).await;
    }
    let text = match translate::read_whole(cx, lease, ubuf, up).await {
        Ok(t) => t,
        Err(e) => return Answer::error(e),
    };
    let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
    let tokens = usage_of(&p.kind, &v);
    match tokens {
        Some(t) => account(cx, t, false),
        None => account(cx, Default::default(), true),
    }
    reply::raw(cx, status, &content_type, &text).await
}

/// The usage in a provider's own whole answer.
fn usage_of(kind: &Kind, v: &Value) -> Option<crate::ai::price::Tokens> {
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    match kind {
        Kind::Anthropic => {
            let u = v.get("usage")?;
            let cached = n(u, "cache_read_input_tokens");
            Some(crate::ai::price::Tokens {
                input: n(u, "input_tokens") + cached + n(u, "cache_creation_input_tokens"),
                cached_input: cached,
                output: n(u, "output_tokens"),
            })
        }
        Kind::Gemini => {
            let u = crate::ai::gemini::usage(v.get("usageMetadata")?);
            serde_json::from_value::<crate::ai::openai::Usage>(u)
                .ok()
                .map(|u| u.tokens())
        }
        _ => serde_json::from_value::<crate::ai::openai::Usage>(v.get("usage")?.clone())
            .ok()
            .map(|u| u.tokens()),
    }
}
