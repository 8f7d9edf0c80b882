//! The shard-local side of one limit: leases taken from the node table and spent with plain
//! integers, so a request touches no atomic until its key's lease runs out.
//!
//! The shard table has the node table's shape (sets of [`WAYS`]) but at most [`LOCAL_KEYS`] keys;
//! evicting a key returns its unused tokens. Every key holding a lease is listed, and at each
//! sync tick [`ShardLimit::tick`] returns what the listed keys have not spent: a lease lives at most
//! one tick, which is what bounds the error of the node-wide limit.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::node::{Grant, Kind, NodeLimit, WAYS, set_of, sets_for};

/// Most keys a shard table holds per limit (fewer when the limit's `max_keys` is smaller).
pub const LOCAL_KEYS: usize = 8192;

#[repr(C)]
struct Entry {
    key: Cell<u64>,
    /// Slot in the node table (a hint; `usize::MAX` = unknown).
    node: Cell<usize>,
    /// Rate: leased tokens not yet spent. Concurrency: slots held (in use or spare).
    tokens: Cell<u64>,
    /// Concurrency: slots in use by requests in flight (the entry is pinned while non-zero).
    in_use: Cell<u32>,
    /// Window epoch of the lease.
    epoch: Cell<u64>,
    /// The node budget left after the last lease (for RateLimit-Remaining).
    left: Cell<u64>,
    /// When the budget is whole again (ns).
    reset_at: Cell<u64>,
    /// Last use (ns): eviction order.
    used: Cell<u64>,
    listed: Cell<bool>,
}

// SAFETY: Cells of integers and a bool: all-zero bytes are a valid empty entry (key 0 = empty; the
// other fields are set when a key claims the entry).
unsafe impl bytemuck::Zeroable for Entry {}

/// What a request learned from a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Entry the token came from (for a refund), `usize::MAX` when untracked.
    pub entry: usize,
    pub remaining: u64,
    pub reset_ns: u64,
    /// When refused: until a request may succeed.
    pub retry_ns: u64,
}

pub struct ShardLimit {
    pub node: Arc<NodeLimit>,
    shards: u64,
    entries: Box<[Entry]>,
    set_mask: usize,
    listed: RefCell<Vec<usize>>,
}

impl ShardLimit {
    /// A shard's table for `node`: as many keys as the node holds, at most [`LOCAL_KEYS`].
    pub fn new(node: Arc<NodeLimit>, shards: usize) -> ShardLimit {
        let sets = sets_for(node.capacity().min(LOCAL_KEYS));
        ShardLimit {
            node,
            shards: shards.max(1) as u64,
            // Zeroed by the allocator: untouched pages stay uncommitted (see `node`).
            entries: bytemuck::zeroed_slice_box(sets * WAYS),
            set_mask: sets - 1,
            listed: RefCell::new(Vec::new()),
        }
    }

    /// The entry of `key`, claiming one (and returning its previous key's lease) if absent.
    /// `None` when every entry of the set has requests in flight.
    fn entry(&self, key: u64, now: u64) -> Option<usize> {
        let base = set_of(key, self.set_mask) * WAYS;
        let set = &self.entries[base..base + WAYS];
        if let Some(w) = set.iter().position(|e| e.key.get() == key) {
            set[w].used.set(now);
            return Some(base + w);
        }
        let w = set.iter().position(|e| e.key.get() == 0).or_else(|| {
            (0..WAYS)
                .filter(|&w| set[w].in_use.get() == 0)
                .min_by_key(|&w| set[w].used.get())
        })?;
        let e = &set[w];
        if e.key.get() != 0 {
            self.node.give_back(
                e.key.get(),
                e.node.get(),
                e.tokens.get(),
                e.epoch.get(),
                now,
            );
        }
        e.key.set(key);
        e.node.set(usize::MAX);
        e.tokens.set(0);
        e.left.set(0);
        e.reset_at.set(0);
        e.used.set(now);
        Some(base + w)
    }

