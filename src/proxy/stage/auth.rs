//! Authentication for managed services' routes: the credential presented → the calling app, from
//! the snapshot's compiled catalog ([`crate::catalog`]). Routes of the config file are not
//! managed and pass untouched.
//!
//! The credential is an API key in `X-API-Key` or `Authorization: Bearer` (`X-API-Key` wins when
//! both are sent), or a JWT as `Authorization: Bearer` (verified once per shard and token, then
//! cached until it expires: [`crate::catalog::jwt`]); each only where the service accepts it. The header that carried it is not forwarded; nor is any `x-ringway-*` header
//! the client sent, so that the identity the upstream gets (`x-ringway-app`, `x-ringway-tenant`,
//! here, and `x-ringway-subscription` from [`super::access`]) cannot be forged; client
//! `x-ringway-*` headers are dropped on the config file's routes too.
//!
//! Errors: 401 `credential_missing` (nothing presented) or `credential_invalid` (malformed,
//! unknown, expired, revoked, sent twice), both with `WWW-Authenticate`.
//!
//! Performance: a scan of the header list, then for a key one SHA-256 (~0.2 µs) and one probe of
//! the key index; for a cached JWT one hash of the token and a comparison. No lock; no
//! allocation but a JWT cache miss.

use std::rc::Rc;
use std::sync::Arc;

use crate::catalog::basic::{self, BasicCred};
use crate::catalog::jwt::{self, looks_like_jwt};
use crate::catalog::{Accepts, AppEntry, hash_key, looks_like_key};
use crate::error::{ErrorKind, GatewayError};
use crate::http::headers::Span;
use crate::observe::clock;
use crate::proxy::ctx::Caller;
use crate::state::ShardCtx;

use super::super::answer::Answer;
use super::super::chain::Cx;
use super::route;

const CHALLENGE: &[u8] = b"www-authenticate: Bearer realm=\"ringway\"\r\n";
const CHALLENGE_INVALID: &[u8] =
    b"www-authenticate: Bearer realm=\"ringway\", error=\"invalid_token\"\r\n";

pub fn run(cx: &mut Cx<'_>) -> Result<(), Answer> {
    let idx = route::matched(cx)?;
    let services = &cx.state.snap.catalog.services;
    let managed = services.by_route.get(idx).copied().flatten();
    let kit = &mut *cx.kit;
    let data = kit.buf.data();
    let Some(service) = managed else {
        // Not a managed route: nothing to check, but the gateway's identity headers are still
        // its own to send (an upstream behind a file route may trust them too).
        for h in kit.req.headers.iter_mut() {
            let name = h.name.of(data);
            if name.len() > 10 && name[..10].eq_ignore_ascii_case(b"x-ringway-") {
                h.drop = true;
            }
        }
        return Ok(());
    };
    cx.ctx.service = Some(service);
    let accepts = services
        .entries
        .get(service as usize)
        .map(|s| s.accepts)
        .unwrap_or_default();
    let mut api_key: Option<Span> = None;
    let mut bearer: Option<Span> = None;
    let mut basic_value: Option<Span> = None;
    let mut twice = false;
    for h in kit.req.headers.iter_mut() {
        let name = h.name.of(data);
        if name.len() > 10 && name[..10].eq_ignore_ascii_case(b"x-ringway-") {
            h.drop = true;
        } else if name.eq_ignore_ascii_case(b"x-api-key") {
            twice |= api_key.is_some();
            api_key = Some(h.value);
            h.drop = true;
        } else if name.eq_ignore_ascii_case(b"authorization") {
            let v = crate::http::headers::trim_ows(h.value.of(data));
            if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
                twice |= bearer.is_some() || basic_value.is_some();
                bearer = Some(h.value);
                h.drop = true;
            } else if accepts.basic && v.len() > 6 && v[..6].eq_ignore_ascii_case(b"basic ") {
                twice |= bearer.is_some() || basic_value.is_some();
                basic_value = Some(h.value);
                h.drop = true;
            }
        }
    }
    let challenge = Challenge(accepts);
    if twice {
        return Err(challenge.refuse(ErrorKind::CredentialInvalid));
    }
    let catalog = &cx.state.snap.catalog;
    let now = clock::unix_ms_coarse();
    if let (None, None, Some(span)) = (api_key, bearer, basic_value) {
        let value = crate::http::headers::trim_ows(&span.of(data)[6..]);
        let value = crate::http::headers::trim_ows(value);
        let cache = cx.conn.shard.basic_cache.borrow();
        if let Some(cred) = cache.get(&catalog.basic, value) {
            cx.ctx.caller = Some(identify(&mut kit.upstream_headers, &cred.app));
            return Ok(());
        }
        let mut buf = [0u8; basic::MAX_VALUE];
        let cred = (value.len() <= basic::MAX_VALUE / 4 * 3)
            .then(|| basic::decode(value, &mut buf))
            .flatten()
            .and_then(|(user, pass)| Some((catalog.basic.get(user)?.clone(), pass)));
        let Some((cred, password)) = cred else {
            return Err(challenge.refuse(ErrorKind::CredentialInvalid));
        };
        if !cache.take_miss(now / 1000) {
            return Err(Answer::Error(
                GatewayError::new(ErrorKind::CredentialCheckBusy),
                b"retry-after: 1\r\n".to_vec(),
            ));
        }
        cx.pending = Some(Pending {
            value: value.into(),
            password: password.into(),
            cred,
            accepts,
        });
        return Ok(());
    }
    let Some(span) = api_key.or(bearer) else {
        return Err(challenge.refuse(ErrorKind::CredentialMissing));
    };
    let mut presented = crate::http::headers::trim_ows(span.of(data));
    if api_key.is_none() {
        presented = crate::http::headers::trim_ows(&presented[7..]);
    }
    let out = &mut kit.upstream_headers;
    if accepts.api_key && looks_like_key(presented) {
        let entry = match catalog.keys.get(&hash_key(presented)) {
            Some(e) if e.expires_at_ms.is_none_or(|t| now < t) => e,
            _ => return Err(challenge.refuse(ErrorKind::CredentialInvalid)),
        };
        cx.ctx.caller = Some(identify(out, &entry.app));
        return Ok(());
    }
    if accepts.jwt && api_key.is_none() && looks_like_jwt(presented) {
        let mut cache = cx.conn.shard.jwt_cache.borrow_mut();
        if let Some(cred) = cache.get(&catalog.jwt, presented, now) {
            cx.ctx.caller = Some(identify(out, &cred.app));
            return Ok(());
        }
        // A miss: verify (an RS256 signature costs tens of µs) and remember it until it expires.
        let verified = std::str::from_utf8(presented)
            .ok()
            .and_then(|t| jwt::verify(&catalog.jwt, t));
        let Some((cred, exp)) = verified else {
            return Err(challenge.refuse(ErrorKind::CredentialInvalid));
        };
        cx.ctx.caller = Some(identify(out, &cred.app));
        cache.insert(presented, cred, exp);
        return Ok(());
    }
    Err(challenge.refuse(ErrorKind::CredentialInvalid))
}

