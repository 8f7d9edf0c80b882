//! Forwarded heads, built as a [`Gather`] over the bytes that were read.
//!
//! Request direction: the request line is reused as read when nothing in it changes (HTTP/1.1,
//! origin form, no path rewrite), otherwise rewritten into `extra`; header lines that are kept are
//! referenced in place (contiguous runs become one iovec); hop-by-hop fields are skipped; the
//! gateway's own fields (Host when rewritten, X-Forwarded-*, Via, Upgrade) are appended.
//!
//! Response direction: status line and kept header lines in place, hop-by-hop fields skipped, a
//! Connection field added only when the client connection's fate needs saying.
//!
//! A head received with bare-LF line endings is re-emitted field by field with CRLF so that the
//! upstream never sees line endings the gateway interpreted differently.

use std::io::Write;
use std::net::IpAddr;

use super::buf::Gather;
use super::headers::{HeaderKind, HeaderLine};
use super::request::RequestHead;
use super::response::ResponseHead;

/// What the request rewrite needs besides the head itself.
pub struct RequestRewrite<'a> {
    pub client_ip: IpAddr,
    pub via: Option<&'a str>,
    pub forwarded_headers: bool,
    /// Replace the first `.0` bytes of the path with `.1`.
    pub path_rewrite: Option<(usize, &'a str)>,
    pub upstream_host: Option<&'a str>,
    /// Host to send when the client sent none (HTTP/1.0): the target's address.
    pub fallback_host: &'a str,
    /// Body bytes already in the buffer after the head to send with it.
    pub body_prefix: usize,
    /// Path and query to send instead of the client's (the normalized form).
    pub path: Option<&'a [u8]>,
    /// The client connection is TLS (`x-forwarded-proto: https`).
    pub https: bool,
    /// Header lines the gateway adds (`"name: value\r\n"`, e.g. the caller's identity).
    pub extra: &'a [u8],
}

/// Builds the upstream request into `g` (whose `main` holds the client's bytes, head first).
pub fn request_head(g: &mut Gather, head: &RequestHead, rw: &RequestRewrite<'_>) {
    g.reset();
    let first_header = head
        .headers
        .first()
        .map_or(head.headers_end, |h| h.line.start as usize);
    let line_unchanged = !head.http10
        && head.authority.is_none()
        && rw.path_rewrite.is_none()
        && rw.path.is_none()
        && !head.bare_lf;
    if line_unchanged {
        g.push_main(head.line_start, first_header);
    } else {
        let data = g.main.data();
        let from = g.extra.len();
        g.extra.extend_from_slice(head.method_span.of(data));
        g.extra.push(b' ');
        let path = rw.path.unwrap_or(head.path.of(data));
        match rw.path_rewrite {
            Some((n, replacement)) => {
                // Plain string replacement of the matched prefix (like nginx `proxy_pass` with a URI),
                // without doubling the slash at the junction and never leaving the path empty.
                let rest = &path[n.min(path.len())..];
                g.extra.extend_from_slice(replacement.as_bytes());
                if replacement.ends_with('/') && rest.first() == Some(&b'/') {
                    g.extra.extend_from_slice(&rest[1..]);
                } else {
                    if replacement.is_empty() && rest.first() != Some(&b'/') {
                        g.extra.push(b'/');
                    }
                    g.extra.extend_from_slice(rest);
                }
            }
            None => {
                // Forwarding the target as sent: an absolute-form target's empty path is `/`.
                if head.path_needs_slash && path.first() != Some(&b'/') {
                    g.extra.push(b'/');
                }
                g.extra.extend_from_slice(path);
            }
        }
        g.extra.extend_from_slice(b" HTTP/1.1\r\n");
        g.end_extra(from);
    }

    let replace_host = rw.upstream_host.is_some() || head.authority.is_some();
    let skip = |h: &HeaderLine| {
        h.drop
            || (replace_host && h.kind == HeaderKind::Host)
            || (rw.forwarded_headers
                && matches!(
                    h.kind,
                    HeaderKind::XForwardedFor
                        | HeaderKind::XForwardedProto
                        | HeaderKind::XForwardedHost
                ))
    };
    push_header_lines(g, &head.headers, head.bare_lf, skip);

    let from = g.begin_extra();
    if let Some(h) = rw.upstream_host {
        put_field(&mut g.extra, b"host", h.as_bytes());
    } else if let Some(a) = head.authority {
        let auth = a.of(g.main.data()).to_vec();
        put_field(&mut g.extra, b"host", &auth);
    } else if head.host.is_none() {
        put_field(&mut g.extra, b"host", rw.fallback_host.as_bytes());
    }
    if rw.forwarded_headers {
        let data = g.main.data();
        g.extra.extend_from_slice(b"x-forwarded-for: ");
        for h in head
            .headers
            .iter()
            .filter(|h| h.kind == HeaderKind::XForwardedFor)
        {
            let v = super::headers::trim_ows(h.value.of(data));
            if !v.is_empty() {
                g.extra.extend_from_slice(v);
                g.extra.extend_from_slice(b", ");
            }
        }
        put_ip(&mut g.extra, rw.client_ip);
        g.extra.extend_from_slice(if rw.https {
            &b"\r\nx-forwarded-proto: https\r\n"[..]
        } else {
            &b"\r\nx-forwarded-proto: http\r\n"[..]
        });
        if let Some(host) = head.host {
            g.extra.extend_from_slice(b"x-forwarded-host: ");
            g.extra
                .extend_from_slice(super::headers::trim_ows(host.of(data)));
            g.extra.extend_from_slice(b"\r\n");
        }
    }
    if let Some(via) = rw.via {
        put_field(&mut g.extra, b"via", via.as_bytes());
    }
    if let Some(up) = head.upgrade {
        let v = super::headers::trim_ows(up.of(g.main.data())).to_vec();
        g.extra.extend_from_slice(b"connection: upgrade\r\n");
        put_field(&mut g.extra, b"upgrade", &v);
    }
    g.extra.extend_from_slice(rw.extra);
    g.extra.extend_from_slice(b"\r\n");
    g.end_extra(from);
    g.push_main(head.len, head.len + rw.body_prefix);
}

