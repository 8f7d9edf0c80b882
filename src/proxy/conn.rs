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

use crate::tls::{ClientStream, TlsStream};

use super::answer::{self, Answer};
use super::chain::{self, Cx, Next, Upgraded};
use super::ctx::RequestCtx;
use super::finish::{Seen, capture_head, finish};
use super::{relay, tunnel};
use crate::error::{ErrorKind, GatewayError};
use crate::http::buf::{Buf, Gather};
use crate::http::request::{early_uri_too_long, incomplete_error};
use crate::http::{Limits, parse_request};
use crate::observe::clock;
use crate::runtime::pools::Kit;
use crate::runtime::watchdog::{Shut, Watch, WatchGuard, now_ms};
use crate::state::ShardCtx;

/// One client connection's state, owned by its task.
pub struct Conn {
    pub shard: Rc<ShardCtx>,
    pub stream: ClientStream,
    pub fd: RawFd,
    pub peer: SocketAddr,
    pub watch: Rc<Watch>,
    /// Requests served so far.
    pub served: u64,
    /// When the connection was accepted ([`clock::now`]).
    pub accepted: u64,
    /// Deadline of the request head being waited for (0 = none yet).
    head_deadline: u64,
    /// The head deadline passed while the connection was parked: answer 408.
    head_timed_out: bool,
    /// The connection ends with part of a request unread: close it lingering (see [`linger`]).
    pub linger: bool,
}

impl Conn {
    /// Writes what `layout` lays out in `g` (over `buf`) to the client, under the body timeout.
    pub async fn send(
        &mut self,
        g: &mut Gather,
        buf: &mut Buf,
        layout: impl FnOnce(&mut Gather),
    ) -> std::io::Result<()> {
        let timeout = self.shard.state().snap.config.http.body_timeout.as_millis() as u64;
        relay::send(
            &mut self.stream,
            self.fd,
            timeout,
            &self.watch,
            g,
            buf,
            layout,
        )
        .await
    }
}

/// Outcome of waiting for a request head.
enum HeadRead {
    Ready,
    Closed,
    /// The client closed the connection with part of a head sent: a request that ends unanswered.
    Abandoned,
    /// Idle long enough to give the buffer back: wait for readability without one.
    Parked(Parked),
}

struct Parked {
    deadline: u64,
    how: Shut,
    /// Between requests (expiry closes silently) rather than before the first one (expiry is a 408).
    between: bool,
}

/// What the connection does after one turn of [`serve_one`].
enum Step {
    KeepAlive,
    Close,
    Park(Parked),
    /// Boxed: rare, and it would otherwise widen every connection's task.
    Upgrade(Box<(Box<Kit>, Upgraded)>),
}

/// The task for an accepted connection; `tls`: it came from a TLS listener.
pub fn serve(
    shard: Rc<ShardCtx>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: bool,
) -> impl Future<Output = ()> {
    let fd = stream.as_raw_fd();
    let guard = shard.watchdog.register(fd);
    let _ = stream.set_nodelay(true);
    let watch = guard.watch.clone();
    let conn = Conn {
        shard,
        stream: ClientStream::Plain(stream),
        fd,
        peer,
        watch,
        served: 0,
        accepted: clock::now(),
        head_deadline: 0,
        head_timed_out: false,
        linger: false,
    };
    // One argument, so the future does not carry the parts and the assembled `Conn` side by side.
    let inner = serve_inner(guard, conn, tls);
    static SIZE_LOGGED: std::sync::Once = std::sync::Once::new();
    SIZE_LOGGED.call_once(|| {
        tracing::debug!(
            bytes = std::mem::size_of_val(&inner),
            "connection task future size"
        )
    });
    CatchUnwind { inner, done: false }
}

