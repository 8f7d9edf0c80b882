//! The request path proper: a client connection ([`conn`]), the per-request orchestrator
//! ([`pipeline`]), forwarding to upstreams ([`forward`], [`relay`]) and protocol-upgrade tunnels
//! ([`tunnel`]).

pub mod conn;
pub mod forward;
pub mod pipeline;
pub mod relay;
pub mod tunnel;
