//! Listening sockets: for every configured address, one socket per shard, all bound with
//! SO_REUSEPORT so the kernel spreads new connections over the shards without a shared accept queue.
//! Port 0 is resolved by the first bind and reused for the others (tests listen on `127.0.0.1:0`).

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::StartError;
use crate::config::ServerConfig;

/// A shard's listener and whether it speaks TLS.
pub struct Listener {
    pub socket: TcpListener,
    pub tls: bool,
}

/// The resolved addresses (plain, then TLS) and, per shard, its listeners.
pub struct Bound {
    pub plain: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    pub per_shard: Vec<Vec<Listener>>,
}

/// Binds the plain (`server.listen`) and TLS (`tls_listen`) addresses, once per shard.
pub fn bind_all(
    server: &ServerConfig,
    tls_listen: &[SocketAddr],
    shards: usize,
) -> Result<Bound, StartError> {
    let mut per_shard: Vec<Vec<Listener>> = (0..shards).map(|_| Vec::new()).collect();
    let plain = bind_each(&server.listen, server.backlog, false, &mut per_shard)?;
    let tls = bind_each(tls_listen, server.backlog, true, &mut per_shard)?;
    Ok(Bound {
        plain,
        tls,
        per_shard,
    })
}

fn bind_each(
    listen: &[SocketAddr],
    backlog: u32,
    tls: bool,
    per_shard: &mut [Vec<Listener>],
) -> Result<Vec<SocketAddr>, StartError> {
    let mut addrs = Vec::new();
    for &want in listen {
        let mut addr = want;
        for list in per_shard.iter_mut() {
            let l =
                bind(addr, backlog).map_err(|source| StartError::Listen { addr: want, source })?;
            if addr.port() == 0 {
                addr = l
                    .local_addr()
                    .map_err(|source| StartError::Listen { addr: want, source })?;
            }
            list.push(Listener { socket: l, tls });
        }
        addrs.push(addr);
    }
    Ok(addrs)
}

fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(s.into())
}
