//! The one place every request ends, whatever happened to it: served, refused by a policy, failed
//! upstream, abandoned by its client, or refused as unparsable. It sees the finished
//! [`RequestCtx`] and records it: the shard's request counters ([`crate::observe`]) and the log line
//! of a request that ended in an error. Call logs and metrics hang here.
//!
//! Performance: a served request costs one clock read and three owner-only counter stores; nothing
//! here waits, locks or allocates (an error's log line goes to the non-blocking log writer).

use crate::error::Side;
use crate::state::ShardCtx;

use super::ctx::RequestCtx;
use crate::observe::clock;

/// Records a finished request. Called exactly once per request, by the connection task.
pub fn finish(shard: &ShardCtx, ctx: &mut RequestCtx) {
    if ctx.timings.last_byte == 0 {
        ctx.timings.last_byte = clock::now();
    }
    shard.requests().record(ctx.status, ctx.error.is_some());
    if let Some(e) = ctx.error {
        if !ctx.id.is_set() {
            let mut id = [0u8; 24];
            shard.request_id(&mut id);
            ctx.id.set_generated(&id);
        }
        log_error(ctx, &e);
    }
}

/// Logs a request that ended in an error. Refusals by a policy (breaker, caps, rate limits) are
/// expected under load and can come at the full request rate, so they are logged at debug; the
/// policy logs its own state changes (a breaker opening, a target ejected) at warn.
fn log_error(ctx: &RequestCtx, e: &crate::error::GatewayError) {
    let rid = String::from_utf8_lossy(ctx.id.as_bytes());
    let peer = &ctx.peer;
    let status = ctx.status;
    let target = ctx.target.map(|t| t.to_string());
    let target = target.as_deref().unwrap_or("-");
    if e.is_policy_refusal() {
        tracing::debug!(%peer, request_id = %rid, status, code = e.code(), "{e}");
        return;
    }
    match e.side() {
        Side::Upstream | Side::Gateway => {
            tracing::warn!(%peer, request_id = %rid, status, code = e.code(), target, tries = ctx.tries, "{e}")
        }
        Side::Client => {
            tracing::info!(%peer, request_id = %rid, status, code = e.code(), "{e}")
        }
    }
}
