//! The AI limits a call is admitted under (see [`crate::limit::budget`]): the route's own
//! (`ai.limits`), the calling app's and its tenant's. Admission reserves the call's estimate on
//! each; [`settle`] charges what it actually used once it ended.
//!
//! The estimate: one request; the prompt's tokens (counted with the tokenizer, only when a
//! token or cost limit applies) plus the call's output bound (`max_tokens`, else
//! `[ai] reserve_output_tokens`); and those tokens' cost at the dearest price among the
//! candidates that may serve it.

use std::sync::Arc;

use crate::ai::price::{Price, Tokens};
use crate::error::ErrorKind;
use crate::limit::budget::{Budget, Refused, Usage, What, Windows};

use super::super::answer::{Answer, Detail};
use super::super::chain::Cx;

/// The reservations a call holds until it is settled.
pub struct Held {
    budgets: Vec<(Arc<Budget>, &'static str)>,
    reserved: Usage,
    at: Windows,
}

/// What a call may use at most: its prompt and output bound, and the prices it may be charged at.
pub struct Estimate<'p> {
    pub prompt: &'p dyn Fn() -> u64,
    pub output: u64,
    pub prices: Vec<Price>,
}

fn needs_tokens(b: &Budget) -> bool {
    [
        What::TokensPerMinute,
        What::TokensPerDay,
        What::TokensPerMonth,
        What::CostPerDay,
        What::CostPerMonth,
    ]
    .iter()
    .any(|&w| b.limits.get(w).is_some())
}

/// Nano-USD to micro-USD, rounded up (budgets never undercount).
fn micros(nanos: u64) -> u64 {
    nanos.div_ceil(1000)
}

/// Reserves the call's estimate on every AI limit that applies to it.
pub fn admit(cx: &Cx<'_>, e: Estimate<'_>) -> Result<Option<Held>, Answer> {
    let snap = &cx.state.snap;
    let mut budgets: Vec<(Arc<Budget>, &'static str)> = Vec::new();
    if let Some(b) = cx.ctx.route.and_then(|r| snap.ai_budgets.get(r)?.clone()) {
        budgets.push((b, "route's"));
    }
    if let Some(c) = cx.ctx.caller {
        if let Some(b) = snap.catalog.ai.apps.get(&c.app) {
            budgets.push((b.clone(), "app's"));
        }
        if let Some(b) = snap.catalog.ai.tenants.get(&c.tenant) {
            budgets.push((b.clone(), "tenant's"));
        }
    }
    if budgets.is_empty() {
        return Ok(None);
    }
    // A cost limit cannot hold a call it cannot price (it would be charged nothing): on a native
    // route the client names the model, and any name without a price would be free.
    let cost_limited = budgets.iter().any(|(b, _)| {
        b.limits.get(What::CostPerDay).is_some() || b.limits.get(What::CostPerMonth).is_some()
    });
    if cost_limited && e.prices.is_empty() {
        return Err(bad_request(
            "model_unpriced",
            "this model has no price ([ai.prices] or PUT /api/v1/ai/prices/{model}), and a cost \
             limit applies to this call: it cannot be counted"
                .to_string(),
        ));
    }
    let reserved = if budgets.iter().any(|(b, _)| needs_tokens(b)) {
        let input = (e.prompt)();
        let t = Tokens {
            input,
            cached_input: 0,
            output: e.output,
        };
        let cost = e.prices.iter().map(|p| p.cost(t).0).max().unwrap_or(0);
        Usage {
            requests: 1,
            tokens: input.saturating_add(e.output),
            cost_micros: micros(cost),
        }
    } else {
        Usage {
            requests: 1,
            ..Usage::default()
        }
    };
    // A call bigger than a whole limit would get a 429 that never clears (and SDKs retry 429s):
    // tell the client what to change instead.
    for (b, whose) in &budgets {
        if let Some((w, limit)) = b.beyond(reserved) {
            return Err(too_big(w, limit, reserved.of(w), whose));
        }
    }
    let at = Windows::now();
    for (i, (b, whose)) in budgets.iter().enumerate() {
        if let Err(r) = b.reserve(reserved, &at) {
            for (prev, _) in &budgets[..i] {
                prev.settle(reserved, Usage::default(), &at);
            }
            return Err(refused(r, whose));
        }
    }
    Ok(Some(Held {
        budgets,
        reserved,
        at,
    }))
}

/// Settles a call's reservations with what the call used (its context's tokens and cost).
pub fn settle(cx: &Cx<'_>, held: Option<Held>) {
    let Some(h) = held else {
        return;
    };
    let actual = match &cx.ctx.ai {
        Some(a) => Usage {
            requests: 1,
            tokens: a.tokens.input.saturating_add(a.tokens.output),
            cost_micros: micros(a.cost.0),
        },
        None => Usage {
            requests: 1,
            ..Usage::default()
        },
    };
    for (b, _) in &h.budgets {
        b.settle(h.reserved, actual, &h.at);
    }
}

/// A limit's value or use as the client reads it: dollars for cost limits, else the count.
fn shown(w: What, v: u64) -> String {
    match w {
        What::CostPerDay | What::CostPerMonth => format!("${}.{:06}", v / 1_000_000, v % 1_000_000),
        _ => v.to_string(),
    }
}

/// A 400 in OpenAI's error shape: the call as asked can never be admitted.
fn bad_request(code: &str, message: String) -> Answer {
    Answer::Detailed(
        crate::error::GatewayError::new(ErrorKind::AiBadRequest),
        Box::new(Detail {
            code: code.to_string(),
            message,
            headers: Vec::new(),
        }),
    )
}

/// The 400 for a call whose reservation alone is more than limit `w`.
fn too_big(w: What, limit: u64, wanted: u64, whose: &str) -> Answer {
    let (limit, wanted) = (shown(w, limit), shown(w, wanted));
    let message = format!(
        "this call reserves {wanted} against the {whose} {} limit of {limit}, more than the whole \
         limit: set a smaller max_tokens (or n); without max_tokens the gateway reserves \
         [ai] reserve_output_tokens",
        w.name()
    );
    bad_request("max_tokens_over_limit", message)
}

/// The 429 for a limit that refused, in OpenAI's error shape with `retry-after`.
fn refused(r: Refused, whose: &str) -> Answer {
    let code = match r.what {
        What::RequestsPerMinute | What::TokensPerMinute => "rate_limit_exceeded",
        _ => "budget_exceeded",
    };
    let limit = shown(r.what, r.limit);
    let message = format!(
        "the {whose} {} limit ({limit}) is reached; it renews in {} s",
        r.what.name(),
        r.retry_after_secs
    );
    Answer::Detailed(
        crate::error::GatewayError::new(ErrorKind::AiLimited),
        Box::new(Detail {
            code: code.to_string(),
            message,
            headers: format!("retry-after: {}\r\n", r.retry_after_secs).into_bytes(),
        }),
    )
}
