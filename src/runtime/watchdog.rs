//! Shard-local deadlines without a timer per I/O operation.
//!
//! Every connection registers one [`Watch`] for its lifetime. Before an await that needs a deadline
//! the connection arms the watch with the socket(s) involved and an absolute deadline (a few `Cell`
//! writes, no allocation, no syscall); after the await the guard disarms it. The shard's tick calls
//! [`Watchdog::sweep`], which `shutdown(2)`s the sockets of expired watches. That completes the
//! pending io_uring operation (or epoll wait) at once, with EOF or an error, and the connection sees
//! [`Watch::fired`] and answers 408/504 or closes.
//!
//! Why not `monoio::time::timeout`: on io_uring, dropping a timed-out read does not cancel it; the
//! kernel op keeps the buffer and the socket until the peer sends or closes, so a silent client would
//! pin a socket forever. `shutdown(2)` ends the op deterministically on both drivers, and
//! `SHUT_RD` still lets the gateway write its 408.
//!
//! The sweep is a linear pass over a dense slab (about 2 ns per connection): 10,000 connections at
//! the default 100 ms tick cost ~0.2 ms of CPU per second. Deadlines are checked at tick granularity,
//! so a timeout fires between `timeout` and `timeout + tick` after it was armed.
//!
//! The same pass releases the read buffers of idle keep-alive connections (see `proxy::conn`) and,
//! while draining, closes idle connections and finally every connection.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;

use monoio::io::Canceller;
use slab::Slab;

/// Milliseconds of a coarse monotonic clock (vDSO, no syscall; a few ms resolution).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: `ts` is a valid timespec to write into; CLOCK_MONOTONIC_COARSE always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Which direction a fired watch shuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shut {
    /// Only reading: the connection can still write its error response.
    Read,
    /// Both directions.
    Both,
}

/// One connection's deadline state. All fields are `Cell`s: the connection task and the sweep run
/// on the same thread and never hold a borrow across an await.
pub struct Watch {
    client_fd: RawFd,
    deadline: Cell<u64>,
    fd: Cell<RawFd>,
    how: Cell<Shut>,
    /// A second socket to shut when the watch fires (the other side of a tunnel).
    fd2: Cell<RawFd>,
    fired: Cell<bool>,
    /// Waiting for the next request on a kept-alive connection (closed first when draining).
    idle: Cell<bool>,
    /// When to cancel the idle read so its buffer goes back to the shard (0 = never).
    park_at: Cell<u64>,
}

impl Watch {
    /// Arms the watch: at `deadline` (ms, [`now_ms`] clock) `fd` is shut. Disarmed when the guard drops.
    pub fn arm(&self, fd: RawFd, how: Shut, deadline: u64) -> Armed<'_> {
        self.fd.set(fd);
        self.how.set(how);
        self.fd2.set(-1);
        self.fired.set(false);
        self.deadline.set(deadline.max(1));
        Armed(self)
    }

    /// Arms for two sockets (tunnels): both are shut when it fires.
    pub fn arm_pair(&self, a: RawFd, b: RawFd, deadline: u64) -> Armed<'_> {
        let g = self.arm(a, Shut::Both, deadline);
        self.fd2.set(b);
        g
    }

    /// Moves the deadline of an armed watch (tunnel activity).
    pub fn extend(&self, deadline: u64) {
        if self.deadline.get() != 0 {
            self.deadline.set(deadline.max(1));
        }
    }

    /// Whether the watch fired since it was last armed.
    pub fn fired(&self) -> bool {
        self.fired.get()
    }

    pub fn set_idle(&self, idle: bool) {
        self.idle.set(idle);
    }

    /// Asks the sweep to cancel the current idle read at `at` (0 = do not); the read must use
    /// [`Watchdog::cancel_handle`].
    pub fn set_park(&self, at: u64) {
        self.park_at.set(at);
    }

    fn fire(&self) {
        self.fired.set(true);
        self.deadline.set(0);
        let how = match self.how.get() {
            Shut::Read => libc::SHUT_RD,
            Shut::Both => libc::SHUT_RDWR,
        };
        shutdown(self.fd.get(), how);
        shutdown(self.fd2.get(), libc::SHUT_RDWR);
    }
}

