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
use crate::catalog::hmac::{self, HmacCred};
use crate::catalog::jwt::{self, looks_like_jwt};
use crate::catalog::{Accepts, AppEntry, hash_key, looks_like_key};
use crate::error::{ErrorKind, GatewayError};
use crate::http::HeadError;
use crate::http::headers::Span;
use crate::observe::clock;
use crate::proxy::ctx::{Caller, RequestCtx};
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
    let mut signed: Option<Span> = None;
    let (mut date, mut digest): (Option<Span>, Option<Span>) = (None, None);
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
                twice |= bearer.is_some() || basic_value.is_some() || signed.is_some();
                bearer = Some(h.value);
                h.drop = true;
            } else if accepts.basic && v.len() > 6 && v[..6].eq_ignore_ascii_case(b"basic ") {
                twice |= bearer.is_some() || basic_value.is_some() || signed.is_some();
                basic_value = Some(h.value);
                h.drop = true;
            } else if accepts.hmac
                && v.len() > hmac::SCHEME.len()
                && v[..hmac::SCHEME.len()].eq_ignore_ascii_case(hmac::SCHEME)
            {
                twice |= bearer.is_some() || basic_value.is_some() || signed.is_some();
                signed = Some(h.value);
                h.drop = true;
            }
        } else if accepts.hmac && name.eq_ignore_ascii_case(b"date") {
            twice |= date.is_some();
            date = Some(h.value);
        } else if accepts.hmac && name.eq_ignore_ascii_case(b"content-digest") {
            twice |= digest.is_some();
            digest = Some(h.value);
        }
    }
    let challenge = Challenge(accepts);
    // One credential per request: a signature next to a key or a bearer token is ambiguous.
    twice |= signed.is_some() && api_key.is_some();
    if twice {
        return Err(challenge.refuse(ErrorKind::CredentialInvalid));
    }
    let catalog = &cx.state.snap.catalog;
    let now = clock::unix_ms_coarse();
    if let (None, None, None, Some(span)) = (api_key, bearer, basic_value, signed) {
        let value = crate::http::headers::trim_ows(span.of(data));
        let Some(s) = hmac::parse(value) else {
            return Err(challenge.refuse(ErrorKind::CredentialInvalid));
        };
        let Some(cred) = catalog.hmac.get(s.access_key).cloned() else {
            return Err(challenge.refuse(ErrorKind::CredentialInvalid));
        };
        let body_len = match kit.req.framing {
            crate::http::Framing::Length(n) => n,
            crate::http::Framing::Chunked => return Err(Answer::kind(ErrorKind::LengthRequired)),
            _ => 0,
        };
        let p = SignedPending {
            cred,
            signature: s.signature,
            date,
            digest,
            body_len: body_len as usize,
            accepts,
        };
        let have = kit.buf.len() - kit.req.len;
        if p.body_len > have {
            // The body is not all here yet: read it (it must fit the buffer) and check after. A
            // client waiting for 100-continue is told to send it without (curl does so on 417).
            if kit.req.expect_continue {
                return Err(Answer::kind(ErrorKind::Head(HeadError::Expectation)));
            }
            if p.body_len > have + kit.buf.spare() {
                // Spans are relative to the data: compacting keeps them.
                kit.buf.compact();
            }
            if p.body_len > have + kit.buf.spare() {
                return Err(Answer::kind(ErrorKind::BodyTooLarge));
            }
            cx.pending = Some(Pending::Signed(p));
            return Ok(());
        }
        return check_signed(cx, p, now);
    }
    if let (None, None, Some(span)) = (api_key, bearer, basic_value) {
        let value = crate::http::headers::trim_ows(&span.of(data)[6..]);
        let value = crate::http::headers::trim_ows(value);
        let cache = cx.conn.shard.basic_cache.borrow();
        if let Some(cred) = cache.get(&catalog.basic, value) {
            identify(&mut kit.upstream_headers, cx.ctx, &cred.app);
            return Ok(());
        }
        let mut buf = [0u8; basic::MAX_VALUE];
        let decoded = (value.len() <= basic::MAX_VALUE / 4 * 3)
            .then(|| basic::decode(value, &mut buf))
            .flatten();
        let Some((user, password)) = decoded else {
            return Err(challenge.refuse(ErrorKind::CredentialInvalid));
        };
        // An unknown username costs the same check as a wrong password (against a hash nobody
        // has the password of), so timing does not tell which usernames exist.
        let cred = catalog.basic.get(user).cloned();
        if !cache.take_miss(now / 1000, cx.conn.peer.ip()) {
            return Err(Answer::Error(
                GatewayError::new(ErrorKind::CredentialCheckBusy),
                b"retry-after: 1\r\n".to_vec(),
            ));
        }
        cx.pending = Some(Pending::Basic(BasicPending {
            value: value.into(),
            password: password.into(),
            cred,
            accepts,
        }));
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
        identify(out, cx.ctx, &entry.app);
        return Ok(());
    }
    if accepts.jwt && api_key.is_none() && looks_like_jwt(presented) {
        let mut cache = cx.conn.shard.jwt_cache.borrow_mut();
        if let Some(cred) = cache.get(&catalog.jwt, presented, now) {
            identify(out, cx.ctx, &cred.app);
            return Ok(());
        }
        // A miss: verify (an RS256 signature costs tens of µs) and remember it until it expires.
        let verified = std::str::from_utf8(presented)
            .ok()
            .and_then(|t| jwt::verify(&catalog.jwt, t));
        let Some((cred, exp)) = verified else {
            return Err(challenge.refuse(ErrorKind::CredentialInvalid));
        };
        identify(out, cx.ctx, &cred.app);
        cache.insert(presented, cred, exp);
        return Ok(());
    }
    Err(challenge.refuse(ErrorKind::CredentialInvalid))
}

