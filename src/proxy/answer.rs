//! Answers the gateway writes itself: JSON errors and static responses (a static route, or a
//! route's breaker fallback). Every stage that refuses or answers a request hands back an
//! [`Answer`]; the chain writes it here, so the status, the JSON body, `x-request-id`, the
//! `RateLimit-*` fields and the keep-alive decision are made in one place.
//!
//! Whether the connection stays open: only when the client allows it, the shard is not draining,
//! the connection's request budget is not spent, and the whole request (head and body) is still in
//! the buffer to be skipped. A request whose bytes were consumed already (a body relay started)
//! always closes: what is left of its body is unread.

use crate::error::{ErrorKind, GatewayError};
use crate::http::respond::{self, RenderedStatic, Reply};
use crate::http::{Framing, HeadError, Method};

use super::chain::{Cx, Next};

/// How a stage ended a request.
pub enum Answer {
    /// The response went out already (a proxied response), or nothing more can be sent.
    Sent(Next),
    /// An error, with extra header lines (`name: value\r\n`).
    Error(GatewayError, Vec<u8>),
    /// The matched route's static response, or (`fallback`) its breaker fallback response, with
    /// extra header lines.
    Static { fallback: bool, headers: Vec<u8> },
    /// An error whose body says more than its kind: the field a request got wrong, a model
    /// provider's own code and message.
    Detailed(GatewayError, Box<Detail>),
}

/// The body of an [`Answer::Detailed`].
pub struct Detail {
    pub code: String,
    pub message: String,
    /// Extra header lines (`name: value\r\n`).
    pub headers: Vec<u8>,
}

impl Answer {
    pub fn error(e: GatewayError) -> Answer {
        Answer::Error(e, Vec::new())
    }

    pub fn kind(kind: ErrorKind) -> Answer {
        Answer::error(GatewayError::new(kind))
    }

    /// An error of `kind` with its own message (the code is the kind's).
    pub fn detailed(kind: ErrorKind, message: impl Into<String>) -> Answer {
        let e = GatewayError::new(kind);
        Answer::Detailed(
            e,
            Box::new(Detail {
                code: e.code().to_string(),
                message: message.into(),
                headers: Vec::new(),
            }),
        )
    }
}

/// Writes `answer` to the client and says how the connection goes on.
pub async fn write(cx: &mut Cx<'_>, answer: Answer) -> Next {
    match answer {
        Answer::Sent(next) => next,
        Answer::Error(e, headers) => write_error(cx, e, None, &headers).await,
        Answer::Detailed(e, d) => write_error(cx, e, Some((&d.code, &d.message)), &d.headers).await,
        Answer::Static { fallback, headers } => {
            let state = cx.state;
            let table = if fallback {
                &state.snap.fallbacks
            } else {
                &state.snap.statics
            };
            match cx
                .ctx
                .route
                .and_then(|r| table.get(r))
                .and_then(Option::as_ref)
            {
                Some(r) => write_static(cx, r, &headers).await,
                None => {
                    let e = GatewayError::new(ErrorKind::RouteNotFound);
                    write_error(cx, e, None, b"").await
                }
            }
        }
    }
}

/// Whether the client connection may stay open after this request (before knowing its response).
pub fn client_keep_alive(cx: &Cx<'_>) -> bool {
    let max = cx.state.snap.config.http.keepalive_requests;
    !cx.ctx.head.close && !cx.conn.shard.draining() && (max == 0 || cx.conn.served < max)
}

/// Bytes of the request (head and body) still in the buffer, if the whole request is there.
fn whole_request_len(cx: &Cx<'_>) -> Option<usize> {
    if cx.ctx.consumed {
        // A body read whole (an AI route's) left nothing of the request behind.
        return cx.ctx.read_whole.then_some(0);
    }
    let kit = &cx.kit;
    match kit.req.framing {
        Framing::None => Some(kit.req.len),
        Framing::Length(n) => {
            let total = kit.req.len as u64 + n;
            (total <= kit.buf.len() as u64).then_some(total as usize)
        }
        Framing::Chunked | Framing::Close => None,
    }
}

