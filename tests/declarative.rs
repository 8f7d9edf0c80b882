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
    a.ok(
        200,
        "PUT",
        &format!("/api/v1/tenants/{t}/route-scope"),
        r#"{"scopes":[{"path_prefix":"/"}]}"#,
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

/// The CLI: `ringway export` writes the document, `ringway apply --dry-run` prints the plan and
/// changes nothing, `ringway apply` applies it; `ringway check` describes the control plane.
#[test]
fn the_cli_exports_and_applies() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = Mock::start(|_| ok("x"));
    let a = admin::start(Driver::Uring, 1, &d1.path().join("a.db"), "");
    let t = s(
        &a.ok(201, "POST", "/api/v1/tenants", r#"{"name":"cli"}"#),
        "id",
    );
    a.ok(
        201,
        "POST",
        "/api/v1/services",
        &json!({"tenant_id": t, "name": "s",
        "routes": [{"path_prefix": "/s"}], "upstream": {"targets": [up.addr.to_string()]}})
        .to_string(),
    );
    let file = d1.path().join("state.json");
    let bin = env!("CARGO_BIN_EXE_ringway");
    let run = |args: &[&str], admin: std::net::SocketAddr| {
        std::process::Command::new(bin)
            .args(args)
            .arg("--admin")
            .arg(format!("http://{admin}"))
            .env("RINGWAY_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let out = run(&["export", "-o", file.to_str().unwrap()], a.admin);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: State = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc.tenants[0].name, "cli");
    let b = admin::start(Driver::Uring, 1, &d2.path().join("b.db"), "");
    let out = run(&["apply", file.to_str().unwrap(), "--dry-run"], b.admin);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("+ tenant cli") && text.contains("dry run"),
        "{text}"
    );
    assert_eq!(
        b.api("GET", "/api/v1/tenants", None).1["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let out = run(&["apply", file.to_str().unwrap()], b.admin);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("change(s) made"),
        "{text}"
    );
    assert_eq!(
        b.api("GET", "/api/v1/tenants", None).1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A wrong token is a clear failure, not a plan.
    let out = std::process::Command::new(bin)
        .args(["export", "--admin", &format!("http://{}", b.admin)])
        .env("RINGWAY_ADMIN_TOKEN", "not-the-token-0123456789")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.shutdown();
    b.shutdown();
}

#[test]
fn check_describes_the_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"0.0.0.0:9999\"\n[store]\npath = \"x.db\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringway"))
        .args(["check", "--config", cfg.to_str().unwrap()])
        .env_remove("RINGWAY_ADMIN_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("control plane: store"), "{text}");
    assert!(text.contains("NOT loopback"), "{text}");
    assert!(text.contains("no bootstrap token"), "{text}");
}
