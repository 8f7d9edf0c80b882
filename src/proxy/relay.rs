//! Streams a message body from one socket to another, one buffer at a time, never holding more than
//! one buffer of it: read → find how much belongs to the body (length / chunk framing / until close)
//! → write those bytes → repeat. Chunked bodies are forwarded as sent (framing validated on the way);
//! for HTTP/1.0 clients the chunk framing is removed.
//!
//! Each read is armed with the source's stall timeout and each write with the destination's, on the
//! shard watchdog. Bytes after the end of the body stay in the buffer (the next pipelined request,
//! or stray upstream bytes that make the upstream connection unusable).

use std::io;
use std::os::fd::RawFd;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;

use crate::config::HttpConfig;
use crate::http::buf::{Buf, Gather, write_gather};
use crate::http::chunked::{ChunkError, ChunkedDecoder};
use crate::runtime::watchdog::{Shut, Watch, now_ms};

/// Body framing state of a message being relayed.
pub enum Body {
    /// Bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Until the source closes.
    Close,
}

impl Body {
    /// The body of a response framed by `framing` (`max_trailer`: the chunked decoder's bound).
    pub fn of_response(framing: crate::http::Framing, max_trailer: usize) -> Body {
        use crate::http::Framing;
        match framing {
            Framing::None => Body::Length(0),
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(ChunkedDecoder::new(max_trailer)),
            Framing::Close => Body::Close,
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            Body::Length(n) => *n == 0,
            Body::Chunked(d) => d.is_done(),
            Body::Close => false,
        }
    }

    /// Takes the part of `data` that belongs to the body. Returns the bytes consumed; data ranges (for
    /// de-chunking) go to `ranges` when given.
    pub fn take(
        &mut self,
        data: &[u8],
        ranges: Option<&mut Vec<(usize, usize)>>,
    ) -> Result<usize, ChunkError> {
        match self {
            Body::Length(n) => {
                let t = (*n).min(data.len() as u64) as usize;
                *n -= t as u64;
                if let Some(r) = ranges {
                    r.push((0, t));
                }
                Ok(t)
            }
            Body::Close => {
                if let Some(r) = ranges {
                    r.push((0, data.len()));
                }
                Ok(data.len())
            }
            Body::Chunked(d) => match ranges {
                Some(r) => d.decode(data, |s, e| r.push((s, e))).map(|p| p.consumed),
                None => d.decode(data, |_, _| {}).map(|p| p.consumed),
            },
        }
    }

    /// Data bytes seen so far by a chunked decoder (for size limits).
    pub fn chunked_data_len(&self) -> u64 {
        match self {
            Body::Chunked(d) => d.data_len,
            _ => 0,
        }
    }
}

/// Where the first bytes of a body go for the call record (`call_log` with a route's
/// `capture_body`): body data only (chunk framing removed), at most `cap` bytes.
pub struct Capture<'a> {
    pub out: &'a mut Vec<u8>,
    pub cap: usize,
}

impl Capture<'_> {
    pub fn full(&self) -> bool {
        self.out.len() >= self.cap
    }

    /// Keeps the body data at `ranges` of `data`, up to the cap.
    pub fn take(&mut self, data: &[u8], ranges: &[(usize, usize)]) {
        for &(s, e) in ranges {
            let room = self.cap.saturating_sub(self.out.len());
            if room == 0 {
                break;
            }
            self.out.extend_from_slice(&data[s..e.min(s + room)]);
        }
    }
}

/// Which end failed.
#[derive(Debug)]
pub enum RelayError {
    SrcTimeout,
    /// The source closed before the body ended.
    SrcClosed,
    SrcIo(io::Error),
    DstTimeout,
    DstIo(io::Error),
    Chunk(ChunkError),
    /// A chunked request body went over the route's limit.
    TooLarge,
}

