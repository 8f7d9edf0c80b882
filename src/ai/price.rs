//! Model prices and what a call costs, in integers: prices are USD per million tokens held as
//! micro-dollars (`"0.15"` → 150,000), costs are nano-dollars, so budgets add up exactly and no
//! float rounding creeps into a month of calls.

use std::fmt;

/// USD per million tokens, as micro-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// Input tokens served from the provider's prompt cache (their own, lower price).
    pub cached_input: u64,
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// All input tokens, cached ones included.
    pub input: u64,
    pub cached_input: u64,
    pub output: u64,
}

/// A cost in nano-dollars (1e-9 USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nanos(pub u64);

impl fmt::Display for Nanos {
    /// `$0.000123456`: dollars with nine decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "${}.{:09}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

impl Price {
    /// What `t` costs at this price (rounded up to the next nano-dollar).
    pub fn cost(&self, t: Tokens) -> Nanos {
        let cached = t.cached_input.min(t.input);
        // tokens × micro-USD per 1M tokens = 1e-12 USD; / 1000 → nano-USD.
        let pico = u128::from(t.input - cached) * u128::from(self.input)
            + u128::from(cached) * u128::from(self.cached_input)
            + u128::from(t.output) * u128::from(self.output);
        Nanos(u64::try_from(pico.div_ceil(1000)).unwrap_or(u64::MAX))
    }
}

/// Parses a decimal USD amount per million tokens (`"3"`, `"0.15"`, `"0.075"`; at most six
/// decimals) into micro-dollars.
pub fn parse_usd(s: &str) -> Option<u64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 6
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let w: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let f: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().ok()? * 10u64.pow(6 - frac.len() as u32)
    };
    w.checked_mul(1_000_000)?.checked_add(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_exact() {
        // $3 / $15 per million, cached input $0.30.
        let p = Price {
            input: parse_usd("3").unwrap(),
            output: parse_usd("15").unwrap(),
            cached_input: parse_usd("0.30").unwrap(),
        };
        let c = p.cost(Tokens {
            input: 1_000,
            cached_input: 400,
            output: 500,
        });
        // 600 × 3e-6 + 400 × 0.3e-6 + 500 × 15e-6 = 0.0018 + 0.00012 + 0.0075 = $0.00942
        assert_eq!(c, Nanos(9_420_000));
        assert_eq!(c.to_string(), "$0.009420000");
        // One token at $0.15 per million: 150 nano-dollars; at $0.000001 per million, a
        // thousandth of one, rounded up.
        let cheap = Price {
            input: parse_usd("0.15").unwrap(),
            ..Price::default()
        };
        let one = Tokens {
            input: 1,
            ..Tokens::default()
        };
        assert_eq!(cheap.cost(one), Nanos(150));
        let tiny = Price {
            input: parse_usd("0.000001").unwrap(),
            ..Price::default()
        };
        assert_eq!(tiny.cost(one), Nanos(1));
        assert_eq!(
            cheap.cost(Tokens {
                input: 1_000_000,
                ..Tokens::default()
            }),
            Nanos(150_000_000)
        );
        // More cached tokens than input ones (a provider's odd report) cost no more than input.
        let odd = p.cost(Tokens {
            input: 10,
            cached_input: 50,
            output: 0,
        });
        assert_eq!(odd, Nanos(3_000));
    }

    #[test]
    fn usd_amounts_parse() {
        for (s, want) in [
            ("3", Some(3_000_000)),
            ("0.15", Some(150_000)),
            (".5", Some(500_000)),
            ("10.", Some(10_000_000)),
            ("0.000001", Some(1)),
            ("0.0000001", None),
            ("", None),
            (".", None),
            ("-1", None),
            ("1e3", None),
            ("18446744073709551615", None),
        ] {
            assert_eq!(parse_usd(s), want, "{s:?}");
        }
    }
}
