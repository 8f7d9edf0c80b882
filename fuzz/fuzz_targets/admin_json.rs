//! Admin API bodies: any bytes decode as every input type without a panic, and every refusal is
//! a 4xx that names at least one field.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for e in ringway::control::admin::fuzz_decode(data) {
        let status = e.status.as_u16();
        assert!((400..500).contains(&status), "{status}: {}", e.message);
        assert!(!e.fields.is_empty(), "no field named: {}", e.message);
    }
});
