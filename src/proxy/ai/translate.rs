//! A provider's 2xx answer on its way back: streamed chat answers go to [`super::stream`]; whole
//! ones are read, translated to OpenAI's `chat.completion` or embeddings list (OpenAI-format
//! providers' bodies pass unchanged, only peeked at for their usage) and written.

use serde::Deserialize;

use crate::ai::alias::Candidate;
use crate::ai::embeddings::EmbedRequest;
use crate::ai::openai::{ChatRequest, Usage};
use crate::ai::price::Tokens;
use crate::ai::provider::Kind;
use crate::ai::{anthropic, gemini};
use crate::config::ai::ProviderConfig;
use crate::error::{ErrorKind, GatewayError};
use crate::http::buf::Buf;
use crate::http::{Framing, ResponseError};
use crate::runtime::watchdog::now_ms;
use crate::upstream::{Lease, Upstream};

use super::super::answer::Answer;
use super::super::chain::Cx;
use super::{account, account_chat, body, reply, stream};

/// Serves a provider's 2xx answer (head in `kit.resp`, first bytes in `ubuf`).
#[allow(clippy::too_many_arguments)]
pub async fn success(
    cx: &mut Cx<'_>,
    p: &ProviderConfig,
    cand: &Candidate,
    req: &ChatRequest,
    shape: Option<&crate::ai::prompt::Prompt>,
    lease: Lease,
    ubuf: Buf,
    up: &Upstream,
) -> Answer {
    if req.stream {
        return stream::relay(cx, p, &cand.model, req, lease, ubuf, up).await;
    }
    let text = match read_whole(cx, lease, ubuf, up).await {
        Ok(t) => t,
        Err(e) => return Answer::error(e),
    };
    let id = format!(
        "chatcmpl-{}",
        String::from_utf8_lossy(reply::request_id(cx))
    );
    let (out, usage) = match response(&p.kind, text, &cand.model, &id, super::unix_secs()) {
        Ok(x) => x,
        Err(why) => {
            return Answer::error(
                GatewayError::new(ErrorKind::UpstreamBadResponse(ResponseError::Malformed(
                    why,
                )))
                .context("translating the provider's answer"),
            );
        }
    };
    account_chat(cx, req, usage, None, None);
    let out = match shape.and_then(|p| p.answer(&out)) {
        Some(reshaped) => reshaped,
        None => out,
    };
    reply::json(cx, 200, &out).await
}

/// Reads a provider's whole answer (head in `kit.resp`, first bytes in `ubuf`) and releases the
/// connection to the pool when the exchange left it clean.
pub(super) async fn read_whole(
    cx: &mut Cx<'_>,
    mut lease: Lease,
    mut ubuf: Buf,
    up: &Upstream,
) -> Result<Vec<u8>, GatewayError> {
    let framing = cx.kit.resp.framing.0;
    let close = cx.kit.resp.close;
    ubuf.consume(cx.kit.resp.len);
    let read_timeout = up.config.read_timeout.as_millis() as u64;
    let read = body::provider(&cx.conn.watch, &mut lease, &mut ubuf, framing, read_timeout).await;
    let reusable = read.is_ok() && ubuf.is_empty() && !close && framing != Framing::Close;
    lease.release(reusable, now_ms());
    cx.conn.shard.pools.put_buf(ubuf);
    read
}

/// Serves a provider's 2xx embeddings answer.
pub async fn embeddings(
    cx: &mut Cx<'_>,
    p: &ProviderConfig,
    cand: &Candidate,
    req: &EmbedRequest,
    lease: Lease,
    ubuf: Buf,
    up: &Upstream,
) -> Answer {
    let text = match read_whole(cx, lease, ubuf, up).await {
        Ok(t) => t,
        Err(e) => return Answer::error(e),
    };
    let (out, input) = match crate::ai::embeddings::response(&p.kind, text, &cand.model, req) {
        Ok(x) => x,
        Err(why) => return bad_answer(why),
    };
    let (input, estimated) = match input {
        Some(n) => (n, false),
        None => (req.tokens(), true),
    };
    let tokens = Tokens {
        input,
        cached_input: 0,
        output: 0,
    };
    account(cx, tokens, estimated);
    reply::json(cx, 200, &out).await
}

fn bad_answer(why: &'static str) -> Answer {
    Answer::error(
        GatewayError::new(ErrorKind::UpstreamBadResponse(ResponseError::Malformed(
            why,
        )))
        .context("translating the provider's answer"),
    )
}

/// A whole 2xx chat answer in OpenAI's format, and its usage.
pub fn response(
    kind: &Kind,
    body: Vec<u8>,
    model: &str,
    id: &str,
    created: u64,
) -> Result<(Vec<u8>, Option<Tokens>), &'static str> {
    match kind {
        Kind::OpenAi | Kind::Compatible { .. } | Kind::Azure { .. } => {
            #[derive(Deserialize)]
            struct Peek {
                #[serde(default)]
                usage: Option<Usage>,
            }
            let peek: Peek = serde_json::from_slice(&body)
                .map_err(|_| "the provider's answer is not a chat completion")?;
            Ok((body, peek.usage.map(|u| u.tokens())))
        }
        Kind::Anthropic => {
            let r: anthropic::MessageResponse = serde_json::from_slice(&body)
                .map_err(|_| "the provider's answer is not a Messages API response")?;
            let out = anthropic::response(r, model, created);
            let usage = out.usage.tokens();
            let bytes = serde_json::to_vec(&out).map_err(|_| "cannot encode the answer")?;
            Ok((bytes, Some(usage)))
        }
        Kind::Gemini => {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|_| "the provider's answer is not a generateContent response")?;
            let out = gemini::response(&v, model, id, created);
            let usage = serde_json::from_value::<Usage>(out["usage"].clone())
                .ok()
                .map(|u| u.tokens());
            let bytes = serde_json::to_vec(&out).map_err(|_| "cannot encode the answer")?;
            Ok((bytes, usage))
        }
    }
}
