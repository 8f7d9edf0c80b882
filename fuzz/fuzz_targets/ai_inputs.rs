//! The AI gateway's other inputs: embeddings requests (to every kind of provider) and answers,
//! providers' error bodies, OpenAI-format streams passed through (split anywhere), and prompts
//! (a definition from the first half, a call's input from the second): never a panic, and every
//! refusal names its field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::ai::embeddings::{self, EmbedRequest};
use ringway::ai::errors::provider_error;
use ringway::ai::openai_stream::PassThrough;
use ringway::ai::prompt::{Prompt, RawPrompt};
use ringway::ai::provider::Kind;

fuzz_target!(|data: &[u8]| {
    let kinds = [
        Kind::OpenAi,
        Kind::Compatible { stream_usage: true },
        Kind::Azure { api_version: String::new() },
        Kind::Anthropic,
        Kind::Gemini,
    ];
    if let Ok(raw) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(req) = serde_json::from_value::<EmbedRequest>(raw.clone()) {
            for k in &kinds {
                if let Err(e) = embeddings::outgoing(k, "", "m", "k", &req, &raw) {
                    assert!(!e.field.is_empty());
                }
                let _ = embeddings::response(k, data.to_vec(), "m", &req);
            }
        }
    }
    for k in &kinds {
        let e = provider_error(k, 400, data);
        assert!(!e.message.is_empty());
    }
    let cut = data.len() / 2;
    for include in [false, true] {
        let mut p = PassThrough::new(include);
        let mut out = Vec::new();
        let _ = p.feed(&data[..cut], &mut out);
        let _ = p.feed(&data[cut..], &mut out);
        p.finish(&mut out);
        assert!(p.is_done());
    }
    if let Ok(raw) = serde_json::from_slice::<RawPrompt>(&data[..cut]) {
        if let Ok(p) = Prompt::new(&raw) {
            if let Ok(input) = serde_json::from_slice::<serde_json::Value>(&data[cut..]) {
                let _ = p.render(&input);
            }
            let _ = p.answer(&data[cut..]);
        }
    }
});
