//! One call record on its way from a shard to the log writer, as bytes in the shard's ring.
//!
//! A record is a fixed part ([`Fixed`], plain integers) followed by its text fields, each a
//! little-endian `u16` length and the bytes, in the order of [`Field`]. The shard encodes what it
//! has at hand (numbers, raw TSC ticks, the head's bytes as they arrived) and nothing more: the
//! writer thread turns ticks into wall-clock time, splits and redacts the query, and formats.
//!
//! Performance: encoding is a few `memcpy`s into the shard's scratch buffer and one copy into the
//! ring; nothing allocates once the scratch buffer has grown to the largest record seen.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use bytemuck::{Pod, Zeroable};

/// The text fields of a record, in their order on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Field {
    RequestId,
    Route,
    Service,
    Tenant,
    App,
    /// The method token when it is not one of [`crate::http::Method`]'s named ones.
    Method,
    Host,
    /// Path and query, normalized when normalization changed them.
    Path,
    UserAgent,
    /// `name:value\n` for each recorded header.
    Headers,
    ErrorCode,
    ErrorMessage,
    RequestBody,
    ResponseBody,
    /// An AI call: the model (alias) the client asked for, the provider and the provider's model
    /// that served it, and its [`AiUsage`] as bytes.
    AiModel,
    AiProvider,
    AiProviderModel,
    AiUsage,
}

/// How many text fields a record has.
pub const FIELDS: usize = 18;

/// An AI call's numbers, carried as the bytes of [`Field::AiUsage`] (empty for other calls, so
/// they cost a record nothing).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct AiUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    /// Nano-dollars.
    pub cost: u64,
    /// Clock tick when the first token reached the client (0: none did).
    pub first_token: u64,
    /// Candidates tried.
    pub attempts: u32,
    pub flags: u32,
}

impl AiUsage {
    /// The token counts are the gateway's estimate.
    pub const ESTIMATED: u32 = 1;
    pub const STREAMED: u32 = 2;
}

/// Longest text field kept (longer ones are cut).
pub const MAX_FIELD: usize = u16::MAX as usize;

/// The numbers of a record. `repr(C)` without padding, so it is copied as bytes both ways.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Fixed {
    /// Bytes of the whole record, this part included.
    pub len: u32,
    pub status: u16,
    /// Index of the method in [`METHODS`]; `u8::MAX`: the token is in [`Field::Method`].
    pub method: u8,
    pub flags: u8,
    pub tries: u32,
    pub peer_port: u16,
    pub target_port: u16,
    pub peer_ip: [u8; 16],
    pub target_ip: [u8; 16],
    /// Clock ticks ([`crate::observe::clock`]): accepted, head, upstream connected, upstream first
    /// byte, last byte. 0: did not happen.
    pub ticks: [u64; 5],
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: [u8; 8],
}

/// Methods by their index in [`Fixed::method`].
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub mod flags {
    /// Bits 0-1: the client connection's TLS version (0 none, 1 TLSv1.2, 2 TLSv1.3, 3 other).
    pub const TLS_MASK: u8 = 0b11;
    /// Bits 2-3: the breaker's part (0 no upstream, 1 passed, 2 refused while open, 3 sent to the
    /// fallback).
    pub const BREAKER_SHIFT: u8 = 2;
    pub const PEER_V4: u8 = 1 << 4;
    pub const TARGET_V4: u8 = 1 << 5;
    pub const TARGET: u8 = 1 << 6;
    /// The trace ids are set.
    pub const TRACE: u8 = 1 << 7;
}

/// The breaker's part in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    None = 0,
    Passed = 1,
    Open = 2,
    Fallback = 3,
}

impl Fixed {
    pub fn set_peer(&mut self, a: SocketAddr) {
        let (ip, v4) = ip16(a.ip());
        self.peer_ip = ip;
        self.peer_port = a.port();
        if v4 {
            self.flags |= flags::PEER_V4;
        }
    }

    pub fn set_target(&mut self, a: SocketAddr) {
        let (ip, v4) = ip16(a.ip());
        self.target_ip = ip;
        self.target_port = a.port();
        self.flags |= flags::TARGET | if v4 { flags::TARGET_V4 } else { 0 };
    }

    pub fn set_tls(&mut self, version: Option<&str>) {
        self.flags |= match version {
            None => 0,
            Some("TLSv1.2") => 1,
            Some("TLSv1.3") => 2,
            Some(_) => 3,
        };
    }

    pub fn set_breaker(&mut self, b: Breaker) {
        self.flags |= (b as u8) << flags::BREAKER_SHIFT;
    }

    pub fn peer(&self) -> SocketAddr {
        addr(
            self.peer_ip,
            self.peer_port,
            self.flags & flags::PEER_V4 != 0,
        )
    }

    pub fn target(&self) -> Option<SocketAddr> {
        (self.flags & flags::TARGET != 0).then(|| {
            addr(
                self.target_ip,
                self.target_port,
                self.flags & flags::TARGET_V4 != 0,
            )
        })
    }

    pub fn tls(&self) -> Option<&'static str> {
        match self.flags & flags::TLS_MASK {
            0 => None,
            1 => Some("TLSv1.2"),
            2 => Some("TLSv1.3"),
            _ => Some("TLS"),
        }
    }

    pub fn breaker(&self) -> Breaker {
        match (self.flags >> flags::BREAKER_SHIFT) & 0b11 {
            0 => Breaker::None,
            1 => Breaker::Passed,
            2 => Breaker::Open,
            _ => Breaker::Fallback,
        }
    }

    pub fn has_trace(&self) -> bool {
        self.flags & flags::TRACE != 0
    }
}

