//! Request heads: `httparse` over the bytes read, recorded as offsets ([`Span`]s) so the head can be
//! forwarded from the same bytes, plus every check RFC 9112 asks of a server before it trusts the
//! message framing (request smuggling defences).
//!
//! Errors are a small `Copy` enum ([`HeadError`]); `crate::error` maps them to status codes. A head
//! that is not complete yet is `Ok(None)`, not an error.
//!
//! Performance: one pass of `httparse` with uninitialised header storage (see [`STACK_SLOTS`]), one
//! pass over the headers to classify them; the header vector is reused across requests on a
//! connection.

use std::mem::MaybeUninit;

use super::headers::{
    ConnectionTokens, HeaderKind, HeaderLine, Span, TransferCoding, TransferCodingAcc, classify,
    drop_connection_named, head_has_bare_lf, host_without_port, parse_content_length, trim_ows,
};
use super::method::Method;

/// Upper bound for `http.max_headers`.
pub const MAX_HEADERS_LIMIT: usize = 512;

/// Header slots kept on the stack while parsing. A head with more fields is parsed again into slots
/// on the heap, up to the configured limit. 64 slots are 2 KiB; slots for the full limit were 16 KiB,
/// and because the parsers are inlined into the request futures' poll functions, every poll of
/// those futures probed and dirtied 18 KiB of stack (measured: 12 B requests, see perf/RESULTS.md).
pub const STACK_SLOTS: usize = 64;

/// Runs `parse` over [`STACK_SLOTS`] header slots on the stack (fewer if `max` is smaller) and, when
/// that refuses the head for having too many fields and `max` allows more, once more over `max`
/// slots on the heap. Shared by the request and response parsers.
pub(super) fn with_header_slots<'d, T, E>(
    max: usize,
    too_many: impl Fn(&E) -> bool,
    mut parse: impl FnMut(&mut [MaybeUninit<httparse::Header<'d>>]) -> Result<T, E>,
) -> Result<T, E> {
    let mut small = [const { MaybeUninit::uninit() }; STACK_SLOTS];
    match parse(&mut small[..max.min(STACK_SLOTS)]) {
        Err(e) if max > STACK_SLOTS && too_many(&e) => {
            let mut heap = Vec::with_capacity(max);
            heap.resize_with(max, MaybeUninit::uninit);
            parse(&mut heap)
        }
        done => done,
    }
}

/// Limits applied while parsing a request head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_head: usize,
    pub max_headers: usize,
    pub max_uri: usize,
}

/// Why a request head was refused. Mapped to a status code in one place (`crate::error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 431: the head is larger than `http.max_head_size`.
    HeadTooLarge,
    /// 431: more than `http.max_headers` fields.
    TooManyHeaders,
    /// 414: the request-target is longer than `http.max_uri_size`.
    UriTooLong,
    /// 400: the head does not follow the grammar.
    Malformed(&'static str),
    /// 400: the body framing is ambiguous or unsupported (smuggling defence).
    BadFraming(&'static str),
    /// 400: HTTP/1.1 request without Host.
    MissingHost,
    /// 400: invalid or repeated Host.
    BadHost(&'static str),
    /// 505: not HTTP/1.0 or HTTP/1.1.
    Version,
    /// 417: an Expect value other than 100-continue.
    Expectation,
    /// 405: CONNECT is not served by a reverse proxy.
    Connect,
}

impl HeadError {
    pub fn reason(self) -> &'static str {
        match self {
            HeadError::HeadTooLarge => "request head is larger than the limit",
            HeadError::TooManyHeaders => "request has more header fields than the limit",
            HeadError::UriTooLong => "request-target is longer than the limit",
            HeadError::Malformed(r) | HeadError::BadFraming(r) | HeadError::BadHost(r) => r,
            HeadError::MissingHost => "HTTP/1.1 request without a Host header",
            HeadError::Version => "only HTTP/1.0 and HTTP/1.1 are supported",
            HeadError::Expectation => "only the 100-continue expectation is supported",
            HeadError::Connect => "CONNECT is not supported by this gateway",
        }
    }
}

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Responses only: the body ends when the upstream closes.
    Close,
}

