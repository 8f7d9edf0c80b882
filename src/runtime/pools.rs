//! Shard-local free lists of the per-connection working set, so a busy shard allocates nothing per
//! request and an idle connection holds no buffer.
//!
//! A [`Kit`] is what a connection needs while it reads or serves a request: its read buffer, the
//! gather list for writes, and the parsed request and response heads (whose header vectors keep their
//! capacity). Response buffers are lent only while a response is relayed.
//!
//! Each list holds as many free items as the shard's concurrency needs (up to [`MAX_FREE`]), and on
//! every [`Pools::trim`] (once a second) frees those that sat unused since the previous trim, down to
//! `keep`: a steady load reuses its buffers, and memory goes back to the allocator after a burst.

use std::cell::{Cell, RefCell};

use crate::http::buf::{Buf, Gather};
use crate::http::{RequestHead, ResponseHead};

/// A connection's working set; see the module docs.
#[derive(Default)]
pub struct Kit {
    pub buf: Buf,
    pub g: Gather,
    pub req: RequestHead,
    pub resp: ResponseHead,
    /// Header lines added to the current request's response (RateLimit-*, Deprecation); cleared
    /// per request.
    pub response_headers: Vec<u8>,
    /// Header lines added to the current request when forwarded (the caller's identity); cleared
    /// per request.
    pub upstream_headers: Vec<u8>,
    /// The normalized path (and query) when normalization changed it (`RequestCtx::path_rewritten`).
    pub path: Vec<u8>,
    /// What the call record keeps of the current request's head, captured when it is read
    /// ([`crate::proxy::finish::capture_head`]); empty without a call log.
    pub log_head: Vec<u8>,
    /// The first bytes of the current request's and response's bodies, for the call record
    /// (routes with `capture_body`); cleared per request.
    pub capture_req: Vec<u8>,
    pub capture_resp: Vec<u8>,
}

/// Most free items a list holds, whatever the concurrency (a bound on what a burst leaves behind
/// until the next trim).
pub const MAX_FREE: usize = 1024;

pub struct Pools {
    /// Boxed: connections hold a `Box<Kit>` (8 bytes, not ~450), and moving one in and out of the
    /// list must not re-allocate.
    kits: FreeList<Box<Kit>>,
    bufs: FreeList<Buf>,
    buffer_size: usize,
    response_buffer_size: usize,
}

impl Pools {
    /// `keep`: free items each list keeps through a trim.
    pub fn new(buffer_size: usize, response_buffer_size: usize, keep: usize) -> Pools {
        Pools {
            kits: FreeList::new(keep),
            bufs: FreeList::new(keep),
            buffer_size,
            response_buffer_size,
        }
    }

    /// A kit with an empty read buffer of the configured size.
    pub fn kit(&self) -> Box<Kit> {
        self.kits.pop().unwrap_or_else(|| {
            Box::new(Kit {
                buf: Buf::with_capacity(self.buffer_size),
                ..Kit::default()
            })
        })
    }

    /// Returns a kit. Its buffer must be empty (data is not carried over to another connection).
    pub fn put_kit(&self, mut k: Box<Kit>) {
        // Buffers grown for a large head go back to the allocator instead of the list.
        if k.buf.capacity() == self.buffer_size {
            k.buf.clear();
            k.g.main.clear();
            self.kits.push(k);
        }
    }

    /// An empty response buffer.
    pub fn buf(&self) -> Buf {
        self.bufs
            .pop()
            .unwrap_or_else(|| Buf::with_capacity(self.response_buffer_size))
    }

    pub fn put_buf(&self, mut b: Buf) {
        if b.capacity() == self.response_buffer_size {
            b.clear();
            self.bufs.push(b);
        }
    }

    /// Frees the items that stayed in the lists since the last trim, beyond `keep` each.
    pub fn trim(&self) {
        self.kits.trim();
        self.bufs.trim();
    }

    /// Free items held: (kits, response buffers).
    #[cfg(test)]
    fn free_counts(&self) -> (usize, usize) {
        (
            self.kits.items.borrow().len(),
            self.bufs.items.borrow().len(),
        )
    }
}

/// A free list that remembers its low-water mark: items below it were not needed since the last
/// trim.
struct FreeList<T> {
    items: RefCell<Vec<T>>,
    low: Cell<usize>,
    keep: usize,
}

impl<T> FreeList<T> {
    fn new(keep: usize) -> FreeList<T> {
        FreeList {
            items: RefCell::new(Vec::new()),
            low: Cell::new(0),
            keep,
        }
    }

    fn pop(&self) -> Option<T> {
        let mut items = self.items.borrow_mut();
        let item = items.pop();
        self.low.set(self.low.get().min(items.len()));
        item
    }

    fn push(&self, item: T) {
        let mut items = self.items.borrow_mut();
        if items.len() < MAX_FREE {
            items.push(item);
        }
    }

    fn trim(&self) {
        let mut items = self.items.borrow_mut();
        // The bottom of the stack is what went unused the longest.
        let idle = self.low.get().min(items.len()).saturating_sub(self.keep);
        items.drain(..idle);
        self.low.set(items.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_frees_what_a_burst_left_but_keeps_what_a_steady_load_uses() {
        let p = Pools::new(1024, 4096, 2);
        // A burst of 10 concurrent responses.
        let held: Vec<Buf> = (0..10).map(|_| p.buf()).collect();
        held.into_iter().for_each(|b| p.put_buf(b));
        assert_eq!(p.free_counts().1, 10);
        // The burst happened since the last trim: nothing was idle for a whole period yet.
        p.trim();
        assert_eq!(p.free_counts().1, 10);
        // A steady load of 3 at a time until the next trim: 7 sat unused, 5 of them are freed.
        for _ in 0..100 {
            let held: Vec<Buf> = (0..3).map(|_| p.buf()).collect();
            held.into_iter().for_each(|b| p.put_buf(b));
        }
        p.trim();
        assert_eq!(p.free_counts().1, 5);
        // Idle: down to `keep`.
        p.trim();
        assert_eq!(p.free_counts().1, 2);
        // Odd-sized buffers are not kept.
        p.put_buf(Buf::with_capacity(100));
        assert_eq!(p.free_counts().1, 2);
    }
}
