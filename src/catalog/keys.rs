//! API keys: their format, their hash, and the sharded index from hash to app.
//!
//! A key is `rw_` followed by 43 base64url characters (32 random bytes: 256 bits). It is shown once,
//! when made; the store and the catalog keep only its SHA-256 and a visible prefix. Because keys are
//! random and long, a fast hash is the right one: a guess is as unlikely as guessing the key, and a
//! slow password hash would cost every request. Looking the hash up in a hash map is not a
//! timing oracle for the key: what a lookup's timing could reveal is about the hash, which says
//! nothing about any other key.
//!
//! Performance: one SHA-256 of ~46 bytes (ring, ~0.2 µs) and one hash-map probe per request.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AppEntry, SHARDS};

/// The SHA-256 of a whole key.
pub type KeyHash = [u8; 32];

/// What every key starts with.
pub const KEY_PREFIX: &str = "rw_";
/// Characters of a key shown after it was made (`rw_` and the first 8 random characters).
pub const VISIBLE: usize = 11;
const RANDOM_BYTES: usize = 32;
/// Length of a key: the prefix and 32 bytes in unpadded base64url.
pub const KEY_LEN: usize = KEY_PREFIX.len() + 43;

/// A newly made key (the only time its text exists).
pub struct ApiKey {
    pub key: String,
    pub hash: KeyHash,
}

impl ApiKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> ApiKey {
        let bytes: [u8; RANDOM_BYTES] = rand::random();
        let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let hash = hash_key(key.as_bytes());
        ApiKey { key, hash }
    }

    /// The part that may be shown later (to tell keys apart).
    pub fn visible_prefix(&self) -> &str {
        &self.key[..VISIBLE]
    }
}

impl std::fmt::Debug for ApiKey {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}…)", &self.key[..VISIBLE])
    }
}

/// SHA-256 of a presented credential.
#[inline]
pub fn hash_key(key: &[u8]) -> KeyHash {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether a presented value has the shape of a key (checked before hashing, so that an
/// unrelated bearer token costs no SHA-256 and no lookup).
#[inline]
pub fn looks_like_key(v: &[u8]) -> bool {
    v.len() == KEY_LEN
        && v.starts_with(KEY_PREFIX.as_bytes())
        && v[KEY_PREFIX.len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// What a key resolves to.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub app: Arc<AppEntry>,
    /// Unix milliseconds after which the key is refused; `None`: never.
    pub expires_at_ms: Option<u64>,
}

/// The hashes are uniformly random already: the map's hash is their first 8 bytes.
#[derive(Default)]
pub struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its bytes; a length prefix is never written for arrays.
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(b);
    }
}

type Part = HashMap<KeyHash, KeyEntry, BuildHasherDefault<PrefixHasher>>;

/// Key hash → app, in [`SHARDS`] parts (see the module docs of [`crate::catalog`]).
#[derive(Debug, Clone)]
pub struct KeyIndex {
    parts: Vec<Arc<Part>>,
    len: usize,
}

impl Default for KeyIndex {
    fn default() -> KeyIndex {
        KeyIndex {
            parts: (0..SHARDS).map(|_| Arc::new(Part::default())).collect(),
            len: 0,
        }
    }
}

#[inline]
fn part_of(hash: &KeyHash) -> usize {
    // The last byte picks the part, the first eight the bucket: independent bits.
    hash[31] as usize % SHARDS
}

impl KeyIndex {
    #[inline]
    pub fn get(&self, hash: &KeyHash) -> Option<&KeyEntry> {
        self.parts[part_of(hash)].get(hash)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds or replaces a key; copies its part if a published snapshot shares it.
    pub fn insert(&mut self, hash: KeyHash, entry: KeyEntry) {
        if Arc::make_mut(&mut self.parts[part_of(&hash)])
            .insert(hash, entry)
            .is_none()
        {
            self.len += 1;
        }
    }

    /// Removes a key; copies its part if a published snapshot shares it.
    pub fn remove(&mut self, hash: &KeyHash) -> bool {
        let removed = Arc::make_mut(&mut self.parts[part_of(hash)])
            .remove(hash)
            .is_some();
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Builds an index from every key at once (start-up): each part built once, not copied.
    pub fn from_entries(entries: impl IntoIterator<Item = (KeyHash, KeyEntry)>) -> KeyIndex {
        let mut parts: Vec<Part> = (0..SHARDS).map(|_| Part::default()).collect();
        let mut len = 0;
        for (hash, entry) in entries {
            if parts[part_of(&hash)].insert(hash, entry).is_none() {
                len += 1;
            }
        }
        KeyIndex {
            parts: parts.into_iter().map(Arc::new).collect(),
            len,
        }
    }

    /// How many parts this index shares with `other` (the same allocation): what a change did
    /// not copy.
    pub fn shared_parts(&self, other: &KeyIndex) -> usize {
        self.parts
            .iter()
            .zip(&other.parts)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Arc<AppEntry> {
        Arc::new(AppEntry {
            seq: 1,
            id: "app_1".into(),
            tenant_seq: 1,
            tenant_id: "ten_1".into(),
            series: 0,
        })
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = ApiKey::generate();
        assert_eq!(k.key.len(), KEY_LEN);
        assert!(looks_like_key(k.key.as_bytes()));
        assert_eq!(k.hash, hash_key(k.key.as_bytes()));
        assert_ne!(k.key, ApiKey::generate().key);
        assert!(!format!("{k:?}").contains(&k.key[VISIBLE..]));
        assert!(!looks_like_key(b"rw_short"));
        assert!(!looks_like_key(&[b'x'; KEY_LEN]));
    }

    #[test]
    fn a_change_copies_one_part() {
        let keys: Vec<ApiKey> = (0..2000).map(|_| ApiKey::generate()).collect();
        let a = KeyIndex::from_entries(keys.iter().map(|k| {
            (
                k.hash,
                KeyEntry {
                    app: app(),
                    expires_at_ms: None,
                },
            )
        }));
        assert_eq!(a.len(), 2000);
        let mut b = a.clone();
        assert!(b.remove(&keys[0].hash));
        assert!(!b.remove(&keys[0].hash));
        assert_eq!(b.len(), 1999);
        assert_eq!(b.shared_parts(&a), SHARDS - 1);
        assert!(a.get(&keys[0].hash).is_some(), "the old index is unchanged");
        assert!(b.get(&keys[0].hash).is_none());
        assert!(b.get(&keys[1].hash).is_some());
    }
}