/// What the response rewrite needs to know about the client side.
pub struct ResponseRewrite<'a> {
    /// Header lines the gateway adds (`"name: value\r\n"`, e.g. RateLimit-*).
    pub extra: &'a [u8],
    /// Keep the client connection open after this response.
    pub keep_alive: bool,
    pub client_http10: bool,
    /// The body is chunked and will be decoded for an HTTP/1.0 client: drop Transfer-Encoding.
    pub dechunk: bool,
    /// Body bytes already in the buffer after the head to send with it.
    pub body_prefix: usize,
}

/// Builds the client response head into `g` (whose `main` holds the upstream's bytes, head first).
pub fn response_head(g: &mut Gather, resp: &ResponseHead, rw: &ResponseRewrite) {
    g.reset();
    push_status_line(g, resp);
    // No Transfer-Encoding to an HTTP/1.0 client (RFC 9112 §6.1: the body is dechunked, or there
    // is none), and no Content-Length on a 204 (RFC 9110 §8.6).
    let no_te = rw.dechunk || rw.client_http10;
    let no_length = resp.status == 204;
    push_header_lines(g, &resp.headers, resp.bare_lf, |h| {
        h.drop
            || (no_te && h.kind == HeaderKind::TransferEncoding)
            || (no_length && h.kind == HeaderKind::ContentLength)
    });
    let from = g.begin_extra();
    g.extra.extend_from_slice(rw.extra);
    if resp.status != 101 {
        if !rw.keep_alive {
            g.extra.extend_from_slice(b"connection: close\r\n");
        } else if rw.client_http10 {
            g.extra.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    g.extra.extend_from_slice(b"\r\n");
    g.end_extra(from);
    g.push_main(resp.len, resp.len + rw.body_prefix);
}

/// Builds the client's copy of an interim (1xx) response head into `g` (whose `main` holds the
/// upstream's bytes, head first): hop-by-hop fields and Content-Length removed (RFC 9110 §7.6.1,
/// §8.6), lines ended with CRLF. Interim responses go to HTTP/1.1 clients only.
pub fn interim_head(g: &mut Gather, resp: &ResponseHead) {
    g.reset();
    push_status_line(g, resp);
    push_header_lines(g, &resp.headers, resp.bare_lf, |h| {
        h.drop || h.kind == HeaderKind::ContentLength
    });
    g.push_extra(b"\r\n");
}

/// Pushes the response's status line: in place, or rebuilt as HTTP/1.1 with CRLF when the
/// upstream spoke HTTP/1.0 or ended it with a bare LF (the gateway speaks HTTP/1.1 to clients).
fn push_status_line(g: &mut Gather, resp: &ResponseHead) {
    if !(resp.http10 || resp.bare_lf) {
        g.push_main(0, resp.first_header);
        return;
    }
    let from = g.begin_extra();
    let line = &g.main.data()[..resp.first_header];
    // "HTTP/1.0 200 OK\r\n" → "HTTP/1.1 200 OK\r\n".
    let rest = line.get(8..).unwrap_or(b"").to_vec();
    g.extra.extend_from_slice(b"HTTP/1.1");
    let trimmed = rest
        .strip_suffix(b"\r\n")
        .or_else(|| rest.strip_suffix(b"\n"))
        .unwrap_or(&rest);
    g.extra.extend_from_slice(trimmed);
    g.extra.extend_from_slice(b"\r\n");
    g.end_extra(from);
}

/// Pushes the kept header lines: in place, or rebuilt with CRLF when the head used bare LF.
fn push_header_lines(
    g: &mut Gather,
    headers: &[HeaderLine],
    rebuild: bool,
    skip: impl Fn(&HeaderLine) -> bool,
) {
    for h in headers.iter().filter(|h| !skip(h)) {
        if rebuild {
            let from = g.begin_extra();
            let data = g.main.data();
            g.extra.extend_from_slice(h.name.of(data));
            g.extra.extend_from_slice(b": ");
            g.extra.extend_from_slice(h.value.of(data));
            g.extra.extend_from_slice(b"\r\n");
            g.end_extra(from);
        } else {
            g.push_main(h.line.start as usize, h.line.end as usize);
        }
    }
}

/// Appends an IP address in text form (IPv4 without the formatting machinery: it is on every request).
fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = itoa::Buffer::new();
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(b.format(*octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => put_ip(out, IpAddr::V4(v4)),
            None => {
                let _ = write!(out, "{v6}");
            }
        },
    }
}

fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text() {
        let mut out = Vec::new();
        put_ip(&mut out, "10.0.255.1".parse().unwrap());
        out.push(b' ');
        put_ip(&mut out, "::ffff:1.2.3.4".parse().unwrap());
        out.push(b' ');
        put_ip(&mut out, "2001:db8::1".parse().unwrap());
        assert_eq!(out, b"10.0.255.1 1.2.3.4 2001:db8::1");
    }
}
