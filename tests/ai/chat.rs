//! Whole and streamed chat through each provider kind, tool calls, OpenAI-shaped errors, /v1/models.

use super::*;

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
