//! Live subscriptions, (app, service) → state, sharded like the key index. Only live ones
//! (pending, approved) are here: a rejected, revoked or cancelled subscription is the same as none
//! to the data plane.

use std::collections::HashMap;
use std::sync::Arc;

use super::{SHARDS, shard_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    Pending,
    Approved,
}

#[derive(Debug, Clone)]
pub struct SubEntry {
    pub id: Box<str>,
    pub state: SubState,
    /// Index of its quota table in the catalog's `quotas`, if it has a quota.
    pub quota: Option<u32>,
}

type Part = HashMap<(i64, i64), SubEntry, foldhash::fast::FixedState>;

/// (app seq, service seq) → live subscription.
#[derive(Debug, Clone)]
pub struct SubIndex {
    parts: Vec<Arc<Part>>,
    len: usize,
}

impl Default for SubIndex {
    fn default() -> SubIndex {
        SubIndex {
            parts: (0..SHARDS).map(|_| Arc::new(Part::default())).collect(),
            len: 0,
        }
    }
}

#[inline]
fn part_of(app: i64, service: i64) -> usize {
    shard_of((app as u64).rotate_left(32) ^ service as u64)
}

impl SubIndex {
    #[inline]
    pub fn get(&self, app: i64, service: i64) -> Option<&SubEntry> {
        self.parts[part_of(app, service)].get(&(app, service))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets (or, with `None`, removes) the live subscription of `app` to `service`.
    pub fn set(&mut self, app: i64, service: i64, entry: Option<SubEntry>) {
        let part = Arc::make_mut(&mut self.parts[part_of(app, service)]);
        let had = match entry {
            Some(e) => part.insert((app, service), e).is_some(),
            None => {
                let had = part.remove(&(app, service)).is_some();
                if had {
                    self.len -= 1;
                }
                return;
            }
        };
        if !had {
            self.len += 1;
        }
    }

    /// Builds an index from every live subscription at once (start-up).
    pub fn from_entries(entries: impl IntoIterator<Item = ((i64, i64), SubEntry)>) -> SubIndex {
        let mut parts: Vec<Part> = (0..SHARDS).map(|_| Part::default()).collect();
        let mut len = 0;
        for ((app, service), e) in entries {
            if parts[part_of(app, service)]
                .insert((app, service), e)
                .is_none()
            {
                len += 1;
            }
        }
        SubIndex {
            parts: parts.into_iter().map(Arc::new).collect(),
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_remove() {
        let mut s = SubIndex::default();
        let e = |st| {
            Some(SubEntry {
                id: "sub_1".into(),
                state: st,
                quota: None,
            })
        };
        s.set(1, 2, e(SubState::Pending));
        assert_eq!(s.get(1, 2).map(|e| e.state), Some(SubState::Pending));
        assert!(s.get(2, 1).is_none());
        let before = s.clone();
        s.set(1, 2, e(SubState::Approved));
        assert_eq!(s.len(), 1);
        assert_eq!(before.get(1, 2).map(|e| e.state), Some(SubState::Pending));
        s.set(1, 2, None);
        assert!(s.get(1, 2).is_none());
        assert!(s.is_empty());
    }
}
