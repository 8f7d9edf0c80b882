//! The top layer: the gateway process. Shards (one pinned thread and event loop each), the listeners
//! they share by SO_REUSEPORT, the control state they read on every tick (config generation, drain),
//! snapshot publication, and the health-check thread. It uses every other layer and none uses it.
//!
//! Named for what it assembles and what the crate exports from it, [`Gateway`]: the bottom layer it
//! runs on keeps the name [`crate::runtime`] (clock, watchdog, pools, driver, allocator).
//!
//! Nothing here is on the request path: shards talk to [`Control`] once per tick with relaxed atomic
//! loads, and a reload builds the new snapshot on the calling (control) thread. Reloads from several
//! control threads are serialised by a publish lock that shards never take.
//!
//! The request path is handed to the shards, not called by them: [`Gateway::start`] passes
//! [`crate::proxy::conn::serve`] as the [`ConnHandler`] every accept loop runs, once per accepted
//! connection, with the shard's [`ShardCtx`](crate::state::ShardCtx) (what a connection may touch
//! of its shard). The handler is a type parameter, so the call is static: no dynamic dispatch,
//! no allocation beyond the task itself.

mod listen;
mod metrics_text;
mod shard;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

pub use shard::ConnHandler;

use crate::config::{Config, ConfigError};
use crate::observe::calllog::CallLog;
use crate::observe::metrics::{self, SeriesNames, ShardMetrics};
use crate::observe::{RequestTotals, ShardRequests};
use crate::runtime::{DriverKind, available_cpus, watchdog};
use crate::state::Snapshot;
use crate::upstream::health::{CheckerHandle, HealthChecked};

/// State shared by all shards and the control thread.
pub struct Control {
    snapshot: ArcSwap<Snapshot>,
    generation: AtomicU64,
    /// Held by whoever publishes a snapshot (reload, the admin API).
    publisher: Publisher,
    draining: AtomicBool,
    /// `watchdog::now_ms` time after which draining shards close every connection.
    drain_deadline: AtomicU64,
    /// Per shard: the config generation it serves.
    applied: Vec<CachePadded<AtomicU64>>,
    /// Per shard: open client connections (published each tick).
    connections: Vec<CachePadded<AtomicUsize>>,
    /// Per shard: finished requests (each row written by its shard only, through its
    /// [`ShardCtx`](crate::state::ShardCtx)).
    requests: Arc<[CachePadded<ShardRequests>]>,
    /// Random per process; prefix of generated request ids.
    pub instance: u32,
    /// The shards have call-record rings (made at start when the config wanted records).
    recording: bool,
    /// The call-log writer rolls records up for analytics (set up at start when configured).
    analytics_tap: bool,
    /// Per shard: what it counts for the metrics endpoint.
    pub metrics: Vec<Arc<ShardMetrics>>,
    /// The call log's counters, once it runs.
    pub call_log: OnceLock<Arc<crate::observe::calllog::Stats>>,
    /// Finished analytics periods from the call-log writer, until the control plane takes them.
    rollups: Rollups,
    pub published: PublishStats,
    /// The plain listeners' addresses (ports resolved): where the console's try-it sends.
    pub listening: Vec<SocketAddr>,
}

/// The receiving end of the analytics periods, held until the control plane takes it. Locked
/// twice in the gateway's life (put at start, taken by the control plane), never by a shard.
#[derive(Default)]
#[allow(clippy::disallowed_types)]
struct Rollups(std::sync::Mutex<Option<RollupReceiver>>);

#[allow(clippy::disallowed_types)]
impl Rollups {
    fn put(&self, rx: Option<RollupReceiver>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = rx;
    }

