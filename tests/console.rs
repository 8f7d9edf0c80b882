//! The console's side of the admin API, over real sockets: the page and its assets (embedded,
//! with a strict Content-Security-Policy on every answer), cookie sessions (flags, CSRF, expiry,
//! sign-out, the operator's sign-in), list search at scale, and try-it through the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::admin::{self, Managed, PASSWORD_FOR_TESTS as PASSWORD, TOKEN, s};
use common::{Client, Driver, Mock, Response, ok};
use serde_json::{Value, json};

/// One request on a new connection, with extra header lines.
fn req(addr: SocketAddr, method: &str, path: &str, headers: &str, body: Option<&str>) -> Response {
    let mut r =
        format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n{headers}");
    match body {
        Some(b) => r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => r.push_str("Content-Length: 0\r\n\r\n"),
    }
    let mut c = Client::connect(addr);
    c.send(r.as_bytes());
    c.response(method == "HEAD").expect("a response")
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

/// Signs in through `/api/v1/session`; the cookie header line and the CSRF token.
fn sign_in(addr: SocketAddr, body: &Value) -> (String, String, Response) {
    let r = req(addr, "POST", "/api/v1/session", "", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.text());
    let set = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    let pair = set.split(';').next().unwrap().to_string();
    let csrf = s(&json_of(&r), "csrf_token");
    (format!("Cookie: {pair}\r\n"), csrf, r)
}

fn tenant_with_user(m: &Managed, role: &str) -> (String, String) {
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"acme"}"#),
        "id",
    );
    let email = format!("{role}@acme.example");
    m.ok(
        201,
        "POST",
        "/api/v1/users",
        &json!({"tenant_id": t, "email": email, "password": PASSWORD, "role": role}).to_string(),
    );
    (t, email)
}

#[test]
fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let page = req(m.admin, "GET", "/", "", None);
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().contains("/assets/js/app.js"));
    let csp = page.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    // The page has no inline script or style for the policy to allow.
    let html = page.text();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );
    // Assets revalidate by ETag.
    let js = req(m.admin, "GET", "/assets/js/app.js", "", None);
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    let tag = js.header("etag").unwrap().to_string();
    let again = req(
        m.admin,
        "GET",
        "/assets/js/app.js",
        &format!("If-None-Match: {tag}\r\n"),
        None,
    );
    assert_eq!(again.status, 304);
    let lib = req(m.admin, "GET", "/assets/vendor/uplot/LICENSE", "", None);
    assert!(
        lib.text().contains("MIT"),
        "the vendored library ships its licence"
    );
    let missing = req(m.admin, "GET", "/assets/nope.js", "", None);
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "not_found")
    );
    // The API's answers carry the policy too.
    let api = req(m.admin, "GET", "/api/v1/me", "", None);
    assert_eq!(api.status, 401);
    assert!(api.header("content-security-policy").is_some());
    m.shutdown();
}

