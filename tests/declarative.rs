//! `export` and `apply` through the admin API: a gateway's managed state exported, applied to a
//! fresh gateway (dry run first: nothing changes), exported again (the same document), applied
//! again (nothing to do); a changed definition is replaced and a backward state refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::admin::{self, TOKEN, s};
use common::{Driver, Mock, ok};
use ringway::control::declarative::{Admin, State, apply, export};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn export_then_apply_reproduces_the_state() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = Mock::start(|_| ok("x"));
    let a = admin::start(Driver::Uring, 1, &d1.path().join("a.db"), "");
    let t = s(
        &a.ok(201, "POST", "/api/v1/tenants", r#"{"name":"acme"}"#),
        "id",
    );
    let svc = s(
        &a.ok(
            201,
            "POST",
            "/api/v1/services",
            &json!({"tenant_id": t, "name": "orders",
        "visibility": "public", "routes": [{"path_prefix": "/orders", "methods": ["GET"]}],
        "upstream": {"targets": [up.addr.to_string()], "retry": {"attempts": 1}},
        "quota": {"per_minute": 100}, "openapi": {"openapi": "3.1.0", "info": {"title": "Orders"}}})
            .to_string(),
        ),
        "id",
    );
    a.ok(200, "POST", &format!("/api/v1/services/{svc}/publish"), "");
    a.ok(
        200,
        "POST",
        &format!("/api/v1/services/{svc}/deprecate"),
        r#"{"sunset":"2031-01-01T00:00:00Z","link":"https://docs/x"}"#,
    );
    a.ok(
        201,
        "POST",
        "/api/v1/services",
        &json!({"tenant_id": t, "name": "draft",
        "routes": [{"path_exact": "/d"}], "upstream": {"targets": [up.addr.to_string()]}})
        .to_string(),
    );
    let app = s(
        &a.ok(
            201,
            "POST",
            "/api/v1/apps",
            &json!({"tenant_id": t, "name": "shop"}).to_string(),
        ),
        "id",
    );
    let sub = s(
        &a.ok(
            201,
            "POST",
            "/api/v1/subscriptions",
            &json!({"app_id": app, "service_id": svc}).to_string(),
        ),
        "id",
    );
    a.ok(
        200,
        "POST",
        &format!("/api/v1/subscriptions/{sub}/approve"),
        r#"{"quota":{"per_second":5}}"#,
    );
    let rt = rt();
    let admin_a = Admin::new(&format!("http://{}", a.admin), TOKEN);
    let doc = rt.block_on(export(&admin_a)).unwrap();
    assert_eq!(doc.tenants.len(), 1);
    let text = serde_json::to_string_pretty(&doc).unwrap();
    assert!(
        !text.contains("rw_") && !text.contains(&t),
        "no secrets, no ids: {text}"
    );

    let b = admin::start(Driver::Uring, 1, &d2.path().join("b.db"), "");
    let admin_b = Admin::new(&format!("http://{}", b.admin), TOKEN);
    let plan = rt.block_on(apply(&admin_b, &doc, true)).unwrap();
    assert!(plan.contains(&"+ tenant acme".to_string()), "{plan:?}");
    assert!(
        plan.iter()
            .any(|l| l == "> service acme/orders: deprecated"),
        "{plan:?}"
    );
    assert_eq!(
        b.api("GET", "/api/v1/tenants", None).1["items"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "dry run"
    );
    let plan = rt.block_on(apply(&admin_b, &doc, false)).unwrap();
    assert!(
        plan.iter()
            .any(|l| l.starts_with("> subscription acme/shop")),
        "{plan:?}"
    );
    let again: State = rt.block_on(export(&admin_b)).unwrap();
    assert_eq!(again, doc, "the same document");
    let plan = rt.block_on(apply(&admin_b, &doc, false)).unwrap();
    assert!(
        plan.iter().all(|l| l.starts_with('=')),
        "nothing to do: {plan:?}"
    );
    // The applied gateway serves it: the subscription's own quota came along.
    let (_, subs, _) = b.api("GET", "/api/v1/subscriptions", None);
    assert_eq!(subs["items"][0]["quota"], json!({"per_second": 5}));

    // A changed definition is replaced; a state that would go backwards is refused.
    let mut changed = doc.clone();
    changed.tenants[0].services[0]
        .definition
        .insert("approval".into(), json!("auto"));
    let plan = rt.block_on(apply(&admin_b, &changed, false)).unwrap();
    assert!(
        plan.iter().any(|l| l.starts_with("~ service acme/")),
        "{plan:?}"
    );
    let mut backwards = doc.clone();
    let orders = backwards.tenants[0]
        .services
        .iter_mut()
        .find(|s| s.name == "orders")
        .unwrap();
    orders.state = "draft".into();
    let e = rt
        .block_on(apply(&admin_b, &backwards, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot go back"), "{e}");
    a.shutdown();
    b.shutdown();
}