/// A credential the stage could not check without waiting.
pub enum Pending {
    Basic(BasicPending),
    Signed(SignedPending),
}

/// A signed request waiting for the rest of its body.
pub struct SignedPending {
    cred: Arc<HmacCred>,
    signature: [u8; 32],
    date: Option<Span>,
    digest: Option<Span>,
    body_len: usize,
    accepts: Accepts,
}

/// Checks a signed request whose body (if any) is all in the buffer: the clock skew, the body's
/// digest, the signature (constant time), and that the signature was not used before.
fn check_signed(cx: &mut Cx<'_>, p: SignedPending, now_ms: u64) -> Result<(), Answer> {
    let kit = &mut *cx.kit;
    let data = kit.buf.data();
    let refuse = || Challenge(p.accepts).refuse(ErrorKind::CredentialInvalid);
    let date = p
        .date
        .map_or(&b""[..], |d| crate::http::headers::trim_ows(d.of(data)));
    let digest = p
        .digest
        .map_or(&b""[..], |d| crate::http::headers::trim_ows(d.of(data)));
    let now_s = now_ms / 1000;
    let replays = &cx.state.snap.catalog.replays;
    if !hmac::fresh(date, now_s) || !hmac::dated_since(date, replays.since_s()) {
        return Err(refuse());
    }
    let Some(body) = data.get(kit.req.len..kit.req.len + p.body_len) else {
        return Err(refuse());
    };
    if (p.body_len > 0 || !digest.is_empty()) && !hmac::digest_matches(digest, body) {
        return Err(refuse());
    }
    let parts = hmac::Parts {
        method: kit.req.method_span.of(data),
        host: kit
            .req
            .host
            .map_or(&b""[..], |h| crate::http::headers::trim_ows(h.of(data))),
        target: kit.req.path.of(data),
        date,
        digest,
    };
    if !hmac::verify_signature(&p.cred.secret, &parts, &p.signature) {
        return Err(refuse());
    }
    match replays.first_use(&p.signature, now_s, now_s + 2 * hmac::SKEW_S) {
        hmac::Seen::First => {}
        hmac::Seen::Again => return Err(refuse()),
        hmac::Seen::Full => {
            return Err(Answer::Error(
                GatewayError::new(ErrorKind::CredentialCheckBusy),
                b"retry-after: 1\r\n".to_vec(),
            ));
        }
    }
    identify(&mut kit.upstream_headers, cx.ctx, &p.cred.app);
    Ok(())
}

