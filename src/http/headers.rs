//! Header fields as offsets into the bytes read, and the field-value grammar the gateway has to get
//! exactly right: Content-Length, Transfer-Encoding, Connection tokens, Host.
//!
//! Nothing here allocates; every function works on byte slices of the head.

/// A byte range of a message head, relative to the first byte of the buffer data the head was parsed
/// from. `u32` keeps [`HeaderLine`] at 20 bytes; heads are limited far below 4 GiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    #[inline]
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Header fields the gateway treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    RequestId,
    UserAgent,
    Traceparent,
}

impl HeaderKind {
    /// Fields that only concern one connection (RFC 9110 §7.6.1), never forwarded as they are.
    pub fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            HeaderKind::Connection
                | HeaderKind::KeepAlive
                | HeaderKind::ProxyConnection
                | HeaderKind::Te
                | HeaderKind::Upgrade
        )
    }
}

/// One header field line: name and value spans, and the whole line including its line ending.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLine {
    pub name: Span,
    pub value: Span,
    pub line: Span,
    pub kind: HeaderKind,
    /// Not forwarded (hop-by-hop, named by Connection, or replaced by the gateway).
    pub drop: bool,
}

/// Classifies a header name, case-insensitively.
pub fn classify(name: &[u8]) -> HeaderKind {
    let eq = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if eq(b"te") => HeaderKind::Te,
        4 if eq(b"host") => HeaderKind::Host,
        6 if eq(b"expect") => HeaderKind::Expect,
        7 if eq(b"upgrade") => HeaderKind::Upgrade,
        7 if eq(b"trailer") => HeaderKind::Trailer,
        10 if eq(b"connection") => HeaderKind::Connection,
        10 if eq(b"keep-alive") => HeaderKind::KeepAlive,
        10 if eq(b"user-agent") => HeaderKind::UserAgent,
        11 if eq(b"traceparent") => HeaderKind::Traceparent,
        12 if eq(b"x-request-id") => HeaderKind::RequestId,
        14 if eq(b"content-length") => HeaderKind::ContentLength,
        15 if eq(b"x-forwarded-for") => HeaderKind::XForwardedFor,
        16 if eq(b"proxy-connection") => HeaderKind::ProxyConnection,
        16 if eq(b"x-forwarded-host") => HeaderKind::XForwardedHost,
        17 if eq(b"transfer-encoding") => HeaderKind::TransferEncoding,
        17 if eq(b"x-forwarded-proto") => HeaderKind::XForwardedProto,
        _ => HeaderKind::Other,
    }
}

/// Trims optional whitespace (SP / HTAB) at both ends.
pub fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Iterates the comma-separated list elements of a field value, trimmed, skipping empty elements
/// (RFC 9110 §5.6.1).
pub fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

/// Parses a Content-Length value. A list of identical values (`"5, 5"`) is accepted as one value
/// (RFC 9110 §8.6); anything else that is not 1*DIGIT is `None`.
pub fn parse_content_length(v: &[u8]) -> Option<u64> {
    let mut out: Option<u64> = None;
    let mut any = false;
    for item in v.split(|&b| b == b',') {
        let item = trim_ows(item);
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut n: u64 = 0;
        for &d in item {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        match out {
            Some(prev) if prev != n => return None,
            _ => out = Some(n),
        }
        any = true;
    }
    if any { out } else { None }
}

/// What the Transfer-Encoding fields of a message say, taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferCoding {
    /// Exactly `chunked`: the only coding the gateway accepts in requests.
    Chunked,
    /// Some codings ending in `chunked` (e.g. `gzip, chunked`): fine in responses.
    EndsChunked,
    /// Codings not ending in `chunked`: a response is then close-delimited; a request is rejected.
    NotChunked,
    /// Empty, malformed, or `chunked` applied more than once.
    Invalid,
}

/// Accumulates Transfer-Encoding field values across several field lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct TransferCodingAcc {
    codings: u32,
    chunked_seen: bool,
    last_chunked: bool,
    invalid: bool,
    present: bool,
}

