//! Durability and concurrency of the store through the admin API of the real binary: writers
//! create objects while the process is killed with SIGKILL; after a restart every acknowledged
//! write is there, nothing that was never sent is, and SQLite's integrity check passes. And many
//! concurrent writers racing on one object: exactly one wins, the others get 409/412.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Test threads share their tallies behind a Mutex; the lint guards the gateway, not the tests.
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::admin::{self, TOKEN, api, s};
use common::{Driver, Mock, ok};
use serde_json::json;

struct Proc {
    child: Child,
    admin: SocketAddr,
}

fn start(dir: &Path) -> Proc {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"store.db\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringway"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("RINGWAY_ADMIN_TOKEN", TOKEN)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("admin API did not start");
        if l.contains("admin API listening") {
            break l;
        }
    };
    let admin = line
        .split("listen=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Proc { child, admin }
}

/// Every tenant name, over all pages.
fn all_tenants(admin: SocketAddr) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/tenants?limit=500{cursor}");
        let (st, v, _) = api(admin, TOKEN, "GET", &path, None);
        assert_eq!(st, 200, "{v}");
        for t in v["items"].as_array().unwrap() {
            names.push(s(t, "name"));
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return names,
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, sent, stop, admin) = (acked.clone(), sent.clone(), stop.clone(), p.admin);
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let name = format!("t-{w}-{i}");
                    sent.lock().unwrap().insert(name.clone());
                    let body = json!({ "name": name }).to_string();
                    // After the kill a call fails to connect or gets no answer: not acknowledged.
                    let got = std::panic::catch_unwind(|| {
                        api(admin, TOKEN, "POST", "/api/v1/tenants", Some(&body)).0
                    });
                    match got {
                        Ok(201) => acked.lock().unwrap().push(name),
                        Ok(st) => panic!("unexpected status {st}"),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    common::wait_for("300 acknowledged writes", || {
        acked.lock().unwrap().len() >= 300
    });
    let mut p = p;
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    let acked = acked.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();

    let mut p2 = start(dir.path());
    let present: HashSet<String> = all_tenants(p2.admin).into_iter().collect();
    for a in &acked {
        assert!(present.contains(a), "acknowledged tenant {a} lost");
    }
    for n in &present {
        assert!(sent.contains(n), "tenant {n} was never sent");
    }
    // Only writes in flight at the kill (at most one per writer) may be there unacknowledged.
    let unacked = present.len() - acked.len();
    assert!(unacked <= 4, "{unacked} unacknowledged writes present");
    p2.child.kill().unwrap();
    p2.child.wait().unwrap();

    // The file itself is sound.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::ConnectOptions;
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("store.db"))
            .connect()
            .await
            .unwrap();
        let r: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(r, "ok");
        let audit: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit WHERE action = 'tenant.create'")
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!(
            audit as usize,
            present.len(),
            "one audit row per tenant, no more"
        );
    });
}

/// Many writers approve the same subscription at once, with If-Match on the version they read:
/// exactly one succeeds; the rest see 412 (stale version) or 409 (no longer pending).
#[test]
fn concurrent_writers_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let up = Mock::start(|_| ok("x"));
    let m = admin::start(Driver::Uring, 1, &dir.path().join("s.db"), "");
    let t = s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"a"}"#),
        "id",
    );
    let svc = m.ok(
        201,
        "POST",
        "/api/v1/services",
        &json!({"tenant_id": t, "name": "s", "routes": [{"path_prefix": "/s"}],
                "upstream": {"targets": [up.addr.to_string()]}})
        .to_string(),
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
    let sub = m.ok(
        201,
        "POST",
        "/api/v1/subscriptions",
        &json!({"app_id": app, "service_id": s(&svc, "id")}).to_string(),
    );
    let (sub, etag) = (s(&sub, "id"), "\"1\"");
    let admin_addr = m.admin;
    let results: Vec<u16> = (0..16)
        .map(|_| {
            let sub = sub.clone();
            std::thread::spawn(move || {
                let req = format!(
                    "POST /api/v1/subscriptions/{sub}/approve HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nIf-Match: {etag}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                common::raw_request(admin_addr, req.as_bytes()).unwrap().status
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|&&s| s == 200).count(),
        1,
        "{results:?}"
    );
    assert!(
        results.iter().all(|s| [200, 409, 412].contains(s)),
        "{results:?}"
    );
    // A stale ETag is refused even when the transition itself would be allowed.
    let (st, v, _) = m.api("GET", &format!("/api/v1/subscriptions/{sub}"), None);
    assert_eq!((st, v["version"].as_i64()), (200, Some(2)));
    let req = format!(
        "POST /api/v1/subscriptions/{sub}/revoke HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nIf-Match: \"1\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let r = common::raw_request(m.admin, req.as_bytes()).unwrap();
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (412, "precondition_failed")
    );
    // The audit log holds one approval.
    let (_, audit, _) = m.api("GET", &format!("/api/v1/audit?object_id={sub}"), None);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["subscription.create", "subscription.approved"]);
    m.shutdown();
}
