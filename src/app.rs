//! Booting the service: one path for `main` and for the tests.
//!
//! [`App::build`] loads the rules (stopping with an error naming file, line and rule),
//! opens the store, starts the actors and binds the listener; [`App::port`] tells a test
//! which port it got (bind to port 0), and [`App::run_until_stopped`] serves until the
//! shutdown signal, then drains and flushes the store.
//!
//! Sockets: the listener is bound through `TcpSocket` with a backlog of 4096 (tokio's
//! default of 128 overflowed when 200 clients connected at once, and dropped SYNs are only
//! retried after a second — a reconnect storm after a restart needs the room), and every
//! accepted socket gets `TCP_NODELAY` (an `ack` followed by a `bot` frame otherwise waits
//! on Nagle plus delayed ACK for tens of milliseconds). See `shared/MEASURED.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};

use crate::audit::AuditLog;
use crate::chat::{ChatDeps, Registry, Responder};
use crate::conversation::IdlePolicy;
use crate::gateway::GatewayConfig;
use crate::metrics::Metrics;
use crate::queue::{QueueConfig, QueueHandle};
use crate::store::{Store, StoreOptions};
use crate::transcript::Keyring;
use crate::triage::{Level, TriageEngine};

/// Everything `ieum serve` can be told.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where sled keeps its files.
    pub data_dir: PathBuf,
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
    /// The embedded defaults: `127.0.0.1:8080`, sled in `./data`, the shipped rules and
    /// intents.
    pub fn defaults() -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            rules: PathBuf::from(crate::defaults::RULES),
            intents: PathBuf::from(crate::defaults::INTENTS),
            gateway: GatewayConfig::default(),
            idle: IdlePolicy::default(),
            master_key: None,
            master_key_file: None,
            retention: std::time::Duration::from_secs(180 * 24 * 60 * 60),
            backend: None,
        }
    }
}

/// State shared by every handler: cheap handles only, no locks.
#[derive(Clone)]
pub struct AppState {
    /// Conversation id → live conversation actor.
    pub registry: Registry,
    /// Citizen connection permits (the cap).
    pub citizens: Arc<Semaphore>,
    /// Gateway settings.
    pub gateway: Arc<GatewayConfig>,
    /// Service counters.
    pub metrics: Arc<Metrics>,
    /// Turns true when the server shuts down (sockets close with 1001).
    pub shutdown: watch::Receiver<bool>,
    /// The compiled triage engine (immutable).
    pub engine: Arc<TriageEngine>,
    /// The durable store.
    pub store: Store,
    /// The counselor queue.
    pub queue: QueueHandle,
    /// The audit log.
    pub audit: AuditLog,
    /// Conversation keys.
    pub keyring: Keyring,
    /// What the bot says (canned snippets and resources for the staff pages).
    pub content: Arc<crate::content::Content>,
}

/// A built, bound, not yet serving application.
pub struct App {
    listener: TcpListener,
    state: AppState,
    shutdown: watch::Sender<bool>,
    retention: std::time::Duration,
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
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "creating the data directory {}",
                settings.data_dir.display()
            )
        })?;
        let store = match &settings.backend {
            Some(b) => Store::new(Arc::clone(&b.0)).context("starting the store")?,
            None => {
                // Opening sled reads its log and may wait for its file lock: off the
                // async threads.
                let dir = settings.data_dir.clone();
                tokio::task::spawn_blocking(move || Store::open_sled(&dir, StoreOptions::default()))
                    .await
                    .context("opening the store")?
                    .with_context(|| {
                        format!("opening the store in {}", settings.data_dir.display())
                    })?
            }
        };
        let key_file = settings
            .master_key_file
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("master.key"));
        let master = crate::crypto::load_master_key(settings.master_key.as_deref(), &key_file)
            .context("loading the master key")?;
        let keyring = Keyring::new(master, store.clone());
        let queue = QueueHandle::spawn(QueueConfig::new(engine.rule_set().levels));
        let audit = AuditLog::open(store.clone())
            .await
            .context("opening the audit log")?;
        let listener =
            bind(settings.listen).with_context(|| format!("listening on {}", settings.listen))?;
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
                content,
            },
            shutdown,
            retention,
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
        let App {
            listener,
            state,
            shutdown,
            retention: self_retention,
        } = self;
        let store = state.store.clone();
        let registry = state.registry.clone();
        let mut stop = shutdown.subscribe();
        let retention = tokio::spawn(retention_task(
            state.clone(),
            self_retention,
            shutdown.subscribe(),
        ));
        let state_limits = ConnLimits {
            max_connections: state.gateway.max_citizens + 2_000,
            header_timeout: state.gateway.header_timeout,
        };
        let router = router(state);
        let signal = async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = terminate_signal() => {}
            }
            tracing::info!("shutting down: no new connections; closing sockets; draining");
            // Tell every open socket (they close with 1001 and the widget reconnects).
            shutdown.send_replace(true);
        };
        serve(listener, router, signal, state_limits).await;
        registry.shutdown().await;
        let _ = retention.await;
        store.shutdown().await.context("flushing the store")?;
        tracing::info!("stopped; store flushed");
        Ok(())
    }
}

