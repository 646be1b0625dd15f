//! Booting the service: one path for `main` and for the tests.
//!
//! [`App::build`] loads the rules (stopping with an error naming file, line and rule),
//! opens the store, starts the actors and binds the listener; [`App::port`] tells a test
//! which port it got (bind to port 0), and [`App::run_until_stopped`] serves until the
//! shutdown signal, then drains and flushes the store.
//!
//! What faces the web (state, routes, the accept loop, sessions) is `crate::http`'s; this
//! module only boots it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::audit::AuditLog;
use crate::chat::{ChatDeps, Registry, Responder};
use crate::conversation::IdlePolicy;
use crate::http::serve::{ConnLimits, bind, serve};
use crate::http::ws::GatewayConfig;
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::queue::{QueueConfig, QueueHandle};
use crate::store::{Location, Store, StoreError, StoreOptions};
use crate::transcript::Keyring;
use crate::triage::TriageEngine;

/// Everything `ieum serve` can be told.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where sled keeps its files; the master key file and the audit head live here on
    /// every store.
    pub data_dir: PathBuf,
    /// The store (`--store`); `None` is sled in `data_dir`.
    pub store: Option<crate::store::Location>,
    /// The risk rules file.
    pub rules: PathBuf,
    /// The intents directory.
    pub intents: PathBuf,
    /// Websocket settings (origins, connection cap, per-client limits).
    pub gateway: GatewayConfig,
    /// Idle limits per conversation state.
    pub idle: IdlePolicy,
    /// The master key, hex (`IEUM_MASTER_KEY`); if unset, read from `master_key_file`.
    pub master_key: Option<String>,
    /// The master key file (default `<data_dir>/master.key`, created on first start).
    pub master_key_file: Option<PathBuf>,
    /// How long transcripts are kept (default 180 days).
    pub retention: std::time::Duration,
    /// Use this storage backend instead of sled in `data_dir` (tests inject failures).
    pub backend: Option<BackendOverride>,
    /// Staff login throttling.
    pub login_policy: crate::auth::LoginPolicy,
    /// On PostgreSQL: the primary lease's time to live (`--lease-ttl-ms`).
    pub lease_ttl: std::time::Duration,
    /// On PostgreSQL: a lease this node already took (a standby taking over); without it
    /// [`App::build`] tries once to take the lease and fails while another node has it.
    pub lease: Option<LeaseSlot>,
    /// On PostgreSQL: the `host:port` standbys forward people to while this node is the
    /// primary (`--advertise`); default: the listen address, or, when it listens on all
    /// interfaces, the address the database sees this node connect from.
    pub advertise: Option<String>,
    /// Serve on this listener (already bound) instead of binding `listen`: a node keeps
    /// one listening socket across standby and primary.
    pub listener: Option<Arc<std::net::TcpListener>>,
}

/// A taken [`Lease`](crate::store::Lease), handed to [`App::build`] once.
#[derive(Clone)]
pub struct LeaseSlot(Arc<std::sync::Mutex<Option<crate::store::Lease>>>);

impl LeaseSlot {
    /// Wraps a taken lease.
    pub fn new(lease: crate::store::Lease) -> LeaseSlot {
        LeaseSlot(Arc::new(std::sync::Mutex::new(Some(lease))))
    }

    fn take(&self) -> Option<crate::store::Lease> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl std::fmt::Debug for LeaseSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseSlot")
    }
}

/// Why [`App::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM, Ctrl-C or the shutdown handle: the process ends.
    Asked,
    /// Another node took the PostgreSQL primary lease: this node may no longer write, and
    /// goes back to standby.
    LeaseLost,
}

/// A storage backend handed to [`App::build`] instead of sled.
#[derive(Clone)]
pub struct BackendOverride(pub Arc<dyn crate::store::Backend>);

impl std::fmt::Debug for BackendOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackendOverride")
    }
}

impl Settings {
    /// The master key file: `master_key_file`, or `<data_dir>/master.key`.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The master key: `master_key` (hex) if set, else the file (created on first start).
    ///
    /// # Errors
    /// A malformed key, or a file that cannot be read or created.
    pub fn load_master_key(&self) -> anyhow::Result<crate::crypto::Key> {
        crate::crypto::load_master_key(self.master_key.as_deref(), &self.master_key_path())
            .context("loading the master key")
    }

    /// The embedded defaults: `127.0.0.1:8080`, sled in `./data`, the shipped rules and
    /// intents.
    pub fn defaults() -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            store: None,
            rules: PathBuf::from(crate::defaults::RULES),
            intents: PathBuf::from(crate::defaults::INTENTS),
            gateway: GatewayConfig::default(),
            idle: IdlePolicy::default(),
            master_key: None,
            master_key_file: None,
            retention: std::time::Duration::from_secs(180 * 24 * 60 * 60),
            backend: None,
            login_policy: crate::auth::LoginPolicy::default(),
            lease_ttl: crate::store::lease::DEFAULT_TTL,
            lease: None,
            advertise: None,
            listener: None,
        }
    }
}