/// The socket a body is read from (a TCP stream, or a client's plain-or-TLS stream), with its
/// stall timeout.
pub struct Source<'a, R = TcpStream> {
    pub stream: &'a mut R,
    pub fd: RawFd,
    pub timeout_ms: u64,
    /// How a stalled source is shut: `Read` for a client, so its 408 can still be written.
    pub shut: Shut,
}

impl<'a, R> Source<'a, R> {
    /// The client side of a request body: stalls are bounded by `http.body_timeout` and shut
    /// only the reading side.
    pub fn client(stream: &'a mut R, fd: RawFd, http: &HttpConfig) -> Source<'a, R> {
        Source {
            stream,
            fd,
            timeout_ms: http.body_timeout.as_millis() as u64,
            shut: Shut::Read,
        }
    }
}

/// Both ends of a relay. The destination is any writer: a socket, or the write half of one whose
/// read half waits for an early response meanwhile.
pub struct Ends<'a, R, W> {
    pub src: Source<'a, R>,
    pub dst: &'a mut W,
    pub dst_fd: RawFd,
    pub dst_timeout_ms: u64,
}

/// Writes bytes of `buf`, laid out in the gather list `g` by `layout` (a rewritten head, body
/// ranges), in one write (see [`write_gather`]): `buf` is lent to the gather for the write and comes
/// back with it.
/// The write is armed with a stall deadline of `timeout_ms` on `fd`. An empty layout writes nothing.
pub async fn send<W: AsyncWriteRent>(
    dst: &mut W,
    fd: RawFd,
    timeout_ms: u64,
    watch: &Watch,
    g: &mut Gather,
    buf: &mut Buf,
    layout: impl FnOnce(&mut Gather),
) -> io::Result<()> {
    let mut out = std::mem::take(g);
    out.main = std::mem::take(buf);
    layout(&mut out);
    let (res, mut out) = {
        let _armed = watch.arm(fd, Shut::Both, now_ms() + timeout_ms);
        write_gather(dst, out).await
    };
    *buf = std::mem::take(&mut out.main);
    *g = out;
    res
}

/// Relays the rest of `body` from `ends.src` to `ends.dst`. `buf` may hold body bytes already read.
/// `dechunk`: remove chunked framing. `limit`: most data bytes of a chunked body. `moved` counts
/// the body bytes taken from the source (framing included).
#[allow(clippy::too_many_arguments)]
pub async fn relay<R: AsyncReadRent, W: AsyncWriteRent>(
    mut ends: Ends<'_, R, W>,
    buf: &mut Buf,
    g: &mut Gather,
    body: &mut Body,
    watch: &Watch,
    dechunk: bool,
    limit: u64,
    moved: &mut u64,
    mut capture: Option<Capture<'_>>,
) -> Result<(), RelayError> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    loop {
        if !buf.is_empty() {
            ranges.clear();
            let capturing = capture.as_ref().is_some_and(|c| !c.full());
            let consumed = body
                .take(buf.data(), (dechunk || capturing).then_some(&mut ranges))
                .map_err(RelayError::Chunk)?;
            if capturing {
                if let Some(c) = capture.as_mut() {
                    c.take(buf.data(), &ranges);
                }
            }
            if body.chunked_data_len() > limit {
                return Err(RelayError::TooLarge);
            }
            if consumed > 0 {
                let res = send(
                    ends.dst,
                    ends.dst_fd,
                    ends.dst_timeout_ms,
                    watch,
                    g,
                    buf,
                    |out| {
                        out.reset();
                        if dechunk {
                            for &(s, e) in &ranges {
                                out.push_main(s, e);
                            }
                        } else {
                            out.push_main(0, consumed);
                        }
                    },
                )
                .await;
                if let Err(e) = res {
                    return Err(if watch.fired() {
                        RelayError::DstTimeout
                    } else {
                        RelayError::DstIo(e)
                    });
                }
                buf.consume(consumed);
                *moved += consumed as u64;
            }
            if body.is_done() {
                return Ok(());
            }
        } else if body.is_done() {
            return Ok(());
        }
        if !buf.make_room(buf.capacity().max(1024)) {
            // Only reachable with a full buffer the decoder could not consume, which it always can.
            return Err(RelayError::Chunk(ChunkError::BadSize));
        }
        if !read_src(&mut ends.src, watch, buf).await? {
            return if matches!(body, Body::Close) {
                Ok(())
            } else {
                Err(RelayError::SrcClosed)
            };
        }
    }
}

