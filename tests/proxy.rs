//! Forwarding behaviour with real sockets, on both drivers: framing in both directions, header
//! rewriting, keep-alive and pooling, pipelining, HTTP/1.0, 100-continue, upgrades, routing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn proxy_config(up: std::net::SocketAddr) -> String {
    format!("{}\n[[routes]]\nupstream = \"be\"\n", upstream("be", up))
}

both_drivers!(get_and_keepalive_reuse, |d| {
    let up = Mock::ok("hello");
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    for _ in 0..20 {
        let r = c.get("/x");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "hello");
        assert!(!r.closes());
    }
    // One client connection, sequential requests: the upstream saw one pooled connection.
    assert_eq!(up.requests().len(), 20);
    assert_eq!(
        up.connections(),
        1,
        "requests should reuse the pooled upstream connection"
    );
    // A second client reuses the same pooled connection too.
    assert_eq!(get(addr(&g), "/y").status, 200);
    assert_eq!(up.connections(), 1);
});

both_drivers!(request_headers_rewritten, |d| {
    let up = Mock::ok("ok");
    let g = gateway(d, &proxy_config(up.addr));
    let r = raw_request(
        addr(&g),
        b"GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nVia: 1.0 edge\r\nX-Custom: keep me\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let s = up.last();
    assert_eq!(s.target, "/p?q=1");
    assert_eq!(s.version, 1);
    assert_eq!(s.header("host"), Some("example.com"));
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert_eq!(s.header(gone), None, "{gone} must not be forwarded");
    }
    // Trailer is end-to-end (RFC 9110 §6.6.2): it describes the trailer section, which goes on.
    assert_eq!(s.header("trailer"), Some("X-T"));
    assert_eq!(s.header("x-custom"), Some("keep me"));
    assert_eq!(s.header("x-forwarded-for"), Some("10.0.0.1, 127.0.0.1"));
    assert_eq!(s.header("x-forwarded-proto"), Some("http"));
    assert_eq!(s.header("x-forwarded-host"), Some("example.com"));
    assert_eq!(s.headers_named("via"), vec!["1.0 edge", "1.1 ringway"]);
});

