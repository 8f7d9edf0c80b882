//! Try-it: through the gateway, only for paths it routes to the service.

use super::*;

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
