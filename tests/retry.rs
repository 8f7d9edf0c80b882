//! Retry policy through the gateway: failed tries move to another target, non-idempotent requests
//! are not repeated unless the route opts in, timeouts per try, and the budget holds in an outage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn unavailable() -> Mock {
    Mock::start(|_| {
        Reply::Raw(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown".to_vec())
    })
}

fn config(targets: &[SocketAddr], retry: &str, route_extra: &str) -> String {
    let t: Vec<String> = targets.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[upstreams.be]\ntargets = [{}]\n[upstreams.be.retry]\n{retry}\n[[routes]]\nupstream = \"be\"\n{route_extra}\n",
        t.join(", ")
    )
}

both_drivers!(status_retry_moves_to_another_target, |d| {
    let bad = unavailable();
    let good = Mock::ok("good");
    let g = gateway(
        d,
        &config(
            &[bad.addr, good.addr],
            "on = [\"status\"]\nstatuses = [503]\nattempts = 1\nbackoff_base = \"0ms\"\nbackoff_max = \"0ms\"\nbudget_min_per_sec = 1000",
            "",
        ),
    );
    for _ in 0..10 {
        let r = get(addr(&g), "/");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "good");
    }
    // Round robin sent about half the first tries to the bad target; each was retried once.
    assert!(!bad.requests().is_empty());
});

both_drivers!(post_is_not_retried_unless_the_route_opts_in, |d| {
    let bad = unavailable();
    let good = Mock::ok("good");
    let retry = "on = [\"status\"]\nattempts = 1\nbackoff_base = \"0ms\"\nbackoff_max = \"0ms\"\nbudget_min_per_sec = 1000";
    let post = |at| {
        raw_request(
            at,
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi",
        )
        .unwrap()
        .status
    };
    let g = gateway(d, &config(&[bad.addr, good.addr], retry, ""));
    let statuses: Vec<u16> = (0..6).map(|_| post(addr(&g))).collect();
    assert!(
        statuses.contains(&503),
        "a POST that got 503 must not be retried: {statuses:?}"
    );
    drop(g);
    let g = gateway(
        d,
        &config(&[bad.addr, good.addr], retry, "retry_non_idempotent = true"),
    );
    for _ in 0..6 {
        assert_eq!(post(addr(&g)), 200);
    }
});

both_drivers!(connect_failures_retry_with_backoff, |d| {
    let dead = dead_port();
    let good = Mock::ok("good");
    let g = gateway(
        d,
        &config(
            &[dead.addr, good.addr],
            "on = [\"connect_failure\"]\nattempts = 2\nbackoff_base = \"5ms\"\nbackoff_max = \"20ms\"\nbudget_min_per_sec = 1000",
            "",
        ),
    );
    for _ in 0..8 {
        assert_eq!(get(addr(&g), "/").text(), "good");
    }
});

