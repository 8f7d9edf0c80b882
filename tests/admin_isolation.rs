//! Tenant isolation and roles in the admin API, endpoint by endpoint, through real sockets: a
//! user of another tenant gets 404 for every object of this one (public services excepted, which
//! it may read and subscribe to), lists never show it what is not its own, and within a tenant
//! each role and token scope may do what its docs say and no more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::admin::{self, Managed, api, s};
use common::{Driver, IO_TIMEOUT, Mock, ok, read_response};
use serde_json::{Value, json};

struct World {
    m: Managed,
    _dir: tempfile::TempDir,
    _up: Mock,
    a: String,
    b: String,
    /// Tokens by role, tenant A; and B's owner.
    tok: std::collections::HashMap<&'static str, String>,
    private_svc: String,
    public_svc: String,
    app: String,
    key_id: String,
    cred_id: String,
    sub: String,
    a_user: String,
}

const PASSWORD: &str = "correct horse battery staple";

fn login(m: &Managed, email: &str) -> String {
    let (st, v, _) = api(
        m.admin,
        "",
        "POST",
        "/api/v1/login",
        Some(&json!({"email": email, "password": PASSWORD}).to_string()),
    );
    assert_eq!(st, 201, "{v}");
    s(&v, "token")
}

fn world() -> World {
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
    let mut tok = std::collections::HashMap::new();
    let mut a_user = String::new();
    for (tenant, role, name) in [
        (&a, "owner", "a-owner"),
        (&a, "admin", "a-admin"),
        (&a, "developer", "a-developer"),
        (&a, "viewer", "a-viewer"),
        (&b, "owner", "b-owner"),
    ] {
        let email = format!("{name}@example.com");
        let u = m.ok(
            201,
            "POST",
            "/api/v1/users",
            &json!({"tenant_id": tenant, "email": email, "password": PASSWORD, "role": role})
                .to_string(),
        );
        assert!(u.get("password_hash").is_none() && !u.to_string().contains("argon2"));
        if name == "a-viewer" {
            a_user = s(&u, "id");
        }
        tok.insert(name, login(&m, &email));
    }
    let svc = |name: &str, visibility: &str, path: &str| {
        json!({"tenant_id": a, "name": name, "visibility": visibility, "approval": "manual",
               "routes": [{"path_prefix": path}], "upstream": {"targets": [up.addr.to_string()]},
               "openapi": {"openapi": "3.1.0"}})
        .to_string()
    };
    let private_svc = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &svc("private", "private", "/p"),
        ),
        "id",
    );
    let public_svc = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &svc("public", "public", "/q"),
        ),
        "id",
    );
    m.ok(
        200,
        "POST",
        &format!("/api/v1/services/{public_svc}/publish"),
        "",
    );
    let app = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/apps",
            &json!({"tenant_id": a, "name": "app"}).to_string(),
        ),
        "id",
    );
    let key_id = s(
        &m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}"),
        "id",
    );
    let cred_id = s(
        &m.ok(
            201,
            "POST",
            &format!("/api/v1/apps/{app}/credentials"),
            r#"{"kind":"hmac"}"#,
        ),
        "id",
    );
    let sub = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/subscriptions",
            &json!({"app_id": app, "service_id": private_svc}).to_string(),
        ),
        "id",
    );
    World {
        m,
        _dir: dir,
        _up: up,
        a,
        b,
        tok,
        private_svc,
        public_svc,
        app,
        key_id,
        cred_id,
        sub,
        a_user,
    }
}

fn call(w: &World, who: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (st, v, _) = api(w.m.admin, &w.tok[who], method, path, body.as_deref());
    (st, v)
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| s(i, "id"))
        .collect()
}