fn reply(cx: &Cx<'_>, keep: bool) -> Reply {
    Reply {
        close: !keep,
        keep_alive_10: cx.ctx.head.keep_alive_10,
        head_only: cx.ctx.head.method == Method::Head,
    }
}

async fn write_static(cx: &mut Cx<'_>, r: &RenderedStatic, headers: &[u8]) -> Next {
    let whole = whole_request_len(cx);
    let keep = client_keep_alive(cx) && whole.is_some();
    let reply = reply(cx, keep);
    let extra = [headers, &cx.kit.response_headers].concat();
    r.render(&mut cx.kit.g, reply, &extra);
    cx.ctx.status = r.status();
    send_and_finish(cx, whole, keep).await
}

/// Writes error `e`; `detail`: the code and message of its body when not the kind's own.
async fn write_error(
    cx: &mut Cx<'_>,
    e: GatewayError,
    detail: Option<(&str, &str)>,
    headers: &[u8],
) -> Next {
    cx.ctx.fail(e);
    let whole = whole_request_len(cx);
    // A path refused by normalization closes: the client's idea of the path is not the gateway's.
    let keep = client_keep_alive(cx) && whole.is_some() && !matches!(e.kind, ErrorKind::BadPath(_));
    if !cx.ctx.id.is_set() {
        let mut id = [0u8; 24];
        cx.conn.shard.request_id(&mut id);
        cx.ctx.id.set_generated(&id);
    }
    let mut extra = Vec::with_capacity(headers.len() + cx.kit.response_headers.len() + 64);
    if e.kind == ErrorKind::MethodNotAllowed || e.kind == ErrorKind::Head(HeadError::Connect) {
        extra.extend_from_slice(b"allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n");
    } else {
        extra.extend_from_slice(headers);
    }
    extra.extend_from_slice(&cx.kit.response_headers);
    // Closing with part of the request still to come: close lingering (not for a client that
    // stalled: nothing is coming).
    let stalled = matches!(e.kind, ErrorKind::HeaderTimeout | ErrorKind::BodyTimeout);
    if !keep && !stalled && (cx.ctx.consumed && !cx.ctx.read_whole || whole.is_none()) {
        cx.conn.linger = true;
    }
    let reply = reply(cx, keep);
    let (code, message) = detail.unwrap_or((e.code(), e.message()));
    respond::error(
        &mut cx.kit.g,
        e.status(),
        code,
        message,
        cx.ctx.id.as_bytes(),
        &extra,
        reply,
    );
    cx.ctx.status = e.status();
    send_and_finish(cx, whole, keep).await
}

/// Sends what is laid out in the gather list and counts it; false (the client gone, recorded as
/// the request's error while `doing`) when the write failed.
pub(crate) async fn send_counted(cx: &mut Cx<'_>, doing: &'static str) -> bool {
    let kit = &mut *cx.kit;
    let len = kit.g.total() as u64;
    if cx
        .conn
        .send(&mut kit.g, &mut kit.buf, |_| {})
        .await
        .is_err()
    {
        cx.ctx
            .fail(GatewayError::new(ErrorKind::ClientGone).context(doing));
        return false;
    }
    cx.ctx.bytes_out += len;
    true
}

/// Writes what is laid out in the gather list, then consumes the request when the connection stays.
async fn send_and_finish(cx: &mut Cx<'_>, whole: Option<usize>, keep: bool) -> Next {
    if !send_counted(cx, "writing the answer").await {
        return Next::Close;
    }
    match (keep, whole) {
        (true, Some(n)) => {
            cx.kit.buf.consume(n);
            Next::KeepAlive
        }
        _ => Next::Close,
    }
}
