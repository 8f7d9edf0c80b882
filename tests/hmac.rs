//! HMAC-signed requests on both drivers: a valid signature is served once (a replay is refused,
//! node-wide), a wrong signature, a stale date, a tampered path or body are refused, the body's
//! digest is checked whether the body came with the head or after it, and revocation applies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use base64::Engine;
use common::admin::{self, s};
use common::{Client, Driver, Mock, ok};
use serde_json::json;

struct Signer {
    key: String,
    secret: String,
}

impl Signer {
    fn sign(&self, method: &str, target: &str, date: &str, digest: &str) -> String {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.as_bytes());
        let tag = ring::hmac::sign(
            &k,
            format!("{method}\nt\n{target}\n{date}\n{digest}").as_bytes(),
        );
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "RINGWAY-HMAC-SHA256 Credential={}, Signature={hex}",
            self.key
        )
    }
}

fn now_date(offset_s: i64) -> String {
    let t = std::time::SystemTime::now();
    let t = if offset_s >= 0 {
        t + std::time::Duration::from_secs(offset_s as u64)
    } else {
        t - std::time::Duration::from_secs((-offset_s) as u64)
    };
    httpdate::fmt_http_date(t)
}

fn digest(body: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(d.as_ref())
    )
}

/// Sends a signed request; the body goes in a second write when `split`.
fn send(
    proxy: SocketAddr,
    method: &str,
    target: &str,
    headers: &str,
    body: &[u8],
    split: bool,
) -> common::Response {
    let mut c = Client::connect(proxy);
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: t\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if split {
        c.send(head.as_bytes());
        c.send(body);
    } else {
        let mut all = head.into_bytes();
        all.extend_from_slice(body);
        c.send(&all);
    }
    c.response(false).unwrap()
}

