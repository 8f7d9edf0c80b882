//! A TLS connection over a monoio TCP stream, with rustls doing the protocol and this file moving
//! ciphertext, in monoio's rent style (`AsyncReadRent` / `AsyncWriteRent`).
//!
//! Memory: the ciphertext buffers are not the connection's. Each socket read or write borrows one
//! from a shard-local free list for the time of that operation and gives it back, so a connection
//! waiting for its next request holds only rustls' own state (no 2 × 16 KiB of buffers, as a
//! buffered wrapper would keep per connection). A read in flight owns its buffer, as any
//! rent-style read does; idle connections give even that back when the connection parks.
//!
//! Reads: plaintext rustls already decrypted is handed out first; only when there is none is more
//! ciphertext fed to rustls. rustls takes input only while it holds no plaintext (so it never
//! buffers more than one record's worth); ciphertext it did not take yet waits in `leftover`
//! (a pooled buffer, held only until it is taken) and is fed before the socket is read again. A
//! clean `close_notify` and a bare TCP close both read as end of stream: HTTP/1.1 framing, not
//! TLS, decides whether a message was complete.
//!
//! Writes: the plaintext is handed to rustls in pieces it accepts (its send buffer is bounded),
//! each piece's records leaving before the next is taken; one piece is the common case, and it
//! leaves in one socket write.
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

/// Most ciphertext read from the socket at once.
pub const READ_CHUNK: usize = 16 * 1024;

/// Free ciphertext buffers kept per shard thread.
const POOL_MAX: usize = 64;

/// Largest buffer put back (the records of a 16 KiB write fit).
const KEEP_CAPACITY: usize = 24 * 1024;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buf() -> Vec<u8> {
    let mut b = POOL
        .with_borrow_mut(|p| p.pop())
        .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
    b.clear();
    b
}

fn put_buf(b: Vec<u8>) {
    if b.capacity() > KEEP_CAPACITY || b.capacity() < READ_CHUNK {
        return;
    }
    POOL.with_borrow_mut(|p| {
        if p.len() < POOL_MAX {
            p.push(b);
        }
    });
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// What [`take_plain`] found.
enum Plain {
    /// This many plaintext bytes went into the buffer.
    Got(usize),
    /// The peer closed (close_notify, or the socket ended).
    Closed,
    /// Nothing to hand out yet: feed more ciphertext.
    NeedMore,
}

/// Hands decrypted plaintext out into `buf`'s spare room.
fn take_plain<S: SideData, T: IoBufMut>(
    tls: &mut ConnectionCommon<S>,
    buf: &mut T,
) -> io::Result<Plain> {
    let avail = tls
        .process_new_packets()
        .map_err(invalid)?
        .plaintext_bytes_to_read();
    if avail > 0 {
        let n = avail.min(buf.bytes_total());
        if n == 0 {
            return Ok(Plain::Got(0));
        }
        // Safety: `write_ptr` is valid for `bytes_total` (≥ n) bytes (the IoBufMut contract); the
        // n bytes are zeroed first, so the slice below covers initialised memory.
        let out = unsafe {
            std::ptr::write_bytes(buf.write_ptr(), 0, n);
            std::slice::from_raw_parts_mut(buf.write_ptr(), n)
        };
        let k = tls.reader().read(out)?;
        // Safety: rustls wrote `k` (≤ n) bytes at `write_ptr`.
        unsafe { buf.set_init(k) };
        return Ok(Plain::Got(k));
    }
    let mut probe = [0u8; 1];
    match tls.reader().read(&mut probe) {
        // No plaintext was buffered, so this is `Ok(0)`: close_notify.
        Ok(_) => Ok(Plain::Closed),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Plain::NeedMore),
        // The peer closed without close_notify: an end of stream like any other here.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Plain::Closed),
        Err(e) => Err(e),
    }
}

/// Ciphertext read but not yet taken by rustls.
#[derive(Default)]
struct Inbox {
    /// A pooled buffer and how much of it was taken.
    leftover: Option<(Vec<u8>, usize)>,
}

