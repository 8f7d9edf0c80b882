//! Model aliases: a name clients use (`"fast"`, `"gpt-4o"`) that maps to (provider, model)
//! candidates, tried in order or spread by weight, and the rule for falling back to the next
//! candidate when one fails.

use crate::upstream::retry::Failure;

/// One place an alias can be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the provider in the AI config.
    pub provider: usize,
    /// The provider's name for the model.
    pub model: String,
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The first candidate always, the next ones as fallbacks in the order listed.
    Ordered,
    /// The first candidate drawn by weight; the fallbacks in the order listed after it.
    Weighted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    pub order: Order,
    pub candidates: Vec<Candidate>,
}

impl Alias {
    /// The candidates to try for one request, in order (`draw`: a random number, for weighted
    /// aliases). Candidates of weight 0 are only ever fallbacks.
    pub fn plan(&self, draw: u64) -> Vec<usize> {
        let n = self.candidates.len();
        let first = match self.order {
            Order::Ordered => 0,
            Order::Weighted => {
                let total: u64 = self.candidates.iter().map(|c| u64::from(c.weight)).sum();
                if total == 0 {
                    0
                } else {
                    let mut r = draw % total;
                    self.candidates
                        .iter()
                        .position(|c| {
                            let w = u64::from(c.weight);
                            if r < w {
                                true
                            } else {
                                r -= w;
                                false
                            }
                        })
                        .unwrap_or(0)
                }
            }
        };
        (0..n).map(|k| (first + k) % n).collect()
    }
}

/// Whether a try that failed this way goes to the next candidate: connect errors, timeouts,
/// resets, 429 and 5xx (the provider could not serve it); a 4xx other than 429 is the request's
/// own fault and would fail anywhere.
pub fn falls_back(f: Failure) -> bool {
    match f {
        Failure::Connect | Failure::Timeout | Failure::Reset => true,
        Failure::Status(s) => s == 429 || (500..=599).contains(&s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(order: Order, weights: &[u32]) -> Alias {
        Alias {
            name: "a".into(),
            order,
            candidates: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| Candidate {
                    provider: i,
                    model: format!("m{i}"),
                    weight: w,
                })
                .collect(),
        }
    }

    #[test]
    fn ordered_aliases_try_in_order() {
        let a = alias(Order::Ordered, &[1, 1, 1]);
        for d in 0..10 {
            assert_eq!(a.plan(d), [0, 1, 2]);
        }
    }

    #[test]
    fn weighted_aliases_spread_by_weight_and_keep_every_fallback() {
        let a = alias(Order::Weighted, &[3, 1, 0]);
        let mut firsts = [0u32; 3];
        for d in 0..4000 {
            let p = a.plan(d);
            assert_eq!(p.len(), 3);
            let mut sorted = p.clone();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2], "every candidate once");
            firsts[p[0]] += 1;
        }
        assert_eq!(firsts, [3000, 1000, 0]);
        assert_eq!(alias(Order::Weighted, &[0, 0]).plan(7), [0, 1]);
    }

    #[test]
    fn fallback_rule() {
        for (f, want) in [
            (Failure::Connect, true),
            (Failure::Timeout, true),
            (Failure::Reset, true),
            (Failure::Status(429), true),
            (Failure::Status(500), true),
            (Failure::Status(529), true),
            (Failure::Status(400), false),
            (Failure::Status(401), false),
            (Failure::Status(404), false),
        ] {
            assert_eq!(falls_back(f), want, "{f:?}");
        }
    }
}
