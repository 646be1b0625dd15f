//! A node's life: what `ieum serve` runs.
//!
//! On sled (the default) a node is simply the [`App`]: build, serve until asked to stop.
//!
//! On PostgreSQL several nodes may share one database for availability (issue 20; see
//! `store::lease` for why one primary and not several writers). A node binds its port
//! once and then alternates:
//!
//! 1. **standby** — answers 503 ([`crate::http::standby`]) and tries to take the primary
//!    lease every quarter of its time to live;
//! 2. **primary** — with the lease, builds the [`App`] (which restores the waiting queue
//!    and the counselors' conversations from the database) on the same socket and serves,
//!    until asked to stop (it then releases the lease so a standby takes over at once) or
//!    until another node took the lease (it closes every socket, so people reconnect
//!    through the load balancer to the new primary, and goes back to 1).
//!
//! The rules and intents are checked before the first standby phase: a broken rule file
//! stops a standby at startup, not at 3 a.m. when it takes over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use crate::app::{App, LeaseSlot, Settings, Stopped};
use crate::store::Location;
use crate::store::lease::{Standby, node_name};

/// Runs a node until SIGTERM or Ctrl-C. `started` is when the process started (for the
/// startup time in the log).
///
/// # Errors
/// A rule file that does not load, a port that cannot be bound, a store that cannot be
/// opened or flushed.
pub async fn run(settings: Settings, started: Instant) -> anyhow::Result<()> {
    let url = match &settings.store {
        Some(Location::Postgres(url)) if settings.backend.is_none() => url.clone(),
        _ => {
            let app = App::build(settings).await?;
            listening(&app, started);
            return app.run_until_stopped().await;
        }
    };
    // The rules must load before this node may ever take over.
    crate::triage::TriageEngine::load(&settings.rules, &settings.intents)
        .context("loading the triage rules")?;
    crate::content::Content::load(&settings.intents).context("loading the conversation content")?;
    let listener = crate::http::serve::bind(settings.listen)
        .and_then(|l| l.into_std())
        .with_context(|| format!("listening on {}", settings.listen))?;
    let listener = Arc::new(listener);
    let mut standby = Some(Standby::new(&url, node_name(), settings.lease_ttl)?);
    // One signal listener for the node's whole life: a SIGTERM between two phases is not
    // lost.
    let (stop_tx, mut stop) = watch::channel(false);
    tokio::spawn(async move {
        crate::app::terminate_signal().await;
        stop_tx.send_replace(true);
    });
    loop {
        tracing::info!(
            node = standby.as_ref().map(Standby::holder).unwrap_or_default(),
            port = listener.local_addr().map(|a| a.port()).unwrap_or(0),
            "standby: waiting for the primary lease"
        );
        let Some(lease) = wait_for_lease(&listener, &mut standby, &mut stop).await? else {
            tracing::info!("stopped (standby)");
            return Ok(());
        };
        tracing::info!(
            fence = lease.fence().fence,
            "took the primary lease; starting"
        );
        let mut s = settings.clone();
        s.lease = Some(LeaseSlot::new(lease));
        s.listener = Some(Arc::clone(&listener));
        let app = App::build(s).await?;
        listening(&app, started);
        let handle = app.shutdown_handle();
        let mut stop_app = stop.clone();
        let forward = tokio::spawn(async move {
            if stop_app.wait_for(|s| *s).await.is_ok() {
                handle.send_replace(true);
            }
        });
        let why = app.run().await;
        forward.abort();
        match why? {
            Stopped::Asked => return Ok(()),
            Stopped::LeaseLost => continue,
        }
    }
}

fn listening(app: &App, started: Instant) {
    tracing::info!(
        port = app.port(),
        ruleset = %app.state().engine.version(),
        startup_ms = started.elapsed().as_millis() as u64,
        "ieum listening"
    );
}

/// Serves the standby answers on `listener` and tries to take the lease until it is
/// taken (`Some`) or the node is asked to stop (`None`).
async fn wait_for_lease(
    listener: &Arc<std::net::TcpListener>,
    standby: &mut Option<Standby>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<crate::store::Lease>> {
    let socket = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
    let holder = standby
        .as_ref()
        .map(|s| s.holder().to_owned())
        .unwrap_or_default();
    let (done_tx, mut done) = watch::channel(false);
    let server = tokio::spawn(
        axum::serve(socket, crate::http::standby::router(holder))
            .with_graceful_shutdown(async move {
                let _ = done.wait_for(|d| *d).await;
            })
            .into_future(),
    );
    let mut failing_since: Option<Instant> = None;
    let taken = loop {
        if *stop.borrow() {
            break None;
        }
        // The try blocks (a PostgreSQL client): on the blocking pool, the standby moved
        // there and back.
        let Some(mut s) = standby.take() else {
            anyhow::bail!("the standby was lost");
        };
        let (s, tried) = tokio::task::spawn_blocking(move || {
            let r = s.try_take();
            (s, r)
        })
        .await
        .context("trying to take the primary lease")?;
        let poll = s.poll_every();
        *standby = Some(s);
        match tried {
            Ok(Some(lease)) => break Some(lease),
            Ok(None) => failing_since = None,
            Err(e) => {
                if failing_since.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    tracing::warn!(code = e.code(), error = %e, "standby cannot reach the database");
                    failing_since = Some(Instant::now());
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    };
    done_tx.send_replace(true);
    let _ = server.await;
    Ok(taken)
}
