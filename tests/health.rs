//! Active health checks: failing targets leave rotation and come back; all-unhealthy upstreams
//! fail open or closed as configured; state survives a reload of an unchanged upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

/// A mock answering `name` to requests and 200/503 on /health depending on the switch.
fn mock(name: &'static str) -> (Mock, Arc<AtomicBool>) {
    let up = Arc::new(AtomicBool::new(true));
    let u = up.clone();
    let m = Mock::start(move |req| {
        if req.target == "/health" {
            if u.load(Ordering::SeqCst) {
                ok("up")
            } else {
                Reply::Raw(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec(),
                )
            }
        } else {
            ok(name)
        }
    });
    (m, up)
}

fn config(a: SocketAddr, b: SocketAddr, fail_open: bool) -> String {
    format!(
        "[upstreams.be]\ntargets = [\"{a}\", \"{b}\"]\n[upstreams.be.health_check]\npath = \"/health\"\ninterval = \"20ms\"\ntimeout = \"20ms\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\nfail_open = {fail_open}\n[[routes]]\nupstream = \"be\"\n"
    )
}

fn until(at: SocketAddr, n: usize, ok: impl Fn(&Response) -> bool) -> bool {
    get_until(at, n, ok).is_some()
}

both_drivers!(unhealthy_target_leaves_and_returns, |d| {
    let (a, a_up) = mock("a");
    let (b, _) = mock("b");
    let g = gateway(d, &config(a.addr, b.addr, true));
    let at = addr(&g);
    assert!(until(at, 6, |_| true));
    a_up.store(false, Ordering::SeqCst);
    assert!(
        until(at, 20, |r| r.text() == "b"),
        "a failing target must leave rotation"
    );
    a_up.store(true, Ordering::SeqCst);
    assert!(
        until(at, 1, |r| r.text() == "a"),
        "a recovered target must come back"
    );
});

/// `a` fails its checks first: it must leave rotation while `b` serves (so the checker is seen to
/// run and mark targets down). Then `b` fails too: with `fail_open` every target is used anyway,
/// `a` included, and no request is refused on the way; without it, 503 `no_healthy_upstream`.
fn all_unhealthy(d: Driver, fail_open: bool) {
    let (a, a_up) = mock("a");
    let (b, b_up) = mock("b");
    let g = gateway(d, &config(a.addr, b.addr, fail_open));
    let at = addr(&g);
    a_up.store(false, Ordering::SeqCst);
    assert!(
        until(at, 10, |r| r.text() == "b"),
        "a target failing its checks must leave rotation first"
    );
    b_up.store(false, Ordering::SeqCst);
    if fail_open {
        // Every response on the way is served; `a` comes back only once `b` is down too.
        let served_by_a = get_until(at, 1, |r| {
            assert_eq!(r.status, 200, "fail open must not refuse: {}", r.text());
            r.text() == "a"
        });
        assert!(
            served_by_a.is_some(),
            "all unhealthy: fail open uses every target"
        );
        for _ in 0..10 {
            assert_eq!(get(at, "/").status, 200, "fail open keeps serving");
        }
    } else {
        let r = get_until(at, 1, |r| r.status == 503).expect("fail closed must refuse");
        assert_eq!(r.error_code(), "no_healthy_upstream");
    }
}

both_drivers!(all_unhealthy_fails_closed, |d| all_unhealthy(d, false));

both_drivers!(all_unhealthy_fails_open, |d| all_unhealthy(d, true));

#[test]
fn health_check_config_errors_name_the_field() {
    let err = ringway::Config::from_toml(
        "[upstreams.be]\ntargets = [\"127.0.0.1:1\"]\n[upstreams.be.health_check]\ninterval = \"1s\"\ntimeout = \"5s\"\n[[routes]]\nupstream = \"be\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("upstreams.be.health_check.timeout"), "{err}");
    let err = ringway::Config::from_toml(
        "[upstreams.be]\ntargets = [\"127.0.0.1:1\"]\n[upstreams.be.health_check]\npath = \"health\"\n[[routes]]\nupstream = \"be\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("upstreams.be.health_check.path"), "{err}");
}

both_drivers!(health_survives_reload_of_unchanged_upstream, |d| {
    let (a, a_up) = mock("a");
    let (b, _) = mock("b");
    let text = config(a.addr, b.addr, true);
    let g = gateway(d, &text);
    let at = addr(&g);
    a_up.store(false, Ordering::SeqCst);
    assert!(until(at, 10, |r| r.text() == "b"));
    let server = format!(
        "[server]\nlisten = [\"{at}\"]\ndriver = \"{}\"\ntick = \"10ms\"\n",
        d.name()
    );
    let new = format!(
        "{server}{text}\n[[routes]]\npath_exact = \"/extra\"\n[routes.respond]\nbody = \"x\"\n"
    );
    let generation = g.reload(ringway::Config::from_toml(&new).unwrap()).unwrap();
    assert!(g.wait_applied(generation, IO_TIMEOUT));
    // The unchanged upstream kept its health state: the failing target is still out.
    for _ in 0..20 {
        assert_eq!(get(at, "/").text(), "b");
    }
});
