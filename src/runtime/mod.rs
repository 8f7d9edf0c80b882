//! The runtime's bottom layer: the mechanisms a shard runs on, which every other layer may use and
//! which use no layer above them (only `config` values and `http` buffers).
//!
//! - [`alloc`]: the process allocator;
//! - [`driver`]: building a shard's event loop (io_uring or epoll);
//! - [`pools`]: shard-local free lists of connection buffers and heads;
//! - [`watchdog`]: shard-local deadlines, and the clock ([`watchdog::now_ms`]);
//! - [`available_cpus`]: the CPUs shards may be pinned to.
//!
//! The top layer that assembles shards out of these (the gateway, its shard threads, listeners and
//! snapshot publication) is [`crate::gateway`].

pub mod alloc;
pub mod driver;
pub mod pools;
pub mod watchdog;

pub use driver::DriverKind;

/// The CPUs this process may run on (its affinity mask).
pub fn available_cpus() -> Result<Vec<usize>, String> {
    let ids = core_affinity::get_core_ids().ok_or("cannot read the CPU affinity mask")?;
    if ids.is_empty() {
        return Err("the CPU affinity mask is empty".into());
    }
    Ok(ids.into_iter().map(|c| c.id).collect())
}
