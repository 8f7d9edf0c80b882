//! Upstream response heads: `httparse` into offsets, and the body framing rules of RFC 9112 §6.3
//! (HEAD, 1xx, 204 and 304 have no body; Transfer-Encoding, then Content-Length, else close).
//!
//! A response the gateway cannot frame unambiguously is an upstream error (502), never forwarded.

use std::mem::MaybeUninit;

use super::headers::{
    ConnectionTokens, HeaderKind, HeaderLine, Span, TransferCoding, TransferCodingAcc, classify,
    drop_connection_named, head_has_bare_lf, parse_content_length,
};
use super::request::{Framing, MAX_HEADERS_LIMIT, with_header_slots};

/// Why an upstream response head was refused (all map to 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    Malformed(&'static str),
    TooManyHeaders,
    TooLarge,
    BadFraming(&'static str),
}

impl ResponseError {
    pub fn reason(self) -> &'static str {
        match self {
            ResponseError::Malformed(r) | ResponseError::BadFraming(r) => r,
            ResponseError::TooManyHeaders => "too many header fields",
            ResponseError::TooLarge => "response head is larger than the response buffer",
        }
    }
}

#[derive(Debug, Default)]
pub struct ResponseHead {
    pub status: u16,
    pub http10: bool,
    pub len: usize,
    /// Start of the empty line that ends the head.
    pub headers_end: usize,
    /// Start of the first header line (end of the status line).
    pub first_header: usize,
    pub headers: Vec<HeaderLine>,
    pub framing: FramingOr,
    /// The upstream connection cannot be reused after this response.
    pub close: bool,
    /// Transfer-Encoding names a coding besides one final `chunked` (which alone can be decoded
    /// for an HTTP/1.0 client).
    pub coded: bool,
    pub bare_lf: bool,
}

/// [`Framing`] with a `Default` for [`ResponseHead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingOr(pub Framing);

impl Default for FramingOr {
    fn default() -> Self {
        FramingOr(Framing::None)
    }
}

