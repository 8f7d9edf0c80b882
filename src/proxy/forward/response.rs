//! The response side of forwarding: read the upstream's response head (passing 1xx interim
//! responses through), send the rewritten head with the body bytes read along with it, stream the
//! rest, and give the upstream connection back to the pool when the exchange left it clean.
//! `101 Switching Protocols` hands both sockets to the tunnel instead.
//!
//! Errors before the response head reached the client are answered with their status (502
//! `upstream_bad_response`, 504 `upstream_timeout`, ...); after that the client connection is
//! closed, since its response is incomplete and must not look complete.

use monoio::io::AsyncReadRent;

use crate::error::{ErrorKind, GatewayError, Retry};
use crate::http::buf::Buf;
use crate::http::rewrite::{self, ResponseRewrite};
use crate::http::{Framing, Method, ResponseError, parse_response};
use crate::runtime::watchdog::{Shut, now_ms};
use crate::upstream::{Lease, Upstream};

use super::super::answer::{Answer, client_keep_alive};
use super::super::chain::{Cx, Next, Upgraded};
use super::super::relay::Capture;
use super::super::relay::{Body, Ends, Source, read_short_body, relay};
use crate::observe::clock;

/// Why reading a response head failed.
pub struct HeadFailed {
    pub error: GatewayError,
    /// Some response byte had arrived (the request was certainly seen: never a stale retry).
    pub got_bytes: bool,
}

/// Reads the response head into `ubuf` (which may hold its first bytes already) and `kit.resp`,
/// forwarding interim (1xx, not 101) responses to the client.
pub async fn read_head(
    cx: &mut Cx<'_>,
    lease: &mut Lease,
    ubuf: &mut Buf,
    timeout_ms: u64,
) -> Result<(), HeadFailed> {
    let up_fd = lease.fd();
    let head_request = cx.ctx.head.method == Method::Head;
    let deadline = now_ms() + timeout_ms;
    let mut got_bytes = !ubuf.is_empty();
    let failed = |error: GatewayError, got_bytes: bool| HeadFailed { error, got_bytes };
    loop {
        if !ubuf.is_empty() {
            if cx.ctx.timings.upstream_first_byte == 0 {
                cx.ctx.timings.upstream_first_byte = clock::now();
            }
            match parse_response(ubuf.data(), head_request, &mut cx.kit.resp) {
                Ok(Some(())) => {
                    if cx.kit.resp.is_interim() && cx.kit.resp.status != 101 {
                        let len = cx.kit.resp.len;
                        if !cx.ctx.head.http10 {
                            relay_interim(cx, ubuf).await.map_err(|e| failed(e, true))?;
                        }
                        ubuf.consume(len);
                        continue;
                    }
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(failed(
                        GatewayError::new(ErrorKind::UpstreamBadResponse(e)),
                        true,
                    ));
                }
            }
        }
        if !ubuf.make_room(ubuf.capacity()) {
            let e = GatewayError::new(ErrorKind::UpstreamBadResponse(ResponseError::TooLarge));
            return Err(failed(e, true));
        }
        let b = std::mem::take(ubuf);
        let (res, b) = {
            let _armed = cx.conn.watch.arm(up_fd, Shut::Both, deadline);
            lease.stream().read(b).await
        };
        *ubuf = b;
        let fired = cx.conn.watch.fired();
        // A reused connection closed before any response byte: most likely the upstream closed it
        // while idle, so the request may go out again if it is idempotent.
        let stale = if lease.reused && !got_bytes {
            Retry::IfIdempotent
        } else {
            Retry::Unsafe
        };
        let e = match res {
            Ok(n) if n > 0 => {
                got_bytes = true;
                continue;
            }
            _ if fired => GatewayError::new(ErrorKind::UpstreamTimeout),
            Ok(_) => GatewayError::new(ErrorKind::UpstreamReset).retry(stale),
            Err(e) => GatewayError::io(ErrorKind::UpstreamReset, &e).retry(stale),
        };
        return Err(failed(e.context("reading the response head"), got_bytes));
    }
}

