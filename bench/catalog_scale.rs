//! The catalog at scale: a store with N API keys and M services (default 1,000,000 and 10,000,
//! over 1,000 tenants and 100,000 apps, with 100,000 approved subscriptions), loaded by the
//! control plane; then the cost of single changes, each timed from the admin call to every shard
//! serving it.
//!
//!   cargo bench --bench catalog_scale [-- --keys 1000000 --services 10000]
//!
//! Prints: store fill time, control-plane start (load + compose + first publish), resident memory
//! the catalog added, and for a new key, a revoked key, an approval, a lifecycle change and a new
//! service: the admin call's time and the time until every shard applied it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringway::control::{AdminToken, ControlPlane};
use ringway::{Config, Gateway, StartOptions};
use sqlx::ConnectOptions;

const TOKEN: &str = "catalog-scale-bench-token";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn call(admin: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(admin).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut b = vec![0; len];
    r.read_exact(&mut b).unwrap();
    (
        status,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

async fn fill(path: &std::path::Path, keys: usize, services: usize) {
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    let mut tx = sqlx::Connection::begin(&mut c).await.unwrap();
    let tenants = 1000.min(services.max(1));
    let apps = (keys / 10).max(1);
    for t in 0..tenants {
        sqlx::query("INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, $2, 0, 0)")
            .bind(format!("ten_{t:08}"))
            .bind(format!("tenant {t}"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for s in 0..services {
        let spec = serde_json::json!({"routes": [{"path_prefix": format!("/svc{s}")}],
            "upstream": {"targets": ["127.0.0.1:9"]}, "credentials": ["api_key"]});
        sqlx::query("INSERT INTO services (id, tenant_id, name, visibility, approval, state, spec, created_at, updated_at) VALUES ($1, $2, $3, 'public', 'manual', 'published', $4, 0, 0)")
            .bind(format!("svc_{s:08}"))
            .bind(format!("ten_{:08}", s % tenants))
            .bind(format!("service {s}"))
            .bind(spec.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for a in 0..apps {
        sqlx::query("INSERT INTO apps (id, tenant_id, name, created_at, updated_at) VALUES ($1, $2, $3, 0, 0)")
            .bind(format!("app_{a:08}"))
            .bind(format!("ten_{:08}", a % tenants))
            .bind(format!("app {a}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO subscriptions (id, app_id, service_id, state, created_at, updated_at) VALUES ($1, $2, $3, 'approved', 0, 0)")
            .bind(format!("sub_{a:08}"))
            .bind(format!("app_{a:08}"))
            .bind(format!("svc_{:08}", a % services.max(1)))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for k in 0..keys {
        let hash: [u8; 32] = rand::random();
        sqlx::query("INSERT INTO api_keys (id, app_id, prefix, hash, created_at) VALUES ($1, $2, 'rw_bench', $3, 0)")
            .bind(format!("key_{k:08}"))
            .bind(format!("app_{:08}", k % apps))
            .bind(&hash[..])
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

fn main() {
    let keys = arg("--keys", 1_000_000);
    let services = arg("--services", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scale.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        ringway::control::store::Store::open(&store)
            .await
            .unwrap()
            .close()
            .await;
    });
    let t = Instant::now();
    rt.block_on(fill(&store, keys, services));
    println!(
        "store: {keys} keys, {services} services, {} apps and subscriptions written in {:.1} s",
        (keys / 10).max(1),
        t.elapsed().as_secs_f64()
    );
    drop(rt);

    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\ntick = \"100ms\"\n[log]\nlevel = \"warn\"\n[admin]\nlisten = \"127.0.0.1:0\"\nallow_loopback = true\n[store]\npath = \"{}\"\n",
        store.display()
    );
    let config = Config::from_toml(&text).unwrap();
    let g = Gateway::start(config.clone(), StartOptions::default()).unwrap();
    let before = rss_kib();
    let t = Instant::now();
    let cp = ControlPlane::start(
        &config,
        g.publisher(),
        Some(AdminToken::new(TOKEN).unwrap()),
    )
    .unwrap();
    let gen0 = g.control().generation();
    assert!(g.wait_applied(gen0, Duration::from_secs(60)));
    let start = t.elapsed();
    let after = rss_kib();
    println!(
        "control plane start (load, compose, publish, every shard applied): {:.2} s; resident memory +{} MiB ({:.0} B per key)",
        start.as_secs_f64(),
        (after.saturating_sub(before)) / 1024,
        (after.saturating_sub(before) * 1024) as f64 / keys.max(1) as f64
    );
    let admin = cp.admin_addr().unwrap();
    let change = |what: &str, method: &str, path: &str, body: &str| {
        let t = Instant::now();
        let (st, v) = call(admin, method, path, body);
        let answered = t.elapsed();
        assert!((200..300).contains(&st), "{what}: {st} {v}");
        let generation = g.control().generation();
        assert!(g.wait_applied(generation, Duration::from_secs(60)));
        println!(
            "{what:32} admin call {:8.2} ms, every shard serving it {:8.2} ms after the call began",
            answered.as_secs_f64() * 1e3,
            t.elapsed().as_secs_f64() * 1e3
        );
        v
    };
    let k = change("new key", "POST", "/api/v1/apps/app_00000001/keys", "{}");
    let kid = k["id"].as_str().unwrap().to_string();
    change(
        "revoked key",
        "POST",
        &format!("/api/v1/apps/app_00000001/keys/{kid}/revoke"),
        "{}",
    );
    let app = change(
        "new app",
        "POST",
        "/api/v1/apps",
        "{\"tenant_id\":\"ten_00000000\",\"name\":\"fresh app\"}",
    );
    let app = app["id"].as_str().unwrap().to_string();
    let sub = change(
        "new subscription (pending)",
        "POST",
        "/api/v1/subscriptions",
        &format!(
            "{{\"app_id\":\"{app}\",\"service_id\":\"svc_{:08}\"}}",
            services / 2
        ),
    );
    let sid = sub["id"].as_str().unwrap().to_string();
    change(
        "approval",
        "POST",
        &format!("/api/v1/subscriptions/{sid}/approve"),
        "{}",
    );
    change(
        "lifecycle (deprecate)",
        "POST",
        "/api/v1/services/svc_00000003/deprecate",
        "{}",
    );
    change(
        "new service (routes composed)",
        "POST",
        "/api/v1/services",
        "{\"tenant_id\":\"ten_00000001\",\"name\":\"fresh\",\"routes\":[{\"path_prefix\":\"/fresh\"}],\"upstream\":{\"targets\":[\"127.0.0.1:9\"]}}",
    );
    cp.shutdown();
    g.shutdown(Duration::from_secs(1));
}
