//! The cheapest TCP forwarder on io_uring without a runtime: one thread, one ring, multishot
//! receives into a provided-buffer ring, sends straight from the received buffer, sockets in the
//! ring's registered-file table. No HTTP. Each feature can be turned off to measure it alone:
//! `FIXED=0` in the environment uses plain file descriptors, `MULTI=0` one single-shot receive per
//! completion (its buffer still picked from the ring), and `POLLFIRST=1` adds
//! `IORING_RECVSEND_POLL_FIRST` to those receives.
//!
//! It answers "what would features monoio 0.2.4 does not expose buy?" for perf/RESULTS.md, and is
//! no more than that: the upstream connect is a blocking `connect(2)` at accept time, and a
//! connection whose receives run out of provided buffers re-arms until buffers come back.

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use std::collections::VecDeque;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

const BUFFERS: u16 = 4096;
const BUF_SIZE: usize = 16 * 1024;
const GROUP: u16 = 0;
/// `IORING_RECVSEND_POLL_FIRST`, which the io-uring crate does not export.
const POLL_FIRST: u16 = 1;

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;

/// `kind:6 | side:2 | gen:16 | conn:24 | bid:16` in a CQE's user data.
fn tag(kind: u64, side: usize, gen_: u16, conn: usize, bid: u16) -> u64 {
    kind << 58 | (side as u64) << 56 | (gen_ as u64) << 40 | (conn as u64) << 16 | bid as u64
}

struct Tag {
    kind: u64,
    side: usize,
    gen_: u16,
    conn: usize,
    bid: u16,
}

fn untag(t: u64) -> Tag {
    Tag {
        kind: t >> 58,
        side: ((t >> 56) & 3) as usize,
        gen_: (t >> 40) as u16,
        conn: ((t >> 16) & 0xff_ffff) as usize,
        bid: t as u16,
    }
}

/// The provided-buffer ring: entries the kernel picks receive buffers from.
struct BufRing {
    entries: *mut types::BufRingEntry,
    /// `BUFFERS * BUF_SIZE` bytes the kernel writes into; only ever touched through raw pointers.
    memory: *mut u8,
    tail: u16,
}

impl BufRing {
    fn new(ring: &IoUring) -> std::io::Result<BufRing> {
        let layout = std::alloc::Layout::from_size_align(usize::from(BUFFERS) * 16, 4096)
            .map_err(std::io::Error::other)?;
        // Safety: non-zero size; the allocation lives as long as the process (the ring keeps it).
        let entries = unsafe { std::alloc::alloc_zeroed(layout) } as *mut types::BufRingEntry;
        if entries.is_null() {
            return Err(std::io::Error::other("out of memory"));
        }
        // Safety: `entries` is page aligned and holds BUFFERS entries.
        unsafe {
            ring.submitter()
                .register_buf_ring(entries as u64, BUFFERS, GROUP)?
        };
        let memory = Box::leak(vec![0u8; usize::from(BUFFERS) * BUF_SIZE].into_boxed_slice());
        let mut br = BufRing {
            entries,
            memory: memory.as_mut_ptr(),
            tail: 0,
        };
        for bid in 0..BUFFERS {
            br.give_back(bid);
        }
        Ok(br)
    }

    fn buf(&self, bid: u16) -> *const u8 {
        // Safety: `bid < BUFFERS`, so the offset stays inside the allocation.
        unsafe { self.memory.add(usize::from(bid) * BUF_SIZE) }
    }