impl Inbox {
    /// Feeds `data[..n]` (a pooled buffer) to rustls while it wants input; keeps the rest.
    fn feed<S: SideData>(
        &mut self,
        tls: &mut ConnectionCommon<S>,
        data: Vec<u8>,
        from: usize,
    ) -> io::Result<usize> {
        let mut rest = &data[from..];
        let before = rest.len();
        let res = loop {
            if rest.is_empty() || !tls.wants_read() {
                break Ok(());
            }
            match tls.read_tls(&mut rest) {
                // Nothing taken (after close_notify): what follows is discarded by rustls too.
                Ok(0) => {
                    rest = &[];
                    break Ok(());
                }
                Ok(_) => {}
                Err(e) => break Err(e),
            }
            if let Err(e) = tls.process_new_packets() {
                break Err(invalid(e));
            }
        };
        let taken = before - rest.len();
        let left = rest.len();
        if res.is_ok() && left > 0 {
            self.leftover = Some((data, from + taken));
        } else {
            put_buf(data);
        }
        res.map(|()| taken)
    }

    /// Feeds the leftover, if any. `Ok(None)`: there was none.
    fn feed_leftover<S: SideData>(
        &mut self,
        tls: &mut ConnectionCommon<S>,
    ) -> io::Result<Option<usize>> {
        match self.leftover.take() {
            None => Ok(None),
            Some((data, from)) => self.feed(tls, data, from).map(Some),
        }
    }
}

/// A pooled ciphertext buffer lent to one socket read: its spare room up to [`READ_CHUNK`].
struct ChunkMut(Vec<u8>);

// Safety: the pointer is the Vec's, stable while the runtime owns the value (nothing touches it
// meanwhile); `bytes_total` never exceeds the capacity.
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

/// One socket read of ciphertext. `Ok(None)`: the socket reached end of stream.
async fn read_chunk<R: AsyncReadRent + CancelableAsyncReadRent>(
    io: &mut R,
    cancel: Option<CancelHandle>,
) -> io::Result<Option<Vec<u8>>> {
    let mut buf = take_buf();
    buf.reserve(READ_CHUNK);
    let (res, chunk) = match cancel {
        Some(c) => io.cancelable_read(ChunkMut(buf), c).await,
        None => io.read(ChunkMut(buf)).await,
    };
    match res {
        Ok(0) => {
            put_buf(chunk.0);
            Ok(None)
        }
        Ok(_) => Ok(Some(chunk.0)),
        Err(e) => {
            put_buf(chunk.0);
            Err(e)
        }
    }
}

/// Takes `data` into rustls' send buffer in pieces it accepts, sending each piece's records with
/// `send` before taking the next.
async fn write_all_plain<S: SideData, W: AsyncWriteRent>(
    tls: &RefCell<impl DerefMut<Target = ConnectionCommon<S>>>,
    io: &mut W,
    parts: &[&[u8]],
) -> io::Result<usize> {
    let mut total = 0;
    for part in parts {
        let mut p = *part;
        while !p.is_empty() {
            let n = tls
                .try_borrow_mut()
                .map_err(|_| busy())?
                .writer()
                .write(p)?;
            p = &p[n..];
            total += n;
            if n == 0 || !p.is_empty() {
                // rustls' send buffer is full: let it drain first.
                send_records(tls, io).await?;
            }
        }
    }
    send_records(tls, io).await?;
    Ok(total)
}

/// [`write_all_plain`] of an `IoBuf`'s bytes, handing the buffer back.
async fn write_buf<S: SideData, W: AsyncWriteRent, T: IoBuf>(
    tls: &RefCell<impl DerefMut<Target = ConnectionCommon<S>>>,
    io: &mut W,
    buf: T,
) -> BufResult<usize, T> {
    // Safety: `read_ptr` is valid for `bytes_init` bytes (the IoBuf contract), and `buf` is not
    // touched while the slice lives.
    let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
    let res = write_all_plain(tls, io, &[data]).await;
    (res, buf)
}

/// Writes every record rustls has ready.
async fn send_records<S: SideData, W: AsyncWriteRent>(
    tls: &RefCell<impl DerefMut<Target = ConnectionCommon<S>>>,
    io: &mut W,
) -> io::Result<()> {
    loop {
        let mut out = take_buf();
        let wrote = {
            let mut t = tls.try_borrow_mut().map_err(|_| busy())?;
            if t.wants_write() {
                Some(t.write_tls(&mut out))
            } else {
                None
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
                let (res, out) = io.write_all(out).await;
                put_buf(out);
                res?;
            }
        }
    }
}

fn busy() -> io::Error {
    io::Error::other("TLS session in use by the other half")
}

/// A TLS stream: `C` is `rustls::ServerConnection` (termination) or `ClientConnection`. The session
/// sits in a `RefCell` so the same code serves the whole stream and its split halves; it is only
/// ever borrowed between awaits, never across one.
pub struct TlsStream<C> {
    io: TcpStream,
    tls: RefCell<C>,
    inbox: Inbox,
}

