//! The call log: one record per finished request whatever its outcome, written off the shards to
//! JSON lines with rotation; W3C trace context; redaction; a stalled sink that slows nothing and
//! counts what it drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use ringway::observe::calllog::{Sink, rotated};
use serde_json::Value;

/// Every line of the live call-log file and its rotated siblings, oldest first.
fn lines(path: &Path) -> Vec<Value> {
    let mut files = rotated(path);
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for l in text.lines() {
            out.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")));
        }
    }
    out
}

/// Waits until the file sink wrote `n` records.
fn wait_written(g: &ringway::Gateway, n: u64) {
    let stats = g.call_log().expect("call log runs");
    wait_for(&format!("{n} records written"), || {
        stats.written(Sink::File) >= n
    });
}

fn log_table(path: &Path, extra: &str) -> String {
    format!(
        "[call_log]\n{extra}\n[call_log.file]\npath = {:?}\n",
        path.display().to_string()
    )
}

fn calls_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("logs").join("calls.jsonl")
}

/// Routes with every outcome: `/limited` (`limit` calls per hour, node-wide), `/dead` (an upstream
/// that refuses connections), and `ok_prefix` proxied to `ok`; with a call log to `path`.
fn outcome_routes(path: &Path, ok: &Mock, dead: &DeadPort, limit: u32, ok_prefix: &str) -> String {
    format!(
        r#"
        {log}
        {ok}
        {dead}
        [[routes]]
        name = "limited"
        path_exact = "/limited"
        upstream = "ok"
        [[routes.rate_limits]]
        key = "client_ip"
        limit = {limit}
        per = "hour"
        [[routes]]
        name = "dead"
        path_prefix = "/dead"
        upstream = "dead"
        [[routes]]
        name = "ok"
        path_prefix = "{ok_prefix}"
        upstream = "ok"
        "#,
        log = log_table(path, ""),
        ok = upstream("ok", ok.addr),
        dead = upstream("dead", dead.addr),
    )
}

/// Every request, whatever its outcome, is exactly one record, and the record says what happened.
fn one_record_per_request(driver: Driver) {
    let ok = Mock::ok("fine");
    let dead = dead_port();
    let dir = tempfile::tempdir().unwrap();
    let path = calls_path(&dir);
    let g = gateway(
        driver,
        &format!(
            "[http]\nheader_timeout = \"300ms\"\nmax_body_size = \"1KiB\"\n{}\n\
             [[routes]]\nname = \"static\"\npath_exact = \"/static\"\nrespond = {{ status = 200, body = \"s\" }}\n",
            outcome_routes(&path, &ok, &dead, 1, "/ok")
        ),
    );
    let a = addr(&g);
    let mut want: Vec<(u16, &str)> = Vec::new();
    for (p, status, code) in [
        ("/ok/a?x=1", 200, ""),
        ("/static", 200, ""),
        ("/nowhere", 404, "route_not_found"),
        ("/limited", 200, ""),
        ("/limited", 429, "rate_limited"),
        ("/dead", 502, "upstream_connect_failed"),
        ("/./ok", 400, "bad_path"),
    ] {
        assert_eq!(get(a, p).status, status, "{p}");
        want.push((status, code));
    }
    assert!(raw_request(a, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").is_some());
    want.push((400, "bad_host"));
    assert!(
        raw_request(
            a,
            b"POST /ok HTTP/1.1\r\nHost: test\r\ncontent-length: 5000\r\n\r\n"
        )
        .is_some()
    );
    want.push((413, "body_too_large"));
    // A client gone mid-body: no status at all.
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"POST /ok HTTP/1.1\r\nHost: test\r\ncontent-length: 10\r\n\r\nabc")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    want.push((0, "client_closed"));

    wait_written(&g, want.len() as u64);
    let recs = lines(&path);
    assert_eq!(recs.len(), want.len(), "{recs:#?}");
    assert_eq!(g.requests().finished, want.len() as u64);
    let ids: HashSet<&str> = recs
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), recs.len(), "request ids are unique");
    let mut got: Vec<(u16, String)> = recs
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap() as u16,
                r["error"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut want: Vec<(u16, String)> = want.into_iter().map(|(s, c)| (s, c.into())).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let served = recs.iter().find(|r| r["path"] == "/ok/a").unwrap();
    assert_eq!(served["route"], "ok");
    assert_eq!(served["method"], "GET");
    assert_eq!(served["query"], "x=1");
    assert_eq!(served["target"], ok.addr.to_string());
    assert_eq!(served["tries"], 1);
    assert!(
        served.get("breaker").is_none(),
        "the upstream has no breaker"
    );
    assert_eq!(served["client_ip"], "127.0.0.1");
    assert!(served["bytes_out"].as_u64().unwrap() > 4);
    assert!(
        served["latency_us"].as_u64().unwrap()
            >= served["upstream_first_byte_us"].as_u64().unwrap()
    );
    assert!(served["trace_id"].as_str().unwrap().len() == 32);
    assert!(served["time"].as_str().unwrap().ends_with('Z'));
    let limited = recs.iter().find(|r| r["status"] == 429).unwrap();
    assert_eq!(limited["limited"], "rate");
    let dead_rec = recs.iter().find(|r| r["status"] == 502).unwrap();
    assert_eq!(dead_rec["target"], dead.addr.to_string());
    assert!(
        dead_rec["error_message"]
            .as_str()
            .unwrap()
            .contains("connect")
    );
}
both_drivers!(one_record_per_request, one_record_per_request);

