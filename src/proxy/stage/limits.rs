//! The route's limits: the declared body size (413 before anything is read when Content-Length
//! says it is too large), then its rate and concurrency limits ([`crate::limit`]) and the
//! caller's subscription quota (rate limits keyed by app, from the catalog): 429
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
    let quota = cx.ctx.quota.and_then(|q| cx.state.quotas.get(q as usize));
    let limits = cx.state.limits[idx].as_ref();
    if limits.is_none() && quota.is_none() {
        return Ok(());
    }
    let now = crate::limit::clock_ns();
    let who = (cx.conn.peer.ip(), cx.ctx.caller.map(|c| c.app));
    let kit = &mut *cx.kit;
    let path = if cx.ctx.path_rewritten {
        &kit.path[..]
    } else {
        kit.req.path.of(kit.buf.data())
    };
    let data = kit.buf.data();
    let before = kit.response_headers.len();
    if let Some(limits) = limits {
        match limits.check(&kit.req, data, path, who, now, &mut kit.response_headers) {
            Ok(guard) => cx.limits = Some(guard),
            Err(refused) => return Err(refuse(refused)),
        }
    }
    if let Some(quota) = quota {
        // A quota counts per app and service: one app's calls to two services with equal quotas
        // (which share a table) spend two budgets.
        let service = cx
            .ctx
            .service
            .and_then(|i| cx.state.snap.catalog.services.entries.get(i as usize))
            .map_or(0, |s| s.seq);
        let who = (who.0, who.1.map(|app| app.wrapping_shl(32) ^ service));
        // The route's own RateLimit-* fields, when it sent some, are the ones the client sees.
        let route_wrote = kit.response_headers.len();
        let res = quota.check(&kit.req, data, path, who, now, &mut kit.response_headers);
        if route_wrote > before {
            kit.response_headers.truncate(route_wrote);
        }
        if let Err(refused) = res {
            return Err(refuse(refused));
        }
    }
    Ok(())
}

fn refuse(refused: crate::limit::Refused) -> Answer {
    let headers = format!("retry-after: {}\r\n", refused.retry_after_s);
    Answer::Error(GatewayError::new(refused.kind), headers.into_bytes())
}
