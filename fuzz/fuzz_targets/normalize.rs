//! Path normalization: never panics; the output is normal (normalizing it again changes nothing), no
//! longer than the input, keeps the query byte for byte, and its path has no `//` (when merging),
//! no `.` or `..` segment, no lowercase or unreserved percent-encoding, no NUL, and no encoded or raw
//! separator the options do not keep.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::normalize::{
    DotSegments, EncodedSeparators, Normalized, Options, normalize,
};

fn options(b: u8) -> Options {
    Options {
        merge_slashes: b & 1 == 0,
        dot_segments: if b & 2 == 0 { DotSegments::Reject } else { DotSegments::Resolve },
        encoded_separators: match (b >> 2) % 3 {
            0 => EncodedSeparators::Reject,
            1 => EncodedSeparators::Keep,
            _ => EncodedSeparators::Decode,
        },
    }
}

fn split_query(t: &[u8]) -> (&[u8], &[u8]) {
    t.split_at(t.iter().position(|&b| b == b'?').unwrap_or(t.len()))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

// Input: one byte choosing the options, then the target.
fuzz_target!(|data: &[u8]| {
    let Some((&o, target)) = data.split_first() else { return };
    let opts = options(o);
    let mut out = Vec::new();
    let Ok(n) = normalize(target, &opts, &mut out) else { return };
    let norm = n.bytes(&out).to_vec();
    if let Normalized::Unchanged(t) = n {
        assert_eq!(t, target);
    }
    assert!(norm.len() <= target.len());

    let mut again = Vec::new();
    assert_eq!(normalize(&norm, &opts, &mut again), Ok(Normalized::Unchanged(&norm[..])));

    let (path, query) = split_query(&norm);
    assert_eq!(query, split_query(target).1);
    if path.first() != Some(&b'/') {
        // Empty path or `*`: returned as given.
        assert_eq!(norm, target);
        return;
    }
    if opts.merge_slashes {
        assert!(!path.windows(2).any(|w| w == b"//"));
    }
    assert!(!path.split(|&b| b == b'/').any(|s| s == b"." || s == b".."));
    assert!(!path.contains(&0) && !path.contains(&b'#'));
    if opts.encoded_separators == EncodedSeparators::Reject {
        assert!(!path.contains(&b'\\'));
    }
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let (Some(hi), Some(lo)) = (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            ) else {
                panic!("malformed or lowercase escape at {i}");
            };
            let v = (hi << 4) | lo;
            assert!(!is_unreserved(v) && v != 0, "escape of {v:#04x} left encoded");
            if v == b'/' || v == b'\\' {
                assert_eq!(opts.encoded_separators, EncodedSeparators::Keep);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
});
