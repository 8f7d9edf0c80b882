//! Basic credentials on both drivers: argon2id-hashed passwords checked off the shard (the
//! verifier thread) and cached per shard, refused when wrong, unknown or revoked, and bounded:
//! a flood of uncached attempts gets 429 while cached clients keep being served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::admin::{self, call, s};
use common::{Driver, Mock, ok};
use serde_json::json;

fn basic(user: &str, pass: &str) -> String {
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Authorization: Basic {v}\r\n")
}

fn flow(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|_| ok("basic ok"));
    let m = admin::start(driver, 2, &dir.path().join("s.db"), "");
    let proxy = m.proxy();
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"t"}"#),
        "id",
    );
    let svc = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &json!({"tenant_id": t, "name": "b",
        "approval": "auto", "credentials": ["basic"], "routes": [{"path_prefix": "/b"}],
        "upstream": {"targets": [up.addr.to_string()]}})
            .to_string(),
        ),
        "id",
    );
    let app = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/apps",
            &json!({"tenant_id": t, "name": "a"}).to_string(),
        ),
        "id",
    );
    m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": svc}).to_string(),
    );
    let given = m.ok(
        201,
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        &json!({"kind": "basic", "username": "shop", "password": "a long enough password"})
            .to_string(),
    );
    assert!(
        given["password"].is_null(),
        "a given password is not echoed: {given}"
    );
    assert_eq!(given["username"], "shop");
    let made = m.ok(
        201,
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        &json!({"kind": "basic", "username": "batch"}).to_string(),
    );
    let made_pw = s(&made, "password");
    assert!(made_pw.len() >= 32);
    let (st, _, _) = m.api(
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        Some(
            &json!({"kind": "basic", "username": "shop", "password": "another password!"})
                .to_string(),
        ),
    );
    assert_eq!(st, 409, "a username belongs to one live credential");
    let (st, v, _) = m.api(
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        Some(
            &json!({"kind": "basic", "username": "x:y", "password": "a long enough password"})
                .to_string(),
        ),
    );
    assert_eq!(
        (st, v["error"]["fields"]["username"].is_string()),
        (422, true)
    );
    m.settle();

    let good = basic("shop", "a long enough password");
    for _ in 0..4 {
        let r = call(proxy, "/b", &good);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(call(proxy, "/b", &basic("batch", &made_pw)).status, 200);
    let seen = up.seen.lock().unwrap().last().cloned().unwrap();
    assert!(seen.header("authorization").is_none());
    assert_eq!(seen.header("x-ringway-app"), Some(app.as_str()));
    for (what, h) in [
        ("wrong password", basic("shop", "a long enough passwore")),
        ("unknown user", basic("nobody", "a long enough password")),
        ("not base64", "Authorization: Basic !!!\r\n".to_string()),
        (
            "no colon",
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode("shop")
            ),
        ),
    ] {
        let r = call(proxy, "/b", &h);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (401, "credential_invalid"),
            "{what}"
        );
        assert!(
            r.header("www-authenticate").unwrap().starts_with("Basic"),
            "{what}"
        );
    }
    let r = call(proxy, "/b", "");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));

    // A flood of uncached guesses: bounded, 429 beyond the budget, never a 200.
    let statuses: Vec<u16> = (0..40)
        .map(|i| {
            std::thread::spawn(move || {
                call(proxy, "/b", &basic("shop", &format!("guess number {i:04}"))).status
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "the budget bounds the checks: {statuses:?}"
    );
    assert_eq!(
        call(proxy, "/b", &good).status,
        200,
        "a cached credential is still served"
    );

    // Revoked: refused on every shard, cache or not.
    let (_, list, _) = m.api("GET", &format!("/api/v1/apps/{app}/credentials"), None);
    let cid = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["username"] == "shop")
        .map(|c| s(c, "id"))
        .unwrap();
    m.ok(
        200,
        "POST",
        &format!("/api/v1/apps/{app}/credentials/{cid}/revoke"),
        "",
    );
    m.settle();
    for _ in 0..4 {
        // 401, or 429 while the flood above still spends this second's checks: refused either way.
        let st = call(proxy, "/b", &good).status;
        assert!(st == 401 || st == 429, "{st}");
    }
    // The hash is argon2id (never the password), and survives a restart.
    m.shutdown();
    let mut stored = Vec::new();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        // SQLite may still be removing its -wal/-shm files as the store closes.
        stored.extend(std::fs::read(f.unwrap().path()).unwrap_or_default());
    }
    assert!(stored.windows(10).any(|w| w == b"$argon2id$"));
    assert!(
        !stored
            .windows(made_pw.len())
            .any(|w| w == made_pw.as_bytes())
    );
    assert!(!stored.windows(22).any(|w| w == b"a long enough password"));
    let m = admin::start(driver, 1, &dir.path().join("s.db"), "");
    assert_eq!(call(m.proxy(), "/b", &basic("batch", &made_pw)).status, 200);
    m.shutdown();
}
both_drivers!(basic_credentials_are_checked_off_the_shard, flow);
