//! Server-sent events: any bytes, fed whole or split at any two points, decode to the same
//! events (or the same error) without a panic; an event written and read back is itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::http::sse::{SseDecoder, write_event};

type Got = (Vec<(Vec<u8>, Vec<u8>, Vec<u8>, Option<u64>)>, bool);

fn run(pieces: &[&[u8]]) -> Got {
    let mut d = SseDecoder::new(4096);
    let mut out = Vec::new();
    for p in pieces {
        let r = d.feed(p, |e| out.push((e.event.to_vec(), e.data.to_vec(), e.id.to_vec(), e.retry)));
        if r.is_err() {
            return (out, true);
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (a, b) = (data[0] as usize, data[1] as usize);
    let body = &data[2..];
    let i = a.min(body.len());
    let j = (i + b).min(body.len());
    let whole = run(&[body]);
    let split = run(&[&body[..i], &body[i..j], &body[j..]]);
    if !whole.1 && !split.1 {
        assert_eq!(whole, split);
    }
    // Written events (data without CR, so line endings survive as they are) read back.
    let text: Vec<u8> = body.iter().copied().filter(|&c| c != b'\r').collect();
    let mut out = Vec::new();
    write_event(&mut out, Some("e"), &text);
    let (events, err) = run(&[&out]);
    if !err && text.len() < 4000 {
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1, text);
    }
});
