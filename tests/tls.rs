//! TLS termination through real sockets, on both drivers: certificates made by rcgen at test time
//! (a CA and leaves for a few names), a rustls client that verifies them, SNI selection, ALPN,
//! TLS 1.2 and 1.3, keep-alive and streamed bodies, an upgrade tunnel, the handshake deadline,
//! and certificate reload without dropping open connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::*;
use rustls::pki_types::{CertificateDer, ServerName};

/// What these tests add to the shared test PKI: a verifying client and the gateway config.
trait TlsTest {
    fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig>;
    fn config(&self, up: SocketAddr, extra: &str) -> String;
}

impl TlsTest for Pki {
    fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(c)
    }

    fn config(&self, up: SocketAddr, extra: &str) -> String {
        format!(
            r#"
            [tls]
            listen = ["127.0.0.1:0"]
            certificates = [
                {{ cert = "{d}/a.pem", key = "{d}/a.key" }},
                {{ cert = "{d}/b.pem", key = "{d}/b.key" }},
            ]
            {extra}
            {}
            [[routes]]
            upstream = "be"
            "#,
            upstream("be", up),
            d = self.dir.display()
        )
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>, name: &str) -> BufReader<Tls> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let conn =
        rustls::ClientConnection::new(cfg.clone(), ServerName::try_from(name.to_string()).unwrap())
            .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // Finish the handshake before the test looks at what was negotiated.
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    BufReader::new(s)
}

fn tls_addr(g: &ringway::Gateway) -> SocketAddr {
    g.tls_addrs()[0]
}

fn get_over(c: &mut BufReader<Tls>, path: &str) -> Response {
    c.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes())
        .unwrap();
    read_response(c, false).expect("response")
}

