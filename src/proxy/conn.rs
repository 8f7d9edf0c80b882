//! A client connection: read a request head, serve it, repeat while keep-alive allows.
//!
//! Reading a head: the connection's buffer is lent to the kernel for each read and parsed in place.
//! Deadlines come from the shard watchdog: `header_timeout` for the first request and for a head
//! that has started arriving (fixed from its first byte, so a slowloris client cannot extend it),
//! `keepalive_timeout` between requests. A late head gets 408; an idle keep-alive connection is
//! closed silently.
//!
//! Idle memory: a connection waiting for its next request keeps its buffer only for
//! `idle_buffer_release`. Then the watchdog cancels the read, the kit (buffer, heads, gather list)
//! goes back to the shard, and the connection waits for readability with no buffer at all. Busy
//! connections never hit this path, so the hot path stays one receive per request.
//!
//! Errors: every refused head is answered with its status and JSON body, then the connection closes.
//! Nothing read from the network can panic this code; a bug that panics is contained to this
//! connection by [`CatchUnwind`].

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use monoio::io::{AsyncReadRent, CancelableAsyncReadRent};
use monoio::net::TcpStream;

use super::pipeline::{self, Next};
use super::tunnel;
use crate::error::{ErrorKind, GatewayError};
use crate::http::request::{early_uri_too_long, incomplete_error};
use crate::http::{Limits, parse_request};
use crate::runtime::Shard;
use crate::runtime::pools::Kit;
use crate::runtime::watchdog::{Shut, Watch, now_ms};

/// One client connection's state, owned by its task.
pub struct Conn {
    pub shard: Rc<Shard>,
    pub stream: TcpStream,
    pub fd: RawFd,
    pub peer: SocketAddr,
    pub watch: Rc<Watch>,
    /// Requests served so far.
    pub served: u64,
}

/// Outcome of waiting for a request head.
enum HeadRead {
    Ready,
    Closed,
}

/// Task body for an accepted connection.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let guard = shard.watchdog.register(stream.as_raw_fd());
    let shard2 = shard.clone();
    let result = CatchUnwind(serve_inner(shard, stream, peer, guard.watch.clone())).await;
    if result.is_err() {
        tracing::error!(%peer, "connection task panicked; connection closed");
    }
    // The connection (and its socket) is gone by now; unregister, then let accept go on.
    drop(guard);
    shard2.connection_closed();
}

async fn serve_inner(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr, watch: Rc<Watch>) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let mut conn = Conn { shard, stream, fd, peer, watch, served: 0 };
    let mut slot: Option<Box<Kit>> = None;
    loop {
        match read_head(&mut conn, &mut slot).await {
            Ok(HeadRead::Ready) => {}
            Ok(HeadRead::Closed) => break,
            Err(e) => {
                if let Some(kit) = slot.as_mut() {
                    pipeline::refuse_head(&mut conn, kit, e).await;
                }
                break;
            }
        }
        let Some(kit) = slot.as_mut() else { break };
        conn.served += 1;
        match pipeline::handle(&mut conn, kit).await {
            Next::KeepAlive => {}
            Next::Close => break,
            Next::Upgrade(up) => {
                let Some(kit) = slot.take() else { break };
                tunnel::run(conn, kit, up).await;
                return;
            }
        }
    }
    if let Some(mut kit) = slot.take() {
        kit.buf.clear();
        conn.shard.pools.put_kit(kit);
    }
}

/// Waits for a complete request head in the kit's buffer (taking a kit from the shard if the
/// connection has none). `Ready` guarantees `slot` is `Some`.
async fn read_head(conn: &mut Conn, slot: &mut Option<Box<Kit>>) -> Result<HeadRead, GatewayError> {
    let state = conn.shard.state();
    let http = &state.snap.config.http;
    let limits = Limits { max_head: http.max_head_size, max_headers: http.max_headers, max_uri: http.max_uri_size };
    let first = conn.served == 0;
    let mut head_deadline = if first { now_ms() + http.header_timeout.as_millis() as u64 } else { 0 };
    loop {
        let kit = slot.get_or_insert_with(|| conn.shard.pools.kit());
        if !kit.buf.is_empty() {
            match parse_request(kit.buf.data(), &limits, &mut kit.req) {
                Ok(Some(())) => return Ok(HeadRead::Ready),
                Ok(None) => {
                    if kit.buf.len() >= limits.max_head {
                        return Err(incomplete_error(kit.buf.data(), &limits).into());
                    }
                    if early_uri_too_long(kit.buf.data(), &limits) {
                        return Err(GatewayError::from(crate::http::HeadError::UriTooLong));
                    }
                }
                Err(e) => return Err(e.into()),
            }
            if head_deadline == 0 {
                head_deadline = now_ms() + http.header_timeout.as_millis() as u64;
            }
        }
        if !kit.buf.make_room(limits.max_head) {
            return Err(incomplete_error(kit.buf.data(), &limits).into());
        }
        let idle = kit.buf.is_empty();
        // Between requests on a kept-alive connection the keep-alive timeout applies and expiry is a
        // silent close; otherwise the head deadline applies and expiry is a 408.
        let between = idle && !first;
        let (deadline, how) = if between {
            (now_ms() + http.keepalive_timeout.as_millis() as u64, Shut::Both)
        } else {
            (head_deadline, Shut::Read)
        };
        if between && http.keepalive_timeout.is_zero() {
            return Ok(HeadRead::Closed);
        }
        let park = idle && !http.idle_buffer_release.is_zero();
        let buf = std::mem::take(&mut kit.buf);
        let (res, buf) = {
            let _armed = conn.watch.arm(conn.fd, how, deadline);
            conn.watch.set_idle(between);
            let r = if park {
                conn.watch.set_park(now_ms() + http.idle_buffer_release.as_millis() as u64);
                let handle = conn.watch.cancel_handle();
                conn.stream.cancelable_read(buf, handle).await
            } else {
                conn.stream.read(buf).await
            };
            conn.watch.set_park(0);
            conn.watch.set_idle(false);
            r
        };
        kit.buf = buf;
        match res {
            Ok(0) => return closed_or_timeout(conn, idle, between),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) && !conn.watch.fired() => {
                // Parked: give the kit back and wait for the next bytes without a buffer.
                if let Some(mut kit) = slot.take() {
                    kit.buf.clear();
                    conn.shard.pools.put_kit(kit);
                }
                let ready = {
                    let _armed = conn.watch.arm(conn.fd, how, deadline);
                    conn.watch.set_idle(between);
                    let r = conn.stream.readable(false).await;
                    conn.watch.set_idle(false);
                    r
                };
                if conn.watch.fired() {
                    return closed_or_timeout(conn, idle, between);
                }
                if ready.is_err() {
                    return Ok(HeadRead::Closed);
                }
            }
            Err(_) => return closed_or_timeout(conn, idle, between),
        }
    }
}

/// Maps the end of a head read (EOF, error or fired deadline) to the outcome.
fn closed_or_timeout(conn: &Conn, idle: bool, between: bool) -> Result<HeadRead, GatewayError> {
    if conn.watch.fired() && !between && !conn.shard.draining() {
        return Err(GatewayError::new(ErrorKind::HeaderTimeout));
    }
    if !idle {
        tracing::debug!(peer = %conn.peer, "client closed the connection during a request head");
    }
    Ok(HeadRead::Closed)
}

/// Runs a future, turning a panic inside it into `Err` so one connection's bug cannot take the shard
/// down.
struct CatchUnwind<F>(F);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Safety: structural pinning of the only field; it is never moved out.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
