//! Owned I/O buffers for monoio's rent-style I/O.
//!
//! [`Buf`] is one connection's read buffer: data lives in `v[start..len]`, reads append after `len`.
//! It is lent to the kernel for each read and handed back with the result, so the same bytes are
//! parsed in place and then written out again without a user-space copy.
//!
//! [`Gather`] is one vectored write: segments that point into a [`Buf`] (header runs, body bytes)
//! interleaved with segments of a small `extra` buffer (a rewritten request line, added headers).
//! Forwarding a head therefore costs one write of the bytes as they were read, minus the removed
//! header lines, plus the added ones: a `writev` of the segments for a long body, and for a head
//! with a short body a `send` of the segments copied end to end into a buffer that is still in the
//! CPU's cache (see [`FLAT_MAX`]: on io_uring that is cheaper than `writev`, copy included).

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf};
use monoio::io::AsyncWriteRent;

/// A connection read buffer; see the module docs.
#[derive(Debug, Default)]
pub struct Buf {
    v: Vec<u8>,
    start: usize,
}

impl Buf {
    pub fn with_capacity(cap: usize) -> Buf {
        Buf {
            v: Vec::with_capacity(cap),
            start: 0,
        }
    }

    /// Bytes read and not yet consumed.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.v[self.start..]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.v.len() - self.start
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.v.len() == self.start
    }

    pub fn capacity(&self) -> usize {
        self.v.capacity()
    }

    /// Room left for the next read.
    #[inline]
    pub fn spare(&self) -> usize {
        self.v.capacity() - self.v.len()
    }

    /// Drops `n` bytes from the front of the data.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.v.len() {
            self.clear();
        }
    }

    #[inline]
    pub fn clear(&mut self) {
        self.v.clear();
        self.start = 0;
    }

    /// Moves the data to the front so the next read has the whole spare capacity. Invalidates spans.
    pub fn compact(&mut self) {
        if self.start > 0 {
            self.v.drain(..self.start);
            self.start = 0;
        }
    }

    /// Makes room for a read: compacts when the tail is full, and grows the capacity to `max` when
    /// even a compacted buffer is full. Returns false when the data already fills `max`.
    pub fn make_room(&mut self, max: usize) -> bool {
        if self.spare() == 0 {
            self.compact();
        }
        if self.spare() == 0 {
            if self.v.len() >= max {
                return false;
            }
            let want = (self.v.capacity() * 2).max(1024).min(max);
            self.v.reserve_exact(want - self.v.len());
        }
        true
    }

    /// Appends bytes (tests and small synthesized responses).
    pub fn extend_from_slice(&mut self, b: &[u8]) {
        self.v.extend_from_slice(b);
    }
}

// Safety: `write_ptr` points at the spare capacity of the Vec, `bytes_total` is its size, and
// `set_init` only marks bytes the kernel wrote as initialised. The Vec's heap allocation does not move
// while the runtime owns the `Buf`.
unsafe impl IoBufMut for Buf {
    #[inline]
    fn write_ptr(&mut self) -> *mut u8 {
        // Safety: `len <= capacity`, so the pointer stays within (or one past) the allocation.
        unsafe { self.v.as_mut_ptr().add(self.v.len()) }
    }

    #[inline]
    fn bytes_total(&mut self) -> usize {
        self.spare()
    }

    #[inline]
    unsafe fn set_init(&mut self, n: usize) {
        // Safety: the caller (monoio) guarantees `n` bytes after `write_ptr` were written.
        unsafe { self.v.set_len(self.v.len() + n) }
    }
}

/// Where a [`Gather`] segment's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    /// In `Gather::main`, relative to `main.data()`.
    Main,
    /// In `Gather::extra`.
    Extra,
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    src: Src,
    start: u32,
    end: u32,
}

/// One write laid out as segments; see the module docs. Its vectors are reused from write to write.
#[derive(Default)]
pub struct Gather {
    pub main: Buf,
    pub extra: Vec<u8>,
    segs: Vec<Seg>,
    iov: Vec<libc::iovec>,
    /// First iovec not yet fully written.
    pos: usize,
}