/// TCP-level limits of the accept loop.
struct ConnLimits {
    /// Open connections at most (citizens, staff and slow clients together); past it new
    /// sockets are closed at once, so file descriptors never run out.
    max_connections: usize,
    /// A client must send its whole request head within this time (slowloris).
    header_timeout: std::time::Duration,
}

/// The accept loop: one task per connection, `TCP_NODELAY`, a header-read timeout, a cap on
/// open connections, and graceful shutdown (stop accepting, let requests in flight finish
/// for up to 10 s; websocket sessions close themselves with 1001 on the same signal).
///
/// Not `axum::serve`: it sets no timer, so hyper's header-read timeout never fires and a
/// slow or partial handshake would hold its socket forever.
async fn serve(
    listener: TcpListener,
    router: Router,
    signal: impl std::future::Future<Output = ()>,
    limits: ConnLimits,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use tower::ServiceExt;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut signal = std::pin::pin!(signal);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; stopping anyway");
        }
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

/// The routes. Exists on its own so tests can drive it without a socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws/chat", get(crate::gateway::chat_ws))
        .route("/ws/counselor", get(crate::gateway::counselor_ws))
        .merge(crate::api::routes())
        .merge(crate::web::routes())
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let body = serde_json::json!({
        "status": "ok",
        "ruleset": state.engine.version(),
    });
    (StatusCode::OK, axum::Json(body))
}

/// Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    use std::fmt::Write;
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    let s = state.store.stats();
    let _ = writeln!(
        out,
        "# HELP ieum_store_writes_total Durable writes acknowledged."
    );
    let _ = writeln!(out, "# TYPE ieum_store_writes_total counter");
    let _ = writeln!(out, "ieum_store_writes_total {}", s.writes);
    let _ = writeln!(
        out,
        "# HELP ieum_store_write_errors_total Writes refused (never acknowledged)."
    );
    let _ = writeln!(out, "# TYPE ieum_store_write_errors_total counter");
    let _ = writeln!(out, "ieum_store_write_errors_total {}", s.write_errors);
    let _ = writeln!(
        out,
        "# HELP ieum_store_flushes_total Store flushes (one per commit group)."
    );
    let _ = writeln!(out, "# TYPE ieum_store_flushes_total counter");
    let _ = writeln!(out, "ieum_store_flushes_total {}", s.flushes);
    let _ = writeln!(out, "# HELP ieum_store_flush_seconds Flush latency.");
    let _ = writeln!(out, "# TYPE ieum_store_flush_seconds histogram");
    let mut cumulative = 0u64;
    for (i, bound) in s.flush_latency.bounds_us().iter().enumerate() {
        cumulative += s.flush_latency.counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "ieum_store_flush_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "ieum_store_flush_seconds_bucket{{le=\"+Inf\"}} {}",
        s.flush_latency.count()
    );
    let _ = writeln!(
        out,
        "ieum_store_flush_seconds_sum {}",
        s.flush_latency.sum_us as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "ieum_store_flush_seconds_count {}",
        s.flush_latency.count()
    );

    let q = state.queue.stats();
    let _ = writeln!(
        out,
        "# HELP ieum_queue_waiting Conversations waiting for a counselor."
    );
    let _ = writeln!(out, "# TYPE ieum_queue_waiting gauge");
    for l in Level::ALL {
        let _ = writeln!(
            out,
            "ieum_queue_waiting{{level=\"{l}\"}} {}",
            q.waiting[l.index()]
        );
    }
    let _ = writeln!(
        out,
        "# HELP ieum_queue_longest_wait_seconds Longest current wait."
    );
    let _ = writeln!(out, "# TYPE ieum_queue_longest_wait_seconds gauge");
    for l in Level::ALL {
        let _ = writeln!(
            out,
            "ieum_queue_longest_wait_seconds{{level=\"{l}\"}} {}",
            q.longest_wait_secs[l.index()]
        );
    }
    let _ = writeln!(
        out,
        "# HELP ieum_queue_wait_breaches_total Waits past the level's target."
    );
    let _ = writeln!(out, "# TYPE ieum_queue_wait_breaches_total counter");
    for l in Level::ALL {
        let _ = writeln!(
            out,
            "ieum_queue_wait_breaches_total{{level=\"{l}\"}} {}",
            q.breaches[l.index()]
        );
    }
    let _ = writeln!(out, "# HELP ieum_counselors_online Counselors connected.");
    let _ = writeln!(out, "# TYPE ieum_counselors_online gauge");
    let _ = writeln!(out, "ieum_counselors_online {}", q.counselors_online);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn terminate_signal() {
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
