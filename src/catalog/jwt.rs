//! JWT credentials: an issuer (`iss`) belongs to one app and has its verification keys (an RS256
//! or ES256 public key, an HS256 secret, or the keys of a JWKS the control plane fetched). A
//! token is accepted when its signature verifies with a key of its issuer (chosen by `kid` when
//! the token names one), its algorithm is the key's, `exp` is in the future and `nbf` in the past
//! (30 s of leeway), and `aud` names the credential's audience when it has one.
//!
//! A verified token is cached per shard ([`JwtCache`]) until it expires, so an RS256 verification
//! (tens of µs) is paid once per token and shard, not per request. A hit is a hash of the token
//! and a comparison; the cached credential must still be the catalog's for the issuer, so a
//! revoked credential or a rotated key stops its tokens at the next catalog the shard picks up.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::AppEntry;

/// Leeway for `exp` and `nbf`, in seconds.
pub const LEEWAY_S: u64 = 30;
/// Tokens cached per shard at most, and the longest token cached (longer ones are verified every
/// time): at most 8,192 × 4 KiB per shard.
pub const CACHE_ENTRIES: usize = 8192;
pub const CACHE_TOKEN_MAX: usize = 4096;
/// Keys taken from one JWKS at most (each a possible verification per uncached token).
pub const MAX_JWKS_KEYS: usize = 16;

/// One verification key of an issuer.
#[derive(Clone)]
pub struct JwtKey {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// An issuer's credential.
pub struct JwtCred {
    pub issuer: Box<str>,
    pub app: Arc<AppEntry>,
    pub audience: Option<String>,
    pub keys: Vec<JwtKey>,
}

impl std::fmt::Debug for JwtCred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtCred")
            .field("issuer", &self.issuer)
            .field("app", &self.app.id)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Issuer → credential.
pub type JwtIndex = HashMap<Box<str>, Arc<JwtCred>>;

#[derive(serde::Deserialize)]
struct Unverified {
    iss: Option<String>,
}

#[derive(serde::Deserialize)]
struct Verified {
    exp: u64,
}

/// Whether a bearer value has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(v: &[u8]) -> bool {
    v.iter().filter(|&&b| b == b'.').count() == 2
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

/// The issuer a token claims, read before anything is verified (to pick the keys).
fn claimed_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Unverified>(&bytes).ok()?.iss
}

/// Verifies `token` against the catalog's credentials: the credential and the token's `exp`
/// (unix seconds).
pub fn verify(index: &JwtIndex, token: &str) -> Option<(Arc<JwtCred>, u64)> {
    let iss = claimed_issuer(token)?;
    let cred = index.get(iss.as_str())?;
    let header = jsonwebtoken::decode_header(token).ok()?;
    // With several keys a token must name its key: no key is tried blindly.
    let several = cred.keys.len() > 1;
    for k in cred
        .keys
        .iter()
        .filter(|k| k.algorithm == header.alg)
        .filter(|k| match (&header.kid, &k.kid) {
            (Some(a), Some(b)) => a == b,
            (None, _) => !several,
            (Some(_), None) => !several,
        })
    {
        let mut v = Validation::new(k.algorithm);
        v.leeway = LEEWAY_S;
        v.validate_nbf = true;
        v.set_issuer(&[&*cred.issuer]);
        v.set_required_spec_claims(&["exp", "iss"]);
        match &cred.audience {
            Some(a) => v.set_audience(&[a]),
            None => v.validate_aud = false,
        }
        if let Ok(data) = jsonwebtoken::decode::<Verified>(token, &k.key, &v) {
            return Some((cred.clone(), data.claims.exp));
        }
    }
    None
}

struct Cached {
    token: Box<[u8]>,
    cred: Arc<JwtCred>,
    /// Unix milliseconds after which the token is refused.
    until_ms: u64,
}

/// A shard's verified tokens (see the module docs). Shard-local: never shared, never locked.
#[derive(Default)]
pub struct JwtCache {
    map: HashMap<u64, Cached, foldhash::fast::FixedState>,
}

impl JwtCache {
    /// The credential of a token verified before, if it is still valid now and its credential is
    /// still the catalog's.
    pub fn get(&self, index: &JwtIndex, token: &[u8], now_ms: u64) -> Option<&JwtCred> {
        let c = self.map.get(&hash(token))?;
        if c.until_ms <= now_ms || &*c.token != token {
            return None;
        }
        let current = index.get(&*c.cred.issuer)?;
        Arc::ptr_eq(current, &c.cred).then_some(&*c.cred)
    }

    pub fn insert(&mut self, token: &[u8], cred: Arc<JwtCred>, exp_s: u64) {
        if token.len() > CACHE_TOKEN_MAX {
            return;
        }
        if self.map.len() >= CACHE_ENTRIES {
            // Full: drop expired entries, or else an arbitrary one.
            let now = super::super::observe::clock::unix_ms_coarse();
            self.map.retain(|_, c| c.until_ms > now);
            if self.map.len() >= CACHE_ENTRIES {
                if let Some(k) = self.map.keys().next().copied() {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(
            hash(token),
            Cached {
                token: token.into(),
                cred,
                until_ms: exp_s.saturating_add(LEEWAY_S).saturating_mul(1000),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn hash(token: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(token)
}

/// A key from a PEM public key (RS256, ES256) or a shared secret (HS256).
pub fn key_from_pem(algorithm: Algorithm, pem: &[u8]) -> Result<DecodingKey, String> {
    match algorithm {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            DecodingKey::from_rsa_pem(pem).map_err(|e| e.to_string())
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            DecodingKey::from_ec_pem(pem).map_err(|e| e.to_string())
        }
        _ => Err("not a public-key algorithm".into()),
    }
}

/// The keys of a JWKS document (those with an algorithm this gateway verifies).
pub fn keys_from_jwks(doc: &[u8]) -> Result<Vec<JwtKey>, String> {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(doc).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut out = Vec::new();
    for jwk in &set.keys {
        let algorithm = match jwk.common.key_algorithm.map(|a| a.to_string()) {
            Some(a) => a.parse::<Algorithm>().ok(),
            None => match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Some(Algorithm::ES256),
                _ => None,
            },
        };
        let (Some(algorithm), Ok(key)) = (algorithm, DecodingKey::from_jwk(jwk)) else {
            continue;
        };
        if matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            continue; // a JWKS publishes public keys; a symmetric one there is a mistake
        }
        out.push(JwtKey {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key,
        });
        if out.len() == MAX_JWKS_KEYS {
            break;
        }
    }
    if out.is_empty() {
        return Err("the JWKS has no RSA or EC key this gateway can use".into());
    }
    Ok(out)
}
