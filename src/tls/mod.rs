//! TLS for the data plane, with rustls (ring as the crypto provider, chosen explicitly):
//!
//! - [`certs`]: certificates and keys from PEM files, their names and expiry, SNI selection, and the
//!   rustls server config of a TLS listener (ALPN `http/1.1`, TLS 1.2 and 1.3, resumption);
//! - [`stream`]: a TLS connection over a monoio TCP stream that holds no buffer while idle;
//! - [`MaybeTls`]: a connection that is plain or TLS, so the request path is written once for both:
//!   [`ClientStream`] towards clients, [`UpstreamStream`] towards upstreams, with halves for tunnels
//!   and full-duplex relays ([`ReadHalf`], [`WriteHalf`]).

pub mod certs;
pub mod stream;

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use std::ops::{Deref, DerefMut};

use monoio::io::{
    AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent, OwnedReadHalf,
    OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use rustls::{ClientConnection, ConnectionCommon, ServerConnection, SideData};

pub use stream::{TlsRead, TlsStream, TlsWrite};

/// A stream that is plain TCP or TLS over it (`C`: rustls' server or client connection). The TLS
/// state is boxed: rustls' connection is large, and a plain connection should not carry its size.
///
/// For the same reason the TLS side's I/O futures are boxed where the traits below dispatch: each
/// of these futures is as large as its largest variant, and every read and write of the request
/// path moves one into its caller. Inline, TLS made every plain read and write carry (and copy) a
/// future several times the size of the socket operation's (a measured `memmove` of 0.7 % of a
/// plain request's CPU); boxed, only TLS operations pay, with an allocation next to a record's
/// encryption.
pub enum MaybeTls<C> {
    Plain(TcpStream),
    Tls(Box<TlsStream<C>>),
}

/// A client connection's stream.
pub type ClientStream = MaybeTls<ServerConnection>;

/// An upstream connection's stream.
pub type UpstreamStream = MaybeTls<ClientConnection>;

/// The reading half of a split [`MaybeTls`].
pub enum ReadHalf<C> {
    Plain(OwnedReadHalf<TcpStream>),
    Tls(TlsRead<C>),
}

/// The writing half of a split [`MaybeTls`].
pub enum WriteHalf<C> {
    Plain(OwnedWriteHalf<TcpStream>),
    Tls(TlsWrite<C>),
}

impl<C> MaybeTls<C> {
    /// Halves that read and write at once (tunnels, a body upload racing an early answer).
    pub fn into_split(self) -> (ReadHalf<C>, WriteHalf<C>) {
        match self {
            MaybeTls::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            MaybeTls::Tls(t) => {
                let (r, w) = t.into_split();
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }

    /// Puts halves of the same stream back together; `None` (both dropped, the socket closed) for
    /// halves that do not belong together, which the callers never pass.
    pub fn reunite(r: ReadHalf<C>, w: WriteHalf<C>) -> Option<MaybeTls<C>> {
        match (r, w) {
            (ReadHalf::Plain(r), WriteHalf::Plain(w)) => r.reunite(w).ok().map(MaybeTls::Plain),
            (ReadHalf::Tls(r), WriteHalf::Tls(w)) => {
                TlsStream::reunite(r, w).map(|t| MaybeTls::Tls(Box::new(t)))
            }
            _ => None,
        }
    }
}

impl<C> MaybeTls<C> {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTls::Plain(s) => s,
            MaybeTls::Tls(t) => t.tcp(),
        }
    }

    /// Waits until the socket is readable (a parked idle connection). With TLS, rustls never holds
    /// plaintext here: the connection parks only after a read found nothing for a while.
    pub async fn readable(&self, relaxed: bool) -> io::Result<()> {
        self.tcp().readable(relaxed).await
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

impl<C, S> MaybeTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// The negotiated TLS version (`"TLSv1.3"`), or `None` for plain connections.
    pub fn tls_version(&self) -> Option<&'static str> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(t) => t.session().protocol_version().map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
                _ => "TLS",
            }),
        }
    }
}

impl<C> AsRawFd for MaybeTls<C> {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }
}

impl<C, S> AsyncReadRent for MaybeTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.read(buf).await,
            MaybeTls::Tls(t) => Box::pin(t.read(buf)).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.readv(buf).await,
            MaybeTls::Tls(t) => Box::pin(t.readv(buf)).await,
        }
    }
}

impl<C, S> CancelableAsyncReadRent for MaybeTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.cancelable_read(buf, c).await,
            MaybeTls::Tls(t) => Box::pin(t.cancelable_read(buf, c)).await,
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.cancelable_readv(buf, c).await,
            MaybeTls::Tls(t) => Box::pin(t.cancelable_readv(buf, c)).await,
        }
    }
}

impl<C, S> AsyncWriteRent for MaybeTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.write(buf).await,
            MaybeTls::Tls(t) => Box::pin(t.write(buf)).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            MaybeTls::Plain(s) => s.writev(buf).await,
            MaybeTls::Tls(t) => Box::pin(t.writev(buf)).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush().await,
            MaybeTls::Tls(t) => Box::pin(t.flush()).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.shutdown().await,
            MaybeTls::Tls(t) => Box::pin(t.shutdown()).await,
        }
    }
}

impl<C, S> AsyncReadRent for ReadHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ReadHalf::Plain(s) => s.read(buf).await,
            ReadHalf::Tls(t) => Box::pin(t.read(buf)).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ReadHalf::Plain(s) => s.readv(buf).await,
            ReadHalf::Tls(t) => Box::pin(t.readv(buf)).await,
        }
    }
}

impl<C, S> AsyncWriteRent for WriteHalf<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            WriteHalf::Plain(s) => s.write(buf).await,
            WriteHalf::Tls(t) => Box::pin(t.write(buf)).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            WriteHalf::Plain(s) => s.writev(buf).await,
            WriteHalf::Tls(t) => Box::pin(t.writev(buf)).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(s) => s.flush().await,
            WriteHalf::Tls(t) => Box::pin(t.flush()).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            WriteHalf::Plain(s) => s.shutdown().await,
            WriteHalf::Tls(t) => Box::pin(t.shutdown()).await,
        }
    }
}
