//! A TLS connection over a monoio TCP stream, with rustls doing the protocol and this file moving
//! ciphertext, in monoio's rent style (`AsyncReadRent` / `AsyncWriteRent`).
//!
//! Memory: the ciphertext buffers are not the connection's. Each socket read or write borrows one
//! from a shard-local free list for the time of that operation and gives it back, so a connection
//! waiting for its next request holds only rustls' own state (no 2 × 16 KiB of buffers, as a
//! buffered wrapper would keep per connection). A read in flight owns its buffer, as any
//! rent-style read does; idle connections give even that back when the connection parks.
//!
//! Reads: plaintext rustls already decrypted is handed out first; only when there is none is the
//! socket read, at most [`READ_CHUNK`] bytes at a time (so the decrypted result always fits the
//! plaintext rustls will hold). A clean `close_notify` and a bare TCP close both read as end of
//! stream: HTTP/1.1 framing, not TLS, decides whether a message was complete.
//!
//! Writes: the plaintext is handed to rustls, which encrypts it into records; the records leave in
//! one socket write (a gather list becomes one write, not one per segment).
//!
//! Errors: a protocol error answers the peer with its alert and reads as `InvalidData`.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
    OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use rustls::{ConnectionCommon, SideData};

/// Most ciphertext read from the socket at once. A TLS record is at most 16 KiB of plaintext plus
/// overhead; reading less than rustls' plaintext limit (16 KiB) per turn means the decrypted bytes
/// of one read always fit.
pub const READ_CHUNK: usize = 8 * 1024;

/// Free ciphertext buffers kept per shard thread.
const POOL_MAX: usize = 64;

/// Largest buffer put back (one with a 16 KiB response's records fits).
const KEEP_CAPACITY: usize = 20 * 1024;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buf() -> Vec<u8> {
    POOL.with_borrow_mut(|p| p.pop())
        .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK))
}

fn put_buf(mut b: Vec<u8>) {
    if b.capacity() > KEEP_CAPACITY || b.capacity() < READ_CHUNK {
        return;
    }
    b.clear();
    POOL.with_borrow_mut(|p| {
        if p.len() < POOL_MAX {
            p.push(b);
        }
    });
}

/// A TLS stream: `C` is `rustls::ServerConnection` (termination) or `ClientConnection`.
pub struct TlsStream<C> {
    io: TcpStream,
    tls: C,
}

impl<C, S> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    pub fn new(io: TcpStream, tls: C) -> TlsStream<C> {
        TlsStream { io, tls }
    }

    /// For an idle pooled connection: takes in whatever the peer sent meanwhile without waiting
    /// (TLS 1.3 session tickets arrive after the handshake, often after the first response).
    /// `true` while the connection is still usable: open, and nothing but TLS housekeeping
    /// arrived; application data, a close or an error mean it is not.
    pub fn absorb_pending(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            // Safety: a valid fd and buffer; MSG_DONTWAIT never blocks.
            let n = unsafe {
                libc::recv(
                    self.io.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock {
                    return false;
                }
                break;
            }
            if n == 0 {
                return false;
            }
            let mut rest = &buf[..n as usize];
            while !rest.is_empty() {
                if !matches!(self.tls.read_tls(&mut rest), Ok(1..))
                    || self.tls.process_new_packets().is_err()
                {
                    return false;
                }
            }
        }
        let mut probe = [0u8; 1];
        matches!(self.tls.reader().read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Runs the handshake to its end (the caller bounds it with a deadline on the socket).
    pub async fn handshake(&mut self) -> io::Result<()> {
        while self.tls.is_handshaking() {
            if self.tls.wants_write() {
                self.flush_tls().await?;
                continue;
            }
            if self.fill(None).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
        }
        self.flush_tls().await
    }

    /// Writes every record rustls has ready.
    async fn flush_tls(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            let mut out = take_buf();
            out.clear();
            if let Err(e) = self.tls.write_tls(&mut out) {
                put_buf(out);
                return Err(e);
            }
            let (res, out) = self.io.write_all(out).await;
            put_buf(out);
            res?;
        }
        Ok(())
    }

    /// One socket read fed to rustls. `Ok(true)`: the socket reached end of stream.
    async fn fill(&mut self, cancel: Option<CancelHandle>) -> io::Result<bool> {
        let mut buf = take_buf();
        buf.clear();
        buf.reserve(READ_CHUNK);
        let chunk = ChunkMut(buf);
        let (res, chunk) = match cancel {
            Some(c) => self.io.cancelable_read(chunk, c).await,
            None => self.io.read(chunk).await,
        };
        let buf = chunk.0;
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                put_buf(buf);
                return Err(e);
            }
        };
        let mut rest = &buf[..n];
        let eof = n == 0;
        let fed = loop {
            // An empty `rest` tells rustls the stream ended. Taking nothing of a non-empty `rest`
            // would loop forever: it cannot happen (rustls errs when full), but is an error if so.
            match self.tls.read_tls(&mut rest) {
                Ok(0) if !rest.is_empty() => break Err(io::Error::other("TLS input not taken")),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                break Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            if rest.is_empty() {
                break Ok(());
            }
        };
        put_buf(buf);
        if let Err(e) = fed {
            // Tell the peer why (the alert rustls queued), then fail.
            let _ = self.flush_tls().await;
            return Err(e);
        }
        Ok(eof)
    }

    /// Reads plaintext into `buf`'s spare room (`Ok(0)`: end of stream).
    async fn read_plain<T: IoBufMut>(
        &mut self,
        mut buf: T,
        cancel: Option<CancelHandle>,
    ) -> BufResult<usize, T> {
        loop {
            // Safety: `write_ptr` is valid for `bytes_total` bytes (the IoBufMut contract).
            let spare =
                unsafe { std::slice::from_raw_parts_mut(buf.write_ptr(), buf.bytes_total()) };
            match self.tls.reader().read(spare) {
                Ok(n) => {
                    // Safety: rustls wrote `n` bytes at `write_ptr`.
                    unsafe { buf.set_init(n) };
                    return (Ok(n), buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: an end of stream like any other here.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return (Ok(0), buf),
                Err(e) => return (Err(e), buf),
            }
            // Records rustls owes the peer (a key update, tickets) go before waiting for more.
            if let Err(e) = self.flush_tls().await {
                return (Err(e), buf);
            }
            match self.fill(cancel.clone()).await {
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
        }
    }

    /// Encrypts `parts` and sends the records in one write.
    async fn write_plain(&mut self, parts: &[&[u8]]) -> io::Result<usize> {
        let mut n = 0;
        for p in parts {
            self.tls.writer().write_all(p)?;
            n += p.len();
        }
        self.flush_tls().await?;
        Ok(n)
    }
}

impl<C, S> AsyncReadRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read_plain(buf, None).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // Only the first segment is filled: a short read, which callers handle anyway.
        let (ptr, len) = first_iovec_mut(&mut buf);
        let (res, raw) = self.read_plain(RawChunk { ptr, len, init: 0 }, None).await;
        if let Ok(n) = res {
            let _ = raw;
            // Safety: `n` bytes were written into the first segment.
            unsafe { buf.set_init(n) };
        }
        (res, buf)
    }
}