#[test]
fn cookie_sessions_have_safe_flags_csrf_and_an_end() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let (t, email) = tenant_with_user(&m, "developer");
    let (cookie, csrf, r) = sign_in(m.admin, &json!({"email": email, "password": PASSWORD}));
    let set = r.header("set-cookie").unwrap();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1",
        "Max-Age=43200",
    ] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "a loopback listener's cookie is not Secure by default: {set}"
    );
    let body = json_of(&r);
    assert_eq!(body["me"]["user"]["email"], email.as_str());
    assert!(
        body.get("token").is_none() && !r.text().contains("rwa_"),
        "the token stays in the cookie"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // Reads need no CSRF token; changes do, and it must be this session's.
    let me = req(m.admin, "GET", "/api/v1/session", &cookie, None);
    assert_eq!(me.status, 200);
    assert_eq!(s(&json_of(&me), "csrf_token"), csrf);
    let app = json!({"tenant_id": t, "name": "one"}).to_string();
    let r = req(m.admin, "POST", "/api/v1/apps", &cookie, Some(&app));
    assert_eq!((r.status, r.error_code().as_str()), (403, "csrf_failed"));
    let wrong = format!("{cookie}X-CSRF-Token: {}\r\n", "A".repeat(43));
    let r = req(m.admin, "POST", "/api/v1/apps", &wrong, Some(&app));
    assert_eq!((r.status, r.error_code().as_str()), (403, "csrf_failed"));
    let cross = format!("{cookie}X-CSRF-Token: {csrf}\r\nSec-Fetch-Site: same-site\r\n");
    let r = req(m.admin, "POST", "/api/v1/apps", &cross, Some(&app));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "csrf_failed"),
        "another port of the same host is another origin"
    );
    let right = format!("{cookie}X-CSRF-Token: {csrf}\r\nSec-Fetch-Site: same-origin\r\n");
    let r = req(m.admin, "POST", "/api/v1/apps", &right, Some(&app));
    assert_eq!(r.status, 201, "{}", r.text());
    // Another session's token does not pass for this one.
    let (cookie2, csrf2, _) = sign_in(m.admin, &json!({"email": email, "password": PASSWORD}));
    let mixed = format!("{cookie2}X-CSRF-Token: {csrf}\r\n");
    assert_eq!(
        req(m.admin, "POST", "/api/v1/apps", &mixed, Some(&app)).status,
        403
    );

    // A bearer token needs no CSRF token (no browser sends it by itself); the bootstrap token and
    // personal tokens are not sessions and are refused as a cookie.
    assert_eq!(
        admin::api(
            m.admin,
            TOKEN,
            "POST",
            "/api/v1/apps",
            Some(&json!({"tenant_id": t, "name": "two"}).to_string())
        )
        .0,
        201
    );
    let r = req(
        m.admin,
        "GET",
        "/api/v1/me",
        &format!("Cookie: ringway_session={TOKEN}\r\n"),
        None,
    );
    assert_eq!(r.status, 401);
    let personal = admin::api(
        m.admin,
        "",
        "POST",
        "/api/v1/login",
        Some(&json!({"email": email, "password": PASSWORD}).to_string()),
    )
    .1;
    let session_tok = s(&personal, "token");
    let pt = admin::api(
        m.admin,
        &session_tok,
        "POST",
        "/api/v1/tokens",
        Some(r#"{"name":"ci","scopes":["read"]}"#),
    )
    .1;
    let r = req(
        m.admin,
        "GET",
        "/api/v1/me",
        &format!("Cookie: ringway_session={}\r\n", s(&pt, "token")),
        None,
    );
    assert_eq!((r.status, r.error_code().as_str()), (401, "session_ended"));

    // Signing out ends the session on the server, not only in the browser.
    let out = req(
        m.admin,
        "DELETE",
        "/api/v1/session",
        &format!("{cookie2}X-CSRF-Token: {csrf2}\r\n"),
        None,
    );
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = req(m.admin, "GET", "/api/v1/me", &cookie2, None);
    assert_eq!((r.status, r.error_code().as_str()), (401, "session_ended"));
    assert_eq!(
        req(m.admin, "GET", "/api/v1/me", &cookie, None).status,
        200,
        "the other session lives on"
    );

    // A disabled user's sessions end.
    let uid = s(
        &json_of(&req(m.admin, "GET", "/api/v1/session", &cookie, None))["me"]["user"],
        "id",
    );
    assert_eq!(
        admin::api(
            m.admin,
            TOKEN,
            "POST",
            &format!("/api/v1/users/{uid}/disable"),
            Some("{}")
        )
        .0,
        200
    );
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &cookie, None).status, 401);
    m.shutdown();
}

#[test]
fn sign_in_is_same_origin_json_and_replaces_the_old_session() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let body = json!({"token": TOKEN}).to_string();
    let r = req(
        m.admin,
        "POST",
        "/api/v1/session",
        "Sec-Fetch-Site: cross-site\r\n",
        Some(&body),
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "csrf_failed"),
        "login CSRF"
    );
    let mut c = Client::connect(m.admin);
    c.send(format!("POST /api/v1/session HTTP/1.1\r\nHost: admin\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    assert_eq!(
        c.response(false).unwrap().status,
        415,
        "a form cannot sign in"
    );
    let (first, _, _) = sign_in(m.admin, &json!({"token": TOKEN}));
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &first, None).status, 200);
    // Signing in from the same browser ends the session it had.
    let r = req(m.admin, "POST", "/api/v1/session", &first, Some(&body));
    assert_eq!(r.status, 201);
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &first, None).status, 401);
    let second = format!(
        "Cookie: {}\r\n",
        r.header("set-cookie").unwrap().split(';').next().unwrap()
    );
    let csrf = s(&json_of(&r), "csrf_token");
    // The older /logout ends a console session too (the operator's included).
    let out = req(
        m.admin,
        "POST",
        "/api/v1/logout",
        &format!("{second}X-CSRF-Token: {csrf}\r\n"),
        Some("{}"),
    );
    assert_eq!(out.status, 204);
    assert_eq!(req(m.admin, "GET", "/api/v1/me", &second, None).status, 401);
    m.shutdown();
}