    fn take(&self) -> Option<RollupReceiver> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Snapshot publications: how many, and how long the last took to build (config and catalog
/// composed, snapshot built) in microseconds.
#[derive(Default)]
pub struct PublishStats {
    pub count: AtomicU64,
    pub last_us: AtomicU64,
    pub total_us: AtomicU64,
}

impl Control {
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn drain_deadline(&self) -> u64 {
        self.drain_deadline.load(Ordering::Relaxed)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.applied.len()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    fn set_applied(&self, shard: usize, generation: u64) {
        self.applied[shard].store(generation, Ordering::Release);
    }

    /// Waits until every shard serves `generation` or later.
    fn wait_applied(&self, generation: u64, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self
                .applied
                .iter()
                .all(|a| a.load(Ordering::Acquire) >= generation)
            {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn set_connections(&self, shard: usize, n: usize) {
        self.connections[shard].store(n, Ordering::Relaxed);
    }
}

/// The health checker's view of the control state: the health-checked upstreams of the snapshot
/// being served, its generation, and the drain flag (the checker thread is unparked when it is set).
impl CheckerHandle for Control {
    fn generation(&self) -> u64 {
        Control::generation(self)
    }

    fn upstreams(&self) -> (u64, Vec<HealthChecked>) {
        let snap = self.snapshot();
        let checked = snap
            .config
            .upstreams
            .iter()
            .zip(snap.health.iter())
            .filter_map(|(u, h)| HealthChecked::new(u, h.as_ref()?))
            .collect();
        (snap.generation, checked)
    }

    fn stopping(&self) -> bool {
        self.draining()
    }
}

/// Makes snapshot publication single-writer: a writer builds from the snapshot it replaces and
/// publishes it under the next generation, so generations only grow, no two snapshots share one, and
/// the last writer's snapshot is the one shards end on (a shard compares generations and would never
/// pick up a second snapshot under a generation it has already applied).
///
/// A blocking lock is right here, unlike on the data path the `disallowed-types` lint guards: it is
/// held only on the control path, across one snapshot build, and shards never touch it (they read
/// `generation` and the `ArcSwap`).
#[allow(clippy::disallowed_types)]
struct Publisher(std::sync::Mutex<SeriesNames>);

#[allow(clippy::disallowed_types)]
impl Publisher {
    fn new(names: SeriesNames) -> Publisher {
        Publisher(std::sync::Mutex::new(names))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeriesNames> {
        // The lock guards the metric series names, which only grow: a writer that panicked while
        // building left them valid, so poisoning carries no meaning here.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("shard {shard}: {reason}")]
    Shard { shard: usize, reason: String },
    #[error("no CPU to run on: {0}")]
    Cpus(String),
}

/// Start-up overrides (CLI flags win over the file).
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub workers: Option<usize>,
    pub cpus: Option<Vec<usize>>,
}

/// A running gateway.
pub struct Gateway {
    control: Arc<Control>,
    threads: Vec<JoinHandle<()>>,
    /// The health-check thread, started once some upstream has health checks.
    checker: Arc<OnceLock<JoinHandle<()>>>,
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    drivers: Vec<DriverKind>,
    /// The call-log writer, when the shards record calls.
    call_log: Option<CallLog>,
}

impl Gateway {
    /// Binds the listeners, starts one shard per worker and returns once every shard runs. Every
    /// accepted connection is served by the proxy ([`crate::proxy::conn::serve`]).
    pub fn start(config: Config, opts: StartOptions) -> Result<Gateway, StartError> {
        Gateway::start_with(config, opts, crate::proxy::conn::serve)
    }

    /// [`Gateway::start`] with another connection handler: every shard runs `handler` for each
    /// connection it accepts.
    pub fn start_with<H: ConnHandler>(
        config: Config,
        opts: StartOptions,
        handler: H,
    ) -> Result<Gateway, StartError> {
        let cpus = match opts.cpus.or_else(|| config.server.cpus.clone()) {
            Some(c) => c,
            None => available_cpus().map_err(StartError::Cpus)?,
        };
        let workers = opts
            .workers
            .or(config.server.workers)
            .unwrap_or(cpus.len())
            .max(1);
        let tls_listen = config.tls.as_ref().map_or(&[][..], |t| &t.listen[..]);
        let bound = listen::bind_all(&config.server, tls_listen, workers)?;
        let (addrs, tls_addrs, mut listeners) = (bound.plain, bound.tls, bound.per_shard);
        crate::observe::clock::init();
        let mut names = SeriesNames::new(config.metrics.max_series);
        let mut snap =
            Snapshot::build(Arc::new(config), crate::catalog::Catalog::empty(), 1, None)?;
        snap.series = Arc::new(metrics::assign(&mut names, &snap.config, &snap.catalog));
        let max_series = snap.config.metrics.max_series;
        let snap = Arc::new(snap);
        let control = Arc::new(Control {
            snapshot: ArcSwap::new(snap.clone()),
            generation: AtomicU64::new(1),
            publisher: Publisher::new(names),
            metrics: (0..workers)
                .map(|_| Arc::new(ShardMetrics::new(max_series)))
                .collect(),
            call_log: OnceLock::new(),
            rollups: Rollups::default(),
            published: PublishStats::default(),
            draining: AtomicBool::new(false),
            drain_deadline: AtomicU64::new(u64::MAX),
            applied: (0..workers)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            connections: (0..workers)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
            requests: (0..workers)
                .map(|_| CachePadded::new(ShardRequests::default()))
                .collect(),
            instance: instance_id(),
            listening: addrs.clone(),
            recording: wants_records(&snap.config),
            analytics_tap: snap.config.analytics.is_some(),
        });
        let (mut recorders, call_log, rollups) = start_call_log(&control, workers)?;
        control.rollups.put(rollups);
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(workers);
        for id in (0..workers).rev() {
            let shard_listeners = listeners.pop().unwrap_or_default();
            let cpu = cpus[id % cpus.len()];
            let control = control.clone();
            let ready = ready_tx.clone();
            let recorder = recorders.pop().flatten();
            let t = std::thread::Builder::new()
                .name(format!("ringway-shard-{id}"))
                .spawn(move || {
                    shard::run(id, cpu, control, shard_listeners, recorder, ready, handler)
                })
                .map_err(|e| StartError::Shard {
                    shard: id,
                    reason: format!("cannot spawn thread: {e}"),
                })?;
            threads.push(t);
        }
        drop(ready_tx);
        let mut drivers = vec![DriverKind::Epoll; workers];
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok((id, Ok(kind))) => drivers[id] = kind,
                Ok((id, Err(reason))) => {
                    control.draining.store(true, Ordering::Relaxed);
                    control.drain_deadline.store(0, Ordering::Relaxed);
                    return Err(StartError::Shard { shard: id, reason });
                }
                Err(_) => {
                    return Err(StartError::Shard {
                        shard: 0,
                        reason: "shard exited during start".into(),
                    });
                }
            }
        }
        let g = Gateway {
            control,
            threads,
            addrs,
            tls_addrs,
            drivers,
            checker: Arc::new(OnceLock::new()),
            call_log,
        };
        g.publisher().ensure_checker();
        Ok(g)
    }

    /// The addresses listened on (ports resolved when the config said port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The TLS addresses listened on (`[tls] listen`, ports resolved).
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The driver each shard runs.
    pub fn drivers(&self) -> &[DriverKind] {
        &self.drivers
    }

    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Validates `config` into a new snapshot and hands it to every shard (at their next tick). On
    /// error nothing changes. Listener and runtime settings (`[server]`) need a restart. The
    /// catalog of managed services is kept as it is.
    ///
    /// Safe to call from several threads: reloads are serialised, each builds from (and carries the
    /// node-global state of) the snapshot it replaces, and each returns its own generation.
    pub fn reload(&self, config: Config) -> Result<u64, ConfigError> {
        let config = Arc::new(config);
        self.publisher()
            .publish(|prev| Ok((config, prev.catalog.clone())))
    }

    /// A handle that publishes snapshots (config reloads, the control plane).
    pub fn publisher(&self) -> SnapshotPublisher {
        SnapshotPublisher {
            control: self.control.clone(),
            checker: self.checker.clone(),
        }
    }

    /// Waits until every shard serves `generation` or later.
    pub fn wait_applied(&self, generation: u64, timeout: Duration) -> bool {
        self.control.wait_applied(generation, timeout)
    }

    /// Open client connections over all shards (as of each shard's last tick).
    pub fn connections(&self) -> usize {
        self.control
            .connections
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Finished requests over all shards, by how they ended (see [`crate::proxy::finish`]).
    pub fn requests(&self) -> RequestTotals {
        crate::observe::totals(&self.control.requests)
    }

    /// Starts a graceful shutdown: shards stop accepting, close idle connections, let requests in
    /// flight finish, and close everything after `drain`.
    pub fn begin_shutdown(&self, drain: Duration) {
        let deadline = watchdog::now_ms() + drain.as_millis() as u64;
        self.control
            .drain_deadline
            .store(deadline, Ordering::Relaxed);
        self.control.draining.store(true, Ordering::Relaxed);
        if let Some(t) = self.checker.get() {
            t.thread().unpark();
        }
    }

    /// Waits for every shard to finish, then for the call log to write what they recorded.
    pub fn join(mut self) {
        for t in std::mem::take(&mut self.threads)
            .into_iter()
            .chain(take_checker(&mut self.checker))
        {
            let _ = t.join();
        }
        if let Some(c) = self.call_log.take() {
            c.stop();
        }
    }

    /// The call log's counters, when it runs.
    pub fn call_log(&self) -> Option<Arc<crate::observe::calllog::Stats>> {
        self.call_log.as_ref().map(|c| c.stats.clone())
    }

    /// `begin_shutdown` + `join`.
    pub fn shutdown(self, drain: Duration) {
        self.begin_shutdown(drain);
        self.join();
    }
}

impl Drop for Gateway {
    /// A gateway dropped without `shutdown` stops at once (connections closed without draining).
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.begin_shutdown(Duration::ZERO);
        for t in std::mem::take(&mut self.threads)
            .into_iter()
            .chain(take_checker(&mut self.checker))
        {
            let _ = t.join();
        }
        if let Some(c) = self.call_log.take() {
            c.stop();
        }
    }
}

/// Whether `config` wants call records (a call log, or analytics built from them).
fn wants_records(config: &Config) -> bool {
    config.call_log.is_some() || config.analytics.is_some()
}

type Recorders = Vec<Option<crate::observe::recorder::Recorder>>;
pub type RollupReceiver = tokio::sync::mpsc::Receiver<crate::observe::rollup::Period>;

/// Makes the shards' record rings and starts the call-log writer over them, when the config wants
/// records; with analytics, the writer's rollups come out of the returned receiver.
fn start_call_log(
    control: &Arc<Control>,
    workers: usize,
) -> Result<(Recorders, Option<CallLog>, Option<RollupReceiver>), StartError> {
    let config = control.snapshot().config.clone();
    if !control.recording {
        return Ok(((0..workers).map(|_| None).collect(), None, None));
    }
    let bytes = config
        .call_log
        .as_ref()
        .map_or(crate::observe::rollup::RING_WITHOUT_LOG, |c| c.buffer);
    let (recorders, rings): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| crate::observe::recorder::ring(bytes))
        .map(|(r, c)| (Some(r), c))
        .unzip();
    let (tap, rx) = match config.analytics {
        Some(_) => {
            let (t, rx) = crate::observe::rollup::Rollups::new();
            (
                Some(Box::new(t) as Box<dyn crate::observe::calllog::Tap>),
                Some(rx),
            )
        }
        None => (None, None),
    };
    let c = control.clone();
    let log = CallLog::start(
        rings,
        control.requests.clone(),
        Box::new(move || c.snapshot().config.clone()),
        tap,
    )
    .map_err(|e| StartError::Shard {
        shard: 0,
        reason: format!("cannot start the call log writer: {e}"),
    })?;
    let _ = control.call_log.set(log.stats.clone());
    Ok((recorders, Some(log), rx))
}

/// The checker thread, once no publisher handle holds it any more (a handle outliving the
/// gateway leaves its thread unjoined; it stops on its own once draining is set).
fn take_checker(c: &mut Arc<OnceLock<JoinHandle<()>>>) -> Option<JoinHandle<()>> {
    Arc::get_mut(c).and_then(OnceLock::take)
}

/// Publishes snapshots: the one way a new snapshot reaches the shards (config reloads and the
/// control plane both go through it). Cheap to clone; see [`Publisher`] for why writers are
/// serialised.
#[derive(Clone)]
pub struct SnapshotPublisher {
    control: Arc<Control>,
    checker: Arc<OnceLock<JoinHandle<()>>>,
}

impl SnapshotPublisher {
    /// The gateway's plain listeners (ports resolved).
    pub fn listening(&self) -> &[SocketAddr] {
        &self.control.listening
    }

    /// Builds the next snapshot from the one it replaces and publishes it under the next
    /// generation. `next` gets the current snapshot and returns the config and catalog to serve;
    /// it runs under the publish lock, so nothing is published between its read and the store.
    /// Returns the new generation; on error nothing changes.
    pub fn publish<E: From<ConfigError>>(
        &self,
        next: impl FnOnce(&Snapshot) -> Result<(Arc<Config>, crate::catalog::Catalog), E>,
    ) -> Result<u64, E> {
        let started = Instant::now();
        let mut names = self.control.publisher.lock();
        let prev = self.control.snapshot();
        let (config, catalog) = next(&prev)?;
        if config.analytics.is_some() && !self.control.analytics_tap {
            return Err(ConfigError::invalid(
                "analytics",
                "turning analytics on needs a restart (the call-log writer's rollups are set up at start)",
            )
            .into());
        }
        if wants_records(&config) && !self.control.recording {
            return Err(ConfigError::invalid(
                if config.call_log.is_some() { "call_log" } else { "analytics" },
                "turning call records on needs a restart (the shards' record buffers are made at start)",
            )
            .into());
        }
        let generation = prev.generation + 1;
        let mut snap = Snapshot::build(config, catalog, generation, Some(&prev))?;
        snap.series = if Arc::ptr_eq(&snap.config, &prev.config)
            && Arc::ptr_eq(&snap.catalog.services, &prev.catalog.services)
        {
            prev.series.clone()
        } else {
            Arc::new(metrics::assign(&mut names, &snap.config, &snap.catalog))
        };
        // Snapshot first, then the generation shards compare: a shard that sees the new generation
        // loads this snapshot or a later one.
        self.control.snapshot.store(Arc::new(snap));
        self.control.generation.store(generation, Ordering::Release);
        // Still under the lock: two first reloads with health checks would otherwise both find no
        // checker and start one each.
        self.ensure_checker();
        drop(names);
        let us = started.elapsed().as_micros() as u64;
        let p = &self.control.published;
        p.count.fetch_add(1, Ordering::Relaxed);
        p.last_us.store(us, Ordering::Relaxed);
        p.total_us.fetch_add(us, Ordering::Relaxed);
        Ok(generation)
    }

    /// The analytics periods the call-log writer closes (once: the control plane stores them).
    pub fn take_rollups(&self) -> Option<RollupReceiver> {
        self.control.rollups.take()
    }

    /// The node's metrics in the Prometheus text format (see `gateway::metrics_text`).
    pub fn render_metrics(&self) -> String {
        metrics_text::render(&self.control)
    }

    /// The snapshot being served.
    pub fn current(&self) -> Arc<Snapshot> {
        self.control.snapshot()
    }

    /// Waits until every shard serves `generation` or later.
    pub fn wait_applied(&self, generation: u64, timeout: Duration) -> bool {
        self.control.wait_applied(generation, timeout)
    }

    /// Starts the health checker the first time a config has health checks.
    fn ensure_checker(&self) {
        let wanted = self
            .control
            .snapshot()
            .config
            .upstreams
            .iter()
            .any(|u| u.health_check.is_some());
        if !wanted || self.checker.get().is_some() {
            return;
        }
        let control = self.control.clone();
        match std::thread::Builder::new()
            .name("ringway-health".into())
            .spawn(move || crate::upstream::health::run_checker(&*control))
        {
            Ok(t) => {
                let _ = self.checker.set(t);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the health checker; targets stay in rotation")
            }
        }
    }
}

fn instance_id() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(8)
}
