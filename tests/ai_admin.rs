//! The AI admin API: provider keys added through it (sealed in the store, never shown again,
//! their state reported), and the price table (the store's prices override the config file's).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::admin::{self, api, s};
use common::providers::{self, json_reply};
use common::*;
use serde_json::{Value, json};

const STORE_KEY: &str = "sk-store-secret-9999";

#[test]
fn provider_keys_and_prices_through_the_admin_api() {
    let refuse_store_key = Arc::new(AtomicBool::new(false));
    let r2 = refuse_store_key.clone();
    let provider = Mock::start(move |r| {
        if r2.load(Ordering::SeqCst)
            && r.header("authorization") == Some(&format!("Bearer {STORE_KEY}"))
        {
            return json_reply(
                401,
                &json!({"error": {"message": "Incorrect API key provided"}}),
            );
        }
        providers::openai(r)
    });
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "sk-config-1\n").unwrap();
    let log = dir.path().join("calls.jsonl");
    let extra = format!(
        "[ai.providers.oa]\nkind = \"compatible\"\nbase_url = \"http://{}\"\nkeys_file = {:?}\n\
         [ai.models.fast]\ntargets = [{{ provider = \"oa\", model = \"gpt-4o-mini\" }}]\n\
         [ai.prices.\"gpt-4o-mini\"]\ninput = 0.15\noutput = 0.6\n\
         [call_log]\n[call_log.file]\npath = {:?}\n\
         [[routes]]\nname = \"ai\"\npath_prefix = \"/ai\"\nai = {{}}\n",
        provider.addr,
        keys.display().to_string(),
        log.display().to_string()
    );
    let db = dir.path().join("a.db");
    let m = admin::start(Driver::Uring, 1, &db, &extra);
    let chat = || {
        let b =
            json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).to_string();
        let req = format!(
            "POST /ai/v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        );
        raw_request(m.proxy(), req.as_bytes()).unwrap()
    };
    let keys_of = |v: &Value| -> Vec<Value> { v["items"][0]["keys"].as_array().unwrap().clone() };

    let models = m.ok(200, "GET", "/api/v1/ai/models", "");
    assert_eq!(models["aliases"][0]["name"], "fast", "{models}");
    assert_eq!(
        models["aliases"][0]["targets"][0]["provider"], "oa",
        "{models}"
    );
    let v = m.ok(200, "GET", "/api/v1/ai/providers", "");
    assert_eq!(v["items"][0]["name"], "oa");
    let k = keys_of(&v);
    assert_eq!(k.len(), 1);
    assert_eq!(
        (k[0]["source"].as_str(), k[0]["last4"].as_str()),
        (Some("config"), Some("ig-1"))
    );
    assert!(
        !v.to_string().contains("sk-config-1"),
        "no key in a view: {v}"
    );

    // A key added through the API: shown once as its last four characters, never as itself.
    let (st, added, raw) = m.api(
        "POST",
        "/api/v1/ai/providers/oa/keys",
        Some(&json!({"key": STORE_KEY, "label": "team budget"}).to_string()),
    );
    assert_eq!(st, 201, "{added}");
    assert_eq!(added["last4"], "9999");
    assert!(!raw.text().contains(STORE_KEY));
    let id = s(&added, "id");
    m.settle();
    for _ in 0..4 {
        assert_eq!(chat().status, 200);
    }
    let sent: Vec<String> = provider
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert!(sent.contains(&format!("Bearer {STORE_KEY}")), "{sent:?}");
    assert!(
        sent.contains(&"Bearer sk-config-1".to_string()),
        "both keys serve: {sent:?}"
    );
    let store_bytes = std::fs::read(&db).unwrap();
    assert!(
        !store_bytes
            .windows(STORE_KEY.len())
            .any(|w| w == STORE_KEY.as_bytes()),
        "the key is sealed in the store"
    );

    // A key the provider refuses is disabled, and the view says so.
    refuse_store_key.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(chat().status, 200, "the other key serves");
    }
    let v = m.ok(200, "GET", "/api/v1/ai/providers", "");
    let store_key = keys_of(&v)
        .into_iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert_eq!(store_key["state"], "disabled", "{v}");

    // Prices: the store's override the config file's, and calls are charged at them.
    let v = m.ok(
        200,
        "PUT",
        "/api/v1/ai/prices/gpt-4o-mini",
        &json!({"input": 1, "output": "2.5"}).to_string(),
    );
    assert_eq!(
        (v["input"].as_f64(), v["output"].as_f64()),
        (Some(1.0), Some(2.5))
    );
    m.settle();
    let v = m.ok(200, "GET", "/api/v1/ai/prices", "");
    assert_eq!(v["items"]["gpt-4o-mini"]["source"], "store", "{v}");
    assert_eq!(chat().status, 200);
    let stats = m.g.call_log().unwrap();
    wait_for("records", || {
        stats.written(ringway::observe::calllog::Sink::File) as usize >= 8
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(STORE_KEY) && !text.contains("sk-config-1"),
        "no key in the call log"
    );
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    // 11 × $1/M + 2 × $2.5/M.
    assert_eq!(last["ai"]["cost_usd"].as_f64(), Some(0.000016), "{last}");
    m.ok(204, "DELETE", "/api/v1/ai/prices/gpt-4o-mini", "");
    let v = m.ok(200, "GET", "/api/v1/ai/prices", "");
    assert_eq!(v["items"]["gpt-4o-mini"]["source"], "config");
    assert_eq!(v["items"]["gpt-4o-mini"]["input"].as_f64(), Some(0.15));

    // Bad input names the field; unknown things are 404.
    for (method, path, body, want, field) in [
        (
            "POST",
            "/api/v1/ai/providers/oa/keys",
            json!({"key": ""}),
            422,
            Some("key"),
        ),
        (
            "POST",
            "/api/v1/ai/providers/oa/keys",
            json!({"key": "a b"}),
            422,
            Some("key"),
        ),
        (
            "POST",
            "/api/v1/ai/providers/nope/keys",
            json!({"key": "k"}),
            404,
            None,
        ),
        (
            "PUT",
            "/api/v1/ai/prices/m",
            json!({"input": -1, "output": 1}),
            422,
            Some("input"),
        ),
        (
            "PUT",
            "/api/v1/ai/prices/m",
            json!({"input": 1, "output": "0.1234567"}),
            422,
            Some("output"),
        ),
        (
            "DELETE",
            "/api/v1/ai/prices/never-set",
            json!(null),
            404,
            None,
        ),
        (
            "DELETE",
            "/api/v1/ai/providers/oa/keys/config-0",
            json!(null),
            404,
            None,
        ),
    ] {
        let body = (!body.is_null()).then(|| body.to_string());
        let (st, v, _) = m.api(method, path, body.as_deref());
        assert_eq!(st, want, "{method} {path}: {v}");
        if let Some(f) = field {
            assert!(v["error"]["fields"].get(f).is_some(), "{f}: {v}");
        }
    }

    // A tenant's users cannot see or change any of it.
    let t = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/tenants",
            &json!({"name": "acme"}).to_string(),
        ),
        "id",
    );
    m.ok(
        201,
        "POST",
        "/api/v1/users",
        &json!({"tenant_id": t, "email": "o@acme.test", "password": "correct horse battery staple", "role": "admin"}).to_string(),
    );
    let (_, login, _) = api(
        m.admin,
        "",
        "POST",
        "/api/v1/login",
        Some(
            &json!({"email": "o@acme.test", "password": "correct horse battery staple"})
                .to_string(),
        ),
    );
    let token = s(&login, "token");
    for (method, path, body) in [
        ("GET", "/api/v1/ai/providers", None),
        (
            "POST",
            "/api/v1/ai/providers/oa/keys",
            Some(json!({"key": "k"}).to_string()),
        ),
        (
            "DELETE",
            &*format!("/api/v1/ai/providers/oa/keys/{id}"),
            None,
        ),
        ("GET", "/api/v1/ai/prices", None),
        ("GET", "/api/v1/ai/models", None),
        (
            "PUT",
            "/api/v1/ai/prices/m",
            Some(json!({"input": 1, "output": 1}).to_string()),
        ),
        ("DELETE", "/api/v1/ai/prices/m", None),
    ] {
        let (st, v, _) = api(m.admin, &token, method, path, body.as_deref());
        assert_eq!(st, 403, "{method} {path}: {v}");
    }

    // Keys survive a restart (opened with the store key); a deleted one is gone.
    let store = m.store.clone();
    m.shutdown();
    let m = admin::start_config(admin::config(Driver::Uring, 1, &store, &extra), &store);
    let v = m.ok(200, "GET", "/api/v1/ai/providers", "");
    assert!(keys_of(&v).iter().any(|k| k["id"] == id.as_str()), "{v}");
    m.ok(
        204,
        "DELETE",
        &format!("/api/v1/ai/providers/oa/keys/{id}"),
        "",
    );
    let v = m.ok(200, "GET", "/api/v1/ai/providers", "");
    assert_eq!(keys_of(&v).len(), 1);
    m.shutdown();
}
