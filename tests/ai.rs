//! The AI gateway's unified API against mock providers that speak each provider's documented
//! wire format: translation both ways (whole and streamed), keys, fallback, errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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

both_drivers!(chat_through_each_provider_kind, |d| {
    let (oa, an, ge) = (
        providers::start(providers::openai),
        providers::start(providers::anthropic),
        providers::start(providers::gemini),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir,
        &[
            p("oa", "compatible", oa.addr, &["sk-oa"]),
            p("an", "anthropic", an.addr, &["sk-an"]),
            p("ge", "gemini", ge.addr, &["sk-ge"]),
        ],
        &[
            ("fast", &[("oa", "gpt-4o-mini")]),
            ("claude", &[("an", "claude-haiku-4-5")]),
            ("gem", &[("ge", "gemini-2.5-flash")]),
        ],
    );
    let g = gateway(d, &text);
    let a = addr(&g);
    for model in ["fast", "claude", "gem"] {
        // Whole.
        let r = post(a, "/ai/v1/chat/completions", &chat(model, false));
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["object"], "chat.completion", "{model}: {v}");
        assert_eq!(
            v["choices"][0]["message"]["content"], "Hello world",
            "{model}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{model}");
        assert_eq!(v["usage"]["prompt_tokens"], PROMPT_TOKENS, "{model}");
        assert_eq!(
            v["usage"]["completion_tokens"], COMPLETION_TOKENS,
            "{model}"
        );
        // Streamed, without and with the usage chunk.
        for include in [false, true] {
            let mut body = chat(model, true);
            if include {
                body["stream_options"] = json!({"include_usage": true});
            }
            let r = post(a, "/ai/v1/chat/completions", &body);
            assert_eq!(r.status, 200, "{model}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("text/event-stream"));
            assert_eq!(r.header("transfer-encoding"), Some("chunked"));
            let (text, usage, finishes) = streamed(&r.body);
            assert_eq!(text, "Hello world", "{model}");
            assert_eq!(finishes, ["stop"], "{model}");
            assert_eq!(usage.is_some(), include, "{model}: {usage:?}");
            if let Some(u) = usage {
                assert_eq!(u["prompt_tokens"], PROMPT_TOKENS, "{model}");
                assert_eq!(u["completion_tokens"], COMPLETION_TOKENS, "{model}");
            }
        }
    }
    // What each provider was sent: its own format, its model name, its key header.
    let o = oa.last();
    assert_eq!(o.target, "/v1/chat/completions");
    assert_eq!(o.header("authorization"), Some("Bearer sk-oa"));
    let b = providers::body_json(&o);
    assert_eq!(b["model"], "gpt-4o-mini");
    assert_eq!(
        b["stream_options"]["include_usage"], true,
        "a stream always asks for usage"
    );
    let n = an.last();
    assert_eq!(n.target, "/v1/messages");
    assert_eq!(n.header("x-api-key"), Some("sk-an"));
    assert!(n.header("anthropic-version").is_some());
    assert!(n.header("authorization").is_none());
    let b = providers::body_json(&n);
    assert_eq!(b["model"], "claude-haiku-4-5");
    assert_eq!(b["system"], "Be brief.");
    assert_eq!(b["messages"][0]["role"], "user");
    let e = ge.last();
    assert_eq!(
        e.target,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(e.header("x-goog-api-key"), Some("sk-ge"));
    let b = providers::body_json(&e);
    assert_eq!(b["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert!(
        oa.connections() <= 2,
        "provider connections are pooled: {}",
        oa.connections()
    );
});

both_drivers!(tool_calls_translate_back, |d| {
    let (an, ge) = (
        providers::start(providers::anthropic),
        providers::start(providers::gemini),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir,
        &[
            p("an", "anthropic", an.addr, &["k"]),
            p("ge", "gemini", ge.addr, &["k"]),
        ],
        &[("claude", &[("an", "c")]), ("gem", &[("ge", "g")])],
    );
    let g = gateway(d, &text);
    for model in ["claude", "gem"] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "auto"});
        let r = post(addr(&g), "/ai/v1/chat/completions", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let c = &v["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls", "{model}: {v}");
        let call = &c["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Paris"}));
    }
    let b = providers::body_json(&an.last());
    assert_eq!(b["tools"][0]["name"], "get_weather");
    assert_eq!(b["tool_choice"], json!({"type": "auto"}));
});

