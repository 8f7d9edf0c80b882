//! The one place every request ends, whatever happened to it: served, refused by a policy, failed
//! upstream, abandoned by its client, or refused as unparsable. It sees the finished
//! [`RequestCtx`] and records it: the shard's request counters ([`crate::observe`]), the call
//! record ([`crate::observe::calllog`]) and the log line of a request that ended in an error.
//!
//! Performance: a served request without a call log costs one clock read and three owner-only
//! counter stores. With one, encoding its record is a few short copies into the shard's ring;
//! nothing here waits, locks or allocates (an error's log line goes to the non-blocking log
//! writer).

use std::fmt::Write as _;

use bytemuck::Zeroable;

use crate::config::{RouteAction, observe::CallLogConfig};
use crate::error::{ErrorKind, Side};
use crate::http::Method;
use crate::observe::clock;
use crate::observe::metrics::{add, code_index};
use crate::observe::record::{self, AiUsage, Breaker, FIELDS, Field, Fixed};
use crate::runtime::pools::Kit;
use crate::state::{ShardCtx, ShardState};

use super::ctx::RequestCtx;

/// What the end of a request may read besides its context: the state it was served on (for
/// names behind the context's indexes) and the connection's kit (the head fields captured for the
/// call record). Both absent for a request that never got a parsed head.
#[derive(Clone, Copy, Default)]
pub struct Seen<'a> {
    pub state: Option<&'a ShardState>,
    pub kit: Option<&'a Kit>,
}

/// Records a finished request. Called exactly once per request, by the connection task.
pub fn finish(shard: &ShardCtx, ctx: &mut RequestCtx, seen: Seen<'_>) {
    if ctx.timings.last_byte == 0 {
        ctx.timings.last_byte = clock::now();
    }
    shard.requests().record(ctx.status, ctx.error.is_some());
    count(shard, ctx, seen);
    let recording = shard.recording();
    if (recording || ctx.error.is_some()) && !ctx.id.is_set() {
        let mut id = [0u8; 24];
        shard.request_id(&mut id);
        ctx.id.set_generated(&id);
    }
    if recording {
        record(shard, ctx, seen);
    }
    if let Some(e) = ctx.error {
        log_error(ctx, &e);
    }
}

/// Counts the request into the shard's metric series: its route's (status class, bytes,
/// latency), its upstream's (first-byte latency, retries) and its error code's.
fn count(shard: &ShardCtx, ctx: &RequestCtx, seen: Seen<'_>) {
    let m = &*shard.metrics;
    let series = seen.state.map(|s| &*s.snap.series);
    let slot = series
        .zip(ctx.route)
        .and_then(|(s, i)| s.routes.get(i).copied())
        .unwrap_or(0);
    let r = m.route(slot);
    let t = &ctx.timings;
    let class = crate::observe::status_class(ctx.status);
    add(&r.by_class[class], 1);
    add(&r.bytes_in, ctx.bytes_in);
    add(&r.bytes_out, ctx.bytes_out);
    let start = if t.head != 0 { t.head } else { t.accepted };
    r.latency.record(clock::micros(start, t.last_byte));
    if let Some(u) = series
        .zip(ctx.upstream)
        .and_then(|(s, i)| s.upstreams.get(i).copied())
    {
        let us = m.upstream(u);
        add(&us.requests, 1);
        add(&us.retries, u64::from(ctx.tries.saturating_sub(1)));
        if t.upstream_first_byte != 0 && t.upstream_connected != 0 {
            us.first_byte
                .record(clock::micros(t.upstream_connected, t.upstream_first_byte));
        }
    }
    if let Some(ai) = &ctx.ai {
        add(&r.ai_input_tokens, ai.tokens.input);
        add(&r.ai_output_tokens, ai.tokens.output);
        add(&r.ai_cost_nanos, ai.cost.0);
        if ai.first_token != 0 {
            r.ai_first_token
                .record(clock::micros(start, ai.first_token));
        }
    }
    if let Some(e) = &ctx.error {
        add(&m.errors[code_index(e.code())], 1);
    }
    if let (Some(c), Some(s)) = (ctx.caller, seen.state) {
        if s.snap.config.metrics.per_app {
            add(&m.app(c.series).by_class[class], 1);
        }
    }
}

/// Captures what the call record needs from a fresh head, before its bytes can be consumed: the
/// method token (when it is not a named one), host, path, user agent and the configured headers
/// (values of redacted ones replaced). Only with a call log.
pub fn capture_head(kit: &mut Kit, cfg: &CallLogConfig) {
    let data = kit.buf.data();
    let req = &kit.req;
    let out = &mut kit.log_head;
    out.clear();
    let method = if req.method == Method::Other {
        req.method_span.of(data)
    } else {
        b""
    };
    record::put(out, method);
    record::put(out, req.host.map_or(&b""[..], |h| h.of(data)));
    record::put(out, req.path.of(data));
    record::put(out, req.user_agent.map_or(&b""[..], |u| u.of(data)));
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    for name in &cfg.headers {
        for h in req
            .headers
            .iter()
            .filter(|h| h.name.of(data).eq_ignore_ascii_case(name.as_bytes()))
        {
            out.extend_from_slice(name.as_bytes());
            out.push(b':');
            if cfg.header_redacted(name) {
                out.extend_from_slice(crate::config::observe::REDACTED.as_bytes());
            } else {
                out.extend_from_slice(h.value.of(data));
            }
            out.push(b'\n');
        }
    }
    let n = (out.len() - start - 2).min(record::MAX_FIELD);
    out.truncate(start + 2 + n);
    out[start..start + 2].copy_from_slice(&(n as u16).to_le_bytes());
}