#[test]
fn another_tenant_sees_none_of_this_ones_objects() {
    let w = world();
    let (p, q, app, sub) = (&w.private_svc, &w.public_svc, &w.app, &w.sub);
    let a_token_id = {
        let (st, v) = call(&w, "a-viewer", "GET", "/api/v1/tokens", None);
        assert_eq!(st, 200);
        s(&v["items"][0], "id")
    };
    let any = json!({});
    // Every endpoint that names an object of tenant A, as tenant B's owner: 404.
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/v1/tenants/{}", w.a), None),
        (
            "POST",
            "/api/v1/services".into(),
            Some(
                json!({"tenant_id": w.a, "name": "x", "routes": [{"path_prefix": "/x"}], "upstream": {"targets": ["127.0.0.1:1"]}}),
            ),
        ),
        ("GET", format!("/api/v1/services/{p}"), None),
        ("GET", format!("/api/v1/services/{p}/openapi.json"), None),
        (
            "POST",
            format!("/api/v1/services/{p}/publish"),
            Some(any.clone()),
        ),
        (
            "POST",
            format!("/api/v1/services/{p}/deprecate"),
            Some(any.clone()),
        ),
        (
            "POST",
            format!("/api/v1/services/{p}/retire"),
            Some(any.clone()),
        ),
        (
            "POST",
            format!("/api/v1/services/{q}/deprecate"),
            Some(any.clone()),
        ),
        (
            "POST",
            format!("/api/v1/services/{q}/retire"),
            Some(any.clone()),
        ),
        (
            "POST",
            "/api/v1/apps".into(),
            Some(json!({"tenant_id": w.a, "name": "x"})),
        ),
        ("GET", format!("/api/v1/apps/{app}"), None),
        (
            "POST",
            format!("/api/v1/apps/{app}/keys"),
            Some(any.clone()),
        ),
        ("GET", format!("/api/v1/apps/{app}/keys"), None),
        (
            "POST",
            format!("/api/v1/apps/{app}/keys/{}/revoke", w.key_id),
            Some(any.clone()),
        ),
        (
            "POST",
            "/api/v1/subscriptions".into(),
            Some(json!({"app_id": app, "service_id": q})),
        ),
        ("GET", format!("/api/v1/subscriptions/{sub}"), None),
        (
            "POST",
            format!("/api/v1/subscriptions/{sub}/approve"),
            Some(any.clone()),
        ),
        (
            "POST",
            format!("/api/v1/subscriptions/{sub}/reject"),
            Some(any.clone()),
        ),
        (
            "POST",
            format!("/api/v1/subscriptions/{sub}/revoke"),
            Some(any.clone()),
        ),
        (
            "POST",
            format!("/api/v1/subscriptions/{sub}/cancel"),
            Some(any.clone()),
        ),
        (
            "POST",
            "/api/v1/users".into(),
            Some(
                json!({"tenant_id": w.a, "email": "x@example.com", "password": PASSWORD, "role": "viewer"}),
            ),
        ),
        ("GET", format!("/api/v1/users/{}", w.a_user), None),
        (
            "POST",
            format!("/api/v1/tokens/{a_token_id}/revoke"),
            Some(any.clone()),
        ),
        (
            "PUT",
            format!("/api/v1/services/{p}"),
            Some(
                json!({"name": "x", "routes": [{"path_prefix": "/x"}], "upstream": {"targets": ["127.0.0.1:1"]}}),
            ),
        ),
        (
            "PUT",
            format!("/api/v1/services/{q}"),
            Some(
                json!({"name": "x", "routes": [{"path_prefix": "/x"}], "upstream": {"targets": ["127.0.0.1:1"]}}),
            ),
        ),
        ("GET", format!("/api/v1/apps/{app}/credentials"), None),
        (
            "POST",
            format!("/api/v1/apps/{app}/credentials"),
            Some(json!({"kind": "hmac"})),
        ),
        (
            "POST",
            format!("/api/v1/apps/{app}/credentials/{}/revoke", w.cred_id),
            Some(any.clone()),
        ),
        (
            "POST",
            format!("/api/v1/services/{p}/try"),
            Some(json!({"method": "GET", "path": "/p"})),
        ),
        (
            "PATCH",
            format!("/api/v1/users/{}", w.a_user),
            Some(json!({"role": "admin"})),
        ),
        (
            "POST",
            format!("/api/v1/users/{}/disable", w.a_user),
            Some(any.clone()),
        ),
        (
            "POST",
            format!("/api/v1/users/{}/password", w.a_user),
            Some(json!({"password": "taken over password"})),
        ),
        (
            "PUT",
            format!("/api/v1/apps/{app}/ai-limits"),
            Some(json!({"requests_per_minute": 1})),
        ),
        ("DELETE", format!("/api/v1/apps/{app}/ai-limits"), None),
        (
            "PUT",
            format!("/api/v1/tenants/{}/ai-limits", w.a),
            Some(json!({"requests_per_minute": 1})),
        ),
        ("DELETE", format!("/api/v1/tenants/{}/ai-limits", w.a), None),
        ("DELETE", format!("/api/v1/apps/{app}"), None),
        ("DELETE", format!("/api/v1/services/{p}"), None),
        ("DELETE", format!("/api/v1/services/{q}"), None),
        ("DELETE", format!("/api/v1/tenants/{}", w.a), None),
        (
            "PUT",
            format!("/api/v1/tenants/{}/route-scope", w.a),
            Some(json!({"scopes": null})),
        ),
    ];
    for (method, path, body) in &cases {
        let (st, v) = call(&w, "b-owner", method, path, body.as_ref());
        assert_eq!(st, 404, "{method} {path}: {v}");
        assert!(v["error"]["code"].is_string(), "{method} {path}: {v}");
    }
    // Nothing changed through any of them.
    let (st, v, _) =
        w.m.api("GET", &format!("/api/v1/subscriptions/{sub}"), None);
    assert_eq!((st, v["state"].as_str()), (200, Some("pending")));
    let (_, v, _) = w.m.api("GET", &format!("/api/v1/services/{q}"), None);
    assert_eq!(v["state"], "published");

    // Lists: only B's own, and A's public published service.
    for list in [
        "/api/v1/tenants",
        "/api/v1/tenants?q=a",
        "/api/v1/apps",
        "/api/v1/apps?q=app",
        "/api/v1/subscriptions",
        "/api/v1/subscriptions?side=provider",
        "/api/v1/subscriptions?side=consumer",
        "/api/v1/users",
        "/api/v1/users?q=a-",
        "/api/v1/audit?limit=500",
        "/api/v1/audit?limit=500&order=desc",
        "/api/v1/services?q=private",
        "/api/v1/services?visibility=private",
    ] {
        let (st, v) = call(&w, "b-owner", "GET", list, None);
        assert_eq!(st, 200, "{list}: {v}");
        let text = v.to_string();
        for secret in [&w.a, app, sub, p, &w.a_user] {
            assert!(
                !text.contains(secret.as_str()),
                "{list} shows {secret}: {text}"
            );
        }
    }
    let (_, v) = call(&w, "b-owner", "GET", "/api/v1/services", None);
    assert_eq!(ids(&v), vec![q.clone()], "only the public one");
    let (st, _) = call(&w, "b-owner", "GET", &format!("/api/v1/services/{q}"), None);
    assert_eq!(st, 200, "a public service is readable");
    let (st, _) = call(
        &w,
        "b-owner",
        "GET",
        &format!("/api/v1/services/{q}/openapi.json"),
        None,
    );
    assert_eq!(st, 200, "and so is its OpenAPI document");

    // B may subscribe its own app to A's public service, not approve it: that is A's.
    let bapp = s(
        &call(
            &w,
            "b-owner",
            "POST",
            "/api/v1/apps",
            Some(&json!({"tenant_id": w.b, "name": "b"})),
        )
        .1,
        "id",
    );
    let (st, v) = call(
        &w,
        "b-owner",
        "POST",
        "/api/v1/subscriptions",
        Some(&json!({"app_id": bapp, "service_id": p})),
    );
    assert_eq!(st, 404, "a private service is not subscribable: {v}");
    let (st, v) = call(
        &w,
        "b-owner",
        "POST",
        "/api/v1/subscriptions",
        Some(&json!({"app_id": bapp, "service_id": q})),
    );
    assert_eq!((st, v["state"].as_str()), (201, Some("pending")), "{v}");
    let bsub = s(&v, "id");
    let (st, v) = call(
        &w,
        "b-owner",
        "POST",
        &format!("/api/v1/subscriptions/{bsub}/approve"),
        Some(&any),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (st, _) = call(
        &w,
        "a-admin",
        "GET",
        &format!("/api/v1/subscriptions/{bsub}"),
        None,
    );
    assert_eq!(st, 200, "the service's tenant sees subscriptions to it");
    let (st, v) = call(
        &w,
        "a-admin",
        "POST",
        &format!("/api/v1/subscriptions/{bsub}/approve"),
        Some(&any),
    );
    assert_eq!(st, 200, "{v}");
    let (st, _) = call(
        &w,
        "a-admin",
        "POST",
        &format!("/api/v1/subscriptions/{bsub}/cancel"),
        Some(&any),
    );
    assert_eq!(st, 403, "cancelling is the app's tenant's");
    // Each side sees the subscription in its audit log; the other side's people stay unnamed.
    let (_, audit) = call(
        &w,
        "b-owner",
        "GET",
        &format!("/api/v1/audit?object_id={bsub}"),
        None,
    );
    let rows: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (s(a, "action"), s(a, "actor")))
        .collect();
    assert!(
        rows.contains(&("subscription.approved".into(), "another tenant".into())),
        "{rows:?}"
    );
    let (_, audit) = call(
        &w,
        "a-admin",
        "GET",
        &format!("/api/v1/audit?object_id={bsub}"),
        None,
    );
    let rows: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (s(a, "action"), s(a, "actor")))
        .collect();
    assert!(
        rows.contains(&("subscription.create".into(), "another tenant".into())),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|(a, who)| a == "subscription.approved" && who.starts_with("user:")),
        "{rows:?}"
    );
    let (st, _) = call(
        &w,
        "b-owner",
        "POST",
        &format!("/api/v1/subscriptions/{bsub}/cancel"),
        Some(&any),
    );
    assert_eq!(st, 200);
    w.m.shutdown();
}

