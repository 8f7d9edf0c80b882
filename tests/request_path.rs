//! The request path's own defects, on both drivers: body-phase errors after the head was consumed,
//! early upstream answers, the stale-connection retry and idempotency, a client gone during an
//! interim response, and the one exit every request reaches (finished requests counted against
//! requests sent, across every kind of outcome).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A raw upstream: for each connection, reads the request head, reports it on the channel, then
/// runs `then` on the socket (which decides what to answer and when).
fn raw_upstream(
    then: impl Fn(TcpStream, BufReader<TcpStream>) + Send + Sync + 'static,
) -> (SocketAddr, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let then = std::sync::Arc::new(then);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let (tx, then) = (tx.clone(), then.clone());
            thread::spawn(move || {
                s.set_read_timeout(Some(IO_TIMEOUT)).ok();
                let w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let Some(head) = head_text(&mut r) else {
                    return;
                };
                let _ = tx.send(head);
                then(w, r);
            });
        }
    });
    (addr, rx)
}

/// The next request head as text, up to its empty line; `None` at the end of the connection.
fn head_text(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some(head);
        }
    }
}

/// A port bound but never listening, held for the test's life: connects to it are refused, and no
/// parallel test can take it.
fn unlistening_port() -> (socket2::Socket, SocketAddr) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let a = s.local_addr().unwrap().as_socket().unwrap();
    (s, a)
}

fn wait_head(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(IO_TIMEOUT)
        .expect("the upstream never saw the request head")
}

/// A raw upstream that reads and drops everything after the head.
fn sink_upstream() -> (SocketAddr, mpsc::Receiver<String>) {
    raw_upstream(|_w, mut r| {
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink);
    })
}

/// A gateway with one catch-all route to the upstream `be` at `up`: `http` is the `[http]` table's
/// body, `upstream_extra` goes after the upstream's table (its sub-tables).
fn route_to(driver: Driver, up: SocketAddr, http: &str, upstream_extra: &str) -> ringway::Gateway {
    let routes = "[[routes]]\nupstream = \"be\"";
    let text = format!(
        "[http]\n{http}\n{}\n{upstream_extra}\n{routes}\n",
        upstream("be", up)
    );
    gateway(driver, &text)
}

fn client(g: &ringway::Gateway) -> Client {
    Client::connect(addr(g))
}

/// Body-phase errors once the head has left the buffer (the body is streamed): each is answered
/// with its status, the JSON error and the client's request id when it sent one; nothing panics.
fn body_phase_errors(driver: Driver) {
    let (up, heads) = sink_upstream();
    let g = route_to(
        driver,
        up,
        "max_body_size = \"64KiB\"\nbody_timeout = \"300ms\"",
        "",
    );
    type Case = (&'static str, &'static str, &'static [u8], u16, &'static str);
    let big = Box::leak(format!("{:x}\r\n{}\r\n", 70_000, "x".repeat(70_000)).into_boxed_str());
    let cases: Vec<Case> = vec![
        (
            "bad chunk",
            "Transfer-Encoding: chunked",
            b"zz\r\nhello\r\n",
            400,
            "bad_chunked_body",
        ),
        (
            "chunked over max_body_size",
            "Transfer-Encoding: chunked",
            big.as_bytes(),
            413,
            "body_too_large",
        ),
        (
            "stalled body",
            "Content-Length: 60000",
            b"only a little",
            408,
            "body_timeout",
        ),
    ];
    for (name, framing, rest, status, code) in cases {
        for id in [None, Some("client-id-42")] {
            let mut c = client(&g);
            let id_line = id.map_or(String::new(), |i| format!("X-Request-Id: {i}\r\n"));
            c.send(
                format!("POST /up HTTP/1.1\r\nHost: test\r\n{id_line}{framing}\r\n\r\n").as_bytes(),
            );
            if framing.starts_with("Transfer") {
                c.send(b"5\r\nhello\r\n");
            } else {
                c.send(&[b'y'; 20_000]);
            }
            if heads.recv_timeout(IO_TIMEOUT).is_err() {
                panic!(
                    "{name} (id {id:?}): the upstream never saw the head: {:?}",
                    c.response(false).map(|r| r.text())
                );
            }
            let _ = c.w.write_all(rest);
            let r = c
                .response(false)
                .unwrap_or_else(|| panic!("{name} (id {id:?}): no response"));
            assert_eq!(r.status, status, "{name}: {}", r.text());
            assert_eq!(r.error_code(), code, "{name}");
            match id {
                Some(i) => assert_eq!(r.header("x-request-id"), Some(i), "{name}"),
                None => assert_eq!(r.header("x-request-id").map(str::len), Some(24), "{name}"),
            }
            assert!(c.is_closed(), "{name}: the connection must close");
        }
    }
}
both_drivers!(body_phase_errors_are_answered, body_phase_errors);

