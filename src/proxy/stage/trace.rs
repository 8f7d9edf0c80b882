//! W3C Trace Context: the request joins the caller's trace when it sent a valid `traceparent`, or
//! starts one. Either way the gateway's hop is a new span: the upstream gets `traceparent` with
//! the same trace id and the gateway's span as its parent (the caller's header is replaced, its
//! `tracestate` forwarded as it is), and the call record carries all three ids.
//!
//! On when `call_log.trace` is (the default with a call log). Never answers: a malformed
//! `traceparent` starts a new trace, as the recommendation says.
//!
//! Performance: three xorshift draws and one 70-byte header line.

use crate::http::traceparent;

use super::super::answer::Answer;
use super::super::chain::Cx;

pub fn run(cx: &mut Cx<'_>) -> Result<(), Answer> {
    if !cx
        .state
        .snap
        .config
        .call_log
        .as_ref()
        .is_some_and(|c| c.trace)
    {
        return Ok(());
    }
    let kit = &mut *cx.kit;
    let data = kit.buf.data();
    let parent = kit.req.traceparent.and_then(|i| {
        let h = &mut kit.req.headers[i];
        // Replaced by the gateway's own, valid or not.
        h.drop = true;
        traceparent::parse(h.value.of(data))
    });
    cx.conn.shard.new_span(&mut cx.ctx.trace, parent.as_ref());
    let t = &cx.ctx.trace;
    traceparent::write_header(&mut kit.upstream_headers, &t.trace_id, &t.span_id, t.flags);
    Ok(())
}
