//! The console's side of the admin API, over real sockets: the page and its assets (embedded,
//! with a strict Content-Security-Policy on every answer), cookie sessions (flags, CSRF, expiry,
//! sign-out, the operator's sign-in), list search at scale, and try-it through the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod assets;
mod scale;
mod sessions;
mod tls;
mod tryit;

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
