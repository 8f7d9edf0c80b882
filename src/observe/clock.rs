//! The request path's clock for timings: the CPU's time-stamp counter where it is usable
//! (invariant TSC, calibrated against CLOCK_MONOTONIC once per process by `quanta`), else
//! CLOCK_MONOTONIC. A reading is a `rdtsc` (~9 ns here) instead of a vDSO `clock_gettime`
//! (~25-70 ns on this VM): a request reads it four times.
//!
//! Readings are raw ticks; [`micros`] turns the distance between two into microseconds. Only
//! differences between readings of the same process mean anything.

use std::sync::OnceLock;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock (up to ~200 ms the first time): call before the shards serve, so no
/// request pays for it.
pub fn init() {
    let _ = clock();
}

/// Now, in raw ticks (never 0, which marks "did not happen").
#[inline]
pub fn now() -> u64 {
    clock().raw().max(1)
}

/// Microseconds from `start` to `end` (0 when either did not happen or `end` is earlier).
pub fn micros(start: u64, end: u64) -> u64 {
    if start == 0 || end <= start {
        return 0;
    }
    clock().delta_as_nanos(start, end) / 1000
}

/// Wall-clock time in unix milliseconds from `CLOCK_REALTIME_COARSE` (a few ms of resolution, a
/// plain memory read in the vDSO): for comparing against expiry times, never for durations.
#[inline]
pub fn unix_ms_coarse() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: `ts` is a valid, writable timespec; the call writes only it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_measure_microseconds() {
        init();
        let a = now();
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(20) {}
        let b = now();
        let us = micros(a, b);
        assert!((19_000..200_000).contains(&us), "{us} µs for a 20 ms wait");
        assert_eq!(micros(b, a), 0);
        assert_eq!(micros(0, b), 0);
    }

    #[test]
    fn coarse_wall_clock_is_unix_time() {
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let coarse = unix_ms_coarse();
        assert!(coarse.abs_diff(sys) < 100, "{coarse} vs {sys}");
    }
}