/// A built, bound, not yet serving application.
pub struct App {
    listener: TcpListener,
    state: AppState,
    shutdown: watch::Sender<bool>,
    retention: std::time::Duration,
    /// Vouches for clients forwarded by standby nodes (derived from the master key).
    forward: crate::http::forward::ForwardKey,
}

impl App {
    /// Loads, opens and binds.
    ///
    /// # Errors
    /// A rule file that does not load (the message names file, line and rule), a data
    /// directory that cannot be opened, or an address that cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let content = Arc::new(
            crate::content::Content::load(&settings.intents)
                .context("loading the conversation content")?,
        );
        App::build_parts(settings, content.clone(), content).await
    }

    /// As [`App::build`], with the bot's words from `responder` instead of the intents
    /// directory's content (for tests of the plumbing).
    ///
    /// # Errors
    /// As [`App::build`].
    pub async fn build_with(
        settings: Settings,
        responder: Arc<dyn Responder>,
    ) -> anyhow::Result<App> {
        let content = Arc::new(
            crate::content::Content::load(&settings.intents)
                .context("loading the conversation content")?,
        );
        App::build_parts(settings, responder, content).await
    }

    async fn build_parts(
        settings: Settings,
        responder: Arc<dyn Responder>,
        content: Arc<crate::content::Content>,
    ) -> anyhow::Result<App> {
        let engine = TriageEngine::load(&settings.rules, &settings.intents)
            .context("loading the triage rules")?;
        crate::store::prepare_data_dir(&settings.data_dir).with_context(|| {
            format!(
                "preparing the data directory {} (private: 0700, files 0600)",
                settings.data_dir.display()
            )
        })?;
        let store = match &settings.backend {
            Some(b) => Store::new(Arc::clone(&b.0)).context("starting the store")?,
            None => {
                // Opening sled reads its log and may wait for its file lock; Postgres
                // connects and migrates with a blocking client: off the async threads.
                let location = settings
                    .store
                    .clone()
                    .unwrap_or_else(|| Location::Sled(settings.data_dir.clone()));
                if let Location::Sled(dir) = &location
                    && dir != &settings.data_dir
                {
                    crate::store::prepare_data_dir(dir).with_context(|| {
                        format!("preparing the store directory {}", dir.display())
                    })?;
                }
                let at = location.clone();
                let lease = settings.lease.as_ref().and_then(LeaseSlot::take);
                let ttl = settings.lease_ttl;
                let opened = tokio::task::spawn_blocking(move || {
                    at.open_primary(StoreOptions::default(), lease, ttl)
                })
                .await
                .context("opening the store")?;
                match (opened, &location) {
                    (Ok(store), _) => store,
                    // StoreError::Busy speaks of a data directory; say what is held here.
                    (Err(StoreError::Busy(why)), Location::Postgres(_)) => {
                        anyhow::bail!("opening the store ({location}): {why}")
                    }
                    (Err(e), Location::Sled(dir)) => {
                        return Err(anyhow::Error::new(e))
                            .with_context(|| format!("opening the store in {}", dir.display()));
                    }
                    (Err(e), other) => {
                        return Err(anyhow::Error::new(e))
                            .with_context(|| format!("opening the store ({other})"));
                    }
                }
            }
        };
        let key_file = settings.master_key_path();
        let master = settings.load_master_key()?;
        if settings.master_key.is_none() && inside(&key_file, &settings.data_dir) {
            tracing::warn!(
                path = %key_file.display(),
                "the master key is inside the data directory: a copy of the directory is a copy of \
                 every transcript; keep the key elsewhere (--master-key-file or IEUM_MASTER_KEY)"
            );
        }
        let forward = crate::http::forward::ForwardKey::new(&master);
        let anchor = crate::audit::Anchor::in_dir(&settings.data_dir, master.clone());
        let keyring = Keyring::new(master, store.clone());
        let queue = QueueHandle::spawn(QueueConfig::new(engine.rule_set().levels));
        let audit = AuditLog::open_anchored(store.clone(), Some(anchor))
            .await
            .context("opening the audit log")?;
        let listener = match &settings.listener {
            Some(l) => l
                .try_clone()
                .and_then(TcpListener::from_std)
                .context("taking over the listening socket")?,
            None => bind(settings.listen)
                .with_context(|| format!("listening on {}", settings.listen))?,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let retention = settings.retention;
        let engine = Arc::new(engine);
        let metrics = Arc::new(Metrics::default());
        let registry = Registry::spawn(Arc::new(ChatDeps {
            engine: Arc::clone(&engine),
            responder,
            flow: crate::conversation::ScreenFlow::from_screener(content.screener()),
            store: store.clone(),
            queue: queue.clone(),
            idle: settings.idle,
            metrics: Arc::clone(&metrics),
            keyring: keyring.clone(),
            audit: audit.clone(),
        }));
        let restored = registry
            .restore(&store, &keyring)
            .await
            .context("restoring open conversations")?;
        if restored > 0 {
            tracing::info!(restored, "open conversations back in the queue");
        }
        Ok(App {
            listener,
            state: AppState {
                registry,
                citizens: Arc::new(Semaphore::new(settings.gateway.max_citizens)),
                gateway: Arc::new(settings.gateway),
                metrics,
                shutdown: shutdown_rx,
                engine,
                store,
                queue,
                audit,
                keyring,
                logins: crate::auth::LoginGuard::new(settings.login_policy),
                sessions_ended: tokio::sync::broadcast::channel(64).0,
                content,
            },
            shutdown,
            retention,
            forward,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (for tests that look inside).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle that stops the server when set to `true` with `send_replace` (tests;
    /// signals do the same).
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Serves until SIGTERM, Ctrl-C or the shutdown handle; then stops accepting, lets
    /// open requests finish, and flushes the store.
    ///
    /// # Errors
    /// A failure of the server itself or of the final flush.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run().await.map(drop)
    }

    /// [`App::run_until_stopped`], saying why it stopped: asked to, or (on PostgreSQL)
    /// because another node took the primary lease. After a lost lease the final flush
    /// is refused by the fence, as every write since the takeover was: not an error here.
    ///
    /// # Errors
    /// As [`App::run_until_stopped`].
    pub async fn run(self) -> anyhow::Result<Stopped> {
        let App {
            listener,
            state,
            shutdown,
            retention: self_retention,
            forward,
        } = self;
        let store = state.store.clone();
        let registry = state.registry.clone();
        let mut stop = shutdown.subscribe();
        let retention = tokio::spawn(retention_task(
            state.clone(),
            self_retention,
            shutdown.subscribe(),
        ));
        let max_connections = state
            .gateway
            .max_connections
            .unwrap_or(state.gateway.max_citizens + 2_000);
        let state_limits = ConnLimits {
            max_connections,
            per_address: state.gateway.max_per_address,
            headroom: state.gateway.connection_headroom.min(max_connections / 2),
            header_timeout: state.gateway.header_timeout,
            forward: Some(forward),
        };
        let router = router(state);
        let mut lost = store.lease_lost();
        let why = Arc::new(std::sync::Mutex::new(Stopped::Asked));
        let why_set = Arc::clone(&why);
        let signal = async move {
            let lease_lost = async {
                match lost.as_mut() {
                    Some(rx) => {
                        let _ = rx.wait_for(|l| *l).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = terminate_signal() => {}
                _ = lease_lost => {
                    *why_set.lock().unwrap_or_else(|e| e.into_inner()) = Stopped::LeaseLost;
                    tracing::warn!("another node took over as primary: closing sockets, back to standby");
                }
            }
            tracing::info!("shutting down: no new connections; closing sockets; draining");
            // Tell every open socket (they close with 1001 and the widget reconnects).
            shutdown.send_replace(true);
        };
        serve(listener, router, signal, state_limits).await;
        registry.shutdown().await;
        let _ = retention.await;
        let why = *why.lock().unwrap_or_else(|e| e.into_inner());
        match (store.shutdown().await, why) {
            (Ok(()), _) => tracing::info!("stopped; store flushed"),
            (Err(e), Stopped::LeaseLost) => {
                tracing::info!(code = e.code(), "stopped; the last writes were fenced off");
            }
            (Err(e), Stopped::Asked) => return Err(e).context("flushing the store"),
        }
        Ok(why)
    }
}

/// Runs retention at start and then hourly until shutdown.
async fn retention_task(
    state: AppState,
    retention: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60 * 60));
    loop {
        tokio::select! {
            _ = every.tick() => {
                match crate::retention::purge(&state.store, &state.keyring, &state.audit, retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "retention purge"),
                    Err(e) => tracing::error!(code = e.code(), error = %e, "retention purge failed"),
                }
            }
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
        }
    }
}

pub(crate) async fn terminate_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Whether `path` lies inside `dir` (after resolving both, where they exist).
fn inside(path: &std::path::Path, dir: &std::path::Path) -> bool {
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let file_dir = path.parent().map(canon).unwrap_or_default();
    file_dir.starts_with(canon(dir))
}