/// A fixed-size text buffer for an error's message (cut at its size; never allocates).
struct StackText {
    len: usize,
    bytes: [u8; 256],
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Pushes the request's call record into the shard's ring (dropped and counted when it is full).
fn record(shard: &ShardCtx, ctx: &RequestCtx, seen: Seen<'_>) {
    let Some(rec) = shard.recorder.as_ref() else {
        return;
    };
    let mut f = Fixed::zeroed();
    f.status = ctx.status;
    f.method = method_index(ctx.head.method);
    f.tries = ctx.tries;
    f.set_peer(ctx.peer);
    if let Some(t) = ctx.target {
        f.set_target(t);
    }
    f.set_tls(ctx.tls);
    let t = &ctx.timings;
    f.ticks = [
        t.accepted,
        t.head,
        t.upstream_connected,
        t.upstream_first_byte,
        t.last_byte,
    ];
    f.bytes_in = ctx.bytes_in;
    f.bytes_out = ctx.bytes_out;
    if ctx.trace.set {
        f.flags |= record::flags::TRACE;
        f.trace_id = ctx.trace.trace_id;
        f.span_id = ctx.trace.span_id;
        f.parent_id = ctx.trace.parent_id;
    }
    let mut fields: [&[u8]; FIELDS] = [&[]; FIELDS];
    fields[Field::RequestId as usize] = ctx.id.as_bytes();
    fields[Field::App as usize] = ctx.app_id.as_bytes();
    if let (Some(state), Some(i)) = (seen.state, ctx.route) {
        let config = &state.snap.config;
        if let Some(route) = config.routes.get(i) {
            fields[Field::Route as usize] = route.name.as_bytes();
            let has = |u: usize| state.snap.breakers.get(u).is_some_and(Option::is_some);
            f.set_breaker(breaker(ctx, &route.action, has));
        }
        if let Some(s) = state.snap.catalog.services.of_route(i) {
            fields[Field::Service as usize] = s.id.as_bytes();
            fields[Field::Tenant as usize] = s.tenant_id.as_bytes();
        }
    }
    let head = seen
        .kit
        .filter(|k| !k.log_head.is_empty())
        .and_then(|k| record::fields::<5>(&k.log_head));
    if let (Some(kit), Some([method, host, path, ua, headers])) = (seen.kit, head) {
        fields[Field::Method as usize] = method;
        fields[Field::Host as usize] = host;
        fields[Field::Path as usize] = if ctx.path_rewritten { &kit.path } else { path };
        fields[Field::UserAgent as usize] = ua;
        fields[Field::Headers as usize] = headers;
        fields[Field::RequestBody as usize] = &kit.capture_req;
        fields[Field::ResponseBody as usize] = &kit.capture_resp;
    }
    let mut msg = StackText {
        len: 0,
        bytes: [0; 256],
    };
    if let Some(e) = &ctx.error {
        fields[Field::ErrorCode as usize] = e.code().as_bytes();
        let _ = write!(msg, "{e}");
        fields[Field::ErrorMessage as usize] = &msg.bytes[..msg.len];
    }
    let usage;
    if let Some(ai) = &ctx.ai {
        fields[Field::AiModel as usize] = ai.alias.as_bytes();
        fields[Field::AiProvider as usize] = ai.provider.as_bytes();
        fields[Field::AiProviderModel as usize] = ai.model.as_bytes();
        usage = AiUsage {
            input_tokens: ai.tokens.input,
            cached_input_tokens: ai.tokens.cached_input,
            output_tokens: ai.tokens.output,
            cost: ai.cost.0,
            first_token: ai.first_token,
            attempts: ai.attempts,
            flags: if ai.estimated { AiUsage::ESTIMATED } else { 0 }
                | if ai.streamed { AiUsage::STREAMED } else { 0 },
        };
        fields[Field::AiUsage as usize] = bytemuck::bytes_of(&usage);
    }
    if !rec.borrow_mut().push(&f, &fields) {
        shard.requests().log_drop();
    }
}

/// The method's index in [`METHODS`] (`u8::MAX` for an extension method).
fn method_index(m: Method) -> u8 {
    match m {
        Method::Get => 0,
        Method::Head => 1,
        Method::Post => 2,
        Method::Put => 3,
        Method::Delete => 4,
        Method::Connect => 5,
        Method::Options => 6,
        Method::Trace => 7,
        Method::Patch => 8,
        Method::Other => u8::MAX,
    }
}

/// The breaker's part in a request on a route of `action` (`has`: whether an upstream has one).
fn breaker(ctx: &RequestCtx, action: &RouteAction, has: impl Fn(usize) -> bool) -> Breaker {
    if ctx
        .error
        .as_ref()
        .is_some_and(|e| matches!(e.kind, ErrorKind::CircuitOpen))
    {
        return Breaker::Open;
    }
    match (action, ctx.upstream) {
        (RouteAction::Proxy(p), Some(u)) if u != p.upstream => Breaker::Fallback,
        (RouteAction::Proxy(_), Some(u)) if has(u) => Breaker::Passed,
        _ => Breaker::None,
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
