//! Load balancing over one upstream's targets, per shard.
//!
//! - Smooth weighted round robin (nginx's algorithm): each pick adds every target's weight to its
//!   running score, takes the highest, and subtracts the total from the winner. Weights 5:1:1 give
//!   `a a b a c a a`, not `a a a a a b c`. Targets out of rotation sit the pick out (no weight, not
//!   in the total), so one coming back rejoins the spread rather than bursting.
//! - Least in flight: the target with the fewest requests in progress relative to its weight. Up to
//!   16 targets every target is compared (ties rotate); beyond that, two random targets are
//!   compared (power of two choices), which keeps a pick O(1) and avoids herding.
//! - Random: weighted random.
//! - Consistent hash: a ketama ring ([`super::hash_ring`]) over a request key; a request without the
//!   key (no such header or cookie) falls back to round robin.
//!
//! All state is shard-local plain integers; `skip` leaves out unhealthy targets and one that just
//! failed, as long as another is left.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;

use super::Target;
use super::hash_ring::{HashRing, hash64};
use super::rng::Rng;
use crate::config::{Balance, HashKey};
use crate::http::RequestHead;
use crate::http::headers::{HeaderKind, trim_ows};

/// Above this many targets, least-in-flight samples two instead of scanning all.
const FULL_SCAN_MAX: usize = 16;

pub struct Balancer {
    kind: Balance,
    /// Smooth WRR running scores, one per target.
    scores: RefCell<Vec<i64>>,
    total_weight: i64,
    cursor: Cell<usize>,
    rng: Rng,
    ring: Option<HashRing>,
}

impl Balancer {
    pub fn new(kind: Balance, targets: &[Rc<Target>]) -> Balancer {
        let ring = matches!(kind, Balance::ConsistentHash(_)).then(|| {
            HashRing::new(
                &targets
                    .iter()
                    .map(|t| (t.addr, t.weight))
                    .collect::<Vec<_>>(),
            )
        });
        Balancer {
            kind,
            scores: RefCell::new(vec![0; targets.len()]),
            total_weight: targets.iter().map(|t| i64::from(t.weight)).sum(),
            cursor: Cell::new(0),
            rng: Rng::default(),
            ring,
        }
    }

    /// What a consistent-hash balancer needs from the request, if it is one.
    pub fn hash_key(&self) -> Option<&HashKey> {
        match &self.kind {
            Balance::ConsistentHash(k) => Some(k),
            _ => None,
        }
    }

    /// Index of the target for the next request. `key`: the request's hash for consistent hashing;
    /// `skip`: targets to leave out (unhealthy, or one that just failed) unless none is left.
    pub fn pick(
        &self,
        targets: &[Rc<Target>],
        key: Option<u64>,
        skip: &dyn Fn(usize) -> bool,
    ) -> usize {
        if targets.len() <= 1 {
            return 0;
        }
        match (&self.kind, &self.ring, key) {
            (Balance::ConsistentHash(_), Some(ring), Some(k)) => ring.pick(k, skip),
            (Balance::LeastInFlight, ..) => self.least_in_flight(targets, skip),
            (Balance::Random, ..) => self.random(targets, skip),
            _ => self.round_robin(targets, skip),
        }
    }

    fn round_robin(&self, targets: &[Rc<Target>], skip: &dyn Fn(usize) -> bool) -> usize {
        let mut scores = self.scores.borrow_mut();
        // With every target left out the caller uses one anyway: rotate over all of them.
        swrr(&mut scores, targets, skip)
            .or_else(|| swrr(&mut scores, targets, &|_| false))
            .unwrap_or(0)
    }

    fn least_in_flight(&self, targets: &[Rc<Target>], skip: impl Fn(usize) -> bool) -> usize {
        let n = targets.len();
        // Compare in_flight/weight without division.
        let better = |a: usize, b: usize| {
            u64::from(targets[a].in_flight.get()) * u64::from(targets[b].weight)
                < u64::from(targets[b].in_flight.get()) * u64::from(targets[a].weight)
        };
        if n > FULL_SCAN_MAX {
            let a = self.random(targets, &skip);
            let mut b = self.random(targets, &skip);
            if b == a {
                b = (a + 1 + (self.rng.next() as usize % (n - 1))) % n;
                if skip(b) {
                    b = a;
                }
            }
            return if better(b, a) { b } else { a };
        }
        let start = self.cursor.get() % n;
        self.cursor.set(start + 1);
        let mut best = usize::MAX;
        for k in 0..n {
            let i = (start + k) % n;
            if !skip(i) && (best == usize::MAX || better(i, best)) {
                best = i;
            }
        }
        if best == usize::MAX { start } else { best }
    }