impl<C> TlsStream<C> {
    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }

    pub fn session(&self) -> std::cell::Ref<'_, C> {
        self.tls.borrow()
    }

    /// Splits the stream for tunnels that read and write at once.
    pub fn into_split(self) -> (TlsRead<C>, TlsWrite<C>) {
        let (r, w) = self.io.into_split();
        let tls = Rc::new(self.tls);
        (
            TlsRead {
                io: r,
                tls: tls.clone(),
                inbox: self.inbox,
            },
            TlsWrite { io: w, tls },
        )
    }

    /// Puts halves of [`TlsStream::into_split`] back together (`None`: not halves of one stream).
    pub fn reunite(r: TlsRead<C>, w: TlsWrite<C>) -> Option<TlsStream<C>> {
        if !Rc::ptr_eq(&r.tls, &w.tls) {
            return None;
        }
        drop(w.tls);
        let io = r.io.reunite(w.io).ok()?;
        let tls = Rc::try_unwrap(r.tls).ok()?;
        Some(TlsStream {
            io,
            tls,
            inbox: r.inbox,
        })
    }
}

impl<C, S> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    pub fn new(io: TcpStream, tls: C) -> TlsStream<C> {
        TlsStream {
            io,
            tls: RefCell::new(tls),
            inbox: Inbox::default(),
        }
    }

    /// For an idle pooled connection: takes in whatever the peer sent meanwhile without waiting
    /// (TLS 1.3 session tickets arrive after the handshake, often after the first response).
    /// `true` while the connection is still usable: open, and nothing but TLS housekeeping
    /// arrived; application data, a close or an error mean it is not.
    pub fn absorb_pending(&mut self) -> bool {
        let tls = self.tls.get_mut();
        if self.inbox.leftover.is_some() {
            return false;
        }
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
                if io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                    return false;
                }
                break;
            }
            if n == 0 {
                return false;
            }
            let mut rest = &buf[..n as usize];
            while !rest.is_empty() {
                // Housekeeping records never fill rustls' plaintext buffer; data would, and is
                // stray anyway.
                if !tls.wants_read()
                    || !matches!(tls.read_tls(&mut rest), Ok(1..))
                    || tls.process_new_packets().is_err()
                {
                    return false;
                }
            }
        }
        let mut probe = [0u8; 1];
        matches!(tls.reader().read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Runs the handshake to its end (the caller bounds it with a deadline on the socket).
    pub async fn handshake(&mut self) -> io::Result<()> {
        loop {
            if !self.tls.get_mut().is_handshaking() {
                return send_records(&self.tls, &mut self.io).await;
            }
            if self.tls.get_mut().wants_write() {
                send_records(&self.tls, &mut self.io).await?;
                continue;
            }
            if self.fill(None).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
        }
    }

    /// Feeds rustls more ciphertext: the leftover, else one socket read. `Ok(true)`: the socket
    /// reached end of stream (rustls is told).
    async fn fill(&mut self, cancel: Option<CancelHandle>) -> io::Result<bool> {
        let fed = match self.inbox.feed_leftover(self.tls.get_mut()) {
            Ok(Some(0)) => Err(io::Error::other("TLS input not taken")),
            Ok(Some(_)) => return Ok(false),
            Ok(None) => match read_chunk(&mut self.io, cancel).await {
                Ok(Some(chunk)) => self.inbox.feed(self.tls.get_mut(), chunk, 0).map(|_| false),
                Ok(None) => {
                    // An empty read tells rustls the stream ended.
                    let tls = self.tls.get_mut();
                    let _ = tls.read_tls(&mut &[][..]);
                    tls.process_new_packets().map(|_| true).map_err(invalid)
                }
                Err(e) => return Err(e),
            },
            Err(e) => Err(e),
        };
        if fed.is_err() {
            // Tell the peer why (the alert rustls queued), then fail.
            let _ = send_records(&self.tls, &mut self.io).await;
        }
        fed
    }

    /// Reads plaintext into `buf`'s spare room (`Ok(0)`: end of stream).
    async fn read_plain<T: IoBufMut>(
        &mut self,
        mut buf: T,
        cancel: Option<CancelHandle>,
    ) -> BufResult<usize, T> {
        loop {
            match take_plain(self.tls.get_mut(), &mut buf) {
                Ok(Plain::Got(n)) => return (Ok(n), buf),
                Ok(Plain::Closed) => return (Ok(0), buf),
                Ok(Plain::NeedMore) => {}
                Err(e) => {
                    let _ = send_records(&self.tls, &mut self.io).await;
                    return (Err(e), buf);
                }
            }
            // Records rustls owes the peer (a key update, tickets) go before waiting for more.
            if let Err(e) = send_records(&self.tls, &mut self.io).await {
                return (Err(e), buf);
            }
            if let Err(e) = self.fill(cancel.clone()).await {
                return (Err(e), buf);
            }
        }
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

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        unsupported_readv(buf)
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
        _c: CancelHandle,
    ) -> BufResult<usize, T> {
        unsupported_readv(buf)
    }
}