    fn lease(&self, i: usize, now: u64) -> Grant {
        let e = &self.entries[i];
        let g = self.node.lease(e.key.get(), e.node.get(), self.shards, now);
        e.node.set(g.slot);
        if g.n > 0 && !e.listed.replace(true) {
            self.listed.borrow_mut().push(i);
        }
        g
    }

    /// Rate limit: spends one token of `key`. `Err` carries the refusal's quota.
    pub fn take(&self, key: u64, now: u64) -> Result<Quota, Quota> {
        let Some(i) = self.entry(key, now) else {
            return Ok(Quota {
                entry: usize::MAX,
                remaining: 0,
                reset_ns: 0,
                retry_ns: 0,
            });
        };
        let e = &self.entries[i];
        if let Kind::Window { width, .. } = self.node.kind {
            if e.epoch.get() != now / width {
                // Tokens of a past window were counted there; they cannot be spent in this one.
                e.tokens.set(0);
            }
        }
        if e.tokens.get() == 0 {
            let g = self.lease(i, now);
            if g.n == 0 {
                return Err(Quota {
                    entry: i,
                    remaining: 0,
                    reset_ns: g.reset_ns,
                    retry_ns: g.retry_ns,
                });
            }
            e.tokens.set(g.n);
            e.left.set(g.left);
            e.epoch.set(g.epoch);
            e.reset_at.set(now + g.reset_ns);
        }
        e.tokens.set(e.tokens.get() - 1);
        Ok(Quota {
            entry: i,
            remaining: e.left.get() + e.tokens.get(),
            reset_ns: e.reset_at.get().saturating_sub(now),
            retry_ns: 0,
        })
    }

    /// Gives back a token taken by [`ShardLimit::take`] for a request refused by another limit.
    pub fn refund(&self, q: &Quota) {
        if let Some(e) = self.entries.get(q.entry) {
            e.tokens.set(e.tokens.get() + 1);
        }
    }

    /// Concurrency limit: takes a slot for `key`. `Ok(None)`: untracked (table full of requests in
    /// flight), admitted without a slot.
    pub fn acquire(&self, key: u64, now: u64) -> Result<Option<usize>, u64> {
        let Some(i) = self.entry(key, now) else {
            return Ok(None);
        };
        let e = &self.entries[i];
        if u64::from(e.in_use.get()) >= e.tokens.get() {
            let g = self.lease(i, now);
            if g.n == 0 {
                return if g.slot == usize::MAX {
                    Ok(None)
                } else {
                    Err(g.retry_ns)
                };
            }
            e.tokens.set(e.tokens.get() + g.n);
        }
        e.in_use.set(e.in_use.get() + 1);
        Ok(Some(i))
    }

    /// Ends a request that holds a slot from [`ShardLimit::acquire`]; the slot stays with the
    /// shard until the next tick.
    pub fn release(&self, entry: usize) {
        if let Some(e) = self.entries.get(entry) {
            e.in_use.set(e.in_use.get().saturating_sub(1));
        }
    }

    /// Sync tick: returns every unspent lease to the node table.
    pub fn tick(&self, now: u64) {
        let mut listed = self.listed.borrow_mut();
        listed.retain(|&i| {
            let e = &self.entries[i];
            let keep = u64::from(e.in_use.get());
            let spare = e.tokens.get().saturating_sub(keep);
            if spare > 0 {
                self.node
                    .give_back(e.key.get(), e.node.get(), spare, e.epoch.get(), now);
            }
            e.tokens.set(keep);
            e.listed.set(keep > 0);
            keep > 0
        });
    }

    /// Keys this shard can hold.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }
}

impl Drop for ShardLimit {
    /// A reload replaces the shard's limit objects; what they hold goes back to the node.
    fn drop(&mut self) {
        let now = super::clock_ns();
        for e in self.entries.iter().filter(|e| e.key.get() != 0) {
            let spare = e.tokens.get().saturating_sub(u64::from(e.in_use.get()));
            self.node
                .give_back(e.key.get(), e.node.get(), spare, e.epoch.get(), now);
        }
    }
}
