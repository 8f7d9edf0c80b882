//! The AI gateway's unified API against mock providers that speak each provider's documented
//! wire format: translation both ways (whole and streamed), keys, fallback, errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod accounting;
mod chat;
mod prompts;
mod resilience;

use std::net::SocketAddr;
use std::time::Duration;

use common::providers::{self, COMPLETION_TOKENS, PROMPT_TOKENS, json_reply};
use common::*;
use serde_json::{Value, json};

/// A provider table: `name`, `kind`, its mock's address, its keys.
struct P<'a> {
    name: &'a str,
    kind: &'a str,
    addr: SocketAddr,
    keys: &'a [&'a str],
    extra: &'a str,
}

fn p<'a>(name: &'a str, kind: &'a str, addr: SocketAddr, keys: &'a [&'a str]) -> P<'a> {
    P {
        name,
        kind,
        addr,
        keys,
        extra: "",
    }
}

/// The config text for `providers`, the aliases (`alias = [(provider, model)]`) and one AI route
/// at `/ai`.
fn config(
    dir: &tempfile::TempDir,
    providers: &[P<'_>],
    aliases: &[(&str, &[(&str, &str)])],
) -> String {
    let mut t = String::new();
    for p in providers {
        let keys = dir.path().join(format!("{}.keys", p.name));
        std::fs::write(&keys, p.keys.join("\n")).unwrap();
        t.push_str(&format!(
            "[ai.providers.{}]\nkind = \"{}\"\nbase_url = \"http://{}\"\nkeys_file = \"{}\"\n{}\n",
            p.name,
            p.kind,
            p.addr,
            keys.display(),
            p.extra
        ));
    }
    for (alias, targets) in aliases {
        let list: Vec<String> = targets
            .iter()
            .map(|(p, m)| format!("{{ provider = \"{p}\", model = \"{m}\" }}"))
            .collect();
        t.push_str(&format!(
            "[ai.models.\"{alias}\"]\ntargets = [{}]\n",
            list.join(", ")
        ));
    }
    t.push_str(
        "[ai.prices.\"gpt-4o-mini\"]\ninput = 0.15\noutput = 0.6\n\n[[routes]]\nname = \"ai\"\npath_prefix = \"/ai\"\nai = {}\n",
    );
    t
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> Response {
    let b = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    );
    raw_request(addr, req.as_bytes()).expect("a response")
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."}]})
}

/// The `data:` payloads of an SSE body.
fn events(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
        .collect()
}

/// The text of a streamed answer, and its usage chunk if any.
fn streamed(body: &[u8]) -> (String, Option<Value>, Vec<String>) {
    let evs = events(body);
    let mut text = String::new();
    let mut usage = None;
    let mut finishes = Vec::new();
    for e in &evs {
        if e == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(e).unwrap_or_else(|_| panic!("bad event {e:?}"));
        assert_eq!(v["object"], "chat.completion.chunk", "{v}");
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(c);
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finishes.push(f.to_string());
        }
        if !v["usage"].is_null() {
            usage = Some(v["usage"].clone());
        }
    }
    assert_eq!(evs.last().map(String::as_str), Some("[DONE]"), "{evs:?}");
    (text, usage, finishes)
}
