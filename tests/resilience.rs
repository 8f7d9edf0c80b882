//! Failing upstreams with real sockets: passive outlier ejection of a bad target, `max_pending`,
//! and an upstream killed under load and restarted (bounded errors, no hung connections,
//! recovery).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// A test-only gate for the mock upstream threads.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A mock answering `name` with 200, or 500 while `failing` is set.
fn target(name: &'static str) -> (Mock, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let m = Mock::start(move |_| {
        if f.load(Ordering::SeqCst) {
            Reply::Raw(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nbad".to_vec(),
            )
        } else {
            ok(name)
        }
    });
    (m, failing)
}

both_drivers!(outlier_target_is_ejected_and_comes_back, |d| {
    let (a, a_failing) = target("a");
    let (b, _) = target("b");
    a_failing.store(true, Ordering::SeqCst);
    let g = gateway_workers(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{}\", \"{}\"]\n[upstreams.be.outlier]\nconsecutive_failures = 3\nbase_ejection = \"300ms\"\n[[routes]]\nupstream = \"be\"\n",
            a.addr, b.addr
        ),
        2,
    );
    let at = addr(&g);
    // Ejected: only b answers, 30 times in a row.
    get_until(at, 30, |r| r.text() == "b").expect("a was never ejected");
    let seen_a = a.requests().len();
    for _ in 0..20 {
        assert_eq!(get(at, "/").text(), "b");
    }
    assert_eq!(
        a.requests().len(),
        seen_a,
        "an ejected target gets no requests"
    );
    // Healthy again: back in rotation once the ejection ends.
    a_failing.store(false, Ordering::SeqCst);
    get_until(at, 1, |r| r.text() == "a").expect("a never came back");
});

#[test]
fn outlier_config_errors_name_the_field() {
    let bad = |o: &str| {
        ringway::Config::from_toml(&format!(
            "[upstreams.be]\ntargets = [\"127.0.0.1:1\"]\n[upstreams.be.outlier]\n{o}\n[[routes]]\nupstream = \"be\"\n"
        ))
        .unwrap_err()
        .to_string()
    };
    assert!(
        bad("max_ejected_percent = 101").starts_with("upstreams.be.outlier.max_ejected_percent")
    );
    assert!(
        bad("base_ejection = \"10s\"\nmax_ejection = \"1s\"")
            .starts_with("upstreams.be.outlier.max_ejection")
    );
    assert!(
        bad("consecutive_failures = 0").starts_with("upstreams.be.outlier.consecutive_failures")
    );
}

both_drivers!(max_pending_refuses_at_once, |d| {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let g2 = gate.clone();
    let up = Mock::start(move |_| {
        let (open, cv) = &*g2;
        let mut o = open.lock().unwrap();
        while !*o {
            o = cv.wait(o).unwrap();
        }
        ok("done")
    });
    let g = gateway(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{}\"]\nmax_connections = 1\nconnect_timeout = \"5s\"\n[upstreams.be.breaker]\nconsecutive_failures = 0\nfailure_ratio = 0.0\nmax_pending = 1\n[[routes]]\nupstream = \"be\"\n",
            up.addr
        ),
    );
    let at = addr(&g);
    let first = thread::spawn(move || get(at, "/").status);
    wait_until_seen(&up);
    // The only connection is busy: one request may wait for it, the other is refused at once.
    let t = Instant::now();
    let waiting: Vec<_> = (0..2)
        .map(|_| thread::spawn(move || get(at, "/")))
        .collect();
    let refused = loop {
        if let Some(i) = waiting.iter().position(|h| h.is_finished()) {
            break i;
        }
        assert!(t.elapsed() < Duration::from_secs(4), "nothing was refused");
        thread::yield_now();
    };
    assert!(t.elapsed() < Duration::from_secs(4));
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let rs: Vec<Response> = waiting.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(rs[refused].status, 503);
    assert_eq!(rs[refused].error_code(), "pending_limit");
    assert_eq!(rs[1 - refused].status, 200);
    assert_eq!(first.join().unwrap(), 200);
});

