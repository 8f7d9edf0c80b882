//! HMAC request signing: an access key belongs to one app and has a 256-bit secret. A client
//! signs each request:
//!
//! ```text
//! Authorization: RINGWAY-HMAC-SHA256 Credential=<access key>, Signature=<hex>
//! Date: <IMF-fixdate>                                   (within ±5 minutes of the gateway's clock)
//! Content-Digest: sha-256=:<base64 of SHA-256(body)>:   (RFC 9530; required with a body)
//!
//! Signature = hex(HMAC-SHA256(secret, METHOD "\n" Host "\n" request-target "\n" Date "\n"
//!                              Content-Digest))
//! ```
//!
//! where the secret is used as the text it was shown as, Host is the `Host` field as sent,
//! request-target the path and query exactly as sent, and Content-Digest is empty for a request
//! without a body. The gateway checks the signature in constant time, the clock skew,
//! the digest against the body it received (a signed body must come with Content-Length and fit
//! in the connection buffer, `http.buffer_size`), and refuses a signature seen before within the
//! window, node-wide ([`Replays`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::AppEntry;

/// The scheme of the `Authorization` field.
pub const SCHEME: &[u8] = b"RINGWAY-HMAC-SHA256 ";
/// Largest difference between the request's Date and the gateway's clock, and the replay window.
pub const SKEW_S: u64 = 300;

pub struct HmacCred {
    pub access_key: Box<str>,
    pub app: Arc<AppEntry>,
    pub secret: Box<[u8]>,
}

impl std::fmt::Debug for HmacCred {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacCred")
            .field("access_key", &self.access_key)
            .field("app", &self.app.id)
            .finish()
    }
}

/// Access key → credential.
pub type HmacIndex = HashMap<Box<str>, Arc<HmacCred>>;

/// The parts of a signed request's `Authorization` value.
pub struct Signed<'a> {
    pub access_key: &'a str,
    pub signature: [u8; 32],
}

/// Parses `RINGWAY-HMAC-SHA256 Credential=..., Signature=...` (the scheme included).
pub fn parse(value: &[u8]) -> Option<Signed<'_>> {
    if value.len() <= SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let rest = std::str::from_utf8(&value[SCHEME.len()..]).ok()?;
    let (mut key, mut sig) = (None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Credential" => key = Some(v.trim()),
            "Signature" => sig = Some(v.trim()),
            _ => return None,
        }
    }
    let sig = sig?;
    if sig.len() != 64 {
        return None;
    }
    let mut signature = [0u8; 32];
    for (i, out) in signature.iter_mut().enumerate() {
        *out = u8::from_str_radix(sig.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Signed {
        access_key: key?,
        signature,
    })
}

/// Checks a signature in constant time.
/// The signed parts of a request, in signing order.
pub struct Parts<'a> {
    pub method: &'a [u8],
    pub host: &'a [u8],
    pub target: &'a [u8],
    pub date: &'a [u8],
    pub digest: &'a [u8],
}

pub fn verify_signature(secret: &[u8], p: &Parts<'_>, signature: &[u8; 32]) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for (i, part) in [p.method, p.host, p.target, p.date, p.digest]
        .iter()
        .enumerate()
    {
        if i > 0 {
            ctx.update(b"\n");
        }
        ctx.update(part);
    }
    let tag = ctx.sign();
    bool::from(subtle::ConstantTimeEq::ct_eq(tag.as_ref(), &signature[..]))
}

/// Whether `date` (an HTTP date) is within [`SKEW_S`] of `now_s`.
pub fn fresh(date: &[u8], now_s: u64) -> bool {
    let Some(t) = std::str::from_utf8(date)
        .ok()
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
    else {
        return false;
    };
    let t = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    t.abs_diff(now_s) <= SKEW_S
}

/// Whether `date` (an HTTP date) is at or after `since_s` (the replay table's start).
pub fn dated_since(date: &[u8], since_s: u64) -> bool {
    std::str::from_utf8(date)
        .ok()
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some_and(|d| d.as_secs() >= since_s)
}

/// Whether `digest` (a Content-Digest value) names the SHA-256 of `body`.
pub fn digest_matches(digest: &[u8], body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(digest) else {
        return false;
    };
    let Some(b64) = text.split(',').map(str::trim).find_map(|d| {
        d.strip_prefix("sha-256=:")
            .and_then(|r| r.strip_suffix(':'))
    }) else {
        return false;
    };
    let mut want = [0u8; 32];
    match STANDARD.decode_slice(b64, &mut want) {
        Ok(32) => {}
        _ => return false,
    }
    let got = ring::digest::digest(&ring::digest::SHA256, body);
    bool::from(subtle::ConstantTimeEq::ct_eq(got.as_ref(), &want[..]))
}

