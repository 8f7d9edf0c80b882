//! The request side of forwarding: the body bytes already in hand, then the rewritten head and the
//! body to the upstream.
//!
//! - [`prepare`]: takes the body bytes already in the buffer and, for a short Content-Length body
//!   still on its way, waits for the rest, so the request leaves in one write and, whole in the
//!   buffer, can be retried.
//! - [`send`]: writes the head with the buffered body; a body still to come is streamed after it
//!   while the upstream's answer is read at the same time. An upstream that answers early (a 401 or
//!   413 before the upload ends) and stops reading gets its answer forwarded: the upload stops and
//!   both connections close afterwards.
//!
//! Errors: a failed head write is the caller's to retry; failures while streaming the body end the
//! request (its bytes are consumed): 408 `body_timeout`, 400 `bad_chunked_body`, 413
//! `body_too_large`, 502/504 on the upstream side, nothing when the client is gone.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use crate::config::{ProxyAction, RouteConfig};
use crate::error::{ErrorKind, GatewayError, Retry};
use crate::http::Framing;
use crate::http::buf::{Buf, StaticBytes};
use crate::http::chunked::ChunkedDecoder;
use crate::http::rewrite::{self, RequestRewrite};
use crate::runtime::watchdog::{Shut, now_ms};
use crate::upstream::Lease;

use super::super::answer::Answer;
use super::super::chain::Cx;
use super::super::relay::{
    Body, Capture, Ends, RelayError, Source, read_short_body, relay, send as send_gather,
};

/// The request body as forwarding sees it.
pub struct ReqBody {
    pub body: Body,
    /// Body bytes in the buffer right after the head.
    pub prefix: usize,
    /// The whole request (head and body) is in the buffer: it can be sent again.
    pub whole: bool,
    /// Body bytes to keep for the call record (0: none).
    pub capture: usize,
}

/// Takes the body bytes already read and waits for a short rest (not with `Expect: 100-continue`:
/// that client waits for a go-ahead).
pub async fn prepare(cx: &mut Cx<'_>, route: &RouteConfig) -> Result<ReqBody, Answer> {
    let http = &cx.state.snap.config.http;
    let head_len = cx.kit.req.len;
    let mut body = match cx.kit.req.framing {
        Framing::Length(n) => Body::Length(n),
        Framing::Chunked => Body::Chunked(ChunkedDecoder::new(http.max_head_size)),
        Framing::None | Framing::Close => Body::Length(0),
    };
    let cap = if cx.conn.shard.recording() {
        route.capture_body
    } else {
        0
    };
    let mut ranges = Vec::new();
    let mut prefix = body
        .take(
            &cx.kit.buf.data()[head_len..],
            (cap > 0).then_some(&mut ranges),
        )
        .map_err(|e| Answer::error(e.into()))?;
    let taken = prefix;
    if body.chunked_data_len() > route.max_body_size {
        return Err(Answer::kind(ErrorKind::BodyTooLarge));
    }
    if !cx.kit.req.expect_continue {
        let conn = &mut *cx.conn;
        let mut src = Source::client(&mut conn.stream, conn.fd, http);
        let (more, filled) =
            read_short_body(&mut src, &conn.watch, &mut cx.kit.buf, &mut body).await;
        match filled {
            Ok(()) => prefix += more,
            Err(RelayError::SrcTimeout) => {
                consume_request(cx, head_len + prefix + more);
                return Err(Answer::kind(ErrorKind::BodyTimeout));
            }
            Err(_) => {
                consume_request(cx, head_len + prefix + more);
                cx.ctx.fail(client_gone("reading the request body"));
                return Err(Answer::Sent(super::super::chain::Next::Close));
            }
        }
    }
    cx.ctx.bytes_in += prefix as u64;
    if cap > 0 {
        let kit = &mut *cx.kit;
        let data = &kit.buf.data()[head_len..];
        // What came with the head (by its ranges), then what the short read added (contiguous).
        ranges.push((taken, prefix));
        Capture {
            out: &mut kit.capture_req,
            cap,
        }
        .take(data, &ranges);
    }
    let whole = body.is_done();
    Ok(ReqBody {
        body,
        prefix,
        whole,
        capture: cap,
    })
}

