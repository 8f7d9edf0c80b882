//! Helpers for the library's unit tests.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// Meets the other `parties - 1` threads at the start of `round` (0, 1, ...): returns once every
/// party has arrived, so all of them race from the same instant. Spins, yielding now and then so
/// it also works with fewer cores than parties.
pub fn start_together(arrived: &AtomicU64, parties: u64, round: u64) {
    arrived.fetch_add(1, SeqCst);
    let mut spins = 0u32;
    while arrived.load(SeqCst) < parties * (round + 1) {
        spins += 1;
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        }
        std::hint::spin_loop();
    }
}
