//! Request-head parser: never panics, and every span it records lies inside the input and inside
//! the head; a complete parse is stable when more bytes follow it; a split input never parses
//! differently from the whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::{Limits, RequestHead, parse_request};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_head: 8192, max_headers: 64, max_uri: 2048 };
    let mut head = RequestHead::default();
    let Ok(Some(())) = parse_request(data, &limits, &mut head) else { return };
    assert!(head.len <= data.len());
    for h in &head.headers {
        for s in [h.name, h.value, h.line] {
            assert!(s.start <= s.end && (s.end as usize) <= head.len);
        }
    }
    assert!(head.path.end as usize <= head.len && head.target.end as usize <= head.len);
    // Framing is decided by the head alone: trailing bytes (a body, the next request) change nothing.
    let mut longer = data[..head.len].to_vec();
    longer.extend_from_slice(b"trailing bytes");
    let mut again = RequestHead::default();
    assert_eq!(parse_request(&longer, &limits, &mut again), Ok(Some(())));
    assert_eq!(again.framing, head.framing);
    assert_eq!(again.len, head.len);
    // A prefix of a complete head is incomplete or an error, never a different complete head.
    if head.len > 1 {
        let mut part = RequestHead::default();
        if let Ok(Some(())) = parse_request(&data[..head.len - 1], &limits, &mut part) {
            panic!("a strict prefix parsed as a complete head");
        }
    }
});
