//! Forwarding one request to an upstream and its response back, in order:
//!
//! 1. measure how much of the request body is already in the buffer;
//! 2. lease an upstream connection (pooled or new) from the route's upstream;
//! 3. send the rewritten head and the buffered body in one vectored write;
//! 4. answer `Expect: 100-continue` and stream the rest of the body, if any;
//! 5. read the response head (passing 1xx interim responses through);
//! 6. send the rewritten response head with the body bytes read along with it, stream the rest;
//! 7. return the upstream connection to the pool if the exchange left it clean.
//!
//! A reused connection that fails before any response byte arrives (the upstream closed it while
//! idle) is retried once on a new connection when the request is idempotent and was sent whole
//! from the buffer, so nothing is lost by resending it.
//!
//! Errors before the response head reached the client are answered with their status; after that
//! the client connection is closed (its response is incomplete and must not look complete).

use monoio::io::AsyncReadRent;

use crate::config::{ProxyAction, RouteConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::http::buf::{Buf, StaticBytes};
use crate::http::chunked::ChunkedDecoder;
use crate::http::rewrite::{self, RequestRewrite, ResponseRewrite};
use crate::http::{Framing, Method, parse_response};
use crate::runtime::ShardState;
use crate::runtime::pools::Kit;
use crate::runtime::watchdog::{Shut, now_ms};
use crate::upstream::retry::{self, Failure};
use crate::upstream::{Lease, Outcome, Refusal, request_key};

use super::conn::Conn;
use super::pipeline::{
    Next, Upgraded, client_keep_alive, reply_error, reply_error_with, reply_static_with,
};
use super::relay::{Body, Ends, RelayError, Source, read_short_body, relay, send};

pub async fn forward(
    conn: &mut Conn,
    kit: &mut Kit,
    state: &ShardState,
    route_idx: usize,
    action: &ProxyAction,
    matched: usize,
) -> Next {
    let route: &RouteConfig = &state.snap.config.routes[route_idx];
    // 0. Circuit breaker and concurrency cap (while the breaker is open, the route's fallback
    //    upstream or fallback response serves, if it has one).
    let primary = state.upstreams[action.upstream].clone();
    let (up, permit) = match primary.admit() {
        Ok(p) => (primary, p),
        Err(refusal) => {
            let fallback = action
                .fallback_upstream
                .filter(|_| refusal.error.kind == ErrorKind::CircuitOpen)
                .map(|i| state.upstreams[i].clone());
            match fallback.map(|fb| fb.admit().map(|p| (fb, p))) {
                Some(Ok(x)) => x,
                _ => {
                    let name = &primary.config.name;
                    if let (ErrorKind::CircuitOpen, Some(r)) =
                        (refusal.error.kind, &state.snap.fallbacks[route_idx])
                    {
                        tracing::debug!(upstream = %name, "circuit open: serving the fallback response");
                        let header = format!("x-ringway-breaker: {name}\r\n");
                        return reply_static_with(conn, kit, r, header.as_bytes()).await;
                    }
                    return reply_refused(conn, kit, refusal, name).await;
                }
            }
        }
    };
    let http = &state.snap.config.http;
    let head_len = kit.req.len;

    // 1. The body bytes already read.
    let mut body = match kit.req.framing {
        Framing::Length(n) => Body::Length(n),
        Framing::Chunked => Body::Chunked(ChunkedDecoder::new(http.max_head_size)),
        Framing::None | Framing::Close => Body::Length(0),
    };
    let mut prefix = match body.take(&kit.buf.data()[head_len..], None) {
        Ok(p) => p,
        Err(e) => return reply_error(conn, kit, e.into()).await,
    };
    if body.chunked_data_len() > route.max_body_size {
        return reply_error(conn, kit, GatewayError::new(ErrorKind::BodyTooLarge)).await;
    }
    // A short body still on its way is read first: the request then leaves in one write, and being
    // whole in the buffer, it can be retried. (Not with `Expect: 100-continue`: that client waits.)
    if !kit.req.expect_continue {
        let mut src = Source::client(&mut conn.stream, conn.fd, http);
        let (more, filled) = read_short_body(&mut src, &conn.watch, &mut kit.buf, &mut body).await;
        match filled {
            Ok(()) => prefix += more,
            Err(RelayError::SrcTimeout) => {
                return close_with_error(conn, kit, GatewayError::new(ErrorKind::BodyTimeout))
                    .await;
            }
            Err(_) => return Next::Close,
        }
    }
    let whole = body.is_done();
    let hash = up
        .hash_key()
        .and_then(|k| request_key(k, &kit.req, kit.buf.data(), conn.peer.ip()));
    let retryable = whole && kit.req.method.is_idempotent();

    // Retry policy: a failed try is repeated (on another target, after a backoff) when the upstream
    // has a `retry` table and `retry::decide` agrees; see `upstream::retry`.
    let policy = up.config.retry.as_ref();
    let replayable = whole && (kit.req.method.is_idempotent() || route.retry_non_idempotent);
    let total_deadline = policy
        .and_then(|p| p.total_timeout)
        .map(|t| now_ms() + t.as_millis() as u64);
    if policy.is_some() {
        up.retry_budget.request();
    }
    let retry_after = |failure: Failure, tries: u32| {
        policy.and_then(|p| {
            retry::decide(
                p,
                &up.retry_budget,
                failure,
                tries,
                replayable,
                total_deadline,
            )
        })
    };
    let mut tries = 0u32;
    let mut exclude = None;
    let mut stale_retried = false;
    let (mut lease, ubuf) = loop {
        let try_start = permit.try_started();
        let record = |target: Option<usize>, o: Outcome| permit.record(target, o, try_start);
        // 2. A connection.
        let mut lease = match up.checkout(&conn.watch, hash, exclude).await {
            Ok(l) => l,
            Err((e, failed)) => {
                let connect = matches!(
                    e.kind,
                    ErrorKind::UpstreamConnect | ErrorKind::UpstreamConnectTimeout
                );
                if connect {
                    record(failed, Outcome::Failed);
                }
                if let Some(pause) = connect
                    .then(|| retry_after(Failure::Connect, tries))
                    .flatten()
                {
                    backoff(&up.config.name, pause, Failure::Connect, tries).await;
                    tries += 1;
                    exclude = failed;
                    continue;
                }
                return reply_error(conn, kit, e).await;
            }
        };
        let retry_ok = lease.reused && !stale_retried;
        let up_fd = lease.fd();
        let target = lease.target.index;
        let mut response_timeout = policy
            .and_then(|p| p.per_try_timeout)
            .unwrap_or(up.config.response_timeout)
            .as_millis() as u64;
        if let Some(d) = total_deadline {
            response_timeout = response_timeout.min(d.saturating_sub(now_ms()).max(1));
        }

        // 3. Head and buffered body.
        // The head is laid out during the write, which borrows the lease mutably.
        let upstream_target = lease.target.clone();
        let rw = RequestRewrite {
            client_ip: conn.peer.ip(),
            via: http.via.as_deref(),
            forwarded_headers: http.forwarded_headers,
            path_rewrite: action.rewrite_prefix.as_deref().map(|r| (matched, r)),
            upstream_host: action.upstream_host.as_deref(),
            fallback_host: &upstream_target.name,
            body_prefix: prefix,
        };
        let req = &kit.req;
        let res = send(
            lease.stream(),
            up_fd,
            response_timeout,
            &conn.watch,
            &mut kit.g,
            &mut kit.buf,
            |g| rewrite::request_head(g, req, &rw),
        )
        .await;
        if let Err(e) = res {
            if conn.watch.fired() {
                return reply_error(conn, kit, GatewayError::new(ErrorKind::UpstreamTimeout)).await;
            }
            if retry_ok && whole {
                // Nothing reached the application: the connection was dead before the write.
                tracing::debug!(target = %lease.target.addr, error = %e, "pooled connection was closed; retrying on a new one");
                stale_retried = true;
                continue;
            }
            record(Some(target), Outcome::Failed);
            if let Some(pause) = retry_after(Failure::Reset, tries) {
                drop(lease);
                backoff(&up.config.name, pause, Failure::Reset, tries).await;
                tries += 1;
                exclude = Some(target);
                continue;
            }
            return reply_error(conn, kit, GatewayError::io(ErrorKind::UpstreamReset, &e)).await;
        }

        // 4. The rest of the body.
        if !whole {
            if kit.req.expect_continue && prefix == 0 {
                let (res, _) = {
                    let _armed = conn.watch.arm(
                        conn.fd,
                        Shut::Both,
                        now_ms() + http.body_timeout.as_millis() as u64,
                    );
                    monoio::io::AsyncWriteRentExt::write_all(
                        &mut conn.stream,
                        StaticBytes(b"HTTP/1.1 100 Continue\r\n\r\n"),
                    )
                    .await
                };
                if res.is_err() {
                    return Next::Close;
                }
            }
            kit.buf.consume(head_len + prefix);
            let ends = Ends {
                src: Source::client(&mut conn.stream, conn.fd, http),
                dst: lease.stream(),
                dst_fd: up_fd,
                dst_timeout_ms: response_timeout,
            };
            if let Err(e) = relay(
                ends,
                &mut kit.buf,
                &mut kit.g,
                &mut body,
                &conn.watch,
                false,
                route.max_body_size,
            )
            .await
            {
                let err = match e {
                    RelayError::SrcTimeout => GatewayError::new(ErrorKind::BodyTimeout),
                    RelayError::SrcClosed | RelayError::SrcIo(_) => return Next::Close,
                    RelayError::Chunk(c) => c.into(),
                    RelayError::TooLarge => GatewayError::new(ErrorKind::BodyTooLarge),
                    RelayError::DstTimeout => GatewayError::new(ErrorKind::UpstreamTimeout),
                    RelayError::DstIo(e) => GatewayError::io(ErrorKind::UpstreamReset, &e),
                };
                return close_with_error(conn, kit, err).await;
            }
        }

        // 5. The response head.
        let mut ubuf = conn.shard.pools.buf();
        match read_response_head(conn, kit, &mut lease, &mut ubuf, response_timeout).await {
            Ok(()) => {
                let status = kit.resp.status;
                record(Some(target), Outcome::Status(status));
                if let Some(pause) = policy
                    .filter(|p| p.statuses.contains(&status))
                    .and_then(|_| retry_after(Failure::Status(status), tries))
                {
                    // Not forwarded: this connection's response is abandoned, so it is closed.
                    conn.shard.pools.put_buf(ubuf);
                    drop(lease);
                    backoff(&up.config.name, pause, Failure::Status(status), tries).await;
                    tries += 1;
                    exclude = Some(target);
                    continue;
                }
                break (lease, ubuf);
            }
            Err((e, got_bytes)) => {
                conn.shard.pools.put_buf(ubuf);
                if e.kind == ErrorKind::UpstreamReset && !got_bytes && retry_ok && retryable {
                    tracing::debug!(target = %lease.target.addr, "pooled connection closed before responding; retrying on a new one");
                    stale_retried = true;
                    continue;
                }
                record(Some(target), Outcome::Failed);
                let failure = match e.kind {
                    ErrorKind::UpstreamTimeout => Some(Failure::Timeout),
                    ErrorKind::UpstreamReset => Some(Failure::Reset),
                    _ => None,
                };
                if let Some(pause) = failure.and_then(|f| retry_after(f, tries)) {
                    drop(lease);
                    backoff(
                        &up.config.name,
                        pause,
                        failure.unwrap_or(Failure::Reset),
                        tries,
                    )
                    .await;
                    tries += 1;
                    exclude = Some(target);
                    continue;
                }
                if !whole {
                    return close_with_error(conn, kit, e).await;
                }
                return reply_error(conn, kit, e).await;
            }
        }
    };

    // 6. The response.
    let resp = &kit.resp;
    if resp.status == 101 {
        return switch_protocols(
            conn,
            kit,
            lease,
            ubuf,
            whole,
            head_len + prefix,
            http.tunnel_idle_timeout,
        )
        .await;
    }
    let framing = resp.framing.0;
    let dechunk = kit.req.http10 && framing == Framing::Chunked;
    let keep = client_keep_alive(conn, kit) && framing != Framing::Close && !dechunk;
    let mut rbody = match framing {
        Framing::None => Body::Length(0),
        Framing::Length(n) => Body::Length(n),
        Framing::Chunked => Body::Chunked(ChunkedDecoder::new(ubuf.capacity())),
        Framing::Close => Body::Close,
    };
    let resp_len = resp.len;
    let mut ranges = Vec::new();
    let after_head = &ubuf.data()[resp_len..];
    let body_prefix = match rbody.take(after_head, dechunk.then_some(&mut ranges)) {
        Ok(n) => n,
        Err(e) => {
            let err = GatewayError::new(ErrorKind::UpstreamBadResponse(
                crate::http::ResponseError::BadFraming(e.reason()),
            ));
            conn.shard.pools.put_buf(ubuf);
            return reply_error(conn, kit, err).await;
        }
    };
    // A short body still on its way is awaited, so that head and body leave in one write.
    // The same source then feeds the relay of the rest, if any.
    let mut ubuf = ubuf;
    let upstream_addr = lease.target.addr;
    let up_fd = lease.fd();
    let mut src = Source {
        stream: lease.stream(),
        fd: up_fd,
        timeout_ms: up.config.read_timeout.as_millis() as u64,
        shut: Shut::Both,
    };
    let (more, filled) = read_short_body(&mut src, &conn.watch, &mut ubuf, &mut rbody).await;
    let body_prefix = body_prefix + more;
    let rw = ResponseRewrite {
        extra: &kit.limit_headers,
        keep_alive: keep,
        client_http10: kit.req.http10,
        dechunk,
        body_prefix: if dechunk { 0 } else { body_prefix },
    };
    let client_timeout = http.body_timeout.as_millis() as u64;
    let resp = &kit.resp;
    let res = conn
        .send(&mut kit.g, &mut ubuf, |g| {
            rewrite::response_head(g, resp, &rw);
            for &(s, e) in &ranges {
                g.push_main(resp_len + s, resp_len + e);
            }
        })
        .await;
    let status = kit.resp.status;
    let upstream_close = kit.resp.close;
    if res.is_err() {
        conn.shard.pools.put_buf(ubuf);
        return Next::Close;
    }
    ubuf.consume(resp_len + body_prefix);
    let relayed = match filled {
        Ok(()) if !rbody.is_done() => {
            let ends = Ends {
                src,
                dst: &mut conn.stream,
                dst_fd: conn.fd,
                dst_timeout_ms: client_timeout,
            };
            relay(
                ends,
                &mut ubuf,
                &mut kit.g,
                &mut rbody,
                &conn.watch,
                dechunk,
                u64::MAX,
            )
            .await
        }
        other => other,
    };
    if let Err(e) = relayed {
        if !matches!(rbody, Body::Close) {
            tracing::warn!(peer = %conn.peer, target = %upstream_addr, status, error = ?e, "response body relay failed; closing the client connection");
        }
        conn.shard.pools.put_buf(ubuf);
        return Next::Close;
    }

    // 7. Clean-up.
    let reusable = !upstream_close && ubuf.is_empty() && rbody.is_done();
    lease.release(reusable, now_ms());
    conn.shard.pools.put_buf(ubuf);
    if whole {
        kit.buf.consume(head_len + prefix);
    }
    tracing::trace!(peer = %conn.peer, status, "proxied");
    if keep { Next::KeepAlive } else { Next::Close }
}

/// Answers a request the breaker or the concurrency cap refused: 503 with `Retry-After` and the
/// breaker's name.
async fn reply_refused(conn: &mut Conn, kit: &mut Kit, refusal: Refusal, upstream: &str) -> Next {
    let secs = refusal.retry_after_ms.div_ceil(1000).max(1);
    let headers = format!("retry-after: {secs}\r\nx-ringway-breaker: {upstream}\r\n");
    reply_error_with(conn, kit, refusal.error, headers.as_bytes()).await
}

/// Waits out a retry's backoff.
async fn backoff(upstream: &str, pause: std::time::Duration, failure: Failure, tries: u32) {
    tracing::debug!(
        upstream,
        ?failure,
        retry = tries + 1,
        pause_ms = pause.as_millis() as u64,
        "retrying"
    );
    if !pause.is_zero() {
        // Boxed for the reason given at `upstream::wait_for_slot`: keep the request future's
        // alignment at 8.
        Box::pin(monoio::time::sleep(pause)).await;
    }
}

/// Reads the response head into `ubuf`/`kit.resp`, forwarding interim (1xx, not 101) responses to the
/// client. The error carries whether any response byte was received (retry decision).
async fn read_response_head(
    conn: &mut Conn,
    kit: &mut Kit,
    lease: &mut Lease,
    ubuf: &mut Buf,
    timeout_ms: u64,
) -> Result<(), (GatewayError, bool)> {
    let up_fd = lease.fd();
    let head_request = kit.req.method == Method::Head;
    let deadline = now_ms() + timeout_ms;
    let mut got_bytes = false;
    loop {
        if !ubuf.is_empty() {
            match parse_response(ubuf.data(), head_request, &mut kit.resp) {
                Ok(Some(())) => {
                    if kit.resp.is_interim() && kit.resp.status != 101 {
                        let len = kit.resp.len;
                        if !kit.req.http10 {
                            relay_interim(conn, kit, ubuf, len)
                                .await
                                .map_err(|e| (e, true))?;
                        }
                        ubuf.consume(len);
                        continue;
                    }
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => return Err((GatewayError::new(ErrorKind::UpstreamBadResponse(e)), true)),
            }
        }
        if !ubuf.make_room(ubuf.capacity()) {
            let e = crate::http::ResponseError::TooLarge;
            return Err((GatewayError::new(ErrorKind::UpstreamBadResponse(e)), true));
        }
        let b = std::mem::take(ubuf);
        let (res, b) = {
            let _armed = conn.watch.arm(up_fd, Shut::Both, deadline);
            lease.stream().read(b).await
        };
        *ubuf = b;
        match res {
            Ok(n) if n > 0 => got_bytes = true,
            Ok(_) | Err(_) if conn.watch.fired() => {
                return Err((GatewayError::new(ErrorKind::UpstreamTimeout), got_bytes));
            }
            Ok(_) => return Err((GatewayError::new(ErrorKind::UpstreamReset), got_bytes)),
            Err(e) => return Err((GatewayError::io(ErrorKind::UpstreamReset, &e), got_bytes)),
        }
    }
}

/// Passes a 1xx interim response head to the client unchanged.
async fn relay_interim(
    conn: &mut Conn,
    kit: &mut Kit,
    ubuf: &mut Buf,
    len: usize,
) -> Result<(), GatewayError> {
    conn.send(&mut kit.g, ubuf, |g| {
        g.reset();
        g.push_main(0, len);
    })
    .await
    .map_err(|_| GatewayError::new(ErrorKind::ClientGone))
}

/// 101 from upstream: forward it, then hand both sockets to the tunnel.
#[allow(clippy::too_many_arguments)]
async fn switch_protocols(
    conn: &mut Conn,
    kit: &mut Kit,
    lease: Lease,
    ubuf: Buf,
    whole: bool,
    request_len: usize,
    idle_timeout: std::time::Duration,
) -> Next {
    if kit.req.upgrade.is_none() || !whole {
        conn.shard.pools.put_buf(ubuf);
        let e = crate::http::ResponseError::Malformed(
            "101 Switching Protocols to a request that did not ask for it",
        );
        return reply_error(
            conn,
            kit,
            GatewayError::new(ErrorKind::UpstreamBadResponse(e)),
        )
        .await;
    }
    let resp_len = kit.resp.len;
    let rest = ubuf.len() - resp_len;
    let rw = ResponseRewrite {
        extra: &kit.limit_headers,
        keep_alive: true,
        client_http10: false,
        dechunk: false,
        body_prefix: rest,
    };
    let mut ubuf = ubuf;
    let resp = &kit.resp;
    let res = conn
        .send(&mut kit.g, &mut ubuf, |g| {
            rewrite::response_head(g, resp, &rw)
        })
        .await;
    conn.shard.pools.put_buf(ubuf);
    if res.is_err() {
        return Next::Close;
    }
    kit.buf.consume(request_len);
    Next::Upgrade(Upgraded::from_lease(lease, idle_timeout))
}

/// Answers an error after the request body was partly consumed: the connection cannot be reused.
async fn close_with_error(conn: &mut Conn, kit: &mut Kit, e: GatewayError) -> Next {
    kit.req.close = true;
    kit.req.framing = Framing::Chunked; // whatever is left of the body is unread: never keep alive
    let _ = reply_error(conn, kit, e).await;
    Next::Close
}
