//! Concurrency and reload with real sockets: thousands of connections at once, several shards,
//! config reload under load without a failed request, graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ringway::Config;

fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Safety: plain getrlimit/setrlimit on a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

both_drivers!(thousands_of_concurrent_connections, |d| {
    raise_nofile();
    let up = Mock::start(|req| ok(&req.target));
    // The mock upstream runs a thread per connection: cap the pools (requests queue for a slot).
    let g = gateway_workers(
        d,
        &format!(
            "[upstreams.be]\ntargets = [\"{}\"]\nmax_connections = 64\n[[routes]]\nupstream = \"be\"\n",
            up.addr
        ),
        2,
    );
    let n = 2500;
    let mut clients: Vec<Client> = (0..n).map(|_| Client::connect(addr(&g))).collect();
    // Every connection is open at once and has a request in flight before any response is read.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("GET /c{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let r = c.response(false).expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("/c{i}"));
    }
    // And each still works as a keep-alive connection.
    for (i, c) in clients.iter_mut().enumerate().step_by(50) {
        assert_eq!(c.get(&format!("/again{i}")).text(), format!("/again{i}"));
    }
    let t = Instant::now();
    drop(clients);
    // Connections are released (the gateway publishes its count every tick).
    while g.connections() > 0 && t.elapsed() < IO_TIMEOUT {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(g.connections(), 0, "client connections leaked");
});

both_drivers!(reload_under_load_loses_nothing, |d| {
    let a = Mock::ok("A");
    let b = Mock::ok("B");
    let base = |extra: &str| {
        format!(
            "[server]\n{}{}\n[[routes]]\nname = \"main\"\nupstream = \"a\"\n{extra}",
            upstream("a", a.addr),
            upstream("b", b.addr)
        )
    };
    let text = base("");
    let g = Arc::new(gateway_workers(d, &text, 2));
    let at = addr(&g);
    let stop = Arc::new(AtomicBool::new(false));
    let ok_count = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok_count) = (stop.clone(), ok_count.clone());
        workers.push(std::thread::spawn(move || {
            let mut c = Client::connect(at);
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = c.get("/");
                if r.status == 200 {
                    ok_count.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push(r.status);
                }
            }
            failures
        }));
    }
    let server = |t: &str| {
        t.replace(
            "[server]",
            &format!(
                "[server]\nlisten = [\"{at}\"]\ndriver = \"{}\"\ntick = \"10ms\"",
                d.name()
            ),
        )
    };
    // New route to upstream b, applied under load.
    let generation = g
        .reload(
            Config::from_toml(&server(&base(
                "[[routes]]\npath_prefix = \"/b\"\nupstream = \"b\"\n",
            )))
            .unwrap(),
        )
        .unwrap();
    assert!(g.wait_applied(generation, IO_TIMEOUT));
    assert_eq!(get(at, "/b/x").text(), "B");
    // An invalid config is refused and the old one keeps serving.
    let bad = Config::from_toml(&server(&base(
        "[[routes]]\npath_prefix = \"/c\"\nupstream = \"nope\"\n",
    )));
    assert!(bad.is_err());
    assert_eq!(get(at, "/b/y").text(), "B");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(
            w.join().unwrap().is_empty(),
            "no request may fail during a reload"
        );
    }
    assert!(ok_count.load(Ordering::Relaxed) > 0);
});

both_drivers!(reload_keeps_warm_pools_of_unchanged_upstreams, |d| {
    let a = Mock::ok("A");
    let b = Mock::ok("B");
    let text = |b_extra: &str| {
        format!(
            "{}{}{b_extra}\n[[routes]]\nupstream = \"a\"\n[[routes]]\npath_prefix = \"/b\"\nupstream = \"b\"\n",
            upstream("a", a.addr),
            upstream("b", b.addr)
        )
    };
    let g = gateway(d, &text(""));
    let at = addr(&g);
    assert_eq!(get(at, "/").text(), "A");
    assert_eq!(get(at, "/b").text(), "B");
    let server = format!(
        "[server]\nlisten = [\"{at}\"]\ndriver = \"{}\"\ntick = \"10ms\"\n",
        d.name()
    );
    // Upstream b changes (its pool is rebuilt), upstream a does not (its pool stays warm).
    let changed = format!("{server}{}", text("idle_timeout = \"5s\""));
    let generation = g.reload(Config::from_toml(&changed).unwrap()).unwrap();
    assert!(g.wait_applied(generation, IO_TIMEOUT));
    for _ in 0..5 {
        assert_eq!(get(at, "/").text(), "A");
    }
    assert_eq!(
        a.connections(),
        1,
        "the unchanged upstream kept its pooled connection"
    );
    assert_eq!(get(at, "/b").text(), "B");
    assert_eq!(
        b.connections(),
        2,
        "the changed upstream started a new pool"
    );
});

both_drivers!(graceful_shutdown_finishes_in_flight, |d| {
    let up = Mock::start(|req| match req.target.as_str() {
        "/slow" => Reply::Delay(
            Duration::from_millis(300),
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone".to_vec(),
        ),
        _ => ok("fast"),
    });
    let g = gateway(
        d,
        &format!(
            "{}\n[[routes]]\nupstream = \"be\"\n",
            upstream("be", up.addr)
        ),
    );
    let at = addr(&g);
    // An idle keep-alive connection and an in-flight request.
    let mut idle = Client::connect(at);
    assert_eq!(idle.get("/").text(), "fast");
    let mut busy = Client::connect(at);
    busy.send(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
    let t = Instant::now();
    while up.requests().iter().all(|r| r.target != "/slow") && t.elapsed() < IO_TIMEOUT {
        std::thread::yield_now();
    }
    g.begin_shutdown(Duration::from_secs(5));
    // The idle connection is closed; the in-flight request completes, told the connection closes.
    assert!(idle.is_closed());
    let r = busy.response(false).unwrap();
    assert_eq!(r.text(), "done");
    assert!(r.closes());
    g.join();
    // Nothing listens any more.
    assert!(
        std::net::TcpStream::connect(at)
            .and_then(|mut s| {
                s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")?;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut b = [0u8; 1];
                std::io::Read::read(&mut s, &mut b).map(|n| if n == 0 { Err(()) } else { Ok(()) })
            })
            .map(|r| r.is_err())
            .unwrap_or(true)
    );
});

both_drivers!(many_clients_many_requests_two_shards, |d| {
    let up = Mock::start(|req| ok(&req.target));
    let g = gateway_workers(
        d,
        &format!(
            "{}\n[[routes]]\nupstream = \"be\"\n",
            upstream("be", up.addr)
        ),
        2,
    );
    let at = addr(&g);
    let handles: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(at);
                for i in 0..200 {
                    let p = format!("/t{t}/{i}");
                    assert_eq!(c.get(&p).text(), p);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(up.requests().len(), 16 * 200);
});
