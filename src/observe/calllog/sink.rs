//! The call log's sinks, each on a thread of its own behind a queue bounded in records: a sink
//! that stalls (a full disk, a stdout nobody reads, a collector that does not answer) loses the
//! batches that do not fit, counted, and holds up nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Stats;
use super::file::FileSink;
use super::otlp::{self, Entry};
use crate::config::observe::{CallLogConfig, FileSinkConfig, OtlpConfig};

/// Sinks, as indexes of [`Stats`]' arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    File = 0,
    Stdout = 1,
    Otlp = 2,
}

impl SinkKind {
    pub const ALL: [SinkKind; 3] = [SinkKind::File, SinkKind::Stdout, SinkKind::Otlp];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::File => "file",
            SinkKind::Stdout => "stdout",
            SinkKind::Otlp => "otlp",
        }
    }
}

/// One drain's worth of records: formatted once as JSON lines (shared by the file and stdout
/// sinks) and, when an OTLP sink is on, as OTLP log records.
pub struct Batch {
    pub lines: Arc<Vec<u8>>,
    pub records: u64,
    pub otlp: Vec<Entry>,
}

enum Msg {
    Lines(Arc<Vec<u8>>, u64),
    Otlp(Vec<Entry>),
}

/// Longest a closing sink may take to finish its queue before it is left to finish on its own
/// (a stdout nobody reads never would).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

struct Worker {
    tx: Sender<Msg>,
    queued: Arc<AtomicU64>,
    /// Records lost because the queue was full, not yet reported in the sink's own output.
    lost: Arc<AtomicU64>,
    done: Receiver<()>,
    thread: JoinHandle<()>,
}

impl Worker {
    fn start(
        kind: SinkKind,
        stats: &Arc<Stats>,
        run: impl FnOnce(Receiver<Msg>, &Shared) + Send + 'static,
    ) -> Option<Worker> {
        let (tx, rx) = channel();
        let (done_tx, done) = channel();
        let queued = Arc::new(AtomicU64::new(0));
        let lost = Arc::new(AtomicU64::new(0));
        let shared = Shared {
            kind,
            stats: stats.clone(),
            queued: queued.clone(),
            lost: lost.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("ringway-log-{}", kind.as_str()))
            .spawn(move || {
                run(rx, &shared);
                let _ = done_tx.send(());
            });
        match thread {
            Ok(thread) => Some(Worker {
                tx,
                queued,
                lost,
                done,
                thread,
            }),
            Err(e) => {
                tracing::error!(sink = kind.as_str(), error = %e, "call log: cannot start a sink thread");
                None
            }
        }
    }

    fn close(self) {
        drop(self.tx);
        if self.done.recv_timeout(CLOSE_WAIT).is_ok() {
            let _ = self.thread.join();
        }
    }

    /// Queues `msg` (`n` records) unless that would take the queue past `limit` records; then
    /// the records count as dropped (and as lost, for the sink's own `dropped` line).
    fn offer(&self, kind: SinkKind, n: u64, msg: Msg, limit: u64, stats: &Stats) {
        if n > 0 && self.queued.load(Ordering::Relaxed) + n > limit {
            stats.dropped[kind as usize].fetch_add(n, Ordering::Relaxed);
            self.lost.fetch_add(n, Ordering::Relaxed);
            return;
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        let _ = self.tx.send(msg);
    }

    /// Lets the sink finish its queue on its own (a reload replaced it): the writer does not
    /// wait, so the shards' rings keep draining meanwhile.
    fn retire(self) {
        drop(self.tx);
    }
}

/// What a sink thread shares with the writer.
struct Shared {
    kind: SinkKind,
    stats: Arc<Stats>,
    queued: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
}

impl Shared {
    fn done(&self, records: u64, ok: bool) {
        self.queued.fetch_sub(records, Ordering::Relaxed);
        let i = self.kind as usize;
        if ok {
            self.stats.written[i].fetch_add(records, Ordering::Relaxed);
        } else {
            self.stats.dropped[i].fetch_add(records, Ordering::Relaxed);
            self.stats.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Logs a sink's failure, at most every 10 s.
    fn warn(&self, last: &mut Option<Instant>, e: &dyn std::fmt::Display) {
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(sink = self.kind.as_str(), error = %e, "call log: sink failed; its records are dropped (counted)");
        }
    }
}

/// The sinks the current config asks for.
#[derive(Default)]
pub struct Sinks {
    file: Option<(FileSinkConfig, Worker)>,
    stdout: Option<Worker>,
    otlp: Option<(OtlpConfig, Worker)>,
    limit: u64,
}

impl Sinks {
    /// Starts, stops or restarts sinks so they match `cfg`.
    pub fn configure(&mut self, cfg: Option<&CallLogConfig>, stats: &Arc<Stats>) {
        self.limit = cfg.map_or(0, |c| c.sink_queue as u64);
        let want_file = cfg.and_then(|c| c.file.clone());
        if self.file.as_ref().map(|f| &f.0) != want_file.as_ref() {
            if let Some((_, w)) = self.file.take() {
                w.retire();
            }
            self.file = want_file.and_then(|f| {
                let c = f.clone();
                Worker::start(SinkKind::File, stats, move |rx, s| run_file(rx, s, c))
                    .map(|w| (f, w))
            });
        }
        let want_stdout = cfg.is_some_and(|c| c.stdout);
        if want_stdout != self.stdout.is_some() {
            if let Some(w) = self.stdout.take() {
                w.retire();
            }
            if want_stdout {
                self.stdout = Worker::start(SinkKind::Stdout, stats, run_stdout);
            }
        }
        let want_otlp = cfg.and_then(|c| c.otlp.clone());
        if self.otlp.as_ref().map(|o| &o.0) != want_otlp.as_ref() {
            if let Some((_, w)) = self.otlp.take() {
                w.retire();
            }
            self.otlp = want_otlp.and_then(|o| {
                let c = o.clone();
                Worker::start(SinkKind::Otlp, stats, move |rx, s| run_otlp(rx, s, c))
                    .map(|w| (o, w))
            });
        }
    }

