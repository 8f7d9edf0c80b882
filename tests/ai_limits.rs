//! AI services in the management plane (subscriptions, keys, tenants) and the AI limits:
//! requests and tokens per minute, token and cost budgets, per app, per tenant and per route;
//! reservations that hold under 200 concurrent streamed calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::admin::{self, Managed, s};
use common::providers::{self, COMPLETION_TOKENS, PROMPT_TOKENS};
use common::*;
use serde_json::{Value, json};

fn ai_config(provider: SocketAddr, dir: &std::path::Path) -> String {
    let keys = dir.join("keys");
    std::fs::write(&keys, "sk-provider\n").unwrap();
    format!(
        "[ai.providers.oa]\nkind = \"compatible\"\nbase_url = \"http://{provider}\"\nkeys_file = {:?}\n\
         [ai.models.fast]\ntargets = [{{ provider = \"oa\", model = \"gpt-4o-mini\" }}]\n\
         [ai.prices.\"gpt-4o-mini\"]\ninput = 0.15\noutput = 0.6\n",
        keys.display().to_string()
    )
}

fn chat_request(path: &str, auth: &str, stream: bool, max_tokens: Option<u64>) -> Vec<u8> {
    let mut b = json!({"model": "fast", "stream": stream,
        "messages": [{"role": "user", "content": "Say hello."}]});
    if let Some(m) = max_tokens {
        b["max_tokens"] = json!(m);
    }
    let b = b.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {}\r\n\r\n{b}",
        b.len()
    )
    .into_bytes()
}

/// POSTs `body` as JSON to `path` on a new connection.
fn post_json(at: SocketAddr, path: &str, body: &Value) -> Response {
    let b = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    );
    raw_request(at, req.as_bytes()).expect("a response")
}

/// A tenant with a published AI service at `path` (auto approval) and `apps` apps subscribed to
/// it, each with a key. Returns (tenant id, service id, [(app id, key)]).
fn ai_tenant(
    m: &Managed,
    name: &str,
    path: &str,
    apps: usize,
) -> (String, String, Vec<(String, String)>) {
    let t = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/tenants",
            &json!({"name": name}).to_string(),
        ),
        "id",
    );
    let svc = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &json!({"tenant_id": t, "name": name, "approval": "auto",
                "routes": [{"path_prefix": path}], "ai": {"models": ["fast"]}})
            .to_string(),
        ),
        "id",
    );
    m.ok(200, "POST", &format!("/api/v1/services/{svc}/publish"), "");
    let mut out = Vec::new();
    for i in 0..apps {
        let app = s(
            &m.ok(
                201,
                "POST",
                "/api/v1/apps",
                &json!({"tenant_id": t, "name": format!("{name}-{i}")}).to_string(),
            ),
            "id",
        );
        let key = s(
            &m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}"),
            "key",
        );
        m.ok(
            201,
            "POST",
            "/api/v1/subscriptions",
            &json!({"app_id": app, "service_id": svc}).to_string(),
        );
        out.push((app, key));
    }
    m.settle();
    (t, svc, out)
}

fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}\r\n")
}

