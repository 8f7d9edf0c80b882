//! AI limits: requests and tokens per minute, token and cost budgets per day and month, for an
//! app, a tenant, or an AI route as a whole. Node-global (one [`Budget`] per subject, shared by
//! every shard) and lock-free: each limit is one atomic word holding its window's number and
//! what the window used, updated by compare-and-swap.
//!
//! A call **reserves** its estimate at admission (1 request; prompt tokens plus its output bound
//! in tokens; that many tokens at the dearest price among the model's candidates in cost) on
//! every limit that applies, and **settles** the actual figures when it ends (streamed or not,
//! the client gone or not): the difference is given back or charged. A call refused by one limit
//! takes back what it reserved on the others.
//!
//! Windows are fixed: the minute, the UTC day, the UTC calendar month. A settlement that lands in
//! a later window than its reservation changes nothing (what was reserved stays counted in the
//! window it was reserved in).
//!
//! Overspend bound: reservations never exceed a limit, so calls whose output stays within their
//! reserved bound never overspend; a call can only go over by what it generates beyond its
//! reserve (`max_tokens` when the client set one, which providers do not exceed, else
//! `[ai] reserve_output_tokens`). So a window's use is at most its limit plus, for the calls in
//! flight when it ran out, what each generated beyond its reserve. A gateway stopped while calls
//! are in flight keeps their whole reservations (counts over, never under).
//!
//! Across restarts: apps' and tenants' day and month windows are charged at start with what the
//! store's rollups recorded for them this UTC day and month ([`Budget::preload`]); minute windows
//! and routes' own budgets start empty.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bits of a window word that hold the use; the rest hold the window number (mod 2^20).
const USE_BITS: u32 = 44;
const USE_MASK: u64 = (1 << USE_BITS) - 1;
const EPOCH_MASK: u64 = (1 << (64 - USE_BITS)) - 1;

/// Largest limit a window holds (tokens, or micro-USD for cost: $17.5 M).
pub const MAX_LIMIT: u64 = USE_MASK;

/// What an AI limit bounds, in the order of [`AiLimits::all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    RequestsPerMinute,
    TokensPerMinute,
    TokensPerDay,
    TokensPerMonth,
    /// Micro-USD.
    CostPerDay,
    CostPerMonth,
}

impl What {
    pub const ALL: [What; 6] = [
        What::RequestsPerMinute,
        What::TokensPerMinute,
        What::TokensPerDay,
        What::TokensPerMonth,
        What::CostPerDay,
        What::CostPerMonth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            What::RequestsPerMinute => "requests_per_minute",
            What::TokensPerMinute => "tokens_per_minute",
            What::TokensPerDay => "tokens_per_day",
            What::TokensPerMonth => "tokens_per_month",
            What::CostPerDay => "cost_per_day_usd",
            What::CostPerMonth => "cost_per_month_usd",
        }
    }
}

/// The limits of one subject (each optional). Cost limits are micro-USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AiLimits {
    pub limits: [Option<u64>; 6],
}

impl AiLimits {
    pub fn get(&self, w: What) -> Option<u64> {
        self.limits[w as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.limits.iter().all(Option::is_none)
    }
}

/// A call's figures: one request, its tokens, its cost in micro-USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: u64,
    pub tokens: u64,
    pub cost_micros: u64,
}

impl Usage {
    pub fn of(&self, w: What) -> u64 {
        match w {
            What::RequestsPerMinute => self.requests,
            What::TokensPerMinute | What::TokensPerDay | What::TokensPerMonth => self.tokens,
            What::CostPerDay | What::CostPerMonth => self.cost_micros,
        }
    }
}

/// The window numbers at one instant, and when each ends.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    minute: u64,
    day: u64,
    month: u64,
    /// Seconds until the minute, day and month end.
    left: [u64; 3],
}

impl Windows {
    pub fn at(unix_secs: u64) -> Windows {
        let day = unix_secs / 86_400;
        let (y, m) = year_month(day);
        let month = y * 12 + m;
        let (ny, nm) = if m == 11 { (y + 1, 0) } else { (y, m + 1) };
        let next_month_day = days_from_civil(ny, nm + 1);
        Windows {
            minute: unix_secs / 60,
            day,
            month,
            left: [
                60 - unix_secs % 60,
                86_400 - unix_secs % 86_400,
                (next_month_day * 86_400).saturating_sub(unix_secs),
            ],
        }
    }

    pub fn now() -> Windows {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Windows::at(secs)
    }

