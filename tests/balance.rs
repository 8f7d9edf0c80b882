//! Load balancing: consistent-hash remapping properties, and every algorithm through the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::*;
use proptest::prelude::*;
use ringway::upstream::hash_ring::{HashRing, hash64};

fn targets(ports: &[u16]) -> Vec<(SocketAddr, u32)> {
    ports
        .iter()
        .map(|p| (SocketAddr::from(([10, 1, 2, 3], *p)), 1))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Adding a target to N moves about 1/(N+1) of the keys, and only to the new target.
    #[test]
    fn adding_a_target_remaps_about_one_nth(
        ports in proptest::collection::hash_set(1u16..60000, 2..20),
        extra in 60000u16..65000,
    ) {
        let ports: Vec<u16> = ports.into_iter().collect();
        let before = HashRing::new(&targets(&ports));
        let mut more = ports.clone();
        more.push(extra);
        let after = HashRing::new(&targets(&more));
        let keys = 4000u32;
        let mut moved = 0;
        for k in 0..keys {
            let h = hash64(&k.to_le_bytes());
            let (b, a) = (before.pick(h, |_| false), after.pick(h, |_| false));
            if a != b {
                prop_assert_eq!(a, ports.len(), "a key moved between existing targets");
                moved += 1;
            }
        }
        let ideal = f64::from(keys) / (ports.len() + 1) as f64;
        prop_assert!(f64::from(moved) < ideal * 1.6 + 40.0, "moved {} keys, ideal {}", moved, ideal);
    }

    /// Removing a target only moves that target's keys.
    #[test]
    fn removing_a_target_moves_only_its_keys(ports in proptest::collection::hash_set(1u16..60000, 3..20)) {
        let ports: Vec<u16> = ports.into_iter().collect();
        let full = HashRing::new(&targets(&ports));
        let fewer = HashRing::new(&targets(&ports[1..]));
        for k in 0..2000u32 {
            let h = hash64(&k.to_le_bytes());
            let (f, r) = (full.pick(h, |_| false), fewer.pick(h, |_| false));
            if f != 0 {
                prop_assert_eq!(r + 1, f);
            }
        }
    }
}

fn two_mocks() -> (Mock, Mock) {
    (Mock::ok("a"), Mock::ok("b"))
}

fn config(a: SocketAddr, b: SocketAddr, balance: &str) -> String {
    format!(
        "[upstreams.be]\ntargets = [\"{a}\", \"{b}\"]\n{balance}\n[[routes]]\nupstream = \"be\"\n"
    )
}

both_drivers!(consistent_hash_by_header_is_sticky, |d| {
    let (a, b) = two_mocks();
    let g = gateway(
        d,
        &config(
            a.addr,
            b.addr,
            "balance = \"consistent_hash\"\nhash_key = \"header:x-user\"",
        ),
    );
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut c = Client::connect(addr(&g));
    for round in 0..3 {
        for user in 0..40 {
            c.send(format!("GET / HTTP/1.1\r\nHost: h\r\nX-User: u{user}\r\n\r\n").as_bytes());
            let who = c.response(false).unwrap().text();
            let prev = seen.insert(format!("u{user}"), who.clone());
            if round > 0 {
                assert_eq!(prev.as_deref(), Some(who.as_str()), "user u{user} moved");
            }
        }
    }
    let on_a = seen.values().filter(|v| *v == "a").count();
    assert!(
        (5..35).contains(&on_a),
        "40 users should spread over both targets, {on_a} on a"
    );
});

both_drivers!(consistent_hash_by_cookie_and_fallback, |d| {
    let (a, b) = two_mocks();
    let g = gateway(
        d,
        &config(
            a.addr,
            b.addr,
            "balance = \"consistent_hash\"\nhash_key = \"cookie:session\"",
        ),
    );
    let mut c = Client::connect(addr(&g));
    let mut first = None;
    for _ in 0..10 {
        c.send(b"GET / HTTP/1.1\r\nHost: h\r\nCookie: theme=dark; session=abc123\r\n\r\n");
        let who = c.response(false).unwrap().text();
        assert_eq!(first.get_or_insert(who.clone()), &who);
    }
    // Without the cookie: round robin over both.
    let mut who = std::collections::HashSet::new();
    for _ in 0..4 {
        who.insert(c.get("/").text());
    }
    assert_eq!(who.len(), 2);
});

both_drivers!(random_and_least_in_flight_use_all_targets, |d| {
    for balance in [
        "balance = \"random\"",
        "balance = \"least_in_flight\"",
        "balance = \"round_robin\"",
    ] {
        let (a, b) = two_mocks();
        let g = gateway(d, &config(a.addr, b.addr, balance));
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..60 {
            *counts.entry(get(addr(&g), "/").text()).or_default() += 1;
        }
        assert_eq!(counts.len(), 2, "{balance}: {counts:?}");
        assert!(counts.values().all(|&n| n >= 10), "{balance}: {counts:?}");
    }
});

#[test]
fn hash_key_is_validated() {
    let bad = ringway::Config::from_toml(
        "[upstreams.be]\ntargets = [\"127.0.0.1:1\"]\nbalance = \"consistent_hash\"\n[[routes]]\nupstream = \"be\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("upstreams.be.hash_key"), "{bad}");
    let bad = ringway::Config::from_toml(
        "[upstreams.be]\ntargets = [\"127.0.0.1:1\"]\nhash_key = \"path\"\n[[routes]]\nupstream = \"be\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("only applies"), "{bad}");
    let bad = ringway::Config::from_toml(
        "[upstreams.be]\ntargets = [\"127.0.0.1:1\"]\nbalance = \"consistent_hash\"\nhash_key = \"header:\"\n[[routes]]\nupstream = \"be\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("header:NAME"), "{bad}");
}
