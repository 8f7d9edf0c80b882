//! What a review of the management plane found, each shown fixed: targets and JWKS URLs that
//! reach the gateway's own host or link-local space, routes that would take another tenant's (or
//! the config file's) traffic, a PUT that made a service private behind its subscribers' backs,
//! quotas shared between services, users that could not be cut off, filters that failed, and
//! identity headers forged on file routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::admin::{self, PASSWORD_FOR_TESTS, api, call, s};
use common::{Client, Driver, Mock, ok};
use ringway::Config;
use serde_json::json;

fn svc(t: &str, name: &str, route: serde_json::Value, target: &str) -> String {
    json!({"tenant_id": t, "name": name, "approval": "auto", "routes": [route],
           "upstream": {"targets": [target]}})
    .to_string()
}

#[test]
fn targets_and_jwks_urls_cannot_reach_the_gateway_host() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\ntick = \"10ms\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n",
        store.display()
    );
    let m = admin::start_config(Config::from_toml(&text).unwrap(), &store);
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"t"}"#),
        "id",
    );
    // This host's own interface address (the one a route out would use; no packet is sent).
    let own = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|u| u.connect("10.255.255.1:9").and_then(|()| u.local_addr()))
        .ok()
        .map(|a| format!("{}:80", a.ip()))
        .filter(|a| !a.starts_with("127."));
    let mut refused: Vec<String> = [
        "127.0.0.1:6379",
        "169.254.169.254:80",
        "0.0.0.0:80",
        "[::1]:80",
        "[fe80::1]:80",
        "[fd00:ec2::254]:80",
        "[::ffff:127.0.0.1]:80",
        "[::127.0.0.1]:80",
        "[::169.254.169.254]:80",
        "[64:ff9b::a9fe:a9fe]:80",
    ]
    .map(String::from)
    .to_vec();
    refused.extend(own);
    for target in &refused {
        let target = target.as_str();
        let (st, v, _) = m.api(
            "POST",
            "/api/v1/services",
            Some(&svc(&t, "x", json!({"path_prefix": "/x"}), target)),
        );
        assert_eq!(st, 422, "{target}: {v}");
        assert!(
            v["error"]["fields"]["upstream.targets[0]"].is_string(),
            "{target}: {v}"
        );
    }
    m.ok(
        201,
        "POST",
        "/api/v1/services",
        &svc(&t, "ok", json!({"path_prefix": "/ok"}), "10.1.2.3:80"),
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
    for (body, field) in [
        (
            json!({"kind": "jwt", "issuer": "i", "audience": "a", "jwks_url": "http://127.0.0.1:1/jwks"}),
            "jwks_url",
        ),
        (
            json!({"kind": "jwt", "issuer": "i", "audience": "a", "jwks_url": "https://127.0.0.1:1/jwks"}),
            "jwks_url",
        ),
        (
            json!({"kind": "jwt", "issuer": "i", "jwks_url": "https://idp.example/jwks"}),
            "audience",
        ),
    ] {
        let (st, v, _) = m.api(
            "POST",
            &format!("/api/v1/apps/{app}/credentials"),
            Some(&body.to_string()),
        );
        assert_eq!(
            (st, v["error"]["fields"][field].is_string()),
            (422, true),
            "{body}: {v}"
        );
    }
    m.shutdown();
}

