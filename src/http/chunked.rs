//! Streaming decoder for the chunked transfer coding (RFC 9112 §7.1), strict where leniency has been
//! used for request smuggling: CRLF is required after the size line and after each chunk's data,
//! chunk sizes are hex digits only (at most 16), extensions and trailer lines may not contain bare CR
//! or LF, and trailer lines may not be folded.
//!
//! The decoder only tracks boundaries: the gateway forwards chunked bodies as they were sent and uses
//! the data ranges only when it has to remove the coding (HTTP/1.0 clients).
//! It never allocates and works on input split at any byte.

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    SizeTooLarge,
    BadExtension,
    MissingCrlf,
    BadTrailer,
    TrailerTooLarge,
}

impl ChunkError {
    pub fn reason(self) -> &'static str {
        match self {
            ChunkError::BadSize => "invalid chunk size",
            ChunkError::SizeTooLarge => "chunk size too large",
            ChunkError::BadExtension => "invalid chunk extension",
            ChunkError::MissingCrlf => "chunk not terminated by CRLF",
            ChunkError::BadTrailer => "invalid trailer field",
            ChunkError::TrailerTooLarge => "trailer section too large",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a size line, no digit yet.
    SizeStart,
    /// Reading hex digits.
    Size,
    /// Whitespace after the size: a `;` must follow (RFC 9112 §7.1.1 allows BWS only there).
    SizeBws,
    /// A chunk extension (`*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`).
    Ext(Ext),
    /// Saw CR after the size line; LF must follow.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// After data: CR then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value, until CR.
    TrailerValue,
    /// Saw CR in the trailer section; LF must follow. `true`: it ends the message.
    TrailerLf(bool),
    Done,
}

/// Where in a chunk extension the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// After `;`: whitespace, then a name.
    NameStart,
    Name,
    /// Whitespace after a name: `=`, `;` or the line end.
    AfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ValueStart,
    Token,
    Quoted,
    /// After a backslash in a quoted string.
    QuotedPair,
    /// After a value: whitespace, `;` or the line end.
    AfterValue,
}

/// Progress of one [`ChunkedDecoder::decode`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input that belong to the chunked body.
    pub consumed: usize,
    /// The last chunk and trailer section were complete.
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    remaining: u64,
    ext_len: usize,
    trailer_len: usize,
    max_trailer: usize,
    /// The current trailer field's name, lower-cased (its first [`NAME_KEPT`] bytes), and length.
    name: [u8; NAME_KEPT],
    name_len: usize,
    /// Data bytes seen so far (for body size limits).
    pub data_len: u64,
}

/// Long enough for the longest trailer name refused: `transfer-encoding`.
const NAME_KEPT: usize = 17;

const MAX_EXT: usize = 4096;

