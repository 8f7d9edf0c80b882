//! Test support: an in-process gateway on `127.0.0.1:0`, scriptable mock upstreams (blocking std
//! sockets, one thread per connection), and a small HTTP/1.1 client that checks framing.
//!
//! Nothing here sleeps to synchronise: waits are for sockets (accept/read) with timeouts that only
//! bound a failing test.

// The mock upstream runs on plain threads; a Mutex there is fine (the lint guards the gateway).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use ringway::{Config, Gateway, StartOptions};

pub mod admin;
pub mod pki;
pub mod providers;

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Which event-loop driver a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Driver {
    Uring,
    Epoll,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Uring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Generates `mod $name { #[test] fn io_uring() ; #[test] fn epoll() }` running `$body(driver)`.
#[macro_export]
macro_rules! both_drivers {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn io_uring() {
                ($body)($crate::common::Driver::Uring)
            }
            #[test]
            fn epoll() {
                ($body)($crate::common::Driver::Epoll)
            }
        }
    };
}

/// Starts a gateway from TOML text. `[server]` gets `listen`, `driver`, `workers` and a short tick
/// unless the text sets its own `[server]` table (then it must include them).
pub fn gateway(driver: Driver, toml: &str) -> Gateway {
    gateway_workers(driver, toml, 1)
}

pub fn gateway_workers(driver: Driver, toml: &str, workers: usize) -> Gateway {
    let text = if toml.contains("[server]") {
        toml.replace("[server]", &server_table(driver, workers))
    } else {
        format!("{}\n{toml}", server_table(driver, workers))
    };
    let config =
        Config::from_toml(&text).unwrap_or_else(|e| panic!("bad test config: {e}\n{text}"));
    let cpus = ringway::runtime::available_cpus().unwrap();
    Gateway::start(
        config,
        StartOptions {
            workers: Some(workers),
            cpus: Some(cpus),
        },
    )
    .expect("gateway start")
}

fn server_table(driver: Driver, workers: usize) -> String {
    server_table_at(driver, workers, "127.0.0.1:0")
}

/// A gateway with one worker listening on `listen` (to restart one on the address it had).
pub fn gateway_listen(driver: Driver, toml: &str, listen: SocketAddr) -> Gateway {
    let text = format!(
        "{}\n{toml}",
        server_table_at(driver, 1, &listen.to_string())
    );
    let config =
        Config::from_toml(&text).unwrap_or_else(|e| panic!("bad test config: {e}\n{text}"));
    Gateway::start(
        config,
        StartOptions {
            workers: Some(1),
            cpus: Some(ringway::runtime::available_cpus().unwrap()),
        },
    )
    .expect("gateway start")
}

fn server_table_at(driver: Driver, workers: usize, listen: &str) -> String {
    format!(
        "[server]\nlisten = [\"{listen}\"]\ndriver = \"{}\"\nworkers = {workers}\ntick = \"10ms\"\nshutdown_timeout = \"2s\"\n",
        driver.name()
    )
}

pub fn addr(g: &Gateway) -> SocketAddr {
    g.local_addrs()[0]
}

