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
use crate::http::buf::Buf;
use crate::http::chunked::ChunkedDecoder;
use crate::http::sse::{SseError, write_event};
use crate::http::{Framing, ResponseError};
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
    let framing = cx.kit.resp.framing.0;
    let close = cx.kit.resp.close;
    ubuf.consume(cx.kit.resp.len);
    let mut body = match framing {
        Framing::None => Body::Length(0),
        Framing::Length(n) => Body::Length(n),
        Framing::Chunked => Body::Chunked(ChunkedDecoder::new(ubuf.capacity())),
        Framing::Close => Body::Close,
    };
    let created = super::unix_secs();
    let id = format!(
        "chatcmpl-{}",
        String::from_utf8_lossy(reply::request_id(cx))
    );
    let mut tr = Translator::new(&p.kind, model, &id, created, req.wants_stream_usage());
    let mut s = reply::stream_head(cx).await;
    let read_timeout = up.config.read_timeout.as_millis() as u64;
    let mut out = Vec::new();
    let mut ranges = Vec::new();
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
        let step = body_step(
            &mut src,
            &cx.conn.watch,
            &mut ubuf,
            &mut body,
            &mut ranges,
            |d| {
                if let Err(e) = tr.feed(d, &mut out) {
                    bad = Some(e);
                }
            },
        )
        .await;
        let done = match (step, bad) {
            (_, Some(_)) => {
                let e = ResponseError::Malformed("the provider sent an event larger than 1 MiB");
                failed = Some(GatewayError::new(ErrorKind::UpstreamBadResponse(e)));
                true
            }
            (Ok(done), None) => done,
            (Err(e), None) => {
                failed = Some(match e {
                    RelayError::SrcTimeout => GatewayError::new(ErrorKind::UpstreamTimeout),
                    RelayError::Chunk(c) => GatewayError::new(ErrorKind::UpstreamBadResponse(
                        ResponseError::BadFraming(c.reason()),
                    )),
                    _ => GatewayError::new(ErrorKind::UpstreamReset),
                });
                true
            }
        };
        match &failed {
            Some(e) => error_event(&mut out, e),
            None if done => {
                tr.finish(&mut out);
                ended = true;
            }
            None => {}
        }
        if let Some(a) = cx.ctx.ai.as_mut() {
            if a.first_token == 0 && !tr.generated().is_empty() {
                a.first_token = clock::now();
            }
        }
        if !s.write(cx, &out, done).await || done {
            break;
        }
    }
    if let Some(e) = failed {
        cx.ctx.fail(e.context("reading the provider's stream"));
    }
    let generated = tr.generated().to_string();
    account_chat(cx, req, tr.usage(), tr.known_input(), Some(&generated));
    cx.ctx.timings.last_byte = clock::now();
    let reusable = ended && !close && body.is_done() && ubuf.is_empty();
    lease.release(reusable, now_ms());
    cx.conn.shard.pools.put_buf(ubuf);
    Answer::Sent(s.next())
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
    let framing = cx.kit.resp.framing.0;
    let close = cx.kit.resp.close;
    ubuf.consume(cx.kit.resp.len);
    let mut body = match framing {
        Framing::None => Body::Length(0),
        Framing::Length(len) => Body::Length(len),
        Framing::Chunked => Body::Chunked(ChunkedDecoder::new(ubuf.capacity())),
        Framing::Close => Body::Close,
    };
    // Asked for usage (the OpenAI format's chunk is only there if the client asked for it).
    let mut peek = Translator::new(&p.kind, &n.model, "", 0, true);
    let mut s = reply::stream_head_status(cx, status).await;
    let read_timeout = up.config.read_timeout.as_millis() as u64;
    let (mut out, mut scratch, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
    let mut failed = None;
    let mut ended = false;
    while !s.gone {
        out.clear();
        let fd = lease.fd();
        let mut src = Source {
            stream: lease.stream(),
            fd,
            timeout_ms: read_timeout,
            shut: Shut::Both,
        };
        let step = body_step(
            &mut src,
            &cx.conn.watch,
            &mut ubuf,
            &mut body,
            &mut ranges,
            |d| {
                out.extend_from_slice(d);
                scratch.clear();
                // A peek that fails (an oversized event) only loses the usage: the bytes pass.
                let _ = peek.feed(d, &mut scratch);
            },
        )
        .await;
        let done = match step {
            Ok(done) => done,
            Err(_) => {
                failed = Some(GatewayError::new(ErrorKind::UpstreamReset));
                true
            }
        };
        ended = done && failed.is_none();
        if let Some(a) = cx.ctx.ai.as_mut() {
            if a.first_token == 0 && !peek.generated().is_empty() {
                a.first_token = clock::now();
            }
        }
        if !s.write(cx, &out, done).await || done {
            break;
        }
    }
    if let Some(e) = failed {
        cx.ctx.fail(e.context("reading the provider's stream"));
    }
    let tokens = peek.usage();
    let generated = peek.generated().to_string();
    let known = peek.known_input();
    match tokens {
        Some(t) => super::account(cx, t, false),
        None => super::account(
            cx,
            Tokens {
                input: known.unwrap_or(0),
                cached_input: 0,
                output: crate::ai::tokens::count(&generated),
            },
            true,
        ),
    }
    cx.ctx.timings.last_byte = clock::now();
    let reusable = ended && !close && body.is_done() && ubuf.is_empty();
    lease.release(reusable, now_ms());
    cx.conn.shard.pools.put_buf(ubuf);
    Answer::Sent(s.next())
}
