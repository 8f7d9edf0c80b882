//! Shared argument handling for the two floor forwarders in `src/bin/`.

use std::net::SocketAddr;

/// `LISTEN UPSTREAM` from the command line, both `host:port`.
pub fn addrs() -> Result<(SocketAddr, SocketAddr), String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: <forwarder> LISTEN_ADDR UPSTREAM_ADDR (both host:port)";
    let listen = args.next().ok_or(usage)?;
    let upstream = args.next().ok_or(usage)?;
    let parse = |s: &str| {
        s.parse::<SocketAddr>()
            .map_err(|e| format!("{s}: {e}; {usage}"))
    };
    Ok((parse(&listen)?, parse(&upstream)?))
}
