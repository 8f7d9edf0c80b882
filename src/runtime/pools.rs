//! Shard-local free lists of the per-connection working set, so a busy shard allocates nothing per
//! request and an idle connection holds no buffer.
//!
//! A [`Kit`] is what a connection needs while it reads or serves a request: its read buffer, the
//! gather list for writes, and the parsed request and response heads (whose header vectors keep their
//! capacity). Response buffers are lent only while a response is relayed.
//!
//! The lists keep at most `keep` free items; beyond that, returned items are freed so memory goes back
//! to the allocator after a burst.

use std::cell::RefCell;

use crate::http::buf::{Buf, Gather};
use crate::http::{RequestHead, ResponseHead};

/// A connection's working set; see the module docs.
#[derive(Default)]
pub struct Kit {
    pub buf: Buf,
    pub g: Gather,
    pub req: RequestHead,
    pub resp: ResponseHead,
    /// Header lines added to the current request's response (RateLimit-*); cleared per request.
    pub limit_headers: Vec<u8>,
}

pub struct Pools {
    /// Boxed: connections hold a `Box<Kit>` (8 bytes, not ~450), and moving one in and out of the
    /// list must not re-allocate.
    #[allow(clippy::vec_box)]
    kits: RefCell<Vec<Box<Kit>>>,
    bufs: RefCell<Vec<Buf>>,
    buffer_size: usize,
    response_buffer_size: usize,
    keep: usize,
}

impl Pools {
    pub fn new(buffer_size: usize, response_buffer_size: usize, keep: usize) -> Pools {
        Pools {
            kits: RefCell::new(Vec::new()),
            bufs: RefCell::new(Vec::new()),
            buffer_size,
            response_buffer_size,
            keep,
        }
    }

    /// A kit with an empty read buffer of the configured size.
    pub fn kit(&self) -> Box<Kit> {
        if let Some(k) = self.kits.borrow_mut().pop() {
            return k;
        }
        Box::new(Kit {
            buf: Buf::with_capacity(self.buffer_size),
            ..Kit::default()
        })
    }

    /// Returns a kit. Its buffer must be empty (data is not carried over to another connection).
    pub fn put_kit(&self, mut k: Box<Kit>) {
        let mut kits = self.kits.borrow_mut();
        // Buffers grown for a large head go back to the allocator instead of the list.
        if kits.len() < self.keep && k.buf.capacity() == self.buffer_size {
            k.buf.clear();
            k.g.main.clear();
            kits.push(k);
        }
    }

    /// An empty response buffer.
    pub fn buf(&self) -> Buf {
        self.bufs
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Buf::with_capacity(self.response_buffer_size))
    }

    pub fn put_buf(&self, mut b: Buf) {
        let mut bufs = self.bufs.borrow_mut();
        if bufs.len() < self.keep && b.capacity() == self.response_buffer_size {
            b.clear();
            bufs.push(b);
        }
    }
}
