//! Embeddings; what calls cost in the call log, including a client that leaves mid-stream.

use super::*;

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
