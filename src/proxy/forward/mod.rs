//! Forwarding one admitted request to its upstream, in phases:
//!
//! 1. [`request::prepare`]: the body bytes already in hand (a short rest awaited);
//! 2. lease: a pooled or new connection from the upstream's balancer and pool;
//! 3. [`request::send`]: the rewritten head with the buffered body, then the rest of the body while
//!    watching for an early answer;
//! 4. [`response::read_head`]: the response head (1xx passed through);
//! 5. [`response::relay_response`]: the response head and body to the client, then the connection
//!    released to the pool when the exchange left it clean.
//!
//! Between phases, this file decides on retries ([`crate::upstream::retry`]): a failed try is
//! repeated (another target, after a backoff) when the upstream's retry policy and budget agree
//! and the request can be sent again whole. Independently of any policy, a request that fails on
//! a pooled connection before any response byte (the upstream closed it while idle) is sent once
//! more on a fresh connection, if it is idempotent and whole in the buffer.

mod request;
pub(super) mod response;

use std::rc::Rc;

use super::stage::upstream::Admitted;
use crate::error::ErrorKind;
use crate::runtime::watchdog::now_ms;
use crate::upstream::retry::{self, Failure};
use crate::upstream::{Outcome, Upstream, request_key};

use super::answer::Answer;
use super::chain::{Cx, Next};
use crate::observe::clock;
use request::Failed;

pub use request::consume_request;

/// Forwards the request; the permit (breaker, concurrency cap) is held until it ends.
pub async fn forward(cx: &mut Cx<'_>, admitted: Admitted<'_>) -> Answer {
    let state = cx.state;
    let Admitted {
        upstream,
        permit,
        action,
    } = admitted;
    let up: &Rc<Upstream> = &state.upstreams[upstream];
    let Some(route_idx) = cx.ctx.route else {
        return Answer::kind(ErrorKind::RouteNotFound);
    };
    let route = &state.snap.config.routes[route_idx];

    // 1. The body bytes in hand.
    let mut body = match request::prepare(cx, route).await {
        Ok(b) => b,
        Err(a) => return a,
    };
    let head_len = cx.kit.req.len;
    let request_len = head_len + body.prefix;
    let hash = up.hash_key().and_then(|k| {
        request_key(
            k,
            &cx.kit.req,
            cx.kit.buf.data(),
            cx.path(),
            cx.conn.peer.ip(),
        )
    });
    let idempotent = cx.ctx.head.method.is_idempotent();
    let mut tries = Tries::new(up, body.whole && (idempotent || route.retry_non_idempotent));
    let mut exclude = None;
    let mut stale_retried = false;
    loop {
        let try_start = permit.try_started();
        let record = |target: Option<usize>, o: Outcome| permit.record(target, o, try_start);

        // 2. A connection.
        let mut lease = match up.checkout(&cx.conn.watch, hash, exclude).await {
            Ok(l) => l,
            Err((e, failed)) => {
                if let Some(t) = failed.and_then(|i| up.targets.get(i)) {
                    cx.ctx.tries += 1;
                    cx.ctx.target = Some(t.addr);
                }
                let connect = matches!(
                    e.kind,
                    ErrorKind::UpstreamConnect | ErrorKind::UpstreamConnectTimeout
                );
                if connect {
                    record(failed, Outcome::Failed);
                    if tries.again(Failure::Connect).await {
                        exclude = failed;
                        continue;
                    }
                }
                return Answer::error(e);
            }
        };
        let target = lease.target.index;
        cx.ctx.tries += 1;
        cx.ctx.target = Some(lease.target.addr);
        cx.ctx.timings.upstream_connected = clock::now();
        cx.ctx.timings.upstream_first_byte = 0;
        let timeout = tries.response_timeout();

        // 3. Head and body.
        let sent = match request::send(cx, &mut lease, &mut body, action, timeout).await {
            Ok(s) => s,
            Err(Failed::Body { answer, upstream }) => {
                if upstream {
                    record(Some(target), Outcome::Failed);
                }
                return answer;
            }
            Err(Failed::Head(e)) => {
                if body.whole && !stale_retried && e.retry_safe(idempotent) {
                    tracing::debug!(target = %lease.target.addr, error = %e, "pooled connection was closed; retrying on a new one");
                    stale_retried = true;
                    continue;
                }
                record(Some(target), Outcome::Failed);
                if e.kind != ErrorKind::UpstreamTimeout {
                    drop(lease);
                    if tries.again(Failure::Reset).await {
                        exclude = Some(target);
                        continue;
                    }
                }
                return Answer::error(e);
            }
        };
        let early = sent.cut_short;

        // 4. The response head.
        let mut ubuf = sent
            .first_bytes
            .unwrap_or_else(|| cx.conn.shard.pools.buf());
        match response::read_head(cx, &mut lease, &mut ubuf, timeout).await {
            Ok(()) => {
                let status = cx.kit.resp.status;
                record(Some(target), Outcome::Status(status));
                // An early answer is forwarded as it is: the body it answered was never all sent.
                let retried_status = !early
                    && up
                        .config
                        .retry
                        .as_ref()
                        .is_some_and(|p| p.statuses.contains(&status));
                let failure = Failure::Status(status);
                if let Some(pause) = retried_status.then(|| tries.decide(failure)).flatten() {
                    // Not forwarded: this connection's response is abandoned, so it is closed.
                    cx.conn.shard.pools.put_buf(ubuf);
                    drop(lease);
                    tries.wait(pause, failure).await;
                    exclude = Some(target);
                    continue;
                }
                // 5. The response.
                let len = if cx.ctx.consumed { 0 } else { request_len };
                return response::relay_response(cx, up, lease, ubuf, early, len).await;
            }
            Err(failed) => {
                cx.conn.shard.pools.put_buf(ubuf);
                let e = failed.error;
                if e.kind == ErrorKind::ClientGone {
                    // The client left during an interim response: not the upstream's failure.
                    cx.ctx.fail(e);
                    return Answer::Sent(Next::Close);
                }
                if body.whole && !stale_retried && !failed.got_bytes && e.retry_safe(idempotent) {
                    tracing::debug!(target = %lease.target.addr, "pooled connection closed before responding; retrying on a new one");
                    stale_retried = true;
                    continue;
                }
                record(Some(target), Outcome::Failed);
                let failure = match e.kind {
                    ErrorKind::UpstreamTimeout => Some(Failure::Timeout),
                    ErrorKind::UpstreamReset => Some(Failure::Reset),
                    _ => None,
                };
                drop(lease);
                if let Some(f) = failure {
                    if tries.again(f).await {
                        exclude = Some(target);
                        continue;
                    }
                }
                return Answer::error(e);
            }
        }
    }
}