    pub fn wants_lines(&self) -> bool {
        self.file.is_some() || self.stdout.is_some()
    }

    pub fn wants_otlp(&self) -> bool {
        self.otlp.is_some()
    }

    /// Queues `b` for every sink that has room for it; the others count it as dropped.
    pub fn send(&mut self, b: Batch, stats: &Stats) {
        let limit = self.limit;
        if let Some((_, w)) = &self.file {
            let msg = Msg::Lines(b.lines.clone(), b.records);
            w.offer(SinkKind::File, b.records, msg, limit, stats);
        }
        if let Some(w) = &self.stdout {
            let msg = Msg::Lines(b.lines.clone(), b.records);
            w.offer(SinkKind::Stdout, b.records, msg, limit, stats);
        }
        if let Some((_, w)) = &self.otlp {
            if !b.otlp.is_empty() {
                let n = b.otlp.len() as u64;
                w.offer(SinkKind::Otlp, n, Msg::Otlp(b.otlp), limit, stats);
            }
        }
    }

    /// Stops every sink after it wrote what it was given (bounded by [`CLOSE_WAIT`] each).
    pub fn close(&mut self) {
        if let Some((_, w)) = self.file.take() {
            w.close();
        }
        if let Some(w) = self.stdout.take() {
            w.close();
        }
        if let Some((_, w)) = self.otlp.take() {
            w.close();
        }
    }
}

fn run_file(rx: Receiver<Msg>, s: &Shared, cfg: FileSinkConfig) {
    let mut f = FileSink::new(cfg);
    let mut last_warn = None;
    let mut rotations = 0;
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Msg::Lines(lines, n)) => {
                let r = f.write(&lines);
                if let Err(e) = &r {
                    s.warn(&mut last_warn, e);
                }
                count_rotations(&f, &mut rotations, s);
                s.done(n, r.is_ok());
            }
            Ok(Msg::Otlp(_)) => {}
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = f.tick() {
                    s.warn(&mut last_warn, &e);
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Some(line) = lost_line(s, "file sink behind") {
            let _ = f.write(&line);
        }
        count_rotations(&f, &mut rotations, s);
    }
    f.flush();
}

/// The `{"dropped": N}` line for what the queue lost since the last one, if it lost anything.
fn lost_line(s: &Shared, reason: &str) -> Option<Vec<u8>> {
    let n = s.lost.swap(0, Ordering::Relaxed);
    (n > 0).then(|| {
        let mut line = Vec::new();
        super::json::write_dropped(&mut line, std::time::SystemTime::now(), n, reason);
        line
    })
}

fn count_rotations(f: &FileSink, seen: &mut u64, s: &Shared) {
    if f.rotations != *seen {
        s.stats
            .rotations
            .fetch_add(f.rotations - *seen, Ordering::Relaxed);
        *seen = f.rotations;
    }
}

fn run_stdout(rx: Receiver<Msg>, s: &Shared) {
    use std::io::Write;
    let mut last_warn = None;
    for m in rx {
        let mut out = std::io::stdout().lock();
        match m {
            Msg::Lines(lines, n) => {
                let r = out.write_all(&lines).and_then(|()| out.flush());
                if let Err(e) = &r {
                    s.warn(&mut last_warn, e);
                }
                s.done(n, r.is_ok());
            }
            Msg::Otlp(_) => {}
        }
        if let Some(line) = lost_line(s, "stdout sink behind") {
            let _ = out.write_all(&line).and_then(|()| out.flush());
        }
    }
}

/// Batches OTLP records up to `batch` records or `flush` of waiting, then exports them. A failed
/// export is retried twice (after 1 s and 2 s) before its records count as dropped.
fn run_otlp(rx: Receiver<Msg>, s: &Shared, cfg: OtlpConfig) {
    let mut ex = match otlp::Exporter::new(&cfg) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "call log: cannot start the OTLP exporter");
            for m in rx {
                if let Msg::Otlp(e) = m {
                    s.done(e.len() as u64, false);
                }
            }
            return;
        }
    };
    let mut last_warn = None;
    let mut pending: Vec<Entry> = Vec::new();
    let mut since: Option<Instant> = None;
    let mut open = true;
    while open || !pending.is_empty() {
        let wait = since.map_or(Duration::from_secs(1), |t| {
            cfg.flush.saturating_sub(t.elapsed())
        });
        match rx.recv_timeout(wait) {
            Ok(Msg::Otlp(e)) => {
                since.get_or_insert_with(Instant::now);
                pending.extend(e);
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        let due = since.is_some_and(|t| t.elapsed() >= cfg.flush) || !open;
        while pending.len() >= cfg.batch || (due && !pending.is_empty()) {
            let n = pending.len().min(cfg.batch);
            let mut r = ex.export(&pending[..n]);
            for backoff in [1, 2] {
                if r.is_ok() || !open {
                    break;
                }
                std::thread::sleep(Duration::from_secs(backoff));
                r = ex.export(&pending[..n]);
            }
            if let Err(e) = &r {
                s.warn(&mut last_warn, e);
            }
            s.done(n as u64, r.is_ok());
            pending.drain(..n);
        }
        if pending.is_empty() {
            since = None;
        }
    }
}
