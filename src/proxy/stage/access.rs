//! Access to a managed service: its lifecycle and the caller's subscription, from the compiled
//! catalog. Runs after [`super::auth`], which identified the caller; routes of the config file
//! pass untouched.
//!
//! - retired: 410 `service_retired`;
//! - draft: callable by the owning tenant's apps only (for testing); any other caller gets 404
//!   `route_not_found`, as if the service did not exist;
//! - no live subscription of the calling app: 403 `subscription_required`; a pending one: 403
//!   `subscription_pending`;
//! - deprecated: served, and the response carries the service's `Deprecation`, `Sunset` and
//!   `Link` header lines.
//!
//! On success the upstream gets `x-ringway-subscription`, and the subscription's quota (if any) is
//! noted for the limits stage.
//!
//! Performance: one probe of the subscription index; no lock, no allocation.

use crate::catalog::{Lifecycle, SubState};
use crate::error::ErrorKind;

use super::super::answer::Answer;
use super::super::chain::Cx;

pub fn run(cx: &mut Cx<'_>) -> Result<(), Answer> {
    let Some(service) = cx.ctx.service else {
        return Ok(());
    };
    let catalog = &cx.state.snap.catalog;
    let (Some(svc), Some(caller)) = (
        catalog.services.entries.get(service as usize),
        cx.ctx.caller,
    ) else {
        // A managed route always passes auth with a caller; without one, refuse rather than serve.
        return Err(Answer::kind(ErrorKind::CredentialMissing));
    };
    match svc.state {
        Lifecycle::Retired => return Err(Answer::kind(ErrorKind::ServiceRetired)),
        Lifecycle::Draft if caller.tenant != svc.tenant_seq => {
            return Err(Answer::kind(ErrorKind::RouteNotFound));
        }
        _ => {}
    }
    let sub = match catalog.subs.get(caller.app, svc.seq) {
        Some(s) if s.state == SubState::Approved => s,
        Some(_) => return Err(Answer::kind(ErrorKind::SubscriptionPending)),
        None => return Err(Answer::kind(ErrorKind::SubscriptionRequired)),
    };
    cx.ctx.quota = sub.quota;
    let kit = &mut *cx.kit;
    kit.upstream_headers
        .extend_from_slice(b"x-ringway-subscription: ");
    kit.upstream_headers.extend_from_slice(sub.id.as_bytes());
    kit.upstream_headers.extend_from_slice(b"\r\n");
    kit.response_headers
        .extend_from_slice(&svc.response_headers);
    Ok(())
}