    fn give_back(&mut self, bid: u16) {
        let addr = self.buf(bid) as u64;
        // Safety: the index is masked into the ring; the tail is published with release ordering
        // after the entry is written, as the kernel expects.
        unsafe {
            let e = &mut *self.entries.add(usize::from(self.tail & (BUFFERS - 1)));
            e.set_addr(addr);
            e.set_len(BUF_SIZE as u32);
            e.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
            let tail = types::BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

/// One client connection and its upstream connection: side 0 is the client, side 1 the upstream.
#[derive(Default)]
struct Conn {
    fds: [RawFd; 2],
    gen_: u16,
    live: bool,
    /// Per destination side: buffers waiting to be sent, (bid, offset, len); the front is in flight.
    queue: [VecDeque<(u16, u32, u32)>; 2],
}

struct Fwd {
    ring: IoUring<squeue::Entry, cqueue::Entry>,
    bufs: BufRing,
    conns: Vec<Conn>,
    free: Vec<usize>,
    closing: Vec<usize>,
    fixed: bool,
    /// `MULTI=0`: one single-shot receive (buffer from the ring) per completion, as a runtime
    /// without multishot support issues them; `POLLFIRST=1` adds `IORING_RECVSEND_POLL_FIRST`.
    multishot: bool,
    poll_first: bool,
    listener: RawFd,
    upstream: std::net::SocketAddr,
    pending: Vec<squeue::Entry>,
}

impl Fwd {
    fn recv(&mut self, c: usize, side: usize) {
        let fd = self.conns[c].fds[side];
        let len = BUF_SIZE as u32;
        let null = std::ptr::null_mut();
        let op = match (self.multishot, self.fixed) {
            (true, true) => {
                opcode::RecvMulti::new(types::Fixed((2 * c + side) as u32), GROUP).build()
            }
            (true, false) => opcode::RecvMulti::new(types::Fd(fd), GROUP).build(),
            (false, true) => opcode::Recv::new(types::Fixed((2 * c + side) as u32), null, len)
                .buf_group(GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT),
            (false, false) => opcode::Recv::new(types::Fd(fd), null, len)
                .buf_group(GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT),
        };
        let op = if self.poll_first { poll_first(op) } else { op };
        let t = tag(RECV, side, self.conns[c].gen_, c, 0);
        self.pending.push(op.user_data(t));
    }

    fn send_front(&mut self, c: usize, side: usize) {
        let Some(&(bid, off, len)) = self.conns[c].queue[side].front() else {
            return;
        };
        // Safety: `off < len <= BUF_SIZE` inside buffer `bid`, which stays out of the buffer ring
        // until this send completes.
        let ptr = unsafe { self.bufs.buf(bid).add(off as usize) };
        let op = if self.fixed {
            opcode::Send::new(types::Fixed((2 * c + side) as u32), ptr, len - off).build()
        } else {
            opcode::Send::new(types::Fd(self.conns[c].fds[side]), ptr, len - off).build()
        };
        let t = tag(SEND, side, self.conns[c].gen_, c, bid);
        self.pending.push(op.user_data(t));
    }

    fn accept(&mut self, fd: RawFd) -> std::io::Result<()> {
        let up = match TcpStream::connect(self.upstream) {
            Ok(up) => up,
            Err(e) => {
                // Safety: `fd` came from accept and is owned here.
                unsafe { libc::close(fd) };
                return Err(e);
            }
        };
        up.set_nodelay(true)?;
        let one: libc::c_int = 1;
        // Safety: plain setsockopt on an accepted socket.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const i32).cast(),
                4,
            )
        };
        let c = self.free.pop().unwrap_or_else(|| {
            self.conns.push(Conn::default());
            self.conns.len() - 1
        });
        let fds = [fd, up.into_raw_fd()];
        if self.fixed {
            self.ring
                .submitter()
                .register_files_update((2 * c) as u32, &fds)?;
        }
        let conn = &mut self.conns[c];
        conn.fds = fds;
        conn.gen_ = conn.gen_.wrapping_add(1);
        conn.live = true;
        self.recv(c, 0);
        self.recv(c, 1);
        Ok(())
    }

    /// Ends a connection. Its descriptors and slot are released by [`Fwd::release`] once the
    /// entries already queued for it have been submitted, so that none of them can reach a new
    /// connection that reuses the slot or descriptor number.
    fn close(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        if !conn.live {
            return;
        }
        conn.live = false;
        for fd in conn.fds {
            // Safety: both descriptors are owned by this connection; shutdown ends the receives
            // still armed on them.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        for q in &mut conn.queue {
            // The front is in flight and comes back through its completion; the rest is ours.
            for (bid, _, _) in q.drain(..).skip(1) {
                self.bufs.give_back(bid);
            }
        }
        self.closing.push(c);
    }

    fn release(&mut self) {
        for c in std::mem::take(&mut self.closing) {
            for fd in self.conns[c].fds {
                // Safety: owned by the connection, which no longer uses it.
                unsafe { libc::close(fd) };
            }
            if self.fixed {
                let _ = self
                    .ring
                    .submitter()
                    .register_files_update((2 * c) as u32, &[-1, -1]);
            }
            self.free.push(c);
        }
    }

    fn complete(&mut self, cqe: &cqueue::Entry) {
        let t = untag(cqe.user_data());
        let res = cqe.result();
        match t.kind {
            ACCEPT => {
                if res >= 0
                    && let Err(e) = self.accept(res)
                {
                    eprintln!("accept: {e}");
                }
                if !cqueue::more(cqe.flags()) {
                    self.pending.push(
                        opcode::AcceptMulti::new(types::Fd(self.listener))
                            .build()
                            .user_data(tag(ACCEPT, 0, 0, 0, 0)),
                    );
                }
            }
            RECV => {
                let stale = !self.conns[t.conn].live || self.conns[t.conn].gen_ != t.gen_;
                let bid = cqueue::buffer_select(cqe.flags());
                if stale || (res <= 0 && res != -libc::ENOBUFS) {
                    if let Some(bid) = bid {
                        self.bufs.give_back(bid);
                    }
                    if !stale {
                        self.close(t.conn);
                    }
                    return;
                }
                if let (Some(bid), true) = (bid, res > 0) {
                    let to = 1 - t.side;
                    let q = &mut self.conns[t.conn].queue[to];
                    q.push_back((bid, 0, res as u32));
                    if q.len() == 1 {
                        self.send_front(t.conn, to);
                    }
                }
                if !cqueue::more(cqe.flags()) {
                    self.recv(t.conn, t.side);
                }
            }
            SEND => {
                let live = self.conns[t.conn].live && self.conns[t.conn].gen_ == t.gen_;
                if !live || res <= 0 {
                    self.bufs.give_back(t.bid);
                    if live {
                        self.close(t.conn);
                    }
                    return;
                }
                let q = &mut self.conns[t.conn].queue[t.side];
                let Some(front) = q.front_mut() else { return };
                front.1 += res as u32;
                if front.1 >= front.2 {
                    q.pop_front();
                    self.bufs.give_back(t.bid);
                }
                self.send_front(t.conn, t.side);
            }
            _ => {}
        }
    }
}

/// Sets `IORING_RECVSEND_POLL_FIRST` in a receive's `ioprio` field, which io-uring 0.6 has no
/// setter for (measurement only).
fn poll_first(e: squeue::Entry) -> squeue::Entry {
    // Safety: `squeue::Entry` is `repr(C)` over the 64-byte SQE, whose u16 `ioprio` is at offset 2.
    unsafe {
        let mut raw: [u8; 64] = std::mem::transmute(e);
        let prio = u16::from_ne_bytes([raw[2], raw[3]]) | POLL_FIRST;
        raw[2..4].copy_from_slice(&prio.to_ne_bytes());
        std::mem::transmute(raw)
    }
}

/// Raises the soft open-file limit to the hard one and returns it, capped at 65,536 (the size of
/// the registered-file table: two slots per connection).
fn raise_nofile() -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Safety: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur.min(65_536) as u32
}