impl TransferCodingAcc {
    pub fn add(&mut self, v: &[u8]) {
        self.present = true;
        let mut any = false;
        for item in v.split(|&b| b == b',') {
            let item = trim_ows(item);
            if item.is_empty() {
                continue;
            }
            any = true;
            // A coding is a token, optionally with parameters; `chunked` takes none.
            let token_end = item.iter().position(|&b| b == b';').unwrap_or(item.len());
            let token = trim_ows(&item[..token_end]);
            if token.is_empty() || !token.iter().all(|&b| is_tchar(b)) {
                self.invalid = true;
            }
            let is_chunked = token.eq_ignore_ascii_case(b"chunked");
            if is_chunked && (self.chunked_seen || token_end != item.len()) {
                self.invalid = true;
            }
            // Codings may not follow chunked (RFC 9112 §6.1).
            if self.chunked_seen && !is_chunked {
                self.invalid = true;
            }
            self.chunked_seen |= is_chunked;
            self.last_chunked = is_chunked;
            self.codings += 1;
        }
        if !any {
            self.invalid = true;
        }
    }

    pub fn present(&self) -> bool {
        self.present
    }

    pub fn result(&self) -> TransferCoding {
        if self.invalid || self.codings == 0 {
            TransferCoding::Invalid
        } else if self.last_chunked && self.codings == 1 {
            TransferCoding::Chunked
        } else if self.last_chunked {
            TransferCoding::EndsChunked
        } else {
            TransferCoding::NotChunked
        }
    }
}

/// RFC 9110 tchar.
#[inline]
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Connection header tokens the gateway acts on.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionTokens {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// Other tokens name further hop-by-hop fields to remove.
    pub others: bool,
}

impl ConnectionTokens {
    pub fn add(&mut self, v: &[u8]) {
        // The usual single-token values without splitting the list.
        match v.len() {
            10 if v.eq_ignore_ascii_case(b"keep-alive") => self.keep_alive = true,
            5 if v.eq_ignore_ascii_case(b"close") => self.close = true,
            _ => self.add_list(v),
        }
    }

    fn add_list(&mut self, v: &[u8]) {
        for t in list_items(v) {
            if t.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if t.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else {
                self.others = true;
            }
        }
    }
}

/// Marks for removal every field named by a Connection header (RFC 9110 §7.6.1), except the fields
/// that frame or route the message: letting a client hide Content-Length or Host from the upstream
/// would make the two sides disagree about the message.
pub fn drop_connection_named(buf: &[u8], headers: &mut [HeaderLine]) {
    let mut i = 0;
    while i < headers.len() {
        if headers[i].kind == HeaderKind::Connection {
            let value = headers[i].value.of(buf);
            for token in list_items(value) {
                for h in headers.iter_mut() {
                    if !matches!(
                        h.kind,
                        HeaderKind::Host | HeaderKind::ContentLength | HeaderKind::TransferEncoding
                    ) && h.name.of(buf).eq_ignore_ascii_case(token)
                    {
                        h.drop = true;
                    }
                }
            }
        }
        i += 1;
    }
}

/// Whether some line of a parsed head ends in a bare LF instead of CRLF. Only the line ends need
/// checking (httparse refuses a CR anywhere else): the end of the start line, of every field line,
/// and of the final empty line. O(fields), not a byte scan of the head.
pub fn head_has_bare_lf(
    data: &[u8],
    first_header: usize,
    headers: &[HeaderLine],
    len: usize,
) -> bool {
    let ends_crlf = |end: usize| end >= 2 && data[end - 1] == b'\n' && data[end - 2] == b'\r';
    !ends_crlf(first_header)
        || !ends_crlf(len)
        || headers.iter().any(|h| !ends_crlf(h.line.end as usize))
}

/// Bytes of a reg-name host (RFC 3986 §3.2.2: unreserved, sub-delims, `%` of pct-encoded), as a
/// table: the request parser checks every Host with it.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        i += 1;
    }
    t
};