    fn of(&self, w: What) -> (u64, u64) {
        match w {
            What::RequestsPerMinute | What::TokensPerMinute => (self.minute, self.left[0]),
            What::TokensPerDay | What::CostPerDay => (self.day, self.left[1]),
            What::TokensPerMonth | What::CostPerMonth => (self.month, self.left[2]),
        }
    }
}

/// (year, month 0-11) of a day number since 1970-01-01 (the civil-from-days algorithm).
fn year_month(days: u64) -> (u64, u64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y.max(0) as u64, (m - 1) as u64)
}

/// Days since 1970-01-01 of the first of month `m` (1-12) of year `y`.
fn days_from_civil(y: u64, m: u64) -> u64 {
    let y = y as i64 - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468).max(0) as u64
}

fn pack(epoch: u64, used: u64) -> u64 {
    ((epoch & EPOCH_MASK) << USE_BITS) | used.min(USE_MASK)
}

fn unpack(w: u64) -> (u64, u64) {
    (w >> USE_BITS, w & USE_MASK)
}

/// One subject's limits and their windows' use.
#[derive(Debug)]
pub struct Budget {
    pub limits: AiLimits,
    words: [AtomicU64; 6],
}

/// Why a reservation was refused: the limit, its value, and seconds until its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub what: What,
    pub limit: u64,
    pub retry_after_secs: u64,
}

impl Budget {
    pub fn new(limits: AiLimits) -> Budget {
        Budget {
            limits,
            words: Default::default(),
        }
    }

    /// A budget with new `limits` that keeps what this one used in its windows (a limit changed
    /// by the admin API or a reload must not forget the day's spend). Calls in flight settle on
    /// the old one, so their reservations stay counted here as reserved: an overcount, never an
    /// undercount.
    pub fn relimited(&self, limits: AiLimits) -> Budget {
        Budget {
            limits,
            words: std::array::from_fn(|i| AtomicU64::new(self.words[i].load(Relaxed))),
        }
    }

    /// What limit `w` used in its current window.
    pub fn used(&self, w: What, win: &Windows) -> u64 {
        let (epoch, _) = win.of(w);
        let (e, u) = unpack(self.words[w as usize].load(Relaxed));
        if e == epoch & EPOCH_MASK { u } else { 0 }
    }

