//! Bad input and failing upstreams, on both drivers: every case gets its status and a JSON error body
//! with an x-request-id, nothing hangs, and the gateway keeps serving afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

fn config(up: std::net::SocketAddr, extra_http: &str) -> String {
    format!(
        r#"
        [http]
        max_head_size = "4KiB"
        max_uri_size = "1KiB"
        max_headers = 32
        max_body_size = "1KiB"
        {extra_http}
        {}
        [[routes]]
        hosts = ["h", "test"]
        upstream = "be"
        [[routes]]
        name = "get-only"
        hosts = ["m"]
        path_exact = "/get-only"
        methods = ["GET"]
        upstream = "be"
        "#,
        upstream("be", up)
    )
}

/// (name, raw request, expected status)
fn malformed_cases() -> Vec<(&'static str, Vec<u8>, u16)> {
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(2000)).into_bytes();
    let long_head = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "b".repeat(5000)
    )
    .into_bytes();
    let many_headers = {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..40 {
            s.push_str(&format!("X-H{i}: v\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    };
    let big_chunked = {
        let mut s = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        s.extend_from_slice(format!("{:x}\r\n", 2000).as_bytes());
        s.extend_from_slice(&[b'x'; 2000]);
        s.extend_from_slice(b"\r\n0\r\n\r\n");
        s
    };
    let c = |s: &'static str| s.as_bytes().to_vec();
    vec![
        // Request smuggling vectors.
        (
            "cl+te",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "te+cl",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "differing duplicate cl",
            c("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            400,
        ),
        (
            "differing cl list",
            c("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!"),
            400,
        ),
        (
            "cl with plus",
            c("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello"),
            400,
        ),
        (
            "cl negative",
            c("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n"),
            400,
        ),
        (
            "cl hex",
            c("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello"),
            400,
        ),
        (
            "cl inner space",
            c("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n"),
            400,
        ),
        (
            "cl overflow",
            c("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            400,
        ),
        (
            "te unknown coding",
            c("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400,
        ),
        (
            "te chunked not last",
            c("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "te obfuscated",
            c("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "te chunked twice",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "te vertical tab",
            c("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "te with params",
            c("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "te in http/1.0",
            c("POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400,
        ),
        (
            "chunk size not hex",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk size overflow",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nx\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk size negative",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk data too long",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk size bare lf",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk ext bare lf",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk trailer folded",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n",
            ),
            400,
        ),
        (
            "chunk size with space",
            c(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        // Header grammar.
        (
            "obs-fold",
            c("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n  folded\r\n\r\n"),
            400,
        ),
        (
            "bare cr in value",
            c("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n"),
            400,
        ),
        (
            "nul in value",
            c("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n"),
            400,
        ),
        (
            "space in header name",
            c("GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n"),
            400,
        ),
        (
            "space before colon",
            c("GET / HTTP/1.1\r\nHost : h\r\n\r\n"),
            400,
        ),
        (
            "invalid char in name",
            c("GET / HTTP/1.1\r\nHost: h\r\nX(A): x\r\n\r\n"),
            400,
        ),
        (
            "empty header name",
            c("GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n"),
            400,
        ),
        (
            "header without colon",
            c("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"),
            400,
        ),
        ("missing host", c("GET / HTTP/1.1\r\n\r\n"), 400),
        (
            "two hosts",
            c("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            400,
        ),
        (
            "host with space",
            c("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            400,
        ),
        (
            "host with slash",
            c("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            400,
        ),
        (
            "host bad port",
            c("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"),
            400,
        ),
        // Request line.
        ("garbage", c("GARBAGE\r\n\r\n"), 400),
        (
            "bad method chars",
            c("G@T / HTTP/1.1\r\nHost: h\r\n\r\n"),
            400,
        ),
        (
            "relative target",
            c("GET foo HTTP/1.1\r\nHost: h\r\n\r\n"),
            400,
        ),
        (
            "asterisk with get",
            c("GET * HTTP/1.1\r\nHost: h\r\n\r\n"),
            400,
        ),
        (
            "userinfo in absolute form",
            c("GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"),
            400,
        ),
        ("http/2.0", c("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505),
        ("http/1.2", c("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505),
        (
            "dot segments",
            c("GET /a/../../etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n"),
            400,
        ),
        (
            "encoded dot segments",
            c("GET /a/%2e%2E/secret HTTP/1.1\r\nHost: h\r\n\r\n"),
            400,
        ),
        (
            "connect",
            c("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
            405,
        ),
        (
            "unknown expectation",
            c("POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx"),
            417,
        ),
        // Limits.
        ("uri too long", long_uri, 414),
        ("head too large", long_head, 431),
        ("too many headers", many_headers, 431),
        (
            "body too large",
            c("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n"),
            413,
        ),
        ("chunked body too large", big_chunked, 413),
        (
            "method not allowed",
            c("POST /get-only HTTP/1.1\r\nHost: m\r\nContent-Length: 0\r\n\r\n"),
            405,
        ),
    ]
}

both_drivers!(malformed_requests_table, |d| {
    let up = Mock::ok("fine");
    let g = gateway(d, &config(up.addr, ""));
    let cases = malformed_cases();
    assert!(cases.len() >= 40);
    for (name, raw, want) in &cases {
        let r = raw_request(addr(&g), raw).unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(r.status, *want, "{name}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{name}");
        assert!(
            r.text().starts_with("{\"error\":{\"code\":\""),
            "{name}: {}",
            r.text()
        );
        assert!(
            r.header("x-request-id").is_some_and(|v| v.len() >= 16),
            "{name}"
        );
        // Framing errors close the connection: the rest of the bytes cannot be trusted.
        if *want == 400 || *want == 413 || *want == 431 || *want == 414 {
            assert!(r.closes(), "{name}: a {want} must close the connection");
        }
    }
    // None of it reached the upstream, and the gateway still serves normal traffic.
    assert_eq!(up.requests().len(), 0);
    let r = get(addr(&g), "/ok");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "fine");
});

both_drivers!(error_codes_are_specific, |d| {
    let up = Mock::ok("fine");
    let g = gateway(d, &config(up.addr, ""));
    let code = |raw: &[u8]| raw_request(addr(&g), raw).unwrap().error_code();
    assert_eq!(code(b"GET / HTTP/1.1\r\n\r\n"), "missing_host");
    assert_eq!(code(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), "bad_framing");
    assert_eq!(
        code(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9000\r\n\r\n"),
        "body_too_large"
    );
    // A client-supplied request id is echoed.
    let r = raw_request(
        addr(&g),
        b"GET /../x HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-123\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
});

both_drivers!(unknown_route_404_keeps_connection, |d| {
    let up = Mock::ok("fine");
    let g = gateway(
        d,
        &format!(
            "{}\n[[routes]]\nhosts = [\"only.example\"]\nupstream = \"be\"\n",
            upstream("be", up.addr)
        ),
    );
    let mut c = Client::connect(addr(&g));
    let r = c.get("/");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "route_not_found");
    assert!(!r.closes());
    c.send(b"GET / HTTP/1.1\r\nHost: only.example\r\n\r\n");
    assert_eq!(c.response(false).unwrap().status, 200);
});

both_drivers!(slow_head_gets_408, |d| {
    let up = Mock::ok("fine");
    let g = gateway(d, &config(up.addr, "header_timeout = \"200ms\""));
    // A head that starts but never finishes.
    let mut c = Client::connect(addr(&g));
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ");
    let t = Instant::now();
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.error_code(), "header_timeout");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(c.is_closed());
    // A connection that sends nothing at all.
    let mut c = Client::connect(addr(&g));
    assert_eq!(c.response(false).unwrap().status, 408);
    // Trickling bytes does not extend the deadline.
    let mut c = Client::connect(addr(&g));
    let t = Instant::now();
    for b in b"GET / HTTP/1.1\r\nHost: h\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        // The client's pace (not synchronisation): one byte every 20 ms, well past the deadline.
        if std::io::Write::write_all(&mut c.w, &[*b]).is_err()
            || t.elapsed() > Duration::from_millis(600)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.response(false).map(|r| r.status), Some(408));
});

both_drivers!(idle_keepalive_closed_silently, |d| {
    let up = Mock::ok("fine");
    let g = gateway(d, &config(up.addr, "keepalive_timeout = \"200ms\""));
    let mut c = Client::connect(addr(&g));
    assert_eq!(c.get("/").status, 200);
    let t = Instant::now();
    assert!(
        c.is_closed(),
        "an idle keep-alive connection is closed without a response"
    );
    assert!(t.elapsed() >= Duration::from_millis(150));
});

both_drivers!(upstream_refused_is_502, |d| {
    let dead = dead_port();
    let g = gateway(d, &config(dead.addr, ""));
    let r = get(addr(&g), "/");
    assert_eq!(r.status, 502);
    assert_eq!(r.error_code(), "upstream_connect_failed");
});

both_drivers!(upstream_reset_is_502, |d| {
    let up = Mock::start(|_| Reply::Close);
    let g = gateway(d, &config(up.addr, ""));
    let r = get(addr(&g), "/");
    assert_eq!(r.status, 502);
    assert_eq!(r.error_code(), "upstream_reset");
});

both_drivers!(upstream_garbage_is_502, |d| {
    let up = Mock::start(|req| match req.target.as_str() {
        "/both" => Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
        ),
        _ => Reply::RawThenClose(b"NOT HTTP AT ALL\r\n\r\n".to_vec()),
    });
    let g = gateway(d, &config(up.addr, ""));
    let r = get(addr(&g), "/garbage");
    assert_eq!(r.status, 502);
    assert_eq!(r.error_code(), "upstream_bad_response");
    let r = get(addr(&g), "/both");
    assert_eq!(r.status, 502);
});

both_drivers!(upstream_timeout_is_504, |d| {
    let up = Mock::start(|_| {
        Reply::Delay(
            Duration::from_millis(1500),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )
    });
    let g = gateway(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{}\"]\nresponse_timeout = \"200ms\"\n[[routes]]\nupstream = \"be\"\n",
            up.addr
        ),
    );
    let t = Instant::now();
    let r = get(addr(&g), "/");
    assert_eq!(r.status, 504);
    assert_eq!(r.error_code(), "upstream_timeout");
    assert!(
        t.elapsed() < Duration::from_millis(1200),
        "took {:?}",
        t.elapsed()
    );
});

both_drivers!(upstream_dies_mid_response, |d| {
    let up = Mock::start(|req| match req.target.as_str() {
        "/cut" => Reply::RawThenClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b".to_vec(),
        ),
        _ => ok("whole"),
    });
    let g = gateway(d, &config(up.addr, ""));
    let mut c = Client::connect(addr(&g));
    c.send(b"GET /cut HTTP/1.1\r\nHost: h\r\n\r\n");
    // The client sees the head and the bytes that came, then the connection closes: the response is
    // visibly incomplete, never padded or reframed.
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut c.r, &mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200 OK"));
    assert!(text.ends_with("only ten b"));
    // The gateway still serves.
    assert_eq!(get(addr(&g), "/next").text(), "whole");
});

both_drivers!(stale_pooled_connection_is_retried, |d| {
    // The upstream answers and then closes every connection without saying so.
    let up = Mock::start(|_| {
        Reply::RawThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
    });
    let g = gateway(d, &config(up.addr, ""));
    let mut c = Client::connect(addr(&g));
    for i in 0..10 {
        let r = c.get("/");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
});

both_drivers!(saturated_upstream_is_503, |d| {
    let up = Mock::start(|_| {
        Reply::Delay(
            Duration::from_millis(600),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )
    });
    let g = gateway(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{}\"]\nmax_connections = 1\nconnect_timeout = \"100ms\"\n[[routes]]\nupstream = \"be\"\n",
            up.addr
        ),
    );
    let a = addr(&g);
    let first = std::thread::spawn(move || get(a, "/slow").status);
    // Wait until the first request holds the only connection.
    let t = Instant::now();
    while up.requests().is_empty() && t.elapsed() < IO_TIMEOUT {
        std::thread::yield_now();
    }
    let r = get(a, "/second");
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "upstream_saturated");
    assert_eq!(first.join().unwrap(), 200);
});

both_drivers!(stalled_request_body_gets_408, |d| {
    let up = Mock::ok("fine");
    let g = gateway(d, &config(up.addr, "body_timeout = \"200ms\""));
    let mut c = Client::connect(addr(&g));
    c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 500\r\n\r\nonly a part");
    let t = Instant::now();
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.error_code(), "body_timeout");
    assert!(r.closes());
    assert!(t.elapsed() < Duration::from_secs(5));
});

both_drivers!(stalled_upstream_body_closes_client, |d| {
    let up = Mock::start(|_| {
        Reply::Stall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes.".to_vec(),
            Duration::from_secs(3),
        )
    });
    let g = gateway(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{}\"]\nread_timeout = \"200ms\"\n[[routes]]\nupstream = \"be\"\n",
            up.addr
        ),
    );
    let mut c = Client::connect(addr(&g));
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let t = Instant::now();
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut c.r, &mut all).unwrap();
    assert!(String::from_utf8_lossy(&all).ends_with("ten bytes."));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the client waited {:?} for a stalled upstream",
        t.elapsed()
    );
});
