//! Listening sockets: for every configured address, one socket per shard, all bound with
//! SO_REUSEPORT so the kernel spreads new connections over the shards without a shared accept queue.
//! Port 0 is resolved by the first bind and reused for the others (tests listen on `127.0.0.1:0`).

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::StartError;
use crate::config::ServerConfig;

/// Returns the resolved addresses and, per shard, its listeners.
pub fn bind_all(
    server: &ServerConfig,
    shards: usize,
) -> Result<(Vec<SocketAddr>, Vec<Vec<TcpListener>>), StartError> {
    let mut per_shard: Vec<Vec<TcpListener>> = (0..shards).map(|_| Vec::new()).collect();
    let mut addrs = Vec::new();
    for &want in &server.listen {
        let mut addr = want;
        for list in per_shard.iter_mut() {
            let l = bind(addr, server.backlog)
                .map_err(|source| StartError::Listen { addr: want, source })?;
            if addr.port() == 0 {
                addr = l
                    .local_addr()
                    .map_err(|source| StartError::Listen { addr: want, source })?;
            }
            list.push(l);
        }
        addrs.push(addr);
    }
    Ok((addrs, per_shard))
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