    /// Adds `n` to limit `w` if it stays within `limit` (always, with `limit` `None`).
    fn add(&self, w: What, n: u64, win: &Windows, limit: Option<u64>) -> bool {
        let (epoch, _) = win.of(w);
        let word = &self.words[w as usize];
        let mut cur = word.load(Relaxed);
        loop {
            let (e, u) = unpack(cur);
            let used = if e == epoch & EPOCH_MASK { u } else { 0 };
            if limit.is_some_and(|l| used.saturating_add(n) > l) {
                return false;
            }
            match word.compare_exchange_weak(
                cur,
                pack(epoch, used.saturating_add(n)),
                Relaxed,
                Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Takes `n` back from limit `w`, if its window is still `epoch`.
    fn sub(&self, w: What, n: u64, epoch: u64) {
        let word = &self.words[w as usize];
        let mut cur = word.load(Relaxed);
        loop {
            let (e, u) = unpack(cur);
            if e != epoch & EPOCH_MASK {
                return;
            }
            match word.compare_exchange_weak(
                cur,
                pack(epoch, u.saturating_sub(n)),
                Relaxed,
                Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// A limit `u` alone is more than (it could never be admitted, however long it waits).
    pub fn beyond(&self, u: Usage) -> Option<(What, u64)> {
        What::ALL
            .into_iter()
            .find_map(|w| self.limits.get(w).filter(|&l| u.of(w) > l).map(|l| (w, l)))
    }

    /// Reserves `u` on every limit this budget sets, or none of them.
    pub fn reserve(&self, u: Usage, win: &Windows) -> Result<(), Refused> {
        for (i, w) in What::ALL.into_iter().enumerate() {
            let Some(limit) = self.limits.get(w) else {
                continue;
            };
            if !self.add(w, u.of(w), win, Some(limit)) {
                for back in What::ALL[..i].iter().copied() {
                    if self.limits.get(back).is_some() {
                        self.sub(back, u.of(back), win.of(back).0);
                    }
                }
                return Err(Refused {
                    what: w,
                    limit,
                    retry_after_secs: win.of(w).1.max(1),
                });
            }
        }
        Ok(())
    }

    /// Counts use from before this budget existed (the store's record of the day and month
    /// after a restart): `tokens` and `cost_micros` into the month's windows, and into the
    /// day's when `today`.
    pub fn preload(&self, tokens: u64, cost_micros: u64, today: bool, win: &Windows) {
        let add = |w: What, n: u64| {
            if self.limits.get(w).is_some() && n > 0 {
                self.add(w, n, win, None);
            }
        };
        add(What::TokensPerMonth, tokens);
        add(What::CostPerMonth, cost_micros);
        if today {
            add(What::TokensPerDay, tokens);
            add(What::CostPerDay, cost_micros);
        }
    }

    /// Unix seconds at which the current UTC day and month began.
    pub fn starts(win: &Windows) -> (u64, u64) {
        let (y, m) = year_month(win.day);
        (win.day * 86_400, days_from_civil(y, m + 1) * 86_400)
    }

    /// Settles a reservation of `reserved` made in windows `at` with the actual figures.
    pub fn settle(&self, reserved: Usage, actual: Usage, at: &Windows) {
        for w in What::ALL {
            if self.limits.get(w).is_none() {
                continue;
            }
            let (r, a) = (reserved.of(w), actual.of(w));
            let epoch = at.of(w).0;
            if a > r {
                // Charged in the reservation's window only (see the module docs).
                if Windows::now().of(w).0 == epoch {
                    self.add(w, a - r, at, None);
                }
            } else if r > a {
                self.sub(w, r - a, epoch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pairs: &[(What, u64)]) -> AiLimits {
        let mut l = AiLimits::default();
        for &(w, v) in pairs {
            l.limits[w as usize] = Some(v);
        }
        l
    }

    #[test]
    fn windows_follow_the_calendar() {
        // 2026-12-01T10:00:30Z.
        let t = 1_796_119_230;
        let w = Windows::at(t);
        assert_eq!(w.left[0], 30);
        assert_eq!(w.left[1], 14 * 3600 - 30);
        // December has 31 days: the month ends 2027-01-01T00:00:00Z.
        assert_eq!(w.left[2], 31 * 86_400 - 10 * 3600 - 30);
        let feb = Windows::at(1_709_251_199); // 2024-02-29T23:59:59Z (a leap year)
        assert_eq!(feb.left[2], 1);
        assert_ne!(Windows::at(1_709_251_200).month, feb.month);
    }

    #[test]
    fn reservations_stay_within_the_limit_and_settle_back() {
        let b = Budget::new(limits(&[
            (What::TokensPerMinute, 100),
            (What::RequestsPerMinute, 10),
        ]));
        // 2001-09-09T01:46:40Z: 20 s left in the minute.
        let win = Windows::at(1_000_000_000);
        let call = Usage {
            requests: 1,
            tokens: 40,
            cost_micros: 0,
        };
        assert!(b.reserve(call, &win).is_ok());
        assert!(b.reserve(call, &win).is_ok());
        let r = b.reserve(call, &win).unwrap_err();
        assert_eq!(r.what, What::TokensPerMinute);
        assert_eq!(r.retry_after_secs, 20);
        assert_eq!(
            b.used(What::RequestsPerMinute, &win),
            2,
            "the refused call took nothing"
        );
        // The first call used 10 of its 40: 30 come back, and a third call fits.
        b.settle(call, Usage { tokens: 10, ..call }, &win);
        assert_eq!(b.used(What::TokensPerMinute, &win), 50);
        assert!(b.reserve(call, &win).is_ok());
        // The next minute starts empty.
        let next = Windows::at(1_000_000_020);
        assert_eq!(b.used(What::TokensPerMinute, &next), 0);
    }

    #[test]
    fn new_limits_keep_what_was_spent() {
        let win = Windows::at(1_000_000_000);
        let b = Budget::new(limits(&[(What::TokensPerDay, 100)]));
        let call = Usage {
            requests: 1,
            tokens: 90,
            cost_micros: 0,
        };
        assert!(b.reserve(call, &win).is_ok());
        // Raised from 100 to 120: 30 left today, not 120.
        let raised = b.relimited(limits(&[(What::TokensPerDay, 120)]));
        assert_eq!(raised.used(What::TokensPerDay, &win), 90);
        assert!(raised.reserve(Usage { tokens: 40, ..call }, &win).is_err());
        assert!(raised.reserve(Usage { tokens: 30, ..call }, &win).is_ok());
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_limit() {
        let b = std::sync::Arc::new(Budget::new(limits(&[(What::TokensPerDay, 10_000)])));
        let win = Windows::at(1_000_000_000);
        let admitted = std::sync::Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (b, admitted) = (b.clone(), admitted.clone());
                s.spawn(move || {
                    for _ in 0..1000 {
                        let u = Usage {
                            requests: 1,
                            tokens: 7,
                            cost_micros: 0,
                        };
                        if b.reserve(u, &win).is_ok() {
                            admitted.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Relaxed), 10_000 / 7);
        assert!(b.used(What::TokensPerDay, &win) <= 10_000);
    }
}
