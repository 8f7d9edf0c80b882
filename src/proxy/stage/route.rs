//! Routing: the snapshot's compiled table (host exact/wildcard → path exact/prefix → method, most
//! specific wins) on the normalized path. Fills `ctx.route` and `ctx.matched`.
//!
//! Errors: 404 `route_not_found`, 405 `method_not_allowed` (a route matches the path but not the
//! method). Performance: a hash lookup by host, then a walk of that host's path entries; no
//! allocation.

use crate::error::ErrorKind;
use crate::route::Lookup;

use super::super::answer::Answer;
use super::super::chain::Cx;

pub fn run(cx: &mut Cx<'_>) -> Result<(), Answer> {
    let data = cx.kit.buf.data();
    let req = &cx.kit.req;
    let path = cx.path();
    let host = req.host_name.map_or(&b""[..], |h| h.of(data));
    match cx.state.snap.routes.lookup_name(host, path, req.method) {
        Lookup::Found { route, matched } => {
            cx.ctx.route = Some(route);
            cx.ctx.matched = matched;
            Ok(())
        }
        Lookup::MethodNotAllowed => Err(Answer::kind(ErrorKind::MethodNotAllowed)),
        Lookup::NotFound => Err(Answer::kind(ErrorKind::RouteNotFound)),
    }
}

/// The matched route's index; the stages after `route` may rely on it.
pub fn matched(cx: &Cx<'_>) -> Result<usize, Answer> {
    cx.ctx
        .route
        .ok_or_else(|| Answer::kind(ErrorKind::RouteNotFound))
}