/// Signatures seen within the window, node-wide: a fixed, lazily committed table of slots, each
/// one word holding a 32-bit tag of the signature and its expiry (unix seconds), claimed with a
/// single compare-and-swap; shards never lock. The set and the tag come from a hash keyed per
/// process, so nobody can aim signatures at the set of another's.
///
/// It fails closed: when every slot of a set holds a live signature, a new one is refused (the
/// client retries with a new Date, so a new signature) rather than a live one forgotten; with
/// [`REPLAY_SLOTS`] slots that takes ~1,700 signed requests a second, node-wide, sustained for the
/// whole window, landing evenly. Requests dated before the table existed (the process started)
/// are refused, so a restart does not reopen the window for requests seen before it.
pub struct Replays {
    slots: std::sync::OnceLock<Box<[AtomicU64]>>,
    key: foldhash::fast::RandomState,
    since_s: u64,
}

pub const REPLAY_SLOTS: usize = 1 << 20;
const WAYS: usize = 8;

impl Default for Replays {
    fn default() -> Replays {
        Replays {
            slots: std::sync::OnceLock::new(),
            key: foldhash::fast::RandomState::default(),
            since_s: crate::observe::clock::unix_ms_coarse() / 1000,
        }
    }
}

impl std::fmt::Debug for Replays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replays")
    }
}

/// What the replay table says of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen in the window: recorded now.
    First,
    /// Seen before: a replay.
    Again,
    /// Its set is full of live signatures: refused, try again (with a new signature).
    Full,
}

impl Replays {
    /// The unix second the table began; earlier Dates are refused.
    pub fn since_s(&self) -> u64 {
        self.since_s
    }

    /// Records `signature` until `until_s`, unless it is live already.
    pub fn first_use(&self, signature: &[u8; 32], now_s: u64, until_s: u64) -> Seen {
        use std::hash::BuildHasher;
        let slots = self
            .slots
            .get_or_init(|| bytemuck::zeroed_slice_box(REPLAY_SLOTS));
        let h = self.key.hash_one(signature);
        let tag = (h >> 32).max(1);
        let set = (h as usize) % (REPLAY_SLOTS / WAYS) * WAYS;
        let word = (tag << 32) | (until_s & 0xffff_ffff);
        let live = |w: u64| (w >> 32) != 0 && (w & 0xffff_ffff) > now_s;
        let ways = &slots[set..set + WAYS];
        if ways.iter().any(|s| {
            let w = s.load(Ordering::Acquire);
            live(w) && w >> 32 == tag
        }) {
            return Seen::Again;
        }
        for (i, s) in ways.iter().enumerate() {
            let old = s.load(Ordering::Acquire);
            if live(old)
                || s.compare_exchange(old, word, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            // Claimed. The same signature claimed at once on another shard: the lower way wins,
            // the other gives its slot back and refuses.
            let rival = ways.iter().enumerate().any(|(j, o)| {
                let w = o.load(Ordering::Acquire);
                j < i && live(w) && w >> 32 == tag
            });
            if rival {
                let _ = s.compare_exchange(word, 0, Ordering::AcqRel, Ordering::Acquire);
                return Seen::Again;
            }
            return Seen::First;
        }
        Seen::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_verifies_and_refuses_replays() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, b"GET\napi\n/a?b=1\nTue, 01 Dec 2026 10:00:00 GMT\n");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let v = format!("RINGWAY-HMAC-SHA256 Credential=rwh_x, Signature={hex}");
        let s = parse(v.as_bytes()).unwrap();
        assert_eq!(s.access_key, "rwh_x");
        let parts = |target: &'static [u8]| Parts {
            method: b"GET",
            host: b"api",
            target,
            date: b"Tue, 01 Dec 2026 10:00:00 GMT",
            digest: b"",
        };
        assert!(verify_signature(secret, &parts(b"/a?b=1"), &s.signature));
        assert!(!verify_signature(secret, &parts(b"/a?b=2"), &s.signature));
        assert!(parse(b"RINGWAY-HMAC-SHA256 Credential=a, Signature=zz").is_none());
        assert!(parse(b"Bearer x").is_none());
        let r = Replays::default();
        assert_eq!(r.first_use(&s.signature, 100, 400), Seen::First);
        assert_eq!(r.first_use(&s.signature, 200, 500), Seen::Again);
        assert_eq!(
            r.first_use(&s.signature, 401, 700),
            Seen::First,
            "expired entries are forgotten"
        );
        let body = b"{\"a\":1}";
        let d = format!(
            "sha-256=:{}:",
            STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, body))
        );
        assert!(digest_matches(d.as_bytes(), body));
        assert!(!digest_matches(d.as_bytes(), b"{\"a\":2}"));
        assert!(fresh(b"Tue, 01 Dec 2026 10:00:00 GMT", 1_796_119_200 + 100));
        assert!(!fresh(
            b"Tue, 01 Dec 2026 10:00:00 GMT",
            1_796_119_200 + 1000
        ));
    }
}