/// The connection loop. Reading and serving a request run in a boxed future of their own (one
/// allocation per request, a free-list pop in the allocator's thread cache), so this task stays a
/// few hundred bytes while the connection idles: the parked wait below is all it holds then.
async fn serve_inner(guard: WatchGuard, mut conn: Conn, tls: bool) {
    // The rare parts of a connection's life (the TLS handshake, a TLS close, a lingering close)
    // run in boxed futures of their own: inline, their state would widen every connection's task
    // for its whole life (512 → 1,328 bytes measured), idle ones included.
    if tls {
        match Box::pin(handshake(conn)).await {
            Some(c) => conn = c,
            None => {
                // The socket is closed already; unregister in the same synchronous step.
                drop(guard);
                return;
            }
        }
    }
    let mut slot: Option<Box<Kit>> = None;
    loop {
        // Written into its allocation rather than moved there: `Box::pin(fut)` copied the whole
        // ~2.9 KiB future per request although only its two arguments are set before the first poll.
        let fut = Box::write(Box::new_uninit(), serve_one(&mut conn, &mut slot));
        // Every test request passes here: a monoio timer held inline anywhere on the request path
        // would make this 128 (see `upstream::wait_for_slot`) and the allocation above slow.
        debug_assert!(
            std::mem::align_of_val(&*fut) <= 16,
            "the request future is over-aligned"
        );
        match Box::into_pin(fut).await {
            Step::KeepAlive => {}
            Step::Close => break,
            Step::Park(p) => {
                let ready = {
                    let _armed = conn.watch.arm(conn.fd, p.how, p.deadline);
                    conn.watch.set_idle(p.between);
                    let r = conn.stream.readable(false).await;
                    conn.watch.set_idle(false);
                    r
                };
                if conn.watch.fired() {
                    if p.between || conn.shard.draining() {
                        break;
                    }
                    conn.head_timed_out = true;
                } else if ready.is_err() {
                    break;
                }
            }
            Step::Upgrade(up) => {
                let (kit, up) = *up;
                Box::pin(tunnel::run(conn, kit, up)).await;
                drop(guard);
                return;
            }
        }
    }
    if let Some(mut kit) = slot.take() {
        kit.buf.clear();
        conn.shard.pools.put_kit(kit);
    }
    // A TLS connection ends with close_notify, so a client can tell a complete close-delimited
    // response from a truncated one (bounded: a peer that does not read gets a second).
    if conn.stream.is_tls() {
        let _armed = conn.watch.arm(conn.fd, Shut::Both, now_ms() + 1000);
        let _ = Box::pin(monoio::io::AsyncWriteRent::shutdown(&mut conn.stream)).await;
    }
    if conn.linger {
        Box::pin(linger(&mut conn)).await;
    }
    // The socket closes and the watch unregisters in one synchronous step (no await between), so the
    // watchdog can never shut a reused fd number.
    drop(conn);
    drop(guard);
}

/// Longest a closing connection keeps reading what its client still sends (see [`linger`]).
const LINGER_MS: u64 = 2000;

/// Closes "lingering" after an answer that left part of the request unread (a 413 before the
/// body, an upstream's early answer, a refused head with more bytes behind it): stop writing, then
/// read and drop what the client still sends until it closes or [`LINGER_MS`] pass. Closing at once
/// would make the kernel answer the client's further bytes with a reset, which some clients' stacks
/// take as licence to discard the answer they have not read yet (RFC 9112 §9.6; nginx's
/// `lingering_close`).
async fn linger(conn: &mut Conn) {
    if !conn.stream.is_tls() {
        // Safety: the fd is this connection's, open until `conn` drops. (A TLS stream's shutdown,
        // just before, did this after its close_notify.)
        unsafe { libc::shutdown(conn.fd, libc::SHUT_WR) };
    }
    let deadline = now_ms() + LINGER_MS;
    // A small buffer of its own, not a pooled one: what is read is dropped, and many connections
    // lingering at once (a flood of slow heads) must not hold a full buffer each.
    let mut buf: Vec<u8> = Vec::with_capacity(LINGER_BUF);
    loop {
        buf.clear();
        let (res, b) = {
            let _armed = conn.watch.arm(conn.fd, Shut::Both, deadline);
            conn.stream.read(buf).await
        };
        buf = b;
        match res {
            Ok(n) if n > 0 && !conn.watch.fired() => {}
            _ => break,
        }
    }
}