/// A valid `traceparent` is continued (same trace, the gateway's span as the upstream's parent);
/// a missing or malformed one starts a trace. The record carries the ids.
fn trace_context(driver: Driver) {
    let up = Mock::ok("t");
    let dir = tempfile::tempdir().unwrap();
    let path = calls_path(&dir);
    let g = gateway(
        driver,
        &format!(
            "{}\n{}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\n",
            log_table(&path, ""),
            upstream("up", up.addr)
        ),
    );
    let a = addr(&g);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (i, tp) in [Some(parent), None, Some("00-zz-bad-01")]
        .iter()
        .enumerate()
    {
        let mut req = format!("GET /t{i} HTTP/1.1\r\nHost: x\r\ntracestate: k=v\r\n");
        if let Some(tp) = tp {
            req.push_str(&format!("traceparent: {tp}\r\n"));
        }
        req.push_str("\r\n");
        assert_eq!(raw_request(a, req.as_bytes()).unwrap().status, 200);
    }
    wait_written(&g, 3);
    let recs = lines(&path);
    let seen = up.requests();
    for (i, r) in recs.iter().enumerate() {
        let up_req = seen.iter().find(|s| s.target == format!("/t{i}")).unwrap();
        let sent = up_req.headers_named("traceparent");
        assert_eq!(sent.len(), 1, "exactly one traceparent upstream");
        let tp = ringway::http::traceparent::parse(sent[0].as_bytes()).expect("valid");
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(r["trace_id"], hex(&tp.trace_id));
        assert_eq!(
            r["span_id"],
            hex(&tp.parent_id),
            "the gateway's span is the parent"
        );
        assert_eq!(up_req.header("tracestate"), Some("k=v"));
        if i == 0 {
            assert_eq!(r["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(r["parent_span_id"], "00f067aa0ba902b7");
            assert_ne!(r["span_id"], "00f067aa0ba902b7");
        } else {
            assert!(r.get("parent_span_id").is_none(), "{r}");
            assert_ne!(r["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        }
    }
}
both_drivers!(trace_context, trace_context);

/// Secrets never reach the log: query parameters, credential headers and configured headers are
/// redacted, whatever their case.
#[test]
fn secrets_are_redacted() {
    let up = Mock::ok("r");
    let dir = tempfile::tempdir().unwrap();
    let path = calls_path(&dir);
    let g = gateway(
        Driver::Uring,
        &format!(
            "{}\n{}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\n",
            log_table(
                &path,
                r#"headers = ["authorization", "x-api-key", "x-tenant-secret", "x-client", "cookie"]
                redact_headers = ["X-Tenant-Secret"]
                redact_query = ["Session_Id"]"#
            ),
            upstream("up", up.addr)
        ),
    );
    let a = addr(&g);
    let req = "GET /r?API_KEY=s3cr3t-1&keep=me&session_id=s3cr3t-2&token=s3cr3t-3 HTTP/1.1\r\n\
        Host: x\r\nAuthorization: Bearer s3cr3t-4\r\nX-Api-Key: s3cr3t-5\r\n\
        X-Tenant-Secret: s3cr3t-6\r\nCookie: sid=s3cr3t-7\r\nX-Client: cli/1\r\n\
        User-Agent: test-agent/2\r\n\r\n";
    assert_eq!(raw_request(a, req.as_bytes()).unwrap().status, 200);
    wait_written(&g, 1);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("s3cr3t"), "a secret reached the log: {text}");
    let r: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(
        r["query"],
        "API_KEY=[REDACTED]&keep=me&session_id=[REDACTED]&token=[REDACTED]"
    );
    let h = &r["headers"];
    for name in ["authorization", "x-api-key", "x-tenant-secret", "cookie"] {
        assert_eq!(h[name], "[REDACTED]", "{name}");
    }
    assert_eq!(h["x-client"], "cli/1");
    assert_eq!(r["user_agent"], "test-agent/2");
}

/// Rotation by size loses and splits no line: every request's record is in exactly one file.
#[test]
fn rotation_loses_no_line() {
    let up = Mock::ok("rot");
    let dir = tempfile::tempdir().unwrap();
    let path = calls_path(&dir);
    let g = gateway_workers(
        Driver::Uring,
        &format!(
            "[call_log]\n[call_log.file]\npath = {:?}\nmax_size = \"4KiB\"\nkeep = 10000\n{}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\n",
            path.display().to_string(),
            upstream("up", up.addr)
        ),
        2,
    );
    let a = addr(&g);
    let n_threads = 4;
    let per = 150;
    std::thread::scope(|s| {
        for t in 0..n_threads {
            s.spawn(move || {
                let mut c = Client::connect(a);
                for i in 0..per {
                    assert_eq!(c.get(&format!("/{t}/{i}")).status, 200);
                }
            });
        }
    });
    let total = (n_threads * per) as u64;
    wait_written(&g, total);
    let stats = g.call_log().unwrap();
    assert!(stats.rotations.load(std::sync::atomic::Ordering::Relaxed) >= 10);
    let files = rotated(&path);
    assert!(files.len() >= 10, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.ends_with('\n'),
            "a rotated file ends with a whole line"
        );
        assert!(
            text.len() <= 4096,
            "{} is {} bytes",
            f.display(),
            text.len()
        );
    }
    let recs = lines(&path);
    assert_eq!(recs.len() as u64, total);
    let paths: HashSet<String> = recs
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths.len() as u64, total, "every request once");
}

/// A sink that stops taking records (a FIFO nobody reads: its open never returns) holds up
/// nothing: requests are served as fast as without it, the writer still takes every record, and
/// the sink's losses are counted.
#[test]
fn stalled_sink_slows_nothing_and_counts_drops() {
    let up = Mock::ok("s");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stalled.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // Safety: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let g = gateway(
        Driver::Uring,
        &format!(
            "[call_log]\nsink_queue = 100\n[call_log.file]\npath = {:?}\n{}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\n",
            fifo.display().to_string(),
            upstream("up", up.addr)
        ),
    );
    let a = addr(&g);
    let mut c = Client::connect(a);
    let n = 3000;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        assert_eq!(c.get(&format!("/{i}")).status, 200);
        lat.push(t.elapsed());
    }
    lat.sort();
    let p99 = lat[n * 99 / 100];
    eprintln!("p99 with a stalled sink: {p99:?}");
    // Served at loopback speed (a shard blocked on the sink would not answer at all).
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    let stats = g.call_log().unwrap();
    wait_for("the writer took every record", || {
        stats.records.load(std::sync::atomic::Ordering::Relaxed) >= n as u64
    });
    wait_for("the stalled sink's losses counted", || {
        stats.dropped(Sink::File) + 100 >= n as u64
    });
    assert_eq!(stats.written(Sink::File), 0);
    assert_eq!(g.requests().log_dropped, 0, "no shard dropped a record");
    // Unblock the sink's open so its thread can finish.
    let _reader = std::fs::File::open(&fifo).unwrap();
}

