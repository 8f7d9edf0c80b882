//! One shard: a thread pinned to a CPU running its own event loop, accept loops over its own
//! listeners, and a housekeeping tick (deadlines, pool upkeep, config pick-up, drain).
//!
//! Everything a shard owns is `Rc`/`Cell`: connections, pools, balancer state. The only shared
//! state it touches is [`Control`], once per tick.
//!
//! What the shard's connections may touch of it is its [`ShardCtx`]; the rest (the control state,
//! its listeners, the tick's bookkeeping) stays here. The accept loop hands each connection to the
//! [`ConnHandler`] the gateway was started with.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};

use super::Control;
use super::listen::Listener;
use crate::runtime::driver::{self, Built, DriverKind};
use crate::runtime::pools::Pools;
use crate::runtime::watchdog::{SweepMode, now_ms};
use crate::state::{ShardCtx, ShardState};

/// Free kits and response buffers each shard keeps through an idle second. The lists grow to what
/// the load needs and are trimmed back to this once a second (see `Pools::trim`): every buffer kept
/// pins a 512 KiB allocator page, so with 64 kept, 10,000 idle connections cost 2.6 KiB each after a
/// burst instead of 1.3 KiB.
const POOL_KEEP: usize = 8;

/// How often a shard asks the allocator to return freed memory to the OS.
const COLLECT_EVERY_MS: u64 = 1000;

/// What a shard runs for each connection it accepts: given the shard's context, the stream, the
/// peer address and whether the listener speaks TLS, the connection's task. Any `Copy` function (or closure) of that shape is one;
/// [`crate::proxy::conn::serve`] is the gateway's.
///
/// Called once per accepted connection and known at compile time (the shard is generic over it):
/// nothing is dispatched dynamically.
pub trait ConnHandler: Copy + Send + 'static {
    type Task: Future<Output = ()> + 'static;

    fn serve(self, ctx: Rc<ShardCtx>, stream: TcpStream, peer: SocketAddr, tls: bool)
    -> Self::Task;
}

impl<H, T> ConnHandler for H
where
    H: Fn(Rc<ShardCtx>, TcpStream, SocketAddr, bool) -> T + Copy + Send + 'static,
    T: Future<Output = ()> + 'static,
{
    type Task = T;

    #[inline]
    fn serve(self, ctx: Rc<ShardCtx>, stream: TcpStream, peer: SocketAddr, tls: bool) -> T {
        self(ctx, stream, peer, tls)
    }
}

/// The shard as its own thread sees it: the context its connections share, plus what only the
/// shard thread uses.
struct Shard {
    id: usize,
    control: Arc<Control>,
    ctx: Rc<ShardCtx>,
    listener_fds: RefCell<Vec<RawFd>>,
    tick: Duration,
    max_connections: usize,
    last_collect: Cell<u64>,
}

impl Shard {
    /// Applies a newer config snapshot if the control thread published one.
    fn pick_up_config(&self) {
        let generation = self.control.generation();
        let current = self.ctx.state();
        if generation == current.snap.generation {
            return;
        }
        let snap = self.control.snapshot();
        let next = ShardState::new(snap, Some(&current), self.control.shards());
        let generation = next.snap.generation;
        self.ctx.set_state(next);
        self.control.set_applied(self.id, generation);
        tracing::debug!(shard = self.id, generation, "config applied");
    }