/// Passes a 1xx interim response head to the client, without its hop-by-hop fields and with CRLF
/// line ends, as a final head is.
async fn relay_interim(cx: &mut Cx<'_>, ubuf: &mut Buf) -> Result<(), GatewayError> {
    let resp = &cx.kit.resp;
    let mut total = 0;
    let sent = cx
        .conn
        .send(&mut cx.kit.g, ubuf, |g| {
            rewrite::interim_head(g, resp);
            total = g.total();
        })
        .await;
    cx.ctx.bytes_out += total as u64;
    sent.map_err(|_| {
        GatewayError::new(ErrorKind::ClientGone).context("sending an interim response")
    })
}

/// Sends the response whose head is in `kit.resp` / `ubuf` and relays its body. `early`: the
/// upstream answered before the request body was all sent (the upload stopped; both connections
/// close afterwards). `request_len`: the request's bytes still in the client buffer (consumed once
/// the response is out), 0 when they were consumed already.
pub async fn relay_response(
    cx: &mut Cx<'_>,
    up: &Upstream,
    mut lease: Lease,
    mut ubuf: Buf,
    early: bool,
    request_len: usize,
) -> Answer {
    let http = &cx.state.snap.config.http;
    let status = cx.kit.resp.status;
    cx.ctx.status = status;
    if status == 101 {
        return switch_protocols(cx, lease, ubuf, request_len).await;
    }
    let framing = cx.kit.resp.framing.0;
    // An HTTP/1.0 client may not be sent Transfer-Encoding (RFC 9112 §6.1): a lone `chunked` is
    // decoded for it; another coding (`gzip, chunked`, or `gzip` to the close) cannot be undone
    // here, and removing the field would hand it coded bytes as if they were the content.
    if cx.ctx.head.http10 && cx.kit.resp.coded && framing != Framing::None {
        cx.conn.shard.pools.put_buf(ubuf);
        return Answer::kind(ErrorKind::UpstreamBadResponse(ResponseError::BadFraming(
            "a transfer coding other than chunked for an HTTP/1.0 client",
        )));
    }
    let dechunk = cx.ctx.head.http10 && framing == Framing::Chunked;
    let keep = client_keep_alive(cx) && framing != Framing::Close && !dechunk && !early;
    // The upload was cut short: what the client still sends is drained when it closes.
    cx.conn.linger |= early;
    let mut rbody = Body::of_response(framing, ubuf.capacity());
    let resp_len = cx.kit.resp.len;
    let cap = match cx.ctx.route {
        Some(r) if cx.conn.shard.recording() => cx.state.snap.config.routes[r].capture_body,
        _ => 0,
    };
    let mut ranges = Vec::new();
    let want_ranges = dechunk || cap > 0;
    let body_prefix = match rbody.take(&ubuf.data()[resp_len..], want_ranges.then_some(&mut ranges))
    {
        Ok(n) => n,
        Err(e) => {
            cx.conn.shard.pools.put_buf(ubuf);
            let e = ResponseError::BadFraming(e.reason());
            return Answer::kind(ErrorKind::UpstreamBadResponse(e));
        }
    };
    // A short body still on its way is awaited, so that head and body leave in one write. The same
    // source then feeds the relay of the rest, if any.
    let up_fd = lease.fd();
    let mut src = Source {
        stream: lease.stream(),
        fd: up_fd,
        timeout_ms: up.config.read_timeout.as_millis() as u64,
        shut: Shut::Both,
    };
    let conn = &mut *cx.conn;
    let kit = &mut *cx.kit;
    let (more, filled) = read_short_body(&mut src, &conn.watch, &mut ubuf, &mut rbody).await;
    if cap > 0 {
        let mut c = Capture {
            out: &mut kit.capture_resp,
            cap,
        };
        let data = &ubuf.data()[resp_len..];
        c.take(data, &ranges);
        c.take(data, &[(body_prefix, body_prefix + more)]);
    }
    let body_prefix = body_prefix + more;
    let rw = ResponseRewrite {
        extra: &kit.response_headers,
        keep_alive: keep,
        client_http10: cx.ctx.head.http10,
        dechunk,
        body_prefix: if dechunk { 0 } else { body_prefix },
    };
    let resp = &kit.resp;
    let head_out = {
        let mut total = 0;
        let res = conn
            .send(&mut kit.g, &mut ubuf, |g| {
                rewrite::response_head(g, resp, &rw);
                if dechunk {
                    for &(s, e) in &ranges {
                        g.push_main(resp_len + s, resp_len + e);
                    }
                }
                total = g.total();
            })
            .await;
        res.map(|()| total)
    };
    let upstream_close = kit.resp.close;
    match head_out {
        Ok(n) => cx.ctx.bytes_out += n as u64,
        Err(_) => {
            conn.shard.pools.put_buf(ubuf);
            cx.ctx.fail(
                GatewayError::new(ErrorKind::ClientGone).context("sending the response head"),
            );
            return Answer::Sent(Next::Close);
        }
    }
    ubuf.consume(resp_len + body_prefix);
    let mut moved = 0u64;
    let relayed = match filled {
        Ok(()) if !rbody.is_done() => {
            let ends = Ends {
                src,
                dst: &mut conn.stream,
                dst_fd: conn.fd,
                dst_timeout_ms: http.body_timeout.as_millis() as u64,
            };
            relay(
                ends,
                &mut ubuf,
                &mut kit.g,
                &mut rbody,
                &conn.watch,
                dechunk,
                u64::MAX,
                &mut moved,
                (cap > 0).then_some(Capture {
                    out: &mut kit.capture_resp,
                    cap,
                }),
            )
            .await
        }
        other => other,
    };
    cx.ctx.bytes_out += moved;
    if let Err(e) = relayed {
        conn.shard.pools.put_buf(ubuf);
        if !matches!(rbody, Body::Close) {
            let kind = match e {
                super::super::relay::RelayError::DstIo(_)
                | super::super::relay::RelayError::DstTimeout => ErrorKind::ClientGone,
                super::super::relay::RelayError::SrcTimeout => ErrorKind::UpstreamTimeout,
                _ => ErrorKind::UpstreamReset,
            };
            cx.ctx
                .fail(GatewayError::new(kind).context("relaying the response body"));
        }
        return Answer::Sent(Next::Close);
    }
    cx.ctx.timings.last_byte = clock::now();
    let reusable = !upstream_close && ubuf.is_empty() && rbody.is_done() && !early;
    lease.release(reusable, now_ms());
    conn.shard.pools.put_buf(ubuf);
    if !keep {
        return Answer::Sent(Next::Close);
    }
    if !cx.ctx.consumed {
        cx.kit.buf.consume(request_len);
    }
    Answer::Sent(Next::KeepAlive)
}

