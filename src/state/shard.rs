//! What one shard serves from, as its connections see it: [`ShardState`] (a snapshot plus the
//! shard's own objects for it, replaced when a new snapshot is picked up) and [`ShardCtx`] (what the
//! shard's connection tasks share for the shard's whole life).
//!
//! Both are shard-local (`Rc`/`Cell`/`RefCell`, never locked, never sent to another thread). The
//! shard thread ([`crate::gateway`]) makes the context and changes it only at its tick (a new state,
//! the drain flag); a connection reads it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use super::Snapshot;
use crate::http::traceparent::TraceParent;
use crate::limit::RouteLimits;
use crate::observe::ShardRequests;
use crate::observe::metrics::ShardMetrics;
use crate::observe::recorder::Recorder;
use crate::runtime::pools::Pools;
use crate::runtime::watchdog::Watchdog;
use crate::upstream::Upstream;
use crate::upstream::rng::Rng;

/// What a shard's connections share: the state new requests use, the shard's pools and watchdog,
/// its request-id sequence and request counters, and whether it drains.
///
/// A connection holds an `Rc<ShardCtx>`, cloned once when it is accepted; every use after that is
/// a field access or a `Cell` read, as when the connection held the whole shard.
pub struct ShardCtx {
    pub id: usize,
    state: RefCell<Rc<ShardState>>,
    pub watchdog: Rc<Watchdog>,
    pub pools: Pools,
    draining: Cell<bool>,
    /// Random per process; prefix of generated request ids.
    instance: u32,
    seq: Cell<u64>,
    /// Finished-request counters of every shard; this shard writes row `id` only.
    requests: Arc<[CachePadded<ShardRequests>]>,
    /// JWTs this shard verified, until they expire (the auth stage borrows it without awaiting).
    pub jwt_cache: RefCell<crate::catalog::jwt::JwtCache>,
    /// Basic credentials this shard verified, and its budget of verifications.
    pub basic_cache: RefCell<crate::catalog::basic::BasicCache>,
    /// This shard's end of its call-record ring, when the call log runs.
    pub recorder: Option<RefCell<Recorder>>,
    /// Trace and span ids (seeded from the OS, per shard).
    pub ids: Rng,
    /// The state being served wants call records (and the shard has a ring for them).
    recording: Cell<bool>,
    /// What this shard counts for the metrics endpoint (it is the only writer).
    pub metrics: Arc<ShardMetrics>,
}

impl ShardCtx {
    /// The context of shard `id`, serving `state` from the start. `requests` holds a row for every
    /// shard of the node (summed by the gateway); this shard writes row `id` only.
    pub fn new(
        id: usize,
        instance: u32,
        state: ShardState,
        pools: Pools,
        requests: Arc<[CachePadded<ShardRequests>]>,
        recorder: Option<Recorder>,
        metrics: Arc<ShardMetrics>,
    ) -> ShardCtx {
        debug_assert!(id < requests.len());
        let recording = recorder.is_some() && wants_records(&state);
        ShardCtx {
            id,
            state: RefCell::new(Rc::new(state)),
            watchdog: Rc::new(Watchdog::default()),
            pools,
            draining: Cell::new(false),
            instance,
            seq: Cell::new(0),
            requests,
            jwt_cache: RefCell::default(),
            basic_cache: RefCell::default(),
            recorder: recorder.map(RefCell::new),
            ids: Rng::seeded(rand::random()),
            recording: Cell::new(recording),
            metrics,
        }
    }

    /// The state new requests use.
    #[inline]
    pub fn state(&self) -> Rc<ShardState> {
        self.state.borrow().clone()
    }

    /// Makes `state` the one new requests use; requests in flight keep theirs. The shard thread
    /// calls this when it picks up a new snapshot.
    pub fn set_state(&self, state: ShardState) {
        self.recording
            .set(self.recorder.is_some() && wants_records(&state));
        *self.state.borrow_mut() = Rc::new(state);
    }

    /// Whether finished requests are recorded (see [`crate::proxy::finish`]).
    #[inline]
    pub fn recording(&self) -> bool {
        self.recording.get()
    }

    #[inline]
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// From now on connections close once their request is answered. The shard thread calls this
    /// once, when the gateway begins to drain.
    pub fn start_draining(&self) {
        self.draining.set(true);
    }

    /// This shard's row of finished-request counters.
    #[inline]
    pub fn requests(&self) -> &ShardRequests {
        &self.requests[self.id]
    }

    /// Fills `t` with a new trace's ids, or a new span of the caller's trace when it sent one.
    pub fn new_span(&self, t: &mut crate::proxy::ctx::Trace, parent: Option<&TraceParent>) {
        t.set = true;
        t.span_id = nonzero(self.ids.next()).to_be_bytes();
        match parent {
            Some(p) => {
                t.trace_id = p.trace_id;
                t.parent_id = p.parent_id;
                t.flags = p.flags;
            }
            None => {
                let hi = self.ids.next();
                let lo = nonzero(self.ids.next());
                t.trace_id[..8].copy_from_slice(&hi.to_be_bytes());
                t.trace_id[8..].copy_from_slice(&lo.to_be_bytes());
                t.parent_id = [0; 8];
                // Sampled: the gateway records every call.
                t.flags = 1;
            }
        }
    }