/// A basic credential waiting for its password check.
pub struct Pending {
    /// The `Authorization` value after `Basic ` (the cache key once verified).
    value: Box<[u8]>,
    password: Box<str>,
    cred: Arc<BasicCred>,
    accepts: Accepts,
}

/// Gives a miss back to the shard's budget when the check ends, however it ends (a client gone
/// mid-check drops the future).
struct MissGuard(Rc<ShardCtx>);

impl Drop for MissGuard {
    fn drop(&mut self) {
        self.0.basic_cache.borrow().miss_done();
    }
}

/// Checks the pending basic credential on the verifier thread, awaiting it without blocking the
/// shard; on success it is cached for the shard.
pub async fn verify(cx: &mut Cx<'_>) -> Result<(), Answer> {
    let Some(p) = cx.pending.take() else {
        return Ok(());
    };
    let guard = MissGuard(cx.conn.shard.clone());
    let ok = basic::verify_off_shard(&p.cred.phc, &p.password).await;
    drop(guard);
    if !ok {
        return Err(Challenge(p.accepts).refuse(ErrorKind::CredentialInvalid));
    }
    cx.ctx.caller = Some(identify(&mut cx.kit.upstream_headers, &p.cred.app));
    cx.conn
        .shard
        .basic_cache
        .borrow_mut()
        .insert(&p.value, p.cred);
    Ok(())
}

/// The `WWW-Authenticate` challenges of a service: `Bearer` for keys and JWTs, `Basic` for
/// basic credentials.
#[derive(Clone, Copy)]
struct Challenge(Accepts);

impl Challenge {
    fn refuse(self, kind: ErrorKind) -> Answer {
        let invalid = kind == ErrorKind::CredentialInvalid;
        let mut h = Vec::with_capacity(128);
        if self.0.api_key || self.0.jwt || !self.0.basic {
            h.extend_from_slice(if invalid {
                CHALLENGE_INVALID
            } else {
                CHALLENGE
            });
        }
        if self.0.basic {
            h.extend_from_slice(
                b"www-authenticate: Basic realm=\"ringway\", charset=\"UTF-8\"\r\n",
            );
        }
        Answer::Error(GatewayError::new(kind), h)
    }
}

/// The caller of `app`, its identity written as the upstream's header lines.
fn identify(out: &mut Vec<u8>, app: &AppEntry) -> Caller {
    out.extend_from_slice(b"x-ringway-app: ");
    out.extend_from_slice(app.id.as_bytes());
    out.extend_from_slice(b"\r\nx-ringway-tenant: ");
    out.extend_from_slice(app.tenant_id.as_bytes());
    out.extend_from_slice(b"\r\n");
    Caller {
        app: app.seq,
        tenant: app.tenant_seq,
    }
}
