//! Ringway: a thread-per-core io_uring HTTP/1.1 API gateway.
//!
//! The request path, outer stage to inner (each a module):
//!
//! 1. [`gateway`]: one pinned shard per CPU, SO_REUSEPORT listeners, accept loop, housekeeping tick;
//!    each accepted connection handed to the proxy with its shard's context ([`state`]).
//! 2. [`proxy::conn`]: a client connection: read a head into the connection buffer, serve, repeat.
//! 3. [`http`]: parse the head into offsets ([`http::request`]), check framing.
//! 4. [`route`]: compiled table lookup (host → path → method).
//! 5. [`proxy::chain`]: the per-request orchestrator: route, limits, static reply or forward.
//! 6. [`upstream`]: balancer picks a target, the shard's pool lends a keep-alive connection.
//! 7. [`proxy::forward`]: head rewritten minimally ([`http::rewrite`]), body streamed, response
//!    relayed the same way ([`proxy::relay`]), WebSocket/upgrade tunnels ([`proxy::tunnel`]).
//!
//! Errors: [`error::GatewayError`], mapped to status and JSON body in one place.
//!
//! Layers, each using only those below it: [`gateway`] (the process: shards, listeners, snapshot
//! publication, the health-check thread) → [`proxy`] (the request path) → [`state`] (what it serves
//! from) → [`route`], [`upstream`], [`limit`] (the mechanisms the stages call) → [`http`] and
//! [`runtime`] (clock, watchdog, pools, driver, allocator). [`config`] holds the validated values
//! they all read.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod ai;
pub mod catalog;
pub mod check;
pub mod config;
pub mod control;
pub mod error;
pub mod gateway;
pub mod http;
pub mod limit;
pub mod observe;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod state;
pub mod tls;
pub mod upstream;

#[cfg(test)]
mod testutil;

pub use config::Config;
pub use gateway::{Gateway, StartOptions};