/// A reload changes the sinks (a new file) without losing the records around it; turning records
/// on where the gateway started without them needs a restart and says so.
#[test]
fn reload_moves_the_file_and_refuses_turning_records_on() {
    let up = Mock::ok("re");
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.jsonl");
    let two = dir.path().join("two.jsonl");
    let routes = format!(
        "{}\n[[routes]]\npath_prefix = \"/\"\nupstream = \"up\"\n",
        upstream("up", up.addr)
    );
    let cfg = |p: &Path| format!("{}\n{routes}", log_table(p, ""));
    let g = gateway(Driver::Uring, &cfg(&one));
    let a = addr(&g);
    assert_eq!(get(a, "/1").status, 200);
    wait_written(&g, 1);
    let generation = g
        .reload(ringway::Config::from_toml(&cfg(&two)).unwrap())
        .unwrap();
    assert!(g.wait_applied(generation, IO_TIMEOUT));
    // The writer reconfigures at its next drain; keep calling until the new file has a record.
    let sent = std::cell::Cell::new(1u64);
    wait_for("a record in the new file", || {
        assert_eq!(get(a, "/2").status, 200);
        sent.set(sent.get() + 1);
        std::fs::read_to_string(&two).is_ok_and(|t| !t.is_empty())
    });
    // A client may read its answer before the gateway has ended the request.
    let sent = sent.get();
    wait_for("every request finished", || g.requests().finished >= sent);
    assert_eq!(g.requests().finished, sent);
    wait_written(&g, sent);
    assert_eq!((lines(&one).len() + lines(&two).len()) as u64, sent);

    let plain = gateway(Driver::Uring, &routes);
    let e = plain
        .reload(ringway::Config::from_toml(&cfg(&one)).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("call_log"), "{e}");
    assert!(e.to_string().contains("restart"), "{e}");
    // Analytics likewise, where the gateway started with a call log but without analytics.
    let store = format!(
        "[store]\npath = {:?}\n",
        dir.path().join("a.db").display().to_string()
    );
    let no_analytics = gateway(
        Driver::Uring,
        &format!("{store}[analytics]\nenabled = false\n{}", cfg(&one)),
    );
    let e = no_analytics
        .reload(ringway::Config::from_toml(&format!("{store}{}", cfg(&one))).unwrap())
        .unwrap_err();
    assert!(e.to_string().starts_with("analytics"), "{e}");
}