#[test]
fn roles_and_scopes_allow_what_they_say() {
    let w = world();
    let a = &w.a;
    let any = json!({});
    let new_app = |n: &str| json!({"tenant_id": a, "name": n});
    let new_svc = |n: &str| json!({"tenant_id": a, "name": n, "routes": [{"path_prefix": format!("/{n}")}], "upstream": {"targets": ["127.0.0.1:1"]}});
    // Viewer: reads only.
    assert_eq!(call(&w, "a-viewer", "GET", "/api/v1/apps", None).0, 200);
    assert_eq!(
        call(&w, "a-viewer", "POST", "/api/v1/apps", Some(&new_app("v"))).0,
        403
    );
    assert_eq!(
        call(
            &w,
            "a-viewer",
            "POST",
            &format!("/api/v1/apps/{}/keys", w.app),
            Some(&any)
        )
        .0,
        403
    );
    // Developer: builds drafts, does not govern.
    assert_eq!(
        call(
            &w,
            "a-developer",
            "POST",
            "/api/v1/apps",
            Some(&new_app("d"))
        )
        .0,
        201
    );
    let (st, v) = call(
        &w,
        "a-developer",
        "POST",
        "/api/v1/services",
        Some(&new_svc("dev")),
    );
    assert_eq!(st, 201, "{v}");
    let dev_svc = s(&v, "id");
    assert_eq!(
        call(
            &w,
            "a-developer",
            "POST",
            &format!("/api/v1/services/{dev_svc}/publish"),
            Some(&any)
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &w,
            "a-developer",
            "POST",
            &format!("/api/v1/subscriptions/{}/approve", w.sub),
            Some(&any)
        )
        .0,
        403
    );
    assert_eq!(call(&w, "a-developer", "POST", "/api/v1/users", Some(&json!({"tenant_id": a, "email": "n@example.com", "password": PASSWORD, "role": "viewer"}))).0, 403);
    // Admin: governs and manages users, but makes no owners.
    assert_eq!(
        call(
            &w,
            "a-admin",
            "POST",
            &format!("/api/v1/services/{dev_svc}/publish"),
            Some(&any)
        )
        .0,
        200
    );
    assert_eq!(
        call(
            &w,
            "a-admin",
            "POST",
            &format!("/api/v1/subscriptions/{}/approve", w.sub),
            Some(&any)
        )
        .0,
        200
    );
    assert_eq!(call(&w, "a-admin", "POST", "/api/v1/users", Some(&json!({"tenant_id": a, "email": "n@example.com", "password": PASSWORD, "role": "developer"}))).0, 201);
    assert_eq!(call(&w, "a-admin", "POST", "/api/v1/users", Some(&json!({"tenant_id": a, "email": "o@example.com", "password": PASSWORD, "role": "owner"}))).0, 403);
    assert_eq!(call(&w, "a-owner", "POST", "/api/v1/users", Some(&json!({"tenant_id": a, "email": "o@example.com", "password": PASSWORD, "role": "owner"}))).0, 201);
    // Roles change through PATCH: admins move non-owners, only owners touch owners.
    let (_, users, _) = w.m.api(
        "GET",
        &format!("/api/v1/users?tenant_id={a}&limit=50"),
        None,
    );
    let id_of = |email: &str| {
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .map(|u| s(u, "id"))
            .unwrap()
    };
    let (dev, owner) = (
        id_of("a-developer@example.com"),
        id_of("a-owner@example.com"),
    );
    assert_eq!(
        call(
            &w,
            "a-developer",
            "PATCH",
            &format!("/api/v1/users/{dev}"),
            Some(&json!({"role": "admin"}))
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &w,
            "a-admin",
            "PATCH",
            &format!("/api/v1/users/{owner}"),
            Some(&json!({"role": "viewer"}))
        )
        .0,
        403
    );
    let (st, v) = call(
        &w,
        "a-admin",
        "PATCH",
        &format!("/api/v1/users/{dev}"),
        Some(&json!({"role": "viewer"})),
    );
    assert_eq!((st, v["role"].as_str()), (200, Some("viewer")), "{v}");
    assert_eq!(
        call(
            &w,
            "a-developer",
            "POST",
            "/api/v1/apps",
            Some(&new_app("demoted"))
        )
        .0,
        403,
        "the new role applies at once"
    );
    // The operator's console sessions are the operator's alone, to see and to end.
    for who in ["a-owner", "a-admin", "a-viewer"] {
        assert_eq!(
            call(&w, who, "GET", "/api/v1/sessions", None).0,
            403,
            "{who}"
        );
        assert_eq!(
            call(
                &w,
                who,
                "POST",
                "/api/v1/sessions/ses_x/revoke",
                Some(&json!({}))
            )
            .0,
            403,
            "{who}"
        );
    }
    // Tenants are the operator's to make.
    assert_eq!(
        call(
            &w,
            "a-owner",
            "POST",
            "/api/v1/tenants",
            Some(&json!({"name": "c"}))
        )
        .0,
        403
    );
    // A read-only personal token reads and does nothing else, and cannot mint a write token.
    let (st, v) = call(
        &w,
        "a-owner",
        "POST",
        "/api/v1/tokens",
        Some(&json!({"name": "ci", "scopes": ["read"], "expires_in_days": 7})),
    );
    assert_eq!(st, 201, "{v}");
    let ro = s(&v, "token");
    assert!(ro.starts_with("rwa_"));
    let (st, _, _) = api(w.m.admin, &ro, "GET", "/api/v1/apps", None);
    assert_eq!(st, 200);
    let (st, v, _) = api(
        w.m.admin,
        &ro,
        "POST",
        "/api/v1/apps",
        Some(&new_app("ro").to_string()),
    );
    assert_eq!(st, 403, "{v}");
    let (st, _, _) = api(
        w.m.admin,
        &ro,
        "POST",
        "/api/v1/tokens",
        Some(&json!({"name": "w", "scopes": ["read", "write"]}).to_string()),
    );
    assert_eq!(st, 403);
    // Listed without the token; revoked, it stops working.
    let (_, list) = call(&w, "a-owner", "GET", "/api/v1/tokens", None);
    assert!(!list.to_string().contains(&ro[12..]));
    let ro_id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "personal")
        .map(|t| s(t, "id"))
        .unwrap();
    assert_eq!(
        call(
            &w,
            "a-owner",
            "POST",
            &format!("/api/v1/tokens/{ro_id}/revoke"),
            Some(&any)
        )
        .0,
        200
    );
    assert_eq!(api(w.m.admin, &ro, "GET", "/api/v1/apps", None).0, 401);
    // Logout ends a session.
    assert_eq!(
        call(&w, "a-viewer", "POST", "/api/v1/logout", Some(&any)).0,
        204
    );
    assert_eq!(call(&w, "a-viewer", "GET", "/api/v1/me", None).0, 401);
    w.m.shutdown();
}

