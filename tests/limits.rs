//! Rate and concurrency limits with real sockets: RateLimit-* headers and 429s, stacked limits, the
//! node-wide bound over two shards with all traffic on one shard and spread over both, per-key
//! concurrency, and limits surviving a reload.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// A test-only gate for the mock upstream threads.
#![allow(clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn config(up: SocketAddr, limits: &str) -> String {
    format!(
        "{}[[routes]]\nupstream = \"be\"\n{limits}",
        upstream("be", up)
    )
}

fn get_with(c: &mut Client, key: &str) -> Response {
    c.send(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Api-Key: {key}\r\n\r\n").as_bytes());
    c.response(false).expect("response")
}

fn num(r: &Response, h: &str) -> u64 {
    r.header(h)
        .unwrap_or_else(|| panic!("no {h}"))
        .parse()
        .unwrap()
}

const PER_KEY: &str =
    "[[routes.rate_limits]]\nkey = \"header:x-api-key\"\nlimit = 5\nper = \"minute\"\n";

both_drivers!(headers_count_down_then_429, |d| {
    let up = Mock::ok("hi");
    let g = gateway(d, &config(up.addr, PER_KEY));
    let mut c = Client::connect(addr(&g));
    for left in (0..5).rev() {
        let r = get_with(&mut c, "alice");
        assert_eq!(r.status, 200);
        assert_eq!(num(&r, "ratelimit-limit"), 5);
        assert_eq!(num(&r, "ratelimit-remaining"), left);
        let reset = num(&r, "ratelimit-reset");
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    let r = get_with(&mut c, "alice");
    assert_eq!(r.status, 429);
    assert_eq!(r.error_code(), "rate_limited");
    assert_eq!(num(&r, "ratelimit-remaining"), 0);
    // One token every 12 s.
    let retry = num(&r, "retry-after");
    assert!((1..=12).contains(&retry), "retry-after {retry}");
    assert!(!r.closes(), "a 429 keeps the connection");
    // Other keys have their own budget; the refused requests never reached the upstream.
    assert_eq!(get_with(&mut c, "bob").status, 200);
    assert_eq!(up.requests().len(), 6);
});

both_drivers!(stacked_limits_report_the_closest_one, |d| {
    let up = Mock::ok("hi");
    let limits = format!(
        "{PER_KEY}[[routes.rate_limits]]\nkey = \"route\"\nalgorithm = \"sliding_window\"\nlimit = 3\nper = \"hour\"\n"
    );
    let g = gateway(d, &config(up.addr, &limits));
    let mut c = Client::connect(addr(&g));
    let r = get_with(&mut c, "a");
    // The route-wide limit (3, 2 left) is closer to running out than the key's (5, 4 left).
    assert_eq!(num(&r, "ratelimit-limit"), 3);
    assert_eq!(num(&r, "ratelimit-remaining"), 2);
    assert_eq!(get_with(&mut c, "b").status, 200);
    assert_eq!(get_with(&mut c, "c").status, 200);
    let r = get_with(&mut c, "d");
    assert_eq!(r.status, 429);
    assert_eq!(num(&r, "ratelimit-limit"), 3);
    // The refused request never reached the upstream.
    assert_eq!(up.requests().len(), 3);
});

both_drivers!(headers_can_be_turned_off_and_missing_keys_use_the_ip, |d| {
    let up = Mock::ok("hi");
    let limits = format!("rate_limit_headers = false\n{PER_KEY}");
    let g = gateway(d, &config(up.addr, &limits));
    let at = addr(&g);
    // No X-Api-Key: counted by client IP, over any number of connections.
    for _ in 0..5 {
        let r = get(at, "/");
        assert_eq!(r.status, 200);
        assert!(r.header("ratelimit-limit").is_none());
    }
    assert_eq!(get(at, "/").status, 429);
});

/// Sends `n` requests from `conns` connections at once; returns how many were admitted.
fn burst(at: SocketAddr, conns: usize, n: usize) -> usize {
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            thread::spawn(move || {
                let mut c = Client::connect(at);
                (0..n)
                    .filter(|_| {
                        let r = get_with(&mut c, "k");
                        assert!(r.status == 200 || r.status == 429, "{}", r.status);
                        r.status == 200
                    })
                    .count()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Admits until `limit` is reached (leases parked on the idle shard come back at its tick), then
/// checks that nothing more gets through.
fn drain_rest(at: SocketAddr, mut admitted: usize, limit: usize) -> usize {
    let t = Instant::now();
    while admitted < limit && t.elapsed() < Duration::from_secs(10) {
        admitted += burst(at, 4, 5);
    }
    admitted + burst(at, 8, 10)
}

const NODE_WIDE: &str = "[[routes.rate_limits]]\nkey = \"route\"\nlimit = 200\nper = \"day\"\n[[routes.rate_limits]]\nkey = \"header:x-api-key\"\nalgorithm = \"sliding_window\"\nlimit = 150\nper = \"day\"\n";

both_drivers!(node_wide_bound_with_all_traffic_on_one_shard, |d| {
    let up = Mock::ok("hi");
    let g = gateway_workers(d, &config(up.addr, NODE_WIDE), 2);
    // One connection lives on one shard: that shard alone spends the node's budget.
    let admitted = burst(addr(&g), 1, 400);
    assert_eq!(
        admitted, 150,
        "one shard must get the whole budget, no more"
    );
    assert_eq!(drain_rest(addr(&g), admitted, 150), 150);
});

both_drivers!(node_wide_bound_with_traffic_spread, |d| {
    let up = Mock::ok("hi");
    let g = gateway_workers(d, &config(up.addr, NODE_WIDE), 2);
    // 24 connections spread by SO_REUSEPORT over both shards, racing for the same key.
    let admitted = burst(addr(&g), 24, 20);
    assert!(admitted <= 150, "admitted {admitted} > limit 150");
    assert!(admitted >= 140, "admitted {admitted}: leases stranded");
    assert_eq!(drain_rest(addr(&g), admitted, 150), 150);
    assert_eq!(up.requests().len(), 150);
});

/// A mock that holds requests carrying `x-hold` until the gate opens.
fn gated() -> (Mock, Arc<(Mutex<bool>, Condvar)>) {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let g2 = gate.clone();
    let m = Mock::start(move |req| {
        if req.header("x-hold").is_some() {
            let (open, cv) = &*g2;
            let mut o = open.lock().unwrap();
            while !*o {
                o = cv.wait(o).unwrap();
            }
        }
        ok("done")
    });
    (m, gate)
}

both_drivers!(concurrency_limit_per_key, |d| {
    let (up, gate) = gated();
    let limits = "[[routes.concurrency_limits]]\nkey = \"header:x-api-key\"\nmax = 2\n".to_string();
    let g = gateway_workers(d, &config(up.addr, &limits), 2);
    let at = addr(&g);
    let held: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                let mut c = Client::connect(at);
                c.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Api-Key: a\r\nX-Hold: 1\r\n\r\n");
                c.response(false).unwrap().status
            })
        })
        .collect();
    let t = Instant::now();
    while up.requests().len() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "held requests never arrived"
        );
        thread::yield_now();
    }
    for _ in 0..10 {
        let r = get_with(&mut Client::connect(at), "a");
        assert_eq!(r.status, 429);
        assert_eq!(r.error_code(), "too_many_concurrent_requests");
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(get_with(&mut Client::connect(at), "b").status, 200);
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    for h in held {
        assert_eq!(h.join().unwrap(), 200);
    }
    // Slots come back (a shard returns its spare slots at its next tick).
    let t = Instant::now();
    while get_with(&mut Client::connect(at), "a").status != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "slots never came back"
        );
        thread::sleep(Duration::from_millis(5));
    }
});

