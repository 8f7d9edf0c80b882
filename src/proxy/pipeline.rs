//! The per-request orchestrator. It reads top to bottom as the request's life:
//!
//! 1. route the request (host → path → method) in the snapshot's compiled table;
//! 2. check the route's limits (body size);
//! 3. rate and concurrency limits of the route (`crate::limit`): 429 when one refuses;
//! 4. answer from a static route, or forward to the route's upstream ([`super::forward`]), whose
//!    circuit breaker and concurrency cap come first;
//! 5. decide whether the client connection stays open.
//!
//! Every failure becomes a [`GatewayError`] and is answered here, by [`reply_error`], with the status
//! and JSON body from `crate::error`, an `x-request-id`, and a log line.
//!
//! Later policy stages (auth, subscriptions) slot in before 3 with the same shape.

use crate::config::{RouteAction, RouteConfig};
use crate::error::{ErrorKind, GatewayError, Side};
use crate::http::respond::{self, Reply};
use crate::http::{Framing, HeadError};
use crate::route::{Lookup, has_dot_segment};
use crate::runtime::pools::Kit;
use crate::upstream::{Lease, SlotGuard};

use super::conn::Conn;
use super::forward;

/// What the connection does after a request.
pub enum Next {
    KeepAlive,
    Close,
    /// The upstream switched protocols: tunnel bytes both ways.
    Upgrade(Upgraded),
}

/// The upstream side of a switched connection.
pub struct Upgraded {
    pub stream: monoio::net::TcpStream,
    pub slot: SlotGuard,
    pub idle_timeout: std::time::Duration,
}

impl Upgraded {
    pub fn from_lease(lease: Lease, idle_timeout: std::time::Duration) -> Upgraded {
        let (stream, slot) = lease.into_stream();
        Upgraded {
            stream,
            slot,
            idle_timeout,
        }
    }
}

/// Serves one parsed request.
pub async fn handle(conn: &mut Conn, kit: &mut Kit) -> Next {
    let state = conn.shard.state();
    kit.limit_headers.clear();
    let data = kit.buf.data();
    let req = &kit.req;

    // 1. Route.
    let path = req.path.of(data);
    if has_dot_segment(path) {
        return reply_error(conn, kit, GatewayError::new(ErrorKind::BadPath)).await;
    }
    let host = req.host_name.map_or(&b""[..], |h| h.of(data));
    let (route_idx, matched) = match state.snap.routes.lookup_name(host, path, req.method) {
        Lookup::Found { route, matched } => (route, matched),
        Lookup::MethodNotAllowed => {
            return reply_error(conn, kit, GatewayError::new(ErrorKind::MethodNotAllowed)).await;
        }
        Lookup::NotFound => {
            return reply_error(conn, kit, GatewayError::new(ErrorKind::RouteNotFound)).await;
        }
    };
    let route: &RouteConfig = &state.snap.config.routes[route_idx];

    // 2. Limits.
    if let Framing::Length(n) = req.framing {
        if n > route.max_body_size {
            return reply_error(conn, kit, GatewayError::new(ErrorKind::BodyTooLarge)).await;
        }
    }

    // 3. Rate and concurrency limits; the guard holds the request's concurrency slots.
    let _limits = match &state.limits[route_idx] {
        None => None,
        Some(l) => {
            let now = crate::limit::clock_ns();
            match l.check(req, data, conn.peer.ip(), now, &mut kit.limit_headers) {
                Ok(guard) => Some(guard),
                Err(refused) => {
                    let headers = format!("retry-after: {}\r\n", refused.retry_after_s);
                    let e = GatewayError::new(refused.kind);
                    return reply_error_with(conn, kit, e, headers.as_bytes()).await;
                }
            }
        }
    };

    // 4. Answer.
    match &route.action {
        RouteAction::Respond(_) => match &state.snap.statics[route_idx] {
            Some(r) => reply_static(conn, kit, r).await,
            None => reply_error(conn, kit, GatewayError::new(ErrorKind::RouteNotFound)).await,
        },
        RouteAction::Proxy(action) => {
            forward::forward(conn, kit, &state, route_idx, action, matched).await
        }
    }
}

/// Whether the client connection may stay open after a response to `kit.req` (before knowing the
/// response itself).
pub fn client_keep_alive(conn: &Conn, kit: &Kit) -> bool {
    let state = conn.shard.state();
    let max = state.snap.config.http.keepalive_requests;
    !kit.req.close && !conn.shard.draining() && (max == 0 || conn.served < max)
}

/// Bytes of the request (head and body) already in the buffer, if the whole request is there.
fn whole_request_len(kit: &Kit) -> Option<usize> {
    let have = kit.buf.len();
    match kit.req.framing {
        Framing::None => Some(kit.req.len),
        Framing::Length(n) => {
            let total = kit.req.len as u64 + n;
            (total <= have as u64).then_some(total as usize)
        }
        Framing::Chunked | Framing::Close => None,
    }
}