#[test]
fn routes_cannot_take_another_owners_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|_| ok("x"));
    let file = format!(
        "{}[[routes]]\nname = \"files\"\npath_prefix = \"/files\"\nupstream = \"app\"\n[[routes]]\nname = \"rest\"\npath_prefix = \"/\"\nupstream = \"app\"\n",
        common::upstream("app", up.addr)
    );
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), &file);
    let a = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"a"}"#),
        "id",
    );
    let b = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"b"}"#),
        "id",
    );
    let target = up.addr.to_string();
    m.ok(
        201,
        "POST",
        "/api/v1/services",
        &svc(&a, "pay", json!({"path_prefix": "/pay"}), &target),
    );
    // The same tenant may refine its own paths; the file's catch-all may be carved out.
    m.ok(
        201,
        "POST",
        "/api/v1/services",
        &svc(&a, "pay2", json!({"path_prefix": "/pay/v2"}), &target),
    );
    for (name, route) in [
        ("deeper", json!({"path_prefix": "/pay/v3"})),
        (
            "by-method",
            json!({"path_prefix": "/pay", "methods": ["GET"]}),
        ),
        (
            "by-host",
            json!({"path_prefix": "/", "hosts": ["api.example.com"]}),
        ),
        ("exact", json!({"path_exact": "/pay/x"})),
        ("file", json!({"path_prefix": "/files/private"})),
    ] {
        let (st, v, _) = m.api(
            "POST",
            "/api/v1/services",
            Some(&svc(&b, name, route.clone(), &target)),
        );
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (409, Some("route_conflict")),
            "{route}: {v}"
        );
    }
    m.ok(
        201,
        "POST",
        "/api/v1/services",
        &svc(&b, "own", json!({"path_prefix": "/b"}), &target),
    );
    // Identity headers a client sends are dropped on the file's routes too.
    let r = call(
        m.proxy(),
        "/files/a",
        "X-Ringway-App: forged\r\nX-Ringway-Tenant: forged\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = up.seen.lock().unwrap().last().cloned().unwrap();
    assert!(seen.header("x-ringway-app").is_none() && seen.header("x-ringway-tenant").is_none());
    m.shutdown();
}

