//! W3C Trace Context `traceparent` (version 00): `00-<trace-id>-<parent-id>-<flags>`, lower-case
//! hex, all-zero ids invalid. A later version is read by its first four fields, as the
//! recommendation asks; version `ff` and anything malformed is no parent at all (a new trace).

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_into(s: &[u8], out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(())
}

/// Parses a `traceparent` value (surrounding whitespace allowed).
pub fn parse(v: &[u8]) -> Option<TraceParent> {
    let v = super::headers::trim_ows(v);
    if v.len() < 55 {
        return None;
    }
    let mut version = [0u8];
    hex_into(&v[..2], &mut version)?;
    match version[0] {
        0 if v.len() != 55 => return None,
        0xff => return None,
        // A later version may add fields after a '-'.
        _ if v.len() > 55 && v[55] != b'-' => return None,
        _ => {}
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let mut t = TraceParent {
        trace_id: [0; 16],
        parent_id: [0; 8],
        flags: 0,
    };
    hex_into(&v[3..35], &mut t.trace_id)?;
    hex_into(&v[36..52], &mut t.parent_id)?;
    let mut flags = [0u8];
    hex_into(&v[53..55], &mut flags)?;
    t.flags = flags[0];
    if t.trace_id == [0; 16] || t.parent_id == [0; 8] {
        return None;
    }
    Some(t)
}

/// Writes `traceparent: 00-<trace>-<span>-<flags>\r\n` to `out`.
pub fn write_header(out: &mut Vec<u8>, trace_id: &[u8; 16], span_id: &[u8; 8], flags: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut line = [0u8; 13 + 55 + 2 + 1];
    line[..16].copy_from_slice(b"traceparent: 00-");
    let mut i = 16;
    for b in trace_id {
        line[i] = HEX[(b >> 4) as usize];
        line[i + 1] = HEX[(b & 0xf) as usize];
        i += 2;
    }
    line[i] = b'-';
    i += 1;
    for b in span_id {
        line[i] = HEX[(b >> 4) as usize];
        line[i + 1] = HEX[(b & 0xf) as usize];
        i += 2;
    }
    line[i] = b'-';
    line[i + 1] = HEX[(flags >> 4) as usize];
    line[i + 2] = HEX[(flags & 0xf) as usize];
    line[i + 3] = b'\r';
    line[i + 4] = b'\n';
    out.extend_from_slice(&line[..i + 5]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn table() {
        let t = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(t.flags, 1);
        assert_eq!(
            t.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(parse(format!(" {GOOD}\t").as_bytes()).is_some());
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ];
        for b in bad {
            assert!(parse(b.as_bytes()).is_none(), "{b}");
        }
        // A later version with more fields is read by its first four.
        assert!(parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abcd").is_some());
        assert!(parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x").is_none());
    }

    #[test]
    fn writes_what_it_parses() {
        let t = parse(GOOD.as_bytes()).unwrap();
        let mut out = Vec::new();
        write_header(&mut out, &t.trace_id, &t.parent_id, t.flags);
        assert_eq!(out, format!("traceparent: {GOOD}\r\n").as_bytes());
    }
}
