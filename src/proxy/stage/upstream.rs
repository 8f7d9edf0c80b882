//! The terminal stage of a proxy route: the upstream's circuit breaker and concurrency cap admit
//! the request (while the breaker is open, the route's fallback upstream or fallback response
//! serves, if it has one); the chain then hands the admitted request to
//! [`crate::proxy::forward`], which sends it and relays the response. (Admission is a plain
//! function and the chain awaits `forward` itself: each async layer between the connection and
//! `forward` would copy the whole forwarding future once per request.)
//!
//! Errors: 503 `circuit_open` / `concurrency_limit` with `Retry-After` and `x-ringway-breaker`
//! naming the upstream; whatever forwarding answers.
//!
//! Performance: with the breaker closed, admission is one relaxed atomic load.

use crate::config::RouteAction;
use crate::error::ErrorKind;
use crate::upstream::Refusal;

use super::super::answer::Answer;
use super::super::chain::Cx;
use super::route;
use crate::config::ProxyAction;
use crate::upstream::Permit;

/// A request the upstream admitted.
pub struct Admitted<'a> {
    /// Index of the upstream that serves it (the fallback upstream when the breaker sent it there).
    pub upstream: usize,
    pub permit: Permit,
    pub action: &'a ProxyAction,
}

pub fn admit<'a>(cx: &mut Cx<'a>) -> Result<Admitted<'a>, Answer> {
    let idx = route::matched(cx)?;
    let state = cx.state;
    let RouteAction::Proxy(action) = &state.snap.config.routes[idx].action else {
        return Err(Answer::Static {
            fallback: false,
            headers: Vec::new(),
        });
    };
    let primary = &state.upstreams[action.upstream];
    let (up, permit) = match primary.admit() {
        Ok(p) => (action.upstream, p),
        Err(refusal) => {
            let fallback = action
                .fallback_upstream
                .filter(|_| refusal.error.kind == ErrorKind::CircuitOpen)
                .and_then(|i| state.upstreams[i].admit().ok().map(|p| (i, p)));
            match fallback {
                Some(x) => x,
                None => return Err(refused(cx, idx, refusal, &primary.config.name)),
            }
        }
    };
    cx.ctx.upstream = Some(up);
    Ok(Admitted {
        upstream: up,
        permit,
        action,
    })
}

/// The breaker or the concurrency cap refused: the route's fallback response while the breaker is
/// open, else 503 with `Retry-After` and the breaker's name.
fn refused(cx: &Cx<'_>, route: usize, refusal: Refusal, name: &str) -> Answer {
    if refusal.error.kind == ErrorKind::CircuitOpen && cx.state.snap.fallbacks[route].is_some() {
        tracing::debug!(upstream = %name, "circuit open: serving the fallback response");
        return Answer::Static {
            fallback: true,
            headers: format!("x-ringway-breaker: {name}\r\n").into_bytes(),
        };
    }
    let secs = refusal.retry_after_ms.div_ceil(1000).max(1);
    let headers = format!("retry-after: {secs}\r\nx-ringway-breaker: {name}\r\n");
    Answer::Error(refusal.error, headers.into_bytes())
}
