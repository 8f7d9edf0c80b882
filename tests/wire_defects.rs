//! Wire defects found in the second review of the request path (2026-12-02), on both drivers; each
//! test failed before its fix. A pooled upstream connection with stray bytes on it is not reused
//! (they would be the next client's answer); HTTP/1.0 clients are never sent Transfer-Encoding;
//! interim heads lose their hop-by-hop fields; a refused head closes without a reset; an
//! absolute-form target without a path is `/`; every field named by Connection is removed;
//! `Trailer` is end-to-end; an empty Host is refused; a 204 carries no Content-Length; an HTTP/1.0
//! response with Transfer-Encoding is refused; chunk extensions follow their grammar and trailers
//! that frame or route are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;

use common::*;

fn proxy_config(up: SocketAddr) -> String {
    format!("{}\n[[routes]]\nupstream = \"be\"\n", upstream("be", up))
}

/// An upstream whose first connection answers its first request with `first`, then, when the test
/// says so (`go`), sends `stray` unasked and reports it sent (`sent`). Every later connection
/// answers each request with `200 second`.
fn stray_upstream(
    first: &'static [u8],
    stray: &'static [u8],
) -> (SocketAddr, Sender<()>, Receiver<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = l.local_addr().unwrap();
    let (go_tx, go) = channel::<()>();
    let (sent, sent_rx) = channel::<usize>();
    thread::spawn(move || {
        for (n, s) in l.incoming().enumerate() {
            let Ok(s) = s else { return };
            s.set_read_timeout(Some(IO_TIMEOUT)).ok();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            if n == 0 {
                if read_request(&mut r).is_none() || w.write_all(first).is_err() {
                    return;
                }
                if go.recv().is_err() {
                    return;
                }
                // No stray bytes: the upstream closes the idle connection instead.
                let done = if stray.is_empty() {
                    w.shutdown(Shutdown::Write)
                } else {
                    w.write_all(stray)
                };
                if done.is_err() {
                    return;
                }
                let _ = sent.send(n);
                // The gateway must drop this connection now: what it sends next never comes.
                let mut rest = Vec::new();
                let _ = r.read_to_end(&mut rest);
                let _ = sent.send(rest.len());
                continue;
            }
            let sent = sent.clone();
            thread::spawn(move || {
                while read_request(&mut r).is_some() {
                    if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
                        .is_err()
                    {
                        return;
                    }
                }
                let _ = sent.send(usize::MAX - n);
            });
        }
    });
    (at, go_tx, sent_rx)
}

fn stray_bytes_are_not_the_next_answer(d: Driver, first: &'static [u8], stray: &'static [u8]) {
    let (up, go, sent) = stray_upstream(first, stray);
    let g = gateway(d, &proxy_config(up));
    let mut c = Client::connect(addr(&g));
    let r = c.get("/one");
    assert!(r.status == 200 || r.status == 204, "{}", r.status);
    // The stray bytes reach the gateway's idle pooled connection (loopback: queued when the
    // upstream's write returns), then the next request comes.
    go.send(()).unwrap();
    assert_eq!(sent.recv_timeout(IO_TIMEOUT).unwrap(), 0);
    for _ in 0..3 {
        let r = Client::connect(addr(&g)).get("/two");
        assert_eq!((r.status, r.text().as_str()), (200, "second"));
    }
    // The dirty connection was closed with nothing sent on it.
    assert_eq!(sent.recv_timeout(IO_TIMEOUT).unwrap(), 0);
}

both_drivers!(
    stray_bytes_after_a_response_close_the_pooled_connection,
    |d| {
        stray_bytes_are_not_the_next_answer(
            d,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
        );
    }
);

both_drivers!(
    a_body_sent_late_on_a_204_closes_the_pooled_connection,
    |d| {
        stray_bytes_are_not_the_next_answer(d, b"HTTP/1.1 204 No Content\r\n\r\n", b"oops, a body");
    }
);

