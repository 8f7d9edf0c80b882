//! A gateway with its control plane (store in a temporary directory, admin API on port 0), and
//! a JSON client for the admin API over real sockets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ringway::control::{AdminToken, ControlPlane};
use ringway::{Config, Gateway, StartOptions};
use serde_json::Value;

use super::{Client, Driver, Response};

pub const TOKEN: &str = "test-admin-token-0123456789";
/// A password long enough for the admin API's rules.
pub const PASSWORD_FOR_TESTS: &str = "correct horse battery staple";

/// A running gateway and control plane on a store file that outlives them (for restarts).
pub struct Managed {
    pub g: Gateway,
    pub cp: ControlPlane,
    pub admin: SocketAddr,
    pub store: PathBuf,
}

impl Managed {
    pub fn proxy(&self) -> SocketAddr {
        self.g.local_addrs()[0]
    }

    /// Waits until every shard serves what the control plane published last.
    pub fn settle(&self) {
        let generation = self.g.control().generation();
        assert!(
            self.g
                .wait_applied(generation, std::time::Duration::from_secs(5)),
            "shards did not apply generation {generation}"
        );
    }

    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value, Response) {
        api(self.admin, TOKEN, method, path, body)
    }

    /// A call that must succeed with `status`; returns its JSON.
    pub fn ok(&self, status: u16, method: &str, path: &str, body: &str) -> Value {
        let (s, v, _) = self.api(method, path, Some(body));
        assert_eq!(s, status, "{method} {path} {body}: {v}");
        v
    }

    pub fn shutdown(self) {
        self.g.shutdown(std::time::Duration::from_secs(1));
        self.cp.shutdown();
    }
}

/// `[server]` for tests plus `extra` (upstreams, routes), with `[admin]` on port 0 and `[store]`
/// at `store`.
pub fn config(driver: Driver, workers: usize, store: &Path, extra: &str) -> Config {
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ndriver = \"{}\"\nworkers = {workers}\ntick = \"10ms\"\nshutdown_timeout = \"2s\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\nallow_loopback = true\n[store]\npath = \"{}\"\n{extra}",
        driver.name(),
        store.display()
    );
    Config::from_toml(&text).unwrap_or_else(|e| panic!("bad test config: {e}\n{text}"))
}

pub fn start(driver: Driver, workers: usize, store: &Path, extra: &str) -> Managed {
    start_config(config(driver, workers, store, extra), store)
}

pub fn start_config(config: Config, store: &Path) -> Managed {
    let g = Gateway::start(
        config.clone(),
        StartOptions {
            workers: None,
            cpus: Some(ringway::runtime::available_cpus().unwrap()),
        },
    )
    .expect("gateway start");
    let cp = ControlPlane::start(
        &config,
        g.publisher(),
        Some(AdminToken::new(TOKEN).unwrap()),
    )
    .expect("control plane start");
    let admin = cp.admin_addr().expect("admin address");
    let m = Managed {
        g,
        cp,
        admin,
        store: store.to_path_buf(),
    };
    m.settle();
    m
}

/// One admin call on a new connection: status, JSON body (Null when none), the response.
pub fn api(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Value, Response) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n");
    if !token.is_empty() {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    match body {
        Some(b) => req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => req.push_str("Content-Length: 0\r\n\r\n"),
    }
    let mut c = Client::connect(addr);
    c.send(req.as_bytes());
    let r = c.response(method == "HEAD").expect("admin response");
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v, r)
}

/// A request to the proxy with extra header lines (`"Name: value\r\n"` each).
pub fn call(proxy: SocketAddr, path: &str, headers: &str) -> Response {
    let mut c = Client::connect(proxy);
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    c.response(false).expect("response")
}

/// The string field `k` of `v`.
pub fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string {k:?} in {v}"))
        .to_string()
}

/// A published service of `tenant` at `prefix` in front of `upstream` (approval `auto`), and an
/// app of the tenant with a key and an approved subscription to it: (service, app, key).
pub fn served(
    m: &Managed,
    tenant: &str,
    prefix: &str,
    upstream: SocketAddr,
) -> (String, String, String) {
    let name = prefix.trim_matches('/').replace('/', "-");
    let svc = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/services",
            &serde_json::json!({"tenant_id": tenant, "name": name, "approval": "auto",
                    "routes": [{"path_prefix": prefix}],
                    "upstream": {"targets": [upstream.to_string()]}})
            .to_string(),
        ),
        "id",
    );
    m.ok(200, "POST", &format!("/api/v1/services/{svc}/publish"), "");
    let app = s(
        &m.ok(
            201,
            "POST",
            "/api/v1/apps",
            &serde_json::json!({"tenant_id": tenant, "name": format!("{name}-app")}).to_string(),
        ),
        "id",
    );
    let key = s(
        &m.ok(201, "POST", &format!("/api/v1/apps/{app}/keys"), "{}"),
        "key",
    );
    m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &serde_json::json!({"app_id": app, "service_id": svc}).to_string(),
    );
    m.settle();
    (svc, app, key)
}