/// Writes of at most this many bytes are copied into one buffer and sent with a single-buffer
/// `send` rather than a vectored `writev`. On io_uring a `writev` goes through the kernel's
/// read/write path (a kiocb, the file's `write_iter`, the iovec array copied in) before it reaches
/// the socket; a `send` goes to it directly. Below a few KiB the copy costs less than that detour.
pub const FLAT_MAX: usize = 4096;

impl Gather {
    /// Forgets the segments and the `extra` bytes; keeps allocations.
    pub fn reset(&mut self) {
        self.extra.clear();
        self.segs.clear();
        self.iov.clear();
        self.pos = 0;
    }

    /// Adds `main.data()[start..end]`, merging with the previous segment when contiguous.
    pub fn push_main(&mut self, start: usize, end: usize) {
        self.push(Src::Main, start, end);
    }

    /// Adds bytes to `extra` and a segment for them.
    pub fn push_extra(&mut self, bytes: &[u8]) {
        let s = self.extra.len();
        self.extra.extend_from_slice(bytes);
        self.push(Src::Extra, s, self.extra.len());
    }

    /// Marks where the next `extra` bytes start; pair with [`Gather::end_extra`] to add bytes written
    /// into `extra` directly (e.g. with `itoa`).
    pub fn begin_extra(&self) -> usize {
        self.extra.len()
    }

    pub fn end_extra(&mut self, from: usize) {
        let e = self.extra.len();
        self.push(Src::Extra, from, e);
    }

    fn push(&mut self, src: Src, start: usize, end: usize) {
        if start == end {
            return;
        }
        if let Some(last) = self.segs.last_mut() {
            if last.src == src && last.end as usize == start {
                last.end = end as u32;
                return;
            }
        }
        self.segs.push(Seg {
            src,
            start: start as u32,
            end: end as u32,
        });
    }

