//! Retry policy through the gateway: failed tries move to another target, non-idempotent requests
//! are not repeated unless the route opts in, timeouts per try, and the budget holds in an outage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
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