/// Under load, with every kind of outcome at once (served, parser refusals, a rate limit, an
/// upstream that refuses connections, clients that leave mid-request), the records equal the
/// requests and the status classes add up, over 2 shards.
#[test]
fn records_equal_requests_under_load() {
    let up = Mock::ok("load");
    let dead = dead_port();
    let dir = tempfile::tempdir().unwrap();
    let path = calls_path(&dir);
    let g = gateway_workers(
        Driver::Uring,
        &outcome_routes(&path, &up, &dead, 20, "/"),
        2,
    );
    let a = addr(&g);
    let per_thread = 100;
    let threads = 6;
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut c = Client::connect(a);
                for i in 0..per_thread {
                    match (t + i) % 5 {
                        0 => assert!(matches!(c.get("/limited").status, 200 | 429)),
                        1 => assert_eq!(get(a, "/dead").status, 502),
                        2 => assert_eq!(
                            raw_request(a, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
                                .unwrap()
                                .status,
                            400
                        ),
                        3 => {
                            let mut s = TcpStream::connect(a).unwrap();
                            s.write_all(
                                b"POST /x HTTP/1.1\r\nHost: t\r\ncontent-length: 9\r\n\r\nab",
                            )
                            .unwrap();
                            s.shutdown(std::net::Shutdown::Write).unwrap();
                            let _ = s.read_to_end(&mut Vec::new());
                        }
                        _ => assert_eq!(c.get(&format!("/ok/{t}/{i}")).status, 200),
                    }
                }
            });
        }
    });
    let sent = (threads * per_thread) as u64;
    // A client may read its answer before the gateway has ended the request.
    wait_for("every request finished", || g.requests().finished >= sent);
    let t = g.requests();
    assert_eq!(t.finished, sent, "{t:?}");
    wait_written(&g, sent);
    let recs = lines(&path);
    assert_eq!(recs.len() as u64, sent);
    let mut by_class = [0u64; 6];
    for r in &recs {
        by_class[(r["status"].as_u64().unwrap() / 100) as usize] += 1;
    }
    assert_eq!(by_class, t.by_class, "records and counters agree by class");
    assert_eq!(g.requests().log_dropped, 0);
}

