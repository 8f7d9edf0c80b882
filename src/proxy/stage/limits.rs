//! The route's limits: the declared body size (413 before anything is read when Content-Length
//! says it is too large), then its rate and concurrency limits ([`crate::limit`]): 429
//! `rate_limited` / `too_many_concurrent_requests` with `Retry-After` when one refuses. The
//! concurrency slots taken are held in `cx.limits` until the request ends. RateLimit-* fields the
//! route sends go to `kit.response_headers`, on refusals too.
//!
//! Performance: a route without limits costs one branch; with limits, shard-local leases (atomics
//! touched once per batch, see `crate::limit`).

use crate::error::{ErrorKind, GatewayError};
use crate::http::Framing;

use super::super::answer::Answer;
use super::super::chain::Cx;
use super::route;

pub fn run(cx: &mut Cx<'_>) -> Result<(), Answer> {
    let idx = route::matched(cx)?;
    let route = &cx.state.snap.config.routes[idx];
    if let Framing::Length(n) = cx.kit.req.framing {
        if n > route.max_body_size {
            return Err(Answer::kind(ErrorKind::BodyTooLarge));
        }
    }
    let Some(limits) = &cx.state.limits[idx] else {
        return Ok(());
    };
    let now = crate::limit::clock_ns();
    let kit = &mut *cx.kit;
    let path = if cx.ctx.path_rewritten {
        &kit.path[..]
    } else {
        kit.req.path.of(kit.buf.data())
    };
    match limits.check(
        &kit.req,
        kit.buf.data(),
        path,
        cx.conn.peer.ip(),
        now,
        &mut kit.response_headers,
    ) {
        Ok(guard) => {
            cx.limits = Some(guard);
            Ok(())
        }
        Err(refused) => {
            let headers = format!("retry-after: {}\r\n", refused.retry_after_s);
            Err(Answer::Error(
                GatewayError::new(refused.kind),
                headers.into_bytes(),
            ))
        }
    }
}