impl ChunkedDecoder {
    /// `max_trailer`: largest trailer section accepted, in bytes.
    pub fn new(max_trailer: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            remaining: 0,
            ext_len: 0,
            trailer_len: 0,
            max_trailer,
            name: [0; NAME_KEPT],
            name_len: 0,
            data_len: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds `input`; calls `on_data(start, end)` for every range of chunk data in it. Stops at the
    /// end of the body: bytes after it are not consumed.
    pub fn decode(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(usize, usize),
    ) -> Result<Decoded, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::SizeStart | State::Size => {
                    if let Some(d) = hex(b) {
                        if self.digits == 16 {
                            return Err(ChunkError::SizeTooLarge);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.digits += 1;
                        self.state = State::Size;
                    } else if self.state == State::SizeStart {
                        return Err(ChunkError::BadSize);
                    } else if b == b';' {
                        self.ext_len = 0;
                        self.state = State::Ext(Ext::NameStart);
                    } else if b == b' ' || b == b'\t' {
                        self.state = State::SizeBws;
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else {
                        return Err(ChunkError::BadSize);
                    }
                    i += 1;
                }
                State::SizeBws => {
                    match b {
                        b' ' | b'\t' => {}
                        b';' => {
                            self.ext_len = 0;
                            self.state = State::Ext(Ext::NameStart);
                        }
                        _ => return Err(ChunkError::BadSize),
                    }
                    i += 1;
                }
                State::Ext(at) => {
                    self.ext_len += 1;
                    if self.ext_len > MAX_EXT {
                        return Err(ChunkError::BadExtension);
                    }
                    self.state = match ext_step(at, b).ok_or(ChunkError::BadExtension)? {
                        Some(next) => State::Ext(next),
                        None => State::SizeLf,
                    };
                    i += 1;
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    i += 1;
                    if self.size == 0 {
                        self.state = State::TrailerStart;
                    } else {
                        self.remaining = self.size;
                        self.state = State::Data;
                    }
                    self.size = 0;
                    self.digits = 0;
                }
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.remaining) as usize;
                    on_data(i, i + take);
                    i += take;
                    self.remaining -= take as u64;
                    self.data_len += take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    self.state = State::SizeStart;
                    i += 1;
                }
                State::TrailerStart => {
                    if b == b'\r' {
                        self.state = State::TrailerLf(true);
                    } else if super::headers::is_tchar(b) {
                        self.state = State::TrailerName;
                        self.name[0] = b.to_ascii_lowercase();
                        self.name_len = 1;
                    } else {
                        // SP/HTAB here would be obs-fold; anything else is not a field name.
                        return Err(ChunkError::BadTrailer);
                    }
                    self.bump_trailer()?;
                    i += 1;
                }
                State::TrailerName => {
                    if b == b':' {
                        if self.framing_trailer() {
                            return Err(ChunkError::BadTrailer);
                        }
                        self.state = State::TrailerValue;
                    } else if !super::headers::is_tchar(b) {
                        return Err(ChunkError::BadTrailer);
                    } else {
                        if let Some(slot) = self.name.get_mut(self.name_len) {
                            *slot = b.to_ascii_lowercase();
                        }
                        self.name_len = self.name_len.saturating_add(1);
                    }
                    self.bump_trailer()?;
                    i += 1;
                }
                State::TrailerValue => {
                    if b == b'\r' {
                        self.state = State::TrailerLf(false);
                    } else if b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f {
                        return Err(ChunkError::BadTrailer);
                    }
                    self.bump_trailer()?;
                    i += 1;
                }
                State::TrailerLf(last) => {
                    if b != b'\n' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    i += 1;
                    if last {
                        self.state = State::Done;
                        return Ok(Decoded {
                            consumed: i,
                            done: true,
                        });
                    }
                    self.state = State::TrailerStart;
                }
                State::Done => {
                    return Ok(Decoded {
                        consumed: i,
                        done: true,
                    });
                }
            }
        }
        Ok(Decoded {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// The trailer field just named frames or routes the message (Content-Length,
    /// Transfer-Encoding, Host): never allowed in a trailer section (RFC 9110 §6.5.1), and a
    /// recipient that merged it into the header section would frame the message otherwise.
    fn framing_trailer(&self) -> bool {
        let name = &self.name[..self.name_len.min(NAME_KEPT)];
        self.name_len <= NAME_KEPT
            && matches!(name, b"content-length" | b"transfer-encoding" | b"host")
    }

    fn bump_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer {
            return Err(ChunkError::TrailerTooLarge);
        }
        Ok(())
    }
}