/// An upstream that answers before the upload ends and stops reading: its answer reaches the
/// client (not a 502/504), the upload stops, and the connection closes.
fn early_answer(driver: Driver) {
    for close_after in [false, true] {
        let (up, heads) = raw_upstream(move |mut w, r| {
            let body = r#"{"error":"too big"}"#;
            let resp = format!(
                "HTTP/1.1 413 Content Too Large\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            w.write_all(resp.as_bytes()).unwrap();
            if close_after {
                drop(r);
                drop(w);
            } else {
                // Stop reading, keep the connection open: the gateway's writes fill the buffers.
                thread::sleep(IO_TIMEOUT);
                drop(r);
            }
        });
        let g = route_to(driver, up, "max_body_size = \"1GiB\"", "");
        let c = TcpStream::connect(addr(&g)).unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut w = c.try_clone().unwrap();
        let started = Instant::now();
        let writer = thread::spawn(move || {
            let _ = w.write_all(
                b"PUT /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1073741824\r\n\r\n",
            );
            let chunk = vec![b'u'; 64 * 1024];
            while started.elapsed() < IO_TIMEOUT {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        wait_head(&heads);
        let mut r = BufReader::new(c);
        let resp = read_response(&mut r, false).expect("the early answer");
        assert_eq!(
            resp.status,
            413,
            "close_after={close_after}: {}",
            resp.text()
        );
        assert_eq!(resp.text(), r#"{"error":"too big"}"#);
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        assert!(
            started.elapsed() < IO_TIMEOUT,
            "the client connection must close"
        );
        drop(r);
        writer.join().unwrap();
    }
}
both_drivers!(early_upstream_answer_is_forwarded, early_answer);

/// A pooled connection the upstream resets as a request arrives on it (after the gateway found it
/// clean at reuse): an idempotent request goes out again on a new connection, a POST does not
/// (the upstream may have acted on it) and is answered 502. (A connection reset while idle is
/// found at reuse and never carries a request: `tests/wire_defects.rs`.)
fn stale_retry(driver: Driver) {
    // Every connection answers its first request and `/warm`; a later `/again` on it is read,
    // then the connection is reset.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    let (tx, heads) = mpsc::channel::<String>();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let tx = tx.clone();
            thread::spawn(move || {
                s.set_read_timeout(Some(IO_TIMEOUT)).ok();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                for n in 0.. {
                    let Some(head) = head_text(&mut r) else {
                        return;
                    };
                    if head.to_ascii_lowercase().contains("content-length: 1\r\n") {
                        let mut b = [0u8; 1];
                        let _ = r.read_exact(&mut b);
                    }
                    let again = head.contains(" /again ");
                    let _ = tx.send(head);
                    if n > 0 && again {
                        // An abortive close: the gateway's read gets a reset, not a FIN.
                        socket2::SockRef::from(&w)
                            .set_linger(Some(Duration::ZERO))
                            .unwrap();
                        return;
                    }
                    if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let g = route_to(driver, up, "", "");
    for (method, want) in [("GET", 200), ("POST", 502), ("DELETE", 200)] {
        let mut c = client(&g);
        assert_eq!(c.get("/warm").status, 200);
        assert!(wait_head(&heads).starts_with("GET /warm"));
        let body = if method == "POST" {
            "content-length: 1\r\n\r\nx"
        } else {
            "\r\n"
        };
        c.send(format!("{method} /again HTTP/1.1\r\nHost: test\r\n{body}").as_bytes());
        let r = c.response(false).expect("response");
        assert_eq!(r.status, want, "{method}: {}", r.text());
        // Seen on the pooled connection, which was then reset under it.
        assert!(wait_head(&heads).starts_with(method));
        if want == 200 {
            // ... and once more on a new one.
            assert!(wait_head(&heads).starts_with(method));
        } else {
            assert_eq!(r.error_code(), "upstream_reset");
            assert!(
                heads.recv_timeout(Duration::from_millis(200)).is_err(),
                "the POST must not be sent again"
            );
        }
    }
}
both_drivers!(stale_pooled_retry_only_for_idempotent_requests, stale_retry);

/// A client that leaves while an interim response is relayed is not the upstream's failure: the
/// breaker (one failure trips it) stays closed.
fn client_gone_in_interim(driver: Driver) {
    let gate = Gate::default();
    let g2 = gate.clone();
    let (up, heads) = raw_upstream(move |mut w, _r| {
        if g2.meet() {
            let _ = w.write_all(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n");
            thread::sleep(Duration::from_millis(50));
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        } else {
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
        thread::sleep(Duration::from_millis(200));
    });
    let g = route_to(
        driver,
        up,
        "",
        "[upstreams.be.breaker]\nconsecutive_failures = 1\nopen_duration = \"30s\"",
    );
    let c = TcpStream::connect(addr(&g)).unwrap();
    let mut w = c.try_clone().unwrap();
    w.write_all(b"GET /hints HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    wait_head(&heads);
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    drop(w);
    gate.expect("the upstream to send its interim response");
    wait_finished(&g, 1);
    // Two reloads: the second is applied only after a tick that evaluated the breaker's counts.
    let cfg = g.control().snapshot().config.clone();
    for _ in 0..2 {
        let generation = g.reload((*cfg).clone()).unwrap();
        assert!(g.wait_applied(generation, IO_TIMEOUT));
    }
    let snap = g.control().snapshot();
    let b = snap.breakers[0].as_ref().unwrap();
    assert_eq!(
        b.state(),
        ringway::upstream::breaker::State::Closed,
        "a client gone during 103 counted as an upstream failure"
    );
}
both_drivers!(
    client_gone_during_interim_is_not_an_upstream_failure,
    client_gone_in_interim
);

/// Waits (bounded) until the gateway has finished `n` requests.
fn wait_finished(g: &ringway::Gateway, n: u64) -> ringway::observe::RequestTotals {
    let end = Instant::now() + IO_TIMEOUT;
    loop {
        let t = g.requests();
        if t.finished >= n || Instant::now() >= end {
            return t;
        }
        thread::yield_now();
    }
}

/// Every request ends in exactly one place: the finished count equals the requests sent, whatever
/// their outcome, and the status classes add up.
fn every_request_finishes_once(driver: Driver) {
    let ok = Mock::ok("fine");
    let slow = Mock::start(|_| {
        Reply::Delay(
            Duration::from_millis(400),
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec(),
        )
    });
    let (_dead, dead) = unlistening_port();
    let g = gateway(
        driver,
        &format!(
            r#"
            [http]
            header_timeout = "300ms"
            body_timeout = "300ms"
            max_body_size = "1KiB"
            {}
            {}
            response_timeout = "100ms"
            {}
            [[routes]]
            name = "static"
            path_exact = "/static"
            respond = {{ status = 200, body = "s" }}
            [[routes]]
            name = "limited"
            path_exact = "/limited"
            upstream = "ok"
            [[routes.rate_limits]]
            key = "client_ip"
            limit = 1
            per = "hour"
            [[routes]]
            path_exact = "/get"
            methods = ["GET"]
            upstream = "ok"
            [[routes]]
            path_prefix = "/slow"
            upstream = "slow"
            [[routes]]
            path_prefix = "/dead"
            upstream = "dead"
            [[routes]]
            path_prefix = "/ok"
            upstream = "ok"
            "#,
            upstream("ok", ok.addr),
            upstream("slow", slow.addr),
            upstream("dead", dead),
        ),
    );
    let a = addr(&g);
    let mut sent = 0u64;
    let expect = |path: &str, status: u16| {
        assert_eq!(get(a, path).status, status, "{path}");
    };
    for (path, status) in [
        ("/ok", 200),
        ("/static", 200),
        ("/nowhere", 404),
        ("/limited", 200),
        ("/limited", 429),
        ("/dead", 502),
        ("/slow", 504),
        ("/./ok", 400),
    ] {
        expect(path, status);
        sent += 1;
    }
    // 405, a parse error, a head too slow, a body too large, a client gone mid-head and mid-body.
    let raw: [&[u8]; 3] = [
        b"POST /get HTTP/1.1\r\nHost: test\r\ncontent-length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST /ok HTTP/1.1\r\nHost: test\r\ncontent-length: 5000\r\n\r\n",
    ];
    for r in raw {
        assert!(raw_request(a, r).is_some());
        sent += 1;
    }
    let mut c = Client::connect(a);
    c.send(b"GET /ok HTTP/1.1\r\n");
    assert_eq!(c.response(false).map(|r| r.status), Some(408));
    sent += 1;
    for partial in [
        &b"GET /ok HTTP/1.1\r\nHost: te"[..],
        b"POST /ok HTTP/1.1\r\nHost: test\r\ncontent-length: 10\r\n\r\nabc",
    ] {
        let mut s = TcpStream::connect(a).unwrap();
        s.write_all(partial).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        sent += 1;
    }
    let t = wait_finished(&g, sent);
    assert_eq!(
        t.finished, sent,
        "finished requests against requests sent: {t:?}"
    );
    assert_eq!(t.by_class.iter().sum::<u64>(), sent);
    assert_eq!(t.by_class[2], 3, "{t:?}");
    assert_eq!(t.by_class[0], 2, "two requests got no answer: {t:?}");
    assert_eq!(t.errors, sent - 3, "{t:?}");
}
both_drivers!(every_request_finishes_once, every_request_finishes_once);

/// Client mistakes in the body (bad chunk framing, a client gone mid-body) are not the upstream's
/// failures: a breaker that one failure trips stays closed.
fn client_body_errors_spare_the_breaker(driver: Driver) {
    let (up, heads) = sink_upstream();
    let g = route_to(
        driver,
        up,
        "",
        "[upstreams.be.breaker]\nconsecutive_failures = 1\nopen_duration = \"30s\"",
    );
    for _ in 0..2 {
        let mut c = client(&g);
        c.send(
            b"POST /x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        );
        wait_head(&heads);
        c.send(b"zz\r\n");
        assert_eq!(c.response(false).map(|r| r.status), Some(400));
    }
    let cfg = g.control().snapshot().config.clone();
    for _ in 0..2 {
        let generation = g.reload((*cfg).clone()).unwrap();
        assert!(g.wait_applied(generation, IO_TIMEOUT));
    }
    let snap = g.control().snapshot();
    assert_eq!(
        snap.breakers[0].as_ref().unwrap().state(),
        ringway::upstream::breaker::State::Closed,
        "bad request bodies opened the upstream's breaker"
    );
}
both_drivers!(
    client_body_errors_do_not_trip_the_breaker,
    client_body_errors_spare_the_breaker
);

/// Streamed uploads on one keep-alive client connection and pooled upstream connections: every
/// response matches its request (an upload cut short must never leave a pooled connection or the
/// client connection out of step).
fn streamed_uploads_stay_in_step(driver: Driver) {
    let up = Mock::start(|req| {
        let sum: String = sha256(&req.body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        ok(&sum)
    });
    let g = route_to(driver, up.addr, "max_body_size = \"1MiB\"", "");
    let mut c = client(&g);
    for i in 0..30u64 {
        let body = bytes(60_000 + i as usize * 997, i);
        c.send(
            format!(
                "POST /u{i} HTTP/1.1\r\nHost: test\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        c.send(&body);
        let r = c.response(false).expect("response");
        let want: String = sha256(&body).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!((r.status, r.text()), (200, want), "upload {i}");
    }
}
both_drivers!(streamed_uploads_stay_in_step, streamed_uploads_stay_in_step);

/// An upstream that sends `100 Continue` on its own while the body streams, then reads it all and
/// answers: the interim response is passed on and the upload goes on to the final answer.
fn interim_during_upload(driver: Driver) {
    let (up, heads) = raw_upstream(|mut w, mut r| {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        let mut body = vec![0u8; 200_000];
        r.read_exact(&mut body).unwrap();
        w.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone")
            .unwrap();
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink);
    });
    let g = route_to(driver, up, "max_body_size = \"1MiB\"", "");
    let mut c = client(&g);
    c.send(b"PUT /big HTTP/1.1\r\nHost: test\r\ncontent-length: 200000\r\n\r\n");
    c.send(&[b'p'; 50_000]);
    wait_head(&heads);
    c.send(&[b'p'; 150_000]);
    let r = c.response(false).expect("response");
    assert_eq!((r.status, r.text()), (201, "done".to_string()));
}
both_drivers!(
    an_interim_answer_does_not_stop_the_upload,
    interim_during_upload
);

/// A 413 before the body: the gateway stops writing but keeps reading what the client still sends
/// for a while, so the client's further writes are taken instead of answered with a reset.
fn lingering_close_after_413(driver: Driver) {
    let (up, _) = sink_upstream();
    let g = route_to(driver, up, "max_body_size = \"1KiB\"", "");
    let mut c = client(&g);
    c.send(b"POST /big HTTP/1.1\r\nHost: test\r\ncontent-length: 10000000\r\n\r\n");
    let r = c.response(false).expect("response");
    assert_eq!(r.status, 413);
    assert!(c.is_closed(), "the gateway half-closes after the answer");
    // Each write is acknowledged by a reading peer; a closed one would reset, and a later write
    // fail with EPIPE or ECONNRESET.
    let chunk = vec![b'b'; 64 * 1024];
    for i in 0..16 {
        assert!(
            c.w.write_all(&chunk).is_ok(),
            "write {i} after the answer failed"
        );
    }
}
both_drivers!(lingering_close_after_413, lingering_close_after_413);