    /// Writes a new request id (24 hex digits: instance, shard, sequence) into `out`.
    pub fn request_id(&self, out: &mut [u8; 24]) {
        let n = self.seq.get().wrapping_add(1);
        self.seq.set(n);
        let v: u128 = (u128::from(self.instance) << 64)
            | ((self.id as u128 & 0xff) << 56)
            | u128::from(n & ((1 << 56) - 1));
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in out.iter_mut().enumerate() {
            *b = HEX[((v >> (4 * (23 - i))) & 0xf) as usize];
        }
    }
}

fn wants_records(s: &ShardState) -> bool {
    let c = &s.snap.config;
    c.call_log.is_some() || c.analytics.is_some()
}

fn nonzero(x: u64) -> u64 {
    if x == 0 { 1 } else { x }
}

/// What one shard serves from: a snapshot plus the shard's runtime objects for its upstreams.
pub struct ShardState {
    pub snap: Arc<Snapshot>,
    /// By upstream index of `snap.config.upstreams`.
    pub upstreams: Vec<Rc<Upstream>>,
    /// This shard's leases of the route limits, by route index.
    pub limits: Vec<Option<Rc<RouteLimits>>>,
    /// This shard's leases of the catalog's quota tables, by quota index.
    pub quotas: Vec<Rc<RouteLimits>>,
    /// This shard's side of the AI providers: key cursors and the fallback budget.
    pub ai: Rc<AiShard>,
}

/// What a shard keeps per AI config: its round-robin cursor into each provider's keys, and the
/// budget of fallbacks to a model's next candidate.
#[derive(Default)]
pub struct AiShard {
    pub key_cursors: Box<[Cell<usize>]>,
    pub fallbacks: crate::upstream::retry::RetryBudget,
}

impl AiShard {
    fn new(providers: usize, shard_seed: usize) -> AiShard {
        AiShard {
            // Shards start at different keys, so a burst does not go to key 0 everywhere.
            key_cursors: (0..providers).map(|_| Cell::new(shard_seed)).collect(),
            fallbacks: Default::default(),
        }
    }
}

impl ShardState {
    /// Builds the shard state for `snap`, keeping the upstream objects (and their warm pools and
    /// balancer positions) of `prev` whose config did not change.
    /// `shards`: how many shards share the node (for per-shard shares of concurrency caps).
    pub fn new(snap: Arc<Snapshot>, prev: Option<&ShardState>, shards: usize) -> ShardState {
        // Only the catalog changed (a key, a subscription): same upstreams, same limits.
        let quotas = quotas(&snap, prev, shards);
        if let Some(p) = prev.filter(|p| Arc::ptr_eq(&p.snap.config, &snap.config)) {
            return ShardState {
                upstreams: p.upstreams.clone(),
                limits: p.limits.clone(),
                quotas,
                ai: p.ai.clone(),
                snap,
            };
        }
        let by_name: std::collections::HashMap<&str, &Rc<Upstream>> = prev
            .map(|p| {
                p.upstreams
                    .iter()
                    .map(|u| (u.config.name.as_str(), u))
                    .collect()
            })
            .unwrap_or_default();
        let upstreams = snap
            .config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                by_name
                    .get(u.name.as_str())
                    .filter(|old| old.config == *u)
                    .map(|old| Rc::clone(old))
                    .unwrap_or_else(|| {
                        Upstream::new(
                            u,
                            snap.health.get(i).cloned().flatten(),
                            snap.breakers.get(i).cloned().flatten(),
                            snap.outliers.get(i).cloned().flatten(),
                            shards,
                        )
                    })
            })
            .collect();
        let limits = snap
            .limits
            .iter()
            .map(|l| {
                let node = l.as_ref()?;
                let same = prev
                    .into_iter()
                    .flat_map(|p| p.limits.iter().flatten())
                    .find(|old| Arc::ptr_eq(&old.node, node));
                Some(
                    same.cloned()
                        .unwrap_or_else(|| Rc::new(RouteLimits::new(node.clone(), shards))),
                )
            })
            .collect();
        let ai = Rc::new(AiShard::new(
            snap.config.ai.providers.len(),
            rand::random::<u16>() as usize,
        ));
        ShardState {
            snap,
            upstreams,
            limits,
            quotas,
            ai,
        }
    }
}

/// The shard's side of the catalog's quota tables: kept (with their leases) for every table the
/// previous state had.
fn quotas(snap: &Snapshot, prev: Option<&ShardState>, shards: usize) -> Vec<Rc<RouteLimits>> {
    if let Some(p) = prev.filter(|p| Arc::ptr_eq(&p.snap.catalog.quotas, &snap.catalog.quotas)) {
        return p.quotas.clone();
    }
    snap.catalog
        .quotas
        .iter()
        .enumerate()
        .map(|(i, node)| {
            prev.and_then(|p| p.quotas.get(i))
                .filter(|old| Arc::ptr_eq(&old.node, node))
                .cloned()
                .unwrap_or_else(|| Rc::new(RouteLimits::new(node.clone(), shards)))
        })
        .collect()
}