both_drivers!(errors_are_openai_shaped, |d| {
    let bad = Mock::start(|_| {
        json_reply(
            400,
            &json!({"error": {"message": "messages: too long", "type": "invalid_request_error",
            "param": "messages", "code": "context_length_exceeded"}}),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir,
        &[p("oa", "openai", bad.addr, &["k"])],
        &[("fast", &[("oa", "m")])],
    );
    let g = gateway(d, &text);
    let a = addr(&g);
    let check = |r: &Response, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(v["error"]["type"].is_string(), "{v}");
        v
    };
    let r = post(a, "/ai/v1/chat/completions", &chat("nope", false));
    let v = check(&r, 404, "model_not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("`nope`"));
    let r = raw_request(
        a,
        b"POST /ai/v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n{oops",
    )
    .unwrap();
    check(&r, 400, "invalid_request");
    let r = post(a, "/ai/v1/chat/completions", &json!({"model": "fast"}));
    let v = check(&r, 400, "invalid_request");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("messages"),
        "names the field: {v}"
    );
    let r = post(
        a,
        "/ai/v1/chat/completions",
        &json!({"model": "fast", "messages": [{"role": "user", "content": 5}]}),
    );
    let v = check(&r, 400, "invalid_request");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages[0]"),
        "{v}"
    );
    // The provider's own 400 passes through, with its code and message.
    let r = post(a, "/ai/v1/chat/completions", &chat("fast", false));
    let v = check(&r, 400, "context_length_exceeded");
    assert_eq!(v["error"]["message"], "messages: too long");
    let r = raw_request(
        a,
        b"GET /ai/v1/chat/completions HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    check(&r, 405, "method_not_allowed");
    let r = raw_request(a, b"GET /ai/v1/nothing HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    check(&r, 404, "route_not_found");
});

both_drivers!(models_lists_the_routes_aliases, |d| {
    let up = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let mut text = config(
        &dir,
        &[p("oa", "openai", up.addr, &["k"])],
        &[("fast", &[("oa", "m")]), ("slow", &[("oa", "m2")])],
    );
    text.push_str("\n[[routes]]\nname = \"narrow\"\npath_prefix = \"/narrow\"\nai = { models = [\"slow\"] }\n");
    let g = gateway(d, &text);
    let r = get(addr(&g), "/ai/v1/models");
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fast", "slow"]);
    assert_eq!(v["object"], "list");
    let v: Value = serde_json::from_slice(&get(addr(&g), "/narrow/v1/models").body).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(get(addr(&g), "/narrow/v1/models/slow").status, 200);
    // HEAD: the head alone, with the length the body would have.
    let mut c = Client::connect(addr(&g));
    c.send(b"HEAD /ai/v1/models HTTP/1.1\r\nHost: t\r\n\r\n");
    let h = c.response(true).unwrap();
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert!(h.header("content-length").is_some_and(|l| l != "0"));
    assert_eq!(c.get("/ai/v1/models").status, 200, "the connection goes on");
    assert_eq!(get(addr(&g), "/narrow/v1/models/fast").status, 404);
    // An alias the route does not serve is not found there.
    let r = post(
        addr(&g),
        "/narrow/v1/chat/completions",
        &chat("fast", false),
    );
    assert_eq!(r.status, 404);
    assert_eq!(up.requests().len(), 0);
});

both_drivers!(falls_back_on_5xx_429_and_timeouts, |d| {
    let down = Mock::start(|_| {
        json_reply(
            500,
            &json!({"error": {"message": "boom", "type": "server_error"}}),
        )
    });
    let limited = Mock::start(|_| {
        json_reply(
            429,
            &json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
        )
    });
    let slow = Mock::start(|_| {
        Reply::Delay(
            Duration::from_secs(2),
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec(),
        )
    });
    let good = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let timeout = P {
        extra: "[ai.providers.slow.upstream]\nresponse_timeout = \"200ms\"\n",
        ..p("slow", "openai", slow.addr, &["k"])
    };
    let text = config(
        &dir,
        &[
            p("down", "openai", down.addr, &["k"]),
            p("limited", "openai", limited.addr, &["k"]),
            timeout,
            p("good", "openai", good.addr, &["k"]),
        ],
        &[
            (
                "chain",
                &[
                    ("down", "a"),
                    ("limited", "b"),
                    ("slow", "c"),
                    ("good", "d"),
                ],
            ),
            ("only-down", &[("down", "a")]),
            ("only-limited", &[("limited", "b")]),
        ],
    );
    let g = gateway(d, &text);
    // Without another candidate, the last answer is the client's.
    let r = post(
        addr(&g),
        "/ai/v1/chat/completions",
        &chat("only-down", false),
    );
    assert_eq!(r.status, 500);
    let r = post(
        addr(&g),
        "/ai/v1/chat/completions",
        &chat("only-limited", false),
    );
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    // The chain: a 500, then a provider whose only key now cools down (skipped without a
    // request), then a timeout, then the one that serves.
    let r = post(addr(&g), "/ai/v1/chat/completions", &chat("chain", false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["model"], "d", "served by the last candidate");
    assert_eq!(down.requests().len(), 2);
    assert_eq!(limited.requests().len(), 1);
    assert_eq!(slow.requests().len(), 1);
});

both_drivers!(keys_rotate_cool_down_and_get_disabled, |d| {
    // Key "hot" is rate limited for a minute, key "bad" is refused, key "good" works.
    let up = Mock::start(|r| match r.header("authorization") {
        Some("Bearer hot") => Reply::Raw(
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 60\r\ncontent-length: 2\r\n\r\n{}"
                .to_vec(),
        ),
        Some("Bearer bad") => json_reply(
            401,
            &json!({"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}),
        ),
        _ => providers::openai(r),
    });
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir,
        &[p("oa", "openai", up.addr, &["hot", "bad", "good"])],
        &[("fast", &[("oa", "m")])],
    );
    let g = gateway(d, &text);
    for _ in 0..6 {
        let r = post(addr(&g), "/ai/v1/chat/completions", &chat("fast", false));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let keys: Vec<String> = up
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    let n = |k: &str| keys.iter().filter(|x| x.as_str() == k).count();
    assert_eq!(n("Bearer hot"), 1, "a cooling key is skipped: {keys:?}");
    assert_eq!(n("Bearer bad"), 1, "a refused key is disabled: {keys:?}");
    assert_eq!(n("Bearer good"), 6);
    // A provider whose keys are all out: 503 with when to come back.
    let up2 = Mock::start(|_| {
        Reply::Raw(b"HTTP/1.1 429 X\r\nretry-after: 30\r\ncontent-length: 0\r\n\r\n".to_vec())
    });
    let dir2 = tempfile::tempdir().unwrap();
    let g2 = gateway(
        d,
        &config(
            &dir2,
            &[p("oa", "openai", up2.addr, &["only"])],
            &[("fast", &[("oa", "m")])],
        ),
    );
    let r = post(addr(&g2), "/ai/v1/chat/completions", &chat("fast", false));
    assert_eq!(r.status, 429, "the provider's own 429 first");
    let r = post(addr(&g2), "/ai/v1/chat/completions", &chat("fast", false));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "provider_keys_unavailable");
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&secs), "{secs}");
    assert_eq!(up2.requests().len(), 1);
});

both_drivers!(bodies_are_bounded_and_connections_kept, |d| {
    let up = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let mut text = config(
        &dir,
        &[p("oa", "openai", up.addr, &["k"])],
        &[("fast", &[("oa", "m")])],
    );
    text = text.replace("ai = {}", "ai = {}\nmax_body_size = 2000");
    let g = gateway(d, &text);
    let mut c = Client::connect(addr(&g));
    for stream in [false, true, false] {
        let b = chat("fast", stream).to_string();
        // Chunked request bodies are read whole too.
        c.send(
            format!(
                "POST /ai/v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                b.len()
            )
            .as_bytes(),
        );
        let r = c.response(false).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!r.closes());
    }
    assert_eq!(up.requests().len(), 3);
    let big = json!({"model": "fast", "messages": [{"role": "user", "content": "x".repeat(3000)}]});
    let r = post(addr(&g), "/ai/v1/chat/completions", &big);
    assert_eq!(r.status, 413);
    assert_eq!(up.requests().len(), 3);
});

both_drivers!(embeddings_through_openai_and_gemini, |d| {
    let (oa, ge, an) = (
        providers::start(providers::openai),
        providers::start(providers::gemini),
        providers::start(providers::anthropic),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir,
        &[
            p("oa", "openai", oa.addr, &["k"]),
            p("ge", "gemini", ge.addr, &["k"]),
            p("an", "anthropic", an.addr, &["k"]),
        ],
        &[
            ("embed", &[("oa", "text-embedding-3-small")]),
            ("gembed", &[("ge", "text-embedding-004")]),
            ("claude", &[("an", "c")]),
        ],
    );
    let g = gateway(d, &text);
    for model in ["embed", "gembed"] {
        let r = post(
            addr(&g),
            "/ai/v1/embeddings",
            &json!({"model": model, "input": ["a", "b"]}),
        );
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 3);
        assert_eq!(v["usage"]["prompt_tokens"], 2, "{model}: {v}");
    }
    assert_eq!(
        providers::body_json(&oa.last())["model"],
        "text-embedding-3-small"
    );
    let r = post(
        addr(&g),
        "/ai/v1/embeddings",
        &json!({"model": "claude", "input": "a"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("no embeddings API"));
    assert_eq!(an.requests().len(), 0);
});

// The call record of an AI call: the alias, provider and model, tokens, cost, time to first
// token; never a key.
both_drivers!(calls_are_accounted_in_the_call_log, |d| {
    let oa = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.jsonl");
    let mut text = config(
        &dir,
        &[p("oa", "openai", oa.addr, &["sk-secret-oa"])],
        &[("fast", &[("oa", "gpt-4o-mini")])],
    );
    text.push_str(&format!(
        "[call_log]\nheaders = [\"authorization\"]\n[call_log.file]\npath = {:?}\n",
        log.display().to_string()
    ));
    let g = gateway(d, &text);
    for stream in [false, true] {
        let r = post(addr(&g), "/ai/v1/chat/completions", &chat("fast", stream));
        assert_eq!(r.status, 200);
    }
    let stats = g.call_log().unwrap();
    wait_for("2 records", || {
        stats.written(ringway::observe::calllog::Sink::File) >= 2
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("sk-secret"),
        "no key in the call log: {text}"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (l, streamed) in lines.iter().zip([false, true]) {
        let ai = &l["ai"];
        assert_eq!(ai["model"], "fast", "{l}");
        assert_eq!(ai["provider"], "oa");
        assert_eq!(ai["provider_model"], "gpt-4o-mini");
        assert_eq!(ai["input_tokens"], PROMPT_TOKENS);
        assert_eq!(ai["output_tokens"], COMPLETION_TOKENS);
        assert_eq!(ai["streamed"], streamed);
        assert!(ai.get("estimated").is_none());
        // 11 × $0.15/M + 2 × $0.60/M = $0.00000285.
        assert_eq!(ai["cost_usd"].as_f64().unwrap(), 0.00000285, "{l}");
        if streamed {
            assert!(ai["first_token_us"].as_u64().is_some(), "{l}");
        }
    }
});

// A client that leaves mid-stream: the provider connection is closed and the call is charged
// what was generated (estimated, since the provider's final count never came).
both_drivers!(a_client_leaving_mid_stream_is_charged, |d| {
    let gate = Gate::default();
    let g2 = gate.clone();
    let an = Mock::start(move |_| {
        let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
        let first = format!(
            "{}{}",
            ev(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                "role": "assistant", "model": "c", "content": [], "usage": {"input_tokens": 40, "output_tokens": 1}}})
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "Once upon a time"}})
            ),
        );
        let rest = ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": " there was a gateway"}}),
        );
        let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
        Reply::Gated(
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{}", chunk(&first)).into_bytes(),
            g2.clone(),
            chunk(&rest).into_bytes(),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.jsonl");
    let slow = P {
        extra: "[ai.providers.an.upstream]\nread_timeout = \"300ms\"\n",
        ..p("an", "anthropic", an.addr, &["k"])
    };
    let mut text = config(&dir, &[slow], &[("claude", &[("an", "c")])]);
    text.push_str(&format!(
        "[ai.prices.c]\ninput = 1\noutput = 2\n[call_log]\n[call_log.file]\npath = {:?}\n",
        log.display().to_string()
    ));
    let g = gateway(d, &text);
    let mut c = Client::connect(addr(&g));
    let b = chat("claude", true).to_string();
    c.send(
        format!(
            "POST /ai/v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )
        .as_bytes(),
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("Once upon a time") {
        let n = std::io::Read::read(&mut c.r, &mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    drop(c);
    gate.expect("the provider sends the rest");
    let stats = g.call_log().unwrap();
    wait_for("the record", || {
        stats.written(ringway::observe::calllog::Sink::File) >= 1
    });
    let l: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let ai = &l["ai"];
    assert_eq!(ai["estimated"], true, "{l}");
    assert_eq!(
        ai["input_tokens"], 40,
        "the provider's input count is kept: {l}"
    );
    let out = ai["output_tokens"].as_u64().unwrap();
    assert!(out >= 4, "at least what the client saw is charged: {l}");
    assert!(ai["cost_usd"].as_f64().unwrap() > 0.0);
});

both_drivers!(prompts_are_published_as_rest_apis, |d| {
    let up = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let mut text = config(
        &dir,
        &[p("oa", "openai", up.addr, &["k"])],
        &[("fast", &[("oa", "gpt-4o-mini")])],
    );
    text.push_str(
        r#"
[[routes]]
name = "translate"
path_exact = "/translate"
[routes.ai.prompt]
model = "fast"
system = "Translate into {{language}}. Answer with the translation only."
user = "{{text}}"
params = { temperature = 0.2, max_tokens = 100 }
[routes.ai.prompt.variables]
text = { max_length = 1000 }
language = { enum = ["French", "German"], default = "French" }
"#,
    );
    let g = gateway(d, &text);
    let a = addr(&g);
    let r = post(
        a,
        "/translate",
        &json!({"text": "Good morning", "language": "German"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["output"], "Hello world", "{v}");
    assert_eq!(v["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], COMPLETION_TOKENS);
    let sent = providers::body_json(&up.last());
    assert_eq!(
        sent["messages"][0]["content"],
        "Translate into German. Answer with the translation only."
    );
    assert_eq!(sent["messages"][1]["content"], "Good morning");
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["model"], "gpt-4o-mini");
    // Streamed on request.
    let r = post(a, "/translate", &json!({"text": "Hi", "stream": true}));
    assert_eq!(r.status, 200);
    assert_eq!(streamed(&r.body).0, "Hello world");
    assert_eq!(
        providers::body_json(&up.last())["messages"][0]["content"],
        "Translate into French. Answer with the translation only.",
        "the default"
    );
    // Bad input: 400 naming the variable, nothing sent.
    let before = up.requests().len();
    for (body, field) in [
        (json!({}), "text"),
        (json!({"text": "x", "language": "Klingon"}), "language"),
        (json!({"text": 3}), "text"),
        (json!({"text": "x", "tone": "dry"}), "tone"),
    ] {
        let r = post(a, "/translate", &body);
        assert_eq!(r.status, 400, "{body}");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}:")),
            "{body}: {v}"
        );
    }
    assert_eq!(up.requests().len(), before);
    let r = raw_request(a, b"GET /translate HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(r.status, 405);
});

#[test]
fn bad_ai_config_names_the_field() {
    let base = "[ai.providers.oa]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1\"\n[ai.models.fast]\ntargets = [{ provider = \"oa\", model = \"m\" }]\n";
    for (extra, field) in [
        ("[ai.providers.x]\nkind = \"bard\"\n", "ai.providers.x.kind"),
        (
            "[ai.providers.x]\nkind = \"compatible\"\n",
            "ai.providers.x.base_url",
        ),
        (
            "[ai.providers.x]\nkind = \"openai\"\nbase_url = \"ftp://h\"\n",
            "ai.providers.x.base_url",
        ),
        (
            "[ai.providers.x]\nkind = \"openai\"\nkeys_env = [\"RINGWAY_TEST_UNSET_VAR\"]\n",
            "ai.providers.x.keys_env[0]",
        ),
        (
            "[ai.providers.x]\nkind = \"openai\"\napi_version = \"1\"\n",
            "ai.providers.x.api_version",
        ),
        (
            "[ai.models.y]\ntargets = [{ provider = \"nope\", model = \"m\" }]\n",
            "ai.models.y.targets[0].provider",
        ),
        ("[ai.models.y]\ntargets = []\n", "ai.models.y.targets"),
        (
            "[ai.models.y]\nstrategy = \"random\"\ntargets = [{ provider = \"oa\", model = \"m\" }]\n",
            "ai.models.y.strategy",
        ),
        (
            "[ai.prices.m]\ninput = \"cheap\"\noutput = 1\n",
            "ai.prices.\"m\".input",
        ),
        (
            "[ai]\nreserve_output_tokens = 0\n",
            "ai.reserve_output_tokens",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { models = [\"nope\"] }\n",
            "routes[0].ai.models[0]",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { provider = \"nope\" }\n",
            "routes[0].ai.provider",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { limits = { tokens_per_day = 0 } }\n",
            "routes[0].ai.limits.tokens_per_day",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { limits = {} }\n",
            "routes[0].ai.limits",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nupstream_host = \"h\"\nai = {}\n",
            "routes[0].ai",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { prompt = { model = \"nope\", user = \"x\" } }\n",
            "routes[0].ai.prompt.model",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nai = { prompt = { model = \"fast\", user = \"{{x}}\" } }\n",
            "routes[0].ai.prompt.variables",
        ),
    ] {
        let text = format!("{base}{extra}");
        let text = if text.contains("[[routes]]") {
            text
        } else {
            format!("{text}[[routes]]\npath_prefix = \"/\"\nai = {{}}\n")
        };
        // A table after [[routes]] would belong to the route: put [ai] tables first.
        let text = if let Some(rest) = extra.strip_prefix("[ai]\n") {
            format!("[ai]\n{rest}{base}[[routes]]\npath_prefix = \"/\"\nai = {{}}\n")
        } else {
            text
        };
        match ringway::Config::from_toml(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(ringway::config::ConfigError::Invalid { field: f, .. }) => {
                assert_eq!(f, field, "{text}")
            }
            Err(e) => panic!("{e}\n{text}"),
        }
    }
}

both_drivers!(a_providers_breaker_opens_and_the_alias_falls_back, |d| {
    let bad = Mock::start(|_| {
        json_reply(
            503,
            &json!({"error": {"message": "overloaded", "type": "server_error"}}),
        )
    });
    let good = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let breaker = P {
        extra: "[ai.providers.bad.upstream.breaker]\nconsecutive_failures = 2\nopen_duration = \"60s\"\nmax_open_duration = \"60s\"\n",
        ..p("bad", "openai", bad.addr, &["k"])
    };
    let text = config(
        &dir,
        &[breaker, p("good", "openai", good.addr, &["k"])],
        &[("fast", &[("bad", "a"), ("good", "b")])],
    );
    // Every call falls back until the breaker opens: more than the default fallback budget.
    let text = format!("[ai]\nfallback_budget_min_per_sec = 100000\n{text}");
    let g = gateway(d, &text);
    // Every call is served (by the second candidate); the failures open the first one's breaker
    // (shards publish outcomes at their tick), after which it gets no more requests.
    let mut calls = 0;
    let mut quiet = 0;
    while quiet < 20 {
        let before = bad.requests().len();
        let r = post(addr(&g), "/ai/v1/chat/completions", &chat("fast", false));
        assert_eq!(r.status, 200, "{}", r.text());
        calls += 1;
        quiet = if bad.requests().len() == before {
            quiet + 1
        } else {
            0
        };
        assert!(calls < 2000, "the breaker never opened");
    }
    assert!(bad.requests().len() >= 2);
    assert_eq!(good.requests().len(), calls);
});