/// How sending ended.
pub enum Failed {
    /// Writing the head (and buffered body) failed: nothing of the response was read. The error's
    /// [`Retry`] says whether the request may go out again.
    Head(GatewayError),
    /// Streaming the rest of the body failed; the request is consumed and ends with this answer.
    /// `upstream`: the upstream's fault (it stopped reading, reset, timed out), which the breaker
    /// and outlier detection count; a client's fault (gone, stalled, bad framing) they do not.
    Body { answer: Answer, upstream: bool },
}

/// What sending left behind.
pub struct Sent {
    /// The upstream's first response bytes, when they arrived while the body was sent.
    pub first_bytes: Option<Buf>,
    /// The upload stopped before the body was all sent (the upstream answered early). The upstream
    /// connection and the client connection are then both unusable afterwards.
    pub cut_short: bool,
}

/// Sends the head and body; see [`Sent`].
pub async fn send(
    cx: &mut Cx<'_>,
    lease: &mut Lease,
    body: &mut ReqBody,
    action: &ProxyAction,
    timeout_ms: u64,
) -> Result<Sent, Failed> {
    let http = &cx.state.snap.config.http;
    let up_fd = lease.fd();
    let target_name = lease.target.name.clone();
    let rw = RequestRewrite {
        client_ip: cx.conn.peer.ip(),
        via: http.via.as_deref(),
        forwarded_headers: http.forwarded_headers,
        path_rewrite: action
            .rewrite_prefix
            .as_deref()
            .map(|r| (cx.ctx.matched, r)),
        upstream_host: action.upstream_host.as_deref(),
        fallback_host: &target_name,
        body_prefix: body.prefix,
        path: None,
        https: cx.conn.stream.is_tls(),
        extra: &[],
    };
    let kit = &mut *cx.kit;
    let normalized = &http.normalize;
    // The routed (normalized) path replaces the one sent, unless configured otherwise; a prefix
    // rewrite always works on the routed path, where its prefix was matched.
    let routed =
        cx.ctx.path_rewritten && (!normalized.forward_original || action.rewrite_prefix.is_some());
    let rw = RequestRewrite {
        path: routed.then_some(&kit.path[..]),
        extra: &kit.upstream_headers,
        ..rw
    };
    let req = &kit.req;
    let res = send_gather(
        lease.stream(),
        up_fd,
        timeout_ms,
        &cx.conn.watch,
        &mut kit.g,
        &mut kit.buf,
        |g| rewrite::request_head(g, req, &rw),
    )
    .await;
    if let Err(e) = res {
        if cx.conn.watch.fired() {
            let e = GatewayError::new(ErrorKind::UpstreamTimeout).context("sending the request");
            return Err(Failed::Head(e));
        }
        // A pooled connection that fails at once was most likely closed by the upstream while idle.
        let retry = if lease.reused {
            Retry::IfIdempotent
        } else {
            Retry::Unsafe
        };
        let e = GatewayError::io(ErrorKind::UpstreamReset, &e)
            .context("sending the request head")
            .retry(retry);
        return Err(Failed::Head(e));
    }
    if body.whole {
        return Ok(Sent {
            first_bytes: None,
            cut_short: false,
        });
    }
    stream_body(cx, lease, body, timeout_ms).await
}

