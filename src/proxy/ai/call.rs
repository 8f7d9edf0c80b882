//! One try of a call (chat or embeddings) at one (provider, model) candidate: the provider's breaker admits it,
//! a key is picked from the provider's pool, the request goes out translated, and the answer
//! decides what happens next:
//!
//! - 2xx: translated back and written to the client (streamed or whole);
//! - 401/403 (the key is refused: it is disabled) and 429 (it cools down for the provider's
//!   `retry-after`): the same candidate again with the next usable key, up to
//!   [`MAX_KEY_TRIES`] keys;
//! - 429, 5xx, connect errors, resets and timeouts: the next candidate may serve it
//!   ([`Served::Failed`]);
//! - any other 4xx: the request's own fault, answered in OpenAI's error shape.
//!
//! A provider's refusal of the gateway's key is never the client's 401: it is a 502 naming the
//! provider.

use std::io::Write;

use monoio::io::AsyncWriteRentExt;
use serde_json::Value;

use crate::ai::TranslateError;
use crate::ai::alias::{Candidate, falls_back};
use crate::ai::embeddings::{self, EmbedRequest};
use crate::ai::errors::provider_error;
use crate::ai::keys::KeyOutcome;
use crate::ai::openai::{ChatRequest, ErrorDetail};
use crate::ai::provider::{self, Outgoing};
use crate::config::ai::ProviderConfig;
use crate::error::{ErrorKind, GatewayError, Retry};
use crate::observe::clock;
use crate::runtime::watchdog::{Shut, now_ms};
use crate::upstream::retry::Failure;
use crate::upstream::{Lease, Outcome, Refusal};

use super::super::answer::{Answer, Detail};
use super::super::chain::{Cx, Next};
use super::super::forward::response::read_head;
use super::{Served, translate};

/// Keys of one provider tried for one call.
pub const MAX_KEY_TRIES: usize = 3;

/// What a call asks of a provider (`raw`: the request's JSON as the client sent it).
#[derive(Clone, Copy)]
pub enum Job<'r> {
    /// A chat call; with a prompt, its answer is reshaped for the prompt's callers.
    Chat(
        &'r ChatRequest,
        &'r Value,
        Option<&'r crate::ai::prompt::Prompt>,
    ),
    Embed(&'r EmbedRequest, &'r Value),
    /// A native pass-through call: the provider's own API, the client's body as it is.
    Native(&'r super::native::NativeCall),
}

impl Job<'_> {
    fn outgoing(
        &self,
        p: &ProviderConfig,
        model: &str,
        key: &str,
    ) -> Result<Outgoing, TranslateError> {
        match *self {
            Job::Chat(req, raw, _) => {
                provider::outgoing(&p.kind, &p.base_path, model, key, req, raw)
            }
            Job::Embed(req, raw) => {
                embeddings::outgoing(&p.kind, &p.base_path, model, key, req, raw)
            }
            Job::Native(n) => Ok(n.outgoing(p, key)),
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Job::Native(n) => n.method,
            Job::Chat(..) | Job::Embed(..) => "POST",
        }
    }

    fn stream(&self) -> bool {
        match self {
            Job::Chat(r, _, _) => r.stream,
            Job::Embed(..) => false,
            Job::Native(n) => n.stream,
        }
    }
}

