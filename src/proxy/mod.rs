//! The request path proper:
//!
//! - [`conn`]: a client connection: read a head, hand it to the chain, end the request, repeat;
//! - [`chain`]: the stages of a request, declared in order ([`stage`], one file each), over one
//!   per-request context ([`ctx`]);
//! - [`answer`]: the answers the gateway writes itself (errors, static responses);
//! - [`forward`]: sending a request upstream and relaying the response ([`relay`]), in phases;
//! - [`tunnel`]: protocol-upgrade tunnels;
//! - [`finish`]: the one place every request ends.

pub mod ai;
pub mod answer;
pub mod chain;
pub mod conn;
pub mod ctx;
pub mod finish;
pub mod forward;
pub mod relay;
pub mod stage;
pub mod tunnel;
