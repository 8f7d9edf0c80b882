//! The control plane: its own thread with a tokio runtime, off the pinned shards. It owns the
//! store ([`store`]), serves the admin API ([`admin`], axum), and keeps the managed state compiled
//! ([`catalog`]), publishing a new snapshot after every committed change through the gateway's
//! [`SnapshotPublisher`] (the same one writer config reloads use). Shards never wait on it: they
//! pick the snapshot up at their next tick.
//!
//! Layering: the control plane uses the gateway (to publish) and everything below it; nothing in
//! the data plane uses the control plane.

pub mod admin;
pub mod analytics;
pub mod catalog;
pub mod console;
pub mod declarative;
pub mod jwt;
pub mod keyring;
pub mod model;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::config::{Config, ConfigError};
use crate::gateway::SnapshotPublisher;

use catalog::{CatalogError, Managed};
use store::{Store, StoreError};

/// Shortest bootstrap token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The bootstrap admin token. Its text is dropped once hashed.
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    pub fn new(token: impl Into<String>) -> Result<AdminToken, ControlError> {
        let t: String = token.into();
        let t = t.trim().to_string();
        if t.len() < MIN_TOKEN_LEN {
            return Err(ControlError::Token(format!(
                "the bootstrap admin token must be at least {MIN_TOKEN_LEN} characters"
            )));
        }
        if t.chars().any(|c| c.is_control() || c == ' ') {
            return Err(ControlError::Token(
                "the bootstrap admin token must not contain spaces or control characters".into(),
            ));
        }
        Ok(AdminToken(t))
    }

    /// From `env` (the value of `RINGWAY_ADMIN_TOKEN`) or else the file.
    pub fn from_env_or_file(
        env: Option<String>,
        file: Option<&Path>,
    ) -> Result<AdminToken, ControlError> {
        if let Some(t) = env.filter(|t| !t.is_empty()) {
            return AdminToken::new(t);
        }
        match file {
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    ControlError::Token(format!("cannot read admin.token_file {}: {e}", f.display()))
                })?;
                AdminToken::new(text)
            }
            None => Err(ControlError::Token(
                "the admin API needs a bootstrap token: set RINGWAY_ADMIN_TOKEN or [admin] token_file"
                    .into(),
            )),
        }
    }

    fn hash(self) -> [u8; 32] {
        crate::catalog::hash_key(self.0.as_bytes())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Token(String),
    #[error("cannot open the store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot load the managed services: {0}")]
    Load(#[from] CatalogError),
    #[error("cannot listen on {addr} (admin.listen): {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the control plane: {0}")]
    Start(String),
}

enum Command {
    SetBase(
        Arc<Config>,
        std::sync::mpsc::Sender<Result<u64, ConfigError>>,
    ),
}

/// A running control plane.
pub struct ControlPlane {
    thread: Option<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
    commands: mpsc::UnboundedSender<Command>,
    admin_addr: Option<SocketAddr>,
}

impl ControlPlane {
    /// Opens the store, loads and publishes the managed services, and starts the admin API (when
    /// `config.admin` is set). Returns once all of that is done, or failed.
    pub fn start(
        config: &Config,
        publisher: SnapshotPublisher,
        token: Option<AdminToken>,
    ) -> Result<ControlPlane, ControlError> {
        let store_cfg = config
            .store
            .clone()
            .ok_or_else(|| ControlError::Start("no [store] or [admin] section".into()))?;
        let admin_cfg = config.admin.clone();
        let token_hash = match (&admin_cfg, token) {
            (Some(_), Some(t)) => Some(t.hash()),
            (Some(_), None) => {
                return Err(ControlError::Token(
                    "the admin API needs a bootstrap token: set RINGWAY_ADMIN_TOKEN or [admin] token_file"
                        .into(),
                ));
            }
            (None, _) => None,
        };
        let base = Arc::new(config.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("ringway-control".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ControlError::Start(e.to_string())));
                        return;
                    }
                };
                rt.block_on(run(
                    store_cfg.path,
                    admin_cfg,
                    token_hash,
                    base,
                    publisher,
                    ready_tx,
                    stop_rx,
                    cmd_rx,
                ));
            })
            .map_err(|e| ControlError::Start(e.to_string()))?;
        let admin_addr = match ready_rx.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(ControlError::Start("the control thread ended".into()));
            }
        };
        Ok(ControlPlane {
            thread: Some(thread),
            stop: Some(stop_tx),
            commands: cmd_tx,
            admin_addr,
        })
    }

    /// The admin API's address (port resolved), when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// A new config file: composed with the managed services and published (blocks until done).
    pub fn reload(&self, config: Config) -> Result<u64, ConfigError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let gone = || ConfigError::invalid("control", "the control plane is not running");
        self.commands
            .send(Command::SetBase(Arc::new(config), tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    /// Stops the admin API (requests in flight finish) and closes the store.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

type Ready = std::sync::mpsc::Sender<Result<Option<SocketAddr>, ControlError>>;

#[allow(clippy::too_many_arguments)]
async fn run(
    path: std::path::PathBuf,
    admin_cfg: Option<crate::config::admin::AdminConfig>,
    token_hash: Option<[u8; 32]>,
    base: Arc<Config>,
    publisher: SnapshotPublisher,
    ready: Ready,
    stop: oneshot::Receiver<()>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let store = match Store::open(&path).await {
        Ok(s) => Arc::new(s),
        Err(source) => {
            let _ = ready.send(Err(ControlError::Store {
                path: path.display().to_string(),
                source,
            }));
            return;
        }
    };
    let keyring = match keyring::Keyring::load(std::env::var("RINGWAY_STORE_KEY").ok(), &path) {
        Ok(k) => Arc::new(k),
        Err(e) => {
            let _ = ready.send(Err(ControlError::Start(e.to_string())));
            return;
        }
    };
    let admin_publisher = publisher.clone();
    let publisher_for_analytics = publisher.clone();
    let base_analytics = base.analytics.is_some();
    let managed = match Managed::load(&store, base, publisher, keyring).await {
        Ok(m) => Arc::new(Mutex::new(m)),
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let listen = admin_cfg.as_ref().map(|a| a.listen);
    let listener = match listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(source) => {
                let _ = ready.send(Err(ControlError::Bind { addr, source }));
                return;
            }
        },
        None => None,
    };
    let tls = match admin_cfg.as_ref().and_then(|a| a.tls.as_ref()) {
        None => None,
        Some((cert, key)) => match admin::listener::server_config(cert, key) {
            Ok(c) => Some(c),
            Err(e) => {
                let _ = ready.send(Err(ControlError::Start(format!("admin.tls: {e}"))));
                return;
            }
        },
    };
    let addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    if let (Some(a), None) = (&admin_cfg, &tls) {
        if !a.listen.ip().is_loopback() && !a.cookie_secure {
            tracing::warn!(listen = %a.listen, "the admin API and console listen beyond loopback over plain HTTP: tokens, passwords and session cookies cross the network in the clear; set [admin] tls (or put a TLS terminator in front and set cookie_secure = true)");
        }
    }
    let cmd_managed = managed.clone();
    let command_loop = async move {
        while let Some(cmd) = commands.recv().await {
            match cmd {
                Command::SetBase(config, reply) => {
                    let r = cmd_managed.lock().await.set_base(config);
                    let _ = reply.send(r);
                }
            }
        }
    };
    let refresh_managed = managed.clone();
    let jwks_refresh = async move {
        let mut every = tokio::time::interval(jwt::JWKS_REFRESH);
        every.tick().await;
        loop {
            every.tick().await;
            let (sources, http) = {
                let m = refresh_managed.lock().await;
                (m.jwks_sources(), m.http.clone())
            };
            for (id, url) in sources {
                match jwt::fetch(&http, &url).await {
                    Ok(doc) => refresh_managed.lock().await.jwks_fetched(&id, doc),
                    Err(e) => {
                        tracing::warn!(credential = %id, error = %e, "JWKS refresh failed; keeping the previous keys")
                    }
                }
            }
        }
    };
    tokio::spawn(jwks_refresh);
    let rollups = publisher_for_analytics.take_rollups();
    if base_analytics {
        tokio::spawn(analytics::maintain(
            store.clone(),
            publisher_for_analytics.clone(),
        ));
    }
    // Analytics periods are stored on a task of their own, so a shutdown never cuts a write
    // short: told to stop, it stores what is queued and ends.
    let (ingest_stop, mut ingest_stopped) = oneshot::channel::<()>();
    let ingest_store = store.clone();
    let ingest = tokio::spawn(async move {
        let Some(mut rx) = rollups else { return };
        loop {
            tokio::select! {
                biased;
                p = rx.recv() => match p {
                    Some(p) => analytics::store_period(&ingest_store, p).await,
                    None => break,
                },
                _ = &mut ingest_stopped => {
                    analytics::drain(&ingest_store, &mut rx).await;
                    break;
                }
            }
        }
    });
    let _ = ready.send(Ok(addr));
    match (listener, token_hash) {
        (Some(listener), Some(hash)) => {
            tracing::info!(listen = %addr.map(|a| a.to_string()).unwrap_or_default(), tls = tls.is_some(), store = %path.display(), "admin API listening");
            let state = admin::AdminState {
                store: store.clone(),
                managed,
                token_hash: Arc::new(hash),
                throttle: Arc::default(),
                session_ttl_ms: admin_cfg
                    .as_ref()
                    .map_or(crate::config::admin::DEFAULT_SESSION_TTL, |a| a.session_ttl)
                    .as_millis() as i64,
                cookie_secure: admin_cfg.as_ref().is_some_and(|a| a.cookie_secure),
                publisher: admin_publisher,
                metrics_token: std::env::var("RINGWAY_METRICS_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty())
                    .map(|t| Arc::new(crate::catalog::hash_key(t.as_bytes()))),
            };
            let app =
                admin::router(state).into_make_service_with_connect_info::<admin::listener::Peer>();
            let stopped = async {
                let _ = stop.await;
            };
            let serve: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
                match tls {
                    Some(config) => match admin::listener::TlsListener::new(listener, config) {
                        Ok(l) => Box::pin(
                            axum::serve(l, app)
                                .with_graceful_shutdown(stopped)
                                .into_future(),
                        ),
                        Err(e) => Box::pin(async move { Err(e) }),
                    },
                    None => Box::pin(
                        axum::serve(listener, app)
                            .with_graceful_shutdown(stopped)
                            .into_future(),
                    ),
                };
            tokio::select! {
                r = serve => if let Err(e) = r {
                    tracing::error!(error = %e, "admin API stopped");
                },
                () = command_loop => {},
            }
        }
        _ => {
            tokio::select! {
                _ = stop => {},
                () = command_loop => {},
            }
        }
    }
    let _ = ingest_stop.send(());
    let _ = ingest.await;
    store.close().await;
}
