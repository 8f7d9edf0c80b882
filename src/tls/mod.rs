//! TLS for the data plane, with rustls (ring as the crypto provider, chosen explicitly):
//!
//! - [`certs`]: certificates and keys from PEM files, their names and expiry, SNI selection, and the
//!   rustls server config of a TLS listener (ALPN `http/1.1`, TLS 1.2 and 1.3, resumption);
//! - [`stream`]: a TLS connection over a monoio TCP stream that holds no buffer while idle;
//! - [`ClientStream`]: what a client connection reads and writes, plain or TLS, so the request path
//!   is written once for both.

pub mod certs;
pub mod stream;

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent};
use monoio::net::TcpStream;
use rustls::ServerConnection;

pub use stream::TlsStream;

/// A client connection's stream. The TLS state is boxed: rustls' connection is large, and a plain
/// connection should not carry its size.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<ServerConnection>>),
}

impl ClientStream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(t) => t.tcp(),
        }
    }

    /// Waits until the socket is readable (a parked idle connection). With TLS, rustls never holds
    /// plaintext here: the connection parks only after a read found nothing for a while.
    pub async fn readable(&self, relaxed: bool) -> io::Result<()> {
        self.tcp().readable(relaxed).await
    }

    /// The negotiated TLS version (`"TLSv1.3"`), or `None` for plain connections.
    pub fn tls_version(&self) -> Option<&'static str> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(t) => t.session().protocol_version().map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
                _ => "TLS",
            }),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }
}

impl AsRawFd for ClientStream {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }
}

impl AsyncReadRent for ClientStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.read(buf).await,
            ClientStream::Tls(t) => t.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.readv(buf).await,
            ClientStream::Tls(t) => t.readv(buf).await,
        }
    }
}

impl CancelableAsyncReadRent for ClientStream {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.cancelable_read(buf, c).await,
            ClientStream::Tls(t) => t.cancelable_read(buf, c).await,
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.cancelable_readv(buf, c).await,
            ClientStream::Tls(t) => t.cancelable_readv(buf, c).await,
        }
    }
}

impl AsyncWriteRent for ClientStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.write(buf).await,
            ClientStream::Tls(t) => t.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            ClientStream::Plain(s) => s.writev(buf).await,
            ClientStream::Tls(t) => t.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush().await,
            ClientStream::Tls(t) => t.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.shutdown().await,
            ClientStream::Tls(t) => t.shutdown().await,
        }
    }
}
