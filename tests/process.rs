//! The `ringway` binary as users run it: large bodies streamed with bounded memory, SIGHUP reload,
//! SIGTERM drain, `ringway check`, and config errors that name the field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::*;

struct Proc {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    config: PathBuf,
}

impl Proc {
    fn start(config_text: &str, args: &[&str]) -> Proc {
        Proc::start_with(config_text, args, Stdio::inherit())
    }

    /// [`Proc::start`] with the child's standard output going to `stdout`.
    fn start_with(config_text: &str, args: &[&str], stdout: Stdio) -> Proc {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ringway-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(&config, config_text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringway"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = wait_line(&rx, "ringway listening");
        let listen = line
            .split("listen=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        let addr = listen.split(',').next().unwrap().parse().unwrap();
        Proc {
            child,
            addr,
            lines: rx,
            config,
        }
    }

    fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn signal(&self, sig: i32) {
        // Safety: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn wait_exit(&mut self) -> i32 {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(t.elapsed() < IO_TIMEOUT, "gateway did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.config.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let end = Instant::now() + IO_TIMEOUT;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(_) => {}
            Err(_) => panic!("no log line containing {needle:?}"),
        }
    }
}

fn config(driver: &str, up: SocketAddr, extra: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\ndriver = \"{driver}\"\ntick = \"10ms\"\nshutdown_timeout = \"5s\"\n[http]\nmax_body_size = \"64MiB\"\n{}\n[[routes]]\nupstream = \"be\"\n{extra}",
        upstream("be", up)
    )
}

const TEN_MIB: usize = 10 * 1024 * 1024;

/// Samples the gateway's RSS until stopped; returns the peak.
fn sample_rss(p: &Proc) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let pid = p.child.id();
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut peak = 0;
        while !s2.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib_of(pid));
            // Sampling interval of a measurement, not synchronisation.
            std::thread::sleep(Duration::from_millis(2));
        }
        peak
    });
    (stop, h)
}

fn large_bodies(driver: &str) {
    let download = Arc::new(bytes(TEN_MIB, 99));
    let dl = download.clone();
    let up = Mock::start(move |req| {
        let mut head = format!(
            "HTTP/1.1 200 OK\r\nX-Got-Len: {}\r\nX-Got-Sha: {}\r\nContent-Length: {}\r\n\r\n",
            req.body.len(),
            hex(&sha256(&req.body)),
            dl.len()
        )
        .into_bytes();
        head.extend_from_slice(&dl);
        Reply::Raw(head)
    });
    let p = Proc::start(&config(driver, up.addr, ""), &[]);
    // Warm up so the baseline includes the shard's buffers.
    assert_eq!(get(p.addr, "/warm").status, 200);
    let base = p.rss_kib();
    let (stop, peak) = sample_rss(&p);
    let upload = bytes(TEN_MIB, 5);

    // Content-Length upload, 10 MiB response.
    let mut c = Client::connect(p.addr);
    let writer = {
        let mut w = c.w.try_clone().unwrap();
        let upload = upload.clone();
        std::thread::spawn(move || {
            w.write_all(
                format!(
                    "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
                    upload.len()
                )
                .as_bytes(),
            )
            .unwrap();
            w.write_all(&upload).unwrap();
        })
    };
    let r = c.response(false).unwrap();
    writer.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-got-len"), Some(TEN_MIB.to_string().as_str()));
    assert_eq!(r.header("x-got-sha"), Some(hex(&sha256(&upload)).as_str()));
    assert_eq!(sha256(&r.body), sha256(&download));

    // Chunked upload on the same connection.
    let writer = {
        let mut w = c.w.try_clone().unwrap();
        let upload = upload.clone();
        std::thread::spawn(move || {
            w.write_all(b"POST /up2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            for piece in upload.chunks(100_000) {
                w.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .unwrap();
                w.write_all(piece).unwrap();
                w.write_all(b"\r\n").unwrap();
            }
            w.write_all(b"0\r\n\r\n").unwrap();
        })
    };
    let r = c.response(false).unwrap();
    writer.join().unwrap();
    assert_eq!(r.header("x-got-sha"), Some(hex(&sha256(&upload)).as_str()));
    assert_eq!(sha256(&r.body), sha256(&download));

    stop.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();
    // Streaming, not buffering: 40 MiB moved through the gateway, its memory grew by far less than
    // one body.
    assert!(
        peak < base + 4 * 1024,
        "gateway RSS grew from {base} KiB to {peak} KiB while streaming 10 MiB bodies"
    );
    eprintln!("{driver}: RSS {base} KiB at rest, {peak} KiB peak while streaming");
}

