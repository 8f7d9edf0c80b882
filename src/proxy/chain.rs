//! The request path, declared in one place. A parsed request goes through these stages in order;
//! each reads and fills the request's [`RequestCtx`] and either lets the request go on (`Ok(())`)
//! or answers it (`Err(Answer)`):
//!
//! ```text
//! trace → normalize → route → auth → access → limits → respond (static routes)
//!   → upstream (breaker) → forward (LB, pool, retries)      proxy routes
//!   → ai (body, alias, provider calls with fallback, translation, accounting)   AI routes
//! ```
//!
//! Every stage is synchronous but one step: a credential that cannot be checked on the shard (a
//! basic password not yet cached, verified on the node's verifier thread) is awaited between
//! `auth` and `access`.
//!
//! `auth` and `access` act on managed services' routes only (credential → app, lifecycle,
//! subscription); a cache will sit between `limits` and `upstream`: one line here and one file
//! in [`super::stage`].
//!
//! The answer (an error, a static response, or the proxied response already sent) is written by
//! [`answer::write`]; the connection task then ends the request in [`super::finish`], the one
//! place every request ends.

use crate::limit::LimitGuard;
use crate::runtime::pools::Kit;
use crate::state::ShardState;
use crate::upstream::{Lease, SlotGuard};

use super::answer::{self, Answer};
use super::conn::Conn;
use super::ctx::RequestCtx;
use super::{ai, forward, stage};

/// What the connection does after a request.
pub enum Next {
    KeepAlive,
    Close,
    /// The upstream switched protocols: tunnel bytes both ways.
    Upgrade(Upgraded),
}

/// The upstream side of a switched connection.
pub struct Upgraded {
    pub stream: crate::tls::UpstreamStream,
    pub slot: SlotGuard,
    pub idle_timeout: std::time::Duration,
}

impl Upgraded {
    pub fn from_lease(lease: Lease, idle_timeout: std::time::Duration) -> Upgraded {
        let (stream, slot) = lease.into_stream();
        Upgraded {
            stream,
            slot,
            idle_timeout,
        }
    }
}

/// What every stage works with: the connection, its working set (buffer, parsed head), the config
/// snapshot the request runs on, and the request's context.
pub struct Cx<'a> {
    pub conn: &'a mut Conn,
    pub kit: &'a mut Kit,
    pub state: &'a ShardState,
    pub ctx: &'a mut RequestCtx,
    /// Concurrency slots taken by the limits stage, held until the request ends.
    pub limits: Option<LimitGuard>,
    /// A credential the auth stage could not check without waiting (a basic password not yet
    /// cached); [`stage::auth::verify`] checks it before the next stage.
    pub pending: Option<stage::auth::Pending>,
}

impl<'a> Cx<'a> {
    /// A request's context before any stage ran.
    pub fn new(
        conn: &'a mut Conn,
        kit: &'a mut Kit,
        state: &'a ShardState,
        ctx: &'a mut RequestCtx,
    ) -> Cx<'a> {
        Cx {
            conn,
            kit,
            state,
            ctx,
            limits: None,
            pending: None,
        }
    }

    /// The request's path (and query) as routed: normalized when normalization changed it.
    pub fn path(&self) -> &[u8] {
        if self.ctx.path_rewritten {
            &self.kit.path
        } else {
            self.kit.req.path.of(self.kit.buf.data())
        }
    }
}

/// The stages up to and including authentication, in order.
fn identify(cx: &mut Cx<'_>) -> Result<(), Answer> {
    stage::trace::run(cx)?;
    stage::normalize::run(cx)?;
    stage::route::run(cx)?;
    stage::auth::run(cx)?;
    Ok(())
}

/// The stages after authentication, before the terminal one.
fn policies(cx: &mut Cx<'_>) -> Result<(), Answer> {
    stage::access::run(cx)?;
    stage::limits::run(cx)?;
    stage::respond::run(cx)?;
    Ok(())
}

/// The matched route's AI action and body limit, when it is an AI route.
fn ai_route<'a>(cx: &Cx<'a>) -> Option<(&'a crate::config::ai::AiAction, u64)> {
    let state: &'a ShardState = cx.state;
    let route = &state.snap.config.routes[cx.ctx.route?];
    match &route.action {
        crate::config::RouteAction::Ai(a) => Some((a, route.max_body_size)),
        _ => None,
    }
}

/// Serves one parsed request (head in `kit.req`) and writes its answer.
pub async fn serve(
    conn: &mut Conn,
    kit: &mut Kit,
    state: &ShardState,
    ctx: &mut RequestCtx,
) -> Next {
    kit.response_headers.clear();
    kit.upstream_headers.clear();
    kit.capture_req.clear();
    kit.capture_resp.clear();
    let mut cx = Cx::new(conn, kit, state, ctx);
    let mut identified = identify(&mut cx);
    if identified.is_ok() && cx.pending.is_some() {
        // Only a credential that needs checking off the shard waits here (rarely: once per
        // credential and shard).
        identified = Box::pin(stage::auth::verify(&mut cx)).await;
    }
    let answer = match identified.and_then(|()| policies(&mut cx)) {
        Err(answer) => answer,
        Ok(()) => match ai_route(&cx) {
            // Boxed: the AI terminal's future is large and rare; the proxy path's stays small.
            Some((action, limit)) => Box::pin(ai::serve(&mut cx, action, limit)).await,
            None => match stage::upstream::admit(&mut cx) {
                Ok(admitted) => forward::forward(&mut cx, admitted).await,
                Err(answer) => answer,
            },
        },
    };
    answer::write(&mut cx, answer).await
}
