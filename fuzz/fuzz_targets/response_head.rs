//! Response-head parser: never panics; spans stay inside the head; HEAD, 1xx, 204 and 304 never
//! carry a body whatever the headers say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::{Framing, ResponseHead, parse_response};

fuzz_target!(|data: &[u8]| {
    for head_request in [false, true] {
        let mut r = ResponseHead::default();
        let Ok(Some(())) = parse_response(data, head_request, &mut r) else { continue };
        assert!(r.len <= data.len() && r.first_header <= r.headers_end && r.headers_end <= r.len);
        for h in &r.headers {
            assert!(h.line.start <= h.line.end && (h.line.end as usize) <= r.len);
        }
        if head_request || r.is_interim() || r.status == 204 || r.status == 304 {
            assert_eq!(r.framing.0, Framing::None);
        }
    }
});