#[inline]
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One byte of a chunk extension: the next place in it, `Some(None)` at the CR that ends the size
/// line, `None` for a byte the grammar does not allow there (RFC 9112 §7.1.1, RFC 9110 §5.6).
fn ext_step(at: Ext, b: u8) -> Option<Option<Ext>> {
    use super::headers::is_tchar;
    let ws = b == b' ' || b == b'\t';
    let next = match at {
        Ext::NameStart if ws => Ext::NameStart,
        Ext::NameStart | Ext::Name if is_tchar(b) => Ext::Name,
        Ext::Name | Ext::AfterName if ws => Ext::AfterName,
        Ext::Name | Ext::AfterName if b == b'=' => Ext::ValueStart,
        Ext::ValueStart if ws => Ext::ValueStart,
        Ext::ValueStart if b == b'"' => Ext::Quoted,
        Ext::ValueStart | Ext::Token if is_tchar(b) => Ext::Token,
        Ext::Token | Ext::AfterValue if ws => Ext::AfterValue,
        Ext::Quoted if b == b'"' => Ext::AfterValue,
        Ext::Quoted if b == b'\\' => Ext::QuotedPair,
        // qdtext: HTAB, SP, and visible characters other than `"` and `\`, or obs-text.
        Ext::Quoted if ws || b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80 => Ext::Quoted,
        Ext::QuotedPair if ws || (0x21..=0x7e).contains(&b) || b >= 0x80 => Ext::Quoted,
        Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue if b == b';' => Ext::NameStart,
        Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue if b == b'\r' => {
            return Some(None);
        }
        _ => return None,
    };
    Some(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = ChunkedDecoder::new(1024);
        let mut data = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + step).min(input.len());
            let chunk = &input[pos..end];
            let r = d.decode(chunk, |s, e| data.extend_from_slice(&chunk[s..e]))?;
            pos += r.consumed;
            if r.done {
                return Ok((data, pos));
            }
            if r.consumed < chunk.len() {
                unreachable!("decoder stopped early without being done");
            }
        }
        Err(ChunkError::MissingCrlf)
    }

    #[test]
    fn decodes_at_every_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (data, used) = decode_all(body, step).unwrap();
            assert_eq!(data, b"hello world");
            assert_eq!(&body[used..], b"NEXT");
        }
    }

    #[test]
    fn rejects_smuggling_shapes() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"\r\n",
            b"10000000000000000\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
            b"0\r\n folded\r\n\r\n",
            b"0\r\nBad Name: x\r\n\r\n",
            b"0\r\nX: a\rb\r\n\r\n",
            b"0\r\nContent-Length: 5\r\n\r\n",
            b"0\r\ntransfer-Encoding: chunked\r\n\r\n",
            b"0\r\nHOST: elsewhere\r\n\r\n",
        ] {
            assert!(
                decode_all(bad, 1).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(
                decode_all(bad, bad.len()).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunk_extensions_follow_the_grammar() {
        for good in [
            &b"2;a\r\nok\r\n0\r\n\r\n"[..],
            b"2;a=1;b=two\r\nok\r\n0\r\n\r\n",
            b"2 ;a = \"x;y\\\"z\" ; b\r\nok\r\n0\r\n\r\n",
            b"2;a=\"\"\r\nok\r\n0;last\r\n\r\n",
        ] {
            let (data, _) = decode_all(good, 1)
                .unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(good)));
            assert_eq!(data, b"ok", "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"2;a=\"unterminated\r\nok\r\n0\r\n\r\n"[..],
            b"2;\r\nok\r\n0\r\n\r\n",
            b"2;=1\r\nok\r\n0\r\n\r\n",
            b"2;a=\r\nok\r\n0\r\n\r\n",
            b"2;a b\r\nok\r\n0\r\n\r\n",
            b"2;a=1 2\r\nok\r\n0\r\n\r\n",
            b"2;a=\"x\"y\r\nok\r\n0\r\n\r\n",
            b"2;a=(x)\r\nok\r\n0\r\n\r\n",
            b"2;a=\"x\ry\"\r\nok\r\n0\r\n\r\n",
            b"2 \r\nok\r\n0\r\n\r\n",
        ] {
            assert!(
                decode_all(bad, 1).is_err() && decode_all(bad, bad.len()).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn empty_body() {
        let (data, used) = decode_all(b"0\r\n\r\n", 64).unwrap();
        assert!(data.is_empty());
        assert_eq!(used, 5);
    }
}
