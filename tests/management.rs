//! The management plane end to end, over real sockets on both drivers: the admin API creates a
//! tenant, a service, an app with a key and a subscription; the data plane enforces each step
//! (401 → 403 → 403 pending → 200 → deprecation headers → 403 revoked → 410 retired), a
//! restart on the same store keeps everything, and every change is enforced on every shard once
//! the shards applied the generation the 2xx published.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::admin::{self, Managed, call, s};
use common::{Driver, Mock, ok};
use serde_json::json;

fn upstream() -> Mock {
    Mock::start(|r| ok(&format!("served {}", r.target)))
}

/// A tenant, a service on `up` at `/orders`, an app and a key. Returns (tenant, service, app, key).
fn setup(m: &Managed, up: &Mock, approval: &str) -> (String, String, String, String) {
    let t = m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"acme"}"#);
    let tenant = s(&t, "id");
    let svc = m.ok(
        201,
        "POST",
        "/api/v1/services",
        &json!({
            "tenant_id": tenant, "name": "orders", "visibility": "private", "approval": approval,
            "routes": [{"path_prefix": "/orders"}],
            "upstream": {"targets": [up.addr.to_string()]}
        })
        .to_string(),
    );
    assert_eq!(svc["state"], "draft");
    let app = m.ok(
        201,
        "POST",
        "/api/v1/apps",
        &json!({"tenant_id": tenant, "name": "shop"}).to_string(),
    );
    let app = s(&app, "id");
    let key = m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}");
    let k = s(&key, "key");
    assert!(k.starts_with("rw_") && k.len() == 46, "{k}");
    m.settle();
    (tenant, s(&svc, "id"), app, k)
}

fn with_key(k: &str) -> String {
    format!("X-API-Key: {k}\r\n")
}

