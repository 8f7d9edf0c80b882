//! What the request path serves from: the [`Snapshot`] of a validated config (node-wide, shared as
//! `Arc`), and per shard the [`ShardState`] built from it and the [`ShardCtx`] every connection of
//! the shard holds.
//!
//! Why a layer of its own, between the request path ([`crate::proxy`]) and the mechanisms it calls
//! ([`crate::route`], [`crate::upstream`], [`crate::limit`]): every stage reads these types, so they
//! cannot live in the top layer ([`crate::gateway`]) without the request path importing the layer
//! that spawns it; and they bundle the mechanisms' objects, so they cannot live in the bottom
//! layer ([`crate::runtime`]) either. What belongs to the top layer is their publication: building a
//! snapshot on reload, handing it to the shards, and each shard picking it up at its tick.

mod shard;
mod snapshot;

pub use shard::{ShardCtx, ShardState};
pub use snapshot::Snapshot;