/// Rotating the bootstrap token ends every operator session made with the old one.
#[test]
fn a_new_bootstrap_token_ends_the_old_ones_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let m = admin::start(Driver::Uring, 1, &store, "");
    let (cookie, _, _) = sign_in(m.admin, &json!({"token": TOKEN}));
    m.shutdown();
    let config = admin::config(Driver::Uring, 1, &store, "");
    let g = ringway::Gateway::start(
        config.clone(),
        ringway::StartOptions {
            workers: None,
            cpus: Some(ringway::runtime::available_cpus().unwrap()),
        },
    )
    .unwrap();
    let cp = ringway::control::ControlPlane::start(
        &config,
        g.publisher(),
        Some(ringway::control::AdminToken::new("a-brand-new-admin-token-42").unwrap()),
    )
    .unwrap();
    let addr = cp.admin_addr().unwrap();
    assert_eq!(req(addr, "GET", "/api/v1/me", &cookie, None).status, 401);
    let (fresh, _, _) = sign_in(addr, &json!({"token": "a-brand-new-admin-token-42"}));
    assert_eq!(req(addr, "GET", "/api/v1/me", &fresh, None).status, 200);
    g.shutdown(std::time::Duration::from_secs(1));
    cp.shutdown();
}

#[test]
fn operator_sign_in_is_throttled_and_sessions_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let mut cfg = admin::config(Driver::Uring, 1, &store, "");
    cfg.admin.as_mut().unwrap().session_ttl = std::time::Duration::from_secs(1);
    cfg.admin.as_mut().unwrap().cookie_secure = true;
    let m = admin::start_config(cfg, &store);
    let (cookie, csrf, r) = sign_in(m.admin, &json!({"token": TOKEN}));
    let set = r.header("set-cookie").unwrap();
    assert!(set.contains("Secure") && set.contains("Max-Age=1"), "{set}");
    assert_eq!(json_of(&r)["me"]["kind"], "operator");
    // The operator's session may do what the bootstrap token does.
    let r = req(
        m.admin,
        "POST",
        "/api/v1/tenants",
        &format!("{cookie}X-CSRF-Token: {csrf}\r\n"),
        Some(r#"{"name":"t1"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // It ends at its time (the server's check; a browser also drops the cookie at Max-Age).
    common::wait_for("the session to expire", || {
        req(m.admin, "GET", "/api/v1/me", &cookie, None).status == 401
    });
    assert_eq!(
        req(m.admin, "GET", "/api/v1/session", &cookie, None).error_code(),
        "session_ended"
    );
    // Wrong tokens: refused, then throttled per client address.
    let mut last = 0;
    for _ in 0..25 {
        last = req(
            m.admin,
            "POST",
            "/api/v1/session",
            "",
            Some(r#"{"token":"wrong"}"#),
        )
        .status;
        if last == 429 {
            break;
        }
        assert_eq!(last, 401);
    }
    assert_eq!(last, 429, "operator sign-ins are throttled");
    // Bad input names its field.
    let r = req(
        m.admin,
        "POST",
        "/api/v1/session",
        "",
        Some(r#"{"email":"a@b.example"}"#),
    );
    assert_eq!(r.status, 422);
    assert!(
        json_of(&r)["error"]["fields"]["password"].is_string(),
        "{}",
        r.text()
    );
    m.shutdown();
}

#[test]
fn try_it_goes_through_the_gateway_and_only_under_the_service() {
    let up = Mock::start(|r| ok(&format!("seen {}", r.target)));
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"acme"}"#),
        "id",
    );
    let (svc, _app, key) = admin::served(&m, &t, "/orders", up.addr);
    let path = format!("/api/v1/services/{svc}/try");
    let v = m.ok(
        200,
        "POST",
        &path,
        &json!({"method": "GET", "path": "/orders/7?x=1", "key": key,
        "headers": [["X-Trace", "t1"]]})
        .to_string(),
    );
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"], "seen /orders/7?x=1");
    assert!(s(&v, "request_id").starts_with("try-"));
    let seen = up.last();
    assert_eq!(seen.header("x-trace"), Some("t1"));
    assert_eq!(seen.header("x-request-id"), v["request_id"].as_str());
    assert!(
        seen.header("authorization").is_none(),
        "the gateway does not pass the key on"
    );
    // Without a key the gateway answers, and try-it shows its answer.
    let v = m.ok(200, "POST", &path, r#"{"method":"GET","path":"/orders/7"}"#);
    assert_eq!(v["status"], 401, "{v}");
    // Only paths the gateway routes to this service: not another service's more specific route
    // under its prefix (the gateway would send that one to the other service; another tenant
    // cannot have one, the store refuses overlaps across tenants).
    admin::served(&m, &t, "/orders/admin", up.addr);
    let v = m.ok(
        200,
        "POST",
        &path,
        &json!({"method": "GET", "path": "//orders//8", "key": key}).to_string(),
    );
    assert_eq!(
        v["body"], "seen /orders/8",
        "merged as the gateway merges: {v}"
    );
    // No smuggled framing headers either.
    for (body, field) in [
        (json!({"method": "GET", "path": "/admin"}), "path"),
        (
            json!({"method": "GET", "path": "/orders/admin/users"}),
            "path",
        ),
        (json!({"method": "GET", "path": "//orders//admin"}), "path"),
        (
            json!({"method": "GET", "path": "http://evil/orders"}),
            "path",
        ),
        (json!({"method": "TRACE", "path": "/orders"}), "method"),
        (
            json!({"method": "GET", "path": "/orders", "headers": [["Host", "evil"]]}),
            "headers[0][0]",
        ),
        (
            json!({"method": "GET", "path": "/orders", "headers": [["X-A", "a\r\nb: c"]]}),
            "headers[0][1]",
        ),
    ] {
        let (st, v, _) = m.api("POST", &path, Some(&body.to_string()));
        assert_eq!(st, 422, "{body}: {v}");
        assert!(v["error"]["fields"][field].is_string(), "{body}: {v}");
    }
    // A viewer may read through try-it, not write.
    let email = "viewer@acme.example";
    m.ok(
        201,
        "POST",
        "/api/v1/users",
        &json!({"tenant_id": t, "email": email, "password": PASSWORD, "role": "viewer"})
            .to_string(),
    );
    let tok = s(
        &admin::api(
            m.admin,
            "",
            "POST",
            "/api/v1/login",
            Some(&json!({"email": email, "password": PASSWORD}).to_string()),
        )
        .1,
        "token",
    );
    let get = json!({"method": "GET", "path": "/orders/1", "key": key}).to_string();
    assert_eq!(admin::api(m.admin, &tok, "POST", &path, Some(&get)).0, 200);
    let post = json!({"method": "POST", "path": "/orders", "key": key, "body": "{}"}).to_string();
    let (st, v, _) = admin::api(m.admin, &tok, "POST", &path, Some(&post));
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    m.shutdown();
}

/// 10,000 services and 100,000 apps: lists page on the server and search narrows them.
#[test]
fn lists_page_and_search_at_ten_thousand_services_and_a_hundred_thousand_apps() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    // The store is made by a first start, filled directly (creating 110,000 objects through the
    // API would take the test's whole budget), then served by a second start.
    let m = admin::start(Driver::Uring, 1, &store, "");
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"big"}"#),
        "id",
    );
    let other = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"other"}"#),
        "id",
    );
    m.shutdown();
    fill(&store, &t, &other);
    let m = admin::start(Driver::Uring, 1, &store, "");
    let (st, v, _) = m.api("GET", "/api/v1/apps?limit=500", None);
    assert_eq!(st, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 500);
    let mut cursor = s(&v, "next_cursor");
    let mut seen = 500;
    for _ in 0..3 {
        let v = m
            .api(
                "GET",
                &format!("/api/v1/apps?limit=500&cursor={cursor}"),
                None,
            )
            .1;
        seen += v["items"].as_array().unwrap().len();
        cursor = s(&v, "next_cursor");
    }
    assert_eq!(seen, 2000);
    // Timings for perf/RESULTS.md (printed, not asserted: speed is measured, not tested).
    for q in [
        "/api/v1/apps?limit=50",
        "/api/v1/apps?q=app-0042&limit=50",
        "/api/v1/apps?q=no-such-app&limit=50",
        "/api/v1/services?limit=50",
        "/api/v1/services?q=svc-0999&limit=50",
    ] {
        let mut best = std::time::Duration::MAX;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            assert_eq!(m.api("GET", q, None).0, 200);
            best = best.min(started.elapsed());
        }
        eprintln!("{q}: best of 5 {best:?}");
    }
    let v = m.api("GET", "/api/v1/apps?q=app-0042&limit=50", None).1;
    let names: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| s(a, "name"))
        .collect();
    assert!(
        names.contains(&"app-004217".to_string()) && names.iter().all(|n| n.contains("app-0042")),
        "{names:?}"
    );
    // LIKE wildcards in the text are literal.
    assert_eq!(
        m.api("GET", "/api/v1/apps?q=%25", None).1["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        m.api("GET", "/api/v1/apps?q=_", None).1["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let v = m
        .api(
            "GET",
            "/api/v1/services?q=svc-0999&visibility=public&limit=50",
            None,
        )
        .1;
    let names: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| s(a, "name"))
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.contains("svc-0999")),
        "{names:?}"
    );
    let (st, v, _) = m.api("GET", "/api/v1/apps?q=", None);
    assert_eq!(st, 422, "{v}");
    let (st, v, _) = m.api("GET", "/api/v1/subscriptions?q=x", None);
    assert_eq!(
        (st, v["error"]["fields"]["q"].is_string()),
        (422, true),
        "{v}"
    );
    m.shutdown();
}

