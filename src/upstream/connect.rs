//! Opening upstream connections with a deadline, and the TLS handshake for TLS upstreams (under
//! the same deadline: `connect_timeout` bounds connect and handshake together).
//!
//! The socket is created with `socket2` (non-blocking, TCP_NODELAY) and connected; completion is
//! awaited as write readiness under the connection's [`Watch`], so a connect that hangs (SYN to a
//! black hole) is ended by `shutdown(2)` at the deadline instead of lingering in the kernel.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use monoio::net::TcpStream;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::error::{ErrorKind, GatewayError, Retry};
use crate::runtime::watchdog::{Shut, Watch, now_ms};

pub async fn connect(
    addr: SocketAddr,
    watch: &Watch,
    timeout: Duration,
) -> Result<TcpStream, GatewayError> {
    let fail =
        |e: &std::io::Error| GatewayError::io(ErrorKind::UpstreamConnect, e).retry(Retry::Safe);
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(|e| fail(&e))?;
    sock.set_tcp_nodelay(true).map_err(|e| fail(&e))?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(fail(&e)),
    }
    let fd = sock.as_raw_fd();
    let stream = TcpStream::from_std(std::net::TcpStream::from(sock)).map_err(|e| fail(&e))?;
    {
        let _armed = watch.arm(fd, Shut::Both, now_ms() + timeout.as_millis() as u64);
        let ready = stream.writable(false).await;
        if watch.fired() {
            return Err(GatewayError::new(ErrorKind::UpstreamConnectTimeout).retry(Retry::Safe));
        }
        ready.map_err(|e| fail(&e))?;
    }
    match SockRef::from(&stream_fd(&stream)).take_error() {
        Ok(None) => Ok(stream),
        Ok(Some(e)) | Err(e) => Err(fail(&e)),
    }
}

/// A borrowed fd for `socket2::SockRef` (monoio's TcpStream has no `AsFd`).
fn stream_fd(s: &TcpStream) -> std::os::fd::BorrowedFd<'_> {
    // Safety: the fd is owned by `s` and outlives the returned borrow.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(s.as_raw_fd()) }
}

/// Connects to `addr` and, with `tls` (client config and the name to send as SNI and verify),
/// runs the TLS handshake before `deadline` passes. A handshake failure is a connect failure:
/// nothing of the request was sent.
pub async fn connect_stream(
    addr: SocketAddr,
    watch: &Watch,
    timeout: Duration,
    tls: Option<(
        &std::sync::Arc<rustls::ClientConfig>,
        &rustls_pki_types::ServerName<'static>,
    )>,
) -> Result<crate::tls::UpstreamStream, GatewayError> {
    let started = now_ms();
    let tcp = connect(addr, watch, timeout).await?;
    let Some((cfg, name)) = tls else {
        return Ok(crate::tls::MaybeTls::Plain(tcp));
    };
    let fail = |e: &std::io::Error| {
        GatewayError::io(ErrorKind::UpstreamConnect, e)
            .context("the TLS handshake with the upstream")
            .retry(Retry::Safe)
    };
    let session = rustls::ClientConnection::new(cfg.clone(), name.clone())
        .map_err(|e| fail(&std::io::Error::other(e)))?;
    let fd = tcp.as_raw_fd();
    let mut t = Box::new(crate::tls::TlsStream::new(tcp, session));
    let res = {
        let _armed = watch.arm(fd, Shut::Both, started + timeout.as_millis() as u64);
        t.handshake().await
    };
    if watch.fired() {
        return Err(GatewayError::new(ErrorKind::UpstreamConnectTimeout)
            .context("the TLS handshake with the upstream")
            .retry(Retry::Safe));
    }
    res.map_err(|e| fail(&e))?;
    Ok(crate::tls::MaybeTls::Tls(t))
}
