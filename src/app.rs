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
use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};

use crate::audit::AuditLog;
use crate::chat::{ChatDeps, Registry, Responder};
use crate::conversation::IdlePolicy;
use crate::gateway::GatewayConfig;
use crate::metrics::Metrics;
use crate::queue::{QueueConfig, QueueHandle};
use crate::store::{Store, StoreOptions};
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
    /// What the bot says (canned snippets and resources for the staff pages).
    pub content: Arc<crate::content::Content>,
}

/// A built, bound, not yet serving application.
pub struct App {
    listener: TcpListener,
    state: AppState,
    shutdown: watch::Sender<bool>,
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
        let store = Store::open_sled(&settings.data_dir, StoreOptions::default())
            .with_context(|| format!("opening the store in {}", settings.data_dir.display()))?;
        let queue = QueueHandle::spawn(QueueConfig::new(engine.rule_set().levels));
        let audit = AuditLog::open(store.clone())
            .await
            .context("opening the audit log")?;
        let listener =
            bind(settings.listen).with_context(|| format!("listening on {}", settings.listen))?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let engine = Arc::new(engine);
        let metrics = Arc::new(Metrics::default());
        let registry = Registry::spawn(Arc::new(ChatDeps {
            engine: Arc::clone(&engine),
            responder,
            store: store.clone(),
            queue: queue.clone(),
            idle: settings.idle,
            metrics: Arc::clone(&metrics),
        }));
        let restored = registry
            .restore(&store)
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
                content,
            },
            shutdown,
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
        } = self;
        let store = state.store.clone();
        let registry = state.registry.clone();
        let mut stop = shutdown.subscribe();
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
        axum::serve(
            listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await
        .context("serving")?;
        registry.shutdown().await;
        store.shutdown().await.context("flushing the store")?;
        tracing::info!("stopped; store flushed");
        Ok(())
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