#[test]
fn ai_services_are_managed_and_app_and_tenant_limits_hold() {
    let provider = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(
        Driver::Uring,
        1,
        &dir.path().join("a.db"),
        &ai_config(provider.addr, dir.path()),
    );
    let (t, svc, apps) = ai_tenant(&m, "acme", "/acme/ai", 2);
    let a = m.proxy();
    let path = "/acme/ai/v1/chat/completions";
    // The service's key, sent the way the OpenAI SDKs send theirs.
    let r = raw_request(a, &chat_request(path, &bearer(&apps[0].1), false, None)).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], PROMPT_TOKENS);
    // Without a key: 401 in the OpenAI error shape.
    let r = raw_request(a, &chat_request(path, "", false, None)).unwrap();
    assert_eq!(r.status, 401);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(
        provider
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer sk-provider")),
        "the app's key never reaches the provider"
    );
    // The service shows its ai table; an AI service with an upstream, or an unknown alias, is
    // refused naming the field.
    let v = m.ok(200, "GET", &format!("/api/v1/services/{svc}"), "");
    assert_eq!(v["ai"]["models"][0], "fast", "{v}");
    for (body, field) in [
        (
            json!({"tenant_id": t, "name": "x1", "routes": [{"path_prefix": "/acme/x1"}],
            "ai": {"models": ["fast"]}, "upstream": {"targets": ["127.0.0.1:1"]}}),
            "upstream",
        ),
        (
            json!({"tenant_id": t, "name": "x2", "routes": [{"path_prefix": "/acme/x2"}],
            "ai": {"models": ["nope"]}}),
            "ai.models[0]",
        ),
        (
            json!({"tenant_id": t, "name": "x3", "routes": [{"path_prefix": "/acme/x3"}],
            "ai": {"provider": "nope"}}),
            "ai.provider",
        ),
    ] {
        let (st, v, _) = m.api("POST", "/api/v1/services", Some(&body.to_string()));
        assert_eq!(st, 422, "{v}");
        assert!(v["error"]["fields"].get(field).is_some(), "{field}: {v}");
    }

    // App 0 may make 2 requests a minute (it made 1 already).
    let (app0, key0) = &apps[0];
    let (app1, key1) = &apps[1];
    let v = m.ok(
        200,
        "PUT",
        &format!("/api/v1/apps/{app0}/ai-limits"),
        &json!({"requests_per_minute": 2}).to_string(),
    );
    assert_eq!(v["ai_limits"]["requests_per_minute"], 2, "{v}");
    m.settle();
    let call = |key: &str| raw_request(a, &chat_request(path, &bearer(key), false, None)).unwrap();
    assert_eq!(call(key0).status, 200);
    assert_eq!(call(key0).status, 200, "limits start counting when set");
    let r = call(key0);
    assert_eq!(r.status, 429, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("app's requests_per_minute")
    );
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs));
    assert_eq!(call(key1).status, 200, "another app has its own limits");

    // The tenant: 4 requests a minute across its apps; app 1 made 1, so 3 more.
    m.ok(200, "DELETE", &format!("/api/v1/apps/{app0}/ai-limits"), "");
    let v = m.ok(
        200,
        "PUT",
        &format!("/api/v1/tenants/{t}/ai-limits"),
        &json!({"requests_per_minute": 3}).to_string(),
    );
    assert_eq!(v["ai_limits"]["requests_per_minute"], 3);
    m.settle();
    let served: Vec<u16> = [key0, key1, key0, key1]
        .iter()
        .map(|k| call(k).status)
        .collect();
    assert_eq!(
        served,
        [200, 200, 200, 429],
        "the tenant's 3 a minute, over both apps"
    );
    let r = call(key0);
    assert!(
        r.text().contains("tenant's requests_per_minute"),
        "{}",
        r.text()
    );

    // Bad limits name the field; a tenant's limits are the operator's.
    for (body, field) in [
        (json!({}), "ai_limits"),
        (json!({"tokens_per_day": 0}), "tokens_per_day"),
        (json!({"cost_per_month_usd": -1}), "cost_per_month_usd"),
        (json!({"tokens_per_hour": 5}), "tokens_per_hour"),
    ] {
        let (st, v, _) = m.api(
            "PUT",
            &format!("/api/v1/apps/{app1}/ai-limits"),
            Some(&body.to_string()),
        );
        assert_eq!(st, 422, "{body}: {v}");
        let fields = &v["error"]["fields"];
        assert!(
            fields.get(field).is_some() || v.to_string().contains(field),
            "{field}: {v}"
        );
    }
    let (st, _, _) = m.api(
        "PUT",
        "/api/v1/apps/app_nope/ai-limits",
        Some("{\"requests_per_minute\":1}"),
    );
    assert_eq!(st, 404);
    prompt_service(&m, &t, app1, key0, key1, &provider);
    m.shutdown();
}