both_drivers!(response_hop_by_hop_removed, |d| {
    let up = Mock::start(|_| {
        Reply::Raw(
            b"HTTP/1.1 200 OK\r\nConnection: X-Hop, keep-alive\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Keep: 2\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        )
    });
    let g = gateway(d, &proxy_config(up.addr));
    let r = get(addr(&g), "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    assert_eq!(r.header("x-hop"), None);
    assert_eq!(r.header("keep-alive"), None);
    assert_eq!(r.header("connection"), None);
    assert_eq!(r.header("x-keep"), Some("2"));
});

both_drivers!(chunked_request_and_trailers_forwarded, |d| {
    let up = Mock::ok("got");
    let g = gateway(d, &proxy_config(up.addr));
    let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n";
    let mut req = b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(body);
    let r = raw_request(addr(&g), &req).unwrap();
    assert_eq!(r.status, 200);
    let s = up.last();
    assert_eq!(s.body, b"hello world");
    assert_eq!(
        s.raw_body,
        body.to_vec(),
        "chunked bodies are forwarded as sent, trailers included"
    );
});

both_drivers!(chunked_request_streamed_in_pieces, |d| {
    let up = Mock::ok("got");
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    c.send(b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    let data = bytes(300_000, 7);
    for piece in data.chunks(70_001) {
        c.send(format!("{:x}\r\n", piece.len()).as_bytes());
        c.send(piece);
        c.send(b"\r\n");
    }
    c.send(b"0\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&up.last().body), sha256(&data));
    // The connection is still usable.
    assert_eq!(c.get("/after").status, 200);
});

both_drivers!(chunked_response_to_http11_and_http10, |d| {
    let up = Mock::start(|_| {
        Reply::Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n".to_vec())
    });
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    let r = c.get("/");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "abcdefg");
    assert_eq!(c.get("/again").text(), "abcdefg");
    // HTTP/1.0 clients do not understand chunked: the gateway removes the coding and closes.
    let r = raw_request(
        addr(&g),
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.text(), "abcdefg");
    assert!(r.closes());
});

both_drivers!(close_delimited_response, |d| {
    let up = Mock::start(|_| Reply::RawThenClose(b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec()));
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    let r = c.get("/");
    assert_eq!(r.text(), "until the end");
    assert!(r.closes());
});

both_drivers!(body_arriving_after_its_head, |d| {
    // A Content-Length body that comes after its head (the gateway may wait for a short one so head
    // and body leave in one write) and a chunked stream, whose first chunk must reach the client while
    // the upstream is still silent: streams are never held back.
    let gate = Gate::default();
    let mock_gate = gate.clone();
    let up = Mock::start(move |req| {
        let (first, rest): (&[u8], &[u8]) = match req.target.as_str() {
            "/late" => (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
                b"late body",
            ),
            _ => (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                b"4\r\nlast\r\n0\r\n\r\n",
            ),
        };
        Reply::Gated(first.to_vec(), mock_gate.clone(), rest.to_vec())
    });
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    c.send(b"GET /late HTTP/1.1\r\nHost: h\r\n\r\n");
    gate.expect("the upstream at the gate of /late");
    assert_eq!(c.response(false).unwrap().text(), "late body");

    c.send(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut seen = Vec::new();
    let mut chunk = [0u8; 512];
    while !seen.ends_with(b"5\r\nfirst\r\n") {
        let n =
            std::io::Read::read(&mut c.r, &mut chunk).expect("the first chunk, before the rest");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    gate.expect("the upstream at the gate of /stream");
    while !seen.ends_with(b"0\r\n\r\n") {
        let n = std::io::Read::read(&mut c.r, &mut chunk).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).contains("4\r\nlast\r\n"));
});

both_drivers!(request_body_sent_after_its_head, |d| {
    let up = Mock::start(|req| ok(&format!("got {}", String::from_utf8_lossy(&req.body))));
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    c.send(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n");
    c.send(b"hello");
    c.send(b" world");
    assert_eq!(c.response(false).unwrap().text(), "got hello world");

    // A client that gives up halfway through a short body: the client connection closes and nothing
    // is sent upstream (the gateway waits for the whole body before it takes a connection), so the
    // pooled upstream connection stays clean and serves the next request.
    let mut c = Client::connect(addr(&g));
    c.send(b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhalf");
    c.w.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut c.r, &mut rest).unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(get(addr(&g), "/c").text(), "got ");
    assert_eq!(up.requests().len(), 2);
    assert_eq!(
        up.connections(),
        1,
        "the pooled connection was spoiled by the cut request"
    );
});

both_drivers!(bodiless_responses, |d| {
    let up = Mock::start(|req| {
        match req.target.as_str() {
        "/204" => Reply::Raw(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        "/304" => Reply::Raw(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n".to_vec()),
        "/103" => Reply::Raw(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        _ => Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec()),
    }
    });
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    c.send(b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.response(true).unwrap();
    assert_eq!(r.header("content-length"), Some("5"));
    let r = c.get("/204");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    let r = c.get("/304");
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = c.get("/103");
    assert_eq!(r.interim, vec![103]);
    assert_eq!(r.text(), "ok");
    // Everything stayed framed: the connection is still in sync.
    assert_eq!(c.get("/plain").text(), "hello");
});

both_drivers!(pipelined_requests_answered_in_order, |d| {
    let up = Mock::start(|req| ok(&req.target));
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.extend_from_slice(format!("GET /r{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    batch.extend_from_slice(b"POST /body HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /last HTTP/1.1\r\nHost: h\r\n\r\n");
    c.send(&batch);
    for i in 0..10 {
        assert_eq!(c.response(false).unwrap().text(), format!("/r{i}"));
    }
    assert_eq!(c.response(false).unwrap().text(), "/body");
    assert_eq!(c.response(false).unwrap().text(), "/last");
});

both_drivers!(http10_clients, |d| {
    let up = Mock::ok("ten");
    let g = gateway(d, &proxy_config(up.addr));
    // Without keep-alive: answered and closed.
    let mut c = Client::connect(addr(&g));
    c.send(b"GET /a HTTP/1.0\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.text(), "ten");
    assert!(c.is_closed());
    // The upstream got HTTP/1.1 with a Host.
    let s = up.last();
    assert_eq!(s.version, 1);
    assert_eq!(s.header("host"), Some(up.addr.to_string().as_str()));
    // With keep-alive: kept open and said so.
    let mut c = Client::connect(addr(&g));
    c.send(b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.response(false).unwrap().text(), "ten");
});

both_drivers!(expect_100_continue, |d| {
    let up = Mock::start(|req| ok(&format!("{}", req.body.len())));
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    c.send(b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    // The gateway asks for the body before the client sends it.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut c.r, &mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    let mut blank = String::new();
    std::io::BufRead::read_line(&mut c.r, &mut blank).unwrap();
    c.send(b"data");
    let r = c.response(false).unwrap();
    assert_eq!(r.text(), "4");
    assert_eq!(up.last().header("expect"), None);
});

both_drivers!(websocket_upgrade_tunnels_both_ways, |d| {
    let up = Mock::start(|req| {
        assert_eq!(req.header("upgrade"), Some("websocket"));
        assert_eq!(req.header("connection"), Some("upgrade"));
        Reply::Echo(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".to_vec())
    });
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    c.send(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    let payload = bytes(200_000, 3);
    let reader = std::thread::spawn({
        let mut r = c.r.get_ref().try_clone().unwrap();
        let n = payload.len();
        move || {
            let mut got = vec![0u8; n];
            std::io::Read::read_exact(&mut r, &mut got).unwrap();
            got
        }
    });
    c.send(&payload);
    assert_eq!(reader.join().unwrap(), payload);
    // Half-close from the client reaches the upstream, which closes; the gateway passes that on.
    c.w.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut c.r, &mut rest).unwrap();
    assert!(rest.is_empty());
});

both_drivers!(routing_hosts_prefixes_rewrites_and_static, |d| {
    let a = Mock::start(|req| ok(&format!("a {}", req.target)));
    let b = Mock::start(|req| {
        ok(&format!(
            "b {} {}",
            req.target,
            req.header("host").unwrap_or("")
        ))
    });
    let g = gateway(
        d,
        &format!(
            r#"{}{}
            [[routes]]
            name = "api"
            hosts = ["api.example.com"]
            path_prefix = "/v1/"
            strip_prefix = true
            upstream = "a"
            [[routes]]
            name = "wild"
            hosts = ["*.example.com"]
            path_prefix = "/"
            rewrite_prefix = "/site/"
            upstream_host = "internal"
            upstream = "b"
            [[routes]]
            name = "health"
            path_exact = "/healthz"
            methods = ["GET", "HEAD"]
            [routes.respond]
            status = 200
            body = "ok\n"
            headers = {{ "cache-control" = "no-store" }}
            "#,
            upstream("a", a.addr),
            upstream("b", b.addr)
        ),
    );
    let at = addr(&g);
    let req = |host: &str, path: &str| {
        raw_request(
            at,
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(
        req("api.example.com", "/v1/users?id=3").text(),
        "a /users?id=3"
    );
    assert_eq!(req("API.example.com:8080", "/v1/").text(), "a /");
    assert_eq!(
        req("www.example.com", "/index.html").text(),
        "b /site/index.html internal"
    );
    assert_eq!(
        req("api.example.com", "/other").text(),
        "b /site/other internal"
    );
    let h = req("anything", "/healthz");
    assert_eq!(h.text(), "ok\n");
    assert_eq!(h.header("cache-control"), Some("no-store"));
    assert_eq!(req("anything", "/nothing").status, 404);
    let r = raw_request(at, b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some());
    // Absolute-form targets route by their authority and are forwarded in origin form.
    let r = raw_request(
        at,
        b"GET http://api.example.com/v1/abs HTTP/1.1\r\nHost: other\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "a /abs");
});

both_drivers!(connect_failure_moves_to_next_target, |d| {
    let good = Mock::ok("good");
    let dead = dead_port();
    let g = gateway(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{}\", \"{}\"]\n[[routes]]\nupstream = \"be\"\n",
            dead.addr, good.addr
        ),
    );
    for _ in 0..6 {
        let r = get(addr(&g), "/");
        assert_eq!(r.status, 200, "{}", r.text());
    }
});

both_drivers!(parked_idle_connections_wake_up, |d| {
    let up = Mock::ok("again");
    let g = gateway(
        d,
        &format!(
            "[http]\nidle_buffer_release = \"20ms\"\nheader_timeout = \"300ms\"\n{}\n[[routes]]\nupstream = \"be\"\n",
            upstream("be", up.addr)
        ),
    );
    let mut c = Client::connect(addr(&g));
    for _ in 0..3 {
        assert_eq!(c.get("/").text(), "again");
        // Idle long enough for the watchdog (10 ms tick) to take the buffer back.
        std::thread::sleep(std::time::Duration::from_millis(60));
    }
    // A head split across a park still arrives whole.
    c.send(b"GET /split HTTP/1.1\r\n");
    std::thread::sleep(std::time::Duration::from_millis(60));
    c.send(b"Host: h\r\n\r\n");
    assert_eq!(c.response(false).unwrap().text(), "again");
    // A new connection that parks before sending anything still gets its 408.
    let mut quiet = Client::connect(addr(&g));
    let r = quiet.response(false).unwrap();
    assert_eq!(r.status, 408);
});

both_drivers!(large_heads_grow_the_buffer, |d| {
    let up = Mock::start(|req| ok(&req.header("x-big").map_or(0, str::len).to_string()));
    let g = gateway(
        d,
        &format!(
            "[http]\nbuffer_size = \"1KiB\"\nmax_head_size = \"64KiB\"\n{}\n[[routes]]\nupstream = \"be\"\n",
            upstream("be", up.addr)
        ),
    );
    let big = "v".repeat(40_000);
    let r = raw_request(
        addr(&g),
        format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.text(), "40000");
});