#[test]
fn subscriptions_quotas_and_visibility_hold() {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|_| ok("x"));
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let a = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"a"}"#),
        "id",
    );
    let b = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"b"}"#),
        "id",
    );
    let mk = |name: &str, path: &str| {
        let v = m.ok(201, "POST", "/api/v1/services", &json!({"tenant_id": a, "name": name, "visibility": "public",
            "approval": "auto", "routes": [{"path_prefix": path}], "upstream": {"targets": [up.addr.to_string()]},
            "quota": {"per_minute": 2}}).to_string());
        let id = s(&v, "id");
        m.ok(200, "POST", &format!("/api/v1/services/{id}/publish"), "");
        id
    };
    let (s1, s2) = (mk("one", "/one"), mk("two", "/two"));
    let app = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/apps",
            &json!({"tenant_id": b, "name": "b-app"}).to_string(),
        ),
        "id",
    );
    let key = s(
        &m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}"),
        "key",
    );
    for svc in [&s1, &s2] {
        m.ok(
            201,
            "POST",
            "/api/v1/subscriptions",
            &json!({"app_id": app, "service_id": svc}).to_string(),
        );
    }
    // Filters work (they failed with a 500).
    let (st, v, _) = m.api("GET", "/api/v1/subscriptions?state=approved", None);
    assert_eq!(
        (st, v["items"].as_array().map(|i| i.len())),
        (200, Some(2)),
        "{v}"
    );
    let (st, v, _) = m.api(
        "GET",
        &format!("/api/v1/subscriptions?service_id={s1}&app_id={app}"),
        None,
    );
    assert_eq!(
        (st, v["items"].as_array().map(|i| i.len())),
        (200, Some(1)),
        "{v}"
    );
    // Two services with equal quotas: two budgets.
    m.settle();
    let hdr = format!("X-API-Key: {key}\r\n");
    let count = |p: &str| {
        (0..4)
            .filter(|_| call(m.proxy(), p, &hdr).status == 200)
            .count()
    };
    assert_eq!((count("/one"), count("/two")), (2, 2));
    // Another tenant's view of a public service hides its upstream.
    let u = m.ok(201, "POST", "/api/v1/users", &json!({"tenant_id": b, "email": "b@example.com", "password": PASSWORD_FOR_TESTS, "role": "owner"}).to_string());
    let _ = u;
    let (_, login, _) = api(
        m.admin,
        "",
        "POST",
        "/api/v1/login",
        Some(&json!({"email": "b@example.com", "password": PASSWORD_FOR_TESTS}).to_string()),
    );
    let bt = s(&login, "token");
    let (st, v, _) = api(m.admin, &bt, "GET", &format!("/api/v1/services/{s1}"), None);
    assert_eq!((st, v["upstream"].is_null()), (200, true), "{v}");
    // A PUT without visibility keeps it public; making it private is refused while another
    // tenant's apps are subscribed.
    let def = |vis: Option<&str>| {
        let mut d = json!({"name": "one", "approval": "auto", "routes": [{"path_prefix": "/one"}],
                           "upstream": {"targets": [up.addr.to_string()]}});
        if let Some(v) = vis {
            d["visibility"] = json!(v);
        }
        d.to_string()
    };
    let v = m.ok(200, "PUT", &format!("/api/v1/services/{s1}"), &def(None));
    assert_eq!(v["visibility"], "public");
    let (st, v, _) = m.api(
        "PUT",
        &format!("/api/v1/services/{s1}"),
        Some(&def(Some("private"))),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("subscribed_by_other_tenants")),
        "{v}"
    );
    // A user can be cut off: disabled, its session stops working at once.
    let uid = s(&login["user"], "id");
    // A tenant keeps an owner: the last one can be neither demoted nor disabled.
    let (st, _, _) = m.api(
        "PATCH",
        &format!("/api/v1/users/{uid}"),
        Some(r#"{"role":"viewer"}"#),
    );
    assert_eq!(st, 409);
    let (st, _, _) = m.api("POST", &format!("/api/v1/users/{uid}/disable"), None);
    assert_eq!(st, 409);
    m.ok(
        201,
        "POST",
        "/api/v1/users",
        &json!({"tenant_id": b, "email": "b2@example.com", "password": PASSWORD_FOR_TESTS, "role": "owner"}).to_string(),
    );
    m.ok(200, "POST", &format!("/api/v1/users/{uid}/disable"), "");
    assert_eq!(api(m.admin, &bt, "GET", "/api/v1/me", None).0, 401);
    let (st, _, _) = api(
        m.admin,
        "",
        "POST",
        "/api/v1/login",
        Some(&json!({"email": "b@example.com", "password": PASSWORD_FOR_TESTS}).to_string()),
    );
    assert_eq!(st, 401, "a disabled user cannot log in");
    // Bad cursors are refused, not silently restarted.
    let (st, _, _) = m.api("GET", "/api/v1/audit?cursor=not%20a%20cursor", None);
    assert_eq!(st, 422);
    m.shutdown();
}

/// A quota table no live subscription uses is emptied and its slot reused: a new subscription
/// with another quota gets that quota, with a fresh budget.
#[test]
fn freed_quota_tables_are_reused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|_| ok("x"));
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"q"}"#),
        "id",
    );
    let svc = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &json!({"tenant_id": t, "name": "q", "approval": "manual", "routes": [{"path_prefix": "/q"}],
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
    let key = s(
        &m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}"),
        "key",
    );
    let hdr = format!("X-API-Key: {key}\r\n");
    for quota in [2usize, 3] {
        let sub = s(
            &m.ok(
                201,
                "POST",
                "/api/v1/subscriptions",
                &json!({"app_id": app, "service_id": svc}).to_string(),
            ),
            "id",
        );
        m.ok(
            200,
            "POST",
            &format!("/api/v1/subscriptions/{sub}/approve"),
            &json!({"quota": {"per_minute": quota}}).to_string(),
        );
        m.settle();
        let ok = (0..quota + 2)
            .filter(|_| call(m.proxy(), "/q", &hdr).status == 200)
            .count();
        assert_eq!(ok, quota, "quota {quota}: a fresh budget of its own");
        m.ok(
            200,
            "POST",
            &format!("/api/v1/subscriptions/{sub}/revoke"),
            "",
        );
    }
    m.shutdown();
}

