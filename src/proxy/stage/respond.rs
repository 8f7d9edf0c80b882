//! Static routes (`respond = { status, headers, body }`): answered from the response pre-rendered
//! in the snapshot; proxy routes go on to [`super::upstream`], AI routes to [`crate::proxy::ai`].
//!
//! Performance: the response is one copy of pre-rendered bytes into the gather list.

use crate::config::RouteAction;

use super::super::answer::Answer;
use super::super::chain::Cx;
use super::route;

pub fn run(cx: &mut Cx<'_>) -> Result<(), Answer> {
    let idx = route::matched(cx)?;
    match cx.state.snap.config.routes[idx].action {
        RouteAction::Respond(_) => Err(Answer::Static {
            fallback: false,
            headers: Vec::new(),
        }),
        RouteAction::Proxy(_) | RouteAction::Ai(_) => Ok(()),
    }
}
