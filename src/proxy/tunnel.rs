//! After `101 Switching Protocols`: bytes flow both ways, unchanged, until either side closes.
//!
//! Each direction is its own loop over its own buffer; a close from one side is passed on as a
//! half-close (`shutdown(SHUT_WR)`) so protocols that finish in one direction first still work, and
//! an error on either side ends both. The watchdog closes a tunnel silent in both directions for
//! `http.tunnel_idle_timeout`.

use std::os::fd::{AsRawFd, RawFd};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::chain::Upgraded;
use super::conn::Conn;
use crate::http::buf::Buf;
use crate::runtime::pools::Kit;
use crate::runtime::watchdog::{Watch, now_ms};

/// Runs the tunnel; consumes the client connection.
pub async fn run(conn: Conn, mut kit: Box<Kit>, up: Upgraded) {
    let Conn {
        shard,
        stream: client,
        fd: client_fd,
        watch,
        ..
    } = conn;
    let Upgraded {
        stream: mut upstream,
        slot,
        idle_timeout,
    } = up;
    let idle_ms = idle_timeout.as_millis() as u64;
    let up_fd = upstream.as_raw_fd();
    let _armed = watch.arm_pair(client_fd, up_fd, now_ms() + idle_ms);

    // Bytes the client sent after its request head belong to the new protocol.
    let mut cbuf = std::mem::take(&mut kit.buf);
    if !cbuf.is_empty() {
        let (res, back) = upstream.write_all(Whole(cbuf)).await;
        cbuf = back.0;
        if res.is_err() {
            finish(&shard, kit, cbuf);
            return;
        }
        cbuf.clear();
    }
    let ubuf = shard.pools.buf();
    let ends = (client_fd, up_fd);
    let (cbuf, ubuf) = both_ways(
        client.into_split(),
        upstream.into_split(),
        (cbuf, ubuf),
        &watch,
        idle_ms,
        ends,
    )
    .await;
    drop(slot);
    shard.pools.put_buf(ubuf);
    finish(&shard, kit, cbuf);
}

fn finish(shard: &crate::state::ShardCtx, mut kit: Box<Kit>, mut cbuf: Buf) {
    cbuf.clear();
    kit.buf = cbuf;
    shard.pools.put_kit(kit);
}

/// Pumps client → upstream and upstream → client at once until both are done.
async fn both_ways<CR, CW, UR, UW>(
    (cr, cw): (CR, CW),
    (ur, uw): (UR, UW),
    (cbuf, ubuf): (Buf, Buf),
    watch: &Watch,
    idle_ms: u64,
    ends: (RawFd, RawFd),
) -> (Buf, Buf)
where
    CR: AsyncReadRent,
    CW: AsyncWriteRent,
    UR: AsyncReadRent,
    UW: AsyncWriteRent,
{
    let ((cbuf, _), (ubuf, _)) = monoio::join!(
        pump(cr, uw, cbuf, watch, idle_ms, ends),
        pump(ur, cw, ubuf, watch, idle_ms, ends)
    );
    (cbuf, ubuf)
}

/// Copies `src` to `dst` until EOF (passed on as a half-close) or an error (which ends both ways).
async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    mut src: R,
    mut dst: W,
    mut buf: Buf,
    watch: &Watch,
    idle_ms: u64,
    ends: (RawFd, RawFd),
) -> (Buf, bool) {
    loop {
        buf.clear();
        let (res, b) = src.read(buf).await;
        buf = b;
        match res {
            Ok(0) => {
                let _ = dst.shutdown().await;
                return (buf, true);
            }
            Ok(_) => {}
            Err(_) => break,
        }
        watch.extend(now_ms() + idle_ms);
        let data = std::mem::take(&mut buf);
        let (res, b) = dst.write_all(Whole(data)).await;
        buf = b.0;
        if res.is_err() {
            break;
        }
    }
    // One side failed: end the other direction too.
    for fd in [ends.0, ends.1] {
        // Safety: both sockets are owned by this tunnel and open until it returns.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
    (buf, false)
}

/// A [`Buf`]'s data as an `IoBuf` for `write_all`.
struct Whole(Buf);

// Safety: the pointer and length describe the Buf's initialised data, which does not move or change
// while the runtime owns it.
unsafe impl monoio::buf::IoBuf for Whole {
    fn read_ptr(&self) -> *const u8 {
        self.0.data().as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.0.len()
    }
}