/// Reads the rest of a short Content-Length body into `buf` as long as it fits in the free room, so
/// that the head it follows can leave together with the whole body in one write: one segment and
/// one wake-up for the receiver instead of two (what nginx's `postpone_output` buys it). Chunked and
/// close-delimited bodies (streams, server-sent events) are never waited for. Returns the body bytes
/// read and, if reading failed, how; bytes read before a failure still count.
pub async fn read_short_body<R: AsyncReadRent>(
    src: &mut Source<'_, R>,
    watch: &Watch,
    buf: &mut Buf,
    body: &mut Body,
) -> (usize, Result<(), RelayError>) {
    let mut got = 0;
    while let Body::Length(left) = body {
        if *left == 0 || *left > buf.spare() as u64 {
            break;
        }
        let before = buf.len();
        match read_src(src, watch, buf).await {
            Ok(true) => {
                let t = ((buf.len() - before) as u64).min(*left);
                *left -= t;
                got += t as usize;
            }
            Ok(false) => return (got, Err(RelayError::SrcClosed)),
            Err(e) => return (got, Err(e)),
        }
    }
    (got, Ok(()))
}

/// One read from `src` into `buf` under its stall deadline. `Ok(false)`: the source closed.
async fn read_src<R: AsyncReadRent>(
    src: &mut Source<'_, R>,
    watch: &Watch,
    buf: &mut Buf,
) -> Result<bool, RelayError> {
    let b = std::mem::take(buf);
    let (res, b) = {
        let _armed = watch.arm(src.fd, src.shut, now_ms() + src.timeout_ms);
        src.stream.read(b).await
    };
    *buf = b;
    match res {
        Ok(n) if n > 0 => Ok(true),
        Ok(_) | Err(_) if watch.fired() => Err(RelayError::SrcTimeout),
        Ok(_) => Ok(false),
        Err(e) => Err(RelayError::SrcIo(e)),
    }
}

/// One step of reading a body whole or piece by piece (the AI routes, which parse what they
/// read): hands the body data in `buf` (chunk framing removed) to `on_data` and consumes it, or,
/// when there is none yet, reads once. `Ok(true)`: the body ended (a close-delimited one with the
/// source's close). `ranges` is scratch space, reused from step to step.
pub async fn body_step<R: AsyncReadRent>(
    src: &mut Source<'_, R>,
    watch: &Watch,
    buf: &mut Buf,
    body: &mut Body,
    ranges: &mut Vec<(usize, usize)>,
    mut on_data: impl FnMut(&[u8]),
) -> Result<bool, RelayError> {
    if !buf.is_empty() {
        ranges.clear();
        let consumed = body
            .take(buf.data(), Some(&mut *ranges))
            .map_err(RelayError::Chunk)?;
        for &(s, e) in ranges.iter() {
            on_data(&buf.data()[s..e]);
        }
        buf.consume(consumed);
        if body.is_done() {
            return Ok(true);
        }
        if consumed > 0 {
            return Ok(false);
        }
    } else if body.is_done() {
        return Ok(true);
    }
    if !buf.make_room(buf.capacity().max(1024)) {
        return Err(RelayError::Chunk(ChunkError::BadSize));
    }
    if read_src(src, watch, buf).await? {
        Ok(false)
    } else if matches!(body, Body::Close) {
        Ok(true)
    } else {
        Err(RelayError::SrcClosed)
    }
}