fn shutdown(fd: RawFd, how: i32) {
    if fd >= 0 {
        // Safety: the fd belongs to a socket the owning connection keeps open while its watch is
        // armed (the `Armed` guard drops before the socket) or registered (`WatchGuard`).
        unsafe { libc::shutdown(fd, how) };
    }
}

/// Disarms the watch when dropped.
pub struct Armed<'a>(&'a Watch);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.deadline.set(0);
        self.0.fd.set(-1);
        self.0.fd2.set(-1);
    }
}

/// The shard's registry of watches (one per open client connection).
#[derive(Default)]
pub struct Watchdog {
    slots: RefCell<Slab<Rc<Watch>>>,
    /// One canceller for every parkable idle read of the shard. Cancelling is all-or-nothing: when
    /// any idle read is due, every pending idle read is cancelled and parks (at most once per tick).
    /// A read parked early costs one extra readiness wait on its next request; a canceller per
    /// connection would cost ~200 bytes of every idle connection instead.
    canceller: Cell<Option<Canceller>>,
    /// Tasks waiting for a connection to close (the accept loop at `max_connections`).
    on_release: RefCell<Vec<std::task::Waker>>,
}

/// A connection's registration; unregisters on drop. Must be dropped before the client socket.
pub struct WatchGuard {
    dog: Rc<Watchdog>,
    key: usize,
    pub watch: Rc<Watch>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.dog.slots.borrow_mut().try_remove(self.key);
        if !self.dog.on_release.borrow().is_empty() {
            let waiters = std::mem::take(&mut *self.dog.on_release.borrow_mut());
            for w in waiters {
                w.wake();
            }
        }
    }
}

/// What a sweep should do besides firing expired deadlines.
#[derive(Debug, Clone, Copy, Default)]
pub struct SweepMode {
    /// Close connections that are idle between requests.
    pub close_idle: bool,
    /// Close every connection (drain deadline passed).
    pub close_all: bool,
}

impl Watchdog {
    pub fn register(self: &Rc<Self>, client_fd: RawFd) -> WatchGuard {
        let watch = Rc::new(Watch {
            client_fd,
            deadline: Cell::new(0),
            fd: Cell::new(-1),
            how: Cell::new(Shut::Both),
            fd2: Cell::new(-1),
            fired: Cell::new(false),
            idle: Cell::new(false),
            park_at: Cell::new(0),
        });
        let key = self.slots.borrow_mut().insert(watch.clone());
        WatchGuard {
            dog: self.clone(),
            key,
            watch,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.borrow().len()
    }

    /// Waits until fewer than `limit` connections are registered, or `stop()` says to stop waiting.
    pub async fn wait_below(&self, limit: usize, stop: impl Fn() -> bool) {
        std::future::poll_fn(|cx| {
            if self.len() < limit || stop() {
                std::task::Poll::Ready(())
            } else {
                self.on_release.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }

    pub fn is_empty(&self) -> bool {
        self.slots.borrow().is_empty()
    }

    /// A handle for an idle read the sweep may cancel (see [`Watch::set_park`]).
    pub fn cancel_handle(&self) -> monoio::io::CancelHandle {
        let c = self.canceller.take().unwrap_or_default();
        let h = c.handle();
        self.canceller.set(Some(c));
        h
    }

    /// Fires expired deadlines, parks idle reads, and applies `mode`.
    pub fn sweep(&self, now: u64, mode: SweepMode) {
        let mut park = false;
        let slots = self.slots.borrow();
        for (_, w) in slots.iter() {
            if mode.close_all {
                w.fired.set(true);
                shutdown(w.client_fd, libc::SHUT_RDWR);
                shutdown(w.fd.get(), libc::SHUT_RDWR);
                shutdown(w.fd2.get(), libc::SHUT_RDWR);
                continue;
            }
            let d = w.deadline.get();
            if d != 0 && now >= d {
                w.fire();
            }
            if mode.close_idle && w.idle.get() {
                shutdown(w.client_fd, libc::SHUT_RDWR);
            }
            let p = w.park_at.get();
            if p != 0 && now >= p {
                w.park_at.set(0);
                park = true;
            }
        }
        if park {
            if let Some(c) = self.canceller.take() {
                self.canceller.set(Some(c.cancel()));
            }
        }
    }
}