/// Streams the rest of the body while the upstream's first response bytes are read concurrently.
async fn stream_body(
    cx: &mut Cx<'_>,
    lease: &mut Lease,
    body: &mut ReqBody,
    timeout_ms: u64,
) -> Result<Sent, Failed> {
    let client_fault = |answer| Failed::Body {
        answer,
        upstream: false,
    };
    let http = &cx.state.snap.config.http;
    let head_len = cx.kit.req.len;
    if cx.kit.req.expect_continue && body.prefix == 0 {
        let res = {
            let conn = &mut *cx.conn;
            let _armed = conn.watch.arm(
                conn.fd,
                Shut::Both,
                now_ms() + http.body_timeout.as_millis() as u64,
            );
            conn.stream
                .write_all(StaticBytes(b"HTTP/1.1 100 Continue\r\n\r\n"))
                .await
                .0
        };
        if res.is_err() {
            consume_request(cx, head_len + body.prefix);
            cx.ctx.fail(client_gone("sending 100 Continue"));
            return Err(client_fault(Answer::Sent(super::super::chain::Next::Close)));
        }
    }
    consume_request(cx, head_len + body.prefix);
    let up_fd = lease.fd();
    let Some((mut rd, mut wr)) = lease.split() else {
        return Err(Failed::Body {
            answer: Answer::kind(ErrorKind::UpstreamReset),
            upstream: true,
        });
    };
    let ubuf = cx.conn.shard.pools.buf();
    let max_body = cx
        .ctx
        .route
        .map_or(u64::MAX, |r| cx.state.snap.config.routes[r].max_body_size);
    let mut moved = 0u64;
    // Both futures live in this block; the halves are reunited after it.
    let (relayed, early) = {
        let conn = &mut *cx.conn;
        let kit = &mut *cx.kit;
        let ends = Ends {
            src: Source::client(&mut conn.stream, conn.fd, http),
            dst: &mut wr,
            dst_fd: up_fd,
            dst_timeout_ms: timeout_ms,
        };
        let mut upload = pin!(relay(
            ends,
            &mut kit.buf,
            &mut kit.g,
            &mut body.body,
            &conn.watch,
            false,
            max_body,
            &mut moved,
            (body.capture > 0).then_some(Capture {
                out: &mut kit.capture_req,
                cap: body.capture,
            }),
        ));
        let mut answer = pin!(rd.read(ubuf));
        let mut early = None;
        let relayed = poll_fn(|task| {
            if early.is_none() {
                if let Poll::Ready(r) = answer.as_mut().poll(task) {
                    // An interim answer (100 Continue, 103 Early Hints) does not stop the upload:
                    // it waits in the buffer, passed on once the body is out.
                    let interim = matches!(&r, (Ok(n), b) if *n > 0 && is_interim(b.data()));
                    early = Some(r);
                    if !interim {
                        return Poll::Ready(None);
                    }
                }
            }
            upload.as_mut().poll(task).map(Some)
        })
        .await;
        match (relayed, early) {
            // The upload ended first: the response read goes on, now under the response timeout.
            (Some(Ok(())), None) => {
                let r = {
                    let _armed = conn.watch.arm(up_fd, Shut::Both, now_ms() + timeout_ms);
                    answer.await
                };
                (Ok(()), Some((r, false)))
            }
            (Some(Ok(())), Some(r)) => (Ok(()), Some((r, false))),
            // The upstream stopped taking the body: it may have answered and closed (its answer
            // is queued before the reset), so the pending read gets its chance. A dead socket
            // completes it at once.
            (Some(Err(RelayError::DstIo(e))), None) => {
                let r = {
                    let _armed = conn.watch.arm(up_fd, Shut::Both, now_ms() + timeout_ms);
                    answer.await
                };
                match r.0 {
                    Ok(n) if n > 0 => (Ok(()), Some((r, true))),
                    _ => (Err(RelayError::DstIo(e)), None),
                }
            }
            (Some(Err(e)), _) => (Err(e), None),
            // The answer came while the upload was still going: it stopped there.
            (None, early) => (Ok(()), early.map(|r| (r, true))),
        }
    };
    let whole_again = lease.unsplit(rd, wr);
    cx.ctx.bytes_in += moved;
    if !whole_again {
        if let Some(((_, b), _)) = early {
            cx.conn.shard.pools.put_buf(b);
        }
        return Err(Failed::Body {
            answer: Answer::error(
                GatewayError::new(ErrorKind::UpstreamReset).context("rejoining the connection"),
            ),
            upstream: true,
        });
    }
    if let Err(e) = relayed {
        return Err(body_failed(cx, e));
    }
    let Some(((res, ubuf), cut_short)) = early else {
        return Ok(Sent {
            first_bytes: None,
            cut_short: false,
        });
    };
    match res {
        Ok(n) if n > 0 => Ok(Sent {
            first_bytes: Some(ubuf),
            cut_short,
        }),
        other => {
            cx.conn.shard.pools.put_buf(ubuf);
            let e = if cx.conn.watch.fired() {
                GatewayError::new(ErrorKind::UpstreamTimeout)
            } else {
                match other {
                    Err(e) => GatewayError::io(ErrorKind::UpstreamReset, &e),
                    Ok(_) => GatewayError::new(ErrorKind::UpstreamReset),
                }
            };
            Err(Failed::Body {
                answer: Answer::error(e.context("waiting for the response")),
                upstream: true,
            })
        }
    }
}