fn core_flow(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("ringway.db");
    let up = upstream();
    let extra = "";
    let m = admin::start(driver, 2, &store, extra);
    let proxy = m.proxy();
    let (_tenant, svc, app, key) = setup(&m, &up, "manual");

    // No key: 401 with a challenge.
    let r = call(proxy, "/orders/1", "");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "credential_missing");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    // A key that is not one, and a well-formed unknown one.
    let r = call(proxy, "/orders/1", "X-API-Key: nope\r\n");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "credential_invalid")
    );
    let forged = format!("rw_{}", "A".repeat(43));
    let r = call(proxy, "/orders/1", &with_key(&forged));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "credential_invalid")
    );

    // A key, no subscription: 403.
    let r = call(proxy, "/orders/1", &with_key(&key));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "subscription_required")
    );

    // Subscribed, pending: 403 pending.
    let sub = m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": svc}).to_string(),
    );
    assert_eq!(sub["state"], "pending");
    let sub = s(&sub, "id");
    m.settle();
    let r = call(proxy, "/orders/1", &with_key(&key));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "subscription_pending")
    );

    // Approved: served on every shard once the shards applied the 2xx's generation.
    let approved_at = Instant::now();
    m.ok(
        200,
        "POST",
        &format!("/api/v1/subscriptions/{sub}/approve"),
        "",
    );
    let generation = m.g.control().generation();
    assert!(m.g.wait_applied(generation, Duration::from_secs(5)));
    let took = approved_at.elapsed();
    for _ in 0..8 {
        let r = call(proxy, "/orders/1", &with_key(&key));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "served /orders/1");
    }
    // Two ticks of 10 ms, plus what scheduling on a busy 2-core machine adds.
    assert!(
        took < Duration::from_millis(20 + 200),
        "applied after {took:?}"
    );
    // The bearer form works too; the upstream sees the identity, never the credential.
    let r = call(
        proxy,
        "/orders/2",
        &format!("Authorization: Bearer {key}\r\nX-Ringway-App: forged\r\n"),
    );
    assert_eq!(r.status, 200);
    let seen = up.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.header("x-ringway-app"), Some(app.as_str()));
    assert_eq!(
        seen.headers_named("x-ringway-app").len(),
        1,
        "the forged one is dropped"
    );
    assert_eq!(seen.header("x-ringway-subscription"), Some(sub.as_str()));
    assert!(seen.header("x-ringway-tenant").is_some());
    assert!(seen.header("authorization").is_none());
    assert!(seen.header("x-api-key").is_none());

    // Published, then deprecated: still served, with Deprecation, Sunset and Link.
    m.ok(200, "POST", &format!("/api/v1/services/{svc}/publish"), "");
    let d = m.ok(
        200,
        "POST",
        &format!("/api/v1/services/{svc}/deprecate"),
        r#"{"sunset":"2030-01-01T00:00:00Z","link":"https://docs.example.com/orders-v2"}"#,
    );
    assert_eq!(d["state"], "deprecated");
    m.settle();
    let r = call(proxy, "/orders/1", &with_key(&key));
    assert_eq!(r.status, 200);
    assert!(r.header("deprecation").unwrap().starts_with('@'));
    assert_eq!(r.header("sunset"), Some("Tue, 01 Jan 2030 00:00:00 GMT"));
    assert_eq!(
        r.header("link"),
        Some("<https://docs.example.com/orders-v2>; rel=\"deprecation\"")
    );

    // A restart on the same store keeps everything.
    m.shutdown();
    let m = admin::start(driver, 2, &store, extra);
    let proxy = m.proxy();
    let r = call(proxy, "/orders/1", &with_key(&key));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("sunset").is_some());

    // Revoked: 403; retired: 410.
    m.ok(
        200,
        "POST",
        &format!("/api/v1/subscriptions/{sub}/revoke"),
        r#"{"reason":"unpaid"}"#,
    );
    m.settle();
    let r = call(proxy, "/orders/1", &with_key(&key));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "subscription_required")
    );
    m.ok(200, "POST", &format!("/api/v1/services/{svc}/retire"), "");
    m.settle();
    let r = call(proxy, "/orders/1", &with_key(&key));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (410, "service_retired")
    );

    // The config file's own routes are untouched by all this.
    let r = call(proxy, "/healthz", "");
    assert_eq!(r.status, 404, "no file route in this config");
    m.shutdown();
}
both_drivers!(core_flow_is_enforced_and_survives_restart, core_flow);

