//! The AI gateway's translations: any bytes as an OpenAI chat request translate to each
//! provider's format or fail with a field named, never panic; any bytes as a provider's response
//! or stream (split anywhere) translate without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::ai::{anthropic, anthropic_stream, gemini, openai};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<openai::ChatRequest>(data) {
        if let Err(e) = anthropic::request(&req, "m") {
            assert!(!e.field.is_empty());
        }
        if let Err(e) = gemini::request(&req) {
            assert!(!e.field.is_empty());
        }
    }
    if let Ok(r) = serde_json::from_slice::<anthropic::MessageResponse>(data) {
        let _ = anthropic::response(r, "m", 0);
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = gemini::response(&v, "m", "id", 0);
    }
    let _ = anthropic::error(500, data);
    let cut = data.len() / 2;
    let mut out = Vec::new();
    let mut a = anthropic_stream::StreamTranslator::new("m", 0, true);
    let _ = a.feed(&data[..cut], &mut out);
    let _ = a.feed(&data[cut..], &mut out);
    let mut g = gemini::StreamTranslator::new("m", "id", 0, true);
    let _ = g.feed(&data[..cut], &mut out);
    let _ = g.feed(&data[cut..], &mut out);
    g.finish(&mut out);
});