/// A parsed request head: offsets into the buffer data it was parsed from.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    /// The request-target as sent.
    pub target: Span,
    /// Path and query in origin form (for absolute-form targets, the part after the authority).
    pub path: Span,
    /// The path of an absolute-form target was empty: forward `/` (RFC 9112 §3.2.2).
    pub path_needs_slash: bool,
    /// Authority of an absolute-form target; overrides Host.
    pub authority: Option<Span>,
    pub http10: bool,
    /// Head length in bytes, final empty line included.
    pub len: usize,
    /// Start of the request line (after any leading empty lines).
    pub line_start: usize,
    /// Start of the empty line that ends the head.
    pub headers_end: usize,
    pub headers: Vec<HeaderLine>,
    /// Host value used for routing (authority of an absolute-form target, else the Host field).
    pub host: Option<Span>,
    /// The host name part of `host`, port and surrounding whitespace removed (validated at parse,
    /// so routing does not split it again).
    pub host_name: Option<Span>,
    pub framing: Framing,
    /// The client asked to close after this request (or is HTTP/1.0 without keep-alive).
    pub close: bool,
    /// HTTP/1.0 client that asked for keep-alive.
    pub keep_alive_10: bool,
    /// Upgrade value when the request asks to switch protocols.
    pub upgrade: Option<Span>,
    pub expect_continue: bool,
    pub request_id: Option<Span>,
    /// The (last) User-Agent value.
    pub user_agent: Option<Span>,
    /// Index in `headers` of the (last) `traceparent` field.
    pub traceparent: Option<usize>,
    /// Some line ends with a bare LF: forward a rebuilt head instead of the raw bytes.
    pub bare_lf: bool,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: Method::Get,
            method_span: Span::default(),
            target: Span::default(),
            path: Span::default(),
            path_needs_slash: false,
            authority: None,
            http10: false,
            len: 0,
            line_start: 0,
            headers_end: 0,
            headers: Vec::new(),
            host: None,
            host_name: None,
            framing: Framing::None,
            close: false,
            keep_alive_10: false,
            upgrade: None,
            expect_continue: false,
            request_id: None,
            user_agent: None,
            traceparent: None,
            bare_lf: false,
        }
    }
}

impl RequestHead {
    /// Resets for the next request, keeping the header vector's allocation.
    fn reset(&mut self) {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        *self = RequestHead {
            headers,
            ..RequestHead::default()
        };
    }

    /// Drops every span (they point into bytes about to be consumed): a stray read afterwards sees
    /// empty fields instead of slicing past the buffer.
    pub fn forget(&mut self) {
        self.reset();
    }

    /// Whether the request carries a body.
    pub fn has_body(&self) -> bool {
        matches!(self.framing, Framing::Chunked)
            || matches!(self.framing, Framing::Length(n) if n > 0)
    }
}