/// Bytes read at a time while lingering.
const LINGER_BUF: usize = 2048;

/// Runs the TLS handshake of a connection from a TLS listener, under the header timeout (a client
/// that never completes it holds nothing for long). `None`: the connection ended (and is closed).
async fn handshake(conn: Conn) -> Option<Conn> {
    let (server, header_ms) = {
        let state = conn.shard.state();
        let snap = &state.snap;
        (
            snap.config.tls.as_ref().map(|t| t.server.clone()),
            snap.config.http.header_timeout.as_millis() as u64,
        )
    };
    let Some(server) = server else {
        // TLS left the config in a reload; its listener stays until a restart.
        tracing::debug!(peer = %conn.peer, "TLS is no longer configured; connection closed");
        return None;
    };
    let session = match rustls::ServerConnection::new(server) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(peer = %conn.peer, error = %e, "cannot start a TLS session");
            return None;
        }
    };
    let Conn {
        shard,
        stream,
        fd,
        peer,
        watch,
        served,
        accepted,
        head_deadline,
        head_timed_out,
        linger,
    } = conn;
    let ClientStream::Plain(tcp) = stream else {
        return None;
    };
    let mut tls = Box::new(TlsStream::new(tcp, session));
    let res = {
        let _armed = watch.arm(fd, Shut::Both, now_ms() + header_ms);
        tls.handshake().await
    };
    if let Err(e) = res {
        crate::observe::metrics::add(&shard.metrics.tls_failed, 1);
        tracing::debug!(%peer, error = %e, timed_out = watch.fired(), "TLS handshake failed");
        return None;
    }
    crate::observe::metrics::add(&shard.metrics.tls_ok, 1);
    Some(Conn {
        shard,
        stream: ClientStream::Tls(tls),
        fd,
        peer,
        watch,
        served,
        accepted,
        head_deadline,
        head_timed_out,
        linger,
    })
}

/// Reads one request head and serves it. Every request that started (some head byte arrived, or the
/// first head timed out) ends in [`finish`], here and nowhere else.
async fn serve_one(conn: &mut Conn, slot: &mut Option<Box<Kit>>) -> Step {
    let mut ctx = RequestCtx::new(conn.peer, conn.accepted);
    ctx.tls = conn.stream.tls_version();
    match read_head(conn, slot).await {
        Ok(HeadRead::Ready) => {}
        Ok(HeadRead::Closed) => return Step::Close,
        Ok(HeadRead::Abandoned) => {
            ctx.fail(GatewayError::new(ErrorKind::ClientGone).context("reading the request head"));
            finish(&conn.shard, &mut ctx, Seen::default());
            return Step::Close;
        }
        Ok(HeadRead::Parked(p)) => return Step::Park(p),
        Err(e) => {
            if let Some(kit) = slot.as_mut() {
                refuse_head(conn, kit, &mut ctx, e).await;
            } else {
                ctx.fail(e);
            }
            finish(&conn.shard, &mut ctx, Seen::default());
            return Step::Close;
        }
    }
    let Some(kit) = slot.as_mut() else {
        return Step::Close;
    };
    conn.served += 1;
    ctx.read_head(&kit.req, kit.buf.data());
    let state = conn.shard.state();
    match state.snap.config.call_log.as_ref() {
        Some(c) if conn.shard.recording() => capture_head(kit, c),
        _ => kit.log_head.clear(),
    }
    let next = chain::serve(conn, kit, &state, &mut ctx).await;
    let seen = Seen {
        state: Some(&state),
        kit: Some(kit),
    };
    finish(&conn.shard, &mut ctx, seen);
    match next {
        Next::KeepAlive => Step::KeepAlive,
        Next::Close => Step::Close,
        Next::Upgrade(up) => match slot.take() {
            Some(kit) => Step::Upgrade(Box::new((kit, up))),
            None => Step::Close,
        },
    }
}

