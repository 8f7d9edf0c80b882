//! A streamed chat answer: the provider's server-sent events translated event by event into
//! OpenAI `chat.completion.chunk`s and written to the client as they come (one client write per
//! provider read), never holding more than the event being decoded.
//!
//! - OpenAI and compatible providers already speak the format: events pass through
//!   ([`crate::ai::openai_stream`]).
//! - Anthropic and Gemini go through their translators ([`crate::ai::anthropic_stream`],
//!   [`crate::ai::gemini`]).
//!
//! A provider that fails mid-stream gets an `{"error": ...}` event and `[DONE]` written after
//! what was sent (the SDKs raise it); a client that leaves ends the call: the provider
//! connection is closed (generation stops) and the call is charged what was generated.

use serde_json::Value;

use crate::ai::anthropic_stream;
use crate::ai::gemini;
use crate::ai::openai::{ChatRequest, Usage};
use crate::ai::openai_stream::PassThrough;
use crate::ai::price::Tokens;
use crate::ai::provider::Kind;
use crate::config::ai::ProviderConfig;
use crate::error::{ErrorKind, GatewayError};
use crate::http::ResponseError;
use crate::http::buf::Buf;
use crate::http::sse::{SseError, write_event};
use crate::observe::clock;
use crate::runtime::watchdog::{Shut, now_ms};
use crate::upstream::{Lease, Upstream};

use super::super::answer::Answer;
use super::super::chain::Cx;
use super::super::relay::{Body, RelayError, Source, body_step};
use super::{account_chat, reply};

/// A provider's stream on its way to OpenAI chunks.
pub enum Translator {
    OpenAi(PassThrough),
    Anthropic(anthropic_stream::StreamTranslator),
    Gemini(gemini::StreamTranslator),
}

impl Translator {
    pub fn new(kind: &Kind, model: &str, id: &str, created: u64, include_usage: bool) -> Self {
        match kind {
            Kind::Anthropic => Translator::Anthropic(anthropic_stream::StreamTranslator::new(
                model,
                created,
                include_usage,
            )),
            Kind::Gemini => Translator::Gemini(gemini::StreamTranslator::new(
                model,
                id,
                created,
                include_usage,
            )),
            Kind::OpenAi | Kind::Compatible { .. } | Kind::Azure { .. } => {
                Translator::OpenAi(PassThrough::new(include_usage))
            }
        }
    }

    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        match self {
            Translator::OpenAi(t) => t.feed(input, out),
            Translator::Anthropic(t) => t.feed(input, out),
            Translator::Gemini(t) => t.feed(input, out),
        }
    }

    /// The provider's stream ended: whatever closes the client's (`[DONE]` at the least).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Translator::OpenAi(t) => t.finish(out),
            Translator::Anthropic(t) => {
                if !t.is_done() {
                    write_event(out, None, b"[DONE]");
                }
            }
            Translator::Gemini(t) => t.finish(out),
        }
    }

    /// The provider's final token counts, when it gave them.
    pub fn usage(&self) -> Option<Tokens> {
        match self {
            Translator::OpenAi(t) => t.usage().map(Usage::tokens),
            Translator::Anthropic(t) => t.has_final_usage().then(|| t.usage().openai().tokens()),
            Translator::Gemini(t) => {
                let u = t.usage();
                (!u.is_null())
                    .then(|| serde_json::from_value::<Usage>(u.clone()).ok())
                    .flatten()
                    .map(|u| u.tokens())
            }
        }
    }

    /// Input tokens the provider reported before its final count (Anthropic's `message_start`).
    pub fn known_input(&self) -> Option<u64> {
        match self {
            Translator::Anthropic(t) => {
                let u = t.usage().openai();
                (u.prompt_tokens > 0).then_some(u.prompt_tokens)
            }
            _ => None,
        }
    }

    pub fn generated(&self) -> &str {
        match self {
            Translator::OpenAi(t) => t.generated(),
            Translator::Anthropic(t) => t.generated(),
            Translator::Gemini(t) => t.generated(),
        }
    }
}

/// An `{"error": ...}` event in OpenAI's shape for a stream the provider broke off.
fn error_event(out: &mut Vec<u8>, e: &GatewayError) {
    let v = serde_json::json!({"error": {"message": e.message(), "type": "server_error",
        "param": Value::Null, "code": e.code()}});
    write_event(out, None, v.to_string().as_bytes());
    write_event(out, None, b"[DONE]");
}

/// How a provider's stream reaches the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As the translator writes it (OpenAI chunks).
    Translated,
    /// As the provider sent it; the translator only peeks (a native route).
    Raw,
}

