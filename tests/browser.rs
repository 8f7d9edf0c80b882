//! The web console and developer portal in a real browser: Debian's `chromium` and
//! `chromium-driver`, driven by selenium from `tests/browser/console_e2e.py`, against a gateway
//! and control plane on port 0 with a mock upstream. The script is the end-to-end story of the
//! issue (operator, developer of another tenant, viewer, CSRF, session expiry, a narrow screen)
//! and saves a screenshot of each main page to `target/console-screenshots/`.
//!
//! The interpreter is `$RINGWAY_PYTHON`, else the repository's `.venv` (made by
//! `scripts/test-deps.sh`); Chromium and its driver are `/usr/bin/chromium` and
//! `/usr/bin/chromedriver` unless `$RINGWAY_CHROMIUM` / `$RINGWAY_CHROMEDRIVER` say otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::admin::{self, TOKEN};
use common::*;

fn upstream() -> Mock {
    Mock::start(|r| {
        let body = match r.target.strip_prefix("/orders/") {
            Some(id) => format!("{{\"order\":\"order {id}\",\"state\":\"shipped\"}}"),
            None => "{\"ok\":true}".to_string(),
        };
        Reply::Raw(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    })
}

fn extra(dir: &std::path::Path) -> String {
    format!(
        "[call_log]\n[call_log.file]\npath = \"{}\"\n[analytics]\n",
        dir.join("calls.jsonl").display()
    )
}

#[test]
fn console_and_portal_end_to_end_in_chromium() {
    let up = upstream();
    let dir = tempfile::tempdir().unwrap();
    let main_store = dir.path().join("main.db");
    let m = admin::start(Driver::Uring, 1, &main_store, &extra(dir.path()));
    let short_dir = tempfile::tempdir().unwrap();
    let short_store = short_dir.path().join("short.db");
    let mut short_cfg = admin::config(Driver::Uring, 1, &short_store, "");
    short_cfg.admin.as_mut().unwrap().session_ttl = std::time::Duration::from_secs(3);
    let short = admin::start_config(short_cfg, &short_store);

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let cfg = serde_json::json!({
        "admin": format!("http://{}", m.admin),
        "admin_short": format!("http://{}", short.admin),
        "token": TOKEN,
        "upstream": up.addr.to_string(),
        "screenshots": shots,
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console_e2e.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(cfg.to_string())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed (screenshots in {}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        shots.display()
    );
    assert!(stdout.contains("done"), "{stdout}");
    // The try-it call went through the gateway to the upstream, with the developer's key.
    assert!(
        up.requests().iter().any(|r| r.target == "/orders/42"),
        "the upstream never saw the try-it call"
    );
    m.shutdown();
    short.shutdown();
}
