//! Circuit breakers and concurrency caps with real sockets over two shards: trips node-wide, rejects
//! fast with Retry-After, admits a bounded number of probes, closes after recovery; fallback
//! upstreams; max_in_flight.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Mock whose answer is 500 while `mode` is 0, 200 while 1, and 200 after a delay while 2.
fn switchable() -> (Mock, Arc<AtomicU32>) {
    let mode = Arc::new(AtomicU32::new(0));
    let m2 = mode.clone();
    let m = Mock::start(move |_| match m2.load(Ordering::SeqCst) {
        0 => Reply::Raw(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail".to_vec(),
        ),
        1 => ok("fine"),
        _ => Reply::Delay(
            Duration::from_millis(400),
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow".to_vec(),
        ),
    });
    (m, mode)
}

fn config(up: SocketAddr, breaker: &str, extra: &str) -> String {
    format!(
        "[upstreams.be]\ntargets = [\"{up}\"]\n[upstreams.be.breaker]\n{breaker}\n{extra}[[routes]]\nupstream = \"be\"\n"
    )
}

const BREAKER: &str = "consecutive_failures = 5\nfailure_statuses = [500]\nopen_duration = \"400ms\"\nmax_open_duration = \"2s\"\nhalf_open_probes = 2";

fn until(at: SocketAddr, pred: impl Fn(&Response) -> bool) -> Response {
    get_until(at, 1, pred).expect("condition not reached in time")
}

both_drivers!(trips_on_every_shard_and_recovers, |d| {
    let (up, mode) = switchable();
    let g = gateway_workers(d, &config(up.addr, BREAKER, ""), 2);
    let at = addr(&g);
    let r = until(at, |r| r.status == 503);
    assert_eq!(r.error_code(), "circuit_open");
    assert_eq!(r.header("x-ringway-breaker"), Some("be"));
    assert!(r.header("retry-after").is_some());
    // Open on both shards: 40 new connections (spread by SO_REUSEPORT) are all refused, fast, and
    // none reaches the upstream.
    let seen = up.requests().len();
    let t = Instant::now();
    for _ in 0..40 {
        assert_eq!(get(at, "/").status, 503);
    }
    assert!(t.elapsed() < Duration::from_millis(400));
    assert_eq!(
        up.requests().len(),
        seen,
        "an open breaker must not let requests through"
    );
    // Recovery: after the open time, probes succeed and the breaker closes.
    mode.store(1, Ordering::SeqCst);
    let r = until(at, |r| r.status == 200);
    assert_eq!(r.text(), "fine");
    for _ in 0..20 {
        assert_eq!(get(at, "/").status, 200);
    }
});

both_drivers!(half_open_admits_only_the_probes, |d| {
    let (up, mode) = switchable();
    let g = gateway_workers(d, &config(up.addr, BREAKER, ""), 2);
    let at = addr(&g);
    until(at, |r| r.status == 503);
    // Recovered but slow: probes stay in flight while more requests arrive.
    mode.store(2, Ordering::SeqCst);
    let before = up.requests().len();
    // Wait out the open time (400 ms) before firing the burst.
    std::thread::sleep(Duration::from_millis(450));
    let burst: Vec<_> = (0..12)
        .map(|_| std::thread::spawn(move || get(at, "/").status))
        .collect();
    let statuses: Vec<u16> = burst.into_iter().map(|h| h.join().unwrap()).collect();
    let through = up.requests().len() - before;
    assert!(
        through <= 2,
        "{through} requests reached the upstream while half-open with 2 probes: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), through);
    // The probes succeeded: closed again.
    mode.store(1, Ordering::SeqCst);
    let r = until(at, |r| r.status == 200);
    assert_eq!(r.text(), "fine");
});

both_drivers!(open_breaker_uses_the_fallback_upstream, |d| {
    let (up, _) = switchable();
    let spare = Mock::ok("spare");
    let g = gateway(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{}\"]\n[upstreams.be.breaker]\n{BREAKER}\n{}[[routes]]\nupstream = \"be\"\nfallback_upstream = \"spare\"\n",
            up.addr,
            upstream("spare", spare.addr)
        ),
    );
    let r = until(addr(&g), |r| r.text() == "spare");
    assert_eq!(r.status, 200);
});

both_drivers!(open_breaker_serves_the_fallback_response, |d| {
    let (up, mode) = switchable();
    let g = gateway(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{}\"]\n[upstreams.be.breaker]\n{BREAKER}\n[[routes]]\nupstream = \"be\"\n[routes.fallback_respond]\nstatus = 200\nbody = \"cached catalogue\"\nheaders = {{ \"cache-control\" = \"no-store\" }}\n",
            up.addr
        ),
    );
    let r = until(addr(&g), |r| r.text() == "cached catalogue");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ringway-breaker"), Some("be"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(!r.closes());
    // Recovered: the upstream answers again once probes succeed.
    mode.store(1, Ordering::SeqCst);
    until(addr(&g), |r| r.text() == "fine");
});

both_drivers!(max_in_flight_refuses_the_excess, |d| {
    let slow = Mock::start(|_| {
        Reply::Delay(
            Duration::from_millis(400),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        )
    });
    // Two shards: the cap is node-wide, however the connections are spread.
    let g = gateway_workers(
        d,
        &config(
            slow.addr,
            "max_in_flight = 2\nconsecutive_failures = 0\nfailure_ratio = 0.0",
            "",
        ),
        2,
    );
    let at = addr(&g);
    let burst: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || get(at, "/")))
        .collect();
    let rs: Vec<Response> = burst.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = rs.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = rs.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        ok,
        2,
        "{:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 4);
    assert!(
        refused
            .iter()
            .all(|r| r.error_code() == "concurrency_limit")
    );
});

#[test]
fn breaker_config_errors_name_the_field() {
    let bad = |b: &str| {
        ringway::Config::from_toml(&config("127.0.0.1:1".parse().unwrap(), b, ""))
            .unwrap_err()
            .to_string()
    };
    assert!(bad("failure_ratio = 1.5").contains("upstreams.be.breaker.failure_ratio"));
    assert!(
        bad("open_duration = \"10s\"\nmax_open_duration = \"1s\"").contains("max_open_duration")
    );
    assert!(bad("half_open_probes = 0").contains("half_open_probes"));
    let err = ringway::Config::from_toml("[upstreams.be]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"be\"\nfallback_upstream = \"nope\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("routes[0].fallback_upstream"), "{err}");
    let err = ringway::Config::from_toml("[upstreams.be]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"be\"\nfallback_upstream = \"be\"\n[routes.fallback_respond]\nbody = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("routes[0].fallback_respond"), "{err}");
    let err = ringway::Config::from_toml("[upstreams.be]\ntargets = [\"127.0.0.1:1\"]\n[[routes]]\nupstream = \"be\"\n[routes.fallback_respond]\nstatus = 99\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("routes[0].fallback_respond.status"),
        "{err}"
    );
}