/// The OTLP sink posts OTLP/HTTP JSON log records a collector accepts (the structure, ids as hex,
/// int64s as strings, semantic-convention attribute names), retries a collector that answers 503,
/// and counts what it delivered.
#[test]
fn otlp_sink_exports_log_records() {
    let up = Mock::ok("o");
    let posts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let p2 = posts.clone();
    let collector = Mock::start(move |_| {
        let n = p2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let status = if n == 0 {
            "503 Service Unavailable"
        } else {
            "200 OK"
        };
        Reply::Raw(format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\n{{}}").into_bytes())
    });
    let g = gateway(
        Driver::Uring,
        &format!(
            "[call_log]\n[call_log.otlp]\nendpoint = \"http://{}/v1/logs\"\nflush = \"50ms\"\nheaders = {{ x-collector-token = \"t0k\" }}\nservice_name = \"edge-1\"\n{}\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"up\"\n",
            collector.addr,
            upstream("up", up.addr)
        ),
    );
    let a = addr(&g);
    for i in 0..3 {
        assert_eq!(get(a, &format!("/o{i}?q=1")).status, 200);
    }
    let stats = g.call_log().unwrap();
    wait_for("3 records exported", || stats.written(Sink::Otlp) >= 3);
    let seen = collector.requests();
    assert!(seen.len() >= 2, "a 503 then a retry");
    let last = seen.last().unwrap();
    assert_eq!(last.method, "POST");
    assert_eq!(last.target, "/v1/logs");
    assert_eq!(last.header("content-type"), Some("application/json"));
    assert_eq!(last.header("x-collector-token"), Some("t0k"));
    let mut records = Vec::new();
    for req in seen.iter().skip(1) {
        let v: Value = serde_json::from_slice(&req.body).unwrap();
        let rl = &v["resourceLogs"][0];
        assert_eq!(rl["resource"]["attributes"][0]["key"], "service.name");
        assert_eq!(
            rl["resource"]["attributes"][0]["value"]["stringValue"],
            "edge-1"
        );
        assert_eq!(rl["scopeLogs"][0]["scope"]["name"], "ringway.call_log");
        records.extend(rl["scopeLogs"][0]["logRecords"].as_array().unwrap().clone());
    }
    assert_eq!(records.len(), 3);
    for r in &records {
        assert!(
            r["timeUnixNano"]
                .as_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit())
        );
        assert_eq!(r["severityNumber"], 9);
        assert_eq!(r["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(r["spanId"].as_str().unwrap().len(), 16);
        let attrs: std::collections::HashMap<String, Value> = r["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
            .collect();
        assert_eq!(attrs["http.request.method"]["stringValue"], "GET");
        assert_eq!(attrs["http.response.status_code"]["intValue"], "200");
        assert_eq!(attrs["http.route"]["stringValue"], "r");
        assert_eq!(attrs["url.query"]["stringValue"], "q=1");
        assert!(
            attrs["url.path"]["stringValue"]
                .as_str()
                .unwrap()
                .starts_with("/o")
        );
        assert_eq!(attrs["client.address"]["stringValue"], "127.0.0.1");
    }
    assert_eq!(stats.dropped(Sink::Otlp), 0);
}

/// `capture_body` keeps the first bytes of each body (chunk framing removed) with secret JSON
/// fields redacted; routes without it record no body; nothing of the capture reaches the wire.
fn body_capture(driver: Driver) {
    let up = Mock::start(|r| {
        let body = if r.target.starts_with("/cap") {
            r#"{"token":"s3cr3t-resp","ok":true,"pad":"0123456789"}"#
        } else {
            "plain"
        };
        Reply::Raw(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let path = calls_path(&dir);
    let g = gateway(
        driver,
        &format!(
            "{}\n{}\n[[routes]]\nname = \"cap\"\npath_prefix = \"/cap\"\nupstream = \"up\"\ncapture_body = 40\n[[routes]]\nname = \"plain\"\npath_prefix = \"/\"\nupstream = \"up\"\n",
            log_table(&path, ""),
            upstream("up", up.addr)
        ),
    );
    let a = addr(&g);
    let json = r#"{"user":"u","password":"s3cr3t-req","note":"a long tail past the cap"}"#;
    let req = format!(
        "POST /cap/1 HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
        json.len()
    );
    let r = raw_request(a, req.as_bytes()).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("s3cr3t-resp"),
        "the client gets the body unchanged"
    );
    let chunked = "POST /cap/2 HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n\
        b\r\n{\"secret\":\"\r\nc\r\ns3cr3t-chunk\r\n2\r\n\"}\r\n0\r\n\r\n";
    assert_eq!(raw_request(a, chunked.as_bytes()).unwrap().status, 200);
    let plain = format!(
        "POST /p HTTP/1.1\r\nHost: x\r\ncontent-length: {}\r\n\r\n{json}",
        json.len()
    );
    assert_eq!(raw_request(a, plain.as_bytes()).unwrap().status, 200);
    wait_written(&g, 3);
    // The upstream got the bodies whole.
    let seen = up.requests();
    assert_eq!(seen[0].body, json.as_bytes());
    assert_eq!(seen[1].body, br#"{"secret":"s3cr3t-chunk"}"#);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("s3cr3t"), "a secret reached the log: {text}");
    let recs = lines(&path);
    let by = |p: &str| recs.iter().find(|r| r["path"] == p).unwrap();
    let one = by("/cap/1");
    let rb = one["request_body"].as_str().unwrap();
    assert!(
        rb.starts_with(r#"{"user":"u","password":"[REDACTED]""#),
        "{rb}"
    );
    assert!(!rb.contains("tail"), "cut at 40 bytes: {rb}");
    assert!(
        one["response_body"]
            .as_str()
            .unwrap()
            .starts_with(r#"{"token":"[REDACTED]","ok":true"#)
    );
    assert_eq!(by("/cap/2")["request_body"], r#"{"secret":"[REDACTED]"}"#);
    assert!(by("/p").get("request_body").is_none());
    assert!(by("/p").get("response_body").is_none());
}
both_drivers!(body_capture, body_capture);

/// A managed service's routes take `capture_body` like the config file's (bounded, named on
/// error).
#[test]
fn managed_routes_take_capture_body() {
    let up = Mock::ok("m");
    let dir = tempfile::tempdir().unwrap();
    let m = common::admin::start(Driver::Uring, 1, &dir.path().join("c.db"), "[call_log]\n");
    let t = common::admin::s(
        &m.ok(201, "POST", "/api/v1/tenants", r#"{"name":"t"}"#),
        "id",
    );
    let body = |cap: u64| {
        serde_json::json!({"tenant_id": t, "name": format!("s{cap}"),
            "routes": [{"path_prefix": format!("/c{cap}"), "capture_body": cap}],
            "upstream": {"targets": [up.addr.to_string()]}})
        .to_string()
    };
    let (st, v, _) = m.api("POST", "/api/v1/services", Some(&body(100_000)));
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]["fields"].get("routes[0].capture_body").is_some(),
        "{v}"
    );
    let svc = m.ok(201, "POST", "/api/v1/services", &body(32));
    assert_eq!(svc["routes"][0]["capture_body"], 32);
    m.shutdown();
}
