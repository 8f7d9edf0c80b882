//! Reload and upstream-state defects: concurrent reloads publish one snapshot per generation and
//! every shard ends on the last one; health-check streaks of an unchanged upstream survive a reload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Barrier};

use common::*;
use ringway::Config;

/// A full config for reloading `at`: a catch-all static route answering `body`, after enough other
/// routes that building the snapshot takes a while (the window in which reloads can overlap).
fn static_config(d: Driver, at: SocketAddr, body: &str) -> Config {
    let mut text = format!(
        "[server]\nlisten = [\"{at}\"]\ndriver = \"{}\"\nworkers = 2\ntick = \"10ms\"\n",
        d.name()
    );
    for i in 0..200 {
        text +=
            &format!("[[routes]]\npath_exact = \"/pad/{i}\"\n[routes.respond]\nbody = \"pad\"\n");
    }
    text += &format!("[[routes]]\npath_prefix = \"/\"\n[routes.respond]\nbody = \"{body}\"\n");
    Config::from_toml(&text).unwrap_or_else(|e| panic!("bad test config: {e}\n{text}"))
}

both_drivers!(concurrent_reloads_publish_every_generation_once, |d| {
    const WRITERS: usize = 4;
    const ROUNDS: usize = 40;
    let g = gateway_workers(
        d,
        "[[routes]]\npath_prefix = \"/\"\n[routes.respond]\nbody = \"start\"\n",
        2,
    );
    let at = addr(&g);
    let start = g.control().generation();
    // Every writer's configs parsed up front, so the rounds race on the reload alone.
    let configs: Vec<Vec<(String, Config)>> = (0..WRITERS)
        .map(|w| {
            (0..ROUNDS)
                .map(|r| {
                    let body = format!("w{w}r{r}");
                    let c = static_config(d, at, &body);
                    (body, c)
                })
                .collect()
        })
        .collect();
    let barrier = Barrier::new(WRITERS);
    let published: Vec<(u64, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = configs
            .into_iter()
            .map(|mine| {
                let (g, barrier) = (&g, &barrier);
                s.spawn(move || {
                    mine.into_iter()
                        .map(|(body, c)| {
                            barrier.wait();
                            (g.reload(c).expect("reload"), body)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut seen = HashSet::new();
    let mut twice: Vec<u64> = published
        .iter()
        .map(|(gen_, _)| *gen_)
        .filter(|gen_| !seen.insert(*gen_))
        .collect();
    twice.sort_unstable();
    assert!(
        twice.is_empty(),
        "{} of {} reloads published a generation another had: {twice:?}",
        twice.len(),
        published.len()
    );
    let (last, body) = published
        .iter()
        .max_by_key(|(gen_, _)| *gen_)
        .cloned()
        .unwrap();
    assert_eq!(
        last,
        start + (WRITERS * ROUNDS) as u64,
        "generations must count every reload"
    );
    assert_eq!(g.control().generation(), last);
    assert_eq!(g.control().snapshot().generation, last);
    assert!(
        g.wait_applied(last, IO_TIMEOUT),
        "every shard applies the last generation"
    );
    // Both shards (SO_REUSEPORT spreads the connections) serve the last published config.
    for _ in 0..8 {
        assert_eq!(get(at, "/").text(), body);
    }
});

/// A health-check target the test answers probe by probe: each accepted probe is announced on the
/// returned receiver, and answered with the status the test then sends (closed unanswered once the
/// test drops the sender).
fn scripted_target() -> (SocketAddr, Receiver<()>, Sender<u16>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (probed, probes) = channel();
    let (answer, answers) = channel::<u16>();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if probed.send(()).is_err() {
                return;
            }
            let Ok(status) = answers.recv_timeout(IO_TIMEOUT) else {
                return;
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (addr, probes, answer)
}

/// The health checker is a plain thread, the same whatever driver the shards run: one driver is
/// enough here.
#[test]
fn health_streak_survives_reload_of_unchanged_upstream() {
    let (target, probes, answer) = scripted_target();
    let probe = |n: usize| {
        probes
            .recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|_| panic!("probe {n} never came"));
    };
    // The held probe below is answered once the reload is published, well inside the timeout; and
    // a probe that timed out would count as failed all the same.
    let upstream = format!(
        "[upstreams.be]\ntargets = [\"{target}\"]\n[upstreams.be.health_check]\npath = \"/health\"\ninterval = \"250ms\"\ntimeout = \"250ms\"\nunhealthy_threshold = 3\n[[routes]]\nupstream = \"be\"\n"
    );
    let g = gateway(Driver::Epoll, &upstream);
    let at = addr(&g);
    let health = g.control().snapshot().health[0].clone().unwrap();
    probe(1);
    answer.send(500).unwrap();
    // Probe 2 held open while an unrelated reload lands: the checker records its failure under
    // the old generation and meets the new one before probe 3.
    probe(2);
    let text = format!(
        "[server]\nlisten = [\"{at}\"]\ndriver = \"epoll\"\nworkers = 1\ntick = \"10ms\"\n{upstream}[[routes]]\npath_exact = \"/extra\"\n[routes.respond]\nbody = \"x\"\n"
    );
    let generation = g.reload(Config::from_toml(&text).unwrap()).unwrap();
    assert!(g.wait_applied(generation, IO_TIMEOUT));
    assert!(
        Arc::ptr_eq(&health, g.control().snapshot().health[0].as_ref().unwrap()),
        "the unchanged upstream keeps its health state"
    );
    answer.send(500).unwrap();
    probe(3);
    assert!(
        health.is_healthy(0),
        "two failures of three: still in rotation"
    );
    answer.send(500).unwrap();
    // Probe 4 starts once probe 3 is recorded (one checker thread, one target).
    probe(4);
    assert!(
        !health.is_healthy(0),
        "the third failure in a row marks the target down, reload or not"
    );
    answer.send(500).unwrap();
    drop(answer);
    g.shutdown(std::time::Duration::ZERO);
}