/// Parses a request head from `data`. `Ok(None)`: incomplete, read more (the caller enforces that
/// `data` never grows past `limits.max_head`: see [`incomplete_error`]).
///
/// Not inlined, so that its header slots live on the stack only while it runs, not in the frame of
/// every future that calls it.
#[inline(never)]
pub fn parse_request(
    data: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<Option<()>, HeadError> {
    with_header_slots(
        limits.max_headers.clamp(1, MAX_HEADERS_LIMIT),
        |e| *e == HeadError::TooManyHeaders,
        |slots| parse_request_into(data, limits, head, slots),
    )
}

fn parse_request_into<'d>(
    data: &'d [u8],
    limits: &Limits,
    head: &mut RequestHead,
    slots: &mut [MaybeUninit<httparse::Header<'d>>],
) -> Result<Option<()>, HeadError> {
    head.reset();
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(data, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse(e, data, limits)),
    };
    if len > limits.max_head {
        return Err(HeadError::HeadTooLarge);
    }
    let base = data.as_ptr() as usize;
    let off = |s: &[u8]| s.as_ptr() as usize - base;

    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    head.len = len;
    head.line_start = off(method.as_bytes());
    head.method = Method::from_bytes(method.as_bytes());
    head.method_span = Span::new(head.line_start, head.line_start + method.len());
    let t0 = off(target.as_bytes());
    head.target = Span::new(t0, t0 + target.len());
    head.http10 = version == 0;
    if head.method == Method::Connect {
        return Err(HeadError::Connect);
    }
    if target.len() > limits.max_uri {
        return Err(HeadError::UriTooLong);
    }
    request_target(target.as_bytes(), t0, head)?;

    // The head ends with CRLF CRLF or (leniently) LF LF; find where the final empty line starts.
    head.headers_end = if data[..len].ends_with(b"\r\n\r\n") || data[..len].ends_with(b"\n\r\n") {
        len - 2
    } else {
        len - 1
    };

    let mut host_count = 0u32;
    let mut content_length: Option<u64> = None;
    let mut te = TransferCodingAcc::default();
    let mut conn = ConnectionTokens::default();
    let mut upgrade = None;
    let mut expect = None;
    let n = req.headers.len();
    for (i, h) in req.headers.iter().enumerate() {
        let name_start = off(h.name.as_bytes());
        let value_start = off(h.value);
        let line_end = if i + 1 < n {
            off(req.headers[i + 1].name.as_bytes())
        } else {
            head.headers_end
        };
        let value = h.value;
        let kind = classify(h.name.as_bytes());
        let mut drop = kind.is_hop_by_hop();
        match kind {
            HeaderKind::Host => {
                host_count += 1;
                head.host = Some(Span::new(value_start, value_start + value.len()));
            }
            HeaderKind::ContentLength => {
                let v = parse_content_length(value)
                    .ok_or(HeadError::BadFraming("invalid Content-Length"))?;
                if content_length.is_some_and(|prev| prev != v) {
                    return Err(HeadError::BadFraming("conflicting Content-Length headers"));
                }
                content_length = Some(v);
            }
            HeaderKind::TransferEncoding => te.add(value),
            HeaderKind::Connection => conn.add(value),
            HeaderKind::Upgrade => {
                upgrade = Some(Span::new(value_start, value_start + value.len()))
            }
            HeaderKind::Expect => {
                expect = Some(value);
                drop = true;
            }
            HeaderKind::RequestId => {
                let v = trim_ows(value);
                if !v.is_empty() && v.len() <= 200 && v.iter().all(|b| b.is_ascii_graphic()) {
                    let s = off(v);
                    head.request_id = Some(Span::new(s, s + v.len()));
                }
            }
            HeaderKind::UserAgent => {
                let v = trim_ows(value);
                let s = off(v);
                head.user_agent = Some(Span::new(s, s + v.len()));
            }
            HeaderKind::Traceparent => head.traceparent = Some(i),
            _ => {}
        }
        head.headers.push(HeaderLine {
            name: Span::new(name_start, name_start + h.name.len()),
            value: Span::new(value_start, value_start + value.len()),
            line: Span::new(name_start, line_end),
            kind,
            drop,
        });
    }
    let first_header = head
        .headers
        .first()
        .map_or(head.headers_end, |h| h.line.start as usize);
    head.bare_lf = head_has_bare_lf(data, first_header, &head.headers, len);

    if host_count > 1 {
        return Err(HeadError::BadHost("more than one Host header"));
    }
    if let Some(h) = head.host {
        let Some(name) = host_without_port(h.of(data)) else {
            return Err(HeadError::BadHost("invalid Host header"));
        };
        if head.authority.is_none() {
            // An http URI with an empty host is invalid (RFC 9110 §4.2.1); in absolute form the
            // target's authority stands instead of the Host field.
            if name.is_empty() {
                return Err(HeadError::BadHost("empty Host header"));
            }
            head.host_name = Some(Span::new(off(name), off(name) + name.len()));
        }
    } else if !head.http10 {
        return Err(HeadError::MissingHost);
    }
    if head.authority.is_some() {
        head.host = head.authority;
    }

    head.framing = if te.present() {
        if content_length.is_some() {
            return Err(HeadError::BadFraming(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if head.http10 {
            return Err(HeadError::BadFraming(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        match te.result() {
            TransferCoding::Chunked => Framing::Chunked,
            _ => return Err(HeadError::BadFraming("unsupported Transfer-Encoding")),
        }
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else {
        Framing::None
    };

    head.close = conn.close || (head.http10 && !conn.keep_alive);
    head.keep_alive_10 = head.http10 && conn.keep_alive && !conn.close;
    if conn.upgrade && !head.http10 {
        head.upgrade = upgrade;
    }
    if conn.others {
        drop_connection_named(data, &mut head.headers);
    }
    if let Some(e) = expect {
        if trim_ows(e).eq_ignore_ascii_case(b"100-continue") {
            // HTTP/1.0 servers ignore the expectation (RFC 9110 §10.1.1).
            head.expect_continue = !head.http10;
        } else {
            return Err(HeadError::Expectation);
        }
    }
    Ok(Some(()))
}

/// Classifies the request-target (RFC 9112 §3.2) and fills the routing fields.
fn request_target(t: &[u8], t0: usize, head: &mut RequestHead) -> Result<(), HeadError> {
    if t.first() == Some(&b'/') {
        head.path = Span::new(t0, t0 + t.len());
        return Ok(());
    }
    if t == b"*" {
        if head.method != Method::Options {
            return Err(HeadError::Malformed(
                "asterisk-form target is only valid for OPTIONS",
            ));
        }
        head.path = Span::new(t0, t0 + 1);
        return Ok(());
    }
    let scheme_len = if t.len() >= 7 && t[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if t.len() >= 8 && t[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return Err(HeadError::Malformed("invalid request-target"));
    };
    let rest = &t[scheme_len..];
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let name = match host_without_port(authority) {
        Some(name) if !authority.is_empty() && !authority.contains(&b'@') => name,
        _ => return Err(HeadError::BadHost("invalid authority in request-target")),
    };
    let n0 = t0 + (name.as_ptr() as usize - t.as_ptr() as usize);
    head.host_name = Some(Span::new(n0, n0 + name.len()));
    let a0 = t0 + scheme_len;
    head.authority = Some(Span::new(a0, a0 + auth_len));
    head.path = Span::new(a0 + auth_len, t0 + t.len());
    head.path_needs_slash = rest.get(auth_len) != Some(&b'/');
    Ok(())
}

fn map_httparse(e: httparse::Error, data: &[u8], limits: &Limits) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => {
            // A long target can make the version field look wrong before the line is complete.
            if first_line_len(data) > limits.max_uri + 32 {
                HeadError::UriTooLong
            } else {
                HeadError::Version
            }
        }
        httparse::Error::HeaderName => HeadError::Malformed("invalid header field name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header field value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Token => HeadError::Malformed("invalid method or request-target"),
        httparse::Error::Status => HeadError::Malformed("invalid request line"),
    }
}

fn first_line_len(data: &[u8]) -> usize {
    data.iter().position(|&b| b == b'\n').unwrap_or(data.len())
}

/// The error for a head that is still incomplete when the buffer already holds `limits.max_head`
/// bytes: 414 when the request line alone is too long, else 431.
pub fn incomplete_error(data: &[u8], limits: &Limits) -> HeadError {
    if first_line_len(data) > limits.max_uri {
        HeadError::UriTooLong
    } else {
        HeadError::HeadTooLarge
    }
}

/// Whether an incomplete head can already be refused: its request line is longer than any valid
/// one could be, so reading on would only waste buffer space.
pub fn early_uri_too_long(data: &[u8], limits: &Limits) -> bool {
    // method (≤ 32) + SP + target + SP + "HTTP/1.1"
    !data.contains(&b'\n') && data.len() > limits.max_uri + 48
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<RequestHead, HeadError> {
        let mut h = RequestHead::default();
        let limits = Limits {
            max_head: 8192,
            max_headers: 32,
            max_uri: 1024,
        };
        parse_request(s, &limits, &mut h)?.ok_or(HeadError::Malformed("partial"))?;
        Ok(h)
    }

    #[test]
    fn httparse_refuses_control_bytes_in_values() {
        // The parser relies on httparse for this; keep it checked.
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",
        ] {
            assert!(parse(bad).is_err());
        }
    }

    /// A head with `n` header fields (Host first).
    fn head_with_fields(n: usize) -> Vec<u8> {
        let mut s = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 1..n {
            s.extend_from_slice(format!("X-F{i}: v\r\n").as_bytes());
        }
        s.extend_from_slice(b"\r\n");
        s
    }

    #[test]
    fn fields_beyond_the_stack_slots_use_the_configured_limit() {
        for (max_headers, fields, ok) in [
            (STACK_SLOTS, STACK_SLOTS, true),
            (STACK_SLOTS, STACK_SLOTS + 1, false),
            (100, STACK_SLOTS + 1, true),
            (100, 100, true),
            (100, 101, false),
            (MAX_HEADERS_LIMIT, MAX_HEADERS_LIMIT, true),
            (10, 11, false),
        ] {
            let limits = Limits {
                max_head: 64 * 1024,
                max_headers,
                max_uri: 1024,
            };
            let mut h = RequestHead::default();
            let r = parse_request(&head_with_fields(fields), &limits, &mut h);
            match r {
                Ok(Some(())) => {
                    assert!(ok, "{fields} fields passed a limit of {max_headers}");
                    assert_eq!(h.headers.len(), fields);
                }
                Err(HeadError::TooManyHeaders) => {
                    assert!(
                        !ok,
                        "{fields} fields refused under a limit of {max_headers}"
                    )
                }
                other => panic!("{fields}/{max_headers}: {other:?}"),
            }
        }
    }

    #[test]
    fn host_name_is_the_routing_host_without_port() {
        let name = |raw: &[u8]| {
            let h = parse(raw).unwrap();
            h.host_name
                .map(|s| String::from_utf8_lossy(s.of(raw)).into_owned())
        };
        assert_eq!(
            name(b"GET / HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n").as_deref(),
            Some("Example.com")
        );
        assert_eq!(
            name(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").as_deref(),
            Some("[::1]")
        );
        assert_eq!(
            name(b"GET / HTTP/1.1\r\nHost:  h  \r\n\r\n").as_deref(),
            Some("h")
        );
        assert_eq!(
            name(b"GET http://a.b:81/x HTTP/1.1\r\nHost: other\r\n\r\n").as_deref(),
            Some("a.b")
        );
        assert_eq!(name(b"GET / HTTP/1.0\r\n\r\n"), None);
    }

    #[test]
    fn bare_lf_is_noticed() {
        assert!(!parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap().bare_lf);
        assert!(parse(b"GET / HTTP/1.1\nHost: h\r\n\r\n").unwrap().bare_lf);
        assert!(parse(b"GET / HTTP/1.1\r\nHost: h\n\r\n").unwrap().bare_lf);
        assert!(parse(b"GET / HTTP/1.1\r\nHost: h\r\n\n").unwrap().bare_lf);
    }

    #[test]
    fn framing_and_connection() {
        let h =
            parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\n")
                .unwrap();
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.close);
        let h = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(h.close && h.http10);
        let h = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(!h.close && h.keep_alive_10);
    }
}
