//! TLS towards upstreams, on both drivers, against an in-process rustls upstream: verification
//! against a CA file, SNI, pooled TLS connections, session resumption on new connections, a
//! certificate that does not verify, and mutual TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// The TLS upstream's counters are shared with its threads.
#![allow(clippy::disallowed_types)]

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use common::pki::Pki;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the TLS upstream saw.
#[derive(Default)]
struct Seen {
    handshakes: AtomicUsize,
    resumed: AtomicUsize,
    requests: AtomicUsize,
    sni: Mutex<Vec<Option<String>>>,
    client_certs: AtomicUsize,
    probes: AtomicUsize,
    key_updates: AtomicUsize,
}

/// A TLS HTTP/1.1 upstream with the leaf `cert` (`<cert>.pem/.key`); `client_ca`: require client
/// certificates signed by it; `close`: answer with `connection: close`.
fn tls_upstream(
    cert: &std::path::Path,
    client_ca: Option<&Pki>,
    close: bool,
) -> (SocketAddr, Arc<Seen>) {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert.with_extension("pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
    let key = PrivateKeyDer::from_pem_file(cert.with_extension("key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let mut cfg = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pki) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca.der().clone()).unwrap();
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(v)
        }
    }
    .with_single_cert(chain, key)
    .unwrap();
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let seen2 = seen.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let (cfg, seen) = (cfg.clone(), seen2.clone());
            thread::spawn(move || {
                s.set_read_timeout(Some(IO_TIMEOUT)).ok();
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                while tls.conn.is_handshaking() {
                    if tls.conn.complete_io(&mut tls.sock).is_err() {
                        return;
                    }
                }
                seen.handshakes.fetch_add(1, Ordering::SeqCst);
                if tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                    seen.resumed.fetch_add(1, Ordering::SeqCst);
                }
                if tls.conn.peer_certificates().is_some() {
                    seen.client_certs.fetch_add(1, Ordering::SeqCst);
                }
                seen.sni
                    .lock()
                    .unwrap()
                    .push(tls.conn.server_name().map(str::to_string));
                let mut r = BufReader::new(tls);
                while let Some(req) = read_request(&mut r) {
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    if req.header("user-agent") == Some("ringway-health-check") {
                        seen.probes.fetch_add(1, Ordering::SeqCst);
                    }
                    let body = format!("tls:{}", req.target);
                    let conn = if close { "connection: close\r\n" } else { "" };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{conn}\r\n{body}",
                        body.len()
                    );
                    let w = r.get_mut();
                    if w.write_all(resp.as_bytes())
                        .and_then(|()| w.flush())
                        .is_err()
                        || close
                    {
                        return;
                    }
                    if req.target.starts_with("/key-update") {
                        // A TLS record that is not data, arriving while the connection idles in
                        // the gateway's pool (later than the response, so it is not read with it).
                        thread::sleep(std::time::Duration::from_millis(300));
                        let tls = r.get_mut();
                        if tls.conn.refresh_traffic_keys().is_ok()
                            && tls.conn.write_tls(&mut tls.sock).is_ok()
                        {
                            seen.key_updates.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// An upstream leaf for `up.test` signed by `pki`'s CA: the path stem of its files.
fn up_test_leaf(pki: &Pki) -> std::path::PathBuf {
    pki.leaf("up", &["up.test"]);
    pki.dir.join("up")
}

/// The `[upstreams.be.tls]` body that verifies `up.test` against `pki`'s CA.
fn verify_up_test(pki: &Pki) -> String {
    format!("sni = \"up.test\"\nca = \"{}\"", pki.path("ca.pem"))
}

fn config(up: SocketAddr, tls: &str) -> String {
    format!(
        "[upstreams.be]\ntargets = [\"{up}\"]\n[upstreams.be.tls]\n{tls}\n[[routes]]\nupstream = \"be\"\n"
    )
}

both_drivers!(pooled_and_verified_with_sni, |d| {
    let pki = Pki::new("a");
    let leaf = up_test_leaf(&pki);
    let (up, seen) = tls_upstream(&leaf, None, false);
    let g = gateway(d, &config(up, &verify_up_test(&pki)));
    let mut c = Client::connect(addr(&g));
    for i in 0..5 {
        let r = c.get(&format!("/r{i}"));
        assert_eq!((r.status, r.text()), (200, format!("tls:/r{i}")));
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 5);
    assert_eq!(
        seen.handshakes.load(Ordering::SeqCst),
        1,
        "one pooled TLS connection"
    );
    assert_eq!(seen.sni.lock().unwrap()[0].as_deref(), Some("up.test"));
});

both_drivers!(the_target_address_is_verified_when_no_sni_is_set, |d| {
    let pki = Pki::new("ip");
    pki.leaf("up", &["127.0.0.1"]);
    let leaf = pki.dir.join("up");
    let (up, _) = tls_upstream(&leaf, None, false);
    let g = gateway(d, &config(up, &format!("ca = \"{}\"", pki.path("ca.pem"))));
    assert_eq!(get(addr(&g), "/ip").status, 200);
});

both_drivers!(new_connections_resume_the_session, |d| {
    let pki = Pki::new("r");
    let leaf = up_test_leaf(&pki);
    let (up, seen) = tls_upstream(&leaf, None, true);
    let g = gateway(d, &config(up, &verify_up_test(&pki)));
    for i in 0..4 {
        assert_eq!(get(addr(&g), &format!("/n{i}")).status, 200);
    }
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 4);
    assert!(
        seen.resumed.load(Ordering::SeqCst) >= 2,
        "later connections resume: {} of 4",
        seen.resumed.load(Ordering::SeqCst)
    );
});

both_drivers!(a_certificate_that_does_not_verify_is_a_502, |d| {
    let pki = Pki::new("v");
    let other = Pki::new("other");
    let leaf = up_test_leaf(&pki);
    let (up, seen) = tls_upstream(&leaf, None, false);
    // Trusting another CA; then the right CA but the wrong name.
    for tls in [
        verify_up_test(&other),
        format!("sni = \"elsewhere.test\"\nca = \"{}\"", pki.path("ca.pem")),
    ] {
        let g = gateway(d, &config(up, &tls));
        let r = get(addr(&g), "/v");
        assert_eq!(r.status, 502, "{tls}");
        assert_eq!(r.error_code(), "upstream_connect_failed");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
});

both_drivers!(mutual_tls_presents_the_client_certificate, |d| {
    let pki = Pki::new("m");
    let leaf = up_test_leaf(&pki);
    pki.leaf("client", &["gateway.test"]);
    let client = pki.dir.join("client");
    let (up, seen) = tls_upstream(&leaf, Some(&pki), false);
    let base = verify_up_test(&pki);
    let g = gateway(d, &config(up, &base));
    assert_eq!(
        get(addr(&g), "/no-cert").status,
        502,
        "the upstream requires a certificate"
    );
    let with = format!(
        "{base}\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        client.with_extension("pem").display(),
        client.with_extension("key").display()
    );
    let g = gateway(d, &config(up, &with));
    assert_eq!(get(addr(&g), "/cert").status, 200);
    assert_eq!(seen.client_certs.load(Ordering::SeqCst), 1);
});

#[test]
fn upstream_tls_config_errors_name_the_field() {
    let pki = Pki::new("e");
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (tls, field) in [
        (
            "ca = \"/nonexistent/ca.pem\"".to_string(),
            "upstreams.be.tls",
        ),
        (
            format!("ca = \"{}\"\nclient_cert = \"x.pem\"", pki.path("ca.pem")),
            "upstreams.be.tls.client_key",
        ),
        ("sni = \"bad name!\"".to_string(), "upstreams.be.tls.sni"),
        ("verify = false".to_string(), "verify"),
    ] {
        let e = ringway::Config::from_toml(&config(up, &tls))
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{tls}: {e}");
    }
}

#[test]
fn health_checks_probe_over_tls() {
    let pki = Pki::new("h");
    let leaf = up_test_leaf(&pki);
    let (up, seen) = tls_upstream(&leaf, None, true);
    let g = gateway(
        Driver::Epoll,
        &config(
            up,
            &format!(
                "{}\n[upstreams.be.health_check]\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"200ms\"",
                verify_up_test(&pki)
            ),
        ),
    );
    let end = std::time::Instant::now() + IO_TIMEOUT;
    while seen.probes.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < end {
        thread::yield_now();
    }
    assert!(
        seen.probes.load(Ordering::SeqCst) >= 3,
        "TLS health probes arrived"
    );
    assert_eq!(
        get(addr(&g), "/after-probes").status,
        200,
        "the target stays healthy"
    );
}

both_drivers!(tls_housekeeping_in_the_pool_is_not_stray_data, |d| {
    let pki = Pki::new("k");
    let leaf = up_test_leaf(&pki);
    let (up, seen) = tls_upstream(&leaf, None, false);
    let g = gateway(d, &config(up, &verify_up_test(&pki)));
    assert_eq!(get(addr(&g), "/key-update").status, 200);
    let sent = std::time::Instant::now();
    while seen.key_updates.load(Ordering::SeqCst) == 0 && sent.elapsed() < IO_TIMEOUT {
        thread::yield_now();
    }
    // The pool looks at connections that idled a second or more (upstream::pool::PEEK_AFTER_MS):
    // this one must be looked at, and found usable, before the next request.
    while sent.elapsed() < std::time::Duration::from_millis(1500) {
        thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(get(addr(&g), "/again").status, 200);
    assert_eq!(
        seen.handshakes.load(Ordering::SeqCst),
        1,
        "the pooled TLS connection was dropped as if the key update were stray bytes"
    );
});