#[test]
fn logins_are_throttled_and_unauthenticated_calls_refused() {
    let w = world();
    let bad = json!({"email": "a-owner@example.com", "password": "wrong password!!"}).to_string();
    for _ in 0..5 {
        let (st, _, _) = api(w.m.admin, "", "POST", "/api/v1/login", Some(&bad));
        assert_eq!(st, 401);
    }
    let good = json!({"email": "a-owner@example.com", "password": PASSWORD}).to_string();
    let (st, v, _) = api(w.m.admin, "", "POST", "/api/v1/login", Some(&good));
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (429, Some("too_many_attempts")),
        "{v}"
    );
    // The account itself is not locked for its owner signing in from elsewhere (127.0.0.2
    // here: another loopback address, another client).
    let elsewhere = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(
            &"127.0.0.2:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        s.connect(&w.m.admin.into()).unwrap();
        let mut s: std::net::TcpStream = s.into();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        std::io::Write::write_all(
            &mut s,
            format!(
                "POST /api/v1/login HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{good}",
                good.len()
            )
            .as_bytes(),
        )
        .unwrap();
        read_response(&mut std::io::BufReader::new(s), false).unwrap()
    };
    assert_eq!(elsewhere.status, 201, "{}", elsewhere.text());
    // Another account from the same client is not locked by it.
    let other = json!({"email": "b-owner@example.com", "password": PASSWORD}).to_string();
    assert_eq!(
        api(w.m.admin, "", "POST", "/api/v1/login", Some(&other)).0,
        201
    );
    // An unknown email answers like a wrong password.
    let unknown = json!({"email": "nobody@example.com", "password": PASSWORD}).to_string();
    let (st, v, _) = api(w.m.admin, "", "POST", "/api/v1/login", Some(&unknown));
    assert_eq!(
        (st, v["error"]["message"].as_str()),
        (401, Some("wrong email or password"))
    );
    // No token, a wrong token, a data-plane key: 401 everywhere. Every presented token that is
    // not a user token is a guess at the bootstrap token: past 20 from this address, 429.
    let mut guesses = 0;
    for token in [
        "",
        "rwa_not-a-token",
        "rw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "wrong-bootstrap-token!",
    ] {
        for (method, path) in [
            ("GET", "/api/v1/tenants"),
            ("POST", "/api/v1/tenants"),
            ("GET", "/api/v1/services"),
            ("POST", "/api/v1/services"),
            ("GET", "/api/v1/apps"),
            ("GET", "/api/v1/subscriptions"),
            ("GET", "/api/v1/audit"),
            ("GET", "/api/v1/users"),
            ("GET", "/api/v1/me"),
            ("GET", "/api/v1/tokens"),
            ("GET", "/api/v1/sessions"),
            ("POST", "/api/v1/sessions/ses_x/revoke"),
            ("GET", "/api/v1/openapi.json"),
        ] {
            let (st, v, _) = api(w.m.admin, token, method, path, Some("{}"));
            if path == "/api/v1/openapi.json" {
                // The document describes the API; it holds no tenant's data.
                assert_eq!(st, 200);
                continue;
            }
            if !token.is_empty() && !token.starts_with("rwa_") {
                guesses += 1;
            }
            let want = if guesses > 20 {
                (429, Some("too_many_attempts"))
            } else {
                (401, Some("unauthorized"))
            };
            assert_eq!(
                (st, v["error"]["code"].as_str()),
                want,
                "{token} {method} {path}"
            );
        }
    }
    w.m.shutdown();
}