fn flow(driver: Driver) {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|r| ok(&format!("got {} bytes", r.body.len())));
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
            &json!({"tenant_id": t, "name": "h",
        "approval": "auto", "credentials": ["hmac"], "routes": [{"path_prefix": "/h"}],
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
    let c = m.ok(
        201,
        "POST",
        &format!("/api/v1/apps/{app}/credentials"),
        r#"{"kind":"hmac"}"#,
    );
    let signer = Signer {
        key: s(&c, "access_key"),
        secret: s(&c, "secret"),
    };
    assert!(signer.key.starts_with("rwh_"));
    let (_, list, _) = m.api("GET", &format!("/api/v1/apps/{app}/credentials"), None);
    assert!(
        !list.to_string().contains(&signer.secret),
        "the secret is shown once"
    );
    m.settle();

    // A GET without a body.
    let date = now_date(0);
    let auth = signer.sign("GET", "/h/x?q=1", &date, "");
    let hdrs = format!("Authorization: {auth}\r\nDate: {date}\r\n");
    let r = send(proxy, "GET", "/h/x?q=1", &hdrs, b"", false);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.seen.lock().unwrap().last().cloned().unwrap();
    assert!(seen.header("authorization").is_none());
    assert_eq!(seen.header("x-ringway-app"), Some(app.as_str()));
    // The same signature again, on a new connection (any shard): a replay.
    let r = send(proxy, "GET", "/h/x?q=1", &hdrs, b"", false);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "credential_invalid"),
        "replay"
    );

    // Refusals: tampered target, stale date, wrong secret.
    let refused = |what: &str, target: &str, auth: String, date: &str| {
        let r = send(
            proxy,
            "GET",
            target,
            &format!("Authorization: {auth}\r\nDate: {date}\r\n"),
            b"",
            false,
        );
        assert_eq!(r.status, 401, "{what}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .starts_with("RINGWAY-HMAC-SHA256"),
            "{what}"
        );
    };
    let d = now_date(0);
    refused(
        "tampered target",
        "/h/y",
        signer.sign("GET", "/h/x", &d, ""),
        &d,
    );
    let old = now_date(-600);
    refused(
        "stale date",
        "/h/x",
        signer.sign("GET", "/h/x", &old, ""),
        &old,
    );
    let wrong = Signer {
        key: signer.key.clone(),
        secret: "not the secret".into(),
    };
    refused(
        "wrong secret",
        "/h/x",
        wrong.sign("GET", "/h/x", &d, ""),
        &d,
    );

    // Bodies: with the head and after it; a wrong digest; chunked; too large.
    for (i, split) in [false, true].into_iter().enumerate() {
        let body = format!("{{\"order\": {i}, \"pad\": \"{}\"}}", "x".repeat(3000));
        let date = now_date(0);
        let dg = digest(body.as_bytes());
        let auth = signer.sign("POST", "/h/orders", &date, &dg);
        let hdrs = format!("Authorization: {auth}\r\nDate: {date}\r\nContent-Digest: {dg}\r\n");
        let r = send(proxy, "POST", "/h/orders", &hdrs, body.as_bytes(), split);
        assert_eq!(r.status, 200, "split={split}: {}", r.text());
        assert_eq!(r.text(), format!("got {} bytes", body.len()));
    }
    let date = now_date(0);
    let dg = digest(b"the body that was signed");
    let auth = signer.sign("POST", "/h/orders", &date, &dg);
    let hdrs = format!("Authorization: {auth}\r\nDate: {date}\r\nContent-Digest: {dg}\r\n");
    assert_eq!(
        send(
            proxy,
            "POST",
            "/h/orders",
            &hdrs,
            b"another body, same length!",
            false
        )
        .status,
        401
    );
    let mut cl = Client::connect(proxy);
    cl.send(format!("POST /h/orders HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nDate: {date}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n").as_bytes());
    let r = cl.response(false).unwrap();
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (411, "length_required")
    );
    let big = vec![b'a'; 40 * 1024];
    let dg = digest(&big);
    let auth = signer.sign("POST", "/h/orders", &date, &dg);
    let hdrs = format!("Authorization: {auth}\r\nDate: {date}\r\nContent-Digest: {dg}\r\n");
    assert_eq!(
        send(proxy, "POST", "/h/orders", &hdrs, &big, false).status,
        413
    );

    // Waiting for 100-continue with a body not yet sent: 417, the client sends it without.
    let date = now_date(0);
    let dg = digest(b"body");
    let auth = signer.sign("POST", "/h/orders", &date, &dg);
    let mut cl = Client::connect(proxy);
    cl.send(format!("POST /h/orders HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nDate: {date}\r\nContent-Digest: {dg}\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(cl.response(false).unwrap().status, 417);
    // A signature next to another credential is ambiguous: refused.
    let date = now_date(0);
    let auth = signer.sign("GET", "/h/two", &date, "");
    let r = send(
        proxy,
        "GET",
        "/h/two",
        &format!(
            "Authorization: {auth}\r\nAuthorization: Bearer rw_{}\r\nDate: {date}\r\n",
            "A".repeat(43)
        ),
        b"",
        false,
    );
    assert_eq!(r.status, 401);
    // The Host is signed: the same request sent to another host does not verify.
    let date = now_date(0);
    let auth = signer.sign("GET", "/h/host", &date, "");
    let mut cl = Client::connect(proxy);
    cl.send(format!("GET /h/host HTTP/1.1\r\nHost: elsewhere\r\nAuthorization: {auth}\r\nDate: {date}\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(cl.response(false).unwrap().status, 401);

    // Revoked: refused.
    let cid = s(&c, "id");
    m.ok(
        200,
        "POST",
        &format!("/api/v1/apps/{app}/credentials/{cid}/revoke"),
        "",
    );
    m.settle();
    let date = now_date(0);
    let auth = signer.sign("GET", "/h/z", &date, "");
    assert_eq!(
        send(
            proxy,
            "GET",
            "/h/z",
            &format!("Authorization: {auth}\r\nDate: {date}\r\n"),
            b"",
            false
        )
        .status,
        401
    );
    m.shutdown();
}
both_drivers!(hmac_signed_requests, flow);
