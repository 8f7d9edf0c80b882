//! Call records: any bytes as a record's text fields and numbers encode and decode back the
//! same, and their JSON line (query and body redaction included) is always valid JSON. Any
//! bytes as a `traceparent` parse or not without a panic, and what parses writes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::observe::record::{FIELDS, decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Some(t) = ringway::http::traceparent::parse(data) {
        let mut out = Vec::new();
        ringway::http::traceparent::write_header(&mut out, &t.trace_id, &t.parent_id, t.flags);
        let back = ringway::http::traceparent::parse(&out[13..out.len() - 2]);
        assert_eq!(back, Some(t));
    }
    let fixed_len = std::mem::size_of::<ringway::observe::record::Fixed>();
    if data.len() < fixed_len {
        return;
    }
    let mut fixed: ringway::observe::record::Fixed = bytemuck::pod_read_unaligned(&data[..fixed_len]);
    fixed.len = 0;
    let rest = &data[fixed_len..];
    let parts: Vec<&[u8]> = rest.splitn(FIELDS, |&b| b == 0xfe).collect();
    let mut fields: [&[u8]; FIELDS] = [&[]; FIELDS];
    for (i, p) in parts.iter().enumerate() {
        fields[i] = p;
    }
    let mut buf = Vec::new();
    encode(&mut buf, &fixed, &fields);
    let recs: Vec<_> = decode(&buf).collect();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].fields, fields);
    let line = ringway::observe::calllog::json::fuzz_line(&recs[0]);
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&line) {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(&line));
    }
});
