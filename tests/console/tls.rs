//! The admin listener over TLS, with a Secure cookie.

use super::*;

/// `[admin] tls`: the admin API and console over TLS, with a `Secure` cookie; plain HTTP to it
/// gets nothing.
#[test]
fn the_admin_listener_serves_tls_with_a_secure_cookie() {
    let pki = common::pki::Pki::new("admin");
    pki.leaf("admin", &["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let extra = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}\n",
        pki.path("admin.pem"),
        pki.path("admin.key")
    );
    // The [admin] table is the last one admin::config writes before `extra`'s tables: put the
    // key into it by text.
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n{extra}[store]\npath = \"{}\"\n",
        store.display()
    );
    let cfg = ringway::Config::from_toml(&text).unwrap();
    assert!(
        cfg.admin.as_ref().unwrap().cookie_secure,
        "TLS makes the cookie Secure by default"
    );
    let m = admin::start_config(cfg, &store);
    let port = m.admin.port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.dir.join("ca.pem")).unwrap())
            .unwrap();
        let c = reqwest::Client::builder()
            .add_root_certificate(ca)
            .no_proxy()
            .build()
            .unwrap();
        let page = c
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers().get("content-security-policy").is_some());
        let r = c
            .post(format!("https://127.0.0.1:{port}/api/v1/session"))
            .header("content-type", "application/json")
            .body(json!({"token": TOKEN}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let set = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            set.contains("; Secure") && set.contains("HttpOnly"),
            "{set}"
        );
    });
    let mut plain = Client::connect(m.admin);
    plain.send(b"GET / HTTP/1.1\r\nHost: admin\r\n\r\n");
    assert!(
        plain.response(false).is_none(),
        "plain HTTP to the TLS listener is not served"
    );
    m.shutdown();
    let bad = text.replace(&pki.path("admin.key"), "/nonexistent.key");
    let err = ringway::Config::from_toml(&bad).unwrap_err().to_string();
    assert!(err.contains("admin.tls"), "{err}");
}