    fn random(&self, targets: &[Rc<Target>], skip: impl Fn(usize) -> bool) -> usize {
        let total = self.total_weight.max(1) as u64;
        for _ in 0..4 {
            let mut r = (self.rng.next() % total) as i64;
            for (i, t) in targets.iter().enumerate() {
                r -= i64::from(t.weight);
                if r < 0 {
                    if !skip(i) {
                        return i;
                    }
                    break;
                }
            }
        }
        (0..targets.len()).find(|&i| !skip(i)).unwrap_or(0)
    }
}

/// One smooth-WRR step over the targets `skip` leaves in; `None` when it leaves none. As in nginx's
/// `ngx_http_upstream_get_peer`, only targets in rotation gain weight and the winner gives back the
/// weight of those alone: a target out of rotation (unhealthy, ejected, just failed) keeps its
/// score, instead of banking a turn per pick it missed and taking them all in a row on return.
fn swrr(scores: &mut [i64], targets: &[Rc<Target>], skip: &dyn Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut total = 0;
    for (i, t) in targets.iter().enumerate() {
        if skip(i) {
            continue;
        }
        let w = i64::from(t.weight);
        scores[i] += w;
        total += w;
        if best.is_none_or(|b| scores[i] > scores[b]) {
            best = Some(i);
        }
    }
    let best = best?;
    scores[best] -= total;
    Some(best)
}