fn main() -> Result<(), String> {
    let (listen, upstream) = ringway_floor::addrs()?;
    let fixed = std::env::var("FIXED").map_or(true, |v| v != "0");
    let listener = TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .build(4096)
        .map_err(|e| format!("io_uring: {e}"))?;
    if fixed {
        ring.submitter()
            .register_files_sparse(raise_nofile())
            .map_err(|e| format!("registered files: {e}"))?;
    }
    let bufs = BufRing::new(&ring).map_err(|e| format!("buffer ring: {e}"))?;
    let mut fwd = Fwd {
        ring,
        bufs,
        conns: Vec::new(),
        free: Vec::new(),
        closing: Vec::new(),
        fixed,
        multishot: std::env::var("MULTI").map_or(true, |v| v != "0"),
        poll_first: std::env::var("POLLFIRST").is_ok_and(|v| v == "1"),
        listener: listener.as_raw_fd(),
        upstream,
        pending: Vec::new(),
    };
    fwd.pending.push(
        opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .build()
            .user_data(tag(ACCEPT, 0, 0, 0, 0)),
    );
    let mut done = Vec::with_capacity(1024);
    loop {
        {
            let mut sq = fwd.ring.submission();
            for e in fwd.pending.drain(..) {
                // Safety: every buffer an entry points at lives until its completion.
                if unsafe { sq.push(&e) }.is_err() {
                    return Err("submission queue full".into());
                }
            }
        }
        fwd.ring
            .submit_and_wait(1)
            .map_err(|e| format!("io_uring_enter: {e}"))?;
        fwd.release();
        done.extend(fwd.ring.completion());
        for cqe in done.drain(..) {
            fwd.complete(&cqe);
        }
    }
}
