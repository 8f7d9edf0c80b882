//! The cheapest TCP forwarder on monoio: one upstream connection per client connection and a copy
//! task per direction, no HTTP at all. Same ring flags and ring size as ringway.

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn copy<R: AsyncReadRent, W: AsyncWriteRent>(mut from: R, mut to: W) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let (res, b) = from.read(buf).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
        let (res, b) = to.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
        buf.clear();
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr) {
    let Ok(up) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (client_rd, client_wr) = client.into_split();
    let (up_rd, up_wr) = up.into_split();
    monoio::spawn(copy(up_rd, client_wr));
    copy(client_rd, up_wr).await;
}

fn main() -> Result<(), String> {
    let (listen, upstream) = ringway_floor::addrs()?;
    let mut ring = io_uring::IoUring::builder();
    ring.setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun();
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .uring_builder(ring)
        .with_entries(4096)
        .build()
        .map_err(|e| format!("io_uring runtime: {e}"))?;
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    monoio::spawn(serve(client, upstream));
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    })
}