/// Tries `cand` for `job`.
pub async fn run(cx: &mut Cx<'_>, cand: &Candidate, job: Job<'_>) -> Served {
    let state = cx.state;
    let p = &state.snap.config.ai.providers[cand.provider];
    let up = &state.upstreams[p.upstream];
    if let Some(a) = cx.ctx.ai.as_mut() {
        a.provider.clone_from(&p.name);
        a.model.clone_from(&cand.model);
        a.attempts += 1;
    }
    cx.ctx.upstream = Some(p.upstream);
    let permit = match up.admit() {
        Ok(permit) => permit,
        Err(r) => return Served::Failed(refused(r, &up.config.name)),
    };
    let cursor = &state.ai.key_cursors[cand.provider];
    let timeout = up.config.response_timeout.as_millis() as u64;
    let mut key_tries = 0;
    let mut stale_retried = false;
    loop {
        let now = unix_ms();
        let key = if p.keys.is_empty() {
            None
        } else {
            match p.keys.pool.pick(cursor, now) {
                Some(k) => Some(k),
                None => return Served::Failed(keys_unavailable(p, now)),
            }
        };
        let secret = key.map_or("", |k| p.keys.secret(k));
        let out = match job.outgoing(p, &cand.model, secret) {
            Ok(o) => o,
            Err(e) => {
                return Served::Done(Answer::detailed(ErrorKind::AiBadRequest, e.to_string()));
            }
        };
        let bytes = request_bytes(p, &out, job.method(), job.stream());
        let started = permit.try_started();
        let mut lease = match up.checkout(&cx.conn.watch, None, None).await {
            Ok(l) => l,
            Err((e, failed)) => {
                cx.ctx.tries += 1;
                permit.record(failed, Outcome::Failed, started);
                return Served::Failed(Answer::error(e));
            }
        };
        let target = lease.target.index;
        cx.ctx.tries += 1;
        cx.ctx.target = Some(lease.target.addr);
        cx.ctx.timings.upstream_connected = clock::now();
        cx.ctx.timings.upstream_first_byte = 0;
        if let Err(e) = send(cx, &mut lease, bytes, timeout).await {
            if lease.reused && !stale_retried {
                stale_retried = true;
                continue;
            }
            permit.record(Some(target), Outcome::Failed, started);
            return Served::Failed(Answer::error(e));
        }
        let mut ubuf = cx.conn.shard.pools.buf();
        if let Err(f) = read_head(cx, &mut lease, &mut ubuf, timeout).await {
            cx.conn.shard.pools.put_buf(ubuf);
            if f.error.kind == ErrorKind::ClientGone {
                cx.ctx.fail(f.error);
                return Served::Done(Answer::Sent(Next::Close));
            }
            if lease.reused && !f.got_bytes && !stale_retried {
                stale_retried = true;
                continue;
            }
            permit.record(Some(target), Outcome::Failed, started);
            return Served::Failed(Answer::error(f.error));
        }
        let status = cx.kit.resp.status;
        permit.record(Some(target), Outcome::Status(status), started);
        let retry_after = header(cx, &ubuf, b"retry-after").map(<[u8]>::to_vec);
        let content_type = header(cx, &ubuf, b"content-type").map(<[u8]>::to_vec);
        if let Some(k) = key {
            let outcome = KeyOutcome::of(status, retry_after.as_deref(), now);
            if p.keys.pool.report(k, outcome, now) {
                tracing::warn!(provider = %p.name, key = k, status, "the provider refused one of its keys: it is not used again until the keys are reloaded");
            }
        }
        if (200..300).contains(&status) {
            let answer = match job {
                Job::Chat(req, _, shape) => {
                    translate::success(cx, p, cand, req, shape, lease, ubuf, up).await
                }
                Job::Embed(req, _) => {
                    translate::embeddings(cx, p, cand, req, lease, ubuf, up).await
                }
                Job::Native(n) => super::native::success(cx, p, n, lease, ubuf, up).await,
            };
            return Served::Done(answer);
        }
        // An error answer: read it (it says why), then decide.
        let text = translate::read_whole(cx, lease, ubuf, up)
            .await
            .unwrap_or_default();
        key_tries += 1;
        // Another key may do where this one is wrong (401) or busy (429); a 403 forbids the
        // request itself, and would be forbidden with any key of the account.
        let key_problem = key.is_some() && matches!(status, 401 | 429);
        if key_problem
            && key_tries < MAX_KEY_TRIES.min(p.keys.len())
            && p.keys.pool.next_usable_in(unix_ms()) == Some(0)
        {
            continue;
        }
        let answer = match job {
            // The provider's own SDK gets the provider's own error (but never a 401 of the
            // gateway's key, which it would take for its own).
            Job::Native(_) if status != 401 => {
                let ct = content_type.as_deref().unwrap_or(b"application/json");
                if let Some(v) = retry_after
                    .as_deref()
                    .filter(|v| v.iter().all(|b| *b == b' ' || b.is_ascii_graphic()))
                {
                    cx.kit.response_headers.extend_from_slice(b"retry-after: ");
                    cx.kit.response_headers.extend_from_slice(v);
                    cx.kit.response_headers.extend_from_slice(b"\r\n");
                }
                return Served::Done(super::reply::raw(cx, status, ct, &text).await);
            }
            _ => {
                let detail = provider_error(&p.kind, status, &text);
                provider_answer(p, status, detail, retry_after.as_deref())
            }
        };
        return if falls_back(Failure::Status(status)) || matches!(status, 401 | 403) {
            Served::Failed(answer)
        } else {
            Served::Done(answer)
        };
    }
}