impl<C, S> CancelableAsyncReadRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        self.read_plain(buf, Some(c)).await
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        let _ = c;
        self.readv(buf).await
    }
}

impl<C, S> AsyncWriteRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // Safety: `read_ptr` is valid for `bytes_init` bytes (the IoBuf contract).
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.write_plain(&[data]).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let iov = buf.read_iovec_ptr();
        let n = buf.read_iovec_len();
        // Safety: the IoVecBuf contract: `n` valid iovecs at `iov`, each valid for its length.
        let parts: Vec<&[u8]> = (0..n)
            .map(|i| unsafe {
                let v = &*iov.add(i);
                std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len)
            })
            .collect();
        let res = self.write_plain(&parts).await;
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        self.flush_tls().await?;
        self.io.shutdown().await
    }
}

impl<C> AsRawFd for TlsStream<C> {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

/// A pooled ciphertext buffer lent to one socket read: its spare room up to [`READ_CHUNK`].
struct ChunkMut(Vec<u8>);

// Safety: the pointer is the Vec's, stable while the value is owned by the runtime (it is not
// touched meanwhile); `bytes_total` never exceeds the capacity.
unsafe impl IoBufMut for ChunkMut {
    fn write_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    fn bytes_total(&mut self) -> usize {
        self.0.capacity().min(READ_CHUNK)
    }

    unsafe fn set_init(&mut self, pos: usize) {
        // Safety: the runtime wrote `pos` bytes from the start (within capacity).
        unsafe { self.0.set_len(pos) };
    }
}

/// The first segment of a caller's iovec list, as a plain buffer for one plaintext read.
struct RawChunk {
    ptr: *mut u8,
    len: usize,
    init: usize,
}

// Safety: used only while the caller's iovec buffer is held by the same read.
unsafe impl IoBufMut for RawChunk {
    fn write_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    fn bytes_total(&mut self) -> usize {
        self.len
    }

    unsafe fn set_init(&mut self, pos: usize) {
        self.init = pos;
    }
}

fn first_iovec_mut<T: IoVecBufMut>(buf: &mut T) -> (*mut u8, usize) {
    let iov = buf.write_iovec_ptr();
    if buf.write_iovec_len() == 0 {
        return (std::ptr::null_mut(), 0);
    }
    // Safety: at least one valid iovec at `iov` (the IoVecBufMut contract).
    let v = unsafe { &*iov };
    (v.iov_base as *mut u8, v.iov_len)
}

/// The two halves of a [`TlsStream`], for tunnels that read and write at once. They share the
/// rustls session through a `RefCell` that is only ever borrowed between awaits (never across
/// one), so the halves cannot collide; each owns its half of the socket.
pub struct TlsRead<C> {
    io: OwnedReadHalf<TcpStream>,
    tls: Rc<RefCell<C>>,
}

pub struct TlsWrite<C> {
    io: OwnedWriteHalf<TcpStream>,
    tls: Rc<RefCell<C>>,
}

fn busy() -> io::Error {
    io::Error::other("TLS session in use by the other half")
}

impl<C> TlsStream<C> {
    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }

