//! Per-shard keep-alive pool of one target: idle connections (most recently used first), a count of
//! every open connection for `max_connections`, and a queue of requests waiting for a free slot.
//!
//! A connection the upstream closed or sent stray bytes on while it sat idle is found by a peek
//! (`MSG_PEEK | MSG_DONTWAIT`: EOF or data mean it is not reusable): when it is taken for a request,
//! and on the shard tick for those that have rested for a while (so that the pool does not keep
//! dead ones). A request that fails on a reused connection before any response byte (the upstream
//! closed it between the peek and the request) is retried once on a fresh connection when that is
//! safe (`proxy::forward`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::Waker;

use crate::tls::{MaybeTls, ReadHalf, UpstreamStream, WriteHalf};
use rustls::ClientConnection;

use super::Target;

struct Idle {
    stream: UpstreamStream,
    since: u64,
}

pub struct Pool {
    idle: RefCell<VecDeque<Idle>>,
    /// Open connections, idle and leased.
    open: Cell<usize>,
    max_idle: usize,
    /// 0 = unlimited.
    max_open: usize,
    idle_timeout_ms: u64,
    waiters: RefCell<VecDeque<Waker>>,
    /// Leases of a pooled connection / of a new one since the last tick (taken by the metrics).
    pub reused: Cell<u64>,
    pub connected: Cell<u64>,
}

/// Idle connections resting at least this long are checked for a close by the upstream on each tick.
const PEEK_AFTER_MS: u64 = 1000;

impl Pool {
    pub fn new(max_idle: usize, max_open: usize, idle_timeout_ms: u64) -> Pool {
        Pool {
            idle: RefCell::new(VecDeque::new()),
            open: Cell::new(0),
            max_idle,
            max_open,
            idle_timeout_ms,
            waiters: RefCell::new(VecDeque::new()),
            reused: Cell::new(0),
            connected: Cell::new(0),
        }
    }

    /// The most recently used idle connection that is still clean, if any. Each is checked as it
    /// is taken: bytes the upstream sent after its response (a body on a 204 or a HEAD answer, a
    /// second response) would otherwise be read as the answer to the next request, which may be
    /// another client's. One that has data or was closed is dropped here.
    pub fn take_idle(&self) -> Option<UpstreamStream> {
        loop {
            let mut i = self.idle.borrow_mut().pop_back()?;
            if still_open(&mut i.stream) {
                return Some(i.stream);
            }
            drop(i);
            self.release_slot();
        }
    }

    /// Reserves a slot for a new connection, if `max_connections` allows.
    pub fn try_reserve(&self) -> bool {
        if self.max_open != 0 && self.open.get() >= self.max_open {
            return false;
        }
        self.open.set(self.open.get() + 1);
        true
    }

    /// A connection (or reserved slot) is gone.
    pub fn release_slot(&self) {
        self.open.set(self.open.get().saturating_sub(1));
        self.wake_one();
    }

    /// Puts a healthy connection back; closes it instead when the pool is full.
    pub fn put(&self, stream: UpstreamStream, now: u64) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() >= self.max_idle {
            drop(idle);
            drop(stream);
            self.release_slot();
            return;
        }
        idle.push_back(Idle { stream, since: now });
        drop(idle);
        self.wake_one();
    }

    /// Wakes every waiter: they re-check, the first one takes the slot. (Waking one could hand the
    /// wake-up to a waiter that already timed out.)
    fn wake_one(&self) {
        if self.waiters.borrow().is_empty() {
            return;
        }
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Registers a waiter woken when a connection is returned or a slot frees up.
    pub fn wait(&self, w: &Waker) {
        let mut q = self.waiters.borrow_mut();
        if !q.iter().any(|x| x.will_wake(w)) {
            q.push_back(w.clone());
        }
    }

    pub fn open(&self) -> usize {
        self.open.get()
    }

    pub fn idle(&self) -> usize {
        self.idle.borrow().len()
    }

    /// Tick: closes idle connections past `idle_timeout` and those the upstream has closed.
    pub fn maintain(&self, now: u64) {
        let mut idle = self.idle.borrow_mut();
        let before = idle.len();
        idle.retain_mut(|i| {
            let age = now.saturating_sub(i.since);
            age < self.idle_timeout_ms && (age < PEEK_AFTER_MS || still_open(&mut i.stream))
        });
        let closed = before - idle.len();
        drop(idle);
        for _ in 0..closed {
            self.release_slot();
        }
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&self) {
        let n = {
            let mut idle = self.idle.borrow_mut();
            let n = idle.len();
            idle.clear();
            n
        };
        for _ in 0..n {
            self.release_slot();
        }
    }
}

