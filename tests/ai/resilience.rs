//! Fallback on 5xx, 429 and timeouts; keys that rotate, cool down and get disabled (401 only: a 403 forbids the request, not the key); native calls that keep their method and are not passed on as complete when cut; bounded bodies; a provider's breaker.

use super::*;

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

both_drivers!(a_forbidden_request_does_not_disable_keys, |d| {
    // The provider forbids model "secret" to the account (403) and answers "m" with every key.
    let up = Mock::start(|r| {
        if String::from_utf8_lossy(&r.body).contains("\"secret\"") {
            return json_reply(
                403,
                &json!({"error": {"message": "Project does not have access to model secret", "type": "invalid_request_error", "code": "model_not_found"}}),
            );
        }
        providers::openai(r)
    });
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &dir,
        &[p("oa", "openai", up.addr, &["k1", "k2", "k3"])],
        &[("fast", &[("oa", "m")]), ("locked", &[("oa", "secret")])],
    );
    let g = gateway(d, &text);
    for _ in 0..5 {
        let r = post(addr(&g), "/ai/v1/chat/completions", &chat("locked", false));
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("does not have access"), "{}", r.text());
    }
    // One request per forbidden call (no key rotation), and every key still works.
    assert_eq!(up.requests().len(), 5);
    for _ in 0..6 {
        let r = post(addr(&g), "/ai/v1/chat/completions", &chat("fast", false));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let used: std::collections::HashSet<String> = up
        .requests()
        .iter()
        .skip(5)
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(used.len(), 3, "{used:?}");
    // A key the provider refuses: the client is told so in the gateway's words, not the
    // provider's (which quote part of the key).
    let up2 = Mock::start(|_| {
        json_reply(
            401,
            &json!({"error": {"message": "Incorrect API key provided: sk-ab***wxyz", "type": "invalid_request_error"}}),
        )
    });
    let dir2 = tempfile::tempdir().unwrap();
    let g2 = gateway(
        d,
        &config(
            &dir2,
            &[p("oa", "openai", up2.addr, &["bad"])],
            &[("fast", &[("oa", "m")])],
        ),
    );
    let r = post(addr(&g2), "/ai/v1/chat/completions", &chat("fast", false));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (502, "provider_auth_failed")
    );
    assert!(!r.text().contains("sk-ab"), "{}", r.text());
});

both_drivers!(
    a_native_stream_cut_short_is_not_passed_on_as_complete,
    |d| {
        // The provider starts a stream and is gone before `message_stop`.
        let up = Mock::start(|_| {
            let event = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n";
            Reply::RawThenClose(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
                    event.len()
                )
                .into_bytes(),
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let g = gateway(d, &native_config(&dir, up.addr));
        let body = json!({"model": "claude", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string();
        let mut c = std::net::TcpStream::connect(addr(&g)).unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        std::io::Write::write_all(
        &mut c,
        format!(
            "POST /anthropic/v1/messages HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
        let mut all = Vec::new();
        // The gateway closes: read to the end (a clean end would leave the connection open).
        std::io::Read::read_to_end(&mut c, &mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
        assert!(text.contains("message_start"), "{text:?}");
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "a cut stream was ended cleanly: {text:?}"
        );
    }
);

/// An Anthropic provider at `addr` behind the `/ai` route and a native route at `/anthropic`.
fn native_config(dir: &tempfile::TempDir, addr: std::net::SocketAddr) -> String {
    let mut text = config(
        dir,
        &[p("an", "anthropic", addr, &["k"])],
        &[("c", &[("an", "claude")])],
    );
    text.push_str(
        "[[routes]]\nname = \"an\"\npath_prefix = \"/anthropic\"\nai = { provider = \"an\" }\n",
    );
    text
}

both_drivers!(a_native_call_keeps_the_clients_method, |d| {
    let up =
        Mock::start(|_| json_reply(200, &json!({"data": [{"id": "claude", "type": "model"}]})));
    let dir = tempfile::tempdir().unwrap();
    let g = gateway(d, &native_config(&dir, up.addr));
    let r = get(addr(&g), "/anthropic/v1/models");
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(seen.header("x-api-key"), Some("k"));
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