/// The consistent-hash key of a request, hashed; `None` when the request lacks it. `path`: as
/// routed (normalized), query included.
pub fn request_key(
    key: &HashKey,
    req: &RequestHead,
    data: &[u8],
    path: &[u8],
    client: IpAddr,
) -> Option<u64> {
    match key {
        HashKey::ClientIp => Some(match client {
            IpAddr::V4(v4) => hash64(&v4.octets()),
            IpAddr::V6(v6) => hash64(&v6.octets()),
        }),
        HashKey::Path => {
            let end = path.iter().position(|&b| b == b'?').unwrap_or(path.len());
            Some(hash64(&path[..end]))
        }
        HashKey::Header(name) => req
            .headers
            .iter()
            .find(|h| h.name.of(data).eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| hash64(trim_ows(h.value.of(data)))),
        HashKey::Cookie(name) => req
            .headers
            .iter()
            .filter(|h| {
                h.kind == HeaderKind::Other && h.name.of(data).eq_ignore_ascii_case(b"cookie")
            })
            .flat_map(|h| h.value.of(data).split(|&b| b == b';'))
            .find_map(|pair| {
                let pair = trim_ows(pair);
                let eq = pair.iter().position(|&b| b == b'=')?;
                (trim_ows(&pair[..eq]) == name.as_bytes())
                    .then(|| hash64(trim_ows(&pair[eq + 1..])))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Pool;
    use std::net::SocketAddr;

    fn targets(weights: &[u32]) -> Vec<Rc<Target>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Rc::new(Target {
                    index: i,
                    addr: SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                    name: format!("t{i}"),
                    weight: w,
                    pool: Pool::new(1, 0, 1000),
                    in_flight: Cell::new(0),
                    outcomes: Default::default(),
                    tls_name: None,
                })
            })
            .collect()
    }

    #[test]
    fn smooth_weighted_round_robin() {
        let t = targets(&[5, 1, 1]);
        let b = Balancer::new(Balance::RoundRobin, &t);
        let seq: Vec<usize> = (0..7).map(|_| b.pick(&t, None, &|_| false)).collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[b.pick(&t, None, &|_| false)] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    /// The longest run of `target` in `seq`.
    fn longest_run(seq: &[usize], target: usize) -> usize {
        seq.split(|&p| p != target)
            .map(<[usize]>::len)
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn recovered_target_rejoins_evenly() {
        let t = targets(&[1, 1, 1]);
        let b = Balancer::new(Balance::RoundRobin, &t);
        for _ in 0..300 {
            assert_ne!(b.pick(&t, None, &|i| i == 0), 0);
        }
        // Back in rotation: one third of the picks, never two in a row (not a burst paying back
        // the 300 picks it was out for).
        let seq: Vec<usize> = (0..30).map(|_| b.pick(&t, None, &|_| false)).collect();
        let mut counts = [0; 3];
        for &p in &seq {
            counts[p] += 1;
        }
        assert_eq!(counts, [10, 10, 10], "{seq:?}");
        assert_eq!(longest_run(&seq, 0), 1, "{seq:?}");
    }

    #[test]
    fn recovered_heavy_target_keeps_its_smooth_spread() {
        let t = targets(&[5, 1, 1]);
        let b = Balancer::new(Balance::RoundRobin, &t);
        for _ in 0..100 {
            assert_ne!(b.pick(&t, None, &|i| i == 0), 0);
        }
        let seq: Vec<usize> = (0..70).map(|_| b.pick(&t, None, &|_| false)).collect();
        let mut counts = [0; 3];
        for &p in &seq {
            counts[p] += 1;
        }
        assert_eq!(counts, [50, 10, 10], "{seq:?}");
        // Smooth WRR at 5:1:1 never gives the heavy target more than 4 in a row (`a a b a c a a`
        // repeated: its last two and the next round's first two).
        assert!(longest_run(&seq, 0) <= 4, "{seq:?}");
    }

    #[test]
    fn all_skipped_still_rotates() {
        let t = targets(&[1, 1, 1]);
        let b = Balancer::new(Balance::RoundRobin, &t);
        let seq: Vec<usize> = (0..6).map(|_| b.pick(&t, None, &|_| true)).collect();
        let mut sorted = seq.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 0, 1, 1, 2, 2], "{seq:?}");
    }

    #[test]
    fn avoid_skips_failed_target() {
        let t = targets(&[1, 1]);
        let b = Balancer::new(Balance::RoundRobin, &t);
        for _ in 0..10 {
            assert_eq!(b.pick(&t, None, &|i| i == 0), 1);
        }
    }

    #[test]
    fn random_follows_weights() {
        let t = targets(&[3, 1]);
        let b = Balancer::new(Balance::Random, &t);
        let heavy = (0..8000)
            .filter(|_| b.pick(&t, None, &|_| false) == 0)
            .count();
        assert!((5400..6600).contains(&heavy), "{heavy}");
    }

    #[test]
    fn least_in_flight_two_choices_on_many_targets() {
        let t = targets(&[1; 40]);
        let b = Balancer::new(Balance::LeastInFlight, &t);
        for (i, x) in t.iter().enumerate() {
            x.in_flight.set(if i == 7 { 0 } else { 5 });
        }
        // Sampling two, target 7 wins whenever it is sampled, and never loses to a busier one.
        let mut hits = 0;
        for _ in 0..4000 {
            let p = b.pick(&t, None, &|_| false);
            assert!(p < 40);
            hits += usize::from(p == 7);
        }
        assert!(hits > 100, "{hits}");
    }

    #[test]
    fn consistent_hash_is_sticky_and_avoids_failed_targets() {
        let t = targets(&[1, 1, 1]);
        let b = Balancer::new(Balance::ConsistentHash(HashKey::ClientIp), &t);
        let key = Some(hash64(b"user-42"));
        let first = b.pick(&t, key, &|_| false);
        for _ in 0..10 {
            assert_eq!(b.pick(&t, key, &|_| false), first);
        }
        assert_ne!(b.pick(&t, key, &|i| i == first), first);
    }

    #[test]
    fn least_in_flight_prefers_idle_targets() {
        let t = targets(&[1, 1, 1]);
        let b = Balancer::new(Balance::LeastInFlight, &t);
        t[0].in_flight.set(3);
        t[1].in_flight.set(1);
        t[2].in_flight.set(2);
        assert_eq!(b.pick(&t, None, &|_| false), 1);
        t[1].in_flight.set(5);
        assert_eq!(b.pick(&t, None, &|_| false), 2);
        // Ties rotate.
        for x in &t {
            x.in_flight.set(0);
        }
        let picks: Vec<usize> = (0..3).map(|_| b.pick(&t, None, &|_| false)).collect();
        let mut sorted = picks.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2]);
    }
}