fn fill(store: &std::path::Path, t: &str, other: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", store.display());
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        for i in 0..100_000u32 {
            let tenant = if i % 10 == 9 { other } else { t };
            sqlx::query("INSERT INTO apps (id, tenant_id, name, created_at, updated_at, version) VALUES ($1, $2, $3, 0, 0, 1)")
                .bind(format!("app_{i:06}"))
                .bind(tenant)
                .bind(format!("app-{i:06}"))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        for i in 0..10_000u32 {
            let spec = json!({"routes": [{"path_prefix": format!("/s{i}")}],
                              "upstream": {"targets": ["127.0.0.1:9"]}, "credentials": ["api_key"]})
            .to_string();
            sqlx::query("INSERT INTO services (id, tenant_id, name, visibility, approval, state, spec, created_at, updated_at, version) \
                         VALUES ($1, $2, $3, $4, 'manual', 'draft', $5, 0, 0, 1)")
                .bind(format!("svc_{i:05}"))
                .bind(if i % 2 == 0 { t } else { other })
                .bind(format!("svc-{i:05}"))
                .bind(if i % 3 == 0 { "public" } else { "private" })
                .bind(&spec)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        pool.close().await;
    });
}

/// `[admin] tls`: the admin API and console over TLS, with a `Secure` cookie; plain HTTP to it
/// gets nothing.
#[test]
fn the_admin_listener_serves_tls_with_a_secure_cookie() {
    let pki = common::pki::Pki::new("admin");
    pki.leaf("admin", &["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let extra = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}\n",
        pki.path("admin.pem"),
        pki.path("admin.key")
    );
    // The [admin] table is the last one admin::config writes before `extra`'s tables: put the
    // key into it by text.
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n{extra}[store]\npath = \"{}\"\n",
        store.display()
    );
    let cfg = ringway::Config::from_toml(&text).unwrap();
    assert!(
        cfg.admin.as_ref().unwrap().cookie_secure,
        "TLS makes the cookie Secure by default"
    );
    let m = admin::start_config(cfg, &store);
    let port = m.admin.port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.dir.join("ca.pem")).unwrap())
            .unwrap();
        let c = reqwest::Client::builder()
            .add_root_certificate(ca)
            .no_proxy()
            .build()
            .unwrap();
        let page = c
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers().get("content-security-policy").is_some());
        let r = c
            .post(format!("https://127.0.0.1:{port}/api/v1/session"))
            .header("content-type", "application/json")
            .body(json!({"token": TOKEN}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let set = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            set.contains("; Secure") && set.contains("HttpOnly"),
            "{set}"
        );
    });
    let mut plain = Client::connect(m.admin);
    plain.send(b"GET / HTTP/1.1\r\nHost: admin\r\n\r\n");
    assert!(
        plain.response(false).is_none(),
        "plain HTTP to the TLS listener is not served"
    );
    m.shutdown();
    let bad = text.replace(&pki.path("admin.key"), "/nonexistent.key");
    let err = ringway::Config::from_toml(&bad).unwrap_err().to_string();
    assert!(err.contains("admin.tls"), "{err}");
}