fn keys(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream();
    let m = admin::start(driver, 1, &dir.path().join("s.db"), "");
    let proxy = m.proxy();
    let (_t, svc, app, key) = setup(&m, &up, "auto");
    let sub = m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": svc}).to_string(),
    );
    assert_eq!(sub["state"], "approved", "auto approval");
    // A second key for rotation: both work.
    let k2 = m.ok(
        201,
        "POST",
        &format!("/api/v1/apps/{app}/keys"),
        r#"{"name":"next"}"#,
    );
    let (k2_id, k2) = (s(&k2, "id"), s(&k2, "key"));
    m.settle();
    assert_eq!(call(proxy, "/orders", &with_key(&key)).status, 200);
    assert_eq!(call(proxy, "/orders", &with_key(&k2)).status, 200);
    // Listing shows prefixes, never keys.
    let (st, list, raw) = m.api("GET", &format!("/api/v1/apps/{app}/keys"), None);
    assert_eq!(st, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(!raw.text().contains(&key[11..]) && !raw.text().contains(&k2[11..]));
    assert!(
        list["items"][0]["prefix"]
            .as_str()
            .unwrap()
            .starts_with("rw_")
    );
    // Revoked: refused at once (after the shards applied it); revoking twice is a conflict.
    m.ok(
        200,
        "POST",
        &format!("/api/v1/apps/{app}/keys/{k2_id}/revoke"),
        "",
    );
    m.settle();
    assert_eq!(
        call(proxy, "/orders", &with_key(&k2)).error_code(),
        "credential_invalid"
    );
    assert_eq!(call(proxy, "/orders", &with_key(&key)).status, 200);
    let (st, _, _) = m.api(
        "POST",
        &format!("/api/v1/apps/{app}/keys/{k2_id}/revoke"),
        None,
    );
    assert_eq!(st, 409);
    // Expiry in the past is refused; a key expiring soon stops working when it expires.
    let (st, v, _) = m.api(
        "POST",
        &format!("/api/v1/apps/{app}/keys"),
        Some(r#"{"expires_at":"2001-01-01T00:00:00Z"}"#),
    );
    assert_eq!(
        (st, v["error"]["fields"]["expires_at"].is_string()),
        (422, true)
    );
    let soon = ringway::control::model::rfc3339(ringway::control::model::now_ms() + 700);
    let k3 = m.ok(
        201,
        "POST",
        &format!("/api/v1/apps/{app}/keys"),
        &json!({"expires_at": soon}).to_string(),
    );
    let k3 = s(&k3, "key");
    m.settle();
    assert_eq!(call(proxy, "/orders", &with_key(&k3)).status, 200);
    common::wait_for("the key to expire", || {
        call(proxy, "/orders", &with_key(&k3)).status == 401
    });
    m.shutdown();
}
both_drivers!(keys_rotate_revoke_and_expire, keys);

/// A draft service is callable by its own tenant's apps only; others see no such route.
fn drafts(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream();
    let m = admin::start(driver, 1, &dir.path().join("s.db"), "");
    let proxy = m.proxy();
    let (_t, svc, app, key) = setup(&m, &up, "auto");
    m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": svc}).to_string(),
    );
    // Another tenant's app: a private draft is not even subscribable (404), nor callable (404).
    let other = m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"other"}"#);
    let oapp = m.ok(
        201,
        "POST",
        "/api/v1/apps",
        &json!({"tenant_id": s(&other, "id"), "name": "x"}).to_string(),
    );
    let oapp = s(&oapp, "id");
    let okey = s(
        &m.ok(201, "POST", &format!("/api/v1/apps/{oapp}/keys"), "{}"),
        "key",
    );
    let (st, v, _) = m.api(
        "POST",
        "/api/v1/subscriptions",
        Some(&json!({"app_id": oapp, "service_id": svc}).to_string()),
    );
    assert_eq!(st, 404, "{v}");
    m.settle();
    assert_eq!(
        call(proxy, "/orders", &with_key(&key)).status,
        200,
        "own tenant tests its draft"
    );
    let r = call(proxy, "/orders", &with_key(&okey));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "route_not_found")
    );
    m.shutdown();
}
both_drivers!(draft_services_are_the_owners_only, drafts);

/// Managed routes compose with the file's; a conflict is refused naming both sides, and a file
/// reload that would conflict is refused while the old one keeps serving.
#[test]
fn managed_routes_compose_with_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream();
    let file = format!(
        "{}[[routes]]\nname = \"files\"\npath_prefix = \"/files\"\nupstream = \"app\"\n",
        common::upstream("app", up.addr)
    );
    let store = dir.path().join("s.db");
    let m = admin::start(Driver::Uring, 1, &store, &file);
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"a"}"#),
        "id",
    );
    let svc = |path: &str| {
        json!({"tenant_id": t, "name": format!("svc{}", path.len()), "routes": [{"path_prefix": path}],
               "upstream": {"targets": [up.addr.to_string()]}})
        .to_string()
    };
    let (st, v, _) = m.api("POST", "/api/v1/services", Some(&svc("/files")));
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"]["code"], "route_conflict");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("\"files\" of the config file"), "{msg}");
    m.ok(201, "POST", "/api/v1/services", &svc("/api"));
    m.settle();
    assert_eq!(
        call(m.proxy(), "/files/a", "").status,
        200,
        "the file's route, no auth"
    );
    assert_eq!(
        call(m.proxy(), "/api/a", "").status,
        401,
        "the managed route"
    );
    // A file that now claims /api is refused; both keep serving.
    let bad = admin::config(
        Driver::Uring,
        1,
        &store,
        &format!("{file}[[routes]]\nname = \"grab\"\npath_prefix = \"/api\"\nupstream = \"app\"\n"),
    );
    let e = m.cp.reload(bad).unwrap_err().to_string();
    assert!(e.contains("\"grab\" of the config file"), "{e}");
    assert_eq!(call(m.proxy(), "/api/a", "").status, 401);
    m.shutdown();
}

