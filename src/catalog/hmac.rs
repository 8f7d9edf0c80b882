//! HMAC request signing: an access key belongs to one app and has a 256-bit secret. A client
//! signs each request:
//!
//! ```text
//! Authorization: RINGWAY-HMAC-SHA256 Credential=<access key>, Signature=<hex>
//! Date: <IMF-fixdate>                                   (within ±5 minutes of the gateway's clock)
//! Content-Digest: sha-256=:<base64 of SHA-256(body)>:   (RFC 9530; required with a body)
//!
//! Signature = hex(HMAC-SHA256(secret, METHOD "\n" request-target "\n" Date "\n" Content-Digest))
//! ```
//!
//! where request-target is the path and query exactly as sent, and Content-Digest is empty for a
//! request without a body. The gateway checks the signature in constant time, the clock skew,
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
pub fn verify_signature(
    secret: &[u8],
    method: &[u8],
    target: &[u8],
    date: &[u8],
    digest: &[u8],
    signature: &[u8; 32],
) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for (i, part) in [method, target, date, digest].iter().enumerate() {
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

/// Signatures seen within the window, node-wide: a fixed, lazily committed table of (signature
/// hash, expiry) slots, set-associative; shards claim slots with compare-and-swap, never a lock.
/// Capacity [`REPLAY_SLOTS`]; when a set is full of live entries the one expiring first is
/// forgotten early (more than a million signed requests per window would be needed for that).
pub struct Replays {
    slots: std::sync::OnceLock<Box<[AtomicU64]>>,
}

pub const REPLAY_SLOTS: usize = 1 << 20;
const WAYS: usize = 8;

impl Default for Replays {
    fn default() -> Replays {
        Replays {
            slots: std::sync::OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for Replays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replays")
    }
}

impl Replays {
    /// Records `signature` until `until_s`; false when it was recorded before and is live.
    pub fn first_use(&self, signature: &[u8; 32], now_s: u64, until_s: u64) -> bool {
        let mut h = u64::from_le_bytes(signature[..8].try_into().unwrap_or([0; 8]));
        if h == 0 {
            h = 1;
        }
        // Two words per slot: the hash, then the expiry (unix seconds). Made on first use, zeroed
        // by the allocator, so pages are only committed once signatures land in them.
        let slots = self
            .slots
            .get_or_init(|| bytemuck::zeroed_slice_box(REPLAY_SLOTS * 2));
        let sets = REPLAY_SLOTS / WAYS;
        let base = (h as usize % sets) * WAYS;
        // Live entry with the same hash: a replay.
        for w in 0..WAYS {
            let i = (base + w) * 2;
            if slots[i].load(Ordering::Acquire) == h && slots[i + 1].load(Ordering::Acquire) > now_s
            {
                return false;
            }
        }
        // Claim a free or expired slot, else the one expiring first.
        let mut victim = base;
        let mut soonest = u64::MAX;
        for w in 0..WAYS {
            let i = (base + w) * 2;
            let exp = slots[i + 1].load(Ordering::Acquire);
            if exp <= now_s {
                let old = slots[i].load(Ordering::Acquire);
                if slots[i]
                    .compare_exchange(old, h, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    slots[i + 1].store(until_s, Ordering::Release);
                    return true;
                }
            }
            if exp < soonest {
                soonest = exp;
                victim = base + w;
            }
        }
        slots[victim * 2].store(h, Ordering::Release);
        slots[victim * 2 + 1].store(until_s, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_verifies_and_refuses_replays() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, b"GET\n/a?b=1\nTue, 01 Dec 2026 10:00:00 GMT\n");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let v = format!("RINGWAY-HMAC-SHA256 Credential=rwh_x, Signature={hex}");
        let s = parse(v.as_bytes()).unwrap();
        assert_eq!(s.access_key, "rwh_x");
        assert!(verify_signature(
            secret,
            b"GET",
            b"/a?b=1",
            b"Tue, 01 Dec 2026 10:00:00 GMT",
            b"",
            &s.signature
        ));
        assert!(!verify_signature(
            secret,
            b"GET",
            b"/a?b=2",
            b"Tue, 01 Dec 2026 10:00:00 GMT",
            b"",
            &s.signature
        ));
        assert!(parse(b"RINGWAY-HMAC-SHA256 Credential=a, Signature=zz").is_none());
        assert!(parse(b"Bearer x").is_none());
        let r = Replays::default();
        assert!(r.first_use(&s.signature, 100, 400));
        assert!(!r.first_use(&s.signature, 200, 500));
        assert!(
            r.first_use(&s.signature, 401, 700),
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
