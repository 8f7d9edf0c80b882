//! A provider's key pool: round robin over the keys that may be used, a key the provider answered
//! 429 cools down for its `retry-after` (default [`DEFAULT_COOLDOWN_MS`], at most
//! [`MAX_COOLDOWN_MS`]), a key it refused as invalid (401) is disabled until the pool is
//! rebuilt (a key changed in the store) and reported once.
//!
//! The state is node-wide (a key cooling on one shard cools on all: relaxed atomics, one word per
//! key); each shard keeps its own round-robin cursor, so picking touches no shared counter.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Cooldown after a 429 without a usable `retry-after`.
pub const DEFAULT_COOLDOWN_MS: u64 = 10_000;
/// Longest cooldown a `retry-after` can ask for.
pub const MAX_COOLDOWN_MS: u64 = 300_000;

#[derive(Debug, Default)]
struct KeyState {
    /// `now_ms` before which the key is not used (0: usable).
    cool_until: AtomicU64,
    disabled: AtomicBool,
}

/// What a response says about the key it was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    Ok,
    /// 429: cool down this long.
    RateLimited {
        retry_after_ms: Option<u64>,
    },
    /// 401: the key is wrong or revoked. (A 403 is about the request: a model or resource this
    /// key may not use. It says nothing of the key's use for other requests, and a client could
    /// otherwise disable every key with a few requests it knows are forbidden.)
    Invalid,
}

impl KeyOutcome {
    /// The outcome of a provider's answer with `status` and `retry-after` header value.
    pub fn of(status: u16, retry_after: Option<&[u8]>, now_unix_ms: u64) -> KeyOutcome {
        match status {
            429 => KeyOutcome::RateLimited {
                retry_after_ms: retry_after.and_then(|v| retry_after_ms(v, now_unix_ms)),
            },
            401 => KeyOutcome::Invalid,
            _ => KeyOutcome::Ok,
        }
    }
}

/// A `retry-after` value (delay seconds, possibly fractional as some providers send, or an
/// HTTP date) in milliseconds from `now_unix_ms`.
pub fn retry_after_ms(v: &[u8], now_unix_ms: u64) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).ceil() as u64);
    }
    let at = httpdate::parse_http_date(s).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(at_ms.saturating_sub(now_unix_ms))
}

#[derive(Debug, Default)]
pub struct KeyPool {
    keys: Box<[KeyState]>,
}