/// Vectored reads: nothing in the gateway makes them on a TLS stream; refused rather than half
/// supported.
fn unsupported_readv<T>(buf: T) -> BufResult<usize, T> {
    (
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "vectored reads of a TLS stream",
        )),
        buf,
    )
}

/// The byte slices of an iovec list.
fn iovec_parts<T: IoVecBuf>(buf: &T) -> Vec<&[u8]> {
    let iov = buf.read_iovec_ptr();
    let n = buf.read_iovec_len();
    (0..n)
        // Safety: the IoVecBuf contract: `n` valid iovecs at `iov`, each valid for its length
        // while `buf` is borrowed.
        .map(|i| unsafe {
            let v = &*iov.add(i);
            if v.iov_len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len)
            }
        })
        .collect()
}

impl<C, S> AsyncWriteRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        write_buf(&self.tls, &mut self.io, buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let res = write_all_plain(&self.tls, &mut self.io, &iovec_parts(&buf)).await;
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        send_records(&self.tls, &mut self.io).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.tls.get_mut().send_close_notify();
        send_records(&self.tls, &mut self.io).await?;
        self.io.shutdown().await
    }
}

impl<C> AsRawFd for TlsStream<C> {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

/// The reading half of a split [`TlsStream`]. Records the session owes the peer because of what it
/// read (an alert, a key update) leave with the write half's next write.
pub struct TlsRead<C> {
    io: OwnedReadHalf<TcpStream>,
    tls: Rc<RefCell<C>>,
    inbox: Inbox,
}

/// The writing half of a split [`TlsStream`].
pub struct TlsWrite<C> {
    io: OwnedWriteHalf<TcpStream>,
    tls: Rc<RefCell<C>>,
}

impl<C, S> AsyncReadRent for TlsRead<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            let found = match self.tls.try_borrow_mut() {
                Ok(mut tls) => take_plain(&mut tls, &mut buf),
                Err(_) => Err(busy()),
            };
            match found {
                Ok(Plain::Got(n)) => return (Ok(n), buf),
                Ok(Plain::Closed) => return (Ok(0), buf),
                Ok(Plain::NeedMore) => {}
                Err(e) => return (Err(e), buf),
            }
            let fed = {
                let Ok(mut tls) = self.tls.try_borrow_mut() else {
                    return (Err(busy()), buf);
                };
                self.inbox.feed_leftover(&mut tls)
            };
            let fed = match fed {
                Ok(Some(0)) => Err(io::Error::other("TLS input not taken")),
                Ok(Some(_)) => Ok(()),
                Err(e) => Err(e),
                Ok(None) => match self.read_more().await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = fed {
                return (Err(e), buf);
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        unsupported_readv(buf)
    }
}

impl<C, S> TlsRead<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// One socket read fed to the session (an end of stream is passed on to it).
    async fn read_more(&mut self) -> io::Result<()> {
        let mut buf = take_buf();
        buf.reserve(READ_CHUNK);
        let (res, chunk) = self.io.read(ChunkMut(buf)).await;
        let chunk = chunk.0;
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                put_buf(chunk);
                return Err(e);
            }
        };
        let mut tls = self.tls.try_borrow_mut().map_err(|_| busy())?;
        if n == 0 {
            put_buf(chunk);
            let _ = tls.read_tls(&mut &[][..]);
            return tls.process_new_packets().map(|_| ()).map_err(invalid);
        }
        self.inbox.feed(&mut tls, chunk, 0).map(|_| ())
    }
}

impl<C, S> AsyncWriteRent for TlsWrite<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        write_buf(&self.tls, &mut self.io, buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let res = write_all_plain(&self.tls, &mut self.io, &iovec_parts(&buf)).await;
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        send_records(&self.tls, &mut self.io).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        if let Ok(mut tls) = self.tls.try_borrow_mut() {
            tls.send_close_notify();
        }
        send_records(&self.tls, &mut self.io).await?;
        self.io.shutdown().await
    }
}