// Pauses between the tries of one request, measured where they arrive: at the upstream. Each
// pause is drawn uniformly up to a cap that doubles per retry (20, 40, 80 ms) and stops at
// `backoff_max` (160, 160 ms), so one request shows little; the mean over many does: half the cap,
// plus a millisecond or two of reconnecting. Sampling margins at 48 requests are 5σ or more; the
// exact formula is the unit test's (`upstream::retry`).
both_drivers!(backoff_pauses_grow_to_the_cap, |d| {
    const REQUESTS: usize = 48;
    const CAPS_MS: [f64; 5] = [20.0, 40.0, 80.0, 160.0, 160.0];
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let log = arrivals.clone();
    let up = Mock::start(move |req| {
        log.lock()
            .unwrap()
            .push((req.target.clone(), Instant::now()));
        Reply::Raw(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown".to_vec())
    });
    let g = gateway(
        d,
        &config(
            &[up.addr],
            "on = [\"status\"]\nstatuses = [503]\nattempts = 5\nbackoff_base = \"20ms\"\nbackoff_max = \"160ms\"\nbudget_min_per_sec = 1000",
            "",
        ),
    );
    let at = addr(&g);
    let clients: Vec<_> = (0..REQUESTS)
        .map(|i| {
            // The clients' pace (not synchronisation): started 4 ms apart, the requests do not all
            // reconnect at once, which would add a burst's queueing to the pauses.
            std::thread::sleep(Duration::from_millis(4));
            std::thread::spawn(move || get(at, &format!("/{i}")).status)
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 503);
    }
    let arrivals = arrivals.lock().unwrap();
    let mut sums = [0f64; 5];
    for i in 0..REQUESTS {
        let path = format!("/{i}");
        let at: Vec<Instant> = arrivals
            .iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(at.len(), 6, "{path}: one try and five retries");
        for (k, w) in at.windows(2).enumerate() {
            sums[k] += (w[1] - w[0]).as_secs_f64() * 1000.0;
        }
    }
    let m = sums.map(|s| s / REQUESTS as f64);
    // Each retry waits (a gateway that does not shows means of a millisecond or two).
    for k in 0..5 {
        assert!(
            m[k] >= CAPS_MS[k] / 4.0,
            "retry {k}: mean pause {:.1} ms under a quarter of its cap {} ms: {m:.1?}",
            m[k],
            CAPS_MS[k]
        );
    }
    // Growing: each pause longer than the one before, and about fourfold two retries on (a backoff
    // that grows only linearly usually falls short; the unit test pins the doubling exactly).
    for k in 0..3 {
        assert!(
            m[k + 1] > m[k],
            "retry {} waits no longer than retry {k}: {m:.1?}",
            k + 1
        );
    }
    for k in 0..2 {
        assert!(
            m[k + 2] - m[k] >= 0.6 * CAPS_MS[k],
            "retry {k} → {}: not exponential: {m:.1?}",
            k + 2
        );
    }
    // Capped: uncapped, the last pause would double again (mean 160 ms, not 80).
    assert!(
        m[4] <= 0.75 * CAPS_MS[4],
        "the capped pause averages over 3/4 of backoff_max (not capped, or not jittered): {m:.1?}"
    );
});

both_drivers!(per_try_timeout_moves_on, |d| {
    let slow = Mock::start(|_| {
        Reply::Delay(
            Duration::from_millis(800),
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow".to_vec(),
        )
    });
    let fast = Mock::ok("fast");
    let g = gateway(
        d,
        &config(
            &[slow.addr, fast.addr],
            "on = [\"timeout\"]\nattempts = 1\nper_try_timeout = \"100ms\"\ntotal_timeout = \"2s\"\nbackoff_base = \"0ms\"\nbackoff_max = \"0ms\"\nbudget_min_per_sec = 1000",
            "",
        ),
    );
    for _ in 0..4 {
        let t = Instant::now();
        assert_eq!(get(addr(&g), "/").text(), "fast");
        assert!(
            t.elapsed() < Duration::from_millis(700),
            "{:?}",
            t.elapsed()
        );
    }
});

both_drivers!(retry_budget_holds_in_a_full_outage, |d| {
    let a = unavailable();
    let b = unavailable();
    let g = gateway(
        d,
        &config(
            &[a.addr, b.addr],
            "on = [\"status\"]\nattempts = 3\nbackoff_base = \"0ms\"\nbackoff_max = \"0ms\"\nbudget_percent = 20\nbudget_min_per_sec = 0",
            "",
        ),
    );
    let n = 200;
    let mut c = Client::connect(addr(&g));
    for _ in 0..n {
        assert_eq!(c.get("/").status, 503);
    }
    let upstream_tries = a.requests().len() + b.requests().len();
    // Without a budget: up to 4 tries each (800). With it: at most 20 % more than the requests, plus
    // the share of one extra one-second window if the loop crossed a second boundary.
    assert!(
        upstream_tries <= n + n * 2 / 5,
        "{upstream_tries} upstream tries for {n} requests"
    );
});

#[test]
fn retry_config_is_validated() {
    let bad = |retry: &str| {
        ringway::Config::from_toml(&config(&["127.0.0.1:1".parse().unwrap()], retry, ""))
            .unwrap_err()
            .to_string()
    };
    assert!(bad("on = [\"sometimes\"]").contains("upstreams.be.retry.on[0]"));
    assert!(bad("statuses = [503]").contains("upstreams.be.retry.statuses"));
    assert!(bad("attempts = 99").contains("upstreams.be.retry.attempts"));
    assert!(bad("backoff_base = \"1s\"\nbackoff_max = \"10ms\"").contains("backoff_max"));
}