/// Quotas: the service's default applies per app, a subscription approved with its own quota
/// uses that one, and apps do not share budgets.
fn quotas(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream();
    let m = admin::start(driver, 2, &dir.path().join("s.db"), "");
    let proxy = m.proxy();
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"q"}"#),
        "id",
    );
    let svc = m.ok(
        201,
        "POST",
        "/api/v1/services",
        &json!({"tenant_id": t, "name": "metered", "approval": "manual",
                "routes": [{"path_prefix": "/m"}], "upstream": {"targets": [up.addr.to_string()]},
                "quota": {"per_minute": 5}})
        .to_string(),
    );
    let svc = s(&svc, "id");
    let mut keys = Vec::new();
    for (name, approve) in [("default", "{}"), ("own", r#"{"quota":{"per_minute":2}}"#)] {
        let app = s(
            &m.ok(
                201,
                "POST",
                "/api/v1/apps",
                &json!({"tenant_id": t, "name": name}).to_string(),
            ),
            "id",
        );
        let key = s(
            &m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}"),
            "key",
        );
        let sub = s(
            &m.ok(
                201,
                "POST",
                "/api/v1/subscriptions",
                &json!({"app_id": app, "service_id": svc}).to_string(),
            ),
            "id",
        );
        let v = m.ok(
            200,
            "POST",
            &format!("/api/v1/subscriptions/{sub}/approve"),
            approve,
        );
        assert_eq!(v["state"], "approved");
        keys.push(key);
    }
    let (st, v, _) = m.api(
        "POST",
        "/api/v1/services",
        Some(
            &json!({"tenant_id": t, "name": "bad",
        "routes": [{"path_prefix": "/b"}], "upstream": {"targets": [up.addr.to_string()]},
        "quota": {"per_minute": 0}})
            .to_string(),
        ),
    );
    assert_eq!(
        (st, v["error"]["fields"]["quota.per_minute"].is_string()),
        (422, true),
        "{v}"
    );
    m.settle();
    let count = |key: &str, n: usize| {
        (0..n)
            .map(|_| call(proxy, "/m", &with_key(key)))
            .filter(|r| r.status == 200)
            .count()
    };
    let r = call(proxy, "/m", &with_key(&keys[0]));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-limit"), Some("5"));
    assert_eq!(
        count(&keys[0], 9),
        4,
        "5 a minute for the service's default"
    );
    let r = call(proxy, "/m", &with_key(&keys[0]));
    assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"));
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        count(&keys[1], 6),
        2,
        "the subscription's own quota, and its own budget"
    );
    m.shutdown();
}
both_drivers!(subscription_quotas_limit_each_app, quotas);