/// A prompt published as an API: a service like any other (subscriptions, keys, limits).
fn prompt_service(m: &Managed, t: &str, app1: &str, key0: &str, key1: &str, provider: &Mock) {
    let a = m.proxy();
    let ps = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &json!({"tenant_id": t, "name": "summary", "approval": "auto",
                "routes": [{"path_exact": "/acme/summary"}],
                "ai": {"prompt": {"model": "fast", "system": "Summarise in {{words}} words.",
                    "user": "{{text}}", "variables": {"text": {}, "words": {"type": "integer",
                    "min": 5, "max": 50, "default": 10}}}}})
            .to_string(),
        ),
        "id",
    );
    m.ok(200, "POST", &format!("/api/v1/services/{ps}/publish"), "");
    m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app1, "service_id": ps}).to_string(),
    );
    m.ok(200, "DELETE", &format!("/api/v1/tenants/{t}/ai-limits"), "");
    m.settle();
    let req = |auth: &str, body: &str| {
        format!(
            "POST /acme/summary HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let body = json!({"text": "A long text.", "words": 20}).to_string();
    let r = raw_request(a, req(&bearer(key1), &body).as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["output"], "Hello world");
    assert_eq!(
        providers::body_json(&provider.last())["messages"][0]["content"],
        "Summarise in 20 words."
    );
    let r = raw_request(a, req(&bearer(key0), &body).as_bytes()).unwrap();
    assert_eq!(
        r.status,
        403,
        "app 0 has no subscription to the prompt: {}",
        r.text()
    );
    let r = raw_request(
        a,
        req(&bearer(key1), r#"{"text": "x", "words": 99}"#).as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("words:"), "{}", r.text());
}

/// 200 concurrent streamed calls against a small token budget: the reservations admit no more
/// than the budget holds, every refusal is a 429 with `retry-after`, and what the admitted calls
/// used stays within the budget.
#[test]
fn a_token_budget_holds_under_200_concurrent_streams() {
    const BUDGET: u64 = 1200;
    const CALLS: usize = 200;
    let latch = Latch::default();
    let l2 = latch.clone();
    let provider = Mock::start(move |r| {
        // Every admitted call waits until all 200 were answered or admitted.
        l2.wait();
        providers::openai(r)
    });
    let dir = tempfile::tempdir().unwrap();
    let mut text = ai_config(provider.addr, dir.path());
    text.push_str(&format!(
        "[[routes]]\nname = \"ai\"\npath_prefix = \"/ai\"\nai = {{ limits = {{ tokens_per_day = {BUDGET}, cost_per_day_usd = 1 }} }}\n"
    ));
    let g = gateway_workers(Driver::Uring, &text, 2);
    let a = addr(&g);
    let refused = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..CALLS)
        .map(|_| {
            let refused = refused.clone();
            std::thread::spawn(move || {
                let r = raw_request(
                    a,
                    &chat_request("/ai/v1/chat/completions", "", true, Some(20)),
                )
                .expect("a response");
                if r.status == 429 {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
                r
            })
        })
        .collect();
    wait_for("every call answered or at the provider", || {
        refused.load(Ordering::SeqCst) + provider.requests().len() == CALLS
    });
    latch.open();
    let results: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let admitted = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(admitted + refused.load(Ordering::SeqCst), CALLS);
    assert_eq!(admitted, provider.requests().len());
    // Each call reserves its prompt (a dozen tokens) plus max_tokens 20: some tens fit.
    assert!(admitted >= 10, "admitted {admitted}");
    assert!(
        (admitted as u64) * (PROMPT_TOKENS + COMPLETION_TOKENS) <= BUDGET,
        "used {} of {BUDGET}",
        admitted as u64 * (PROMPT_TOKENS + COMPLETION_TOKENS)
    );
    for r in results.iter().filter(|r| r.status == 429) {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "budget_exceeded", "{v}");
        assert!(r.header("retry-after").is_some());
    }
    // Settled: the admitted calls used 13 tokens each of the ~32 they reserved, so the budget
    // has room again.
    let r = raw_request(
        a,
        &chat_request("/ai/v1/chat/completions", "", true, Some(20)),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A day's token budget still counts what was used before a restart (the rollups in the store
/// charge it again at start).
#[test]
fn budgets_survive_a_restart() {
    let provider = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let extra = ai_config(provider.addr, dir.path());
    let m = admin::start(Driver::Uring, 1, &dir.path().join("a.db"), &extra);
    let (_t, _svc, apps) = ai_tenant(&m, "acme", "/acme/ai", 1);
    let (app, key) = &apps[0];
    m.ok(
        200,
        "PUT",
        &format!("/api/v1/apps/{app}/ai-limits"),
        &json!({"tokens_per_day": 60}).to_string(),
    );
    m.settle();
    let call = |m: &Managed| {
        raw_request(
            m.proxy(),
            &chat_request(
                "/acme/ai/v1/chat/completions",
                &bearer(key),
                false,
                Some(20),
            ),
        )
        .unwrap()
        .status
    };
    // Each call reserves its prompt and 20 tokens and uses 13: three fit, the fourth does not.
    let before: Vec<u16> = (0..4).map(|_| call(&m)).collect();
    assert_eq!(before, [200, 200, 200, 429]);
    let store = m.store.clone();
    m.shutdown();
    let m = admin::start_config(admin::config(Driver::Uring, 1, &store, &extra), &store);
    assert_eq!(call(&m), 429, "the day's use came back from the store");
    m.shutdown();
}

/// `n` choices may each use the whole `max_tokens`: the reservation covers all of them, and one
/// bigger than a whole limit is a 400 naming the limit (a 429 would never clear).
#[test]
fn a_reservation_counts_every_choice() {
    let provider = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let mut text = ai_config(provider.addr, dir.path());
    text.push_str(
        "[[routes]]\nname = \"ai\"\npath_prefix = \"/ai\"\nai = { limits = { tokens_per_day = 200 } }\n",
    );
    let g = gateway(Driver::Uring, &text);
    let ask = |n: u64| {
        let b = json!({"model": "fast", "n": n, "max_tokens": 50,
            "messages": [{"role": "user", "content": "Say hello."}]});
        post_json(addr(&g), "/ai/v1/chat/completions", &b)
    };
    // 20 × 50 is more than the whole day's 200: not a 429 to wait out (it never clears) but a
    // 400 saying what to change.
    let r = ask(20);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "max_tokens_over_limit"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("tokens_per_day"), "{}", r.text());
    assert_eq!(provider.requests().len(), 0);
    let r = ask(3);
    assert_eq!(r.status, 200, "{}", r.text());
    // Without max_tokens the default reserve (4096) is what is over.
    let b = json!({"model": "fast", "messages": [{"role": "user", "content": "Hi."}]});
    let r = post_json(addr(&g), "/ai/v1/chat/completions", &b);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("reserve_output_tokens"), "{}", r.text());
}

/// Under a cost limit a model without a price is refused (it would be charged nothing); with a
/// price it goes through. A native route, where the client names any model, is the case.
#[test]
fn a_cost_limit_refuses_models_it_cannot_price() {
    let provider = providers::start(providers::openai);
    let dir = tempfile::tempdir().unwrap();
    let mut text = ai_config(provider.addr, dir.path());
    text.push_str(
        "[[routes]]\nname = \"native\"\npath_prefix = \"/oa\"\nai = { provider = \"oa\", limits = { cost_per_day_usd = 1 } }\n",
    );
    let g = gateway(Driver::Uring, &text);
    let ask = |model: &str| {
        let b = json!({"model": model, "max_tokens": 5,
            "messages": [{"role": "user", "content": "Hi."}]});
        post_json(addr(&g), "/oa/v1/chat/completions", &b)
    };
    let r = ask("some-unpriced-model");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "model_unpriced"),
        "{}",
        r.text()
    );
    assert_eq!(provider.requests().len(), 0);
    let r = ask("gpt-4o-mini");
    assert_eq!(r.status, 200, "{}", r.text());
}