    /// One housekeeping pass; returns false once the shard has drained and should stop.
    fn tick(&self) -> bool {
        let now = now_ms();
        self.pick_up_config();
        let ctx = &self.ctx;
        if self.control.draining() && !ctx.draining() {
            ctx.start_draining();
            for &fd in self.listener_fds.borrow().iter() {
                // Safety: the listener fds stay open until the accept loops (which own them) end;
                // shutdown wakes their pending accept with EINVAL.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
            for u in ctx.state().upstreams.iter() {
                u.close_idle();
            }
        }
        let draining = ctx.draining();
        let mode = SweepMode {
            close_idle: draining,
            close_all: draining && now >= self.control.drain_deadline(),
        };
        ctx.watchdog.sweep(now, mode);
        let state = ctx.state();
        // Pool gauges by series: summed over the upstreams that share one, and 0 for series of
        // upstreams a reload removed.
        let m = &ctx.metrics;
        let mut gauges = vec![(0u64, 0u64); m.upstreams.len()];
        for (i, u) in state.upstreams.iter().enumerate() {
            u.maintain(now);
            let slot = state.snap.series.upstreams.get(i).copied().unwrap_or(1) as usize;
            let slot = slot.min(gauges.len() - 1);
            let (idle, open) = u.publish_metrics(&m.upstreams[slot]);
            gauges[slot].0 += idle;
            gauges[slot].1 += open;
        }
        for (series, (idle, open)) in m.upstreams.iter().zip(gauges) {
            crate::observe::metrics::set(&series.idle, idle);
            crate::observe::metrics::set(&series.open, open);
        }
        for l in state.limits.iter().flatten().chain(&state.quotas) {
            l.tick(now * 1_000_000);
        }
        drop(state);
        let open = ctx.watchdog.len();
        self.control.set_connections(self.id, open);
        if now.saturating_sub(self.last_collect.get()) >= COLLECT_EVERY_MS {
            self.last_collect.set(now);
            ctx.pools.trim();
            // Buffers freed after a burst (parked idle connections, trimmed pools) sit in the
            // allocator's free pages until something asks for them; this returns the pages whose
            // purge delay has passed. Off the request path, once a second.
            // Safety: mi_collect only touches the calling thread's mimalloc heap.
            unsafe { libmimalloc_sys::mi_collect(false) };
        }
        !(draining && open == 0 && self.listener_fds.borrow().is_empty())
    }
}

/// Thread body of shard `id`: serves each connection it accepts with `handler`.
pub fn run<H: ConnHandler>(
    id: usize,
    cpu: usize,
    control: Arc<Control>,
    listeners: Vec<Listener>,
    recorder: Option<crate::observe::recorder::Recorder>,
    ready: Sender<(usize, Result<DriverKind, String>)>,
    handler: H,
) {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        tracing::warn!(
            shard = id,
            cpu,
            "could not pin the shard to its CPU; running unpinned"
        );
    }
    let snap = control.snapshot();
    let server = &snap.config.server;
    let (built, kind, note) =
        match driver::build(server.driver, server.ring_entries, server.ring_tuning) {
            Ok(b) => b,
            Err(e) => {
                let _ = ready.send((id, Err(e.to_string())));
                return;
            }
        };
    if let Some(note) = note {
        tracing::info!(shard = id, "{note}");
    }
    tracing::info!(shard = id, cpu, driver = kind.as_str(), "shard started");
    let http = &snap.config.http;
    let ctx = ShardCtx::new(
        id,
        control.instance,
        ShardState::new(snap.clone(), None, control.shards()),
        Pools::new(http.buffer_size, http.response_buffer_size, POOL_KEEP),
        control.requests.clone(),
        recorder,
        control.metrics[id].clone(),
    );
    let shard = Rc::new(Shard {
        id,
        control: control.clone(),
        ctx: Rc::new(ctx),
        listener_fds: RefCell::new(Vec::new()),
        tick: server.tick,
        max_connections: server.max_connections,
        last_collect: Cell::new(0),
    });
    control.set_applied(id, snap.generation);
    drop(snap);
    let main = shard_main(shard, listeners, ready, kind, handler);
    match built {
        Built::Uring(mut rt) => rt.block_on(main),
        Built::Epoll(mut rt) => rt.block_on(main),
    }
    tracing::info!(shard = id, "shard stopped");
}

async fn shard_main<H: ConnHandler>(
    shard: Rc<Shard>,
    listeners: Vec<Listener>,
    ready: Sender<(usize, Result<DriverKind, String>)>,
    kind: DriverKind,
    handler: H,
) {
    for l in listeners {
        let fd = l.socket.as_raw_fd();
        match TcpListener::from_std(l.socket) {
            Ok(socket) => {
                shard.listener_fds.borrow_mut().push(fd);
                monoio::spawn(accept_loop(shard.clone(), socket, l.tls, handler));
            }
            Err(e) => {
                let _ = ready.send((shard.id, Err(format!("cannot use listener: {e}"))));
                return;
            }
        }
    }
    let _ = ready.send((shard.id, Ok(kind)));
    drop(ready);
    let m = shard.ctx.metrics.clone();
    loop {
        let asleep = std::time::Instant::now();
        monoio::time::sleep(shard.tick).await;
        // How much later than asked the loop came back to the tick: a busy loop's lag.
        let late = asleep.elapsed().saturating_sub(shard.tick);
        m.tick_lag.record(late.as_micros() as u64);
        crate::observe::metrics::add(&m.ticks, 1);
        if !shard.tick() {
            break;
        }
    }
}

async fn accept_loop<H: ConnHandler>(
    shard: Rc<Shard>,
    listener: TcpListener,
    tls: bool,
    handler: H,
) {
    let fd = listener.as_raw_fd();
    let ctx = &shard.ctx;
    let mut last_warn = 0u64;
    loop {
        if ctx.draining() {
            break;
        }
        if ctx.watchdog.len() >= shard.max_connections {
            // At the connection limit: leave new connections in the kernel backlog until one closes.
            ctx.watchdog
                .wait_below(shard.max_connections, || ctx.draining())
                .await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, peer)) => {
                if ctx.draining() {
                    break;
                }
                crate::observe::metrics::add(&ctx.metrics.accepted, 1);
                monoio::spawn(handler.serve(ctx.clone(), stream, peer, tls));
            }
            Err(e) => {
                if ctx.draining() {
                    break;
                }
                let transient = matches!(
                    e.raw_os_error(),
                    Some(
                        libc::ECONNABORTED
                            | libc::EINTR
                            | libc::EAGAIN
                            | libc::EPROTO
                            | libc::EPERM
                    )
                );
                if transient {
                    continue;
                }
                // Out of file descriptors or memory: back off so the loop does not spin, and say so
                // (at most once a second).
                let now = now_ms();
                if now.saturating_sub(last_warn) >= 1000 {
                    last_warn = now;
                    tracing::warn!(shard = shard.id, error = %e, "accept failed; backing off (check ulimit -n / RLIMIT_NOFILE)");
                }
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    shard.listener_fds.borrow_mut().retain(|&f| f != fd);
}