    pub fn session(&self) -> &C {
        &self.tls
    }

    pub fn session_mut(&mut self) -> &mut C {
        &mut self.tls
    }

    /// Puts halves of [`TlsStream::into_split`] back together (`None`: not halves of one stream).
    pub fn reunite(r: TlsRead<C>, w: TlsWrite<C>) -> Option<TlsStream<C>> {
        if !Rc::ptr_eq(&r.tls, &w.tls) {
            return None;
        }
        drop(w.tls);
        let io = r.io.reunite(w.io).ok()?;
        let tls = Rc::try_unwrap(r.tls).ok()?.into_inner();
        Some(TlsStream { io, tls })
    }

    pub fn into_split(self) -> (TlsRead<C>, TlsWrite<C>) {
        let (r, w) = self.io.into_split();
        let tls = Rc::new(RefCell::new(self.tls));
        (
            TlsRead {
                io: r,
                tls: tls.clone(),
            },
            TlsWrite { io: w, tls },
        )
    }
}

impl<C, S> AsyncReadRent for TlsRead<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            {
                let Ok(mut tls) = self.tls.try_borrow_mut() else {
                    return (Err(busy()), buf);
                };
                // Safety: `write_ptr` is valid for `bytes_total` bytes (the IoBufMut contract).
                let spare =
                    unsafe { std::slice::from_raw_parts_mut(buf.write_ptr(), buf.bytes_total()) };
                match tls.reader().read(spare) {
                    Ok(n) => {
                        // Safety: rustls wrote `n` bytes at `write_ptr`.
                        unsafe { buf.set_init(n) };
                        return (Ok(n), buf);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return (Ok(0), buf),
                    Err(e) => return (Err(e), buf),
                }
            }
            let mut chunk = take_buf();
            chunk.clear();
            chunk.reserve(READ_CHUNK);
            let (res, chunk) = self.io.read(ChunkMut(chunk)).await;
            let chunk = chunk.0;
            let n = match res {
                Ok(n) => n,
                Err(e) => {
                    put_buf(chunk);
                    return (Err(e), buf);
                }
            };
            let fed = match self.tls.try_borrow_mut() {
                Err(_) => Err(busy()),
                Ok(mut tls) => {
                    let mut rest = &chunk[..n];
                    loop {
                        match tls.read_tls(&mut rest) {
                            Ok(0) if !rest.is_empty() => {
                                break Err(io::Error::other("TLS input not taken"));
                            }
                            Ok(_) => {}
                            Err(e) => break Err(e),
                        }
                        if let Err(e) = tls.process_new_packets() {
                            break Err(io::Error::new(io::ErrorKind::InvalidData, e));
                        }
                        if rest.is_empty() {
                            break Ok(());
                        }
                    }
                }
            };
            put_buf(chunk);
            // Records the session owes the peer now (an alert, a key update) leave with the write
            // half's next write.
            if let Err(e) = fed {
                return (Err(e), buf);
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "vectored reads of a TLS read half",
            )),
            buf,
        )
    }
}

impl<C, S> TlsWrite<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn flush_tls(&mut self) -> io::Result<()> {
        loop {
            let mut out = take_buf();
            out.clear();
            let wrote = {
                let mut tls = self.tls.try_borrow_mut().map_err(|_| busy())?;
                if !tls.wants_write() {
                    None
                } else {
                    Some(tls.write_tls(&mut out))
                }
            };
            match wrote {
                None => {
                    put_buf(out);
                    return Ok(());
                }
                Some(Err(e)) => {
                    put_buf(out);
                    return Err(e);
                }
                Some(Ok(_)) => {
                    let (res, out) = self.io.write_all(out).await;
                    put_buf(out);
                    res?;
                }
            }
        }
    }
}

impl<C, S> AsyncWriteRent for TlsWrite<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // Safety: `read_ptr` is valid for `bytes_init` bytes (the IoBuf contract).
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let queued = match self.tls.try_borrow_mut() {
            Ok(mut tls) => tls.writer().write_all(data).map(|()| data.len()),
            Err(_) => Err(busy()),
        };
        let res = match queued {
            Ok(n) => self.flush_tls().await.map(|()| n),
            Err(e) => Err(e),
        };
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "vectored writes of a TLS write half",
            )),
            buf,
        )
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        if let Ok(mut tls) = self.tls.try_borrow_mut() {
            tls.send_close_notify();
        }
        self.flush_tls().await?;
        self.io.shutdown().await
    }
}