/// The retry policy of one request: its budget, deadline and count of tries so far.
struct Tries<'a> {
    up: &'a Upstream,
    /// The request may be sent again (whole in the buffer; idempotent or opted in).
    replayable: bool,
    deadline: Option<u64>,
    done: u32,
}

impl<'a> Tries<'a> {
    fn new(up: &'a Upstream, replayable: bool) -> Tries<'a> {
        let policy = up.config.retry.as_ref();
        if policy.is_some() {
            up.retry_budget.request();
        }
        Tries {
            up,
            replayable,
            deadline: policy
                .and_then(|p| p.total_timeout)
                .map(|t| now_ms() + t.as_millis() as u64),
            done: 0,
        }
    }

    /// The response timeout of the next try: the policy's per-try timeout or the upstream's
    /// response timeout, within the total deadline.
    fn response_timeout(&self) -> u64 {
        let t = self
            .up
            .config
            .retry
            .as_ref()
            .and_then(|p| p.per_try_timeout)
            .unwrap_or(self.up.config.response_timeout)
            .as_millis() as u64;
        match self.deadline {
            Some(d) => t.min(d.saturating_sub(now_ms()).max(1)),
            None => t,
        }
    }

    /// Whether to try again after `failure`; waits out the backoff when so.
    async fn again(&mut self, failure: Failure) -> bool {
        match self.decide(failure) {
            Some(pause) => {
                self.wait(pause, failure).await;
                true
            }
            None => false,
        }
    }

    /// The pause before another try after `failure`, if the policy and budget allow one (a
    /// granted retry is taken from the budget).
    fn decide(&self, failure: Failure) -> Option<std::time::Duration> {
        let policy = self.up.config.retry.as_ref()?;
        retry::decide(
            policy,
            &self.up.retry_budget,
            failure,
            self.done,
            self.replayable,
            self.deadline,
        )
    }

    /// Waits out a retry's backoff.
    async fn wait(&mut self, pause: std::time::Duration, failure: Failure) {
        tracing::debug!(
            upstream = %self.up.config.name,
            ?failure,
            retry = self.done + 1,
            pause_ms = pause.as_millis() as u64,
            "retrying"
        );
        if !pause.is_zero() {
            // Boxed for the reason given at `upstream::wait_for_slot`: keep the request future's
            // alignment at 8.
            Box::pin(monoio::time::sleep(pause)).await;
        }
        self.done += 1;
    }
}