/// Unix time in milliseconds (`retry-after` dates and key cooldowns are wall-clock).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The request's bytes: head and body, in one write.
fn request_bytes(p: &ProviderConfig, out: &Outgoing, method: &str, stream: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(out.body.len() + 384);
    let _ = write!(
        v,
        "{method} {} HTTP/1.1\r\nhost: {}\r\n",
        out.target, p.host
    );
    for (name, value) in &out.headers {
        let _ = write!(v, "{name}: {value}\r\n");
    }
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let _ = write!(
        v,
        "content-type: application/json\r\naccept: {accept}\r\naccept-encoding: identity\r\nuser-agent: ringway/{}\r\ncontent-length: {}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        out.body.len()
    );
    v.extend_from_slice(&out.body);
    v
}

/// Writes the request within `timeout_ms`.
async fn send(
    cx: &mut Cx<'_>,
    lease: &mut Lease,
    bytes: Vec<u8>,
    timeout_ms: u64,
) -> Result<(), GatewayError> {
    let fd = lease.fd();
    let (res, _) = {
        let _armed = cx.conn.watch.arm(fd, Shut::Both, now_ms() + timeout_ms);
        lease.stream().write_all(bytes).await
    };
    match res {
        Ok(_) => Ok(()),
        Err(_) if cx.conn.watch.fired() => Err(GatewayError::new(ErrorKind::UpstreamTimeout)),
        Err(e) => Err(GatewayError::io(ErrorKind::UpstreamReset, &e)
            .retry(Retry::IfIdempotent)
            .context("sending the request to the provider")),
    }
}

/// The value of response header `name` (lower case), if present.
fn header<'b>(cx: &Cx<'_>, ubuf: &'b crate::http::buf::Buf, name: &[u8]) -> Option<&'b [u8]> {
    let data = ubuf.data();
    cx.kit
        .resp
        .headers
        .iter()
        .find(|h| h.name.of(data).eq_ignore_ascii_case(name))
        .map(|h| h.value.of(data))
}

/// The provider's breaker or concurrency cap refused.
fn refused(r: Refusal, name: &str) -> Answer {
    let secs = r.retry_after_ms.div_ceil(1000).max(1);
    let headers = format!("retry-after: {secs}\r\nx-ringway-breaker: {name}\r\n");
    Answer::Error(r.error, headers.into_bytes())
}

fn keys_unavailable(p: &ProviderConfig, now: u64) -> Answer {
    let e = GatewayError::new(ErrorKind::ProviderKeysUnavailable);
    let headers = match p.keys.pool.next_usable_in(now) {
        Some(ms) => format!("retry-after: {}\r\n", ms.div_ceil(1000).max(1)),
        None => String::new(),
    };
    Answer::Detailed(
        e,
        Box::new(Detail {
            code: e.code().to_string(),
            message: format!(
                "every key of the provider {:?} is cooling down or disabled",
                p.name
            ),
            headers: headers.into_bytes(),
        }),
    )
}

/// The client's answer for a provider's error `status`.
fn provider_answer(
    p: &ProviderConfig,
    status: u16,
    d: ErrorDetail,
    retry_after: Option<&[u8]>,
) -> Answer {
    let (status, code, message) = match status {
        // Not the provider's words: they may quote part of the key.
        401 => (
            502,
            "provider_auth_failed".to_string(),
            format!(
                "the provider {:?} refused the gateway's key (401); the operator has to check it",
                p.name
            ),
        ),
        // The request itself is forbidden (a model or resource the account may not use).
        403 => (
            403,
            d.code.unwrap_or_else(|| "permission_denied".into()),
            format!(
                "the provider {:?} refused this request: {}",
                p.name, d.message
            ),
        ),
        // Anthropic's "overloaded".
        529 => (
            503,
            d.code.unwrap_or_else(|| "provider_overloaded".into()),
            d.message,
        ),
        s @ (400..=599) => (s, d.code.unwrap_or_else(|| d.kind.clone()), d.message),
        _ => (
            502,
            "provider_error".to_string(),
            format!("the provider {:?} answered {status}: {}", p.name, d.message),
        ),
    };
    let mut headers = Vec::new();
    if status == 429 {
        let v = retry_after
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
            .unwrap_or("1");
        let _ = write!(headers, "retry-after: {v}\r\n");
    }
    Answer::Detailed(
        GatewayError::new(ErrorKind::ProviderError(status)),
        Box::new(Detail {
            code,
            message,
            headers,
        }),
    )
}