/// Answers a head that could not be parsed (or did not arrive in time); the connection closes
/// afterwards (`ctx` says the client wants it closed, and nothing of the buffer is trusted).
async fn refuse_head(conn: &mut Conn, kit: &mut Kit, ctx: &mut RequestCtx, e: GatewayError) {
    ctx.bytes_in = kit.buf.len() as u64;
    // The rest of a refused head (an oversized one, say) may still be arriving: closing with it
    // unread would reset the connection, and the client could lose the answer. So may more of a
    // head that timed out while it trickled in; a client that sent nothing sends nothing more.
    conn.linger |= !matches!(e.kind, ErrorKind::HeaderTimeout) || !kit.buf.is_empty();
    let state = conn.shard.state();
    let mut cx = Cx::new(conn, kit, &state, ctx);
    let _ = answer::write(&mut cx, Answer::error(e)).await;
    cx.kit.buf.clear();
}

/// Waits for a complete request head in the kit's buffer (taking a kit from the shard if the
/// connection has none). `Ready` guarantees `slot` is `Some`.
async fn read_head(conn: &mut Conn, slot: &mut Option<Box<Kit>>) -> Result<HeadRead, GatewayError> {
    // Plain values, so the future does not hold the config snapshot across its awaits.
    let (limits, header_ms, keepalive_ms, release_ms) = {
        let state = conn.shard.state();
        let http = &state.snap.config.http;
        (
            Limits {
                max_head: http.max_head_size,
                max_headers: http.max_headers,
                max_uri: http.max_uri_size,
            },
            http.header_timeout.as_millis() as u64,
            http.keepalive_timeout.as_millis() as u64,
            http.idle_buffer_release.as_millis() as u64,
        )
    };
    let first = conn.served == 0;
    if conn.head_timed_out {
        conn.head_timed_out = false;
        slot.get_or_insert_with(|| conn.shard.pools.kit());
        return Err(GatewayError::new(ErrorKind::HeaderTimeout));
    }
    if first && conn.head_deadline == 0 {
        conn.head_deadline = now_ms() + header_ms;
    }
    loop {
        let kit = slot.get_or_insert_with(|| conn.shard.pools.kit());
        if !kit.buf.is_empty() {
            match parse_request(kit.buf.data(), &limits, &mut kit.req) {
                Ok(Some(())) => {
                    conn.head_deadline = 0;
                    return Ok(HeadRead::Ready);
                }
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
            if conn.head_deadline == 0 {
                conn.head_deadline = now_ms() + header_ms;
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
            (now_ms() + keepalive_ms, Shut::Both)
        } else {
            (conn.head_deadline, Shut::Read)
        };
        if between && keepalive_ms == 0 {
            return Ok(HeadRead::Closed);
        }
        let park = idle && release_ms != 0;
        let buf = std::mem::take(&mut kit.buf);
        let (res, buf) = {
            let _armed = conn.watch.arm(conn.fd, how, deadline);
            conn.watch.set_idle(between);
            let r = if park {
                conn.watch.set_park(now_ms() + release_ms);
                let handle = conn.shard.watchdog.cancel_handle();
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
                // Idle for `idle_buffer_release`: give the kit back, wait for bytes without it.
                tracing::trace!(peer = %conn.peer, "idle connection parked");
                if let Some(mut kit) = slot.take() {
                    kit.buf.clear();
                    conn.shard.pools.put_kit(kit);
                }
                return Ok(HeadRead::Parked(Parked {
                    deadline,
                    how,
                    between,
                }));
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
        return Ok(HeadRead::Abandoned);
    }
    Ok(HeadRead::Closed)
}

/// Runs a connection future, turning a panic inside it into a logged, closed connection so one
/// connection's bug cannot take the shard down.
struct CatchUnwind<F> {
    inner: F,
    done: bool,
}

impl<F: Future<Output = ()>> Future for CatchUnwind<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Safety: `inner` is structurally pinned (never moved out); the other fields are Unpin.
        let this = unsafe { self.get_unchecked_mut() };
        if this.done {
            return Poll::Ready(());
        }
        // Safety: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(p) => p,
            Err(_) => {
                this.done = true;
                tracing::error!("connection task panicked; connection closed");
                Poll::Ready(())
            }
        }
    }
}
