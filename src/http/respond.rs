//! Responses the gateway writes itself: JSON errors and static-route responses, rendered into a
//! [`Gather`]'s `extra` buffer (no allocation once the buffer has grown).

use super::buf::Gather;

/// The reason phrase for a status code (RFC 9110 §15).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        // nginx's code for a request whose client went away before the answer: only ever logged,
        // but a head written with it must still read well.
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Connection handling of a gateway-written response.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// Close the connection after the response.
    pub close: bool,
    /// HTTP/1.0 client that asked for keep-alive (needs `connection: keep-alive`).
    pub keep_alive_10: bool,
    /// HEAD request: headers only.
    pub head_only: bool,
}

fn status_line(out: &mut Vec<u8>, status: u16) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(b.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn connection(out: &mut Vec<u8>, reply: Reply) {
    if reply.close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if reply.keep_alive_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
}

fn content_length(out: &mut Vec<u8>, n: usize) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(b.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The OpenAI-style `type` of an error with this status, so that the AI SDKs (and anyone else)
/// get a class of error besides the code.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Renders `{"error":{"code":..,"message":..,"type":..}}` (the shape OpenAI's API answers
/// errors in, which its SDKs read) with its head into `g` (which must be reset).
/// `extra_headers` are complete header lines (`"name: value\r\n"`).
pub fn error(
    g: &mut Gather,
    status: u16,
    code: &str,
    message: &str,
    request_id: &[u8],
    extra_headers: &[u8],
    reply: Reply,
) {
    g.reset();
    let from = g.begin_extra();
    let out = &mut g.extra;
    status_line(out, status);
    out.extend_from_slice(b"content-type: application/json\r\nserver: ringway\r\nx-request-id: ");
    out.extend_from_slice(request_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra_headers);
    connection(out, reply);
    // Body: render after the head, then splice its length in front of it.
    let body_start = out.len();
    out.extend_from_slice(b"{\"error\":{\"code\":\"");
    json_escape(out, code.as_bytes());
    out.extend_from_slice(b"\",\"message\":\"");
    json_escape(out, message.as_bytes());
    out.extend_from_slice(b"\",\"type\":\"");
    out.extend_from_slice(error_type(status).as_bytes());
    out.extend_from_slice(b"\"}}\n");
    let body_len = out.len() - body_start;
    let mut cl = Vec::with_capacity(40);
    content_length(&mut cl, body_len);
    cl.extend_from_slice(b"\r\n");
    out.splice(body_start..body_start, cl);
    if reply.head_only {
        out.truncate(out.len() - body_len);
    }
    g.end_extra(from);
}

/// Renders a response of `content_type` with `body` and its head into `g`.
pub fn body(
    g: &mut Gather,
    status: u16,
    content_type: &[u8],
    request_id: &[u8],
    extra_headers: &[u8],
    body: &[u8],
    reply: Reply,
) {
    g.reset();
    let from = g.begin_extra();
    let out = &mut g.extra;
    status_line(out, status);
    out.extend_from_slice(b"content-type: ");
    out.extend_from_slice(content_type);
    out.extend_from_slice(b"\r\nserver: ringway\r\nx-request-id: ");
    out.extend_from_slice(request_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra_headers);
    connection(out, reply);
    content_length(out, body.len());
    out.extend_from_slice(b"\r\n");
    if !reply.head_only {
        out.extend_from_slice(body);
    }
    g.end_extra(from);
}

/// Renders the head of a streamed response (`text/event-stream`): chunked, or (`chunked` false,
/// for HTTP/1.0 clients) delimited by the connection's close.
pub fn stream_head(
    g: &mut Gather,
    status: u16,
    request_id: &[u8],
    extra_headers: &[u8],
    chunked: bool,
    reply: Reply,
) {
    g.reset();
    let from = g.begin_extra();
    let out = &mut g.extra;
    status_line(out, status);
    out.extend_from_slice(
        b"content-type: text/event-stream\r\ncache-control: no-cache\r\nserver: ringway\r\nx-request-id: ",
    );
    out.extend_from_slice(request_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra_headers);
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    connection(out, reply);
    out.extend_from_slice(b"\r\n");
    g.end_extra(from);
}

/// Appends `data` as one chunk of a chunked body (nothing for empty data: that would end it).
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    use std::io::Write;
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A static response rendered once per config: the head without its Connection field, and the body.
#[derive(Debug, Clone)]
pub struct RenderedStatic {
    head: Vec<u8>,
    body: Vec<u8>,
    status: u16,
}

impl RenderedStatic {
    pub fn new(r: &crate::config::StaticResponse) -> RenderedStatic {
        let mut head = Vec::new();
        status_line(&mut head, r.status);
        for (k, v) in &r.headers {
            head.extend_from_slice(k.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(v.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"server: ringway\r\n");
        if r.status != 204 && r.status != 304 {
            content_length(&mut head, r.body.len());
        }
        RenderedStatic {
            head,
            body: r.body.as_bytes().to_vec(),
            status: r.status,
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Renders into `g` (which must be reset), with `extra` header lines.
    pub fn render(&self, g: &mut Gather, reply: Reply, extra: &[u8]) {
        g.reset();
        let from = g.begin_extra();
        g.extra.extend_from_slice(&self.head);
        g.extra.extend_from_slice(extra);
        connection(&mut g.extra, reply);
        g.extra.extend_from_slice(b"\r\n");
        if !reply.head_only {
            g.extra.extend_from_slice(&self.body);
        }
        g.end_extra(from);
    }
}

/// Appends `s` as the inside of a JSON string.
pub fn json_escape(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    let b = c as u8;
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
                c => {
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_json_with_length() {
        let mut g = Gather::default();
        error(
            &mut g,
            404,
            "route_not_found",
            "no \"route\"\n",
            b"abc",
            b"",
            Reply {
                close: false,
                keep_alive_10: false,
                head_only: false,
            },
        );
        let s = String::from_utf8(g.extra.clone()).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"));
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert_eq!(
            body,
            "{\"error\":{\"code\":\"route_not_found\",\"message\":\"no \\\"route\\\"\\n\",\"type\":\"not_found_error\"}}\n"
        );
    }
}