#[test]
fn large_bodies_stream_with_bounded_memory_io_uring() {
    large_bodies("io_uring");
}

#[test]
fn large_bodies_stream_with_bounded_memory_epoll() {
    large_bodies("epoll");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn sighup_reloads_and_rejects_bad_files() {
    let a = Mock::ok("A");
    let b = Mock::ok("B");
    let p = Proc::start(&config("auto", a.addr, ""), &[]);
    assert_eq!(get(p.addr, "/").text(), "A");
    // Point the listener at the same port in the new file; [server] changes need a restart anyway.
    let new = config(
        "auto",
        a.addr,
        &format!(
            "{}\n[[routes]]\npath_prefix = \"/b\"\nupstream = \"b\"\n",
            upstream("b", b.addr)
        ),
    );
    std::fs::write(&p.config, new).unwrap();
    p.signal(libc::SIGHUP);
    wait_line(&p.lines, "config reloaded");
    let t = Instant::now();
    while get(p.addr, "/b").text() != "B" {
        assert!(t.elapsed() < IO_TIMEOUT, "new route never served");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A broken file is refused with the field named, and the running config stays.
    std::fs::write(
        &p.config,
        config(
            "auto",
            a.addr,
            "[[routes]]\npath_prefix = \"/c\"\nupstream = \"missing\"\n",
        ),
    )
    .unwrap();
    p.signal(libc::SIGHUP);
    let line = wait_line(&p.lines, "config reload rejected");
    assert!(line.contains("routes[1].upstream"), "{line}");
    assert_eq!(get(p.addr, "/b").text(), "B");
    assert_eq!(get(p.addr, "/").text(), "A");
}

#[test]
fn sigterm_drains_then_exits() {
    let up = Mock::start(|req| match req.target.as_str() {
        "/slow" => Reply::Delay(
            Duration::from_millis(400),
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone".to_vec(),
        ),
        _ => ok("fast"),
    });
    let mut p = Proc::start(&config("auto", up.addr, ""), &[]);
    let mut busy = Client::connect(p.addr);
    busy.send(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
    wait_until_seen(&up);
    p.signal(libc::SIGTERM);
    let r = busy.response(false).unwrap();
    assert_eq!(r.text(), "done");
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn second_signal_exits_at_once() {
    let up = Mock::start(|_| {
        Reply::Delay(
            Duration::from_secs(5),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )
    });
    let mut p = Proc::start(&config("auto", up.addr, ""), &[]);
    let mut busy = Client::connect(p.addr);
    busy.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    wait_until_seen(&up);
    p.signal(libc::SIGINT);
    wait_line(&p.lines, "shutting down");
    p.signal(libc::SIGINT);
    let t = Instant::now();
    assert_eq!(p.wait_exit(), 130);
    assert!(t.elapsed() < Duration::from_secs(3));
}

/// Runs `ringway check` on `text`: (success, stdout, stderr).
fn check(dir: &std::path::Path, text: &str) -> (bool, String, String) {
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringway"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_routes_and_host_report() {
    let dir = std::env::temp_dir().join(format!("ringway-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, text, _) = check(
        &dir,
        "[upstreams.api]\ntargets = [\"127.0.0.1:9\"]\n[[routes]]\nname = \"r1\"\nhosts = [\"*.example.com\"]\npath_prefix = \"/api/\"\nupstream = \"api\"\n",
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("r1") && text.contains("*.example.com") && text.contains("/api/*"),
        "{text}"
    );
    assert!(text.contains("io_uring:"), "{text}");
    assert!(text.contains("RLIMIT_NOFILE"), "{text}");
    // A bad file: non-zero exit, the field named.
    let (ok, _, err) = check(
        &dir,
        "[server]\nworkers = 2\nlisten = [\"nonsense\"]\n[[routes]]\nupstream = \"x\"\n",
    );
    assert!(!ok);
    assert!(err.contains("server.listen[0]"), "{err}");
    // Unknown keys are errors, with their location.
    let (ok, _, err) = check(&dir, "[server]\nworkerz = 2\n");
    assert!(!ok);
    assert!(err.contains("workerz"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn proxy_subcommand_runs_without_config() {
    let up = Mock::ok("direct");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringway"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.addr.to_string(),
            "--workers",
            "1",
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr: SocketAddr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no listening line"
        );
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    assert_eq!(get(addr, "/").text(), "direct");
    let _ = child.kill();
    let _ = child.wait();
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
}

/// Limit tables are reserved at load but only become resident as keys arrive: forty idle limits
/// of 65,536 keys each (80 MiB of node tables, 24 MiB of shard tables) cost next to nothing.
#[test]
fn idle_rate_limit_tables_stay_out_of_memory() {
    let up = Mock::ok("x");
    let mut text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n{}",
        upstream("be", up.addr)
    );
    for i in 0..20 {
        text += &format!(
            "[[routes]]\npath_prefix = \"/r{i}/\"\nupstream = \"be\"\n[[routes.rate_limits]]\nkey = \"header:x-api-key\"\nlimit = 10\nper = \"second\"\n[[routes.rate_limits]]\nalgorithm = \"sliding_window\"\nlimit = 1000\nper = \"hour\"\n"
        );
    }
    let p = Proc::start(&text, &[]);
    let mut c = Client::connect(p.addr);
    for i in 0..20 {
        assert_eq!(c.get(&format!("/r{i}/")).status, 200);
    }
    let rss = p.rss_kib();
    eprintln!("RSS with 40 idle limit tables: {rss} KiB");
    assert!(rss < 32 * 1024, "RSS {rss} KiB with 40 idle limit tables");
}

/// `call_log.stdout` writes one JSON line per call to the process's standard output; when
/// nobody reads that pipe (it fills at 64 KiB), requests are served all the same.
#[test]
fn call_log_to_stdout_and_a_stdout_nobody_reads() {
    let up = Mock::ok("s");
    for read_it in [true, false] {
        let mut p = Proc::start_with(
            &config(
                "io_uring",
                up.addr,
                "path_prefix = \"/\"\n[call_log]\nstdout = true\nsink_queue = 1000\n",
            ),
            &[],
            Stdio::piped(),
        );
        let stdout = p.child.stdout.take().unwrap();
        let mut c = Client::connect(p.addr);
        if read_it {
            for i in 0..3 {
                assert_eq!(c.get(&format!("/s{i}")).status, 200);
            }
            let mut lines = BufReader::new(stdout).lines();
            for i in 0..3 {
                let l = lines.next().unwrap().unwrap();
                let v: serde_json::Value = serde_json::from_str(&l).unwrap();
                assert_eq!(v["path"], format!("/s{i}"));
                assert_eq!(v["status"], 200);
            }
        } else {
            // ~8 MB of lines into a pipe that holds 64 KiB: the sink blocks, the shard does not.
            let t = Instant::now();
            for i in 0..20_000 {
                assert_eq!(c.get(&format!("/n{i}")).status, 200);
            }
            assert!(t.elapsed() < Duration::from_secs(60));
            drop(stdout);
        }
    }
}