fn ip16(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), true),
        IpAddr::V6(v6) => (v6.octets(), false),
    }
}

fn addr(ip: [u8; 16], port: u16, v4: bool) -> SocketAddr {
    let v6 = Ipv6Addr::from(ip);
    match v6.to_ipv4_mapped() {
        Some(v4a) if v4 => SocketAddr::new(IpAddr::V4(v4a), port),
        _ => SocketAddr::new(IpAddr::V6(v6), port),
    }
}

/// Appends the record of `fixed` and `fields` to `out` (fields longer than [`MAX_FIELD`] are cut).
pub fn encode(out: &mut Vec<u8>, fixed: &Fixed, fields: &[&[u8]; FIELDS]) {
    let start = out.len();
    out.extend_from_slice(bytemuck::bytes_of(fixed));
    for f in fields {
        put(out, f);
    }
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Appends one length-prefixed field.
pub fn put(out: &mut Vec<u8>, f: &[u8]) {
    let f = &f[..f.len().min(MAX_FIELD)];
    out.extend_from_slice(&(f.len() as u16).to_le_bytes());
    out.extend_from_slice(f);
}

/// Reads the length-prefixed fields of `buf` in order (as [`put`] wrote them); `None` when they
/// do not fit.
pub fn fields<const N: usize>(mut buf: &[u8]) -> Option<[&[u8]; N]> {
    let mut out: [&[u8]; N] = [&[]; N];
    for slot in out.iter_mut() {
        let [a, b, rest @ ..] = buf else {
            return None;
        };
        let n = u16::from_le_bytes([*a, *b]) as usize;
        if rest.len() < n {
            return None;
        }
        *slot = &rest[..n];
        buf = &rest[n..];
    }
    Some(out)
}

/// A record read back from a ring's bytes.
pub struct Record<'a> {
    pub fixed: Fixed,
    pub fields: [&'a [u8]; FIELDS],
}

impl<'a> Record<'a> {
    pub fn field(&self, f: Field) -> &'a [u8] {
        self.fields[f as usize]
    }

    /// A text field as UTF-8 (invalid bytes replaced).
    pub fn text(&self, f: Field) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.fields[f as usize])
    }

    /// The AI call's numbers, for an AI call's record.
    pub fn ai(&self) -> Option<AiUsage> {
        let b = self.field(Field::AiUsage);
        (b.len() == std::mem::size_of::<AiUsage>()).then(|| bytemuck::pod_read_unaligned(b))
    }

    pub fn method(&self) -> std::borrow::Cow<'a, str> {
        match METHODS.get(self.fixed.method as usize) {
            Some(m) => std::borrow::Cow::Borrowed(m),
            None => self.text(Field::Method),
        }
    }
}

/// Splits `buf` (whole records, as the rings hold them) into records. Stops at the first one that
/// does not decode (it cannot happen unless memory is corrupt; the rest of the batch is skipped).
pub fn decode(mut buf: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let head = buf.get(..std::mem::size_of::<Fixed>())?;
        let fixed: Fixed = bytemuck::pod_read_unaligned(head);
        let len = fixed.len as usize;
        if len < head.len() || len > buf.len() {
            buf = &[];
            return None;
        }
        let body = &buf[head.len()..len];
        buf = &buf[len..];
        let fields = fields::<FIELDS>(body)?;
        Some(Record { fixed, fields })
    })
}

/// Length of the first whole record at the start of `buf`, if it holds one.
pub fn first_len(buf: &[u8]) -> Option<usize> {
    let n = u32::from_ne_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    (n <= buf.len() && n >= std::mem::size_of::<Fixed>()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut f = Fixed::zeroed();
        f.status = 201;
        f.set_peer("10.1.2.3:4567".parse().unwrap());
        f.set_target("[::1]:80".parse().unwrap());
        f.set_tls(Some("TLSv1.3"));
        f.set_breaker(Breaker::Fallback);
        let mut fields: [&[u8]; FIELDS] = [&[]; FIELDS];
        fields[Field::Path as usize] = b"/a?b=c";
        fields[Field::ErrorCode as usize] = b"x";
        let mut buf = Vec::new();
        encode(&mut buf, &f, &fields);
        encode(&mut buf, &f, &fields);
        let recs: Vec<_> = decode(&buf).collect();
        assert_eq!(recs.len(), 2);
        let r = &recs[1];
        assert_eq!(r.fixed.status, 201);
        assert_eq!(r.fixed.peer().to_string(), "10.1.2.3:4567");
        assert_eq!(r.fixed.target().unwrap().to_string(), "[::1]:80");
        assert_eq!(r.fixed.tls(), Some("TLSv1.3"));
        assert_eq!(r.fixed.breaker(), Breaker::Fallback);
        assert_eq!(r.field(Field::Path), b"/a?b=c");
        assert_eq!(r.field(Field::ErrorCode), b"x");
        assert_eq!(first_len(&buf), Some(buf.len() / 2));
    }

    #[test]
    fn truncated_input_stops() {
        let f = Fixed::zeroed();
        let fields: [&[u8]; FIELDS] = [b"abc"; FIELDS];
        let mut buf = Vec::new();
        encode(&mut buf, &f, &fields);
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]).count(), 0);
        }
    }
}
