//! One shard: a thread pinned to a CPU running its own event loop, accept loops over its own
//! listeners, and a housekeeping tick (deadlines, pool upkeep, config pick-up, drain).
//!
//! Everything a shard owns is `Rc`/`Cell`: connections, pools, balancer state. The only shared
//! state it touches is [`Control`], once per tick.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use monoio::net::TcpListener;

use super::Control;
use super::driver::{self, Built, DriverKind};
use super::listen::Listener;
use super::pools::Pools;
use super::snapshot::ShardState;
use super::watchdog::{SweepMode, Watchdog, now_ms};

/// Free kits and response buffers each shard keeps through an idle second. The lists grow to what
/// the load needs and are trimmed back to this once a second (see `Pools::trim`): every buffer kept
/// pins a 512 KiB allocator page, so with 64 kept, 10,000 idle connections cost 2.6 KiB each after a
/// burst instead of 1.3 KiB.
const POOL_KEEP: usize = 8;

/// How often a shard asks the allocator to return freed memory to the OS.
const COLLECT_EVERY_MS: u64 = 1000;

/// Shard-local state shared by the shard's tasks.
pub struct Shard {
    pub id: usize,
    pub control: Arc<Control>,
    state: RefCell<Rc<ShardState>>,
    pub watchdog: Rc<Watchdog>,
    pub pools: Pools,
    draining: Cell<bool>,
    seq: Cell<u64>,
    listener_fds: RefCell<Vec<RawFd>>,
    tick: Duration,
    max_connections: usize,
    last_collect: Cell<u64>,
}

impl Shard {
    /// The state new requests use.
    #[inline]
    pub fn state(&self) -> Rc<ShardState> {
        self.state.borrow().clone()
    }

    #[inline]
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Writes a new request id (24 hex digits: instance, shard, sequence) into `out`.
    pub fn request_id(&self, out: &mut [u8; 24]) {
        let n = self.seq.get().wrapping_add(1);
        self.seq.set(n);
        let v: u128 = (u128::from(self.control.instance) << 64)
            | ((self.id as u128 & 0xff) << 56)
            | u128::from(n & ((1 << 56) - 1));
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in out.iter_mut().enumerate() {
            *b = HEX[((v >> (4 * (23 - i))) & 0xf) as usize];
        }
    }

    /// Applies a newer config snapshot if the control thread published one.
    fn pick_up_config(&self) {
        let generation = self.control.generation();
        if generation == self.state.borrow().snap.generation {
            return;
        }
        let snap = self.control.snapshot();
        let next = ShardState::new(snap, Some(&self.state.borrow()), self.control.shards());
        let generation = next.snap.generation;
        *self.state.borrow_mut() = Rc::new(next);
        self.control.set_applied(self.id, generation);
        tracing::debug!(shard = self.id, generation, "config applied");
    }

    /// One housekeeping pass; returns false once the shard has drained and should stop.
    fn tick(&self) -> bool {
        let now = now_ms();
        self.pick_up_config();
        if self.control.draining() && !self.draining.get() {
            self.draining.set(true);
            for &fd in self.listener_fds.borrow().iter() {
                // Safety: the listener fds stay open until the accept loops (which own them) end;
                // shutdown wakes their pending accept with EINVAL.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
            for u in self.state.borrow().upstreams.iter() {
                u.close_idle();
            }
        }
        let draining = self.draining.get();
        let mode = SweepMode {
            close_idle: draining,
            close_all: draining && now >= self.control.drain_deadline(),
        };
        self.watchdog.sweep(now, mode);
        let state = self.state.borrow();
        for u in state.upstreams.iter() {
            u.maintain(now);
        }
        for l in state.limits.iter().flatten() {
            l.tick(now * 1_000_000);
        }
        drop(state);
        let open = self.watchdog.len();
        self.control.set_connections(self.id, open);
        if now.saturating_sub(self.last_collect.get()) >= COLLECT_EVERY_MS {
            self.last_collect.set(now);
            self.pools.trim();
            // Buffers freed after a burst (parked idle connections, trimmed pools) sit in the
            // allocator's free pages until something asks for them; this returns the pages whose
            // purge delay has passed. Off the request path, once a second.
            // Safety: mi_collect only touches the calling thread's mimalloc heap.
            unsafe { libmimalloc_sys::mi_collect(false) };
        }
        !(draining && open == 0 && self.listener_fds.borrow().is_empty())
    }
}

/// Thread body of shard `id`.
pub fn run(
    id: usize,
    cpu: usize,
    control: Arc<Control>,
    listeners: Vec<Listener>,
    ready: Sender<(usize, Result<DriverKind, String>)>,
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
    let shard = Rc::new(Shard {
        id,
        control: control.clone(),
        state: RefCell::new(Rc::new(ShardState::new(
            snap.clone(),
            None,
            control.shards(),
        ))),
        watchdog: Rc::new(Watchdog::default()),
        pools: Pools::new(http.buffer_size, http.response_buffer_size, POOL_KEEP),
        draining: Cell::new(false),
        seq: Cell::new(0),
        listener_fds: RefCell::new(Vec::new()),
        tick: server.tick,
        max_connections: server.max_connections,
        last_collect: Cell::new(0),
    });
    control.set_applied(id, snap.generation);
    drop(snap);
    let main = shard_main(shard, listeners, ready, kind);
    match built {
        Built::Uring(mut rt) => rt.block_on(main),
        Built::Epoll(mut rt) => rt.block_on(main),
    }
    tracing::info!(shard = id, "shard stopped");
}

async fn shard_main(
    shard: Rc<Shard>,
    listeners: Vec<Listener>,
    ready: Sender<(usize, Result<DriverKind, String>)>,
    kind: DriverKind,
) {
    for l in listeners {
        let fd = l.socket.as_raw_fd();
        match TcpListener::from_std(l.socket) {
            Ok(socket) => {
                shard.listener_fds.borrow_mut().push(fd);
                monoio::spawn(accept_loop(shard.clone(), socket, l.tls));
            }
            Err(e) => {
                let _ = ready.send((shard.id, Err(format!("cannot use listener: {e}"))));
                return;
            }
        }
    }
    let _ = ready.send((shard.id, Ok(kind)));
    drop(ready);
    loop {
        monoio::time::sleep(shard.tick).await;
        if !shard.tick() {
            break;
        }
    }
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, tls: bool) {
    let fd = listener.as_raw_fd();
    let mut last_warn = 0u64;
    loop {
        if shard.draining() {
            break;
        }
        if shard.watchdog.len() >= shard.max_connections {
            // At the connection limit: leave new connections in the kernel backlog until one closes.
            shard
                .watchdog
                .wait_below(shard.max_connections, || shard.draining())
                .await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, peer)) => {
                if shard.draining() {
                    break;
                }
                monoio::spawn(crate::proxy::conn::serve(shard.clone(), stream, peer, tls));
            }
            Err(e) => {
                if shard.draining() {
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