both_drivers!(reload_keeps_what_was_spent, |d| {
    let up = Mock::ok("hi");
    let g = gateway(d, &config(up.addr, PER_KEY));
    let mut c = Client::connect(addr(&g));
    for _ in 0..5 {
        assert_eq!(get_with(&mut c, "x").status, 200);
    }
    let at = addr(&g);
    let reload = |text: &str| {
        let server = format!(
            "[server]\nlisten = [\"{at}\"]\ndriver = \"{}\"\ntick = \"10ms\"\n",
            d.name()
        );
        let generation = g
            .reload(ringway::Config::from_toml(&format!("{server}{text}")).unwrap())
            .unwrap();
        assert!(g.wait_applied(generation, IO_TIMEOUT));
    };
    // Same limits, something else changed: the budget carries over.
    reload(&format!(
        "[http]\nvia = \"1.1 other\"\n{}",
        config(up.addr, PER_KEY)
    ));
    let r = get_with(&mut c, "x");
    assert_eq!(r.status, 429);
    assert_eq!(num(&r, "ratelimit-remaining"), 0);
    // A changed limit starts afresh.
    reload(&config(up.addr, &PER_KEY.replace("limit = 5", "limit = 6")));
    let r = get_with(&mut c, "x");
    assert_eq!(r.status, 200);
    assert_eq!(num(&r, "ratelimit-limit"), 6);
});

both_drivers!(static_routes_are_limited_too, |d| {
    let g = gateway(
        d,
        "[[routes]]\n[routes.respond]\nbody = \"x\"\n[[routes.rate_limits]]\nkey = \"route\"\nlimit = 2\nper = \"hour\"\n",
    );
    let mut c = Client::connect(addr(&g));
    let r = c.get("/");
    assert_eq!((r.status, num(&r, "ratelimit-remaining")), (200, 1));
    assert_eq!(c.get("/").status, 200);
    let r = c.get("/");
    assert_eq!(r.status, 429);
    assert!(num(&r, "retry-after") > 1000, "one token every 30 minutes");
});