fn peer_cert(c: &BufReader<Tls>) -> Vec<u8> {
    let certs: &[CertificateDer<'_>] = c.get_ref().conn.peer_certificates().unwrap();
    certs[0].to_vec()
}

both_drivers!(https_is_proxied_with_sni_alpn_and_forwarded_proto, |d| {
    let pki = Pki::new("tls");
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test", "*.wild.test"]);
    let up = Mock::ok("secure");
    let g = gateway(d, &pki.config(up.addr, ""));
    let both = pki.client(&[&rustls::version::TLS13, &rustls::version::TLS12]);

    let mut c = connect(tls_addr(&g), &both, "a.test");
    assert_eq!(c.get_ref().conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(peer_cert(&c), a);
    for _ in 0..3 {
        let r = get_over(&mut c, "/x");
        assert_eq!((r.status, r.text()), (200, "secure".to_string()));
    }
    assert_eq!(up.last().header("x-forwarded-proto"), Some("https"));

    assert_eq!(peer_cert(&connect(tls_addr(&g), &both, "b.test")), b);
    assert_eq!(peer_cert(&connect(tls_addr(&g), &both, "x.wild.test")), b);
    // A plain connection to the plain listener still says http.
    assert_eq!(get(addr(&g), "/plain").status, 200);
    assert_eq!(up.last().header("x-forwarded-proto"), Some("http"));
});

both_drivers!(tls12_and_tls13_and_a_version_floor, |d| {
    let pki = Pki::new("tls");
    pki.leaf("a", &["a.test"]);
    pki.leaf("b", &["b.test"]);
    let up = Mock::ok("v");
    let g = gateway(d, &pki.config(up.addr, ""));
    for v in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut c = connect(tls_addr(&g), &pki.client(&[v]), "a.test");
        assert_eq!(c.get_ref().conn.protocol_version(), Some(v.version));
        assert_eq!(get_over(&mut c, "/v").status, 200);
    }
    let g13 = gateway(d, &pki.config(up.addr, "versions = [\"1.3\"]"));
    let tcp = TcpStream::connect(tls_addr(&g13)).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let conn = rustls::ClientConnection::new(
        pki.client(&[&rustls::version::TLS12]),
        ServerName::try_from("a.test").unwrap(),
    )
    .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut sink = [0u8; 1];
    assert!(
        s.read(&mut sink).is_err(),
        "a TLS 1.2 client must be refused"
    );
});

both_drivers!(bodies_stream_both_ways_and_upgrades_tunnel_over_tls, |d| {
    let pki = Pki::new("tls");
    pki.leaf("a", &["a.test"]);
    pki.leaf("b", &["b.test"]);
    let up = Mock::start(|req| {
        if req.header("upgrade").is_some() {
            return Reply::Echo(
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n"
                    .to_vec(),
            );
        }
        let body = sha256(&req.body);
        let big = bytes(200_000, 7);
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-sha: {}\r\n\r\n",
            big.len(),
            body.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
        .into_bytes();
        resp.extend_from_slice(&big);
        Reply::Raw(resp)
    });
    let g = gateway(d, &pki.config(up.addr, "[http]\nmax_body_size = \"1MiB\""));
    let cfg = pki.client(&[&rustls::version::TLS13]);
    let mut c = connect(tls_addr(&g), &cfg, "a.test");
    let body = bytes(300_000, 3);
    c.get_mut()
        .write_all(
            format!(
                "POST /up HTTP/1.1\r\nHost: a.test\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    c.get_mut().write_all(&body).unwrap();
    let r = read_response(&mut c, false).unwrap();
    assert_eq!(r.status, 200);
    let want: String = sha256(&body).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        r.header("x-sha"),
        Some(want.as_str()),
        "request body intact"
    );
    assert_eq!(r.body, bytes(200_000, 7), "response body intact");

    let mut t = connect(tls_addr(&g), &cfg, "a.test");
    t.get_mut()
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .unwrap();
    let r = read_response(&mut t, false).unwrap();
    assert_eq!(r.status, 101);
    for msg in [&b"hello"[..], &[b'z'; 40_000][..]] {
        t.get_mut().write_all(msg).unwrap();
        t.get_mut().flush().unwrap();
        let mut got = vec![0u8; msg.len()];
        t.read_exact(&mut got).unwrap();
        assert_eq!(got, msg);
    }
});

both_drivers!(a_silent_handshake_is_closed_at_the_header_timeout, |d| {
    let pki = Pki::new("tls");
    pki.leaf("a", &["a.test"]);
    pki.leaf("b", &["b.test"]);
    let up = Mock::ok("x");
    let g = gateway(
        d,
        &pki.config(up.addr, "[http]\nheader_timeout = \"300ms\""),
    );
    let started = Instant::now();
    let mut s = TcpStream::connect(tls_addr(&g)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    // Garbage instead of a ClientHello is refused at once.
    let mut s = TcpStream::connect(tls_addr(&g)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let _ = s.read_to_end(&mut sink);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(get(addr(&g), "/").status, 200, "the gateway still serves");
});

both_drivers!(
    reload_swaps_certificates_without_dropping_connections,
    |d| {
        let pki = Pki::new("tls");
        let a1 = pki.leaf("a", &["a.test"]);
        pki.leaf("b", &["b.test"]);
        let up = Mock::ok("r");
        let g = gateway(d, &pki.config(up.addr, ""));
        let cfg = pki.client(&[&rustls::version::TLS13]);
        let mut old = connect(tls_addr(&g), &cfg, "a.test");
        assert_eq!(peer_cert(&old), a1);
        let a2 = pki.leaf("a", &["a.test"]);
        assert_ne!(a1, a2);
        let text = g.control().snapshot().config.clone();
        let mut next = ringway::Config::from_toml(&pki.config(up.addr, "")).unwrap();
        next.server = text.server.clone();
        next.tls.as_mut().unwrap().listen = text.tls.as_ref().unwrap().listen.clone();
        let generation = g.reload(next).unwrap();
        assert!(g.wait_applied(generation, IO_TIMEOUT));
        assert_eq!(peer_cert(&connect(tls_addr(&g), &cfg, "a.test")), a2);
        assert_eq!(
            get_over(&mut old, "/still").status,
            200,
            "the open connection keeps working"
        );
    }
);

#[test]
fn bad_files_name_the_field_and_check_lists_names_and_expiry() {
    let pki = Pki::new("tls");
    pki.leaf("a", &["a.test", "www.a.test"]);
    pki.leaf("b", &["b.test"]);
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let cfg = ringway::Config::from_toml(&pki.config(up, "")).unwrap();
    let (report, _) = ringway::check::report(&cfg);
    assert!(report.contains("names=a.test,www.a.test"), "{report}");
    assert!(report.contains("not_after="), "{report}");
    assert!(report.contains("days left"), "{report}");
    std::fs::write(pki.dir.join("b.key"), "not a key").unwrap();
    let e = ringway::Config::from_toml(&pki.config(up, ""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tls.certificates[1]") && e.contains("b.key"),
        "{e}"
    );
    let e = ringway::Config::from_toml(&pki.config(up, "versions = [\"1.1\"]"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tls.versions[0]"), "{e}");
    let cert = format!(
        "{{ cert = \"{}\", key = \"{}\" }}",
        pki.path("a.pem"),
        pki.path("a.key")
    );
    let route = "[[routes]]\nrespond = { status = 200 }\n";
    for (tls, field) in [
        (
            format!("listen = [\"nowhere\"]\ncertificates = [{cert}]"),
            "tls.listen[0]",
        ),
        (
            format!("listen = []\ncertificates = [{cert}]"),
            "tls.listen",
        ),
        (
            "listen = [\"127.0.0.1:8443\"]\ncertificates = []".to_string(),
            "tls.certificates",
        ),
        (
            format!("listen = [\"127.0.0.1:8443\"]\ncertificates = [{cert}]\nciphers = []"),
            "ciphers",
        ),
    ] {
        let e = ringway::Config::from_toml(&format!("[tls]\n{tls}\n{route}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{tls}: {e}");
    }
    let both = format!(
        "[server]\nlisten = [\"127.0.0.1:8443\"]\n[tls]\nlisten = [\"127.0.0.1:8443\"]\ncertificates = [{cert}]\n{route}"
    );
    let e = ringway::Config::from_toml(&both).unwrap_err().to_string();
    assert!(
        e.contains("tls.listen") && e.contains("server.listen"),
        "{e}"
    );
    let e = ringway::Config::from_toml(&format!("[log]\nbuffer_lines = 1\n{route}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("log.buffer_lines"), "{e}");
}

both_drivers!(close_notify_then_junk_and_large_writes, |d| {
    let pki = Pki::new("tls");
    pki.leaf("a", &["a.test"]);
    pki.leaf("b", &["b.test"]);
    let big = bytes(1_000_000, 9);
    let big2 = big.clone();
    let up = Mock::start(move |_| {
        let mut r =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", big2.len()).into_bytes();
        r.extend_from_slice(&big2);
        Reply::Raw(r)
    });
    let g = gateway(
        d,
        &pki.config(
            up.addr,
            "[http]\nresponse_buffer_size = \"256KiB\"\nbuffer_size = \"128KiB\"",
        ),
    );
    let cfg = pki.client(&[&rustls::version::TLS13]);
    // Writes far over rustls' 64 KiB send buffer arrive whole.
    let mut c = connect(tls_addr(&g), &cfg, "a.test");
    let r = get_over(&mut c, "/big");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, big);
    // close_notify followed by junk in one segment: the connection ends, the shard does not spin.
    let mut c = connect(tls_addr(&g), &cfg, "a.test");
    let s = c.get_mut();
    s.conn.send_close_notify();
    let mut wire = Vec::new();
    s.conn.write_tls(&mut wire).unwrap();
    wire.extend_from_slice(&[0x17; 9000]);
    s.sock.write_all(&wire).unwrap();
    let mut sink = Vec::new();
    let _ = s.sock.read_to_end(&mut sink);
    let started = Instant::now();
    let mut c = connect(tls_addr(&g), &cfg, "a.test");
    assert_eq!(get_over(&mut c, "/after").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the shard stalled"
    );
});
