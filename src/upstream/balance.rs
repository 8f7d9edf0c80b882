//! Load balancing over one upstream's targets, per shard.
//!
//! - Smooth weighted round robin (nginx's algorithm): each pick adds every target's weight to its
//!   running score, takes the highest, and subtracts the total from the winner. Weights 5:1:1 give
//!   `a a b a c a a`, not `a a a a a b c`.
//! - Least in flight: the target with the fewest requests in progress relative to its weight; ties
//!   go round robin so equal targets share load.
//!
//! Both are O(targets) per pick with plain integers; `avoid` skips a target that just failed when
//! another exists.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use super::Target;
use crate::config::Balance;

pub struct Balancer {
    kind: Balance,
    /// Smooth WRR running scores, one per target.
    scores: RefCell<Vec<i64>>,
    total_weight: i64,
    cursor: Cell<usize>,
}

impl Balancer {
    pub fn new(kind: Balance, targets: &[Rc<Target>]) -> Balancer {
        Balancer {
            kind,
            scores: RefCell::new(vec![0; targets.len()]),
            total_weight: targets.iter().map(|t| i64::from(t.weight)).sum(),
            cursor: Cell::new(0),
        }
    }

    /// Index of the target for the next request.
    pub fn pick(&self, targets: &[Rc<Target>], avoid: Option<SocketAddr>) -> usize {
        if targets.len() <= 1 {
            return 0;
        }
        let skip = |i: usize| avoid == Some(targets[i].addr);
        match self.kind {
            Balance::RoundRobin => {
                let mut scores = self.scores.borrow_mut();
                let mut best = usize::MAX;
                for (i, t) in targets.iter().enumerate() {
                    scores[i] += i64::from(t.weight);
                    if !skip(i) && (best == usize::MAX || scores[i] > scores[best]) {
                        best = i;
                    }
                }
                scores[best] -= self.total_weight;
                best
            }
            Balance::LeastInFlight => {
                let n = targets.len();
                let start = self.cursor.get() % n;
                self.cursor.set(start + 1);
                let mut best = usize::MAX;
                for k in 0..n {
                    let i = (start + k) % n;
                    if skip(i) {
                        continue;
                    }
                    // Compare in_flight/weight without division.
                    let better = best == usize::MAX
                        || u64::from(targets[i].in_flight.get()) * u64::from(targets[best].weight)
                            < u64::from(targets[best].in_flight.get())
                                * u64::from(targets[i].weight);
                    if better {
                        best = i;
                    }
                }
                best
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Pool;

    fn targets(weights: &[u32]) -> Vec<Rc<Target>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Rc::new(Target {
                    addr: SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                    name: format!("t{i}"),
                    weight: w,
                    pool: Pool::new(1, 0, 1000),
                    in_flight: Cell::new(0),
                })
            })
            .collect()
    }

    #[test]
    fn smooth_weighted_round_robin() {
        let t = targets(&[5, 1, 1]);
        let b = Balancer::new(Balance::RoundRobin, &t);
        let seq: Vec<usize> = (0..7).map(|_| b.pick(&t, None)).collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[b.pick(&t, None)] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    #[test]
    fn avoid_skips_failed_target() {
        let t = targets(&[1, 1]);
        let b = Balancer::new(Balance::RoundRobin, &t);
        for _ in 0..10 {
            assert_eq!(b.pick(&t, Some(t[0].addr)), 1);
        }
    }

    #[test]
    fn least_in_flight_prefers_idle_targets() {
        let t = targets(&[1, 1, 1]);
        let b = Balancer::new(Balance::LeastInFlight, &t);
        t[0].in_flight.set(3);
        t[1].in_flight.set(1);
        t[2].in_flight.set(2);
        assert_eq!(b.pick(&t, None), 1);
        t[1].in_flight.set(5);
        assert_eq!(b.pick(&t, None), 2);
        // Ties rotate.
        for x in &t {
            x.in_flight.set(0);
        }
        let picks: Vec<usize> = (0..3).map(|_| b.pick(&t, None)).collect();
        let mut sorted = picks.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2]);
    }
}
