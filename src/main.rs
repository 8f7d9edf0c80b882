//! `ringway`: run the gateway on a config file, check a config and the host, or proxy one upstream
//! without a config file.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tracing_appender::non_blocking::{ErrorCounter, WorkerGuard};
use tracing_subscriber::EnvFilter;

use ringway::config::{Config, DriverChoice, LogConfig, parse_cpu_list};
use ringway::control::{AdminToken, ControlPlane};
use ringway::{Gateway, StartOptions};

#[global_allocator]
static GLOBAL: ringway::runtime::alloc::MiAlloc = ringway::runtime::alloc::MiAlloc;

#[derive(Parser)]
#[command(
    name = "ringway",
    version,
    about = "Thread-per-core io_uring HTTP/1.1 API gateway"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Config file to run.
    #[arg(long, short, default_value = "config.toml", global = true)]
    config: PathBuf,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Args, Clone, Default)]
struct Tuning {
    /// Number of shards (threads); default: one per CPU in --cpus.
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// CPUs to pin shards to, e.g. 0-3,8.
    #[arg(long, global = true)]
    cpus: Option<String>,
    /// Event loop driver: auto, io_uring or epoll.
    #[arg(long, global = true)]
    driver: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate the config, print the compiled route table and what the host offers.
    Check,
    /// Write the managed state of a running gateway (tenants, services, apps, subscriptions;
    /// never secrets) as one JSON document, through its admin API (token: RINGWAY_ADMIN_TOKEN).
    Export {
        /// Admin API base URL; default: from the config's [admin] listen.
        #[arg(long)]
        admin: Option<String>,
        /// Output file; default: standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Make a running gateway's managed state match FILE (as written by `export`): show the
    /// changes, and make them unless --dry-run.
    Apply {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
        /// Admin API base URL; default: from the config's [admin] listen.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Reverse-proxy every request on --listen to one upstream, without a config file.
    Proxy {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: String,
        /// Upstream host:port.
        #[arg(long)]
        upstream: String,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ringway: {e:#}");
        std::process::exit(1);
    }
}

/// `mi_option_arena_eager_commit` (value from mimalloc v2's `mimalloc.h`).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits allocator arena memory on demand, so memory purged after a burst (the freed buffers of
/// parked idle connections) really leaves the process: 2.1 KiB -> 1.1 KiB RSS per idle keep-alive
/// connection with 10,000 of them (perf/RESULTS.md). It has to run before the first allocation, which
/// creates the arena, hence a constructor rather than a line in `main`. `MIMALLOC_ARENA_EAGER_COMMIT`
/// in the environment still wins.
extern "C" fn mimalloc_options() {
    // Safety: getenv before main, with no other thread running; the name is NUL-terminated.
    let set_by_env = unsafe { !libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() };
    if !set_by_env {
        // Safety: mi_option_set only writes mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static MIMALLOC_OPTIONS: extern "C" fn() = mimalloc_options;

fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Check) => check(&cli.config),
        Some(Cmd::Export {
            ref admin,
            ref output,
        }) => declarative(&cli.config, admin.as_deref(), |a| async move {
            let state = ringway::control::declarative::export(&a).await?;
            let text = serde_json::to_string_pretty(&state)? + "\n";
            match output {
                Some(p) => std::fs::write(p, text)
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }),
        Some(Cmd::Apply {
            ref file,
            dry_run,
            ref admin,
        }) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let want: ringway::control::declarative::State = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a state document", file.display()))?;
            declarative(&cli.config, admin.as_deref(), |a| async move {
                let plan = ringway::control::declarative::apply(&a, &want, dry_run).await?;
                for line in &plan {
                    println!("{line}");
                }
                let changes = plan.iter().filter(|l| !l.starts_with(['=', '?'])).count();
                if dry_run {
                    println!("{changes} change(s) to make (dry run: nothing changed)");
                } else {
                    println!("{changes} change(s) made");
                }
                Ok(())
            })
        }
        Some(Cmd::Proxy {
            ref listen,
            ref upstream,
        }) => {
            let mut config =
                Config::single_proxy(listen, upstream).context("invalid --listen/--upstream")?;
            apply_tuning(&mut config, &cli.tuning)?;
            serve(config, None, &cli.tuning)
        }
        None => {
            let mut config = Config::load(&cli.config)?;
            apply_tuning(&mut config, &cli.tuning)?;
            serve(config, Some(&cli.config), &cli.tuning)
        }
    }
}

fn apply_tuning(config: &mut Config, t: &Tuning) -> Result<()> {
    if let Some(d) = &t.driver {
        config.server.driver = match DriverChoice::parse(d) {
            Some(d) => d,
            None => bail!("--driver {d:?}: expected auto, io_uring or epoll"),
        };
    }
    Ok(())
}

fn start_options(t: &Tuning) -> Result<StartOptions> {
    let cpus = match &t.cpus {
        Some(c) => Some(parse_cpu_list(c).map_err(|e| anyhow::anyhow!("--cpus: {e}"))?),
        None => None,
    };
    if t.workers == Some(0) {
        bail!("--workers must be at least 1");
    }
    Ok(StartOptions {
        workers: t.workers,
        cpus,
    })
}

/// Runs an admin API client (`export`, `apply`) on a one-thread runtime.
fn declarative<F, Fut>(config: &Path, admin: Option<&str>, f: F) -> Result<()>
where
    F: FnOnce(ringway::control::declarative::Admin) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let base = match admin {
        Some(a) => a.to_string(),
        None => {
            let listen = Config::load(config)
                .ok()
                .and_then(|c| c.admin.map(|a| a.listen.to_string()))
                .unwrap_or_else(|| ringway::config::admin::DEFAULT_ADMIN_LISTEN.to_string());
            format!("http://{listen}")
        }
    };
    let token = std::env::var("RINGWAY_ADMIN_TOKEN")
        .context("set RINGWAY_ADMIN_TOKEN to an admin token (the bootstrap token or a user's)")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(f(ringway::control::declarative::Admin::new(&base, &token)))
}

fn check(path: &Path) -> Result<()> {
    let config = Config::load(path)?;
    let (report, _warnings) = ringway::check::report(&config);
    print!("{report}");
    Ok(())
}

/// Installs the log subscriber: a non-blocking, lossy writer thread in front of stderr holding up to
/// `log.buffer_lines`. Shards log through it and never wait for stderr: a slow or stuck log pipe
/// costs lines (counted, reported), not requests. Keep the
/// returned guard alive (dropping it flushes what is buffered), and report the counter's drops.
fn init_logging(log: &LogConfig) -> (WorkerGuard, ErrorCounter) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(log.buffer_lines)
        .thread_name("ringway-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi);
    if log.json {
        builder.json().init();
    } else {
        builder.init();
    }
    (guard, dropped)
}

/// Says how many log lines were dropped since the last report, at most every `LOG_DROP_REPORT`.
struct DropReport {
    counter: ErrorCounter,
    reported: usize,
    last: std::time::Instant,
}

const LOG_DROP_REPORT: Duration = Duration::from_secs(5);

impl DropReport {
    fn check(&mut self) {
        let now = self.counter.dropped_lines();
        if now > self.reported && self.last.elapsed() >= LOG_DROP_REPORT {
            tracing::warn!(
                dropped = now - self.reported,
                total = now,
                "log lines dropped: the log output (stderr) is not keeping up"
            );
            self.reported = now;
            self.last = std::time::Instant::now();
        }
    }
}

enum Event {
    Reload,
    Stop,
}

fn serve(config: Config, path: Option<&Path>, tuning: &Tuning) -> Result<()> {
    let (_log_guard, counter) = init_logging(&config.log);
    let mut drops = DropReport {
        counter,
        reported: 0,
        last: std::time::Instant::now() - LOG_DROP_REPORT,
    };
    // Writes to closed sockets must fail with EPIPE, not kill the process.
    // Safety: setting a signal disposition to SIG_IGN at start-up, before any thread uses it.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let drain = config.server.shutdown_timeout;
    // Handlers first: a SIGHUP or SIGTERM arriving while shards start must not hit the default
    // action (which would kill the process).
    let (tx, rx) = mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install signal handlers")?;
    let control_config = config.store.is_some().then(|| config.clone());
    let gateway = Gateway::start(config, start_options(tuning)?).context("cannot start")?;
    let control = match control_config {
        Some(c) => {
            let token = match &c.admin {
                Some(a) => Some(AdminToken::from_env_or_file(
                    std::env::var("RINGWAY_ADMIN_TOKEN").ok(),
                    a.token_file.as_deref(),
                )?),
                None => None,
            };
            Some(
                ControlPlane::start(&c, gateway.publisher(), token)
                    .context("cannot start the control plane")?,
            )
        }
        None => None,
    };
    let listen: Vec<String> = gateway
        .local_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    tracing::info!(listen = %listen.join(","), shards = gateway.drivers().len(), "ringway listening");

    std::thread::Builder::new()
        .name("ringway-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                match sig {
                    SIGHUP => {
                        let _ = tx.send(Event::Reload);
                    }
                    _ if stopping => {
                        eprintln!("ringway: second signal, exiting now");
                        std::process::exit(130);
                    }
                    _ => {
                        stopping = true;
                        let _ = tx.send(Event::Stop);
                    }
                }
            }
        })
        .context("cannot start the signal thread")?;

    loop {
        // Signals arrive on the channel; the timeout only paces the dropped-log check (once a
        // second: an idle gateway wakes this thread no more often than that).
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Event::Reload) => match path {
                Some(p) => match Config::load(p).and_then(|c| match &control {
                    Some(cp) => cp.reload(c),
                    None => gateway.reload(c),
                }) {
                    Ok(generation) => {
                        tracing::info!(generation, file = %p.display(), "config reloaded")
                    }
                    Err(e) => {
                        tracing::error!(file = %p.display(), error = %e, "config reload rejected; still serving the previous config")
                    }
                },
                None => tracing::warn!("SIGHUP ignored: running without a config file"),
            },
            Ok(Event::Stop) => {
                tracing::info!(drain = ?drain, "shutting down: no new connections, draining requests in flight");
                // The gateway first: its call log hands its last analytics minute to the control
                // plane, which stores it before it stops.
                gateway.shutdown(drain);
                if let Some(cp) = control {
                    cp.shutdown();
                }
                tracing::info!("stopped");
                return Ok(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => drops.check(),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("signal thread ended"),
        }
    }
}