/// Answers a static route.
async fn reply_static(conn: &mut Conn, kit: &mut Kit, r: &respond::RenderedStatic) -> Next {
    reply_static_with(conn, kit, r, b"").await
}

/// A static response with extra header lines (the route's RateLimit-* fields are added too).
pub async fn reply_static_with(
    conn: &mut Conn,
    kit: &mut Kit,
    r: &respond::RenderedStatic,
    headers: &[u8],
) -> Next {
    let whole = whole_request_len(kit);
    let keep = client_keep_alive(conn, kit) && whole.is_some();
    let reply = Reply {
        close: !keep,
        keep_alive_10: kit.req.keep_alive_10,
        head_only: kit.req.method == crate::http::Method::Head,
    };
    let extra = [headers, &kit.limit_headers].concat();
    r.render(&mut kit.g, reply, &extra);
    if !write_reply(conn, kit).await {
        return Next::Close;
    }
    tracing::trace!(peer = %conn.peer, status = r.status(), "static response");
    finish(kit, whole, keep)
}

/// Answers `e` for the current request (parsed head in `kit.req`).
pub async fn reply_error(conn: &mut Conn, kit: &mut Kit, e: GatewayError) -> Next {
    reply_error_with(conn, kit, e, b"").await
}

/// [`reply_error`] with extra header lines (`"name: value\r\n"`).
pub async fn reply_error_with(
    conn: &mut Conn,
    kit: &mut Kit,
    e: GatewayError,
    headers: &[u8],
) -> Next {
    let whole = whole_request_len(kit);
    let keep = client_keep_alive(conn, kit) && whole.is_some() && e.kind != ErrorKind::BadPath;
    let mut id = [0u8; 24];
    let req_id: &[u8] = match kit.req.request_id {
        Some(s) => s.of(kit.buf.data()),
        None => {
            conn.shard.request_id(&mut id);
            &id
        }
    };
    log_error(conn, &e, req_id);
    let mut extra = Vec::with_capacity(headers.len() + kit.limit_headers.len());
    if e.kind == ErrorKind::MethodNotAllowed || e.kind == ErrorKind::Head(HeadError::Connect) {
        extra.extend_from_slice(b"allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n");
    } else {
        extra.extend_from_slice(headers);
    }
    extra.extend_from_slice(&kit.limit_headers);
    let req_id = req_id.to_vec();
    let reply = Reply {
        close: !keep,
        keep_alive_10: kit.req.keep_alive_10,
        head_only: kit.req.method == crate::http::Method::Head,
    };
    respond::error(
        &mut kit.g,
        e.status(),
        e.code(),
        e.message(),
        &req_id,
        &extra,
        reply,
    );
    if !write_reply(conn, kit).await {
        return Next::Close;
    }
    finish(kit, whole, keep)
}

/// Answers a head that could not be parsed; the connection closes afterwards.
pub async fn refuse_head(conn: &mut Conn, kit: &mut Kit, e: GatewayError) {
    let mut id = [0u8; 24];
    conn.shard.request_id(&mut id);
    log_error(conn, &e, &id);
    let reply = Reply {
        close: true,
        keep_alive_10: false,
        head_only: false,
    };
    respond::error(
        &mut kit.g,
        e.status(),
        e.code(),
        e.message(),
        &id,
        b"",
        reply,
    );
    write_reply(conn, kit).await;
    kit.buf.clear();
}

/// Writes the reply already laid out in `kit.g` to the client under the body timeout.
async fn write_reply(conn: &mut Conn, kit: &mut Kit) -> bool {
    conn.send(&mut kit.g, &mut kit.buf, |_| {}).await.is_ok()
}

/// Consumes the request from the buffer when the connection stays open.
fn finish(kit: &mut Kit, whole: Option<usize>, keep: bool) -> Next {
    match (keep, whole) {
        (true, Some(n)) => {
            kit.buf.consume(n);
            Next::KeepAlive
        }
        _ => Next::Close,
    }
}

/// Logs an answered error. Refusals by a policy (breaker, caps, rate limits) are expected under
/// load and can come at the full request rate, so they are logged at debug; the policy logs its
/// own state changes (a breaker opening, a target ejected) at warn.
pub fn log_error(conn: &Conn, e: &GatewayError, request_id: &[u8]) {
    let rid = String::from_utf8_lossy(request_id);
    if e.is_policy_refusal() {
        tracing::debug!(peer = %conn.peer, request_id = %rid, status = e.status(), code = e.code(), "{}", e.message());
        return;
    }
    match e.side() {
        Side::Upstream | Side::Gateway => {
            tracing::warn!(peer = %conn.peer, request_id = %rid, status = e.status(), code = e.code(), io = ?e.io, "{}", e.message())
        }
        Side::Client => {
            tracing::info!(peer = %conn.peer, request_id = %rid, status = e.status(), code = e.code(), io = ?e.io, "{}", e.message())
        }
    }
}