/// A request as the mock upstream saw it.
#[derive(Debug, Clone, Default)]
pub struct SeenRequest {
    pub method: String,
    pub target: String,
    pub version: u8,
    /// Header lines in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body as framed on the wire (chunked bodies keep their framing).
    pub raw_body: Vec<u8>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// Which upstream connection (0, 1, ...) carried it.
    pub conn: usize,
    pub head_raw: Vec<u8>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What the mock does with a request.
pub enum Reply {
    /// Write these bytes (a complete response) and keep the connection.
    Raw(Vec<u8>),
    /// Write these bytes, then close.
    RawThenClose(Vec<u8>),
    /// Close without answering.
    Close,
    /// Wait, then answer (for timeouts).
    Delay(Duration, Vec<u8>),
    /// Write the bytes, then keep the connection as a byte echo (for upgrades).
    Echo(Vec<u8>),
    /// Write the bytes, then go silent for the duration before closing (a stalled response).
    Stall(Vec<u8>, Duration),
    /// Write the first bytes, wait until the test passes the gate too, then write the rest and keep
    /// the connection (a response whose parts arrive apart, in an order the test controls).
    Gated(Vec<u8>, Gate, Vec<u8>),
}

/// A two-party meeting point like `std::sync::Barrier`, but bounded by [`IO_TIMEOUT`]: a gateway
/// that never forwards the request must fail the test, not hang it (and CI) forever.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<(u64, u32)>, std::sync::Condvar)>);

impl Gate {
    /// Waits until the other party arrives too; `false` after [`IO_TIMEOUT`] without it.
    pub fn meet(&self) -> bool {
        let (lock, cv) = &*self.0;
        let mut st = lock.lock().unwrap();
        let generation = st.0;
        st.1 += 1;
        if st.1 == 2 {
            *st = (generation + 1, 0);
            cv.notify_all();
            return true;
        }
        let (st, timeout) = cv
            .wait_timeout_while(st, IO_TIMEOUT, |st| st.0 == generation)
            .unwrap();
        !timeout.timed_out() || st.0 != generation
    }

    /// [`Gate::meet`] for the test's side: panics with `what` if the other side never came.
    pub fn expect(&self, what: &str) {
        assert!(self.meet(), "timed out waiting for {what}");
    }
}

/// A one-way gate for any number of waiters (a [`Gate`] pairs two): `wait` blocks until `open`,
/// bounded by [`IO_TIMEOUT`] so that a test that never opens it fails instead of hanging.
#[derive(Clone, Default)]
pub struct Latch(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Latch {
    pub fn open(&self) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }

    /// Waits until the latch is open; `false` after [`IO_TIMEOUT`] without it.
    pub fn wait(&self) -> bool {
        let (lock, cv) = &*self.0;
        let st = lock.lock().unwrap();
        let (st, _) = cv
            .wait_timeout_while(st, IO_TIMEOUT, |open| !*open)
            .unwrap();
        *st
    }
}

/// Waits (yielding, bounded by [`IO_TIMEOUT`]) until `cond` holds; panics naming `what` if it never
/// does.
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t = std::time::Instant::now();
    while !cond() {
        assert!(t.elapsed() < IO_TIMEOUT, "timed out waiting for {what}");
        thread::yield_now();
    }
}

/// A port that refuses connections for as long as this value lives: a TCP socket bound to
/// `127.0.0.1:0` that never listens, so a connect to it gets `ECONNREFUSED`, and since the port
/// stays bound (without `SO_REUSEADDR`/`SO_REUSEPORT`) no test running alongside can be given it.
/// (Binding a listener and dropping it frees the port for the next `bind(0)` to take.)
pub struct DeadPort {
    pub addr: SocketAddr,
    _socket: socket2::Socket,
}

pub fn dead_port() -> DeadPort {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let refused = TcpStream::connect(addr).map_err(|e| e.kind());
    assert_eq!(
        refused.err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "a bound, non-listening port must refuse"
    );
    assert!(
        TcpListener::bind(addr).is_err(),
        "the port must stay taken while the test runs"
    );
    DeadPort {
        addr,
        _socket: socket,
    }
}