impl ResponseHead {
    fn reset(&mut self) {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        *self = ResponseHead {
            headers,
            ..ResponseHead::default()
        };
    }

    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// Parses a response head. `head_request`: the request was HEAD, so no body follows whatever the
/// headers say. Up to [`MAX_HEADERS_LIMIT`] fields; not inlined, for the reason given at
/// [`STACK_SLOTS`](super::request::STACK_SLOTS).
#[inline(never)]
pub fn parse_response(
    data: &[u8],
    head_request: bool,
    resp: &mut ResponseHead,
) -> Result<Option<()>, ResponseError> {
    with_header_slots(
        MAX_HEADERS_LIMIT,
        |e| *e == ResponseError::TooManyHeaders,
        |slots| parse_response_into(data, head_request, resp, slots),
    )
}

fn parse_response_into<'d>(
    data: &'d [u8],
    head_request: bool,
    resp: &mut ResponseHead,
    slots: &mut [MaybeUninit<httparse::Header<'d>>],
) -> Result<Option<()>, ResponseError> {
    resp.reset();
    let mut r = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut r, data, slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ResponseError::TooManyHeaders);
        }
        Err(_) => return Err(ResponseError::Malformed("invalid response head")),
    };
    let (Some(code), Some(version)) = (r.code, r.version) else {
        return Err(ResponseError::Malformed("incomplete status line"));
    };
    if !(100..=999).contains(&code) {
        return Err(ResponseError::Malformed("invalid status code"));
    }
    let base = data.as_ptr() as usize;
    let off = |s: &[u8]| s.as_ptr() as usize - base;
    resp.status = code;
    resp.http10 = version == 0;
    resp.len = len;
    resp.headers_end = if data[..len].ends_with(b"\r\n\r\n") || data[..len].ends_with(b"\n\r\n") {
        len - 2
    } else {
        len - 1
    };
    resp.first_header = r
        .headers
        .first()
        .map_or(resp.headers_end, |h| off(h.name.as_bytes()));

    let mut content_length: Option<u64> = None;
    let mut te = TransferCodingAcc::default();
    let mut conn = ConnectionTokens::default();
    let switching = code == 101;
    let n = r.headers.len();
    for (i, h) in r.headers.iter().enumerate() {
        let name_start = off(h.name.as_bytes());
        let value_start = off(h.value);
        let line_end = if i + 1 < n {
            off(r.headers[i + 1].name.as_bytes())
        } else {
            resp.headers_end
        };
        let kind = classify(h.name.as_bytes());
        match kind {
            HeaderKind::ContentLength => {
                let v = parse_content_length(h.value)
                    .ok_or(ResponseError::BadFraming("invalid Content-Length"))?;
                if content_length.is_some_and(|p| p != v) {
                    return Err(ResponseError::BadFraming(
                        "conflicting Content-Length headers",
                    ));
                }
                content_length = Some(v);
            }
            HeaderKind::TransferEncoding => te.add(h.value),
            HeaderKind::Connection => conn.add(h.value),
            _ => {}
        }
        // A 101 keeps Connection: upgrade and Upgrade: they describe the switch the client asked for.
        let drop = kind.is_hop_by_hop()
            && !(switching && matches!(kind, HeaderKind::Connection | HeaderKind::Upgrade));
        resp.headers.push(HeaderLine {
            name: Span::new(name_start, name_start + h.name.len()),
            value: Span::new(value_start, value_start + h.value.len()),
            line: Span::new(name_start, line_end),
            kind,
            drop,
        });
    }
    resp.bare_lf = head_has_bare_lf(data, resp.first_header, &resp.headers, len);
    if conn.others && !switching {
        drop_connection_named(data, &mut resp.headers);
    }

    let bodiless = head_request || resp.is_interim() || code == 204 || code == 304;
    let framing = if te.present() {
        if content_length.is_some() {
            return Err(ResponseError::BadFraming(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        // A Transfer-Encoding in an HTTP/1.0 message means its framing cannot be trusted (RFC
        // 9112 §6.1).
        if resp.http10 {
            return Err(ResponseError::BadFraming(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        match te.result() {
            TransferCoding::Chunked => Framing::Chunked,
            TransferCoding::EndsChunked => {
                resp.coded = true;
                Framing::Chunked
            }
            TransferCoding::NotChunked => {
                resp.coded = true;
                Framing::Close
            }
            TransferCoding::Invalid => {
                return Err(ResponseError::BadFraming("invalid Transfer-Encoding"));
            }
        }
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    resp.framing = FramingOr(if bodiless { Framing::None } else { framing });
    resp.close =
        conn.close || (resp.http10 && !conn.keep_alive) || resp.framing.0 == Framing::Close;
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::STACK_SLOTS;

    fn parse(s: &str, head: bool) -> Result<ResponseHead, ResponseError> {
        let mut r = ResponseHead::default();
        parse_response(s.as_bytes(), head, &mut r)?.ok_or(ResponseError::Malformed("partial"))?;
        Ok(r)
    }

    #[test]
    fn responses_with_more_fields_than_the_stack_slots() {
        let head = |n: usize| {
            let mut s = String::from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
            for i in 1..n {
                s.push_str(&format!("X-F{i}: v\r\n"));
            }
            s + "\r\n"
        };
        for n in [STACK_SLOTS, STACK_SLOTS + 1, MAX_HEADERS_LIMIT] {
            let r = parse(&head(n), false).unwrap();
            assert_eq!(r.headers.len(), n);
            assert_eq!(r.framing.0, Framing::Length(0));
        }
        assert_eq!(
            parse(&head(MAX_HEADERS_LIMIT + 1), false).err(),
            Some(ResponseError::TooManyHeaders)
        );
    }

    #[test]
    fn framing_rules() {
        let r = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).unwrap();
        assert_eq!(r.framing.0, Framing::Length(5));
        assert!(!r.close);
        let r = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert_eq!(r.framing.0, Framing::None);
        let r = parse("HTTP/1.1 204 No Content\r\n\r\n", false).unwrap();
        assert_eq!(r.framing.0, Framing::None);
        let r = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.framing.0, Framing::Chunked);
        let r = parse("HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert_eq!(r.framing.0, Framing::Close);
        assert!(r.close);
        let r = parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).unwrap();
        assert!(r.close);
        assert!(
            parse(
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .is_err()
        );
        assert!(
            parse(
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            )
            .is_err()
        );
        let r = parse(
            "HTTP/1.1 101 Switching\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(r.headers.iter().all(|h| !h.drop));
    }
}