/// Checks a Host value (`uri-host [ ":" port ]`) and returns the host part, lower-casing is left to
/// the caller. `None` when the value is not a valid authority for routing.
pub fn host_without_port(v: &[u8]) -> Option<&[u8]> {
    let v = trim_ows(v);
    if v.is_empty() {
        return Some(v);
    }
    let (host, port) = if v[0] == b'[' {
        let close = v.iter().position(|&b| b == b']')?;
        let host = &v[..=close];
        if !host[1..close]
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        (host, &v[close + 1..])
    } else {
        // One pass: the name runs while the bytes are reg-name characters (':' is not one), and
        // whatever follows must be the port.
        let end = v
            .iter()
            .position(|&b| !REG_NAME[b as usize])
            .unwrap_or(v.len());
        if end == 0 {
            return None;
        }
        v.split_at(end)
    };
    if !port.is_empty() {
        let digits = port.strip_prefix(b":")?;
        if digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
    }
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-pass form `host_without_port` replaced: split at the first ':' and check both sides.
    fn host_reference(v: &[u8]) -> Option<&[u8]> {
        let v = trim_ows(v);
        if v.is_empty() || v[0] == b'[' {
            return host_without_port(v);
        }
        let (host, port) = match v.iter().position(|&b| b == b':') {
            Some(c) => (&v[..c], &v[c..]),
            None => (v, &v[v.len()..]),
        };
        if !port.is_empty() {
            let digits = port.strip_prefix(b":")?;
            if digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
        }
        (!host.is_empty() && host.iter().all(|&b| REG_NAME[b as usize])).then_some(host)
    }

    proptest::proptest! {
        #[test]
        fn host_split_matches_the_two_pass_form(
            v in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"aZ9-.:%@/ []\t~_".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..24,
            )
        ) {
            proptest::prop_assert_eq!(host_without_port(&v), host_reference(&v));
        }
    }

    #[test]
    fn reg_name_table_is_rfc3986() {
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b);
            assert_eq!(REG_NAME[b as usize], rfc, "byte {b:#04x}");
        }
    }

    #[test]
    fn content_length() {
        assert_eq!(parse_content_length(b"42"), Some(42));
        assert_eq!(parse_content_length(b" 42 "), Some(42));
        assert_eq!(parse_content_length(b"42, 42"), Some(42));
        assert_eq!(parse_content_length(b"42, 43"), None);
        assert_eq!(parse_content_length(b"+42"), None);
        assert_eq!(parse_content_length(b"-1"), None);
        assert_eq!(parse_content_length(b"0x10"), None);
        assert_eq!(parse_content_length(b""), None);
        assert_eq!(parse_content_length(b"4 2"), None);
        assert_eq!(parse_content_length(b"99999999999999999999"), None);
        assert_eq!(parse_content_length(b"18446744073709551615"), None);
    }

    fn te(vals: &[&[u8]]) -> TransferCoding {
        let mut acc = TransferCodingAcc::default();
        for v in vals {
            acc.add(v);
        }
        acc.result()
    }

    #[test]
    fn transfer_coding() {
        assert_eq!(te(&[b"chunked"]), TransferCoding::Chunked);
        assert_eq!(te(&[b"Chunked"]), TransferCoding::Chunked);
        assert_eq!(te(&[b"gzip, chunked"]), TransferCoding::EndsChunked);
        assert_eq!(te(&[b"gzip", b"chunked"]), TransferCoding::EndsChunked);
        assert_eq!(te(&[b"chunked, gzip"]), TransferCoding::Invalid);
        assert_eq!(te(&[b"chunked", b"chunked"]), TransferCoding::Invalid);
        assert_eq!(te(&[b"gzip"]), TransferCoding::NotChunked);
        assert_eq!(te(&[b""]), TransferCoding::Invalid);
        assert_eq!(te(&[b"chunked;x=1"]), TransferCoding::Invalid);
        assert_eq!(te(&[b"\x0bchunked"]), TransferCoding::Invalid);
        assert_eq!(te(&[b"chun ked"]), TransferCoding::Invalid);
    }

    #[test]
    fn hosts() {
        assert_eq!(
            host_without_port(b"example.com:8080"),
            Some(&b"example.com"[..])
        );
        assert_eq!(host_without_port(b"[::1]:80"), Some(&b"[::1]"[..]));
        assert_eq!(host_without_port(b"a b"), None);
        assert_eq!(host_without_port(b"example.com:80x"), None);
        assert_eq!(host_without_port(b"exa/mple"), None);
        assert_eq!(host_without_port(b"u@host"), None);
        assert_eq!(host_without_port(b""), Some(&b""[..]));
    }

    #[test]
    fn kinds() {
        assert_eq!(classify(b"Content-Length"), HeaderKind::ContentLength);
        assert_eq!(classify(b"TRANSFER-ENCODING"), HeaderKind::TransferEncoding);
        assert_eq!(classify(b"x-custom"), HeaderKind::Other);
        assert!(HeaderKind::Upgrade.is_hop_by_hop());
    }
}