/// Whether `data` starts with a 1xx status line other than 101 (an interim response), or is too
/// short to tell and could still become one (a status line split across reads: the upload goes on
/// and the head is read after it, as for an interim answer).
fn is_interim(data: &[u8]) -> bool {
    // "HTTP/1.x 1yy": `d` is any digit.
    const SHAPE: &[u8; 12] = b"HTTP/1.d 1dd";
    let fits = data.iter().zip(SHAPE).all(|(&b, &want)| {
        if want == b'd' {
            b.is_ascii_digit()
        } else {
            b == want
        }
    });
    fits && (data.len() < SHAPE.len() || &data[9..12] != b"101")
}

/// Maps a failed body relay to the request's answer, and whose fault it was.
fn body_failed(cx: &mut Cx<'_>, e: RelayError) -> Failed {
    let (err, upstream) = match e {
        RelayError::SrcTimeout => (GatewayError::new(ErrorKind::BodyTimeout), false),
        RelayError::SrcClosed | RelayError::SrcIo(_) => {
            cx.ctx.fail(client_gone("reading the request body"));
            return Failed::Body {
                answer: Answer::Sent(super::super::chain::Next::Close),
                upstream: false,
            };
        }
        RelayError::Chunk(c) => (c.into(), false),
        RelayError::TooLarge => (GatewayError::new(ErrorKind::BodyTooLarge), false),
        RelayError::DstTimeout => (GatewayError::new(ErrorKind::UpstreamTimeout), true),
        RelayError::DstIo(e) => (GatewayError::io(ErrorKind::UpstreamReset, &e), true),
    };
    Failed::Body {
        answer: Answer::error(err.context("relaying the request body")),
        upstream,
    }
}

fn client_gone(context: &'static str) -> GatewayError {
    GatewayError::new(ErrorKind::ClientGone).context(context)
}

/// The request's bytes leave the buffer: from here on its head's spans are gone (see
/// `RequestCtx::consumed`).
pub fn consume_request(cx: &mut Cx<'_>, n: usize) {
    cx.kit.buf.consume(n);
    cx.kit.req.forget();
    cx.ctx.consumed = true;
}

#[cfg(test)]
mod tests {
    use super::is_interim;

    #[test]
    fn interim_status_lines_and_their_prefixes() {
        for yes in [
            &b"HTTP/1.1 100 Continue\r\n"[..],
            b"HTTP/1.1 103 Early Hints\r\n",
            b"HTTP/1.0 199",
            b"H",
            b"HTTP/1.1 1",
            b"HTTP/1.1 10",
        ] {
            assert!(is_interim(yes), "{:?}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"HTTP/1.1 101 Switching Protocols\r\n"[..],
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 4",
            b"HTTP/2",
            b"X",
        ] {
            assert!(!is_interim(no), "{:?}", String::from_utf8_lossy(no));
        }
    }
}