/// An idle connection is usable only while the upstream has neither closed it nor sent anything.
/// A TLS connection may have received records that are not data (a TLS 1.3 session ticket, a key
/// update): those are taken in by rustls, and only application data or a close counts as stray.
fn still_open(s: &mut UpstreamStream) -> bool {
    match s {
        MaybeTls::Plain(t) => {
            let mut b = [0u8; 1];
            // Safety: a valid fd and a 1-byte buffer; MSG_DONTWAIT never blocks.
            let n = unsafe {
                libc::recv(
                    t.as_raw_fd(),
                    b.as_mut_ptr().cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
        }
        MaybeTls::Tls(t) => t.absorb_pending(),
    }
}

/// A connection lent to one request. Dropping it closes the connection; [`Lease::release`] returns it
/// to the pool.
pub struct Lease {
    stream: Option<UpstreamStream>,
    pub target: Rc<Target>,
    /// Came from the idle pool (may have been closed by the upstream meanwhile).
    pub reused: bool,
    /// The lease still counts against `max_connections` (until released, handed over, or
    /// dropped, also while split).
    holds_slot: bool,
}

impl Lease {
    pub(super) fn new(stream: UpstreamStream, target: Rc<Target>, reused: bool) -> Lease {
        target.in_flight.set(target.in_flight.get() + 1);
        Lease {
            stream: Some(stream),
            target,
            reused,
            holds_slot: true,
        }
    }

    #[inline]
    pub fn stream(&mut self) -> &mut UpstreamStream {
        // Invariant: `stream` is `Some` until `release`/`into_stream` consume the lease, except
        // between `split` and `unsplit`, where nothing calls this.
        self.stream
            .as_mut()
            .unwrap_or_else(|| unreachable!("lease used after release"))
    }

    /// Splits the connection into halves that can wait for a read while a write is in progress
    /// (monoio's `Split`: a TCP socket's reads and writes are independent). Hand them back with
    /// [`Lease::unsplit`].
    pub fn split(&mut self) -> Option<(ReadHalf<ClientConnection>, WriteHalf<ClientConnection>)> {
        self.stream.take().map(MaybeTls::into_split)
    }

    /// Puts the halves of [`Lease::split`] back together. Halves that do not belong together (never
    /// the case) are dropped, which closes both.
    /// `false`: the halves did not belong together (never the case); the connection is gone and
    /// the lease must not be used for I/O again.
    #[must_use]
    pub fn unsplit(
        &mut self,
        r: ReadHalf<ClientConnection>,
        w: WriteHalf<ClientConnection>,
    ) -> bool {
        self.stream = MaybeTls::reunite(r, w);
        self.stream.is_some()
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.stream.as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    /// Ends the lease: back to the pool when `reusable`, else closed.
    pub fn release(mut self, reusable: bool, now: u64) {
        match self.stream.take() {
            Some(s) if reusable => {
                // The slot moves with the connection into the pool.
                self.holds_slot = false;
                self.target.pool.put(s, now);
            }
            // Closed: `Drop` frees the slot.
            other => drop(other),
        }
    }

    /// Takes the socket out of the pool for good (protocol upgrade). The returned guard keeps the
    /// connection counted against `max_connections` until it drops.
    pub fn into_stream(mut self) -> (UpstreamStream, SlotGuard) {
        // Invariant as in `stream()`.
        let s = self
            .stream
            .take()
            .unwrap_or_else(|| unreachable!("lease used after release"));
        self.holds_slot = false;
        (s, SlotGuard::new(self.target.clone()))
    }
}

/// Holds a connection slot of a target; frees it on drop.
pub struct SlotGuard(Option<Rc<Target>>);

impl SlotGuard {
    pub(super) fn new(target: Rc<Target>) -> SlotGuard {
        SlotGuard(Some(target))
    }

    /// The slot now belongs to something else (a lease): do not free it.
    pub(super) fn forget(mut self) {
        self.0 = None;
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.pool.release_slot();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.target
            .in_flight
            .set(self.target.in_flight.get().saturating_sub(1));
        drop(self.stream.take());
        if self.holds_slot {
            self.target.pool.release_slot();
        }
    }
}