/// A service's definition replaced with PUT: the new upstream serves at once, a stale ETag is
/// refused, and the service's new default quota reaches its existing subscriptions.
fn update(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (Mock::start(|_| ok("one")), Mock::start(|_| ok("two")));
    let m = admin::start(driver, 2, &dir.path().join("s.db"), "");
    let proxy = m.proxy();
    let (tenant, svc, app, key) = setup(&m, &one, "auto");
    m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": svc}).to_string(),
    );
    m.settle();
    assert_eq!(call(proxy, "/orders", &with_key(&key)).text(), "one");
    let def = |target: std::net::SocketAddr, quota: serde_json::Value| {
        json!({"name": "orders", "approval": "auto", "routes": [{"path_prefix": "/orders"}],
               "upstream": {"targets": [target.to_string()]}, "quota": quota})
        .to_string()
    };
    let _ = tenant;
    let (st, v, r) = m.api("GET", &format!("/api/v1/services/{svc}"), None);
    assert_eq!(st, 200);
    let etag = r.header("etag").unwrap().to_string();
    let put = |etag: &str, body: &str| {
        let req = format!(
            "PUT /api/v1/services/{svc} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nIf-Match: {etag}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            admin::TOKEN,
            body.len()
        );
        common::raw_request(m.admin, req.as_bytes()).unwrap()
    };
    let r = put(&etag, &def(two.addr, json!({"per_minute": 3})));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        v["version"].as_i64().unwrap() + 1,
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["version"]
            .as_i64()
            .unwrap()
    );
    let r = put(&etag, &def(one.addr, json!(null)));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (412, "precondition_failed")
    );
    m.settle();
    let served: Vec<u16> = (0..5)
        .map(|_| call(proxy, "/orders", &with_key(&key)).status)
        .collect();
    assert_eq!(
        served,
        [200, 200, 200, 429, 429],
        "the new quota applies to the existing subscription"
    );
    let up_two = two.seen.lock().unwrap().len();
    assert_eq!(up_two, 3, "the new upstream serves");
    m.shutdown();
}
both_drivers!(services_are_replaced_with_put, update);

/// Deleting: an app takes its keys and subscriptions with it (refused at once on every shard), a
/// service only once retired (its routes leave the table), a tenant only once empty.
fn deletes(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream();
    let m = admin::start(driver, 2, &dir.path().join("s.db"), "");
    let proxy = m.proxy();
    let (tenant, svc, app, key) = setup(&m, &up, "auto");
    m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": svc}).to_string(),
    );
    m.settle();
    assert_eq!(call(proxy, "/orders", &with_key(&key)).status, 200);
    let (st, v, _) = m.api("DELETE", &format!("/api/v1/services/{svc}"), None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("not_retired"))
    );
    let (st, _, _) = m.api("DELETE", &format!("/api/v1/tenants/{tenant}"), None);
    assert_eq!(st, 409, "the tenant still owns things");
    let (st, _, _) = m.api("DELETE", &format!("/api/v1/apps/{app}"), None);
    assert_eq!(st, 204);
    m.settle();
    for _ in 0..4 {
        assert_eq!(
            call(proxy, "/orders", &with_key(&key)).error_code(),
            "credential_invalid"
        );
    }
    assert_eq!(m.api("GET", &format!("/api/v1/apps/{app}"), None).0, 404);
    let (_, subs, _) = m.api(
        "GET",
        &format!("/api/v1/subscriptions?service_id={svc}"),
        None,
    );
    assert_eq!(
        subs["items"].as_array().unwrap().len(),
        0,
        "its subscriptions went with it"
    );
    m.ok(200, "POST", &format!("/api/v1/services/{svc}/retire"), "");
    let (st, _, _) = m.api("DELETE", &format!("/api/v1/services/{svc}"), None);
    assert_eq!(st, 204);
    m.settle();
    let r = call(proxy, "/orders", &with_key(&key));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "route_not_found"),
        "the route is gone"
    );
    let (st, _, _) = m.api("DELETE", &format!("/api/v1/tenants/{tenant}"), None);
    assert_eq!(st, 204);
    let (_, audit, _) = m.api("GET", &format!("/api/v1/audit?object_id={app}"), None);
    let last = audit["items"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!(last["action"], "app.delete");
    // Deleted state stays deleted across a restart.
    m.shutdown();
    let m = admin::start(driver, 1, &dir.path().join("s.db"), "");
    assert_eq!(call(m.proxy(), "/orders", &with_key(&key)).status, 404);
    m.shutdown();
}
both_drivers!(apps_services_and_tenants_are_deleted, deletes);