both_drivers!(a_pooled_connection_closed_while_idle_is_not_used, |d| {
    stray_bytes_are_not_the_next_answer(d, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"");
});

both_drivers!(http10_clients_never_get_transfer_encoding, |d| {
    let up = Mock::start(|req| {
        let body = match req.target.as_str() {
            "/gzip-chunked" => {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            }
            "/gzip" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nabc",
            _ => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        };
        if req.target == "/gzip" {
            Reply::RawThenClose(body.as_bytes().to_vec())
        } else {
            Reply::Raw(body.as_bytes().to_vec())
        }
    });
    let g = gateway(d, &proxy_config(up.addr));
    for path in ["/gzip-chunked", "/gzip"] {
        let req = format!("GET {path} HTTP/1.0\r\nHost: t\r\n\r\n");
        let r = raw_request(addr(&g), req.as_bytes()).unwrap();
        assert_eq!(r.status, 502, "{path}");
        assert_eq!(r.header("transfer-encoding"), None, "{path}");
        // The 1.1 client takes the coding as it is.
        let mut c = TcpStream::connect(addr(&g)).unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        c.write_all(req.as_bytes()).unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 200 "), "{path}: {text:?}");
        assert!(text.contains("transfer-encoding: gzip"), "{path}: {text:?}");
    }
    let r = raw_request(addr(&g), b"GET /plain HTTP/1.0\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "abc"));
    assert_eq!(r.header("transfer-encoding"), None);
    // Bodiless: nothing to decode, and still no Transfer-Encoding for 1.0.
    let r = raw_request(addr(&g), b"HEAD /plain HTTP/1.0\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), None, "{:?}", r.headers);
});

both_drivers!(an_http10_response_with_transfer_encoding_is_refused, |d| {
    let up = Mock::start(|_| {
        Reply::Raw(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                .to_vec(),
        )
    });
    let g = gateway(d, &proxy_config(up.addr));
    let r = get(addr(&g), "/");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("upstream_bad_response"), "{}", r.text());
});

both_drivers!(interim_heads_lose_hop_by_hop_fields_and_bare_lf, |d| {
    let up = Mock::start(|_| {
        Reply::Raw(
            b"HTTP/1.1 103 Early Hints\nConnection: x-hop\nX-Hop: 1\nKeep-Alive: timeout=5\nLink: </a.css>; rel=preload\n\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = TcpStream::connect(addr(&g)).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    let (interim, fin) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        interim.starts_with("HTTP/1.1 103 Early Hints\r\n"),
        "{text:?}"
    );
    assert!(
        !interim.replace("\r\n", "").contains('\n'),
        "bare LF passed on: {text:?}"
    );
    let lower = interim.to_ascii_lowercase();
    assert!(lower.contains("link: </a.css>; rel=preload"), "{text:?}");
    for gone in ["connection:", "x-hop:", "keep-alive:"] {
        assert!(!lower.contains(gone), "{gone} passed on: {text:?}");
    }
    assert!(fin.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(fin.ends_with("\r\n\r\nok"), "{text:?}");
});

both_drivers!(a_refused_oversized_head_is_read_out_not_reset, |d| {
    let up = Mock::ok("ok");
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = TcpStream::connect(addr(&g)).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut req = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..2000 {
        req.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    // The gateway answers 431 before it has read all of this; the rest must be drained, not reset.
    c.write_all(&req).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut all = Vec::new();
    let got = c.read_to_end(&mut all).map_err(|e| e.kind());
    assert_eq!(got.map(|_| ()), Ok(()), "the answer was reset away");
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 431 "), "{text:?}");
    assert!(text.contains("\"error\""), "{text:?}");
});

both_drivers!(an_absolute_form_target_without_a_path_is_slash, |d| {
    let up = Mock::ok("ok");
    let toml = format!(
        "{}\n[[routes]]\npath_exact = \"/\"\nupstream = \"be\"\n[[routes]]\npath_prefix = \"/\"\n[routes.respond]\nstatus = 404\nbody = \"not the root\"\n",
        upstream("be", up.addr)
    );
    let g = gateway(d, &toml);
    for (target, sent) in [("http://x.example", "/"), ("http://x.example?q=1", "/?q=1")] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: x.example\r\n\r\n");
        let r = raw_request(addr(&g), req.as_bytes()).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{target}");
        assert_eq!(up.last().target, sent, "{target}");
    }
});

both_drivers!(every_field_named_by_connection_is_removed, |d| {
    let up = Mock::ok("ok");
    let g = gateway(d, &proxy_config(up.addr));
    let r = raw_request(
        addr(&g),
        b"GET / HTTP/1.1\r\nHost: t\r\nUser-Agent: probe\r\nX-Other: 1\r\nConnection: user-agent, x-other, host, content-length\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let seen = up.last();
    let has = |n: &str| seen.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    for gone in ["user-agent", "x-other", "connection"] {
        assert!(
            !has(gone),
            "{gone} reached the upstream: {:?}",
            seen.headers
        );
    }
    // Framing and routing fields stay, whatever Connection says.
    assert!(has("host") && has("content-length"), "{:?}", seen.headers);
});

both_drivers!(trailer_is_an_end_to_end_field, |d| {
    let up = Mock::start(|_| {
        Reply::Raw(
            b"HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: 1\r\n\r\n"
                .to_vec(),
        )
    });
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTrailer: X-Sig\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Sig: s\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(r.header("trailer"), Some("X-Checksum"));
    let seen = up.last();
    assert!(
        seen.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("trailer") && v == "X-Sig"),
        "{:?}",
        seen.headers
    );
});

both_drivers!(an_empty_host_is_refused, |d| {
    let up = Mock::ok("ok");
    let g = gateway(d, &proxy_config(up.addr));
    for req in [
        &b"GET / HTTP/1.1\r\nHost:\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost:  \r\n\r\n",
        b"GET / HTTP/1.0\r\nHost:\r\n\r\n",
    ] {
        let r = raw_request(addr(&g), req).unwrap();
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(req));
        assert!(r.text().contains("Host"), "{}", r.text());
    }
    // In absolute form the target's authority stands for the host.
    let r = raw_request(addr(&g), b"GET http://t/ HTTP/1.1\r\nHost:\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    assert!(up.requests().len() == 1);
});

both_drivers!(a_204_is_sent_without_content_length, |d| {
    let up = Mock::start(|_| {
        Reply::Raw(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-Kept: 1\r\n\r\n".to_vec())
    });
    let g = gateway(d, &proxy_config(up.addr));
    let mut c = Client::connect(addr(&g));
    let r = c.get("/");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None, "{:?}", r.headers);
    assert_eq!(r.header("x-kept"), Some("1"));
    // The connection goes on.
    assert_eq!(c.get("/").status, 204);
});

both_drivers!(framing_trailers_and_bad_chunk_extensions_are_refused, |d| {
    let up = Mock::ok("ok");
    let g = gateway(d, &proxy_config(up.addr));
    for body in [
        &b"1\r\na\r\n0\r\nContent-Length: 5\r\n\r\n"[..],
        b"1\r\na\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1;a=\"open\r\na\r\n0\r\n\r\n",
    ] {
        let mut req = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        let r = raw_request(addr(&g), &req).unwrap();
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(body));
        assert!(r.closes(), "{:?}", String::from_utf8_lossy(body));
    }
    assert!(
        up.requests().iter().all(|r| r.body.is_empty()),
        "a refused body reached the upstream whole"
    );
    // Whitespace before a chunk extension is allowed, as is a quoted value with a ';' in it.
    let r = raw_request(
        addr(&g),
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1 ;a=\"x;y\"\r\na\r\n0\r\nX-Sum: 1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(up.last().body, b"a");
});
