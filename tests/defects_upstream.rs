//! Reload and upstream-state defects: concurrent reloads publish one snapshot per generation and
//! every shard ends on the last one; health-check streaks of an unchanged upstream survive a reload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Barrier;

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