/// 101 from upstream: forward it, then hand both sockets to the tunnel.
async fn switch_protocols(
    cx: &mut Cx<'_>,
    lease: Lease,
    mut ubuf: Buf,
    request_len: usize,
) -> Answer {
    if cx.kit.req.upgrade.is_none() || cx.ctx.consumed {
        cx.conn.shard.pools.put_buf(ubuf);
        let e = ResponseError::Malformed(
            "101 Switching Protocols to a request that did not ask for it",
        );
        return Answer::kind(ErrorKind::UpstreamBadResponse(e));
    }
    let resp_len = cx.kit.resp.len;
    let rest = ubuf.len() - resp_len;
    let kit = &mut *cx.kit;
    let rw = ResponseRewrite {
        extra: &kit.response_headers,
        keep_alive: true,
        client_http10: false,
        dechunk: false,
        body_prefix: rest,
    };
    let resp = &kit.resp;
    let res = cx
        .conn
        .send(&mut kit.g, &mut ubuf, |g| {
            rewrite::response_head(g, resp, &rw)
        })
        .await;
    cx.conn.shard.pools.put_buf(ubuf);
    if res.is_err() {
        cx.ctx
            .fail(GatewayError::new(ErrorKind::ClientGone).context("sending 101"));
        return Answer::Sent(Next::Close);
    }
    cx.kit.buf.consume(request_len);
    cx.ctx.timings.last_byte = clock::now();
    let idle = cx.state.snap.config.http.tunnel_idle_timeout;
    Answer::Sent(Next::Upgrade(Upgraded::from_lease(lease, idle)))
}
