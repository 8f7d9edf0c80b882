//! Circuit breakers and concurrency caps with real sockets over two shards: trips node-wide, rejects
//! fast with Retry-After, admits exactly `half_open_probes` probes, closes when they succeed and
//! reopens when one fails; fallback upstreams; max_in_flight.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Mock whose answer is 500 while `mode` is 0, 200 while 1, and 200 once the latch opens while 2
/// (a probe held in flight for as long as the test wants).
fn switchable() -> (Mock, Arc<AtomicU32>, Latch) {
    let mode = Arc::new(AtomicU32::new(0));
    let latch = Latch::default();
    let (m2, l2) = (mode.clone(), latch.clone());
    let m = Mock::start(move |_| match m2.load(Ordering::SeqCst) {
        0 => Reply::Raw(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail".to_vec(),
        ),
        1 => ok("fine"),
        _ => {
            assert!(l2.wait(), "the test never released the held probes");
            ok("fine")
        }
    });
    (m, mode, latch)
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
    let (up, mode, _) = switchable();
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

/// Like [`BREAKER`], with a short open time (this test waits it out twice).
const QUICK: &str = "consecutive_failures = 5\nfailure_statuses = [500]\nopen_duration = \"100ms\"\nmax_open_duration = \"1s\"\nhalf_open_probes = 2";

/// Polls on new connections until one is let through (the open time is over), then returns its
/// response; refusals must be the breaker's.
fn poll_past_breaker(at: SocketAddr) -> Response {
    get_until(at, 1, |r| {
        assert!(r.status != 503 || r.error_code() == "circuit_open", "{r:?}");
        r.status != 503
    })
    .expect("the breaker never let a request through")
}

both_drivers!(half_open_admits_only_the_probes, |d| {
    let (up, mode, release) = switchable();
    let g = gateway_workers(d, &config(up.addr, QUICK, ""), 2);
    let at = addr(&g);
    until(at, |r| r.status == 503);

    // Half-open: two pollers (spread over the shards) each get through once the open time is over,
    // and the mock holds both probes in flight.
    mode.store(2, Ordering::SeqCst);
    let before = up.requests().len();
    let pollers: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || poll_past_breaker(at)))
        .collect();
    wait_for("both half-open probes at the upstream", || {
        up.requests().len() == before + 2
    });
    // No permit left: everything else is refused without reaching the upstream (which would now
    // answer at once, so a request let through shows as a 200 here rather than a hang).
    mode.store(1, Ordering::SeqCst);
    for _ in 0..12 {
        let r = get(at, "/");
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (503, "circuit_open"),
            "a request beyond the probes was let through while half-open"
        );
    }
    assert_eq!(
        up.requests().len() - before,
        2,
        "exactly half_open_probes requests reach the upstream while half-open"
    );
    // Both probes succeed: closed again, so the very next requests all go through.
    release.open();
    for p in pollers {
        assert_eq!(p.join().unwrap().text(), "fine");
    }
    for _ in 0..10 {
        assert_eq!(
            get(at, "/").text(),
            "fine",
            "closed after the probes succeeded"
        );
    }
    assert_eq!(up.requests().len() - before, 12);

    // Trip it again; this time the first probe fails and the breaker reopens at once: the second
    // probe permit is never used.
    mode.store(0, Ordering::SeqCst);
    until(at, |r| r.status == 503);
    let before = up.requests().len();
    assert_eq!(
        poll_past_breaker(at).status,
        500,
        "the probe reached the upstream"
    );
    for _ in 0..12 {
        let r = get(at, "/");
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (503, "circuit_open"),
            "open again after the failed probe"
        );
    }
    assert_eq!(
        up.requests().len() - before,
        1,
        "one failed probe reopens the breaker"
    );
});

both_drivers!(open_breaker_uses_the_fallback_upstream, |d| {
    let (up, ..) = switchable();
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
    let (up, mode, _) = switchable();
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