pub fn ok(body: &str) -> Reply {
    Reply::Raw(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// A scriptable HTTP/1.1 upstream.
pub struct Mock {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    pub conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Mock {
    pub fn start(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> Mock {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (seen2, conns2, stop2) = (seen.clone(), conns.clone(), stop.clone());
        thread::spawn(move || {
            for s in l.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(s) = s else { continue };
                let id = conns2.fetch_add(1, Ordering::SeqCst);
                let (h, seen) = (handler.clone(), seen2.clone());
                thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || serve_mock(s, id, h, seen))
                    .unwrap();
            }
        });
        Mock {
            addr,
            seen,
            conns,
            stop,
        }
    }

    /// An upstream answering `200 ok` with `body` to everything.
    pub fn ok(body: &'static str) -> Mock {
        Mock::start(move |_| ok(body))
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> SeenRequest {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw no request")
    }

    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_mock(s: TcpStream, id: usize, handler: Arc<Handler>, seen: Arc<Mutex<Vec<SeenRequest>>>) {
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let Some(mut req) = read_request(&mut r) else {
            return;
        };
        req.conn = id;
        seen.lock().unwrap().push(req.clone());
        match handler(&req) {
            Reply::Raw(b) => {
                if w.write_all(&b).is_err() {
                    return;
                }
            }
            Reply::RawThenClose(b) => {
                let _ = w.write_all(&b);
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            Reply::Close => {
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            Reply::Delay(d, b) => {
                thread::sleep(d);
                if w.write_all(&b).is_err() {
                    return;
                }
            }
            Reply::Gated(first, gate, rest) => {
                let ok = w.write_all(&first).is_ok();
                if !gate.meet() || !ok || w.write_all(&rest).is_err() {
                    return;
                }
            }
            Reply::Stall(b, d) => {
                let _ = w.write_all(&b);
                thread::sleep(d);
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            Reply::Echo(b) => {
                if w.write_all(&b).is_err() {
                    return;
                }
                let mut buf = vec![0u8; 8192];
                let pending = r.buffer().to_vec();
                if !pending.is_empty() && w.write_all(&pending).is_err() {
                    return;
                }
                r.consume(pending.len());
                loop {
                    match r.get_mut().read(&mut buf) {
                        Ok(0) | Err(_) => {
                            let _ = w.shutdown(Shutdown::Write);
                            return;
                        }
                        Ok(n) => {
                            if w.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn owned_headers(h: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    h.iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Waits (bounded by IO_TIMEOUT) until the mock has seen a request, e.g. before acting while it is
/// in flight.
pub fn wait_until_seen(up: &Mock) {
    let t = std::time::Instant::now();
    while up.requests().is_empty() && t.elapsed() < IO_TIMEOUT {
        std::thread::yield_now();
    }
}

/// Reads one request (head + body) from a buffered reader. `None` on EOF or garbage.
pub fn read_request<R: BufRead>(r: &mut R) -> Option<SeenRequest> {
    let head = read_head_bytes(r)?;
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&head).ok()?;
    let mut out = SeenRequest {
        method: req.method?.to_string(),
        target: req.path?.to_string(),
        version: req.version?,
        headers: owned_headers(req.headers),
        head_raw: head.clone(),
        ..Default::default()
    };
    let te = out
        .header("transfer-encoding")
        .map(|v| v.to_ascii_lowercase());
    if te.as_deref() == Some("chunked") {
        let (raw, body) = read_chunked(r)?;
        out.raw_body = raw;
        out.body = body;
    } else if let Some(cl) = out.header("content-length") {
        let n: usize = cl.trim().parse().ok()?;
        let mut body = vec![0u8; n];
        r.read_exact(&mut body).ok()?;
        out.raw_body = body.clone();
        out.body = body;
    }
    Some(out)
}

fn read_head_bytes<R: BufRead>(r: &mut R) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            if head.len() == line.len() {
                head.clear();
                continue;
            }
            return Some(head);
        }
        if head.len() > 1 << 20 {
            return None;
        }
    }
}

/// Reads a chunked body: (bytes as framed, decoded data).
fn read_chunked<R: BufRead>(r: &mut R) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut raw = Vec::new();
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).ok()?;
        raw.extend_from_slice(&line);
        let s = std::str::from_utf8(&line).ok()?;
        let size_str = s.trim_end().split(';').next()?.trim();
        let size = usize::from_str_radix(size_str, 16).ok()?;
        if size == 0 {
            loop {
                let mut t = Vec::new();
                r.read_until(b'\n', &mut t).ok()?;
                raw.extend_from_slice(&t);
                if t == b"\r\n" || t.is_empty() {
                    return Some((raw, data));
                }
            }
        }
        let mut chunk = vec![0u8; size + 2];
        r.read_exact(&mut chunk).ok()?;
        raw.extend_from_slice(&chunk);
        data.extend_from_slice(&chunk[..size]);
    }
}

/// A response as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub interim: Vec<u16>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `code` of a JSON error body.
    pub fn error_code(&self) -> String {
        let t = self.text();
        let start = t.find("\"code\":\"").map(|i| i + 8).unwrap_or(0);
        t[start..].split('"').next().unwrap_or("").to_string()
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A keep-alive client connection.
pub struct Client {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    /// Sends a GET with Host and waits for the response.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response(false).expect("response")
    }

    /// Reads one response. `head_request`: the request was HEAD (no body).
    pub fn response(&mut self, head_request: bool) -> Option<Response> {
        read_response(&mut self.r, head_request)
    }

    /// True when the server closed the connection (EOF with no further bytes).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0) | Err(_))
    }
}

pub fn read_response<R: BufRead>(r: &mut R, head_request: bool) -> Option<Response> {
    let mut interim = Vec::new();
    loop {
        let head = read_head_bytes(r)?;
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(&head).ok()?;
        let status = resp.code?;
        let mut out = Response {
            status,
            version: resp.version?,
            headers: owned_headers(resp.headers),
            ..Default::default()
        };
        if (100..200).contains(&status) && status != 101 {
            interim.push(status);
            continue;
        }
        out.interim = interim;
        if head_request || status == 204 || status == 304 || status == 101 {
            return Some(out);
        }
        let te = out
            .header("transfer-encoding")
            .map(|v| v.to_ascii_lowercase());
        if te.as_deref() == Some("chunked") {
            out.body = read_chunked(r)?.1;
        } else if let Some(cl) = out.header("content-length") {
            let n: usize = cl.trim().parse().ok()?;
            let mut body = vec![0u8; n];
            r.read_exact(&mut body).ok()?;
            out.body = body;
        } else {
            r.read_to_end(&mut out.body).ok()?;
        }
        return Some(out);
    }
}

/// Sends raw bytes on a new connection, half-closes nothing, and reads one response.
pub fn raw_request(addr: SocketAddr, bytes: &[u8]) -> Option<Response> {
    let mut c = Client::connect(addr);
    c.send(bytes);
    c.response(bytes.starts_with(b"HEAD "))
}

/// GETs `/` on new connections (the kernel spreads them over the shards) until `in_a_row`
/// consecutive responses satisfy `pred`; returns the last of them, or `None` after IO_TIMEOUT.
/// Between misses it waits 10 ms: what it waits for (a health check, a breaker) runs on a timer.
pub fn get_until(
    at: SocketAddr,
    in_a_row: usize,
    pred: impl Fn(&Response) -> bool,
) -> Option<Response> {
    let t = std::time::Instant::now();
    let mut streak = 0;
    while t.elapsed() < IO_TIMEOUT {
        let r = get(at, "/");
        if pred(&r) {
            streak += 1;
            if streak == in_a_row {
                return Some(r);
            }
        } else {
            streak = 0;
            thread::sleep(Duration::from_millis(10));
        }
    }
    None
}

/// One GET on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    Client::connect(addr).get(path)
}

/// `[upstreams.NAME] targets = ["ADDR"]` lines.
pub fn upstream(name: &str, addr: SocketAddr) -> String {
    format!("[upstreams.{name}]\ntargets = [\"{addr}\"]\n")
}

/// Current RSS of a process in KiB (0 if it is gone).
pub fn rss_kib_of(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

/// Parses `k: v` header pairs into a map (lower-case keys).
pub fn header_map(h: &[(String, String)]) -> HashMap<String, String> {
    h.iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect()
}

/// The Python that runs the SDK and browser scripts: `$RINGWAY_PYTHON`, else the repository's
/// `.venv` (made by `scripts/test-deps.sh`).
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("RINGWAY_PYTHON") {
        return std::path::PathBuf::from(p);
    }
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    assert!(
        venv.exists(),
        "no Python with the SDKs and selenium: run scripts/test-deps.sh, or set RINGWAY_PYTHON"
    );
    venv
}
