//! Logging never stalls a shard: with stderr a pipe nobody reads (a stuck log shipper), requests
//! that each log a warning are still answered at once, and the lines that could not be written are
//! counted and reported once the pipe drains.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_stuck_log_pipe_does_not_stall_requests() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    // Bound without listening: connects are refused (each request logs a warning).
    let hold = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    drop(dead);
    let _ = hold.bind(&dead_addr.into());
    let dir = std::env::temp_dir().join(format!("ringway-logging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n[log]\nbuffer_lines = 64\n{}\n[[routes]]\nupstream = \"dead\"\n",
            upstream("dead", dead_addr)
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringway"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let listen = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no listening line"
        );
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split([',', ' ', '\n']).next().unwrap().to_string();
        }
    };
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    // Nobody reads stderr from here on: 64 KiB of pipe fill after a few hundred warnings.
    let started = Instant::now();
    let mut c = Client::connect(addr);
    for i in 0..1000 {
        let r = c.get(&format!("/outage/{i}"));
        assert_eq!(r.status, 502);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "1000 refused requests took {took:?}: the shard waited for the log pipe"
    );
    // The pipe drains again: the drops are reported (within a second or two: the check runs
    // once a second on the main thread).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(20);
    let mut reported = false;
    while let Ok(l) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        if l.contains("log lines dropped") {
            reported = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(reported, "dropped log lines were not reported");
}

/// No provider key reaches a log line, at debug level, whatever happens to it (used, refused
/// and disabled, an AI call failing).
#[test]
fn no_provider_key_in_any_log_line() {
    const KEY: &str = "sk-log-secret-7f3a9c";
    let provider = Mock::start(|r| {
        if r.header("authorization") == Some(&format!("Bearer {KEY}")) {
            common::providers::json_reply(
                401,
                &serde_json::json!({"error": {"message": "Incorrect API key provided: sk-log-s...9c"}}),
            )
        } else {
            common::providers::openai(r)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\
             [ai.providers.oa]\nkind = \"compatible\"\nbase_url = \"http://{}\"\nkeys_env = [\"RINGWAY_TEST_PROVIDER_KEY\"]\n\
             [ai.models.fast]\ntargets = [{{ provider = \"oa\", model = \"m\" }}]\n\
             [[routes]]\npath_prefix = \"/\"\nai = {{}}\n",
            provider.addr
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringway"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "debug")
        .env("RINGWAY_TEST_PROVIDER_KEY", KEY)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    let addr: std::net::SocketAddr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no listening line"
        );
        lines.push(line.clone());
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest
                .split([',', ' ', '\n'])
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    let body = r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#;
    for _ in 0..3 {
        let r = raw_request(
            addr,
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        assert!(r.status == 502 || r.status == 503, "{}", r.text());
    }
    // Stop it and read every line it wrote.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    lines.extend(stderr.lines().map_while(Result::ok));
    let _ = child.wait();
    let all = lines.concat();
    assert!(
        all.contains("refused one of its keys"),
        "the disabled key is reported: {all}"
    );
    assert!(!all.contains(KEY), "a provider key in the log:\n{all}");
}
