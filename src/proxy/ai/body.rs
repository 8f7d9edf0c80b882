//! Bodies an AI route reads whole: the client's request (it is parsed and translated before
//! anything goes out), and a provider's non-streamed answer (it is parsed and translated before
//! anything goes back). Both are bounded: the route's `max_body_size` (413 beyond) and
//! [`MAX_PROVIDER_BODY`].

use crate::error::{ErrorKind, GatewayError};
use crate::http::Framing;
use crate::http::buf::Buf;
use crate::http::chunked::ChunkedDecoder;
use crate::runtime::watchdog::{Shut, Watch};
use crate::upstream::Lease;

use super::super::answer::Answer;
use super::super::chain::{Cx, Next};
use super::super::forward::consume_request;
use super::super::relay::{Body, RelayError, Source, body_step};

/// Largest provider answer read whole (a long completion is some hundred KiB).
pub const MAX_PROVIDER_BODY: usize = 16 << 20;

/// Reads the request body whole (at most `limit` bytes), consuming the request from the
/// connection's buffer; the connection may stay open afterwards.
pub async fn request(cx: &mut Cx<'_>, limit: u64) -> Result<Vec<u8>, Answer> {
    let state = cx.state;
    let http = &state.snap.config.http;
    let head_len = cx.kit.req.len;
    let (mut body, expected) = match cx.kit.req.framing {
        Framing::Length(n) if n > limit => return Err(Answer::kind(ErrorKind::BodyTooLarge)),
        Framing::Length(n) => (Body::Length(n), n as usize),
        Framing::Chunked => (Body::Chunked(ChunkedDecoder::new(http.max_head_size)), 4096),
        Framing::None | Framing::Close => (Body::Length(0), 0),
    };
    let go_ahead = cx.kit.req.expect_continue && !body.is_done() && cx.kit.buf.len() == head_len;
    consume_request(cx, head_len);
    if go_ahead {
        let kit = &mut *cx.kit;
        let sent = cx
            .conn
            .send(&mut kit.g, &mut kit.buf, |g| {
                g.reset();
                g.push_extra(b"HTTP/1.1 100 Continue\r\n\r\n");
            })
            .await;
        if sent.is_err() {
            cx.ctx
                .fail(GatewayError::new(ErrorKind::ClientGone).context("sending 100 Continue"));
            return Err(Answer::Sent(Next::Close));
        }
    }
    let mut out = Vec::with_capacity(expected.min(limit as usize));
    let mut ranges = Vec::new();
    let mut too_large = false;
    let conn = &mut *cx.conn;
    let mut src = Source::client(&mut conn.stream, conn.fd, http);
    loop {
        let before = cx.kit.buf.len();
        let step = body_step(
            &mut src,
            &conn.watch,
            &mut cx.kit.buf,
            &mut body,
            &mut ranges,
            |d| {
                if out.len() as u64 + d.len() as u64 > limit {
                    too_large = true;
                } else {
                    out.extend_from_slice(d);
                }
            },
        )
        .await;
        cx.ctx.bytes_in += before.saturating_sub(cx.kit.buf.len()) as u64;
        if too_large {
            return Err(Answer::kind(ErrorKind::BodyTooLarge));
        }
        match step {
            Ok(true) => break,
            Ok(false) => {}
            Err(RelayError::SrcTimeout) => return Err(Answer::kind(ErrorKind::BodyTimeout)),
            Err(RelayError::Chunk(e)) => return Err(Answer::error(e.into())),
            Err(_) => {
                cx.ctx.fail(
                    GatewayError::new(ErrorKind::ClientGone).context("reading the request body"),
                );
                return Err(Answer::Sent(Next::Close));
            }
        }
    }
    cx.ctx.read_whole = true;
    Ok(out)
}

/// Reads a provider's answer body whole; `ubuf` holds the bytes after its head. Returns the body
/// and whether the connection can go back to the pool.
pub async fn provider(
    watch: &Watch,
    lease: &mut Lease,
    ubuf: &mut Buf,
    framing: Framing,
    read_timeout_ms: u64,
) -> Result<Vec<u8>, GatewayError> {
    if matches!(framing, Framing::Length(n) if n > MAX_PROVIDER_BODY as u64) {
        return Err(too_large());
    }
    let mut body = Body::of_response(framing, ubuf.capacity());
    let fd = lease.fd();
    let mut src = Source {
        stream: lease.stream(),
        fd,
        timeout_ms: read_timeout_ms,
        shut: Shut::Both,
    };
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    let mut over = false;
    loop {
        let step = body_step(&mut src, watch, ubuf, &mut body, &mut ranges, |d| {
            if out.len() + d.len() > MAX_PROVIDER_BODY {
                over = true;
            } else {
                out.extend_from_slice(d);
            }
        })
        .await;
        if over {
            return Err(too_large());
        }
        match step {
            Ok(true) => return Ok(out),
            Ok(false) => {}
            Err(RelayError::SrcTimeout) => {
                return Err(GatewayError::new(ErrorKind::UpstreamTimeout)
                    .context("reading the provider's answer"));
            }
            Err(RelayError::Chunk(e)) => {
                let e = crate::http::ResponseError::BadFraming(e.reason());
                return Err(GatewayError::new(ErrorKind::UpstreamBadResponse(e)));
            }
            Err(_) => {
                return Err(GatewayError::new(ErrorKind::UpstreamReset)
                    .context("reading the provider's answer"));
            }
        }
    }
}

fn too_large() -> GatewayError {
    GatewayError::new(ErrorKind::UpstreamBadResponse(
        crate::http::ResponseError::Malformed("the provider's answer is larger than 16 MiB"),
    ))
}