/// A basic credential waiting for its password check.
pub struct BasicPending {
    /// The `Authorization` value after `Basic ` (cached as its SHA-256 once verified).
    value: Box<[u8]>,
    password: Box<str>,
    /// `None`: no such username (checked against a dummy hash, then refused).
    cred: Option<Arc<BasicCred>>,
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
    let p = match cx.pending.take() {
        None => return Ok(()),
        Some(Pending::Signed(s)) => return read_signed_body(cx, s).await,
        Some(Pending::Basic(p)) => p,
    };
    let guard = MissGuard(cx.conn.shard.clone());
    let verdict = match &p.cred {
        Some(c) => basic::verify_off_shard(&c.phc, &p.password).await,
        None => basic::verify_off_shard(basic::dummy_hash(), &p.password).await,
    };
    drop(guard);
    let cred = match (verdict, p.cred) {
        (basic::Verdict::Match, Some(c)) => c,
        (basic::Verdict::Unavailable, _) => {
            return Err(Answer::Error(
                GatewayError::new(ErrorKind::CredentialCheckBusy),
                b"retry-after: 1\r\n".to_vec(),
            ));
        }
        _ => return Err(Challenge(p.accepts).refuse(ErrorKind::CredentialInvalid)),
    };
    identify(&mut cx.kit.upstream_headers, cx.ctx, &cred.app);
    cx.conn
        .shard
        .basic_cache
        .borrow_mut()
        .insert(&p.value, cred);
    Ok(())
}

/// Reads the rest of a signed request's body into the buffer (it fits: checked before), then
/// checks the request.
async fn read_signed_body(cx: &mut Cx<'_>, p: SignedPending) -> Result<(), Answer> {
    use crate::proxy::relay::{Body, RelayError, Source, read_short_body};
    let have = cx.kit.buf.len() - cx.kit.req.len;
    let mut body = Body::Length((p.body_len - have) as u64);
    let http = &cx.state.snap.config.http;
    let conn = &mut *cx.conn;
    let mut src = Source::client(&mut conn.stream, conn.fd, http);
    let (_, filled) = read_short_body(&mut src, &conn.watch, &mut cx.kit.buf, &mut body).await;
    match filled {
        Ok(()) if body.is_done() => check_signed(cx, p, clock::unix_ms_coarse()),
        Ok(()) => Err(Answer::kind(ErrorKind::BodyTooLarge)),
        Err(RelayError::SrcTimeout) => {
            let n = cx.kit.buf.len();
            crate::proxy::forward::consume_request(cx, n);
            Err(Answer::kind(ErrorKind::BodyTimeout))
        }
        Err(_) => {
            let n = cx.kit.buf.len();
            crate::proxy::forward::consume_request(cx, n);
            cx.ctx
                .fail(GatewayError::new(ErrorKind::ClientGone).context("reading a signed body"));
            Err(Answer::Sent(crate::proxy::chain::Next::Close))
        }
    }
}

/// The `WWW-Authenticate` challenges of a service: `Bearer` for keys and JWTs, `Basic` for
/// basic credentials.
#[derive(Clone, Copy)]
struct Challenge(Accepts);

impl Challenge {
    fn refuse(self, kind: ErrorKind) -> Answer {
        let invalid = kind == ErrorKind::CredentialInvalid;
        let mut h = Vec::with_capacity(128);
        if self.0.api_key || self.0.jwt || !(self.0.basic || self.0.hmac) {
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
        if self.0.hmac {
            h.extend_from_slice(b"www-authenticate: RINGWAY-HMAC-SHA256 realm=\"ringway\"\r\n");
        }
        Answer::Error(GatewayError::new(kind), h)
    }
}

/// Makes `app` the caller: its identity written as the upstream's header lines, and kept in the
/// context for the request's end.
fn identify(out: &mut Vec<u8>, ctx: &mut RequestCtx, app: &AppEntry) {
    out.extend_from_slice(b"x-ringway-app: ");
    out.extend_from_slice(app.id.as_bytes());
    out.extend_from_slice(b"\r\nx-ringway-tenant: ");
    out.extend_from_slice(app.tenant_id.as_bytes());
    out.extend_from_slice(b"\r\n");
    ctx.app_id.set(app.id.as_bytes());
    ctx.caller = Some(Caller {
        app: app.seq,
        tenant: app.tenant_seq,
        series: app.series,
    });
}