/// Passwords change: your own with the current one (your sessions end), another user's by an
/// admin of the tenant; the old password stops working.
#[test]
fn passwords_change() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"p"}"#),
        "id",
    );
    let login = |email: &str, pw: &str| {
        api(
            m.admin,
            "",
            "POST",
            "/api/v1/login",
            Some(&json!({"email": email, "password": pw}).to_string()),
        )
    };
    for (email, role) in [
        ("adm@example.com", "admin"),
        ("dev@example.com", "developer"),
    ] {
        m.ok(
            201,
            "POST",
            "/api/v1/users",
            &json!({"tenant_id": t, "email": email, "password": PASSWORD_FOR_TESTS, "role": role})
                .to_string(),
        );
    }
    let (_, dev, _) = login("dev@example.com", PASSWORD_FOR_TESTS);
    let (dev_token, dev_id) = (s(&dev, "token"), s(&dev["user"], "id"));
    let path = format!("/api/v1/users/{dev_id}/password");
    let (st, v, _) = api(
        m.admin,
        &dev_token,
        "POST",
        &path,
        Some(r#"{"password":"a brand new password"}"#),
    );
    assert_eq!(
        (st, v["error"]["fields"]["current"].is_string()),
        (422, true)
    );
    let (st, _, _) = api(
        m.admin,
        &dev_token,
        "POST",
        &path,
        Some(r#"{"current":"wrong password!!","password":"a brand new password"}"#),
    );
    assert_eq!(st, 422);
    let body =
        json!({"current": PASSWORD_FOR_TESTS, "password": "a brand new password"}).to_string();
    assert_eq!(api(m.admin, &dev_token, "POST", &path, Some(&body)).0, 204);
    assert_eq!(
        api(m.admin, &dev_token, "GET", "/api/v1/me", None).0,
        401,
        "its sessions end"
    );
    assert_eq!(login("dev@example.com", PASSWORD_FOR_TESTS).0, 401);
    let (st, dev, _) = login("dev@example.com", "a brand new password");
    assert_eq!(st, 201);
    // A developer cannot set another's password; an admin can.
    let (_, adm, _) = login("adm@example.com", PASSWORD_FOR_TESTS);
    let adm_id = s(&adm["user"], "id");
    let (st, _, _) = api(
        m.admin,
        &s(&dev, "token"),
        "POST",
        &format!("/api/v1/users/{adm_id}/password"),
        Some(r#"{"password":"taken over password"}"#),
    );
    assert_eq!(st, 403);
    let (st, _, _) = api(
        m.admin,
        &s(&adm, "token"),
        "POST",
        &path,
        Some(r#"{"password":"reset by the admin"}"#),
    );
    assert_eq!(st, 204);
    assert_eq!(login("dev@example.com", "reset by the admin").0, 201);
    // An admin does not reset a peer admin's password (that would take the account).
    m.ok(201, "POST", "/api/v1/users", &json!({"tenant_id": t, "email": "adm2@example.com", "password": PASSWORD_FOR_TESTS, "role": "admin"}).to_string());
    let (_, users, _) = m.api("GET", "/api/v1/users?limit=50", None);
    let adm2 = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "adm2@example.com")
        .map(|u| s(u, "id"))
        .unwrap();
    let (_, adm, _) = login("adm@example.com", PASSWORD_FOR_TESTS);
    let (st, _, _) = api(
        m.admin,
        &s(&adm, "token"),
        "POST",
        &format!("/api/v1/users/{adm2}/password"),
        Some(r#"{"password":"taken over password"}"#),
    );
    assert_eq!(st, 403);
    // Nor around that: demoting the peer first (then resetting and promoting back), or
    // disabling it. Management goes downwards only.
    let adm_token = s(&adm, "token");
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/v1/users/{adm2}"),
            r#"{"role":"developer"}"#,
        ),
        ("POST", format!("/api/v1/users/{adm2}/disable"), "{}"),
        (
            "PATCH",
            format!("/api/v1/users/{adm_id}"),
            r#"{"role":"viewer"}"#,
        ),
    ] {
        let (st, v, _) = api(m.admin, &adm_token, method, &path, Some(body));
        assert_eq!(st, 403, "{method} {path}: {v}");
    }
    assert_eq!(login("adm2@example.com", PASSWORD_FOR_TESTS).0, 201);
    // The admin still manages those below it, and may raise a developer to its own level.
    let (st, v, _) = api(
        m.admin,
        &adm_token,
        "PATCH",
        &format!("/api/v1/users/{dev_id}"),
        Some(r#"{"role":"admin"}"#),
    );
    assert_eq!((st, v["role"].as_str()), (200, Some("admin")), "{v}");
    // A read-only personal token may revoke itself, nothing else.
    let (st, ro, _) = api(
        m.admin,
        &adm_token,
        "POST",
        "/api/v1/tokens",
        Some(r#"{"name":"ro","scopes":["read"]}"#),
    );
    assert_eq!(st, 201, "{ro}");
    let (ro_token, ro_id) = (s(&ro, "token"), s(&ro, "id"));
    let (_, list, _) = api(m.admin, &adm_token, "GET", "/api/v1/tokens", None);
    let session_id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["current"] == true)
        .map(|t| s(t, "id"))
        .unwrap();
    let (st, v, _) = api(
        m.admin,
        &ro_token,
        "POST",
        &format!("/api/v1/tokens/{session_id}/revoke"),
        Some("{}"),
    );
    assert_eq!(st, 403, "{v}");
    assert_eq!(api(m.admin, &adm_token, "GET", "/api/v1/me", None).0, 200);
    let (st, v, _) = api(
        m.admin,
        &ro_token,
        "POST",
        &format!("/api/v1/tokens/{ro_id}/revoke"),
        Some("{}"),
    );
    assert_eq!((st, v["current"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(api(m.admin, &ro_token, "GET", "/api/v1/me", None).0, 401);
    m.shutdown();
}

/// A call with `If-Match: etag` and the bootstrap token; its status.
fn if_match(m: &admin::Managed, method: &str, path: &str, body: &str, etag: &str) -> u16 {
    let mut c = Client::connect(m.admin);
    c.send(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nIf-Match: {etag}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            admin::TOKEN,
            body.len()
        )
        .as_bytes(),
    );
    c.response(false).unwrap().status
}

/// Tenants (route scope, delete) and user disabling honour If-Match like every other change.
#[test]
fn tenant_and_user_changes_honour_if_match() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let t = m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"im"}"#);
    let (id, v) = (s(&t, "id"), t["version"].as_i64().unwrap());
    let scope = r#"{"scopes":[{"path_prefix":"/im"}]}"#;
    let path = format!("/api/v1/tenants/{id}/route-scope");
    let stale = format!("\"{}\"", v + 7);
    assert_eq!(if_match(&m, "PUT", &path, scope, &stale), 412);
    assert_eq!(if_match(&m, "PUT", &path, scope, &format!("\"{v}\"")), 200);
    // The change moved the version on: the old tag no longer matches for the delete.
    let tenant = format!("/api/v1/tenants/{id}");
    assert_eq!(
        if_match(&m, "DELETE", &tenant, "", &format!("\"{v}\"")),
        412
    );
    let u = m.ok(
        201,
        "POST",
        "/api/v1/users",
        &json!({"tenant_id": id, "email": "im@example.com", "password": PASSWORD_FOR_TESTS, "role": "viewer"}).to_string(),
    );
    let (uid, uv) = (s(&u, "id"), u["version"].as_i64().unwrap());
    let disable = format!("/api/v1/users/{uid}/disable");
    assert_eq!(
        if_match(&m, "POST", &disable, "{}", &format!("\"{}\"", uv + 1)),
        412
    );
    assert_eq!(
        if_match(&m, "POST", &disable, "{}", &format!("\"{uv}\"")),
        200
    );
    m.shutdown();
}

/// Guesses at the bootstrap token as a Bearer token are throttled per client address like the
/// console's token sign-in: past the limit even the right token waits, and `/metrics` counts too.
#[test]
fn bootstrap_token_guesses_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let (st, _, _) = m.api("GET", "/api/v1/tenants", None);
    assert_eq!(st, 200);
    for i in 0..20 {
        let path = if i % 2 == 0 {
            "/api/v1/tenants"
        } else {
            "/metrics"
        };
        let (st, _, _) = api(m.admin, &format!("guess-{i}"), "GET", path, None);
        assert_eq!(st, 401, "guess {i} on {path}");
    }
    let (st, v, _) = m.api("GET", "/api/v1/tenants", None);
    assert_eq!(st, 429, "{v}");
    assert!(v["error"]["fields"]["retry_after"].is_string(), "{v}");
    // User tokens are not guesses at it: they are checked as before.
    let (st, _, _) = api(
        m.admin,
        "rwa_not-a-real-token",
        "GET",
        "/api/v1/tenants",
        None,
    );
    assert_eq!(st, 401);
    m.shutdown();
}

/// The operator can confine a tenant's routes (hosts, path prefixes): routes outside are
/// refused naming the field; the tenant cannot change its own scope.
#[test]
fn route_scopes_confine_a_tenants_routes() {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|_| ok("x"));
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"acme"}"#),
        "id",
    );
    let v = m.ok(
        200,
        "PUT",
        &format!("/api/v1/tenants/{t}/route-scope"),
        r#"{"scopes":[{"hosts":["api.acme.com","*.acme.io"],"path_prefix":"/acme"}]}"#,
    );
    assert_eq!(v["route_scope"][0]["path_prefix"], "/acme");
    let target = up.addr.to_string();
    for (route, field) in [
        (
            json!({"path_prefix": "/other", "hosts": ["api.acme.com"]}),
            "routes[0].path_prefix",
        ),
        (json!({"path_prefix": "/acme/v1"}), "routes[0].path_prefix"),
        (
            json!({"path_prefix": "/acme/v1", "hosts": ["evil.com"]}),
            "routes[0].path_prefix",
        ),
        (
            json!({"path_prefix": "/acmeX", "hosts": ["api.acme.com"]}),
            "routes[0].path_prefix",
        ),
    ] {
        let (st, v, _) = m.api(
            "POST",
            "/api/v1/services",
            Some(&svc(&t, "x", route.clone(), &target)),
        );
        assert_eq!(
            (st, v["error"]["fields"][field].is_string()),
            (422, true),
            "{route}: {v}"
        );
    }
    m.ok(
        201,
        "POST",
        "/api/v1/services",
        &svc(
            &t,
            "in",
            json!({"path_prefix": "/acme/v1", "hosts": ["api.acme.com"]}),
            &target,
        ),
    );
    m.ok(
        201,
        "POST",
        "/api/v1/services",
        &svc(
            &t,
            "wild",
            json!({"path_exact": "/acme/x", "hosts": ["eu.acme.io"]}),
            &target,
        ),
    );
    // The tenant's own owner may not widen it.
    m.ok(201, "POST", "/api/v1/users", &json!({"tenant_id": t, "email": "o@acme.com", "password": PASSWORD_FOR_TESTS, "role": "owner"}).to_string());
    let (_, login, _) = api(
        m.admin,
        "",
        "POST",
        "/api/v1/login",
        Some(&json!({"email": "o@acme.com", "password": PASSWORD_FOR_TESTS}).to_string()),
    );
    let (st, _, _) = api(
        m.admin,
        &s(&login, "token"),
        "PUT",
        &format!("/api/v1/tenants/{t}/route-scope"),
        Some(r#"{"scopes":null}"#),
    );
    assert_eq!(st, 403);
    // Lifted: anywhere free.
    m.ok(
        200,
        "PUT",
        &format!("/api/v1/tenants/{t}/route-scope"),
        r#"{"scopes":null}"#,
    );
    m.ok(
        201,
        "POST",
        "/api/v1/services",
        &svc(&t, "free", json!({"path_prefix": "/other"}), &target),
    );
    m.shutdown();
}