impl KeyPool {
    pub fn new(n: usize) -> KeyPool {
        KeyPool {
            keys: (0..n).map(|_| KeyState::default()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The next usable key after this shard's `cursor`, or `None` when every key is cooling or
    /// disabled (see [`KeyPool::next_usable_in`]).
    pub fn pick(&self, cursor: &Cell<usize>, now_ms: u64) -> Option<usize> {
        let n = self.keys.len();
        for step in 0..n {
            let i = (cursor.get() + step) % n;
            let k = &self.keys[i];
            if !k.disabled.load(Ordering::Relaxed) && k.cool_until.load(Ordering::Relaxed) <= now_ms
            {
                cursor.set(i + 1);
                return Some(i);
            }
        }
        None
    }

    /// Milliseconds until a cooling key can be used again (`None`: every key is disabled).
    pub fn next_usable_in(&self, now_ms: u64) -> Option<u64> {
        self.keys
            .iter()
            .filter(|k| !k.disabled.load(Ordering::Relaxed))
            .map(|k| k.cool_until.load(Ordering::Relaxed).saturating_sub(now_ms))
            .min()
    }

    /// Records what the provider said about key `i`. Returns true the first time a key is
    /// disabled (for the caller to report it).
    pub fn report(&self, i: usize, outcome: KeyOutcome, now_ms: u64) -> bool {
        let Some(k) = self.keys.get(i) else {
            return false;
        };
        match outcome {
            KeyOutcome::Ok => false,
            KeyOutcome::RateLimited { retry_after_ms } => {
                let d = retry_after_ms
                    .unwrap_or(DEFAULT_COOLDOWN_MS)
                    .min(MAX_COOLDOWN_MS);
                k.cool_until.fetch_max(now_ms + d, Ordering::Relaxed);
                false
            }
            KeyOutcome::Invalid => !k.disabled.swap(true, Ordering::Relaxed),
        }
    }

    /// Key `i`'s state for a view: `active`, `cooling` (with the milliseconds left) or
    /// `disabled`.
    pub fn state(&self, i: usize, now_ms: u64) -> (&'static str, Option<u64>) {
        let Some(k) = self.keys.get(i) else {
            return ("disabled", None);
        };
        if k.disabled.load(Ordering::Relaxed) {
            return ("disabled", None);
        }
        let until = k.cool_until.load(Ordering::Relaxed);
        if until > now_ms {
            ("cooling", Some(until - now_ms))
        } else {
            ("active", None)
        }
    }

    /// Whether key `i` is disabled.
    pub fn is_disabled(&self, i: usize) -> bool {
        self.keys
            .get(i)
            .is_some_and(|k| k.disabled.load(Ordering::Relaxed))
    }
}

/// A provider's keys and their node-wide state (cooldowns, disabled keys).
pub struct ProviderKeys {
    keys: Vec<ProviderKey>,
    pub pool: KeyPool,
}

/// One provider key: its id and where it comes from (never its secret in any view).
pub struct ProviderKey {
    /// `config-N` for the config file's, the store's id for the admin API's.
    pub id: String,
    /// `config` or `store`.
    pub source: &'static str,
    pub label: String,
    /// The last four characters.
    pub hint: String,
    secret: String,
}

impl ProviderKey {
    pub fn new(id: String, source: &'static str, label: String, secret: String) -> ProviderKey {
        ProviderKey {
            id,
            source,
            label,
            hint: hint(&secret),
            secret,
        }
    }
}

/// The last four characters of a key (what a view of it shows).
pub fn hint(secret: &str) -> String {
    let n = secret.chars().count();
    secret.chars().skip(n.saturating_sub(4)).collect()
}

impl ProviderKeys {
    pub fn new(keys: Vec<ProviderKey>) -> ProviderKeys {
        ProviderKeys {
            pool: KeyPool::new(keys.len()),
            keys,
        }
    }

    /// The config file's keys of a provider.
    pub fn from_config(keys: Vec<(String, String)>) -> ProviderKeys {
        ProviderKeys::new(
            keys.into_iter()
                .enumerate()
                .map(|(i, (label, secret))| {
                    ProviderKey::new(format!("config-{i}"), "config", label, secret)
                })
                .collect(),
        )
    }

    /// Key `i` in the clear, to send: never log it.
    pub fn secret(&self, i: usize) -> &str {
        self.keys.get(i).map(|k| k.secret.as_str()).unwrap_or("")
    }

    pub fn keys(&self) -> &[ProviderKey] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProviderKeys({} keys)", self.keys.len())
    }
}

/// A key can go in a header as it is.
pub fn key_is_sendable(k: &str) -> bool {
    !k.is_empty() && k.len() <= 4096 && k.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_cooling_and_disabled_keys() {
        let p = KeyPool::new(3);
        let c = Cell::new(0);
        let picks: Vec<_> = (0..6).map(|_| p.pick(&c, 1000).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        p.report(
            1,
            KeyOutcome::RateLimited {
                retry_after_ms: Some(500),
            },
            1000,
        );
        assert!(p.report(2, KeyOutcome::Invalid, 1000));
        assert!(!p.report(2, KeyOutcome::Invalid, 1000), "reported once");
        let picks: Vec<_> = (0..3).map(|_| p.pick(&c, 1200).unwrap()).collect();
        assert_eq!(picks, [0, 0, 0]);
        // Key 1 is back after its retry-after; key 2 stays out.
        let picks: Vec<_> = (0..4).map(|_| p.pick(&c, 1500).unwrap()).collect();
        assert_eq!(picks, [1, 0, 1, 0]);
        p.report(
            0,
            KeyOutcome::RateLimited {
                retry_after_ms: None,
            },
            1500,
        );
        p.report(
            1,
            KeyOutcome::RateLimited {
                retry_after_ms: Some(10_000_000),
            },
            1500,
        );
        assert_eq!(p.pick(&c, 1600), None);
        assert_eq!(p.next_usable_in(1600), Some(DEFAULT_COOLDOWN_MS - 100));
        assert_eq!(
            p.pick(&c, 1500 + MAX_COOLDOWN_MS),
            Some(1),
            "key 1's retry-after of 10,000 s was capped"
        );
        // A shorter retry-after never shortens a cooldown already running.
        p.report(
            0,
            KeyOutcome::RateLimited {
                retry_after_ms: Some(1),
            },
            1500,
        );
        assert_eq!(p.pick(&c, 1600), None);
    }

    #[test]
    fn retry_after_values() {
        let now = 1_700_000_000_000;
        assert_eq!(retry_after_ms(b"2", now), Some(2000));
        assert_eq!(retry_after_ms(b" 0.25 ", now), Some(250));
        assert_eq!(retry_after_ms(b"-1", now), None);
        assert_eq!(retry_after_ms(b"soon", now), None);
        let date = httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(now + 30_000),
        );
        assert_eq!(retry_after_ms(date.as_bytes(), now), Some(30_000));
        assert_eq!(
            KeyOutcome::of(429, Some(b"3"), now),
            KeyOutcome::RateLimited {
                retry_after_ms: Some(3000)
            }
        );
        assert_eq!(KeyOutcome::of(401, None, now), KeyOutcome::Invalid);
        assert_eq!(KeyOutcome::of(500, None, now), KeyOutcome::Ok);
    }

    #[test]
    fn an_empty_pool_picks_nothing() {
        let p = KeyPool::new(0);
        assert_eq!(p.pick(&Cell::new(0), 0), None);
        assert_eq!(p.next_usable_in(0), None);
    }
}