/// Moves the provider's stream body to the client until it ends, fails or the client leaves,
/// feeding `tr` (one client write per provider read). Returns whether the stream ended cleanly.
#[allow(clippy::too_many_arguments)]
async fn pump(
    cx: &mut Cx<'_>,
    lease: &mut Lease,
    ubuf: &mut Buf,
    body: &mut Body,
    read_timeout: u64,
    tr: &mut Translator,
    mode: Mode,
    s: &mut reply::Stream,
) -> bool {
    let (mut out, mut scratch, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
    let mut failed: Option<GatewayError> = None;
    let mut ended = false;
    while !s.gone {
        out.clear();
        let mut bad = None;
        let fd = lease.fd();
        let mut src = Source {
            stream: lease.stream(),
            fd,
            timeout_ms: read_timeout,
            shut: Shut::Both,
        };
        let step = body_step(&mut src, &cx.conn.watch, ubuf, body, &mut ranges, |d| {
            let fed = match mode {
                Mode::Translated => tr.feed(d, &mut out),
                Mode::Raw => {
                    out.extend_from_slice(d);
                    scratch.clear();
                    // A peek that fails (an oversized event) only loses the usage: the bytes
                    // pass.
                    let _ = tr.feed(d, &mut scratch);
                    Ok(())
                }
            };
            if let Err(e) = fed {
                bad = Some(e);
            }
        })
        .await;
        let done = match (step, bad) {
            (_, Some(_)) => {
                let e = ResponseError::Malformed("the provider sent an event larger than 1 MiB");
                failed = Some(GatewayError::new(ErrorKind::UpstreamBadResponse(e)));
                true
            }
            (Ok(done), None) => done,
            (Err(e), None) => {
                failed = Some(match (mode, e) {
                    (Mode::Translated, RelayError::SrcTimeout) => {
                        GatewayError::new(ErrorKind::UpstreamTimeout)
                    }
                    (Mode::Translated, RelayError::Chunk(c)) => GatewayError::new(
                        ErrorKind::UpstreamBadResponse(ResponseError::BadFraming(c.reason())),
                    ),
                    _ => GatewayError::new(ErrorKind::UpstreamReset),
                });
                true
            }
        };
        match (&failed, mode) {
            (Some(e), Mode::Translated) => error_event(&mut out, e),
            (None, Mode::Translated) if done => tr.finish(&mut out),
            _ => {}
        }
        ended = done && failed.is_none();
        if let Some(a) = cx.ctx.ai.as_mut() {
            if a.first_token == 0 && !tr.generated().is_empty() {
                a.first_token = clock::now();
            }
        }
        // A raw stream that failed gets no end of body: the client sees it cut short (it closes),
        // not complete. (A translated one ended with an error event, which the client reads.)
        let cut = failed.is_some() && matches!(mode, Mode::Raw);
        if cut {
            s.keep = false;
        }
        if !s.write(cx, &out, done && !cut).await || done {
            break;
        }
    }
    if let Some(e) = failed {
        cx.ctx.fail(e.context("reading the provider's stream"));
    }
    ended
}

/// The stream is over: the provider connection back to the pool when the exchange left it
/// clean (`close`: the provider said it closes), and how the client connection goes on.
fn end(
    cx: &mut Cx<'_>,
    lease: Lease,
    ubuf: Buf,
    body: &Body,
    close: bool,
    ended: bool,
    s: &reply::Stream,
) -> Answer {
    cx.ctx.timings.last_byte = clock::now();
    let reusable = ended && !close && body.is_done() && ubuf.is_empty();
    lease.release(reusable, now_ms());
    cx.conn.shard.pools.put_buf(ubuf);
    Answer::Sent(s.next())
}

/// Relays a provider's streamed 2xx answer (head in `kit.resp`, first bytes in `ubuf`).
pub async fn relay(
    cx: &mut Cx<'_>,
    p: &ProviderConfig,
    model: &str,
    req: &ChatRequest,
    mut lease: Lease,
    mut ubuf: Buf,
    up: &Upstream,
) -> Answer {
    let close = cx.kit.resp.close;
    ubuf.consume(cx.kit.resp.len);
    let mut body = Body::of_response(cx.kit.resp.framing.0, ubuf.capacity());
    let created = super::unix_secs();
    let id = format!(
        "chatcmpl-{}",
        String::from_utf8_lossy(reply::request_id(cx))
    );
    let mut tr = Translator::new(&p.kind, model, &id, created, req.wants_stream_usage());
    let mut s = reply::stream_head(cx).await;
    let read_timeout = up.config.read_timeout.as_millis() as u64;
    let ended = pump(
        cx,
        &mut lease,
        &mut ubuf,
        &mut body,
        read_timeout,
        &mut tr,
        Mode::Translated,
        &mut s,
    )
    .await;
    let generated = tr.generated().to_string();
    account_chat(cx, req, tr.usage(), tr.known_input(), Some(&generated));
    end(cx, lease, ubuf, &body, close, ended, &s)
}

/// Relays a native call's streamed 2xx answer as the provider sent it (the SSE bytes unchanged),
/// translating it on the side only to learn its usage and text.
pub async fn native(
    cx: &mut Cx<'_>,
    p: &ProviderConfig,
    n: &super::native::NativeCall,
    mut lease: Lease,
    mut ubuf: Buf,
    up: &Upstream,
    status: u16,
) -> Answer {
    let close = cx.kit.resp.close;
    ubuf.consume(cx.kit.resp.len);
    let mut body = Body::of_response(cx.kit.resp.framing.0, ubuf.capacity());
    // Asked for usage (the OpenAI format's chunk is only there if the client asked for it).
    let mut peek = Translator::new(&p.kind, &n.model, "", 0, true);
    let mut s = reply::stream_head_status(cx, status).await;
    let read_timeout = up.config.read_timeout.as_millis() as u64;
    let ended = pump(
        cx,
        &mut lease,
        &mut ubuf,
        &mut body,
        read_timeout,
        &mut peek,
        Mode::Raw,
        &mut s,
    )
    .await;
    match peek.usage() {
        Some(t) => super::account(cx, t, false),
        None => super::account(
            cx,
            Tokens {
                input: peek.known_input().unwrap_or(0),
                cached_input: 0,
                output: crate::ai::tokens::count(peek.generated()),
            },
            true,
        ),
    }
    end(cx, lease, ubuf, &body, close, ended, &s)
}