    /// Total bytes of all segments.
    pub fn total(&self) -> usize {
        self.segs.iter().map(|s| (s.end - s.start) as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Builds the iovecs. Must run after the last push and before the write; `main` and `extra` must
    /// not be modified until the write completes.
    fn prepare(&mut self) {
        self.iov.clear();
        self.pos = 0;
        let main = self.main.data();
        for s in &self.segs {
            let base = match s.src {
                Src::Main => main.as_ptr(),
                Src::Extra => self.extra.as_ptr(),
            };
            self.iov.push(libc::iovec {
                // Safety: segments were pushed as in-bounds ranges of these buffers.
                iov_base: unsafe { base.add(s.start as usize) } as *mut libc::c_void,
                iov_len: (s.end - s.start) as usize,
            });
        }
    }

    /// Marks `n` more bytes as written.
    fn advance(&mut self, mut n: usize) {
        while n > 0 && self.pos < self.iov.len() {
            let v = &mut self.iov[self.pos];
            if n >= v.iov_len {
                n -= v.iov_len;
                self.pos += 1;
            } else {
                // Safety: `n < iov_len`, so the new base stays inside the same segment.
                v.iov_base = unsafe { (v.iov_base as *mut u8).add(n) } as *mut libc::c_void;
                v.iov_len -= n;
                n = 0;
            }
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.iov.len()
    }

    /// Appends every segment to `out`, in order; `total` is [`Gather::total`].
    fn flatten_into(&self, out: &mut Vec<u8>, total: usize) {
        out.clear();
        out.reserve(total);
        let main = self.main.data().as_ptr();
        let extra = self.extra.as_ptr();
        let dst = out.as_mut_ptr();
        let mut at = 0;
        for s in &self.segs {
            let base = match s.src {
                Src::Main => main,
                Src::Extra => extra,
            };
            let len = (s.end - s.start) as usize;
            // Safety: segments were pushed as in-bounds ranges of `main.data()` and `extra`, which
            // do not overlap `out`; their lengths add up to `total`, the capacity reserved above.
            unsafe { std::ptr::copy_nonoverlapping(base.add(s.start as usize), dst.add(at), len) };
            at += len;
        }
        // Safety: the loop initialised `at == total` bytes.
        unsafe { out.set_len(at) };
    }
}

// Safety: the iovecs point into `main` and `extra`, whose heap allocations do not move or change
// while the runtime owns the `Gather` (it is moved, never mutated, during the write), and `pos` never
// exceeds `iov.len()`.
unsafe impl IoVecBuf for Gather {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        // Safety: `pos <= iov.len()`.
        unsafe { self.iov.as_ptr().add(self.pos) }
    }

    fn read_iovec_len(&self) -> usize {
        (self.iov.len() - self.pos).min(1024)
    }
}

/// Bytes to send from a [`FLAT_POOL`] buffer, as one `IoBuf` of the part not yet written.
struct Flat {
    v: Vec<u8>,
    pos: usize,
}

// Safety: `v`'s heap allocation does not move or change while the runtime owns the `Flat`, and
// `pos <= v.len()`.
unsafe impl IoBuf for Flat {
    fn read_ptr(&self) -> *const u8 {
        // Safety: `pos <= v.len()`.
        unsafe { self.v.as_ptr().add(self.pos) }
    }

    fn bytes_init(&self) -> usize {
        self.v.len() - self.pos
    }
}

thread_local! {
    /// The shard's buffers for flattened writes, most recently returned last: the next write takes
    /// the one it wrote last, still in the CPU's cache (a buffer per connection would be cold). A
    /// buffer is held only while its write is in flight, so the pool stays as small as the number
    /// of writes that ever waited for socket space at once.
    static FLAT_POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers kept in [`FLAT_POOL`] at most (128 KiB a shard); more are freed when returned. A write
/// holds one only while the socket has no room for it, which under a normal load is none or one.
const FLAT_POOL_MAX: usize = 32;

/// Writes every segment of `g`, resuming after short writes. Always hands `g` back.
///
/// Up to [`FLAT_MAX`] bytes are copied into a pooled buffer and sent with one `send`; larger writes
/// (long bodies) go out as a vectored `writev` of the segments where they lie.
pub async fn write_gather<S: AsyncWriteRent>(
    stream: &mut S,
    g: Gather,
) -> (io::Result<()>, Gather) {
    let total = g.total();
    if total > FLAT_MAX {
        return write_vectored(stream, g).await;
    }
    let mut f = Flat {
        v: FLAT_POOL
            .with_borrow_mut(|p| p.pop())
            .unwrap_or_else(|| Vec::with_capacity(FLAT_MAX)),
        pos: 0,
    };
    g.flatten_into(&mut f.v, total);
    let res = loop {
        if f.bytes_init() == 0 {
            break Ok(());
        }
        let (r, back) = stream.write(f).await;
        f = back;
        match r {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => f.pos += n,
            Err(e) => break Err(e),
        }
    };
    FLAT_POOL.with_borrow_mut(|p| {
        if p.len() < FLAT_POOL_MAX {
            p.push(f.v);
        }
    });
    (res, g)
}

/// Writes the segments of `g` with `writev`, where they lie.
async fn write_vectored<S: AsyncWriteRent>(
    stream: &mut S,
    mut g: Gather,
) -> (io::Result<()>, Gather) {
    g.prepare();
    while !g.done() {
        let (res, back) = stream.writev(g).await;
        g = back;
        match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), g),
            Ok(n) => g.advance(n),
            Err(e) => return (Err(e), g),
        }
    }
    (Ok(()), g)
}

