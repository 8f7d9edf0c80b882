//! What an AI route writes to its client itself: a JSON answer, and a streamed answer's head,
//! chunks and end. Errors go through [`crate::proxy::answer`] like every other error (its body is
//! OpenAI-shaped).

use crate::http::respond::{self, Reply};
use crate::observe::clock;

use super::super::answer::{Answer, client_keep_alive, send_counted};
use super::super::chain::{Cx, Next};

/// The request's id, generated when the client sent none.
pub fn request_id<'c>(cx: &'c mut Cx<'_>) -> &'c [u8] {
    if !cx.ctx.id.is_set() {
        let mut id = [0u8; 24];
        cx.conn.shard.request_id(&mut id);
        cx.ctx.id.set_generated(&id);
    }
    cx.ctx.id.as_bytes()
}

fn reply(cx: &Cx<'_>, keep: bool) -> Reply {
    Reply {
        close: !keep,
        keep_alive_10: cx.ctx.head.keep_alive_10,
        head_only: cx.ctx.head.method == crate::http::Method::Head,
    }
}

/// Whether the connection stays open after this answer: the request was read whole and the
/// client allows it.
fn keep(cx: &Cx<'_>) -> bool {
    cx.ctx.read_whole && client_keep_alive(cx)
}

/// Writes a JSON answer.
pub async fn json(cx: &mut Cx<'_>, status: u16, body: &[u8]) -> Answer {
    raw(cx, status, b"application/json", body).await
}

/// Writes an answer of `content_type`.
pub async fn raw(cx: &mut Cx<'_>, status: u16, content_type: &[u8], body: &[u8]) -> Answer {
    let keep = keep(cx);
    let r = reply(cx, keep);
    request_id(cx);
    let kit = &mut *cx.kit;
    respond::body(
        &mut kit.g,
        status,
        content_type,
        cx.ctx.id.as_bytes(),
        &kit.response_headers,
        body,
        r,
    );
    cx.ctx.status = status;
    if !send_counted(cx, "writing the answer").await {
        return Answer::Sent(Next::Close);
    }
    cx.ctx.timings.last_byte = clock::now();
    Answer::Sent(if keep { Next::KeepAlive } else { Next::Close })
}

/// A streamed answer being written: chunked to HTTP/1.1 clients, close-delimited to HTTP/1.0.
pub struct Stream {
    pub chunked: bool,
    pub keep: bool,
    /// The client is gone (a write failed): nothing more is written.
    pub gone: bool,
}

/// Writes a streamed answer's head (status 200).
pub async fn stream_head(cx: &mut Cx<'_>) -> Stream {
    stream_head_status(cx, 200).await
}

/// Writes a streamed answer's head with `status`.
pub async fn stream_head_status(cx: &mut Cx<'_>, status: u16) -> Stream {
    let chunked = !cx.ctx.head.http10;
    let keep = chunked && keep(cx);
    let r = reply(cx, keep);
    request_id(cx);
    let kit = &mut *cx.kit;
    respond::stream_head(
        &mut kit.g,
        status,
        cx.ctx.id.as_bytes(),
        &kit.response_headers,
        chunked,
        r,
    );
    cx.ctx.status = status;
    let gone = !send_counted(cx, "writing the stream head").await;
    Stream {
        chunked,
        keep,
        gone,
    }
}

impl Stream {
    /// Writes `data` (whole SSE events) and, with `last`, the end of the body. Returns false once
    /// the client is gone.
    pub async fn write(&mut self, cx: &mut Cx<'_>, data: &[u8], last: bool) -> bool {
        if self.gone {
            return false;
        }
        if data.is_empty() && !(last && self.chunked) {
            return true;
        }
        let kit = &mut *cx.kit;
        kit.g.reset();
        let from = kit.g.begin_extra();
        if self.chunked {
            respond::chunk(&mut kit.g.extra, data);
            if last {
                kit.g.extra.extend_from_slice(b"0\r\n\r\n");
            }
        } else {
            kit.g.extra.extend_from_slice(data);
        }
        kit.g.end_extra(from);
        self.gone = !send_counted(cx, "streaming the answer").await;
        !self.gone
    }

    /// How the connection goes on after the stream.
    pub fn next(&self) -> Next {
        if self.keep && !self.gone {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}
