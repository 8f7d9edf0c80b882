//! HTTP basic credentials: a username belongs to one app and has an argon2id password hash.
//!
//! An argon2id verification takes ~20 ms of CPU and 19 MiB, far too long for a shard's event
//! loop, so it never runs there: a verified `Authorization` value is cached per shard
//! ([`BasicCache`], like JWTs) and a miss is handed to the node's verifier thread
//! ([`verify_off_shard`]), which the request awaits without blocking the shard. Misses are
//! bounded per shard ([`MISS_BUDGET`] per second, [`MISS_IN_FLIGHT`] at once): beyond that a
//! request with an uncached credential gets 429, so guessing passwords can cost the node at most
//! a known share of one core, and clients whose credential is cached are not affected. An unknown
//! username costs the same check (against a dummy hash) as a wrong password. A verifier that is
//! full, gone or later than 2 s answers "unavailable": 429 with `Retry-After`, never a 401 for a
//! right password.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};

use super::AppEntry;

/// Misses one shard hands to the verifier per second, and at once; and of those, per client
/// address per second (so one client guessing cannot spend the whole budget).
pub const MISS_BUDGET: u32 = 16;
pub const MISS_IN_FLIGHT: u32 = 4;
pub const MISS_PER_CLIENT: u32 = 8;
/// Client addresses tracked for [`MISS_PER_CLIENT`] (the table is cleared every second anyway).
const CLIENTS: usize = 4096;
/// Verified credentials cached per shard.
pub const CACHE_ENTRIES: usize = 4096;
/// Longest `Authorization` value considered (a username and password of a few hundred bytes).
pub const MAX_VALUE: usize = 1024;

pub struct BasicCred {
    pub username: Box<str>,
    pub app: Arc<AppEntry>,
    /// argon2id PHC string.
    pub phc: Box<str>,
}

impl std::fmt::Debug for BasicCred {
    /// Never prints the hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCred")
            .field("username", &self.username)
            .field("app", &self.app.id)
            .finish()
    }
}

/// Username → credential.
pub type BasicIndex = HashMap<Box<str>, Arc<BasicCred>>;

/// Splits a `Basic` value (after the scheme) into username and password, decoded into `out`.
pub fn decode<'a>(value: &[u8], out: &'a mut [u8; MAX_VALUE]) -> Option<(&'a str, &'a str)> {
    use base64::Engine;
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(value, out)
        .ok()?;
    let text = std::str::from_utf8(&out[..n]).ok()?;
    text.split_once(':')
}

struct Cached {
    /// SHA-256 of the `Authorization` value: the password never stays in memory in the clear.
    digest: [u8; 32],
    cred: Arc<BasicCred>,
}

/// A shard's verified credentials and its miss budget. Shard-local.
#[derive(Default)]
pub struct BasicCache {
    map: HashMap<u64, Cached, foldhash::fast::FixedState>,
    /// Second of the budget, misses in it, misses in flight.
    second: Cell<u64>,
    spent: Cell<u32>,
    in_flight: Cell<u32>,
    /// Misses per client address in the current second.
    clients: std::cell::RefCell<HashMap<std::net::IpAddr, u32, foldhash::fast::FixedState>>,
}

impl BasicCache {
    /// The credential an `Authorization` value was verified for, if it is still the catalog's.
    pub fn get(&self, index: &BasicIndex, value: &[u8]) -> Option<&BasicCred> {
        let digest = super::hash_key(value);
        let c = self.map.get(&hash(&digest))?;
        if c.digest != digest {
            return None;
        }
        let current = index.get(&*c.cred.username)?;
        Arc::ptr_eq(current, &c.cred).then_some(&*c.cred)
    }

    pub fn insert(&mut self, value: &[u8], cred: Arc<BasicCred>) {
        if self.map.len() >= CACHE_ENTRIES {
            if let Some(k) = self.map.keys().next().copied() {
                self.map.remove(&k);
            }
        }
        let digest = super::hash_key(value);
        self.map.insert(hash(&digest), Cached { digest, cred });
    }

    /// Takes one miss of `client` from the budget (`now_s`: a coarse clock in seconds); false
    /// when the shard's or the client's is spent.
    pub fn take_miss(&self, now_s: u64, client: std::net::IpAddr) -> bool {
        let mut clients = self.clients.borrow_mut();
        if self.second.get() != now_s {
            self.second.set(now_s);
            self.spent.set(0);
            clients.clear();
        }
        if self.spent.get() >= MISS_BUDGET || self.in_flight.get() >= MISS_IN_FLIGHT {
            return false;
        }
        let mine = clients.get(&client).copied().unwrap_or(0);
        if mine >= MISS_PER_CLIENT || (mine == 0 && clients.len() >= CLIENTS) {
            return false;
        }
        clients.insert(client, mine + 1);
        self.spent.set(self.spent.get() + 1);
        self.in_flight.set(self.in_flight.get() + 1);
        true
    }

    pub fn miss_done(&self) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
    }
}

fn hash(v: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(v)
}

/// 0: waiting, 1: matches, 2: does not.
type Slot = Arc<AtomicU8>;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    NoMatch,
    /// The verifier is full, gone or late: the caller is told to retry, not that it is wrong.
    Unavailable,
}

/// Jobs queued at most (a shard holds at most [`MISS_IN_FLIGHT`] of them).
const QUEUE: usize = 256;
/// Longest wait for a verdict.
const DEADLINE: Duration = Duration::from_secs(2);

struct Job {
    phc: Box<str>,
    password: Box<str>,
    slot: Slot,
}

fn verifier() -> Option<&'static SyncSender<Job>> {
    static TX: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("ringway-verify".into())
            .spawn(move || {
                for job in rx {
                    // A panic in the hasher must not end the thread (and every check after it).
                    let ok = std::panic::catch_unwind(|| {
                        PasswordHash::new(&job.phc).is_ok_and(|h| {
                            argon2::Argon2::default()
                                .verify_password(job.password.as_bytes(), &h)
                                .is_ok()
                        })
                    })
                    .unwrap_or(false);
                    job.slot.store(if ok { 1 } else { 2 }, Ordering::Release);
                }
            })
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

/// A hash of a random password nobody knows, for checking unknown usernames at the same cost.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let random: [u8; 16] = rand::random();
        match SaltString::encode_b64(&rand::random::<[u8; 16]>()) {
            Ok(salt) => argon2::Argon2::default()
                .hash_password(&random, &salt)
                .map(|h| h.to_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    })
}

/// Verifies `password` against `phc` on the verifier thread; the shard polls for the verdict
/// every millisecond meanwhile (the verification itself takes ~20 ms), serving other requests.
pub async fn verify_off_shard(phc: &str, password: &str) -> Verdict {
    let slot: Slot = Arc::new(AtomicU8::new(0));
    let job = Job {
        phc: phc.into(),
        password: password.into(),
        slot: slot.clone(),
    };
    let Some(tx) = verifier() else {
        return Verdict::Unavailable;
    };
    if tx.try_send(job).is_err() {
        return Verdict::Unavailable;
    }
    let start = std::time::Instant::now();
    loop {
        match slot.load(Ordering::Acquire) {
            0 if start.elapsed() < DEADLINE => monoio::time::sleep(Duration::from_millis(1)).await,
            0 => return Verdict::Unavailable,
            1 => return Verdict::Match,
            _ => return Verdict::NoMatch,
        }
    }
}