/// A `'static` byte string as an `IoBuf` (for fixed replies such as `100 Continue`).
pub struct StaticBytes(pub &'static [u8]);

// Safety: a `'static` slice never moves or changes.
unsafe impl IoBuf for StaticBytes {
    fn read_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `main` "0123456789": its bytes 0..3, then "abc" from `extra`, then its bytes 5..10.
    fn three_segments() -> Gather {
        let mut g = Gather::default();
        g.main.extend_from_slice(b"0123456789");
        g.push_main(0, 3);
        g.push_extra(b"abc");
        g.push_main(5, 10);
        g
    }

    #[test]
    fn gather_advances_across_segments() {
        let mut g = three_segments();
        g.prepare();
        assert_eq!(g.iov.len(), 3);
        g.advance(4);
        assert_eq!(g.pos, 1);
        assert_eq!(g.iov[1].iov_len, 2);
        g.advance(2);
        assert_eq!(g.pos, 2);
        g.advance(5);
        assert!(g.done());
    }

    #[test]
    fn flatten_keeps_segment_order() {
        let g = three_segments();
        let mut out = b"stale".to_vec();
        g.flatten_into(&mut out, g.total());
        assert_eq!(out, b"012abc56789");
    }

    /// A connected (client, server) pair of TCP sockets on 127.0.0.1.
    async fn socket_pair() -> (monoio::net::TcpStream, monoio::net::TcpStream) {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = monoio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    /// A short gather (copied and sent) and a long one (vectored), through a real socket.
    #[monoio::test_all]
    async fn write_gather_sends_every_segment_in_order() {
        use monoio::io::AsyncReadRentExt;
        let (mut client, mut server) = socket_pair().await;
        for body in [10usize, 3 * FLAT_MAX] {
            let mut g = Gather::default();
            g.main
                .extend_from_slice(&(0..body + 5).map(|i| i as u8).collect::<Vec<_>>());
            g.push_main(0, 3);
            g.push_extra(b"-added-");
            g.push_main(5, body + 5);
            let mut want = g.main.data()[..3].to_vec();
            want.extend_from_slice(b"-added-");
            want.extend_from_slice(&g.main.data()[5..]);
            let (res, _) = write_gather(&mut client, g).await;
            res.unwrap();
            let (res, got) = server.read_exact(vec![0u8; want.len()]).await;
            res.unwrap();
            assert_eq!(got, want, "{body}-byte body");
        }
    }

    /// Short writes that fill the socket: each waits for room, and the reader still gets every byte
    /// in order. On epoll the sends come back partial (29 of 512 did when this was written) and the
    /// loop resumes them; io_uring finishes a send on a stream socket itself.
    #[monoio::test_all]
    async fn short_writes_resume_when_the_socket_is_full() {
        use monoio::io::AsyncReadRentExt;
        let (mut client, mut server) = socket_pair().await;
        // A small send buffer, so that writes of ~4 KiB meet a full socket and go out in parts.
        use std::os::fd::AsRawFd;
        let sndbuf: libc::c_int = 4096;
        // Safety: a valid socket and a c_int option value of the right size.
        let r = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&sndbuf as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        const WRITES: usize = 512;
        const LEN: usize = FLAT_MAX - 100;
        let pattern = |i: usize| (0..LEN).map(move |j| (i * 31 + j) as u8);
        let reader = monoio::spawn(async move {
            let mut got = Vec::with_capacity(WRITES * LEN);
            while got.len() < WRITES * LEN {
                let (res, buf) = server.read_exact(vec![0u8; LEN]).await;
                res.unwrap();
                got.extend_from_slice(&buf);
            }
            got
        });
        let mut g = Gather::default();
        for i in 0..WRITES {
            g.reset();
            g.main.clear();
            let bytes: Vec<u8> = pattern(i).collect();
            g.main.extend_from_slice(&bytes);
            g.push_main(0, 10);
            g.push_extra(&bytes[10..20]);
            g.push_main(20, LEN);
            let (res, back) = write_gather(&mut client, g).await;
            res.unwrap();
            g = back;
        }
        let got = reader.await;
        for i in 0..WRITES {
            let want: Vec<u8> = pattern(i).collect();
            assert!(
                got[i * LEN..(i + 1) * LEN] == want[..],
                "write {i} arrived changed"
            );
        }
    }

    #[test]
    fn buf_consume_and_room() {
        let mut b = Buf::with_capacity(8);
        b.extend_from_slice(b"abcdefgh");
        assert_eq!(b.spare(), 0);
        b.consume(3);
        assert!(b.make_room(8));
        assert_eq!(b.data(), b"defgh");
        assert_eq!(b.spare(), 3);
        b.extend_from_slice(b"ijk");
        assert!(!b.make_room(8));
        assert!(b.make_room(32));
        assert!(b.spare() > 0);
    }
}
