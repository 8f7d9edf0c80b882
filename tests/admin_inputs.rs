//! Every admin endpoint that takes a body refuses bad input with a 4xx that names the field:
//! malformed JSON, unknown fields, wrong types, missing fields, oversize bodies, a wrong
//! content type. Nothing is created by any of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::admin::{self, s};
use common::{Driver, Mock, ok};
use serde_json::json;

#[test]
fn every_body_is_checked_and_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|_| ok("x"));
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"t"}"#),
        "id",
    );
    let svc = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &json!({"tenant_id": t, "name": "s",
        "routes": [{"path_prefix": "/s"}], "upstream": {"targets": [up.addr.to_string()]}})
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
    let uid = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/users",
            &json!({"tenant_id": t, "email": "existing@example.com", "password": "long enough password", "role": "viewer"}).to_string(),
        ),
        "id",
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
    let audit_before = m.api("GET", "/api/v1/audit?limit=500", None).1["items"]
        .as_array()
        .unwrap()
        .len();

    // (method, path, a valid body, a required field to leave out, a field given the wrong type).
    let endpoints: Vec<(&str, String, serde_json::Value, Option<&str>, &str)> = vec![
        (
            "POST",
            "/api/v1/tenants".into(),
            json!({"name": "n"}),
            Some("name"),
            "name",
        ),
        (
            "POST",
            "/api/v1/services".into(),
            json!({"tenant_id": t, "name": "n", "routes": [{"path_prefix": "/n"}], "upstream": {"targets": [up.addr.to_string()]}}),
            Some("routes"),
            "visibility",
        ),
        (
            "PUT",
            format!("/api/v1/services/{svc}"),
            json!({"name": "n", "routes": [{"path_prefix": "/n"}], "upstream": {"targets": [up.addr.to_string()]}}),
            Some("upstream"),
            "approval",
        ),
        (
            "POST",
            format!("/api/v1/services/{svc}/deprecate"),
            json!({}),
            None,
            "sunset",
        ),
        (
            "POST",
            "/api/v1/apps".into(),
            json!({"tenant_id": t, "name": "n"}),
            Some("tenant_id"),
            "name",
        ),
        (
            "POST",
            format!("/api/v1/apps/{app}/keys"),
            json!({}),
            None,
            "expires_at",
        ),
        (
            "POST",
            format!("/api/v1/apps/{app}/credentials"),
            json!({"kind": "jwt", "issuer": "i", "algorithm": "HS256", "secret": "x".repeat(40)}),
            Some("issuer"),
            "audience",
        ),
        (
            "POST",
            "/api/v1/subscriptions".into(),
            json!({"app_id": app, "service_id": svc}),
            Some("service_id"),
            "app_id",
        ),
        (
            "POST",
            format!("/api/v1/subscriptions/{sub}/approve"),
            json!({}),
            None,
            "quota",
        ),
        (
            "POST",
            format!("/api/v1/subscriptions/{sub}/reject"),
            json!({}),
            None,
            "reason",
        ),
        (
            "POST",
            "/api/v1/users".into(),
            json!({"tenant_id": t, "email": "u@example.com", "password": "long enough password", "role": "viewer"}),
            Some("role"),
            "email",
        ),
        (
            "POST",
            "/api/v1/login".into(),
            json!({"email": "u@example.com", "password": "x"}),
            Some("password"),
            "email",
        ),
        (
            "PATCH",
            format!("/api/v1/users/{uid}"),
            json!({"role": "viewer"}),
            Some("role"),
            "role",
        ),
        (
            "POST",
            format!("/api/v1/users/{uid}/password"),
            json!({"password": "a long new password"}),
            Some("password"),
            "current",
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            json!({"name": "n", "scopes": ["read"]}),
            Some("name"),
            "expires_in_days",
        ),
        (
            "POST",
            format!("/api/v1/apps/{app}/credentials"),
            json!({"kind": "basic", "username": "u", "password": "long enough password"}),
            Some("kind"),
            "username",
        ),
    ];
    for (method, path, valid, required, typed) in &endpoints {
        let at = format!("{method} {path}");
        // Malformed JSON: 400, the body named.
        for bad in ["{", "{\"name\": }", "[1,2", "nul"] {
            let (st, v, _) = m.api(method, path, Some(bad));
            assert_eq!(
                (st, v["error"]["code"].as_str()),
                (400, Some("bad_json")),
                "{at} {bad}: {v}"
            );
            assert!(v["error"]["fields"]["body"].is_string(), "{at}: {v}");
        }
        // Not an object at all.
        let (st, v, _) = m.api(method, path, Some("[1]"));
        assert_eq!(st, 422, "{at}: {v}");
        // An unknown field, named.
        let mut extra = valid.clone();
        extra["bogus_field"] = json!(1);
        let (st, v, _) = m.api(method, path, Some(&extra.to_string()));
        assert_eq!(st, 422, "{at}: {v}");
        assert!(v["error"]["fields"]["bogus_field"].is_string(), "{at}: {v}");
        // A missing required field, named.
        if let Some(f) = required {
            let mut missing = valid.clone();
            missing.as_object_mut().unwrap().remove(*f);
            let (st, v, _) = m.api(method, path, Some(&missing.to_string()));
            assert_eq!(st, 422, "{at} without {f}: {v}");
            assert!(
                v["error"]["fields"][*f].is_string(),
                "{at} without {f}: {v}"
            );
        }
        // A wrong type, named.
        let mut wrong = valid.clone();
        wrong[*typed] = json!([true]);
        let (st, v, _) = m.api(method, path, Some(&wrong.to_string()));
        assert!(st == 422 || st == 400, "{at} {typed}: {st} {v}");
        let named = v["error"]["fields"]
            .as_object()
            .is_some_and(|f| f.keys().any(|k| k.starts_with(*typed)));
        assert!(named, "{at} {typed}: {v}");
        // Oversize: 413.
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
        let (st, v, _) = m.api(method, path, Some(&big));
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (413, Some("body_too_large")),
            "{at}"
        );
        // A declared content type that is not JSON: 415.
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            admin::TOKEN
        );
        let r = common::raw_request(m.admin, req.as_bytes()).unwrap();
        assert_eq!(r.status, 415, "{at}");
    }
    // Query strings are checked too.
    let (st, v, _) = m.api("GET", "/api/v1/apps?limit=0", None);
    assert_eq!((st, v["error"]["fields"]["limit"].is_string()), (422, true));
    let (st, _, _) = m.api("GET", "/api/v1/apps?bogus=1", None);
    assert_eq!(st, 400, "an unknown query parameter");
    let (st, v, _) = m.api("GET", "/api/v1/apps?tenant_id=x&state=y", None);
    assert_eq!((st, v["error"]["fields"]["state"].is_string()), (422, true));
    // Unknown endpoints and methods answer in the same JSON shape.
    let (st, v, _) = m.api("GET", "/api/v1/nothing", None);
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (st, v, _) = m.api("DELETE", "/api/v1/tenants", None);
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // None of it changed anything.
    let audit_after = m.api("GET", "/api/v1/audit?limit=500", None).1["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(audit_before, audit_after);
    m.shutdown();
}