const STATIC: &str = "[[routes]]\n[routes.respond]\nbody = \"up\"\n";

/// Per-outcome counts of the load generator, by phase.
#[derive(Default)]
struct Tally {
    ok: usize,
    /// Upstream failures that reached the client as 502/504 (the dead upstream was tried).
    failed: usize,
    /// 503s: refused fast by the open breaker.
    refused: usize,
    /// 200s in a row since the last error.
    streak: usize,
}

both_drivers!(killed_upstream_under_load_recovers, |d| {
    // The upstream is a ringway with a static route: shutting it down closes every connection.
    let up = gateway_listen(d, STATIC, "127.0.0.1:0".parse().unwrap());
    let up_addr = addr(&up);
    let g = gateway_workers(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{up_addr}\"]\nconnect_timeout = \"1s\"\n[upstreams.be.breaker]\nconsecutive_failures = 5\nopen_duration = \"100ms\"\nmax_open_duration = \"400ms\"\nhalf_open_probes = 2\n[[routes]]\nupstream = \"be\"\n"
        ),
        2,
    );
    let at = addr(&g);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (tally, stop) = (tally.clone(), stop.clone());
            thread::spawn(move || {
                let mut c = Client::connect(at);
                while !stop.load(Ordering::Relaxed) {
                    // A hung request would fail here on the client's read timeout.
                    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                    let r = c.response(false).expect("every request is answered");
                    let mut t = tally.lock().unwrap();
                    match r.status {
                        200 => {
                            assert_eq!(r.text(), "up");
                            t.ok += 1;
                            t.streak += 1;
                        }
                        502 | 504 => {
                            t.failed += 1;
                            t.streak = 0;
                        }
                        503 => {
                            assert_eq!(r.error_code(), "circuit_open");
                            t.refused += 1;
                            t.streak = 0;
                        }
                        s => panic!("unexpected status {s}: {}", r.text()),
                    }
                    drop(t);
                    if r.closes() {
                        c = Client::connect(at);
                    }
                }
            })
        })
        .collect();
    let wait_for = |what: &str, pred: &dyn Fn(&Tally) -> bool| {
        let t = Instant::now();
        while !pred(&tally.lock().unwrap()) {
            assert!(t.elapsed() < Duration::from_secs(10), "{what} not reached");
            thread::yield_now();
        }
    };
    wait_for("steady load", &|t| t.ok >= 200);
    assert_eq!(tally.lock().unwrap().failed, 0);

    // Kill the upstream; the breaker opens and the gateway answers 503 fast.
    up.shutdown(Duration::ZERO);
    wait_for("breaker open", &|t| t.refused >= 2000);
    let outage = std::mem::take(&mut *tally.lock().unwrap());

    // Restart it on the same address: probes close the breaker and traffic recovers.
    let restarted = Instant::now();
    let up = gateway_listen(d, STATIC, up_addr);
    wait_for("recovery", &|t| t.streak >= 200);
    let recovery = restarted.elapsed();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    eprintln!(
        "outage: {} tried the dead upstream, {} refused by the breaker; recovered {recovery:?} after restart",
        outage.failed, outage.refused
    );
    // Errors are bounded: while the upstream was down, most requests were refused by the breaker
    // without touching it; only the requests of the tick that tripped it and the half-open probes
    // tried it.
    assert!(
        outage.failed * 4 < outage.refused && outage.failed < 1000,
        "tried the dead upstream {} times, refused {}",
        outage.failed,
        outage.refused
    );
    assert!(
        recovery < Duration::from_secs(3),
        "recovered in {recovery:?}"
    );
    // No connection is left behind once the clients are gone.
    let t = Instant::now();
    while g.connections() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "connections left open"
        );
        thread::yield_now();
    }
    drop(up);
});
